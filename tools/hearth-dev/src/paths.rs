//! Where `hearth-dev` keeps local run data: the repository root, and the git-ignored
//! `<root>/.hearth/` folder (Postgres and NATS data, dev keys, logs, `dev.env`), plus
//! the fallback location for Postgres data when the `postgres` user cannot reach it.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::process;

/// The files and folders of one checkout's local run.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The workspace root (holds the `[workspace]` Cargo.toml).
    pub root: PathBuf,
    /// `<root>/.hearth`.
    pub data: PathBuf,
    pub nats_dir: PathBuf,
    pub keys_dir: PathBuf,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub referrals_log: PathBuf,
    pub dev_env: PathBuf,
}

impl Layout {
    /// The layout of the checkout that contains the current directory.
    pub fn discover() -> Result<Layout> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let root = repo_root(&cwd)?;
        let data = root.join(".hearth");
        let keys_dir = data.join("keys");
        Ok(Layout {
            nats_dir: data.join("nats"),
            private_key: keys_dir.join("dev.pem"),
            public_key: keys_dir.join("dev.pub.pem"),
            referrals_log: data.join("logs").join("referrals.log"),
            dev_env: data.join("dev.env"),
            keys_dir,
            data,
            root,
        })
    }

    /// Creates `.hearth/` and its `logs/` and `keys/` (the latter private).
    pub fn create_dirs(&self) -> Result<()> {
        for dir in [&self.data, &self.data.join("logs")] {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.keys_dir)
            .with_context(|| format!("cannot create {}", self.keys_dir.display()))?;
        Ok(())
    }

    /// The Postgres data directory: `.hearth/pg`, unless we are root and the `postgres`
    /// user (which Postgres then runs as) cannot traverse into it; then a folder under
    /// `/var/tmp` named after our uid and this checkout. The second value, when set, is
    /// the one-line note to print about the fallback.
    pub fn pg_dir(&self) -> Result<(PathBuf, Option<String>)> {
        let preferred = self.data.join("pg");
        if !process::is_root() {
            return Ok((preferred, None));
        }
        let Some(account) = postgres_account() else {
            // The testkit explains a missing postgres user better than we could.
            return Ok((preferred, None));
        };
        let Some(blocker) = unreachable_ancestor(&preferred, account) else {
            return Ok((preferred, None));
        };
        let base = PathBuf::from(format!(
            "/var/tmp/hearth-{}-{}",
            process::uid(),
            short_hash(&self.root.to_string_lossy())
        ));
        fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
        // Searchable by the postgres user whatever our umask is; it holds only `pg/`,
        // which Postgres keeps at 0700.
        fs::set_permissions(&base, fs::Permissions::from_mode(0o711))
            .with_context(|| format!("cannot chmod {}", base.display()))?;
        let dir = base.join("pg");
        // `make clean-data` reads this to remove the folder too.
        let marker = self.data.join(ELSEWHERE);
        fs::create_dir_all(&self.data)
            .and_then(|()| fs::write(&marker, format!("{}\n", base.display())))
            .with_context(|| format!("cannot write {}", marker.display()))?;
        let note = format!(
            "note: the postgres user cannot reach {} ({} is not searchable by it), \
             so Postgres data lives in {} (`make clean-data` removes it too)",
            preferred.display(),
            blocker.display(),
            dir.display()
        );
        Ok((dir, Some(note)))
    }

    /// `path` relative to the repository root, for printing.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.display().to_string())
    }
}

/// The nearest ancestor of `start` (itself included) whose Cargo.toml declares a
/// `[workspace]`.
/// The file in `.hearth/` naming the folder outside the checkout that holds the
/// Postgres data, when it could not live inside (see [`Layout::pg_dir`]).
pub const ELSEWHERE: &str = "data-elsewhere";

pub fn repo_root(start: &Path) -> Result<PathBuf> {
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = fs::read_to_string(&manifest)
            && text.lines().any(|line| line.trim() == "[workspace]")
        {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "no Hearth checkout here: no Cargo.toml with [workspace] in {} or above; \
         run this from inside the repository",
        start.display()
    )
}

/// uid and gid of the `postgres` system user, from /etc/passwd.
fn postgres_account() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["postgres", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    })
}

/// The first ancestor of `dir` that `account` (uid, gid; no supplementary groups, as
/// the testkit drops them) may not traverse. Ancestors that do not exist yet are
/// skipped: we create them with our umask, and they are checked on the next run.
fn unreachable_ancestor(dir: &Path, (uid, gid): (u32, u32)) -> Option<PathBuf> {
    dir.ancestors().skip(1).find_map(|ancestor| {
        let meta = fs::metadata(ancestor).ok()?;
        let mode = meta.permissions().mode();
        let searchable = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!searchable).then(|| ancestor.to_path_buf())
    })
}

/// Eight hex digits of FNV-1a: stable across runs and Rust versions.
fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_nearest_workspace() {
        let here = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let root = repo_root(Path::new(&here)).unwrap();
        assert!(root.join("tools/hearth-dev").is_dir(), "{}", root.display());
        assert!(repo_root(Path::new("/proc")).is_err());
    }

    #[test]
    fn private_ancestors_are_found() {
        let base = std::env::temp_dir().join(format!("hearth-dev-test-{}", std::process::id()));
        let inner = base.join("a");
        fs::create_dir_all(&inner).unwrap();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o700)).unwrap();
        let meta = fs::metadata(&base).unwrap();
        // Another user (not the owner, not in its group) cannot pass a 0700 folder.
        let stranger = (meta.uid() + 12345, meta.gid() + 12345);
        assert_eq!(
            unreachable_ancestor(&inner.join("pg"), stranger),
            Some(base.clone())
        );
        fs::set_permissions(&base, fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(unreachable_ancestor(&inner.join("pg"), stranger), None);
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn hashes_are_short_and_stable() {
        assert_eq!(short_hash("/work/main"), short_hash("/work/main"));
        assert_ne!(short_hash("/work/main"), short_hash("/work/other"));
        assert_eq!(short_hash("x").len(), 8);
    }
}
