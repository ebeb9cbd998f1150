//! The service runtime: what every Hearth gRPC service is, apart from its own domain.
//!
//! A service implements [`Service`]: its name, error domain, port, migrations, the
//! stream it publishes into, its own configuration section, and [`Service::wire`],
//! which builds its gRPC handlers and consumers from the [`Kit`] and hands them to
//! the [`Wiring`]. Its `main.rs` calls [`main`]; its tests call [`run`]. The kit does
//! the rest, in this order:
//!
//! 1. configuration: the shared settings and the service's section, checked; a bad
//!    value is printed plainly to stderr, naming the variable, and start-up stops;
//! 2. telemetry, from that configuration;
//! 3. the shared tables and the service's migrations, as the schema's owner
//!    (`HEARTH_DATABASE_OWNER_URL`, when set), which grants the serving role what it
//!    needs; then the pool, as the serving role (`HEARTH_DATABASE_URL`), which must
//!    not be able to change the audit log (start-up stops if it can);
//! 4. NATS, then the outbox relay;
//! 5. the audit log's writers, the service's wiring, then its consumers;
//! 6. the gRPC server: the service's contracts and `hearth.access.v1.AccessService`
//!    (the DPO's queries and break-the-glass), health, reflection of those contracts
//!    only, timeouts, the concurrency limit, message-size limits and the
//!    authenticator; with mutual TLS on (`HEARTH_TLS_*`, read and checked before
//!    step 3, as is the health-only port), TLS with client certificates, and health
//!    alone in plaintext on `HEARTH_HEALTH_ADDR`.
//!
//! Shutdown (SIGTERM or SIGINT, or the token a test cancels) runs one tree of
//! cancellation tokens in order: health goes NOT_SERVING and calls drain; what the
//! service asked to run after the calls (referrals' intake writers) finishes; the
//! consumers stop after their current message; the relay stops after its batch; the
//! request-id purge stops; NATS is flushed and the pool closed; telemetry flushes last.
//! The consumers, the relay and the purge all hang off one root token, which also
//! stops them at once if `run` fails or its future is dropped.
//!
//! Commands: `serve` (the default), `migrate`, `republish --from SEQ`, `verify-audit`.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::Context as JetStream;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::service::interceptor::InterceptedService;

use crate::access::Access;
use crate::access_service::{AccessApi, Directory};
use crate::audit::{Auditor, Sealer, Verdict};
use crate::auth::{Authenticator, TokenVerifier};
use crate::config::{self, Env, ServiceConfig, Settings};
use crate::idempotency::{self, Requests};
use crate::inbox::{ConsumerSpec, ConsumerStats, Handler, Inbox};
use crate::outbox::{self, Outbox, Relay, StreamSpec};
use crate::page::Pager;
use crate::server::{self, MessageLimits};
use crate::{db, telemetry, tls};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A declared consumer: its counts (for a metrics endpoint) and how to start it.
struct Consumer {
    stats: std::sync::Arc<ConsumerStats>,
    start: Box<dyn FnOnce(CancellationToken) -> JoinHandle<()> + Send>,
}

/// How long a starting service waits for its database.
const DATABASE_PATIENCE: Duration = Duration::from_secs(30);

/// A Hearth gRPC service, as the kit runs it.
pub trait Service: Send + Sync + 'static {
    /// Its short name: the binary, the Postgres schema, the log's service name.
    const NAME: &'static str;
    /// The `domain` of every `google.rpc.ErrorInfo` it returns, e.g. `referrals.hearth`.
    const DOMAIN: &'static str;
    const DEFAULT_PORT: u16;
    /// The stream it publishes into, from `hearth_proto::events`.
    const STREAM: hearth_proto::events::Stream;
    /// Its own configuration section (`()` for none).
    type Settings: Settings;

    /// Its migrations (`sqlx::migrate!`), applied after the shared tables.
    fn migrator() -> &'static Migrator;

    /// Builds its gRPC services and consumers.
    fn wire(
        kit: &Kit,
        settings: Self::Settings,
        wiring: &mut Wiring,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// What the kit hands a service to build its handlers from. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Kit {
    pub config: ServiceConfig,
    pub pool: PgPool,
    pub js: JetStream,
    /// Writes events in a business transaction (source and schema set).
    pub outbox: Outbox,
    /// Claims request ids (idempotent mutations).
    pub requests: Requests,
    /// Signs and checks page tokens.
    pub pager: Pager,
    /// Writes the audit log.
    pub auditor: Auditor,
    /// Answers "may this caller see this family's records?".
    pub access: Access,
    schema: &'static str,
}

impl Kit {
    /// The service's schema.
    pub fn schema(&self) -> &'static str {
        self.schema
    }
}

/// What a service hands back: its gRPC services, its consumers, and work to finish
/// once calls have drained.
pub struct Wiring {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    consumers: Vec<Consumer>,
    after_calls: Vec<Task>,
    directory: Option<Arc<dyn Directory>>,
    auth: Authenticator,
    max_message_bytes: usize,
    kit: Kit,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring")
            .field("services", &self.names)
            .finish_non_exhaustive()
    }
}

impl Wiring {
    /// Serves a generated gRPC service (`XServiceServer::new(handlers)`): every call
    /// authenticated, the message-size limit applied, reported SERVING by health and
    /// listed by reflection.
    pub fn grpc<S>(&mut self, svc: S) -> &mut Self
    where
        S: MessageLimits
            + NamedService
            + tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        let svc = svc.message_limits(self.max_message_bytes);
        self.routes
            .add_service(InterceptedService::new(svc, self.auth.clone()));
        self
    }

    /// Consumes another service's stream: `handler` runs in the inbox transaction for
    /// each event, which is acknowledged after that commits. The kit checks the
    /// consumer the server keeps and logs its lag and dead letters.
    pub fn consume<H: Handler>(&mut self, spec: ConsumerSpec, handler: H) -> &mut Self {
        let inbox = Inbox::new(
            self.kit.pool.clone(),
            self.kit.js.clone(),
            self.kit.schema,
            spec,
            handler,
        );
        let stats = inbox.stats();
        self.consumers.push(Consumer {
            stats,
            start: Box::new(move |stop| tokio::spawn(async move { inbox.run(stop).await })),
        });
        self
    }

    /// The service's schema.
    pub fn schema(&self) -> &'static str {
        self.kit.schema
    }

    /// How `hearth.access.v1.AccessService` finds the families whose records the
    /// service holds. Every service sets it.
    pub fn family_directory(&mut self, directory: impl Directory) -> &mut Self {
        self.directory = Some(Arc::new(directory));
        self
    }

    /// The counts and lag of each consumer declared so far.
    pub fn consumer_stats(&self) -> Vec<std::sync::Arc<ConsumerStats>> {
        self.consumers
            .iter()
            .map(|c| std::sync::Arc::clone(&c.stats))
            .collect()
    }

    /// Work to finish once the server has stopped taking calls and every call has been
    /// answered, before the consumers and the relay stop.
    pub fn after_calls(&mut self, task: impl Future<Output = ()> + Send + 'static) -> &mut Self {
        self.after_calls.push(Box::pin(task));
        self
    }
}

/// How many tasks group-commit reads' audit records (our default: one fills its batch
/// while the other waits for its commit).
const AUDIT_WRITERS: usize = 2;

/// Choices a caller of [`run_with`] makes that no configuration reaches.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Whether the audit log is written. Always, but for the benchmark that
    /// measures what it costs.
    pub audit: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { audit: true }
    }
}

/// Runs service `S` on `listener` until `shutdown` fires (see the module docs for the
/// order of things). Tests call this; the binary calls it through [`main`].
pub async fn run<S: Service>(
    cfg: ServiceConfig,
    settings: S::Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), BoxError> {
    run_with::<S>(cfg, settings, listener, shutdown, RunOptions::default()).await
}

/// Migrates as the schema's owner, when the configuration names one, and lets the
/// serving role in.
async fn migrate_as_owner<S: Service>(cfg: &ServiceConfig) -> Result<(), BoxError> {
    if let Some(owner) = &cfg.database_owner_url {
        let pool = db::connect(owner, S::NAME, 2, DATABASE_PATIENCE).await?;
        db::migrate(&pool, S::NAME, S::migrator()).await?;
        db::grant_serving_role(&pool, S::NAME, &db::role_of(&cfg.database_url)?).await?;
        pool.close().await;
    }
    Ok(())
}

/// [`run`], with choices no configuration reaches (the benchmark's).
pub async fn run_with<S: Service>(
    cfg: ServiceConfig,
    settings: S::Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
    options: RunOptions,
) -> Result<(), BoxError> {
    let verifier = TokenVerifier::from_config(&cfg.auth)?;
    let transport = transport(&cfg, listener).await?;
    migrate_as_owner::<S>(&cfg).await?;
    let pool = connect::<S>(&cfg, cfg.database_max_connections).await?;
    db::check_serving_role(&pool, S::NAME).await?;
    let nats = server::connect_nats(&cfg.nats_url, S::NAME).await?;
    let js = async_nats::jetstream::new(nats.clone());

    let root = CancellationToken::new();
    let _stop_all_if_dropped = root.clone().drop_guard();
    let (relay_stop, consumers_stop, background) =
        (root.child_token(), root.child_token(), root.child_token());
    let relay = Relay::new(
        pool.clone(),
        js.clone(),
        S::NAME,
        StreamSpec::of(&S::STREAM),
    )
    .batch_size(cfg.relay_batch_size)
    .poll_interval(cfg.relay_poll);
    let relay = tokio::spawn(relay.run(relay_stop.clone()));

    let sealer = Sealer::new(&cfg.audit_seal_key);
    let auditor = if options.audit {
        let connect = (*pool.connect_options()).clone();
        Auditor::start(S::NAME, sealer, connect, AUDIT_WRITERS, background.clone())
    } else {
        Auditor::disabled_for_benchmark(S::NAME, sealer)
    };
    let kit = Kit {
        outbox: Outbox::new(pool.clone(), S::NAME, S::STREAM.source),
        requests: Requests::new(pool.clone(), S::NAME),
        pager: Pager::new(&cfg.page_token_secret),
        auditor,
        access: Access::new(S::NAME),
        config: cfg.clone(),
        pool: pool.clone(),
        js,
        schema: S::NAME,
    };
    let mut wiring = Wiring {
        routes: RoutesBuilder::default(),
        names: Vec::new(),
        consumers: Vec::new(),
        after_calls: Vec::new(),
        directory: None,
        auth: Authenticator::new(verifier, S::DOMAIN)
            .require_client_certificates(cfg.tls.is_some()),
        max_message_bytes: cfg.max_message_bytes,
        kit: kit.clone(),
    };
    S::wire(&kit, settings, &mut wiring).await?;
    let directory = wiring
        .directory
        .clone()
        .ok_or("the service did not say how to find a family (Wiring::family_directory)")?;
    wiring.grpc(
        hearth_proto::access::access_service_server::AccessServiceServer::new(AccessApi {
            pool: pool.clone(),
            schema: S::NAME,
            domain: S::DOMAIN,
            auditor: kit.auditor.clone(),
            requests: kit.requests.clone(),
            pager: kit.pager.clone(),
            directory,
            glass: cfg.break_glass,
        }),
    );
    let consumers: Vec<_> = wiring
        .consumers
        .into_iter()
        .map(|c| (c.start)(consumers_stop.clone()))
        .collect();
    tokio::spawn(idempotency::purge_every_hour(
        kit.requests.clone(),
        cfg.request_id_retention,
        background,
    ));

    tracing::info!(service = S::NAME, addr = %transport.listener.local_addr()?, "listening");
    let served = server::serve(
        transport,
        (&cfg).into(),
        S::DOMAIN,
        wiring.routes.routes(),
        &wiring.names,
        hearth_proto::FILE_DESCRIPTOR_SET,
        shutdown,
    )
    .await;
    for task in wiring.after_calls {
        task.await;
    }
    consumers_stop.cancel();
    futures::future::join_all(consumers).await;
    relay_stop.cancel();
    let _ = relay.await;
    root.cancel();
    // Flush what the relay handed to the client, but do not hang if NATS is down:
    // anything unacknowledged is still unpublished in the outbox.
    let _ = tokio::time::timeout(Duration::from_secs(2), nats.flush()).await;
    pool.close().await;
    tracing::info!(service = S::NAME, "stopped");
    served.map_err(Into::into)
}

/// The server's transport: `listener`, and mutual TLS and the health-only port when
/// configured, their files read and port bound now, so that a bad file or a taken
/// port stops start-up before anything runs.
async fn transport(
    cfg: &ServiceConfig,
    listener: TcpListener,
) -> Result<server::Transport, BoxError> {
    let tls = cfg.tls.as_ref().map(tls::server_config).transpose()?;
    let health = match cfg.health_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("{}: binding {addr}: {e}", tls::HEALTH_ADDR_VAR))?,
        ),
        None => None,
    };
    Ok(server::Transport {
        listener,
        tls,
        health,
    })
}

async fn connect<S: Service>(cfg: &ServiceConfig, max: u32) -> Result<PgPool, sqlx::Error> {
    db::connect(&cfg.database_url, S::NAME, max, DATABASE_PATIENCE).await
}

/// The whole process: reads the configuration (stopping with the variable named if
/// it is bad), starts telemetry, runs the command on the command line, flushes
/// telemetry. A service's `main` is this one call.
pub fn main<S: Service>() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match Command::parse(&args) {
        Ok(c) => c,
        Err(usage) => {
            eprintln!(
                "{}: {usage}\n{}",
                S::NAME,
                Command::USAGE.replace("SERVICE", S::NAME)
            );
            return ExitCode::from(2);
        }
    };
    if command == Command::VerifyAudit {
        // Needs the database and the seal key, nothing else the service serves with.
        return verify_audit::<S>(&Env::process());
    }
    let (cfg, settings) = match config::load::<S::Settings, _>(&Env::process(), S::DEFAULT_PORT) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{}: configuration: {err}", S::NAME);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("{}: cannot start the runtime: {err}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let telemetry = telemetry::init(S::NAME, &cfg.telemetry);
        let result = command.run::<S>(cfg, settings).await;
        if let Err(err) = &result {
            tracing::error!(error = %err, "{} failed", S::NAME);
        }
        telemetry.shutdown();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{}: {err}", S::NAME);
                ExitCode::FAILURE
            }
        }
    })
}

/// `verify-audit`: reads `HEARTH_DATABASE_URL` and `HEARTH_AUDIT_SEAL_KEY` only, walks
/// every chain of the audit log, and exits 1 naming the first broken link.
fn verify_audit<S: Service>(env: &Env<impl Fn(&str) -> Option<String>>) -> ExitCode {
    let settings = env.required("HEARTH_DATABASE_URL").and_then(|url| {
        env.secret("HEARTH_AUDIT_SEAL_KEY", 32)
            .map(|key| (crate::config::Secret::new(url), key))
    });
    let (url, key) = match settings {
        Ok(s) => s,
        Err(err) => {
            eprintln!("{}: configuration: {err}", S::NAME);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("{}: cannot start the runtime: {err}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    let verdict = runtime.block_on(async {
        let pool = db::connect(&url, S::NAME, 2, DATABASE_PATIENCE).await?;
        crate::audit::verify(&pool, S::NAME, &Sealer::new(&key)).await
    });
    match verdict {
        Ok(Verdict::Intact { chains, records }) => {
            println!("the audit log is intact: {records} records in {chains} chains");
            ExitCode::SUCCESS
        }
        Ok(Verdict::Broken {
            chain,
            seq,
            problem,
        }) => {
            eprintln!(
                "{}: the audit log is broken at chain {chain}, record {seq}: {problem}",
                S::NAME
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("{}: cannot read the audit log: {err}", S::NAME);
            ExitCode::FAILURE
        }
    }
}

/// The commands every service binary takes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Serve,
    Migrate,
    Republish { from: i64 },
    VerifyAudit,
}

impl Command {
    const USAGE: &'static str = "usage:
  SERVICE                        serve (the default)
  SERVICE migrate                apply migrations and exit
  SERVICE republish --from SEQ   publish the outbox again from sequence SEQ
  SERVICE verify-audit           check the audit log's chains and seals; exit 1 at a broken link";

    fn parse(args: &[String]) -> Result<Command, String> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            [] | ["serve"] => Ok(Command::Serve),
            ["migrate"] => Ok(Command::Migrate),
            ["verify-audit"] => Ok(Command::VerifyAudit),
            ["republish", "--from", n] => n
                .parse()
                .map(|from| Command::Republish { from })
                .map_err(|_| format!("--from takes an outbox sequence number, not {n:?}")),
            ["help" | "--help" | "-h"] => Err("commands".into()),
            other => Err(format!("unknown command {:?}", other.join(" "))),
        }
    }

    async fn run<S: Service>(
        self,
        cfg: ServiceConfig,
        settings: S::Settings,
    ) -> Result<(), BoxError> {
        match self {
            Command::Serve => {
                let listener = TcpListener::bind(cfg.grpc_addr)
                    .await
                    .map_err(|e| format!("binding {}: {e}", cfg.grpc_addr))?;
                let shutdown = CancellationToken::new();
                server::cancel_on_signal(shutdown.clone());
                run::<S>(cfg, settings, listener, shutdown).await
            }
            Command::Migrate => {
                // Migrating as the serving role would make it the owner of the audit
                // log, which it must never be able to change.
                if cfg.database_owner_url.is_none() {
                    return Err(
                        "HEARTH_DATABASE_OWNER_URL: is required by migrate (the schema's \
                         owner migrates; the serving role of HEARTH_DATABASE_URL may only add to \
                         the audit log)"
                            .into(),
                    );
                }
                migrate_as_owner::<S>(&cfg).await?;
                println!("migrations applied");
                Ok(())
            }
            // `main` runs it before reading the service's configuration.
            Command::VerifyAudit => Err("verify-audit is run by main".into()),
            Command::Republish { from } => {
                let pool = connect::<S>(&cfg, 2).await?;
                let n = outbox::republish_from(&pool, S::NAME, from).await?;
                println!("{n} events from sequence {from} will be published again");
                Ok(())
            }
        }
    }
}

/// A consumer spec for `durable` reading every event of another service's `stream`
/// (no filter: a stream captures one subject per event entity, and nats-server 2.9
/// keeps one filter subject per consumer). Its handler picks the events it needs by
/// their typed constants.
pub fn consumer_of(stream: &hearth_proto::events::Stream, durable: &str) -> ConsumerSpec {
    ConsumerSpec::new(stream.name, durable, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn commands_parse() {
        assert_eq!(Command::parse(&args(&[])), Ok(Command::Serve));
        assert_eq!(Command::parse(&args(&["serve"])), Ok(Command::Serve));
        assert_eq!(Command::parse(&args(&["migrate"])), Ok(Command::Migrate));
        assert_eq!(
            Command::parse(&args(&["verify-audit"])),
            Ok(Command::VerifyAudit)
        );
        assert_eq!(
            Command::parse(&args(&["republish", "--from", "42"])),
            Ok(Command::Republish { from: 42 })
        );
        assert!(Command::parse(&args(&["republish", "--from", "x"])).is_err());
        assert!(Command::parse(&args(&["republish"])).is_err());
        assert!(Command::parse(&args(&["frobnicate"])).is_err());
    }

    #[test]
    fn a_consumer_takes_the_whole_stream() {
        let spec = consumer_of(&hearth_proto::events::referrals::STREAM, "assessments");
        assert_eq!(spec.filter_subject, "");
        assert_eq!(spec.stream, "REFERRALS");
    }
}
