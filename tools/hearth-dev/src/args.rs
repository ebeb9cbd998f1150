//! Hand-rolled flag parsing: `--name value` or `--name=value`, each flag at most once,
//! only the flags a subcommand names, and switches that take no value (`--mtls`).
//! Errors say which flag and what was expected.

use anyhow::{Context as _, Result, bail};

/// The flags given to one subcommand.
#[derive(Debug, Default)]
pub struct Args {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Args {
    /// Parses `raw` (the words after the subcommand), accepting only `allowed` flags.
    pub fn parse(raw: &[String], allowed: &[&str]) -> Result<Args> {
        Self::parse_with_switches(raw, allowed, &[])
    }

    /// As [`Args::parse`], also accepting the `switches`, which take no value.
    pub fn parse_with_switches(
        raw: &[String],
        allowed: &[&str],
        switches: &[&str],
    ) -> Result<Args> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut on: Vec<String> = Vec::new();
        let mut words = raw.iter();
        while let Some(word) = words.next() {
            let Some(flag) = word.strip_prefix("--") else {
                bail!("unexpected argument {word:?}; flags look like --name value");
            };
            if switches.contains(&flag) {
                if on.iter().any(|s| s == flag) {
                    bail!("--{flag} was given twice");
                }
                on.push(flag.to_owned());
                continue;
            }
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => {
                    let value = words
                        .next()
                        .with_context(|| format!("--{flag} needs a value"))?;
                    (flag.to_owned(), value.clone())
                }
            };
            if switches.contains(&name.as_str()) {
                bail!("--{name} takes no value");
            }
            if !allowed.contains(&name.as_str()) {
                let known: Vec<String> = allowed
                    .iter()
                    .chain(switches)
                    .map(|a| format!("--{a}"))
                    .collect();
                bail!(
                    "unknown flag --{name}; this command takes {}",
                    known.join(", ")
                );
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                bail!("--{name} was given twice");
            }
            pairs.push((name, value));
        }
        Ok(Args {
            pairs,
            switches: on,
        })
    }

    /// Whether switch `--name` was given.
    pub fn on(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    /// The raw value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A TCP port (1 to 65535).
    pub fn port(&self, name: &str, default: u16) -> Result<u16> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u16>() {
                Ok(p) if p > 0 => Ok(p),
                _ => bail!("--{name} takes a TCP port (1-65535), got {v:?}"),
            },
        }
    }

    /// A whole number.
    pub fn number(&self, name: &str, default: u64) -> Result<u64> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("--{name} takes a whole number, got {v:?}")),
        }
    }

    /// A comma-separated list of positive whole numbers.
    pub fn number_list(&self, name: &str, default: &[usize]) -> Result<Vec<usize>> {
        let Some(v) = self.get(name) else {
            return Ok(default.to_vec());
        };
        let list: Vec<usize> = v
            .split(',')
            .map(|part| part.trim().parse::<usize>().ok().filter(|n| *n > 0))
            .collect::<Option<_>>()
            .with_context(|| {
                format!("--{name} takes positive whole numbers separated by commas, got {v:?}")
            })?;
        if list.is_empty() {
            bail!("--{name} needs at least one value");
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn both_spellings_parse() {
        let a = Args::parse(
            &words("--org midlothian --roles=triage,referrer"),
            &["org", "roles"],
        )
        .unwrap();
        assert_eq!(a.get("org"), Some("midlothian"));
        assert_eq!(a.get("roles"), Some("triage,referrer"));
        assert_eq!(a.get("sub"), None);
    }

    #[test]
    fn mistakes_are_explained() {
        let err = Args::parse(&words("--nope 1"), &["org"]).unwrap_err();
        assert!(err.to_string().contains("unknown flag --nope"), "{err}");
        let err = Args::parse(&words("--org"), &["org"]).unwrap_err();
        assert!(err.to_string().contains("needs a value"), "{err}");
        let err = Args::parse(&words("stray"), &["org"]).unwrap_err();
        assert!(err.to_string().contains("unexpected argument"), "{err}");
        let a = Args::parse(&words("--grpc-port 0 --c 1,x"), &["grpc-port", "c"]).unwrap();
        assert!(a.port("grpc-port", 1).is_err());
        assert!(a.number_list("c", &[1]).is_err());
    }

    #[test]
    fn switches_take_no_value() {
        let a =
            Args::parse_with_switches(&words("--mtls --grpc-port 1"), &["grpc-port"], &["mtls"])
                .unwrap();
        assert!(a.on("mtls"));
        assert_eq!(a.port("grpc-port", 9).unwrap(), 1);
        let a = Args::parse_with_switches(&words(""), &[], &["mtls"]).unwrap();
        assert!(!a.on("mtls"));
        let err = Args::parse_with_switches(&words("--mtls=yes"), &[], &["mtls"]).unwrap_err();
        assert!(err.to_string().contains("takes no value"), "{err}");
        let err = Args::parse_with_switches(&words("--nope 1"), &["a"], &["mtls"]).unwrap_err();
        assert!(err.to_string().contains("--a, --mtls"), "{err}");
    }

    #[test]
    fn lists_and_defaults() {
        let a = Args::parse(&words("--c 1,4,16"), &["c", "n"]).unwrap();
        assert_eq!(a.number_list("c", &[2]).unwrap(), vec![1, 4, 16]);
        assert_eq!(a.number("n", 10).unwrap(), 10);
    }
}
