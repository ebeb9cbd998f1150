//! The gRPC server scaffold every service uses: health protocol, server reflection,
//! per-request timeout, a global concurrency limit that sheds load (RESOURCE_EXHAUSTED)
//! instead of queueing, trace-context extraction, and graceful shutdown (health goes
//! NOT_SERVING first, in-flight calls finish, then the listener closes).

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::ServiceConfig;

/// How the server behaves; usually taken from [`ServiceConfig`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub shutdown_drain: Duration,
}

impl From<&ServiceConfig> for ServerOptions {
    fn from(cfg: &ServiceConfig) -> Self {
        ServerOptions {
            request_timeout: cfg.request_timeout,
            max_concurrent_requests: cfg.max_concurrent_requests,
            shutdown_drain: cfg.shutdown_drain,
        }
    }
}

/// The gRPC health protocol's service name.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Serves `routes` (the service's own gRPC services, already wrapped with
/// authentication) plus health and reflection on `listener` until `shutdown` fires.
/// `names` are the fully-qualified service names reported as SERVING; `descriptors`
/// is the encoded `FileDescriptorSet` reflection serves for them.
pub async fn serve(
    listener: TcpListener,
    opts: ServerOptions,
    routes: Routes,
    names: &[&'static str],
    descriptors: &'static [u8],
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    for name in names.iter().copied().chain([""]) {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    // The descriptor set holds every Hearth contract; advertise only what this server
    // answers, so `list` never offers a service that would say UNIMPLEMENTED.
    let reflection = || {
        names.iter().copied().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(descriptors)
                .with_service_name(HEALTH_SERVICE),
            |b, name| b.with_service_name(name),
        )
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the descriptor set is valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the descriptor set is valid");

    let limits = tower::ServiceBuilder::new()
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            opts.max_concurrent_requests,
        ));

    // Without TCP_NODELAY, Nagle's algorithm holds small responses back for up to
    // ~40 ms waiting for the client's delayed ACK: a latency floor on every call.
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let names: Vec<&'static str> = names.to_vec();
    let signal = drain(reporter, names, opts.shutdown_drain, shutdown);
    tonic::transport::Server::builder()
        .timeout(opts.request_timeout)
        .trace_fn(crate::telemetry::grpc_request_span)
        .layer(limits)
        .add_routes(routes)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, signal)
        .await
}

async fn drain(
    reporter: HealthReporter,
    names: Vec<&'static str>,
    wait: Duration,
    shutdown: CancellationToken,
) {
    shutdown.cancelled().await;
    for name in names.iter().copied().chain([""]) {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    tracing::info!(
        drain_ms = wait.as_millis() as u64,
        "shutting down: health is NOT_SERVING"
    );
    tokio::time::sleep(wait).await;
}

/// Fires `token` on SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received"),
            _ = term => tracing::info!("SIGTERM received"),
        }
        token.cancel();
    });
}

/// Connects to NATS. The client keeps retrying in the background if the server is not
/// up yet, so a service starts (and keeps accepting writes into its outbox) while NATS
/// is down.
pub async fn connect_nats(
    url: &str,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}
