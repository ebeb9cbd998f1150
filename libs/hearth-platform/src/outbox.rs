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
//! - Rows are claimed by `published_at IS NULL`, not by a high-water mark, so a row
//!   that commits late (with a lower sequence than rows already published) is never
//!   skipped.
//! - One relay at a time per schema holds a session advisory lock, so with several
//!   replicas the events of one aggregate still go out in commit order; the others wait
//!   and take over if the holder dies.
//! - The outbox is the service's durable event log, not a queue: rows are kept, and
//!   [`republish_from`] lets an operator send everything from a sequence again (for a
//!   JetStream that lost data: on one node it acknowledges before fsync).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::Context as JetStream;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::check_schema_name;
use crate::events::{self, headers as h};

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
}

impl OutboxEvent {
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
                subject      text NOT NULL,
                source       text NOT NULL,
                resource     text NOT NULL,
                payload      bytea NOT NULL,
                traceparent  text,
                event_time   timestamptz NOT NULL,
                created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
                published_at timestamptz,
                stream_seq   bigint
            )"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS outbox_unpublished ON {s}.outbox (seq) WHERE published_at IS NULL"
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
            insert_sql: format!(
                "INSERT INTO {s}.outbox (id, subject, source, resource, payload, traceparent, event_time)
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::timestamptz[])"
            ),
        }
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

    /// Adds events to the transaction, carrying the current trace context. Commit with
    /// [`commit`](Self::commit).
    pub async fn write(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[OutboxEvent],
    ) -> Result<(), sqlx::Error> {
        if events.is_empty() {
            return Ok(());
        }
        let tp = crate::telemetry::current_traceparent();
        let n = events.len();
        sqlx::query(&self.insert_sql)
            .bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.subject.clone()).collect::<Vec<_>>())
            .bind(vec![self.source.to_owned(); n])
            .bind(
                events
                    .iter()
                    .map(|e| e.resource.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
            .bind(vec![tp; n])
            .bind(events.iter().map(|e| e.time).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Marks every event from `from_seq` on as unpublished, so the relay sends them again.
/// Returns how many rows will be re-sent. Consumers de-duplicate by event id.
pub async fn republish_from(
    pool: &PgPool,
    schema: &str,
    from_seq: i64,
) -> Result<u64, sqlx::Error> {
    let s = check_schema_name(schema);
    let done = sqlx::query(&format!(
        "UPDATE {s}.outbox SET published_at = NULL, stream_seq = NULL WHERE seq >= $1 AND published_at IS NOT NULL"
    ))
    .bind(from_seq)
    .execute(pool)
    .await?;
    sqlx::query(&notify_sql(s)).execute(pool).await?;
    Ok(done.rows_affected())
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

/// Creates the stream if it does not exist (idempotent; run by the relay on start).
pub async fn ensure_stream(
    js: &JetStream,
    spec: &StreamSpec,
) -> Result<jetstream::stream::Stream, async_nats::Error> {
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: spec.name.clone(),
            subjects: spec.subjects.clone(),
            storage: jetstream::stream::StorageType::File,
            duplicate_window: spec.duplicate_window,
            retention: jetstream::stream::RetentionPolicy::Limits,
            ..Default::default()
        })
        .await?;
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

    /// Publishes one batch of unpublished rows in sequence order and marks them
    /// published, all in one transaction: if anything fails, no row is marked and the
    /// whole batch is sent again (JetStream drops the repeats by message id).
    pub async fn publish_batch(&self) -> Result<BatchOutcome, async_nats::Error> {
        let s = self.schema;
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT seq, id, subject, source, resource, payload, traceparent, event_time
               FROM {s}.outbox WHERE published_at IS NULL
              ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED"
        ))
        .bind(self.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(BatchOutcome { published: 0 });
        }
        let rows: Vec<OutboxRow> = rows
            .into_iter()
            .map(|r| OutboxRow {
                seq: r.get("seq"),
                id: r.get("id"),
                subject: r.get("subject"),
                source: r.get("source"),
                resource: r.get("resource"),
                payload: r.get("payload"),
                traceparent: r.get("traceparent"),
                event_time: r.get("event_time"),
            })
            .collect();

        // Send the whole batch, then collect acks in order. Rows acknowledged before a
        // failure are still marked published, so an outage longer than JetStream's
        // duplicate window cannot make them go out twice.
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
        let mut seqs = Vec::with_capacity(rows.len());
        let mut stream_seqs = Vec::with_capacity(rows.len());
        for (row, ack) in rows.iter().zip(acks) {
            if failure.is_some() {
                break;
            }
            match ack.await {
                Ok(ack) => {
                    seqs.push(row.seq);
                    stream_seqs.push(ack.sequence as i64);
                }
                Err(e) => failure = Some(e.into()),
            }
        }
        sqlx::query(&format!(
            "UPDATE {s}.outbox o SET published_at = clock_timestamp(), stream_seq = u.stream_seq
               FROM UNNEST($1::bigint[], $2::bigint[]) AS u(seq, stream_seq) WHERE o.seq = u.seq"
        ))
        .bind(&seqs)
        .bind(&stream_seqs)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
    let mut headers = async_nats::HeaderMap::new();
    let id = row.id.to_string();
    headers.insert(h::NATS_MSG_ID, id.as_str());
    headers.insert(h::CE_ID, id.as_str());
    headers.insert(h::CE_SPECVERSION, events::CE_SPECVERSION);
    headers.insert(h::CE_TYPE, row.subject.as_str());
    headers.insert(h::CE_SOURCE, row.source.as_str());
    headers.insert(h::CE_SUBJECT, row.resource.as_str());
    headers.insert(
        h::CE_TIME,
        row.event_time
            .to_rfc3339_opts(SecondsFormat::Micros, true)
            .as_str(),
    );
    headers.insert(h::CONTENT_TYPE, events::CONTENT_TYPE);
    if let Some(tp) = &row.traceparent {
        headers.insert(h::TRACEPARENT, tp.as_str());
    }
    headers
}
