//! Issue 14's additions to the front door, over gRPC: how to reach the family; whom a
//! consent covers and an order binds; an order made after the referral; corrections to
//! the family's details; and the one consent-in-force rule deciding AcceptReferral.

use chrono::Datelike as _;
use hearth_platform::Role;
use hearth_proto::events::referrals as subjects;
use hearth_proto::referrals as pb;
use tonic::Code;

use crate::helpers::*;

fn day(days: i64) -> Option<hearth_proto::types::Date> {
    let d = chrono::Utc::now().date_naive() + chrono::Duration::days(days);
    date(d.year(), d.month() as i32, d.day() as i32)
}

/// An order made ten days ago for six months, binding `members`.
fn order(members: &[String]) -> pb::ParentingOrder {
    pb::ParentingOrder {
        court: "Edinburgh Youth Court".into(),
        made_date: day(-10),
        expiry_date: day(170),
        responsible_officer_organisation: "midlothian-yot".into(),
        responsible_officer_service: pb::ResponsibleOfficerService::YouthOffendingTeam as i32,
        responsible_officer_name: "K. Murray".into(),
        bound_members: members.to_vec(),
        ..Default::default()
    }
}

/// A referral with a safeguarding concern (so it needs no consent) and two parents.
fn two_parents_no_consent() -> pb::Referral {
    let mut r = referral();
    r.safeguarding_concern = true;
    r.consents.clear();
    r.family.as_mut().unwrap().adults.push(pb::Adult {
        given_name: "Sandy".into(),
        family_name: "Reid".into(),
        role: pb::ParentingRole::Father as i32,
        phone: "07700 900456".into(),
        preferred_contact_method: pb::ContactMethod::TextMessage as i32,
        ..Default::default()
    });
    r
}

fn adult_names(r: &pb::Referral) -> Vec<String> {
    r.family
        .as_ref()
        .unwrap()
        .adults
        .iter()
        .map(|a| a.member_name.clone())
        .collect()
}

async fn accept(app: &TestApp, name: &str) -> Result<pb::Referral, tonic::Status> {
    app.triage()
        .accept_referral(pb::AcceptReferralRequest {
            name: name.into(),
            request_id: rid(),
            reason: "Meets the early help threshold".into(),
        })
        .await
        .map(|r| r.into_inner().referral.unwrap())
}

fn record_order(name: &str, o: pb::ParentingOrder) -> pb::RecordParentingOrderRequest {
    pb::RecordParentingOrderRequest {
        name: name.into(),
        request_id: rid(),
        parenting_order: Some(o),
        validate_only: false,
    }
}

/// The payloads of `kind` on the stream about `referral`.
async fn payloads<M: prost::Message + Default>(
    app: &TestApp,
    kind: hearth_proto::events::EventType<M>,
    referral: &str,
    at_least: usize,
) -> Vec<M> {
    app.events(at_least)
        .await
        .iter()
        .filter(|m| header(m, "ce-type") == kind.subject && header(m, "ce-subject") == referral)
        .map(|m| M::decode(m.payload.clone()).unwrap())
        .collect()
}

#[tokio::test]
async fn how_to_reach_the_family_is_kept_and_announced() {
    let app = TestApp::spawn().await;
    let mut r = referral();
    r.address_lines = vec![
        "12 Station Road".into(),
        "Mayfield".into(),
        "Dalkeith".into(),
    ];
    r.engagement_note = "Text first; Dad works nights".into();
    let mum = &mut r.family.as_mut().unwrap().adults[0];
    mum.email = "jo.reid@example.org".into();
    mum.preferred_contact_method = pb::ContactMethod::Email as i32;
    let made = app.create(r).await;
    let got = read(&app, &made.name).await;
    assert_eq!(
        got.address_lines,
        ["12 Station Road", "Mayfield", "Dalkeith"]
    );
    assert_eq!(got.engagement_note, "Text first; Dad works nights");
    let mum = &got.family.as_ref().unwrap().adults[0];
    assert_eq!(mum.email, "jo.reid@example.org");
    assert_eq!(
        mum.preferred_contact_method,
        pb::ContactMethod::Email as i32
    );
    let received = payloads(&app, subjects::REFERRAL_RECEIVED, &made.name, 1).await;
    let carried = received[0].referral.as_ref().unwrap();
    assert_eq!(carried.engagement_note, "Text first; Dad works nights");
    assert_eq!(carried.address_lines.len(), 3);

    // A preference they cannot be reached by is refused, naming the field.
    let mut r = referral();
    r.family.as_mut().unwrap().adults[0].preferred_contact_method =
        pb::ContactMethod::Letter as i32;
    let before = rows(&app).await;
    let err = app
        .referrer()
        .create_referral(create_request(r))
        .await
        .unwrap_err();
    assert_invalid(
        &err,
        &["referral.family.adults[0].preferred_contact_method"],
    );
    assert_eq!(rows(&app).await, before);
}

#[tokio::test]
async fn a_consent_covers_the_adults_it_names_and_its_withdrawal_says_whom() {
    let app = TestApp::spawn().await;
    let mut r = two_parents_no_consent();
    r.safeguarding_concern = false;
    let mut dads = assessment_consent();
    dads.given_by = "Sandy Reid".into();
    dads.given_by_role = pb::ParentingRole::Father as i32;
    dads.adult_indexes = vec![1];
    r.consents = vec![dads];
    let made = app.create(r).await;
    let adults = adult_names(&made);
    assert_eq!(made.consents[0].members, [adults[1].clone()]);
    assert!(made.consents[0].adult_indexes.is_empty(), "never returned");

    // Recorded later: by member name, only adults of this referral.
    let mut t = app.triage();
    let mut mums = assessment_consent();
    mums.members = vec![adults[0].clone()];
    let with = t
        .record_consent(pb::RecordConsentRequest {
            name: made.name.clone(),
            request_id: rid(),
            consent: Some(mums),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(with.consents.len(), 2);
    assert!(
        with.consents
            .iter()
            .any(|c| c.members == [adults[0].clone()])
    );
    let before = rows(&app).await;
    for (members, indexes, bad) in [
        (
            vec![format!("{}/members/nobody", made.family_name)],
            vec![],
            "consent.members[0]",
        ),
        (
            vec![adults[0].clone(), adults[0].clone()],
            vec![],
            "consent.members[1]",
        ),
        (vec![], vec![0], "consent.adult_indexes"),
    ] {
        let mut c = assessment_consent();
        c.members = members;
        c.adult_indexes = indexes;
        let err = t
            .record_consent(pb::RecordConsentRequest {
                name: made.name.clone(),
                request_id: rid(),
                consent: Some(c),
            })
            .await
            .unwrap_err();
        assert_invalid(&err, &[bad]);
    }
    assert_eq!(rows(&app).await, before, "nothing written");

    let dads_consent = with
        .consents
        .iter()
        .find(|c| c.members == [adults[1].clone()])
        .unwrap()
        .name
        .clone();
    t.withdraw_consent(pb::WithdrawConsentRequest {
        name: dads_consent.clone(),
        request_id: rid(),
        reason: "Dad has moved out".into(),
        withdraw_time: None,
    })
    .await
    .unwrap();
    let withdrawn = payloads(&app, subjects::CONSENT_WITHDRAWN, &made.name, 3).await;
    assert_eq!(withdrawn[0].members, [adults[1].clone()]);
    // Mum's consent still stands: the referral can be accepted.
    assert!(accept(&app, &made.name).await.is_ok());
}

#[tokio::test]
async fn an_order_made_later_binds_a_parent_and_stands_in_for_assessment_consent() {
    let app = TestApp::spawn().await;
    let made = app.create(two_parents_no_consent()).await;
    let err = accept(&app, &made.name).await.unwrap_err();
    assert_status(
        &err,
        Code::FailedPrecondition,
        "ASSESSMENT_CONSENT_REQUIRED",
    );

    let dad = adult_names(&made)[1].clone();
    // Who may record it: the area's triage or the referring organisation's referrers.
    let err = app
        .outsider()
        .record_parenting_order(record_order(&made.name, order(std::slice::from_ref(&dad))))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let err = app
        .client(REFERRER_ORG, &[Role::Practitioner])
        .record_parenting_order(record_order(&made.name, order(std::slice::from_ref(&dad))))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
    // What it must be: binding adults of this referral, not expired.
    let before = rows(&app).await;
    let mut t = app.triage();
    for (o, bad) in [
        (order(&[]), "parenting_order.bound_members"),
        (
            order(&[format!("{}/members/nobody", made.family_name)]),
            "parenting_order.bound_members[0]",
        ),
        (
            pb::ParentingOrder {
                made_date: day(-400),
                expiry_date: day(-40),
                ..order(std::slice::from_ref(&dad))
            },
            "parenting_order.expiry_date",
        ),
        (
            pb::ParentingOrder {
                bound_adult_indexes: vec![1],
                ..order(std::slice::from_ref(&dad))
            },
            "parenting_order.bound_adult_indexes",
        ),
    ] {
        let err = t
            .record_parenting_order(record_order(&made.name, o))
            .await
            .unwrap_err();
        assert_invalid(&err, &[bad]);
    }
    // A dry run checks and writes nothing.
    let mut dry = record_order(&made.name, order(std::slice::from_ref(&dad)));
    dry.validate_only = true;
    let preview = t
        .record_parenting_order(dry)
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(
        preview.parenting_order.unwrap().bound_members,
        std::slice::from_ref(&dad)
    );
    assert_eq!(rows(&app).await, before, "nothing written");

    let req = record_order(&made.name, order(std::slice::from_ref(&dad)));
    let recorded = t
        .record_parenting_order(req.clone())
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(
        recorded.route,
        pb::Route::Voluntary as i32,
        "the route is how it arrived"
    );
    assert_eq!(
        recorded.parenting_order.as_ref().unwrap().bound_members,
        std::slice::from_ref(&dad)
    );
    let again = t
        .record_parenting_order(req)
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(again, recorded, "a retry changes nothing");
    // A corrected order replaces it.
    let mut varied = order(std::slice::from_ref(&dad));
    varied.responsible_officer_name = "A. Lennox".into();
    t.record_parenting_order(record_order(&made.name, varied))
        .await
        .unwrap();

    let announced = payloads(&app, subjects::PARENTING_ORDER_RECORDED, &made.name, 3).await;
    assert_eq!(
        announced.len(),
        2,
        "one event per order recorded, none for the retry"
    );
    assert!(!announced[0].replaced);
    assert!(announced[1].replaced);
    let o = announced[1].parenting_order.as_ref().unwrap();
    assert_eq!(o.bound_members, [dad]);
    assert_eq!(o.responsible_officer_organisation, "midlothian-yot");
    assert_eq!(
        announced[1].r#ref.as_ref().unwrap().family,
        made.family_name
    );

    // The order in force stands in for assessment consent.
    assert_eq!(
        accept(&app, &made.name).await.unwrap().state,
        pb::State::Accepted as i32
    );
    // Once decided otherwise, no order can be recorded.
    let declined = app.create(two_parents_no_consent()).await;
    t.redirect_referral(pb::RedirectReferralRequest {
        name: declined.name.clone(),
        request_id: rid(),
        redirected_to: "Children's social care".into(),
        reason: "Threshold met".into(),
    })
    .await
    .unwrap();
    let err = t
        .record_parenting_order(record_order(
            &declined.name,
            order(&adult_names(&declined)[..1]),
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "REFERRAL_CLOSED");
}

#[tokio::test]
async fn an_order_on_another_of_the_familys_referrals_stands_in_too() {
    let app = TestApp::spawn().await;
    // The youth offending team refers the family under an order binding the mother.
    let mut yot = referral();
    yot.consents.clear();
    yot.route = pb::Route::CourtOrdered as i32;
    yot.source = pb::Source::YouthOffendingTeam as i32;
    yot.parenting_order = Some(pb::ParentingOrder {
        bound_adult_indexes: vec![0],
        ..order(&[])
    });
    let first = app.create(yot.clone()).await;
    let court = payloads(&app, subjects::PARENTING_ORDER_RECORDED, &first.name, 2).await;
    assert_eq!(court.len(), 1, "a court-ordered create announces its order");
    assert_eq!(
        court[0].parenting_order.as_ref().unwrap().bound_members,
        adult_names(&first)
    );

    // A school refers the same child later, without consent but with a concern.
    let mut school = yot;
    school.route = pb::Route::Voluntary as i32;
    school.parenting_order = None;
    school.safeguarding_concern = true;
    let second = app
        .client("newbattle-high-school", &[Role::Referrer])
        .create_referral(create_request(school))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(second.family_name, first.family_name, "linked");
    assert_eq!(
        accept(&app, &second.name).await.unwrap().state,
        pb::State::Accepted as i32
    );
}

#[tokio::test]
async fn a_birth_is_corrected_announced_and_then_matched() {
    let app = TestApp::spawn().await;
    let mut r = referral();
    let unborn = pb::Child {
        due_date: day(30),
        ..Default::default()
    };
    r.family.as_mut().unwrap().children = vec![unborn];
    let made = app.create(r).await;
    let mut family = made.family.clone().unwrap();
    let born = day(-2);
    family.children[0].due_date = None;
    family.children[0].date_of_birth = born;
    family.children[0].given_name = "Isla".into();
    family.children[0].family_name = "Reid".into();
    let correct = |family: pb::FamilyDetails, mask: &[&str]| pb::CorrectFamilyDetailsRequest {
        referral: Some(pb::Referral {
            name: made.name.clone(),
            family: Some(family),
            postcode: made.postcode.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: mask.iter().map(|p| (*p).to_owned()).collect(),
        }),
        request_id: rid(),
        reason: pb::CorrectionReason::Birth as i32,
        validate_only: false,
    };

    // Only the family's own relationships may correct it.
    let err = app
        .outsider()
        .correct_family_details(correct(family.clone(), &["family.children"]))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let before = rows(&app).await;
    let mut dry = correct(family.clone(), &["family.children"]);
    dry.validate_only = true;
    app.referrer().correct_family_details(dry).await.unwrap();
    let mut nobody = family.clone();
    nobody.children.clear();
    let err = app
        .referrer()
        .correct_family_details(correct(nobody, &["family.children"]))
        .await
        .unwrap_err();
    assert_invalid(
        &err,
        &["referral.family.children", "referral.family.children"],
    );
    assert_eq!(rows(&app).await, before, "nothing written");

    let corrected = app
        .referrer()
        .correct_family_details(correct(family.clone(), &["family.children", "postcode"]))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let child = &corrected.family.as_ref().unwrap().children[0];
    assert_eq!(
        child.member_name,
        made.family.as_ref().unwrap().children[0].member_name
    );
    assert_eq!(child.date_of_birth, born);
    assert!(child.due_date.is_none());
    // The same again changes nothing and announces nothing.
    app.referrer()
        .correct_family_details(correct(family, &["family.children"]))
        .await
        .unwrap();
    let events = payloads(&app, subjects::FAMILY_CORRECTED, &made.name, 2).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        e.update_mask.as_ref().unwrap().paths,
        ["family.children"],
        "the postcode did not change"
    );
    assert_eq!(e.changed_members, std::slice::from_ref(&child.member_name));
    assert_eq!(e.reason, pb::CorrectionReason::Birth as i32);
    assert_eq!(e.family.as_ref().unwrap().children[0].given_name, "Isla");

    // A later referral of Isla by name, date of birth and postcode finds her family.
    let mut later = referral();
    let c = &mut later.family.as_mut().unwrap().children[0];
    c.given_name = "Isla".into();
    c.family_name = "Reid".into();
    c.date_of_birth = born;
    c.nhs_number = String::new();
    let linked = app.create(later).await;
    assert_eq!(linked.family_name, made.family_name);
    assert!(linked.linked_to_existing_family);
}

#[tokio::test]
async fn every_new_method_answers_a_caller_with_no_relationship_not_found() {
    let app = TestApp::spawn().await;
    let made = app.create(two_parents_no_consent()).await;
    let before = rows(&app).await;
    let mut outsider = app.outsider();
    let err = outsider
        .record_parenting_order(record_order(&made.name, order(&adult_names(&made))))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let err = outsider
        .correct_family_details(pb::CorrectFamilyDetailsRequest {
            referral: Some(pb::Referral {
                name: made.name.clone(),
                engagement_note: "changed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["engagement_note".into()],
            }),
            request_id: rid(),
            reason: pb::CorrectionReason::FamilyRequest as i32,
            validate_only: false,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    assert_eq!(rows(&app).await, before, "nothing written");
}
