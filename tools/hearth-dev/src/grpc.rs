//! gRPC plumbing shared by `run` and `bench`: channels to a local service (plaintext,
//! or mutual TLS with a demo organisation's certificate), bearer metadata, and
//! waiting for the health protocol to report SERVING.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::tls::DevTls;

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

/// How hearth-dev's own calls (the demo loader's) reach the local service: one
/// plaintext channel for everyone, or with mutual TLS a connection per organisation
/// presenting that organisation's development certificate.
#[derive(Debug, Clone)]
pub struct Connector {
    port: u16,
    via: Via,
}

#[derive(Debug, Clone)]
enum Via {
    Plaintext(Channel),
    Mtls(Arc<DevTls>),
}

impl Connector {
    pub async fn new(port: u16, tls: Option<Arc<DevTls>>) -> Result<Connector> {
        let via = match tls {
            None => Via::Plaintext(connect(port).await?),
            Some(tls) => Via::Mtls(tls),
        };
        Ok(Connector { port, via })
    }

    /// A client for calls made with `org`'s token.
    pub async fn client(&self, org: &str) -> Result<Client> {
        let tls = match &self.via {
            Via::Plaintext(channel) => return Ok(Client::new(channel.clone())),
            Via::Mtls(tls) => tls,
        };
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.ca_pem))
            .identity(tls.client_pem(org)?.identity());
        let port = self.port;
        let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .tls_config(config)?
            .connect()
            .await
            .with_context(|| format!("cannot connect to 127.0.0.1:{port} over TLS as {org}"))?;
        Ok(Client::new(channel))
    }
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
