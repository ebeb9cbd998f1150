//! A real referrals server for each test: its own database on the shared private
//! Postgres, its own private NATS, its own signing key; and a real tonic client.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use hearth_platform::Role;
use hearth_platform::auth::{KeyPair, TokenIssuer};
use hearth_platform::config::{self, AuthConfig, Secret, ServiceConfig};
use hearth_proto::referrals as pb;
use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
use hearth_proto::types::Date;
use hearth_testkit::{NatsOptions, NatsServer};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

pub const AREA: &str = "midlothian";
pub const REFERRER_ORG: &str = "nhs-lothian";
pub const OTHER_ORG: &str = "borders-council";

/// Adds a bearer token to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        Ok(req)
    }
}

pub type Client = ReferralsServiceClient<InterceptedService<Channel, Bearer>>;

pub struct TestApp {
    pub pool: PgPool,
    pub nats: NatsServer,
    pub js: jetstream::Context,
    pub issuer: TokenIssuer,
    pub shutdown: CancellationToken,
    pub handle: Option<JoinHandle<Result<(), referrals::BoxError>>>,
    channel: Channel,
    key_file: PathBuf,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_file(&self.key_file);
    }
}

pub fn config(db_url: String, nats_url: String, key_file: PathBuf) -> ServiceConfig {
    ServiceConfig {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: Secret::new(db_url),
        database_max_connections: 20,
        nats_url,
        auth: AuthConfig {
            issuer: "hearth-test".into(),
            audience: "hearth".into(),
            public_key_files: vec![key_file],
        },
        request_timeout: Duration::from_secs(20),
        max_concurrent_requests: 256,
        max_message_bytes: 4 << 20,
        shutdown_drain: Duration::ZERO,
        relay_batch_size: 256,
        relay_poll: Duration::from_millis(200),
        writers: config::DEFAULT_WRITERS,
        write_batch_max: config::DEFAULT_WRITE_BATCH_MAX,
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut ServiceConfig)) -> TestApp {
        hearth_platform::telemetry::init("referrals-test");
        let db_url = hearth_testkit::shared_pg()
            .fresh_database()
            .await
            .expect("test database");
        let nats = NatsServer::start(NatsOptions::default()).expect("private nats-server");
        let keys = KeyPair::generate();
        let key_file = std::env::temp_dir().join(format!("hearth-test-{}.pub.pem", Uuid::new_v4()));
        std::fs::write(&key_file, &keys.public_pem).unwrap();
        let issuer = TokenIssuer::from_private_pem(
            key_file
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .split('.')
                .next()
                .unwrap(),
            &keys.private_pem,
            "hearth-test",
            "hearth",
        )
        .unwrap();
        let mut cfg = config(db_url.clone(), nats.url(), key_file.clone());
        tweak(&mut cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(referrals::run(cfg, listener, shutdown.clone()));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        wait_serving(channel.clone()).await;
        let pool = PgPool::connect(&db_url).await.unwrap();
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        TestApp {
            pool,
            nats,
            js,
            issuer,
            shutdown,
            handle: Some(handle),
            channel,
            key_file,
        }
    }

    pub fn token(&self, org: &str, roles: &[Role]) -> String {
        self.issuer
            .mint("user-1", org, roles, Duration::from_secs(600))
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

    /// Waits until the stream holds at least `n` messages, then a little longer to
    /// catch any extra, and returns them all in stream order.
    pub async fn events(&self, n: usize) -> Vec<jetstream::message::StreamMessage> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match self.js.get_stream("REFERRALS").await {
                Ok(s) => break s,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("stream REFERRALS never appeared: {e}"),
            }
        };
        loop {
            let have = stream.info().await.unwrap().state.messages as usize;
            if have >= n {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {have} of {n} events arrived"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let info = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        for seq in info.first_sequence..=info.last_sequence {
            if let Ok(m) = stream.get_raw_message(seq).await {
                out.push(m);
            }
        }
        out
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

pub fn header(m: &jetstream::message::StreamMessage, name: &str) -> String {
    m.headers
        .get(name)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

async fn wait_serving(channel: Channel) {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let mut client = HealthClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let req = tonic_health::pb::HealthCheckRequest {
            service: referrals::SERVICE_NAME.into(),
        };
        if let Ok(resp) = client.check(req).await
            && resp.into_inner().status == ServingStatus::Serving as i32
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "service never became SERVING"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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

/// A valid NHS number built from a seed (the next stem with a valid check digit).
pub fn nhs_number(seed: u64) -> String {
    let mut stem = seed % 1_000_000_000;
    loop {
        if let Some(check) = referrals::domain::nhs::check_digit(stem) {
            return format!("{stem:09}{check}");
        }
        stem = (stem + 1) % 1_000_000_000;
    }
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

/// A complete, valid voluntary referral with a unique child.
pub fn referral() -> pb::Referral {
    let seed = Uuid::new_v4().as_u128() as u64;
    pb::Referral {
        receiving_area: AREA.into(),
        referrer: Some(pb::Referrer {
            display_name: "Asha Patel".into(),
            job_title: "Health visitor".into(),
            contact: "0131 000 0000".into(),
        }),
        source: pb::Source::HealthVisitor as i32,
        family: Some(pb::FamilyDetails {
            children: vec![pb::Child {
                given_name: format!("Sam{}", seed % 1_000_000_000),
                family_name: "Reid".into(),
                date_of_birth: date(2023, 2, 1),
                nhs_number: nhs_number(seed),
                ..Default::default()
            }],
            adults: vec![pb::Adult {
                given_name: "Jo".into(),
                family_name: "Reid".into(),
                role: pb::ParentingRole::Mother as i32,
                ..Default::default()
            }],
        }),
        reasons: vec![
            pb::Reason::Sleep as i32,
            pb::Reason::ParentalMentalHealth as i32,
        ],
        description: "Mum is exhausted; baby wakes 5 times a night.".into(),
        urgency: pb::Urgency::Routine as i32,
        access_needs: Some(pb::AccessNeeds {
            language: "en".into(),
            preferred_times: vec![pb::PreferredTime::WeekdayEvening as i32],
            ..Default::default()
        }),
        postcode: "eh22 1ab".into(),
        consents: vec![assessment_consent()],
        route: pb::Route::Voluntary as i32,
        ..Default::default()
    }
}

pub fn create_request(r: pb::Referral) -> pb::CreateReferralRequest {
    pb::CreateReferralRequest {
        referral: Some(r),
        request_id: Uuid::new_v4().to_string(),
        validate_only: false,
    }
}

pub fn rid() -> String {
    Uuid::new_v4().to_string()
}

/// Asserts an INVALID_ARGUMENT naming exactly these fields (in any order).
#[track_caller]
pub fn assert_invalid(status: &Status, fields: &[&str]) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad = status.get_details_bad_request().expect("field violations");
    let mut got: Vec<&str> = bad
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    got.sort();
    let mut want = fields.to_vec();
    want.sort();
    assert_eq!(got, want, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.domain, "referrals.hearth");
}

/// Asserts a status code and its ErrorInfo reason.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    let info = status
        .get_details_error_info()
        .expect("ErrorInfo on every error");
    assert_eq!(info.reason, reason, "{status:?}");
}

/// The tables a mutation writes to.
pub const WRITTEN: [&str; 8] = [
    "referrals",
    "families",
    "family_members",
    "referral_members",
    "consents",
    "contacts",
    "requests",
    "outbox",
];

/// Row counts of every table a mutation writes, to show a rejected call wrote nothing.
pub async fn rows(app: &TestApp) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for table in WRITTEN {
        out.push((table, app.count(table).await));
    }
    out
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
