//! Fictional but valid NHS numbers for demo and benchmark families: nine digits of
//! our choosing plus the modulus-11 check digit the referrals service verifies.

/// The NHS number for a nine-digit stem, formatted `943 476 5919`.
pub fn from_stem(stem: u64) -> Option<String> {
    let check = referrals::domain::nhs::check_digit(stem)?;
    let s = format!("{stem:09}{check}");
    Some(format!("{} {} {}", &s[..3], &s[3..6], &s[6..]))
}

/// A distinct valid NHS number for every `n` below 100 million: stem `k00 000 000 + n`
/// for the first leading digit `k` (from 4) that gives a valid check digit. Different
/// leading digits change the weighted sum by a multiple of 10, so one of them works.
pub fn unique(n: u64) -> String {
    let offset = n % 100_000_000;
    (4..=9)
        .chain(1..=3)
        .find_map(|k| from_stem(k * 100_000_000 + offset))
        .unwrap_or_else(|| "943 476 5919".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The service's own check, restated: an independent reading of the rule.
    fn valid(number: &str) -> bool {
        let d: Vec<u32> = number
            .chars()
            .filter(|c| c.is_ascii_digit())
            .filter_map(|c| c.to_digit(10))
            .collect();
        if d.len() != 10 {
            return false;
        }
        let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(v, w)| v * w).sum();
        let check = (11 - sum % 11) % 11;
        check != 10 && check == d[9]
    }

    #[test]
    fn known_numbers_check_out() {
        assert_eq!(from_stem(943_476_591).as_deref(), Some("943 476 5919"));
        assert_eq!(from_stem(401_023_213).as_deref(), Some("401 023 2137"));
    }

    #[test]
    fn unique_numbers_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..20_000 {
            let number = unique(n);
            assert!(valid(&number), "{number}");
            assert!(seen.insert(number), "repeat at {n}");
        }
    }
}
