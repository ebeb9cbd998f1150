//! The referrals service under test, on the kit's harness: a real server in this
//! process with its own database on the shared private Postgres, its own account on
//! the shared private NATS (or a NATS of its own for the tests that stop it), its own
//! signing key; and real tonic clients.

use std::ops::{Deref, DerefMut};

use hearth_platform::Role;
use hearth_proto::referrals as pb;
use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
use hearth_proto::types::Date;
use hearth_testkit::harness::{self, Bearer, Running, Snapshot, TestEnv};
use hearth_testkit::{NatsOptions, NatsServer};
use referrals::Referrals;
use referrals::fixtures;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub use harness::{assert_status, header};
pub use referrals::fixtures::create_request;

pub const AREA: &str = "midlothian";
pub const REFERRER_ORG: &str = "nhs-lothian";
pub const OTHER_ORG: &str = "borders-council";

pub type Client = ReferralsServiceClient<InterceptedService<Channel, Bearer>>;

/// The service, and the NATS server it has to itself when a test stops NATS.
pub struct TestApp {
    pub svc: Running<Referrals>,
    pub nats: Option<NatsServer>,
}

impl Deref for TestApp {
    type Target = Running<Referrals>;
    fn deref(&self) -> &Running<Referrals> {
        &self.svc
    }
}

impl DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut Running<Referrals> {
        &mut self.svc
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// With these settings, as the environment variables an operator would set.
    pub async fn spawn_with(settings: &[(&str, &str)]) -> TestApp {
        TestApp {
            svc: Running::start(TestEnv::new().await, settings).await,
            nats: None,
        }
    }

    /// On a NATS server of its own, which the test may stop and restart.
    pub async fn spawn_with_own_nats() -> TestApp {
        let nats = NatsServer::start(NatsOptions::default()).expect("private nats-server");
        TestApp {
            svc: Running::start(TestEnv::with_nats(nats.url()).await, &[]).await,
            nats: Some(nats),
        }
    }

    pub fn client_with_token(&self, token: Option<String>) -> Client {
        ReferralsServiceClient::with_interceptor(self.channel.clone(), Bearer(token))
    }

    pub fn client(&self, org: &str, roles: &[Role]) -> Client {
        self.client_with_token(Some(self.token(org, roles)))
    }

    /// A referrer at the health board.
    pub fn referrer(&self) -> Client {
        self.client(REFERRER_ORG, &[Role::Referrer])
    }

    /// The receiving area's triage officer.
    pub fn triage(&self) -> Client {
        self.client(AREA, &[Role::Triage])
    }

    /// Someone in another organisation with every working role.
    pub fn outsider(&self) -> Client {
        self.client(
            OTHER_ORG,
            &[
                Role::Referrer,
                Role::Triage,
                Role::Practitioner,
                Role::Coordinator,
            ],
        )
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Creates a referral as the referrer and returns it.
    pub async fn create(&self, r: pb::Referral) -> pb::Referral {
        self.referrer()
            .create_referral(create_request(r))
            .await
            .expect("create succeeds")
            .into_inner()
            .referral
            .unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM referrals.{table}"))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Events on the stream about one referral, by type.
    pub async fn event_types_for(&self, referral_name: &str, at_least: usize) -> Vec<String> {
        let all = self.events(at_least).await;
        all.iter()
            .filter(|m| header(m, "ce-subject") == referral_name)
            .map(|m| header(m, "ce-type"))
            .collect()
    }
}

pub fn date(y: i32, m: i32, d: i32) -> Option<Date> {
    Some(Date {
        year: y,
        month: m,
        day: d,
    })
}

pub fn now_ts(offset_secs: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + offset_secs,
        nanos: 0,
    })
}

/// A valid NHS number built from a seed.
pub fn nhs_number(seed: u64) -> String {
    fixtures::nhs_number(seed).replace(' ', "")
}

pub fn assessment_consent() -> pb::Consent {
    pb::Consent {
        given_by: "Jo Reid".into(),
        given_by_role: pb::ParentingRole::Mother as i32,
        give_time: now_ts(-3600),
        scopes: vec![
            pb::ConsentScope::Assessment as i32,
            pb::ConsentScope::ShareWithPartners as i32,
        ],
        ..Default::default()
    }
}

/// A complete, valid voluntary referral with a unique child: the sample health
/// visitor's referral, with the mother's consent given an hour ago.
pub fn referral() -> pb::Referral {
    let seed = Uuid::new_v4().as_u128() as u64;
    let mut r = fixtures::health_visitor_referral(
        &fixtures::Family {
            child: &format!("Sam{}", seed % 1_000_000_000),
            surname: "Reid",
            born: chrono::NaiveDate::from_ymd_opt(2023, 2, 1).expect("a date"),
            nhs_number: nhs_number(seed),
            mother: "Jo",
            postcode: "eh22 1ab",
        },
        chrono::Utc::now() - chrono::Duration::hours(1),
    );
    r.family.as_mut().expect("a family").adults[0].phone = String::new();
    r
}

pub fn rid() -> String {
    Uuid::new_v4().to_string()
}

/// Asserts an INVALID_ARGUMENT from this service naming exactly these fields (in any
/// order).
#[track_caller]
pub fn assert_invalid(status: &Status, fields: &[&str]) {
    harness::assert_invalid(status, "referrals.hearth", fields);
}

/// Asserts the refusal of a request id reused for a different request.
#[track_caller]
pub fn assert_reused(status: &Status) {
    harness::assert_invalid_because(
        status,
        "referrals.hearth",
        "REQUEST_ID_REUSED",
        &["request_id"],
    );
}

/// Every table of the service's schema, to show a rejected call wrote nothing.
pub async fn rows(app: &TestApp) -> Snapshot {
    app.snapshot().await
}

/// The referral as the area's triage reads it now.
pub async fn read(app: &TestApp, name: &str) -> pb::Referral {
    app.triage()
        .get_referral(pb::GetReferralRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap()
}

/// A phone contact `offset_secs` from now, with a note.
pub fn contact(offset_secs: i64, successful: bool) -> Option<pb::Contact> {
    Some(pb::Contact {
        method: pb::ContactMethod::Phone as i32,
        contact_time: now_ts(offset_secs),
        successful,
        note: "Spoke to mum; prefers evenings".into(),
        ..Default::default()
    })
}
