//! The `ListReferrals` filter: a small subset of AIP-160.
//!
//! ```text
//! filter := term ( "AND" term )*
//! term   := field op value
//! state          = | !=   RECEIVED | STATE_RECEIVED | …
//! source         = | !=   SCHOOL | SOURCE_SCHOOL | …
//! receiving_area =        midlothian | "midlothian"
//! receive_time   >= > <= <  "2026-01-01T00:00:00Z"
//! ```

use chrono::{DateTime, Utc};

use super::{Source, State};

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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(&'static str),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let start = i + 1;
            let mut j = start;
            while j < chars.len() && chars[j] != '"' {
                j += 1;
            }
            if j == chars.len() {
                return Err("unterminated quoted value".into());
            }
            out.push(Tok::Quoted(chars[start..j].iter().collect()));
            i = j + 1;
        } else if "=!<>".contains(c) {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = match two.as_str() {
                "!=" => "!=",
                ">=" => ">=",
                "<=" => "<=",
                _ => match c {
                    '=' => "=",
                    '>' => ">",
                    '<' => "<",
                    _ => return Err("'!' must be followed by '='".into()),
                },
            };
            i += op.len();
            out.push(Tok::Op(op));
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"=!<>\"".contains(chars[i]) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(out)
}

fn enum_value<E>(raw: &str, prefix: &str, from: fn(&str) -> Option<E>) -> Option<E> {
    let upper = raw.to_ascii_uppercase();
    from(&upper).or_else(|| from(&format!("{prefix}{upper}")))
}

/// Parses a filter string; the error says what is wrong, for a field violation on
/// `filter`.
pub fn parse(input: &str) -> Result<ListFilter, String> {
    let mut f = ListFilter::default();
    let toks = tokenize(input)?;
    if toks.is_empty() {
        return Ok(f);
    }
    let mut terms = toks.split(|t| matches!(t, Tok::Word(w) if w == "AND"));
    for term in terms.by_ref() {
        let [Tok::Word(field), Tok::Op(op), value] = term else {
            return Err("each term must be `field operator value`, terms joined by AND".into());
        };
        let value = match value {
            Tok::Word(w) | Tok::Quoted(w) => w.as_str(),
            Tok::Op(_) => return Err(format!("missing value after {op}")),
        };
        match (field.as_str(), *op) {
            ("state", "=" | "!=") => {
                let s = enum_value(value, "STATE_", State::from_str_name)
                    .filter(|s| *s != State::Unspecified)
                    .ok_or_else(|| format!("unknown state {value:?}"))?;
                if *op == "=" {
                    f.state_in.get_or_insert_with(Vec::new).push(s);
                } else {
                    f.state_not.push(s);
                }
            }
            ("source", "=" | "!=") => {
                let s = enum_value(value, "SOURCE_", Source::from_str_name)
                    .filter(|s| *s != Source::Unspecified)
                    .ok_or_else(|| format!("unknown source {value:?}"))?;
                if *op == "=" {
                    f.source_in.get_or_insert_with(Vec::new).push(s);
                } else {
                    f.source_not.push(s);
                }
            }
            ("receiving_area", "=") => f.receiving_area = Some(value.to_owned()),
            ("receive_time", op @ (">=" | ">" | "<=" | "<")) => {
                let t = DateTime::parse_from_rfc3339(value)
                    .map_err(|_| {
                        format!("receive_time needs an RFC 3339 time in quotes, got {value:?}")
                    })?
                    .with_timezone(&Utc);
                // Normalise to [from, before) at microsecond precision (Postgres's).
                let micro = chrono::Duration::microseconds(1);
                match op {
                    ">=" => f.received_from = Some(t),
                    ">" => f.received_from = Some(t + micro),
                    "<" => f.received_before = Some(t),
                    _ => f.received_before = Some(t + micro),
                }
            }
            (field @ ("state" | "source" | "receiving_area" | "receive_time"), op) => {
                return Err(format!("operator {op} is not supported on {field}"));
            }
            (other, _) => {
                return Err(format!(
                    "unknown field {other:?}; filter on state, source, receiving_area or receive_time"
                ));
            }
        }
    }
    // Two `=` on the same field can never both hold; AND means intersection, so keep
    // only a single allowed value per field as written.
    if f.state_in.as_ref().is_some_and(|v| v.len() > 1)
        || f.source_in.as_ref().is_some_and(|v| v.len() > 1)
    {
        return Err(
            "a field can be compared with = only once (AND of two values matches nothing)".into(),
        );
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filter_matches_everything() {
        assert_eq!(parse("").unwrap(), ListFilter::default());
        assert_eq!(parse("   ").unwrap(), ListFilter::default());
    }

    #[test]
    fn terms_combine_with_and() {
        let f = parse(r#"state = RECEIVED AND source != SOURCE_POLICE AND receive_time >= "2026-01-01T00:00:00Z""#).unwrap();
        assert_eq!(f.state_in, Some(vec![State::Received]));
        assert_eq!(f.source_not, vec![Source::Police]);
        assert_eq!(
            f.received_from.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn lower_case_enum_values_and_quoted_areas_work() {
        let f = parse(r#"state=accepted AND receiving_area = "midlothian""#).unwrap();
        assert_eq!(f.state_in, Some(vec![State::Accepted]));
        assert_eq!(f.receiving_area.as_deref(), Some("midlothian"));
    }

    #[test]
    fn mistakes_are_explained() {
        for bad in [
            "state = NOPE",
            "colour = red",
            "state",
            "state > RECEIVED",
            r#"receive_time >= "yesterday""#,
            r#"receive_time >= "2026"#,
            "state = RECEIVED AND state = ACCEPTED",
            "state = RECEIVED OR state = ACCEPTED",
        ] {
            assert!(parse(bad).is_err(), "{bad} should fail");
        }
    }
}
