//! The relay through failures: NATS down, and the relay killed mid-batch.

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use hearth_platform::outbox::{OutboxEvent, Relay, ensure_stream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::*;

/// Commits `n` events for one resource, 50 to a transaction.
async fn commit_many(env: &Env, n: usize) -> Result<Vec<OutboxEvent>, sqlx::Error> {
    let all = notes("k", n);
    let mut events = Vec::with_capacity(n);
    for chunk in all.chunks(50) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        events.extend(env.commit("items/k", &chunk).await?);
    }
    Ok(events)
}

fn ids(events: &[OutboxEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_while_nats_is_down_arrive_once_it_is_back() -> TestResult {
    let mut env = setup().await;
    // Acks time out sooner than the outage lasts, so the relay's publishes fail and it
    // must retry (rather than only wait out the client's reconnect).
    let mut js = env.js.clone();
    js.set_timeout(Duration::from_millis(300));
    let relay =
        Running::relay(Relay::new(env.pool.clone(), js, SCHEMA, stream_spec()).poll_interval(POLL));
    let js = &env.js;
    eventually(
        "the relay created the stream",
        Duration::from_secs(10),
        || async move { js.get_stream(STREAM).await.is_ok() },
    )
    .await;

    tokio::task::block_in_place(|| env.nats.stop());
    let written = env.commit_each("items/outage", &notes("o", 200)).await?;
    // Let the relay fail a few times: nothing may be marked published without an ack.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(env.unpublished().await, 200);

    tokio::task::block_in_place(|| env.nats.restart())?;
    env.all_published(Duration::from_secs(60)).await;
    assert_exactly_once(&env, &written).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_killed_mid_batch_publishes_each_event_once() -> TestResult {
    let env = setup().await;
    let written = commit_many(&env, 500).await?;

    for delay_ms in [5, 12, 23, 8, 31, 17, 40, 3, 26, 14] {
        let task = tokio::spawn(env.relay().batch_size(16).run(CancellationToken::new()));
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        task.abort();
        let _ = task.await;
    }
    // A killed relay must not leave its lock behind on a pooled connection, or no
    // relay in this process could take over.
    let pool = &env.pool;
    eventually(
        "no relay lock held",
        Duration::from_secs(5),
        || async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(pool)
            .await
            .is_ok_and(|n| n == 0)
        },
    )
    .await;
    let relay = Running::relay(env.relay().batch_size(16));
    env.all_published(Duration::from_secs(30)).await;
    assert_exactly_once(&env, &ids(&written)).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_but_not_marked_are_not_duplicated() -> TestResult {
    let env = setup().await;
    let written = commit_many(&env, 500).await?;

    // What a relay that crashed after publishing half, before marking it, left behind.
    ensure_stream(&env.js, &stream_spec()).await?;
    for ev in &written[..250] {
        let id = ev.id.to_string();
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert("ce-id", id.as_str());
        headers.insert("ce-type", SUBJECT);
        env.js
            .publish_with_headers(SUBJECT, headers, Bytes::from(ev.payload.clone()))
            .await?
            .await?;
    }
    assert_eq!(env.stream_count().await?, 250);
    assert_eq!(env.unpublished().await, 500);

    let relay = Running::relay(env.relay());
    env.all_published(Duration::from_secs(30)).await;
    assert_exactly_once(&env, &ids(&written)).await?;
    assert_eq!(
        ce_ids(&env.read_stream().await?),
        ids(&written),
        "stream order"
    );
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_acknowledged_before_a_failure_are_marked_published() -> TestResult {
    let env = setup().await;
    ensure_stream(&env.js, &stream_spec()).await?;
    // The middle event's subject is outside the stream: JetStream refuses it.
    let event =
        |subject: &str| OutboxEvent::new(subject, "items/p", b"x".to_vec(), chrono::Utc::now());
    let (first, refused, last) = (
        event(SUBJECT),
        event("hearth.unrouted.v1.item.created"),
        event(SUBJECT),
    );
    let mut tx = env.pool.begin().await?;
    env.outbox
        .write(&mut tx, &[first.clone(), refused.clone(), last.clone()])
        .await?;
    env.outbox.commit(tx).await?;

    assert!(
        env.relay().publish_batch().await.is_err(),
        "the batch reports the failure"
    );
    assert!(
        env.is_published(first.id).await,
        "acknowledged before the failure: marked"
    );
    assert!(!env.is_published(refused.id).await);
    assert!(
        !env.is_published(last.id).await,
        "not yet acknowledged: sent again later"
    );
    Ok(())
}
