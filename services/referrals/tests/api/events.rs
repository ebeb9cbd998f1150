//! The event feed end to end: what partners' calls put on JetStream.

use std::collections::HashSet;
use std::time::Duration;

use hearth_proto::referrals as pb;

use crate::helpers::*;

#[tokio::test]
async fn referrals_made_while_nats_is_down_are_all_published_once_it_returns() {
    let mut app = TestApp::spawn_with_own_nats().await;
    // Let the relay create the stream first, then take NATS away.
    app.create(referral()).await;
    assert_eq!(app.events(1).await.len(), 1);
    app.nats.as_mut().unwrap().stop();

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

    app.nats.as_mut().unwrap().restart().unwrap();
    app.svc.js = app.svc.env.jetstream().await;
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
            contact: contact(i, false),
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

/// The `ref` every referrals event starts with, and the decision a decision event
/// carries (required there).
fn decoded(ce_type: &str, payload: &[u8]) -> (pb::ReferralRef, Option<pb::Decision>) {
    use prost::Message as _;
    macro_rules! plain {
        ($t:ty) => {
            (<$t>::decode(payload).unwrap().r#ref, None)
        };
    }
    macro_rules! decision {
        ($t:ty) => {{
            let e = <$t>::decode(payload).unwrap();
            let d = e.decision.expect("a decision event carries its decision");
            (e.r#ref, Some(d))
        }};
    }
    let (r, d) = match ce_type {
        "hearth.referrals.v1.referral.received" => plain!(pb::ReferralReceived),
        "hearth.referrals.v1.referral.accepted" => decision!(pb::ReferralAccepted),
        "hearth.referrals.v1.referral.signposted" => decision!(pb::ReferralSignposted),
        "hearth.referrals.v1.referral.redirected" => decision!(pb::ReferralRedirected),
        "hearth.referrals.v1.referral.declined" => decision!(pb::ReferralDeclined),
        "hearth.referrals.v1.referral.withdrawn" => decision!(pb::ReferralWithdrawn),
        "hearth.referrals.v1.contact.recorded" => plain!(pb::ContactRecorded),
        "hearth.referrals.v1.consent.recorded" => plain!(pb::ConsentRecorded),
        "hearth.referrals.v1.consent.withdrawn" => plain!(pb::ConsentWithdrawn),
        "hearth.referrals.v1.family.linked" => plain!(pb::FamilyLinked),
        other => panic!("unexpected event type {other}"),
    };
    (r.expect("every event carries its ref"), d)
}

#[tokio::test]
async fn every_kind_of_event_arrives_once_with_its_type_subject_and_ids() {
    let app = TestApp::spawn().await;
    let mut t = app.triage();
    let family_of_one = referral();
    let accepted = app.create(family_of_one.clone()).await;
    let signposted = app.create(referral()).await;
    let redirected = app.create(referral()).await;
    let declined = app.create(referral()).await;
    let withdrawn = app.create(referral()).await;
    // The same child again: linked to the first referral's family.
    let linked = app.create(family_of_one).await;
    assert!(linked.linked_to_existing_family);
    assert_eq!(linked.family_name, accepted.family_name);

    t.record_contact(pb::RecordContactRequest {
        name: accepted.name.clone(),
        request_id: rid(),
        contact: contact(0, true),
    })
    .await
    .unwrap();
    let with_consent = t
        .record_consent(pb::RecordConsentRequest {
            name: accepted.name.clone(),
            request_id: rid(),
            consent: Some(assessment_consent()),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let recorded_consent = with_consent.consents.last().unwrap().name.clone();
    t.accept_referral(pb::AcceptReferralRequest {
        name: accepted.name.clone(),
        request_id: rid(),
        reason: "Meets the early help threshold".into(),
    })
    .await
    .unwrap();
    t.signpost_referral(pb::SignpostReferralRequest {
        name: signposted.name.clone(),
        request_id: rid(),
        signposted_to: "Solihull Approach online course".into(),
        reason: "Universal offer meets the need".into(),
    })
    .await
    .unwrap();
    t.redirect_referral(pb::RedirectReferralRequest {
        name: redirected.name.clone(),
        request_id: rid(),
        redirected_to: "east-lothian".into(),
        reason: "The family has moved".into(),
    })
    .await
    .unwrap();
    t.decline_referral(pb::DeclineReferralRequest {
        name: declined.name.clone(),
        request_id: rid(),
        decline_reason: pb::DeclineReason::NeedsMetElsewhere as i32,
        reason: "Already supported by the school nurse".into(),
    })
    .await
    .unwrap();
    t.withdraw_referral(pb::WithdrawReferralRequest {
        name: withdrawn.name.clone(),
        request_id: rid(),
        reason: "The family asked to stop".into(),
    })
    .await
    .unwrap();
    let withdrawn_consent = linked.consents[0].name.clone();
    t.withdraw_consent(pb::WithdrawConsentRequest {
        name: withdrawn_consent.clone(),
        request_id: rid(),
        reason: "Family no longer wishes to share".into(),
        withdraw_time: None,
    })
    .await
    .unwrap();

    let want: Vec<(&pb::Referral, &[&str])> = vec![
        (
            &accepted,
            &[
                "referral.received",
                "contact.recorded",
                "consent.recorded",
                "referral.accepted",
            ],
        ),
        (&signposted, &["referral.received", "referral.signposted"]),
        (&redirected, &["referral.received", "referral.redirected"]),
        (&declined, &["referral.received", "referral.declined"]),
        (&withdrawn, &["referral.received", "referral.withdrawn"]),
        (
            &linked,
            &["referral.received", "family.linked", "consent.withdrawn"],
        ),
    ];
    let total: usize = want.iter().map(|(_, types)| types.len()).sum();
    let events = app.events(total).await;
    assert_eq!(events.len(), total, "each event once, none twice");

    let mut ids = HashSet::new();
    for m in &events {
        let ce_type = header(m, "ce-type");
        assert_eq!(
            m.subject.as_str(),
            ce_type,
            "published on its type's subject"
        );
        let id = header(m, "ce-id");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "ce-id {id:?} is a UUID");
        assert_eq!(
            header(m, "Nats-Msg-Id"),
            id,
            "JetStream de-duplicates on the event id"
        );
        assert!(ids.insert(id), "event ids are unique");
        assert_eq!(
            header(m, "ce-source"),
            hearth_proto::events::referrals::STREAM.source
        );
        assert_eq!(header(m, "ce-specversion"), "1.0");
        assert!(!header(m, "ce-time").is_empty());
        let (r, decision) = decoded(&ce_type, &m.payload);
        assert_eq!(
            header(m, "ce-subject"),
            r.referral,
            "ce-subject is the referral"
        );
        assert_eq!(r.receiving_area, AREA);
        assert_eq!(r.referring_organisation, REFERRER_ORG);
        if let Some(d) = decision {
            assert_eq!(d.decided_by_organisation, AREA, "{ce_type}");
            assert!(
                !d.decided_by.is_empty() && !d.reason.is_empty(),
                "{ce_type}"
            );
            assert!(d.decide_time.is_some(), "{ce_type}");
        }
    }
    for (r, types) in &want {
        let got: Vec<String> = events
            .iter()
            .filter(|m| header(m, "ce-subject") == r.name)
            .map(|m| header(m, "ce-type"))
            .collect();
        let want: Vec<String> = types
            .iter()
            .map(|t| format!("hearth.referrals.v1.{t}"))
            .collect();
        assert_eq!(got, want, "the events about {}, in order", r.name);
    }

    // What the ids inside the payloads point at.
    use prost::Message as _;
    let payload = |r: &pb::Referral, t: &str| {
        events
            .iter()
            .find(|m| header(m, "ce-subject") == r.name && header(m, "ce-type") == t)
            .unwrap()
            .payload
            .clone()
    };
    let link =
        pb::FamilyLinked::decode(payload(&linked, "hearth.referrals.v1.family.linked")).unwrap();
    assert_eq!(link.family, accepted.family_name);
    assert_eq!(link.r#ref.unwrap().family, accepted.family_name);
    let consent =
        pb::ConsentRecorded::decode(payload(&accepted, "hearth.referrals.v1.consent.recorded"))
            .unwrap();
    assert_eq!(consent.consent.unwrap().name, recorded_consent);
    let gone =
        pb::ConsentWithdrawn::decode(payload(&linked, "hearth.referrals.v1.consent.withdrawn"))
            .unwrap();
    assert_eq!(gone.consent, withdrawn_consent);
    assert!(gone.withdraw_time.is_some());
    let decline =
        pb::ReferralDeclined::decode(payload(&declined, "hearth.referrals.v1.referral.declined"))
            .unwrap()
            .decision
            .unwrap();
    assert_eq!(decline.outcome, pb::State::Declined as i32);
    assert_eq!(
        decline.decline_reason,
        pb::DeclineReason::NeedsMetElsewhere as i32
    );
    let redirect = pb::ReferralRedirected::decode(payload(
        &redirected,
        "hearth.referrals.v1.referral.redirected",
    ))
    .unwrap()
    .decision
    .unwrap();
    assert_eq!(redirect.outcome, pb::State::Redirected as i32);
    assert_eq!(redirect.destination, "east-lothian");
}
