//! The gRPC handlers: decode, authorise, call the domain, persist with the outbox in
//! one transaction, map errors.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hearth_platform::outbox::{Outbox, OutboxEvent};
use hearth_platform::{ApiError, Caller, Role, Violations};
use hearth_proto::referrals as pb;
use hearth_proto::referrals::referrals_service_server::ReferralsService;
use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::access::{self, Parties};
use crate::domain::{self, Decision, Referral, RuleBroken, Verb, filter, validate};
use crate::intake::{Create, Intake, IntakeOptions, Outcome, Writers};
use crate::store::{self, Claim};
use crate::{convert, events};

/// The `domain` of every `google.rpc.ErrorInfo` this service returns.
pub const DOMAIN: &str = "referrals.hearth";

const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 500;

/// Everything a handler can fail with; mapped to a status in one place.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Rule(#[from] RuleBroken),
    #[error("{1}")]
    Denied(&'static str, String),
    #[error("request_id was already used for a different request")]
    RequestIdReused,
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
            Error::RequestIdReused => ApiError::invalid(
                "request_id",
                "was already used by your organisation for a different request; send a new UUID",
            ),
            Error::Api(api) => api,
            Error::Db(db) => from_db(db),
        };
        api.into_status(DOMAIN)
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

/// The current time at the precision Postgres keeps (microseconds), so a response
/// says exactly what a later read will.
fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// The referrals gRPC service.
#[derive(Debug, Clone)]
pub struct ReferralsApi {
    pool: PgPool,
    outbox: Outbox,
    intake: Intake,
}

/// A mutation's start: either the same request again (answer with the referral as it
/// is), or the locked referral to change inside `tx`.
enum Mutation {
    Replay(Box<pb::Referral>),
    Go {
        tx: Transaction<'static, Postgres>,
        referral: Box<Referral>,
    },
}

fn parties(r: &Referral) -> Parties<'_> {
    Parties {
        referring_org: &r.referring_org,
        receiving_area: &r.receiving_area,
    }
}

/// Takes the request id out of a mutation request and digests the rest, to tell a
/// retry (same digest) from a reuse of the id (different digest).
fn split<T: Message>(
    method: &str,
    mut req: T,
    request_id: fn(&mut T) -> &mut String,
) -> (T, String, Vec<u8>) {
    let id = std::mem::take(request_id(&mut req));
    let hash = request_hash(method, &req);
    (req, id, hash)
}

/// A digest of the request with its request id removed, to tell a retry from a reuse.
fn request_hash(method: &str, msg: &impl Message) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(msg.encode_to_vec());
    h.finalize().to_vec()
}

impl ReferralsApi {
    /// The service and the intake's writers (see [`Intake::start`]).
    pub fn start(pool: PgPool, intake: IntakeOptions) -> std::io::Result<(Self, Writers)> {
        let outbox = Outbox::new(pool.clone(), store::SCHEMA, events::SOURCE);
        let (intake, writers) = Intake::start(&pool, intake)?;
        let api = ReferralsApi {
            pool,
            outbox,
            intake,
        };
        Ok((api, writers))
    }

    /// Claims the request id and locks the referral, checking the caller may see it.
    async fn begin(
        &self,
        caller: &Caller,
        method: &'static str,
        name: &str,
        referral_id: Uuid,
        request_id: Uuid,
        hash: &[u8],
    ) -> Result<Mutation> {
        let mut tx = self.pool.begin().await?;
        match store::claim_request(
            &mut tx,
            &caller.organisation,
            request_id,
            method,
            hash,
            referral_id,
        )
        .await?
        {
            Claim::New => {}
            Claim::Conflict => return Err(Error::RequestIdReused),
            Claim::Replay(id) => {
                tx.rollback().await?;
                let mut conn = self.pool.acquire().await?;
                let r = store::load_one(&mut conn, id, false)
                    .await?
                    .filter(|r| access::can_see(caller, parties(r)))
                    .ok_or_else(|| Error::NotFound(name.to_owned()))?;
                return Ok(Mutation::Replay(Box::new(convert::referral(&r, true))));
            }
        }
        let referral = store::load_one(&mut tx, referral_id, true)
            .await?
            .filter(|r| access::can_see(caller, parties(r)))
            .ok_or_else(|| Error::NotFound(name.to_owned()))?;
        Ok(Mutation::Go {
            tx,
            referral: Box::new(referral),
        })
    }

    async fn commit(
        &self,
        mut tx: Transaction<'static, Postgres>,
        r: &Referral,
        events: &[OutboxEvent],
    ) -> Result<pb::Referral> {
        store::save_progress(&mut tx, r).await?;
        self.outbox.write(&mut tx, events).await?;
        self.outbox.commit(tx).await?;
        Ok(convert::referral(r, true))
    }

    /// The shared path of the five triage decisions.
    async fn decide(
        &self,
        caller: &Caller,
        verb: Verb,
        name: &str,
        request_id: &str,
        hash: Vec<u8>,
        details: impl FnOnce(&mut Violations) -> (String, Option<domain::DeclineReason>, String),
    ) -> Result<pb::Referral> {
        let mut v = Violations::new();
        let id = validate::resource_id(&mut v, "name", name, "referrals");
        let request_id = validate::request_id(&mut v, request_id);
        let (reason, decline_reason, destination) = details(&mut v);
        v.into_result(())?;

        let method = verb_method(verb);
        let (tx, mut r) = match self
            .begin(caller, method, name, id, request_id, &hash)
            .await?
        {
            Mutation::Replay(r) => return Ok(*r),
            Mutation::Go { tx, referral } => (tx, referral),
        };
        let allowed = match verb {
            Verb::Withdraw => access::can_act_for_family(caller, parties(&r)),
            _ => access::is_area_triage(caller, parties(&r)),
        };
        if !allowed {
            return Err(Error::Denied(
                "ROLE_REQUIRED",
                match verb {
                    Verb::Withdraw => "withdrawing needs the receiving area's triage role or the referring organisation's referrer role",
                    _ => "triage decisions need the receiving area's triage role",
                }
                .into(),
            ));
        }
        let outcome = r.check_decision(verb)?;
        r.decide(Decision {
            outcome,
            by_org: caller.organisation.clone(),
            by: caller.subject.clone(),
            at: now(),
            reason,
            decline_reason,
            destination,
        });
        let out = self.commit(tx, &r, &[events::decided(&r)]).await?;
        tracing::info!(referral_id = %r.id, state = domain::state_word(r.state), "referral decided");
        Ok(out)
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

impl ReferralsApi {
    /// The path every triage decision RPC takes.
    async fn decision<R: DecisionRequest>(&self, req: Request<R>) -> Result<pb::Referral, Status> {
        let caller = caller_of(&req)?;
        let (req, request_id, hash) = split(verb_method(R::VERB), req.into_inner(), R::request_id);
        let r = self
            .decide(&caller, R::VERB, req.name(), &request_id, hash, |v| {
                req.details(v)
            })
            .await?;
        Ok(r)
    }
}

fn caller_of<T>(req: &Request<T>) -> Result<Caller, Status> {
    Caller::of(req).map_err(|e| e.into_status(DOMAIN))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PageToken {
    /// received_at of the last row, microseconds since the epoch.
    t: i64,
    id: Uuid,
    /// The filter the token was issued for.
    f: String,
}

fn filter_digest(filter: &str) -> String {
    let d = Sha256::digest(filter.as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_token(at: DateTime<Utc>, id: Uuid, filter: &str) -> String {
    let t = PageToken {
        t: at.timestamp_micros(),
        id,
        f: filter_digest(filter),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&t).unwrap_or_default())
}

fn decode_token(raw: &str, filter: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, Violations> {
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = || Violations::single("page_token", "is not a token this service issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let t: PageToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if t.f != filter_digest(filter) {
        return Err(Violations::single(
            "page_token",
            "was issued for a different filter",
        ));
    }
    let at = DateTime::from_timestamp_micros(t.t).ok_or_else(bad)?;
    Ok(Some((at, t.id)))
}

#[tonic::async_trait]
impl ReferralsService for ReferralsApi {
    async fn create_referral(
        &self,
        req: Request<pb::CreateReferralRequest>,
    ) -> Result<Response<pb::CreateReferralResponse>, Status> {
        let caller = caller_of(&req)?;
        let req = req.into_inner();
        Ok(Response::new(pb::CreateReferralResponse {
            referral: Some(self.create(&caller, req).await?),
        }))
    }

    async fn get_referral(
        &self,
        req: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::GetReferralResponse>, Status> {
        let caller = caller_of(&req)?;
        let name = req.into_inner().name;
        let mut v = Violations::new();
        let id = validate::resource_id(&mut v, "name", &name, "referrals");
        v.into_result(()).map_err(Error::from)?;
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let r = store::load_one(&mut conn, id, false)
            .await
            .map_err(Error::from)?
            .filter(|r| access::can_see(&caller, parties(r)))
            .ok_or(Error::NotFound(name))?;
        Ok(Response::new(pb::GetReferralResponse {
            referral: Some(convert::referral(&r, true)),
        }))
    }

    async fn list_referrals(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        let caller = caller_of(&req)?;
        let req = req.into_inner();
        if !caller.has_any(&access::READER_ROLES) {
            return Err(Error::Denied(
                "ROLE_REQUIRED",
                "listing referrals needs a practitioner-facing role".into(),
            )
            .into());
        }
        let mut v = Violations::new();
        let size = match i64::from(req.page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => {
                v.add("page_size", "must not be negative");
                DEFAULT_PAGE_SIZE
            }
            n => n.min(MAX_PAGE_SIZE),
        };
        let f = filter::parse(&req.filter).unwrap_or_else(|why| {
            v.add("filter", why);
            filter::ListFilter::default()
        });
        let after = decode_token(&req.page_token, &req.filter).unwrap_or_else(|e| {
            for (field, d) in e.iter() {
                v.add(field, d);
            }
            None
        });
        v.into_result(()).map_err(Error::from)?;

        let scope = store::ListScope {
            org: &caller.organisation,
            own_referrals: true,
            area_triage: caller.has(Role::Triage),
        };
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let mut ids = store::list_ids(&mut conn, &scope, &f, after, size + 1)
            .await
            .map_err(Error::from)?;
        let next_page_token = if ids.len() as i64 > size {
            ids.truncate(size as usize);
            ids.last()
                .map(|(id, at)| encode_token(*at, *id, &req.filter))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let only_ids: Vec<Uuid> = ids.iter().map(|(id, _)| *id).collect();
        let referrals = store::load(&mut conn, &only_ids, false)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListReferralsResponse {
            referrals: referrals
                .iter()
                .map(|r| convert::referral(r, true))
                .collect(),
            next_page_token,
        }))
    }

    async fn accept_referral(
        &self,
        req: Request<pb::AcceptReferralRequest>,
    ) -> Result<Response<pb::AcceptReferralResponse>, Status> {
        let referral = Some(self.decision(req).await?);
        Ok(Response::new(pb::AcceptReferralResponse { referral }))
    }

    async fn signpost_referral(
        &self,
        req: Request<pb::SignpostReferralRequest>,
    ) -> Result<Response<pb::SignpostReferralResponse>, Status> {
        let referral = Some(self.decision(req).await?);
        Ok(Response::new(pb::SignpostReferralResponse { referral }))
    }

    async fn redirect_referral(
        &self,
        req: Request<pb::RedirectReferralRequest>,
    ) -> Result<Response<pb::RedirectReferralResponse>, Status> {
        let referral = Some(self.decision(req).await?);
        Ok(Response::new(pb::RedirectReferralResponse { referral }))
    }

    async fn decline_referral(
        &self,
        req: Request<pb::DeclineReferralRequest>,
    ) -> Result<Response<pb::DeclineReferralResponse>, Status> {
        let referral = Some(self.decision(req).await?);
        Ok(Response::new(pb::DeclineReferralResponse { referral }))
    }

    async fn withdraw_referral(
        &self,
        req: Request<pb::WithdrawReferralRequest>,
    ) -> Result<Response<pb::WithdrawReferralResponse>, Status> {
        let referral = Some(self.decision(req).await?);
        Ok(Response::new(pb::WithdrawReferralResponse { referral }))
    }

    async fn record_contact(
        &self,
        req: Request<pb::RecordContactRequest>,
    ) -> Result<Response<pb::RecordContactResponse>, Status> {
        let caller = caller_of(&req)?;
        let (req, request_id, hash) =
            split("RecordContact", req.into_inner(), |r| &mut r.request_id);
        let mut v = Violations::new();
        let id = validate::resource_id(&mut v, "name", &req.name, "referrals");
        let request_id = validate::request_id(&mut v, &request_id);
        if req.contact.is_none() {
            v.add("contact", "is required");
        }
        v.into_result(()).map_err(Error::from)?;

        let (tx, mut r) = match self
            .begin(&caller, "RecordContact", &req.name, id, request_id, &hash)
            .await?
        {
            Mutation::Replay(r) => {
                return Ok(Response::new(pb::RecordContactResponse {
                    referral: Some(*r),
                }));
            }
            Mutation::Go { tx, referral } => (tx, referral),
        };
        if !access::is_area_triage(&caller, parties(&r)) {
            return Err(Error::Denied(
                "ROLE_REQUIRED",
                "recording contact needs the receiving area's triage role".into(),
            )
            .into());
        }
        r.check_open().map_err(Error::from)?;
        let now = now();
        let mut v = Violations::new();
        let contact = validate::contact(
            &mut v,
            "contact",
            req.contact.as_ref().expect("checked above"),
            r.received_at,
            now,
            &caller.subject,
        );
        v.into_result(()).map_err(Error::from)?;
        let first = r.add_contact(contact.clone(), now);
        let mut tx = tx;
        store::insert_contact(&mut tx, r.id, &contact)
            .await
            .map_err(Error::from)?;
        let out = self
            .commit(
                tx,
                &r,
                &[events::contact_recorded(&r, &contact, first, now)],
            )
            .await?;
        Ok(Response::new(pb::RecordContactResponse {
            referral: Some(out),
        }))
    }

    async fn record_consent(
        &self,
        req: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::RecordConsentResponse>, Status> {
        let caller = caller_of(&req)?;
        let (req, request_id, hash) =
            split("RecordConsent", req.into_inner(), |r| &mut r.request_id);
        let now = now();
        let mut v = Violations::new();
        let id = validate::resource_id(&mut v, "name", &req.name, "referrals");
        let request_id = validate::request_id(&mut v, &request_id);
        let consent = match &req.consent {
            None => {
                v.add("consent", "is required");
                None
            }
            Some(c) => Some(validate::consent(&mut v, "consent", c, now)),
        };
        v.into_result(()).map_err(Error::from)?;
        let consent = consent.expect("checked above");

        let (mut tx, mut r) = match self
            .begin(&caller, "RecordConsent", &req.name, id, request_id, &hash)
            .await?
        {
            Mutation::Replay(r) => {
                return Ok(Response::new(pb::RecordConsentResponse {
                    referral: Some(*r),
                }));
            }
            Mutation::Go { tx, referral } => (tx, referral),
        };
        if !access::can_act_for_family(&caller, parties(&r)) {
            return Err(Error::Denied(
                "ROLE_REQUIRED",
                "recording consent needs the receiving area's triage role or the referring organisation's referrer role".into(),
            )
            .into());
        }
        r.check_open().map_err(Error::from)?;
        store::insert_consent(&mut tx, r.id, &consent)
            .await
            .map_err(Error::from)?;
        r.consents.push(consent.clone());
        r.updated_at = now;
        let out = self
            .commit(tx, &r, &[events::consent_recorded(&r, &consent, now)])
            .await?;
        Ok(Response::new(pb::RecordConsentResponse {
            referral: Some(out),
        }))
    }

    async fn withdraw_consent(
        &self,
        req: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::WithdrawConsentResponse>, Status> {
        let caller = caller_of(&req)?;
        let (req, request_id, hash) =
            split("WithdrawConsent", req.into_inner(), |r| &mut r.request_id);
        let now = now();
        let mut v = Violations::new();
        let (referral_id, consent_id) = validate::consent_name(&mut v, "name", &req.name);
        let request_id = validate::request_id(&mut v, &request_id);
        let reason = validate::reason(&mut v, "reason", &req.reason, false);
        let requested = req
            .withdraw_time
            .as_ref()
            .and_then(|ts| validate::timestamp(&mut v, "withdraw_time", ts));
        if requested.is_some_and(|t| t > now + chrono::Duration::minutes(5)) {
            v.add("withdraw_time", "must not be in the future");
        }
        v.into_result(()).map_err(Error::from)?;

        let referral_name = convert::referral_name(referral_id);
        let (mut tx, mut r) = match self
            .begin(
                &caller,
                "WithdrawConsent",
                &referral_name,
                referral_id,
                request_id,
                &hash,
            )
            .await?
        {
            Mutation::Replay(r) => {
                return Ok(Response::new(pb::WithdrawConsentResponse {
                    referral: Some(*r),
                }));
            }
            Mutation::Go { tx, referral } => (tx, referral),
        };
        if !access::can_act_for_family(&caller, parties(&r)) {
            return Err(Error::Denied(
                "ROLE_REQUIRED",
                "withdrawing consent needs the receiving area's triage role or the referring organisation's referrer role".into(),
            )
            .into());
        }
        let at = match r.consents.iter().find(|c| c.id == consent_id) {
            Some(c) => {
                let mut v = Violations::new();
                let at = validate::withdraw_time(&mut v, requested, c.given_at, now);
                v.into_result(at).map_err(Error::from)?
            }
            // Not this referral's consent: NOT_FOUND below.
            None => now,
        };
        let withdrawn = r
            .withdraw_consent(consent_id, at, &reason, now)
            .map_err(Error::from)?
            .cloned()
            .ok_or_else(|| Error::NotFound(req.name.clone()))?;
        store::withdraw_consent(&mut tx, &withdrawn)
            .await
            .map_err(Error::from)?;
        let out = self
            .commit(tx, &r, &[events::consent_withdrawn(&r, &withdrawn, now)])
            .await?;
        Ok(Response::new(pb::WithdrawConsentResponse {
            referral: Some(out),
        }))
    }

    async fn get_family(
        &self,
        req: Request<pb::GetFamilyRequest>,
    ) -> Result<Response<pb::GetFamilyResponse>, Status> {
        let caller = caller_of(&req)?;
        let name = req.into_inner().name;
        let mut v = Violations::new();
        let id = validate::resource_id(&mut v, "name", &name, "families");
        v.into_result(()).map_err(Error::from)?;
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let not_found = || Status::from(Error::NotFound(name.clone()));
        let (area, created) = store::load_family(&mut conn, id)
            .await
            .map_err(Error::from)?
            .ok_or_else(not_found)?;
        // A caller sees the family through the referrals they may see, and only the
        // members named on those.
        let visible: Vec<Uuid> = store::family_referrals(&mut conn, id)
            .await
            .map_err(Error::from)?
            .into_iter()
            .filter(|(_, org, area)| {
                access::can_see(
                    &caller,
                    Parties {
                        referring_org: org,
                        receiving_area: area,
                    },
                )
            })
            .map(|(rid, _, _)| rid)
            .collect();
        if visible.is_empty() {
            return Err(not_found());
        }
        let (children, adults) = store::members_of(&mut conn, &visible)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::GetFamilyResponse {
            family: Some(pb::Family {
                name: convert::family_name(id),
                receiving_area: area,
                children: children.iter().map(|c| convert::child(id, c)).collect(),
                adults: adults.iter().map(|a| convert::adult(id, a)).collect(),
                referrals: visible.iter().map(|r| convert::referral_name(*r)).collect(),
                create_time: Some(convert::ts(created)),
            }),
        }))
    }
}

impl ReferralsApi {
    async fn create(
        &self,
        caller: &Caller,
        req: pb::CreateReferralRequest,
    ) -> Result<pb::Referral> {
        if !access::can_refer(caller) {
            return Err(Error::Denied(
                "ROLE_REQUIRED",
                "creating a referral needs the referrer or triage role".into(),
            ));
        }
        let now = now();
        let mut v = Violations::new();
        let request_id = validate::request_id(&mut v, &req.request_id);
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
        let hash = {
            let mut body = req;
            body.request_id.clear();
            request_hash("CreateReferral", &body)
        };

        // Written with whatever other creates are waiting (intake.rs), linking the
        // family where a child is already known.
        let outcome = self
            .intake
            .submit(Create {
                org: caller.organisation.clone(),
                request_id,
                hash,
                referral: r,
                span: tracing::Span::current(),
            })
            .await?;
        let r = match outcome {
            Outcome::Created(r) => r,
            Outcome::Conflict => return Err(Error::RequestIdReused),
            Outcome::Replay(id) => {
                let mut conn = self.pool.acquire().await?;
                let existing = store::load_one(&mut conn, id, false)
                    .await?
                    .ok_or_else(|| Error::NotFound(convert::referral_name(id)))?;
                return Ok(convert::referral(&existing, true));
            }
        };
        tracing::info!(referral_id = %r.id, linked = r.linked_existing, "referral received");
        Ok(convert::referral(&r, true))
    }
}
