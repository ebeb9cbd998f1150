//! The transactional outbox and its relay.
//!
//! A service writes an [`OutboxEvent`] in the same transaction as the state change it
//! announces, so an event exists exactly when its change committed. The [`Relay`]
//! publishes unpublished rows to JetStream with `Nats-Msg-Id` = the event id (JetStream
//! drops a repeat within its duplicate window) and marks them published.
//!
//! - Woken by `LISTEN/NOTIFY`; a slow poll is only a safety net. The `NOTIFY` is sent
//!   by [`Outbox::commit`] just *after* the business transaction commits, not inside
//!   it: Postgres serialises every committing transaction that has issued a `NOTIFY`
//!   on one lock held through the WAL flush, which would forbid group commit and cap
//!   the service's write rate. Wake-ups are coalesced (at most one `NOTIFY` in flight
//!   per process); a process that dies between its commit and the wake-up leaves the
//!   rows to the slow poll.
//! - Each row records the transaction that wrote it (`xid`). The relay keeps its place
//!   in the one-row `outbox_relay` table as a *horizon* (every row of a transaction
//!   older than it is published) plus the sequence numbers already published above
//!   it. It publishes every committed row above the horizon that is not in that set,
//!   in sequence order, so a row that commits late (with a lower sequence than rows
//!   already published) is never skipped, and a long transaction holds nothing back.
//!   The horizon follows Postgres's oldest running transaction, so the set stays
//!   small. Publishing writes one small row per batch, not one per event.
//! - One relay at a time per schema holds a session advisory lock, so with several
//!   replicas the events of one aggregate still go out in commit order; the others wait
//!   and take over if the holder dies.
//! - The outbox is the service's durable event log, not a queue: rows are kept, and
//!   [`republish_from`] lets an operator send everything from a sequence again (for a
//!   JetStream that lost data: on one node it acknowledges before fsync).
//! - `{schema}.outbox_pending` is a view of the rows not yet published, for operators
//!   and tests.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::Context as JetStream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::check_schema_name;
use crate::events;

/// One event, written by a service inside its business transaction.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Unique id: the CloudEvents `ce-id` and the JetStream `Nats-Msg-Id`.
    pub id: Uuid,
    /// NATS subject, e.g. `hearth.referrals.v1.referral.accepted`; also `ce-type`.
    pub subject: String,
    /// `ce-subject`: the resource the event is about, e.g. `referrals/0192…`.
    pub resource: String,
    /// The protobuf-encoded payload.
    pub payload: Vec<u8>,
    /// When it happened (`ce-time`).
    pub time: DateTime<Utc>,
    /// The W3C trace context of the span that made the event (`traceparent`), so a
    /// consumer's work joins the trace of the call that caused it.
    pub traceparent: Option<String>,
}

impl OutboxEvent {
    /// A new event carrying the current span's trace context.
    pub fn new(
        subject: impl Into<String>,
        resource: impl Into<String>,
        payload: Vec<u8>,
        time: DateTime<Utc>,
    ) -> Self {
        OutboxEvent {
            id: Uuid::now_v7(),
            subject: subject.into(),
            resource: resource.into(),
            payload,
            time,
            traceparent: crate::telemetry::current_traceparent(),
        }
    }
}

/// The DDL of the outbox in `schema`; applied by [`crate::db::migrate`].
pub fn schema_sql(schema: &str) -> Vec<String> {
    let s = check_schema_name(schema);
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.outbox (
                seq          bigserial PRIMARY KEY,
                id           uuid NOT NULL, -- the event id (UUID); JetStream de-duplicates on it
                xid          xid8 NOT NULL DEFAULT pg_current_xact_id(), -- the writing transaction
                subject      text NOT NULL,
                source       text NOT NULL,
                resource     text NOT NULL,
                payload      bytea NOT NULL,
                traceparent  text,
                event_time   timestamptz NOT NULL,
                created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
            )"
        ),
        // An outbox from before the relay kept a horizon marked each row published.
        // Rows it had published get transaction id 0, below every horizon; those it
        // had not get this (upgrading) transaction's id, so they are still sent.
        format!(
            "DO $$
             BEGIN
                 IF EXISTS (SELECT 1 FROM information_schema.columns
                             WHERE table_schema = '{s}' AND table_name = 'outbox'
                               AND column_name = 'published_at') THEN
                     ALTER TABLE {s}.outbox ADD COLUMN IF NOT EXISTS xid xid8 NOT NULL DEFAULT '0';
                     ALTER TABLE {s}.outbox ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
                     UPDATE {s}.outbox SET xid = pg_current_xact_id() WHERE published_at IS NULL;
                     DROP INDEX IF EXISTS {s}.outbox_unpublished;
                     ALTER TABLE {s}.outbox DROP COLUMN published_at, DROP COLUMN stream_seq;
                 END IF;
             END $$"
        ),
        format!("CREATE INDEX IF NOT EXISTS outbox_xid ON {s}.outbox (xid)"),
        // Where the relay has got to: every row whose transaction is older than
        // `horizon` is published, and so are the rows numbered in `published`.
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.outbox_relay (
                singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                version           bigint NOT NULL DEFAULT 0,
                horizon           xid8 NOT NULL DEFAULT '1',
                published         bigint[] NOT NULL DEFAULT '{{}}',
                last_stream_seq   bigint,
                last_published_at timestamptz
            )"
        ),
        format!("INSERT INTO {s}.outbox_relay DEFAULT VALUES ON CONFLICT DO NOTHING"),
        format!(
            "CREATE OR REPLACE VIEW {s}.outbox_pending AS
             SELECT o.* FROM {s}.outbox o, {s}.outbox_relay r
              WHERE o.xid >= r.horizon AND NOT (o.seq = ANY (r.published))"
        ),
        // Earlier versions notified from a trigger inside the writing transaction.
        format!("DROP TRIGGER IF EXISTS outbox_notify ON {s}.outbox"),
        format!("DROP FUNCTION IF EXISTS {s}.outbox_notify()"),
    ]
}

/// The `LISTEN/NOTIFY` channel that wakes a schema's relay.
fn wake_channel(schema: &str) -> String {
    format!("{schema}_outbox")
}

/// The statement that wakes a schema's relay (sent outside any business transaction).
fn notify_sql(schema: &str) -> String {
    format!("SELECT pg_notify('{}', '')", wake_channel(schema))
}

/// Writes events through one service schema's outbox.
#[derive(Debug, Clone)]
pub struct Outbox {
    schema: &'static str,
    source: &'static str,
    insert_sql: String,
    waker: Arc<Waker>,
}

/// The least time between two wake-ups. The relay waits 5 ms after one anyway, to
/// publish a burst in one batch, so a busier wake-up buys nothing.
const WAKE_INTERVAL: Duration = Duration::from_millis(5);

/// Sends the relays' wake-up `NOTIFY` after commits, one at a time: commits that land
/// while one is in flight are covered by one more. Its task starts on the first commit
/// and lasts as long as the runtime (one per `Outbox`, shared by its clones).
#[derive(Debug)]
struct Waker {
    pool: PgPool,
    notify_sql: String,
    poke: tokio::sync::Notify,
    started: OnceLock<()>,
}

impl Waker {
    fn wake(self: &Arc<Self>) {
        self.started.get_or_init(|| {
            let me = Arc::clone(self);
            tokio::spawn(async move {
                loop {
                    me.poke.notified().await;
                    if let Err(e) = sqlx::query(&me.notify_sql).execute(&me.pool).await {
                        // The relay's slow poll still finds the rows.
                        tracing::warn!(error = %e, "outbox wake-up failed");
                    }
                    // Commits meanwhile share the next wake-up.
                    tokio::time::sleep(WAKE_INTERVAL).await;
                }
            });
        });
        self.poke.notify_one();
    }
}

impl Outbox {
    /// `source` is the CloudEvents source, e.g. `//hearth/referrals`. `pool` is used
    /// for the wake-up `NOTIFY` sent after each commit.
    pub fn new(pool: PgPool, schema: &'static str, source: &'static str) -> Self {
        let s = check_schema_name(schema);
        Outbox {
            schema,
            source,
            waker: Arc::new(Waker {
                pool,
                notify_sql: notify_sql(s),
                poke: tokio::sync::Notify::new(),
                started: OnceLock::new(),
            }),
            insert_sql: format!("WITH {} SELECT", Self::cte(s, 1)),
        }
    }

    /// `outbox_rows AS (INSERT …)`, taking its rows from parameters `$first` to
    /// `$first + 6`: a common table expression for the outbox insert.
    fn cte(schema: &str, first: usize) -> String {
        let p = |i: usize| format!("${}", first + i);
        format!(
            "outbox_rows AS (
                 INSERT INTO {schema}.outbox (id, subject, source, resource, payload, traceparent, event_time)
                 SELECT * FROM UNNEST({}::uuid[], {}::text[], {}::text[], {}::text[], {}::bytea[], {}::text[], {}::timestamptz[])
             )",
            p(0),
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        )
    }

    /// For a service that writes its change and its events in one statement (one
    /// round trip fewer): the common table expression `outbox_rows AS (INSERT …)`,
    /// using parameters `$first` to `$first + 6`. Bind them with
    /// [`bind_events`](Self::bind_events) after the statement's own parameters. The
    /// parts of one statement run in no defined order, so any lock that orders the
    /// events (the aggregate's row) must be taken by an earlier statement.
    pub fn insert_cte(&self, first: usize) -> String {
        Self::cte(self.schema, first)
    }

    /// Binds `events` for [`insert_cte`](Self::insert_cte), each with the trace
    /// context it was made in. Commit with [`commit`](Self::commit).
    pub fn bind_events<'q>(
        &self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
        events: &[&'q OutboxEvent],
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
            .bind(
                events
                    .iter()
                    .map(|e| e.subject.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(vec![self.source; events.len()])
            .bind(
                events
                    .iter()
                    .map(|e| e.resource.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                events
                    .iter()
                    .map(|e| e.payload.as_slice())
                    .collect::<Vec<_>>(),
            )
            .bind(
                events
                    .iter()
                    .map(|e| e.traceparent.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| e.time).collect::<Vec<_>>())
    }

    pub fn schema(&self) -> &'static str {
        self.schema
    }

    /// Commits a transaction that [`write`](Self::write) added events to, then wakes
    /// the relay. Use this rather than `tx.commit()`, or the events wait for the
    /// relay's slow poll.
    pub async fn commit(&self, tx: Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.waker.wake();
        Ok(())
    }

    /// Adds events to the transaction. Commit with [`commit`](Self::commit).
    pub async fn write(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[OutboxEvent],
    ) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let events: Vec<&OutboxEvent> = events.iter().collect();
        self.bind_events(sqlx::query(&self.insert_sql), &events)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Marks every event from `from_seq` on as unpublished, so the relay sends them again.
/// Returns how many rows will be re-sent. Consumers de-duplicate by event id. A relay
/// that is running notices that its place moved and carries on from the new one.
pub async fn republish_from(
    pool: &PgPool,
    schema: &str,
    from_seq: i64,
) -> Result<u64, sqlx::Error> {
    let s = check_schema_name(schema);
    // The new horizon is the oldest transaction with a row from `from_seq` on; rows
    // above it that were published and come before `from_seq` stay published.
    let resent: i64 = sqlx::query_scalar(&format!(
        "WITH old AS (
             SELECT horizon, published FROM {s}.outbox_relay FOR UPDATE
         ), new AS (
             SELECT LEAST(old.horizon, coalesce((SELECT min(xid) FROM {s}.outbox WHERE seq >= $1), old.horizon))
                    AS horizon
               FROM old
         ), resent AS (
             SELECT count(*) AS n FROM {s}.outbox o, old
              WHERE o.seq >= $1 AND (o.xid < old.horizon OR o.seq = ANY (old.published))
         ), moved AS (
             UPDATE {s}.outbox_relay r
                SET version = r.version + 1,
                    horizon = new.horizon,
                    published = ARRAY(
                        SELECT o.seq FROM {s}.outbox o
                         WHERE o.xid >= new.horizon AND o.seq < $1
                           AND (o.xid < old.horizon OR o.seq = ANY (old.published))
                         ORDER BY o.seq)
               FROM old, new
         )
         SELECT n FROM resent"
    ))
    .bind(from_seq)
    .fetch_one(pool)
    .await?;
    sqlx::query(&notify_sql(s)).execute(pool).await?;
    Ok(resent as u64)
}

/// The JetStream stream a service publishes into.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// e.g. `REFERRALS`.
    pub name: String,
    /// e.g. `hearth.referrals.v1.>`.
    pub subjects: Vec<String>,
    /// How long JetStream remembers message ids to drop repeats.
    pub duplicate_window: Duration,
}

impl StreamSpec {
    /// A contract's stream (`hearth_proto::events::<service>::STREAM`), with a
    /// two-minute duplicate window (our default: longer than any relay retry).
    pub fn of(stream: &hearth_proto::events::Stream) -> StreamSpec {
        StreamSpec {
            name: stream.name.into(),
            subjects: stream.subjects.iter().map(|s| (*s).to_owned()).collect(),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// Creates the stream if it does not exist, and brings its subjects up to date when
/// the contract added an entity (idempotent; run by the relay on start).
pub async fn ensure_stream(
    js: &JetStream,
    spec: &StreamSpec,
) -> Result<jetstream::stream::Stream, async_nats::Error> {
    let config = jetstream::stream::Config {
        name: spec.name.clone(),
        subjects: spec.subjects.clone(),
        storage: jetstream::stream::StorageType::File,
        duplicate_window: spec.duplicate_window,
        retention: jetstream::stream::RetentionPolicy::Limits,
        ..Default::default()
    };
    let mut stream = js.get_or_create_stream(config.clone()).await?;
    let mut have = stream.info().await?.config.subjects.clone();
    let mut want = spec.subjects.clone();
    have.sort();
    want.sort();
    if have != want {
        tracing::info!(stream = %spec.name, "stream subjects updated to the contract's");
        js.update_stream(config).await?;
        stream = js.get_stream(&spec.name).await?;
    }
    Ok(stream)
}

/// Publishes a schema's outbox to JetStream.
#[derive(Debug, Clone)]
pub struct Relay {
    pool: PgPool,
    js: JetStream,
    schema: &'static str,
    stream: StreamSpec,
    batch_size: i64,
    poll: Duration,
    linger: Duration,
}

/// What one pass of the relay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub published: usize,
}

struct OutboxRow {
    seq: i64,
    id: Uuid,
    subject: String,
    source: String,
    resource: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
    event_time: DateTime<Utc>,
}

impl Relay {
    pub fn new(pool: PgPool, js: JetStream, schema: &'static str, stream: StreamSpec) -> Self {
        Relay {
            pool,
            js,
            schema: check_schema_name(schema),
            stream,
            batch_size: 256,
            poll: Duration::from_secs(1),
            linger: Duration::from_millis(5),
        }
    }

    pub fn batch_size(mut self, n: i64) -> Self {
        self.batch_size = n.max(1);
        self
    }

    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll = d;
        self
    }

    /// How long to wait after a notification before publishing, so that a burst of
    /// commits goes out in one batch (default 5 ms).
    pub fn linger(mut self, d: Duration) -> Self {
        self.linger = d;
        self
    }

    /// Runs until `cancel` fires: takes the relay lock, then publishes whenever the
    /// outbox is notified (or the poll interval passes). Errors are logged and retried
    /// with back-off; nothing is lost, because a row stays unpublished until JetStream
    /// acknowledged it.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !cancel.is_cancelled() {
            match self.lead(&cancel).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(schema = self.schema, error = %err, "outbox relay interrupted; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn lead(&self, cancel: &CancellationToken) -> Result<(), async_nats::Error> {
        // The lock lives as long as this connection: if this replica dies, Postgres
        // releases it and another replica's relay takes over. Closed, never returned to
        // the pool: if this future is dropped (task aborted) before the unlock below, a
        // pooled connection would keep the lock and block every later relay.
        let mut lock_conn = self.pool.acquire().await?;
        lock_conn.close_on_drop();
        let key = format!("hearth.relay.{}", self.schema);
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                .bind(&key)
                .fetch_one(&mut *lock_conn)
                .await?;
            if got {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        let result = self.relay_loop(cancel, &mut lock_conn).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(&key)
            .execute(&mut *lock_conn)
            .await;
        result
    }

    async fn relay_loop(
        &self,
        cancel: &CancellationToken,
        lock_conn: &mut sqlx::PgConnection,
    ) -> Result<(), async_nats::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&wake_channel(self.schema)).await?;
        ensure_stream(&self.js, &self.stream).await?;
        loop {
            // Every commit so far is visible to the batches below, so the notifications
            // already buffered are answered by them. A commit after this point
            // notifies again and wakes the next round: nothing is missed.
            while listener.next_buffered().is_some() {}
            // Still the leader? If the lock's session was cut, Postgres released the
            // lock and another replica may lead: this query fails and we step down.
            sqlx::query("SELECT 1").execute(&mut *lock_conn).await?;
            loop {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                let outcome = self.publish_batch().await?;
                if outcome.published < self.batch_size as usize {
                    break;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                n = listener.recv() => {
                    n?;
                    // Let a burst of commits gather into one batch: one round of
                    // queries for many events, at the cost of `linger` latency.
                    tokio::time::sleep(self.linger).await;
                }
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// Publishes one batch of unpublished rows in sequence order, then records them as
    /// published. If anything fails, the rows acknowledged before the failure are
    /// still recorded (so an outage longer than JetStream's duplicate window cannot
    /// send them twice) and the rest are sent again later.
    pub async fn publish_batch(&self) -> Result<BatchOutcome, async_nats::Error> {
        let s = self.schema;
        let place = sqlx::query(&format!(
            "SELECT version, horizon::text::bigint AS horizon, published,
                    horizon > pg_snapshot_xmax(pg_current_snapshot()) AS ahead
               FROM {s}.outbox_relay"
        ))
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| format!("{s}.outbox_relay has no row; run the migrations"))?;
        let (version, horizon, above): (i64, i64, Vec<i64>) = (
            place.get("version"),
            place.get("horizon"),
            place.get("published"),
        );
        if place.get::<bool, _>("ahead") {
            // Transaction ids the server has not issued yet: the database was moved
            // by dump and restore or logical replication, which start ids afresh.
            // Trusting the horizon would hide every new row, so start again from the
            // beginning of the log (consumers de-duplicate by event id).
            tracing::error!(
                schema = s,
                "the relay's horizon is ahead of the server's transaction ids (was the \
                 database restored?); publishing the whole outbox again"
            );
            sqlx::query(&format!(
                "UPDATE {s}.outbox_relay SET version = version + 1, horizon = '1', published = '{{}}'
                  WHERE version = $1"
            ))
            .bind(version)
            .execute(&self.pool)
            .await?;
            return Ok(BatchOutcome { published: 0 });
        }
        // The rows come with the oldest running transaction (`xmin`) from the same
        // snapshot: every transaction older than `xmin` has finished, and its rows
        // are among those seen here. The candidates are found through the `xid`
        // index (normally a few rows above the horizon), never by walking the log in
        // sequence order. Not a prepared statement: planned each time with the
        // horizon's value, so the planner sees how few rows lie above it.
        let rows = sqlx::query(&format!(
            "WITH candidates AS MATERIALIZED (
                 SELECT seq FROM {s}.outbox WHERE xid >= $1::text::xid8 AND NOT (seq = ANY ($2))
             ), batch AS (
                 SELECT seq FROM candidates ORDER BY seq LIMIT $3
             )
             SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin,
                    o.seq, o.id, o.subject, o.source, o.resource, o.payload, o.traceparent, o.event_time
               FROM (SELECT) AS one
               LEFT JOIN (batch JOIN {s}.outbox o USING (seq)) ON true
              ORDER BY o.seq"
        ))
        .persistent(false)
        .bind(horizon)
        .bind(&above)
        .bind(self.batch_size)
        .fetch_all(&self.pool)
        .await?;
        let xmin: i64 = rows
            .first()
            .map(|r| r.get("xmin"))
            .ok_or("the outbox query returned no row")?;
        let rows: Vec<OutboxRow> = rows
            .iter()
            .filter_map(|r| {
                Some(OutboxRow {
                    seq: r.get::<Option<i64>, _>("seq")?,
                    id: r.get("id"),
                    subject: r.get("subject"),
                    source: r.get("source"),
                    resource: r.get("resource"),
                    payload: r.get("payload"),
                    traceparent: r.get("traceparent"),
                    event_time: r.get("event_time"),
                })
            })
            .collect();
        if rows.is_empty() && above.is_empty() {
            // Nothing sent and nothing above the horizon to forget: no write.
            return Ok(BatchOutcome { published: 0 });
        }

        // Send the whole batch, then collect acks in order.
        let mut failure: Option<async_nats::Error> = None;
        let mut acks = Vec::with_capacity(rows.len());
        for row in &rows {
            let sent = self
                .js
                .publish_with_headers(
                    row.subject.clone(),
                    envelope(row),
                    Bytes::from(row.payload.clone()),
                )
                .await;
            match sent {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
        }
        // Every row sent before a failed send has its ack awaited too: those that
        // JetStream stored are recorded. The first refused ack ends the prefix.
        let mut seqs = Vec::with_capacity(rows.len());
        let mut last_stream_seq = None;
        for (row, ack) in rows.iter().zip(acks) {
            match ack.await {
                Ok(ack) => {
                    seqs.push(row.seq);
                    last_stream_seq = Some(ack.sequence as i64);
                }
                Err(e) => {
                    failure.get_or_insert(e.into());
                    break;
                }
            }
        }

        // The new horizon is `xmin`, or the oldest transaction with a row still
        // unpublished below it (when the batch was full or failed part-way); the set
        // keeps only the published rows at or above it. `version` guards against a
        // concurrent change of place (`republish_from`): then nothing is recorded
        // and the next batch starts from the new place.
        let moved = sqlx::query(&format!(
            "WITH old AS (
                 SELECT $2::bigint[] || $3::bigint[] AS published
             ), new AS MATERIALIZED (
                 SELECT LEAST($4::text::xid8, (
                            SELECT min(o.xid) FROM {s}.outbox o
                             WHERE o.xid >= $5::text::xid8 AND o.xid < $4::text::xid8
                               AND NOT (o.seq = ANY (old.published)))) AS horizon,
                        old.published
                   FROM old
             )
             UPDATE {s}.outbox_relay r
                SET version = r.version + 1,
                    horizon = new.horizon,
                    published = ARRAY(SELECT o.seq FROM {s}.outbox o
                                       WHERE o.seq = ANY (new.published) AND o.xid >= new.horizon
                                       ORDER BY o.seq),
                    last_stream_seq = coalesce($6, r.last_stream_seq),
                    last_published_at = CASE WHEN $6 IS NULL THEN r.last_published_at ELSE clock_timestamp() END
               FROM new WHERE r.version = $1"
        ))
        .persistent(false)
        .bind(version)
        .bind(&above)
        .bind(&seqs)
        .bind(xmin)
        .bind(horizon)
        .bind(last_stream_seq)
        .execute(&self.pool)
        .await?;
        if moved.rows_affected() == 0 {
            tracing::info!(
                schema = s,
                "the relay's place moved under it (a republish, or another relay); continuing from there"
            );
        }
        if let Some(err) = failure {
            return Err(err);
        }
        tracing::debug!(schema = s, count = rows.len(), "outbox batch published");
        Ok(BatchOutcome {
            published: rows.len(),
        })
    }
}

fn envelope(row: &OutboxRow) -> async_nats::HeaderMap {
    events::Envelope {
        id: row.id,
        ce_type: &row.subject,
        source: &row.source,
        resource: &row.resource,
        time: row.event_time,
        traceparent: row.traceparent.as_deref(),
    }
    .headers()
}
