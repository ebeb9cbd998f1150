//! The redaction table (`referrals::domain::redaction::TABLE`), row by row, against
//! the running service: for every role and resource, a caller holding that role alone
//! reads a referral that has every part filled in, and receives exactly the parts its
//! row lists. A role no relationship admits (its row lists nothing) gets no record at
//! all, even from its own area, the family's team or the referring organisation.

use hearth_platform::Role;
use hearth_proto::referrals as pb;
use referrals::domain::redaction::{Part, Resource, TABLE};
use tonic::Code;

use crate::access::{TEAM_ORG, join_team, wait_for_relationships};
use crate::helpers::*;

/// Whether a part's fields are all present or all absent; panics on a part half sent.
fn present(what: &str, part: Part, fields: &[bool]) -> Option<Part> {
    let shown = fields.iter().filter(|f| **f).count();
    assert!(
        shown == 0 || shown == fields.len(),
        "{what}: {part:?} half sent ({shown} of {} fields)",
        fields.len()
    );
    (shown > 0).then_some(part)
}

fn referral_parts(what: &str, r: &pb::Referral) -> Vec<Part> {
    let f = r.family.as_ref().unwrap();
    let (c, a) = (&f.children[0], &f.adults[0]);
    [
        (
            Part::Identity,
            vec![
                !c.given_name.is_empty(),
                !c.family_name.is_empty(),
                c.date_of_birth.is_some(),
                !a.given_name.is_empty(),
            ],
        ),
        (Part::NhsNumber, vec![!c.nhs_number.is_empty()]),
        (
            Part::Contact,
            vec![
                !a.phone.is_empty(),
                !r.address_lines.is_empty(),
                !r.engagement_note.is_empty(),
            ],
        ),
        (Part::Referrer, vec![r.referrer.is_some()]),
        (
            Part::Narrative,
            vec![!r.description.is_empty(), !r.contacts[0].note.is_empty()],
        ),
        (Part::Consents, vec![!r.consents.is_empty()]),
        (Part::Order, vec![r.parenting_order.is_some()]),
        (Part::AccessNeeds, vec![r.access_needs.is_some()]),
    ]
    .into_iter()
    .filter_map(|(part, fields)| present(what, part, &fields))
    .collect()
}

fn family_parts(what: &str, f: &pb::Family) -> Vec<Part> {
    let (c, a) = (&f.children[0], &f.adults[0]);
    [
        (
            Part::Identity,
            vec![
                !c.given_name.is_empty(),
                c.date_of_birth.is_some(),
                !a.given_name.is_empty(),
            ],
        ),
        (Part::NhsNumber, vec![!c.nhs_number.is_empty()]),
        (Part::Contact, vec![!a.phone.is_empty()]),
    ]
    .into_iter()
    .filter_map(|(part, fields)| present(what, part, &fields))
    .collect()
}

/// A referral with every part the table names filled in.
async fn everything(app: &TestApp) -> pb::Referral {
    let mut r = referral();
    let adult = &mut r.family.as_mut().unwrap().adults[0];
    adult.phone = "07700 900123".into();
    r.address_lines = vec!["12 Eskbank Road".into(), "Dalkeith".into()];
    r.engagement_note = "Mum works nights; call after 2pm".into();
    r.access_needs = Some(pb::AccessNeeds {
        language: "pl".into(),
        interpreter_needed: true,
        ..Default::default()
    });
    let made = app.create(r).await;
    let mut triage = app.triage();
    triage
        .record_contact(pb::RecordContactRequest {
            name: made.name.clone(),
            request_id: rid(),
            contact: contact(-60, true),
        })
        .await
        .unwrap();
    let adult = made.family.as_ref().unwrap().adults[0].member_name.clone();
    triage
        .record_parenting_order(pb::RecordParentingOrderRequest {
            name: made.name.clone(),
            request_id: rid(),
            parenting_order: Some(pb::ParentingOrder {
                court: "Edinburgh Youth Court".into(),
                made_date: date(2026, 11, 1),
                expiry_date: date(2027, 11, 1),
                responsible_officer_organisation: "midlothian-yot".into(),
                responsible_officer_service: pb::ResponsibleOfficerService::YouthOffendingTeam
                    as i32,
                responsible_officer_name: "K. Murray".into(),
                bound_members: vec![adult],
                ..Default::default()
            }),
            validate_only: false,
        })
        .await
        .unwrap();
    made
}

#[tokio::test]
async fn every_role_receives_exactly_the_parts_its_row_lists() {
    let app = TestApp::spawn().await;
    let made = everything(&app).await;
    let plan = format!("familyPlans/{}", uuid::Uuid::now_v7());
    join_team(&app, &made.family_name, &plan, TEAM_ORG).await;
    // The team, and the order's responsible officer.
    wait_for_relationships(&app, 2).await;
    // Triage sees it all: the fixture really has every part.
    let full = read(&app, &made.name).await;
    assert_eq!(referral_parts("triage", &full).len(), 8);

    for (role, resource, parts) in TABLE {
        let what = format!("{role:?} reading a {resource:?}");
        // Through the family's team, which admits every working role.
        let mut c = app.client(TEAM_ORG, &[*role]);
        let got = match resource {
            Resource::Referral => c
                .get_referral(pb::GetReferralRequest {
                    name: made.name.clone(),
                })
                .await
                .map(|r| referral_parts(&what, &r.into_inner().referral.unwrap())),
            Resource::Family => c
                .get_family(pb::GetFamilyRequest {
                    name: made.family_name.clone(),
                })
                .await
                .map(|f| family_parts(&what, &f.into_inner().family.unwrap())),
        };
        if parts.is_empty() {
            // No relationship admits the role: nothing, wherever its organisation.
            let err = got.expect_err(&what);
            assert_status(&err, Code::NotFound, "NOT_FOUND");
            for org in [AREA, REFERRER_ORG] {
                let err = app
                    .client(org, &[*role])
                    .get_referral(pb::GetReferralRequest {
                        name: made.name.clone(),
                    })
                    .await
                    .expect_err(&what);
                assert_status(&err, Code::NotFound, "NOT_FOUND");
            }
        } else {
            let mut expected = parts.to_vec();
            expected.sort_by_key(|p| *p as u8);
            assert_eq!(got.expect(&what), expected, "{what}");
        }
    }

    // What the docs promise, independent of the table: a practitioner works with
    // the family without the NHS number; a coordinator arranges places without the
    // narrative.
    let as_role = |role| {
        let mut c = app.client(TEAM_ORG, &[role]);
        let name = made.name.clone();
        async move {
            c.get_referral(pb::GetReferralRequest { name })
                .await
                .unwrap()
                .into_inner()
                .referral
                .unwrap()
        }
    };
    let practitioner = as_role(Role::Practitioner).await;
    let child = &practitioner.family.as_ref().unwrap().children[0];
    assert!(child.nhs_number.is_empty() && !child.given_name.is_empty());
    let coordinator = as_role(Role::Coordinator).await;
    assert!(coordinator.description.is_empty() && coordinator.access_needs.is_some());
}

#[tokio::test]
async fn an_analyst_receives_no_direct_identifier_from_any_list() {
    let app = TestApp::spawn().await;
    everything(&app).await;
    for org in [AREA, REFERRER_ORG, TEAM_ORG] {
        let err = app
            .client(org, &[Role::Analyst])
            .list_referrals(pb::ListReferralsRequest::default())
            .await
            .unwrap_err();
        assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
    }
}
