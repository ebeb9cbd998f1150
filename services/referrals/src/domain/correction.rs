//! Corrections to a family's details on a referral (CorrectFamilyDetails): a baby
//! born, a wrong name or date of birth, a new phone or address, another member of the
//! family. Member ids never change; nobody is removed; what changed is announced by
//! `family.corrected` for every holder of the family's details to apply.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AccessNeeds, Adult, Child, CorrectionReason, Referral};

/// The corrected parts, validated (`validate::correction`); `None` for a part the
/// correction leaves alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Correction {
    pub reason: CorrectionReason,
    pub children: Option<Vec<Child>>,
    pub adults: Option<Vec<Adult>>,
    pub address_lines: Option<Vec<String>>,
    pub postcode: Option<String>,
    pub engagement_note: Option<String>,
    pub access: Option<AccessNeeds>,
}

/// What a correction changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Corrected {
    /// The mask paths whose values changed, in the contract's order.
    pub paths: Vec<&'static str>,
    /// Members whose details changed.
    pub changed_members: Vec<Uuid>,
    /// Members the correction added.
    pub added_members: Vec<Uuid>,
}

impl Corrected {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// Replaces `old` with `new` (a part of the referral); says whether it changed.
fn put<T: PartialEq>(old: &mut T, new: Option<T>) -> bool {
    match new {
        Some(n) if n != *old => {
            *old = n;
            true
        }
        _ => false,
    }
}

/// For a corrected list of people: who changed and who is new.
fn people<P: PartialEq>(old: &[P], new: &[P], id: impl Fn(&P) -> Uuid, out: &mut Corrected) {
    for p in new {
        match old.iter().find(|o| id(o) == id(p)) {
            Some(o) if o != p => out.changed_members.push(id(p)),
            Some(_) => {}
            None => out.added_members.push(id(p)),
        }
    }
}

impl Referral {
    /// Applies a correction. A correction that changes nothing leaves the referral as
    /// it was (and its update time).
    pub fn correct(&mut self, c: Correction, now: DateTime<Utc>) -> Corrected {
        let mut out = Corrected::default();
        if let Some(children) = &c.children {
            people(&self.children, children, |x| x.member_id, &mut out);
        }
        if let Some(adults) = &c.adults {
            people(&self.adults, adults, |x| x.member_id, &mut out);
        }
        let changed = [
            ("family.children", put(&mut self.children, c.children)),
            ("family.adults", put(&mut self.adults, c.adults)),
            (
                "address_lines",
                put(&mut self.address_lines, c.address_lines),
            ),
            ("postcode", put(&mut self.postcode, c.postcode)),
            (
                "engagement_note",
                put(&mut self.engagement_note, c.engagement_note),
            ),
            ("access_needs", put(&mut self.access, c.access)),
        ];
        out.paths = changed
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(path, _)| path)
            .collect();
        if !out.is_empty() {
            self.updated_at = now;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tests::sample;
    use chrono::NaiveDate;

    fn unborn() -> Child {
        Child {
            member_id: Uuid::now_v7(),
            given_name: String::new(),
            family_name: String::new(),
            date_of_birth: None,
            due_date: NaiveDate::from_ymd_opt(2026, 7, 1),
            nhs_number: None,
            ethnicity: String::new(),
        }
    }

    #[test]
    fn a_birth_changes_the_child_and_nothing_else() {
        let now = Utc::now();
        let mut r = sample(now);
        r.children = vec![unborn()];
        let mut born = r.children[0].clone();
        born.given_name = "Isla".into();
        born.family_name = "Brown".into();
        born.date_of_birth = NaiveDate::from_ymd_opt(2026, 6, 20);
        born.due_date = None;
        let later = now + chrono::Duration::days(1);
        let out = r.correct(
            Correction {
                reason: CorrectionReason::Birth,
                children: Some(vec![born.clone()]),
                postcode: Some(r.postcode.clone()),
                ..Correction::default()
            },
            later,
        );
        assert_eq!(
            out.paths,
            ["family.children"],
            "the postcode did not change"
        );
        assert_eq!(out.changed_members, [born.member_id]);
        assert!(out.added_members.is_empty());
        assert_eq!(r.children, [born]);
        assert_eq!(r.updated_at, later);
    }

    #[test]
    fn a_new_member_is_added_and_a_correction_to_nothing_changes_nothing() {
        let now = Utc::now();
        let mut r = sample(now);
        r.children = vec![unborn()];
        let sibling = Child {
            member_id: Uuid::now_v7(),
            given_name: "Leo".into(),
            ..unborn()
        };
        let out = r.correct(
            Correction {
                children: Some(vec![r.children[0].clone(), sibling.clone()]),
                ..Correction::default()
            },
            now,
        );
        assert_eq!(out.added_members, [sibling.member_id]);
        assert!(out.changed_members.is_empty());
        let before = r.clone();
        let out = r.correct(
            Correction {
                children: Some(r.children.clone()),
                engagement_note: Some(r.engagement_note.clone()),
                ..Correction::default()
            },
            now + chrono::Duration::days(1),
        );
        assert!(out.is_empty());
        assert_eq!(r, before, "not even the update time moves");
    }
}
