//! The Postgres pool and migrations. Each service owns one schema; its connections put
//! that schema first on the `search_path`, so its migrations table (`_sqlx_migrations`)
//! lives in its own schema too, and no service can trip over another's history.
//! Service SQL is still written schema-qualified.

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::Secret;

/// An enum stored by its name in the contract (`SOURCE_SCHOOL`), so SQL stays readable
/// and a renumbering cannot change stored meaning. Every Hearth enum is one.
pub trait DbEnum: Sized + Copy {
    fn to_db(self) -> &'static str;
    /// The value stored as `s`; the unspecified value for a name this build does not
    /// know (a row written by a newer version).
    fn from_db(s: &str) -> Self;
}

impl<E: hearth_proto::EnumName> DbEnum for E {
    fn to_db(self) -> &'static str {
        self.name()
    }
    fn from_db(s: &str) -> Self {
        E::from_name(s).unwrap_or_default()
    }
}

/// Names of enum values, for binding a list (`= ANY($1)`).
pub fn names<E: DbEnum>(values: &[E]) -> Vec<&'static str> {
    values.iter().map(|e| e.to_db()).collect()
}

/// Enum values from their stored names.
pub fn parse_all<E: DbEnum>(names: &[String]) -> Vec<E> {
    names.iter().map(|s| E::from_db(s)).collect()
}

/// A schema name that is safe to splice into SQL: lowercase letters, digits and `_`.
pub fn check_schema_name(schema: &str) -> &str {
    assert!(
        !schema.is_empty()
            && schema.len() <= 48
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !schema.starts_with(|c: char| c.is_ascii_digit()),
        "schema name {schema:?} must be a plain lowercase identifier"
    );
    schema
}

/// A pooled connection idle for longer than this is checked (one round trip) before it
/// is handed out; one in steady use is not. The same window as HikariCP's
/// `aliveBypassWindowMs`: short enough that after a database restart or failover an
/// idle service notices before its next call, long enough that a busy one never pays.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_millis(500);

/// The options every pool of ours uses. sqlx's default checks each connection with a
/// round trip every time it is taken from the pool: on a busy pool that is one more
/// wait on every transaction's path (and on the server's CPU), for connections used
/// milliseconds ago. Only connections that sat idle for a while are checked; one found
/// dead is closed and another taken.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| Box::pin(async move { Ok(usable(conn, meta.idle_for).await) }))
}

/// Whether a connection idle for `idle_for` may be used: yes if it was in use within
/// [`CHECK_IDLE_AFTER`], else if it answers a ping. For connections kept outside a pool.
pub async fn usable(conn: &mut sqlx::PgConnection, idle_for: Duration) -> bool {
    idle_for < CHECK_IDLE_AFTER || conn.ping().await.is_ok()
}

/// Connects a pool whose sessions use `schema` first, retrying for up to `patience` so
/// that a service started beside its database waits for it.
pub async fn connect(
    url: &Secret<String>,
    schema: &str,
    max_connections: u32,
    patience: Duration,
) -> Result<PgPool, sqlx::Error> {
    let schema = check_schema_name(schema);
    let options: PgConnectOptions = url
        .expose()
        .parse::<PgConnectOptions>()?
        .options([("search_path", format!("{schema},public"))])
        .application_name(schema);
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let attempt = pool_options(max_connections)
            .connect_with(options.clone())
            .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %err, "database not ready; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Creates the service's schema and the shared tables (outbox, inbox, dead letters,
/// request-id claims, audit log, relationships), then applies the service's own
/// migrations. Safe to run from several replicas at once:
/// the shared DDL runs under a transaction-scoped advisory lock, and sqlx locks its own
/// migration run.
pub async fn migrate(
    pool: &PgPool,
    schema: &str,
    migrator: &Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    let schema = check_schema_name(schema);
    let statements: Vec<String> = crate::outbox::schema_sql(schema)
        .into_iter()
        .chain(crate::inbox::schema_sql(schema))
        .chain(crate::idempotency::schema_sql(schema))
        .chain(crate::audit::schema_sql(schema))
        .chain(crate::access::schema_sql(schema))
        .collect();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("hearth.migrate.{schema}"))
        .execute(&mut *tx)
        .await?;
    for stmt in &statements {
        // `query`, not `raw_sql`: the latter's future is not provably `Send` inside a
        // spawned service future (a higher-ranked lifetime limit of the compiler).
        sqlx::query(stmt).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    // Through the pool: its connections put `schema` first on the search path, so the
    // migrations table is created there.
    migrator.run(pool).await
}

/// The role a connection URL logs in as.
pub fn role_of(url: &Secret<String>) -> Result<String, sqlx::Error> {
    let options: PgConnectOptions = url.expose().parse()?;
    Ok(options.get_username().to_owned())
}

/// Run by the schema's owner after migrating: lets `role` (the role the service serves
/// as) use the schema, read and write its tables, but only insert into and read the
/// audit log.
pub async fn grant_serving_role(
    pool: &PgPool,
    schema: &str,
    role: &str,
) -> Result<(), sqlx::Error> {
    let s = check_schema_name(schema);
    let role = format!("\"{}\"", role.replace('"', "\"\""));
    let mut tx = pool.begin().await?;
    for stmt in [
        format!("GRANT USAGE ON SCHEMA {s} TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {role}"),
        format!("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {role}"),
        format!("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO {role}"),
        format!("REVOKE UPDATE, DELETE, TRUNCATE ON {s}.audit_log FROM {role}"),
        // An emergency grant is kept as made: its expiry decides access.
        format!("REVOKE UPDATE, DELETE, TRUNCATE ON {s}.break_glass FROM {role}"),
        format!("REVOKE ALL ON {s}._sqlx_migrations FROM {role}"),
    ] {
        sqlx::query(&stmt).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Refuses to serve as a role that may change the audit log (a superuser, or the
/// schema's owner): the log is append-only because the service cannot do otherwise.
pub async fn check_serving_role(pool: &PgPool, schema: &str) -> Result<(), String> {
    let s = check_schema_name(schema);
    let table = format!("{s}.audit_log");
    let (role, can_change): (String, bool) = sqlx::query_as(
        "SELECT current_user::text,
                has_table_privilege(current_user, $1, 'UPDATE')
             OR has_table_privilege(current_user, $1, 'DELETE')
             OR has_table_privilege(current_user, $1, 'TRUNCATE')
             OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
    )
    .bind(&table)
    .fetch_one(pool)
    .await
    .map_err(|e| format!("cannot check the serving role: {e}"))?;
    if can_change {
        return Err(format!(
            "HEARTH_DATABASE_URL: role {role:?} may change the audit log {table}; serve as a role that may only \
             insert into and read it, and migrate with HEARTH_DATABASE_OWNER_URL (docs/ARCHITECTURE.md, \"Database roles\")"
        ));
    }
    Ok(())
}
