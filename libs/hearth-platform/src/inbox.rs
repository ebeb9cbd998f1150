//! The inbox: consuming another service's events exactly once in effect.
//!
//! A durable JetStream pull consumer delivers at least once. For each message, the
//! handler's effect and an inbox row (consumer, event id) are written in one Postgres
//! transaction; the message is acknowledged only after that commits. A redelivered
//! message finds its inbox row and is acknowledged without a second effect. A transient
//! failure is `nak`ed with a growing delay; a poison message (or one that has failed
//! `max_deliver` times) is written to the dead-letter table and terminated, and the
//! rest keep flowing.
//!
//! To replay a stream from the start (to rebuild a read model), clear the read model
//! and call [`reset_in_tx`] in one transaction, then [`delete_consumer`]; the next
//! [`Inbox::run`] recreates the durable consumer at the start of the stream.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::Context as JetStream;
use futures::StreamExt;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::db::check_schema_name;
use crate::events::Event;

/// The DDL of the inbox and dead-letter tables in `schema`.
pub fn schema_sql(schema: &str) -> Vec<String> {
    let s = check_schema_name(schema);
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.inbox (
                consumer     text NOT NULL,
                event_id     uuid NOT NULL,
                subject      text NOT NULL,
                processed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer, event_id)
            )"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.dead_letters (
                id          bigserial PRIMARY KEY,
                consumer    text NOT NULL,
                event_id    text,
                subject     text NOT NULL,
                headers     jsonb NOT NULL,
                payload     bytea NOT NULL,
                error       text NOT NULL,
                deliveries  bigint NOT NULL,
                created_at  timestamptz NOT NULL DEFAULT now()
            )"
        ),
    ]
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth retrying later (a database hiccup, a dependency down).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (undecodable payload, impossible data): dead-letter it.
    #[error("poison: {0}")]
    Poison(String),
}

impl From<sqlx::Error> for HandleError {
    fn from(err: sqlx::Error) -> Self {
        HandleError::Transient(err.to_string())
    }
}

/// Applies one event's effect inside the given transaction. Must not commit it.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Event,
    ) -> impl Future<Output = Result<(), HandleError>> + Send + 'a;
}

/// Which stream to read and how.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The stream, e.g. `REFERRALS`.
    pub stream: String,
    /// Durable consumer name, also the inbox's `consumer` column, e.g. `assessments`.
    pub durable: String,
    /// Subjects to receive, e.g. `hearth.referrals.v1.>`. One filter: nats-server 2.9
    /// ignores the multi-filter form.
    pub filter_subject: String,
    /// Deliveries before a message whose handler keeps failing is dead-lettered.
    /// Failures of the inbox's own database work never dead-letter: those messages
    /// are retried until the database is back.
    pub max_deliver: i64,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// First `nak` delay; doubles per delivery up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
}

impl ConsumerSpec {
    pub fn new(stream: &str, durable: &str, filter_subject: &str) -> Self {
        ConsumerSpec {
            stream: stream.into(),
            durable: durable.into(),
            filter_subject: filter_subject.into(),
            max_deliver: 8,
            ack_wait: Duration::from_secs(30),
            retry_delay: Duration::from_millis(500),
            max_retry_delay: Duration::from_secs(60),
        }
    }

    fn nak_delay(&self, delivered: i64) -> Duration {
        let exp = delivered.clamp(1, 20) as u32 - 1;
        self.retry_delay
            .saturating_mul(1 << exp.min(16))
            .min(self.max_retry_delay)
    }
}

/// What applying one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The effect committed now.
    Done,
    /// The event was already processed; nothing changed.
    Duplicate,
    /// Failed; will be retried.
    Retry(String),
    /// Written to the dead-letter table.
    DeadLettered(String),
}

/// What a consumer has done since the process started, and how far behind it is:
/// logged every [`REPORT_EVERY`], and kept for a metrics endpoint.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Events whose effect committed.
    pub processed: AtomicU64,
    /// Redeliveries recognised by their inbox row.
    pub duplicates: AtomicU64,
    /// Handler failures sent back for redelivery.
    pub retried: AtomicU64,
    /// Events written to the dead-letter table.
    pub dead_lettered: AtomicU64,
    /// Messages on the stream not yet delivered to this consumer, at the last look.
    pub pending: AtomicU64,
    /// Messages delivered and not yet acknowledged, at the last look.
    pub ack_pending: AtomicU64,
}

/// How often a consumer looks at its lag and logs its counts (our default).
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

impl ConsumerStats {
    fn count(&self, applied: &Applied) {
        let counter = match applied {
            Applied::Done => &self.processed,
            Applied::Duplicate => &self.duplicates,
            Applied::Retry(_) => &self.retried,
            Applied::DeadLettered(_) => &self.dead_lettered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A consumer of one stream into one service schema.
pub struct Inbox<H> {
    pool: PgPool,
    js: JetStream,
    spec: ConsumerSpec,
    handler: H,
    insert_sql: String,
    dead_letter_sql: String,
    stats: Arc<ConsumerStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("nats: {0}")]
    Nats(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("consumer {durable}: the server kept {setting} {got}, not {wanted}")]
    ConfigDropped {
        durable: String,
        setting: &'static str,
        wanted: String,
        got: String,
    },
}

fn nats_err(e: impl std::fmt::Display) -> InboxError {
    InboxError::Nats(e.to_string())
}

impl<H: Handler> Inbox<H> {
    pub fn new(
        pool: PgPool,
        js: JetStream,
        schema: &'static str,
        spec: ConsumerSpec,
        handler: H,
    ) -> Self {
        let s = check_schema_name(schema);
        Inbox {
            pool,
            js,
            spec,
            handler,
            insert_sql: format!(
                "INSERT INTO {s}.inbox (consumer, event_id, subject) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            ),
            dead_letter_sql: format!(
                "INSERT INTO {s}.dead_letters (consumer, event_id, subject, headers, payload, error, deliveries)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            stats: Arc::default(),
        }
    }

    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Its counts and lag.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        Arc::clone(&self.stats)
    }

    pub fn spec(&self) -> &ConsumerSpec {
        &self.spec
    }

    /// Creates (or opens) the durable consumer and checks that the server kept its
    /// configuration.
    pub async fn consumer(&self) -> Result<PullConsumer, InboxError> {
        let stream = self
            .js
            .get_stream(&self.spec.stream)
            .await
            .map_err(nats_err)?;
        let mut consumer: PullConsumer = stream
            .get_or_create_consumer(
                &self.spec.durable,
                pull::Config {
                    durable_name: Some(self.spec.durable.clone()),
                    filter_subject: self.spec.filter_subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait: self.spec.ack_wait,
                    // Unlimited on the server: if JetStream stopped redelivering, an
                    // event that failed for an infrastructure reason (the database
                    // down) would be dropped with no dead-letter row. The inbox itself
                    // dead-letters a handler's repeated failures at `max_deliver`.
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(nats_err)?;
        let info = consumer.info().await.map_err(nats_err)?;
        check_config(&self.spec, &info.config)?;
        Ok(consumer)
    }

    /// Consumes until `cancel` fires, reconnecting after errors.
    pub async fn run(&self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        let mut waiting_for_stream = false;
        while !cancel.is_cancelled() {
            match self.consume(&cancel).await {
                Ok(()) => return,
                // The producing service has not run yet (its relay makes the stream):
                // say so once, and look again every second.
                Err(InboxError::Nats(e)) if e.contains("stream not found") => {
                    if !waiting_for_stream {
                        tracing::info!(consumer = %self.spec.durable, stream = %self.spec.stream, "waiting for the stream to exist");
                        waiting_for_stream = true;
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(consumer = %self.spec.durable, error = %err, "inbox interrupted; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn consume(&self, cancel: &CancellationToken) -> Result<(), InboxError> {
        let mut consumer = self.consumer().await?;
        let mut messages = consumer.messages().await.map_err(nats_err)?;
        let mut report = tokio::time::interval(REPORT_EVERY);
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = report.tick() => {
                    self.report(&mut consumer).await;
                    continue;
                }
                m = messages.next() => m,
            };
            let Some(msg) = next else {
                return Err(InboxError::Nats("message stream ended".into()));
            };
            let msg = msg.map_err(nats_err)?;
            self.process(&msg).await?;
        }
    }

    /// Reads the consumer's lag from the server and logs it with the counts.
    async fn report(&self, consumer: &mut PullConsumer) {
        let Ok(info) = consumer.info().await else {
            return;
        };
        let s = &self.stats;
        s.pending.store(info.num_pending, Ordering::Relaxed);
        s.ack_pending
            .store(info.num_ack_pending as u64, Ordering::Relaxed);
        let dead = s.dead_lettered.load(Ordering::Relaxed);
        let fields = (
            info.num_pending,
            info.num_ack_pending,
            s.processed.load(Ordering::Relaxed),
            dead,
        );
        if info.num_pending > 0 || dead > 0 {
            tracing::info!(consumer = %self.spec.durable, pending = fields.0, ack_pending = fields.1,
                processed = fields.2, dead_lettered = fields.3, "consumer lag");
        } else {
            tracing::debug!(consumer = %self.spec.durable, processed = fields.2, "consumer caught up");
        }
    }

    /// Applies then settles one message (ack, nak or term).
    pub async fn process(&self, msg: &jetstream::Message) -> Result<Applied, InboxError> {
        let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
        let applied = match self.apply(msg).await {
            Ok(applied) => applied,
            Err(err) => {
                // Nothing committed (the database, most likely, is unreachable): ask
                // for redelivery later rather than waiting out the ack timeout.
                let _ = msg
                    .ack_with(AckKind::Nak(Some(self.spec.nak_delay(delivered))))
                    .await;
                return Err(err);
            }
        };
        self.stats.count(&applied);
        let kind = match &applied {
            Applied::Done | Applied::Duplicate => AckKind::Ack,
            Applied::Retry(_) => AckKind::Nak(Some(self.spec.nak_delay(delivered))),
            Applied::DeadLettered(_) => AckKind::Term,
        };
        // If the ack is lost the message comes back and is recognised as a duplicate.
        msg.ack_with(kind).await.map_err(nats_err)?;
        Ok(applied)
    }

    /// Applies one message's effect (or recognises it as already applied) and commits,
    /// without acknowledging it. [`Inbox::process`] is this followed by the ack.
    pub async fn apply(&self, msg: &jetstream::Message) -> Result<Applied, InboxError> {
        let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
        let event = match Event::from_message(msg) {
            Ok(ev) => ev,
            Err(err) => {
                return self
                    .dead_letter(msg, None, &err.to_string(), delivered)
                    .await;
            }
        };
        let span = tracing::info_span!(
            "consume",
            otel.name = %event.ce_type,
            consumer = %self.spec.durable,
            event_id = %event.id,
        );
        if let Some(tp) = &event.traceparent {
            crate::telemetry::set_parent_from_traceparent(&span, tp);
        }
        async {
            let mut tx = self.pool.begin().await?;
            let fresh = sqlx::query(&self.insert_sql)
                .bind(&self.spec.durable)
                .bind(event.id)
                .bind(&event.subject)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !fresh {
                tx.rollback().await?;
                return Ok(Applied::Duplicate);
            }
            match self.handler.handle(&mut tx, &event).await {
                Ok(()) => {
                    tx.commit().await?;
                    Ok(Applied::Done)
                }
                Err(HandleError::Transient(why)) => {
                    tx.rollback().await?;
                    if delivered >= self.spec.max_deliver {
                        self.dead_letter(msg, Some(&event), &format!("gave up after {delivered} deliveries: {why}"), delivered)
                            .await
                    } else {
                        tracing::warn!(error = %why, delivered, "event handling failed; will retry");
                        Ok(Applied::Retry(why))
                    }
                }
                Err(HandleError::Poison(why)) => {
                    tx.rollback().await?;
                    self.dead_letter(msg, Some(&event), &why, delivered).await
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn dead_letter(
        &self,
        msg: &jetstream::Message,
        event: Option<&Event>,
        why: &str,
        delivered: i64,
    ) -> Result<Applied, InboxError> {
        let headers: serde_json::Map<String, serde_json::Value> = msg
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .map(|(k, v)| {
                let v: Vec<&str> = v.iter().map(|x| x.as_str()).collect();
                (k.to_string(), serde_json::Value::from(v.join(",")))
            })
            .collect();
        sqlx::query(&self.dead_letter_sql)
            .bind(&self.spec.durable)
            .bind(event.map(|e| e.id.to_string()))
            .bind(msg.subject.as_str())
            .bind(serde_json::Value::Object(headers))
            .bind(msg.payload.to_vec())
            .bind(why)
            .bind(delivered)
            .execute(&self.pool)
            .await?;
        tracing::error!(consumer = %self.spec.durable, subject = %msg.subject, error = %why, "event dead-lettered");
        Ok(Applied::DeadLettered(why.to_owned()))
    }
}

/// Checks that the server kept the consumer as asked: nats-server 2.9 silently drops
/// settings it does not know (the multi-subject `filter_subjects`, for one), and a
/// consumer created earlier with other settings is returned as it is.
fn check_config(
    spec: &ConsumerSpec,
    got: &async_nats::jetstream::consumer::Config,
) -> Result<(), InboxError> {
    let dropped = |setting, wanted: String, got: String| InboxError::ConfigDropped {
        durable: spec.durable.clone(),
        setting,
        wanted,
        got,
    };
    if got.filter_subject != spec.filter_subject {
        return Err(dropped(
            "filter_subject",
            spec.filter_subject.clone(),
            got.filter_subject.clone(),
        ));
    }
    if got.durable_name.as_deref() != Some(spec.durable.as_str()) {
        return Err(dropped(
            "durable_name",
            spec.durable.clone(),
            format!("{:?}", got.durable_name),
        ));
    }
    if got.ack_policy != AckPolicy::Explicit {
        return Err(dropped(
            "ack_policy",
            "explicit".into(),
            format!("{:?}", got.ack_policy),
        ));
    }
    if got.deliver_policy != DeliverPolicy::All {
        return Err(dropped(
            "deliver_policy",
            "all".into(),
            format!("{:?}", got.deliver_policy),
        ));
    }
    Ok(())
}

/// Forgets which events `consumer` processed, inside the caller's transaction (which
/// also clears the read model being rebuilt).
pub async fn reset_in_tx(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
    consumer: &str,
) -> Result<u64, sqlx::Error> {
    let s = check_schema_name(schema);
    let done = sqlx::query(&format!("DELETE FROM {s}.inbox WHERE consumer = $1"))
        .bind(consumer)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes the durable consumer so the next run starts again from the stream's start.
pub async fn delete_consumer(js: &JetStream, spec: &ConsumerSpec) -> Result<(), InboxError> {
    let stream = js.get_stream(&spec.stream).await.map_err(nats_err)?;
    match stream.delete_consumer(&spec.durable).await {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("not found") => Ok(()),
        Err(e) => Err(nats_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_the_server_changed_is_refused() {
        let spec = ConsumerSpec::new("S", "c", "a.>");
        let good = async_nats::jetstream::consumer::Config {
            durable_name: Some("c".into()),
            filter_subject: "a.>".into(),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        };
        assert!(check_config(&spec, &good).is_ok());
        let mut dropped = good.clone();
        dropped.filter_subject = String::new();
        assert!(matches!(
            check_config(&spec, &dropped),
            Err(InboxError::ConfigDropped {
                setting: "filter_subject",
                ..
            })
        ));
        let mut late = good.clone();
        late.deliver_policy = DeliverPolicy::New;
        assert!(check_config(&spec, &late).is_err());
    }

    #[test]
    fn nak_delay_grows_and_is_capped() {
        let spec = ConsumerSpec::new("S", "c", "a.>");
        assert_eq!(spec.nak_delay(1), Duration::from_millis(500));
        assert_eq!(spec.nak_delay(2), Duration::from_millis(1000));
        assert_eq!(spec.nak_delay(3), Duration::from_millis(2000));
        assert_eq!(spec.nak_delay(50), Duration::from_secs(60));
    }
}
