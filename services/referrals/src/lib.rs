//! The referrals service: Hearth's front door. Partner agencies and families send
//! referrals; the receiving area's triage team contacts the family and decides. Every
//! change is announced on JetStream through the outbox.
//!
//! Built on the service kit (`hearth_platform::service`): [`Referrals`] declares the
//! service and wires its handlers; `main.rs` hands it to the kit; tests run it with
//! `hearth_testkit::harness`.

pub mod api;
pub mod convert;
pub mod domain;
pub mod events;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod intake;
pub mod store;

use hearth_platform::config::{ConfigError, Env, Settings};
use hearth_platform::service::{BoxError, Kit, Service, Wiring};
use hearth_proto::referrals::referrals_service_server::ReferralsServiceServer;

/// The referrals service, as the kit runs it.
#[derive(Debug)]
pub struct Referrals;

/// The fully-qualified gRPC service name, as health checks know it.
pub const SERVICE_NAME: &str = "hearth.referrals.v1.ReferralsService";

/// The service's migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Service for Referrals {
    const NAME: &'static str = "referrals";
    const DOMAIN: &'static str = "referrals.hearth";
    const DEFAULT_PORT: u16 = 50051;
    const STREAM: hearth_proto::events::Stream = hearth_proto::events::referrals::STREAM;
    type Settings = ReferralsSettings;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn wire(kit: &Kit, settings: ReferralsSettings, w: &mut Wiring) -> Result<(), BoxError> {
        let (api, writers) = api::ReferralsApi::start(kit, settings.intake)?;
        w.grpc(ReferralsServiceServer::new(api));
        w.family_directory(store::Families);
        // The relationships other services announce: family teams and places.
        hearth_platform::access::consume(w, "referrals-access");
        // Creates queued when the calls drained are written before the relay stops.
        w.after_calls(writers.finish());
        Ok(())
    }
}

/// Referrals' own settings: the group commit of `CreateReferral` (`intake.rs`).
#[derive(Debug, Clone, Copy)]
pub struct ReferralsSettings {
    pub intake: intake::IntakeOptions,
}

/// Two writers: one can fill its batch while the other waits for its commit to reach
/// disk. More writers mean smaller batches, so more work per create (our default,
/// measured in docs/BENCHMARKS.md).
pub const DEFAULT_WRITERS: u64 = 2;
/// Enough to share a transaction's fixed costs; small enough that one transaction
/// stays short (our default).
pub const DEFAULT_WRITE_BATCH_MAX: u64 = 32;

impl Settings for ReferralsSettings {
    fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(ReferralsSettings {
            intake: intake::IntakeOptions {
                // `HEARTH_REFERRALS_WRITERS`: how many transactions write creates at
                // once; each writer has a connection of its own (plus one), beside
                // the pool's `HEARTH_DATABASE_MAX_CONNECTIONS`.
                writers: env.bounded_or("HEARTH_REFERRALS_WRITERS", DEFAULT_WRITERS, 1, 64)?
                    as usize,
                // `HEARTH_REFERRALS_WRITE_BATCH_MAX`: the most creates one
                // transaction takes.
                max_batch: env.bounded_or(
                    "HEARTH_REFERRALS_WRITE_BATCH_MAX",
                    DEFAULT_WRITE_BATCH_MAX,
                    1,
                    1000,
                )? as usize,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intake_settings_are_bounded_and_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            Env::from_fn(move |k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let s = ReferralsSettings::from_env(&env(&[])).unwrap();
        assert_eq!((s.intake.writers, s.intake.max_batch), (2, 32));
        let err =
            ReferralsSettings::from_env(&env(&[("HEARTH_REFERRALS_WRITERS", "65")])).unwrap_err();
        assert_eq!(err.var, "HEARTH_REFERRALS_WRITERS");
        let err = ReferralsSettings::from_env(&env(&[("HEARTH_REFERRALS_WRITE_BATCH_MAX", "0")]))
            .unwrap_err();
        assert_eq!(err.var, "HEARTH_REFERRALS_WRITE_BATCH_MAX");
    }
}
