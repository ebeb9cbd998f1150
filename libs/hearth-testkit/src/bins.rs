//! Finds the machine's own server binaries.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::keeper;

const PG_HINT: &str = "install PostgreSQL server binaries with `make deps`, \
     or point HEARTH_PG_BINDIR at the directory holding `postgres` and `initdb`";
const NATS_HINT: &str = "install it with `make deps`, \
     or point HEARTH_NATS_SERVER at the nats-server binary";

/// The directory holding `postgres`, `initdb` and `pgbench`.
pub(crate) fn pg_bin_dir() -> Result<PathBuf> {
    let dir = find_pg_bin_dir()?;
    for tool in ["postgres", "initdb"] {
        if !is_executable(&dir.join(tool)) {
            bail!(
                "PostgreSQL `{tool}` is missing from {}; {PG_HINT}",
                dir.display()
            );
        }
    }
    Ok(dir)
}

fn find_pg_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("HEARTH_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if !is_executable(&dir.join("postgres")) {
            bail!(
                "HEARTH_PG_BINDIR={} does not contain an executable `postgres`; {PG_HINT}",
                dir.display()
            );
        }
        return Ok(dir);
    }
    if let Some(dir) = newest_debian_pg_bin_dir() {
        return Ok(dir);
    }
    if let Some(dir) = pg_config_bin_dir() {
        return Ok(dir);
    }
    if let Some(dir) = find_on_path("postgres").and_then(|p| p.parent().map(Path::to_path_buf)) {
        return Ok(dir);
    }
    bail!(
        "PostgreSQL server binaries not found (looked at HEARTH_PG_BINDIR, \
         /usr/lib/postgresql/*/bin, `pg_config --bindir` and PATH); {PG_HINT}"
    )
}

/// Debian installs each major version side by side; prefer the newest.
fn newest_debian_pg_bin_dir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            is_executable(&bin.join("postgres")).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn pg_config_bin_dir() -> Option<PathBuf> {
    let pg_config = find_on_path("pg_config")?;
    let mut cmd = Command::new(pg_config);
    cmd.arg("--bindir")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let out = keeper::spawn(cmd, None).ok()?.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    is_executable(&dir.join("postgres")).then_some(dir)
}

/// The nats-server binary.
pub(crate) fn nats_server_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("HEARTH_NATS_SERVER") {
        let bin = PathBuf::from(bin);
        if !is_executable(&bin) {
            bail!(
                "HEARTH_NATS_SERVER={} is not an executable file; {NATS_HINT}",
                bin.display()
            );
        }
        return Ok(bin);
    }
    if let Some(bin) = find_on_path("nats-server") {
        return Ok(bin);
    }
    let fallback = Path::new("/usr/sbin/nats-server");
    if is_executable(fallback) {
        return Ok(fallback.to_path_buf());
    }
    bail!("nats-server not found (looked at HEARTH_NATS_SERVER, PATH and /usr/sbin); {NATS_HINT}")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
