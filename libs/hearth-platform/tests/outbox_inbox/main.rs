//! The transactional outbox, its relay, the inbox and request-id claims, against a
//! private Postgres and NATS JetStream (one per test, so a test can stop and restart
//! its NATS).

mod helpers;
mod idempotency;
mod inbox;
mod relay;
mod relay_faults;
