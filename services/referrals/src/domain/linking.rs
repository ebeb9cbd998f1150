//! Family linking: a child already known in the area brings a new referral into that
//! child's family instead of creating a duplicate (DESIGN.md: "a child already known
//! must be linked, not duplicated"). The whole rule is here; the one SQL lookup that
//! applies it (`referrals.claim_and_match`, which must run under the identity locks
//! for two referrals of one new child not to make two families) is checked against
//! [`best_match`] by the `linking` integration tests.
//!
//! The rule, within one receiving area:
//!
//! 1. A referred child is the same person as a known member with the same NHS number.
//! 2. Failing that, as a known *child* with the same name (case and surrounding space
//!    ignored), date of birth and postcode, unless both have NHS numbers (two
//!    different NHS numbers are two different children).
//! 3. A child with neither an NHS number nor a date of birth (an unborn child) is
//!    never matched.
//! 4. Of several candidates, an NHS-number match wins, then the earliest known.
//! 5. The referral joins the family of its first matched child. Its other children
//!    matched to that family become those members (a known member at most once);
//!    children matched to another family stay new people in this one.
//! 6. Its adults become the family's known adults with the same name and parenting
//!    role; the rest are new.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use hearth_proto::referrals::LinkMatch;
use uuid::Uuid;

use super::{Child, Referral};

/// The key names are matched on: `given|family`, trimmed and lower-cased.
pub fn name_key(given: &str, family: &str) -> String {
    format!(
        "{}|{}",
        given.trim().to_lowercase(),
        family.trim().to_lowercase()
    )
}

/// The advisory-lock keys that serialise concurrent referrals which could match the
/// same child (rule 1 and 2's keys), so two referrals for one new child cannot create
/// two families. Sorted, without repeats.
pub fn identity_keys(r: &Referral) -> Vec<String> {
    let area = &r.receiving_area;
    let mut keys: Vec<String> = Vec::new();
    for c in &r.children {
        if let Some(n) = &c.nhs_number {
            keys.push(format!("{area}|nhs|{n}"));
        }
        if let Some(d) = c.date_of_birth {
            keys.push(format!(
                "{area}|id|{}|{d}|{}",
                name_key(&c.given_name, &c.family_name),
                r.postcode
            ));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// A member already known in the area, as matching sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMember {
    pub receiving_area: String,
    pub member_id: Uuid,
    pub family_id: Uuid,
    pub is_child: bool,
    pub name_key: String,
    pub date_of_birth: Option<NaiveDate>,
    pub nhs_number: Option<String>,
    pub postcode: String,
    pub known_since: DateTime<Utc>,
}

/// Where a referral is addressed: its receiving area and the family's postcode.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub receiving_area: &'a str,
    pub postcode: &'a str,
}

impl<'a> Place<'a> {
    pub fn of(r: &'a Referral) -> Place<'a> {
        Place {
            receiving_area: &r.receiving_area,
            postcode: &r.postcode,
        }
    }
}

/// How a child referred to `place` matches `known`, if at all (rules 1 to 3).
pub fn matches(child: &Child, place: Place<'_>, known: &KnownMember) -> Option<LinkMatch> {
    if known.receiving_area != place.receiving_area {
        return None;
    }
    if child.nhs_number.is_some() && child.nhs_number == known.nhs_number {
        return Some(LinkMatch::NhsNumber);
    }
    let by_identity = known.is_child
        && child.date_of_birth.is_some()
        && child.date_of_birth == known.date_of_birth
        && name_key(&child.given_name, &child.family_name) == known.name_key
        && place.postcode == known.postcode
        && (child.nhs_number.is_none() || known.nhs_number.is_none());
    by_identity.then_some(LinkMatch::NameDateOfBirthPostcode)
}

/// The known member a referred child is (rule 4), and how it matched.
pub fn best_match<'a>(
    child: &Child,
    place: Place<'_>,
    known: &'a [KnownMember],
) -> Option<(&'a KnownMember, LinkMatch)> {
    known
        .iter()
        .filter_map(|k| matches(child, place, k).map(|how| (k, how)))
        .min_by_key(|(k, how)| (*how != LinkMatch::NhsNumber, k.known_since, k.member_id))
}

/// A known member a referred child matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub member_id: Uuid,
    pub family_id: Uuid,
    pub how: LinkMatch,
}

/// What the lookup found for one referral.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matches {
    /// Per child of the referral, in order: the member it is, if known.
    pub children: Vec<Option<Known>>,
    /// The adults of the first matched child's family: `(member id, name key, role)`.
    pub adults: Vec<(Uuid, String, String)>,
}

/// What [`link`] decided for one referral.
#[derive(Debug, Default)]
pub struct Link {
    /// The members that are new people (the rest are already known).
    pub new_members: HashSet<Uuid>,
    /// The known family it joins, and how its first child matched.
    pub family: Option<(Uuid, LinkMatch)>,
    /// The known members its children turned out to be.
    pub matched: Vec<Uuid>,
}

/// Applies rules 5 and 6: brings `r` into the family its first matched child belongs
/// to, giving the matched children and adults their known member ids (in its
/// consents and its order too).
pub fn link(r: &mut Referral, found: &Matches) -> Link {
    let mut out = Link {
        new_members: r
            .children
            .iter()
            .map(|c| c.member_id)
            .chain(r.adults.iter().map(|a| a.member_id))
            .collect(),
        ..Link::default()
    };
    for (child, known) in r.children.iter_mut().zip(&found.children) {
        let Some(known) = known else {
            continue;
        };
        let family = out.family.get_or_insert((known.family_id, known.how)).0;
        if known.family_id == family && !out.matched.contains(&known.member_id) {
            out.new_members.remove(&child.member_id);
            child.member_id = known.member_id;
            out.matched.push(known.member_id);
        }
    }
    if let Some((family, _)) = out.family {
        r.family_id = family;
        r.linked_existing = true;
        for adult in r.adults.iter_mut() {
            let key = name_key(&adult.given_name, &adult.family_name);
            if let Some((id, _, _)) = found
                .adults
                .iter()
                .find(|(_, k, role)| *k == key && role == adult.role.as_str_name())
            {
                out.new_members.remove(&adult.member_id);
                let was = std::mem::replace(&mut adult.member_id, *id);
                let rename = |ids: &mut Vec<Uuid>| {
                    for m in ids.iter_mut().filter(|m| **m == was) {
                        *m = *id;
                    }
                };
                r.consents.iter_mut().for_each(|c| rename(&mut c.members));
                if let Some(o) = r.order.as_mut() {
                    rename(&mut o.bound_members);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tests::sample;
    use crate::domain::{Adult, ParentingRole};

    fn child(given: &str) -> Child {
        Child {
            member_id: Uuid::now_v7(),
            given_name: given.into(),
            family_name: "Kerr".into(),
            date_of_birth: None,
            due_date: None,
            nhs_number: None,
            ethnicity: String::new(),
        }
    }

    fn adult(given: &str, role: ParentingRole) -> Adult {
        Adult {
            member_id: Uuid::now_v7(),
            given_name: given.into(),
            family_name: "Kerr".into(),
            role,
            date_of_birth: None,
            ethnicity: String::new(),
            phone: String::new(),
            email: String::new(),
            preferred_contact: crate::domain::ContactMethod::Unspecified,
        }
    }

    fn known(
        is_child: bool,
        nhs: Option<&str>,
        dob: Option<NaiveDate>,
        minutes: i64,
    ) -> KnownMember {
        KnownMember {
            receiving_area: "midlothian".into(),
            member_id: Uuid::now_v7(),
            family_id: Uuid::now_v7(),
            is_child,
            name_key: "mia|kerr".into(),
            date_of_birth: dob,
            nhs_number: nhs.map(str::to_owned),
            postcode: "EH22 1AB".into(),
            known_since: DateTime::UNIX_EPOCH + chrono::Duration::minutes(minutes),
        }
    }

    #[test]
    fn names_match_whatever_their_case_and_spacing() {
        assert_eq!(name_key(" Mia ", "KERR"), "mia|kerr");
    }

    const HERE: Place<'static> = Place {
        receiving_area: "midlothian",
        postcode: "EH22 1AB",
    };

    fn at(postcode: &str) -> Place<'_> {
        Place {
            receiving_area: "midlothian",
            postcode,
        }
    }

    #[test]
    fn a_child_is_matched_by_nhs_number_or_by_name_birth_and_postcode() {
        let dob = NaiveDate::from_ymd_opt(2022, 5, 17);
        let mut mia = child("MIA");
        mia.date_of_birth = dob;
        let by_identity = known(true, None, dob, 1);
        assert_eq!(
            matches(&mia, HERE, &by_identity),
            Some(LinkMatch::NameDateOfBirthPostcode)
        );
        assert_eq!(
            matches(&mia, at("EH22 9ZZ"), &by_identity),
            None,
            "another postcode"
        );
        assert_eq!(
            matches(&mia, HERE, &known(false, None, dob, 1)),
            None,
            "an adult"
        );
        // Two different NHS numbers are two different children.
        mia.nhs_number = Some("9434765919".into());
        assert_eq!(
            matches(&mia, HERE, &known(true, Some("9434765870"), dob, 1)),
            None
        );
        // One NHS number missing: the identity still matches.
        assert_eq!(
            matches(&mia, HERE, &by_identity),
            Some(LinkMatch::NameDateOfBirthPostcode)
        );
        // The same NHS number matches whatever else differs.
        let same_nhs = known(true, Some("9434765919"), None, 1);
        assert_eq!(
            matches(&mia, at("ZZ1 1ZZ"), &same_nhs),
            Some(LinkMatch::NhsNumber)
        );
    }

    #[test]
    fn an_unborn_child_is_never_matched() {
        let unborn = Child {
            given_name: String::new(),
            family_name: String::new(),
            ..child("")
        };
        let k = known(true, None, None, 1);
        assert_eq!(
            matches(
                &unborn,
                HERE,
                &KnownMember {
                    name_key: "|".into(),
                    ..k
                }
            ),
            None
        );
    }

    #[test]
    fn an_nhs_match_beats_an_earlier_identity_match() {
        let dob = NaiveDate::from_ymd_opt(2022, 5, 17);
        let mut mia = child("Mia");
        mia.date_of_birth = dob;
        mia.nhs_number = Some("9434765919".into());
        let early = known(true, None, dob, 1);
        let later_nhs = known(true, Some("9434765919"), None, 5);
        let latest = known(true, None, dob, 9);
        let all = [latest, early.clone(), later_nhs.clone()];
        assert_eq!(
            best_match(&mia, HERE, &all).map(|(k, _)| k),
            Some(&later_nhs)
        );
        mia.nhs_number = None;
        assert_eq!(
            best_match(&mia, HERE, &all).map(|(k, _)| k),
            Some(&early),
            "the earliest"
        );
    }

    #[test]
    fn an_unknown_family_is_new_with_every_member() {
        let mut r = sample(Utc::now());
        r.children = vec![child("Mia")];
        r.adults = vec![adult("Dawn", ParentingRole::Mother)];
        let before = r.clone();
        let found = Matches {
            children: vec![None],
            adults: vec![],
        };
        let link = link(&mut r, &found);
        assert_eq!(r, before);
        assert!(link.family.is_none());
        assert_eq!(link.new_members.len(), 2);
    }

    #[test]
    fn a_known_child_brings_the_referral_into_its_family() {
        let mut r = sample(Utc::now());
        r.children = vec![child("Mia"), child("Leo"), child("Mia")];
        r.adults = vec![
            adult("Dawn", ParentingRole::Mother),
            adult("Dawn", ParentingRole::Grandparent),
            adult("Sam", ParentingRole::Father),
        ];
        let (family, other_family) = (Uuid::now_v7(), Uuid::now_v7());
        let (known_mia, known_leo, known_dawn) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let found = Matches {
            children: vec![
                Some(Known {
                    member_id: known_mia,
                    family_id: family,
                    how: LinkMatch::NhsNumber,
                }),
                // Known, but in another family: stays a new person in this one.
                Some(Known {
                    member_id: known_leo,
                    family_id: other_family,
                    how: LinkMatch::NameDateOfBirthPostcode,
                }),
                // The same known child entered twice: named once.
                Some(Known {
                    member_id: known_mia,
                    family_id: family,
                    how: LinkMatch::NhsNumber,
                }),
            ],
            adults: vec![(
                known_dawn,
                "dawn|kerr".into(),
                "PARENTING_ROLE_MOTHER".into(),
            )],
        };
        let ids: Vec<Uuid> = r.children.iter().map(|c| c.member_id).collect();
        let adult_ids: Vec<Uuid> = r.adults.iter().map(|a| a.member_id).collect();
        // The consent covers, and an order binds, Dawn the mother and Sam.
        r.consents[0].members = vec![adult_ids[0], adult_ids[2]];
        r.order = Some(crate::domain::ParentingOrder {
            court: "Court".into(),
            made: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            expires: chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
            officer_org: "yot".into(),
            officer_service: crate::domain::ResponsibleOfficerService::YouthOffendingTeam,
            officer_name: String::new(),
            bound_members: vec![adult_ids[0]],
        });
        let link = link(&mut r, &found);

        assert_eq!(link.family, Some((family, LinkMatch::NhsNumber)));
        assert_eq!(link.matched, vec![known_mia]);
        assert!(r.linked_existing);
        assert_eq!(r.family_id, family);
        assert_eq!(r.children[0].member_id, known_mia);
        assert_eq!(r.children[1].member_id, ids[1]);
        assert_eq!(r.children[2].member_id, ids[2]);
        // Dawn the mother is known; Dawn the grandparent and Sam are new.
        assert_eq!(r.adults[0].member_id, known_dawn);
        assert_eq!(r.adults[1].member_id, adult_ids[1]);
        let new: HashSet<Uuid> = [ids[1], ids[2], adult_ids[1], adult_ids[2]].into();
        assert_eq!(link.new_members, new);
        // The consent and the order follow Dawn to her known id.
        assert_eq!(r.consents[0].members, [known_dawn, adult_ids[2]]);
        assert_eq!(r.order.unwrap().bound_members, [known_dawn]);
    }
}
