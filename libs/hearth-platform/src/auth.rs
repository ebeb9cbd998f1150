//! Who is calling. Every call except health and reflection carries a bearer token: a
//! JWT signed with Ed25519 (EdDSA), with issuer, audience, expiry, subject, organisation
//! id and roles, verified against configured public keys. The [`Authenticator`]
//! interceptor turns a valid token into a typed [`Caller`] in the request extensions;
//! handlers ask the caller questions and never parse tokens.
//!
//! With mutual TLS on ([`crate::tls`]), the token is still required, and its
//! organisation must be the one the client certificate names: the interceptor checks
//! both before it puts the `Caller` in.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::config::AuthConfig;
use crate::error::ApiError;

/// What a caller may do. Deny by default: a handler allows a call only for the roles
/// it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Referrer,
    Triage,
    Practitioner,
    Coordinator,
    Analyst,
    Admin,
    /// The data protection officer: reads the audit log, sees no family's records.
    Dpo,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Referrer,
        Role::Triage,
        Role::Practitioner,
        Role::Coordinator,
        Role::Analyst,
        Role::Admin,
        Role::Dpo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Referrer => "referrer",
            Role::Triage => "triage",
            Role::Practitioner => "practitioner",
            Role::Coordinator => "coordinator",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
            Role::Dpo => "dpo",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An authenticated caller: a user or system acting for an organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token subject: a user id or a partner system's client id. Not personal data
    /// about a family; safe to record in decisions and audit.
    pub subject: String,
    /// The organisation the caller acts for, e.g. `midlothian` or `st-marys-primary`.
    pub organisation: String,
    pub roles: Vec<Role>,
}

impl Caller {
    /// A caller as a verified token names them (tests and tools build one directly).
    pub fn new(subject: &str, organisation: &str, roles: &[Role]) -> Caller {
        Caller {
            subject: subject.to_owned(),
            organisation: organisation.to_owned(),
            roles: roles.to_vec(),
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    /// The caller the [`Authenticator`] put on this request.
    pub fn of<T>(req: &Request<T>) -> Result<Caller, ApiError> {
        req.extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthenticated {
                message: "no verified caller on this request".into(),
            })
    }
}

/// The claims Hearth reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
    /// Organisation id.
    pub org: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Why a token was refused. Said to the caller in general terms only.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed authorization header")]
    Malformed,
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("key file {path}: {problem}")]
    KeyFile { path: String, problem: String },
}

/// Verifies bearer tokens against a set of Ed25519 public keys.
///
/// A partner system sends the same token on every call until it expires, so a
/// verified token is remembered (with its expiry, checked on every use) and its
/// signature is not checked again. The memory is bounded.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<Vec<(String, DecodingKey)>>,
    validation: Validation,
    verified: Arc<Mutex<HashMap<String, (Caller, i64)>>>,
}

/// Tokens remembered at most; the memory is cleared when full.
const VERIFIED_CAPACITY: usize = 10_000;

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TokenVerifier")
            .field("kids", &kids)
            .finish()
    }
}

impl TokenVerifier {
    /// Loads the public keys named in the configuration.
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, AuthError> {
        if cfg.public_key_files.is_empty() {
            return Err(AuthError::KeyFile {
                path: "HEARTH_AUTH_PUBLIC_KEYS".into(),
                problem: "no key files given".into(),
            });
        }
        let mut keys = Vec::new();
        for path in &cfg.public_key_files {
            let pem = std::fs::read_to_string(path).map_err(|e| AuthError::KeyFile {
                path: path.display().to_string(),
                problem: e.to_string(),
            })?;
            let kid = kid_of(path);
            keys.push((
                kid,
                public_key_from_pem(&pem).map_err(|problem| AuthError::KeyFile {
                    path: path.display().to_string(),
                    problem,
                })?,
            ));
        }
        Ok(Self::new(keys, &cfg.issuer, &cfg.audience))
    }

    /// A verifier for keys already in memory: `(kid, public key PEM)`.
    pub fn from_pems(
        keys: &[(&str, &str)],
        issuer: &str,
        audience: &str,
    ) -> Result<Self, AuthError> {
        let mut out = Vec::new();
        for (kid, pem) in keys {
            let key = public_key_from_pem(pem).map_err(|problem| AuthError::KeyFile {
                path: (*kid).into(),
                problem,
            })?;
            out.push(((*kid).to_owned(), key));
        }
        Ok(Self::new(out, issuer, audience))
    }

    fn new(keys: Vec<(String, DecodingKey)>, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        TokenVerifier {
            keys: Arc::new(keys),
            validation,
            verified: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Verifies a raw token and returns the caller it names.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let now = chrono::Utc::now().timestamp();
        if let Some((caller, exp)) = self
            .verified
            .lock()
            .ok()
            .and_then(|m| m.get(token).cloned())
            && now < exp + self.validation.leeway as i64
        {
            return Ok(caller);
        }
        let (caller, exp) = self.verify_signature(token)?;
        if let Ok(mut m) = self.verified.lock() {
            if m.len() >= VERIFIED_CAPACITY {
                m.clear();
            }
            m.insert(token.to_owned(), (caller.clone(), exp));
        }
        Ok(caller)
    }

    fn verify_signature(&self, token: &str) -> Result<(Caller, i64), AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid("unsupported algorithm".into()));
        }
        let candidates: Vec<&DecodingKey> = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|(k, _)| k == kid)
                .map(|(_, d)| d)
                .collect(),
            None => self.keys.iter().map(|(_, d)| d).collect(),
        };
        if candidates.is_empty() {
            return Err(AuthError::Invalid("unknown key id".into()));
        }
        let mut last = AuthError::Invalid("no key verified the token".into());
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => {
                    let c = data.claims;
                    if c.org.trim().is_empty() {
                        return Err(AuthError::Invalid("token has no organisation".into()));
                    }
                    let roles = c.roles.iter().filter_map(|r| Role::parse(r)).collect();
                    let caller = Caller {
                        subject: c.sub,
                        organisation: c.org,
                        roles,
                    };
                    return Ok((caller, c.exp));
                }
                Err(e) => last = AuthError::Invalid(e.to_string()),
            }
        }
        Err(last)
    }

    /// Verifies the `authorization: Bearer …` metadata of a request.
    pub fn verify_metadata(&self, md: &tonic::metadata::MetadataMap) -> Result<Caller, AuthError> {
        let value = md.get("authorization").ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::Malformed)?;
        self.verify(token.trim())
    }
}

/// The interceptor that authenticates every call to a Hearth service.
#[derive(Clone, Debug)]
pub struct Authenticator {
    verifier: TokenVerifier,
    domain: &'static str,
    /// mTLS is on: the client certificate's organisation must be the token's.
    client_certificates: bool,
}

impl Authenticator {
    pub fn new(verifier: TokenVerifier, domain: &'static str) -> Self {
        Authenticator {
            verifier,
            domain,
            client_certificates: false,
        }
    }

    /// With mutual TLS on: every call's client certificate must name the token's
    /// organisation ([`crate::tls::check_certificate_organisation`]).
    pub fn require_client_certificates(mut self, on: bool) -> Self {
        self.client_certificates = on;
        self
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        match self.verifier.verify_metadata(req.metadata()) {
            Ok(caller) => {
                tracing::Span::current().record("caller_org", caller.organisation.as_str());
                if self.client_certificates {
                    let certs = req.peer_certs();
                    crate::tls::check_certificate_organisation(
                        certs.as_deref().map(Vec::as_slice),
                        &caller.organisation,
                        self.domain,
                    )?;
                }
                req.extensions_mut().insert(caller);
                Ok(req)
            }
            Err(err) => {
                // The reason is logged for operators (it names no person); the caller
                // learns only that the token was not accepted.
                tracing::info!(reason = %err, "call refused: unauthenticated");
                let message = match err {
                    AuthError::Missing => "a bearer token is required",
                    _ => "the bearer token is not valid",
                };
                Err(ApiError::Unauthenticated {
                    message: message.into(),
                }
                .into_status(self.domain))
            }
        }
    }
}

fn kid_of(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    // `dev.pub.pem` → `dev`: a key id is the name before the first dot.
    name.split('.').next().unwrap_or(name).to_owned()
}

fn pem_body(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| format!("not a PEM {label}"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| format!("unterminated PEM {label}"))?
        + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    B64.decode(b64)
        .map_err(|e| format!("bad base64 in PEM: {e}"))
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32-byte key follows it.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn public_key_from_pem(pem: &str) -> Result<DecodingKey, String> {
    let der = pem_body(pem, "PUBLIC KEY")?;
    if der.len() != 44 || der[..12] != ED25519_SPKI_PREFIX {
        return Err("not an Ed25519 public key".into());
    }
    Ok(DecodingKey::from_ed_der(&der[12..]))
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A freshly generated Ed25519 signing key pair, as PEM (PKCS#8 private key, SPKI
/// public key). For development and tests; production keys come from the identity
/// provider.
#[derive(Clone)]
pub struct KeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPair([redacted])")
    }
}

impl KeyPair {
    pub fn generate() -> KeyPair {
        use ring::signature::KeyPair as _;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("the system RNG works");
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .expect("ring reads its own key");
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        KeyPair {
            private_pem: to_pem("PRIVATE KEY", pkcs8.as_ref()),
            public_pem: to_pem("PUBLIC KEY", &spki),
        }
    }
}

/// Signs tokens. Used by the development tool and tests; in production an identity
/// provider issues tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    kid: String,
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .finish()
    }
}

impl TokenIssuer {
    pub fn from_private_pem(
        kid: &str,
        pem: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, AuthError> {
        let der = pem_body(pem, "PRIVATE KEY").map_err(|problem| AuthError::KeyFile {
            path: kid.into(),
            problem,
        })?;
        Ok(TokenIssuer {
            kid: kid.into(),
            key: EncodingKey::from_ed_der(&der),
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// A token for `subject` acting for `organisation` with `roles`, valid for `ttl`.
    pub fn mint(
        &self,
        subject: &str,
        organisation: &str,
        roles: &[Role],
        ttl: std::time::Duration,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.into(),
            exp: now + ttl.as_secs() as i64,
            iat: now,
            org: organisation.into(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
        };
        self.mint_claims(&claims)
    }

    /// A token with exactly these claims (tests use it for expired or foreign tokens).
    pub fn mint_claims(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("Ed25519 signing does not fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (TokenIssuer, TokenVerifier) {
        let kp = KeyPair::generate();
        let issuer =
            TokenIssuer::from_private_pem("k1", &kp.private_pem, "hearth-dev", "hearth").unwrap();
        let verifier =
            TokenVerifier::from_pems(&[("k1", &kp.public_pem)], "hearth-dev", "hearth").unwrap();
        (issuer, verifier)
    }

    #[test]
    fn a_signed_token_yields_its_caller() {
        let (issuer, verifier) = pair();
        let token = issuer.mint("u1", "midlothian", &[Role::Triage], Duration::from_secs(60));
        let caller = verifier.verify(&token).unwrap();
        assert_eq!(caller.organisation, "midlothian");
        assert!(caller.has(Role::Triage));
        assert!(!caller.has(Role::Referrer));
    }

    #[test]
    fn expired_wrong_audience_and_foreign_keys_are_refused() {
        let (issuer, verifier) = pair();
        let now = chrono::Utc::now().timestamp();
        let mut claims = Claims {
            iss: "hearth-dev".into(),
            aud: "hearth".into(),
            sub: "u".into(),
            exp: now - 3600,
            iat: now - 7200,
            org: "o".into(),
            roles: vec!["triage".into()],
        };
        assert!(
            verifier.verify(&issuer.mint_claims(&claims)).is_err(),
            "expired"
        );
        claims.exp = now + 3600;
        claims.aud = "someone-else".into();
        assert!(
            verifier.verify(&issuer.mint_claims(&claims)).is_err(),
            "audience"
        );
        claims.aud = "hearth".into();
        claims.iss = "evil".into();
        assert!(
            verifier.verify(&issuer.mint_claims(&claims)).is_err(),
            "issuer"
        );

        let (other_issuer, _) = pair();
        let token = other_issuer.mint("u", "o", &[Role::Admin], Duration::from_secs(60));
        assert!(
            verifier.verify(&token).is_err(),
            "signed by a key we do not trust"
        );
        assert!(verifier.verify("not.a.token").is_err());
    }

    #[test]
    fn unknown_roles_are_ignored_not_granted() {
        let (issuer, verifier) = pair();
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: "hearth-dev".into(),
            aud: "hearth".into(),
            sub: "u".into(),
            exp: now + 60,
            iat: now,
            org: "o".into(),
            roles: vec!["superuser".into(), "analyst".into()],
        };
        let caller = verifier.verify(&issuer.mint_claims(&claims)).unwrap();
        assert_eq!(caller.roles, vec![Role::Analyst]);
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let (issuer, verifier) = pair();
        let token = issuer.mint("u1", "midlothian", &[Role::Triage], Duration::from_secs(60));
        assert!(verifier.verify(&token).is_ok());
        assert!(
            verifier.verify(&token).is_ok(),
            "the second use comes from memory"
        );
        // Age the remembered entry past its expiry and leeway: it must not be honoured,
        // and a forged token never enters the memory at all.
        let past = chrono::Utc::now().timestamp() - 3600;
        verifier.verified.lock().unwrap().get_mut(&token).unwrap().1 = past;
        let forged = format!("{token}x");
        let caller = verifier.verify(&token).unwrap();
        verifier
            .verified
            .lock()
            .unwrap()
            .insert(forged.clone(), (caller, past));
        assert!(verifier.verify(&forged).is_err());
    }
}
