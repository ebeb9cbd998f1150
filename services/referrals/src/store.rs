//! Every SQL statement of the referrals service, against its own schema `referrals`.
//! Functions take a connection so that callers compose them in one transaction with
//! the outbox write.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use hearth_platform::outbox::{Outbox, OutboxEvent};
use hearth_proto::referrals::LinkMatch;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::filter::ListFilter;
use crate::domain::*;

pub const SCHEMA: &str = "referrals";

/// Enums are stored by their protobuf names (`SOURCE_SCHOOL`), readable in SQL.
pub trait DbEnum: Sized + Copy {
    fn to_db(self) -> &'static str;
    fn from_db(s: &str) -> Self;
}

macro_rules! db_enum {
    ($($t:ty),*) => {$(
        impl DbEnum for $t {
            fn to_db(self) -> &'static str {
                self.as_str_name()
            }
            fn from_db(s: &str) -> Self {
                <$t>::from_str_name(s).unwrap_or_default()
            }
        }
    )*};
}

db_enum!(
    Source,
    Reason,
    Urgency,
    ParentingRole,
    PreferredTime,
    ConsentScope,
    Route,
    ResponsibleOfficerService,
    State,
    DeclineReason,
    ContactMethod
);

fn names<E: DbEnum>(v: &[E]) -> Vec<&'static str> {
    v.iter().map(|e| e.to_db()).collect()
}

fn parse_all<E: DbEnum>(v: Vec<String>) -> Vec<E> {
    v.iter().map(|s| E::from_db(s)).collect()
}

/// How a caller's request id relates to earlier calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: go ahead.
    New,
    /// The same call again: answer with this referral as it is now.
    Replay(Uuid),
    /// The id was used for a different call.
    Conflict,
}

/// Claims `(organisation, request_id)` for this call. Concurrent claims of one id
/// wait for the first to commit (the primary key), then see it as a replay.
pub async fn claim_request(
    conn: &mut PgConnection,
    org: &str,
    request_id: Uuid,
    method: &str,
    hash: &[u8],
    referral_id: Uuid,
) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO referrals.requests (organisation, request_id, method, request_hash, referral_id)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(org)
    .bind(request_id)
    .bind(method)
    .bind(hash)
    .bind(referral_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        return Ok(Claim::New);
    }
    let row = sqlx::query(
        "SELECT method, request_hash, referral_id FROM referrals.requests WHERE organisation = $1 AND request_id = $2",
    )
    .bind(org)
    .bind(request_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(earlier_claim(&row, method, hash))
}

/// What an earlier claim of the same request id means for this call.
fn earlier_claim(row: &PgRow, method: &str, hash: &[u8]) -> Claim {
    let same = row.get::<Option<String>, _>("method").as_deref() == Some(method)
        && row.get::<Option<Vec<u8>>, _>("request_hash").as_deref() == Some(hash);
    match row.get::<Option<Uuid>, _>("referral_id") {
        Some(id) if same => Claim::Replay(id),
        _ => Claim::Conflict,
    }
}

/// The key a child is matched on, lower-cased: `given|family`.
pub fn name_key(given: &str, family: &str) -> String {
    format!(
        "{}|{}",
        given.trim().to_lowercase(),
        family.trim().to_lowercase()
    )
}

/// The advisory-lock keys that serialise concurrent referrals which could match the
/// same child, so two referrals for one new child cannot create two families. Sorted
/// and without repeats; passed to [`claim_and_match`].
pub fn identity_keys(area: &str, r: &Referral) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for c in &r.children {
        if let Some(n) = &c.nhs_number {
            keys.push(format!("{area}|nhs|{n}"));
        }
        if let Some(d) = c.date_of_birth {
            keys.push(format!(
                "{area}|id|{}|{d}|{}",
                name_key(&c.given_name, &c.family_name),
                r.postcode
            ));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// A child already known in the area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub member_id: Uuid,
    pub family_id: Uuid,
    pub how: LinkMatch,
}

/// What [`claim_and_match`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matches {
    /// Per child of the referral, in order: the member already known, if any.
    pub children: Vec<Option<Known>>,
    /// The adults of the first matched child's family: `(member id, name key, role)`.
    pub adults: Vec<(Uuid, String, String)>,
}

/// CreateReferral's first step, one round trip (the `referrals.claim_and_match`
/// function): claims the request id; if it is new, takes the advisory locks named by
/// `lock_keys` (see [`identity_keys`]) and then, under them, finds the children already
/// known in the area (by NHS number first, else by name, date of birth and postcode)
/// and the adults of the first matched child's family.
pub async fn claim_and_match(
    conn: &mut PgConnection,
    org: &str,
    request_id: Uuid,
    hash: &[u8],
    r: &Referral,
    lock_keys: &[String],
) -> Result<(Claim, Matches), sqlx::Error> {
    const METHOD: &str = "CreateReferral";
    let rows = sqlx::query(
        "SELECT what, child, member_id, family_id, by_nhs, name_key, role, method, request_hash, referral_id
           FROM referrals.claim_and_match($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(org)
    .bind(request_id)
    .bind(METHOD)
    .bind(hash)
    .bind(r.id)
    .bind(lock_keys)
    .bind(&r.receiving_area)
    .bind(&r.postcode)
    .bind(r.children.iter().map(|c| c.nhs_number.as_deref()).collect::<Vec<_>>())
    .bind(
        r.children
            .iter()
            .map(|c| name_key(&c.given_name, &c.family_name))
            .collect::<Vec<_>>(),
    )
    .bind(r.children.iter().map(|c| c.date_of_birth).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let mut matches = Matches {
        children: vec![None; r.children.len()],
        adults: Vec::new(),
    };
    for row in &rows {
        match row.get::<&str, _>("what") {
            "claimed" => return Ok((earlier_claim(row, METHOD, hash), matches)),
            "child" => {
                let at = row.get::<i32, _>("child") as usize;
                if let Some(slot) = at.checked_sub(1).and_then(|i| matches.children.get_mut(i)) {
                    *slot = Some(Known {
                        member_id: row.get("member_id"),
                        family_id: row.get("family_id"),
                        how: if row.get("by_nhs") {
                            LinkMatch::NhsNumber
                        } else {
                            LinkMatch::NameDateOfBirthPostcode
                        },
                    });
                }
            }
            _ => matches.adults.push((
                row.get("member_id"),
                row.get("name_key"),
                row.get::<Option<String>, _>("role").unwrap_or_default(),
            )),
        }
    }
    Ok((Claim::New, matches))
}

/// Inserts a referral in one statement: the family when `new_family`, the members
/// whose ids are in `new_members` (the rest already belong to the family), the
/// referral, which members it names, its consents and its `events`. One round trip
/// however large the family; foreign keys are checked at the end of the statement.
pub async fn insert_referral(
    conn: &mut PgConnection,
    outbox: &Outbox,
    r: &Referral,
    new_family: bool,
    new_members: &HashSet<Uuid>,
    events: &[OutboxEvent],
) -> Result<(), sqlx::Error> {
    struct Member<'a> {
        id: Uuid,
        kind: &'static str,
        given: &'a str,
        family: &'a str,
        dob: Option<chrono::NaiveDate>,
        due: Option<chrono::NaiveDate>,
        nhs: Option<&'a str>,
        ethnicity: &'a str,
        role: Option<&'static str>,
        phone: &'a str,
    }
    let children = r.children.iter().map(|c| Member {
        id: c.member_id,
        kind: "child",
        given: &c.given_name,
        family: &c.family_name,
        dob: c.date_of_birth,
        due: c.due_date,
        nhs: c.nhs_number.as_deref(),
        ethnicity: &c.ethnicity,
        role: None,
        phone: "",
    });
    let adults = r.adults.iter().map(|a| Member {
        id: a.member_id,
        kind: "adult",
        given: &a.given_name,
        family: &a.family_name,
        dob: a.date_of_birth,
        due: None,
        nhs: None,
        ethnicity: &a.ethnicity,
        role: Some(a.role.to_db()),
        phone: &a.phone,
    });
    let all: Vec<Member> = children.chain(adults).collect();
    let o = r.order.as_ref();
    let sql = format!(
        "WITH family AS (
             INSERT INTO referrals.families (id, receiving_area, created_at)
             SELECT $9, $2, $30 WHERE $37
         ), people AS (
             SELECT * FROM unnest($38::uuid[], $39::text[], $40::text[], $41::text[], $42::text[], $43::date[],
                                  $44::date[], $45::text[], $46::text[], $47::text[], $48::text[], $31::bool[])
                    WITH ORDINALITY
                    AS m(id, kind, given, family, name_key, dob, due, nhs, ethnicity, role, phone, is_new, position)
         ), members AS (
             INSERT INTO referrals.family_members
               (id, family_id, receiving_area, kind, given_name, family_name, name_key, date_of_birth,
                due_date, nhs_number, ethnicity, role, phone, postcode, created_at)
             SELECT id, $9, $2, kind, given, family, name_key, dob, due, nhs, ethnicity, role, phone, $21, $30
               FROM people WHERE is_new
         ), referral AS (
             INSERT INTO referrals.referrals
               (id, receiving_area, referring_org, created_by, referrer_name, referrer_job_title, referrer_contact,
                source, family_id, linked_existing, reasons, description, urgency, safeguarding, language,
                interpreter, accessibility, creche, transport, preferred_times, postcode, route, order_court,
                order_made, order_expires, order_officer_org, order_officer_service, order_officer_name, state,
                received_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                     $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $30)
         ), named AS (
             INSERT INTO referrals.referral_members
               (referral_id, member_id, position, kind, given_name, family_name, date_of_birth, due_date,
                nhs_number, ethnicity, role, phone)
             SELECT $1, id, position, kind, given, family, dob, due, nhs, ethnicity, role, phone FROM people
         ), consented AS (
             INSERT INTO referrals.consents (id, referral_id, given_by, given_by_role, given_at, scopes)
             SELECT c.id, $1, c.given_by, c.role, c.given_at, string_to_array(c.scopes, ',')
               FROM unnest($32::uuid[], $33::text[], $34::text[], $35::timestamptz[], $36::text[])
                    AS c(id, given_by, role, given_at, scopes)
         ), {}
         SELECT",
        outbox.insert_cte(49) // after the statement's own 48 parameters
    );
    let query = sqlx::query(&sql)
        .bind(r.id) // $1
        .bind(&r.receiving_area)
        .bind(&r.referring_org)
        .bind(&r.created_by)
        .bind(&r.referrer.name) // $5
        .bind(&r.referrer.job_title)
        .bind(&r.referrer.contact)
        .bind(r.source.to_db())
        .bind(r.family_id)
        .bind(r.linked_existing) // $10
        .bind(names(&r.reasons))
        .bind(&r.description)
        .bind(r.urgency.to_db())
        .bind(r.safeguarding)
        .bind(&r.access.language) // $15
        .bind(r.access.interpreter)
        .bind(&r.access.accessibility)
        .bind(r.access.creche)
        .bind(r.access.transport)
        .bind(names(&r.access.preferred_times)) // $20
        .bind(&r.postcode)
        .bind(r.route.to_db())
        .bind(o.map(|o| o.court.clone()))
        .bind(o.map(|o| o.made))
        .bind(o.map(|o| o.expires)) // $25
        .bind(o.map(|o| o.officer_org.clone()))
        .bind(o.map(|o| o.officer_service.to_db()))
        .bind(o.map(|o| o.officer_name.clone()))
        .bind(r.state.to_db())
        .bind(r.received_at) // $30
        .bind(
            all.iter()
                .map(|m| new_members.contains(&m.id))
                .collect::<Vec<_>>(),
        )
        .bind(r.consents.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(
            r.consents
                .iter()
                .map(|c| c.given_by.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            r.consents
                .iter()
                .map(|c| c.given_by_role.to_db())
                .collect::<Vec<_>>(),
        )
        .bind(r.consents.iter().map(|c| c.given_at).collect::<Vec<_>>()) // $35
        .bind(
            r.consents
                .iter()
                .map(|c| names(&c.scopes).join(","))
                .collect::<Vec<_>>(),
        )
        .bind(new_family)
        .bind(all.iter().map(|m| m.id).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.kind).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.given).collect::<Vec<_>>()) // $40
        .bind(all.iter().map(|m| m.family).collect::<Vec<_>>())
        .bind(
            all.iter()
                .map(|m| name_key(m.given, m.family))
                .collect::<Vec<_>>(),
        )
        .bind(all.iter().map(|m| m.dob).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.due).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.nhs).collect::<Vec<_>>()) // $45
        .bind(all.iter().map(|m| m.ethnicity).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.role).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.phone).collect::<Vec<_>>()); // $48
    outbox
        .bind_events(query, events)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn insert_consent(
    conn: &mut PgConnection,
    referral_id: Uuid,
    c: &Consent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO referrals.consents (id, referral_id, given_by, given_by_role, given_at, scopes)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(c.id)
    .bind(referral_id)
    .bind(&c.given_by)
    .bind(c.given_by_role.to_db())
    .bind(c.given_at)
    .bind(names(&c.scopes))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn withdraw_consent(conn: &mut PgConnection, c: &Consent) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE referrals.consents SET withdrawn_at = $2, withdraw_reason = $3 WHERE id = $1",
    )
    .bind(c.id)
    .bind(c.withdrawn_at)
    .bind(&c.withdraw_reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn insert_contact(
    conn: &mut PgConnection,
    referral_id: Uuid,
    c: &Contact,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO referrals.contacts (id, referral_id, method, contact_at, successful, note, recorded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(c.id)
    .bind(referral_id)
    .bind(c.method.to_db())
    .bind(c.at)
    .bind(c.successful)
    .bind(&c.note)
    .bind(&c.recorded_by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Saves the parts of a referral that change after receipt: state, decision, first
/// contact, update time.
pub async fn save_progress(conn: &mut PgConnection, r: &Referral) -> Result<(), sqlx::Error> {
    let d = r.decision.as_ref();
    sqlx::query(
        "UPDATE referrals.referrals
            SET state = $2, decided_by_org = $3, decided_by = $4, decision_reason = $5, decline_reason = $6,
                decision_destination = $7, decided_at = $8, first_contact_at = $9, updated_at = $10
          WHERE id = $1",
    )
    .bind(r.id)
    .bind(r.state.to_db())
    .bind(d.map(|d| d.by_org.clone()))
    .bind(d.map(|d| d.by.clone()))
    .bind(d.map(|d| d.reason.clone()))
    .bind(d.and_then(|d| d.decline_reason).map(|x| x.to_db()))
    .bind(d.map(|d| d.destination.clone()))
    .bind(r.decided_at)
    .bind(r.first_contact_at)
    .bind(r.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const REFERRAL_COLUMNS: &str = "id, receiving_area, referring_org, created_by, referrer_name, referrer_job_title,
    referrer_contact, source, family_id, linked_existing, reasons, description, urgency, safeguarding, language,
    interpreter, accessibility, creche, transport, preferred_times, postcode, route, order_court, order_made,
    order_expires, order_officer_org, order_officer_service, order_officer_name, state, decided_by_org, decided_by,
    decision_reason, decline_reason, decision_destination, received_at, first_contact_at, decided_at, updated_at";

/// Loads one referral, locking it for the rest of the transaction when `for_update`.
pub async fn load_one(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> Result<Option<Referral>, sqlx::Error> {
    Ok(load(conn, &[id], for_update).await?.pop())
}

/// Loads referrals by id, in the order of `ids`; missing ids are skipped.
pub async fn load(
    conn: &mut PgConnection,
    ids: &[Uuid],
    for_update: bool,
) -> Result<Vec<Referral>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let rows = sqlx::query(&format!(
        "SELECT {REFERRAL_COLUMNS} FROM referrals.referrals WHERE id = ANY($1){lock}"
    ))
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: HashMap<Uuid, Referral> = rows
        .iter()
        .map(|row| (row.get("id"), referral_from_row(row)))
        .collect();

    let members = sqlx::query(
        "SELECT referral_id, member_id AS id, kind, given_name, family_name, date_of_birth, due_date,
                nhs_number, ethnicity, role, phone
           FROM referrals.referral_members
          WHERE referral_id = ANY($1) ORDER BY referral_id, position",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for row in &members {
        if let Some(r) = by_id.get_mut(&row.get::<Uuid, _>("referral_id")) {
            push_member(&mut r.children, &mut r.adults, row);
        }
    }

    let consents = sqlx::query(
        "SELECT id, referral_id, given_by, given_by_role, given_at, scopes, withdrawn_at, withdraw_reason
           FROM referrals.consents WHERE referral_id = ANY($1) ORDER BY given_at, id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for row in &consents {
        if let Some(r) = by_id.get_mut(&row.get::<Uuid, _>("referral_id")) {
            r.consents.push(Consent {
                id: row.get("id"),
                given_by: row.get("given_by"),
                given_by_role: ParentingRole::from_db(row.get("given_by_role")),
                given_at: row.get("given_at"),
                scopes: parse_all(row.get("scopes")),
                withdrawn_at: row.get("withdrawn_at"),
                withdraw_reason: row.get("withdraw_reason"),
            });
        }
    }

    let contacts = sqlx::query(
        "SELECT id, referral_id, method, contact_at, successful, note, recorded_by
           FROM referrals.contacts WHERE referral_id = ANY($1) ORDER BY contact_at, id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for row in &contacts {
        if let Some(r) = by_id.get_mut(&row.get::<Uuid, _>("referral_id")) {
            r.contacts.push(Contact {
                id: row.get("id"),
                method: ContactMethod::from_db(row.get("method")),
                at: row.get("contact_at"),
                successful: row.get("successful"),
                note: row.get("note"),
                recorded_by: row.get("recorded_by"),
            });
        }
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

fn push_member(children: &mut Vec<Child>, adults: &mut Vec<Adult>, row: &PgRow) {
    if row.get::<String, _>("kind") == "child" {
        children.push(Child {
            member_id: row.get("id"),
            given_name: row.get("given_name"),
            family_name: row.get("family_name"),
            date_of_birth: row.get("date_of_birth"),
            due_date: row.get("due_date"),
            nhs_number: row.get("nhs_number"),
            ethnicity: row.get("ethnicity"),
        });
    } else {
        adults.push(Adult {
            member_id: row.get("id"),
            given_name: row.get("given_name"),
            family_name: row.get("family_name"),
            role: ParentingRole::from_db(&row.get::<Option<String>, _>("role").unwrap_or_default()),
            date_of_birth: row.get("date_of_birth"),
            ethnicity: row.get("ethnicity"),
            phone: row.get("phone"),
        });
    }
}

fn referral_from_row(row: &PgRow) -> Referral {
    let order = row
        .get::<Option<String>, _>("order_court")
        .map(|court| ParentingOrder {
            court,
            made: row
                .get::<Option<NaiveDate>, _>("order_made")
                .unwrap_or_default(),
            expires: row
                .get::<Option<NaiveDate>, _>("order_expires")
                .unwrap_or_default(),
            officer_org: row
                .get::<Option<String>, _>("order_officer_org")
                .unwrap_or_default(),
            officer_service: ResponsibleOfficerService::from_db(
                &row.get::<Option<String>, _>("order_officer_service")
                    .unwrap_or_default(),
            ),
            officer_name: row
                .get::<Option<String>, _>("order_officer_name")
                .unwrap_or_default(),
        });
    let state = State::from_db(row.get("state"));
    let decided_at: Option<DateTime<Utc>> = row.get("decided_at");
    let decision = decided_at.map(|at| Decision {
        outcome: state,
        by_org: row
            .get::<Option<String>, _>("decided_by_org")
            .unwrap_or_default(),
        by: row
            .get::<Option<String>, _>("decided_by")
            .unwrap_or_default(),
        at,
        reason: row
            .get::<Option<String>, _>("decision_reason")
            .unwrap_or_default(),
        decline_reason: row
            .get::<Option<String>, _>("decline_reason")
            .map(|s| DeclineReason::from_db(&s)),
        destination: row
            .get::<Option<String>, _>("decision_destination")
            .unwrap_or_default(),
    });
    Referral {
        id: row.get("id"),
        receiving_area: row.get("receiving_area"),
        referring_org: row.get("referring_org"),
        created_by: row.get("created_by"),
        referrer: Referrer {
            name: row.get("referrer_name"),
            job_title: row.get("referrer_job_title"),
            contact: row.get("referrer_contact"),
        },
        source: Source::from_db(row.get("source")),
        family_id: row.get("family_id"),
        linked_existing: row.get("linked_existing"),
        children: vec![],
        adults: vec![],
        reasons: parse_all(row.get("reasons")),
        description: row.get("description"),
        urgency: Urgency::from_db(row.get("urgency")),
        safeguarding: row.get("safeguarding"),
        access: AccessNeeds {
            language: row.get("language"),
            interpreter: row.get("interpreter"),
            accessibility: row.get("accessibility"),
            creche: row.get("creche"),
            transport: row.get("transport"),
            preferred_times: parse_all(row.get("preferred_times")),
        },
        postcode: row.get("postcode"),
        route: Route::from_db(row.get("route")),
        order,
        state,
        decision,
        consents: vec![],
        contacts: vec![],
        received_at: row.get("received_at"),
        first_contact_at: row.get("first_contact_at"),
        decided_at,
        updated_at: row.get("updated_at"),
    }
}

/// Who is listing: their organisation, and whether they see the area's referrals as
/// triage and/or their own organisation's as a referrer.
#[derive(Debug, Clone)]
pub struct ListScope<'a> {
    pub org: &'a str,
    pub own_referrals: bool,
    pub area_triage: bool,
}

/// A page of referral ids the caller may see, in (received_at, id) order after
/// `after`.
pub async fn list_ids(
    conn: &mut PgConnection,
    scope: &ListScope<'_>,
    f: &ListFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, sqlx::Error> {
    let state_in: Option<Vec<&str>> = f.state_in.as_deref().map(names);
    let source_in: Option<Vec<&str>> = f.source_in.as_deref().map(names);
    let rows = sqlx::query(
        "SELECT id, received_at FROM referrals.referrals
          WHERE ((referring_org = $1 AND $2) OR (receiving_area = $1 AND $3))
            AND ($4::text[] IS NULL OR state = ANY($4))
            AND NOT (state = ANY($5::text[]))
            AND ($6::text[] IS NULL OR source = ANY($6))
            AND NOT (source = ANY($7::text[]))
            AND ($8::text IS NULL OR receiving_area = $8)
            AND ($9::timestamptz IS NULL OR received_at >= $9)
            AND ($10::timestamptz IS NULL OR received_at < $10)
            AND ($11::timestamptz IS NULL OR (received_at, id) > ($11, $12::uuid))
          ORDER BY received_at, id
          LIMIT $13",
    )
    .bind(scope.org)
    .bind(scope.own_referrals)
    .bind(scope.area_triage)
    .bind(state_in)
    .bind(names(&f.state_not))
    .bind(source_in)
    .bind(names(&f.source_not))
    .bind(&f.receiving_area)
    .bind(f.received_from)
    .bind(f.received_before)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("id"), r.get("received_at")))
        .collect())
}

/// A family's area and creation time.
pub async fn load_family(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(String, DateTime<Utc>)>, sqlx::Error> {
    let row =
        sqlx::query("SELECT receiving_area, created_at FROM referrals.families WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|r| (r.get("receiving_area"), r.get("created_at"))))
}

/// A family's referrals as `(id, referring org, receiving area)`, oldest first.
pub async fn family_referrals(
    conn: &mut PgConnection,
    family_id: Uuid,
) -> Result<Vec<(Uuid, String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, referring_org, receiving_area FROM referrals.referrals WHERE family_id = $1 ORDER BY received_at, id",
    )
    .bind(family_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("id"), r.get("referring_org"), r.get("receiving_area")))
        .collect())
}

/// The members named on the given referrals, each once, as the earliest of those
/// referrals described them, in the order first named.
pub async fn members_of(
    conn: &mut PgConnection,
    referral_ids: &[Uuid],
) -> Result<(Vec<Child>, Vec<Adult>), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM (
             SELECT DISTINCT ON (rm.member_id) rm.member_id AS id, rm.kind, rm.given_name, rm.family_name,
                    rm.date_of_birth, rm.due_date, rm.nhs_number, rm.ethnicity, rm.role, rm.phone,
                    r.received_at, r.id AS referral_id, rm.position
               FROM referrals.referral_members rm JOIN referrals.referrals r ON r.id = rm.referral_id
              WHERE rm.referral_id = ANY($1)
              ORDER BY rm.member_id, r.received_at, r.id
           ) first_account
          ORDER BY received_at, referral_id, position",
    )
    .bind(referral_ids)
    .fetch_all(&mut *conn)
    .await?;
    let (mut children, mut adults) = (vec![], vec![]);
    for row in &rows {
        push_member(&mut children, &mut adults, row);
    }
    Ok((children, adults))
}
