use hearth_platform::Role;
use hearth_proto::referrals as pb;
use tonic::{Code, Status};

use crate::helpers::*;

/// Every triage verb, applied by `c` to `name`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verb {
    Accept,
    Signpost,
    Redirect,
    Decline,
    Withdraw,
}

const VERBS: [Verb; 5] = [
    Verb::Accept,
    Verb::Signpost,
    Verb::Redirect,
    Verb::Decline,
    Verb::Withdraw,
];

async fn apply(
    c: &mut Client,
    verb: Verb,
    name: &str,
    request_id: &str,
) -> Result<pb::Referral, Status> {
    let name = name.to_owned();
    let request_id = request_id.to_owned();
    let r = match verb {
        Verb::Accept => {
            c.accept_referral(pb::AcceptReferralRequest {
                name,
                request_id,
                reason: "Needs a focused parenting programme".into(),
            })
            .await?
            .into_inner()
            .referral
        }
        Verb::Signpost => {
            c.signpost_referral(pb::SignpostReferralRequest {
                name,
                request_id,
                signposted_to: "Family Information Service sleep leaflet".into(),
                reason: "Universal information meets the need".into(),
            })
            .await?
            .into_inner()
            .referral
        }
        Verb::Redirect => {
            c.redirect_referral(pb::RedirectReferralRequest {
                name,
                request_id,
                redirected_to: "Children's social care".into(),
                reason: "Child protection threshold met".into(),
            })
            .await?
            .into_inner()
            .referral
        }
        Verb::Decline => {
            c.decline_referral(pb::DeclineReferralRequest {
                name,
                request_id,
                decline_reason: pb::DeclineReason::NeedsMetElsewhere as i32,
                reason: "Already attending Incredible Years".into(),
            })
            .await?
            .into_inner()
            .referral
        }
        Verb::Withdraw => {
            c.withdraw_referral(pb::WithdrawReferralRequest {
                name,
                request_id,
                reason: "Family moved away".into(),
            })
            .await?
            .into_inner()
            .referral
        }
    };
    Ok(r.unwrap())
}

fn target(verb: Verb) -> (pb::State, &'static str) {
    match verb {
        Verb::Accept => (pb::State::Accepted, "hearth.referrals.v1.referral.accepted"),
        Verb::Signpost => (
            pb::State::Signposted,
            "hearth.referrals.v1.referral.signposted",
        ),
        Verb::Redirect => (
            pb::State::Redirected,
            "hearth.referrals.v1.referral.redirected",
        ),
        Verb::Decline => (pb::State::Declined, "hearth.referrals.v1.referral.declined"),
        Verb::Withdraw => (
            pb::State::Withdrawn,
            "hearth.referrals.v1.referral.withdrawn",
        ),
    }
}

#[tokio::test]
async fn each_decision_records_who_when_why_and_is_final() {
    let app = TestApp::spawn().await;
    let mut triage = app.triage();
    let mut names = Vec::new();
    for verb in VERBS {
        let r = app.create(referral()).await;
        let decided = apply(&mut triage, verb, &r.name, &rid()).await.unwrap();
        let (state, _) = target(verb);
        assert_eq!(decided.state, state as i32, "{verb:?}");
        let d = decided.decision.as_ref().unwrap();
        assert_eq!(d.outcome, state as i32);
        assert_eq!(d.decided_by_organisation, AREA);
        assert_eq!(d.decided_by, "user-1");
        assert!(!d.reason.is_empty());
        assert!(decided.decision_time.is_some());
        match verb {
            Verb::Decline => assert_eq!(
                d.decline_reason,
                pb::DeclineReason::NeedsMetElsewhere as i32
            ),
            Verb::Redirect => assert_eq!(d.destination, "Children's social care"),
            Verb::Signpost => assert!(d.destination.contains("leaflet")),
            _ => {}
        }
        // No second decision, whatever it is.
        for again in VERBS {
            let err = apply(&mut triage, again, &r.name, &rid())
                .await
                .unwrap_err();
            assert_status(&err, Code::FailedPrecondition, "REFERRAL_ALREADY_DECIDED");
        }
        names.push((r.name, verb));
    }
    // One received and one decision event per referral; the rejected attempts published nothing.
    for (name, verb) in names {
        let types = app.event_types_for(&name, 10).await;
        assert_eq!(
            types,
            vec![
                "hearth.referrals.v1.referral.received".to_owned(),
                target(verb).1.to_owned()
            ]
        );
    }
}

#[tokio::test]
async fn only_the_area_triage_decides_and_others_do_not_see_the_referral() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    for verb in [Verb::Accept, Verb::Signpost, Verb::Redirect, Verb::Decline] {
        let err = apply(&mut app.referrer(), verb, &r.name, &rid())
            .await
            .unwrap_err();
        assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
    }
    for verb in VERBS {
        let err = apply(&mut app.outsider(), verb, &r.name, &rid())
            .await
            .unwrap_err();
        assert_status(&err, Code::NotFound, "NOT_FOUND");
        // The area's practitioners see it (the receiving area) but do not decide.
        let err = apply(
            &mut app.client(AREA, &[Role::Practitioner]),
            verb,
            &r.name,
            &rid(),
        )
        .await
        .unwrap_err();
        assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
        let err = apply(
            &mut app.client(AREA, &[Role::Referrer]),
            verb,
            &r.name,
            &rid(),
        )
        .await
        .unwrap_err();
        assert_status(&err, Code::NotFound, "NOT_FOUND");
    }
    // The family can withdraw through their referrer.
    let withdrawn = apply(&mut app.referrer(), Verb::Withdraw, &r.name, &rid())
        .await
        .unwrap();
    assert_eq!(withdrawn.state, pb::State::Withdrawn as i32);
    assert_eq!(
        withdrawn.decision.unwrap().decided_by_organisation,
        REFERRER_ORG
    );
}

#[tokio::test]
async fn a_safeguarding_concern_cannot_be_signposted_or_declined() {
    let app = TestApp::spawn().await;
    let mut r = referral();
    r.safeguarding_concern = true;
    r.consents.clear();
    r.source = pb::Source::MultiAgencySafeguardingHub as i32;
    let r = app.create(r).await;
    let mut triage = app.triage();
    for verb in [Verb::Signpost, Verb::Decline] {
        let err = apply(&mut triage, verb, &r.name, &rid()).await.unwrap_err();
        assert_status(&err, Code::FailedPrecondition, "SAFEGUARDING_CONCERN");
    }
    let err = apply(&mut triage, Verb::Accept, &r.name, &rid())
        .await
        .unwrap_err();
    assert_status(
        &err,
        Code::FailedPrecondition,
        "ASSESSMENT_CONSENT_REQUIRED",
    );
    let redirected = apply(&mut triage, Verb::Redirect, &r.name, &rid())
        .await
        .unwrap();
    assert_eq!(redirected.state, pb::State::Redirected as i32);
}

#[tokio::test]
async fn a_court_ordered_referral_is_accepted_without_assessment_consent() {
    let app = TestApp::spawn().await;
    let mut r = referral();
    r.consents.clear();
    r.route = pb::Route::CourtOrdered as i32;
    r.source = pb::Source::YouthOffendingTeam as i32;
    let today = chrono::Utc::now().date_naive();
    let made = today - chrono::Duration::days(20);
    let expires = made + chrono::Months::new(12);
    use chrono::Datelike;
    r.parenting_order = Some(pb::ParentingOrder {
        court: "Edinburgh Youth Court".into(),
        made_date: date(made.year(), made.month() as i32, made.day() as i32),
        expiry_date: date(expires.year(), expires.month() as i32, expires.day() as i32),
        responsible_officer_organisation: "midlothian-yot".into(),
        responsible_officer_service: pb::ResponsibleOfficerService::YouthOffendingTeam as i32,
        responsible_officer_name: "K. Murray".into(),
        bound_adult_indexes: vec![0],
        ..Default::default()
    });
    let created = app.create(r).await;
    assert_eq!(
        created.parenting_order.as_ref().unwrap().court,
        "Edinburgh Youth Court"
    );
    let accepted = apply(&mut app.triage(), Verb::Accept, &created.name, &rid())
        .await
        .unwrap();
    assert_eq!(accepted.state, pb::State::Accepted as i32);
}

#[tokio::test]
async fn a_retried_decision_changes_nothing_and_a_reused_id_is_rejected() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let other = app.create(referral()).await;
    let mut triage = app.triage();
    let id = rid();
    let first = apply(&mut triage, Verb::Accept, &r.name, &id)
        .await
        .unwrap();
    let again = apply(&mut triage, Verb::Accept, &r.name, &id)
        .await
        .unwrap();
    assert_eq!(first, again, "a retry answers as the first call did");
    // The same id on a different referral is a different request.
    let err = apply(&mut triage, Verb::Accept, &other.name, &id)
        .await
        .unwrap_err();
    assert_reused(&err);
    let types = app.event_types_for(&r.name, 3).await;
    assert_eq!(types.len(), 2, "received + one accepted: {types:?}");
}

#[tokio::test]
async fn decisions_validate_their_fields() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let mut t = app.triage();
    let err = t
        .decline_referral(pb::DeclineReferralRequest {
            name: r.name.clone(),
            request_id: rid(),
            decline_reason: 0,
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["decline_reason", "reason"]);
    let err = t
        .redirect_referral(pb::RedirectReferralRequest {
            name: r.name.clone(),
            request_id: rid(),
            redirected_to: String::new(),
            reason: "x".repeat(2001),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["redirected_to", "reason"]);
    let err = t
        .signpost_referral(pb::SignpostReferralRequest {
            name: r.name.clone(),
            request_id: String::new(),
            signposted_to: String::new(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["request_id", "signposted_to", "reason"]);
    let err = t
        .accept_referral(pb::AcceptReferralRequest {
            name: "referrals/nope".into(),
            request_id: "not-a-uuid".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["name", "request_id", "reason"]);
    let err = t
        .withdraw_referral(pb::WithdrawReferralRequest {
            name: format!("referrals/{}", uuid::Uuid::now_v7()),
            request_id: rid(),
            reason: "Family moved away".into(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    assert_eq!(
        app.count("request_claims").await,
        1,
        "only the create's request id is kept"
    );
}

/// Any one of the decision requests.
#[derive(Debug, Clone)]
enum Call {
    Accept(pb::AcceptReferralRequest),
    Signpost(pb::SignpostReferralRequest),
    Redirect(pb::RedirectReferralRequest),
    Decline(pb::DeclineReferralRequest),
}

async fn send(c: &mut Client, call: Call) -> Result<pb::Referral, Status> {
    let r = match call {
        Call::Accept(req) => c.accept_referral(req).await?.into_inner().referral,
        Call::Signpost(req) => c.signpost_referral(req).await?.into_inner().referral,
        Call::Redirect(req) => c.redirect_referral(req).await?.into_inner().referral,
        Call::Decline(req) => c.decline_referral(req).await?.into_inner().referral,
    };
    Ok(r.unwrap())
}

#[tokio::test]
async fn decision_fields_are_coded_and_bounded_and_a_rejected_decision_writes_nothing() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let name = r.name.clone();
    let accept = |reason: String| {
        Call::Accept(pb::AcceptReferralRequest {
            name: name.clone(),
            request_id: rid(),
            reason,
        })
    };
    let signpost = |to: String, reason: &str| {
        Call::Signpost(pb::SignpostReferralRequest {
            name: name.clone(),
            request_id: rid(),
            signposted_to: to,
            reason: reason.into(),
        })
    };
    let redirect = |to: &str, reason: String| {
        Call::Redirect(pb::RedirectReferralRequest {
            name: name.clone(),
            request_id: rid(),
            redirected_to: to.into(),
            reason,
        })
    };
    let decline = |code: i32, reason: String| {
        Call::Decline(pb::DeclineReferralRequest {
            name: name.clone(),
            request_id: rid(),
            decline_reason: code,
            reason,
        })
    };
    let ok = || "Universal information meets the need".to_owned();
    let cases: Vec<(&[&str], Call)> = vec![
        (&["decline_reason"], decline(99, ok())),
        (&["decline_reason"], decline(-1, ok())),
        (&["reason"], decline(2, "x".repeat(2001))),
        (&["signposted_to"], signpost("x".repeat(501), "Leaflet")),
        (&["signposted_to"], signpost("é".repeat(501), "Leaflet")),
        (&["signposted_to"], signpost(" \t ".into(), "Leaflet")),
        (&["signposted_to"], signpost("FIS\u{7}".into(), "Leaflet")),
        (&["redirected_to"], redirect(&"x".repeat(501), ok())),
        (
            &["reason"],
            redirect("Children's social care", "a\u{0}b".into()),
        ),
        (&["reason"], accept("x".repeat(2001))),
        (&["reason"], accept("   ".into())),
        (
            &["name"],
            Call::Accept(pb::AcceptReferralRequest {
                name: format!("{name}/consents"),
                request_id: rid(),
                reason: ok(),
            }),
        ),
        (
            &["decline_reason", "reason", "request_id"],
            Call::Decline(pb::DeclineReferralRequest {
                name: name.clone(),
                request_id: "42".into(),
                decline_reason: 6,
                reason: "x".repeat(2001),
            }),
        ),
    ];
    let before = rows(&app).await;
    let mut t = app.triage();
    for (fields, call) in cases {
        let err = send(&mut t, call.clone()).await.unwrap_err();
        assert_invalid(&err, fields);
        assert_eq!(rows(&app).await, before, "{call:?} wrote something");
    }
    assert_eq!(read(&app, &r.name).await, r, "the referral is unchanged");

    // The limits count characters and are inclusive.
    let to = "é".repeat(500);
    let why = "x".repeat(2000);
    let signposted = send(&mut t, signpost(to.clone(), &why)).await.unwrap();
    assert_eq!(signposted.state, pb::State::Signposted as i32);
    let d = signposted.decision.unwrap();
    assert_eq!((d.destination, d.reason), (to, why));
}

#[tokio::test]
async fn withdrawing_a_referral_validates_authorises_and_writes_nothing_when_rejected() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let req = |name: &str, request_id: &str, reason: &str| pb::WithdrawReferralRequest {
        name: name.into(),
        request_id: request_id.into(),
        reason: reason.into(),
    };
    let family_id = r.family_name.trim_start_matches("families/").to_owned();
    let long = "x".repeat(2001);
    let cases: Vec<(&[&str], pb::WithdrawReferralRequest)> = vec![
        (&["name"], req("", &rid(), "Family moved away")),
        (&["name"], req("referrals/42", &rid(), "Family moved away")),
        (
            &["name"],
            req(
                &format!("families/{family_id}"),
                &rid(),
                "Family moved away",
            ),
        ),
        (&["request_id"], req(&r.name, "", "Family moved away")),
        (
            &["request_id"],
            req(&r.name, "order-42", "Family moved away"),
        ),
        (&["reason"], req(&r.name, &rid(), "")),
        (&["reason"], req(&r.name, &rid(), " \n\t ")),
        (&["reason"], req(&r.name, &rid(), &long)),
        (&["reason"], req(&r.name, &rid(), "Moved\u{7}")),
        (&["name", "request_id", "reason"], req("r/1", "1", &long)),
    ];
    let before = rows(&app).await;
    for (fields, request) in cases {
        for c in [app.referrer(), app.triage()] {
            let err = c
                .clone()
                .withdraw_referral(request.clone())
                .await
                .unwrap_err();
            assert_invalid(&err, fields);
            assert_eq!(rows(&app).await, before, "{request:?} wrote something");
        }
    }

    // Whoever sees the referral but does not act for the family may not withdraw it;
    // whoever does not see it is told it does not exist.
    let reason = "y".repeat(2000);
    let id = rid();
    for roles in [Role::Practitioner, Role::Coordinator, Role::Triage] {
        let err = app
            .client(REFERRER_ORG, &[roles])
            .withdraw_referral(req(&r.name, &id, &reason))
            .await
            .unwrap_err();
        assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
        assert_eq!(rows(&app).await, before, "{roles:?} wrote something");
    }
    for mut c in [app.outsider(), app.client(AREA, &[Role::Referrer])] {
        let err = c
            .withdraw_referral(req(&r.name, &rid(), &reason))
            .await
            .unwrap_err();
        assert_status(&err, Code::NotFound, "NOT_FOUND");
    }
    assert_eq!(rows(&app).await, before);
    assert_eq!(read(&app, &r.name).await, r, "the referral is unchanged");

    // The refused calls kept no claim on their request id: the referrer's own call
    // with the same id and body withdraws the referral rather than replaying.
    let withdrawn = app
        .referrer()
        .withdraw_referral(req(&r.name, &id, &reason))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(withdrawn.state, pb::State::Withdrawn as i32);
    assert_eq!(withdrawn.decision.unwrap().reason, reason);
}
