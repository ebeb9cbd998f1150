//! Certificates for mutual TLS in tests and `make run ARGS=--mtls`: a throwaway CA,
//! a server certificate for the loopback address, and client certificates naming an
//! organisation the way services read it (a URI subject alternative name
//! `urn:hearth:org:<organisation-id>`, [`hearth_platform::tls`]). Never for
//! production: keys are made in memory and written unencrypted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{Datelike as _, Utc};
use hearth_platform::tls::{self, ORGANISATION_URI_PREFIX};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A certificate and its private key, as PEM.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pem([key redacted])")
    }
}

impl Pem {
    /// As a TLS identity for a tonic client or server.
    pub fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert, &self.key)
    }

    /// Writes `<stem>.pem` and `<stem>.key` (the key readable by its owner only) into
    /// `dir`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert)?;
        write_private(&key, &self.key)?;
        Ok((cert, key))
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

/// A certificate authority that issues server and client certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca([key redacted])")
    }
}

/// Days a certificate is valid from (yesterday, so clocks a little behind agree) and
/// until.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub from_days_ago: i64,
    pub until_days_ahead: i64,
}

impl Validity {
    /// Valid for a year.
    pub const YEAR: Validity = Validity {
        from_days_ago: 1,
        until_days_ahead: 365,
    };
    /// Expired yesterday.
    pub const EXPIRED: Validity = Validity {
        from_days_ago: 30,
        until_days_ahead: -1,
    };

    fn apply(self, params: &mut CertificateParams) {
        let (y, m, d) = day(-self.from_days_ago);
        params.not_before = rcgen::date_time_ymd(y, m, d);
        let (y, m, d) = day(self.until_days_ahead);
        params.not_after = rcgen::date_time_ymd(y, m, d);
    }
}

/// The date `days` from today (UTC); a certificate's time is midnight of it.
fn day(days: i64) -> (i32, u8, u8) {
    let d = Utc::now().date_naive() + chrono::Duration::days(days);
    (d.year(), d.month() as u8, d.day() as u8)
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Hearth development");
    dn.push(DnType::CommonName, cn);
    dn
}

impl Ca {
    /// A new CA (ECDSA P-256), valid for ten years, named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = named(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Validity {
            from_days_ago: 1,
            until_days_ahead: 3650,
        }
        .apply(&mut params);
        let key = KeyPair::generate().expect("an ECDSA key");
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Ca { cert, key }
    }

    /// The CA's certificate (PEM): what a server trusts for client certificates and a
    /// client for the server's.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`, valid for a year.
    pub fn server(&self) -> Pem {
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("loopback names");
        params.distinguished_name = named("localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        Validity::YEAR.apply(&mut params);
        self.issue(params)
    }

    /// A client certificate for `organisation`, valid for a year.
    pub fn client(&self, organisation: &str) -> Pem {
        self.client_valid(organisation, Validity::YEAR)
    }

    /// A client certificate for `organisation`, valid as `validity` says.
    pub fn client_valid(&self, organisation: &str, validity: Validity) -> Pem {
        let uri = format!("{ORGANISATION_URI_PREFIX}{organisation}");
        self.client_with_sans(
            organisation,
            vec![SanType::URI(uri.try_into().expect("an ASCII URI"))],
            validity,
        )
    }

    /// A client certificate with exactly these subject alternative names.
    pub fn client_with_sans(&self, cn: &str, sans: Vec<SanType>, validity: Validity) -> Pem {
        let mut params = CertificateParams::default();
        params.distinguished_name = named(cn);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity.apply(&mut params);
        self.issue(params)
    }

    fn issue(&self, mut params: CertificateParams) -> Pem {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("an ECDSA key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("the CA signs");
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Mutual TLS for a service under test: a CA, a server certificate for the loopback
/// address (in the test's folder), a free port for the plaintext health server, and
/// the `HEARTH_*` settings that turn it on. Issue client certificates with `ca`.
#[derive(Debug)]
pub struct Mtls {
    pub ca: Ca,
    pub health_addr: SocketAddr,
    vars: Vec<(String, String)>,
}

impl Mtls {
    /// Writes the CA and the server's certificate and key into `dir`.
    pub fn new(dir: &Path) -> Mtls {
        let ca = Ca::new("Hearth test CA");
        let (cert, key) = ca
            .server()
            .write(dir, "server")
            .expect("write the server's files");
        let ca_file = dir.join("client-ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).expect("write the CA");
        let health_addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let vars = [
            (tls::CERT_VAR, cert.display().to_string()),
            (tls::KEY_VAR, key.display().to_string()),
            (tls::CLIENT_CA_VAR, ca_file.display().to_string()),
            (tls::HEALTH_ADDR_VAR, health_addr.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Mtls {
            ca,
            health_addr,
            vars,
        }
    }

    /// The settings that turn mutual TLS on.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// A channel to `addr` over TLS, trusting the CA for the server's certificate and
    /// presenting `client` (none: no client certificate). It connects now, so a
    /// refused handshake is this error.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        client: Option<&Pem>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.ca.cert_pem()));
        if let Some(client) = client {
            tls = tls.identity(client.identity());
        }
        Channel::from_shared(format!("https://{addr}"))
            .expect("a valid URI")
            .tls_config(tls)?
            .connect()
            .await
    }
}
