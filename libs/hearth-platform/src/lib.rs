//! Shared plumbing for Hearth services, small and boring on purpose:
//!
//! - [`config`]: typed `HEARTH_*` configuration, validated once at start.
//! - [`telemetry`]: structured logs, OpenTelemetry traces, W3C trace context.
//! - [`db`]: the Postgres pool and migrations into the service's own schema.
//! - [`outbox`]: events written in the business transaction, and the relay to JetStream.
//! - [`inbox`]: idempotent, replayable consumption of other services' events.
//! - [`events`]: the CloudEvents-over-NATS envelope and subject grammar.
//! - [`server`]: the gRPC server scaffold (health, reflection, limits, shutdown).
//! - [`error`]: AIP-193 errors with `google.rpc` details.
//! - [`auth`]: bearer tokens and the typed caller.
//! - [`tls`]: mutual TLS for partner systems (settings, server config, certificate ↔ token).
//! - [`service`]: the runtime that starts, serves and stops a service in order.
//! - [`idempotency`]: request-id claims for idempotent mutations.
//! - [`page`], [`filter`]: signed page tokens and the AIP-160 filter subset.
//! - [`validate`], [`clock`]: the shared field validators and the service clock.
//! - [`consent`]: the one rule for "consent in force" every service applies.
//! - [`access`], [`audit`], [`access_service`]: who may see a family's records, the
//!   record of everyone who did, and the data protection officer's questions of it.
//!
//! A helper used by only one service belongs in that service, not here.

pub mod access;
pub mod access_service;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod consent;
pub mod db;
pub mod error;
pub mod events;
pub mod filter;
pub mod idempotency;
pub mod inbox;
pub mod outbox;
pub mod page;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod tls;
pub mod validate;

pub use auth::{Caller, Role};
pub use error::{ApiError, Violations};
