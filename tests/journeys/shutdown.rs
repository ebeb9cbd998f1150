//! An operator stops the service (SIGTERM) while calls are in flight: the process
//! answers every one of them before it exits, and exits cleanly.
//!
//! This runs the real binary because only a process shows it: in a test that hosts
//! the service itself, the connections' tasks outlive the server's `run` and answer
//! anyway. The calls are held in flight by a table lock that the writers wait
//! behind; a process that stopped without waiting for them (checked by removing the
//! wait for the writers, with the server not waiting for its calls) exits at once and
//! fails here.

use std::time::Duration;

use hearth_platform::Role;
use hearth_proto::referrals as pb;
use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use crate::support::{Referrals, authed, referral};

const IN_FLIGHT: usize = 16;

/// Backends of `db` waiting for a lock (the writers, behind the test's table lock).
async fn waiting_on_locks(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn sigterm_answers_every_call_in_flight_before_the_process_exits() {
    // No drain: on SIGTERM the server stops taking calls at once, so what is tested
    // is the wait for the calls it already has.
    let mut stack = Referrals::start(&[("HEARTH_SHUTDOWN_DRAIN_MS", "0".into())]).await;
    let Referrals { svc, env } = &mut stack;
    let db_url = &env.db_url;
    let token = env.issuer.mint(
        "hv-7",
        "nhs-lothian",
        &[Role::Referrer],
        Duration::from_secs(600),
    );
    let client = ReferralsServiceClient::new(svc.channel.clone());
    let create = |n: usize| {
        let mut c = client.clone();
        // Distinct children: no two calls link to one family or share a lock.
        let child = format!("Child{}", char::from(b'A' + n as u8));
        let req = authed(
            pb::CreateReferralRequest {
                referral: Some(referral(&child, "")),
                request_id: Uuid::new_v4().to_string(),
                validate_only: false,
            },
            &token,
        );
        async move { c.create_referral(req).await }
    };
    create(IN_FLIGHT).await.expect("a first referral");

    // Hold every create in flight: the writers wait behind this lock.
    let mut blocker = PgConnection::connect(db_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE referrals.referrals IN SHARE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let calls: Vec<_> = (0..IN_FLIGHT).map(|n| tokio::spawn(create(n))).collect();
    let mut observer = PgConnection::connect(db_url).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while waiting_on_locks(&mut observer).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no writer reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the rest of the calls reach the server's queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        calls.iter().all(|c| !c.is_finished()),
        "every call is still in flight"
    );

    svc.sigterm();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        svc.child.try_wait().unwrap().is_none(),
        "the process exited with calls in flight; log:\n{}",
        svc.log_text()
    );

    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    for (n, call) in calls.into_iter().enumerate() {
        let answer = call.await.unwrap();
        assert!(
            answer.is_ok(),
            "call {n} failed during shutdown: {answer:?}; log:\n{}",
            svc.log_text()
        );
    }
    let status = svc.exited().await;
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        svc.log_text()
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.referrals")
        .fetch_one(&mut observer)
        .await
        .unwrap();
    assert_eq!(
        stored,
        IN_FLIGHT as i64 + 1,
        "every answered call was stored"
    );
}
