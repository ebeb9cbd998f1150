//! The relay on a healthy NATS: envelope, exactly once, rollbacks, late commits,
//! order, two replicas, and republishing after JetStream data loss.

use std::time::Duration;

use chrono::{DateTime, SubsecRound};
use hearth_platform::outbox::{Relay, republish_from};
use hearth_platform::telemetry::current_traceparent;
use tracing::Instrument;
use uuid::Uuid;

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_each_committed_event_once_with_its_envelope() -> TestResult {
    let env = setup().await;
    let relay = Running::relay(env.relay());

    let (traced, traceparent) = async {
        let tp = current_traceparent();
        Ok::<_, sqlx::Error>((env.commit("items/a", &["traced"]).await?, tp))
    }
    .instrument(tracing::error_span!("accept_item"))
    .await?;
    let traceparent = traceparent.expect("a span with a valid context has a traceparent");
    let untraced = env.commit("items/b", &["untraced"]).await?;
    let written: Vec<_> = traced.into_iter().chain(untraced).collect();

    env.all_published(WAIT).await;
    // More relay passes must not send anything again.
    tokio::time::sleep(POLL * 3).await;
    assert_eq!(env.stream_count().await?, 2);
    let msgs = env.read_stream().await?;

    for (msg, ev) in msgs.iter().zip(&written) {
        let id = ev.id.to_string();
        assert_eq!(msg.subject.as_str(), SUBJECT);
        assert_eq!(header(msg, "Nats-Msg-Id").as_deref(), Some(id.as_str()));
        assert_eq!(header(msg, "ce-id").as_deref(), Some(id.as_str()));
        assert_eq!(header(msg, "ce-type").as_deref(), Some(SUBJECT));
        assert_eq!(header(msg, "ce-source").as_deref(), Some(SOURCE));
        assert_eq!(
            header(msg, "ce-subject").as_deref(),
            Some(ev.resource.as_str())
        );
        assert_eq!(header(msg, "ce-specversion").as_deref(), Some("1.0"));
        assert_eq!(
            header(msg, "content-type").as_deref(),
            Some("application/protobuf")
        );
        let time = DateTime::parse_from_rfc3339(&header(msg, "ce-time").expect("ce-time"))?;
        assert_eq!(time, ev.time.trunc_subsecs(6));
        assert_eq!(msg.payload.as_ref(), ev.payload.as_slice());
    }
    assert_eq!(header(&msgs[0], "traceparent"), Some(traceparent));
    assert_eq!(
        header(&msgs[1], "traceparent"),
        None,
        "no span, no trace context"
    );
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_transaction_publishes_nothing() -> TestResult {
    let env = setup().await;
    let relay = Running::relay(env.relay());
    let js = &env.js;
    eventually("the relay created the stream", WAIT, || async move {
        js.get_stream(STREAM).await.is_ok()
    })
    .await;

    let mut tx = env.pool.begin().await?;
    env.write(&mut tx, "items/r", &["never happened"]).await?;
    tx.rollback().await?;
    tokio::time::sleep(POLL * 2).await;
    assert_eq!(env.stream_count().await?, 0);

    let committed = env.commit("items/r", &["happened"]).await?;
    env.all_published(WAIT).await;
    assert_exactly_once(&env, &[committed[0].id]).await?;
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_wakes_the_relay_without_waiting_for_its_poll() -> TestResult {
    let env = setup().await;
    let relay = Running::relay(
        Relay::new(env.pool.clone(), env.js.clone(), SCHEMA, stream_spec())
            .poll_interval(Duration::from_secs(3600)),
    );
    // The first event may go out on the relay's start-up pass; once it has, the relay
    // is listening, and only the wake-up sent after the next commit can move it.
    let first = env.commit("items/w", &["first"]).await?[0].id;
    let envr = &env;
    eventually("first published", WAIT, || async move {
        envr.is_published(first).await
    })
    .await;
    let woken = env.commit("items/w", &["second"]).await?[0].id;
    eventually("second published without a poll", WAIT, || async move {
        envr.is_published(woken).await
    })
    .await;
    assert_eq!(env.stream_count().await?, 2);
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_commit_with_lower_sequence_is_not_skipped() -> TestResult {
    let env = setup().await;
    let relay = Running::relay(env.relay());

    let mut tx_a = env.pool.begin().await?;
    let a = env.write(&mut tx_a, "items/late", &["a"]).await?[0].id;
    let b = env.commit("items/early", &["b"]).await?[0].id;
    let envr = &env;
    eventually(
        "B published",
        WAIT,
        || async move { envr.is_published(b).await },
    )
    .await;
    assert_eq!(env.stream_count().await?, 1);

    env.outbox.commit(tx_a).await?;
    env.all_published(WAIT).await;
    assert_eq!(ce_ids(&env.read_stream().await?), vec![b, a]);
    let seq = |id: Uuid| {
        sqlx::query_scalar::<_, i64>("SELECT seq FROM t_outbox.outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&env.pool)
    };
    assert!(
        seq(a).await? < seq(b).await?,
        "A took the lower sequence but committed last"
    );
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_resource_arrive_in_commit_order() -> TestResult {
    let env = setup().await;
    let relay = Running::relay(env.relay().batch_size(7));
    let written = env.commit_each("items/ordered", &notes("step", 50)).await?;
    env.all_published(WAIT).await;

    let msgs = env.read_stream().await?;
    assert_eq!(ce_ids(&msgs), written);
    let payloads: Vec<String> = msgs
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(payloads, notes("step", 50));
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_publish_once_and_in_order() -> TestResult {
    let env = setup().await;
    let resources: Vec<String> = (0..4).map(|r| format!("items/r{r}")).collect();
    let mut written = Vec::new();
    // A backlog both replicas compete for, then more written while they run.
    for r in &resources {
        written.push(
            env.commit_each(r, &notes(&format!("{r}-backlog"), 20))
                .await?,
        );
    }
    // Replicas each have their own NATS connection.
    let client = hearth_platform::server::connect_nats(
        &hearth_platform::config::Secret::new(env.nats.url()),
        "replica-2",
    )
    .await?;
    let other_js = async_nats::jetstream::new(client);
    let first = Running::relay(env.relay().batch_size(2));
    let second = Running::relay(
        Relay::new(env.pool.clone(), other_js, SCHEMA, stream_spec())
            .poll_interval(POLL)
            .batch_size(2),
    );
    // One replica goes away part-way; the other must carry on.
    let pool = &env.pool;
    let stop_first = async move {
        eventually("the backlog published", WAIT, || async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM t_outbox.outbox WHERE id NOT IN (SELECT id FROM t_outbox.outbox_pending)",
            )
            .fetch_one(pool)
            .await
            .is_ok_and(|n| n >= 80)
        })
        .await;
        first.stop().await;
    };
    let live = futures::future::try_join_all(resources.iter().map(|r| {
        let env = &env;
        async move { env.commit_each(r, &notes(&format!("{r}-live"), 20)).await }
    }));
    let (more, ()) = tokio::join!(live, stop_first);
    for (ids, more) in written.iter_mut().zip(more?) {
        ids.extend(more);
    }
    env.all_published(WAIT).await;

    let all: Vec<Uuid> = written.iter().flatten().copied().collect();
    assert_exactly_once(&env, &all).await?;
    let msgs = env.read_stream().await?;
    for (resource, expected) in resources.iter().zip(&written) {
        let got: Vec<_> = msgs
            .iter()
            .filter(|m| header(m, "ce-subject").as_deref() == Some(resource.as_str()))
            .cloned()
            .collect();
        assert_eq!(&ce_ids(&got), expected, "order of {resource}");
    }
    second.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_from_refills_a_stream_that_lost_its_data() -> TestResult {
    let env = setup().await;
    let relay = Running::relay(env.relay());
    let written = env.commit_each("items/re", &notes("e", 10)).await?;
    env.all_published(WAIT).await;
    assert_exactly_once(&env, &written).await?;

    env.js.delete_stream(STREAM).await?;
    assert_eq!(republish_from(&env.pool, SCHEMA, 1).await?, 10);
    env.all_published(WAIT).await;

    assert_eq!(env.stream_count().await?, 10);
    assert_eq!(ce_ids(&env.read_stream().await?), written);
    let last_stream_seq: Option<i64> =
        sqlx::query_scalar("SELECT last_stream_seq FROM t_outbox.outbox_relay")
            .fetch_one(&env.pool)
            .await?;
    assert_eq!(
        last_stream_seq,
        Some(10),
        "the relay records where the stream got to"
    );
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_caught_up_the_relay_keeps_only_its_horizon() -> TestResult {
    let env = setup().await;
    let relay = Running::relay(env.relay().batch_size(4));
    // An open transaction holds the horizon back: what commits meanwhile is sent,
    // and remembered above the horizon so that it is not sent again.
    let mut open = env.pool.begin().await?;
    let held = env.write(&mut open, "items/h", &["held"]).await?[0].id;
    env.commit_each("items/h", &notes("h", 10)).await?;
    env.all_published(WAIT).await;
    let above = || {
        sqlx::query_scalar::<_, i32>("SELECT cardinality(published) FROM t_outbox.outbox_relay")
            .fetch_one(&env.pool)
    };
    assert!(above().await? >= 10, "kept above the horizon");
    for _ in 0..3 {
        tokio::time::sleep(POLL).await;
        assert_eq!(env.unpublished().await, 0, "nothing forgotten while held");
    }
    assert_eq!(env.stream_count().await?, 10);

    // Once it commits, the horizon passes every row written and the numbers kept
    // above it are forgotten: the relay's place does not grow with the log.
    env.outbox.commit(open).await?;
    let pool = &env.pool;
    eventually("the horizon passed every row", WAIT, || async move {
        sqlx::query_scalar::<_, bool>(
            "SELECT cardinality(r.published) = 0 AND r.horizon > (SELECT max(xid) FROM t_outbox.outbox)
               FROM t_outbox.outbox_relay r",
        )
        .fetch_one(pool)
        .await
        .unwrap_or(false)
    })
    .await;
    let later = env.commit("items/h", &["later"]).await?[0].id;
    env.all_published(WAIT).await;
    let ids = ce_ids(&env.read_stream().await?);
    assert_eq!(ids.len(), 12, "every event once");
    assert_eq!(&ids[10..], &[held, later]);
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_from_before_the_horizon_sends_only_what_it_had_not_sent() -> TestResult {
    let env = setup().await;
    // The outbox as the earlier relay, which marked each row, left it: one event
    // sent and marked, one written but not yet sent.
    sqlx::raw_sql(
        "DROP VIEW t_outbox.outbox_pending;
         DROP TABLE t_outbox.outbox_relay;
         DROP TABLE t_outbox.outbox;
         CREATE TABLE t_outbox.outbox (
             seq bigserial PRIMARY KEY, id uuid NOT NULL, subject text NOT NULL,
             source text NOT NULL, resource text NOT NULL, payload bytea NOT NULL,
             traceparent text, event_time timestamptz NOT NULL,
             created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
             published_at timestamptz, stream_seq bigint);
         CREATE INDEX outbox_unpublished ON t_outbox.outbox (seq) WHERE published_at IS NULL;
         INSERT INTO t_outbox.outbox (id, subject, source, resource, payload, event_time, published_at, stream_seq)
         VALUES (gen_random_uuid(), 'hearth.items.v1.item.created', '//hearth/items', 'items/u',
                 'sent before', now(), now(), 1),
                (gen_random_uuid(), 'hearth.items.v1.item.created', '//hearth/items', 'items/u',
                 'not yet sent', now(), NULL, NULL);",
    )
    .execute(&env.pool)
    .await?;

    env.migrate_again().await?;
    let pending: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM t_outbox.outbox_pending ORDER BY seq")
            .fetch_all(&env.pool)
            .await?;
    assert_eq!(pending, vec![b"not yet sent".to_vec()]);

    let relay = Running::relay(env.relay());
    env.all_published(WAIT).await;
    let msgs = env.read_stream().await?;
    assert_eq!(msgs.len(), 1, "the event marked sent is not sent again");
    assert_eq!(msgs[0].payload.as_ref(), b"not yet sent");
    // New events still go out after the upgrade.
    env.commit("items/u", &["after the upgrade"]).await?;
    env.all_published(WAIT).await;
    assert_eq!(env.stream_count().await?, 2);
    relay.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_horizon_ahead_of_the_server_is_not_trusted() -> TestResult {
    let env = setup().await;
    let written = env.commit("items/z", &["written before a restore"]).await?[0].id;
    // As after a dump and restore: the relay's place names transaction ids this
    // server has not issued, so every row looks published.
    sqlx::query("UPDATE t_outbox.outbox_relay SET horizon = '900000000000'")
        .execute(&env.pool)
        .await?;
    let relay = Running::relay(env.relay());
    let envr = &env;
    eventually("the row sent after all", WAIT, || async move {
        envr.stream_count().await.is_ok_and(|n| n == 1)
    })
    .await;
    assert_eq!(ce_ids(&env.read_stream().await?), vec![written]);
    relay.stop().await;
    Ok(())
}
