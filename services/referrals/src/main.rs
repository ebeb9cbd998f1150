//! `referrals` — the binary: wires configuration and telemetry, then runs the service.
//!
//! ```text
//! referrals                        serve (the default)
//! referrals migrate                apply migrations and exit
//! referrals republish --from SEQ   mark outbox events from sequence SEQ for re-publishing
//! ```

use anyhow::Context as _;
use hearth_platform::config::{Env, ServiceConfig};
use hearth_platform::{db, outbox, server, telemetry};
use referrals::{DEFAULT_PORT, MIGRATOR, store};
use tokio_util::sync::CancellationToken;

// glibc's allocator cost the service a measurable share of its CPU under load (see
// docs/BENCHMARKS.md); `hearth-dev bench`, which hosts the service, uses the same.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let telemetry = telemetry::init("referrals");
    let cfg = ServiceConfig::from_env(&Env::process(), DEFAULT_PORT).context("configuration")?;
    let result = match args.first().map(String::as_str) {
        None | Some("serve") => serve(cfg).await,
        Some("migrate") => {
            let pool = db::connect(
                &cfg.database_url,
                store::SCHEMA,
                2,
                std::time::Duration::from_secs(30),
            )
            .await?;
            db::migrate(&pool, store::SCHEMA, &MIGRATOR).await?;
            println!("migrations applied");
            Ok(())
        }
        Some("republish") => {
            let from: i64 = match args.get(1..3) {
                Some([flag, n]) if flag == "--from" => n
                    .parse()
                    .context("--from takes an outbox sequence number")?,
                _ => anyhow::bail!("usage: referrals republish --from SEQ"),
            };
            let pool = db::connect(
                &cfg.database_url,
                store::SCHEMA,
                2,
                std::time::Duration::from_secs(30),
            )
            .await?;
            let n = outbox::republish_from(&pool, store::SCHEMA, from).await?;
            println!("{n} events from sequence {from} will be published again");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; use serve, migrate or republish"),
    };
    telemetry.shutdown();
    result
}

async fn serve(cfg: ServiceConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.grpc_addr)
        .await
        .with_context(|| format!("binding {}", cfg.grpc_addr))?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    referrals::run(cfg, listener, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
