//! UK postcodes: checked for shape (not against the Royal Mail file) and normalised to
//! upper case with one space before the inward code, e.g. `EH22 1AB`.

/// The normalised postcode, or `None` if it is not a UK postcode shape.
pub fn normalise(raw: &str) -> Option<String> {
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if compact == "GIR0AA" {
        return Some("GIR 0AA".into());
    }
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = {
        let b = inward.as_bytes();
        b[0].is_ascii_digit() && is_inward_letter(b[1]) && is_inward_letter(b[2])
    };
    if !inward_ok || !outward_ok(outward) {
        return None;
    }
    Some(format!("{outward} {inward}"))
}

/// The outward code (postcode district), e.g. `EH22` — the coarse location that
/// de-identified feeds may carry.
pub fn district(normalised: &str) -> &str {
    normalised.split(' ').next().unwrap_or(normalised)
}

fn is_inward_letter(b: u8) -> bool {
    b.is_ascii_uppercase() && !b"CIKMOV".contains(&b)
}

fn outward_ok(o: &str) -> bool {
    let shape: String = o
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                '9'
            } else if c.is_ascii_uppercase() {
                'A'
            } else {
                '?'
            }
        })
        .collect();
    matches!(
        shape.as_str(),
        "A9" | "A99" | "AA9" | "AA99" | "A9A" | "AA9A"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_shapes_are_accepted_and_normalised() {
        for (raw, want) in [
            ("eh22 1ab", "EH22 1AB"),
            ("BA1 1AA", "BA1 1AA"),
            ("me4  4te", "ME4 4TE"),
            ("M1 1AE", "M1 1AE"),
            ("W1A 0AX", "W1A 0AX"),
            ("EC1A1BB", "EC1A 1BB"),
            ("B33 8TH", "B33 8TH"),
            ("gir 0aa", "GIR 0AA"),
        ] {
            assert_eq!(normalise(raw).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn malformed_postcodes_are_rejected() {
        for raw in [
            "",
            "EH22",
            "12345",
            "EH22 1A",
            "EH22 AAB",
            "EH22 1AC",
            "EHH22 1AB",
            "E-22 1AB",
            "SW1A 1AAA",
            "ÉH22 1AB",
        ] {
            assert_eq!(normalise(raw), None, "{raw}");
        }
    }

    #[test]
    fn district_is_the_outward_code() {
        assert_eq!(district("EH22 1AB"), "EH22");
    }
}
