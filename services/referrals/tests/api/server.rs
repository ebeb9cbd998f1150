//! What operators rely on: health, reflection, limits, graceful shutdown, config errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hearth_proto::referrals as pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::*;

#[tokio::test]
async fn health_and_reflection_answer_without_a_token() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel());
    for service in ["", referrals::SERVICE_NAME] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
    }

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut refl = ServerReflectionClient::new(app.channel());
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&referrals::SERVICE_NAME.to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    // The descriptor set carries the other services' contracts too; this server must
    // not advertise what it does not answer.
    // and the access service every Hearth service serves beside its own.
    assert!(
        names.contains(&"hearth.access.v1.AccessService".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("hearth.")
            && n != referrals::SERVICE_NAME
            && n != "hearth.access.v1.AccessService"),
        "{names:?}"
    );
}

/// The drain as seen from a caller. That SIGTERM waits for calls in flight is shown
/// against the real binary (`tests/journeys/shutdown.rs`): hosted here, the
/// connections' tasks would answer them even if the server did not wait.
#[tokio::test]
async fn the_drain_reports_not_serving_and_every_call_made_is_answered() {
    let mut app = TestApp::spawn_with(&[("HEARTH_SHUTDOWN_DRAIN_MS", "300")]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let mut c = app.referrer();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed_in_flight) = (0, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match c.create_referral(create_request(referral())).await {
                    Ok(_) => ok += 1,
                    Err(e) => failed_in_flight.push(e),
                }
            }
            (ok, failed_in_flight)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // New calls stop being started; the ones already sent must all complete.
    stop.store(true, Ordering::SeqCst);
    app.shutdown.cancel();
    // During the drain the server still answers, and says it is going away.
    let mut health = HealthClient::new(app.channel());
    let mut saw_not_serving = false;
    for _ in 0..20 {
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: referrals::SERVICE_NAME.into(),
            })
            .await
            .expect("health answers during the drain");
        if resp.into_inner().status == ServingStatus::NotServing as i32 {
            saw_not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_not_serving, "drain reports NOT_SERVING");
    let mut total = 0;
    for w in workers {
        let (ok, failed) = w.await.unwrap();
        assert!(failed.is_empty(), "in-flight calls failed: {failed:?}");
        total += ok;
    }
    assert!(total > 0);
    let result = tokio::time::timeout(Duration::from_secs(20), app.handle.take().unwrap())
        .await
        .expect("the server stops")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        app.count("referrals").await,
        total as i64,
        "every OK call was committed"
    );
}

#[tokio::test]
async fn calls_beyond_the_concurrency_limit_are_shed_not_queued() {
    let app = TestApp::spawn_with(&[("HEARTH_MAX_CONCURRENT_REQUESTS", "2")]).await;
    let calls = (0..40).map(|_| {
        let mut c = app.referrer();
        tokio::spawn(async move { c.create_referral(create_request(referral())).await })
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let shed = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.code() == Code::ResourceExhausted))
        .count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!(shed > 0, "some calls were shed");
    assert!(ok > 0, "some calls got through");
    assert_eq!(shed + ok, 40, "nothing else went wrong");
    assert_eq!(app.count("referrals").await, ok as i64);
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let app = TestApp::spawn_with(&[("HEARTH_MAX_MESSAGE_BYTES", "4096")]).await;
    let mut r = referral();
    r.description = "x".repeat(3000);
    r.family.as_mut().unwrap().adults[0].phone = "1".repeat(40);
    let mut big = r.clone();
    big.referrer.as_mut().unwrap().contact = "y".repeat(200);
    big.family.as_mut().unwrap().children[0].ethnicity = "z".repeat(60);
    big.description = "x".repeat(3990);
    big.consents = vec![assessment_consent(); 5];
    let err = app
        .referrer()
        .create_referral(create_request(big))
        .await
        .unwrap_err();
    // RESOURCE_EXHAUSTED, as the gRPC status codes say, told apart from load shedding
    // by its reason.
    assert_status(&err, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    assert_eq!(app.count("referrals").await, 0);
}

#[test]
fn the_binary_refuses_to_start_without_its_configuration() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_referrals"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HEARTH_DATABASE_URL"), "{stderr}");
}

/// Reads `name` with `n` calls at once; the failures.
async fn read_at_once(app: &TestApp, name: &str, n: usize) -> Vec<tonic::Status> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let mut c = app.triage();
            let req = pb::GetReferralRequest { name: name.into() };
            tokio::spawn(async move { c.get_referral(req).await })
        })
        .collect();
    let mut failed = Vec::new();
    for call in calls {
        if let Err(e) = call.await.unwrap() {
            failed.push(e);
        }
    }
    failed
}

#[tokio::test]
async fn calls_succeed_after_the_database_dropped_every_connection() {
    let app = TestApp::spawn().await;
    let first = app.create(referral()).await;
    // Reads at once, so that the service's pool holds many connections.
    let failed = read_at_once(&app, &first.name, 16).await;
    assert!(failed.is_empty(), "{failed:?}");

    // As after a database restart or failover: every session the service holds ends.
    let dropped: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(dropped >= 4, "only {dropped} sessions ended");

    // Reads at once may find their connection gone (one in steady use is not
    // checked first); those are told to retry, never that something broke inside.
    for e in read_at_once(&app, &first.name, 16).await {
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    }
    // A create: its writer finds its connection gone and writes it on a new one.
    let second = app.create(referral()).await;
    // Reads use the pool, which checks a connection that sat idle before handing it
    // out, and replaces it if it is dead.
    tokio::time::sleep(hearth_platform::db::CHECK_IDLE_AFTER + Duration::from_millis(100)).await;
    let failed = read_at_once(&app, &second.name, 16).await;
    assert!(failed.is_empty(), "{failed:?}");
    let page = app
        .triage()
        .list_referrals(pb::ListReferralsRequest {
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.referrals.len(), 2);
    // The relay reconnects too: both events reach NATS.
    assert_eq!(app.events(2).await.len(), 2);
}

/// Sets the `authorization` header verbatim (or not at all).
#[derive(Clone)]
struct RawAuth(Option<String>);

impl tonic::service::Interceptor for RawAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut()
                .insert("authorization", v.parse().unwrap());
        }
        Ok(req)
    }
}

/// Every method once, with `auth`; what each answered.
async fn every_method(app: &TestApp, auth: Option<String>) -> Vec<(&'static str, Code)> {
    use hearth_proto::referrals::referrals_service_client::ReferralsServiceClient;
    let mut c = ReferralsServiceClient::with_interceptor(app.channel(), RawAuth(auth));
    let name = || "referrals/01935d6e-8a3f-7c4e-9d2b-5a1f0e6c7b8d".to_owned();
    let code = |r: Result<_, tonic::Status>| r.err().map_or(Code::Ok, |e: tonic::Status| e.code());
    vec![
        (
            "CreateReferral",
            code(
                c.create_referral(create_request(referral()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetReferral",
            code(
                c.get_referral(pb::GetReferralRequest { name: name() })
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListReferrals",
            code(
                c.list_referrals(pb::ListReferralsRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "AcceptReferral",
            code(
                c.accept_referral(pb::AcceptReferralRequest {
                    name: name(),
                    request_id: rid(),
                    reason: "x".into(),
                })
                .await
                .map(drop),
            ),
        ),
        (
            "SignpostReferral",
            code(
                c.signpost_referral(pb::SignpostReferralRequest {
                    name: name(),
                    request_id: rid(),
                    signposted_to: "x".into(),
                    reason: "x".into(),
                })
                .await
                .map(drop),
            ),
        ),
        (
            "RedirectReferral",
            code(
                c.redirect_referral(pb::RedirectReferralRequest {
                    name: name(),
                    request_id: rid(),
                    redirected_to: "x".into(),
                    reason: "x".into(),
                })
                .await
                .map(drop),
            ),
        ),
        (
            "DeclineReferral",
            code(
                c.decline_referral(pb::DeclineReferralRequest {
                    name: name(),
                    request_id: rid(),
                    decline_reason: pb::DeclineReason::OutsideArea as i32,
                    reason: "x".into(),
                })
                .await
                .map(drop),
            ),
        ),
        (
            "WithdrawReferral",
            code(
                c.withdraw_referral(pb::WithdrawReferralRequest {
                    name: name(),
                    request_id: rid(),
                    reason: "x".into(),
                })
                .await
                .map(drop),
            ),
        ),
        (
            "RecordContact",
            code(
                c.record_contact(pb::RecordContactRequest {
                    name: name(),
                    request_id: rid(),
                    contact: None,
                })
                .await
                .map(drop),
            ),
        ),
        (
            "RecordConsent",
            code(
                c.record_consent(pb::RecordConsentRequest {
                    name: name(),
                    request_id: rid(),
                    consent: Some(assessment_consent()),
                })
                .await
                .map(drop),
            ),
        ),
        (
            "WithdrawConsent",
            code(
                c.withdraw_consent(pb::WithdrawConsentRequest {
                    name: format!("{}/consents/01935d6e-8a3f-7c4e-9d2b-5a1f0e6c7b8e", name()),
                    request_id: rid(),
                    reason: String::new(),
                    withdraw_time: None,
                })
                .await
                .map(drop),
            ),
        ),
        (
            "GetFamily",
            code(
                c.get_family(pb::GetFamilyRequest {
                    name: "families/01935d6e-8a3f-7c4e-9d2b-5a1f0e6c7b8f".into(),
                })
                .await
                .map(drop),
            ),
        ),
    ]
}

#[tokio::test]
async fn every_method_refuses_a_caller_without_a_good_token() {
    use hearth_platform::Role;
    use hearth_platform::auth::{Claims, KeyPair, TokenIssuer};
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |f: &dyn Fn(&mut Claims)| {
        let mut c = Claims {
            iss: "hearth-test".into(),
            aud: "hearth".into(),
            sub: "user-1".into(),
            exp: now + 600,
            iat: now,
            org: AREA.into(),
            roles: vec!["triage".into(), "referrer".into()],
        };
        f(&mut c);
        format!("Bearer {}", app.env.issuer.mint_claims(&c))
    };
    let stranger = KeyPair::generate();
    let forged = TokenIssuer::from_private_pem("x", &stranger.private_pem, "hearth-test", "hearth")
        .unwrap()
        .mint("u", AREA, &[Role::Triage], Duration::from_secs(600));
    let good = app.token(AREA, &[Role::Triage]);
    let refused = [
        ("no token", None),
        ("not a JWT", Some("Bearer not-a-jwt".to_owned())),
        ("another scheme", Some(format!("Basic {good}"))),
        ("a bare token", Some(good.clone())),
        ("expired an hour ago", Some(claims(&|c| c.exp = now - 3600))),
        (
            "another issuer",
            Some(claims(&|c| c.iss = "someone-else".into())),
        ),
        (
            "another audience",
            Some(claims(&|c| c.aud = "payroll".into())),
        ),
        ("no organisation", Some(claims(&|c| c.org = String::new()))),
        ("an untrusted key", Some(format!("Bearer {forged}"))),
    ];
    for (what, auth) in refused {
        for (method, code) in every_method(&app, auth).await {
            assert_eq!(code, Code::Unauthenticated, "{method} with {what}");
        }
    }
    assert_eq!(
        app.count("referrals").await,
        0,
        "the refused calls wrote nothing"
    );
    // The same calls with a good token get past the door (to NOT_FOUND and the like),
    // so the refusals above are the token's doing.
    for (method, code) in every_method(&app, Some(format!("Bearer {good}"))).await {
        assert_ne!(code, Code::Unauthenticated, "{method} with a good token");
    }
}
