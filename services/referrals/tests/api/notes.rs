//! Contacts and consents.

use hearth_platform::Role;
use hearth_proto::referrals as pb;
use tonic::Code;

use crate::helpers::*;

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
    assert_status(
        &err,
        Code::FailedPrecondition,
        "ASSESSMENT_CONSENT_REQUIRED",
    );

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
    assert_status(
        &err,
        Code::FailedPrecondition,
        "ASSESSMENT_CONSENT_REQUIRED",
    );
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

/// A timestamp no calendar has: nanos outside 0..1e9 (and not a leap second).
fn invalid_ts() -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp(),
        nanos: -1,
    })
}

#[tokio::test]
async fn a_rejected_contact_is_named_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let mut t = app.triage();
    let record = |name: &str, request_id: &str, c: Option<pb::Contact>| pb::RecordContactRequest {
        name: name.into(),
        request_id: request_id.into(),
        contact: c,
    };
    let with = |change: fn(&mut pb::Contact)| {
        let mut c = contact(-60, true).unwrap();
        change(&mut c);
        Some(c)
    };
    let cases: Vec<(&[&str], pb::RecordContactRequest)> = vec![
        // Checked before the request id is claimed.
        (&["name"], record("", &rid(), contact(-60, true))),
        (&["name"], record("referrals/1", &rid(), contact(-60, true))),
        (
            &["name"],
            record(&format!("{}/contacts", r.name), &rid(), contact(-60, true)),
        ),
        (&["request_id"], record(&r.name, "", contact(-60, true))),
        (
            &["request_id"],
            record(&r.name, "call-1", contact(-60, true)),
        ),
        (&["contact"], record(&r.name, &rid(), None)),
        // Checked inside the transaction, after the claim.
        (
            &["contact.contact_time"],
            record(&r.name, &rid(), with(|c| c.contact_time = None)),
        ),
        (
            &["contact.contact_time"],
            record(&r.name, &rid(), with(|c| c.contact_time = invalid_ts())),
        ),
        (
            &["contact.contact_time"],
            record(&r.name, &rid(), with(|c| c.contact_time = now_ts(3600))),
        ),
        (
            &["contact.note"],
            record(&r.name, &rid(), with(|c| c.note = "x".repeat(2001))),
        ),
        (
            &["contact.note"],
            record(
                &r.name,
                &rid(),
                with(|c| c.note = "Left\u{1b} message".into()),
            ),
        ),
        (
            &["contact.method"],
            record(&r.name, &rid(), with(|c| c.method = 99)),
        ),
        (
            &["contact.method"],
            record(&r.name, &rid(), with(|c| c.method = 0)),
        ),
        (
            &["contact.method", "contact.contact_time", "contact.note"],
            record(
                &r.name,
                &rid(),
                with(|c| {
                    c.method = 42;
                    c.contact_time = None;
                    c.note = "x".repeat(2001);
                }),
            ),
        ),
    ];
    let before = rows(&app).await;
    for (fields, req) in &cases {
        let err = t.record_contact(req.clone()).await.unwrap_err();
        assert_invalid(&err, fields);
        assert_eq!(rows(&app).await, before, "{req:?} wrote something");
    }
    assert_eq!(read(&app, &r.name).await, r, "the referral is unchanged");

    // A request id whose call was rejected after its claim is free: the corrected call
    // with the same id records the contact (a kept claim would reject it as reused).
    let (_, rejected) = &cases[9];
    let mut fixed = rejected.clone();
    fixed.contact.as_mut().unwrap().note = "x".repeat(2000);
    let recorded = t
        .record_contact(fixed)
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(recorded.contacts.len(), 1);
    assert_eq!(recorded.contacts[0].note, "x".repeat(2000));
    assert_eq!(app.count("contacts").await, 1);
    assert_eq!(
        app.count("request_claims").await,
        2,
        "the create's and this one"
    );
}

#[tokio::test]
async fn a_rejected_consent_is_named_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let record = |name: &str, request_id: &str, c: Option<pb::Consent>| pb::RecordConsentRequest {
        name: name.into(),
        request_id: request_id.into(),
        consent: c,
    };
    let with = |change: fn(&mut pb::Consent)| {
        let mut c = assessment_consent();
        change(&mut c);
        Some(c)
    };
    let good = || Some(assessment_consent());
    let cases: Vec<(&[&str], pb::RecordConsentRequest)> = vec![
        (&["consent"], record(&r.name, &rid(), None)),
        (&["name"], record("", &rid(), good())),
        (&["name"], record(&r.family_name, &rid(), good())),
        (&["request_id"], record(&r.name, "", good())),
        (&["request_id"], record(&r.name, "consent-1", good())),
        (
            &["consent.given_by_role"],
            record(&r.name, &rid(), with(|c| c.given_by_role = 0)),
        ),
        (
            &["consent.given_by_role"],
            record(&r.name, &rid(), with(|c| c.given_by_role = 99)),
        ),
        (
            &["consent.scopes"],
            record(&r.name, &rid(), with(|c| c.scopes.clear())),
        ),
        (
            &["consent.scopes[0]"],
            record(&r.name, &rid(), with(|c| c.scopes = vec![99])),
        ),
        (
            &["consent.scopes[1]"],
            record(
                &r.name,
                &rid(),
                with(|c| c.scopes = vec![pb::ConsentScope::Assessment as i32, 0]),
            ),
        ),
        (
            &["consent.given_by"],
            record(&r.name, &rid(), with(|c| c.given_by = "x".repeat(201))),
        ),
        (
            &["consent.give_time"],
            record(&r.name, &rid(), with(|c| c.give_time = None)),
        ),
        (
            &["consent.give_time"],
            record(&r.name, &rid(), with(|c| c.give_time = invalid_ts())),
        ),
        (
            &[
                "name",
                "request_id",
                "consent.given_by_role",
                "consent.scopes",
            ],
            record(
                "referrals/",
                "x",
                with(|c| {
                    c.given_by_role = 0;
                    c.scopes.clear();
                }),
            ),
        ),
    ];
    let before = rows(&app).await;
    for c in [app.referrer(), app.triage()] {
        for (fields, req) in &cases {
            let err = c.clone().record_consent(req.clone()).await.unwrap_err();
            assert_invalid(&err, fields);
            assert_eq!(rows(&app).await, before, "{req:?} wrote something");
        }
    }
    assert_eq!(read(&app, &r.name).await, r, "the referral is unchanged");
}

#[tokio::test]
async fn consent_cannot_be_recorded_once_the_referral_is_closed() {
    let app = TestApp::spawn().await;
    let mut t = app.triage();
    let mut closed = Vec::new();
    let r = app.create(referral()).await;
    t.decline_referral(pb::DeclineReferralRequest {
        name: r.name.clone(),
        request_id: rid(),
        decline_reason: pb::DeclineReason::OutsideArea as i32,
        reason: "Lives in Fife".into(),
    })
    .await
    .unwrap();
    closed.push(r.name);
    // A signposted family may still consent, to a programme referral for a universal
    // offer.
    let signposted = app.create(referral()).await;
    t.signpost_referral(pb::SignpostReferralRequest {
        name: signposted.name.clone(),
        request_id: rid(),
        signposted_to: "Sleep leaflet".into(),
        reason: "Universal information meets the need".into(),
    })
    .await
    .unwrap();
    let mut programme = assessment_consent();
    programme.scopes = vec![pb::ConsentScope::ProgrammeReferral as i32];
    let with = app
        .referrer()
        .record_consent(pb::RecordConsentRequest {
            name: signposted.name.clone(),
            request_id: rid(),
            consent: Some(programme),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(with.state, pb::State::Signposted as i32);
    assert_eq!(with.consents.len(), 2);
    let r = app.create(referral()).await;
    t.redirect_referral(pb::RedirectReferralRequest {
        name: r.name.clone(),
        request_id: rid(),
        redirected_to: "Children's social care".into(),
        reason: "Child protection threshold met".into(),
    })
    .await
    .unwrap();
    closed.push(r.name);
    let r = app.create(referral()).await;
    app.referrer()
        .withdraw_referral(pb::WithdrawReferralRequest {
            name: r.name.clone(),
            request_id: rid(),
            reason: "Family moved away".into(),
        })
        .await
        .unwrap();
    closed.push(r.name);

    let before = rows(&app).await;
    for name in &closed {
        let state = read(&app, name).await;
        for mut c in [app.referrer(), app.triage()] {
            let err = c
                .record_consent(pb::RecordConsentRequest {
                    name: name.clone(),
                    request_id: rid(),
                    consent: Some(assessment_consent()),
                })
                .await
                .unwrap_err();
            assert_status(&err, Code::FailedPrecondition, "REFERRAL_CLOSED");
        }
        assert_eq!(rows(&app).await, before, "{name}: something was written");
        assert_eq!(read(&app, name).await, state, "{name} is unchanged");
    }

    // An accepted referral is still open to further consent.
    let r = app.create(referral()).await;
    t.accept_referral(pb::AcceptReferralRequest {
        name: r.name.clone(),
        request_id: rid(),
        reason: "Meets the early help threshold".into(),
    })
    .await
    .unwrap();
    let more = app
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
    assert_eq!(more.state, pb::State::Accepted as i32);
    assert_eq!(more.consents.len(), 2);
}

#[tokio::test]
async fn a_rejected_consent_withdrawal_is_named_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let consent = r.consents[0].name.clone();
    let withdraw =
        |name: &str, request_id: &str, reason: &str, at: Option<prost_types::Timestamp>| {
            pb::WithdrawConsentRequest {
                name: name.into(),
                request_id: request_id.into(),
                reason: reason.into(),
                withdraw_time: at,
            }
        };
    let why = "Family no longer wishes to share";
    let cases: Vec<(&[&str], pb::WithdrawConsentRequest)> = vec![
        (&["request_id"], withdraw(&consent, "", why, None)),
        (&["request_id"], withdraw(&consent, "withdraw-1", why, None)),
        (
            &["reason"],
            withdraw(&consent, &rid(), &"x".repeat(2001), None),
        ),
        (&["reason"], withdraw(&consent, &rid(), "No\u{0}", None)),
        (
            &["withdraw_time"],
            withdraw(&consent, &rid(), why, invalid_ts()),
        ),
        (
            &["withdraw_time"],
            withdraw(
                &consent,
                &rid(),
                why,
                Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
            ),
        ),
        (
            &["withdraw_time"],
            withdraw(&consent, &rid(), why, now_ts(3600)),
        ),
        (&["name"], withdraw(&r.name, &rid(), why, None)),
        (
            &["name"],
            withdraw(
                &format!("{}/contacts/{}", r.name, uuid::Uuid::now_v7()),
                &rid(),
                why,
                None,
            ),
        ),
        (
            &["name", "request_id", "reason", "withdraw_time"],
            withdraw("consents/1", "1", &"x".repeat(2001), invalid_ts()),
        ),
    ];
    let before = rows(&app).await;
    for c in [app.referrer(), app.triage()] {
        for (fields, req) in &cases {
            let err = c.clone().withdraw_consent(req.clone()).await.unwrap_err();
            assert_invalid(&err, fields);
            assert_eq!(rows(&app).await, before, "{req:?} wrote something");
        }
    }
    let now = read(&app, &r.name).await;
    assert_eq!(now, r, "the referral is unchanged");
    assert!(
        now.consents[0].withdraw_time.is_none(),
        "consent still live"
    );

    // The limit is inclusive.
    let withdrawn = app
        .triage()
        .withdraw_consent(withdraw(&consent, &rid(), &"x".repeat(2000), now_ts(-60)))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(withdrawn.consents[0].withdraw_reason, "x".repeat(2000));
}

#[tokio::test]
async fn only_the_area_triage_or_the_referrer_may_withdraw_consent() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let consent = r.consents[0].name.clone();
    let id = rid();
    let req = |request_id: &str| pb::WithdrawConsentRequest {
        name: consent.clone(),
        request_id: request_id.into(),
        reason: "Family no longer wishes to share".into(),
        withdraw_time: None,
    };
    let before = rows(&app).await;
    // The referring organisation's other roles see the referral but may not act for
    // the family.
    for (org, role) in [
        (REFERRER_ORG, Role::Practitioner),
        (REFERRER_ORG, Role::Coordinator),
        (REFERRER_ORG, Role::Triage),
        // The area's practitioners see it, as the receiving area.
        (AREA, Role::Practitioner),
        (AREA, Role::Coordinator),
    ] {
        let err = app
            .client(org, &[role])
            .withdraw_consent(req(&id))
            .await
            .unwrap_err();
        assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
        assert_eq!(rows(&app).await, before, "{role:?} wrote something");
    }
    // Those who do not see it are told it does not exist.
    for mut c in [
        app.outsider(),
        app.client(AREA, &[Role::Referrer]),
        app.client(REFERRER_ORG, &[Role::Analyst]),
    ] {
        let err = c.withdraw_consent(req(&rid())).await.unwrap_err();
        assert_status(&err, Code::NotFound, "NOT_FOUND");
    }
    assert_eq!(rows(&app).await, before);
    assert_eq!(read(&app, &r.name).await, r, "the referral is unchanged");

    // The referrer may, and the refused calls kept no claim on the request id: the
    // same id and body withdraws rather than replaying.
    let withdrawn = app
        .referrer()
        .withdraw_consent(req(&id))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert!(withdrawn.consents[0].withdraw_time.is_some());
    assert_eq!(
        withdrawn.consents[0].withdraw_reason,
        "Family no longer wishes to share"
    );
    let types = app.event_types_for(&r.name, 2).await;
    assert_eq!(
        types,
        vec![
            "hearth.referrals.v1.referral.received",
            "hearth.referrals.v1.consent.withdrawn"
        ]
    );
}

#[tokio::test]
async fn times_a_caller_gives_are_checked_for_range_and_answered_as_stored() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let mut t = app.triage();
    // About 7500 BC: a valid protobuf timestamp that Postgres cannot store.
    let ancient = Some(prost_types::Timestamp {
        seconds: -300_000_000_000,
        nanos: 0,
    });
    let before = rows(&app).await;
    let mut consent = assessment_consent();
    consent.give_time = ancient;
    let err = t
        .record_consent(pb::RecordConsentRequest {
            name: r.name.clone(),
            request_id: rid(),
            consent: Some(consent.clone()),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["consent.give_time"]);
    let err = t
        .withdraw_consent(pb::WithdrawConsentRequest {
            name: r.consents[0].name.clone(),
            request_id: rid(),
            reason: String::new(),
            withdraw_time: ancient,
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["withdraw_time"]);
    // Withdrawn before it was given.
    let err = t
        .withdraw_consent(pb::WithdrawConsentRequest {
            name: r.consents[0].name.clone(),
            request_id: rid(),
            reason: String::new(),
            withdraw_time: Some(prost_types::Timestamp {
                seconds: r.consents[0].give_time.as_ref().unwrap().seconds - 86_400,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["withdraw_time"]);
    let mut create = referral();
    create.consents = vec![consent];
    let err = app
        .referrer()
        .create_referral(create_request(create))
        .await
        .unwrap_err();
    assert_invalid(&err, &["referral.consents[0].give_time"]);
    assert_eq!(rows(&app).await, before, "nothing written");

    // Nanoseconds are kept to the microsecond, as stored: the answer and a later read
    // (or a retry's answer) agree.
    let mut given = contact(-60, true);
    given.as_mut().unwrap().contact_time.as_mut().unwrap().nanos = 123_456_789;
    let answered = t
        .record_contact(pb::RecordContactRequest {
            name: r.name.clone(),
            request_id: rid(),
            contact: given,
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(
        answered.contacts[0].contact_time.as_ref().unwrap().nanos,
        123_456_000
    );
    assert_eq!(read(&app, &r.name).await, answered);
}
