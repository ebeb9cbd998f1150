//! Integration tests for the referrals service: a real server, real Postgres, real
//! NATS JetStream, a real tonic client.

mod access;
mod audit;
mod create;
mod events;
mod family;
mod helpers;
mod intake;
mod linking;
mod list_get;
mod mtls;
mod notes;
mod orders_and_corrections;
mod redaction;
mod server;
mod triage;
