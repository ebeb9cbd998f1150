//! `hearth-dev`: the developer tool behind `make run` and `make bench`.
//!
//! ```text
//! hearth-dev run   [--pg-port N] [--nats-port N] [--grpc-port N] [--mtls [--health-port N]]
//! hearth-dev token --org ORG --roles r1,r2 [--sub SUBJECT] [--hours N]
//! hearth-dev bench [--seconds N] [--concurrency 1,4,16,32,64,128]
//! ```
//!
//! This file only parses the command line and dispatches; each subcommand lives in
//! its own module (`run`, `keys`, `bench`).

// The allocator the referrals binary uses, so the in-process service is measured as
// deployed.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod banner;
mod bench;
mod demo;
mod grpc;
mod keys;
mod load;
mod paths;
mod pgbench;
mod process;
mod run;
mod tls;

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use crate::args::Args;

const USAGE: &str = "\
usage: hearth-dev <command> [flags]

commands:
  run     start Postgres, NATS and the referrals service with demo data (Ctrl-C stops)
          --pg-port N (default 55432)  --nats-port N (default 54222)  --grpc-port N (default 50051)
          --mtls: mutual TLS with a development CA made for the run (.hearth/tls/), and
                  health in plaintext on --health-port N (default 50151)
  token   print a bearer token signed with .hearth/keys/dev.pem
          --org ORG  --roles r1,r2  [--sub SUBJECT]  [--hours N (default 12)]
          roles: referrer, triage, practitioner, coordinator, analyst, admin, dpo
  bench   load-test CreateReferral (against pgbench) and GetReferral, with the audit log on and off, on private servers
          [--seconds N (default 10)]  [--concurrency 1,4,16,32,64,128]
  help    show this text";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(raw) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hearth-dev: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(raw: Vec<String>) -> Result<()> {
    let Some((command, rest)) = raw.split_first() else {
        println!("{USAGE}");
        return Ok(());
    };
    // `hearth-dev token --help` and the like: the usage, which covers every command.
    if rest.iter().any(|w| w == "--help" || w == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    match command.as_str() {
        "run" => {
            let args = Args::parse_with_switches(
                rest,
                &["pg-port", "nats-port", "grpc-port", "health-port"],
                &["mtls"],
            )?;
            if args.get("health-port").is_some() && !args.on("mtls") {
                bail!("--health-port is for --mtls (without it, health is on the gRPC port)");
            }
            let opts = run::RunOptions {
                pg_port: args.port("pg-port", 55432)?,
                nats_port: args.port("nats-port", 54222)?,
                grpc_port: args.port("grpc-port", 50051)?,
                mtls: args.on("mtls"),
                health_port: args.port("health-port", 50151)?,
            };
            runtime()?.block_on(run::run(opts))
        }
        "token" => {
            let args = Args::parse(rest, &["org", "roles", "sub", "hours"])?;
            keys::token_command(&args)
        }
        "bench" => {
            let args = Args::parse(rest, &["seconds", "concurrency"])?;
            let seconds = args.number("seconds", bench::DEFAULT_SECONDS)?;
            if seconds == 0 {
                bail!("--seconds must be at least 1");
            }
            let opts = bench::BenchOptions {
                seconds,
                concurrency: args.number_list("concurrency", &bench::DEFAULT_CONCURRENCY)?,
            };
            runtime()?.block_on(bench::bench(opts))
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
