//! Validators for the field kinds every contract shares. Each check that fails adds a
//! field violation naming the field by its path in the request (for example
//! `referral.family.children[0].date_of_birth`), so a partner system can fix every
//! problem in one go; each returns a usable value either way, so validation goes on
//! to the next field. A service adds its own rules (NHS numbers, a referral's shape)
//! on top, in its `domain/`.

pub mod postcode;

use chrono::{DateTime, NaiveDate, Utc};
use hearth_proto::types::Date;
use uuid::Uuid;

use crate::error::Violations;

/// Text: trimmed; required or not; at most `max` characters; no control characters
/// but newline and tab.
pub fn text(v: &mut Violations, field: &str, value: &str, required: bool, max: usize) -> String {
    let t = value.trim();
    if required && t.is_empty() {
        v.add(field, "is required");
    } else if t.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    } else if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        v.add(field, "must not contain control characters");
    }
    t.to_owned()
}

/// An organisation id, as tokens and resource names carry it: lower-case letters,
/// digits and hyphens, 1 to 64 characters.
pub fn org_id(v: &mut Violations, field: &str, value: &str) -> String {
    let t = value.trim();
    if t.is_empty() {
        v.add(field, "is required");
    } else if !is_org_id(t) {
        v.add(
            field,
            "must be an organisation id: lower-case letters, digits and hyphens, at most 64",
        );
    }
    t.to_owned()
}

/// Whether `s` has the shape of an organisation id.
pub fn is_org_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A required enum: set, and a value this version of the contract knows.
pub fn required_enum<E: TryFrom<i32> + Default + PartialEq>(
    v: &mut Violations,
    field: &str,
    raw: i32,
) -> E {
    match E::try_from(raw) {
        Ok(e) if e != E::default() => e,
        Ok(_) => {
            v.add(field, "is required");
            E::default()
        }
        Err(_) => {
            v.add(field, format!("unknown value {raw}"));
            E::default()
        }
    }
}

/// A `hearth.type.v1.Date`: a real calendar date with a year from 1900 to 9999.
pub fn date(v: &mut Violations, field: &str, d: &Date) -> Option<NaiveDate> {
    if !(1900..=9999).contains(&d.year) {
        v.add(field, "year must be between 1900 and 9999");
        return None;
    }
    let nd = u32::try_from(d.month)
        .ok()
        .zip(u32::try_from(d.day).ok())
        .and_then(|(m, day)| NaiveDate::from_ymd_opt(d.year, m, day));
    if nd.is_none() {
        v.add(field, "is not a real calendar date");
    }
    nd
}

/// A [`date`] that has already happened (today included), such as a date of birth.
pub fn past_date(v: &mut Violations, field: &str, d: &Date, today: NaiveDate) -> Option<NaiveDate> {
    let nd = date(v, field, d)?;
    if nd > today {
        v.add(field, "must not be in the future");
    }
    Some(nd)
}

/// 1900-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in Unix seconds: the times a
/// caller may give.
const EARLIEST_SECONDS: i64 = -2_208_988_800;
const LATEST_SECONDS: i64 = 253_402_300_799;

/// A point in time given by a caller: a valid protobuf timestamp (nanos 0 to
/// 999,999,999) between 1900 and the end of 9999, at the precision Postgres keeps
/// (microseconds), so that a response says exactly what a later read will.
pub fn timestamp(
    v: &mut Violations,
    field: &str,
    ts: &prost_types::Timestamp,
) -> Option<DateTime<Utc>> {
    use chrono::SubsecRound as _;
    let Some(nanos) = u32::try_from(ts.nanos).ok().filter(|n| *n < 1_000_000_000) else {
        v.add(field, "is not a valid timestamp");
        return None;
    };
    if !(EARLIEST_SECONDS..=LATEST_SECONDS).contains(&ts.seconds) {
        v.add(field, "must be between 1900 and 9999");
        return None;
    }
    let t = DateTime::from_timestamp(ts.seconds, nanos);
    if t.is_none() {
        v.add(field, "is not a valid timestamp");
    }
    t.map(|t| t.trunc_subsecs(6))
}

/// `request_id`: required, a UUID chosen by the caller and reused on retry (AIP-155).
pub fn request_id(v: &mut Violations, raw: &str) -> Uuid {
    if raw.trim().is_empty() {
        v.add(
            "request_id",
            "is required: a UUID chosen by the caller, reused on retry",
        );
        return Uuid::nil();
    }
    Uuid::parse_str(raw.trim()).unwrap_or_else(|_| {
        v.add("request_id", "must be a UUID");
        Uuid::nil()
    })
}

/// A resource name `collection/{uuid}`: the id.
pub fn resource_id(v: &mut Violations, field: &str, raw: &str, collection: &str) -> Uuid {
    resource_name(v, field, raw, &[collection])
        .and_then(|ids| ids.first().copied())
        .unwrap_or(Uuid::nil())
}

/// A nested resource name such as `referrals/{uuid}/consents/{uuid}`, given its
/// collections (`["referrals", "consents"]`): the ids, outermost first. `None` (and a
/// violation showing the expected shape) when it does not match.
pub fn resource_name(
    v: &mut Violations,
    field: &str,
    raw: &str,
    collections: &[&str],
) -> Option<Vec<Uuid>> {
    let parts: Vec<&str> = raw.split('/').collect();
    let ids: Option<Vec<Uuid>> = (parts.len() == collections.len() * 2)
        .then(|| {
            parts
                .chunks(2)
                .zip(collections)
                .map(|(pair, want)| {
                    (pair[0] == *want)
                        .then(|| Uuid::parse_str(pair[1]).ok())
                        .flatten()
                })
                .collect()
        })
        .flatten();
    if ids.is_none() {
        let shape: Vec<String> = collections
            .iter()
            .map(|c| format!("{c}/{{{}}}", singular(c)))
            .collect();
        v.add(
            field,
            format!("must be a resource name {}", shape.join("/")),
        );
    }
    ids
}

/// `families` → `family`, `referrals` → `referral`: a collection's id placeholder.
fn singular(collection: &str) -> String {
    match collection.strip_suffix("ies") {
        Some(stem) => format!("{stem}y"),
        None => collection.trim_end_matches('s').to_owned(),
    }
}

/// A UK postcode (its shape, not the Royal Mail file), normalised to upper case with
/// one space before the inward code; required or not.
pub fn uk_postcode(v: &mut Violations, field: &str, raw: &str, required: bool) -> String {
    if raw.trim().is_empty() {
        if required {
            v.add(field, "is required");
        }
        return String::new();
    }
    postcode::normalise(raw).unwrap_or_else(|| {
        v.add(field, "is not a valid UK postcode");
        String::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_real_storable_and_kept_to_the_microsecond() {
        let check = |seconds: i64, nanos: i32| {
            let mut v = Violations::new();
            let t = timestamp(&mut v, "t", &prost_types::Timestamp { seconds, nanos });
            (
                t,
                v.iter().map(|(_, why)| why.to_owned()).collect::<Vec<_>>(),
            )
        };
        let (t, why) = check(1_700_000_000, 123_456_789);
        assert!(why.is_empty());
        assert_eq!(t.unwrap().timestamp_subsec_nanos(), 123_456_000);
        // Out of the protobuf range, including chrono's leap-second form.
        for nanos in [-1, 1_000_000_000, 1_500_000_000] {
            assert_eq!(
                check(1_700_000_059, nanos).1,
                ["is not a valid timestamp"],
                "{nanos}"
            );
        }
        // Before 1900 or after 9999: Postgres could not store some of them at all.
        for seconds in [-300_000_000_000, -2_208_988_801, 253_402_300_800] {
            assert_eq!(
                check(seconds, 0).1,
                ["must be between 1900 and 9999"],
                "{seconds}"
            );
        }
        assert!(check(-2_208_988_800, 0).1.is_empty(), "1900-01-01 itself");
    }

    #[test]
    fn dates_are_real_and_past_dates_not_ahead() {
        let today = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap();
        let d = |year, month, day| Date { year, month, day };
        let mut v = Violations::new();
        assert_eq!(
            date(&mut v, "d", &d(2024, 2, 29)),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        assert_eq!(past_date(&mut v, "d", &d(2026, 6, 15), today), Some(today));
        assert!(v.is_empty());
        assert_eq!(date(&mut v, "a", &d(2026, 2, 29)), None);
        assert_eq!(date(&mut v, "b", &d(1899, 12, 31)), None);
        past_date(&mut v, "c", &d(2026, 6, 16), today);
        assert_eq!(v.fields().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn text_is_trimmed_bounded_and_printable() {
        let mut v = Violations::new();
        assert_eq!(text(&mut v, "a", "  Jo  ", true, 5), "Jo");
        assert!(v.is_empty());
        text(&mut v, "b", "   ", true, 5);
        text(&mut v, "c", "abcdef", false, 5);
        text(&mut v, "d", "a\u{7}b", false, 5);
        text(&mut v, "e", "line\nnext\tcol", false, 50);
        assert_eq!(v.fields().collect::<Vec<_>>(), ["b", "c", "d"]);
    }

    #[test]
    fn organisation_ids_and_enums() {
        let mut v = Violations::new();
        org_id(&mut v, "a", "nhs-lothian");
        assert!(v.is_empty());
        org_id(&mut v, "b", "NHS Lothian");
        org_id(&mut v, "c", "");
        org_id(&mut v, "d", &"x".repeat(65));
        let e: hearth_proto::referrals::Source = required_enum(&mut v, "e", 0);
        assert_eq!(e, hearth_proto::referrals::Source::Unspecified);
        let _: hearth_proto::referrals::Source = required_enum(&mut v, "f", 999);
        let ok: hearth_proto::referrals::Source = required_enum(&mut v, "g", 1);
        assert_ne!(ok, hearth_proto::referrals::Source::Unspecified);
        assert_eq!(v.fields().collect::<Vec<_>>(), ["b", "c", "d", "e", "f"]);
    }

    #[test]
    fn resource_names_parse_into_their_ids() {
        let mut v = Violations::new();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            resource_id(&mut v, "name", &format!("referrals/{a}"), "referrals"),
            a
        );
        assert_eq!(
            resource_name(
                &mut v,
                "name",
                &format!("referrals/{a}/consents/{b}"),
                &["referrals", "consents"]
            ),
            Some(vec![a, b])
        );
        assert!(v.is_empty());
        assert_eq!(
            resource_id(&mut v, "x", "families/x", "referrals"),
            Uuid::nil()
        );
        assert!(
            resource_name(
                &mut v,
                "y",
                &format!("referrals/{a}"),
                &["referrals", "consents"]
            )
            .is_none()
        );
        assert!(
            resource_name(
                &mut v,
                "z",
                &format!("referrals/{a}/contacts/{b}"),
                &["referrals", "consents"]
            )
            .is_none()
        );
        request_id(&mut v, "not-a-uuid");
        request_id(&mut v, "");
        assert_eq!(
            v.fields().collect::<Vec<_>>(),
            ["x", "y", "z", "request_id", "request_id"]
        );
        let why: Vec<&str> = v.iter().map(|(_, d)| d).collect();
        assert_eq!(
            why[1],
            "must be a resource name referrals/{referral}/consents/{consent}"
        );
    }

    #[test]
    fn postcodes_are_normalised_or_named() {
        let mut v = Violations::new();
        assert_eq!(uk_postcode(&mut v, "p", "eh22 1ab", true), "EH22 1AB");
        assert_eq!(uk_postcode(&mut v, "q", "", false), "");
        assert!(v.is_empty());
        uk_postcode(&mut v, "r", "", true);
        uk_postcode(&mut v, "s", "NOT A POSTCODE", false);
        assert_eq!(v.fields().collect::<Vec<_>>(), ["r", "s"]);
    }
}
