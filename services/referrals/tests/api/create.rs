use chrono::Datelike;
use hearth_platform::Role;
use hearth_proto::referrals as pb;
use hearth_proto::types::Date;
use tonic::Code;

use crate::helpers::*;

/// A calendar day `days` from today (UTC, as the service counts days).
fn day(days: i64) -> Option<Date> {
    let d = chrono::Utc::now().date_naive() + chrono::Duration::days(days);
    date(d.year(), d.month() as i32, d.day() as i32)
}

/// Makes `r` court-ordered with a valid Parenting Order (made 20 days ago, for six
/// months), then lets `change` spoil one thing about the order.
fn court_ordered(r: &mut pb::Referral, change: impl FnOnce(&mut pb::ParentingOrder)) {
    r.route = pb::Route::CourtOrdered as i32;
    r.source = pb::Source::YouthOffendingTeam as i32;
    let mut order = pb::ParentingOrder {
        court: "Edinburgh Youth Court".into(),
        made_date: day(-20),
        expiry_date: day(160),
        responsible_officer_organisation: "midlothian-yot".into(),
        responsible_officer_service: pb::ResponsibleOfficerService::YouthOffendingTeam as i32,
        responsible_officer_name: "K. Murray".into(),
        bound_adult_indexes: vec![0],
        ..Default::default()
    };
    change(&mut order);
    r.parenting_order = Some(order);
}

#[tokio::test]
async fn a_referral_is_received_normalised_and_announced() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;

    assert!(r.name.starts_with("referrals/"), "{}", r.name);
    assert_eq!(r.state, pb::State::Received as i32);
    assert_eq!(r.referring_organisation, REFERRER_ORG);
    assert_eq!(r.postcode, "EH22 1AB", "postcode normalised");
    assert!(r.family_name.starts_with("families/"));
    assert!(!r.linked_to_existing_family);
    assert!(
        r.receive_time.is_some() && r.first_contact_time.is_none() && r.decision_time.is_none()
    );
    let child = &r.family.as_ref().unwrap().children[0];
    assert!(
        child
            .member_name
            .starts_with(&format!("{}/members/", r.family_name))
    );
    assert_eq!(r.consents.len(), 1);
    assert!(
        r.consents[0]
            .name
            .starts_with(&format!("{}/consents/", r.name))
    );

    // It reads back the same.
    let got = app
        .referrer()
        .get_referral(pb::GetReferralRequest {
            name: r.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(got, r);

    // Exactly one event, with the CloudEvents envelope.
    let events = app.events(1).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.subject.as_str(), "hearth.referrals.v1.referral.received");
    assert_eq!(
        header(e, "ce-type"),
        "hearth.referrals.v1.referral.received"
    );
    assert_eq!(header(e, "ce-source"), "//hearth/referrals");
    assert_eq!(header(e, "ce-subject"), r.name);
    assert_eq!(header(e, "ce-specversion"), "1.0");
    assert_eq!(header(e, "Nats-Msg-Id"), header(e, "ce-id"));
    assert!(!header(e, "ce-time").is_empty());
    let payload: pb::ReferralReceived = prost::Message::decode(e.payload.clone()).unwrap();
    assert_eq!(payload.referral.unwrap(), r);
    let rf = payload.r#ref.unwrap();
    assert_eq!(rf.referral, r.name);
    assert_eq!(rf.receiving_area, AREA);
}

#[tokio::test]
async fn every_bad_field_is_named_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    type Mutation = Box<dyn Fn(&mut pb::Referral)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "referral.receiving_area",
            Box::new(|r| r.receiving_area.clear()),
        ),
        ("referral.referrer", Box::new(|r| r.referrer = None)),
        (
            "referral.referrer.display_name",
            Box::new(|r| r.referrer.as_mut().unwrap().display_name = " ".into()),
        ),
        ("referral.source", Box::new(|r| r.source = 0)),
        ("referral.source", Box::new(|r| r.source = 42)),
        ("referral.family", Box::new(|r| r.family = None)),
        (
            "referral.family.children[0].date_of_birth",
            Box::new(|r| r.family.as_mut().unwrap().children[0].date_of_birth = date(2099, 1, 1)),
        ),
        (
            "referral.family.children[0].due_date",
            Box::new(|r| {
                let c = &mut r.family.as_mut().unwrap().children[0];
                c.date_of_birth = None;
                c.due_date = date(2020, 1, 1);
            }),
        ),
        (
            "referral.family.children[0].nhs_number",
            Box::new(|r| r.family.as_mut().unwrap().children[0].nhs_number = "9434765918".into()),
        ),
        (
            "referral.family.children[0].given_name",
            Box::new(|r| r.family.as_mut().unwrap().children[0].given_name = "x".repeat(101)),
        ),
        (
            "referral.family.adults[0].role",
            Box::new(|r| r.family.as_mut().unwrap().adults[0].role = 77),
        ),
        (
            "referral.family.children",
            Box::new(|r| {
                let f = r.family.as_mut().unwrap();
                let c = f.children[0].clone();
                f.children = (0..13)
                    .map(|i| pb::Child {
                        given_name: format!("Kid{i}"),
                        nhs_number: nhs_number(1000 + i * 100),
                        ..c.clone()
                    })
                    .collect();
            }),
        ),
        (
            "referral.family.adults",
            Box::new(|r| {
                let f = r.family.as_mut().unwrap();
                let a = f.adults[0].clone();
                f.adults = (0..9)
                    .map(|i| pb::Adult {
                        given_name: format!("Carer{i}"),
                        ..a.clone()
                    })
                    .collect();
            }),
        ),
        (
            "referral.family.children[1]",
            Box::new(|r| {
                let f = r.family.as_mut().unwrap();
                let mut twin = f.children[0].clone();
                twin.nhs_number.clear();
                f.children.push(twin);
            }),
        ),
        (
            "referral.family.adults[1]",
            Box::new(|r| {
                let f = r.family.as_mut().unwrap();
                f.adults.push(f.adults[0].clone());
            }),
        ),
        ("referral.reasons", Box::new(|r| r.reasons.clear())),
        ("referral.reasons[0]", Box::new(|r| r.reasons[0] = 999)),
        (
            "referral.description",
            Box::new(|r| r.description = "x".repeat(4001)),
        ),
        ("referral.urgency", Box::new(|r| r.urgency = 0)),
        (
            "referral.postcode",
            Box::new(|r| r.postcode = "EH22 1AC".into()),
        ),
        ("referral.postcode", Box::new(|r| r.postcode.clear())),
        ("referral.consents", Box::new(|r| r.consents.clear())),
        (
            "referral.consents[0].give_time",
            Box::new(|r| r.consents[0].give_time = now_ts(86_400)),
        ),
        (
            "referral.consents[0].scopes",
            Box::new(|r| r.consents[0].scopes.clear()),
        ),
        ("referral.route", Box::new(|r| r.route = 0)),
        (
            "referral.parenting_order",
            Box::new(|r| {
                r.route = pb::Route::CourtOrdered as i32;
            }),
        ),
        (
            "referral.parenting_order.expiry_date",
            Box::new(|r| {
                r.route = pb::Route::CourtOrdered as i32;
                r.parenting_order = Some(pb::ParentingOrder {
                    court: "Edinburgh Sheriff Court".into(),
                    made_date: date(2026, 1, 10),
                    expiry_date: date(2027, 1, 11),
                    responsible_officer_organisation: "midlothian-yot".into(),
                    responsible_officer_service: pb::ResponsibleOfficerService::YouthOffendingTeam
                        as i32,
                    responsible_officer_name: String::new(),
                    bound_adult_indexes: vec![0],
                    ..Default::default()
                });
            }),
        ),
        // Receiving area: an organisation id.
        (
            "referral.receiving_area",
            Box::new(|r| r.receiving_area = "Mid Lothian".into()),
        ),
        (
            "referral.receiving_area",
            Box::new(|r| r.receiving_area = "mid_lothian".into()),
        ),
        (
            "referral.receiving_area",
            Box::new(|r| r.receiving_area = "a".repeat(65)),
        ),
        // Referrer: bounded free text.
        (
            "referral.referrer.job_title",
            Box::new(|r| r.referrer.as_mut().unwrap().job_title = "x".repeat(201)),
        ),
        (
            "referral.referrer.contact",
            Box::new(|r| r.referrer.as_mut().unwrap().contact = "0".repeat(201)),
        ),
        (
            "referral.referrer.display_name",
            Box::new(|r| r.referrer.as_mut().unwrap().display_name = "Asha\u{1b}[2J".into()),
        ),
        // Children's dates.
        (
            "referral.family.children[0].date_of_birth",
            Box::new(|r| {
                let year = chrono::Utc::now().year() - 26;
                r.family.as_mut().unwrap().children[0].date_of_birth = date(year, 6, 1);
            }),
        ),
        (
            "referral.family.children[0].due_date",
            Box::new(|r| r.family.as_mut().unwrap().children[0].due_date = day(60)),
        ),
        (
            "referral.family.children[0].due_date",
            Box::new(|r| {
                let c = &mut r.family.as_mut().unwrap().children[0];
                c.date_of_birth = None;
                c.due_date = day(320);
            }),
        ),
        // Names: no control characters; adults' names are required.
        (
            "referral.family.children[0].given_name",
            Box::new(|r| r.family.as_mut().unwrap().children[0].given_name = "Sam\u{7}".into()),
        ),
        (
            "referral.family.children[0].family_name",
            Box::new(|r| r.family.as_mut().unwrap().children[0].family_name = "Re\u{0}id".into()),
        ),
        (
            "referral.family.adults[0].given_name",
            Box::new(|r| r.family.as_mut().unwrap().adults[0].given_name.clear()),
        ),
        (
            "referral.family.adults[0].family_name",
            Box::new(|r| r.family.as_mut().unwrap().adults[0].family_name = "   ".into()),
        ),
        (
            "referral.family.adults[0].family_name",
            Box::new(|r| r.family.as_mut().unwrap().adults[0].family_name = "Reid\u{8}".into()),
        ),
        (
            "referral.family.children[0].ethnicity",
            Box::new(|r| r.family.as_mut().unwrap().children[0].ethnicity = "x".repeat(61)),
        ),
        (
            "referral.family.adults[0].ethnicity",
            Box::new(|r| r.family.as_mut().unwrap().adults[0].ethnicity = "x".repeat(61)),
        ),
        (
            "referral.family.adults[0].phone",
            Box::new(|r| r.family.as_mut().unwrap().adults[0].phone = "0".repeat(41)),
        ),
        (
            "referral.family.adults[0].date_of_birth",
            Box::new(|r| r.family.as_mut().unwrap().adults[0].date_of_birth = day(30)),
        ),
        // Reasons and consents are bounded.
        (
            "referral.reasons",
            Box::new(|r| r.reasons = (1..=11).collect()),
        ),
        (
            "referral.consents",
            Box::new(|r| r.consents = vec![assessment_consent(); 11]),
        ),
        // Access needs.
        (
            "referral.access_needs.language",
            Box::new(|r| r.access_needs.as_mut().unwrap().language = "en_GB".into()),
        ),
        (
            "referral.access_needs.language",
            Box::new(|r| r.access_needs.as_mut().unwrap().language = "en GB".into()),
        ),
        (
            "referral.access_needs.language",
            Box::new(|r| r.access_needs.as_mut().unwrap().language = "a".repeat(36)),
        ),
        (
            "referral.access_needs.preferred_times[1]",
            Box::new(|r| r.access_needs.as_mut().unwrap().preferred_times.push(99)),
        ),
        (
            "referral.access_needs.preferred_times[0]",
            Box::new(|r| r.access_needs.as_mut().unwrap().preferred_times = vec![0]),
        ),
        // A Parenting Order's own fields.
        (
            "referral.parenting_order.court",
            Box::new(|r| court_ordered(r, |o| o.court = " ".into())),
        ),
        (
            "referral.parenting_order.made_date",
            Box::new(|r| court_ordered(r, |o| o.made_date = None)),
        ),
        (
            "referral.parenting_order.made_date",
            Box::new(|r| {
                court_ordered(r, |o| {
                    o.made_date = day(10);
                    o.expiry_date = day(100);
                })
            }),
        ),
        (
            "referral.parenting_order.expiry_date",
            Box::new(|r| court_ordered(r, |o| o.expiry_date = None)),
        ),
        (
            "referral.parenting_order.expiry_date",
            Box::new(|r| court_ordered(r, |o| o.expiry_date = o.made_date)),
        ),
        (
            "referral.parenting_order.expiry_date",
            Box::new(|r| court_ordered(r, |o| o.expiry_date = day(-21))),
        ),
        (
            "referral.parenting_order.responsible_officer_organisation",
            Box::new(|r| {
                court_ordered(r, |o| {
                    o.responsible_officer_organisation = "Midlothian YOT".into()
                })
            }),
        ),
        (
            "referral.parenting_order.responsible_officer_organisation",
            Box::new(|r| court_ordered(r, |o| o.responsible_officer_organisation.clear())),
        ),
        (
            "referral.parenting_order.responsible_officer_service",
            Box::new(|r| court_ordered(r, |o| o.responsible_officer_service = 0)),
        ),
    ];
    // The court-ordered base the order cases spoil is itself valid.
    let mut base = referral();
    court_ordered(&mut base, |_| {});
    base.consents.clear();
    let mut check = create_request(base);
    check.validate_only = true;
    app.referrer()
        .create_referral(check)
        .await
        .expect("the unspoilt court-ordered referral is valid");

    let mut client = app.referrer();
    for (field, mutate) in &cases {
        let mut r = referral();
        mutate(&mut r);
        let err = client.create_referral(create_request(r)).await.unwrap_err();
        assert_invalid(&err, &[field]);
    }
    // Several problems at once are all reported.
    let mut r = referral();
    r.postcode = "nope".into();
    r.urgency = 0;
    let err = client.create_referral(create_request(r)).await.unwrap_err();
    assert_invalid(&err, &["referral.postcode", "referral.urgency"]);
    // A missing request id is named too.
    let mut req = create_request(referral());
    req.request_id.clear();
    assert_invalid(
        &client.create_referral(req).await.unwrap_err(),
        &["request_id"],
    );
    // So is one that is not a UUID, and a missing referral.
    let mut req = create_request(referral());
    req.request_id = "order-42".into();
    assert_invalid(
        &client.create_referral(req).await.unwrap_err(),
        &["request_id"],
    );
    let mut req = create_request(referral());
    req.referral = None;
    assert_invalid(
        &client.create_referral(req).await.unwrap_err(),
        &["referral"],
    );

    for (table, n) in rows(&app).await.counts() {
        if table != "_sqlx_migrations" {
            assert_eq!(n, 0, "{table} must stay empty");
        }
    }
}

#[tokio::test]
async fn validate_only_checks_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let mut req = create_request(referral());
    req.validate_only = true;
    let preview = app
        .referrer()
        .create_referral(req)
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert!(preview.name.is_empty());
    assert_eq!(preview.postcode, "EH22 1AB");
    assert_eq!(app.count("referrals").await, 0);
    assert_eq!(app.count("outbox").await, 0);
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_same_referral_and_a_changed_body_is_rejected() {
    let app = TestApp::spawn().await;
    let req = create_request(referral());
    let mut c = app.referrer();
    let first = c
        .create_referral(req.clone())
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let again = c
        .create_referral(req.clone())
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(first, again);

    let mut changed = req.clone();
    changed.referral.as_mut().unwrap().description = "something else".into();
    let err = c.create_referral(changed).await.unwrap_err();
    assert_reused(&err);

    // Request ids are scoped to the organisation: another org's same id is its own.
    let other = app
        .client("st-davids-primary", &[Role::Referrer])
        .create_referral(req.clone())
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_ne!(other.name, first.name);
    assert_eq!(app.count("referrals").await, 2);
    assert_eq!(
        app.events(3).await.len(),
        3,
        "received, received, family linked"
    );
}

#[tokio::test]
async fn fifty_concurrent_creates_with_one_request_id_make_one_referral() {
    let app = TestApp::spawn().await;
    let req = create_request(referral());
    let calls = (0..50).map(|_| {
        let mut c = app.referrer();
        let req = req.clone();
        tokio::spawn(async move {
            c.create_referral(req)
                .await
                .map(|r| r.into_inner().referral.unwrap().name)
        })
    });
    let names: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("every call succeeds"))
        .collect();
    assert!(
        names.iter().all(|n| *n == names[0]),
        "all 50 got the same referral"
    );
    assert_eq!(app.count("referrals").await, 1);
    assert_eq!(app.count("families").await, 1);
    assert_eq!(app.events(1).await.len(), 1, "one event");
}

#[tokio::test]
async fn callers_need_a_valid_token_and_a_referring_role() {
    let app = TestApp::spawn().await;
    let err = app
        .client_with_token(None)
        .create_referral(create_request(referral()))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "UNAUTHENTICATED");
    let err = app
        .client_with_token(Some("not-a-jwt".into()))
        .create_referral(create_request(referral()))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "UNAUTHENTICATED");
    // Signed by a key the service does not trust.
    let stranger = hearth_platform::auth::KeyPair::generate();
    let forged = hearth_platform::auth::TokenIssuer::from_private_pem(
        "x",
        &stranger.private_pem,
        "hearth-test",
        "hearth",
    )
    .unwrap()
    .mint(
        "u",
        REFERRER_ORG,
        &[Role::Referrer],
        std::time::Duration::from_secs(60),
    );
    let err = app
        .client_with_token(Some(forged))
        .create_referral(create_request(referral()))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "UNAUTHENTICATED");

    let err = app
        .client(REFERRER_ORG, &[Role::Analyst])
        .create_referral(create_request(referral()))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
    assert_eq!(app.count("referrals").await, 0);
}

#[tokio::test]
async fn a_known_child_links_the_referral_to_the_existing_family() {
    let app = TestApp::spawn().await;
    let first = app.create(referral()).await;

    // Same NHS number, from a school, with a sibling.
    let mut second = referral();
    let known_child = first.family.as_ref().unwrap().children[0].clone();
    let fam = second.family.as_mut().unwrap();
    fam.children[0].nhs_number = known_child.nhs_number.clone();
    fam.children.push(pb::Child {
        given_name: "Alex".into(),
        family_name: "Reid".into(),
        date_of_birth: date(2019, 9, 9),
        ..Default::default()
    });
    second.source = pb::Source::School as i32;
    let school = app.client("newbattle-high-school", &[Role::Referrer]);
    let linked = school
        .clone()
        .create_referral(create_request(second))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert!(linked.linked_to_existing_family);
    assert_eq!(linked.family_name, first.family_name);
    let kids = &linked.family.as_ref().unwrap().children;
    assert_eq!(
        kids[0].member_name, known_child.member_name,
        "the same child, not a copy"
    );
    assert_ne!(kids[1].member_name, known_child.member_name);
    let adults = &linked.family.as_ref().unwrap().adults;
    assert_eq!(
        adults[0].member_name,
        first.family.as_ref().unwrap().adults[0].member_name,
        "the same mother"
    );

    // Same name, date of birth and postcode, no NHS number: linked too.
    let mut third = referral();
    let c = &mut third.family.as_mut().unwrap().children[0];
    c.nhs_number.clear();
    c.given_name = format!("  {}  ", known_child.given_name.to_uppercase());
    c.family_name = known_child.family_name.clone();
    third.postcode = "EH221AB".into();
    let by_name = app.create(third).await;
    assert!(by_name.linked_to_existing_family);
    assert_eq!(by_name.family_name, first.family_name);

    // A different area's front door does not see this family.
    let mut elsewhere = referral();
    elsewhere.receiving_area = "east-lothian".into();
    elsewhere.family.as_mut().unwrap().children[0].nhs_number = known_child.nhs_number.clone();
    let separate = app.create(elsewhere).await;
    assert!(!separate.linked_to_existing_family);
    assert_ne!(separate.family_name, first.family_name);

    let types: Vec<String> = app
        .events(6)
        .await
        .iter()
        .map(|m| header(m, "ce-type"))
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "hearth.referrals.v1.family.linked")
            .count(),
        2,
        "{types:?}"
    );
    let linked_event = app
        .events(6)
        .await
        .into_iter()
        .find(|m| {
            header(m, "ce-type") == "hearth.referrals.v1.family.linked"
                && header(m, "ce-subject") == linked.name
        })
        .expect("family.linked for the school's referral");
    let payload: pb::FamilyLinked = prost::Message::decode(linked_event.payload).unwrap();
    assert_eq!(payload.family, first.family_name);
    assert_eq!(
        payload.matched_members,
        vec![known_child.member_name.clone()]
    );
    assert_eq!(payload.r#match, pb::LinkMatch::NhsNumber as i32);
}

#[tokio::test]
async fn concurrent_referrals_for_one_new_child_make_one_family() {
    let app = TestApp::spawn().await;
    let base = referral();
    let calls = (0..8).map(|_| {
        let mut c = app.referrer();
        let r = base.clone();
        tokio::spawn(async move {
            c.create_referral(create_request(r))
                .await
                .unwrap()
                .into_inner()
                .referral
                .unwrap()
        })
    });
    let made: Vec<pb::Referral> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(made.iter().all(|r| r.family_name == made[0].family_name));
    assert_eq!(app.count("families").await, 1);
    assert_eq!(
        made.iter().filter(|r| !r.linked_to_existing_family).count(),
        1
    );
}

#[tokio::test]
async fn the_callers_trace_continues_onto_the_event() {
    let app = TestApp::spawn().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(create_request(referral()));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    app.referrer().create_referral(req).await.unwrap();
    let events = app.events(1).await;
    let tp = header(&events[0], "traceparent");
    assert!(
        tp.starts_with(&format!("00-{trace_id}-")),
        "traceparent {tp:?}"
    );
}

#[tokio::test]
async fn linking_never_shows_one_organisations_account_to_another() {
    let app = TestApp::spawn().await;
    let mut first = referral();
    first.family.as_mut().unwrap().adults[0].phone = "07700 900111".into();
    first.family.as_mut().unwrap().children[0].ethnicity = "WHITE_SCOTTISH".into();
    let first = app.create(first).await;
    let known = first.family.as_ref().unwrap().children[0].clone();

    // The school knows the same child (same NHS number) under a shorter name.
    let mut second = referral();
    let f = second.family.as_mut().unwrap();
    f.children[0].nhs_number = known.nhs_number.clone();
    f.children[0].given_name = "Sammy".into();
    let req = create_request(second);
    let mut school = app.client("newbattle-high-school", &[Role::Referrer]);
    let made = school
        .create_referral(req.clone())
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert!(made.linked_to_existing_family);
    let kid = &made.family.as_ref().unwrap().children[0];
    assert_eq!(kid.member_name, known.member_name, "the same person");
    assert_eq!(kid.given_name, "Sammy", "as the school described them");
    assert!(
        kid.ethnicity.is_empty(),
        "nothing from the health visitor's account"
    );
    let mum = &made.family.as_ref().unwrap().adults[0];
    assert!(mum.phone.is_empty(), "nor the mother's phone number");

    // A retry answers exactly as the first call did, and so does a read.
    let again = school
        .create_referral(req)
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(again, made);
    let read = school
        .get_referral(pb::GetReferralRequest {
            name: made.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(read, made);
    let fam = school
        .get_family(pb::GetFamilyRequest {
            name: made.family_name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .family
        .unwrap();
    assert_eq!(fam.children[0].given_name, "Sammy");
    assert!(fam.adults[0].phone.is_empty());
}

#[tokio::test]
async fn children_with_different_nhs_numbers_are_never_merged() {
    let app = TestApp::spawn().await;
    let first = app.create(referral()).await;
    let known = first.family.as_ref().unwrap().children[0].clone();
    let mut twin = referral();
    let c = &mut twin.family.as_mut().unwrap().children[0];
    c.given_name = known.given_name.clone();
    c.nhs_number = nhs_number(4242);
    let twin = app.create(twin).await;
    assert!(
        !twin.linked_to_existing_family,
        "same name, birthday and postcode, different NHS number"
    );
    assert_ne!(twin.family_name, first.family_name);
}
