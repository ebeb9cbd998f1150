//! `hearth.access.v1.AccessService`, which every service serves beside its own
//! contract: the data protection officer's questions of the audit log, and emergency
//! access (break-the-glass). The service says how to find a family's receiving area
//! ([`Directory`]); the kit does the rest.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hearth_proto::access as pb;
use hearth_proto::access::access_service_server::AccessService;
use sqlx::{PgConnection, PgPool, Row as _};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::access::{Basis, roles_for};
use crate::audit::{Auditor, Record, record_from_row};
use crate::auth::{Caller, Role};
use crate::error::{ApiError, Violations};
use crate::idempotency::{Begun, RequestKey, Requests};
use crate::page::{Page, PageQuery, Pager};
use crate::validate;

/// How a service finds the families whose records it holds.
pub trait Directory: Send + Sync + 'static {
    /// The receiving area of `family` (`families/{id}`), if this service holds its
    /// records.
    fn receiving_area<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        family: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<String>, sqlx::Error>> + Send + 'a>>;
}

/// The access service of one Hearth service.
#[derive(Clone)]
pub struct AccessApi {
    pub(crate) pool: PgPool,
    pub(crate) schema: &'static str,
    pub(crate) domain: &'static str,
    pub(crate) auditor: Auditor,
    pub(crate) requests: Requests,
    pub(crate) pager: Pager,
    pub(crate) directory: Arc<dyn Directory>,
    /// How long an emergency grant lasts.
    pub(crate) glass: Duration,
}

impl std::fmt::Debug for AccessApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessApi")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

const METHOD_PREFIX: &str = "/hearth.access.v1.AccessService/";

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Where a first page starts, newest first: 9999-12-31, within what Postgres and
/// chrono both hold.
const END_OF_TIME_MICROS: i64 = 253_402_214_400_000_000;

/// A period from a request's optional times (the beginning of time and now when
/// unset), each checked.
fn period(
    v: &mut Violations,
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = start
        .and_then(|t| validate::timestamp(v, "start_time", t))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let end = end
        .and_then(|t| validate::timestamp(v, "end_time", t))
        .unwrap_or_else(|| crate::clock::now() + chrono::Duration::seconds(1));
    if end <= start {
        v.add("end_time", "must be after start_time");
    }
    (start, end)
}

fn access_record(row: &sqlx::postgres::PgRow) -> pb::AccessRecord {
    let r = record_from_row(row);
    pb::AccessRecord {
        name: format!(
            "accessRecords/{}-{}",
            row.get::<i32, _>("chain"),
            row.get::<i64, _>("seq")
        ),
        time: Some(ts(r.at)),
        subject: r.subject,
        organisation: r.organisation,
        roles: r.roles,
        method: r.method,
        action: r.action as i32,
        outcome: r.outcome as i32,
        basis: r.basis as i32,
        resources: r.resources,
        families: r.families,
        trace_id: r.trace_id,
    }
}

/// What a refused call asked about, for its audit record: the resource name when it is
/// one of `collection`, else the collection (unchecked input stays out of the log).
fn asked_about(asked: &str, collection: &str) -> String {
    match asked.split_once('/') {
        Some((c, id)) if c == collection && Uuid::parse_str(id).is_ok() => asked.to_owned(),
        _ => collection.to_owned(),
    }
}

/// The position after a page of records, newest first: (time µs, chain, seq).
type Position = (i64, i32, i64);

fn position(row: &sqlx::postgres::PgRow) -> Position {
    (
        row.get::<DateTime<Utc>, _>("at").timestamp_micros(),
        row.get("chain"),
        row.get("seq"),
    )
}

impl AccessApi {
    fn caller<T>(&self, req: &Request<T>) -> Result<Caller> {
        Caller::of(req)
    }

    /// The data protection officer's questions need the `dpo` role; a refusal is
    /// recorded like any other.
    async fn dpo(&self, caller: &Caller, method: &str, asked: &str) -> Result<()> {
        if caller.has(Role::Dpo) {
            return Ok(());
        }
        self.refuse(caller, method, pb::AccessAction::Read, asked)
            .await?;
        Err(ApiError::denied(
            "ROLE_REQUIRED",
            "the audit log is for the data protection officer (role dpo)",
        ))
    }

    /// Runs a page query of the audit log and records the DPO's reading of it.
    async fn page_of_records(
        &self,
        caller: &Caller,
        query: &PageQuery<'_>,
        sql: &str,
        bind: impl FnOnce(
            sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
        )
            -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
        page: Page<Position>,
        about: Vec<String>,
    ) -> Result<(Vec<pb::AccessRecord>, String)> {
        let size = page.size;
        let after = page
            .after
            .unwrap_or((END_OF_TIME_MICROS, i32::MAX, i64::MAX));
        let q = sqlx::query(sql);
        let q = bind(q)
            .bind(
                DateTime::<Utc>::from_timestamp_micros(after.0)
                    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            )
            .bind(after.1)
            .bind(after.2)
            .bind(size + 1);
        let mut rows = q.fetch_all(&self.pool).await?;
        let next = if rows.len() as i64 > size {
            rows.truncate(size as usize);
            rows.last()
                .map(|r| self.pager.next_token(query, &position(r)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let records: Vec<pb::AccessRecord> = rows.iter().map(access_record).collect();
        // Recorded against the family asked about, if any: not against every family
        // the answer mentions, whose own logs would then list this question.
        self.auditor
            .record(
                Record::new(
                    caller,
                    &format!("{METHOD_PREFIX}{}", query.method),
                    pb::AccessAction::Read,
                    Basis::DataProtection,
                )
                .of(records.iter().map(|r| r.name.clone()).collect(), about),
            )
            .await?;
        Ok((records, next))
    }

    async fn list_family(
        &self,
        req: Request<pb::ListFamilyAccessRequest>,
    ) -> Result<pb::ListFamilyAccessResponse> {
        let caller = self.caller(&req)?;
        let asked = asked_about(&req.get_ref().family, "families");
        self.dpo(&caller, "ListFamilyAccess", &asked).await?;
        let req = req.into_inner();
        let mut v = Violations::new();
        validate::resource_id(&mut v, "family", &req.family, "families");
        let (start, end) = period(&mut v, req.start_time.as_ref(), req.end_time.as_ref());
        let query = PageQuery {
            method: "ListFamilyAccess",
            page_size: req.page_size,
            page_token: &req.page_token,
            // The request's own times: "now" when unset moves between pages, while
            // the position already keeps later records out.
            filter: &format!("{}|{:?}|{:?}", req.family, req.start_time, req.end_time),
            order_by: "",
        };
        let page = self.pager.page::<Position>(&mut v, &query);
        v.into_result(())?;
        let mut conn = self.pool.acquire().await?;
        let area = self
            .directory
            .receiving_area(&mut conn, &req.family)
            .await?;
        drop(conn);
        if area.as_deref() != Some(caller.organisation.as_str()) {
            self.refuse(
                &caller,
                "ListFamilyAccess",
                pb::AccessAction::Read,
                &asked_about(&req.family, "families"),
            )
            .await?;
            return Err(ApiError::not_found(req.family));
        }
        let s = self.schema;
        let sql = format!(
            "SELECT * FROM {s}.audit_log
              WHERE families @> ARRAY[$1] AND at >= $2 AND at < $3 AND (at, chain, seq) < ($4, $5, $6)
              ORDER BY at DESC, chain DESC, seq DESC LIMIT $7"
        );
        let family = req.family.clone();
        let (records, next_page_token) = self
            .page_of_records(
                &caller,
                &query,
                &sql,
                |q| q.bind(family).bind(start).bind(end),
                page,
                vec![req.family.clone()],
            )
            .await?;
        Ok(pb::ListFamilyAccessResponse {
            records,
            next_page_token,
        })
    }

    async fn list_caller(
        &self,
        req: Request<pb::ListCallerAccessRequest>,
    ) -> Result<pb::ListCallerAccessResponse> {
        let caller = self.caller(&req)?;
        self.dpo(&caller, "ListCallerAccess", "accessRecords")
            .await?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let org = validate::org_id(&mut v, "organisation", &req.organisation);
        let subject = validate::text(&mut v, "subject", &req.subject, false, 200);
        if req.start_time.is_none() {
            v.add("start_time", "is required");
        }
        let (start, end) = period(&mut v, req.start_time.as_ref(), req.end_time.as_ref());
        let query = PageQuery {
            method: "ListCallerAccess",
            page_size: req.page_size,
            page_token: &req.page_token,
            filter: &format!("{org}|{subject}|{:?}|{:?}", req.start_time, req.end_time),
            order_by: "",
        };
        let page = self.pager.page::<Position>(&mut v, &query);
        v.into_result(())?;
        if org != caller.organisation {
            self.refuse(
                &caller,
                "ListCallerAccess",
                pb::AccessAction::Read,
                "accessRecords",
            )
            .await?;
            return Err(ApiError::denied(
                "ROLE_REQUIRED",
                "a data protection officer asks about their own organisation's staff",
            ));
        }
        let s = self.schema;
        let sql = format!(
            "SELECT * FROM {s}.audit_log
              WHERE organisation = $1 AND ($2 = '' OR subject = $2) AND at >= $3 AND at < $4
                AND (at, chain, seq) < ($5, $6, $7)
              ORDER BY at DESC, chain DESC, seq DESC LIMIT $8"
        );
        let (records, next_page_token) = self
            .page_of_records(
                &caller,
                &query,
                &sql,
                |q| q.bind(org).bind(subject).bind(start).bind(end),
                page,
                Vec::new(),
            )
            .await?;
        Ok(pb::ListCallerAccessResponse {
            records,
            next_page_token,
        })
    }

    /// Records a refusal (fail closed: unrecorded, the call is UNAVAILABLE). `asked`
    /// is what the call was about, through [`asked_about`]; a question about a family
    /// is recorded against it, for its own log.
    async fn refuse(
        &self,
        caller: &Caller,
        method: &str,
        action: pb::AccessAction,
        asked: &str,
    ) -> Result<()> {
        let families = [asked]
            .into_iter()
            .filter(|a| a.starts_with("families/"))
            .map(str::to_owned)
            .collect();
        self.auditor
            .record(
                Record::new(
                    caller,
                    &format!("{METHOD_PREFIX}{method}"),
                    action,
                    Basis::None,
                )
                .of(vec![asked.to_owned()], families)
                .denied(),
            )
            .await
    }

    async fn break_glass_in(
        &self,
        req: Request<pb::BreakGlassRequest>,
    ) -> Result<pb::BreakGlassGrant> {
        let caller = self.caller(&req)?;
        let mut req = req.into_inner();
        if !caller.has_any(roles_for(Basis::BreakGlass)) {
            self.refuse(
                &caller,
                "BreakGlass",
                pb::AccessAction::Write,
                &asked_about(&req.family, "families"),
            )
            .await?;
            return Err(ApiError::denied(
                "ROLE_REQUIRED",
                "breaking the glass needs a working role (referrer, triage, practitioner or coordinator)",
            ));
        }
        let mut v = Violations::new();
        let key = RequestKey::take(&mut v, &caller, "BreakGlass", &mut req, |r| {
            &mut r.request_id
        });
        validate::resource_id(&mut v, "family", &req.family, "families");
        let reason = validate::text(&mut v, "reason", &req.reason, true, 2000);
        v.into_result(())?;
        let id = Uuid::now_v7();
        let name = format!("breakGlassGrants/{id}");
        let mut tx = match self.requests.begin(&key, &name).await? {
            Begun::Go(tx) => tx,
            Begun::Replay(name) => {
                // The same request again: the grant as made, read and recorded.
                let grant = self.grant(&caller, &name).await?;
                self.auditor
                    .record(
                        Record::new(
                            &caller,
                            &format!("{METHOD_PREFIX}BreakGlass"),
                            pb::AccessAction::Read,
                            Basis::BreakGlass,
                        )
                        .of(vec![name, grant.family.clone()], vec![grant.family.clone()]),
                    )
                    .await?;
                return Ok(grant);
            }
        };
        let Some(area) = self.directory.receiving_area(&mut tx, &req.family).await? else {
            drop(tx);
            self.refuse(
                &caller,
                "BreakGlass",
                pb::AccessAction::Write,
                &asked_about(&req.family, "families"),
            )
            .await?;
            return Err(ApiError::not_found(req.family));
        };
        let now = crate::clock::now();
        let expires = now
            + chrono::Duration::from_std(self.glass).unwrap_or_else(|_| chrono::Duration::hours(3));
        let s = self.schema;
        sqlx::query(&format!(
            "INSERT INTO {s}.break_glass (id, family, area, subject, organisation, roles, reason, granted_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(id)
        .bind(&req.family)
        .bind(&area)
        .bind(&caller.subject)
        .bind(&caller.organisation)
        .bind(caller.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
        .bind(&reason)
        .bind(now)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        self.auditor
            .record_in(
                &mut tx,
                &[Record::new(
                    &caller,
                    &format!("{METHOD_PREFIX}BreakGlass"),
                    pb::AccessAction::Write,
                    Basis::BreakGlass,
                )
                .of(
                    vec![name.clone(), req.family.clone()],
                    vec![req.family.clone()],
                )],
            )
            .await?;
        tx.commit().await?;
        tracing::warn!(grant = %name, organisation = %caller.organisation, "the glass was broken");
        self.grant(&caller, &name).await
    }

    /// A grant, as its maker or the DPO sees it.
    async fn grant(&self, caller: &Caller, name: &str) -> Result<pb::BreakGlassGrant> {
        let id = name
            .strip_prefix("breakGlassGrants/")
            .and_then(|i| Uuid::parse_str(i).ok())
            .ok_or_else(|| ApiError::not_found(name))?;
        let s = self.schema;
        let row = sqlx::query(&format!("SELECT * FROM {s}.break_glass WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .filter(|r| {
                r.get::<String, _>("subject") == caller.subject
                    && r.get::<String, _>("organisation") == caller.organisation
            })
            .ok_or_else(|| ApiError::not_found(name))?;
        Ok(grant_from_row(&row))
    }

    async fn list_grants(
        &self,
        req: Request<pb::ListBreakGlassGrantsRequest>,
    ) -> Result<pb::ListBreakGlassGrantsResponse> {
        let caller = self.caller(&req)?;
        self.dpo(&caller, "ListBreakGlassGrants", "breakGlassGrants")
            .await?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let (start, _) = period(&mut v, req.start_time.as_ref(), None);
        let query = PageQuery {
            method: "ListBreakGlassGrants",
            page_size: req.page_size,
            page_token: &req.page_token,
            filter: &format!("{start:?}"),
            order_by: "",
        };
        let page = self.pager.page::<(i64, Uuid)>(&mut v, &query);
        v.into_result(())?;
        let (t, id) = page.after.unwrap_or((END_OF_TIME_MICROS, Uuid::max()));
        let s = self.schema;
        let mut rows = sqlx::query(&format!(
            "SELECT * FROM {s}.break_glass
              WHERE (area = $1 OR organisation = $1) AND granted_at >= $2 AND (granted_at, id) < ($3, $4)
              ORDER BY granted_at DESC, id DESC LIMIT $5"
        ))
        .bind(&caller.organisation)
        .bind(start)
        .bind(DateTime::<Utc>::from_timestamp_micros(t).unwrap_or(DateTime::<Utc>::UNIX_EPOCH))
        .bind(id)
        .bind(page.size + 1)
        .fetch_all(&self.pool)
        .await?;
        let next_page_token = if rows.len() as i64 > page.size {
            rows.truncate(page.size as usize);
            rows.last()
                .map(|r| {
                    let at: DateTime<Utc> = r.get("granted_at");
                    self.pager
                        .next_token(&query, &(at.timestamp_micros(), r.get::<Uuid, _>("id")))
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        let grants: Vec<pb::BreakGlassGrant> = rows.iter().map(grant_from_row).collect();
        self.auditor
            .record(
                Record::new(
                    &caller,
                    &format!("{METHOD_PREFIX}ListBreakGlassGrants"),
                    pb::AccessAction::Read,
                    Basis::DataProtection,
                )
                .of(grants.iter().map(|g| g.name.clone()).collect(), Vec::new()),
            )
            .await?;
        Ok(pb::ListBreakGlassGrantsResponse {
            grants,
            next_page_token,
        })
    }
}

fn grant_from_row(row: &sqlx::postgres::PgRow) -> pb::BreakGlassGrant {
    pb::BreakGlassGrant {
        name: format!("breakGlassGrants/{}", row.get::<Uuid, _>("id")),
        family: row.get("family"),
        subject: row.get("subject"),
        organisation: row.get("organisation"),
        roles: row.get("roles"),
        reason: row.get("reason"),
        grant_time: Some(ts(row.get("granted_at"))),
        expire_time: Some(ts(row.get("expires_at"))),
    }
}

impl AccessApi {
    fn status(&self, e: ApiError) -> Status {
        e.into_status(self.domain)
    }
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn list_family_access(
        &self,
        req: Request<pb::ListFamilyAccessRequest>,
    ) -> std::result::Result<Response<pb::ListFamilyAccessResponse>, Status> {
        self.list_family(req)
            .await
            .map(Response::new)
            .map_err(|e| self.status(e))
    }

    async fn list_caller_access(
        &self,
        req: Request<pb::ListCallerAccessRequest>,
    ) -> std::result::Result<Response<pb::ListCallerAccessResponse>, Status> {
        self.list_caller(req)
            .await
            .map(Response::new)
            .map_err(|e| self.status(e))
    }

    async fn break_glass(
        &self,
        req: Request<pb::BreakGlassRequest>,
    ) -> std::result::Result<Response<pb::BreakGlassResponse>, Status> {
        self.break_glass_in(req)
            .await
            .map(|grant| Response::new(pb::BreakGlassResponse { grant: Some(grant) }))
            .map_err(|e| self.status(e))
    }

    async fn list_break_glass_grants(
        &self,
        req: Request<pb::ListBreakGlassGrantsRequest>,
    ) -> std::result::Result<Response<pb::ListBreakGlassGrantsResponse>, Status> {
        self.list_grants(req)
            .await
            .map(Response::new)
            .map_err(|e| self.status(e))
    }
}
