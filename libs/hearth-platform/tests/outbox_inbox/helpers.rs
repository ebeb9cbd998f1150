//! Small shared pieces: a per-test database and NATS server, writing committed
//! events, running a relay, and reading the stream back.

use std::collections::HashSet;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use async_nats::jetstream::context::Context as JetStream;
use async_nats::jetstream::{self, stream::Stream};
use chrono::Utc;
use futures::StreamExt;
use hearth_platform::config::Secret;
use hearth_platform::db;
use hearth_platform::outbox::{Outbox, OutboxEvent, Relay, StreamSpec};
use hearth_platform::telemetry::{self, Telemetry};
use hearth_testkit::{NatsOptions, NatsServer, shared_pg};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub type TestResult = Result<(), async_nats::Error>;

/// The producing service's schema, and the consuming one's.
pub const SCHEMA: &str = "t_outbox";
pub const IN_SCHEMA: &str = "t_in";
pub const STREAM: &str = "ITEMS";
pub const SUBJECT: &str = "hearth.items.v1.item.created";
pub const SOURCE: &str = "//hearth/items";
pub const POLL: Duration = Duration::from_millis(200);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("tests/outbox_inbox/migrations");

pub struct Env {
    pub pool: PgPool,
    pub nats: NatsServer,
    pub js: JetStream,
    pub outbox: Outbox,
}

/// A fresh database with the platform tables and the test tables, and a private NATS.
pub async fn setup() -> Env {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let cfg = hearth_platform::config::TelemetryConfig::from_env(
            &hearth_platform::config::Env::process(),
        )
        .expect("RUST_LOG");
        telemetry::init("test", &cfg)
    });

    let pg = tokio::task::block_in_place(shared_pg);
    let url = pg.fresh_database().await.expect("fresh database");
    let pool = db::connect(&Secret::new(url), SCHEMA, 8, Duration::from_secs(10))
        .await
        .expect("connect");
    for schema in [SCHEMA, IN_SCHEMA] {
        db::migrate(&pool, schema, &MIGRATOR)
            .await
            .expect("migrate");
    }
    sqlx::raw_sql(
        "CREATE TABLE t_outbox.items (id uuid PRIMARY KEY, note text NOT NULL);
         CREATE TABLE t_in.totals (id int PRIMARY KEY, n bigint NOT NULL);
         INSERT INTO t_in.totals VALUES (1, 0);",
    )
    .execute(&pool)
    .await
    .expect("test tables");

    let nats =
        tokio::task::block_in_place(|| NatsServer::start(NatsOptions::default())).expect("nats");
    let client = hearth_platform::server::connect_nats(&Secret::new(nats.url()), "test")
        .await
        .expect("connect nats");
    Env {
        outbox: Outbox::new(pool.clone(), SCHEMA, SOURCE),
        pool,
        nats,
        js: jetstream::new(client),
    }
}

pub fn stream_spec() -> StreamSpec {
    StreamSpec {
        name: STREAM.into(),
        subjects: vec!["hearth.items.v1.>".into()],
        duplicate_window: Duration::from_secs(120),
    }
}

impl Env {
    /// Applies the platform tables and the test migrations to the producer's schema
    /// again (as a new release starting would).
    pub async fn migrate_again(&self) -> Result<(), sqlx::migrate::MigrateError> {
        db::migrate(&self.pool, SCHEMA, &MIGRATOR).await
    }

    pub fn relay(&self) -> Relay {
        Relay::new(self.pool.clone(), self.js.clone(), SCHEMA, stream_spec()).poll_interval(POLL)
    }

    /// Inserts a business row and its events in one transaction, and commits.
    pub async fn commit(
        &self,
        resource: &str,
        notes: &[&str],
    ) -> Result<Vec<OutboxEvent>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let events = self.write(&mut tx, resource, notes).await?;
        self.outbox.commit(tx).await?;
        Ok(events)
    }

    /// The business rows and events, inside the caller's transaction.
    pub async fn write(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        resource: &str,
        notes: &[&str],
    ) -> Result<Vec<OutboxEvent>, sqlx::Error> {
        let events: Vec<OutboxEvent> = notes
            .iter()
            .map(|note| OutboxEvent::new(SUBJECT, resource, note.as_bytes().to_vec(), Utc::now()))
            .collect();
        for (ev, note) in events.iter().zip(notes) {
            sqlx::query("INSERT INTO t_outbox.items (id, note) VALUES ($1, $2)")
                .bind(ev.id)
                .bind(note)
                .execute(&mut **tx)
                .await?;
        }
        self.outbox.write(tx, &events).await?;
        Ok(events)
    }

    /// Commits one event per note, each in its own transaction; returns their ids.
    pub async fn commit_each(
        &self,
        resource: &str,
        notes: &[String],
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        let mut ids = Vec::with_capacity(notes.len());
        for note in notes {
            ids.push(self.commit(resource, &[note.as_str()]).await?[0].id);
        }
        Ok(ids)
    }

    pub async fn unpublished(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM t_outbox.outbox_pending")
            .fetch_one(&self.pool)
            .await
            .expect("count unpublished")
    }

    pub async fn is_published(&self, id: Uuid) -> bool {
        sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM t_outbox.outbox_pending WHERE id = $1)",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .expect("published?")
    }

    /// Waits until the relay has recorded every committed row as published.
    pub async fn all_published(&self, within: Duration) {
        eventually("every outbox row published", within, || async move {
            self.unpublished().await == 0
        })
        .await;
    }

    pub async fn stream(&self) -> Result<Stream, async_nats::Error> {
        Ok(self.js.get_stream(STREAM).await?)
    }

    /// How many messages the stream holds.
    pub async fn stream_count(&self) -> Result<u64, async_nats::Error> {
        Ok(self.stream().await?.info().await?.state.messages)
    }

    /// Every message on the stream, in stream order, read with an ordered consumer.
    pub async fn read_stream(&self) -> Result<Vec<jetstream::Message>, async_nats::Error> {
        let stream = self.stream().await?;
        let n = self.stream_count().await? as usize;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
            .await?;
        let mut messages = consumer.messages().await?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .map_err(|_| format!("stream read stalled after {} of {n} messages", out.len()))?
                .ok_or("ordered consumer ended")??;
            out.push(msg);
        }
        Ok(out)
    }
}

/// A task that runs until cancelled (a relay, an inbox).
pub struct Running {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl Running {
    pub fn start<F>(run: impl FnOnce(CancellationToken) -> F) -> Running
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(run(cancel.clone()));
        Running { cancel, handle }
    }

    pub fn relay(relay: Relay) -> Running {
        Running::start(|cancel| relay.run(cancel))
    }

    /// Cancels and waits for the task to return.
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("the task stops when cancelled")
            .expect("the task panicked");
    }
}

/// Polls `check` every 20 ms until it holds; panics after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn header(msg: &async_nats::Message, name: &str) -> Option<String> {
    msg.headers
        .as_ref()?
        .get(name)
        .map(|v| v.as_str().to_owned())
}

/// The `ce-id`s of the messages, in stream order.
pub fn ce_ids(msgs: &[jetstream::Message]) -> Vec<Uuid> {
    msgs.iter()
        .map(|m| {
            header(m, "ce-id")
                .and_then(|id| id.parse().ok())
                .expect("message has a UUID ce-id")
        })
        .collect()
}

/// Asserts the stream holds each expected event exactly once and nothing else.
pub async fn assert_exactly_once(env: &Env, expected: &[Uuid]) -> TestResult {
    let msgs = env.read_stream().await?;
    let ids = ce_ids(&msgs);
    let distinct: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "an event was published twice");
    assert_eq!(
        distinct,
        expected.iter().copied().collect::<HashSet<_>>(),
        "published events differ from committed ones"
    );
    assert_eq!(env.stream_count().await?, expected.len() as u64);
    Ok(())
}

pub fn notes(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}
