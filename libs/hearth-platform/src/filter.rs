//! The subset of AIP-160 list filters that Hearth's lists take, parsed once here:
//!
//! ```text
//! filter := term ( "AND" term )*
//! term   := field op value
//! enum fields   = !=        STATE_RECEIVED, or RECEIVED (the prefix may go), any case
//! text fields   =           midlothian, or "midlothian"
//! time fields   >= > <= <   "2026-01-01T00:00:00Z" (RFC 3339)
//! ```
//!
//! A service declares its fields and gets typed terms back; a mistake comes back as a
//! sentence for a field violation on `filter`.

use chrono::{DateTime, Utc};

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            ">=" => Op::Ge,
            ">" => Op::Gt,
            "<=" => Op::Le,
            "<" => Op::Lt,
            _ => return None,
        })
    }
}

/// What a field holds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A protobuf enum: `prefix` (`STATE_`) may be left off; `parse` is the enum's
    /// `from_str_name` as a number. The unspecified value (0) is never a valid value.
    Enum {
        prefix: &'static str,
        parse: fn(&str) -> Option<i32>,
    },
    /// Text compared for equality.
    Text,
    /// A point in time, compared with `>=`, `>`, `<=` and `<`.
    Time,
}

/// A field a list may be filtered on.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
}

impl Field {
    /// A protobuf enum field; `parse` is the enum's `from_str_name` as a number, e.g.
    /// `|s| State::from_str_name(s).map(|e| e as i32)`.
    pub const fn enumeration(
        name: &'static str,
        prefix: &'static str,
        parse: fn(&str) -> Option<i32>,
    ) -> Field {
        Field {
            name,
            kind: Kind::Enum { prefix, parse },
        }
    }

    pub const fn text(name: &'static str) -> Field {
        Field {
            name,
            kind: Kind::Text,
        }
    }

    pub const fn time(name: &'static str) -> Field {
        Field {
            name,
            kind: Kind::Time,
        }
    }
}

/// A term's value, typed by its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Enum(i32),
    Text(String),
    Time(DateTime<Utc>),
}

/// One `field op value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub field: &'static str,
    pub op: Op,
    pub value: Value,
}

/// A parsed filter: terms that must all hold. Empty means everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub terms: Vec<Term>,
}

impl Filter {
    /// The values `field` must equal (`=`), if any term says so.
    pub fn equal_to(&self, field: &str) -> Option<&Value> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.op == Op::Eq)
            .map(|t| &t.value)
    }

    /// The values `field` must not equal (`!=`).
    pub fn not_equal_to<'a>(&'a self, field: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.terms
            .iter()
            .filter(move |t| t.field == field && t.op == Op::Ne)
            .map(|t| &t.value)
    }

    /// An enum field's `=` value and `!=` values, as the enum.
    pub fn enum_terms<E: TryFrom<i32>>(&self, field: &str) -> (Option<E>, Vec<E>) {
        let as_enum = |v: &Value| match v {
            Value::Enum(n) => E::try_from(*n).ok(),
            _ => None,
        };
        (
            self.equal_to(field).and_then(as_enum),
            self.not_equal_to(field).filter_map(as_enum).collect(),
        )
    }

    /// A text field's `=` value.
    pub fn text(&self, field: &str) -> Option<&str> {
        match self.equal_to(field) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// A time field's terms as one half-open range `[from, before)` at microsecond
    /// precision (Postgres's): `> t` is `>= t + 1µs` and `<= t` is `< t + 1µs`. When a
    /// bound is given twice the tighter one holds.
    pub fn time_range(&self, field: &str) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let micro = chrono::Duration::microseconds(1);
        let (mut from, mut before): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (None, None);
        for t in self.terms.iter().filter(|t| t.field == field) {
            let Value::Time(at) = t.value else { continue };
            match t.op {
                Op::Ge => from = from.max(Some(at)),
                Op::Gt => from = from.max(Some(at + micro)),
                Op::Lt => before = Some(before.map_or(at, |b| b.min(at))),
                Op::Le => before = Some(before.map_or(at + micro, |b| b.min(at + micro))),
                Op::Eq | Op::Ne => {}
            }
        }
        (from, before)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(Op, &'static str),
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
            let text: &'static str = match two.as_str() {
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
            i += text.len();
            out.push(Tok::Op(Op::parse(text).expect("listed above"), text));
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

/// Parses `input` against the fields a list offers. The error says what is wrong.
pub fn parse(input: &str, fields: &[Field]) -> Result<Filter, String> {
    let toks = tokenize(input)?;
    let mut filter = Filter::default();
    if toks.is_empty() {
        return Ok(filter);
    }
    let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
    for term in toks.split(|t| matches!(t, Tok::Word(w) if w == "AND")) {
        let [Tok::Word(name), Tok::Op(op, op_text), value] = term else {
            return Err("each term must be `field operator value`, terms joined by AND".into());
        };
        let raw = match value {
            Tok::Word(w) | Tok::Quoted(w) => w.as_str(),
            Tok::Op(..) => return Err(format!("missing value after {op_text}")),
        };
        let Some(field) = fields.iter().find(|f| f.name == name) else {
            return Err(format!(
                "unknown field {name:?}; filter on {}",
                names.join(", ")
            ));
        };
        let allowed = match field.kind {
            Kind::Enum { .. } => matches!(op, Op::Eq | Op::Ne),
            Kind::Text => *op == Op::Eq,
            Kind::Time => matches!(op, Op::Ge | Op::Gt | Op::Le | Op::Lt),
        };
        if !allowed {
            return Err(format!("operator {op_text} is not supported on {name}"));
        }
        let value = match field.kind {
            Kind::Enum { prefix, parse } => {
                let upper = raw.to_ascii_uppercase();
                let n = parse(&upper)
                    .or_else(|| parse(&format!("{prefix}{upper}")))
                    .filter(|n| *n != 0)
                    .ok_or_else(|| format!("unknown {name} {raw:?}"))?;
                Value::Enum(n)
            }
            Kind::Text => Value::Text(raw.to_owned()),
            Kind::Time => Value::Time(
                DateTime::parse_from_rfc3339(raw)
                    .map_err(|_| format!("{name} needs an RFC 3339 time in quotes, got {raw:?}"))?
                    .with_timezone(&Utc),
            ),
        };
        if *op == Op::Eq && filter.equal_to(field.name).is_some() {
            // AND of two values of one field matches nothing: surely a mistake.
            return Err(
                "a field can be compared with = only once (AND of two values matches nothing)"
                    .into(),
            );
        }
        filter.terms.push(Term {
            field: field.name,
            op: *op,
            value,
        });
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::referrals::{ContactMethod, Urgency};

    /// A list of contacts, say: any enums, text and times will do.
    const FIELDS: &[Field] = &[
        Field::time("contact_time"),
        Field::text("recorded_by"),
        Field::enumeration("method", "CONTACT_METHOD_", |s| {
            ContactMethod::from_str_name(s).map(|e| e as i32)
        }),
        Field::enumeration("urgency", "URGENCY_", |s| {
            Urgency::from_str_name(s).map(|e| e as i32)
        }),
    ];

    #[test]
    fn empty_filter_matches_everything() {
        assert_eq!(parse("", FIELDS).unwrap(), Filter::default());
        assert_eq!(parse("   ", FIELDS).unwrap(), Filter::default());
    }

    #[test]
    fn terms_combine_with_and_into_typed_values() {
        let f = parse(
            r#"method = PHONE AND urgency != URGENCY_URGENT AND contact_time >= "2026-01-01T00:00:00Z""#,
            FIELDS,
        )
        .unwrap();
        assert_eq!(
            f.enum_terms::<ContactMethod>("method"),
            (Some(ContactMethod::Phone), vec![])
        );
        assert_eq!(
            f.enum_terms::<Urgency>("urgency"),
            (None, vec![Urgency::Urgent])
        );
        let (from, before) = f.time_range("contact_time");
        assert_eq!(from.unwrap().to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert!(before.is_none());
    }

    #[test]
    fn lower_case_enum_values_and_quoted_text_work() {
        let f = parse(r#"method=home_visit AND recorded_by = "triage-2""#, FIELDS).unwrap();
        assert_eq!(
            f.enum_terms::<ContactMethod>("method").0,
            Some(ContactMethod::HomeVisit)
        );
        assert_eq!(f.text("recorded_by"), Some("triage-2"));
    }

    #[test]
    fn time_bounds_become_one_half_open_range() {
        let f = parse(
            r#"contact_time > "2026-01-01T00:00:00Z" AND contact_time <= "2026-02-01T00:00:00Z" AND contact_time < "2026-03-01T00:00:00Z""#,
            FIELDS,
        )
        .unwrap();
        let (from, before) = f.time_range("contact_time");
        assert_eq!(
            from.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00.000001+00:00"
        );
        assert_eq!(
            before.unwrap().to_rfc3339(),
            "2026-02-01T00:00:00.000001+00:00"
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for bad in [
            "method = NOPE",
            "method = UNSPECIFIED",
            "colour = red",
            "method",
            "method > PHONE",
            "recorded_by != x",
            "contact_time = \"2026-01-01T00:00:00Z\"",
            r#"contact_time >= "yesterday""#,
            r#"contact_time >= "2026"#,
            "method = PHONE AND method = EMAIL",
            "method = PHONE OR method = EMAIL",
            "method = !=",
        ] {
            assert!(parse(bad, FIELDS).is_err(), "{bad} should fail");
        }
        assert!(
            parse("colour = red", FIELDS)
                .unwrap_err()
                .contains("contact_time, recorded_by, method, urgency")
        );
    }
}
