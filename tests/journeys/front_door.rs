//! A family comes through the front door, and a downstream service follows along from
//! the event feed alone — as assessments and evaluation will.

use std::time::Duration;

use hearth_platform::Role;
use hearth_platform::events::Event;
use hearth_platform::inbox::{HandleError, Handler};
use hearth_platform::service::{self, BoxError, Kit, Service, Wiring};
use hearth_proto::events::referrals as referral_events;
use hearth_proto::referrals as pb;
use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
use hearth_testkit::harness::Running;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::support::{Referrals, authed, referral};

/// A downstream service in miniature, on the service kit like any other: it keeps a
/// read model of each referral's latest state and first contact, built only from the
/// referrals stream (as evaluation's funnel will be).
struct FunnelService;

const DURABLE: &str = "journey-funnel";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("journeys/migrations");

impl Service for FunnelService {
    const NAME: &'static str = "journey";
    const DOMAIN: &'static str = "journey.hearth";
    const DEFAULT_PORT: u16 = 0;
    // What it would publish, were it evaluation.
    const STREAM: hearth_proto::events::Stream = hearth_proto::events::evaluation::STREAM;
    type Settings = ();

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn wire(_: &Kit, _: (), w: &mut Wiring) -> Result<(), BoxError> {
        w.consume(
            service::consumer_of(&referral_events::STREAM, DURABLE),
            Funnel,
        );
        w.family_directory(NoFamilies);
        Ok(())
    }
}

/// The funnel keeps referrals' states, no family's records.
struct NoFamilies;

impl hearth_platform::access_service::Directory for NoFamilies {
    fn receiving_area<'a>(
        &'a self,
        _: &'a mut sqlx::PgConnection,
        _: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>, sqlx::Error>> + Send + 'a>,
    > {
        Box::pin(async { Ok(None) })
    }
}

struct Funnel;

impl Handler for Funnel {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Event,
    ) -> Result<(), HandleError> {
        let poison = |e: prost::DecodeError| HandleError::Poison(e.to_string());
        let t = event.ce_type.as_str();
        let (referral, state) = if referral_events::REFERRAL_RECEIVED.is(t) {
            let e = referral_events::REFERRAL_RECEIVED
                .decode(&event.payload)
                .map_err(poison)?;
            let r = e.r#ref.unwrap_or_default();
            sqlx::query(
                "INSERT INTO journey.funnel (referral, area, state, contacted) VALUES ($1, $2, 'received', false)",
            )
            .bind(&r.referral)
            .bind(&r.receiving_area)
            .execute(&mut **tx)
            .await?;
            return Ok(());
        } else if referral_events::REFERRAL_ACCEPTED.is(t) {
            let e = referral_events::REFERRAL_ACCEPTED
                .decode(&event.payload)
                .map_err(poison)?;
            (e.r#ref.unwrap_or_default().referral, "accepted")
        } else if referral_events::REFERRAL_SIGNPOSTED.is(t) {
            let e = referral_events::REFERRAL_SIGNPOSTED
                .decode(&event.payload)
                .map_err(poison)?;
            (e.r#ref.unwrap_or_default().referral, "signposted")
        } else if referral_events::CONTACT_RECORDED.is(t) {
            let e = referral_events::CONTACT_RECORDED
                .decode(&event.payload)
                .map_err(poison)?;
            if e.first_contact {
                sqlx::query("UPDATE journey.funnel SET contacted = true WHERE referral = $1")
                    .bind(e.r#ref.unwrap_or_default().referral)
                    .execute(&mut **tx)
                    .await?;
            }
            return Ok(());
        } else {
            return Ok(());
        };
        sqlx::query("UPDATE journey.funnel SET state = $2 WHERE referral = $1")
            .bind(referral)
            .bind(state)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

async fn funnel(pool: &PgPool) -> Vec<(String, String, bool)> {
    sqlx::query_as("SELECT referral, state, contacted FROM journey.funnel ORDER BY referral")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn wait_for(pool: &PgPool, want: &[(String, String, bool)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = funnel(pool).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "read model {got:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_downstream_service_follows_the_front_door_from_events_alone_and_can_replay() {
    let mut stack = Referrals::start(&[]).await;
    let Referrals { svc, env } = &mut stack;

    let hv = env.issuer.mint(
        "hv-7",
        "nhs-lothian",
        &[Role::Referrer],
        Duration::from_secs(600),
    );
    let triage = env.issuer.mint(
        "triage-2",
        "midlothian",
        &[Role::Triage],
        Duration::from_secs(600),
    );
    let mut client = ReferralsServiceClient::new(svc.channel.clone());
    let create = |child: &'static str, nhs: &'static str| {
        let mut c = client.clone();
        let hv = hv.clone();
        async move {
            c.create_referral(authed(
                pb::CreateReferralRequest {
                    referral: Some(referral(child, nhs)),
                    request_id: Uuid::new_v4().to_string(),
                    validate_only: false,
                },
                &hv,
            ))
            .await
            .unwrap()
            .into_inner()
            .referral
            .unwrap()
            .name
        }
    };
    let a = create("Freya", "9434765919").await;
    let b = create("Oskar", "4010232137").await;
    client
        .record_contact(authed(
            pb::RecordContactRequest {
                name: a.clone(),
                request_id: Uuid::new_v4().to_string(),
                contact: Some(pb::Contact {
                    method: pb::ContactMethod::Phone as i32,
                    contact_time: Some(prost_types::Timestamp {
                        seconds: std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs() as i64,
                        nanos: 0,
                    }),
                    successful: true,
                    ..Default::default()
                }),
            },
            &triage,
        ))
        .await
        .unwrap();
    client
        .accept_referral(authed(
            pb::AcceptReferralRequest {
                name: a.clone(),
                request_id: Uuid::new_v4().to_string(),
                reason: "Incredible Years group".into(),
            },
            &triage,
        ))
        .await
        .unwrap();
    client
        .signpost_referral(authed(
            pb::SignpostReferralRequest {
                name: b.clone(),
                request_id: Uuid::new_v4().to_string(),
                signposted_to: "Solihull Approach online course".into(),
                reason: "Meets the early help threshold".into(),
            },
            &triage,
        ))
        .await
        .unwrap();

    // The downstream service: its own schema and inbox, on the same database server
    // and NATS account, reading the referrals stream.
    let mut funnel_svc = Running::<FunnelService>::start(env.sibling().await, &[]).await;
    let pool = funnel_svc.pool.clone();
    let want = {
        let mut w = vec![
            (a.clone(), "accepted".to_owned(), true),
            (b.clone(), "signposted".to_owned(), false),
        ];
        w.sort();
        w
    };
    wait_for(&pool, &want).await;
    funnel_svc.stop().await.expect("a clean stop");

    // Replay from the start rebuilds the same read model.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("DELETE FROM journey.funnel")
        .execute(&mut *tx)
        .await
        .unwrap();
    hearth_platform::inbox::reset_in_tx(&mut tx, FunnelService::NAME, DURABLE)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    hearth_platform::inbox::delete_consumer(
        &funnel_svc.js,
        &service::consumer_of(&referral_events::STREAM, DURABLE),
    )
    .await
    .unwrap();
    let funnel_again = Running::<FunnelService>::start(env.sibling().await, &[]).await;
    wait_for(&pool, &want).await;
    drop(funnel_again);

    // Calls that fail, with personal data in them: refused for bad fields, for a
    // bad token, for someone else's referral. None of it may reach the log either.
    let mut bad = referral("Marit", "9434765918");
    bad.postcode = "EH99 ZZZZ".into();
    let err = client
        .create_referral(authed(
            pb::CreateReferralRequest {
                referral: Some(bad.clone()),
                request_id: Uuid::new_v4().to_string(),
                validate_only: false,
            },
            &hv,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .create_referral(authed(
            pb::CreateReferralRequest {
                referral: Some(referral("Marit", "9434765919")),
                request_id: Uuid::new_v4().to_string(),
                validate_only: false,
            },
            "not-a-token",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let stranger = env.issuer.mint(
        "triage-9",
        "borders-council",
        &[Role::Triage],
        Duration::from_secs(600),
    );
    let err = client
        .decline_referral(authed(
            pb::DeclineReferralRequest {
                name: a.clone(),
                request_id: Uuid::new_v4().to_string(),
                decline_reason: pb::DeclineReason::OutsideArea as i32,
                reason: "Marit's family lives in Galashiels".into(),
            },
            &stranger,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // The operator stops the service: a clean exit, and nothing personal in its log.
    let status = svc.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    let log = svc.log_text();
    assert!(
        log.contains("referral received"),
        "the log says what happened:\n{log}"
    );
    assert!(
        log.contains("call refused: unauthenticated"),
        "the log says what was refused:\n{log}"
    );
    for personal in [
        "Freya",
        "Oskar",
        "Lindqvist",
        "Elin",
        "9434765919",
        "4010232137",
        "EH19",
        "Morag",
        "2022-05-17",
        "Marit",
        "07700 900123",
        "9434765918",
        "EH99",
        "Galashiels",
    ] {
        assert!(
            !log.contains(personal),
            "{personal:?} leaked into the service log:\n{log}"
        );
    }
}
