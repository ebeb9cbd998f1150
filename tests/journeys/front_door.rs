//! A family comes through the front door, and a downstream service follows along from
//! the event feed alone — as assessments and evaluation will.

use std::time::Duration;

use hearth_platform::config::Secret;
use hearth_platform::events::Event;
use hearth_platform::inbox::{ConsumerSpec, HandleError, Handler, Inbox};
use hearth_platform::{Role, db};
use hearth_proto::referrals as pb;
use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
use prost::Message;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{Referrals, authed, referral};

const SCHEMA: &str = "journey";

/// A downstream read model: each referral's latest state and first-contact flag,
/// built only from `hearth.referrals.v1.>` events.
struct Funnel;

impl Handler for Funnel {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        event: &Event,
    ) -> Result<(), HandleError> {
        let poison = |e: prost::DecodeError| HandleError::Poison(e.to_string());
        let (referral, state) = match event.ce_type.as_str() {
            "hearth.referrals.v1.referral.received" => {
                let e = pb::ReferralReceived::decode(event.payload.clone()).map_err(poison)?;
                let r = e.r#ref.unwrap_or_default();
                sqlx::query(
                        "INSERT INTO journey.funnel (referral, area, state, contacted) VALUES ($1, $2, 'received', false)",
                    )
                    .bind(&r.referral)
                    .bind(&r.receiving_area)
                    .execute(&mut **tx)
                    .await?;
                return Ok(());
            }
            "hearth.referrals.v1.referral.accepted" => {
                let e = pb::ReferralAccepted::decode(event.payload.clone()).map_err(poison)?;
                (e.r#ref.unwrap_or_default().referral, "accepted")
            }
            "hearth.referrals.v1.referral.signposted" => {
                let e = pb::ReferralSignposted::decode(event.payload.clone()).map_err(poison)?;
                (e.r#ref.unwrap_or_default().referral, "signposted")
            }
            "hearth.referrals.v1.contact.recorded" => {
                let e = pb::ContactRecorded::decode(event.payload.clone()).map_err(poison)?;
                if e.first_contact {
                    sqlx::query("UPDATE journey.funnel SET contacted = true WHERE referral = $1")
                        .bind(e.r#ref.unwrap_or_default().referral)
                        .execute(&mut **tx)
                        .await?;
                }
                return Ok(());
            }
            _ => return Ok(()),
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
    let mut stack = Referrals::start(&[("HEARTH_RELAY_POLL_MS", "200".into())]).await;
    let Referrals {
        svc,
        keys,
        db_url,
        nats,
        ..
    } = &mut stack;

    let hv = keys.issuer.mint(
        "hv-7",
        "nhs-lothian",
        &[Role::Referrer],
        Duration::from_secs(600),
    );
    let triage = keys.issuer.mint(
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

    // The downstream service: its own schema, its own inbox, the referrals stream.
    let pool = db::connect(
        &Secret::new(db_url.clone()),
        SCHEMA,
        4,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let nothing = sqlx::migrate::Migrator::DEFAULT;
    db::migrate(&pool, SCHEMA, &nothing).await.unwrap();
    sqlx::query("CREATE TABLE journey.funnel (referral text PRIMARY KEY, area text, state text, contacted bool)")
        .execute(&pool)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let spec = ConsumerSpec::new("REFERRALS", "journey-funnel", "hearth.referrals.v1.>");
    let want = {
        let mut w = vec![
            (a.clone(), "accepted".to_owned(), true),
            (b.clone(), "signposted".to_owned(), false),
        ];
        w.sort();
        w
    };

    let stop = CancellationToken::new();
    let inbox = Inbox::new(pool.clone(), js.clone(), SCHEMA, spec.clone(), Funnel);
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { inbox.run(stop).await }
    });
    wait_for(&pool, &want).await;
    stop.cancel();
    run.await.unwrap();

    // Replay from the start rebuilds the same read model.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("DELETE FROM journey.funnel")
        .execute(&mut *tx)
        .await
        .unwrap();
    hearth_platform::inbox::reset_in_tx(&mut tx, SCHEMA, &spec.durable)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    hearth_platform::inbox::delete_consumer(&js, &spec)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let inbox = Inbox::new(pool.clone(), js, SCHEMA, spec, Funnel);
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { inbox.run(stop).await }
    });
    wait_for(&pool, &want).await;
    stop.cancel();
    run.await.unwrap();

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
    let stranger = keys.issuer.mint(
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
