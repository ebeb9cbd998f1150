//! Who may see a family's records: one access model for every service, deny by
//! default. A caller's organisation sees a family's records only with a legitimate
//! relationship, and each service asks the same question ([`Access::basis`]) and gets
//! back the basis, which goes in the audit record:
//!
//! | basis | from | roles it serves |
//! |---|---|---|
//! | the organisation made the referral | the service's own records | referrer, triage, practitioner, coordinator |
//! | it is the family's receiving area | the service's own records | triage, practitioner, coordinator |
//! | it is in the family's team | `plan.team_member_added` / `_removed` | referrer, triage, practitioner, coordinator |
//! | it delivers a place the family holds | `enrolment.*` (waitlisted for a cohort, offered, enrolled) | practitioner, coordinator |
//! | it holds the responsible officer role for an order in force binding a parent | `parenting_order.recorded`, from the made date to the end of the expiry date | referrer, triage, practitioner, coordinator |
//! | the caller broke the glass | `AccessService.BreakGlass`, for 3 hours by default | the person who did, reads only |
//!
//! Relationships the service does not hold itself arrive and end as events and are
//! kept in `{schema}.relationships`; [`consume`] wires the consumers. Analysts,
//! admins and data protection officers have no relationship with any family: they see
//! no family's records through a service's own RPCs.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, NaiveDate, Utc};
use hearth_proto::events::{assessments, delivery};
use hearth_proto::types::EnrolmentState;
use sqlx::{PgConnection, Postgres, Row as _, Transaction};

use crate::auth::{Caller, Role};
use crate::db::check_schema_name;
use crate::events::Event;
use crate::inbox::{HandleError, Handler};
use crate::service::{Wiring, consumer_of};

pub use hearth_proto::access::AccessBasis as Basis;

/// The roles through which a basis gives access.
pub fn roles_for(basis: Basis) -> &'static [Role] {
    const WORKING: &[Role] = &[
        Role::Referrer,
        Role::Triage,
        Role::Practitioner,
        Role::Coordinator,
    ];
    match basis {
        Basis::ReferringOrganisation
        | Basis::FamilyTeam
        | Basis::ResponsibleOfficer
        | Basis::BreakGlass => WORKING,
        Basis::ReceivingArea => &[Role::Triage, Role::Practitioner, Role::Coordinator],
        Basis::Provider => &[Role::Practitioner, Role::Coordinator],
        Basis::DataProtection => &[Role::Dpo],
        Basis::Role | Basis::None | Basis::Unspecified => &[],
    }
}

/// What the service itself knows of the parties to a record: who made it and the
/// family's receiving area.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parties<'a> {
    /// The organisation that made the record (a referral's referrer).
    pub referring: Option<&'a str>,
    pub receiving_area: Option<&'a str>,
}

/// Whether a call reads or changes the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

/// The DDL of the relationships and emergency grants in `schema`.
pub fn schema_sql(schema: &str) -> Vec<String> {
    let s = check_schema_name(schema);
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        // A relationship between an organisation and a family, from its source (the
        // plan, the enrolment, the referral holding an order); open while `ends_at`
        // is unset or ahead.
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.relationships (
                family       text NOT NULL,
                organisation text NOT NULL,
                basis        text NOT NULL,
                source       text NOT NULL,
                starts_at    timestamptz NOT NULL,
                ends_at      timestamptz,
                PRIMARY KEY (family, organisation, basis, source)
            )"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.break_glass (
                id           uuid PRIMARY KEY,
                family       text NOT NULL,
                area         text NOT NULL,
                subject      text NOT NULL,
                organisation text NOT NULL,
                roles        text[] NOT NULL,
                reason       text NOT NULL,
                granted_at   timestamptz NOT NULL,
                expires_at   timestamptz NOT NULL
            )"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS break_glass_holder ON {s}.break_glass (family, subject, organisation)"
        ),
    ]
}

/// The access model over one service's schema.
#[derive(Debug, Clone)]
pub struct Access {
    schema: &'static str,
    sql: String,
}

impl Access {
    pub fn new(schema: &'static str) -> Access {
        let s = check_schema_name(schema);
        Access {
            schema,
            sql: format!(
                "SELECT family, basis FROM {s}.relationships
                  WHERE family = ANY($1) AND organisation = $2 AND starts_at <= $4
                    AND (ends_at IS NULL OR ends_at > $4)
                 UNION ALL
                 SELECT family, 'ACCESS_BASIS_BREAK_GLASS' FROM {s}.break_glass
                  WHERE family = ANY($1) AND organisation = $2 AND subject = $3 AND expires_at > $4 AND $5"
            ),
        }
    }

    pub fn schema(&self) -> &'static str {
        self.schema
    }

    /// The basis on which `caller` may read (or change) `family`'s record whose
    /// parties are `parties`, at `now`; `None`: no relationship, deny. The service's
    /// own knowledge is asked first and costs nothing; then the relationships learnt
    /// from events and the caller's emergency grants (for reads).
    pub async fn basis(
        &self,
        conn: &mut PgConnection,
        caller: &Caller,
        family: &str,
        parties: Parties<'_>,
        need: Need,
        now: DateTime<Utc>,
    ) -> Result<Option<Basis>, sqlx::Error> {
        if let Some(b) = local_basis(caller, parties) {
            return Ok(Some(b));
        }
        let family = family.to_owned();
        let mut found = self
            .related(conn, caller, std::slice::from_ref(&family), need, now)
            .await?;
        Ok(found.remove(&family))
    }

    /// The basis on which `caller` may see each of `families` through a relationship
    /// learnt from events or an emergency grant, in one query (for a list: the
    /// service's own knowledge, [`local_basis`], is asked first and costs nothing).
    /// Families with none are absent.
    pub async fn related(
        &self,
        conn: &mut PgConnection,
        caller: &Caller,
        families: &[String],
        need: Need,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Basis>, sqlx::Error> {
        let mut found = HashMap::new();
        if families.is_empty() {
            return Ok(found);
        }
        let rows = sqlx::query(&self.sql)
            .bind(families)
            .bind(&caller.organisation)
            .bind(&caller.subject)
            .bind(now)
            .bind(need == Need::Read)
            .fetch_all(&mut *conn)
            .await?;
        use hearth_proto::EnumName as _;
        for row in &rows {
            let Some(b) = Basis::from_name(row.get::<&str, _>("basis")) else {
                continue;
            };
            if !caller.has_any(roles_for(b)) {
                continue;
            }
            // Of several, the first in the contract's order.
            found
                .entry(row.get::<String, _>("family"))
                .and_modify(|have: &mut Basis| {
                    if (b as i32) < (*have as i32) {
                        *have = b;
                    }
                })
                .or_insert(b);
        }
        Ok(found)
    }

    /// Records a relationship the service learnt itself (an order it holds), in the
    /// caller's transaction; replaces one from the same source.
    pub async fn relate(
        &self,
        conn: &mut PgConnection,
        r: &Relationship<'_>,
    ) -> Result<(), sqlx::Error> {
        relate(conn, self.schema, r).await
    }

    /// Ends every relationship from `source` at `at` (a replaced order).
    pub async fn end_source(
        &self,
        conn: &mut PgConnection,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        end_source(conn, self.schema, source, at).await
    }
}

/// The basis the service's own knowledge gives, if any.
pub fn local_basis(caller: &Caller, p: Parties<'_>) -> Option<Basis> {
    let org = caller.organisation.as_str();
    [
        (p.referring == Some(org), Basis::ReferringOrganisation),
        (p.receiving_area == Some(org), Basis::ReceivingArea),
    ]
    .into_iter()
    .find(|(holds, b)| *holds && caller.has_any(roles_for(*b)))
    .map(|(_, b)| b)
}

/// A relationship between an organisation and a family.
#[derive(Debug, Clone, Copy)]
pub struct Relationship<'a> {
    /// `families/{family}`.
    pub family: &'a str,
    pub organisation: &'a str,
    pub basis: Basis,
    /// Where it comes from: a plan, an enrolment, a referral holding an order.
    pub source: &'a str,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
}

async fn relate(
    conn: &mut PgConnection,
    schema: &str,
    r: &Relationship<'_>,
) -> Result<(), sqlx::Error> {
    use hearth_proto::EnumName as _;
    let s = check_schema_name(schema);
    sqlx::query(&format!(
        "INSERT INTO {s}.relationships (family, organisation, basis, source, starts_at, ends_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (family, organisation, basis, source)
         DO UPDATE SET starts_at = excluded.starts_at, ends_at = excluded.ends_at"
    ))
    .bind(r.family)
    .bind(r.organisation)
    .bind(r.basis.name())
    .bind(r.source)
    .bind(r.starts_at)
    .bind(r.ends_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn end_source(
    conn: &mut PgConnection,
    schema: &str,
    source: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let s = check_schema_name(schema);
    sqlx::query(&format!(
        "UPDATE {s}.relationships SET ends_at = $2 WHERE source = $1 AND (ends_at IS NULL OR ends_at > $2)"
    ))
    .bind(source)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The first instant after `day` in the UK: when an order whose last day is `day`
/// stops standing.
pub fn end_of_uk_day(day: NaiveDate) -> DateTime<Utc> {
    let next = day.succ_opt().unwrap_or(day);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    // The UK is an hour ahead in summer: its midnight is 23:00 UTC the day before.
    if crate::consent::uk_date(midnight - chrono::Duration::hours(1)) == next {
        midnight - chrono::Duration::hours(1)
    } else {
        midnight
    }
}

/// The start of `day` in the UK.
pub fn start_of_uk_day(day: NaiveDate) -> DateTime<Utc> {
    end_of_uk_day(day.pred_opt().unwrap_or(day))
}

/// Wires the consumers that keep `{schema}.relationships` from other services'
/// events: family teams (assessments) and places (delivery). `durable` names the
/// consumers, e.g. `referrals-access`.
pub fn consume(w: &mut Wiring, durable: &str) {
    let schema = w.schema();
    w.consume(
        consumer_of(&assessments::STREAM, durable),
        Relationships { schema },
    );
    w.consume(
        consumer_of(&delivery::STREAM, durable),
        Relationships { schema },
    );
}

/// Applies relationship events to a service's `relationships`.
#[derive(Debug, Clone, Copy)]
pub struct Relationships {
    pub schema: &'static str,
}

type Fut<'a> = Pin<Box<dyn Future<Output = Result<(), HandleError>> + Send + 'a>>;

impl Handler for Relationships {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Event,
    ) -> impl Future<Output = Result<(), HandleError>> + Send + 'a {
        let fut: Fut<'a> = Box::pin(apply(tx, self.schema, event));
        fut
    }
}

fn poison(e: prost::DecodeError) -> HandleError {
    HandleError::Poison(format!("undecodable payload: {e}"))
}

fn time_of(event: &Event, t: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.clamp(0, 999_999_999) as u32))
        .or(event.time)
        .unwrap_or_else(Utc::now)
}

async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    schema: &'static str,
    event: &Event,
) -> Result<(), HandleError> {
    let t = event.ce_type.as_str();
    if assessments::PLAN_TEAM_MEMBER_ADDED.is(t) {
        let e = assessments::PLAN_TEAM_MEMBER_ADDED
            .decode(&event.payload)
            .map_err(poison)?;
        let plan = e.r#ref.unwrap_or_default();
        relate(
            tx,
            schema,
            &Relationship {
                family: &plan.family,
                organisation: &e.organisation,
                basis: Basis::FamilyTeam,
                source: &plan.family_plan,
                starts_at: time_of(event, e.occur_time.as_ref()),
                ends_at: None,
            },
        )
        .await?;
    } else if assessments::PLAN_TEAM_MEMBER_REMOVED.is(t) {
        let e = assessments::PLAN_TEAM_MEMBER_REMOVED
            .decode(&event.payload)
            .map_err(poison)?;
        let plan = e.r#ref.unwrap_or_default();
        let s = check_schema_name(schema);
        sqlx::query(&format!(
            "UPDATE {s}.relationships SET ends_at = $4
              WHERE family = $1 AND organisation = $2 AND basis = 'ACCESS_BASIS_FAMILY_TEAM' AND source = $3"
        ))
        .bind(&plan.family)
        .bind(&e.organisation)
        .bind(&plan.family_plan)
        .bind(time_of(event, e.occur_time.as_ref()))
        .execute(&mut **tx)
        .await?;
    } else if let Some(r) = enrolment_ref(event)? {
        // Every enrolment event carries the enrolment as it now is: the delivering
        // organisation holds a relationship while the place is live.
        let at = event.time.unwrap_or_else(Utc::now);
        end_source(tx, schema, &r.enrolment, at).await?;
        let state = EnrolmentState::try_from(r.state).unwrap_or_default();
        let live = match state {
            EnrolmentState::Waitlisted => !r.cohort.is_empty(),
            EnrolmentState::Offered | EnrolmentState::Enrolled => true,
            _ => false,
        };
        if live && !r.delivering_organisation.is_empty() {
            relate(
                tx,
                schema,
                &Relationship {
                    family: &r.family,
                    organisation: &r.delivering_organisation,
                    basis: Basis::Provider,
                    source: &r.enrolment,
                    starts_at: at,
                    ends_at: None,
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// The enrolment an `enrolment.*` event is about, as it now is.
fn enrolment_ref(
    event: &Event,
) -> Result<Option<hearth_proto::delivery::EnrolmentRef>, HandleError> {
    // Every enrolment event's payload carries the enrolment as `ref`.
    macro_rules! the_ref_of {
        ($($kind:ident),+) => {
            $(if delivery::$kind.is(&event.ce_type) {
                let e = delivery::$kind.decode(&event.payload[..]).map_err(poison)?;
                return Ok(Some(e.r#ref.unwrap_or_default()));
            })+
        };
    }
    the_ref_of!(
        ENROLMENT_OFFERED,
        ENROLMENT_WAITLISTED,
        ENROLMENT_ENROLLED,
        ENROLMENT_DECLINED,
        ENROLMENT_UPDATED,
        ENROLMENT_COMPLETED,
        ENROLMENT_DROPPED_OUT,
        ENROLMENT_WITHDRAWN
    );
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(org: &str, roles: &[Role]) -> Caller {
        Caller::new("u", org, roles)
    }

    const P: Parties<'static> = Parties {
        referring: Some("school"),
        receiving_area: Some("midlothian"),
    };

    #[test]
    fn the_service_s_own_parties_give_access_through_the_right_roles() {
        assert_eq!(
            local_basis(&caller("school", &[Role::Referrer]), P),
            Some(Basis::ReferringOrganisation)
        );
        assert_eq!(
            local_basis(&caller("midlothian", &[Role::Practitioner]), P),
            Some(Basis::ReceivingArea)
        );
        assert_eq!(
            local_basis(&caller("midlothian", &[Role::Referrer]), P),
            None,
            "the area's referrers do not see every family"
        );
        for roles in [&[Role::Analyst][..], &[Role::Admin], &[Role::Dpo], &[]] {
            assert_eq!(local_basis(&caller("school", roles), P), None, "{roles:?}");
        }
        assert_eq!(local_basis(&caller("police", &[Role::Triage]), P), None);
    }

    #[test]
    fn providers_need_a_delivering_role() {
        assert!(roles_for(Basis::Provider).contains(&Role::Practitioner));
        assert!(!roles_for(Basis::Provider).contains(&Role::Referrer));
        assert!(roles_for(Basis::Role).is_empty());
    }

    #[test]
    fn every_enrolment_event_in_the_contract_moves_the_provider_relationship() {
        for (subject, _) in delivery::EVENTS
            .iter()
            .filter(|(s, _)| s.starts_with("hearth.delivery.v1.enrolment."))
        {
            let event = Event {
                id: uuid::Uuid::nil(),
                subject: subject.to_string(),
                ce_type: subject.to_string(),
                source: "//hearth/delivery".into(),
                resource: "enrolments/e".into(),
                time: None,
                traceparent: None,
                payload: bytes::Bytes::new(),
            };
            assert!(
                matches!(enrolment_ref(&event), Ok(Some(_))),
                "{subject} is not read for the provider relationship"
            );
        }
    }

    #[test]
    fn uk_days_end_at_uk_midnight() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(
            end_of_uk_day(d(2026, 1, 9)).to_rfc3339(),
            "2026-01-10T00:00:00+00:00"
        );
        assert_eq!(
            end_of_uk_day(d(2026, 7, 9)).to_rfc3339(),
            "2026-07-09T23:00:00+00:00"
        );
        assert_eq!(
            start_of_uk_day(d(2026, 7, 10)).to_rfc3339(),
            "2026-07-09T23:00:00+00:00"
        );
    }
}
