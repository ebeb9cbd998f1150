//! Private PostgreSQL and NATS (JetStream) server processes for tests and the
//! local `make run`.
//!
//! This crate owns the lifecycle of those child processes: finding the
//! machine's binaries, preparing data directories (including running Postgres
//! as the `postgres` user when we are root), picking free ports, waiting until
//! the servers are ready, and making sure no child ever outlives the process
//! that started it. It never connects to servers on the standard ports.
//!
//! [`harness`] builds on them: what every service's tests need to run a service and
//! check what it did; [`tls`] makes the certificates and clients for mutual TLS.

mod bins;
pub mod harness;
mod keeper;
mod nats;
mod pg;
mod sys;
pub mod tls;
mod util;

pub use nats::{NatsOptions, NatsServer, shared_nats_account};
pub use pg::{PgOptions, PgServer, shared_pg};

#[cfg(test)]
mod tests;
