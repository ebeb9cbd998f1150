//! The test harness every Hearth service's tests use:
//!
//! - [`TestEnv`]: a fresh database on the process's shared private Postgres, a fresh
//!   isolated account on its shared private NATS (or a NATS of the test's own, for
//!   tests that stop it), a signing key, and the `HEARTH_*` settings that point a
//!   service at them;
//! - [`Running`]: the service under test in this process ([`service::run`]), with
//!   mutual TLS if asked ([`crate::tls::Mtls`]), or [`Process`]: its real binary, as
//!   an operator starts it;
//! - tokens for an (organisation, roles) pair, and waiting for SERVING;
//! - [`assert_status`] and [`assert_invalid`]: a status code with its `ErrorInfo`
//!   reason and field violations;
//! - [`Snapshot`]: every table of a service's schema, to prove a call wrote nothing;
//! - [`stream_messages`]: the events a test caused, read from the stream;
//! - [`publish`]: another service's event, put on NATS to drive a consumer.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use hearth_platform::auth::{KeyPair, TokenIssuer};
use hearth_platform::config::{self, Env, Secret, TelemetryConfig};
use hearth_platform::events::Envelope;
use hearth_platform::outbox::{StreamSpec, ensure_stream};
use hearth_platform::service::{self, BoxError, Service};
use hearth_platform::{Role, server};
use hearth_proto::events::{EventType, Stream};
use sqlx::{PgPool, Row as _};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use uuid::Uuid;

use crate::tls::Mtls;

/// Issuer and audience of test tokens.
pub const ISSUER: &str = "hearth-test";
pub const AUDIENCE: &str = "hearth";

/// What one test runs a service against. Its scratch folder (key, logs) is removed
/// when it is dropped; its database and NATS account are left to die with the shared
/// servers.
pub struct TestEnv {
    pub db_url: String,
    /// The NATS URL, with the account's user and password when on the shared server.
    pub nats_url: String,
    pub issuer: TokenIssuer,
    /// The key the audit log is sealed with (`HEARTH_AUDIT_SEAL_KEY`).
    pub seal_key: String,
    key_file: PathBuf,
    dir: PathBuf,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestEnv {
    /// A fresh database and a fresh NATS account, both on servers shared by the
    /// test process.
    pub async fn new() -> TestEnv {
        Self::with_nats(crate::shared_nats_account()).await
    }

    /// A fresh database, and the NATS at `nats_url` (a server the test owns, for
    /// tests that stop or restart it).
    pub async fn with_nats(nats_url: String) -> TestEnv {
        let db_url = crate::shared_pg()
            .fresh_database()
            .await
            .expect("a test database on the shared postgres");
        let dir = std::env::temp_dir().join(format!("hearth-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        let keys = KeyPair::generate();
        let key_file = dir.join("test.pub.pem");
        std::fs::write(&key_file, &keys.public_pem).expect("write the public key");
        let issuer = TokenIssuer::from_private_pem("test", &keys.private_pem, ISSUER, AUDIENCE)
            .expect("a fresh key signs");
        TestEnv {
            db_url,
            nats_url,
            issuer,
            seal_key: format!("test-audit-key-{}", Uuid::new_v4().simple()),
            key_file,
            dir,
        }
    }

    /// The settings for service `service` on this environment: its two database roles
    /// (the schema's owner migrates; the serving role may only insert into and read
    /// the audit log) on top of [`TestEnv::vars`].
    pub async fn service_vars(&self, service: &str) -> Vec<(String, String)> {
        let database = self
            .db_url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (owner, app) = crate::shared_pg()
            .service_roles(&database, service)
            .await
            .unwrap_or_else(|e| panic!("roles for {service}: {e:#}"));
        let mut vars = self.vars();
        vars.retain(|(k, _)| k != "HEARTH_DATABASE_URL");
        vars.push(("HEARTH_DATABASE_URL".into(), app));
        vars.push(("HEARTH_DATABASE_OWNER_URL".into(), owner));
        vars
    }

    /// Another environment on the same database and NATS account, with a key of its
    /// own: for a second service (or a restarted one) that must see the first's data
    /// and events.
    pub async fn sibling(&self) -> TestEnv {
        let mut env = Self::with_nats(self.nats_url.clone()).await;
        env.db_url = self.db_url.clone();
        env.seal_key = self.seal_key.clone();
        env
    }

    /// The settings that point a service at this environment, as environment
    /// variables (a short relay poll, so tests see events quickly).
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            ("HEARTH_DATABASE_URL", self.db_url.clone()),
            ("HEARTH_DATABASE_MAX_CONNECTIONS", "20".into()),
            ("HEARTH_NATS_URL", self.nats_url.clone()),
            ("HEARTH_AUTH_ISSUER", ISSUER.into()),
            ("HEARTH_AUTH_AUDIENCE", AUDIENCE.into()),
            (
                "HEARTH_AUTH_PUBLIC_KEYS",
                self.key_file.display().to_string(),
            ),
            (
                "HEARTH_PAGE_TOKEN_SECRET",
                format!("test-page-secret-{}", Uuid::new_v4().simple()),
            ),
            ("HEARTH_AUDIT_SEAL_KEY", self.seal_key.clone()),
            ("HEARTH_REQUEST_TIMEOUT_MS", "20000".into()),
            ("HEARTH_RELAY_POLL_MS", "200".into()),
            ("HEARTH_GRPC_ADDR", "127.0.0.1:0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The scratch folder, for logs and files a test writes.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A token for user `user-1` of `organisation` with `roles`, valid ten minutes.
    pub fn token(&self, organisation: &str, roles: &[Role]) -> String {
        self.token_for("user-1", organisation, roles)
    }

    /// A token for person `subject` of `organisation`: a subject of its own lets a test
    /// find exactly its calls in the audit log.
    pub fn token_for(&self, subject: &str, organisation: &str, roles: &[Role]) -> String {
        self.issuer
            .mint(subject, organisation, roles, Duration::from_secs(600))
    }

    /// A pool on the test database (as the superuser: tests may look at anything).
    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.db_url)
            .await
            .expect("connect to the test database")
    }

    /// JetStream on the test's NATS account.
    pub async fn jetstream(&self) -> jetstream::Context {
        let client = server::connect_nats(&Secret::new(self.nats_url.clone()), "test")
            .await
            .expect("connect to the test NATS");
        jetstream::new(client)
    }
}

/// Adds a bearer token to every call of a client.
#[derive(Debug, Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {t}")
                    .parse()
                    .expect("a token is header text"),
            );
        }
        Ok(req)
    }
}

/// `msg` as a request carrying `token`.
pub fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .expect("a token is header text"),
    );
    req
}

/// A lazily connecting channel to `addr`.
pub fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect_lazy()
}

/// Whether the server behind `channel` reports `service` SERVING now (`""` for the
/// server as a whole); false for any other answer or none.
pub async fn is_serving(channel: Channel, service: &str) -> bool {
    use tonic_health::pb::health_check_response::ServingStatus;
    let req = tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    };
    matches!(
        tonic_health::pb::health_client::HealthClient::new(channel).check(req).await,
        Ok(resp) if resp.get_ref().status == ServingStatus::Serving as i32
    )
}

/// Waits (up to 60 s) until the server behind `channel` reports `service` SERVING
/// (`""` for the server as a whole). `log` is shown if it never does.
pub async fn wait_serving(channel: Channel, service: &str, log: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !is_serving(channel.clone(), service).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service:?} never became SERVING\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Service `S` running in this process against a [`TestEnv`]. Stopped when dropped.
pub struct Running<S: Service> {
    pub env: TestEnv,
    /// The superuser's pool on the service's database.
    pub pool: PgPool,
    pub js: jetstream::Context,
    /// A plaintext channel to the gRPC port (with mutual TLS on, use
    /// [`Running::mtls`] to connect instead).
    pub channel: Channel,
    pub addr: std::net::SocketAddr,
    /// Where health is asked: the gRPC port, or with mutual TLS the plaintext
    /// health-only port.
    pub health: Channel,
    /// The CA and settings, when started with [`Running::start_with_mtls`].
    pub mtls: Option<Mtls>,
    pub shutdown: CancellationToken,
    pub handle: Option<JoinHandle<Result<(), BoxError>>>,
    _service: PhantomData<S>,
}

impl<S: Service> Drop for Running<S> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl<S: Service> Running<S> {
    /// Starts `S` on a free port with `env`'s settings, then `settings` on top (as
    /// the environment variables an operator would set), and waits for SERVING.
    pub async fn start(env: TestEnv, settings: &[(&str, &str)]) -> Running<S> {
        Self::start_inner(env, settings, None).await
    }

    /// As [`Running::start`], with mutual TLS on: a fresh CA (issue client
    /// certificates from `mtls.ca`), a server certificate, and health in plaintext
    /// on a port of its own, where start-up waits for SERVING.
    pub async fn start_with_mtls(env: TestEnv, settings: &[(&str, &str)]) -> Running<S> {
        let mtls = Mtls::new(env.dir());
        Self::start_inner(env, settings, Some(mtls)).await
    }

    async fn start_inner(
        env: TestEnv,
        settings: &[(&str, &str)],
        mtls: Option<Mtls>,
    ) -> Running<S> {
        let mut vars: BTreeMap<String, String> =
            env.service_vars(S::NAME).await.into_iter().collect();
        vars.extend(mtls.iter().flat_map(|m| m.vars().iter().cloned()));
        for (k, v) in settings {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let (cfg, own) = config::load::<S::Settings, _>(&Env::from_fn(|k| vars.get(k).cloned()), 0)
            .unwrap_or_else(|e| panic!("test configuration: {e}"));
        init_telemetry();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let shutdown = CancellationToken::new();
        let cfg_health = cfg.health_addr;
        let handle = tokio::spawn(service::run::<S>(cfg, own, listener, shutdown.clone()));
        let health = channel(cfg_health.unwrap_or(addr));
        wait_serving(health.clone(), "", String::new).await;
        let pool = env.pool().await;
        let js = env.jetstream().await;
        Running {
            env,
            pool,
            js,
            channel: channel(addr),
            addr,
            health,
            mtls,
            shutdown,
            handle: Some(handle),
            _service: PhantomData,
        }
    }

    /// A token for `organisation` with `roles`.
    pub fn token(&self, organisation: &str, roles: &[Role]) -> String {
        self.env.token(organisation, roles)
    }

    /// A token for person `subject` of `organisation` with `roles`.
    pub fn token_for(&self, subject: &str, organisation: &str, roles: &[Role]) -> String {
        self.env.token_for(subject, organisation, roles)
    }

    /// A TLS channel to the service presenting a client certificate for
    /// `organisation` from the test CA (started with [`Running::start_with_mtls`]).
    pub async fn mtls_channel(&self, organisation: &str) -> Channel {
        let mtls = self.mtls.as_ref().expect("started with mutual TLS");
        mtls.connect(self.addr, Some(&mtls.ca.client(organisation)))
            .await
            .expect("a TLS connection with a good client certificate")
    }

    /// Stops the service (as SIGTERM would) and waits for `run` to return.
    pub async fn stop(&mut self) -> Result<(), BoxError> {
        self.shutdown.cancel();
        match self.handle.take() {
            Some(h) => h.await.expect("the service task did not panic"),
            None => Ok(()),
        }
    }

    /// Every table of the service's schema, now, but the audit log (which records
    /// refusals too) and its chains' heads.
    pub async fn snapshot(&self) -> Snapshot {
        Snapshot::except(&self.pool, S::NAME, &["audit_log", "audit_chains"]).await
    }

    /// The audit log's records, oldest first in each chain.
    pub async fn audit_records(&self) -> Vec<hearth_platform::audit::Record> {
        sqlx::query(&format!(
            "SELECT * FROM {}.audit_log ORDER BY at, chain, seq",
            S::NAME
        ))
        .fetch_all(&self.pool)
        .await
        .expect("read the audit log")
        .iter()
        .map(hearth_platform::audit::record_from_row)
        .collect()
    }

    /// The messages on the service's own stream (see [`stream_messages`]).
    pub async fn events(&self, at_least: usize) -> Vec<jetstream::message::StreamMessage> {
        stream_messages(&self.js, S::STREAM.name, at_least).await
    }
}

/// Telemetry for a test process: once, logs at `RUST_LOG` or warn.
fn init_telemetry() {
    let cfg = TelemetryConfig::from_env(&Env::from_fn(|k| {
        (k == "RUST_LOG").then(|| std::env::var(k).unwrap_or_else(|_| "warn".into()))
    }))
    .unwrap_or_else(|e| panic!("RUST_LOG: {e}"));
    let _ = hearth_platform::telemetry::init("test", &cfg);
}

/// A service binary built by this workspace (`target/<profile>/<name>`, beside the
/// test executable's `deps/`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is not built; run the whole workspace's tests (`make test`) or `cargo build -p {name}` first",
        bin.display()
    );
    bin
}

/// A service's real binary, started as an operator would, logging to a file in the
/// environment's folder. SIGKILLed if dropped while running.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
    pub channel: Channel,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts binary `name` with `env`'s settings plus `settings` (and nothing else
    /// from this process's environment but `PATH`), and waits for SERVING.
    pub async fn start(name: &str, env: &TestEnv, settings: &[(&str, String)]) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = env.dir().join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("a log file");
        let mut vars: BTreeMap<String, String> = env.service_vars(name).await.into_iter().collect();
        vars.insert("HEARTH_GRPC_ADDR".into(), format!("127.0.0.1:{port}"));
        vars.insert(
            "RUST_LOG".into(),
            "debug,h2=info,hyper=info,tower=info,sqlx=warn,async_nats=info".into(),
        );
        for (k, v) in settings {
            vars.insert((*k).to_owned(), v.clone());
        }
        let child = Command::new(binary(name))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&vars)
            .stdout(Stdio::from(out.try_clone().expect("log handle")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start the service binary");
        let process = Process {
            child,
            log,
            channel: channel(([127, 0, 0, 1], port).into()),
        };
        wait_serving(process.channel.clone(), "", || process.log_text()).await;
        process
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as an operator's `kill` or Kubernetes would.
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success());
    }

    /// Waits (up to 20 s) for the process to exit.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait on the child") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.exited().await
    }
}

/// Asserts a status code and its `ErrorInfo` reason (every error carries one).
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    let info = status
        .get_details_error_info()
        .expect("ErrorInfo on every error");
    assert_eq!(info.reason, reason, "{status:?}");
}

/// Asserts that a call failed on its connection (a refused TLS handshake, a server
/// that does not speak to this client), not with a gRPC status the server sent.
#[track_caller]
pub fn assert_transport_error(status: &Status) {
    let from_transport = std::error::Error::source(status).is_some()
        && status.get_details_error_info().is_none()
        && matches!(status.code(), Code::Unavailable | Code::Unknown);
    assert!(
        from_transport,
        "a transport error was expected, not a gRPC status: {status:?}"
    );
}

/// An error and its sources, `: `-separated (a TLS alert is several layers down).
pub use hearth_platform::tls::error_chain;

/// Asserts INVALID_ARGUMENT from `domain` with reason `reason` naming exactly
/// `fields` (in any order).
#[track_caller]
pub fn assert_invalid_because(status: &Status, domain: &str, reason: &str, fields: &[&str]) {
    assert_status(status, Code::InvalidArgument, reason);
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.domain, domain, "{status:?}");
    let bad = status.get_details_bad_request().expect("field violations");
    let mut got: Vec<&str> = bad
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    got.sort();
    let mut want = fields.to_vec();
    want.sort();
    assert_eq!(got, want, "{status:?}");
}

/// Asserts INVALID_ARGUMENT from `domain` naming exactly `fields` (in any order).
#[track_caller]
pub fn assert_invalid(status: &Status, domain: &str, fields: &[&str]) {
    assert_invalid_because(status, domain, "INVALID_ARGUMENT", fields);
}

/// Every table of a schema: its row count and a digest of its rows. Two snapshots
/// are equal when nothing was written in between. The relay's bookkeeping
/// (`outbox_relay`) moves on its own and is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(pub BTreeMap<String, (i64, String)>);

impl Snapshot {
    pub async fn of(pool: &PgPool, schema: &str) -> Snapshot {
        Self::except(pool, schema, &[]).await
    }

    /// Leaving out `skip` too (tables a call writes on purpose, such as an audit log).
    pub async fn except(pool: &PgPool, schema: &str, skip: &[&str]) -> Snapshot {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
              WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .bind(schema)
        .fetch_all(pool)
        .await
        .expect("list the schema's tables");
        let mut out = BTreeMap::new();
        for t in tables {
            if t == "outbox_relay" || skip.contains(&t.as_str()) {
                continue;
            }
            let row = sqlx::query(&format!(
                "SELECT count(*) AS n, coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS digest
                   FROM {schema}.\"{t}\" x"
            ))
            .fetch_one(pool)
            .await
            .expect("read a table");
            out.insert(t, (row.get("n"), row.get("digest")));
        }
        Snapshot(out)
    }

    /// Row counts by table, for messages.
    pub fn counts(&self) -> BTreeMap<&str, i64> {
        self.0.iter().map(|(t, (n, _))| (t.as_str(), *n)).collect()
    }

    /// Asserts nothing changed since `self`, naming the tables that did.
    #[track_caller]
    pub fn assert_unchanged(&self, now: &Snapshot) {
        let changed: Vec<&str> = self
            .0
            .iter()
            .filter(|(t, v)| now.0.get(*t) != Some(v))
            .map(|(t, _)| t.as_str())
            .chain(
                now.0
                    .keys()
                    .filter(|t| !self.0.contains_key(*t))
                    .map(String::as_str),
            )
            .collect();
        assert!(changed.is_empty(), "tables written: {changed:?}");
    }
}

/// Waits until stream `stream` holds at least `at_least` messages, then a little
/// longer to catch any extra, and returns them all in stream order.
pub async fn stream_messages(
    js: &jetstream::Context,
    stream: &str,
    at_least: usize,
) -> Vec<jetstream::message::StreamMessage> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut s = loop {
        match js.get_stream(stream).await {
            Ok(s) => break s,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("stream {stream} never appeared: {e}"),
        }
    };
    loop {
        let have = s.info().await.expect("stream info").state.messages as usize;
        if have >= at_least {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {have} of {at_least} events arrived on {stream}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let state = s.info().await.expect("stream info").state.clone();
    let mut out = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = s.get_raw_message(seq).await {
            out.push(m);
        }
    }
    out
}

/// A header of a stream message (`""` when absent).
pub fn header(m: &jetstream::message::StreamMessage, name: &str) -> String {
    m.headers
        .get(name)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

/// Publishes an event of another service, as its relay would (CloudEvents headers,
/// the stream created from its contract if it is not there yet), to drive a
/// consumer. Returns the event id.
pub async fn publish<M: prost::Message>(
    js: &jetstream::Context,
    stream: &Stream,
    event: EventType<M>,
    resource: &str,
    msg: &M,
) -> Uuid {
    ensure_stream(js, &StreamSpec::of(stream))
        .await
        .expect("the producer's stream");
    let id = Uuid::now_v7();
    let headers = Envelope {
        id,
        ce_type: event.subject,
        source: stream.source,
        resource,
        time: chrono::Utc::now(),
        traceparent: None,
    }
    .headers();
    js.publish_with_headers(event.subject, headers, msg.encode_to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("JetStream took the event");
    id
}
