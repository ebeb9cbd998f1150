//! What operators rely on: health, reflection, limits, graceful shutdown, config errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("hearth.") && n != referrals::SERVICE_NAME),
        "{names:?}"
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_every_call_already_in_flight() {
    let mut app = TestApp::spawn_with(|cfg| cfg.shutdown_drain = Duration::from_millis(300)).await;
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
    let app = TestApp::spawn_with(|cfg| cfg.max_concurrent_requests = 2).await;
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
    let app = TestApp::spawn_with(|cfg| cfg.max_message_bytes = 4096).await;
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
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
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
