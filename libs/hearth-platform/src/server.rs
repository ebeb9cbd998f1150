//! The gRPC server scaffold every service uses: health protocol, server reflection,
//! per-request timeout, a global concurrency limit that sheds load (RESOURCE_EXHAUSTED)
//! instead of queueing, message-size limits (RESOURCE_EXHAUSTED with reason
//! `MESSAGE_TOO_LARGE`), trace-context extraction, and graceful shutdown (health goes
//! NOT_SERVING first, in-flight calls finish, then the listener closes). With mutual
//! TLS on, the gRPC port takes only TLS connections with a client certificate, and a
//! second, plaintext port serves the same health status and nothing else.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

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

/// How the server is reached: its gRPC listener, TLS on it (mutual TLS, from
/// [`crate::tls::server_config`]), and a plaintext listener that serves health only.
/// From a bare listener: plaintext, and health on the gRPC port alone.
#[derive(Debug)]
pub struct Transport {
    pub listener: TcpListener,
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    pub health: Option<TcpListener>,
}

impl From<TcpListener> for Transport {
    fn from(listener: TcpListener) -> Self {
        Transport {
            listener,
            tls: None,
            health: None,
        }
    }
}

/// Serves `routes` (the service's own gRPC services, already wrapped with
/// authentication) plus health and reflection on `transport` until `shutdown` fires.
/// `names` are the fully-qualified service names reported as SERVING; `descriptors`
/// is the encoded `FileDescriptorSet` reflection serves for them; `domain` is the
/// service's error domain. `transport` may add TLS and the health-only port; the latter
/// reports what the main server's health does (one reporter), NOT_SERVING through the
/// drain, and closes after the main server.
pub async fn serve(
    transport: Transport,
    opts: ServerOptions,
    domain: &'static str,
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
        .layer(OversizeLayer { domain })
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            opts.max_concurrent_requests,
        ));

    // Without TCP_NODELAY, Nagle's algorithm holds small responses back for up to
    // ~40 ms waiting for the client's delayed ACK: a latency floor on every call.
    let incoming = tonic::transport::server::TcpIncoming::from(transport.listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let names: Vec<&'static str> = names.to_vec();
    let signal = drain(reporter, names, opts.shutdown_drain, shutdown);
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = transport.tls {
        server = server.tls_config(tls)?;
    }
    let health_only = transport
        .health
        .map(|l| serve_health_only(l, health_service.clone()));
    let served = server
        .timeout(opts.request_timeout)
        .trace_fn(crate::telemetry::grpc_request_span)
        .layer(limits)
        .add_routes(routes)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, signal)
        .await;
    if let Some((stop, task)) = health_only {
        stop.cancel();
        if let Ok(Err(e)) = task.await {
            tracing::warn!(error = %e, "the health-only server failed");
        }
    }
    served
}

/// The plaintext health-only server: the health service given (so the status is the
/// main server's), nothing else, until the returned token is cancelled.
fn serve_health_only<H: tonic_health::pb::health_server::Health>(
    listener: TcpListener,
    health: tonic_health::pb::health_server::HealthServer<H>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "health listening (plaintext, health only)");
    }
    let stop = CancellationToken::new();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
    (stop, tokio::spawn(server))
}

/// Sets a generated gRPC server's message-size limits, both ways. Implemented for
/// every Hearth service, so the kit can apply one limit to whatever a service serves.
pub trait MessageLimits {
    fn message_limits(self, max_bytes: usize) -> Self;
}

macro_rules! message_limits {
    ($($server:ty : $service:path),* $(,)?) => {$(
        impl<T: $service> MessageLimits for $server {
            fn message_limits(self, max_bytes: usize) -> Self {
                self.max_decoding_message_size(max_bytes)
                    .max_encoding_message_size(max_bytes)
            }
        }
    )*};
}

message_limits!(
    hearth_proto::referrals::referrals_service_server::ReferralsServiceServer<T>:
        hearth_proto::referrals::referrals_service_server::ReferralsService,
    hearth_proto::assessments::assessments_service_server::AssessmentsServiceServer<T>:
        hearth_proto::assessments::assessments_service_server::AssessmentsService,
    hearth_proto::delivery::delivery_service_server::DeliveryServiceServer<T>:
        hearth_proto::delivery::delivery_service_server::DeliveryService,
    hearth_proto::evaluation::evaluation_service_server::EvaluationServiceServer<T>:
        hearth_proto::evaluation::evaluation_service_server::EvaluationService,
    hearth_proto::access::access_service_server::AccessServiceServer<T>:
        hearth_proto::access::access_service_server::AccessService,
);

/// tonic's codec answers a message over the size limit with OUT_OF_RANGE. The gRPC
/// status-code specification says RESOURCE_EXHAUSTED, and a caller must be able to
/// tell it from load shedding (the same code): this layer rewrites it, in the headers
/// (a request too large: trailers-only) and in the trailers (a response too large),
/// with the ErrorInfo reason `MESSAGE_TOO_LARGE`.
#[derive(Debug, Clone, Copy)]
pub struct OversizeLayer {
    pub domain: &'static str,
}

impl<S> tower::Layer<S> for OversizeLayer {
    type Service = Oversize<S>;
    fn layer(&self, inner: S) -> Oversize<S> {
        Oversize {
            inner,
            domain: self.domain,
        }
    }
}

/// See [`OversizeLayer`].
#[derive(Debug, Clone)]
pub struct Oversize<S> {
    inner: S,
    domain: &'static str,
}

impl<S, Req, B> tower::Service<Req> for Oversize<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
{
    type Response = http::Response<OversizeBody<B>>;
    type Error = S::Error;
    type Future = OversizeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        OversizeFuture {
            call: self.inner.call(req),
            domain: self.domain,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of a call through [`Oversize`] (no allocation per call).
    pub struct OversizeFuture<F> {
        #[pin]
        call: F,
        domain: &'static str,
    }
}

impl<F, B, E> std::future::Future for OversizeFuture<F>
where
    F: std::future::Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<OversizeBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let domain = *this.domain;
        this.call.poll(cx).map_ok(|mut resp| {
            rewrite_oversize(resp.headers_mut(), domain);
            resp.map(|inner| OversizeBody { inner, domain })
        })
    }
}

/// A response body whose trailers get the same rewrite.
#[derive(Debug)]
pub struct OversizeBody<B> {
    inner: B,
    domain: &'static str,
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for OversizeBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let domain = self.domain;
        Pin::new(&mut self.inner).poll_frame(cx).map(|frame| {
            frame.map(|f| {
                f.map(|f| match f.into_trailers() {
                    Ok(mut trailers) => {
                        rewrite_oversize(&mut trailers, domain);
                        Frame::trailers(trailers)
                    }
                    Err(data) => data,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// tonic's codec says OUT_OF_RANGE and "… message length too large …".
fn rewrite_oversize(headers: &mut http::HeaderMap, domain: &'static str) {
    let is_oversize = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers.get("grpc-message").is_some_and(|m| {
            let m = m.to_str().unwrap_or_default();
            m.contains("message length too large") || m.contains("message%20length%20too%20large")
        });
    if !is_oversize {
        return;
    }
    let status = crate::error::ApiError::MessageTooLarge {
        message: "the message is larger than this service accepts (HEARTH_MAX_MESSAGE_BYTES)"
            .into(),
    }
    .into_status(domain);
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    for (name, value) in status.into_http::<()>().headers() {
        if name.as_str().starts_with("grpc-") {
            headers.insert(name.clone(), value.clone());
        }
    }
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
/// is down. A user and password in the URL (`nats://user:password@host:port`) are
/// sent as credentials.
pub async fn connect_nats(
    url: &crate::config::Secret<String>,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let (url, credentials) = split_credentials(url.expose());
    let options = match credentials {
        Some((user, password)) => {
            async_nats::ConnectOptions::with_user_and_password(user, password)
        }
        None => async_nats::ConnectOptions::new(),
    };
    options
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
}

/// `nats://user:password@host:port` → (`nats://host:port`, user and password).
fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            (
                format!("{scheme}://{host}"),
                Some((user.to_owned(), password.to_owned())),
            )
        }
        None => (url.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_of_the_nats_url() {
        assert_eq!(
            split_credentials("nats://svc:s3cret@127.0.0.1:4222"),
            (
                "nats://127.0.0.1:4222".to_owned(),
                Some(("svc".to_owned(), "s3cret".to_owned()))
            )
        );
        assert_eq!(
            split_credentials("nats://127.0.0.1:4222"),
            ("nats://127.0.0.1:4222".to_owned(), None)
        );
    }

    #[test]
    fn out_of_range_for_size_becomes_resource_exhausted() {
        let status = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 5242880 bytes, the limit is: 4194304 bytes",
        );
        let mut headers = status.into_http::<()>().headers().clone();
        rewrite_oversize(&mut headers, "referrals.hearth");
        let back = tonic::Status::from_header_map(&headers).unwrap();
        assert_eq!(back.code(), tonic::Code::ResourceExhausted);
        use tonic_types::StatusExt as _;
        assert_eq!(
            back.get_details_error_info().unwrap().reason,
            "MESSAGE_TOO_LARGE"
        );
        // Any other OUT_OF_RANGE is left alone.
        let other = tonic::Status::out_of_range("page 9 of 3").into_http::<()>();
        let mut headers = other.headers().clone();
        rewrite_oversize(&mut headers, "referrals.hearth");
        assert_eq!(
            tonic::Status::from_header_map(&headers).unwrap().code(),
            tonic::Code::OutOfRange
        );
    }
}
