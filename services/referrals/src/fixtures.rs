//! Sample referrals for tests, the journeys, the demo and the benchmark (feature
//! `fixtures`; not in the service binary). The people are fictional; the NHS numbers
//! are valid in shape and check digit but made up.

use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use hearth_proto::referrals as pb;
use hearth_proto::types::Date;

use crate::domain::nhs;

/// The NHS number for a nine-digit stem, formatted `943 476 5919`.
pub fn nhs_from_stem(stem: u64) -> Option<String> {
    let check = nhs::check_digit(stem)?;
    let s = format!("{stem:09}{check}");
    Some(format!("{} {} {}", &s[..3], &s[3..6], &s[6..]))
}

/// A distinct valid NHS number for every `n` below 100 million: stem `k00 000 000 + n`
/// for the first leading digit `k` (from 4) that gives a valid check digit. Different
/// leading digits change the weighted sum by a multiple of 10, so one of them works.
pub fn nhs_number(n: u64) -> String {
    let offset = n % 100_000_000;
    (4..=9)
        .chain(1..=3)
        .find_map(|k| nhs_from_stem(k * 100_000_000 + offset))
        .unwrap_or_else(|| "943 476 5919".to_owned())
}

/// A `hearth.type.v1.Date`.
pub fn date(d: NaiveDate) -> Option<Date> {
    Some(Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    })
}

/// A protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

/// Who a sample referral is about.
#[derive(Debug, Clone)]
pub struct Family<'a> {
    pub child: &'a str,
    pub surname: &'a str,
    pub born: NaiveDate,
    /// Empty for none.
    pub nhs_number: String,
    pub mother: &'a str,
    pub postcode: &'a str,
}

/// A health visitor's voluntary referral to Midlothian of one child and their mother,
/// for sleep and the mother's low mood, with the mother's consent to assessment and
/// sharing given at `consent_at`.
pub fn health_visitor_referral(f: &Family<'_>, consent_at: DateTime<Utc>) -> pb::Referral {
    pb::Referral {
        receiving_area: "midlothian".into(),
        referrer: Some(pb::Referrer {
            display_name: "Morag Henderson".into(),
            job_title: "Health visitor".into(),
            contact: "0131 496 0127".into(),
        }),
        source: pb::Source::HealthVisitor as i32,
        family: Some(pb::FamilyDetails {
            children: vec![pb::Child {
                given_name: f.child.into(),
                family_name: f.surname.into(),
                date_of_birth: date(f.born),
                nhs_number: f.nhs_number.clone(),
                ..Default::default()
            }],
            adults: vec![pb::Adult {
                given_name: f.mother.into(),
                family_name: f.surname.into(),
                role: pb::ParentingRole::Mother as i32,
                phone: "07700 900123".into(),
                ..Default::default()
            }],
        }),
        reasons: vec![
            pb::Reason::Sleep as i32,
            pb::Reason::ParentalMentalHealth as i32,
        ],
        description: "Mum is exhausted; baby wakes five times a night.".into(),
        urgency: pb::Urgency::Routine as i32,
        access_needs: Some(pb::AccessNeeds {
            language: "en".into(),
            preferred_times: vec![pb::PreferredTime::WeekdayEvening as i32],
            ..Default::default()
        }),
        postcode: f.postcode.into(),
        consents: vec![pb::Consent {
            given_by: format!("{} {}", f.mother, f.surname),
            given_by_role: pb::ParentingRole::Mother as i32,
            give_time: timestamp(consent_at),
            scopes: vec![
                pb::ConsentScope::Assessment as i32,
                pb::ConsentScope::ShareWithPartners as i32,
            ],
            ..Default::default()
        }],
        route: pb::Route::Voluntary as i32,
        ..Default::default()
    }
}

/// A create request for `referral`, with a fresh request id.
pub fn create_request(referral: pb::Referral) -> pb::CreateReferralRequest {
    pb::CreateReferralRequest {
        referral: Some(referral),
        request_id: uuid::Uuid::new_v4().to_string(),
        validate_only: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validate;

    #[test]
    fn known_numbers_check_out() {
        assert_eq!(nhs_from_stem(943_476_591).as_deref(), Some("943 476 5919"));
        assert_eq!(nhs_from_stem(401_023_213).as_deref(), Some("401 023 2137"));
    }

    #[test]
    fn unique_numbers_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..20_000 {
            let number = nhs_number(n);
            assert!(nhs::normalise(&number).is_some(), "{number}");
            assert!(seen.insert(number), "repeat at {n}");
        }
    }

    #[test]
    fn the_sample_referral_is_valid() {
        let now = Utc::now();
        let f = Family {
            child: "Isla",
            surname: "Brown",
            born: now.date_naive() - chrono::Duration::days(200),
            nhs_number: nhs_number(7),
            mother: "Kirsty",
            postcode: "EH22 1AB",
        };
        let r = health_visitor_referral(&f, now - chrono::Duration::hours(1));
        assert!(validate::new_referral(&r, "nhs-lothian", "u", now).is_ok());
    }
}
