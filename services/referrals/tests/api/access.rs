//! Who may see a family's records (issue 15): the access matrix, generated from the
//! service descriptors and checked against the table below; the audit record of every
//! call in it, call by call; relationships that arrive and end as events.
//!
//! Every RPC that takes a resource name is called by every kind of caller, each cell
//! on a family of its own (so that one cell's change never decides another's answer)
//! and each caller a person of their own (so that the audit log's records of that cell
//! are exactly that person's).

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use hearth_platform::Role;
use hearth_proto::access as access_pb;
use hearth_proto::access::access_service_client::AccessServiceClient;
use hearth_proto::assessments as assessments_pb;
use hearth_proto::delivery as delivery_pb;
use hearth_proto::events::{assessments, delivery};
use hearth_proto::referrals as pb;
use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
use hearth_testkit::harness::{self, Bearer};
use prost_reflect::{DescriptorPool, Kind};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::helpers::*;

/// An organisation on the family's team (a family plan names it).
pub const TEAM_ORG: &str = "home-start-midlothian";
/// An organisation delivering a place the family holds.
pub const PROVIDER_ORG: &str = "barnardos-scotland";
/// An organisation with no relationship that breaks the glass.
const GLASS_ORG: &str = "police-scotland";

/// The kinds of caller, in the table's column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The health board's referrer who made the referral.
    Referrer,
    /// The receiving area's triage officer.
    AreaTriage,
    /// A practitioner of an organisation on the family's team.
    TeamMember,
    /// A practitioner of the organisation delivering the family's place.
    Provider,
    /// Another council, with every working role.
    Unrelated,
    /// The receiving area's own analyst.
    Analyst,
    /// A police officer whose emergency grant for the family has expired.
    ExpiredGlass,
}

const WHO: [Who; 7] = [
    Who::Referrer,
    Who::AreaTriage,
    Who::TeamMember,
    Who::Provider,
    Who::Unrelated,
    Who::Analyst,
    Who::ExpiredGlass,
];

impl Who {
    fn organisation(self) -> &'static str {
        match self {
            Who::Referrer => REFERRER_ORG,
            Who::AreaTriage | Who::Analyst => AREA,
            Who::TeamMember => TEAM_ORG,
            Who::Provider => PROVIDER_ORG,
            Who::Unrelated => OTHER_ORG,
            Who::ExpiredGlass => GLASS_ORG,
        }
    }

    fn roles(self) -> &'static [Role] {
        match self {
            Who::Referrer => &[Role::Referrer],
            Who::AreaTriage => &[Role::Triage],
            Who::TeamMember | Who::Provider | Who::ExpiredGlass => &[Role::Practitioner],
            Who::Unrelated => &[
                Role::Referrer,
                Role::Triage,
                Role::Practitioner,
                Role::Coordinator,
            ],
            Who::Analyst => &[Role::Analyst],
        }
    }

    /// What an allowed call of this caller is recorded as resting on.
    fn basis(self) -> access_pb::AccessBasis {
        use access_pb::AccessBasis as B;
        match self {
            Who::Referrer => B::ReferringOrganisation,
            Who::AreaTriage => B::ReceivingArea,
            Who::TeamMember => B::FamilyTeam,
            Who::Provider => B::Provider,
            Who::Unrelated | Who::Analyst | Who::ExpiredGlass => B::None,
        }
    }
}

/// What a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The family's records.
    Data,
    /// A list without the family's records.
    Empty,
    /// An error, no data.
    Refused(Code),
}

use Expect::{Data, Empty};
const NF: Expect = Expect::Refused(Code::NotFound);
const PD: Expect = Expect::Refused(Code::PermissionDenied);

/// The expected answers. Columns: referrer, area triage, team member, provider,
/// unrelated organisation, analyst, expired emergency grant. Rows: every RPC of the
/// referrals service and of the access service that takes a resource name, plus the
/// list, whose answer the access model filters.
const TABLE: &[(&str, [Expect; 7])] = &[
    ("GetReferral", [Data, Data, Data, Data, NF, NF, NF]),
    ("ListReferrals", [Data, Data, Data, Data, Empty, PD, Empty]),
    ("GetFamily", [Data, Data, Data, Data, NF, NF, NF]),
    // Triage decisions and contacts: the area's triage alone. Those who see the
    // referral without that role are told so; the rest cannot tell it exists.
    ("AcceptReferral", [PD, Data, PD, PD, NF, NF, NF]),
    ("SignpostReferral", [PD, Data, PD, PD, NF, NF, NF]),
    ("RedirectReferral", [PD, Data, PD, PD, NF, NF, NF]),
    ("DeclineReferral", [PD, Data, PD, PD, NF, NF, NF]),
    ("RecordContact", [PD, Data, PD, PD, NF, NF, NF]),
    // What a family tells whoever they know: the area's triage or the referrer.
    ("WithdrawReferral", [Data, Data, PD, PD, NF, NF, NF]),
    ("RecordConsent", [Data, Data, PD, PD, NF, NF, NF]),
    ("WithdrawConsent", [Data, Data, PD, PD, NF, NF, NF]),
    ("RecordParentingOrder", [Data, Data, PD, PD, NF, NF, NF]),
    ("CorrectFamilyDetails", [Data, Data, PD, PD, NF, NF, NF]),
    // Anyone in a working role may declare an emergency; an analyst may not.
    ("BreakGlass", [Data, Data, Data, Data, Data, PD, Data]),
    // The data protection officer's question; none of these callers is one.
    ("ListFamilyAccess", [PD; 7]),
];

/// Rows that are not about one resource but whose answers the access model filters.
const LISTS: &[&str] = &["ListReferrals"];

/// The methods of the referrals and access services whose requests name a resource:
/// a `name`, `family` or `parent`, or (but for a create) a resource message with a
/// `name`.
fn methods_taking_a_resource_name() -> Vec<String> {
    let pool = DescriptorPool::decode(hearth_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut out = Vec::new();
    for service in [
        "hearth.referrals.v1.ReferralsService",
        "hearth.access.v1.AccessService",
    ] {
        let service = pool.get_service_by_name(service).expect("the service");
        for m in service.methods() {
            let input = m.input();
            let names_one = input.fields().any(|f| match f.kind() {
                Kind::String => matches!(f.name(), "name" | "family" | "parent"),
                Kind::Message(msg) => {
                    !m.name().starts_with("Create") && msg.get_field_by_name("name").is_some()
                }
                _ => false,
            });
            if names_one {
                out.push(m.name().to_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_table_has_a_row_for_every_rpc_that_takes_a_resource_name() {
    let mut rows: Vec<String> = TABLE
        .iter()
        .map(|(m, _)| (*m).to_owned())
        .filter(|m| !LISTS.contains(&m.as_str()))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        methods_taking_a_resource_name(),
        "add a row to TABLE for every new RPC that takes a resource name"
    );
}

type AccessClient = AccessServiceClient<InterceptedService<Channel, Bearer>>;

/// One cell of the matrix: a family of its own and a person of their own.
struct Cell {
    method: &'static str,
    who: Who,
    expect: Expect,
    subject: String,
    referral: pb::Referral,
}

impl Cell {
    fn family(&self) -> &str {
        &self.referral.family_name
    }
}

/// The plan that puts `organisation` on `family`'s team.
pub fn team_member(
    family: &str,
    plan: &str,
    organisation: &str,
) -> assessments_pb::PlanTeamMemberAdded {
    assessments_pb::PlanTeamMemberAdded {
        r#ref: Some(assessments_pb::PlanRef {
            family_plan: plan.into(),
            family: family.into(),
            receiving_area: AREA.into(),
            lead_organisation: AREA.into(),
            ..Default::default()
        }),
        organisation: organisation.into(),
        role: assessments_pb::TeamRole::Agency as i32,
        occur_time: now_ts(-60),
        ..Default::default()
    }
}

/// Announces that `organisation` joined `family`'s team through `plan`.
pub async fn join_team(app: &TestApp, family: &str, plan: &str, organisation: &str) {
    harness::publish(
        &app.js,
        &assessments::STREAM,
        assessments::PLAN_TEAM_MEMBER_ADDED,
        plan,
        &team_member(family, plan, organisation),
    )
    .await;
}

/// Announces that `family` holds a place on a cohort `organisation` delivers.
pub async fn enrol(app: &TestApp, family: &str, organisation: &str) {
    let enrolment = format!("enrolments/{}", Uuid::now_v7());
    harness::publish(
        &app.js,
        &delivery::STREAM,
        delivery::ENROLMENT_ENROLLED,
        &enrolment,
        &delivery_pb::EnrolmentEnrolled {
            r#ref: Some(delivery_pb::EnrolmentRef {
                enrolment: enrolment.clone(),
                family: family.into(),
                cohort: format!("cohorts/{}", Uuid::now_v7()),
                programme: format!("programmes/{}", Uuid::now_v7()),
                receiving_area: AREA.into(),
                delivering_organisation: organisation.into(),
                state: hearth_proto::types::EnrolmentState::Enrolled as i32,
                ..Default::default()
            }),
            occur_time: now_ts(-60),
            ..Default::default()
        },
    )
    .await;
}

/// Waits until the service holds `n` open relationships learnt from events.
pub async fn wait_for_relationships(app: &TestApp, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM referrals.relationships WHERE ends_at IS NULL OR ends_at > now()",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if open == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{open} open relationships, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn referrals_client(app: &TestApp, subject: &str, org: &str, roles: &[Role]) -> Client {
    ReferralsServiceClient::with_interceptor(
        app.channel(),
        Bearer(Some(app.token_for(subject, org, roles))),
    )
}

pub fn access_as(app: &TestApp, subject: &str, org: &str, roles: &[Role]) -> AccessClient {
    AccessServiceClient::with_interceptor(
        app.channel(),
        Bearer(Some(app.token_for(subject, org, roles))),
    )
}

/// A Parenting Order binding the referral's first adult, made ten days ago.
fn order_for(r: &pb::Referral) -> pb::ParentingOrder {
    let day = |days: i64| {
        use chrono::Datelike as _;
        let d = chrono::Utc::now().date_naive() + chrono::Duration::days(days);
        date(d.year(), d.month() as i32, d.day() as i32)
    };
    pb::ParentingOrder {
        court: "Edinburgh Youth Court".into(),
        made_date: day(-10),
        expiry_date: day(170),
        responsible_officer_organisation: "midlothian-yot".into(),
        responsible_officer_service: pb::ResponsibleOfficerService::YouthOffendingTeam as i32,
        responsible_officer_name: "K. Murray".into(),
        bound_members: vec![r.family.as_ref().unwrap().adults[0].member_name.clone()],
        ..Default::default()
    }
}

/// Makes the cell's call; the answer, printed, to look for the family's records in.
async fn call(app: &TestApp, cell: &Cell) -> Result<String, Status> {
    let (org, roles) = (cell.who.organisation(), cell.who.roles());
    let mut c = referrals_client(app, &cell.subject, org, roles);
    let mut a = access_as(app, &cell.subject, org, roles);
    let name = cell.referral.name.clone();
    let request_id = rid();
    let reason = "As the family asked".to_owned();
    let answer = match cell.method {
        "GetReferral" => format!(
            "{:?}",
            c.get_referral(pb::GetReferralRequest { name }).await?
        ),
        "ListReferrals" => format!(
            "{:?}",
            c.list_referrals(pb::ListReferralsRequest {
                page_size: 500,
                ..Default::default()
            })
            .await?
        ),
        "GetFamily" => format!(
            "{:?}",
            c.get_family(pb::GetFamilyRequest {
                name: cell.family().into(),
            })
            .await?
        ),
        "AcceptReferral" => format!(
            "{:?}",
            c.accept_referral(pb::AcceptReferralRequest {
                name,
                request_id,
                reason,
            })
            .await?
        ),
        "SignpostReferral" => format!(
            "{:?}",
            c.signpost_referral(pb::SignpostReferralRequest {
                name,
                request_id,
                signposted_to: "Family Information Service".into(),
                reason,
            })
            .await?
        ),
        "RedirectReferral" => format!(
            "{:?}",
            c.redirect_referral(pb::RedirectReferralRequest {
                name,
                request_id,
                redirected_to: "Children's social care".into(),
                reason,
            })
            .await?
        ),
        "DeclineReferral" => format!(
            "{:?}",
            c.decline_referral(pb::DeclineReferralRequest {
                name,
                request_id,
                decline_reason: pb::DeclineReason::NeedsMetElsewhere as i32,
                reason,
            })
            .await?
        ),
        "RecordContact" => format!(
            "{:?}",
            c.record_contact(pb::RecordContactRequest {
                name,
                request_id,
                contact: contact(-60, true),
            })
            .await?
        ),
        "WithdrawReferral" => format!(
            "{:?}",
            c.withdraw_referral(pb::WithdrawReferralRequest {
                name,
                request_id,
                reason,
            })
            .await?
        ),
        "RecordConsent" => format!(
            "{:?}",
            c.record_consent(pb::RecordConsentRequest {
                name,
                request_id,
                consent: Some(assessment_consent()),
            })
            .await?
        ),
        "WithdrawConsent" => format!(
            "{:?}",
            c.withdraw_consent(pb::WithdrawConsentRequest {
                name: cell.referral.consents[0].name.clone(),
                request_id,
                reason,
                withdraw_time: None,
            })
            .await?
        ),
        "RecordParentingOrder" => format!(
            "{:?}",
            c.record_parenting_order(pb::RecordParentingOrderRequest {
                name,
                request_id,
                parenting_order: Some(order_for(&cell.referral)),
                validate_only: false,
            })
            .await?
        ),
        "CorrectFamilyDetails" => format!(
            "{:?}",
            c.correct_family_details(pb::CorrectFamilyDetailsRequest {
                referral: Some(pb::Referral {
                    name,
                    engagement_note: "Prefers a home visit".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["engagement_note".into()],
                }),
                request_id,
                reason: pb::CorrectionReason::FamilyRequest as i32,
                validate_only: false,
            })
            .await?
        ),
        "BreakGlass" => format!(
            "{:?}",
            a.break_glass(access_pb::BreakGlassRequest {
                family: cell.family().into(),
                reason: "Child missing overnight; need the family's contacts".into(),
                request_id,
            })
            .await?
        ),
        "ListFamilyAccess" => format!(
            "{:?}",
            a.list_family_access(access_pb::ListFamilyAccessRequest {
                family: cell.family().into(),
                ..Default::default()
            })
            .await?
        ),
        other => panic!("no call for {other}: add one beside its row in TABLE"),
    };
    Ok(answer)
}

/// What must never reach a caller without access: the family's identifiers, and its
/// resource name unless the caller sent it.
fn identifiers(cell: &Cell) -> Vec<String> {
    let r = &cell.referral;
    let f = r.family.as_ref().unwrap();
    let mut ids = vec![
        f.children[0].given_name.clone(),
        f.children[0].nhs_number.clone(),
        f.adults[0].member_name.clone(),
    ];
    if !matches!(cell.method, "GetFamily" | "BreakGlass" | "ListFamilyAccess") {
        ids.push(r.family_name.clone());
    }
    ids
}

#[tokio::test]
async fn every_kind_of_caller_gets_what_the_table_says_and_every_call_is_audited() {
    let app = TestApp::spawn().await;

    // A family per cell, each with a team, a provider and a referral with consent.
    let mut cells = Vec::new();
    for (method, row) in TABLE {
        for (who, expect) in WHO.iter().zip(row) {
            cells.push((*method, *who, *expect));
        }
    }
    let made: Vec<pb::Referral> = futures::stream::iter(0..cells.len())
        .map(|_| app.create(referral()))
        .buffered(8)
        .collect()
        .await;
    let cells: Vec<Cell> = cells
        .into_iter()
        .zip(made)
        .map(|((method, who, expect), referral)| Cell {
            method,
            who,
            expect,
            subject: format!("{who:?}-{}", Uuid::new_v4().simple()),
            referral,
        })
        .collect();
    for cell in &cells {
        let plan = format!("familyPlans/{}", Uuid::now_v7());
        join_team(&app, cell.family(), &plan, TEAM_ORG).await;
        enrol(&app, cell.family(), PROVIDER_ORG).await;
    }
    wait_for_relationships(&app, 2 * cells.len() as i64).await;

    // The police officer's grants, then their expiry.
    for cell in cells.iter().filter(|c| c.who == Who::ExpiredGlass) {
        access_as(&app, &cell.subject, GLASS_ORG, &[Role::Practitioner])
            .break_glass(access_pb::BreakGlassRequest {
                family: cell.family().into(),
                reason: "Child missing overnight".into(),
                request_id: rid(),
            })
            .await
            .expect("an emergency grant");
    }
    sqlx::query("UPDATE referrals.break_glass SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();

    let calls_began = chrono::Utc::now();
    let answers: Vec<Result<String, Status>> = futures::stream::iter(&cells)
        .map(|cell| call(&app, cell))
        .buffered(8)
        .collect()
        .await;

    let audit = app.audit_records().await;
    let mut wrong = Vec::new();
    for (cell, answer) in cells.iter().zip(&answers) {
        let at = format!("{} by {:?}", cell.method, cell.who);
        let got = match answer {
            Ok(text) if text.contains(cell.family()) || text.contains(&cell.referral.name) => Data,
            Ok(_) => Empty,
            Err(status) => Expect::Refused(status.code()),
        };
        if got != cell.expect {
            wrong.push(format!("{at}: expected {:?}, got {answer:?}", cell.expect));
            continue;
        }
        // Zero leaks: nothing of the family in a refusal or in a list without it.
        if got != Data {
            let text = match answer {
                Ok(text) => text.clone(),
                Err(status) => format!("{status:?}"),
            };
            for id in identifiers(cell) {
                assert!(!text.contains(&id), "{at} leaked {id:?}: {text}");
            }
        }
        // Audit, call by call: exactly one record of this person's call, with the
        // outcome and the basis; an empty list read nothing of the family.
        let path_suffix = format!("/{}", cell.method);
        let records: Vec<_> = audit
            .iter()
            .filter(|r| {
                r.subject == cell.subject && r.method.ends_with(&path_suffix) && r.at >= calls_began
            })
            .collect();
        let about: Vec<_> = records
            .iter()
            .filter(|r| {
                r.resources
                    .iter()
                    .chain(&r.families)
                    .any(|x| x == &cell.referral.name || x == cell.family())
            })
            .collect();
        match got {
            Data => {
                let [r] = about[..] else {
                    wrong.push(format!("{at}: {} audit records of the family", about.len()));
                    continue;
                };
                assert_eq!(r.outcome, access_pb::AccessOutcome::Allowed, "{at}");
                assert_eq!(r.organisation, cell.who.organisation(), "{at}");
                let expected = if cell.method == "BreakGlass" {
                    access_pb::AccessBasis::BreakGlass
                } else {
                    cell.who.basis()
                };
                assert_eq!(r.basis, expected, "{at}");
            }
            Empty => assert!(about.is_empty(), "{at}: recorded as reading the family"),
            Expect::Refused(_) => {
                let [r] = records[..] else {
                    wrong.push(format!(
                        "{at}: {} audit records of a refusal",
                        records.len()
                    ));
                    continue;
                };
                assert_eq!(r.outcome, access_pb::AccessOutcome::Denied, "{at}");
                assert_eq!(r.basis, access_pb::AccessBasis::None, "{at}");
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_team_member_removed_loses_access_within_seconds() {
    let app = TestApp::spawn().await;
    let made = app.create(referral()).await;
    let plan = format!("familyPlans/{}", Uuid::now_v7());
    join_team(&app, &made.family_name, &plan, TEAM_ORG).await;
    wait_for_relationships(&app, 1).await;
    let mut member = app.client(TEAM_ORG, &[Role::Practitioner]);
    let get = || pb::GetReferralRequest {
        name: made.name.clone(),
    };
    let seen = member.get_referral(get()).await.unwrap().into_inner();
    assert_eq!(seen.referral.unwrap().name, made.name);

    harness::publish(
        &app.js,
        &assessments::STREAM,
        assessments::PLAN_TEAM_MEMBER_REMOVED,
        &plan,
        &assessments_pb::PlanTeamMemberRemoved {
            r#ref: team_member(&made.family_name, &plan, TEAM_ORG).r#ref,
            organisation: TEAM_ORG.into(),
            role: assessments_pb::TeamRole::Agency as i32,
            reason: assessments_pb::TeamExitReason::Removed as i32,
            occur_time: now_ts(0),
        },
    )
    .await;
    let removed = Instant::now();
    loop {
        match member.get_referral(get()).await {
            Err(e) => {
                assert_status(&e, Code::NotFound, "NOT_FOUND");
                break;
            }
            Ok(_) => {
                assert!(
                    removed.elapsed() < Duration::from_secs(5),
                    "still seen 5s after leaving the team"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // Gone from the list too, and the family with it.
    let listed = member
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.referrals.is_empty());
    let err = member
        .get_family(pb::GetFamilyRequest {
            name: made.family_name.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn a_provider_sees_the_family_while_the_place_is_live() {
    let app = TestApp::spawn().await;
    let made = app.create(referral()).await;
    let enrolment = format!("enrolments/{}", Uuid::now_v7());
    let place = |state: hearth_proto::types::EnrolmentState| delivery_pb::EnrolmentRef {
        enrolment: enrolment.clone(),
        family: made.family_name.clone(),
        cohort: "cohorts/0190c0de-0000-7000-8000-000000000001".into(),
        receiving_area: AREA.into(),
        delivering_organisation: PROVIDER_ORG.into(),
        state: state as i32,
        ..Default::default()
    };
    harness::publish(
        &app.js,
        &delivery::STREAM,
        delivery::ENROLMENT_ENROLLED,
        &enrolment,
        &delivery_pb::EnrolmentEnrolled {
            r#ref: Some(place(hearth_proto::types::EnrolmentState::Enrolled)),
            ..Default::default()
        },
    )
    .await;
    wait_for_relationships(&app, 1).await;
    let get = pb::GetReferralRequest {
        name: made.name.clone(),
    };
    // A coordinator delivering the place sees it; the provider's referrer does not.
    let coordinator = app.client(PROVIDER_ORG, &[Role::Coordinator]);
    coordinator.clone().get_referral(get.clone()).await.unwrap();
    let err = app
        .client(PROVIDER_ORG, &[Role::Referrer])
        .get_referral(get.clone())
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");

    harness::publish(
        &app.js,
        &delivery::STREAM,
        delivery::ENROLMENT_COMPLETED,
        &enrolment,
        &delivery_pb::EnrolmentCompleted {
            r#ref: Some(place(hearth_proto::types::EnrolmentState::Completed)),
            ..Default::default()
        },
    )
    .await;
    wait_for_relationships(&app, 0).await;
    let err = coordinator.clone().get_referral(get).await.unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
}
