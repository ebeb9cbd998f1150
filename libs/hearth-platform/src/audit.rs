//! The audit log: a record of every call that reads or writes a family's records —
//! who (subject, organisation, roles), the basis that allowed it, which records, the
//! method, the action and its outcome (denials too), when, and the trace id.
//!
//! - **Fail closed.** A read's records are written by [`Auditor::record`] before the
//!   answer leaves: if that fails the call fails with UNAVAILABLE and returns nothing.
//!   A change's records are written in its own transaction ([`Auditor::record_in`]),
//!   so the change and its record commit together or not at all.
//! - **Cheap.** Reads' records are group-committed: a few writer tasks each take every
//!   record waiting and write them in one statement, so a commit's cost is shared.
//! - **Append-only.** The service's database role may only insert into and read
//!   `{schema}.audit_log` (the kit checks this at start, `db::check_roles`).
//! - **Tamper-evident.** Records are hash-chained: each record's `hash` is SHA-256 of
//!   the previous record's hash and its own contents, and each is sealed with an
//!   HMAC-SHA256 of its hash under `HEARTH_AUDIT_SEAL_KEY`, a key the database does not
//!   hold. The log is split into chains so that writers never wait for one another: a
//!   writer task owns a chain; a change's transaction takes any chain not in use
//!   (`FOR UPDATE SKIP LOCKED`). [`verify`] walks every chain and reports the first
//!   broken link: a record edited, reordered or removed, or a head recomputed without
//!   the key.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hearth_proto::access::{AccessAction, AccessBasis, AccessOutcome};
use ring::hmac;
use sha2::{Digest as _, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection, PgPool, Row as _};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::config::Secret;
use crate::db::check_schema_name;
use crate::error::ApiError;

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub at: DateTime<Utc>,
    pub subject: String,
    pub organisation: String,
    pub roles: Vec<String>,
    /// The RPC, e.g. `/hearth.referrals.v1.ReferralsService/GetReferral`.
    pub method: String,
    pub action: AccessAction,
    pub outcome: AccessOutcome,
    pub basis: AccessBasis,
    /// The records read or changed (or asked for, when refused).
    pub resources: Vec<String>,
    /// The families they belong to.
    pub families: Vec<String>,
    pub trace_id: String,
}

impl Record {
    /// A record of `caller` calling `method`, now, in the current trace; allowed on
    /// `basis` until said otherwise.
    pub fn new(caller: &Caller, method: &str, action: AccessAction, basis: AccessBasis) -> Record {
        Record {
            at: crate::clock::now(),
            subject: caller.subject.clone(),
            organisation: caller.organisation.clone(),
            roles: caller.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            method: method.to_owned(),
            action,
            outcome: AccessOutcome::Allowed,
            basis,
            resources: Vec::new(),
            families: Vec::new(),
            trace_id: crate::telemetry::current_trace_id().unwrap_or_default(),
        }
    }

    /// The records touched, and the families they belong to (each once).
    pub fn of(mut self, resources: Vec<String>, families: Vec<String>) -> Record {
        self.resources = resources;
        self.families = families;
        self.families.sort();
        self.families.dedup();
        self
    }

    /// Marks the call refused.
    pub fn denied(mut self) -> Record {
        self.outcome = AccessOutcome::Denied;
        self.basis = AccessBasis::None;
        self
    }
}

/// The DDL of the log in `schema`; applied by [`crate::db::migrate`].
pub fn schema_sql(schema: &str) -> Vec<String> {
    let s = check_schema_name(schema);
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.audit_log (
                chain        int NOT NULL,
                seq          bigint NOT NULL,
                at           timestamptz NOT NULL,
                subject      text NOT NULL,
                organisation text NOT NULL,
                roles        text[] NOT NULL,
                method       text NOT NULL,
                action       text NOT NULL,
                outcome      text NOT NULL,
                basis        text NOT NULL,
                resources    text[] NOT NULL,
                families     text[] NOT NULL,
                trace_id     text NOT NULL,
                prev_hash    bytea NOT NULL,
                hash         bytea NOT NULL,
                seal         bytea NOT NULL,
                PRIMARY KEY (chain, seq)
            )"
        ),
        // "Who has seen this family's records": the families each record names.
        // Without GIN's pending list (fastupdate): with it, the insert that finds the
        // list full merges it into the index while the group commit, and every read
        // waiting on it, waits.
        format!(
            "CREATE INDEX IF NOT EXISTS audit_log_families ON {s}.audit_log USING gin (families)
               WITH (fastupdate = off)"
        ),
        // "What did this organisation look at in a period": records arrive in time
        // order, so a block range index narrows a period cheaply.
        format!("CREATE INDEX IF NOT EXISTS audit_log_at ON {s}.audit_log USING brin (at)"),
        // Each chain's head: the last record's place and hash, sealed. `owned` chains
        // belong to one writer task; the others are taken by one transaction at a time.
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.audit_chains (
                chain      serial PRIMARY KEY,
                owned      boolean NOT NULL,
                seq        bigint NOT NULL DEFAULT 0,
                hash       bytea NOT NULL DEFAULT '\\x0000000000000000000000000000000000000000000000000000000000000000',
                seal       bytea,
                created_at timestamptz NOT NULL DEFAULT now()
            )"
        ),
    ]
}

/// Seals records with the configured key (`HEARTH_AUDIT_SEAL_KEY`).
#[derive(Clone)]
pub struct Sealer {
    key: hmac::Key,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    pub fn new(key: &Secret<Vec<u8>>) -> Sealer {
        Sealer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.expose()),
        }
    }

    fn seal(&self, chain: i32, seq: i64, hash: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(44);
        m.extend_from_slice(&chain.to_be_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash);
        hmac::sign(&self.key, &m).as_ref().to_vec()
    }

    fn verify(&self, chain: i32, seq: i64, hash: &[u8], seal: &[u8]) -> bool {
        let mut m = Vec::with_capacity(44);
        m.extend_from_slice(&chain.to_be_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash);
        hmac::verify(&self.key, &m, seal).is_ok()
    }
}

/// The name stored for an enum value: its contract name.
fn name<E: hearth_proto::EnumName>(e: E) -> &'static str {
    e.name()
}

/// The record's contents as hashed: every field, each length-prefixed, in order.
fn contents(chain: i32, seq: i64, r: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut field = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    field(&chain.to_be_bytes());
    field(&seq.to_be_bytes());
    field(&r.at.timestamp_micros().to_be_bytes());
    field(r.subject.as_bytes());
    field(r.organisation.as_bytes());
    field(&(r.roles.len() as u64).to_be_bytes());
    for role in &r.roles {
        field(role.as_bytes());
    }
    field(r.method.as_bytes());
    field(name(r.action).as_bytes());
    field(name(r.outcome).as_bytes());
    field(name(r.basis).as_bytes());
    field(&(r.resources.len() as u64).to_be_bytes());
    for x in &r.resources {
        field(x.as_bytes());
    }
    field(&(r.families.len() as u64).to_be_bytes());
    for x in &r.families {
        field(x.as_bytes());
    }
    field(r.trace_id.as_bytes());
    out
}

/// The hash linking a record to the one before it.
fn link(prev: &[u8], chain: i32, seq: i64, r: &Record) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(contents(chain, seq, r));
    h.finalize().to_vec()
}

/// A chain's head: its last record's place and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    chain: i32,
    seq: i64,
    hash: Vec<u8>,
}

/// Records laid out on a chain, ready to insert.
struct Rows<'a> {
    records: &'a [Record],
    seqs: Vec<i64>,
    prevs: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
    seals: Vec<Vec<u8>>,
    head: Head,
    head_seal: Vec<u8>,
}

fn lay_out<'a>(head: &Head, sealer: &Sealer, records: &'a [Record]) -> Rows<'a> {
    let mut rows = Rows {
        records,
        seqs: Vec::with_capacity(records.len()),
        prevs: Vec::with_capacity(records.len()),
        hashes: Vec::with_capacity(records.len()),
        seals: Vec::with_capacity(records.len()),
        head: head.clone(),
        head_seal: Vec::new(),
    };
    for r in records {
        let seq = rows.head.seq + 1;
        let hash = link(&rows.head.hash, head.chain, seq, r);
        rows.seqs.push(seq);
        rows.prevs
            .push(std::mem::replace(&mut rows.head.hash, hash.clone()));
        rows.seals.push(sealer.seal(head.chain, seq, &hash));
        rows.hashes.push(hash);
        rows.head.seq = seq;
    }
    rows.head_seal = sealer.seal(head.chain, rows.head.seq, &rows.head.hash);
    rows
}

/// Inserts laid-out rows and moves the chain's head, in one statement.
async fn insert(conn: &mut PgConnection, schema: &str, rows: &Rows<'_>) -> Result<(), sqlx::Error> {
    let r = rows.records;
    let strs = |f: fn(&Record) -> &str| r.iter().map(f).collect::<Vec<_>>();
    let joined =
        |f: fn(&Record) -> &Vec<String>| r.iter().map(|x| f(x).join("\u{1f}")).collect::<Vec<_>>();
    sqlx::query(&format!(
        "WITH rows AS (
             INSERT INTO {schema}.audit_log (chain, seq, at, subject, organisation, roles, method, action, outcome,
                                             basis, resources, families, trace_id, prev_hash, hash, seal)
             SELECT $1, seq, at, subject, organisation, string_to_array(roles, chr(31)), method, action, outcome,
                    basis, string_to_array(resources, chr(31)), string_to_array(families, chr(31)), trace_id,
                    prev, hash, seal
               FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                           $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                           $14::bytea[], $15::bytea[], $16::bytea[])
                    AS x(seq, at, subject, organisation, roles, method, action, outcome, basis, resources,
                         families, trace_id, prev, hash, seal)
         )
         UPDATE {schema}.audit_chains SET seq = $17, hash = $18, seal = $19 WHERE chain = $1"
    ))
    .bind(rows.head.chain)
    .bind(&rows.seqs)
    .bind(r.iter().map(|x| x.at).collect::<Vec<_>>())
    .bind(strs(|x| &x.subject))
    .bind(strs(|x| &x.organisation))
    .bind(joined(|x| &x.roles))
    .bind(strs(|x| &x.method))
    .bind(r.iter().map(|x| name(x.action)).collect::<Vec<_>>())
    .bind(r.iter().map(|x| name(x.outcome)).collect::<Vec<_>>())
    .bind(r.iter().map(|x| name(x.basis)).collect::<Vec<_>>())
    .bind(joined(|x| &x.resources))
    .bind(joined(|x| &x.families))
    .bind(strs(|x| &x.trace_id))
    .bind(&rows.prevs)
    .bind(&rows.hashes)
    .bind(&rows.seals)
    .bind(rows.head.seq)
    .bind(&rows.head.hash)
    .bind(&rows.head_seal)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A chain owned by one writer: its head kept in memory between writes.
#[derive(Debug)]
pub struct OwnedChain {
    head: Head,
}

impl OwnedChain {
    /// Starts a new chain for this writer.
    pub async fn open(conn: &mut PgConnection, schema: &str) -> Result<OwnedChain, sqlx::Error> {
        let s = check_schema_name(schema);
        let row = sqlx::query(&format!(
            "INSERT INTO {s}.audit_chains (owned) VALUES (true) RETURNING chain, seq, hash"
        ))
        .fetch_one(&mut *conn)
        .await?;
        Ok(OwnedChain {
            head: Head {
                chain: row.get("chain"),
                seq: row.get("seq"),
                hash: row.get("hash"),
            },
        })
    }

    /// Appends `records` in the caller's transaction; returns the head to keep once
    /// that transaction has committed ([`OwnedChain::committed`]).
    pub async fn append(
        &self,
        conn: &mut PgConnection,
        schema: &str,
        sealer: &Sealer,
        records: &[Record],
    ) -> Result<Option<PendingHead>, sqlx::Error> {
        if records.is_empty() {
            return Ok(None);
        }
        let rows = lay_out(&self.head, sealer, records);
        insert(conn, schema, &rows).await?;
        Ok(Some(PendingHead(rows.head)))
    }

    /// The transaction with the appended records committed: they are the chain now.
    pub fn committed(&mut self, pending: Option<PendingHead>) {
        if let Some(PendingHead(head)) = pending {
            self.head = head;
        }
    }

    /// After a transaction whose outcome is unknown (a lost connection): the head as
    /// the database has it.
    pub async fn reload(
        &mut self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> Result<(), sqlx::Error> {
        let s = check_schema_name(schema);
        let row = sqlx::query(&format!(
            "SELECT seq, hash FROM {s}.audit_chains WHERE chain = $1"
        ))
        .bind(self.head.chain)
        .fetch_one(&mut *conn)
        .await?;
        self.head.seq = row.get("seq");
        self.head.hash = row.get("hash");
        Ok(())
    }
}

/// A chain head written but not yet committed.
#[derive(Debug)]
pub struct PendingHead(Head);

/// Writes audit records: in a change's own transaction, or group-committed for reads.
#[derive(Debug, Clone)]
pub struct Auditor {
    schema: &'static str,
    sealer: Sealer,
    queue: Option<mpsc::UnboundedSender<Pending>>,
}

struct Pending {
    record: Record,
    reply: oneshot::Sender<Result<(), ()>>,
}

/// Most records one group commit writes (our default: a few milliseconds of reads at
/// the service's rates).
const MAX_BATCH: usize = 512;

impl Auditor {
    /// The auditor of `schema`, with `writers` group-commit tasks (each with a chain
    /// and a connection of its own, made from `options`), running until `stop`.
    pub fn start(
        schema: &'static str,
        sealer: Sealer,
        options: PgConnectOptions,
        writers: usize,
        stop: CancellationToken,
    ) -> Auditor {
        let (queue, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_reads(
                schema,
                sealer.clone(),
                options.clone(),
                Arc::clone(&rx),
                stop.clone(),
            ));
        }
        Auditor {
            schema,
            sealer,
            queue: Some(queue),
        }
    }

    /// An auditor that writes nothing: **for the benchmark only**, to measure what the
    /// log costs. No configuration reaches it.
    #[doc(hidden)]
    pub fn disabled_for_benchmark(schema: &'static str, sealer: Sealer) -> Auditor {
        Auditor {
            schema,
            sealer,
            queue: None,
        }
    }

    pub fn schema(&self) -> &'static str {
        self.schema
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Whether records are written (false only in the benchmark).
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Writes a read's record (group-committed) and waits for it to be durable. Fails
    /// with UNAVAILABLE when it cannot be written: the caller then returns nothing.
    pub async fn record(&self, record: Record) -> Result<(), ApiError> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        let unavailable = || ApiError::Unavailable {
            message:
                "the access could not be recorded in the audit log; nothing was returned; retry"
                    .into(),
        };
        let (reply, answer) = oneshot::channel();
        queue
            .send(Pending { record, reply })
            .map_err(|_| unavailable())?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            _ => Err(unavailable()),
        }
    }

    /// Writes a change's records in its transaction, on any chain no other
    /// transaction holds (or a new one). Fails with UNAVAILABLE when they cannot be
    /// written: the caller then rolls the change back.
    pub async fn record_in(
        &self,
        conn: &mut PgConnection,
        records: &[Record],
    ) -> Result<(), ApiError> {
        if self.queue.is_none() || records.is_empty() {
            return Ok(());
        }
        self.append_in(conn, records).await.map_err(|err| {
            tracing::error!(error = %err, "a change's audit record could not be written");
            ApiError::Unavailable {
                message:
                    "the change could not be recorded in the audit log; nothing was changed; retry"
                        .into(),
            }
        })
    }

    async fn append_in(
        &self,
        conn: &mut PgConnection,
        records: &[Record],
    ) -> Result<(), sqlx::Error> {
        let s = self.schema;
        let row = sqlx::query(&format!(
            "SELECT chain, seq, hash FROM {s}.audit_chains WHERE NOT owned
              ORDER BY chain LIMIT 1 FOR UPDATE SKIP LOCKED"
        ))
        .fetch_optional(&mut *conn)
        .await?;
        let row =
            match row {
                Some(row) => row,
                None => sqlx::query(&format!(
                    "INSERT INTO {s}.audit_chains (owned) VALUES (false) RETURNING chain, seq, hash"
                ))
                .fetch_one(&mut *conn)
                .await?,
            };
        let head = Head {
            chain: row.get("chain"),
            seq: row.get("seq"),
            hash: row.get("hash"),
        };
        insert(conn, s, &lay_out(&head, &self.sealer, records)).await
    }
}

/// A group-commit task: takes every read's record waiting and writes them in one
/// statement on its own chain and connection; answers each once it is durable.
async fn write_reads(
    schema: &'static str,
    sealer: Sealer,
    options: PgConnectOptions,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    stop: CancellationToken,
) {
    let mut conn: Option<Writer> = None;
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    loop {
        let got = {
            let mut rx = rx.lock().await;
            tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                _ = stop.cancelled() => {
                    rx.close();
                    rx.recv_many(&mut batch, MAX_BATCH).await
                }
            }
        };
        if got == 0 {
            return;
        }
        let pending = std::mem::take(&mut batch);
        let records: Vec<Record> = pending.iter().map(|p| p.record.clone()).collect();
        // A connection the database dropped (a restart, a failover) fails the first
        // write: once more on a new connection and chain. (Should the first have
        // committed unseen, the records are on two chains: recorded twice, never lost.)
        let mut ok = false;
        for attempt in 0..2 {
            match write_batch(&mut conn, schema, &sealer, &options, &records).await {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(err) => {
                    conn = None;
                    if attempt == 1 {
                        tracing::error!(error = %err, records = records.len(), "audit records could not be written");
                    }
                }
            }
        }
        for p in pending {
            let _ = p.reply.send(if ok { Ok(()) } else { Err(()) });
        }
    }
}

/// A group-commit task's connection, when it was last used, and its chain.
struct Writer {
    conn: PgConnection,
    used: std::time::Instant,
    chain: OwnedChain,
}

async fn write_batch(
    writer: &mut Option<Writer>,
    schema: &'static str,
    sealer: &Sealer,
    options: &PgConnectOptions,
    records: &[Record],
) -> Result<(), sqlx::Error> {
    if let Some(w) = writer.as_mut()
        && !crate::db::usable(&mut w.conn, w.used.elapsed()).await
    {
        *writer = None;
    }
    if writer.is_none() {
        let mut conn = PgConnection::connect_with(options).await?;
        let chain = OwnedChain::open(&mut conn, schema).await?;
        *writer = Some(Writer {
            conn,
            used: std::time::Instant::now(),
            chain,
        });
    }
    let w = writer.as_mut().expect("made above");
    w.used = std::time::Instant::now();
    // One statement is one transaction: the records and the head commit together.
    let pending = w.chain.append(&mut w.conn, schema, sealer, records).await?;
    w.chain.committed(pending);
    Ok(())
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every chain is whole: this many records in this many chains.
    Intact { chains: u64, records: u64 },
    /// The first broken link.
    Broken {
        chain: i32,
        seq: i64,
        problem: String,
    },
}

/// Walks every chain of the log and reports the first broken link: a record whose
/// contents no longer give its hash, whose link to the one before is cut, whose seal
/// the key does not make, a gap, or a head that does not match its last record.
pub async fn verify(pool: &PgPool, schema: &str, sealer: &Sealer) -> Result<Verdict, sqlx::Error> {
    let s = check_schema_name(schema);
    let heads = sqlx::query(&format!(
        "SELECT chain, seq, hash, seal FROM {s}.audit_chains ORDER BY chain"
    ))
    .fetch_all(pool)
    .await?;
    let mut records = 0u64;
    let mut chains = 0u64;
    for head in &heads {
        let chain: i32 = head.get("chain");
        chains += 1;
        let mut prev = vec![0u8; 32];
        let mut expected = 1i64;
        let mut last_seq = 0i64;
        let sql = format!(
            "SELECT chain, seq, at, subject, organisation, roles, method, action, outcome, basis, resources,
                    families, trace_id, prev_hash, hash, seal
               FROM {s}.audit_log WHERE chain = $1 ORDER BY seq"
        );
        let mut rows = sqlx::query(&sql).bind(chain).fetch(pool);
        use futures::TryStreamExt as _;
        while let Some(row) = rows.try_next().await? {
            let seq: i64 = row.get("seq");
            let broken = |problem: &str| {
                Ok(Verdict::Broken {
                    chain,
                    seq,
                    problem: problem.to_owned(),
                })
            };
            if seq != expected {
                return broken(&format!("record {expected} is missing"));
            }
            let stored_prev: Vec<u8> = row.get("prev_hash");
            if stored_prev != prev {
                return broken("its link to the record before does not match");
            }
            let r = record_from_row(&row);
            let hash = link(&prev, chain, seq, &r);
            let stored: Vec<u8> = row.get("hash");
            if stored != hash {
                return broken("its contents do not give its hash (the record was changed)");
            }
            if !sealer.verify(chain, seq, &hash, &row.get::<Vec<u8>, _>("seal")) {
                return broken(
                    "its seal was not made with the audit key (the chain was recomputed)",
                );
            }
            prev = hash;
            last_seq = seq;
            expected += 1;
            records += 1;
        }
        let head_seq: i64 = head.get("seq");
        let head_hash: Vec<u8> = head.get("hash");
        if head_seq != last_seq || (last_seq > 0 && head_hash != prev) {
            return Ok(Verdict::Broken {
                chain,
                seq: head_seq.max(last_seq),
                problem: format!(
                    "the chain's head says {head_seq} records but the log holds {last_seq} (records removed or added)"
                ),
            });
        }
        if last_seq > 0 {
            let seal: Option<Vec<u8>> = head.get("seal");
            if !seal.is_some_and(|seal| sealer.verify(chain, head_seq, &head_hash, &seal)) {
                return Ok(Verdict::Broken {
                    chain,
                    seq: head_seq,
                    problem: "the chain's head is not sealed with the audit key".into(),
                });
            }
        }
    }
    let orphans: Option<i32> = sqlx::query_scalar(&format!(
        "SELECT min(chain) FROM {s}.audit_log l WHERE NOT EXISTS (SELECT 1 FROM {s}.audit_chains c WHERE c.chain = l.chain)"
    ))
    .fetch_one(pool)
    .await?;
    if let Some(chain) = orphans {
        return Ok(Verdict::Broken {
            chain,
            seq: 1,
            problem: "records of a chain that has no head".into(),
        });
    }
    Ok(Verdict::Intact { chains, records })
}

/// A record as stored.
pub fn record_from_row(row: &sqlx::postgres::PgRow) -> Record {
    use hearth_proto::EnumName as _;
    Record {
        at: row.get("at"),
        subject: row.get("subject"),
        organisation: row.get("organisation"),
        roles: row.get("roles"),
        method: row.get("method"),
        action: AccessAction::from_name(row.get("action")).unwrap_or_default(),
        outcome: AccessOutcome::from_name(row.get("outcome")).unwrap_or_default(),
        basis: AccessBasis::from_name(row.get("basis")).unwrap_or_default(),
        resources: row.get("resources"),
        families: row.get("families"),
        trace_id: row.get("trace_id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(org: &str) -> Record {
        Record {
            at: DateTime::from_timestamp(1_700_000_000, 123_000).unwrap(),
            subject: "u1".into(),
            organisation: org.into(),
            roles: vec!["triage".into()],
            method: "/hearth.referrals.v1.ReferralsService/GetReferral".into(),
            action: AccessAction::Read,
            outcome: AccessOutcome::Allowed,
            basis: AccessBasis::ReceivingArea,
            resources: vec!["referrals/a".into()],
            families: vec!["families/f".into()],
            trace_id: String::new(),
        }
    }

    fn sealer(key: &[u8]) -> Sealer {
        Sealer::new(&Secret::new(key.to_vec()))
    }

    #[test]
    fn each_record_is_linked_to_the_one_before_and_sealed() {
        let s = sealer(b"an audit key of at least thirty-two bytes");
        let head = Head {
            chain: 7,
            seq: 0,
            hash: vec![0; 32],
        };
        let records = [record("midlothian"), record("borders")];
        let rows = lay_out(&head, &s, &records);
        assert_eq!(rows.seqs, [1, 2]);
        assert_eq!(rows.prevs[0], vec![0; 32]);
        assert_eq!(rows.prevs[1], rows.hashes[0]);
        assert_eq!(rows.head.hash, rows.hashes[1]);
        assert!(s.verify(7, 2, &rows.hashes[1], &rows.seals[1]));
        assert!(s.verify(7, 2, &rows.head.hash, &rows.head_seal));
        // Another key did not make the seal; another position changes it.
        assert!(!sealer(b"another key, also thirty-two bytes long").verify(
            7,
            2,
            &rows.hashes[1],
            &rows.seals[1]
        ));
        assert!(!s.verify(7, 3, &rows.hashes[1], &rows.seals[1]));
    }

    #[test]
    fn any_change_to_a_record_changes_its_hash() {
        let base = record("midlothian");
        let h = link(&[0; 32], 1, 1, &base);
        let mut changed = vec![
            Record {
                organisation: "midlothian2".into(),
                ..base.clone()
            },
            Record {
                subject: "u2".into(),
                ..base.clone()
            },
            Record {
                outcome: AccessOutcome::Denied,
                ..base.clone()
            },
            Record {
                resources: vec!["referrals/b".into()],
                ..base.clone()
            },
            Record {
                families: vec![],
                ..base.clone()
            },
            Record {
                at: base.at + chrono::Duration::microseconds(1),
                ..base.clone()
            },
            // Fields cannot bleed into each other: moving a character across a
            // boundary changes the hash.
            Record {
                roles: vec!["triag".into(), "e".into()],
                ..base.clone()
            },
        ];
        for c in changed.drain(..) {
            assert_ne!(link(&[0; 32], 1, 1, &c), h, "{c:?}");
        }
        assert_ne!(link(&[0; 32], 1, 2, &base), h, "its place is part of it");
        assert_ne!(link(&[1; 32], 1, 1, &base), h, "so is the record before");
    }
}
