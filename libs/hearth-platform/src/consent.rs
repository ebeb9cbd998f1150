//! Consent in force: the one rule every service applies to "does a consent, or a
//! Parenting Order, allow this?" (docs/API.md, "Consent in force: the one rule").
//!
//! 1. A consent counts when the scope is among its scopes, it was given at or before
//!    `at`, it was not withdrawn at or before `at`, and the purpose is about the
//!    family as a whole or about an adult the consent names.
//! 2. If any consent counts, the basis is the consent given earliest (then the lowest
//!    name).
//! 3. Otherwise, for `ASSESSMENT` and `PROGRAMME_REFERRAL` only, a Parenting Order
//!    stands in while it is in force (`made ≤ day(at) ≤ expires`, both inclusive, in
//!    the area's local date) when it binds the adult concerned (or, for a purpose about
//!    the family, any adult). The basis is the order made latest.
//! 4. Otherwise there is none, and the caller refuses with [`missing_reason`].
//!
//! A referral's route plays no part: an expired order stands in for nothing, and an
//! order recorded on another of the family's referrals in the area counts like any.

use chrono::{DateTime, Datelike as _, NaiveDate, TimeZone as _, Utc, Weekday};
use hearth_proto::referrals::ConsentScope;

/// A consent as the rule needs it.
#[derive(Debug, Clone, Copy)]
pub struct ConsentFact<'a> {
    /// `referrals/{referral}/consents/{consent}`.
    pub name: &'a str,
    pub scopes: &'a [ConsentScope],
    /// The adults it covers, as `families/{family}/members/{member}`.
    pub members: &'a [String],
    pub given_at: DateTime<Utc>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

/// A Parenting Order as the rule needs it.
#[derive(Debug, Clone, Copy)]
pub struct OrderFact<'a> {
    /// The referral it is recorded on, `referrals/{referral}`.
    pub referral: &'a str,
    /// The parents it binds, as `families/{family}/members/{member}`.
    pub bound_members: &'a [String],
    pub made: NaiveDate,
    /// The last day it is in force.
    pub expires: NaiveDate,
}

/// Whom a purpose is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// The family as a whole (accepting a referral, an assessment).
    Family,
    /// One adult in a parenting role (a place, a measurement).
    Member(&'a str),
}

/// What allows a purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// This consent (its resource name).
    Consent(String),
    /// The Parenting Order recorded on this referral.
    ParentingOrder(String),
}

/// The basis for `scope` about `subject` at `at`, if any (the rule above).
pub fn in_force(
    consents: &[ConsentFact<'_>],
    orders: &[OrderFact<'_>],
    scope: ConsentScope,
    subject: Subject<'_>,
    at: DateTime<Utc>,
) -> Option<Basis> {
    let covers = |members: &[String]| match subject {
        Subject::Family => true,
        Subject::Member(m) => members.iter().any(|x| x == m),
    };
    let counting = consents
        .iter()
        .filter(|c| {
            c.scopes.contains(&scope)
                && c.given_at <= at
                && c.withdrawn_at.is_none_or(|w| at < w)
                && covers(c.members)
        })
        .min_by(|a, b| (a.given_at, a.name).cmp(&(b.given_at, b.name)));
    if let Some(c) = counting {
        return Some(Basis::Consent(c.name.to_owned()));
    }
    if !matches!(
        scope,
        ConsentScope::Assessment | ConsentScope::ProgrammeReferral
    ) {
        return None;
    }
    let day = uk_date(at);
    orders
        .iter()
        .filter(|o| {
            o.made <= day
                && day <= o.expires
                && !o.bound_members.is_empty()
                && covers(o.bound_members)
        })
        .max_by(|a, b| (a.made, a.referral).cmp(&(b.made, b.referral)))
        .map(|o| Basis::ParentingOrder(o.referral.to_owned()))
}

/// The stable reason a call gives when `scope` has no basis (FAILED_PRECONDITION).
pub fn missing_reason(scope: ConsentScope) -> &'static str {
    match scope {
        ConsentScope::Assessment => "ASSESSMENT_CONSENT_REQUIRED",
        ConsentScope::ProgrammeReferral => "PROGRAMME_REFERRAL_CONSENT_REQUIRED",
        ConsentScope::ShareWithPartners => "PARTNER_SHARING_CONSENT_REQUIRED",
        ConsentScope::Evaluation | ConsentScope::Unspecified => "EVALUATION_CONSENT_REQUIRED",
    }
}

/// The date at `at` in the UK (Europe/London): GMT, or BST (UTC+1) from 01:00 UTC on
/// the last Sunday of March to 01:00 UTC on the last Sunday of October, as UK law
/// has set it since 1996. Every Hearth area is in the UK; an order's days are the
/// court's.
pub fn uk_date(at: DateTime<Utc>) -> NaiveDate {
    let year = at.year();
    let last_sunday = |month: u32| {
        let mut d = NaiveDate::from_ymd_opt(year, month, 31).unwrap_or_default();
        while d.weekday() != Weekday::Sun {
            d = d.pred_opt().unwrap_or(d);
        }
        Utc.from_utc_datetime(&d.and_hms_opt(1, 0, 0).unwrap_or_default())
    };
    let summer = last_sunday(3) <= at && at < last_sunday(10);
    let local = if summer {
        at + chrono::Duration::hours(1)
    } else {
        at
    };
    local.date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    const MUM: &str = "families/f/members/mum";
    const DAD: &str = "families/f/members/dad";

    fn mum_and_dad() -> Vec<String> {
        vec![MUM.to_owned(), DAD.to_owned()]
    }

    #[test]
    fn a_consent_counts_from_its_giving_until_its_withdrawal() {
        let both = mum_and_dad();
        let c = ConsentFact {
            name: "referrals/r/consents/a",
            scopes: &[ConsentScope::Assessment],
            members: &both,
            given_at: t("2026-03-01T10:00:00Z"),
            withdrawn_at: Some(t("2026-04-01T10:00:00Z")),
        };
        let at = |s| in_force(&[c], &[], ConsentScope::Assessment, Subject::Family, t(s));
        assert_eq!(at("2026-02-28T10:00:00Z"), None, "before it was given");
        assert_eq!(
            at("2026-03-01T10:00:00Z"),
            Some(Basis::Consent("referrals/r/consents/a".into()))
        );
        assert_eq!(
            at("2026-04-01T10:00:00Z"),
            None,
            "withdrawn at that instant"
        );
        // Another scope is not covered.
        assert_eq!(
            in_force(
                &[c],
                &[],
                ConsentScope::Evaluation,
                Subject::Family,
                t("2026-03-15T00:00:00Z")
            ),
            None
        );
    }

    #[test]
    fn one_parents_withdrawal_leaves_the_other_parents_consent_standing() {
        let mum = vec![MUM.to_owned()];
        let dad = vec![DAD.to_owned()];
        let mums = ConsentFact {
            name: "referrals/r/consents/m",
            scopes: &[ConsentScope::ProgrammeReferral],
            members: &mum,
            given_at: t("2026-03-01T10:00:00Z"),
            withdrawn_at: Some(t("2026-03-10T10:00:00Z")),
        };
        let dads = ConsentFact {
            name: "referrals/r/consents/d",
            members: &dad,
            withdrawn_at: None,
            ..mums
        };
        let at = t("2026-03-20T10:00:00Z");
        let scope = ConsentScope::ProgrammeReferral;
        assert_eq!(
            in_force(&[mums, dads], &[], scope, Subject::Member(DAD), at),
            Some(Basis::Consent("referrals/r/consents/d".into()))
        );
        assert_eq!(
            in_force(&[mums, dads], &[], scope, Subject::Member(MUM), at),
            None
        );
        // The family as a whole: any counting consent, whoever it names.
        assert!(in_force(&[mums, dads], &[], scope, Subject::Family, at).is_some());
    }

    #[test]
    fn the_earliest_consent_is_the_basis() {
        let both = mum_and_dad();
        let later = ConsentFact {
            name: "referrals/r/consents/a",
            scopes: &[ConsentScope::Assessment],
            members: &both,
            given_at: t("2026-03-02T10:00:00Z"),
            withdrawn_at: None,
        };
        let earlier = ConsentFact {
            name: "referrals/r/consents/z",
            given_at: t("2026-03-01T10:00:00Z"),
            ..later
        };
        assert_eq!(
            in_force(
                &[later, earlier],
                &[],
                ConsentScope::Assessment,
                Subject::Family,
                t("2026-04-01T00:00:00Z")
            ),
            Some(Basis::Consent("referrals/r/consents/z".into()))
        );
    }

    #[test]
    fn an_order_stands_in_for_the_parents_it_binds_while_in_force() {
        let dad = vec![DAD.to_owned()];
        let order = OrderFact {
            referral: "referrals/yot",
            bound_members: &dad,
            made: d(2026, 1, 10),
            expires: d(2026, 7, 9),
        };
        let check = |scope, subject, at: &str| in_force(&[], &[order], scope, subject, t(at));
        let basis = Some(Basis::ParentingOrder("referrals/yot".into()));
        assert_eq!(
            check(
                ConsentScope::ProgrammeReferral,
                Subject::Member(DAD),
                "2026-01-10T00:00:00Z"
            ),
            basis
        );
        assert_eq!(
            check(
                ConsentScope::Assessment,
                Subject::Family,
                "2026-05-01T00:00:00Z"
            ),
            basis
        );
        // Not for a parent it does not bind, nor for sharing or evaluation.
        assert_eq!(
            check(
                ConsentScope::ProgrammeReferral,
                Subject::Member(MUM),
                "2026-05-01T00:00:00Z"
            ),
            None
        );
        assert_eq!(
            check(
                ConsentScope::ShareWithPartners,
                Subject::Member(DAD),
                "2026-05-01T00:00:00Z"
            ),
            None
        );
        assert_eq!(
            check(
                ConsentScope::Evaluation,
                Subject::Member(DAD),
                "2026-05-01T00:00:00Z"
            ),
            None
        );
        // Its last day is 9 July in the UK: 23:30 UTC on the 9th is already the
        // 10th in British Summer Time, so the order no longer stands in.
        assert_eq!(
            check(
                ConsentScope::ProgrammeReferral,
                Subject::Member(DAD),
                "2026-07-09T22:30:00Z"
            ),
            basis
        );
        assert_eq!(
            check(
                ConsentScope::ProgrammeReferral,
                Subject::Member(DAD),
                "2026-07-09T23:30:00Z"
            ),
            None
        );
    }

    #[test]
    fn a_consent_is_preferred_to_an_order() {
        let dad = vec![DAD.to_owned()];
        let order = OrderFact {
            referral: "referrals/yot",
            bound_members: &dad,
            made: d(2026, 1, 10),
            expires: d(2026, 7, 9),
        };
        let c = ConsentFact {
            name: "referrals/r/consents/d",
            scopes: &[ConsentScope::ProgrammeReferral],
            members: &dad,
            given_at: t("2026-02-01T00:00:00Z"),
            withdrawn_at: None,
        };
        assert_eq!(
            in_force(
                &[c],
                &[order],
                ConsentScope::ProgrammeReferral,
                Subject::Member(DAD),
                t("2026-03-01T00:00:00Z")
            ),
            Some(Basis::Consent("referrals/r/consents/d".into()))
        );
    }

    #[test]
    fn uk_dates_follow_british_summer_time() {
        assert_eq!(uk_date(t("2026-01-15T23:30:00Z")), d(2026, 1, 15));
        assert_eq!(uk_date(t("2026-06-15T23:30:00Z")), d(2026, 6, 16));
        // 2026's changes: 29 March and 25 October, at 01:00 UTC.
        assert_eq!(uk_date(t("2026-03-29T00:59:00Z")), d(2026, 3, 29));
        assert_eq!(uk_date(t("2026-03-28T23:30:00Z")), d(2026, 3, 28));
        assert_eq!(uk_date(t("2026-03-29T23:30:00Z")), d(2026, 3, 30));
        assert_eq!(uk_date(t("2026-10-24T23:30:00Z")), d(2026, 10, 25));
        assert_eq!(uk_date(t("2026-10-25T23:30:00Z")), d(2026, 10, 25));
    }

    #[test]
    fn each_scope_has_its_reason() {
        assert_eq!(
            missing_reason(ConsentScope::Assessment),
            "ASSESSMENT_CONSENT_REQUIRED"
        );
        assert_eq!(
            missing_reason(ConsentScope::ShareWithPartners),
            "PARTNER_SHARING_CONSENT_REQUIRED"
        );
    }
}
