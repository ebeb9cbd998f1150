//! The kit's request-id claims, as a service's handlers use them: first use goes on,
//! the same call again is a replay naming its resource, another call with the id is
//! refused, concurrent claims of one id wait for each other, and a claim is forgotten
//! after its window.

use std::time::Duration;

use hearth_platform::ApiError;
use hearth_platform::idempotency::{Begun, RequestKey, Requests, request_hash};
use uuid::Uuid;

use crate::helpers::*;

fn key(org: &str, id: Uuid, body: &str) -> RequestKey {
    RequestKey {
        organisation: org.into(),
        request_id: id,
        method: "CreateThing",
        hash: request_hash("CreateThing", &body.to_owned()),
    }
}

async fn claims(env: &Env) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM t_outbox.request_claims")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_id_goes_on_once_replays_after_and_refuses_another_call() {
    let env = setup().await;
    let requests = Requests::new(env.pool.clone(), SCHEMA);
    let id = Uuid::new_v4();

    // Rolled back with its call: the id is still free.
    let Begun::Go(tx) = requests
        .begin(&key("org-a", id, "one"), "things/1")
        .await
        .unwrap()
    else {
        panic!("first use goes on");
    };
    tx.rollback().await.unwrap();
    assert_eq!(claims(&env).await, 0);

    let Begun::Go(tx) = requests
        .begin(&key("org-a", id, "one"), "things/1")
        .await
        .unwrap()
    else {
        panic!("first use goes on");
    };
    tx.commit().await.unwrap();
    match requests
        .begin(&key("org-a", id, "one"), "things/2")
        .await
        .unwrap()
    {
        Begun::Replay(resource) => assert_eq!(resource, "things/1", "the resource it made"),
        Begun::Go(_) => panic!("the same call again is a replay"),
    }
    match requests.begin(&key("org-a", id, "two"), "things/3").await {
        Err(ApiError::InvalidArgumentBecause { reason, violations }) => {
            assert_eq!(reason, "REQUEST_ID_REUSED");
            assert_eq!(violations.fields().collect::<Vec<_>>(), ["request_id"]);
        }
        other => panic!("another call with the id is refused, got {other:?}"),
    }
    // Ids belong to the caller's organisation.
    assert!(matches!(
        requests
            .begin(&key("org-b", id, "two"), "things/4")
            .await
            .unwrap(),
        Begun::Go(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_claims_of_one_id_wait_and_the_later_is_a_replay() {
    let env = setup().await;
    let requests = Requests::new(env.pool.clone(), SCHEMA);
    let k = key("org-a", Uuid::new_v4(), "one");
    let Begun::Go(tx) = requests.begin(&k, "things/1").await.unwrap() else {
        panic!("first use goes on");
    };
    let second = tokio::spawn({
        let (requests, k) = (requests.clone(), k.clone());
        async move {
            requests
                .begin(&k, "things/9")
                .await
                .map(|b| matches!(b, Begun::Replay(r) if r == "things/1"))
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second waits for the first to commit"
    );
    tx.commit().await.unwrap();
    assert!(second.await.unwrap().unwrap(), "then sees a replay");
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_are_forgotten_after_their_window_and_not_before() {
    let env = setup().await;
    let requests = Requests::new(env.pool.clone(), SCHEMA);
    let (old, recent) = (
        key("org-a", Uuid::new_v4(), "x"),
        key("org-a", Uuid::new_v4(), "x"),
    );
    for k in [&old, &recent] {
        let Begun::Go(tx) = requests.begin(k, "things/1").await.unwrap() else {
            panic!("first use goes on");
        };
        tx.commit().await.unwrap();
    }
    sqlx::query("UPDATE t_outbox.request_claims SET created_at = now() - interval '8 days' WHERE request_id = $1")
        .bind(old.request_id)
        .execute(&env.pool)
        .await
        .unwrap();
    let week = Duration::from_secs(7 * 24 * 3600);
    assert_eq!(requests.purge(week).await.unwrap(), 1);
    assert_eq!(requests.purge(week).await.unwrap(), 0);
    // A retry after the window is a new call; one within it is still a replay.
    assert!(matches!(
        requests.begin(&old, "things/1").await.unwrap(),
        Begun::Go(_)
    ));
    assert!(matches!(
        requests.begin(&recent, "things/1").await.unwrap(),
        Begun::Replay(_)
    ));
}
