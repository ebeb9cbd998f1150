//! NHS numbers: ten digits, the last a modulus-11 check digit.

/// The modulus-11 check digit for a nine-digit stem, or `None` when no valid number
/// has that stem (the remainder gives check digit 10).
pub fn check_digit(stem: u64) -> Option<u64> {
    if stem >= 1_000_000_000 {
        return None;
    }
    let digits = format!("{stem:09}");
    let sum: u64 = digits
        .bytes()
        .enumerate()
        .map(|(i, b)| u64::from(b - b'0') * (10 - i as u64))
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => Some(c),
    }
}

/// The NHS number with spaces and hyphens removed, if it is ten digits with a valid
/// check digit.
pub fn normalise(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if digits.len() != 10 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let stem: u64 = digits[..9].parse().ok()?;
    let last = u64::from(digits.as_bytes()[9] - b'0');
    (check_digit(stem)? == last).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn valid_numbers_pass_and_are_normalised() {
        assert_eq!(normalise("943 476 5919").as_deref(), Some("9434765919"));
        assert_eq!(normalise("9434765919").as_deref(), Some("9434765919"));
        assert_eq!(normalise("401-023-2137").as_deref(), Some("4010232137"));
    }

    #[test]
    fn bad_check_digits_lengths_and_characters_fail() {
        assert_eq!(normalise("9434765918"), None, "wrong check digit");
        assert_eq!(normalise("943476591"), None, "nine digits");
        assert_eq!(normalise("94347659190"), None, "eleven digits");
        assert_eq!(normalise("94347A5919"), None, "a letter");
        // Remainder 1 gives check digit 10, which no valid number has.
        assert_eq!(normalise("1000000010"), None);
        assert_eq!(normalise(""), None);
    }
}
