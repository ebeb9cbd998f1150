//! The gRPC handlers: decode, authorise, call the domain, persist with the outbox in
//! one transaction, map errors. Each RPC hands its request to one inner method that
//! returns `Result<_, Error>`; `From<Error> for Status` maps every failure in one place.

use hearth_platform::access::{self as kit_access, Access, Basis, Need};
use hearth_platform::audit::{Auditor, Record};
use hearth_platform::idempotency::{Begun, RequestKey, Requests};
use hearth_platform::outbox::{Outbox, OutboxEvent};
use hearth_platform::page::{PageQuery, Pager};
use hearth_platform::service::{Kit, Service as _};
use hearth_platform::{ApiError, Caller, Violations};
use hearth_platform::{clock, consent};
use hearth_proto::access::AccessAction;
use hearth_proto::referrals as pb;
use hearth_proto::referrals::referrals_service_server::ReferralsService;
use prost::Message;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::access::{self, Actor, Parties};
use crate::domain::redaction::{self, Resource};
use crate::domain::{self, Decision, Referral, RuleBroken, Verb, filter, validate};
use crate::intake::{Create, Intake, IntakeOptions, Outcome, Writers};
use crate::{Referrals, convert, events, store};

/// Everything a handler can fail with; mapped to a status in one place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad fields. Displayed (in logs) by field name only: a value may be personal.
    #[error("invalid request: {}", .0.fields().collect::<Vec<_>>().join(", "))]
    Invalid(Violations),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Rule(#[from] RuleBroken),
    #[error("{0}")]
    Denied(&'static str, String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<Violations> for Error {
    fn from(v: Violations) -> Self {
        Error::Invalid(v)
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let api = match err {
            Error::Invalid(v) => ApiError::InvalidArgument(v),
            Error::NotFound(resource) => ApiError::not_found(resource),
            Error::Rule(rule) => ApiError::precondition(rule.reason(), rule.to_string()),
            Error::Denied(reason, message) => ApiError::denied(reason, message),
            Error::Api(api) => api,
            Error::Db(db) => from_db(db),
        };
        api.into_status(Referrals::DOMAIN)
    }
}

/// Constraint violations that a validation gap could let through map to the field
/// they guard, by constraint name; anything else is internal.
fn from_db(err: sqlx::Error) -> ApiError {
    if let sqlx::Error::Database(db) = &err {
        match db.constraint() {
            Some("referrals_order_at_most_12_months") => {
                return ApiError::invalid(
                    "referral.parenting_order.expiry_date",
                    "a Parenting Order lasts at most 12 months",
                );
            }
            Some("referrals_order_when_court_ordered") => {
                return ApiError::invalid(
                    "referral.parenting_order",
                    "must be set exactly when court-ordered",
                );
            }
            _ => {}
        }
    }
    err.into()
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// The referrals gRPC service.
#[derive(Debug, Clone)]
pub struct ReferralsApi {
    pool: PgPool,
    outbox: Outbox,
    requests: Requests,
    pager: Pager,
    intake: Intake,
    auditor: Auditor,
    access: Access,
}

/// A mutation's start: either the same request again (answer with the referral as it
/// is now), or the locked referral to change inside `tx`.
enum Mutation {
    Replay(Box<pb::Referral>),
    /// The transaction, the locked referral, and the relationship the change rests
    /// on (the one whose role it needs).
    Go(Transaction<'static, Postgres>, Box<Referral>, Basis),
}

/// The full method path an audit record names.
fn method(m: &str) -> String {
    format!("/hearth.referrals.v1.ReferralsService/{m}")
}

fn parties(r: &Referral) -> Parties<'_> {
    Parties {
        referring_org: &r.referring_org,
        receiving_area: &r.receiving_area,
    }
}

/// What the service itself knows of the parties to `r`, for the kit's access model.
fn local_parties(r: &Referral) -> kit_access::Parties<'_> {
    kit_access::Parties {
        referring: Some(&r.referring_org),
        receiving_area: Some(&r.receiving_area),
    }
}

fn caller_of<T>(req: &Request<T>) -> Result<Caller> {
    Ok(Caller::of(req)?)
}

fn denied(reason: &'static str, message: &str) -> Error {
    Error::Denied(reason, message.to_owned())
}

impl ReferralsApi {
    /// The service and the intake's writers (see [`Intake::start`]).
    pub fn start(kit: &Kit, intake: IntakeOptions) -> std::io::Result<(Self, Writers)> {
        let (intake, writers) = Intake::start(&kit.pool, intake, kit.auditor.clone())?;
        let api = ReferralsApi {
            pool: kit.pool.clone(),
            outbox: kit.outbox.clone(),
            requests: kit.requests.clone(),
            pager: kit.pager.clone(),
            intake,
            auditor: kit.auditor.clone(),
            access: kit.access.clone(),
        };
        Ok((api, writers))
    }

    /// The basis on which `caller` may read (or change) `r`: the access model.
    async fn basis(
        &self,
        conn: &mut PgConnection,
        caller: &Caller,
        r: &Referral,
        need: Need,
    ) -> Result<Option<Basis>> {
        let family = convert::family_name(r.family_id);
        Ok(self
            .access
            .basis(conn, caller, &family, local_parties(r), need, clock::now())
            .await?)
    }

    /// Records a refusal in the audit log, then answers with `err`. Fail closed: a
    /// refusal that cannot be recorded is UNAVAILABLE.
    async fn refuse<T>(
        &self,
        caller: &Caller,
        m: &str,
        action: AccessAction,
        name: &str,
        family: Option<Uuid>,
        err: Error,
    ) -> Result<T> {
        let families = family.map(convert::family_name).into_iter().collect();
        self.auditor
            .record(
                Record::new(caller, &method(m), action, Basis::None)
                    .of(vec![name.to_owned()], families)
                    .denied(),
            )
            .await?;
        Err(err)
    }

    /// A role the caller lacks: recorded, then PERMISSION_DENIED.
    async fn lacks_role<T>(
        &self,
        caller: &Caller,
        m: &str,
        r: &Referral,
        message: &str,
    ) -> Result<T> {
        let name = convert::referral_name(r.id);
        self.refuse(
            caller,
            m,
            AccessAction::Write,
            &name,
            Some(r.family_id),
            denied("ROLE_REQUIRED", message),
        )
        .await
    }

    /// The audit record of `caller` reading or changing `r`.
    fn record_of(
        &self,
        caller: &Caller,
        m: &str,
        action: AccessAction,
        basis: Basis,
        r: &Referral,
    ) -> Record {
        Record::new(caller, &method(m), action, basis).of(
            vec![convert::referral_name(r.id)],
            vec![convert::family_name(r.family_id)],
        )
    }

    /// `r` as the caller's roles may receive it (`domain::redaction`).
    fn view(&self, caller: &Caller, r: &Referral) -> pb::Referral {
        let mut out = convert::referral(r, true);
        convert::redact_referral(
            &mut out,
            &redaction::parts(&caller.roles, Resource::Referral),
        );
        out
    }

    /// The referral `id`, and the basis the caller sees it on; else NOT_FOUND (so
    /// that its existence is not disclosed), recorded.
    async fn read(
        &self,
        caller: &Caller,
        id: Uuid,
        name: &str,
        m: &str,
    ) -> Result<(Referral, Basis)> {
        let mut conn = self.pool.acquire().await?;
        let r = store::load_one(&mut conn, id, false).await?;
        let basis = match &r {
            Some(r) => self.basis(&mut conn, caller, r, Need::Read).await?,
            None => None,
        };
        drop(conn);
        match (r, basis) {
            (Some(r), Some(b)) => Ok((r, b)),
            (r, _) => {
                self.refuse(
                    caller,
                    m,
                    AccessAction::Read,
                    name,
                    r.map(|r| r.family_id),
                    Error::NotFound(name.to_owned()),
                )
                .await
            }
        }
    }

    /// A read's answer: recorded in the audit log first (no record, no answer), then
    /// as the caller's roles may receive it.
    async fn answer(
        &self,
        caller: &Caller,
        m: &str,
        r: &Referral,
        basis: Basis,
    ) -> Result<pb::Referral> {
        self.auditor
            .record(self.record_of(caller, m, AccessAction::Read, basis, r))
            .await?;
        Ok(self.view(caller, r))
    }

    /// A replay's answer: the referral the earlier call changed, as it is now, if the
    /// caller may still see it.
    async fn replay(&self, caller: &Caller, resource: &str, m: &str) -> Result<pb::Referral> {
        let id = convert::referral_id(resource).ok_or_else(|| Error::NotFound(resource.into()))?;
        let (r, basis) = self.read(caller, id, resource, m).await?;
        self.answer(caller, m, &r, basis).await
    }

    /// Claims the request id and locks the referral, checking the caller may see it.
    async fn begin(&self, caller: &Caller, key: &RequestKey, id: Uuid) -> Result<Mutation> {
        let m = key.method;
        let name = convert::referral_name(id);
        let mut tx = match self.requests.begin(key, &name).await? {
            Begun::Replay(resource) => {
                return Ok(Mutation::Replay(Box::new(
                    self.replay(caller, &resource, m).await?,
                )));
            }
            Begun::Go(tx) => tx,
        };
        let r = store::load_one(&mut tx, id, true).await?;
        let basis = match &r {
            Some(r) => self.basis(&mut tx, caller, r, Need::Write).await?,
            None => None,
        };
        match (r, basis) {
            (Some(r), Some(basis)) => Ok(Mutation::Go(tx, Box::new(r), basis)),
            (r, _) => {
                drop(tx);
                self.refuse(
                    caller,
                    m,
                    AccessAction::Write,
                    &name,
                    r.map(|r| r.family_id),
                    Error::NotFound(name.clone()),
                )
                .await
            }
        }
    }

    /// Saves a change with its events and its audit record, in its transaction.
    async fn commit(
        &self,
        mut tx: Transaction<'static, Postgres>,
        caller: &Caller,
        m: &str,
        basis: Basis,
        r: &Referral,
        events: &[OutboxEvent],
    ) -> Result<pb::Referral> {
        store::save_progress(&mut tx, r).await?;
        self.outbox.write(&mut tx, events).await?;
        self.auditor
            .record_in(
                &mut tx,
                &[self.record_of(caller, m, AccessAction::Write, basis, r)],
            )
            .await?;
        self.outbox.commit(tx).await?;
        Ok(self.view(caller, r))
    }

    /// The path every triage decision RPC takes.
    #[tracing::instrument(skip_all, fields(verb = ?R::VERB, referral = %req.get_ref().name()), err(level = "info"))]
    async fn decide<R: DecisionRequest>(&self, req: Request<R>) -> Result<pb::Referral> {
        let caller = caller_of(&req)?;
        let mut req = req.into_inner();
        let mut v = Violations::new();
        let key = RequestKey::take(
            &mut v,
            &caller,
            verb_method(R::VERB),
            &mut req,
            R::request_id,
        );
        let id = validate::resource_id(&mut v, "name", req.name(), "referrals");
        let (reason, decline_reason, destination) = req.details(&mut v);
        v.into_result(())?;

        let (actor, why) = match R::VERB {
            Verb::Withdraw => (
                Actor::ForFamily,
                "withdrawing needs the receiving area's triage role or the referring organisation's referrer role",
            ),
            _ => (
                Actor::AreaTriage,
                "triage decisions need the receiving area's triage role",
            ),
        };
        let (mut tx, mut r, basis) = match self
            .begin_change(&caller, &key, id, false, actor, why)
            .await?
        {
            Mutation::Replay(r) => return Ok(*r),
            Mutation::Go(tx, r, basis) => (tx, r, basis),
        };
        let consented =
            R::VERB == Verb::Accept && self.assessment_basis(&mut tx, &r, clock::now()).await?;
        let outcome = r.check_decision(R::VERB, consented)?;
        r.decide(Decision {
            outcome,
            by_org: caller.organisation.clone(),
            by: caller.subject.clone(),
            at: clock::now(),
            reason,
            decline_reason,
            destination,
        });
        let out = self
            .commit(
                tx,
                &caller,
                verb_method(R::VERB),
                basis,
                &r,
                &[events::decided(&r)],
            )
            .await?;
        tracing::info!(referral_id = %r.id, state = domain::state_word(r.state), "referral decided");
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(referral = %req.get_ref().name), err(level = "info"))]
    async fn get(&self, req: Request<pb::GetReferralRequest>) -> Result<pb::GetReferralResponse> {
        let caller = caller_of(&req)?;
        let name = req.into_inner().name;
        let mut v = Violations::new();
        let id = validate::resource_id(&mut v, "name", &name, "referrals");
        v.into_result(())?;
        let (r, basis) = self.read(&caller, id, &name, "GetReferral").await?;
        Ok(pb::GetReferralResponse {
            referral: Some(self.answer(&caller, "GetReferral", &r, basis).await?),
        })
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn list(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<pb::ListReferralsResponse> {
        let caller = caller_of(&req)?;
        let req = req.into_inner();
        if !caller.has_any(&access::READER_ROLES) {
            return self
                .refuse(
                    &caller,
                    "ListReferrals",
                    AccessAction::Read,
                    "referrals",
                    None,
                    denied(
                        "ROLE_REQUIRED",
                        "listing referrals needs a practitioner-facing role",
                    ),
                )
                .await;
        }
        let mut v = Violations::new();
        let query = PageQuery {
            method: "ListReferrals",
            page_size: req.page_size,
            page_token: &req.page_token,
            filter: &req.filter,
            order_by: "",
        };
        // The position after a page: the last referral's receipt (µs) and id.
        let page = self.pager.page::<(i64, Uuid)>(&mut v, &query);
        let f = filter::parse(&req.filter).unwrap_or_else(|why| {
            v.add("filter", why);
            filter::ListFilter::default()
        });
        v.into_result(())?;

        let related: Vec<Basis> = [
            Basis::FamilyTeam,
            Basis::Provider,
            Basis::ResponsibleOfficer,
        ]
        .into_iter()
        .filter(|b| caller.has_any(kit_access::roles_for(*b)))
        .collect();
        let scope = store::ListScope {
            org: &caller.organisation,
            own_referrals: caller.has_any(kit_access::roles_for(Basis::ReferringOrganisation)),
            area: caller.has_any(kit_access::roles_for(Basis::ReceivingArea)),
            related: &related,
            now: clock::now(),
        };
        let after = page
            .after
            .and_then(|(t, id)| chrono::DateTime::from_timestamp_micros(t).map(|t| (t, id)));
        let mut conn = self.pool.acquire().await?;
        let mut ids = store::list_ids(&mut conn, &scope, &f, after, page.size + 1).await?;
        let next_page_token = if ids.len() as i64 > page.size {
            ids.truncate(page.size as usize);
            ids.last()
                .map(|(id, at)| self.pager.next_token(&query, &(at.timestamp_micros(), *id)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let only_ids: Vec<Uuid> = ids.iter().map(|(id, _)| *id).collect();
        let referrals = store::load(&mut conn, &only_ids, false).await?;
        // Each referral returned is recorded, with the basis it was seen on: one
        // record per basis. The service's own knowledge first; the relationships of
        // the rest in one query.
        let local: Vec<Option<Basis>> = referrals
            .iter()
            .map(|r| kit_access::local_basis(&caller, local_parties(r)))
            .collect();
        let others: Vec<String> = referrals
            .iter()
            .zip(&local)
            .filter(|(_, b)| b.is_none())
            .map(|(r, _)| convert::family_name(r.family_id))
            .collect();
        let related = self
            .access
            .related(&mut conn, &caller, &others, Need::Read, clock::now())
            .await?;
        let mut by_basis: Vec<(Basis, Vec<&Referral>)> = Vec::new();
        for (r, b) in referrals.iter().zip(local) {
            let b = b
                .or_else(|| related.get(&convert::family_name(r.family_id)).copied())
                .ok_or_else(|| Error::NotFound(convert::referral_name(r.id)))?;
            match by_basis.iter_mut().find(|(x, _)| *x == b) {
                Some((_, rs)) => rs.push(r),
                None => by_basis.push((b, vec![r])),
            }
        }
        drop(conn);
        for (b, rs) in &by_basis {
            self.auditor
                .record(
                    Record::new(&caller, &method("ListReferrals"), AccessAction::Read, *b).of(
                        rs.iter().map(|r| convert::referral_name(r.id)).collect(),
                        rs.iter()
                            .map(|r| convert::family_name(r.family_id))
                            .collect(),
                    ),
                )
                .await?;
        }
        Ok(pb::ListReferralsResponse {
            referrals: referrals.iter().map(|r| self.view(&caller, r)).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(referral = %req.get_ref().name), err(level = "info"))]
    async fn record_contact_in(
        &self,
        req: Request<pb::RecordContactRequest>,
    ) -> Result<pb::Referral> {
        let caller = caller_of(&req)?;
        let mut req = req.into_inner();
        let mut v = Violations::new();
        let key = RequestKey::take(&mut v, &caller, "RecordContact", &mut req, |r| {
            &mut r.request_id
        });
        let id = validate::resource_id(&mut v, "name", &req.name, "referrals");
        let contact = req.contact.as_ref();
        if contact.is_none() {
            v.add("contact", "is required");
        }
        v.into_result(())?;

        let why = "recording contact needs the receiving area's triage role";
        let (mut tx, mut r, basis) = match self
            .begin_change(&caller, &key, id, false, Actor::AreaTriage, why)
            .await?
        {
            Mutation::Replay(r) => return Ok(*r),
            Mutation::Go(tx, r, basis) => (tx, r, basis),
        };
        r.check_open()?;
        let now = clock::now();
        let mut v = Violations::new();
        let contact = validate::contact(
            &mut v,
            "contact",
            contact.expect("checked above"),
            r.received_at,
            now,
            &caller.subject,
        );
        v.into_result(())?;
        let first = r.add_contact(contact.clone(), now);
        store::insert_contact(&mut tx, r.id, &contact).await?;
        let recorded = events::contact_recorded(&r, &contact, first, now);
        self.commit(tx, &caller, "RecordContact", basis, &r, &[recorded])
            .await
    }

    #[tracing::instrument(skip_all, fields(referral = %req.get_ref().name), err(level = "info"))]
    async fn record_consent_in(
        &self,
        req: Request<pb::RecordConsentRequest>,
    ) -> Result<pb::Referral> {
        let caller = caller_of(&req)?;
        let mut req = req.into_inner();
        let now = clock::now();
        let mut v = Violations::new();
        let key = RequestKey::take(&mut v, &caller, "RecordConsent", &mut req, |r| {
            &mut r.request_id
        });
        let id = validate::resource_id(&mut v, "name", &req.name, "referrals");
        let mut consent = match &req.consent {
            None => {
                v.add("consent", "is required");
                None
            }
            Some(c) => Some(validate::consent(&mut v, "consent", c, now, None)),
        };
        v.into_result(())?;

        let why = "recording consent needs the receiving area's triage role or the referring organisation's referrer role";
        let (mut tx, mut r, basis) = match self
            .begin_change(&caller, &key, id, false, Actor::ForFamily, why)
            .await?
        {
            Mutation::Replay(r) => return Ok(*r),
            Mutation::Go(tx, r, basis) => (tx, r, basis),
        };
        r.check_takes_consent()?;
        // The adults it names are checked against the referral.
        let mut v = Violations::new();
        let mut consent = consent.take().expect("checked above");
        consent.members = validate::consent_members(
            &mut v,
            "consent",
            req.consent.as_ref().expect("checked above"),
            validate::Naming::Names {
                family: r.family_id,
                adults: &r.adults,
            },
        );
        v.into_result(())?;
        store::insert_consent(&mut tx, r.id, &consent).await?;
        r.consents.push(consent.clone());
        r.updated_at = now;
        self.commit(
            tx,
            &caller,
            "RecordConsent",
            basis,
            &r,
            &[events::consent_recorded(&r, &consent, now)],
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(consent = %req.get_ref().name), err(level = "info"))]
    async fn withdraw_consent_in(
        &self,
        req: Request<pb::WithdrawConsentRequest>,
    ) -> Result<pb::Referral> {
        let caller = caller_of(&req)?;
        let mut req = req.into_inner();
        let now = clock::now();
        let mut v = Violations::new();
        let key = RequestKey::take(&mut v, &caller, "WithdrawConsent", &mut req, |r| {
            &mut r.request_id
        });
        let (referral_id, consent_id) = validate::consent_name(&mut v, "name", &req.name);
        let reason = validate::reason(&mut v, "reason", &req.reason, false);
        let requested = req
            .withdraw_time
            .as_ref()
            .and_then(|ts| validate::timestamp(&mut v, "withdraw_time", ts));
        if requested.is_some_and(|t| t > now + chrono::Duration::minutes(5)) {
            v.add("withdraw_time", "must not be in the future");
        }
        v.into_result(())?;

        let why = "withdrawing consent needs the receiving area's triage role or the referring organisation's referrer role";
        let (mut tx, mut r, basis) = match self
            .begin_change(&caller, &key, referral_id, false, Actor::ForFamily, why)
            .await?
        {
            Mutation::Replay(r) => return Ok(*r),
            Mutation::Go(tx, r, basis) => (tx, r, basis),
        };
        let at = match r.consents.iter().find(|c| c.id == consent_id) {
            Some(c) => {
                let mut v = Violations::new();
                let at = validate::withdraw_time(&mut v, requested, c.given_at, now);
                v.into_result(at)?
            }
            // Not this referral's consent: NOT_FOUND below.
            None => now,
        };
        let withdrawn = r
            .withdraw_consent(consent_id, at, &reason, now)?
            .cloned()
            .ok_or_else(|| Error::NotFound(req.name.clone()))?;
        store::withdraw_consent(&mut tx, &withdrawn).await?;
        self.commit(
            tx,
            &caller,
            "WithdrawConsent",
            basis,
            &r,
            &[events::consent_withdrawn(&r, &withdrawn, now)],
        )
        .await
    }

    /// Whether the consent-in-force rule finds an assessment basis for the family of
    /// `r` now: a consent, or a Parenting Order in force, on any of its referrals in
    /// the area (`hearth_platform::consent`).
    async fn assessment_basis(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        r: &Referral,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let (consents, orders) =
            store::family_consents_and_orders(tx, r.family_id, &r.receiving_area).await?;
        let names: Vec<(String, Vec<String>)> = consents
            .iter()
            .map(|(rid, c)| {
                (
                    convert::consent_name(*rid, c.id),
                    convert::member_names(r.family_id, &c.members),
                )
            })
            .collect();
        let order_names: Vec<(String, Vec<String>)> = orders
            .iter()
            .map(|(rid, o)| {
                (
                    convert::referral_name(*rid),
                    convert::member_names(r.family_id, &o.bound_members),
                )
            })
            .collect();
        let consent_facts: Vec<consent::ConsentFact> = consents
            .iter()
            .zip(&names)
            .map(|((_, c), (name, members))| consent::ConsentFact {
                name,
                scopes: &c.scopes,
                members,
                given_at: c.given_at,
                withdrawn_at: c.withdrawn_at,
            })
            .collect();
        let order_facts: Vec<consent::OrderFact> = orders
            .iter()
            .zip(&order_names)
            .map(|((_, o), (referral, bound))| consent::OrderFact {
                referral,
                bound_members: bound,
                made: o.made,
                expires: o.expires,
            })
            .collect();
        Ok(consent::in_force(
            &consent_facts,
            &order_facts,
            domain::ConsentScope::Assessment,
            consent::Subject::Family,
            now,
        )
        .is_some())
    }

    /// The start of every change: claims the request id and locks the referral
    /// (`begin`), or for a `validate_only` dry run reads it (access checked, no
    /// request id claimed) in a transaction it never commits; then checks that
    /// `actor`'s role allows the change. One who sees the referral without that role
    /// is refused, recorded, with PERMISSION_DENIED (`why`); anyone else got
    /// NOT_FOUND already.
    async fn begin_change(
        &self,
        caller: &Caller,
        key: &RequestKey,
        id: Uuid,
        validate_only: bool,
        actor: Actor,
        why: &str,
    ) -> Result<Mutation> {
        let (tx, r) = if validate_only {
            let (r, _) = self
                .read(caller, id, &convert::referral_name(id), key.method)
                .await?;
            (self.pool.begin().await?, Box::new(r))
        } else {
            match self.begin(caller, key, id).await? {
                Mutation::Go(tx, r, _) => (tx, r),
                replay => return Ok(replay),
            }
        };
        match access::acting_basis(caller, parties(&r), actor) {
            Some(basis) => Ok(Mutation::Go(tx, r, basis)),
            None => {
                drop(tx);
                self.lacks_role(caller, key.method, &r, why).await
            }
        }
    }

    #[tracing::instrument(skip_all, fields(referral = %req.get_ref().name), err(level = "info"))]
    async fn record_order_in(
        &self,
        req: Request<pb::RecordParentingOrderRequest>,
    ) -> Result<pb::Referral> {
        let caller = caller_of(&req)?;
        let mut req = req.into_inner();
        let now = clock::now();
        let mut v = Violations::new();
        let key = RequestKey::take(&mut v, &caller, "RecordParentingOrder", &mut req, |r| {
            &mut r.request_id
        });
        let id = validate::resource_id(&mut v, "name", &req.name, "referrals");
        if req.parenting_order.is_none() {
            v.add("parenting_order", "is required");
        }
        v.into_result(())?;
        let why = "recording a Parenting Order needs the receiving area's triage role or the referring organisation's referrer role";
        let (mut tx, mut r, basis) = match self
            .begin_change(&caller, &key, id, req.validate_only, Actor::ForFamily, why)
            .await?
        {
            Mutation::Replay(r) => return Ok(*r),
            Mutation::Go(tx, r, basis) => (tx, r, basis),
        };
        r.check_open()?;
        let mut v = Violations::new();
        let order = validate::parenting_order(
            &mut v,
            "parenting_order",
            req.parenting_order.as_ref().expect("checked above"),
            consent::uk_date(now),
            validate::Naming::Names {
                family: r.family_id,
                adults: &r.adults,
            },
        );
        let order = v.into_result(order)?.ok_or_else(|| {
            Error::Invalid(Violations::single(
                "parenting_order",
                "is not a valid order",
            ))
        })?;
        let replaced = r.record_order(order, now);
        if req.validate_only {
            return self
                .answer(&caller, "RecordParentingOrder", &r, basis)
                .await;
        }
        store::save_order(&mut tx, &r).await?;
        store::relate_officer(&self.access, &mut tx, &r, now).await?;
        tracing::info!(referral_id = %r.id, replaced, "parenting order recorded");
        let recorded = events::parenting_order_recorded(&r, replaced, now);
        self.commit(tx, &caller, "RecordParentingOrder", basis, &r, &[recorded])
            .await
    }

    #[tracing::instrument(skip_all, fields(referral = %req.get_ref().referral.as_ref().map_or("", |r| r.name.as_str())), err(level = "info"))]
    async fn correct_in(
        &self,
        req: Request<pb::CorrectFamilyDetailsRequest>,
    ) -> Result<pb::Referral> {
        let caller = caller_of(&req)?;
        let mut req = req.into_inner();
        let now = clock::now();
        let mut v = Violations::new();
        let key = RequestKey::take(&mut v, &caller, "CorrectFamilyDetails", &mut req, |r| {
            &mut r.request_id
        });
        let name = req
            .referral
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let id = validate::resource_id(&mut v, "referral.name", &name, "referrals");
        v.into_result(())?;
        let why = "correcting a family's details needs the receiving area's triage role or the referring organisation's referrer role";
        let (mut tx, mut r, basis) = match self
            .begin_change(&caller, &key, id, req.validate_only, Actor::ForFamily, why)
            .await?
        {
            Mutation::Replay(r) => return Ok(*r),
            Mutation::Go(tx, r, basis) => (tx, r, basis),
        };
        let correction = validate::correction(&req, &r, now)?;
        let reason = correction.reason;
        let corrected = r.correct(correction, now);
        if req.validate_only {
            return self
                .answer(&caller, "CorrectFamilyDetails", &r, basis)
                .await;
        }
        if corrected.is_empty() {
            // Nothing changes and nothing is published; the request id stays claimed,
            // so a retry answers the same. The caller read the referral: recorded.
            self.auditor
                .record_in(
                    &mut tx,
                    &[self.record_of(
                        &caller,
                        "CorrectFamilyDetails",
                        AccessAction::Read,
                        basis,
                        &r,
                    )],
                )
                .await?;
            tx.commit().await?;
            return Ok(self.view(&caller, &r));
        }
        store::save_correction(&mut tx, &r, &corrected).await?;
        tracing::info!(
            referral_id = %r.id,
            changed = corrected.changed_members.len(),
            added = corrected.added_members.len(),
            "family details corrected"
        );
        self.outbox
            .write(
                &mut tx,
                &[events::family_corrected(&r, &corrected, reason, now)],
            )
            .await?;
        self.auditor
            .record_in(
                &mut tx,
                &[self.record_of(
                    &caller,
                    "CorrectFamilyDetails",
                    AccessAction::Write,
                    basis,
                    &r,
                )],
            )
            .await?;
        self.outbox.commit(tx).await?;
        Ok(self.view(&caller, &r))
    }

    #[tracing::instrument(skip_all, fields(family = %req.get_ref().name), err(level = "info"))]
    async fn family(&self, req: Request<pb::GetFamilyRequest>) -> Result<pb::GetFamilyResponse> {
        let caller = caller_of(&req)?;
        let name = req.into_inner().name;
        let mut v = Violations::new();
        let id = validate::resource_id(&mut v, "name", &name, "families");
        v.into_result(())?;
        let mut conn = self.pool.acquire().await?;
        let Some((area, created)) = store::load_family(&mut conn, id).await? else {
            drop(conn);
            return self
                .refuse(
                    &caller,
                    "GetFamily",
                    AccessAction::Read,
                    &name,
                    None,
                    Error::NotFound(name.clone()),
                )
                .await;
        };
        // A caller sees the family through the referrals they may see, and only the
        // members named on those: its own referrals and the area's by their parties,
        // all of them through a relationship with the family (a team, a place, an
        // order) or an emergency grant.
        let related = self
            .access
            .basis(
                &mut conn,
                &caller,
                &name,
                kit_access::Parties::default(),
                Need::Read,
                clock::now(),
            )
            .await?;
        let mut visible: Vec<(Uuid, Basis)> = Vec::new();
        for (rid, org, area) in store::family_referrals(&mut conn, id).await? {
            let parties = kit_access::Parties {
                referring: Some(&org),
                receiving_area: Some(&area),
            };
            if let Some(b) = kit_access::local_basis(&caller, parties).or(related) {
                visible.push((rid, b));
            }
        }
        let Some(basis) = visible.first().map(|(_, b)| *b) else {
            drop(conn);
            return self
                .refuse(
                    &caller,
                    "GetFamily",
                    AccessAction::Read,
                    &name,
                    Some(id),
                    Error::NotFound(name.clone()),
                )
                .await;
        };
        let ids: Vec<Uuid> = visible.iter().map(|(r, _)| *r).collect();
        let (children, adults) = store::members_of(&mut conn, &ids).await?;
        drop(conn);
        let referrals: Vec<String> = ids.iter().map(|r| convert::referral_name(*r)).collect();
        self.auditor
            .record(
                Record::new(&caller, &method("GetFamily"), AccessAction::Read, basis).of(
                    [vec![name.clone()], referrals.clone()].concat(),
                    vec![name.clone()],
                ),
            )
            .await?;
        let mut children: Vec<pb::Child> = children.iter().map(|c| convert::child(id, c)).collect();
        let mut adults: Vec<pb::Adult> = adults.iter().map(|a| convert::adult(id, a)).collect();
        convert::redact_people(
            &mut children,
            &mut adults,
            &redaction::parts(&caller.roles, Resource::Family),
        );
        Ok(pb::GetFamilyResponse {
            family: Some(pb::Family {
                name: convert::family_name(id),
                receiving_area: area,
                children,
                adults,
                referrals,
                create_time: Some(convert::ts(created)),
            }),
        })
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn create(&self, req: Request<pb::CreateReferralRequest>) -> Result<pb::Referral> {
        let caller = caller_of(&req)?;
        let mut req = req.into_inner();
        if !access::can_refer(&caller) {
            return self
                .refuse(
                    &caller,
                    "CreateReferral",
                    AccessAction::Write,
                    "referrals",
                    None,
                    denied(
                        "ROLE_REQUIRED",
                        "creating a referral needs the referrer or triage role",
                    ),
                )
                .await;
        }
        let now = clock::now();
        let mut v = Violations::new();
        let key = RequestKey::take(&mut v, &caller, "CreateReferral", &mut req, |r| {
            &mut r.request_id
        });
        let built = match &req.referral {
            None => {
                v.add("referral", "is required");
                None
            }
            Some(r) => {
                match validate::new_referral(r, &caller.organisation, &caller.subject, now) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        for (f, d) in e.iter() {
                            v.add(f, d);
                        }
                        None
                    }
                }
            }
        };
        let r = v
            .into_result(built)?
            .expect("no violations means a referral");
        if req.validate_only {
            return Ok(convert::referral(&r, false));
        }

        // Written with whatever other creates are waiting (intake.rs), linking the
        // family where a child is already known.
        let outcome = self
            .intake
            .submit(Create {
                key,
                referral: r,
                span: tracing::Span::current(),
                audit: Record::new(
                    &caller,
                    &method("CreateReferral"),
                    AccessAction::Write,
                    Basis::ReferringOrganisation,
                ),
            })
            .await?;
        let r = match outcome {
            Outcome::Created(r) => r,
            Outcome::Conflict => return Err(ApiError::request_id_reused().into()),
            Outcome::Replay(resource) => {
                return self.replay(&caller, &resource, "CreateReferral").await;
            }
        };
        tracing::info!(referral_id = %r.id, linked = r.linked_existing, "referral received");
        Ok(self.view(&caller, &r))
    }
}

/// The RPC a verb arrives through; names its request-id claims.
fn verb_method(verb: Verb) -> &'static str {
    match verb {
        Verb::Accept => "AcceptReferral",
        Verb::Signpost => "SignpostReferral",
        Verb::Redirect => "RedirectReferral",
        Verb::Decline => "DeclineReferral",
        Verb::Withdraw => "WithdrawReferral",
    }
}

/// A triage decision request: its verb, target and the verb's own fields.
trait DecisionRequest: Message + Send + 'static {
    const VERB: Verb;
    fn name(&self) -> &str;
    fn request_id(&mut self) -> &mut String;
    /// Validates the verb's own fields into (reason, decline reason, destination).
    fn details(&self, v: &mut Violations) -> (String, Option<domain::DeclineReason>, String);
}

macro_rules! decision_request {
    ($t:ty, $verb:expr, |$req:ident, $v:ident| $details:expr) => {
        impl DecisionRequest for $t {
            const VERB: Verb = $verb;
            fn name(&self) -> &str {
                &self.name
            }
            fn request_id(&mut self) -> &mut String {
                &mut self.request_id
            }
            fn details(
                &self,
                $v: &mut Violations,
            ) -> (String, Option<domain::DeclineReason>, String) {
                let $req = self;
                $details
            }
        }
    };
}

decision_request!(pb::AcceptReferralRequest, Verb::Accept, |r, v| (
    validate::reason(v, "reason", &r.reason, true),
    None,
    String::new()
));
decision_request!(pb::SignpostReferralRequest, Verb::Signpost, |r, v| {
    let to = validate::short_text(v, "signposted_to", &r.signposted_to, true);
    (validate::reason(v, "reason", &r.reason, true), None, to)
});
decision_request!(pb::RedirectReferralRequest, Verb::Redirect, |r, v| {
    let to = validate::short_text(v, "redirected_to", &r.redirected_to, true);
    (validate::reason(v, "reason", &r.reason, true), None, to)
});
decision_request!(pb::DeclineReferralRequest, Verb::Decline, |r, v| {
    let code = validate::decline_reason(v, "decline_reason", r.decline_reason);
    (
        validate::reason(v, "reason", &r.reason, true),
        Some(code),
        String::new(),
    )
});
decision_request!(pb::WithdrawReferralRequest, Verb::Withdraw, |r, v| (
    validate::reason(v, "reason", &r.reason, true),
    None,
    String::new()
));

/// Every RPC: its inner method, and the one mapping of its error to a status.
#[tonic::async_trait]
impl ReferralsService for ReferralsApi {
    async fn create_referral(
        &self,
        req: Request<pb::CreateReferralRequest>,
    ) -> Result<Response<pb::CreateReferralResponse>, Status> {
        let referral = Some(self.create(req).await?);
        Ok(Response::new(pb::CreateReferralResponse { referral }))
    }

    async fn get_referral(
        &self,
        req: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::GetReferralResponse>, Status> {
        Ok(Response::new(self.get(req).await?))
    }

    async fn list_referrals(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        Ok(Response::new(self.list(req).await?))
    }

    async fn accept_referral(
        &self,
        req: Request<pb::AcceptReferralRequest>,
    ) -> Result<Response<pb::AcceptReferralResponse>, Status> {
        let referral = Some(self.decide(req).await?);
        Ok(Response::new(pb::AcceptReferralResponse { referral }))
    }

    async fn signpost_referral(
        &self,
        req: Request<pb::SignpostReferralRequest>,
    ) -> Result<Response<pb::SignpostReferralResponse>, Status> {
        let referral = Some(self.decide(req).await?);
        Ok(Response::new(pb::SignpostReferralResponse { referral }))
    }

    async fn redirect_referral(
        &self,
        req: Request<pb::RedirectReferralRequest>,
    ) -> Result<Response<pb::RedirectReferralResponse>, Status> {
        let referral = Some(self.decide(req).await?);
        Ok(Response::new(pb::RedirectReferralResponse { referral }))
    }

    async fn decline_referral(
        &self,
        req: Request<pb::DeclineReferralRequest>,
    ) -> Result<Response<pb::DeclineReferralResponse>, Status> {
        let referral = Some(self.decide(req).await?);
        Ok(Response::new(pb::DeclineReferralResponse { referral }))
    }

    async fn withdraw_referral(
        &self,
        req: Request<pb::WithdrawReferralRequest>,
    ) -> Result<Response<pb::WithdrawReferralResponse>, Status> {
        let referral = Some(self.decide(req).await?);
        Ok(Response::new(pb::WithdrawReferralResponse { referral }))
    }

    async fn record_contact(
        &self,
        req: Request<pb::RecordContactRequest>,
    ) -> Result<Response<pb::RecordContactResponse>, Status> {
        let referral = Some(self.record_contact_in(req).await?);
        Ok(Response::new(pb::RecordContactResponse { referral }))
    }

    async fn record_consent(
        &self,
        req: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::RecordConsentResponse>, Status> {
        let referral = Some(self.record_consent_in(req).await?);
        Ok(Response::new(pb::RecordConsentResponse { referral }))
    }

    async fn withdraw_consent(
        &self,
        req: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::WithdrawConsentResponse>, Status> {
        let referral = Some(self.withdraw_consent_in(req).await?);
        Ok(Response::new(pb::WithdrawConsentResponse { referral }))
    }

    async fn get_family(
        &self,
        req: Request<pb::GetFamilyRequest>,
    ) -> Result<Response<pb::GetFamilyResponse>, Status> {
        Ok(Response::new(self.family(req).await?))
    }

    async fn record_parenting_order(
        &self,
        req: Request<pb::RecordParentingOrderRequest>,
    ) -> Result<Response<pb::RecordParentingOrderResponse>, Status> {
        let referral = Some(self.record_order_in(req).await?);
        Ok(Response::new(pb::RecordParentingOrderResponse { referral }))
    }

    async fn correct_family_details(
        &self,
        req: Request<pb::CorrectFamilyDetailsRequest>,
    ) -> Result<Response<pb::CorrectFamilyDetailsResponse>, Status> {
        let referral = Some(self.correct_in(req).await?);
        Ok(Response::new(pb::CorrectFamilyDetailsResponse { referral }))
    }
}
