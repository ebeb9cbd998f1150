//! The demo area loaded by `make run`: Midlothian's early-help front door with nine
//! referrals from health, schools, the youth offending team, the safeguarding hub, a
//! voluntary organisation and a family itself, and the front door's first triage work
//! on them. Every name, NHS number and phone number is fictional (phone numbers are
//! from Ofcom's drama ranges); postcodes are real-looking Midlothian ones.
//!
//! Loading is idempotent. Every call carries a fixed `request_id`, and the bodies are
//! built from an anchor time stored on first load (database `hearth_dev`), so a
//! re-run repeats the same requests and the service answers them as replays. The
//! names of created referrals are recorded there too, so later runs read them back
//! instead of re-sending creates whose dates (a due date, say) have since gone stale.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Months, NaiveDate, TimeZone as _, Utc};
use hearth_platform::Role;
use hearth_platform::auth::TokenIssuer;
use hearth_proto::referrals as pb;
use hearth_proto::types::Date;
use pb::{
    ConsentScope as Scope, ParentingRole as Parent, PreferredTime as Time, Reason, Source, State,
};
use sqlx::{Connection as _, PgConnection, Row as _};
use tonic::metadata::{Ascii, MetadataValue};
use uuid::Uuid;

use crate::grpc::{self, Client};

/// The receiving area: Midlothian Council's early-help front door.
pub const AREA: &str = "midlothian";

/// First of the demo's fixed request ids ("HEARTH" in ASCII, then a counter).
const REQUEST_ID_BASE: u128 = 0x4845_4152_5448_0000_0000_0000_0000_0001;

fn request_id(n: u128) -> String {
    Uuid::from_u128(REQUEST_ID_BASE + n).to_string()
}

/// Organisations in the demo and the roles their tokens carry.
pub const ORGANISATIONS: &[(&str, &[Role])] = &[
    (AREA, &[Role::Triage]),
    ("nhs-lothian", &[Role::Referrer]),
    ("penicuik-medical-practice", &[Role::Referrer]),
    ("dalkeith-medical-centre", &[Role::Referrer]),
    ("newbattle-high-school", &[Role::Referrer]),
    ("midlothian-sure-start", &[Role::Referrer]),
    ("midlothian-yot", &[Role::Referrer]),
    ("midlothian-mash", &[Role::Referrer]),
];

/// A bearer token per demo organisation.
#[derive(Debug, Clone)]
pub struct Tokens {
    tokens: BTreeMap<&'static str, String>,
    /// The area's data protection officer (role `dpo`), for the audit log's questions.
    dpo: String,
}

impl Tokens {
    pub fn mint(issuer: &TokenIssuer, ttl: Duration) -> Tokens {
        let tokens = ORGANISATIONS
            .iter()
            .map(|(org, roles)| (*org, issuer.mint(&format!("demo-{org}"), org, roles, ttl)))
            .collect();
        let dpo = issuer.mint(&format!("demo-{AREA}-dpo"), AREA, &[Role::Dpo], ttl);
        Tokens { tokens, dpo }
    }

    /// The raw token of the area's data protection officer.
    pub fn dpo(&self) -> &str {
        &self.dpo
    }

    /// The raw token of a demo organisation.
    pub fn token(&self, org: &str) -> Result<&str> {
        self.tokens
            .get(org)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("no demo token for organisation {org}"))
    }

    fn auth(&self, org: &str) -> Result<MetadataValue<Ascii>> {
        grpc::bearer(self.token(org)?)
    }
}

/// What the banner needs to know about the loaded demo.
#[derive(Debug, Clone)]
pub struct Facts {
    /// How many demo referrals there are, and how many this run created.
    pub total: usize,
    pub created: usize,
    /// An accepted referral with a contact, to read with GetReferral.
    pub example_referral: String,
    /// The family that the second referral for a known child was linked into.
    pub linked_family: String,
    /// That second referral came back with `linked_to_existing_family: true`.
    pub linked: bool,
    /// A consented referral for the banner's AcceptReferral: the first of
    /// [`ACCEPT_CANDIDATES`] still RECEIVED (else the first, whatever its state).
    pub accept_candidate: String,
    pub accept_candidate_what: &'static str,
    pub accept_candidate_state: State,
    /// The request id the banner's AcceptReferral uses: fixed per referral, so pasting
    /// it twice, or again on a later run, replays rather than fails.
    pub accept_request_id: String,
}

/// Referrals left RECEIVED, with assessment consent, for the banner to accept, in the
/// order it offers them.
const ACCEPT_CANDIDATES: [u128; 4] = [SCHOOL, SELF_REFERRAL, MIDWIFE, KNOWN_CHILD];

/// Request ids of the banner's AcceptReferral commands start here.
const BANNER_ACCEPT: u128 = 900;

// Keys of the demo referrals, in creation order (the key is also its request-id
// offset).
const HEALTH_VISITOR: u128 = 0;
const MIDWIFE: u128 = 1;
const GP: u128 = 2;
const SCHOOL: u128 = 3;
const SELF_REFERRAL: u128 = 4;
const FATHER: u128 = 5;
const COURT_ORDERED: u128 = 6;
const SAFEGUARDING: u128 = 7;
const KNOWN_CHILD: u128 = 8;

/// Loads the demo area through the referrals service `service` reaches. `store_url`
/// is the `hearth_dev` database that keeps the anchor time and the created names.
pub async fn load(service: &grpc::Connector, tokens: &Tokens, store_url: &str) -> Result<Facts> {
    let mut store = PgConnection::connect(store_url)
        .await
        .with_context(|| format!("cannot connect to {store_url}"))?;
    let anchor = anchor(&mut store).await?;
    let known = recorded_names(&mut store).await?;
    let mut client = service.client(AREA).await?;
    let triage = tokens.auth(AREA)?;

    let mut created = 0;
    let mut referrals: BTreeMap<u128, pb::Referral> = BTreeMap::new();
    for spec in specs(anchor) {
        let step = || format!("demo referral {} ({})", spec.n, spec.what);
        let existing = match known.get(&spec.n) {
            Some(name) => get(&mut client, &triage, name).await.with_context(step)?,
            None => None,
        };
        let referral = match existing {
            Some(r) => r,
            None => {
                let req = pb::CreateReferralRequest {
                    referral: Some(spec.referral),
                    request_id: request_id(spec.n),
                    validate_only: false,
                };
                let reply = service
                    .client(spec.org)
                    .await?
                    .create_referral(grpc::request(req, &tokens.auth(spec.org)?))
                    .await
                    .map_err(status_error)
                    .with_context(step)?;
                let r = reply
                    .into_inner()
                    .referral
                    .ok_or_else(|| anyhow!("the service returned no referral"))
                    .with_context(step)?;
                record_name(&mut store, spec.n, &r.name).await?;
                created += 1;
                r
            }
        };
        referrals.insert(spec.n, referral);
    }
    let name = |n: u128| -> Result<String> {
        referrals
            .get(&n)
            .map(|r| r.name.clone())
            .ok_or_else(|| anyhow!("demo referral {n} is missing"))
    };

    // The front door's first work: phone calls, then decisions.
    for (i, n) in [HEALTH_VISITOR, MIDWIFE, SELF_REFERRAL, COURT_ORDERED]
        .into_iter()
        .enumerate()
    {
        let r = &referrals[&n];
        // Stable across runs (so a re-run is a replay): the receipt time to the second.
        let at = r.receive_time.as_ref().map(|t| prost_types::Timestamp {
            seconds: t.seconds,
            nanos: 0,
        });
        let req = pb::RecordContactRequest {
            name: r.name.clone(),
            request_id: request_id(100 + i as u128),
            contact: Some(pb::Contact {
                method: pb::ContactMethod::Phone as i32,
                contact_time: at,
                successful: true,
                note: CONTACT_NOTES[i].into(),
                ..Default::default()
            }),
        };
        client
            .record_contact(grpc::request(req, &triage))
            .await
            .map_err(status_error)
            .with_context(|| format!("recording a contact on demo referral {n}"))?;
    }
    let accept = |n: u128, id: u128, reason: &str| pb::AcceptReferralRequest {
        name: referrals[&n].name.clone(),
        request_id: request_id(id),
        reason: reason.into(),
    };
    for req in [
        accept(
            HEALTH_VISITOR,
            200,
            "Consent given for assessment. Allocated to the early years team for a home visit \
             with the health visitor; sleep support and a perinatal mental health check-in.",
        ),
        accept(
            FATHER,
            201,
            "Tomasz is keen to take part. Assessment booked for a weekday evening with a Polish \
             interpreter; consider the fathers' group at Loanhead.",
        ),
    ] {
        client
            .accept_referral(grpc::request(req, &triage))
            .await
            .map_err(status_error)
            .context("accepting a demo referral")?;
    }
    let signpost = pb::SignpostReferralRequest {
        name: name(GP)?,
        request_id: request_id(202),
        signposted_to: "Solihull Approach online course for parents (free for Midlothian \
                        families), via the Family Information Service"
            .into(),
        reason: "Needs can be met with universal information: Hannah would like to try the \
                 online course first. Family told they can come back to the front door."
            .into(),
    };
    client
        .signpost_referral(grpc::request(signpost, &triage))
        .await
        .map_err(status_error)
        .context("signposting a demo referral")?;
    let redirect = pb::RedirectReferralRequest {
        name: name(SAFEGUARDING)?,
        request_id: request_id(203),
        redirected_to: "Children's social care".into(),
        reason: "Child-protection threshold met: domestic abuse with young children present. \
                 Passed to children's social care for an inter-agency referral discussion today."
            .into(),
    };
    client
        .redirect_referral(grpc::request(redirect, &triage))
        .await
        .map_err(status_error)
        .context("redirecting the safeguarding referral")?;

    // Read back the candidates for the banner's accept command, as they are now.
    let mut candidates = Vec::new();
    for n in ACCEPT_CANDIDATES {
        let r = get(&mut client, &triage, &name(n)?)
            .await?
            .ok_or_else(|| anyhow!("demo referral {n} has gone"))?;
        let state = State::try_from(r.state).unwrap_or(State::Unspecified);
        candidates.push((n, r.name, state));
    }
    let pick = candidates
        .iter()
        .position(|(_, _, state)| *state == State::Received)
        .unwrap_or(0);
    let (n, accept_candidate, accept_candidate_state) = candidates.swap_remove(pick);
    let what = specs(anchor)
        .into_iter()
        .find(|s| s.n == n)
        .map_or("demo referral", |s| s.what);
    let second = &referrals[&KNOWN_CHILD];
    Ok(Facts {
        total: referrals.len(),
        created,
        example_referral: name(HEALTH_VISITOR)?,
        linked_family: second.family_name.clone(),
        linked: second.linked_to_existing_family,
        accept_candidate,
        accept_candidate_what: what,
        accept_candidate_state,
        accept_request_id: request_id(BANNER_ACCEPT + n),
    })
}

async fn get(
    client: &mut Client,
    auth: &MetadataValue<Ascii>,
    name: &str,
) -> Result<Option<pb::Referral>> {
    let req = pb::GetReferralRequest { name: name.into() };
    match client.get_referral(grpc::request(req, auth)).await {
        Ok(reply) => Ok(reply.into_inner().referral),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(status_error(status)).with_context(|| format!("reading {name}")),
    }
}

/// A status as an error that shows its code, message and field violations.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt as _;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    anyhow!(text)
}

/// The time the demo was first loaded (to the second), stored on first use.
async fn anchor(store: &mut PgConnection) -> Result<DateTime<Utc>> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS demo_anchor (
             id int PRIMARY KEY CHECK (id = 1),
             anchored_at timestamptz NOT NULL
         );
         CREATE TABLE IF NOT EXISTS demo_referrals (
             n int PRIMARY KEY,
             name text NOT NULL
         )",
    )
    .execute(&mut *store)
    .await
    .context("cannot prepare the hearth_dev database")?;
    let now = Utc
        .timestamp_opt(Utc::now().timestamp(), 0)
        .single()
        .unwrap_or_else(Utc::now);
    sqlx::query("INSERT INTO demo_anchor (id, anchored_at) VALUES (1, $1) ON CONFLICT DO NOTHING")
        .bind(now)
        .execute(&mut *store)
        .await?;
    let at: DateTime<Utc> = sqlx::query_scalar("SELECT anchored_at FROM demo_anchor")
        .fetch_one(&mut *store)
        .await?;
    Ok(at)
}

async fn recorded_names(store: &mut PgConnection) -> Result<BTreeMap<u128, String>> {
    let rows = sqlx::query("SELECT n, name FROM demo_referrals")
        .fetch_all(&mut *store)
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<i32, _>("n") as u128, row.get::<String, _>("name")))
        .collect())
}

async fn record_name(store: &mut PgConnection, n: u128, name: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO demo_referrals (n, name) VALUES ($1, $2)
         ON CONFLICT (n) DO UPDATE SET name = EXCLUDED.name",
    )
    .bind(n as i32)
    .bind(name)
    .execute(&mut *store)
    .await?;
    Ok(())
}

const CONTACT_NOTES: [&str; 4] = [
    "Spoke to Kirsty. Happy to have a home visit; mornings are best.",
    "Spoke to Chloe. Interested in a young parents' antenatal group; needs help with bus fares.",
    "Spoke to Margaret. Would like a kinship carers' group; needs a ground-floor venue.",
    "Spoke to Donna. Understands the Parenting Order; works shifts, so needs a choice of times.",
];

/// One demo referral: who sends it and what it says.
struct Spec {
    n: u128,
    org: &'static str,
    what: &'static str,
    referral: pb::Referral,
}

fn date(d: NaiveDate) -> Option<Date> {
    use chrono::Datelike as _;
    Some(Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    })
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn months_before(day: NaiveDate, months: u32) -> NaiveDate {
    day.checked_sub_months(Months::new(months)).unwrap_or(day)
}

fn child(given: &str, family: &str, born: NaiveDate, nhs: Option<String>) -> pb::Child {
    pb::Child {
        given_name: given.into(),
        family_name: family.into(),
        date_of_birth: date(born),
        nhs_number: nhs.unwrap_or_default(),
        ..Default::default()
    }
}

fn adult(given: &str, family: &str, role: Parent, born: NaiveDate, phone: &str) -> pb::Adult {
    pb::Adult {
        given_name: given.into(),
        family_name: family.into(),
        role: role as i32,
        date_of_birth: date(born),
        phone: phone.into(),
        ..Default::default()
    }
}

fn consent(by: &str, role: Parent, at: DateTime<Utc>, scopes: &[Scope]) -> pb::Consent {
    pb::Consent {
        given_by: by.into(),
        given_by_role: role as i32,
        give_time: Some(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: 0,
        }),
        scopes: scopes.iter().map(|s| *s as i32).collect(),
        ..Default::default()
    }
}

fn referrer(name: &str, title: &str, contact: &str) -> Option<pb::Referrer> {
    Some(pb::Referrer {
        display_name: name.into(),
        job_title: title.into(),
        contact: contact.into(),
    })
}

fn access(language: &str, times: &[Time]) -> pb::AccessNeeds {
    pb::AccessNeeds {
        language: language.into(),
        preferred_times: times.iter().map(|t| *t as i32).collect(),
        ..Default::default()
    }
}

fn reasons(list: &[Reason]) -> Vec<i32> {
    list.iter().map(|r| *r as i32).collect()
}

/// A fixed fictional NHS number (valid check digit).
fn nhs_number(seed: u64) -> Option<String> {
    Some(referrals::fixtures::nhs_number(seed))
}

/// The nine demo referrals, with dates relative to `anchor`.
fn specs(anchor: DateTime<Utc>) -> Vec<Spec> {
    let today = anchor.date_naive();
    let days = |n: i64| anchor - chrono::Duration::days(n);
    let voluntary = pb::Route::Voluntary as i32;
    let isla_nhs = nhs_number(31_427_118);
    let isla_born = months_before(today, 7);

    let health_visitor = pb::Referral {
        receiving_area: AREA.into(),
        referrer: referrer("Morag Henderson", "Health visitor", "0131 496 0127"),
        source: Source::HealthVisitor as i32,
        family: Some(pb::FamilyDetails {
            children: vec![child("Isla", "Brown", isla_born, isla_nhs.clone())],
            adults: vec![adult(
                "Kirsty",
                "Brown",
                Parent::Mother,
                ymd(1996, 4, 12),
                "07700 900123",
            )],
        }),
        reasons: reasons(&[Reason::Sleep, Reason::ParentalMentalHealth]),
        description: "Isla (7 months) wakes five or six times a night. Kirsty describes low \
                      mood since the birth and is waiting for perinatal mental health support. \
                      She would like help with a bedtime routine and to meet other parents."
            .into(),
        urgency: pb::Urgency::Priority as i32,
        access_needs: Some(pb::AccessNeeds {
            creche_needed: true,
            ..access("en", &[Time::WeekdayMorning])
        }),
        postcode: "EH22 1AB".into(),
        consents: vec![consent(
            "Kirsty Brown",
            Parent::Mother,
            days(2),
            &[
                Scope::Assessment,
                Scope::ShareWithPartners,
                Scope::Evaluation,
            ],
        )],
        route: voluntary,
        ..Default::default()
    };

    let midwife = pb::Referral {
        receiving_area: AREA.into(),
        referrer: referrer("Fiona Lennie", "Community midwife", "0131 496 0348"),
        source: Source::Midwife as i32,
        family: Some(pb::FamilyDetails {
            children: vec![pb::Child {
                due_date: date(today + chrono::Duration::days(91)),
                ..Default::default()
            }],
            adults: vec![adult(
                "Chloe",
                "Mackay",
                Parent::Mother,
                months_before(today, 12 * 19 + 3),
                "07700 900418",
            )],
        }),
        reasons: reasons(&[
            Reason::ParentingConfidence,
            Reason::Housing,
            Reason::FinancialHardship,
        ]),
        description: "First baby, due in about three months. Chloe is 19 and lives with her mum \
                      in an overcrowded flat while on the housing list. She would like an \
                      antenatal group with other young parents."
            .into(),
        urgency: pb::Urgency::Routine as i32,
        access_needs: Some(pb::AccessNeeds {
            transport_needed: true,
            ..access("en", &[Time::WeekdayAfternoon])
        }),
        postcode: "EH19 2QT".into(),
        consents: vec![consent(
            "Chloe Mackay",
            Parent::Mother,
            days(3),
            &[Scope::Assessment, Scope::ProgrammeReferral],
        )],
        route: voluntary,
        ..Default::default()
    };

    let gp = pb::Referral {
        receiving_area: AREA.into(),
        referrer: referrer("Dr Euan Moffat", "General practitioner", "0131 496 0210"),
        source: Source::Gp as i32,
        family: Some(pb::FamilyDetails {
            children: vec![child(
                "Leo",
                "Campbell",
                months_before(today, 50),
                nhs_number(52_610_844),
            )],
            adults: vec![adult(
                "Hannah",
                "Campbell",
                Parent::Mother,
                ymd(1991, 9, 3),
                "07700 900562",
            )],
        }),
        reasons: reasons(&[Reason::ChildBehaviour, Reason::Sleep]),
        description: "Tantrums at bedtime and trouble settling since Leo's baby sister was born. \
                      No developmental concerns. Mum asked about parenting tips and courses."
            .into(),
        urgency: pb::Urgency::Routine as i32,
        access_needs: Some(access("en", &[Time::WeekdayEvening])),
        postcode: "EH26 8LN".into(),
        consents: vec![consent(
            "Hannah Campbell",
            Parent::Mother,
            days(5),
            &[Scope::Assessment],
        )],
        route: voluntary,
        ..Default::default()
    };

    let school = pb::Referral {
        receiving_area: AREA.into(),
        referrer: referrer("Graeme Paterson", "Pupil support teacher", "0131 496 0733"),
        source: Source::School as i32,
        family: Some(pb::FamilyDetails {
            children: vec![child(
                "Ruby",
                "Stewart",
                months_before(today, 12 * 12 + 5),
                nhs_number(60_284_391),
            )],
            adults: vec![
                adult(
                    "Lisa",
                    "Stewart",
                    Parent::Mother,
                    ymd(1985, 1, 27),
                    "07700 900671",
                ),
                adult("Darren", "Reid", Parent::StepParent, ymd(1983, 6, 14), ""),
            ],
        }),
        reasons: reasons(&[Reason::SchoolTransition, Reason::SchoolAttendance]),
        description: "Ruby moved up to S1 in August. Attendance has fallen to 78% this term, \
                      mostly Mondays; she says the size of the school makes her anxious. Mum \
                      would welcome help with morning routines and talking with Ruby about school."
            .into(),
        urgency: pb::Urgency::Routine as i32,
        access_needs: Some(access("en", &[Time::WeekdayAfternoon])),
        postcode: "EH22 4NU".into(),
        consents: vec![consent(
            "Lisa Stewart",
            Parent::Mother,
            days(1),
            &[Scope::Assessment, Scope::ShareWithPartners],
        )],
        route: voluntary,
        ..Default::default()
    };

    let self_referral = pb::Referral {
        receiving_area: AREA.into(),
        referrer: referrer(
            "Margaret Dalgleish",
            "Grandparent (self-referral by phone)",
            "0131 496 0815",
        ),
        source: Source::SelfReferral as i32,
        family: Some(pb::FamilyDetails {
            children: vec![
                child(
                    "Callum",
                    "Hunter",
                    months_before(today, 9 * 12 + 4),
                    nhs_number(73_905_126),
                ),
                child(
                    "Ellie",
                    "Hunter",
                    months_before(today, 6 * 12 + 1),
                    nhs_number(73_905_127),
                ),
            ],
            adults: vec![adult(
                "Margaret",
                "Dalgleish",
                Parent::KinshipCarer,
                ymd(1961, 11, 2),
                "0131 496 0815",
            )],
        }),
        reasons: reasons(&[Reason::Bereavement, Reason::ChildBehaviour]),
        description: "Margaret has cared for her grandchildren since their mum died in the \
                      spring. Callum has angry outbursts at home and she wants to understand how \
                      to help him. She asked about a group for kinship carers."
            .into(),
        urgency: pb::Urgency::Priority as i32,
        access_needs: Some(pb::AccessNeeds {
            accessibility: "Walks with a stick: a ground-floor venue, please.".into(),
            transport_needed: true,
            ..access("en", &[Time::WeekdayMorning, Time::WeekdayAfternoon])
        }),
        postcode: "EH23 4TT".into(),
        consents: vec![consent(
            "Margaret Dalgleish",
            Parent::KinshipCarer,
            days(1),
            &[
                Scope::Assessment,
                Scope::ShareWithPartners,
                Scope::ProgrammeReferral,
            ],
        )],
        route: voluntary,
        ..Default::default()
    };

    let father = pb::Referral {
        receiving_area: AREA.into(),
        referrer: referrer("Joanna Kowalczyk", "Family support worker", "0131 496 0902"),
        source: Source::VoluntaryOrganisation as i32,
        family: Some(pb::FamilyDetails {
            children: vec![
                child(
                    "Zofia",
                    "Nowak",
                    months_before(today, 5 * 12 + 2),
                    nhs_number(84_112_730),
                ),
                child(
                    "Jakub",
                    "Nowak",
                    months_before(today, 26),
                    nhs_number(84_112_731),
                ),
            ],
            adults: vec![adult(
                "Tomasz",
                "Nowak",
                Parent::Father,
                ymd(1988, 3, 19),
                "07700 900456",
            )],
        }),
        reasons: reasons(&[Reason::ChildBehaviour, Reason::ParentingConfidence]),
        description: "Tomasz is the main carer while his partner works nights. He would like a \
                      dads' group or one-to-one support in the evenings. His English is \
                      conversational; he prefers Polish for anything detailed."
            .into(),
        urgency: pb::Urgency::Routine as i32,
        access_needs: Some(pb::AccessNeeds {
            interpreter_needed: true,
            ..access("pl", &[Time::WeekdayEvening, Time::Weekend])
        }),
        postcode: "EH20 9AX".into(),
        consents: vec![consent(
            "Tomasz Nowak",
            Parent::Father,
            days(4),
            &[Scope::Assessment, Scope::ProgrammeReferral],
        )],
        route: voluntary,
        ..Default::default()
    };

    let order_made = months_before(today, 1);
    let court_ordered = pb::Referral {
        receiving_area: AREA.into(),
        referrer: referrer(
            "Stuart Gillespie",
            "Youth offending team officer",
            "0131 496 0561",
        ),
        source: Source::YouthOffendingTeam as i32,
        family: Some(pb::FamilyDetails {
            children: vec![child(
                "Kyle",
                "Robertson",
                months_before(today, 14 * 12 + 7),
                nhs_number(95_330_412),
            )],
            adults: vec![adult(
                "Donna",
                "Robertson",
                Parent::Mother,
                ymd(1982, 8, 30),
                "07700 900789",
            )],
        }),
        reasons: reasons(&[
            Reason::OffendingOrAntiSocialBehaviour,
            Reason::SchoolAttendance,
        ]),
        description: "Parenting Order made after Kyle's repeated anti-social behaviour and poor \
                      school attendance. Donna must attend a parenting programme; she is willing \
                      but works shifts at the hospital."
            .into(),
        urgency: pb::Urgency::Priority as i32,
        access_needs: Some(access("en", &[Time::WeekdayEvening, Time::Weekend])),
        postcode: "EH22 5JH".into(),
        route: pb::Route::CourtOrdered as i32,
        parenting_order: Some(pb::ParentingOrder {
            court: "Edinburgh Sheriff Court".into(),
            made_date: date(order_made),
            expiry_date: date(
                order_made
                    .checked_add_months(Months::new(12))
                    .unwrap_or(order_made),
            ),
            responsible_officer_organisation: "midlothian-yot".into(),
            responsible_officer_service: pb::ResponsibleOfficerService::YouthOffendingTeam as i32,
            responsible_officer_name: "Stuart Gillespie".into(),
            bound_adult_indexes: vec![0],
            ..Default::default()
        }),
        ..Default::default()
    };

    let safeguarding = pb::Referral {
        receiving_area: AREA.into(),
        referrer: referrer("Lorraine McLeod", "MASH coordinator", "0131 496 0999"),
        source: Source::MultiAgencySafeguardingHub as i32,
        family: Some(pb::FamilyDetails {
            children: vec![
                child(
                    "Mia",
                    "Fraser",
                    months_before(today, 3 * 12 + 2),
                    nhs_number(47_581_203),
                ),
                child(
                    "Noah",
                    "Fraser",
                    months_before(today, 8),
                    nhs_number(47_581_204),
                ),
            ],
            adults: vec![adult(
                "Sarah",
                "Fraser",
                Parent::Mother,
                ymd(1994, 2, 8),
                "07700 900310",
            )],
        }),
        reasons: reasons(&[Reason::DomesticAbuse, Reason::SubstanceMisuse]),
        description: "Police attended a domestic incident at the home overnight with both \
                      children present. Mother's partner is known for alcohol misuse. Shared \
                      through the MASH for a multi-agency view."
            .into(),
        urgency: pb::Urgency::Urgent as i32,
        safeguarding_concern: true,
        postcode: "EH18 1HX".into(),
        route: voluntary,
        ..Default::default()
    };

    let known_child = pb::Referral {
        receiving_area: AREA.into(),
        referrer: referrer("Dr Priya Nair", "General practitioner", "0131 496 0455"),
        source: Source::Gp as i32,
        family: Some(pb::FamilyDetails {
            children: vec![child("Isla", "Brown", isla_born, isla_nhs)],
            adults: vec![adult(
                "Kirsty",
                "Brown",
                Parent::Mother,
                ymd(1996, 4, 12),
                "07700 900123",
            )],
        }),
        reasons: reasons(&[Reason::ParentalMentalHealth]),
        description: "Seen for a postnatal depression review and started on medication. Kirsty \
                      is struggling with Isla's sleep and would value practical support at home."
            .into(),
        urgency: pb::Urgency::Routine as i32,
        access_needs: Some(access("en", &[Time::WeekdayMorning])),
        postcode: "EH22 1AB".into(),
        consents: vec![consent(
            "Kirsty Brown",
            Parent::Mother,
            days(1),
            &[Scope::Assessment, Scope::ShareWithPartners],
        )],
        route: voluntary,
        ..Default::default()
    };

    vec![
        Spec {
            n: HEALTH_VISITOR,
            org: "nhs-lothian",
            what: "health visitor: sleep and parental mental health",
            referral: health_visitor,
        },
        Spec {
            n: MIDWIFE,
            org: "nhs-lothian",
            what: "midwife: unborn child",
            referral: midwife,
        },
        Spec {
            n: GP,
            org: "penicuik-medical-practice",
            what: "GP: behaviour and sleep",
            referral: gp,
        },
        Spec {
            n: SCHOOL,
            org: "newbattle-high-school",
            what: "school: transition and attendance",
            referral: school,
        },
        Spec {
            n: SELF_REFERRAL,
            org: AREA,
            what: "self-referral taken by the front door",
            referral: self_referral,
        },
        Spec {
            n: FATHER,
            org: "midlothian-sure-start",
            what: "father, Polish interpreter, evenings",
            referral: father,
        },
        Spec {
            n: COURT_ORDERED,
            org: "midlothian-yot",
            what: "court-ordered: Parenting Order",
            referral: court_ordered,
        },
        Spec {
            n: SAFEGUARDING,
            org: "midlothian-mash",
            what: "safeguarding concern from the MASH",
            referral: safeguarding,
        },
        Spec {
            n: KNOWN_CHILD,
            org: "dalkeith-medical-centre",
            what: "second referral for a known child",
            referral: known_child,
        },
    ]
}

/// The body of the banner's CreateReferral example: a referral from the school, as
/// readable proto3 JSON in the contract's field order. Free of single quotes, so it
/// pastes inside '…' in a shell.
pub fn school_create_body(request_id: &str, now: DateTime<Utc>) -> String {
    use chrono::Datelike as _;
    let born = months_before(now.date_naive(), 11 * 12 + 8);
    let given =
        (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let nhs = referrals::fixtures::nhs_number(22_718_405);
    let (y, m, d) = (born.year(), born.month(), born.day());
    format!(
        r#"{{
    "requestId": "{request_id}",
    "referral": {{
      "receivingArea": "{AREA}",
      "referrer": {{"displayName": "Graeme Paterson", "jobTitle": "Pupil support teacher", "contact": "0131 496 0733"}},
      "source": "SOURCE_SCHOOL",
      "family": {{
        "children": [{{"givenName": "Aiden", "familyName": "Murray", "dateOfBirth": {{"year": {y}, "month": {m}, "day": {d}}}, "nhsNumber": "{nhs}"}}],
        "adults": [{{"givenName": "Nicola", "familyName": "Murray", "role": "PARENTING_ROLE_MOTHER", "phone": "07700 900947"}}]
      }},
      "reasons": ["REASON_SCHOOL_TRANSITION", "REASON_CHILD_MENTAL_HEALTH"],
      "description": "Aiden starts S1 after the summer and is very worried about the move. Mum asked for support with the transition.",
      "urgency": "URGENCY_ROUTINE",
      "postcode": "EH22 4NU",
      "consents": [{{"givenBy": "Nicola Murray", "givenByRole": "PARENTING_ROLE_MOTHER", "giveTime": "{given}", "scopes": ["CONSENT_SCOPE_ASSESSMENT"]}}],
      "route": "ROUTE_VOLUNTARY"
    }}
  }}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_referral_passes_the_services_validation() {
        let now = Utc::now();
        let anchor = Utc.timestamp_opt(now.timestamp() - 3600, 0).unwrap();
        for spec in specs(anchor) {
            let got = referrals::domain::validate::new_referral(&spec.referral, spec.org, "t", now);
            assert!(got.is_ok(), "{}: {:?}", spec.what, got.err());
        }
    }

    #[test]
    fn specs_are_stable_for_one_anchor() {
        let anchor = Utc.timestamp_opt(1_780_000_000, 0).unwrap();
        let a: Vec<pb::Referral> = specs(anchor).into_iter().map(|s| s.referral).collect();
        let b: Vec<pb::Referral> = specs(anchor).into_iter().map(|s| s.referral).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn the_known_child_is_the_health_visitors_child() {
        let specs = specs(Utc::now());
        let nhs = |n: u128| {
            specs[n as usize].referral.family.as_ref().unwrap().children[0]
                .nhs_number
                .clone()
        };
        assert_eq!(nhs(HEALTH_VISITOR), nhs(KNOWN_CHILD));
        assert_ne!(
            specs[HEALTH_VISITOR as usize].org,
            specs[KNOWN_CHILD as usize].org
        );
    }

    #[test]
    fn the_example_body_is_json_without_single_quotes() {
        let body = school_create_body(&Uuid::new_v4().to_string(), Utc::now());
        assert!(!body.contains('\''), "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["referral"]["source"], "SOURCE_SCHOOL");
        let nhs = v["referral"]["family"]["children"][0]["nhsNumber"]
            .as_str()
            .unwrap();
        assert!(referrals::domain::nhs::normalise(nhs).is_some(), "{nhs}");
    }
}
