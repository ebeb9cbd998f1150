use hearth_platform::Role;
use hearth_proto::referrals as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn get_shows_a_referral_to_its_referrer_and_the_area_triage_only() {
    let app = TestApp::spawn().await;
    let r = app.create(referral()).await;
    let get = |name: &str| pb::GetReferralRequest { name: name.into() };

    assert!(app.referrer().get_referral(get(&r.name)).await.is_ok());
    assert!(app.triage().get_referral(get(&r.name)).await.is_ok());
    assert!(
        app.client(REFERRER_ORG, &[Role::Practitioner])
            .get_referral(get(&r.name))
            .await
            .is_ok(),
        "colleagues in the referring organisation"
    );
    // The area's practitioners see it too (the receiving area, under the access
    // model), without the NHS number their work does not need.
    let seen = app
        .client(AREA, &[Role::Practitioner, Role::Coordinator])
        .get_referral(get(&r.name))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    let child = &seen.family.as_ref().unwrap().children[0];
    assert!(!child.given_name.is_empty());
    assert!(
        child.nhs_number.is_empty(),
        "redacted for the area's practitioners"
    );
    for (who, mut c) in [
        ("another organisation", app.outsider()),
        ("the area's referrers", app.client(AREA, &[Role::Referrer])),
        (
            "an analyst of the referring org",
            app.client(REFERRER_ORG, &[Role::Analyst]),
        ),
        (
            "another area's triage",
            app.client("east-lothian", &[Role::Triage]),
        ),
    ] {
        let err = c.get_referral(get(&r.name)).await.unwrap_err();
        assert_status(&err, Code::NotFound, "NOT_FOUND");
        assert!(
            !err.message().contains("Reid"),
            "{who}: no personal data in errors"
        );
    }

    let missing = format!("referrals/{}", uuid::Uuid::now_v7());
    assert_status(
        &app.triage().get_referral(get(&missing)).await.unwrap_err(),
        Code::NotFound,
        "NOT_FOUND",
    );
    assert_invalid(
        &app.triage()
            .get_referral(get("referrals/123"))
            .await
            .unwrap_err(),
        &["name"],
    );
    assert_invalid(
        &app.triage().get_referral(get("")).await.unwrap_err(),
        &["name"],
    );
}

async fn names(c: &mut Client, filter: &str, page_size: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_referrals(pb::ListReferralsRequest {
                page_size,
                page_token: token.clone(),
                filter: filter.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.referrals.len() <= page_size as usize);
        out.extend(page.referrals.into_iter().map(|r| r.name));
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn list_pages_in_a_stable_order_and_shows_each_caller_only_their_referrals() {
    let app = TestApp::spawn().await;
    let mut made = Vec::new();
    for i in 0..7 {
        let mut r = referral();
        if i % 3 == 0 {
            r.source = pb::Source::School as i32;
        }
        made.push(app.create(r).await.name);
    }
    // One from another organisation to the same area, one to another area.
    let mut elsewhere = referral();
    elsewhere.receiving_area = "east-lothian".into();
    app.create(elsewhere).await;
    let other = app
        .client("st-davids-primary", &[Role::Referrer])
        .create_referral(create_request(referral()))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();

    let mut triage = app.triage();
    let seen = names(&mut triage, "", 3).await;
    let mut want = made.clone();
    want.push(other.name.clone());
    assert_eq!(
        seen, want,
        "area triage sees the area's referrals, oldest first, across pages"
    );

    let mine = names(
        &mut app.client("st-davids-primary", &[Role::Referrer]),
        "",
        50,
    )
    .await;
    assert_eq!(
        mine,
        vec![other.name.clone()],
        "a referrer sees only its own"
    );
    assert!(names(&mut app.outsider(), "", 10).await.is_empty());

    let schools = names(&mut triage, "source = SCHOOL", 2).await;
    assert_eq!(
        schools,
        vec![made[0].clone(), made[3].clone(), made[6].clone()]
    );
    let not_school = names(
        &mut triage,
        "source != SOURCE_SCHOOL AND state = RECEIVED",
        10,
    )
    .await;
    assert_eq!(not_school.len(), 5);

    // Time range: everything before now, nothing after.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(
        names(&mut triage, &format!("receive_time < \"{now}\""), 100)
            .await
            .len(),
        8
    );
    assert!(
        names(&mut triage, &format!("receive_time >= \"{now}\""), 100)
            .await
            .is_empty()
    );

    // Accept one and filter by state.
    triage
        .accept_referral(pb::AcceptReferralRequest {
            name: made[1].clone(),
            request_id: rid(),
            reason: "Meets the early help threshold".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        names(&mut triage, "state = ACCEPTED", 10).await,
        vec![made[1].clone()]
    );
}

#[tokio::test]
async fn list_rejects_bad_filters_sizes_and_tokens() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.create(referral()).await;
    }
    let mut triage = app.triage();
    let list = |filter: &str, size: i32, token: &str| pb::ListReferralsRequest {
        page_size: size,
        page_token: token.into(),
        filter: filter.into(),
    };
    for bad in [
        "colour = red",
        "state = MAYBE",
        "state >= RECEIVED",
        "receive_time > yesterday",
    ] {
        let err = triage.list_referrals(list(bad, 10, "")).await.unwrap_err();
        assert_invalid(&err, &["filter"]);
    }
    assert_invalid(
        &triage.list_referrals(list("", -1, "")).await.unwrap_err(),
        &["page_size"],
    );
    assert_invalid(
        &triage
            .list_referrals(list("", 10, "garbage"))
            .await
            .unwrap_err(),
        &["page_token"],
    );

    let first = triage
        .list_referrals(list("", 1, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let err = triage
        .list_referrals(list("state = RECEIVED", 1, &first.next_page_token))
        .await
        .unwrap_err();
    assert_invalid(&err, &["page_token"]);

    // Tokens are signed: one edited to start somewhere else (any byte changed, even
    // re-encoded to look well formed) is refused, and the real one still works.
    let token = first.next_page_token.clone();
    for at in 0..token.len() {
        let mut edited = token.clone().into_bytes();
        edited[at] = if edited[at] == b'A' { b'B' } else { b'A' };
        let edited = String::from_utf8(edited).unwrap();
        if edited == token {
            continue;
        }
        let err = triage
            .list_referrals(list("", 1, &edited))
            .await
            .unwrap_err();
        assert_invalid(&err, &["page_token"]);
    }
    let (body, mac) = token.split_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: serde_json::Value =
        serde_json::from_slice(&b64.decode(body).unwrap()).unwrap();
    payload["p"][0] = serde_json::json!(0);
    let forged = format!(
        "{}.{mac}",
        b64.encode(serde_json::to_vec(&payload).unwrap())
    );
    assert_invalid(
        &triage
            .list_referrals(list("", 1, &forged))
            .await
            .unwrap_err(),
        &["page_token"],
    );
    let second = triage
        .list_referrals(list("", 1, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.referrals.len(), 1);

    let err = app
        .client(AREA, &[Role::Analyst])
        .list_referrals(list("", 10, ""))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
}
