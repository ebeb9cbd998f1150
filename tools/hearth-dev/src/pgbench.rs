//! The raw Postgres baselines for `hearth-dev bench`: `pgbench` inserting what one
//! CreateReferral must at least write — a referral row and a ~1.5 KB outbox row —
//! into copies of the service's own tables, on the same server. Two of them: one
//! referral per transaction, and 32 per transaction (the intake's largest batch), so
//! that a service that shares a transaction's costs is compared with Postgres doing
//! the same.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use hearth_platform::config::Secret;
use hearth_platform::db;
use hearth_platform::service::Service as _;
use hearth_testkit::PgServer;
use referrals::Referrals;
use tokio::process::Command;

/// The database pgbench writes to.
const DATABASE: &str = "bench_raw";

/// The rows one referral writes at least: the referral row with realistic values, and
/// its event.
const ROWS: &str = "\
INSERT INTO referrals.referrals (
    id, receiving_area, referring_org, created_by, referrer_name, referrer_job_title,
    referrer_contact, source, family_id, linked_existing, reasons, description, urgency,
    safeguarding, language, interpreter, accessibility, creche, transport, preferred_times,
    postcode, route, state, received_at, updated_at)
VALUES (
    gen_random_uuid(), 'midlothian', 'nhs-lothian', 'bench-nhs-lothian', 'Morag Henderson',
    'Health visitor', '0131 496 0127', 'SOURCE_HEALTH_VISITOR', gen_random_uuid(), false,
    ARRAY['REASON_SLEEP', 'REASON_PARENTAL_MENTAL_HEALTH'],
    'Isla is 210 days old. Mum reports broken sleep and low mood and would like help with routines and to meet other parents locally.',
    'URGENCY_ROUTINE', false, 'en', false, '', true, false,
    ARRAY['PREFERRED_TIME_WEEKDAY_MORNING'], 'EH22 1AB', 'ROUTE_VOLUNTARY', 'STATE_RECEIVED',
    now(), now());
INSERT INTO referrals.outbox (id, subject, source, resource, payload, event_time)
VALUES (
    gen_random_uuid(), 'hearth.referrals.v1.referral.received', '//hearth/referrals',
    'referrals/' || gen_random_uuid(), convert_to(repeat(md5(random()::text), 48), 'UTF8'),
    now());
";

/// How many referrals the batched baseline writes per transaction: the intake's
/// largest batch (`HEARTH_REFERRALS_WRITE_BATCH_MAX`'s default).
pub const BATCH: u64 = referrals::DEFAULT_WRITE_BATCH_MAX;

/// Which baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// One referral per transaction.
    Single,
    /// [`BATCH`] referrals per transaction.
    Batched,
}

impl Script {
    fn file(self) -> &'static str {
        match self {
            Script::Single => "referral.sql",
            Script::Batched => "referrals-batched.sql",
        }
    }

    /// Referrals per transaction.
    pub fn rows(self) -> u64 {
        match self {
            Script::Single => 1,
            Script::Batched => BATCH,
        }
    }

    fn text(self) -> String {
        format!("BEGIN;\n{}COMMIT;\n", ROWS.repeat(self.rows() as usize))
    }
}

/// A prepared baseline: database, script and the pgbench binary.
#[derive(Debug)]
pub struct Baseline {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
}

/// One pgbench run.
#[derive(Debug, Clone, Copy)]
pub struct RawResult {
    /// Transactions per second, without connection time.
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub failed: u64,
    /// Referrals per transaction.
    pub rows: u64,
}

impl RawResult {
    /// Runs of equal length taken together: mean rate and latency, failures added.
    pub fn mean(runs: &[RawResult]) -> RawResult {
        let n = runs.len().max(1) as f64;
        RawResult {
            tps: runs.iter().map(|r| r.tps).sum::<f64>() / n,
            latency_avg_ms: runs.iter().map(|r| r.latency_avg_ms).sum::<f64>() / n,
            failed: runs.iter().map(|r| r.failed).sum(),
            rows: runs.first().map_or(1, |r| r.rows),
        }
    }

    /// Referrals written per second.
    pub fn rows_per_second(&self) -> f64 {
        self.tps * self.rows as f64
    }
}

/// The pgbench next to the server binaries, or on PATH.
fn find_pgbench(pg: &PgServer) -> Result<PathBuf> {
    let beside = pg.bin_dir().join("pgbench");
    if beside.is_file() {
        return Ok(beside);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("pgbench"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            anyhow!(
                "pgbench not found in {} or on PATH; install the PostgreSQL client tools \
                 (`make deps`)",
                pg.bin_dir().display()
            )
        })
}

/// Creates the baseline database with the service's DDL (its migrations, so the
/// columns and indexes match), minus the foreign key from referrals to families, and
/// writes the script into `dir`.
pub async fn prepare(pg: &PgServer, dir: &Path) -> Result<Baseline> {
    let bin = find_pgbench(pg)?;
    let url = pg.create_database(DATABASE).await?;
    let pool = db::connect(
        &Secret::new(url),
        Referrals::NAME,
        2,
        Duration::from_secs(30),
    )
    .await
    .context("cannot connect to the baseline database")?;
    db::migrate(&pool, Referrals::NAME, &referrals::MIGRATOR)
        .await
        .context("cannot apply the referrals migrations to the baseline database")?;
    let fks: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint
          WHERE conrelid = 'referrals.referrals'::regclass AND contype = 'f'",
    )
    .fetch_all(&pool)
    .await?;
    for name in fks {
        sqlx::raw_sql(&format!(
            "ALTER TABLE referrals.referrals DROP CONSTRAINT \"{}\"",
            name.replace('"', "\"\"")
        ))
        .execute(&pool)
        .await?;
    }
    pool.close().await;
    for script in [Script::Single, Script::Batched] {
        let path = dir.join(script.file());
        std::fs::write(&path, script.text())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(Baseline {
        bin,
        port: pg.port(),
        dir: dir.to_owned(),
    })
}

impl Baseline {
    /// `pgbench -n -M prepared -c C -j min(C,2) -T N -f script.sql`: prepared
    /// statements, as the service uses (the simple protocol would plan every statement
    /// of every transaction, and give a lower baseline).
    pub fn command_line(&self, script: Script, clients: usize, seconds: u64) -> String {
        format!(
            "pgbench -n -M prepared -c {clients} -j {} -T {seconds} -f {}",
            clients.min(2),
            script.file()
        )
    }

    pub async fn run(&self, script: Script, clients: usize, seconds: u64) -> Result<RawResult> {
        let out = Command::new(&self.bin)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "hearth",
            ])
            .args(["-n", "-M", "prepared", "-c", &clients.to_string()])
            .args(["-j", &clients.min(2).to_string()])
            .args(["-T", &seconds.to_string(), "-f"])
            .arg(self.dir.join(script.file()))
            .arg(DATABASE)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "pgbench failed ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut result =
            parse(&stdout).with_context(|| format!("cannot read pgbench's report:\n{stdout}"))?;
        result.rows = script.rows();
        Ok(result)
    }
}

/// Reads `tps = X (without initial connection time)`, the average latency and the
/// failed-transaction count from pgbench's report.
fn parse(report: &str) -> Result<RawResult> {
    let number_after = |prefix: &str| -> Option<f64> {
        report.lines().find_map(|line| {
            line.trim()
                .strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    };
    let tps = report
        .lines()
        .filter(|line| line.contains("without initial connection time"))
        .find_map(|line| {
            line.trim()
                .strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| anyhow!("no `tps = … (without initial connection time)` line"))?;
    Ok(RawResult {
        tps,
        latency_avg_ms: number_after("latency average = ").unwrap_or(f64::NAN),
        failed: number_after("number of failed transactions: ").unwrap_or(0.0) as u64,
        rows: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pgbench_15_report() {
        let report = "\
transaction type: referral.sql
scaling factor: 1
query mode: simple
number of clients: 4
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 12345
number of failed transactions: 0 (0.000%)
latency average = 3.241 ms
initial connection time = 12.345 ms
tps = 1234.567890 (without initial connection time)
";
        let r = parse(report).unwrap();
        assert!((r.tps - 1234.56789).abs() < 1e-6);
        assert!((r.latency_avg_ms - 3.241).abs() < 1e-9);
        assert_eq!(r.failed, 0);
        assert!(parse("nothing").is_err());
    }

    #[test]
    fn the_batched_script_writes_the_intakes_largest_batch_in_one_transaction() {
        let text = Script::Batched.text();
        assert_eq!(text.matches("BEGIN;").count(), 1);
        assert_eq!(text.matches("COMMIT;").count(), 1);
        assert_eq!(text.matches("INSERT INTO referrals.referrals").count(), 32);
        assert_eq!(text.matches("INSERT INTO referrals.outbox").count(), 32);
        assert_eq!(
            Script::Single
                .text()
                .matches("INSERT INTO referrals.outbox")
                .count(),
            1
        );
    }
}
