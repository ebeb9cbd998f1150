//! Mutual TLS for partner systems: the settings, the server's TLS configuration, and
//! the one rule that ties a client certificate to the bearer token sent with it.
//!
//! - **Settings.** `HEARTH_TLS_CERT` and `HEARTH_TLS_KEY` (the server's certificate
//!   chain and private key, PEM) and `HEARTH_TLS_CLIENT_CA` (the CA, PEM, that partner
//!   systems' client certificates must chain to). All three or none: with none the
//!   service speaks plaintext gRPC, as before. With them, every connection to the gRPC
//!   port is TLS 1.2 or 1.3 (rustls speaks nothing older) and must present a client
//!   certificate the CA issued and that is in date; otherwise the handshake fails and
//!   no call is made. `HEARTH_HEALTH_ADDR` is then required: a plaintext port that
//!   serves the gRPC health protocol and nothing else, for probes that cannot present
//!   a certificate (Kubernetes' gRPC probes).
//! - **The organisation in a certificate** is a URI subject alternative name
//!   `urn:hearth:org:<organisation-id>` (the id as tokens carry it in `org`: lower-case
//!   letters, digits and hyphens). A certificate names exactly one organisation.
//! - **Both credentials, one organisation.** A call still needs its bearer token; the
//!   token's organisation must be the certificate's. If it is not, or the certificate
//!   names no organisation, the call is refused with UNAUTHENTICATED (reasons
//!   [`ORGANISATION_MISMATCH`], [`ORGANISATION_MISSING`]): two credentials that name
//!   different organisations identify nobody, and the gRPC status codes keep
//!   PERMISSION_DENIED for a caller who is identified. The check runs in the
//!   [`Authenticator`](crate::auth::Authenticator), before any handler.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::config::{ConfigError, Env};

/// The server's certificate chain (PEM).
pub const CERT_VAR: &str = "HEARTH_TLS_CERT";
/// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
pub const KEY_VAR: &str = "HEARTH_TLS_KEY";
/// The CA (PEM, one or more certificates) client certificates must chain to.
pub const CLIENT_CA_VAR: &str = "HEARTH_TLS_CLIENT_CA";
/// The plaintext health-only address (required with mTLS on).
pub const HEALTH_ADDR_VAR: &str = "HEARTH_HEALTH_ADDR";

/// How a client certificate names its organisation: a URI subject alternative name
/// with this prefix, followed by the organisation id.
pub const ORGANISATION_URI_PREFIX: &str = "urn:hearth:org:";

/// The `ErrorInfo` reason when the token's organisation is not the certificate's.
pub const ORGANISATION_MISMATCH: &str = "CERTIFICATE_ORGANISATION_MISMATCH";
/// The `ErrorInfo` reason when the certificate names no organisation (or several).
pub const ORGANISATION_MISSING: &str = "CERTIFICATE_ORGANISATION_MISSING";

/// How long a TLS handshake may take before the connection is dropped, so that a
/// client that opens connections and never finishes them holds nothing for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's certificate, key and the client CA are (all three, or mTLS is off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `HEARTH_TLS_CERT`.
    pub cert: PathBuf,
    /// `HEARTH_TLS_KEY`.
    pub key: PathBuf,
    /// `HEARTH_TLS_CLIENT_CA`.
    pub client_ca: PathBuf,
}

impl TlsConfig {
    /// Reads the three settings: none set is `None` (plaintext); some but not all is an
    /// error naming the first one missing.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<Option<TlsConfig>, ConfigError> {
        let vars = [CERT_VAR, KEY_VAR, CLIENT_CA_VAR];
        match vars.map(|v| env.optional(v)) {
            [None, None, None] => Ok(None),
            [Some(cert), Some(key), Some(client_ca)] => Ok(Some(TlsConfig {
                cert: cert.into(),
                key: key.into(),
                client_ca: client_ca.into(),
            })),
            values => {
                let given = |set: bool| -> Vec<&str> {
                    vars.iter()
                        .zip(&values)
                        .filter(|(_, v)| v.is_some() == set)
                        .map(|(k, _)| *k)
                        .collect()
                };
                Err(ConfigError {
                    var: given(false)[0].into(),
                    problem: format!(
                        "is required when {} is set: mutual TLS needs the server's \
                         certificate and key and the client CA",
                        given(true).join(" and ")
                    ),
                })
            }
        }
    }
}

/// Reads `HEARTH_HEALTH_ADDR`: required when mTLS is on (a probe's port is part of
/// the deployment, so it is named, not guessed); optional otherwise, when health is
/// also served there.
pub fn health_addr_from_env<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    mtls: bool,
) -> Result<Option<SocketAddr>, ConfigError> {
    match env.optional(HEALTH_ADDR_VAR) {
        None if mtls => Err(ConfigError {
            var: HEALTH_ADDR_VAR.into(),
            problem: format!(
                "is required when mutual TLS is on ({CERT_VAR} etc.): probes cannot \
                 present a client certificate, so health is also served in plaintext \
                 there, e.g. 0.0.0.0:8081"
            ),
        }),
        None => Ok(None),
        Some(_) => env
            .parse_or(HEALTH_ADDR_VAR, SocketAddr::from(([0, 0, 0, 0], 0)))
            .map(Some),
    }
}

/// A TLS file that cannot be used, or settings that do not fit together.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{var} ({}): {problem}", path.display())]
    File {
        var: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("{CERT_VAR}, {KEY_VAR}, {CLIENT_CA_VAR}: {0}")]
    Invalid(String),
}

fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        var,
        path: path.into(),
        problem: format!("cannot read: {e}"),
    })
}

fn certificates(var: &'static str, path: &Path, pem: &[u8]) -> Result<usize, TlsError> {
    let problem = |problem: String| TlsError::File {
        var,
        path: path.into(),
        problem,
    };
    let n = CertificateDer::pem_slice_iter(pem)
        .try_fold(0, |n, c| c.map(|_| n + 1))
        .map_err(|e| problem(format!("bad PEM: {e}")))?;
    if n == 0 {
        return Err(problem("holds no PEM certificate".into()));
    }
    Ok(n)
}

/// The server's TLS configuration from the files `cfg` names: the certificate and key,
/// and client certificates required and verified against the CA. Every file is read
/// and checked now, and the whole is built once, so a missing file, a key that does
/// not match its certificate or a CA with no certificate stops start-up here.
pub fn server_config(cfg: &TlsConfig) -> Result<ServerTlsConfig, TlsError> {
    let cert = read(CERT_VAR, &cfg.cert)?;
    let key = read(KEY_VAR, &cfg.key)?;
    let ca = read(CLIENT_CA_VAR, &cfg.client_ca)?;
    certificates(CERT_VAR, &cfg.cert, &cert)?;
    certificates(CLIENT_CA_VAR, &cfg.client_ca, &ca)?;
    if PrivateKeyDer::from_pem_slice(&key).is_err() {
        return Err(TlsError::File {
            var: KEY_VAR,
            path: cfg.key.clone(),
            problem: "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into(),
        });
    }
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(false)
        .timeout(HANDSHAKE_TIMEOUT);
    tonic::transport::Server::builder()
        .tls_config(config.clone())
        .map_err(|e| TlsError::Invalid(error_chain(&e)))?;
    Ok(config)
}

/// An error and its sources, `: `-separated (tonic's own message is only "transport
/// error"; a TLS alert is several layers down).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Why a certificate names no usable organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Not an X.509 certificate we can read.
    Unreadable,
    /// No `urn:hearth:org:` URI, or one whose id is not an organisation id.
    NoOrganisation,
    /// More than one organisation.
    Several,
}

impl fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertificateProblem::Unreadable => "the client certificate cannot be read",
            CertificateProblem::NoOrganisation => {
                "the client certificate names no organisation (a URI subject alternative \
                 name urn:hearth:org:<organisation-id>)"
            }
            CertificateProblem::Several => "the client certificate names several organisations",
        })
    }
}

/// The organisation a certificate (DER) names in its subject alternative names.
pub fn organisation_of(der: &[u8]) -> Result<String, CertificateProblem> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|_| CertificateProblem::Unreadable)?;
    let mut found: Option<String> = None;
    let extensions = cert.tbs_certificate.extensions.unwrap_or_default();
    for ext in extensions
        .iter()
        .filter(|e| e.extn_id == x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)
    {
        let names = SubjectAltName::from_der(ext.extn_value.as_bytes())
            .map_err(|_| CertificateProblem::Unreadable)?;
        for name in names.0 {
            let GeneralName::UniformResourceIdentifier(uri) = name else {
                continue;
            };
            let Some(org) = uri.as_str().strip_prefix(ORGANISATION_URI_PREFIX) else {
                continue;
            };
            if !is_organisation_id(org) {
                return Err(CertificateProblem::NoOrganisation);
            }
            match &found {
                Some(seen) if seen != org => return Err(CertificateProblem::Several),
                _ => found = Some(org.to_owned()),
            }
        }
    }
    found.ok_or(CertificateProblem::NoOrganisation)
}

/// An organisation id: lower-case letters, digits and hyphens, 1 to 64 of them.
fn is_organisation_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The check the authenticator makes with mTLS on: the leaf of the client's chain
/// (`peer_certs`, as tonic gives it) names `organisation`, the token's. The refusal
/// is UNAUTHENTICATED with the reason, from `domain`.
pub fn check_certificate_organisation<C: AsRef<[u8]>>(
    peer_certs: Option<&[C]>,
    organisation: &str,
    domain: &str,
) -> Result<(), Status> {
    // With mTLS on the handshake has already refused a client without a certificate;
    // this is the same rule again, in case that ever changes (deny by default).
    let Some(leaf) = peer_certs.and_then(<[C]>::first) else {
        return Err(refuse(
            ORGANISATION_MISSING,
            "a client certificate is required",
            domain,
        ));
    };
    match organisation_of(leaf.as_ref()) {
        Ok(org) if org == organisation => Ok(()),
        Ok(org) => {
            // Organisation ids are not personal data: operators may see both.
            tracing::info!(
                token_org = organisation,
                certificate_org = %org,
                "call refused: the token's organisation is not the certificate's"
            );
            Err(refuse(
                ORGANISATION_MISMATCH,
                "the bearer token's organisation is not the one the client certificate names",
                domain,
            ))
        }
        Err(problem) => {
            tracing::info!(reason = %problem, "call refused: client certificate");
            Err(refuse(ORGANISATION_MISSING, &problem.to_string(), domain))
        }
    }
}

fn refuse(reason: &str, message: &str, domain: &str) -> Status {
    Status::with_error_details(
        Code::Unauthenticated,
        message,
        ErrorDetails::with_error_info(reason, domain, HashMap::<String, String>::new()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        crate::config::env_of(pairs)
    }

    #[test]
    fn none_of_the_settings_is_plaintext() {
        assert_eq!(TlsConfig::from_env(&env(&[])).unwrap(), None);
        assert_eq!(health_addr_from_env(&env(&[]), false).unwrap(), None);
    }

    #[test]
    fn a_partial_set_names_the_missing_variable() {
        let err =
            TlsConfig::from_env(&env(&[(CERT_VAR, "/c.pem"), (KEY_VAR, "/k.pem")])).unwrap_err();
        assert_eq!(err.var, CLIENT_CA_VAR);
        assert!(err.problem.contains(CERT_VAR), "{err}");
        let err = TlsConfig::from_env(&env(&[(CLIENT_CA_VAR, "/ca.pem")])).unwrap_err();
        assert_eq!(err.var, CERT_VAR);
    }

    #[test]
    fn with_mtls_on_the_health_address_is_required() {
        let err = health_addr_from_env(&env(&[]), true).unwrap_err();
        assert_eq!(err.var, HEALTH_ADDR_VAR);
        let addr = health_addr_from_env(&env(&[(HEALTH_ADDR_VAR, "127.0.0.1:8081")]), true);
        assert_eq!(addr.unwrap(), Some(([127, 0, 0, 1], 8081).into()));
        let err = health_addr_from_env(&env(&[(HEALTH_ADDR_VAR, "8081")]), true).unwrap_err();
        assert_eq!(err.var, HEALTH_ADDR_VAR);
    }

    #[test]
    fn a_missing_file_names_its_variable_and_path() {
        let cfg = TlsConfig {
            cert: "/nonexistent/server.pem".into(),
            key: "/nonexistent/server.key".into(),
            client_ca: "/nonexistent/ca.pem".into(),
        };
        let err = server_config(&cfg).unwrap_err().to_string();
        assert!(
            err.starts_with("HEARTH_TLS_CERT (/nonexistent/server.pem): cannot read"),
            "{err}"
        );
    }

    #[test]
    fn organisation_ids_are_checked() {
        assert!(is_organisation_id("st-marys-primary"));
        assert!(!is_organisation_id("St-Marys"));
        assert!(!is_organisation_id(""));
        assert!(!is_organisation_id("a/b"));
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_certificate_names_its_organisation_in_a_uri_san() {
        use hearth_testkit::tls::{Ca, Validity};
        use rcgen::SanType;
        let ca = Ca::new("test CA");
        let cert = der(&ca.client("st-marys-primary").cert);
        assert_eq!(organisation_of(&cert).unwrap(), "st-marys-primary");
        assert!(
            check_certificate_organisation(Some(&[&cert[..]]), "st-marys-primary", "x").is_ok()
        );
        let status =
            check_certificate_organisation(Some(&[&cert[..]]), "midlothian", "x").unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            ORGANISATION_MISMATCH
        );

        let uri = |u: &str| SanType::URI(u.try_into().unwrap());
        let with = |sans| der(&ca.client_with_sans("x", sans, Validity::YEAR).cert);
        assert_eq!(
            organisation_of(&with(vec![])),
            Err(CertificateProblem::NoOrganisation)
        );
        // Another URI, or a DNS name, is not an organisation.
        assert_eq!(
            organisation_of(&with(vec![
                uri("https://partner.example/"),
                SanType::DnsName("partner.example".try_into().unwrap()),
            ])),
            Err(CertificateProblem::NoOrganisation)
        );
        assert_eq!(
            organisation_of(&with(vec![uri("urn:hearth:org:Not An Id")])),
            Err(CertificateProblem::NoOrganisation)
        );
        assert_eq!(
            organisation_of(&with(vec![
                uri("urn:hearth:org:a"),
                uri("urn:hearth:org:b")
            ])),
            Err(CertificateProblem::Several)
        );
        assert_eq!(
            organisation_of(&with(vec![
                uri("urn:hearth:org:a"),
                uri("urn:hearth:org:a")
            ])),
            Ok("a".to_owned())
        );
    }

    #[test]
    fn no_certificate_is_refused() {
        let status = check_certificate_organisation::<Vec<u8>>(None, "o", "x.hearth").unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            ORGANISATION_MISSING
        );
        let status = check_certificate_organisation(Some(&[b"not der".to_vec()]), "o", "x.hearth")
            .unwrap_err();
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            ORGANISATION_MISSING
        );
    }
}
