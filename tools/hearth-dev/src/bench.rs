//! `hearth-dev bench` (behind `make bench`): how fast the referrals service takes
//! referrals, against what the same Postgres can do raw.
//!
//! Starts a private durable Postgres (fsync on) and NATS, runs the referrals service
//! in this process, then per concurrency level runs a closed loop of CreateReferral
//! calls and `pgbench` inserting the same rows by hand, the two taking turns; then an
//! open loop at half the best rate, timing the events' arrival on NATS. Prints a
//! Markdown report with PASS or MISS against the targets. Load generation lives in `load`, the baseline in
//! `pgbench`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use hearth_platform::Role;
use hearth_platform::auth::{KeyPair, TokenIssuer};
use hearth_platform::config::{self, Env, ServiceConfig};
use hearth_platform::service;
use hearth_testkit::{NatsOptions, NatsServer, PgOptions, PgServer};
use referrals::{Referrals, ReferralsSettings};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::load::{self, Call, Families, Stats};
use crate::pgbench::{self, RawResult, Script};
use crate::{grpc, keys};

/// What to run (`--seconds`, `--concurrency`).
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub seconds: u64,
    pub concurrency: Vec<usize>,
}

pub const DEFAULT_SECONDS: u64 = 10;
/// The levels `make bench` runs (group commit still gains at 128).
pub const DEFAULT_CONCURRENCY: [usize; 6] = [1, 4, 16, 32, 64, 128];
const WARMUP: Duration = Duration::from_secs(2);
/// Turns the service and pgbench take at each concurrency level.
const SLICES: u64 = 2;
/// Warm-up before each later slice of the service's turn.
const SLICE_WARMUP: Duration = Duration::from_millis(500);
/// `HEARTH_DATABASE_MAX_CONNECTIONS` for the service under test.
const POOL_SIZE: u32 = 32;
/// HTTP/2 connections the callers share.
const CHANNELS: usize = 4;
const RECEIVED_SUBJECT: &str = hearth_proto::events::referrals::REFERRAL_RECEIVED.subject;
/// How long to wait for the relay to publish everything written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

// The targets.
const MIN_RATIO: f64 = 0.5;
const MAX_P99_MS: f64 = 20.0;
const MAX_LAG_P99_MS: f64 = 100.0;

/// One concurrency level's figures.
struct Level {
    concurrency: usize,
    service: Stats,
    /// The machine's CPU over the service's turns.
    cpu: Option<CpuUse>,
    /// From the end of the run until the relay had published every event.
    catch_up: Duration,
    /// pgbench, one referral per transaction.
    raw: RawResult,
    /// pgbench, the intake's largest batch per transaction.
    batched: RawResult,
}

/// The half-load run.
struct HalfLoad {
    rate: f64,
    stats: Stats,
    /// Commit-to-NATS lag per event, microseconds.
    lag: hdrhistogram::Histogram<u64>,
    expected_events: u64,
    /// The whole machine's CPU over the open loop; `None` without `/proc/stat`.
    cpu: Option<CpuUse>,
}

/// The machine's CPU time, from the first line of `/proc/stat` (all CPUs, in ticks).
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    busy: u64,
    steal: u64,
    total: u64,
}

impl CpuTicks {
    const ZERO: CpuTicks = CpuTicks {
        busy: 0,
        steal: 0,
        total: 0,
    };

    fn now() -> Option<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let [user, nice, system, idle, iowait, irq, softirq, steal] = *fields.get(..8)? else {
            return None;
        };
        Some(CpuTicks {
            busy: user + nice + system + irq + softirq,
            steal,
            total: user + nice + system + idle + iowait + irq + softirq + steal,
        })
    }

    /// These ticks plus those between two readings: a tally over several turns.
    fn plus(self, (from, to): (CpuTicks, CpuTicks)) -> CpuTicks {
        CpuTicks {
            busy: self.busy + to.busy.saturating_sub(from.busy),
            steal: self.steal + to.steal.saturating_sub(from.steal),
            total: self.total + to.total.saturating_sub(from.total),
        }
    }
}

/// What the machine's CPUs did over a run.
#[derive(Debug, Clone, Copy)]
struct CpuUse {
    /// Share of all CPUs' time spent running anything (this process, Postgres, NATS,
    /// anything else on the machine).
    busy: f64,
    /// Share taken by the hypervisor for other guests: time this VM wanted and did not
    /// get.
    steal: f64,
    /// Busy CPU time per call, milliseconds (everything on the machine, divided by the
    /// calls made).
    ms_per_call: f64,
}

impl CpuUse {
    fn between(a: CpuTicks, b: CpuTicks, calls: u64) -> Option<CpuUse> {
        let total = b.total.checked_sub(a.total).filter(|t| *t > 0)? as f64;
        let busy = b.busy.saturating_sub(a.busy) as f64;
        // /proc/stat counts in USER_HZ ticks, 100 per second on Linux.
        Some(CpuUse {
            busy: busy / total,
            steal: b.steal.saturating_sub(a.steal) as f64 / total,
            ms_per_call: busy * 10.0 / calls.max(1) as f64,
        })
    }
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("hearth-dev-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn bench(opts: BenchOptions) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "bench: warning: this is a debug build; use `make bench` (release) for figures \
             worth writing down"
        );
    }
    let scratch = Scratch::new()?;
    eprintln!("bench: starting a private Postgres (fsync on) and NATS…");
    let pg = tokio::task::spawn_blocking(|| {
        PgServer::start(PgOptions {
            durable: true,
            ..PgOptions::default()
        })
    })
    .await
    .context("starting Postgres panicked")?
    .context("cannot start Postgres")?;
    let nats = tokio::task::spawn_blocking(|| NatsServer::start(NatsOptions::default()))
        .await
        .context("starting NATS panicked")?
        .context("cannot start NATS")?;

    let result = with_servers(&opts, &pg, &nats, scratch.path()).await;
    tokio::task::spawn_blocking(move || {
        drop(nats);
        drop(pg);
    })
    .await
    .ok();
    print!("{}", result?);
    Ok(())
}

async fn with_servers(
    opts: &BenchOptions,
    pg: &PgServer,
    nats: &NatsServer,
    scratch: &Path,
) -> Result<String> {
    let service_url = pg.create_database("bench_service").await?;
    let baseline = pgbench::prepare(pg, scratch).await?;

    let pair = KeyPair::generate();
    let public_key = scratch.join("bench.pub.pem");
    keys::write_file(&public_key, &pair.public_pem, 0o644)?;
    let issuer =
        TokenIssuer::from_private_pem("bench", &pair.private_pem, keys::ISSUER, keys::AUDIENCE)
            .context("cannot use the generated key")?;
    let token = issuer.mint(
        "bench-health-visitor",
        "nhs-lothian",
        &[Role::Referrer],
        Duration::from_secs(6 * 3600),
    );
    let auth = grpc::bearer(&token)?;

    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("cannot bind a port for the service")?;
    let addr = listener.local_addr()?;
    let roles = pg.service_roles("bench_service", "referrals").await?;
    let (cfg, settings) = service_config(addr, &roles, &nats.url(), public_key)?;
    let stop = CancellationToken::new();
    let service = tokio::spawn(service::run::<Referrals>(
        cfg,
        settings,
        listener,
        stop.clone(),
    ));
    let healthy = grpc::wait_serving(
        addr.port(),
        grpc::REFERRALS_SERVICE,
        Duration::from_secs(60),
        || {
            if service.is_finished() {
                bail!("the in-process referrals service stopped while starting");
            }
            Ok(())
        },
    )
    .await;

    let measured = match healthy {
        Ok(()) => measure(opts, addr.port(), &auth, &service_url, nats, &baseline).await,
        Err(e) => Err(e),
    };
    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(30), service).await;
    let service_error = match stopped {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(e))) => Some(format!("the referrals service failed: {e}")),
        Ok(Err(e)) => Some(format!("the referrals service panicked: {e}")),
        Err(_) => Some("the referrals service did not stop within 30s".into()),
    };
    match (measured, service_error) {
        (Ok(report), None) => Ok(report),
        (Ok(_), Some(e)) => Err(anyhow!(e)),
        (Err(e), Some(why)) => Err(e.context(why)),
        (Err(e), None) => Err(e),
    }
}

/// The service's configuration, as an operator would set it.
fn service_config(
    addr: SocketAddr,
    (owner_url, app_url): &(String, String),
    nats_url: &str,
    public_key: PathBuf,
) -> Result<(ServiceConfig, ReferralsSettings)> {
    let vars: Vec<(&str, String)> = vec![
        ("HEARTH_GRPC_ADDR", addr.to_string()),
        ("HEARTH_DATABASE_URL", app_url.to_owned()),
        ("HEARTH_DATABASE_OWNER_URL", owner_url.to_owned()),
        ("HEARTH_AUDIT_SEAL_KEY", keys::random_secret()),
        ("HEARTH_DATABASE_MAX_CONNECTIONS", POOL_SIZE.to_string()),
        ("HEARTH_NATS_URL", nats_url.to_owned()),
        ("HEARTH_AUTH_ISSUER", keys::ISSUER.into()),
        ("HEARTH_AUTH_AUDIENCE", keys::AUDIENCE.into()),
        ("HEARTH_AUTH_PUBLIC_KEYS", public_key.display().to_string()),
        ("HEARTH_PAGE_TOKEN_SECRET", keys::random_secret()),
        ("HEARTH_REQUEST_TIMEOUT_MS", "30000".into()),
        // No shedding: the closed loop never has more than C calls in flight.
        ("HEARTH_MAX_CONCURRENT_REQUESTS", "100000".into()),
        // No log output but errors: the bench prints a report.
        ("RUST_LOG", "error".into()),
    ];
    config::load::<ReferralsSettings, _>(
        &Env::from_fn(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())),
        0,
    )
    .context("the bench's service configuration")
}

async fn measure(
    opts: &BenchOptions,
    port: u16,
    auth: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    service_url: &str,
    nats: &NatsServer,
    baseline: &pgbench::Baseline,
) -> Result<String> {
    let window = Duration::from_secs(opts.seconds);
    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        clients.push(grpc::Client::new(grpc::connect(port).await?));
    }
    let observer = PgPoolOptions::new()
        .max_connections(2)
        .connect(service_url)
        .await
        .context("cannot connect to the service's database")?;
    let families = Families::default();
    let create = Call::Create(families.clone());

    // The service and pgbench take turns in slices, so that both meet the same
    // moments of a shared machine: measured one after the other, the ratio moved by
    // ±10 points between runs of the same code.
    let (slices, slice_seconds) = slicing(opts);
    let slice = Duration::from_secs(slice_seconds);
    let mut levels = Vec::new();
    for &c in &opts.concurrency {
        let mut service: Option<Stats> = None;
        let (mut raw_runs, mut batched_runs) = (Vec::new(), Vec::new());
        let mut catch_up = Duration::ZERO;
        let mut cpu_ticks = Some(CpuTicks::ZERO);
        for i in 0..slices {
            drain_outbox(&observer).await?;
            checkpoint(&observer).await?;
            eprintln!(
                "bench: {c} callers, slice {}/{slices}: CreateReferral for {slice_seconds}s…",
                i + 1
            );
            let warmup = if i == 0 { WARMUP } else { SLICE_WARMUP };
            let (part, ticks) =
                load::closed_loop(&clients, auth, &create, c, warmup, slice, CpuTicks::now).await?;
            cpu_ticks = cpu_ticks.zip(ticks).map(|(sum, t)| sum.plus(t));
            match &mut service {
                None => service = Some(part),
                Some(total) => total.append(&part)?,
            }
            catch_up = catch_up.max(drain_outbox(&observer).await?);
            checkpoint(&observer).await?;
            for (script, runs) in [
                (Script::Single, &mut raw_runs),
                (Script::Batched, &mut batched_runs),
            ] {
                eprintln!(
                    "bench: {c} callers, slice {}/{slices}: pgbench ({})…",
                    i + 1,
                    baseline.command_line(script, c, slice_seconds)
                );
                runs.push(baseline.run(script, c, slice_seconds).await?);
                checkpoint(&observer).await?;
            }
        }
        let service = service.expect("at least one slice");
        let raw = RawResult::mean(&raw_runs);
        let batched = RawResult::mean(&batched_runs);
        let cpu = cpu_ticks.and_then(|sum| {
            CpuUse::between(CpuTicks::ZERO, sum, service.latency.len() + service.errors)
        });
        eprintln!(
            "bench: {c} callers: service {:.0} req/s (p99 {:.1} ms, {} errors), raw {:.0} tps, \
             batched {:.0} rows/s",
            service.rate(),
            service.ms(0.99),
            service.errors,
            raw.tps,
            batched.rows_per_second()
        );
        levels.push(Level {
            concurrency: c,
            service,
            cpu,
            catch_up,
            raw,
            batched,
        });
    }
    let best = levels
        .iter()
        .map(|l| l.service.rate())
        .fold(0.0_f64, f64::max);
    if best <= 0.0 {
        let why = levels
            .iter()
            .find_map(|l| l.service.first_error.clone())
            .unwrap_or_else(|| "no call succeeded".into());
        bail!("the service completed no calls: {why}");
    }

    drain_outbox(&observer).await?;
    checkpoint(&observer).await?;
    let rate = best * 0.5;
    eprintln!(
        "bench: half load: {rate:.0} req/s for {}s, timing events on NATS…",
        opts.seconds
    );
    let half = half_load(&clients, auth, &create, rate, window, &nats.url()).await?;

    let pg_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&observer)
        .await
        .unwrap_or_else(|_| "?".into());
    observer.close().await;
    let nats_version = nats_version(&nats.url()).await;
    Ok(report(opts, &levels, &half, &pg_version, &nats_version))
}

/// How many turns each side takes at a level, and how long each lasts (seconds).
fn slicing(opts: &BenchOptions) -> (u64, u64) {
    let slices = SLICES.min(opts.seconds.max(1));
    (slices, (opts.seconds / slices).max(1))
}

/// Starts a turn from a fresh checkpoint. Postgres checkpoints after about half of
/// `max_wal_size` (1 GB) of WAL, and a checkpoint's writes stall commits for ~100 ms
/// (measured: half-load p99 of 65–97 ms in the runs one fell inside); fresh, no
/// turn pays for a checkpoint that the other side's writes made due.
async fn checkpoint(pool: &PgPool) -> Result<()> {
    sqlx::query("CHECKPOINT")
        .execute(pool)
        .await
        .context("cannot run CHECKPOINT")?;
    Ok(())
}

/// Waits until the relay has published every outbox row; returns how long that took.
async fn drain_outbox(pool: &PgPool) -> Result<Duration> {
    let start = tokio::time::Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.outbox_pending")
            .fetch_one(pool)
            .await
            .context("cannot count unpublished events")?;
        if waiting == 0 {
            return Ok(start.elapsed());
        }
        if start.elapsed() > DRAIN_TIMEOUT {
            bail!(
                "{waiting} events were still unpublished after {}s: the outbox relay is stuck",
                DRAIN_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn half_load(
    clients: &[grpc::Client],
    auth: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    create: &Call,
    rate: f64,
    window: Duration,
    nats_url: &str,
) -> Result<HalfLoad> {
    let nats = async_nats::connect(nats_url)
        .await
        .with_context(|| format!("cannot connect to {nats_url}"))?;
    let mut sub = nats.subscribe(RECEIVED_SUBJECT).await?;
    nats.flush().await?;
    // The subscription only timestamps and forwards; the unbounded channel keeps it
    // from ever becoming a slow consumer.
    let (tx, mut rx) = mpsc::unbounded_channel::<(DateTime<Utc>, Option<DateTime<Utc>>)>();
    let collector = tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let received = Utc::now();
            let time = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("ce-time"))
                .and_then(|v| DateTime::parse_from_rfc3339(v.as_str()).ok())
                .map(|t| t.with_timezone(&Utc));
            if tx.send((received, time)).is_err() {
                break;
            }
        }
    });

    let since = Utc::now();
    let (stats, ticks) = load::paced(
        clients,
        auth,
        create,
        rate,
        Duration::ZERO,
        window,
        CpuTicks::now,
    )
    .await?;
    let cpu = ticks.and_then(|(a, b)| CpuUse::between(a, b, stats.latency.len() + stats.errors));
    let expected = stats.latency.len();
    let mut lag = load::histogram()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lag.len() < expected {
        let Ok(Some((received, time))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        let Some(time) = time else { continue };
        if time < since {
            continue;
        }
        let us = (received - time).num_microseconds().unwrap_or(i64::MAX);
        lag.saturating_record(u64::try_from(us).unwrap_or(0).max(1));
    }
    collector.abort();
    Ok(HalfLoad {
        rate,
        stats,
        lag,
        expected_events: expected,
        cpu,
    })
}

async fn nats_version(url: &str) -> String {
    match async_nats::connect(url).await {
        Ok(client) => client.server_info().version,
        Err(_) => "?".into(),
    }
}

/// nproc, CPU model, memory and kernel, from /proc.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB RAM, Linux {}",
        mem_kib / (1024.0 * 1024.0),
        kernel.trim()
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn report(
    opts: &BenchOptions,
    levels: &[Level],
    half: &HalfLoad,
    pg_version: &str,
    nats_version: &str,
) -> String {
    let list: Vec<String> = opts.concurrency.iter().map(usize::to_string).collect();
    let list = list.join(",");
    let invocation = format!(
        "hearth-dev bench --seconds {} --concurrency {list}",
        opts.seconds
    );
    let command = if opts.seconds == DEFAULT_SECONDS && opts.concurrency == DEFAULT_CONCURRENCY {
        "make bench".to_owned()
    } else {
        format!(
            "make bench ARGS='--seconds {} --concurrency {list}'",
            opts.seconds
        )
    };
    let mut w = String::new();
    let now = Utc::now();
    let _ = writeln!(
        w,
        "## CreateReferral under load, {}\n",
        now.format("%Y-%m-%d")
    );
    let _ = writeln!(
        w,
        "- Command: `{command}` (runs `{invocation}`{}), at {}.",
        if cfg!(debug_assertions) {
            ", DEBUG build"
        } else {
            ", release build"
        },
        now.format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(w, "- Machine: {}.", machine());
    let _ = writeln!(
        w,
        "- Servers: PostgreSQL {pg_version} with fsync and synchronous_commit on; \
         nats-server {nats_version} (JetStream, file storage). Both private, on this machine."
    );
    let _ = writeln!(
        w,
        "- Service: referrals in the bench process (database pool {POOL_SIZE}, {} writers \
         taking up to {} creates per transaction, no load shedding, no log output); \
         callers in the same process over {CHANNELS} HTTP/2 connections. Service, \
         callers, Postgres and NATS share the CPUs.",
        referrals::DEFAULT_WRITERS,
        referrals::DEFAULT_WRITE_BATCH_MAX,
    );
    let (slices, slice_seconds) = slicing(opts);
    let _ = writeln!(
        w,
        "- Each call creates a referral for a new family (distinct NHS number; one child, \
         one adult, one consent). At each level the service and pgbench take turns, \
         {slices} of {slice_seconds}s each; the service's first turn has {}s of warm-up \
         and the others {}ms. Every turn, and the half-load run, starts after a \
         `CHECKPOINT`, so that none pays for a checkpoint the other side's writes made \
         due (Postgres's defaults: `max_wal_size` 1 GB, `checkpoint_timeout` 5 min).\n",
        WARMUP.as_secs(),
        SLICE_WARMUP.as_millis()
    );

    let _ = writeln!(
        w,
        "### Closed loop: C callers, each calling again as soon as answered\n"
    );
    let _ = writeln!(
        w,
        "| C | service req/s | p50 ms | p90 ms | p99 ms | max ms | errors | CPU ms/call | \
         relay catch-up s | pgbench 1/tx tps | service / 1/tx | pgbench {}/tx rows/s | \
         service / {}/tx |",
        pgbench::BATCH,
        pgbench::BATCH
    );
    let _ = writeln!(
        w,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for l in levels {
        let s = &l.service;
        let _ = writeln!(
            w,
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {:.1} | {:.0} | {:.0}% | {:.0} | {:.0}% |",
            l.concurrency,
            s.rate(),
            s.ms(0.5),
            s.ms(0.9),
            s.ms(0.99),
            s.max_ms(),
            s.errors,
            l.cpu
                .map_or("?".into(), |c| format!("{:.2}", c.ms_per_call)),
            l.catch_up.as_secs_f64(),
            l.raw.tps,
            100.0 * s.rate() / l.raw.tps.max(f64::MIN_POSITIVE),
            l.batched.rows_per_second(),
            100.0 * s.rate() / l.batched.rows_per_second().max(f64::MIN_POSITIVE)
        );
    }
    let errors: u64 = levels.iter().map(|l| l.service.errors).sum::<u64>() + half.stats.errors;
    if let Some(first) = levels
        .iter()
        .map(|l| &l.service)
        .chain([&half.stats])
        .find_map(|s| s.first_error.as_ref())
    {
        let _ = writeln!(w, "\n{errors} calls failed; the first: `{first}`.");
    }
    let raw_failed: u64 = levels.iter().map(|l| l.raw.failed + l.batched.failed).sum();
    if raw_failed > 0 {
        let _ = writeln!(w, "\npgbench reported {raw_failed} failed transactions.");
    }
    let best_service = levels
        .iter()
        .max_by(|a, b| a.service.rate().total_cmp(&b.service.rate()));
    let best_raw = levels.iter().max_by(|a, b| a.raw.tps.total_cmp(&b.raw.tps));
    let best_batched = levels.iter().max_by(|a, b| {
        a.batched
            .rows_per_second()
            .total_cmp(&b.batched.rows_per_second())
    });
    let (ratio, batched_ratio) = match (best_service, best_raw, best_batched) {
        (Some(s), Some(r), Some(b)) => {
            let ratio = s.service.rate() / r.raw.tps.max(f64::MIN_POSITIVE);
            let batched_ratio =
                s.service.rate() / b.batched.rows_per_second().max(f64::MIN_POSITIVE);
            let _ = writeln!(
                w,
                "\nBest: service {:.0} req/s (C={}, {} ms of CPU per call); raw Postgres \
                 {:.0} referrals/s one per transaction (C={}): service / raw = {:.0}%; \
                 {:.0} referrals/s {} per transaction (C={}): service / batched raw = {:.0}%.",
                s.service.rate(),
                s.concurrency,
                s.cpu
                    .map_or("?".into(), |c| format!("{:.2}", c.ms_per_call)),
                r.raw.tps,
                r.concurrency,
                100.0 * ratio,
                b.batched.rows_per_second(),
                pgbench::BATCH,
                b.concurrency,
                100.0 * batched_ratio
            );
            (ratio, batched_ratio)
        }
        _ => (0.0, 0.0),
    };
    let _ = writeln!(
        w,
        "\npgbench: `pgbench -n -M prepared -c C -j min(C,2) -T {slice_seconds}`, {slices} \
         times per level and script (the mean is shown), each transaction inserting a \
         referral row and a ~1.5 KB outbox row into copies of the service's tables (same \
         migrations, no foreign key), on the same server: once per transaction, and {} \
         times per transaction (the service's intake writes up to {} creates in one). \
         Prepared statements, as the service uses: about a third faster than pgbench's \
         default simple protocol. CPU ms/call is the whole machine's busy CPU time over \
         the service's turns, divided by its calls: the figure that moves least between \
         VMs.\n",
        pgbench::BATCH,
        pgbench::BATCH
    );

    let h = &half.stats;
    let _ = writeln!(
        w,
        "### Half load: open loop at {:.0} req/s (50% of the best service rate)\n",
        half.rate
    );
    let _ = writeln!(
        w,
        "One call started every {:.2} ms for {}s, each in its own task; latency counts from \
         the scheduled start.\n",
        1000.0 / half.rate,
        opts.seconds
    );
    let _ = writeln!(
        w,
        "| calls | errors | achieved req/s | p50 ms | p90 ms | p99 ms | max ms |"
    );
    let _ = writeln!(w, "|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        w,
        "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
        h.latency.len() + h.errors,
        h.errors,
        h.rate(),
        h.ms(0.5),
        h.ms(0.9),
        h.ms(0.99),
        h.max_ms()
    );
    if let Some(cpu) = half.cpu {
        let _ = writeln!(
            w,
            "The machine meanwhile: its CPUs {:.0}% busy (service, callers, Postgres, NATS and \
             anything else), {:.2} ms of CPU per call; {:.1}% of their time stolen by the \
             hypervisor for other guests.\n",
            100.0 * cpu.busy,
            cpu.ms_per_call,
            100.0 * cpu.steal
        );
    }

    let lag = &half.lag;
    let lag_ms = |q: f64| lag.value_at_quantile(q) as f64 / 1000.0;
    let _ = writeln!(w, "### Commit-to-NATS lag during the half-load run\n");
    let _ = writeln!(
        w,
        "A core NATS subscription on `{RECEIVED_SUBJECT}`; lag = time of receipt − the \
         event's `ce-time` (set when the service received the request, before its \
         transaction committed, so this is an upper bound on commit-to-publish).\n"
    );
    let _ = writeln!(w, "| events received | of | p50 ms | p99 ms | max ms |");
    let _ = writeln!(w, "|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        w,
        "| {} | {} | {:.1} | {:.1} | {:.1} |\n",
        lag.len(),
        half.expected_events,
        lag_ms(0.5),
        lag_ms(0.99),
        lag.max() as f64 / 1000.0
    );

    let all_events = lag.len() >= half.expected_events && half.expected_events > 0;
    let _ = writeln!(w, "### Targets\n");
    let _ = writeln!(w, "| target | measured | result |");
    let _ = writeln!(w, "|---|---|---|");
    let _ = writeln!(
        w,
        "| throughput ≥ {:.0}% of raw Postgres (one referral per transaction) | {:.0}% | {} |",
        100.0 * MIN_RATIO,
        100.0 * ratio,
        verdict(ratio >= MIN_RATIO && errors == 0)
    );
    let _ = writeln!(
        w,
        "| (for comparison, no target) against raw Postgres writing {} per transaction | {:.0}% | — |",
        pgbench::BATCH,
        100.0 * batched_ratio
    );
    let _ = writeln!(
        w,
        "| p99 ≤ {MAX_P99_MS:.0} ms at half of max rate | {:.1} ms | {} |",
        h.ms(0.99),
        verdict(h.ms(0.99) <= MAX_P99_MS && h.errors == 0)
    );
    let _ = writeln!(
        w,
        "| commit-to-publish p99 ≤ {MAX_LAG_P99_MS:.0} ms | {:.1} ms{} | {} |",
        lag_ms(0.99),
        if all_events {
            String::new()
        } else {
            format!(
                " ({} of {} events arrived)",
                lag.len(),
                half.expected_events
            )
        },
        verdict(all_events && lag_ms(0.99) <= MAX_LAG_P99_MS)
    );
    if errors > 0 {
        let _ = writeln!(
            w,
            "\nErrors must be 0: {errors} calls failed, so throughput cannot pass."
        );
    }
    w
}
