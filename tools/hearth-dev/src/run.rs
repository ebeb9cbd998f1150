//! `hearth-dev run`: the local stack behind `make run`. Owns the lifecycle of the
//! private Postgres and NATS servers (through the testkit) and of the `referrals`
//! child process: start in order, wait for health, load the demo, print the banner,
//! and on Ctrl-C or SIGTERM stop everything in reverse order, leaving nothing running.
//! Plaintext on loopback by default; with `--mtls`, referrals requires TLS with client
//! certificates from a development CA made for the run (`tls.rs`), and serves health
//! in plaintext on `--health-port`.

use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use hearth_testkit::{NatsOptions, NatsServer, PgOptions, PgServer};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::demo::{self, Tokens};
use crate::paths::Layout;
use crate::process::Ending;
use crate::tls::DevTls;
use crate::{banner, grpc, keys, process};

/// Ports for the local stack (`--pg-port`, `--nats-port`, `--grpc-port`), and mutual
/// TLS (`--mtls`, with health on `--health-port`).
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub pg_port: u16,
    pub nats_port: u16,
    pub grpc_port: u16,
    pub mtls: bool,
    pub health_port: u16,
}

const DATABASE: &str = "hearth";
/// The tool's own bookkeeping (the demo's anchor time and created names).
const DEV_DATABASE: &str = "hearth_dev";
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
const CHILD_GRACE: Duration = Duration::from_secs(15);
const NATS_GONE_GRACE: Duration = Duration::from_secs(2);

/// What is running, so that shutdown stops exactly that, in reverse order.
#[derive(Default)]
struct Stack {
    pg: Option<PgServer>,
    nats: Option<NatsServer>,
    referrals: Option<Child>,
}

impl Stack {
    async fn stop(&mut self) {
        if let Some(mut child) = self.referrals.take() {
            // When a terminal's Ctrl-C has stopped NATS too (see GroupDetour), the
            // service's shutdown waits for NATS that will not come back; its unpublished
            // events are safe in the outbox, so a short wait is enough.
            let nats = self.nats.as_ref();
            let nats_gone = || nats.is_some_and(|n| !n.is_running());
            match process::terminate(&mut child, CHILD_GRACE, NATS_GONE_GRACE, nats_gone).await {
                Ok(Ending::Exited) => {}
                Ok(Ending::Killed { after, cut_short }) => eprintln!(
                    "referrals did not stop within {}s and was killed{}",
                    after.as_secs(),
                    if cut_short {
                        " (NATS had stopped first, and the service waits for it on shutdown; \
                         unpublished events stay in its outbox)"
                    } else {
                        ""
                    }
                ),
                Err(e) => eprintln!("referrals: {e:#}"),
            }
        }
        let nats = self.nats.take();
        let pg = self.pg.take();
        // Both stop by signalling and waiting (up to 10s each): blocking work.
        let stopped = tokio::task::spawn_blocking(move || {
            if let Some(mut nats) = nats {
                nats.stop();
            }
            if let Some(mut pg) = pg {
                pg.stop();
            }
        })
        .await;
        if stopped.is_err() {
            eprintln!("warning: stopping NATS and Postgres panicked; check with `ps`");
        }
    }
}

/// Runs the stack until Ctrl-C or SIGTERM.
pub async fn run(opts: RunOptions) -> Result<()> {
    let layout = Layout::discover()?;
    check_ports(&opts)?;
    let referrals_bin = referrals_binary()?;
    layout.create_dirs()?;

    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone())?;
    let mut stack = Stack::default();
    let result = start_and_serve(&layout, opts, &referrals_bin, &mut stack, &shutdown).await;
    if shutdown.is_cancelled() || result.is_err() {
        println!("stopping…");
    }
    stack.stop().await;
    println!("stopped");
    match result {
        // Ctrl-C during start-up makes the servers exit under us; that is no error.
        Err(e) if shutdown.is_cancelled() => {
            eprintln!("(interrupted during start-up: {e:#})");
            Ok(())
        }
        other => other,
    }
}

async fn start_and_serve(
    layout: &Layout,
    opts: RunOptions,
    referrals_bin: &Path,
    stack: &mut Stack,
    shutdown: &CancellationToken,
) -> Result<()> {
    if keys::ensure_dev_keys(layout)? {
        println!(
            "created the dev signing key {}",
            layout.relative(&layout.private_key)
        );
    }
    let tls = if opts.mtls {
        let tls = DevTls::generate(layout)?;
        println!(
            "created a development CA and certificates in {}/",
            layout.relative(&tls.dir)
        );
        Some(Arc::new(tls))
    } else {
        None
    };
    let (pg_dir, note) = layout.pg_dir()?;
    if let Some(note) = note {
        println!("{note}");
    }

    // Postgres and NATS start in a process group of their own, so a terminal's
    // Ctrl-C does not stop them before the service that uses them.
    let detour = process::GroupDetour::enter();
    println!("starting Postgres on 127.0.0.1:{}…", opts.pg_port);
    let pg_opts = PgOptions {
        data_dir: Some(pg_dir.clone()),
        port: Some(opts.pg_port),
        durable: true,
    };
    let pg = tokio::task::spawn_blocking(move || PgServer::start(pg_opts))
        .await
        .context("starting Postgres panicked")?
        .context("cannot start Postgres")?;
    let pg = stack.pg.insert(pg);
    let database_url = pg.create_database(DATABASE).await?;
    // The service migrates as its schema's owner and serves as a role that may only
    // append to its audit log.
    let roles = pg.service_roles(DATABASE, "referrals").await?;
    let dev_url = pg.create_database(DEV_DATABASE).await?;
    if shutdown.is_cancelled() {
        return Ok(());
    }

    println!("starting NATS on 127.0.0.1:{}…", opts.nats_port);
    let nats_opts = NatsOptions {
        data_dir: Some(layout.nats_dir.clone()),
        port: Some(opts.nats_port),
        ..NatsOptions::default()
    };
    let nats = tokio::task::spawn_blocking(move || NatsServer::start(nats_opts))
        .await
        .context("starting NATS panicked")?
        .context("cannot start NATS")?;
    let nats_url = stack.nats.insert(nats).url();
    drop(detour);
    if shutdown.is_cancelled() {
        return Ok(());
    }

    println!("starting referrals on 127.0.0.1:{}…", opts.grpc_port);
    let log_offset = log_len(&layout.referrals_log);
    let child = spawn_referrals(
        referrals_bin,
        layout,
        opts,
        tls.as_deref(),
        &roles,
        &keys::dev_seal_key(layout)?,
        &nats_url,
    )?;
    let child = stack.referrals.insert(child);
    let log = &layout.referrals_log;
    // With mTLS, health is asked where probes ask it: the plaintext health port.
    let health_port = if opts.mtls {
        opts.health_port
    } else {
        opts.grpc_port
    };
    let healthy =
        grpc::wait_serving(
            health_port,
            grpc::REFERRALS_SERVICE,
            HEALTH_TIMEOUT,
            || match child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(anyhow!("referrals exited ({status}) while starting")),
                Err(e) => Err(anyhow!("cannot check on referrals: {e}")),
            },
        );
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        done = healthy => done.map_err(|e| anyhow!("{e:#}\n{}", log_tail(log, log_offset)))?,
    }

    let issuer = keys::issuer(layout)?;
    let tokens = Tokens::mint(&issuer, keys::DEFAULT_TTL);
    println!("loading the demo area…");
    let facts = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        facts = async {
            let service = grpc::Connector::new(opts.grpc_port, tls.clone()).await?;
            demo::load(&service, &tokens, &dev_url).await
        } => {
            facts.context("cannot load the demo area")?
        }
    };

    let view = banner::View {
        layout,
        opts,
        pg_dir: &pg_dir,
        database_url: &database_url,
        serving_url: &roles.1,
        nats_url: &nats_url,
        facts: &facts,
        tokens: &tokens,
        tls: tls.as_deref(),
        hearth_dev: std::env::current_exe().ok(),
    };
    banner::write_dev_env(&view)?;
    println!("{}", banner::render(&view)?);

    // Serve until asked to stop; a crashed service ends the run with its log.
    let child = stack
        .referrals
        .as_mut()
        .ok_or_else(|| anyhow!("referrals is not running"))?;
    tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        status = child.wait() => {
            let status = status.context("cannot wait for referrals")?;
            bail!("referrals exited unexpectedly ({status})\n{}", log_tail(log, log_offset))
        }
    }
}

/// Fails, naming the flag to change, if a port is taken (or given twice).
fn check_ports(opts: &RunOptions) -> Result<()> {
    let mut ports = vec![
        (opts.pg_port, "Postgres", "--pg-port"),
        (opts.nats_port, "NATS", "--nats-port"),
        (opts.grpc_port, "the referrals gRPC server", "--grpc-port"),
    ];
    if opts.mtls {
        ports.push((
            opts.health_port,
            "the plaintext health port",
            "--health-port",
        ));
    }
    for (i, (port, what, flag)) in ports.iter().enumerate() {
        if let Some((_, other, other_flag)) = ports[..i].iter().find(|(p, ..)| p == port) {
            bail!(
                "{flag} and {other_flag} are both {port}; {what} and {other} need different ports"
            );
        }
        if let Err(e) = TcpListener::bind((Ipv4Addr::LOCALHOST, *port)) {
            bail!(
                "port {port} (for {what}) is not free: {e}. Is another `make run` still \
                 running? Otherwise pick another port: make run ARGS='{flag} {}'",
                port.saturating_add(1)
            );
        }
    }
    Ok(())
}

/// The `referrals` binary built next to this one.
fn referrals_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find where hearth-dev runs from")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", exe.display()))?;
    let bin = dir.join("referrals");
    if !bin.is_file() {
        bail!(
            "the referrals service is not built: {} is missing. Build it with \
             `cargo build -p referrals` (same profile and CARGO_TARGET_DIR as hearth-dev), \
             or use `make run`, which builds both",
            bin.display()
        );
    }
    Ok(bin)
}

fn spawn_referrals(
    bin: &Path,
    layout: &Layout,
    opts: RunOptions,
    tls: Option<&DevTls>,
    (owner_url, app_url): &(String, String),
    seal_key: &str,
    nats_url: &str,
) -> Result<Child> {
    let log_path = &layout.referrals_log;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    writeln!(
        log,
        "--- hearth-dev run: starting referrals at {} ---",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )?;
    let log_err = log.try_clone()?;
    let mut cmd = Command::new(bin);
    cmd.env("HEARTH_GRPC_ADDR", format!("127.0.0.1:{}", opts.grpc_port))
        .env("HEARTH_DATABASE_URL", app_url)
        .env("HEARTH_DATABASE_OWNER_URL", owner_url)
        .env("HEARTH_AUDIT_SEAL_KEY", seal_key)
        .env("HEARTH_NATS_URL", nats_url)
        .env("HEARTH_AUTH_ISSUER", keys::ISSUER)
        .env("HEARTH_AUTH_AUDIENCE", keys::AUDIENCE)
        .env("HEARTH_AUTH_PUBLIC_KEYS", &layout.public_key)
        .env("HEARTH_SHUTDOWN_DRAIN_MS", "0")
        .env("HEARTH_PAGE_TOKEN_SECRET", keys::random_secret())
        // A log file, not a terminal: no colour codes.
        .env("NO_COLOR", "1")
        .envs(tls.iter().flat_map(|tls| {
            [
                (hearth_platform::tls::CERT_VAR, tls.server_cert.clone()),
                (hearth_platform::tls::KEY_VAR, tls.server_key.clone()),
                (hearth_platform::tls::CLIENT_CA_VAR, tls.ca.clone()),
                (
                    hearth_platform::tls::HEALTH_ADDR_VAR,
                    format!("127.0.0.1:{}", opts.health_port).into(),
                ),
            ]
        }))
        .current_dir(&layout.root)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    process::spawn_guarded(&mut cmd).with_context(|| format!("cannot run {}", bin.display()))
}

/// Cancels `token` on the first Ctrl-C (SIGINT) or SIGTERM.
fn watch_signals(token: CancellationToken) -> Result<()> {
    // Registered now, so a signal from here on is ours to handle, not fatal.
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        token.cancel();
    });
    Ok(())
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The last lines written to `path` since `offset`, for error messages.
fn log_tail(path: &Path, offset: u64) -> String {
    const LINES: usize = 25;
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(())
    });
    if read.is_err() || text.trim().is_empty() {
        return format!("({} has nothing from this run)", path.display());
    }
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "last lines of {}:\n{}",
        path.display(),
        lines[lines.len().saturating_sub(LINES)..].join("\n")
    )
}
