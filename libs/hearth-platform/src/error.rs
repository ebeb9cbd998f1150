//! API errors as AIP-193 statuses: every non-OK status carries `google.rpc.ErrorInfo`
//! (a stable UPPER_SNAKE_CASE reason and the service's domain), and bad input adds
//! `google.rpc.BadRequest` field violations. Internal details never reach the caller:
//! they are logged with the trace id and replaced by a generic message.

use std::collections::HashMap;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Field violations collected while validating a request. Domain code builds one,
/// adds every problem it finds (not just the first), then calls [`Violations::into_result`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` (a dotted path such as `referral.family.children[0].nhs_number`)
    /// is wrong, and why.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push((field.into(), description.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(f, _)| f.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, d)| (f.as_str(), d.as_str()))
    }

    /// `Ok(value)` when nothing was recorded, else the violations.
    pub fn into_result<T>(self, value: T) -> Result<T, Violations> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    pub fn single(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = Self::new();
        v.add(field, description);
        v
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        f.write_str(&parts.join("; "))
    }
}

/// The error every handler returns. A service maps its own error enum into this in one
/// `From` impl; this maps into [`tonic::Status`] with the service's `domain`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: INVALID_ARGUMENT with a field violation per bad field.
    #[error("invalid argument: {0}")]
    InvalidArgument(Violations),
    /// Bad input that has a stable reason of its own (for example `REQUEST_ID_REUSED`),
    /// still with its field violations.
    #[error("{reason}: {violations}")]
    InvalidArgumentBecause {
        reason: &'static str,
        violations: Violations,
    },
    /// A message over the size limit: RESOURCE_EXHAUSTED with reason
    /// `MESSAGE_TOO_LARGE` (the gRPC status-code specification's code for it), which
    /// tells it apart from load shedding.
    #[error("message too large: {message}")]
    MessageTooLarge { message: String },
    /// The resource does not exist, or the caller may not know that it does.
    #[error("{resource} not found")]
    NotFound { resource: String },
    /// The resource is in the wrong state for this call.
    #[error("{reason}: {message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    /// The caller may see the resource but lacks the role for this call.
    #[error("{reason}: {message}")]
    PermissionDenied {
        reason: &'static str,
        message: String,
    },
    /// No valid credentials.
    #[error("unauthenticated: {message}")]
    Unauthenticated { message: String },
    /// A dependency is down; the caller may retry.
    #[error("unavailable: {message}")]
    Unavailable { message: String },
    /// Anything else: logged, never shown.
    #[error("internal: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        ApiError::InvalidArgument(Violations::single(field, description))
    }

    /// The request id was used before by the caller's organisation for another call.
    pub fn request_id_reused() -> Self {
        ApiError::InvalidArgumentBecause {
            reason: "REQUEST_ID_REUSED",
            violations: Violations::single(
                "request_id",
                "was already used by your organisation for a different request; send a new UUID",
            ),
        }
    }

    pub fn not_found(resource: impl Into<String>) -> Self {
        ApiError::NotFound {
            resource: resource.into(),
        }
    }

    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    pub fn denied(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError::PermissionDenied {
            reason,
            message: message.into(),
        }
    }

    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(err.into())
    }

    /// The gRPC status for this error. `domain` names the service, e.g.
    /// `referrals.hearth.dev`.
    pub fn into_status(self, domain: &str) -> Status {
        let info = |reason: &str| {
            ErrorDetails::with_error_info(reason, domain, HashMap::<String, String>::new())
        };
        match self {
            ApiError::InvalidArgument(v) => ApiError::InvalidArgumentBecause {
                reason: "INVALID_ARGUMENT",
                violations: v,
            }
            .into_status(domain),
            ApiError::InvalidArgumentBecause {
                reason,
                violations: v,
            } => {
                let mut details = info(reason);
                let violations: Vec<FieldViolation> =
                    v.0.iter()
                        .map(|(f, d)| FieldViolation::new(f.clone(), d.clone()))
                        .collect();
                details.set_bad_request(violations);
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid request: {v}"),
                    details,
                )
            }
            ApiError::NotFound { resource } => {
                let mut meta = HashMap::new();
                meta.insert("resource".to_owned(), resource.clone());
                let mut details = ErrorDetails::new();
                details.set_error_info("NOT_FOUND", domain, meta);
                Status::with_error_details(Code::NotFound, format!("{resource} not found"), details)
            }
            ApiError::FailedPrecondition { reason, message } => {
                Status::with_error_details(Code::FailedPrecondition, message, info(reason))
            }
            ApiError::PermissionDenied { reason, message } => {
                Status::with_error_details(Code::PermissionDenied, message, info(reason))
            }
            ApiError::MessageTooLarge { message } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                info("MESSAGE_TOO_LARGE"),
            ),
            ApiError::Unauthenticated { message } => {
                Status::with_error_details(Code::Unauthenticated, message, info("UNAUTHENTICATED"))
            }
            ApiError::Unavailable { message } => {
                Status::with_error_details(Code::Unavailable, message, info("UNAVAILABLE"))
            }
            ApiError::Internal(err) => {
                // The cause may name tables or values; it goes to the log (with the trace
                // id on the span), never to the caller.
                tracing::error!(error = %err, "internal error");
                Status::with_error_details(Code::Internal, "internal error", info("INTERNAL"))
            }
        }
    }
}

impl From<Violations> for ApiError {
    fn from(v: Violations) -> Self {
        ApiError::InvalidArgument(v)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ApiError::Unavailable {
                message: "the database is not reachable; retry later".into(),
            },
            sqlx::Error::PoolClosed => ApiError::Unavailable {
                message: "the service is shutting down; retry later".into(),
            },
            // A session the server ended (restart, failover, an operator) or could not
            // keep: SQLSTATE classes 57P (operator intervention) and 08 (connection).
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) =>
            {
                ApiError::Unavailable {
                    message: "the database connection was lost; retry".into(),
                }
            }
            _ => ApiError::Internal(Box::new(err)),
        }
    }
}
