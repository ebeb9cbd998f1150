//! The family-linking rule is stated once, in `domain/linking.rs`; the lookup that
//! applies it runs in SQL (`referrals.claim_and_match`, under the identity locks). This
//! shows the two agree: for a grid of referred children against known members chosen
//! to sit on every edge of the rule, the SQL picks the member the rule picks, matched
//! the same way.

use chrono::{DateTime, NaiveDate, Utc};
use hearth_platform::idempotency::RequestKey;
use hearth_proto::referrals::LinkMatch;
use referrals::domain::linking::{KnownMember, Place, best_match, identity_keys, name_key};
use referrals::domain::validate;
use referrals::store::{self, ClaimInput};
use uuid::Uuid;

use crate::helpers::*;

const AREA: &str = "midlothian";

fn day(d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(2022, 5, d)
}

fn nhs(n: u64) -> Option<String> {
    Some(nhs_number(n))
}

#[allow(clippy::too_many_arguments)]
fn member(
    area: &str,
    is_child: bool,
    given: &str,
    dob: Option<NaiveDate>,
    nhs_number: Option<String>,
    postcode: &str,
    minute: i64,
) -> KnownMember {
    KnownMember {
        receiving_area: area.into(),
        member_id: Uuid::new_v4(),
        family_id: Uuid::new_v4(),
        is_child,
        name_key: name_key(given, "Kerr"),
        date_of_birth: dob,
        nhs_number,
        postcode: postcode.into(),
        known_since: DateTime::<Utc>::from_timestamp(1_700_000_000 + minute * 60, 0).unwrap(),
    }
}

#[tokio::test]
async fn the_sql_lookup_picks_the_member_the_rule_picks() {
    let app = TestApp::spawn().await;
    let known = vec![
        member(AREA, true, "Mia", day(1), nhs(1), "EH22 1AB", 1),
        // The same identity known again later, without an NHS number.
        member(AREA, true, "Mia", day(1), None, "EH22 1AB", 2),
        member(AREA, true, "Leo", day(2), None, "EH22 1AB", 0),
        // An adult with a child's identity: never matched by identity.
        member(AREA, false, "Mia", day(1), None, "EH22 1AB", 0),
        // Another area, earliest of all.
        member("east-lothian", true, "Mia", day(1), nhs(2), "EH22 1AB", -5),
        member(AREA, true, "Ava", day(3), nhs(3), "EH19 2QT", 3),
    ];
    for k in &known {
        sqlx::query(
            "INSERT INTO referrals.families (id, receiving_area, created_at) VALUES ($1, $2, $3)",
        )
        .bind(k.family_id)
        .bind(&k.receiving_area)
        .bind(k.known_since)
        .execute(&app.pool)
        .await
        .unwrap();
        let (given, family) = k.name_key.split_once('|').unwrap();
        sqlx::query(
            "INSERT INTO referrals.family_members (id, family_id, receiving_area, kind, given_name, family_name,
                 name_key, date_of_birth, nhs_number, postcode, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(k.member_id)
        .bind(k.family_id)
        .bind(&k.receiving_area)
        .bind(if k.is_child { "child" } else { "adult" })
        .bind(given)
        .bind(family)
        .bind(&k.name_key)
        .bind(k.date_of_birth)
        .bind(k.nhs_number.as_ref().map(|n| n.replace(' ', "")))
        .bind(&k.postcode)
        .bind(k.known_since)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    // What is stored is normalised: compare like with like.
    let known: Vec<KnownMember> = known
        .into_iter()
        .map(|k| KnownMember {
            nhs_number: k.nhs_number.map(|n| n.replace(' ', "")),
            ..k
        })
        .collect();

    let template = validate::new_referral(&referral(), "nhs-lothian", "hv", Utc::now()).unwrap();
    let (mut by_nhs, mut by_identity, mut none) = (0, 0, 0);
    for given in ["Mia", " mia ", "Leo", "Ava", "Zoe"] {
        for dob in [day(1), day(2), day(3), None] {
            for number in [None, nhs(1), nhs(2), nhs(3), nhs(4)] {
                for postcode in ["EH22 1AB", "EH19 2QT"] {
                    let mut r = template.clone();
                    r.postcode = postcode.into();
                    let child = &mut r.children[0];
                    child.given_name = given.into();
                    child.family_name = "Kerr".into();
                    child.date_of_birth = dob;
                    child.nhs_number = number.as_ref().map(|n| n.replace(' ', ""));
                    let rule = best_match(&r.children[0], Place::of(&r), &known)
                        .map(|(k, how)| (k.member_id, how));

                    let key = RequestKey {
                        organisation: "nhs-lothian".into(),
                        request_id: Uuid::new_v4(),
                        method: "CreateReferral",
                        hash: vec![0],
                    };
                    let locks = identity_keys(&r);
                    let mut tx = app.pool.begin().await.unwrap();
                    let found = store::claim_and_match(
                        &mut tx,
                        &[ClaimInput {
                            key: &key,
                            referral: &r,
                            lock_keys: &locks,
                        }],
                    )
                    .await
                    .unwrap();
                    tx.rollback().await.unwrap();
                    let sql = found[0].1.children[0]
                        .as_ref()
                        .map(|k| (k.member_id, k.how));
                    assert_eq!(
                        sql, rule,
                        "{given:?} born {dob:?}, NHS {number:?}, at {postcode}"
                    );
                    match rule {
                        Some((_, LinkMatch::NhsNumber)) => by_nhs += 1,
                        Some(_) => by_identity += 1,
                        None => none += 1,
                    }
                }
            }
        }
    }
    // Every branch of the rule was exercised.
    assert!(
        by_nhs > 0 && by_identity > 0 && none > 0,
        "{by_nhs} {by_identity} {none}"
    );
}
