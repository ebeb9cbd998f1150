use hearth_platform::Role;
use hearth_proto::referrals as pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_family_shows_each_caller_only_what_their_referrals_named() {
    let app = TestApp::spawn().await;
    let first = app.create(referral()).await;
    let known = first.family.as_ref().unwrap().children[0].clone();

    let mut second = referral();
    let fam = second.family.as_mut().unwrap();
    fam.children[0].nhs_number = known.nhs_number.clone();
    fam.children.push(pb::Child {
        given_name: "Alex".into(),
        family_name: "Reid".into(),
        date_of_birth: date(2018, 3, 3),
        ..Default::default()
    });
    fam.adults.push(pb::Adult {
        given_name: "Chris".into(),
        family_name: "Reid".into(),
        role: pb::ParentingRole::Father as i32,
        ..Default::default()
    });
    let school = app.client("newbattle-high-school", &[Role::Referrer]);
    let second = school
        .clone()
        .create_referral(create_request(second))
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(second.family_name, first.family_name);

    let get = || pb::GetFamilyRequest {
        name: first.family_name.clone(),
    };
    let all = app
        .triage()
        .get_family(get())
        .await
        .unwrap()
        .into_inner()
        .family
        .unwrap();
    assert_eq!(all.referrals, vec![first.name.clone(), second.name.clone()]);
    assert_eq!(
        all.children.len(),
        2,
        "the known child once, plus the sibling"
    );
    assert_eq!(all.adults.len(), 2, "mother once, plus father");
    assert_eq!(all.receiving_area, AREA);

    let health = app
        .referrer()
        .get_family(get())
        .await
        .unwrap()
        .into_inner()
        .family
        .unwrap();
    assert_eq!(health.referrals, vec![first.name.clone()]);
    assert_eq!(
        health.children.len(),
        1,
        "the health visitor does not learn of the sibling"
    );
    assert_eq!(health.adults.len(), 1);

    let err = app.outsider().get_family(get()).await.unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let err = app
        .triage()
        .get_family(pb::GetFamilyRequest {
            name: format!("families/{}", uuid::Uuid::now_v7()),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "NOT_FOUND");
    let err = app
        .triage()
        .get_family(pb::GetFamilyRequest {
            name: first.name.clone(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, &["name"]);
}
