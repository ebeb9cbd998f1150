//! Every SQL statement of the referrals service, against its own schema `referrals`.
//! Functions take a connection so that callers compose them in one transaction with
//! the outbox write.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use hearth_platform::db::{self, DbEnum};
use hearth_platform::idempotency::{Claim, RequestKey};
use hearth_platform::outbox::{Outbox, OutboxEvent};
use hearth_proto::referrals::LinkMatch;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::filter::ListFilter;
use crate::domain::linking::{Known, Matches, name_key};
use crate::domain::*;

fn names<E: DbEnum>(v: &[E]) -> Vec<&'static str> {
    db::names(v)
}

fn parse_all<E: DbEnum>(v: Vec<String>) -> Vec<E> {
    db::parse_all(&v)
}

/// Member ids joined by commas, for a list inside an array parameter.
fn ids(v: &[Uuid]) -> String {
    v.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",")
}

/// A preferred contact method as stored: its name, or none for no preference.
fn preferred(m: ContactMethod) -> Option<&'static str> {
    (m != ContactMethod::Unspecified).then(|| m.to_db())
}

/// One create's part in [`claim_and_match`].
#[derive(Debug, Clone, Copy)]
pub struct ClaimInput<'a> {
    pub key: &'a RequestKey,
    pub referral: &'a Referral,
    /// See [`crate::domain::linking::identity_keys`].
    pub lock_keys: &'a [String],
}

/// CreateReferral's first step for a batch of creates, one round trip (the
/// `referrals.claim_and_match` function): claims each request id (through the kit's
/// claim); for those that are new, takes the advisory locks named by their
/// `lock_keys` and then, under them, applies the family-linking lookup
/// (`domain/linking.rs` states the rule). The batch must not hold one request id
/// twice, nor two creates sharing a lock key; all must be `CreateReferral` claims.
pub async fn claim_and_match(
    conn: &mut PgConnection,
    items: &[ClaimInput<'_>],
) -> Result<Vec<(Claim, Matches)>, sqlx::Error> {
    let (mut lock_item, mut lock_key) = (Vec::new(), Vec::new());
    let (mut child_item, mut child_pos, mut nhs, mut name_keys, mut dobs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (n, it) in (1i32..).zip(items) {
        for k in it.lock_keys {
            lock_item.push(n);
            lock_key.push(k.as_str());
        }
        for (pos, c) in (1i32..).zip(&it.referral.children) {
            child_item.push(n);
            child_pos.push(pos);
            nhs.push(c.nhs_number.as_deref());
            name_keys.push(name_key(&c.given_name, &c.family_name));
            dobs.push(c.date_of_birth);
        }
    }
    let rows = sqlx::query(
        "SELECT what, item, fresh, method, request_hash, resource, child, member_id, family_id, by_nhs, name_key, role
           FROM referrals.claim_and_match($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(items.first().map(|i| i.key.method).unwrap_or("CreateReferral"))
    .bind(items.iter().map(|i| i.key.organisation.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.key.request_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.key.hash.as_slice()).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|i| crate::convert::referral_name(i.referral.id))
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|i| i.referral.receiving_area.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|i| i.referral.postcode.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(lock_item)
    .bind(lock_key)
    .bind(child_item)
    .bind(child_pos)
    .bind(nhs)
    .bind(name_keys)
    .bind(dobs)
    .fetch_all(&mut *conn)
    .await?;

    let mut out: Vec<(Option<Claim>, Matches)> = items
        .iter()
        .map(|i| {
            (
                None,
                Matches {
                    children: vec![None; i.referral.children.len()],
                    adults: Vec::new(),
                },
            )
        })
        .collect();
    for row in &rows {
        let Some(((claim, matches), item)) = row
            .get::<Option<i32>, _>("item")
            .and_then(|n| usize::try_from(n).ok()?.checked_sub(1))
            .and_then(|i| out.get_mut(i).zip(items.get(i)))
        else {
            continue;
        };
        match row.get::<&str, _>("what") {
            "claim" => *claim = Some(Claim::from_row(row, item.key)?),
            "child" => {
                let at = row.get::<Option<i32>, _>("child").unwrap_or(0);
                if let Some(slot) = usize::try_from(at)
                    .ok()
                    .and_then(|at| at.checked_sub(1))
                    .and_then(|i| matches.children.get_mut(i))
                {
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
    out.into_iter()
        .map(|(claim, matches)| {
            // Every item is answered with its claim; anything else is a broken
            // function, and going ahead could write under another call's request id.
            let claim = claim.ok_or_else(|| {
                sqlx::Error::Protocol("referrals.claim_and_match left a request unanswered".into())
            })?;
            Ok((claim, matches))
        })
        .collect()
}

/// One referral for [`insert_referrals`].
#[derive(Debug)]
pub struct NewReferral<'a> {
    pub referral: &'a Referral,
    /// Whether its family is new (else the referral joins an existing one).
    pub new_family: bool,
    /// The members that are new; the rest already belong to the family.
    pub new_members: &'a HashSet<Uuid>,
    pub events: &'a [OutboxEvent],
}

/// Inserts referrals in one statement: for each, the family when new, the new members,
/// the referral, which members it names, its consents and its events. One round trip
/// however many referrals and people; foreign keys are checked at the end of the
/// statement.
pub async fn insert_referrals(
    conn: &mut PgConnection,
    outbox: &Outbox,
    batch: &[NewReferral<'_>],
) -> Result<(), sqlx::Error> {
    /// A person as a referral names them.
    struct Person<'a> {
        referral: &'a Referral,
        row: MemberRow<'a>,
    }
    let people: Vec<(Person, bool, i32)> = batch
        .iter()
        .flat_map(|b| {
            let r = b.referral;
            r.children
                .iter()
                .map(MemberRow::child)
                .chain(r.adults.iter().map(MemberRow::adult))
                .zip(1..)
                .map(move |(row, position)| {
                    let new = b.new_members.contains(&row.id);
                    (Person { referral: r, row }, new, position)
                })
        })
        .collect();
    let members: Vec<&Person> = people.iter().filter(|p| p.1).map(|p| &p.0).collect();
    let families: Vec<&Referral> = batch
        .iter()
        .filter(|b| b.new_family)
        .map(|b| b.referral)
        .collect();
    let referrals: Vec<&Referral> = batch.iter().map(|b| b.referral).collect();
    let consents: Vec<(&Referral, &Consent)> = referrals
        .iter()
        .flat_map(|r| r.consents.iter().map(move |c| (*r, c)))
        .collect();
    let events: Vec<&OutboxEvent> = batch.iter().flat_map(|b| b.events.iter()).collect();
    fn order<'a>(r: &&'a Referral) -> Option<&'a ParentingOrder> {
        r.order.as_ref()
    }
    // Arrays of arrays must be rectangular in Postgres: a referral's lists travel
    // joined, enum names and ids by commas (none holds one), address lines by the
    // unit separator (validation refuses control characters in text).
    let joined = |v: Vec<&'static str>| v.join(",");

    let sql = format!(
        "WITH family AS (
             INSERT INTO referrals.families (id, receiving_area, created_at)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[])
         ), members AS (
             INSERT INTO referrals.family_members
               (id, family_id, receiving_area, kind, given_name, family_name, name_key, date_of_birth,
                due_date, nhs_number, ethnicity, role, phone, postcode, created_at)
             SELECT * FROM unnest($4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[],
                                  $10::text[], $11::date[], $12::date[], $13::text[], $14::text[], $15::text[],
                                  $16::text[], $17::text[], $18::timestamptz[])
         ), referral AS (
             INSERT INTO referrals.referrals
               (id, receiving_area, referring_org, created_by, referrer_name, referrer_job_title, referrer_contact,
                source, family_id, linked_existing, reasons, description, urgency, safeguarding, language,
                interpreter, accessibility, creche, transport, preferred_times, postcode, route, order_court,
                order_made, order_expires, order_officer_org, order_officer_service, order_officer_name, state,
                received_at, updated_at, address_lines, engagement_note, order_bound_members)
             SELECT id, area, org, created_by, referrer, job_title, contact, source, family_id, linked,
                    string_to_array(reasons, ','), description, urgency, safeguarding, language, interpreter,
                    accessibility, creche, transport, string_to_array(times, ','), postcode, route, court,
                    made, expires, officer_org, officer_service, officer_name, state, received_at, received_at,
                    string_to_array(address, chr(31)), note, string_to_array(bound, ',')::uuid[]
               FROM unnest($19::uuid[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[],
                           $25::text[], $26::text[], $27::uuid[], $28::bool[], $29::text[], $30::text[],
                           $31::text[], $32::bool[], $33::text[], $34::bool[], $35::text[], $36::bool[],
                           $37::bool[], $38::text[], $39::text[], $40::text[], $41::text[], $42::date[],
                           $43::date[], $44::text[], $45::text[], $46::text[], $47::text[], $48::timestamptz[],
                           $49::text[], $50::text[], $51::text[])
                    AS r(id, area, org, created_by, referrer, job_title, contact, source, family_id, linked,
                         reasons, description, urgency, safeguarding, language, interpreter, accessibility,
                         creche, transport, times, postcode, route, court, made, expires, officer_org,
                         officer_service, officer_name, state, received_at, address, note, bound)
         ), named AS (
             INSERT INTO referrals.referral_members
               (referral_id, member_id, position, kind, given_name, family_name, date_of_birth, due_date,
                nhs_number, ethnicity, role, phone, email, preferred_contact)
             SELECT * FROM unnest($52::uuid[], $53::uuid[], $54::int[], $55::text[], $56::text[], $57::text[],
                                  $58::date[], $59::date[], $60::text[], $61::text[], $62::text[], $63::text[],
                                  $64::text[], $65::text[])
         ), consented AS (
             INSERT INTO referrals.consents (id, referral_id, given_by, given_by_role, given_at, scopes, members)
             SELECT id, referral_id, given_by, role, given_at, string_to_array(scopes, ','),
                    string_to_array(members, ',')::uuid[]
               FROM unnest($66::uuid[], $67::uuid[], $68::text[], $69::text[], $70::timestamptz[], $71::text[],
                           $72::text[])
                    AS c(id, referral_id, given_by, role, given_at, scopes, members)
         ), {}
         SELECT",
        outbox.insert_cte(73) // after the statement's own 72 parameters
    );
    let query = sqlx::query(&sql)
        // families: $1..$3
        .bind(families.iter().map(|r| r.family_id).collect::<Vec<_>>())
        .bind(
            families
                .iter()
                .map(|r| r.receiving_area.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(families.iter().map(|r| r.received_at).collect::<Vec<_>>())
        // members: $4..$18
        .bind(members.iter().map(|m| m.row.id).collect::<Vec<_>>())
        .bind(
            members
                .iter()
                .map(|m| m.referral.family_id)
                .collect::<Vec<_>>(),
        )
        .bind(
            members
                .iter()
                .map(|m| m.referral.receiving_area.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(members.iter().map(|m| m.row.kind).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.row.given).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.row.family).collect::<Vec<_>>())
        .bind(
            members
                .iter()
                .map(|m| name_key(m.row.given, m.row.family))
                .collect::<Vec<_>>(),
        )
        .bind(members.iter().map(|m| m.row.dob).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.row.due).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.row.nhs).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.row.ethnicity).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.row.role).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.row.phone).collect::<Vec<_>>())
        .bind(
            members
                .iter()
                .map(|m| m.referral.postcode.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            members
                .iter()
                .map(|m| m.referral.received_at)
                .collect::<Vec<_>>(),
        )
        // referrals: $19..$51
        .bind(referrals.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(
            referrals
                .iter()
                .map(|r| r.receiving_area.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.referring_org.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.created_by.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.referrer.name.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.referrer.job_title.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.referrer.contact.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.source.to_db())
                .collect::<Vec<_>>(),
        )
        .bind(referrals.iter().map(|r| r.family_id).collect::<Vec<_>>())
        .bind(
            referrals
                .iter()
                .map(|r| r.linked_existing)
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| joined(names(&r.reasons)))
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.description.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.urgency.to_db())
                .collect::<Vec<_>>(),
        )
        .bind(referrals.iter().map(|r| r.safeguarding).collect::<Vec<_>>())
        .bind(
            referrals
                .iter()
                .map(|r| r.access.language.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.access.interpreter)
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.access.accessibility.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.access.creche)
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.access.transport)
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| joined(names(&r.access.preferred_times)))
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.postcode.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.route.to_db())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| order(r).map(|o| o.court.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| order(r).map(|o| o.made))
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| order(r).map(|o| o.expires))
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| order(r).map(|o| o.officer_org.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| order(r).map(|o| o.officer_service.to_db()))
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| order(r).map(|o| o.officer_name.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.state.to_db())
                .collect::<Vec<_>>(),
        )
        .bind(referrals.iter().map(|r| r.received_at).collect::<Vec<_>>())
        .bind(
            referrals
                .iter()
                .map(|r| r.address_lines.join("\u{1f}"))
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| r.engagement_note.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            referrals
                .iter()
                .map(|r| order(r).map(|o| ids(&o.bound_members)))
                .collect::<Vec<_>>(),
        )
        // named members: $52..$65
        .bind(people.iter().map(|p| p.0.referral.id).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.id).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.2).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.kind).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.given).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.family).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.dob).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.due).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.nhs).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.ethnicity).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.role).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.phone).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.email).collect::<Vec<_>>())
        .bind(people.iter().map(|p| p.0.row.preferred).collect::<Vec<_>>())
        // consents: $66..$72
        .bind(consents.iter().map(|(_, c)| c.id).collect::<Vec<_>>())
        .bind(consents.iter().map(|(r, _)| r.id).collect::<Vec<_>>())
        .bind(
            consents
                .iter()
                .map(|(_, c)| c.given_by.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            consents
                .iter()
                .map(|(_, c)| c.given_by_role.to_db())
                .collect::<Vec<_>>(),
        )
        .bind(consents.iter().map(|(_, c)| c.given_at).collect::<Vec<_>>())
        .bind(
            consents
                .iter()
                .map(|(_, c)| joined(names(&c.scopes)))
                .collect::<Vec<_>>(),
        )
        .bind(
            consents
                .iter()
                .map(|(_, c)| ids(&c.members))
                .collect::<Vec<_>>(),
        );
    outbox
        .bind_events(query, &events)
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
        "INSERT INTO referrals.consents (id, referral_id, given_by, given_by_role, given_at, scopes, members)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(c.id)
    .bind(referral_id)
    .bind(&c.given_by)
    .bind(c.given_by_role.to_db())
    .bind(c.given_at)
    .bind(names(&c.scopes))
    .bind(&c.members)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Saves the Parenting Order recorded on a referral (replacing any before it).
pub async fn save_order(conn: &mut PgConnection, r: &Referral) -> Result<(), sqlx::Error> {
    let o = r.order.as_ref();
    sqlx::query(
        "UPDATE referrals.referrals
            SET order_court = $2, order_made = $3, order_expires = $4, order_officer_org = $5,
                order_officer_service = $6, order_officer_name = $7, order_bound_members = $8
          WHERE id = $1",
    )
    .bind(r.id)
    .bind(o.map(|o| o.court.as_str()))
    .bind(o.map(|o| o.made))
    .bind(o.map(|o| o.expires))
    .bind(o.map(|o| o.officer_org.as_str()))
    .bind(o.map(|o| o.officer_service.to_db()))
    .bind(o.map(|o| o.officer_name.as_str()))
    .bind(o.map(|o| o.bound_members.clone()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Saves a correction: the referral's corrected parts, its members as it now names
/// them (changed ones updated, added ones inserted), and the corrected identities
/// (names, dates, NHS numbers) later referrals are matched against.
pub async fn save_correction(
    conn: &mut PgConnection,
    r: &Referral,
    corrected: &Corrected,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE referrals.referrals
            SET address_lines = $2, postcode = $3, engagement_note = $4, language = $5, interpreter = $6,
                accessibility = $7, creche = $8, transport = $9, preferred_times = $10, updated_at = $11
          WHERE id = $1",
    )
    .bind(r.id)
    .bind(&r.address_lines)
    .bind(&r.postcode)
    .bind(&r.engagement_note)
    .bind(&r.access.language)
    .bind(r.access.interpreter)
    .bind(&r.access.accessibility)
    .bind(r.access.creche)
    .bind(r.access.transport)
    .bind(names(&r.access.preferred_times))
    .bind(r.updated_at)
    .execute(&mut *conn)
    .await?;
    let touched: Vec<Uuid> = corrected
        .changed_members
        .iter()
        .chain(&corrected.added_members)
        .copied()
        .collect();
    let people = r
        .children
        .iter()
        .map(MemberRow::child)
        .chain(r.adults.iter().map(MemberRow::adult))
        .zip(1..)
        .filter(|(m, _)| touched.contains(&m.id));
    for (m, position) in people {
        let added = corrected.added_members.contains(&m.id);
        if added {
            sqlx::query(
                "INSERT INTO referrals.family_members
                   (id, family_id, receiving_area, kind, given_name, family_name, name_key, date_of_birth,
                    due_date, nhs_number, ethnicity, role, phone, postcode, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(m.id)
            .bind(r.family_id)
            .bind(&r.receiving_area)
            .bind(m.kind)
            .bind(m.given)
            .bind(m.family)
            .bind(name_key(m.given, m.family))
            .bind(m.dob)
            .bind(m.due)
            .bind(m.nhs)
            .bind(m.ethnicity)
            .bind(m.role)
            .bind(m.phone)
            .bind(&r.postcode)
            .bind(r.updated_at)
            .execute(&mut *conn)
            .await?;
        } else {
            sqlx::query(
                "UPDATE referrals.family_members
                    SET given_name = $2, family_name = $3, name_key = $4, date_of_birth = $5, due_date = $6,
                        nhs_number = $7
                  WHERE id = $1",
            )
            .bind(m.id)
            .bind(m.given)
            .bind(m.family)
            .bind(name_key(m.given, m.family))
            .bind(m.dob)
            .bind(m.due)
            .bind(m.nhs)
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(
            "INSERT INTO referrals.referral_members
               (referral_id, member_id, position, kind, given_name, family_name, date_of_birth, due_date,
                nhs_number, ethnicity, role, phone, email, preferred_contact)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (referral_id, member_id) DO UPDATE
                SET given_name = excluded.given_name, family_name = excluded.family_name,
                    date_of_birth = excluded.date_of_birth, due_date = excluded.due_date,
                    nhs_number = excluded.nhs_number, ethnicity = excluded.ethnicity, role = excluded.role,
                    phone = excluded.phone, email = excluded.email,
                    preferred_contact = excluded.preferred_contact",
        )
        .bind(r.id)
        .bind(m.id)
        .bind(position)
        .bind(m.kind)
        .bind(m.given)
        .bind(m.family)
        .bind(m.dob)
        .bind(m.due)
        .bind(m.nhs)
        .bind(m.ethnicity)
        .bind(m.role)
        .bind(m.phone)
        .bind(m.email)
        .bind(m.preferred)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One person's row, as the member tables hold them.
struct MemberRow<'a> {
    id: Uuid,
    kind: &'static str,
    given: &'a str,
    family: &'a str,
    dob: Option<NaiveDate>,
    due: Option<NaiveDate>,
    nhs: Option<&'a str>,
    ethnicity: &'a str,
    role: Option<&'static str>,
    phone: &'a str,
    email: &'a str,
    preferred: Option<&'static str>,
}

impl<'a> MemberRow<'a> {
    fn child(c: &'a Child) -> MemberRow<'a> {
        MemberRow {
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
            email: "",
            preferred: None,
        }
    }

    fn adult(a: &'a Adult) -> MemberRow<'a> {
        MemberRow {
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
            email: &a.email,
            preferred: preferred(a.preferred_contact),
        }
    }
}

/// The consents and Parenting Orders recorded on every referral of `family` in
/// `area`: what the consent-in-force rule weighs.
pub async fn family_consents_and_orders(
    conn: &mut PgConnection,
    family: Uuid,
    area: &str,
) -> Result<(Vec<(Uuid, Consent)>, Vec<(Uuid, ParentingOrder)>), sqlx::Error> {
    let consents = sqlx::query(
        "SELECT c.id, c.referral_id, c.given_by, c.given_by_role, c.given_at, c.scopes, c.members,
                c.withdrawn_at, c.withdraw_reason
           FROM referrals.consents c JOIN referrals.referrals r ON r.id = c.referral_id
          WHERE r.family_id = $1 AND r.receiving_area = $2",
    )
    .bind(family)
    .bind(area)
    .fetch_all(&mut *conn)
    .await?;
    let orders = sqlx::query(&format!(
        "SELECT {REFERRAL_COLUMNS} FROM referrals.referrals
          WHERE family_id = $1 AND receiving_area = $2 AND order_court IS NOT NULL"
    ))
    .bind(family)
    .bind(area)
    .fetch_all(&mut *conn)
    .await?;
    Ok((
        consents
            .iter()
            .map(|row| (row.get("referral_id"), consent_from_row(row)))
            .collect(),
        orders
            .iter()
            .filter_map(|row| {
                let r = referral_from_row(row);
                r.order.map(|o| (r.id, o))
            })
            .collect(),
    ))
}

fn consent_from_row(row: &PgRow) -> Consent {
    Consent {
        id: row.get("id"),
        given_by: row.get("given_by"),
        given_by_role: ParentingRole::from_db(row.get("given_by_role")),
        given_at: row.get("given_at"),
        scopes: parse_all(row.get("scopes")),
        members: row.get("members"),
        withdrawn_at: row.get("withdrawn_at"),
        withdraw_reason: row.get("withdraw_reason"),
    }
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
    order_expires, order_officer_org, order_officer_service, order_officer_name, order_bound_members, state,
    decided_by_org, decided_by, decision_reason, decline_reason, decision_destination, received_at, first_contact_at,
    decided_at, updated_at, address_lines, engagement_note";

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
                nhs_number, ethnicity, role, phone, email, preferred_contact
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
        "SELECT id, referral_id, given_by, given_by_role, given_at, scopes, members, withdrawn_at,
                withdraw_reason
           FROM referrals.consents WHERE referral_id = ANY($1) ORDER BY given_at, id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    for row in &consents {
        if let Some(r) = by_id.get_mut(&row.get::<Uuid, _>("referral_id")) {
            r.consents.push(consent_from_row(row));
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
            email: row.get("email"),
            preferred_contact: row
                .get::<Option<String>, _>("preferred_contact")
                .map_or(ContactMethod::Unspecified, |m| ContactMethod::from_db(&m)),
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
            bound_members: row
                .get::<Option<Vec<Uuid>>, _>("order_bound_members")
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
        address_lines: row.get("address_lines"),
        engagement_note: row.get("engagement_note"),
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

/// Who is listing: their organisation; whether their roles see their own
/// organisation's referrals and the area's; and the relationships with families
/// (a team, a place, an order) their roles see those families' referrals through.
#[derive(Debug, Clone)]
pub struct ListScope<'a> {
    pub org: &'a str,
    pub own_referrals: bool,
    pub area: bool,
    pub related: &'a [hearth_platform::access::Basis],
    pub now: DateTime<Utc>,
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
          WHERE ((referring_org = $1 AND $2) OR (receiving_area = $1 AND $3)
                 OR ('families/' || family_id::text) IN (
                        SELECT family FROM referrals.relationships
                         WHERE organisation = $1 AND basis = ANY($14) AND starts_at <= $15
                           AND (ends_at IS NULL OR ends_at > $15)))
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
    .bind(scope.area)
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
    .bind(
        scope
            .related
            .iter()
            .map(|b| hearth_proto::EnumName::name(*b))
            .collect::<Vec<_>>(),
    )
    .bind(scope.now)
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
                    rm.date_of_birth, rm.due_date, rm.nhs_number, rm.ethnicity, rm.role, rm.phone, rm.email,
                    rm.preferred_contact,
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

/// Records the responsible officer's relationship with the family of `r` from the
/// order it carries (from the start of the day it was made to the end of its last
/// day, UK time), ending any from an order `r` held before.
pub async fn relate_officer(
    access: &hearth_platform::access::Access,
    conn: &mut PgConnection,
    r: &Referral,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    use hearth_platform::access::{Basis, Relationship, end_of_uk_day, start_of_uk_day};
    let source = crate::convert::referral_name(r.id);
    access.end_source(conn, &source, now).await?;
    if let Some(o) = &r.order {
        let family = crate::convert::family_name(r.family_id);
        access
            .relate(
                conn,
                &Relationship {
                    family: &family,
                    organisation: &o.officer_org,
                    basis: Basis::ResponsibleOfficer,
                    source: &source,
                    starts_at: start_of_uk_day(o.made),
                    ends_at: Some(end_of_uk_day(o.expires)),
                },
            )
            .await?;
    }
    Ok(())
}

/// The receiving area of the families whose referrals the service holds: for the
/// access service (break-the-glass, the DPO's queries).
#[derive(Debug, Clone, Copy)]
pub struct Families;

impl hearth_platform::access_service::Directory for Families {
    fn receiving_area<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        family: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>, sqlx::Error>> + Send + 'a>,
    > {
        Box::pin(async move {
            let Some(id) = family
                .strip_prefix("families/")
                .and_then(|id| Uuid::parse_str(id).ok())
            else {
                return Ok(None);
            };
            Ok(load_family(conn, id).await?.map(|(area, _)| area))
        })
    }
}
