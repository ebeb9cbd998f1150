//! The journeys' stacks, on the kit's harness: service binaries started as an operator
//! would, against the shared private Postgres and NATS.

use hearth_proto::referrals as pb;
use hearth_testkit::harness::{Process, TestEnv};
use referrals::fixtures;

pub use hearth_testkit::harness::authed;

/// The referrals binary on a fresh database and NATS account.
pub struct Referrals {
    pub svc: Process,
    pub env: TestEnv,
}

impl Referrals {
    /// Starts it with these settings on top of the harness's.
    pub async fn start(extra: &[(&str, String)]) -> Referrals {
        let env = TestEnv::new().await;
        let svc = Process::start("referrals", &env, extra).await;
        Referrals { svc, env }
    }
}

/// A health visitor's referral of one child of the Lindqvists (`nhs` may be empty) to
/// Midlothian.
pub fn referral(child: &str, nhs: &str) -> pb::Referral {
    fixtures::health_visitor_referral(
        &fixtures::Family {
            child,
            surname: "Lindqvist",
            born: chrono::NaiveDate::from_ymd_opt(2022, 5, 17).expect("a date"),
            nhs_number: nhs.to_owned(),
            mother: "Elin",
            postcode: "EH19 2QT",
        },
        chrono::Utc::now() - chrono::Duration::hours(1),
    )
}
