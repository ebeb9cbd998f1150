//! Contacts and consents.

use hearth_platform::Role;
use hearth_proto::referrals as pb;
use tonic::Code;

use crate::helpers::*;

fn contact(offset_secs: i64, successful: bool) -> Option<pb::Contact> {
    Some(pb::Contact {
        method: pb::ContactMethod::Phone as i32,
        contact_time: now_ts(offset_secs),
        successful,
        note: "Spoke to mum; prefers evenings".into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn the_first_successful_contact_sets_time_to_contact() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let mut t = app.triage();
    let record = |c: Option<pb::Contact>| pb::RecordContactRequest {
        name: r.name.clone(),
        request_id: rid(),
        contact: c,
    };
    let after_missed = t
        .record_contact(record(contact(-1, false)))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert!(
        after_missed.first_contact_time.is_none(),
        "an unanswered call is not contact"
    );
    let reached = t
        .record_contact(record(contact(0, true)))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(reached.contacts.len(), 2);
    assert_eq!(reached.first_contact_time, reached.contacts[1].contact_time);
    assert_eq!(reached.contacts[1].recorded_by, "user-1");
    assert!(
        reached.contacts[1]
            .name
            .starts_with(&format!("{}/contacts/", r.name))
    );

    let events = app.events(3).await;
    let recorded: Vec<pb::ContactRecorded> = events
        .iter()
        .filter(|m| header(m, "ce-type") == "hearth.referrals.v1.contact.recorded")
        .map(|m| prost::Message::decode(m.payload.clone()).unwrap())
        .collect();
    assert_eq!(recorded.len(), 2);
    assert!(!recorded[0].first_contact && recorded[1].first_contact);

    // Validation, permission, visibility and state.
    assert_invalid(
        &t.record_contact(record(contact(3600, true)))
            .await
            .unwrap_err(),
        &["contact.contact_time"],
    );
    assert_invalid(
        &t.record_contact(record(contact(-86_400, true)))
            .await
            .unwrap_err(),
        &["contact.contact_time"],
    );
    let mut no_method = contact(0, true);
    no_method.as_mut().unwrap().method = 0;
    assert_invalid(
        &t.record_contact(record(no_method)).await.unwrap_err(),
        &["contact.method"],
    );
    assert_invalid(
        &t.record_contact(record(None)).await.unwrap_err(),
        &["contact"],
    );
    let err = app
        .referrer()
        .record_contact(record(contact(0, true)))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
    let err = app
        .outsider()
        .record_contact(record(contact(0, true)))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    t.decline_referral(pb::DeclineReferralRequest {
        name: r.name.clone(),
        request_id: rid(),
        decline_reason: pb::DeclineReason::OutsideArea as i32,
        reason: "Lives in Fife".into(),
    })
    .await
    .unwrap();
    let err = t
        .record_contact(record(contact(0, true)))
        .await
        .unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "REFERRAL_CLOSED");
}

#[tokio::test]
async fn consent_is_recorded_withdrawn_and_honoured_by_triage() {
    let app = TestApp::spawn().await;
    // A safeguarding referral arrives without consent; the family consents later.
    let mut r = referral();
    r.consents.clear();
    r.safeguarding_concern = true;
    let r = app.create(r).await;
    let mut t = app.triage();
    let err = t
        .accept_referral(pb::AcceptReferralRequest {
            name: r.name.clone(),
            request_id: rid(),
            reason: "Meets the early help threshold".into(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "CONSENT_REQUIRED");

    let with_consent = app
        .referrer()
        .record_consent(pb::RecordConsentRequest {
            name: r.name.clone(),
            request_id: rid(),
            consent: Some(assessment_consent()),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(with_consent.consents.len(), 1);
    let consent = with_consent.consents[0].name.clone();

    // The family changes their mind: withdrawal is recorded and honoured.
    let withdrawn = t
        .withdraw_consent(pb::WithdrawConsentRequest {
            name: consent.clone(),
            request_id: rid(),
            reason: "Family no longer wishes to share".into(),
            withdraw_time: None,
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert!(withdrawn.consents[0].withdraw_time.is_some());
    let err = t
        .accept_referral(pb::AcceptReferralRequest {
            name: r.name.clone(),
            request_id: rid(),
            reason: "Meets the early help threshold".into(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "CONSENT_REQUIRED");
    let err = t
        .withdraw_consent(pb::WithdrawConsentRequest {
            name: consent.clone(),
            request_id: rid(),
            reason: String::new(),
            withdraw_time: None,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "CONSENT_ALREADY_WITHDRAWN");

    let types = app.event_types_for(&r.name, 3).await;
    assert_eq!(
        types,
        vec![
            "hearth.referrals.v1.referral.received",
            "hearth.referrals.v1.consent.recorded",
            "hearth.referrals.v1.consent.withdrawn"
        ]
    );
    let events = app.events(3).await;
    let w: pb::ConsentWithdrawn = prost::Message::decode(events[2].payload.clone()).unwrap();
    assert_eq!(w.consent, consent);
    assert!(w.scopes.contains(&(pb::ConsentScope::Assessment as i32)));
}

#[tokio::test]
async fn consent_calls_validate_authorise_and_hide() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let consent_name = r.consents[0].name.clone();
    let mut t = app.triage();

    let mut bad = assessment_consent();
    bad.given_by.clear();
    bad.scopes = vec![
        pb::ConsentScope::Assessment as i32,
        pb::ConsentScope::Assessment as i32,
    ];
    bad.give_time = now_ts(7200);
    let err = t
        .record_consent(pb::RecordConsentRequest {
            name: r.name.clone(),
            request_id: rid(),
            consent: Some(bad),
        })
        .await
        .unwrap_err();
    assert_invalid(
        &err,
        &["consent.given_by", "consent.scopes[1]", "consent.give_time"],
    );
    let err = t
        .withdraw_consent(pb::WithdrawConsentRequest {
            name: "referrals/x/consents/y".into(),
            request_id: rid(),
            reason: String::new(),
            withdraw_time: now_ts(86_400),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["name", "withdraw_time"]);

    let unknown = format!("{}/consents/{}", r.name, uuid::Uuid::now_v7());
    let err = t
        .withdraw_consent(pb::WithdrawConsentRequest {
            name: unknown,
            request_id: rid(),
            reason: String::new(),
            withdraw_time: None,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");

    let err = app
        .client(REFERRER_ORG, &[Role::Practitioner])
        .record_consent(pb::RecordConsentRequest {
            name: r.name.clone(),
            request_id: rid(),
            consent: Some(assessment_consent()),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
    let err = app
        .outsider()
        .withdraw_consent(pb::WithdrawConsentRequest {
            name: consent_name.clone(),
            request_id: rid(),
            reason: String::new(),
            withdraw_time: None,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let err = app
        .outsider()
        .record_consent(pb::RecordConsentRequest {
            name: r.name.clone(),
            request_id: rid(),
            consent: Some(assessment_consent()),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    assert_eq!(app.count("consents").await, 1);
}
