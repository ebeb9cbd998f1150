//! The referrals service: Hearth's front door. Partner agencies and families send
//! referrals; the receiving area's triage team contacts the family and decides. Every
//! change is announced on JetStream through the outbox.
//!
//! `main.rs` wires config → telemetry → [`run`]; tests call [`run`] directly.

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
pub mod intake;
pub mod store;

use std::time::Duration;

use hearth_platform::auth::{Authenticator, TokenVerifier};
use hearth_platform::config::ServiceConfig;
use hearth_platform::outbox::Relay;
use hearth_platform::{db, server};
use hearth_proto::referrals::referrals_service_server::ReferralsServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

/// The fully-qualified gRPC service name, as health checks know it.
pub const SERVICE_NAME: &str = "hearth.referrals.v1.ReferralsService";
/// Default gRPC port.
pub const DEFAULT_PORT: u16 = 50051;

/// The service's migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the service on `listener` until `shutdown` fires: migrates, starts the outbox
/// relay, serves gRPC; on shutdown, drains calls, then stops the relay.
pub async fn run(
    cfg: ServiceConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), BoxError> {
    let verifier = TokenVerifier::from_config(&cfg.auth)?;
    let pool = db::connect(
        &cfg.database_url,
        store::SCHEMA,
        cfg.database_max_connections,
        Duration::from_secs(30),
    )
    .await?;
    db::migrate(&pool, store::SCHEMA, &MIGRATOR).await?;
    let nats = server::connect_nats(&cfg.nats_url, "referrals").await?;
    let js = async_nats::jetstream::new(nats.clone());

    let relay_stop = CancellationToken::new();
    let relay = Relay::new(pool.clone(), js, store::SCHEMA, events::stream_spec())
        .batch_size(cfg.relay_batch_size)
        .poll_interval(cfg.relay_poll);
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));

    let (api, writers) = api::ReferralsApi::start(
        pool.clone(),
        intake::IntakeOptions {
            writers: cfg.writers,
            max_batch: cfg.write_batch_max,
        },
    )?;
    let svc = ReferralsServiceServer::new(api)
        .max_decoding_message_size(cfg.max_message_bytes)
        .max_encoding_message_size(cfg.max_message_bytes);
    let routes = Routes::new(InterceptedService::new(
        svc,
        Authenticator::new(verifier, api::DOMAIN),
    ));
    tracing::info!(addr = %listener.local_addr()?, "referrals service listening");
    let served = server::serve(
        listener,
        (&cfg).into(),
        routes,
        &[SERVICE_NAME],
        hearth_proto::FILE_DESCRIPTOR_SET,
        shutdown,
    )
    .await;

    // Calls have drained: the writers finish what is queued and stop. Then the relay
    // finishes its batch.
    writers.finish().await;
    relay_stop.cancel();
    let _ = relay_task.await;
    // Flush what the relay handed to the client, but do not hang if NATS is down:
    // anything unacknowledged is still unpublished in the outbox.
    let _ = tokio::time::timeout(Duration::from_secs(2), nats.flush()).await;
    pool.close().await;
    tracing::info!("referrals service stopped");
    served.map_err(Into::into)
}
