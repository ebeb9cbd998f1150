//! CreateReferral's group commit (`intake.rs`): creates that wait together are written
//! in one transaction, yet each gets the answer it would have got alone. The writers
//! are held back by a table lock so that creates pile up behind them.

use std::collections::HashSet;
use std::time::Duration;

use hearth_proto::referrals as pb;
use sqlx::{PgPool, Postgres, Transaction};
use tonic::Code;

use crate::helpers::*;

/// Holds the writers at their request-id claim until dropped or released.
struct Gate(Transaction<'static, Postgres>);

impl Gate {
    async fn close(pool: &PgPool) -> Gate {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("LOCK TABLE referrals.request_claims IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .unwrap();
        Gate(tx)
    }

    async fn open(self) {
        self.0.rollback().await.unwrap();
    }
}

/// Waits until `n` transactions are blocked on the gate.
async fn writers_waiting(pool: &PgPool, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{waiting} of {n} writers reached the gate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Call = tokio::task::JoinHandle<Result<pb::Referral, tonic::Status>>;

fn send(app: &TestApp, req: pb::CreateReferralRequest) -> Call {
    let mut c = app.referrer();
    tokio::spawn(async move {
        c.create_referral(req)
            .await
            .map(|r| r.into_inner().referral.unwrap())
    })
}

async fn answers(calls: Vec<Call>) -> Vec<Result<pb::Referral, tonic::Status>> {
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[tokio::test]
async fn creates_that_wait_together_are_written_together_each_with_its_own_answer() {
    let app = TestApp::spawn_with(&[("HEARTH_REFERRALS_WRITERS", "2")]).await;
    let gate = Gate::close(&app.pool).await;

    // 20 families, one child referred three times, one request sent three times.
    let mut calls: Vec<Call> = (0..20)
        .map(|_| send(&app, create_request(referral())))
        .collect();
    let same_child = referral();
    let same_child_calls: Vec<Call> = (0..3)
        .map(|_| send(&app, create_request(same_child.clone())))
        .collect();
    let repeated = create_request(referral());
    let repeated_calls: Vec<Call> = (0..3).map(|_| send(&app, repeated.clone())).collect();
    writers_waiting(&app.pool, 1).await;
    // Let every call reach a held writer or the queue behind them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.open().await;

    calls.extend(same_child_calls);
    calls.extend(repeated_calls);
    let made: Vec<pb::Referral> = answers(calls)
        .await
        .into_iter()
        .map(|r| r.expect("every create succeeds"))
        .collect();
    let (families, rest) = made.split_at(20);
    let (same_child, repeated) = rest.split_at(3);

    let names: HashSet<&str> = families.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 20, "20 distinct referrals");
    assert!(families.iter().all(|r| !r.linked_to_existing_family));
    // One new family for the child referred three times; the later two link to it.
    assert!(
        same_child
            .iter()
            .all(|r| r.family_name == same_child[0].family_name)
    );
    assert_eq!(
        same_child
            .iter()
            .filter(|r| r.linked_to_existing_family)
            .count(),
        2
    );
    // The repeated request made one referral, answered three times.
    assert!(repeated.iter().all(|r| r.name == repeated[0].name));

    assert_eq!(app.count("referrals").await, 20 + 3 + 1);
    assert_eq!(app.count("families").await, 20 + 1 + 1);
    // Fewer transactions than referrals: creates did share them.
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xid) FROM referrals.outbox
          WHERE subject = 'hearth.referrals.v1.referral.received'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        transactions < 24,
        "{transactions} transactions for 24 referrals"
    );

    // Every referral announced once, under its own name.
    let events = app.events(24 + 2).await;
    let received: Vec<String> = events
        .iter()
        .filter(|m| header(m, "ce-type") == "hearth.referrals.v1.referral.received")
        .map(|m| header(m, "ce-subject"))
        .collect();
    assert_eq!(received.len(), 24);
    let announced: HashSet<&str> = received.iter().map(String::as_str).collect();
    let written: HashSet<&str> = made.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(announced, written);
    assert_eq!(
        events
            .iter()
            .filter(|m| header(m, "ce-type") == "hearth.referrals.v1.family.linked")
            .count(),
        2
    );
}

#[tokio::test]
async fn one_create_that_fails_does_not_fail_those_written_with_it() {
    let app = TestApp::spawn_with(&[("HEARTH_REFERRALS_WRITERS", "1")]).await;
    // A fault only the database sees: validation lets this description through.
    sqlx::raw_sql(
        "CREATE FUNCTION referrals.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.description = 'poison' THEN RAISE EXCEPTION 'refused'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON referrals.referrals
             FOR EACH ROW EXECUTE FUNCTION referrals.refuse_poison();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let gate = Gate::close(&app.pool).await;
    let first = send(&app, create_request(referral()));
    writers_waiting(&app.pool, 1).await;
    // These wait behind the held writer and are then taken as one batch.
    let mut poison = referral();
    poison.description = "poison".into();
    let poison_req = create_request(poison);
    let mut calls: Vec<Call> = (0..5)
        .map(|_| send(&app, create_request(referral())))
        .collect();
    calls.push(send(&app, poison_req.clone()));
    calls.extend((0..5).map(|_| send(&app, create_request(referral()))));
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.open().await;

    first.await.unwrap().expect("the first create succeeds");
    let got = answers(calls).await;
    for (i, r) in got.iter().enumerate() {
        if i == 5 {
            let status = r.as_ref().expect_err("the poisoned create fails");
            assert_eq!(status.code(), Code::Internal, "{status:?}");
        } else {
            r.as_ref().expect("the others succeed");
        }
    }
    assert_eq!(app.count("referrals").await, 11);
    // Nothing of the failed create was kept: not its request id, not an event.
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM referrals.request_claims WHERE request_id = $1::uuid",
    )
    .bind(&poison_req.request_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(claimed, 0);
    assert_eq!(app.count("outbox").await, 11);
    assert_eq!(app.events(11).await.len(), 11);
}

#[tokio::test]
async fn a_caller_that_gave_up_before_its_turn_is_not_written() {
    let app = TestApp::spawn_with(&[("HEARTH_REFERRALS_WRITERS", "2")]).await;
    let gate = Gate::close(&app.pool).await;
    let mut held: Vec<Call> = vec![send(&app, create_request(referral()))];
    writers_waiting(&app.pool, 1).await;
    held.push(send(&app, create_request(referral())));
    writers_waiting(&app.pool, 2).await;

    // Both writers are busy: this create waits in the queue, and its caller leaves.
    let abandoned = create_request(referral());
    let mut req = tonic::Request::new(abandoned.clone());
    req.set_timeout(Duration::from_millis(300));
    let status = app
        .referrer()
        .create_referral(req)
        .await
        .expect_err("the deadline passes while the writers are held");
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    gate.open().await;

    for r in answers(held).await {
        r.expect("the held creates succeed");
    }
    // A later create goes through the same writers, after the abandoned one's turn.
    app.create(referral()).await;
    assert_eq!(app.count("referrals").await, 3);
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM referrals.request_claims WHERE request_id = $1::uuid",
    )
    .bind(&abandoned.request_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(claimed, 0, "the abandoned create was not written");
}
