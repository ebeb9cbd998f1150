//! The audit log and the data protection officer's questions (issue 15): fail closed,
//! append-only for the serving role, a verify command that finds the first broken
//! link, emergency access that expires by itself, and the DPO's queries.

use hearth_platform::Role;
use hearth_proto::access as access_pb;
use hearth_proto::referrals as pb;
use tonic::Code;

use crate::access::access_as;
use crate::helpers::*;

const GLASS_ORG: &str = "police-scotland";

fn ago(secs: i64) -> Option<prost_types::Timestamp> {
    now_ts(-secs)
}

/// The `referrals` binary run with `command` and only the settings `vars`: its exit
/// status and everything it printed.
async fn referrals_command(command: &str, vars: &[(String, String)]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_referrals"))
        .arg(command)
        .env_clear()
        .envs(vars.iter().cloned())
        .env("RUST_LOG", "error")
        .output()
        .await
        .unwrap_or_else(|e| panic!("run referrals {command}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `referrals verify-audit` against the app's database, with `seal_key` (the two
/// settings it needs, and no others).
async fn verify_audit(app: &TestApp, seal_key: &str) -> (bool, String) {
    let serving = app
        .env
        .service_vars("referrals")
        .await
        .into_iter()
        .find(|(k, _)| k == "HEARTH_DATABASE_URL")
        .unwrap();
    let key = ("HEARTH_AUDIT_SEAL_KEY".to_owned(), seal_key.to_owned());
    referrals_command("verify-audit", &[serving, key]).await
}

#[tokio::test]
async fn a_read_or_a_change_that_cannot_be_recorded_fails_and_returns_nothing() {
    let app = TestApp::spawn().await;
    let made = app.create(referral()).await;
    let child = made.family.as_ref().unwrap().children[0].given_name.clone();
    let revoke = |sql: &'static str| {
        let pool = app.pool.clone();
        async move { sqlx::raw_sql(sql).execute(&pool).await.unwrap() }
    };
    revoke("REVOKE INSERT ON referrals.audit_log FROM referrals_app").await;
    let before = rows(&app).await;

    let err = app
        .triage()
        .get_referral(pb::GetReferralRequest {
            name: made.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(!format!("{err:?}").contains(&child), "no data: {err:?}");

    let err = app
        .triage()
        .record_contact(pb::RecordContactRequest {
            name: made.name.clone(),
            request_id: rid(),
            contact: contact(-60, true),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    let err = app
        .referrer()
        .create_referral(create_request(referral()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(rows(&app).await, before, "nothing changed unrecorded");

    // Recorded again, answered again.
    revoke("GRANT INSERT ON referrals.audit_log TO referrals_app").await;
    let got = app
        .triage()
        .get_referral(pb::GetReferralRequest {
            name: made.name.clone(),
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().referral.unwrap().name, made.name);
}

#[tokio::test]
async fn the_serving_role_can_only_add_to_the_audit_log() {
    let app = TestApp::spawn().await;
    app.create(referral()).await;
    let vars = app.env.service_vars("referrals").await;
    let app_url = &vars
        .iter()
        .find(|(k, _)| k == "HEARTH_DATABASE_URL")
        .unwrap()
        .1;
    let serving = sqlx::PgPool::connect(app_url).await.unwrap();
    for sql in [
        "UPDATE referrals.audit_log SET subject = 'someone-else'",
        "DELETE FROM referrals.audit_log",
        "TRUNCATE referrals.audit_log",
        // Nor stretch an emergency grant, nor hide one.
        "UPDATE referrals.break_glass SET expires_at = now() + interval '1 day'",
        "DELETE FROM referrals.break_glass",
    ] {
        let err = sqlx::raw_sql(sql).execute(&serving).await.unwrap_err();
        let code = err.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM referrals.audit_log")
        .fetch_one(&serving)
        .await
        .unwrap();
    assert!(n >= 1, "it may read what it wrote");
}

#[tokio::test]
async fn verify_audit_reports_the_first_broken_link() {
    let app = TestApp::spawn().await;
    let made = app.create(referral()).await;
    for _ in 0..3 {
        app.triage()
            .get_referral(pb::GetReferralRequest {
                name: made.name.clone(),
            })
            .await
            .unwrap();
    }
    let key = app.env.seal_key.clone();
    let (ok, out) = verify_audit(&app, &key).await;
    assert!(ok, "{out}");
    assert!(out.contains("the audit log is intact: 4 records"), "{out}");

    // The same log under another key: nothing it holds was sealed with that key,
    // which is how a chain recomputed after an edit shows.
    let (ok, out) = verify_audit(&app, "another-key-of-at-least-32-characters").await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("seal was not made with the audit key"),
        "{out}"
    );

    // An edit by hand, as a superuser would make it: the second read's record now
    // names someone else.
    let (chain, seq): (i32, i64) = sqlx::query_as(
        "SELECT chain, seq FROM referrals.audit_log
          WHERE method LIKE '%/GetReferral' ORDER BY at, chain, seq OFFSET 1 LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE referrals.audit_log SET subject = 'nobody' WHERE chain = $1 AND seq = $2")
        .bind(chain)
        .bind(seq)
        .execute(&app.pool)
        .await
        .unwrap();
    let (ok, out) = verify_audit(&app, &key).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("broken at chain {chain}, record {seq}"))
            && out.contains("the record was changed"),
        "{out}"
    );

    // Put back, the log verifies again; a record removed from the end is caught by
    // its chain's head.
    sqlx::query("UPDATE referrals.audit_log SET subject = 'user-1' WHERE chain = $1 AND seq = $2")
        .bind(chain)
        .bind(seq)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(verify_audit(&app, &key).await.0);
    sqlx::query(
        "DELETE FROM referrals.audit_log
          WHERE (chain, seq) = (SELECT chain, max(seq) FROM referrals.audit_log GROUP BY chain
                                 ORDER BY chain LIMIT 1)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (ok, out) = verify_audit(&app, &key).await;
    assert!(!ok && out.contains("records removed or added"), "{out}");
}

#[tokio::test]
async fn breaking_the_glass_opens_one_family_to_one_person_for_a_while() {
    let app = TestApp::spawn_with(&[("HEARTH_BREAK_GLASS_MINUTES", "5")]).await;
    let made = app.create(referral()).await;
    let other = app.create(referral()).await;
    let officer = |subject: &str| {
        (
            crate::access::referrals_client(&app, subject, GLASS_ORG, &[Role::Practitioner]),
            access_as(&app, subject, GLASS_ORG, &[Role::Practitioner]),
        )
    };
    let (mut pc, mut pc_access) = officer("pc-1");
    let get = |name: &str| pb::GetReferralRequest { name: name.into() };
    let err = pc.get_referral(get(&made.name)).await.unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");

    let ask = |family: &str, reason: &str, request_id: &str| access_pb::BreakGlassRequest {
        family: family.into(),
        reason: reason.into(),
        request_id: request_id.into(),
    };
    let reason = "Child reported missing overnight; need the family's contacts";
    let err = pc_access
        .break_glass(ask(&made.family_name, "", &rid()))
        .await
        .unwrap_err();
    harness_invalid(&err, &["reason"]);
    let err = pc_access
        .break_glass(ask(
            "families/0190c0de-0000-7000-8000-000000000009",
            reason,
            &rid(),
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let err = access_as(&app, "analyst-1", AREA, &[Role::Analyst])
        .break_glass(ask(&made.family_name, reason, &rid()))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");

    let request_id = rid();
    let grant = pc_access
        .break_glass(ask(&made.family_name, reason, &request_id))
        .await
        .unwrap()
        .into_inner()
        .grant
        .unwrap();
    assert_eq!(grant.family, made.family_name);
    assert_eq!(
        grant.expire_time.unwrap().seconds - grant.grant_time.unwrap().seconds,
        5 * 60,
        "HEARTH_BREAK_GLASS_MINUTES"
    );
    let again = pc_access
        .break_glass(ask(&made.family_name, reason, &request_id))
        .await
        .unwrap()
        .into_inner()
        .grant
        .unwrap();
    assert_eq!(again.name, grant.name, "a retry is the same grant");
    let replays = app
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r.subject == "pc-1" && r.method.ends_with("/BreakGlass"))
        .map(|r| (r.action, r.outcome))
        .collect::<Vec<_>>();
    use access_pb::{AccessAction as A, AccessOutcome as O};
    assert_eq!(
        replays,
        [
            (A::Write, O::Denied),
            (A::Write, O::Allowed),
            (A::Read, O::Allowed)
        ],
        "the unknown family refused, the grant made, the retry read: each recorded"
    );

    // The officer reads this family, and nothing else; reads only; nobody else.
    let seen = pc.get_referral(get(&made.name)).await.unwrap().into_inner();
    assert_eq!(seen.referral.unwrap().name, made.name);
    pc.get_family(pb::GetFamilyRequest {
        name: made.family_name.clone(),
    })
    .await
    .unwrap();
    let err = pc.get_referral(get(&other.name)).await.unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let err = pc
        .record_contact(pb::RecordContactRequest {
            name: made.name.clone(),
            request_id: rid(),
            contact: contact(-60, true),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let (mut colleague, _) = officer("pc-2");
    let err = colleague.get_referral(get(&made.name)).await.unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");

    let read = app
        .audit_records()
        .await
        .into_iter()
        .find(|r| {
            r.subject == "pc-1"
                && r.method.ends_with("/GetReferral")
                && r.outcome == access_pb::AccessOutcome::Allowed
        })
        .expect("the emergency read is recorded");
    assert_eq!(read.basis, access_pb::AccessBasis::BreakGlass);

    // The DPOs of the family's area and of the officer's force see the grant; another
    // organisation's does not.
    let grants = |org: &str| {
        let mut c = access_as(&app, "dpo-1", org, &[Role::Dpo]);
        async move {
            c.list_break_glass_grants(access_pb::ListBreakGlassGrantsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .grants
        }
    };
    let listed = grants(AREA).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, grant.name);
    assert_eq!(listed[0].reason, reason);
    assert_eq!(listed[0].subject, "pc-1");
    assert_eq!(grants(GLASS_ORG).await.len(), 1);
    assert!(grants(OTHER_ORG).await.is_empty());
    let err = pc_access
        .list_break_glass_grants(access_pb::ListBreakGlassGrantsRequest::default())
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");

    // It expires by itself.
    sqlx::query("UPDATE referrals.break_glass SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let err = pc.get_referral(get(&made.name)).await.unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn the_dpo_sees_who_saw_a_family_and_what_a_person_saw() {
    let app = TestApp::spawn().await;
    let made = app.create(referral()).await;
    let triage = crate::access::referrals_client(&app, "triage-7", AREA, &[Role::Triage]);
    for _ in 0..2 {
        triage
            .clone()
            .get_referral(pb::GetReferralRequest {
                name: made.name.clone(),
            })
            .await
            .unwrap();
    }
    let err = app
        .outsider()
        .get_referral(pb::GetReferralRequest {
            name: made.name.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");

    // Who saw the family, newest first, a page at a time.
    let mut dpo = access_as(&app, "dpo-1", AREA, &[Role::Dpo]);
    let mut records = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = dpo
            .list_family_access(access_pb::ListFamilyAccessRequest {
                family: made.family_name.clone(),
                page_size: 1,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        records.extend(page.records);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let seen: Vec<(String, String, i32, i32)> = records
        .iter()
        .map(|r| {
            (
                r.subject.clone(),
                r.method.rsplit('/').next().unwrap().to_owned(),
                r.outcome,
                r.basis,
            )
        })
        .collect();
    use access_pb::{AccessBasis as B, AccessOutcome as O};
    assert_eq!(
        seen,
        vec![
            (
                "user-1".into(),
                "GetReferral".into(),
                O::Denied as i32,
                B::None as i32
            ),
            (
                "triage-7".into(),
                "GetReferral".into(),
                O::Allowed as i32,
                B::ReceivingArea as i32
            ),
            (
                "triage-7".into(),
                "GetReferral".into(),
                O::Allowed as i32,
                B::ReceivingArea as i32
            ),
            (
                "user-1".into(),
                "CreateReferral".into(),
                O::Allowed as i32,
                B::ReferringOrganisation as i32
            ),
        ]
    );
    assert!(records.iter().all(|r| r.resources.contains(&made.name)));
    assert_eq!(
        records[0].organisation, OTHER_ORG,
        "the refused attempt, by whom"
    );

    // Only the family's area's DPO asks; a working role may not.
    let err = access_as(&app, "dpo-2", OTHER_ORG, &[Role::Dpo])
        .list_family_access(access_pb::ListFamilyAccessRequest {
            family: made.family_name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let err = access_as(&app, "triage-7", AREA, &[Role::Triage])
        .list_family_access(access_pb::ListFamilyAccessRequest {
            family: made.family_name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");

    // What one person looked at in a period.
    let asked =
        |organisation: &str, subject: &str, start_time| access_pb::ListCallerAccessRequest {
            organisation: organisation.into(),
            subject: subject.into(),
            start_time,
            ..Default::default()
        };
    let theirs = dpo
        .list_caller_access(asked(AREA, "triage-7", ago(3600)))
        .await
        .unwrap()
        .into_inner()
        .records;
    let what: Vec<(&str, i32)> = theirs
        .iter()
        .map(|r| (r.method.rsplit('/').next().unwrap(), r.outcome))
        .collect();
    assert_eq!(
        what,
        [
            ("ListFamilyAccess", O::Denied as i32),
            ("GetReferral", O::Allowed as i32),
            ("GetReferral", O::Allowed as i32),
        ],
        "newest first, their refused question included"
    );
    assert!(
        theirs
            .iter()
            .all(|r| r.subject == "triage-7" && r.families == [made.family_name.clone()])
    );
    let none = dpo
        .list_caller_access(asked(AREA, "triage-7", now_ts(5)))
        .await
        .unwrap_err();
    harness_invalid(&none, &["end_time"]);
    let err = dpo
        .list_caller_access(asked(REFERRER_ORG, "", ago(3600)))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "ROLE_REQUIRED");
    let err = dpo
        .list_caller_access(asked(AREA, "", None))
        .await
        .unwrap_err();
    harness_invalid(&err, &["start_time"]);

    // The DPO's own questions are on the record too.
    let own = dpo
        .list_caller_access(asked(AREA, "dpo-1", ago(3600)))
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(
        own.iter()
            .any(|r| r.method.ends_with("/ListFamilyAccess") && r.basis == B::DataProtection as i32),
        "{own:?}"
    );
    // Each against the family asked about, or none: never every family an answer
    // mentions, whose own logs would then list this question.
    for r in &own {
        let expected: Vec<String> = if r.method.ends_with("/ListFamilyAccess") {
            vec![made.family_name.clone()]
        } else {
            vec![]
        };
        assert_eq!(r.families, expected, "{}", r.method);
    }
}

/// INVALID_ARGUMENT from the access service, naming exactly these fields.
#[track_caller]
fn harness_invalid(status: &tonic::Status, fields: &[&str]) {
    hearth_testkit::harness::assert_invalid(status, "referrals.hearth", fields);
}

#[tokio::test]
async fn a_change_is_recorded_on_the_relationship_whose_role_it_needed() {
    let app = TestApp::spawn().await;
    // The area's front door takes a referral itself: it is both referrer and area.
    let made = app
        .triage()
        .create_referral(create_request(referral()))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    app.triage()
        .accept_referral(pb::AcceptReferralRequest {
            name: made.name.clone(),
            request_id: rid(),
            reason: "Meets the early help threshold".into(),
        })
        .await
        .unwrap();
    let accepted = app
        .audit_records()
        .await
        .into_iter()
        .find(|r| r.method.ends_with("/AcceptReferral"))
        .unwrap();
    assert_eq!(
        accepted.basis,
        access_pb::AccessBasis::ReceivingArea,
        "a triage decision rests on being the receiving area"
    );
}

#[tokio::test]
async fn migrate_runs_as_the_schemas_owner_only() {
    let app = TestApp::spawn().await;
    let vars = app.env.service_vars("referrals").await;
    let migrate = |without_owner: bool| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .filter(|(k, _)| !(without_owner && k == "HEARTH_DATABASE_OWNER_URL"))
            .cloned()
            .collect();
        async move { referrals_command("migrate", &vars).await }
    };
    // As the serving role it would own the audit log: refused, naming the setting.
    let (ok, out) = migrate(true).await;
    assert!(!ok && out.contains("HEARTH_DATABASE_OWNER_URL"), "{out}");
    let (ok, out) = migrate(false).await;
    assert!(ok && out.contains("migrations applied"), "{out}");
}
