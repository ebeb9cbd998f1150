//! gRPC plumbing shared by `run` and `bench`: channels to a local service, bearer
//! metadata, and waiting for the health protocol to report SERVING.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

/// The referrals service as the health protocol names it.
pub const REFERRALS_SERVICE: &str = referrals::SERVICE_NAME;

/// A client for the referrals service.
pub type Client = ReferralsServiceClient<Channel>;

/// An endpoint for `http://127.0.0.1:{port}` with short connect timeouts.
pub fn endpoint(port: u16) -> Result<Endpoint> {
    Ok(Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true))
}

/// A connected channel to the local service on `port`.
pub async fn connect(port: u16) -> Result<Channel> {
    endpoint(port)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to 127.0.0.1:{port}"))
}

/// The `authorization` metadata value for a token.
pub fn bearer(token: &str) -> Result<MetadataValue<Ascii>> {
    format!("Bearer {token}")
        .parse()
        .context("the token is not valid header text")
}

/// `msg` as a request carrying `auth`.
pub fn request<T>(msg: T, auth: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("authorization", auth.clone());
    req
}

/// One health check: `Ok(true)` when SERVING, `Ok(false)` for any other status or
/// when nothing answers yet.
pub async fn is_serving(port: u16, service: &str) -> Result<bool> {
    let Ok(channel) = endpoint(port)?.connect().await else {
        return Ok(false);
    };
    Ok(hearth_testkit::harness::is_serving(channel, service).await)
}

/// Polls the health protocol until `service` is SERVING or `timeout` passes.
/// `still_alive` is asked between attempts, so a crashed server fails fast; its
/// error explains what happened.
pub async fn wait_serving(
    port: u16,
    service: &str,
    timeout: Duration,
    mut still_alive: impl FnMut() -> Result<()>,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        still_alive()?;
        if is_serving(port, service).await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{service} on 127.0.0.1:{port} was not SERVING within {}s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
