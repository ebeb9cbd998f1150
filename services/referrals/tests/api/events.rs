//! The event feed end to end: what partners' calls put on JetStream.

use std::collections::HashSet;
use std::time::Duration;

use hearth_proto::referrals as pb;

use crate::helpers::*;

#[tokio::test]
async fn referrals_made_while_nats_is_down_are_all_published_once_it_returns() {
    let mut app = TestApp::spawn().await;
    // Let the relay create the stream first, then take NATS away.
    app.create(referral()).await;
    assert_eq!(app.events(1).await.len(), 1);
    app.nats.stop();

    let mut made = HashSet::new();
    let mut c = app.referrer();
    for _ in 0..200 {
        let r = c
            .create_referral(create_request(referral()))
            .await
            .expect("writes do not need NATS");
        made.insert(r.into_inner().referral.unwrap().name);
    }
    let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.outbox_pending")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(unpublished, 200, "held in the outbox while NATS is down");

    app.nats.restart().unwrap();
    app.js = async_nats::jetstream::new(async_nats::connect(app.nats.url()).await.unwrap());
    let events = app.events(201).await;
    assert_eq!(events.len(), 201, "every event once, none twice");
    let ids: HashSet<String> = events.iter().map(|m| header(m, "ce-id")).collect();
    assert_eq!(ids.len(), 201);
    let subjects: HashSet<String> = events[1..]
        .iter()
        .map(|m| header(m, "ce-subject"))
        .collect();
    assert_eq!(subjects, made);
}

#[tokio::test]
async fn events_about_one_referral_arrive_in_the_order_they_happened() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let mut t = app.triage();
    for i in 0..5 {
        t.record_contact(pb::RecordContactRequest {
            name: r.name.clone(),
            request_id: rid(),
            contact: Some(pb::Contact {
                method: pb::ContactMethod::Phone as i32,
                contact_time: now_ts(i),
                successful: false,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    }
    t.accept_referral(pb::AcceptReferralRequest {
        name: r.name.clone(),
        request_id: rid(),
        reason: "Meets the early help threshold".into(),
    })
    .await
    .unwrap();
    let types = app.event_types_for(&r.name, 7).await;
    let mut want = vec!["hearth.referrals.v1.referral.received".to_owned()];
    want.extend(std::iter::repeat_n(
        "hearth.referrals.v1.contact.recorded".to_owned(),
        5,
    ));
    want.push("hearth.referrals.v1.referral.accepted".to_owned());
    assert_eq!(types, want);
    // The outbox keeps every event as the service's log, and the relay records each
    // as published (just after JetStream acknowledged it).
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.outbox")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(logged, 7);
    let mut pending: i64 = -1;
    for _ in 0..100 {
        pending = sqlx::query_scalar("SELECT count(*) FROM referrals.outbox_pending")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending, 0);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
