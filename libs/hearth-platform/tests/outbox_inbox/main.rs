//! The transactional outbox, its relay and the inbox, against a private Postgres and
//! NATS JetStream (one per test, so a test can stop and restart its NATS).

mod helpers;
mod inbox;
mod relay;
mod relay_faults;
