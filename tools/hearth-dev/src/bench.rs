//! `hearth-dev bench` (behind `make bench`): how fast the referrals service takes
//! referrals, against what the same Postgres can do raw.
//!
//! Starts a private durable Postgres (fsync on) and NATS, runs the referrals service
//! in this process, then per concurrency level runs a closed loop of CreateReferral
//! calls and `pgbench` inserting the same rows by hand, the two taking turns; then an
//! open loop at half the best rate, timing the events' arrival on NATS. Then what the
//! audit log costs (issue 15): a second referrals service, the same but with its audit
//! log off, takes turns with the first at CreateReferral and at GetReferral. Prints a
//! Markdown report with PASS or MISS against the targets. Load generation lives in
//! `load`, the baseline in `pgbench`.

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
use hearth_platform::service::{self, RunOptions};
use hearth_testkit::{NatsOptions, NatsServer, PgOptions, PgServer};
use referrals::{Referrals, ReferralsSettings};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};

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

/// The audited service's database: what production runs.
const AUDITED_DATABASE: &str = "bench_service";
/// The database of the service with its audit log off.
const PLAIN_DATABASE: &str = "bench_service_plain";
/// Turns each service takes in the audit comparison, per load.
const AUDIT_TURNS: u32 = 3;
/// Referrals each service is given to read: more than the callers could keep in
/// flight, few enough to create in seconds.
const READ_SET: usize = 2000;
/// Finding GetReferral's maximum rate stops at the first level that gains less than
/// this on the best so far: the CPUs are full by then.
const MIN_GAIN: f64 = 1.05;

// The targets.
const MIN_RATIO: f64 = 0.5;
const MAX_P99_MS: f64 = 20.0;
const MAX_LAG_P99_MS: f64 = 100.0;
/// CreateReferral with the audit log keeps this share of its throughput without.
const MIN_AUDIT_CREATE_RATIO: f64 = 0.8;
/// GetReferral's p99 with the audit log, at most this many times its p99 without.
const MAX_AUDIT_P99_RATIO: f64 = 1.5;

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

/// One load's figures from the two services.
struct OnOff {
    on: Side,
    off: Side,
}

/// One service's figures over its turns.
struct Side {
    stats: Stats,
    /// The machine's CPU over the turns.
    cpu: Option<CpuUse>,
}

/// What the audit log costs: the audited service against the same service with its
/// audit log off.
struct AuditCost {
    /// Each turn's measured window.
    turn: Duration,
    /// Callers in CreateReferral's closed loop.
    create_concurrency: usize,
    create: OnOff,
    /// GetReferral's closed loop on the service without the audit log, per level
    /// tried, to find its maximum rate.
    read_search: Vec<(usize, Stats)>,
    /// Half that maximum: the open loop's rate.
    read_rate: f64,
    read: OnOff,
    /// GetReferral records in the audited service's log, and the reads it was sent.
    read_records: (i64, u64),
    /// The transactions that wrote those records: the group commits.
    read_commits: i64,
    /// Records of any kind in the other service's log: none, if the switch works.
    plain_records: i64,
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

    // Both are made ready before either starts, so that a failure leaves nothing
    // running. They share NATS: both publish into the referrals stream, with distinct
    // event ids, and both declare the same durable consumers of the assessments and
    // delivery streams, into which nothing here publishes.
    let audited = Prepared::new(
        pg,
        &nats.url(),
        &public_key,
        AUDITED_DATABASE,
        "referrals service",
    )
    .await?;
    let plain = Prepared::new(
        pg,
        &nats.url(),
        &public_key,
        PLAIN_DATABASE,
        "referrals service without its audit log",
    )
    .await?;
    let audited = audited.start(RunOptions::default());
    let plain = plain.start(RunOptions { audit: false });
    let healthy = match audited.wait_serving().await {
        Ok(()) => plain.wait_serving().await,
        Err(e) => Err(e),
    };

    let measured = match healthy {
        Ok(()) => measure(opts, &audited, &plain, &auth, nats, &baseline).await,
        Err(e) => Err(e),
    };
    let failures: Vec<String> = [audited.stop().await, plain.stop().await]
        .into_iter()
        .flatten()
        .collect();
    match (measured, failures.is_empty()) {
        (Ok(report), true) => Ok(report),
        (Ok(_), false) => Err(anyhow!(failures.join("; "))),
        (Err(e), false) => Err(e.context(failures.join("; "))),
        (Err(e), true) => Err(e),
    }
}

/// What starting a referrals service needs: made for both services before either
/// starts.
struct Prepared {
    what: &'static str,
    listener: TcpListener,
    port: u16,
    database_url: String,
    cfg: ServiceConfig,
    settings: ReferralsSettings,
}

impl Prepared {
    /// A database of its own, its owner and serving roles, a port and the
    /// configuration; `what` names it in errors.
    async fn new(
        pg: &PgServer,
        nats_url: &str,
        public_key: &Path,
        database: &str,
        what: &'static str,
    ) -> Result<Prepared> {
        let database_url = pg.create_database(database).await?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot bind a port for the service")?;
        let addr = listener.local_addr()?;
        let roles = pg.service_roles(database, "referrals").await?;
        let (cfg, settings) = service_config(addr, &roles, nats_url, public_key.to_owned())?;
        Ok(Prepared {
            what,
            listener,
            port: addr.port(),
            database_url,
            cfg,
            settings,
        })
    }

    /// Starts the service in this process. `options` is the only way to turn its
    /// audit log off, and only the bench passes it: no configuration reaches it.
    fn start(self, options: RunOptions) -> InProcess {
        let stop = CancellationToken::new();
        let task = tokio::spawn(service::run_with::<Referrals>(
            self.cfg,
            self.settings,
            self.listener,
            stop.clone(),
            options,
        ));
        InProcess {
            what: self.what,
            port: self.port,
            database_url: self.database_url,
            stop,
            task,
        }
    }
}

/// A referrals service running in this process.
struct InProcess {
    what: &'static str,
    port: u16,
    /// Its database as the cluster's superuser, for the bench's own queries.
    database_url: String,
    stop: CancellationToken,
    task: JoinHandle<Result<(), service::BoxError>>,
}

impl InProcess {
    async fn wait_serving(&self) -> Result<()> {
        grpc::wait_serving(
            self.port,
            grpc::REFERRALS_SERVICE,
            Duration::from_secs(60),
            || {
                if self.task.is_finished() {
                    bail!("the in-process {} stopped while starting", self.what);
                }
                Ok(())
            },
        )
        .await
    }

    /// Stops the service; says what went wrong, if anything did.
    async fn stop(self) -> Option<String> {
        self.stop.cancel();
        let what = self.what;
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(format!("the {what} failed: {e}")),
            Ok(Err(e)) => Some(format!("the {what} panicked: {e}")),
            Err(_) => Some(format!("the {what} did not stop within 30s")),
        }
    }
}

/// A service as the bench loads it: the callers' connections, and a pool on its
/// database for draining its outbox, checkpoints and counts.
struct Target {
    clients: Vec<grpc::Client>,
    observer: PgPool,
}

impl Target {
    async fn connect(service: &InProcess) -> Result<Target> {
        let mut clients = Vec::new();
        for _ in 0..CHANNELS {
            clients.push(grpc::Client::new(grpc::connect(service.port).await?));
        }
        let observer = PgPoolOptions::new()
            .max_connections(2)
            .connect(&service.database_url)
            .await
            .with_context(|| format!("cannot connect to the {}'s database", service.what))?;
        Ok(Target { clients, observer })
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
    audited: &InProcess,
    plain: &InProcess,
    auth: &MetadataValue<Ascii>,
    nats: &NatsServer,
    baseline: &pgbench::Baseline,
) -> Result<String> {
    let window = Duration::from_secs(opts.seconds);
    let audited = Target::connect(audited).await?;
    let plain = Target::connect(plain).await?;
    // Everything up to the audit comparison loads the audited service: what
    // production runs, and what earlier reports measured.
    let (clients, observer) = (&audited.clients, &audited.observer);
    // One source of family numbers for both services, so that no family is created
    // twice in either database.
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
            drain_outbox(observer).await?;
            checkpoint(observer).await?;
            eprintln!(
                "bench: {c} callers, slice {}/{slices}: CreateReferral for {slice_seconds}s…",
                i + 1
            );
            let warmup = if i == 0 { WARMUP } else { SLICE_WARMUP };
            let (part, ticks) =
                load::closed_loop(clients, auth, &create, c, warmup, slice, CpuTicks::now).await?;
            cpu_ticks = cpu_ticks.zip(ticks).map(|(sum, t)| sum.plus(t));
            match &mut service {
                None => service = Some(part),
                Some(total) => total.append(&part)?,
            }
            catch_up = catch_up.max(drain_outbox(observer).await?);
            checkpoint(observer).await?;
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
                checkpoint(observer).await?;
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

    drain_outbox(observer).await?;
    checkpoint(observer).await?;
    let rate = best * 0.5;
    eprintln!(
        "bench: half load: {rate:.0} req/s for {}s, timing events on NATS…",
        opts.seconds
    );
    let half = half_load(clients, auth, &create, rate, window, &nats.url()).await?;

    let audit = audit_cost(opts, &levels, auth, &families, &audited, &plain).await?;

    let pg_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(observer)
        .await
        .unwrap_or_else(|_| "?".into());
    audited.observer.close().await;
    plain.observer.close().await;
    let nats_version = nats_version(&nats.url()).await;
    Ok(report(
        opts,
        &levels,
        &half,
        &audit,
        &pg_version,
        &nats_version,
    ))
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

/// Issue 15's comparison: CreateReferral in a closed loop, then GetReferral's
/// maximum rate without the audit log and an open loop at half of it, each load
/// taking turns on the audited service and the one without.
async fn audit_cost(
    opts: &BenchOptions,
    levels: &[Level],
    auth: &MetadataValue<Ascii>,
    families: &Families,
    audited: &Target,
    plain: &Target,
) -> Result<AuditCost> {
    // Short turns, so that the whole comparison adds about a minute and a half at the
    // default ten seconds, and each load still gets `--seconds` per service.
    let turn = Duration::from_secs(opts.seconds) / AUDIT_TURNS;
    // Where the audited service took referrals fastest: the audit's writes are most
    // of a transaction's extra work there, and a lower level would mostly measure
    // round trips.
    let create_concurrency = levels
        .iter()
        .max_by(|a, b| a.service.rate().total_cmp(&b.service.rate()))
        .map_or(1, |l| l.concurrency);
    let create = Call::Create(families.clone());
    let create = take_turns(
        &format!("CreateReferral, {create_concurrency} callers"),
        auth,
        [(audited, &create), (plain, &create)],
        Pace::Closed(create_concurrency),
        turn,
    )
    .await?;

    // Referrals to read, made through each service's API by the bench's health
    // visitor, who may read them as the referrer.
    eprintln!("bench: creating {READ_SET} referrals in each service to read…");
    let read_on = load::seed(
        &audited.clients,
        auth,
        families,
        READ_SET,
        create_concurrency,
    )
    .await?;
    let read_off = load::seed(&plain.clients, auth, families, READ_SET, create_concurrency).await?;
    let read_search = read_search(opts, auth, audited, plain, &read_off, turn).await?;
    let best = read_search
        .iter()
        .map(|(_, s)| s.rate())
        .fold(0.0_f64, f64::max);
    if best <= 0.0 {
        let why = read_search
            .iter()
            .find_map(|(_, s)| s.first_error.clone())
            .unwrap_or_else(|| "no call succeeded".into());
        bail!("GetReferral completed no calls: {why}");
    }
    let read_rate = best * 0.5;
    let (get_on, get_off) = (Call::Get(read_on.clone()), Call::Get(read_off));
    let read = take_turns(
        &format!("GetReferral at {read_rate:.0} req/s"),
        auth,
        [(audited, &get_on), (plain, &get_off)],
        Pace::Open(read_rate),
        turn,
    )
    .await?;

    // Every answered read's record is durable before its answer leaves (the audit
    // fails closed), so the counts can be taken now.
    // Rows one transaction wrote share its `xmin`: the group commits' sizes.
    let (records, read_commits): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT xmin::text) FROM referrals.audit_log WHERE method = $1",
    )
    .bind(format!("/{}/GetReferral", grpc::REFERRALS_SERVICE))
    .fetch_one(&audited.observer)
    .await
    .context("cannot count the audited service's GetReferral records")?;
    let plain_records: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.audit_log")
        .fetch_one(&plain.observer)
        .await
        .context("cannot count the unaudited service's audit records")?;
    Ok(AuditCost {
        turn,
        create_concurrency,
        create,
        read_search,
        read_rate,
        read,
        read_records: (records, read_on.reads_started()),
        read_commits,
        plain_records,
    })
}

/// How a turn loads its service.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// This many callers, each calling again as soon as answered.
    Closed(usize),
    /// Calls started at this rate, per second.
    Open(f64),
}

/// Runs each target's call in turns of `turn`, [`AUDIT_TURNS`] each, in the order
/// on, off, off, on, on, off: so both meet the same moments of a shared machine, and
/// what drifts over the run (tables growing) falls on both alike. The databases are
/// [`settle`]d first; each turn starts with both outboxes drained and a `CHECKPOINT`,
/// as the main run's do.
async fn take_turns(
    what: &str,
    auth: &MetadataValue<Ascii>,
    [audited, plain]: [(&Target, &Call); 2],
    pace: Pace,
    turn: Duration,
) -> Result<OnOff> {
    settle(audited.0, plain.0).await?;
    let sides = [(audited, "on"), (plain, "off")];
    let mut stats: [Option<Stats>; 2] = [None, None];
    let mut ticks = [Some(CpuTicks::ZERO); 2];
    for i in 0..AUDIT_TURNS {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let ((target, call), audit) = sides[side];
            drain_outbox(&audited.0.observer).await?;
            drain_outbox(&plain.0.observer).await?;
            checkpoint(&target.observer).await?;
            eprintln!(
                "bench: audit {audit}, turn {}/{AUDIT_TURNS}: {what} for {:.1}s…",
                i + 1,
                turn.as_secs_f64()
            );
            // Each service's first turn warms it up for the load it is about to get.
            let warmup = if i == 0 { WARMUP } else { SLICE_WARMUP };
            let clients = &target.clients;
            let (part, t) = match pace {
                Pace::Closed(c) => {
                    load::closed_loop(clients, auth, call, c, warmup, turn, CpuTicks::now).await?
                }
                Pace::Open(rate) => {
                    load::paced(clients, auth, call, rate, warmup, turn, CpuTicks::now).await?
                }
            };
            ticks[side] = ticks[side].zip(t).map(|(sum, t)| sum.plus(t));
            match &mut stats[side] {
                None => stats[side] = Some(part),
                Some(total) => total.append(&part)?,
            }
        }
    }
    let [on, off] = [0, 1].map(|side| {
        let stats = stats[side].take().expect("at least one turn");
        let calls = stats.latency.len() + stats.errors;
        let cpu = ticks[side].and_then(|sum| CpuUse::between(CpuTicks::ZERO, sum, calls));
        Side { stats, cpu }
    });
    eprintln!(
        "bench: {what}: audit on {:.0} req/s (p99 {:.1} ms), off {:.0} req/s (p99 {:.1} ms)",
        on.stats.rate(),
        on.stats.ms(0.99),
        off.stats.rate(),
        off.stats.ms(0.99)
    );
    Ok(OnOff { on, off })
}

/// Readies both services' databases for a load's turns: every event published, then
/// every table that holds rows vacuumed and analysed. Without this, autovacuum of
/// what earlier loads wrote ran in the middle of the turns, on whichever service's
/// turn it met (seen: the audited database's tables, 200,000 rows each from the
/// main run, vacuumed during the first GetReferral turns). Autovacuum that a turn's
/// own writes make due still runs, as it would in production. Empty tables are left
/// alone: analysed empty, they are planned as empty until autovacuum next looks at
/// them (seen: the unaudited service's CreateReferral at a tenth of its rate).
async fn settle(audited: &Target, plain: &Target) -> Result<()> {
    for target in [audited, plain] {
        drain_outbox(&target.observer).await?;
    }
    for target in [audited, plain] {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables
              WHERE n_live_tup + n_dead_tup > 0",
        )
        .fetch_all(&target.observer)
        .await
        .context("cannot list a service's tables")?;
        if !tables.is_empty() {
            sqlx::query(&format!("VACUUM (ANALYZE) {}", tables.join(", ")))
                .execute(&target.observer)
                .await
                .context("cannot vacuum a service's tables")?;
        }
    }
    Ok(())
}

/// GetReferral's maximum rate on the service without the audit log: a closed loop
/// at each level of `--concurrency` from the lowest, one turn each, until a level
/// gains less than [`MIN_GAIN`] on the best so far.
async fn read_search(
    opts: &BenchOptions,
    auth: &MetadataValue<Ascii>,
    audited: &Target,
    plain: &Target,
    names: &load::Names,
    turn: Duration,
) -> Result<Vec<(usize, Stats)>> {
    let mut levels = opts.concurrency.clone();
    levels.sort_unstable();
    levels.dedup();
    let call = Call::Get(names.clone());
    let mut tried: Vec<(usize, Stats)> = Vec::new();
    let mut best = 0.0_f64;
    settle(audited, plain).await?;
    for (i, c) in levels.into_iter().enumerate() {
        drain_outbox(&audited.observer).await?;
        drain_outbox(&plain.observer).await?;
        checkpoint(&plain.observer).await?;
        eprintln!(
            "bench: audit off: GetReferral, {c} callers, for {:.1}s…",
            turn.as_secs_f64()
        );
        let warmup = if i == 0 { WARMUP } else { SLICE_WARMUP };
        let (stats, _) =
            load::closed_loop(&plain.clients, auth, &call, c, warmup, turn, || None::<()>).await?;
        let rate = stats.rate();
        tried.push((c, stats));
        if rate < best * MIN_GAIN {
            break;
        }
        best = best.max(rate);
    }
    Ok(tried)
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

/// The "Audit on and off" section; returns CreateReferral's throughput ratio and
/// GetReferral's p99 ratio, audit on over off.
fn audit_report(w: &mut String, audit: &AuditCost) -> (f64, f64) {
    let turn = audit.turn.as_secs_f64();
    let _ = writeln!(w, "### Audit on and off\n");
    let _ = writeln!(
        w,
        "A second referrals service runs in the bench process with its audit log off \
         (`RunOptions {{ audit: false }}`, which only the bench passes; no configuration \
         reaches it), on a database of its own on the same Postgres, with the same pool \
         size, the same NATS and {CHANNELS} connections of its own; it sits idle through \
         the sections above. For each load the two take turns of {turn:.1}s, \
         {AUDIT_TURNS} each, in the order on, off, off, on, on, off. Before a load's first \
         turn, both databases' tables that hold rows are vacuumed and analysed (else \
         autovacuum of the rows written above lands in some turns); each turn starts with \
         both outboxes drained and after a `CHECKPOINT`; each service's first turn has \
         {}s of warm-up, the others {}ms. CPU ms/call is the whole machine's busy CPU \
         over a service's turns, divided by its calls; CPUs busy, the share of both CPUs' \
         time that was busy.\n",
        WARMUP.as_secs(),
        SLICE_WARMUP.as_millis()
    );

    let _ = writeln!(
        w,
        "**CreateReferral**, closed loop with {} callers (the level at which the audited \
         service took referrals fastest above):\n",
        audit.create_concurrency
    );
    let _ = writeln!(
        w,
        "| audit | calls | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | CPU ms/call | CPUs busy |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    on_off_rows(w, &audit.create);
    let create_ratio =
        audit.create.on.stats.rate() / audit.create.off.stats.rate().max(f64::MIN_POSITIVE);
    let _ = writeln!(
        w,
        "\nWith the audit log, CreateReferral keeps {:.0}% of its throughput without.\n",
        100.0 * create_ratio
    );

    let _ = writeln!(
        w,
        "**GetReferral**: each service is first given {READ_SET} referrals, created \
         through its API by the bench's health visitor, who then reads them in turn (the \
         referrer's organisation may read its referrals). The maximum rate without the \
         audit log, from a closed loop at each level from the lowest, {turn:.1}s each, \
         until one gains less than {:.0}%:\n",
        100.0 * (MIN_GAIN - 1.0)
    );
    let _ = writeln!(w, "| C | req/s | p50 ms | p99 ms | errors |");
    let _ = writeln!(w, "|---:|---:|---:|---:|---:|");
    for (c, s) in &audit.read_search {
        let _ = writeln!(
            w,
            "| {c} | {:.0} | {:.2} | {:.2} | {} |",
            s.rate(),
            s.ms(0.5),
            s.ms(0.99),
            s.errors
        );
    }
    let _ = writeln!(
        w,
        "\nThen an open loop at half the best, {:.0} req/s (one call every {:.2} ms, each in \
         its own task; latency counts from the scheduled start), on each service in turn:\n",
        audit.read_rate,
        1000.0 / audit.read_rate
    );
    let _ = writeln!(
        w,
        "| audit | calls | errors | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | CPU ms/call | CPUs busy |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    on_off_rows(w, &audit.read);
    let p99_ratio = audit.read.on.stats.ms(0.99) / audit.read.off.stats.ms(0.99).max(0.001);
    let _ = writeln!(
        w,
        "\nGetReferral's p99 with the audit log is {p99_ratio:.2}× its p99 without.\n"
    );
    if let Some(first) = [&audit.create, &audit.read]
        .iter()
        .flat_map(|f| [&f.on.stats, &f.off.stats])
        .chain(audit.read_search.iter().map(|(_, s)| s))
        .find_map(|s| s.first_error.as_ref())
    {
        let _ = writeln!(w, "Calls failed in this section; the first: `{first}`.\n");
    }
    let (records, reads) = audit.read_records;
    let _ = writeln!(
        w,
        "The audited service's log holds {records} GetReferral records for the {reads} reads \
         it was sent (warm-up included){}, written by {} group commits ({:.1} records each); \
         the other service's log holds {} records{}.\n",
        if u64::try_from(records).unwrap_or(0) >= reads {
            ""
        } else {
            ": FEWER RECORDS THAN READS"
        },
        audit.read_commits,
        records as f64 / audit.read_commits.max(1) as f64,
        audit.plain_records,
        if audit.plain_records == 0 {
            ""
        } else {
            ": THE SWITCH DID NOT TURN THE AUDIT LOG OFF"
        }
    );
    (create_ratio, p99_ratio)
}

/// A table row each for the audited service and the one without.
fn on_off_rows(w: &mut String, figures: &OnOff) {
    for (audit, side) in [("on", &figures.on), ("off", &figures.off)] {
        let s = &side.stats;
        let _ = writeln!(
            w,
            "| {audit} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} |",
            s.latency.len() + s.errors,
            s.errors,
            s.rate(),
            s.ms(0.5),
            s.ms(0.9),
            s.ms(0.99),
            s.max_ms(),
            side.cpu
                .map_or("?".into(), |c| format!("{:.2}", c.ms_per_call)),
            side.cpu
                .map_or("?".into(), |c| format!("{:.0}%", 100.0 * c.busy))
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn report(
    opts: &BenchOptions,
    levels: &[Level],
    half: &HalfLoad,
    audit: &AuditCost,
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

    let (create_ratio, p99_ratio) = audit_report(&mut w, audit);

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
    let create = &audit.create;
    let _ = writeln!(
        w,
        "| CreateReferral with the audit log ≥ {:.0}% of its throughput without | {:.0}% \
         ({:.0} / {:.0} req/s) | {} |",
        100.0 * MIN_AUDIT_CREATE_RATIO,
        100.0 * create_ratio,
        create.on.stats.rate(),
        create.off.stats.rate(),
        verdict(
            create_ratio >= MIN_AUDIT_CREATE_RATIO
                && create.on.stats.errors + create.off.stats.errors == 0
        )
    );
    let read = &audit.read;
    let _ = writeln!(
        w,
        "| GetReferral p99 with the audit log ≤ {MAX_AUDIT_P99_RATIO}× without, at half of \
         the maximum rate without ({:.0} req/s) | {:.2}× ({:.1} / {:.1} ms) | {} |",
        audit.read_rate,
        p99_ratio,
        read.on.stats.ms(0.99),
        read.off.stats.ms(0.99),
        verdict(
            p99_ratio <= MAX_AUDIT_P99_RATIO && read.on.stats.errors + read.off.stats.errors == 0
        )
    );
    if errors > 0 {
        let _ = writeln!(
            w,
            "\nErrors must be 0: {errors} calls failed, so throughput cannot pass."
        );
    }
    w
}
