//! Mutual TLS for partner systems: a partner's certificate and its token must name one
//! organisation; a connection without a good certificate never gets as far as a call;
//! health stays reachable in plaintext for probes, and only health.

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_platform::Role;
use hearth_platform::config::{self, Env};
use hearth_platform::service::{self, Service};
use hearth_platform::tls::{CERT_VAR, ORGANISATION_MISMATCH, ORGANISATION_MISSING};
use hearth_proto::referrals as pb;
use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
use hearth_testkit::harness::{self, Bearer, Running, TestEnv};
use hearth_testkit::tls::{Ca, Mtls, Pem, Validity};
use referrals::Referrals;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::*;

async fn spawn_with_mtls(settings: &[(&str, &str)]) -> TestApp {
    TestApp {
        svc: Running::start_with_mtls(TestEnv::new().await, settings).await,
        nats: None,
    }
}

fn client(app: &TestApp, channel: Channel, organisation: &str, roles: &[Role]) -> Client {
    ReferralsServiceClient::with_interceptor(channel, Bearer(Some(app.token(organisation, roles))))
}

/// The server refused the client in the TLS handshake with `alert`: connecting
/// failed, or (TLS 1.3 finishes the client's side of the handshake before the server
/// has checked its certificate) the first call failed on the connection with the
/// server's alert, before any gRPC status could be sent.
async fn assert_handshake_refused(app: &TestApp, client_cert: Option<&Pem>, alert: &str) {
    let mtls = app.mtls.as_ref().expect("mTLS");
    let err = match mtls.connect(app.addr, client_cert).await {
        Err(e) => harness::error_chain(&e),
        Ok(channel) => {
            let status = client(app, channel, REFERRER_ORG, &[Role::Referrer])
                .list_referrals(pb::ListReferralsRequest::default())
                .await
                .expect_err("no call may succeed without a good client certificate");
            harness::assert_transport_error(&status);
            harness::error_chain(&status)
        }
    };
    assert!(
        err.contains(&format!("received fatal alert: {alert}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_partner_whose_certificate_and_token_name_one_organisation_is_served() {
    let app = spawn_with_mtls(&[]).await;
    let channel = app.mtls_channel(REFERRER_ORG).await;
    let mut referrer = client(&app, channel, REFERRER_ORG, &[Role::Referrer]);
    let created = referrer
        .create_referral(create_request(referral()))
        .await
        .expect("the call is served")
        .into_inner()
        .referral
        .unwrap();
    let read = referrer
        .get_referral(pb::GetReferralRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(read.name, created.name);
}

#[tokio::test]
async fn a_token_of_another_organisation_than_the_certificate_is_refused_and_writes_nothing() {
    let app = spawn_with_mtls(&[]).await;
    let before = rows(&app).await;
    // The health board's system, sending a token issued to the council.
    let channel = app.mtls_channel(REFERRER_ORG).await;
    let mut wrong = client(&app, channel, OTHER_ORG, &[Role::Referrer, Role::Triage]);
    let err = wrong
        .create_referral(create_request(referral()))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, ORGANISATION_MISMATCH);
    let err = wrong
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, ORGANISATION_MISMATCH);
    before.assert_unchanged(&rows(&app).await);

    // The same connection with the certificate's own organisation's token is served:
    // the refusal was about the pair, not the connection.
    let channel = app.mtls_channel(REFERRER_ORG).await;
    client(&app, channel, REFERRER_ORG, &[Role::Referrer])
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .expect("served");
}

#[tokio::test]
async fn a_certificate_that_names_no_organisation_is_refused() {
    let app = spawn_with_mtls(&[]).await;
    let mtls = app.mtls.as_ref().unwrap();
    let nameless = mtls
        .ca
        .client_with_sans("no-organisation", vec![], Validity::YEAR);
    let channel = mtls.connect(app.addr, Some(&nameless)).await.unwrap();
    let err = client(&app, channel, REFERRER_ORG, &[Role::Referrer])
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, ORGANISATION_MISSING);
}

#[tokio::test]
async fn a_certificate_is_not_enough_without_a_token() {
    let app = spawn_with_mtls(&[]).await;
    let channel = app.mtls_channel(REFERRER_ORG).await;
    let err = ReferralsServiceClient::with_interceptor(channel, Bearer(None))
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "UNAUTHENTICATED");
}

#[tokio::test]
async fn without_a_client_certificate_the_handshake_fails() {
    let app = spawn_with_mtls(&[]).await;
    assert_handshake_refused(&app, None, "CertificateRequired").await;
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_fails_the_handshake() {
    let app = spawn_with_mtls(&[]).await;
    let stranger = Ca::new("Not the partnership's CA").client(REFERRER_ORG);
    assert_handshake_refused(&app, Some(&stranger), "UnknownCA").await;
}

#[tokio::test]
async fn an_expired_certificate_fails_the_handshake() {
    let app = spawn_with_mtls(&[]).await;
    let mtls = app.mtls.as_ref().unwrap();
    let expired = mtls.ca.client_valid(REFERRER_ORG, Validity::EXPIRED);
    assert_handshake_refused(&app, Some(&expired), "CertificateExpired").await;
}

#[tokio::test]
async fn plaintext_gets_nothing_from_the_grpc_port() {
    let app = spawn_with_mtls(&[]).await;
    assert!(!harness::is_serving(app.channel(), "").await);
    let err = app
        .referrer()
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .unwrap_err();
    harness::assert_transport_error(&err);
}

#[tokio::test]
async fn the_plaintext_health_port_serves_health_only_and_follows_the_server() {
    let mut app = spawn_with_mtls(&[("HEARTH_SHUTDOWN_DRAIN_MS", "2000")]).await;
    let health_port = app.health.clone();
    for service in ["", referrals::SERVICE_NAME] {
        assert!(harness::is_serving(health_port.clone(), service).await);
    }
    // Nothing else answers there, with or without a token.
    let err = client(&app, health_port.clone(), REFERRER_ORG, &[Role::Referrer])
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");

    // Shutdown: the health port reports NOT_SERVING while the server drains.
    app.shutdown.cancel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let status = HealthClient::new(health_port.clone())
            .check(HealthCheckRequest {
                service: referrals::SERVICE_NAME.into(),
            })
            .await
            .expect("the health port answers through the drain")
            .into_inner()
            .status;
        if status == ServingStatus::NotServing as i32 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn a_missing_certificate_file_stops_start_up_naming_the_variable() {
    let env = TestEnv::new().await;
    let mtls = Mtls::new(env.dir());
    let missing = env.dir().join("no-such-server.pem");
    let mut vars: BTreeMap<String, String> = env.vars().into_iter().collect();
    vars.extend(mtls.vars().iter().cloned());
    vars.insert(CERT_VAR.into(), missing.display().to_string());
    let (cfg, own) = config::load::<<Referrals as Service>::Settings, _>(
        &Env::from_fn(|k| vars.get(k).cloned()),
        0,
    )
    .expect("the settings themselves are complete");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = service::run::<Referrals>(cfg, own, listener, CancellationToken::new())
        .await
        .expect_err("start-up stops")
        .to_string();
    let want = format!("{CERT_VAR} ({}): cannot read", missing.display());
    assert!(err.starts_with(&want), "{err}");
}
