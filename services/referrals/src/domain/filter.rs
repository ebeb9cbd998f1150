//! The `ListReferrals` filter: which fields may be filtered on, parsed by the kit's
//! AIP-160 subset (`hearth_platform::filter`), and what the terms mean here.
//!
//! ```text
//! state          = | !=     RECEIVED | STATE_RECEIVED | …
//! source         = | !=     SCHOOL | SOURCE_SCHOOL | …
//! receiving_area =          midlothian | "midlothian"
//! receive_time   >= > <= <  "2026-01-01T00:00:00Z"
//! ```

use chrono::{DateTime, Utc};
use hearth_platform::filter::{self, Field};

use super::{Source, State};

/// The fields a referral list may be filtered on.
pub const FIELDS: &[Field] = &[
    Field::enumeration("state", "STATE_", |s| {
        State::from_str_name(s).map(|e| e as i32)
    }),
    Field::enumeration("source", "SOURCE_", |s| {
        Source::from_str_name(s).map(|e| e as i32)
    }),
    Field::text("receiving_area"),
    Field::time("receive_time"),
];

/// A parsed filter. Empty means everything the caller may see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub state_in: Option<Vec<State>>,
    pub state_not: Vec<State>,
    pub source_in: Option<Vec<Source>>,
    pub source_not: Vec<Source>,
    pub receiving_area: Option<String>,
    /// Inclusive lower bound.
    pub received_from: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub received_before: Option<DateTime<Utc>>,
}

/// Parses a filter string; the error says what is wrong, for a field violation on
/// `filter`.
pub fn parse(input: &str) -> Result<ListFilter, String> {
    let f = filter::parse(input, FIELDS)?;
    let (state, state_not) = f.enum_terms::<State>("state");
    let (source, source_not) = f.enum_terms::<Source>("source");
    let (received_from, received_before) = f.time_range("receive_time");
    Ok(ListFilter {
        state_in: state.map(|s| vec![s]),
        state_not,
        source_in: source.map(|s| vec![s]),
        source_not,
        receiving_area: f.text("receiving_area").map(str::to_owned),
        received_from,
        received_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_become_the_list_query() {
        let f = parse(
            r#"state = RECEIVED AND source != SOURCE_POLICE AND receiving_area = midlothian AND receive_time < "2026-01-01T00:00:00Z""#,
        )
        .unwrap();
        assert_eq!(f.state_in, Some(vec![State::Received]));
        assert_eq!(f.source_not, vec![Source::Police]);
        assert_eq!(f.receiving_area.as_deref(), Some("midlothian"));
        assert_eq!(
            f.received_before.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        assert_eq!(parse("").unwrap(), ListFilter::default());
        assert!(parse("colour = red").is_err());
    }
}
