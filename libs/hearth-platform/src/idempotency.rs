//! Idempotent mutations (AIP-155). Every mutation carries a `request_id` chosen by the
//! caller; the kit claims `(caller organisation, request_id)` inside the mutation's
//! own transaction, with the call's method and a digest of the request:
//!
//! - first use: the call goes on, and its claim commits (or rolls back) with it;
//! - the same call again (same method and digest): it was done before, and the
//!   handler answers with the resource *as it is now*, read afresh with the caller's
//!   access checked again. The claim stores the resource's name, never the request
//!   or the response, so no personal data is kept twice;
//! - the same id for a different call: refused, `INVALID_ARGUMENT` with reason
//!   `REQUEST_ID_REUSED` on `request_id`.
//!
//! Two calls claiming one id at once are serialised by the primary key: the second
//! waits for the first to commit and then sees a replay (or goes on, if the first
//! rolled back).
//!
//! The digest is SHA-256 over the method and the request's protobuf encoding without
//! its `request_id`. prost encodes fields in number order and `hearth-proto` generates
//! maps as ordered maps, so the encoding of a request depends only on its content: an
//! identical retry hashes the same however the caller's library ordered its fields or
//! maps (fields this version does not know are not part of it).
//!
//! Claims live in `{schema}.request_claims`, created by [`crate::db::migrate`] beside
//! the outbox, with the one SQL function that claims (`{schema}.claim_requests`, for
//! one call or many). They are kept for `HEARTH_REQUEST_ID_RETENTION_HOURS` (a week by
//! default, never less than a day), then [`purge`]d: a retry after that is a new call.

use std::time::Duration;

use prost::Message;
use sha2::{Digest as _, Sha256};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row as _, Transaction};
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::check_schema_name;
use crate::error::{ApiError, Violations};

/// One mutation's claim: who, with which id, for which call and request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub organisation: String,
    pub request_id: Uuid,
    /// The RPC, e.g. `RecordContact`.
    pub method: &'static str,
    /// SHA-256 of the method and the request without its id.
    pub hash: Vec<u8>,
}

impl RequestKey {
    /// Takes the request id out of `req` (checking it is a UUID, else a violation on
    /// `request_id`) and digests the rest.
    pub fn take<T: Message>(
        v: &mut Violations,
        caller: &Caller,
        method: &'static str,
        req: &mut T,
        request_id: fn(&mut T) -> &mut String,
    ) -> RequestKey {
        let raw = std::mem::take(request_id(req));
        RequestKey {
            organisation: caller.organisation.clone(),
            request_id: crate::validate::request_id(v, &raw),
            method,
            hash: request_hash(method, req),
        }
    }
}

/// The digest a claim stores: SHA-256 of `method`, a zero byte and `msg`'s encoding.
/// `msg` must not hold its request id.
pub fn request_hash(method: &str, msg: &impl Message) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(msg.encode_to_vec());
    h.finalize().to_vec()
}

/// How a request id relates to earlier calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: go on.
    New,
    /// The same call was made before; this is the resource it made or changed.
    Replay(String),
    /// The id was used for a different call.
    Conflict,
}

impl Claim {
    /// Reads one row of `{schema}.claim_requests` for `key`: columns `fresh`,
    /// `method`, `request_hash`, `resource`. For services that claim inside a function
    /// of their own (referrals' group-committed creates).
    pub fn from_row(row: &PgRow, key: &RequestKey) -> Result<Claim, sqlx::Error> {
        if row.try_get::<bool, _>("fresh")? {
            return Ok(Claim::New);
        }
        let method: Option<String> = row.try_get("method")?;
        let hash: Option<Vec<u8>> = row.try_get("request_hash")?;
        let resource: Option<String> = row.try_get("resource")?;
        match (method, hash, resource) {
            (Some(m), Some(h), Some(r)) if m == key.method && h == key.hash => Ok(Claim::Replay(r)),
            (Some(_), Some(_), Some(_)) => Ok(Claim::Conflict),
            // Claimed, then purged in between: rare enough to ask for a retry.
            _ => Err(sqlx::Error::Protocol(
                "a request claim disappeared while it was read; retry".into(),
            )),
        }
    }
}

/// The DDL of the claims table and the claiming function in `schema`.
pub fn schema_sql(schema: &str) -> Vec<String> {
    let s = check_schema_name(schema);
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {s}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.request_claims (
                organisation text NOT NULL,
                request_id   uuid NOT NULL,
                method       text NOT NULL,
                request_hash bytea NOT NULL,
                resource     text NOT NULL, -- the resource the call made or changed
                created_at   timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (organisation, request_id)
            )"
        ),
        // BRIN: claims arrive in time order, so a block range index finds the old ones
        // for the purge at almost no cost to each insert (a btree would add an index
        // insert to every mutation).
        format!(
            "CREATE INDEX IF NOT EXISTS request_claims_age ON {s}.request_claims USING brin (created_at)"
        ),
        // Claims each item (1-based `n`, in array order) in key order, so that two
        // transactions claiming the same ids cannot deadlock. `fresh` when claimed
        // now; else the earlier claim's method, digest and resource. A repeated key
        // within one call is fresh once.
        format!(
            "CREATE OR REPLACE FUNCTION {s}.claim_requests(
                 p_method text, p_org text[], p_request_id uuid[], p_hash bytea[], p_resource text[]
             ) RETURNS TABLE (n int, fresh boolean, method text, request_hash bytea, resource text)
             LANGUAGE plpgsql VOLATILE
             SET plan_cache_mode = force_generic_plan
             AS $fn$
             #variable_conflict use_column
             DECLARE
                 claimed int[];
             BEGIN
                 WITH items AS (
                     SELECT * FROM unnest(p_org, p_request_id, p_hash, p_resource)
                                   WITH ORDINALITY AS i(org, request_id, hash, resource, n)
                 ), ins AS (
                     INSERT INTO {s}.request_claims (organisation, request_id, method, request_hash, resource)
                     SELECT org, request_id, p_method, hash, resource FROM items ORDER BY org, request_id
                     ON CONFLICT DO NOTHING
                     RETURNING organisation, request_id
                 )
                 SELECT coalesce(array_agg(x.n), '{{}}') INTO claimed
                   FROM (SELECT DISTINCT ON (i.org, i.request_id) i.n::int AS n
                           FROM items i JOIN ins c ON c.organisation = i.org AND c.request_id = i.request_id
                          ORDER BY i.org, i.request_id, i.n) x;

                 RETURN QUERY
                 SELECT i.n::int, i.n = ANY (claimed), q.method, q.request_hash, q.resource
                   FROM unnest(p_org, p_request_id) WITH ORDINALITY AS i(org, request_id, n)
                   LEFT JOIN LATERAL (
                       SELECT r.method, r.request_hash, r.resource FROM {s}.request_claims r
                        WHERE r.organisation = i.org AND r.request_id = i.request_id
                          AND NOT (i.n = ANY (claimed))
                   ) q ON true
                  ORDER BY i.n;
             END
             $fn$"
        ),
    ]
}

/// A service's claims: its schema and pool.
#[derive(Debug, Clone)]
pub struct Requests {
    pool: PgPool,
    schema: &'static str,
    claim_sql: String,
}

/// A mutation's start.
#[derive(Debug)]
pub enum Begun {
    /// First use: make the change in this transaction (the claim is in it).
    Go(Transaction<'static, Postgres>),
    /// Done before: answer with this resource as it is now (check access again).
    Replay(String),
}

impl Requests {
    pub fn new(pool: PgPool, schema: &'static str) -> Requests {
        let s = check_schema_name(schema);
        Requests {
            pool,
            schema: s,
            claim_sql: format!(
                "SELECT n, fresh, method, request_hash, resource FROM {s}.claim_requests($1, $2, $3, $4, $5)"
            ),
        }
    }

    pub fn schema(&self) -> &'static str {
        self.schema
    }

    /// Opens the mutation's transaction and claims `key` in it for `resource` (the
    /// resource name the call makes or changes).
    pub async fn begin(&self, key: &RequestKey, resource: &str) -> Result<Begun, ApiError> {
        let mut tx = self.pool.begin().await?;
        match self.claim(&mut tx, key, resource).await? {
            Claim::New => Ok(Begun::Go(tx)),
            Claim::Replay(name) => {
                tx.rollback().await?;
                Ok(Begun::Replay(name))
            }
            Claim::Conflict => Err(ApiError::request_id_reused()),
        }
    }

    /// Claims `key` on `conn`, inside the caller's transaction.
    pub async fn claim(
        &self,
        conn: &mut PgConnection,
        key: &RequestKey,
        resource: &str,
    ) -> Result<Claim, sqlx::Error> {
        let row = sqlx::query(&self.claim_sql)
            .bind(key.method)
            .bind([key.organisation.as_str()])
            .bind([key.request_id])
            .bind([key.hash.as_slice()])
            .bind([resource])
            .fetch_one(&mut *conn)
            .await?;
        Claim::from_row(&row, key)
    }

    /// Forgets claims older than `keep`; see [`purge`].
    pub async fn purge(&self, keep: Duration) -> Result<u64, sqlx::Error> {
        purge(&self.pool, self.schema, keep).await
    }
}

/// Deletes claims older than `keep`, a batch at a time so that no long transaction
/// holds up the service. Returns how many went.
pub async fn purge(pool: &PgPool, schema: &str, keep: Duration) -> Result<u64, sqlx::Error> {
    let s = check_schema_name(schema);
    let sql = format!(
        "DELETE FROM {s}.request_claims WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM {s}.request_claims
              WHERE created_at < now() - make_interval(secs => $1) LIMIT 10000))"
    );
    let mut total = 0;
    loop {
        let n = sqlx::query(&sql)
            .bind(keep.as_secs_f64())
            .execute(pool)
            .await?
            .rows_affected();
        total += n;
        if n < 10_000 {
            return Ok(total);
        }
    }
}

/// Purges claims older than `keep` now and then every hour, until `stop`.
pub async fn purge_every_hour(
    requests: Requests,
    keep: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        match requests.purge(keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(forgotten = n, "request ids past their window purged"),
            Err(err) => tracing::warn!(error = %err, "purging old request ids failed; will retry"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_digest_ignores_the_request_id_and_map_order() {
        // A message with a map, filled in two orders, and the same id-less body.
        #[derive(Clone, PartialEq, prost::Message)]
        struct WithMap {
            #[prost(string, tag = "1")]
            request_id: String,
            #[prost(btree_map = "string, int32", tag = "2")]
            ratings: BTreeMap<String, i32>,
        }
        let mut a = WithMap {
            request_id: "11111111-1111-4111-8111-111111111111".into(),
            ratings: BTreeMap::new(),
        };
        let mut b = WithMap {
            request_id: "22222222-2222-4222-8222-222222222222".into(),
            ratings: BTreeMap::new(),
        };
        for (k, v) in [("warmth", 3), ("safety", 2), ("boundaries", 4)] {
            a.ratings.insert(k.into(), v);
        }
        for (k, v) in [("boundaries", 4), ("safety", 2), ("warmth", 3)] {
            b.ratings.insert(k.into(), v);
        }
        let caller = Caller {
            subject: "u".into(),
            organisation: "o".into(),
            roles: vec![],
        };
        let mut v = Violations::new();
        let ka = RequestKey::take(&mut v, &caller, "M", &mut a, |r| &mut r.request_id);
        let kb = RequestKey::take(&mut v, &caller, "M", &mut b, |r| &mut r.request_id);
        assert!(v.is_empty());
        assert_eq!(ka.hash, kb.hash);
        assert!(a.request_id.is_empty(), "the id is taken out");
        b.ratings.insert("safety".into(), 1);
        assert_ne!(request_hash("M", &a), request_hash("M", &b));
        assert_ne!(request_hash("M", &a), request_hash("N", &a));
    }
}
