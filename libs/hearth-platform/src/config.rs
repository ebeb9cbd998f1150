//! Typed configuration from `HEARTH_*` environment variables, read and validated once
//! at start. Every error names the variable, so a bad deployment fails fast and says
//! what to fix. Secrets are wrapped in [`Secret`] so they never reach a log.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A configuration variable that is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The wrapped value. Call only where it is used, never to log.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Reads variables from a source (the process environment, or a map in tests).
pub struct Env<F: Fn(&str) -> Option<String>> {
    get: F,
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Env {
            get: |k| std::env::var(k).ok(),
        }
    }
}

/// Settings given as name-value pairs (tests, and tools that configure a service in
/// process).
pub fn env_of(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String> + use<>> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Env::from_fn(move |k| map.get(k).cloned())
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn from_fn(get: F) -> Self {
        Env { get }
    }

    fn raw(&self, var: &str) -> Option<String> {
        (self.get)(var).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.raw(var).ok_or_else(|| ConfigError {
            var: var.into(),
            problem: "is required but not set".into(),
        })
    }

    pub fn optional(&self, var: &str) -> Option<String> {
        self.raw(var)
    }

    pub fn or(&self, var: &str, default: &str) -> String {
        self.raw(var).unwrap_or_else(|| default.to_owned())
    }

    /// Parses the variable if set, else returns `default`.
    pub fn parse_or<T: FromStr>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.raw(var) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError {
                var: var.into(),
                problem: format!("cannot parse {v:?}: {e}"),
            }),
        }
    }

    /// A duration given in milliseconds.
    pub fn millis_or(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parse_or(var, default.as_millis() as u64)?;
        Ok(Duration::from_millis(ms))
    }

    /// A whole number in `min..=max`.
    pub fn bounded_or(
        &self,
        var: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let n: u64 = self.parse_or(var, default)?;
        if n < min || n > max {
            return Err(ConfigError {
                var: var.into(),
                problem: format!("must be between {min} and {max}, got {n}"),
            });
        }
        Ok(n)
    }
}

/// What every Hearth gRPC service needs to run. A service's own settings are a
/// separate section it declares ([`Settings`]); [`load`] reads both.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `HEARTH_GRPC_ADDR`: where to listen.
    pub grpc_addr: SocketAddr,
    /// `HEARTH_DATABASE_URL` (required): the role the service serves as, which may
    /// only insert into and read its audit log.
    pub database_url: Secret<String>,
    /// `HEARTH_DATABASE_OWNER_URL`: the schema's owner, for migrations. When set,
    /// `serve` migrates with it first (and grants the serving role what it needs);
    /// when unset, migrations are left to `migrate`.
    pub database_owner_url: Option<Secret<String>>,
    /// `HEARTH_DATABASE_MAX_CONNECTIONS` (default 16).
    pub database_max_connections: u32,
    /// `HEARTH_NATS_URL` (default `nats://127.0.0.1:4222`). May carry a user and
    /// password (`nats://user:password@host:port`), so it is kept secret.
    pub nats_url: Secret<String>,
    /// `HEARTH_AUTH_*`: how bearer tokens are verified.
    pub auth: AuthConfig,
    /// `HEARTH_REQUEST_TIMEOUT_MS` (default 10000).
    pub request_timeout: Duration,
    /// `HEARTH_MAX_CONCURRENT_REQUESTS` (default 256): beyond this, calls are shed with
    /// RESOURCE_EXHAUSTED rather than queued.
    pub max_concurrent_requests: usize,
    /// `HEARTH_MAX_MESSAGE_BYTES` (default 4 MiB), both directions, every service.
    pub max_message_bytes: usize,
    /// `HEARTH_SHUTDOWN_DRAIN_MS` (default 0): how long to report NOT_SERVING before
    /// refusing new calls, so load balancers stop routing first.
    pub shutdown_drain: Duration,
    /// `HEARTH_RELAY_BATCH_SIZE` (default 256).
    pub relay_batch_size: i64,
    /// `HEARTH_RELAY_POLL_MS` (default 1000): the safety-net poll when no NOTIFY arrives.
    pub relay_poll: Duration,
    /// `HEARTH_PAGE_TOKEN_SECRET` (required, at least 32 characters): the HMAC key
    /// page tokens are signed with. Every replica of a service needs the same one.
    pub page_token_secret: Secret<Vec<u8>>,
    /// `HEARTH_REQUEST_ID_RETENTION_HOURS` (default 168, at least 24): how long a
    /// request id is remembered; a retry after that is a new call.
    pub request_id_retention: Duration,
    /// `HEARTH_AUDIT_SEAL_KEY` (required, at least 32 characters): the HMAC key that
    /// seals the audit log. Kept out of the database, so that a chain recomputed after
    /// an edit is caught; every replica needs the same one.
    pub audit_seal_key: Secret<Vec<u8>>,
    /// `HEARTH_BREAK_GLASS_MINUTES` (default 180, 5 to 1440): how long an emergency
    /// grant lasts.
    pub break_glass: Duration,
    /// How the service logs and traces.
    pub telemetry: TelemetryConfig,
    /// `HEARTH_TLS_CERT`, `HEARTH_TLS_KEY`, `HEARTH_TLS_CLIENT_CA`: mutual TLS, on when
    /// all three are set (see [`crate::tls`]).
    pub tls: Option<crate::tls::TlsConfig>,
    /// `HEARTH_HEALTH_ADDR`: a plaintext port serving only health; required with mTLS.
    pub health_addr: Option<SocketAddr>,
}

/// Request ids are kept a week unless configured otherwise (our default; at least a
/// day, so that a partner system's overnight retry is still recognised).
pub const DEFAULT_REQUEST_ID_RETENTION_HOURS: u64 = 7 * 24;

/// An emergency grant lasts three hours unless configured otherwise (our default:
/// a working shift's emergency, then the DPO's review).
pub const DEFAULT_BREAK_GLASS_MINUTES: u64 = 180;

/// Logs and traces, read with the rest of the configuration so that telemetry starts
/// with settings already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `HEARTH_LOG_FORMAT`: `text` (default) or `json`.
    pub json_logs: bool,
    /// `RUST_LOG`: which logs to keep (default: info, with chatty crates at warn).
    pub log_filter: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: where spans go (OTLP over gRPC); none if unset.
    pub otlp_endpoint: Option<String>,
}

/// The log filter when `RUST_LOG` is not set.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,async_nats=warn,h2=warn,tower=warn,hyper=warn";

impl TelemetryConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let json_logs = match env.or("HEARTH_LOG_FORMAT", "text").as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError {
                    var: "HEARTH_LOG_FORMAT".into(),
                    problem: format!("must be text or json, got {other:?}"),
                });
            }
        };
        let log_filter = env.or("RUST_LOG", DEFAULT_LOG_FILTER);
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            return Err(ConfigError {
                var: "RUST_LOG".into(),
                problem: format!("is not a log filter: {e}"),
            });
        }
        let otlp_endpoint = env.optional("OTEL_EXPORTER_OTLP_ENDPOINT");
        if let Some(e) = &otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(ConfigError {
                var: "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                problem: "must be an http:// or https:// URL".into(),
            });
        }
        Ok(TelemetryConfig {
            json_logs,
            log_filter,
            otlp_endpoint,
        })
    }
}

/// A service's own configuration section: the settings only it has (referrals' writer
/// count, say), read and checked with the shared ones. `()` for a service with none.
pub trait Settings: Sized + fmt::Debug + Send + Sync + 'static {
    fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError>;
}

impl Settings for () {
    fn from_env<F: Fn(&str) -> Option<String>>(_: &Env<F>) -> Result<Self, ConfigError> {
        Ok(())
    }
}

/// Reads the shared configuration and the service's own section. `default_port` is
/// the service's own default gRPC port.
pub fn load<S: Settings, F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    default_port: u16,
) -> Result<(ServiceConfig, S), ConfigError> {
    Ok((
        ServiceConfig::from_env(env, default_port)?,
        S::from_env(env)?,
    ))
}

/// Bearer-token verification settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `HEARTH_AUTH_ISSUER` (required): the `iss` every token must carry.
    pub issuer: String,
    /// `HEARTH_AUTH_AUDIENCE` (required): the `aud` every token must carry.
    pub audience: String,
    /// `HEARTH_AUTH_PUBLIC_KEYS` (required): comma-separated paths to Ed25519 public keys
    /// in PEM. A key's id (`kid`) is its file name without extension.
    pub public_key_files: Vec<PathBuf>,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A secret of at least `min_len` bytes (required).
    pub fn secret(&self, var: &str, min_len: usize) -> Result<Secret<Vec<u8>>, ConfigError> {
        let value = self.required(var)?;
        if value.len() < min_len {
            return Err(ConfigError {
                var: var.into(),
                problem: format!("must be at least {min_len} characters (a random secret)"),
            });
        }
        Ok(Secret::new(value.into_bytes()))
    }
}

impl ServiceConfig {
    /// Reads the shared configuration; `default_port` is the service's own default
    /// gRPC port.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        default_port: u16,
    ) -> Result<Self, ConfigError> {
        let grpc_addr = env.parse_or(
            "HEARTH_GRPC_ADDR",
            SocketAddr::from(([0, 0, 0, 0], default_port)),
        )?;
        let database_url = env.required("HEARTH_DATABASE_URL")?;
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(ConfigError {
                var: "HEARTH_DATABASE_URL".into(),
                problem: "must be a postgres:// URL".into(),
            });
        }
        let database_owner_url = env.optional("HEARTH_DATABASE_OWNER_URL");
        if let Some(u) = &database_owner_url
            && !u.starts_with("postgres://")
            && !u.starts_with("postgresql://")
        {
            return Err(ConfigError {
                var: "HEARTH_DATABASE_OWNER_URL".into(),
                problem: "must be a postgres:// URL".into(),
            });
        }
        let nats_url = env.or("HEARTH_NATS_URL", "nats://127.0.0.1:4222");
        if !nats_url.starts_with("nats://") && !nats_url.starts_with("tls://") {
            return Err(ConfigError {
                var: "HEARTH_NATS_URL".into(),
                problem: "must be a nats:// or tls:// URL".into(),
            });
        }
        let auth = AuthConfig {
            issuer: env.required("HEARTH_AUTH_ISSUER")?,
            audience: env.required("HEARTH_AUTH_AUDIENCE")?,
            public_key_files: env
                .required("HEARTH_AUTH_PUBLIC_KEYS")?
                .split(',')
                .map(|s| PathBuf::from(s.trim()))
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
        };
        let tls = crate::tls::TlsConfig::from_env(env)?;
        let health_addr = crate::tls::health_addr_from_env(env, tls.is_some())?;
        Ok(ServiceConfig {
            grpc_addr,
            database_url: Secret::new(database_url),
            database_owner_url: database_owner_url.map(Secret::new),
            database_max_connections: env.bounded_or(
                "HEARTH_DATABASE_MAX_CONNECTIONS",
                16,
                1,
                1000,
            )? as u32,
            nats_url: Secret::new(nats_url),
            auth,
            request_timeout: env.millis_or("HEARTH_REQUEST_TIMEOUT_MS", Duration::from_secs(10))?,
            max_concurrent_requests: env.bounded_or(
                "HEARTH_MAX_CONCURRENT_REQUESTS",
                256,
                1,
                100_000,
            )? as usize,
            max_message_bytes: env.bounded_or(
                "HEARTH_MAX_MESSAGE_BYTES",
                4 << 20,
                1024,
                64 << 20,
            )? as usize,
            shutdown_drain: env.millis_or("HEARTH_SHUTDOWN_DRAIN_MS", Duration::ZERO)?,
            relay_batch_size: env.bounded_or("HEARTH_RELAY_BATCH_SIZE", 256, 1, 10_000)? as i64,
            relay_poll: env.millis_or("HEARTH_RELAY_POLL_MS", Duration::from_millis(1000))?,
            page_token_secret: env.secret("HEARTH_PAGE_TOKEN_SECRET", 32)?,
            request_id_retention: Duration::from_secs(
                3600 * env.bounded_or(
                    "HEARTH_REQUEST_ID_RETENTION_HOURS",
                    DEFAULT_REQUEST_ID_RETENTION_HOURS,
                    24,
                    24 * 366,
                )?,
            ),
            audit_seal_key: env.secret("HEARTH_AUDIT_SEAL_KEY", 32)?,
            break_glass: Duration::from_secs(
                60 * env.bounded_or(
                    "HEARTH_BREAK_GLASS_MINUTES",
                    DEFAULT_BREAK_GLASS_MINUTES,
                    5,
                    1440,
                )?,
            ),
            telemetry: TelemetryConfig::from_env(env)?,
            tls,
            health_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        env_of(pairs)
    }

    const BASE: &[(&str, &str)] = &[
        ("HEARTH_DATABASE_URL", "postgres://u:pw@localhost/db"),
        ("HEARTH_AUTH_ISSUER", "iss"),
        ("HEARTH_AUTH_AUDIENCE", "aud"),
        ("HEARTH_AUTH_PUBLIC_KEYS", "/keys/a.pem, /keys/b.pem"),
        (
            "HEARTH_PAGE_TOKEN_SECRET",
            "0123456789abcdef0123456789abcdef",
        ),
        ("HEARTH_AUDIT_SEAL_KEY", "fedcba9876543210fedcba9876543210"),
    ];

    #[test]
    fn defaults_apply_and_secrets_do_not_print() {
        let cfg = ServiceConfig::from_env(&env(BASE), 50051).unwrap();
        assert_eq!(cfg.grpc_addr.port(), 50051);
        assert_eq!(cfg.auth.public_key_files.len(), 2);
        assert_eq!(cfg.request_timeout, Duration::from_secs(10));
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("pw@"), "{printed}");
    }

    #[test]
    fn errors_name_the_variable() {
        let err = ServiceConfig::from_env(&env(&BASE[1..]), 1).unwrap_err();
        assert_eq!(err.var, "HEARTH_DATABASE_URL");
        let mut bad = BASE.to_vec();
        bad.push(("HEARTH_MAX_CONCURRENT_REQUESTS", "lots"));
        let err = ServiceConfig::from_env(&env(&bad), 1).unwrap_err();
        assert_eq!(err.var, "HEARTH_MAX_CONCURRENT_REQUESTS");
        let mut bad = BASE.to_vec();
        bad.push(("HEARTH_DATABASE_MAX_CONNECTIONS", "0"));
        let err = ServiceConfig::from_env(&env(&bad), 1).unwrap_err();
        assert!(err.to_string().contains("between 1 and 1000"), "{err}");
    }

    #[test]
    fn secrets_and_windows_are_checked() {
        let cfg = ServiceConfig::from_env(&env(BASE), 1).unwrap();
        assert_eq!(cfg.request_id_retention, Duration::from_secs(7 * 24 * 3600));
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
        let mut bad = BASE.to_vec();
        bad.retain(|(k, _)| *k != "HEARTH_PAGE_TOKEN_SECRET");
        bad.push(("HEARTH_PAGE_TOKEN_SECRET", "short"));
        let err = ServiceConfig::from_env(&env(&bad), 1).unwrap_err();
        assert_eq!(err.var, "HEARTH_PAGE_TOKEN_SECRET");
        let mut bad = BASE.to_vec();
        bad.push(("HEARTH_REQUEST_ID_RETENTION_HOURS", "23"));
        let err = ServiceConfig::from_env(&env(&bad), 1).unwrap_err();
        assert_eq!(err.var, "HEARTH_REQUEST_ID_RETENTION_HOURS");
        assert!(!format!("{cfg:?}").contains("fedcba9876543210"));
        assert_eq!(cfg.break_glass, Duration::from_secs(3 * 3600));
        let mut bad = BASE.to_vec();
        bad.retain(|(k, _)| *k != "HEARTH_AUDIT_SEAL_KEY");
        let err = ServiceConfig::from_env(&env(&bad), 1).unwrap_err();
        assert_eq!(err.var, "HEARTH_AUDIT_SEAL_KEY");
        let mut bad = BASE.to_vec();
        bad.push(("HEARTH_DATABASE_OWNER_URL", "mysql://x"));
        let err = ServiceConfig::from_env(&env(&bad), 1).unwrap_err();
        assert_eq!(err.var, "HEARTH_DATABASE_OWNER_URL");
    }

    #[test]
    fn telemetry_settings_are_checked_before_telemetry_starts() {
        let cfg = ServiceConfig::from_env(&env(BASE), 1).unwrap();
        assert!(!cfg.telemetry.json_logs);
        assert_eq!(cfg.telemetry.log_filter, DEFAULT_LOG_FILTER);
        for (var, value) in [
            ("HEARTH_LOG_FORMAT", "xml"),
            ("RUST_LOG", "info,[[["),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ] {
            let mut bad = BASE.to_vec();
            bad.push((var, value));
            let err = ServiceConfig::from_env(&env(&bad), 1).unwrap_err();
            assert_eq!(err.var, var);
        }
    }

    #[derive(Debug)]
    struct Own {
        n: u64,
    }

    impl Settings for Own {
        fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
            Ok(Own {
                n: env.bounded_or("HEARTH_OWN_N", 2, 1, 4)?,
            })
        }
    }

    #[test]
    fn a_service_section_is_read_and_checked_with_the_shared_one() {
        let (_, own): (_, Own) = load(&env(BASE), 1).unwrap();
        assert_eq!(own.n, 2);
        let mut bad = BASE.to_vec();
        bad.push(("HEARTH_OWN_N", "9"));
        let err = load::<Own, _>(&env(&bad), 1).unwrap_err();
        assert_eq!(err.var, "HEARTH_OWN_N");
    }
}
