//! The local signing key (`.hearth/keys/dev.pem`, public half `dev.pub.pem`), tokens
//! signed with it, and the `hearth-dev token` subcommand.
//!
//! The services trust `dev.pub.pem` through `HEARTH_AUTH_PUBLIC_KEYS`; its file name
//! makes the key id `dev`, which is the `kid` our tokens carry.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use hearth_platform::Role;
use hearth_platform::auth::{KeyPair, TokenIssuer};

use crate::args::Args;
use crate::paths::Layout;

/// `iss` of every token; the services run with `HEARTH_AUTH_ISSUER` set to it.
pub const ISSUER: &str = "hearth-dev";
/// `aud` of every token (`HEARTH_AUTH_AUDIENCE`).
pub const AUDIENCE: &str = "hearth";
/// The key id: `dev.pub.pem` without its extensions.
pub const KID: &str = "dev";
/// How long the tokens printed by `make run` stay valid.
pub const DEFAULT_TTL: Duration = Duration::from_secs(12 * 3600);

/// A fresh random secret for a local run (page tokens): 64 hex characters from the
/// system's random generator. Made anew each run, so tokens do not outlive it.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Generates the key pair once; returns whether it was created now.
pub fn ensure_dev_keys(layout: &Layout) -> Result<bool> {
    if layout.private_key.exists() && layout.public_key.exists() {
        return Ok(false);
    }
    let pair = KeyPair::generate();
    write_file(&layout.private_key, &pair.private_pem, 0o600)?;
    write_file(&layout.public_key, &pair.public_pem, 0o644)?;
    Ok(true)
}

/// The checkout's audit seal key (`.hearth/keys/audit-seal.key`), made once: the audit
/// log of the local database stays verifiable from one `make run` to the next.
pub fn dev_seal_key(layout: &Layout) -> Result<String> {
    let path = layout.keys_dir.join("audit-seal.key");
    match fs::read_to_string(&path) {
        Ok(key) if key.trim().len() >= 32 => Ok(key.trim().to_owned()),
        Ok(_) => bail!(
            "{} is shorter than 32 characters; delete it to make a new one \
             (the local audit log will then fail verification)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_secret();
            write_file(&path, &key, 0o600)?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `text` to `path`, created with `mode` (replacing any old file).
pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let _ = fs::remove_file(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The issuer for the checkout's dev key.
pub fn issuer(layout: &Layout) -> Result<TokenIssuer> {
    let pem = match fs::read_to_string(&layout.private_key) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} does not exist: run `make run` first (it creates the dev key)",
            layout.private_key.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", layout.private_key.display()));
        }
    };
    TokenIssuer::from_private_pem(KID, &pem, ISSUER, AUDIENCE)
        .with_context(|| format!("{} is not a usable key", layout.private_key.display()))
}

/// Parses `triage,referrer` into roles, naming any unknown one.
pub fn parse_roles(raw: &str) -> Result<Vec<Role>> {
    let mut roles = Vec::new();
    for word in raw.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let Some(role) = Role::parse(word) else {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            bail!("unknown role {word:?}; roles are {}", known.join(", "));
        };
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.is_empty() {
        bail!("--roles needs at least one role, e.g. --roles triage");
    }
    Ok(roles)
}

/// An organisation id as the services expect: lower-case letters, digits, hyphens.
fn check_org(org: &str) -> Result<()> {
    let ok = !org.is_empty()
        && org.len() <= 64
        && org
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "--org {org:?} is not an organisation id: use lower-case letters, digits and \
             hyphens, e.g. midlothian or newbattle-high-school"
        );
    }
    Ok(())
}

/// `hearth-dev token --org ORG --roles r1,r2 [--sub SUBJECT] [--hours N]`.
pub fn token_command(args: &Args) -> Result<()> {
    let org = args
        .get("org")
        .context("--org is required, e.g. --org midlothian")?;
    check_org(org)?;
    let roles = parse_roles(
        args.get("roles")
            .context("--roles is required, e.g. --roles triage")?,
    )?;
    let hours = args.number("hours", 12)?;
    if !(1..=24 * 366).contains(&hours) {
        bail!("--hours must be between 1 and {}", 24 * 366);
    }
    let default_sub = format!("dev-{org}");
    let sub = args.get("sub").unwrap_or(&default_sub);
    if sub.trim().is_empty() {
        bail!("--sub must not be empty");
    }
    let issuer = issuer(&Layout::discover()?)?;
    println!(
        "{}",
        issuer.mint(sub, org, &roles, Duration::from_secs(hours * 3600))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_unknown_ones_are_named() {
        assert_eq!(
            parse_roles("triage, referrer,triage").unwrap(),
            vec![Role::Triage, Role::Referrer]
        );
        let err = parse_roles("triage,boss").unwrap_err().to_string();
        assert!(
            err.contains("\"boss\"") && err.contains("coordinator"),
            "{err}"
        );
        assert!(parse_roles(" , ").is_err());
    }

    #[test]
    fn org_ids_are_checked() {
        assert!(check_org("newbattle-high-school").is_ok());
        assert!(check_org("Midlothian").is_err());
        assert!(check_org("").is_err());
    }
}
