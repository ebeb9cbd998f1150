//! The inbox: effects applied once despite redelivery, poison and transient failures
//! dead-lettered without blocking the rest, and replay from the stream's start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer;
use futures::StreamExt;
use hearth_platform::events::Event;
use hearth_platform::inbox::{
    Applied, ConsumerSpec, HandleError, Handler, Inbox, delete_consumer, reset_in_tx,
};
use hearth_platform::outbox::ensure_stream;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::helpers::*;

const DURABLE: &str = "totals";
const WAIT: Duration = Duration::from_secs(20);

/// Adds one to `t_in.totals` per event; `poison` and `flaky` payloads fail.
#[derive(Default)]
struct Counter {
    calls: Mutex<Vec<String>>,
}

impl Counter {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn calls_for(&self, payload: &str) -> usize {
        self.calls().iter().filter(|c| *c == payload).count()
    }
}

impl Handler for Counter {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Event,
    ) -> Result<(), HandleError> {
        let payload = String::from_utf8_lossy(&event.payload).into_owned();
        self.calls.lock().unwrap().push(payload.clone());
        match payload.as_str() {
            "poison" => Err(HandleError::Poison("cannot decode the payload".into())),
            "flaky" => Err(HandleError::Transient("dependency unavailable".into())),
            _ => {
                sqlx::query("UPDATE t_in.totals SET n = n + 1 WHERE id = 1")
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }
    }
}

fn spec() -> ConsumerSpec {
    ConsumerSpec {
        retry_delay: Duration::from_millis(50),
        max_retry_delay: Duration::from_millis(200),
        ..ConsumerSpec::new(STREAM, DURABLE, "hearth.items.v1.>")
    }
}

fn inbox(env: &Env, spec: ConsumerSpec) -> Arc<Inbox<Counter>> {
    Arc::new(Inbox::new(
        env.pool.clone(),
        env.js.clone(),
        IN_SCHEMA,
        spec,
        Counter::default(),
    ))
}

fn run(inbox: &Arc<Inbox<Counter>>) -> Running {
    let inbox = inbox.clone();
    Running::start(|cancel| async move { inbox.run(cancel).await })
}

/// Commits one event per payload and relays them onto the stream.
async fn produce(env: &Env, payloads: &[String]) -> Result<Vec<Uuid>, async_nats::Error> {
    ensure_stream(&env.js, &stream_spec()).await?;
    let ids = env.commit_each("items/x", payloads).await?;
    let relay = env.relay();
    while relay.publish_batch().await?.published > 0 {}
    assert_eq!(env.unpublished().await, 0);
    Ok(ids)
}

/// Publishes straight to the stream with the given headers.
async fn publish_raw(env: &Env, headers: &[(&str, &str)], payload: &'static str) -> TestResult {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, *v);
    }
    env.js
        .publish_with_headers(SUBJECT, map, payload.into())
        .await?
        .await?;
    Ok(())
}

async fn consumer_info(env: &Env) -> Result<consumer::Info, async_nats::Error> {
    Ok(env.stream().await?.consumer_info(DURABLE).await?)
}

/// Whether the consumer has delivered everything and has nothing awaiting an ack.
async fn drained(env: &Env) -> bool {
    consumer_info(env)
        .await
        .is_ok_and(|i| i.num_pending == 0 && i.num_ack_pending == 0)
}

async fn total(env: &Env) -> i64 {
    sqlx::query_scalar("SELECT n FROM t_in.totals WHERE id = 1")
        .fetch_one(&env.pool)
        .await
        .expect("total")
}

async fn count(env: &Env, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM t_in.{table}"))
        .fetch_one(&env.pool)
        .await
        .expect("count")
}

/// Waits until the total is `n`, `dead` messages are dead-lettered and the consumer is drained.
async fn settle(env: &Env, n: i64, dead: i64) {
    eventually(
        &format!("total {n}, {dead} dead letters, consumer drained"),
        WAIT,
        || async move {
            total(env).await == n && count(env, "dead_letters").await == dead && drained(env).await
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_applied_once() -> TestResult {
    let env = setup().await;
    let ids = produce(&env, &notes("a", 20)).await?;
    // The same event again under another message id (a republish after the duplicate
    // window): JetStream keeps it, the inbox must not apply it twice.
    let again = ids[3].to_string();
    let msg_id = Uuid::new_v4().to_string();
    publish_raw(
        &env,
        &[
            ("Nats-Msg-Id", &msg_id),
            ("ce-id", &again),
            ("ce-type", SUBJECT),
        ],
        "a-3",
    )
    .await?;
    assert_eq!(env.stream_count().await?, 21);

    let inbox = inbox(&env, spec());
    let task = run(&inbox);
    settle(&env, 20, 0).await;
    task.stop().await;

    assert_eq!(total(&env).await, 20);
    assert_eq!(count(&env, "inbox").await, 20);
    assert_eq!(inbox.handler().calls().len(), 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effect_committed_but_ack_lost_is_not_applied_again() -> TestResult {
    let env = setup().await;
    produce(&env, &["one".to_owned()]).await?;
    let inbox = inbox(
        &env,
        ConsumerSpec {
            ack_wait: Duration::from_secs(1),
            ..spec()
        },
    );

    // The consumer applies the message, then dies before acknowledging it.
    let consumer = inbox.consumer().await?;
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await?;
    let msg = batch.next().await.ok_or("no message fetched")??;
    assert_eq!(inbox.apply(&msg).await?, Applied::Done);
    drop((msg, batch));
    assert_eq!(total(&env).await, 1);
    assert_eq!(consumer_info(&env).await?.num_ack_pending, 1);

    // After ack_wait the server redelivers; the inbox recognises it and acks.
    let task = run(&inbox);
    settle(&env, 1, 0).await;
    task.stop().await;

    let info = consumer_info(&env).await?;
    assert_eq!(info.ack_floor.stream_sequence, 1);
    assert!(
        info.delivered.consumer_sequence >= 2,
        "the message was redelivered"
    );
    assert_eq!(total(&env).await, 1);
    assert_eq!(inbox.handler().calls(), vec!["one"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_message_is_dead_lettered_and_the_rest_flow() -> TestResult {
    let env = setup().await;
    let payloads: Vec<String> = ["p0", "p1", "poison", "p3", "p4"].map(String::from).into();
    let ids = produce(&env, &payloads).await?;

    let inbox = inbox(&env, spec());
    let task = run(&inbox);
    settle(&env, 4, 1).await;
    task.stop().await;

    let (event_id, subject, error, deliveries, payload, ce_id): (Option<String>, String, String, i64, Vec<u8>, Option<String>) =
        sqlx::query_as(
            "SELECT event_id, subject, error, deliveries, payload, headers->>'ce-id' FROM t_in.dead_letters",
        )
        .fetch_one(&env.pool)
        .await?;
    assert_eq!(event_id, Some(ids[2].to_string()));
    assert_eq!(ce_id, Some(ids[2].to_string()));
    assert_eq!(subject, SUBJECT);
    assert!(error.contains("cannot decode the payload"), "{error}");
    assert_eq!(deliveries, 1);
    assert_eq!(payload, b"poison");
    assert_eq!(
        inbox.handler().calls_for("poison"),
        1,
        "poison is not retried"
    );
    assert_eq!(total(&env).await, 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_is_dead_lettered_after_max_deliver() -> TestResult {
    let env = setup().await;
    produce(&env, &["flaky".to_owned(), "fine".to_owned()]).await?;

    let inbox = inbox(
        &env,
        ConsumerSpec {
            max_deliver: 3,
            ..spec()
        },
    );
    let task = run(&inbox);
    settle(&env, 1, 1).await;
    task.stop().await;

    let (error, deliveries): (String, i64) =
        sqlx::query_as("SELECT error, deliveries FROM t_in.dead_letters")
            .fetch_one(&env.pool)
            .await?;
    assert!(error.contains("gave up after 3 deliveries"), "{error}");
    assert!(error.contains("dependency unavailable"), "{error}");
    assert_eq!(deliveries, 3);
    assert_eq!(inbox.handler().calls_for("flaky"), 3);
    assert_eq!(inbox.handler().calls_for("fine"), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_the_read_model_exactly() -> TestResult {
    let env = setup().await;
    produce(&env, &notes("r", 15)).await?;
    let inbox = inbox(&env, spec());
    let task = run(&inbox);
    settle(&env, 15, 0).await;
    task.stop().await;

    let mut tx = env.pool.begin().await?;
    sqlx::query("UPDATE t_in.totals SET n = 0")
        .execute(&mut *tx)
        .await?;
    assert_eq!(reset_in_tx(&mut tx, IN_SCHEMA, DURABLE).await?, 15);
    tx.commit().await?;
    delete_consumer(&env.js, &spec()).await?;

    let task = run(&inbox);
    settle(&env, 15, 0).await;
    task.stop().await;
    assert_eq!(total(&env).await, 15);
    assert_eq!(count(&env, "inbox").await, 15);
    assert_eq!(inbox.handler().calls().len(), 30);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_without_ce_id_is_dead_lettered_not_retried() -> TestResult {
    let env = setup().await;
    ensure_stream(&env.js, &stream_spec()).await?;
    let msg_id = Uuid::new_v4().to_string();
    publish_raw(
        &env,
        &[("Nats-Msg-Id", &msg_id), ("ce-type", SUBJECT)],
        "anonymous",
    )
    .await?;
    produce(&env, &["after".to_owned()]).await?;

    let inbox = inbox(&env, spec());
    let task = run(&inbox);
    settle(&env, 1, 1).await;
    task.stop().await;

    let (event_id, error, deliveries, payload): (Option<String>, String, i64, Vec<u8>) =
        sqlx::query_as("SELECT event_id, error, deliveries, payload FROM t_in.dead_letters")
            .fetch_one(&env.pool)
            .await?;
    assert_eq!(event_id, None);
    assert!(error.contains("no ce-id"), "{error}");
    assert_eq!(deliveries, 1);
    assert_eq!(payload, b"anonymous");
    assert_eq!(
        consumer_info(&env).await?.delivered.consumer_sequence,
        2,
        "each message delivered once"
    );
    assert_eq!(inbox.handler().calls(), vec!["after"]);
    Ok(())
}
