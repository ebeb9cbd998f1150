//! NHS numbers: ten digits, the last a modulus-11 check digit.

/// The NHS number with spaces and hyphens removed, if it is ten digits with a valid
/// check digit.
pub fn normalise(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if digits.len() != 10 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let d: Vec<u32> = digits
        .chars()
        .map(|c| c.to_digit(10).unwrap_or(0))
        .collect();
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, v)| v * (10 - i as u32))
        .sum();
    let check = match 11 - (sum % 11) {
        11 => 0,
        10 => return None,
        c => c,
    };
    (check == d[9]).then_some(digits)
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
