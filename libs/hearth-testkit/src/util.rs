//! Plumbing shared by the Postgres and NATS servers.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sys::{self, Account};

const SCRATCH_PREFIX: &str = "hearth-";
const SCRATCH_KINDS: [&str; 2] = ["pg", "nats"];

/// A port that was free a moment ago. The server may still lose a race for
/// it, which is why automatic ports get one retry.
pub(crate) fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Creates `<tmp>/hearth-<kind>-<pid>-<n>` with mode 0700, owned by `owner`.
///
/// It sits directly under the temp dir so that the postgres user can reach it
/// without having to traverse directories private to us; the pid in the name
/// lets later runs sweep away directories of killed runs.
pub(crate) fn make_scratch(kind: &str, owner: Option<Account>) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    sweep_stale_scratch();
    let base = std::env::temp_dir();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{SCRATCH_PREFIX}{kind}-{}-{n}", std::process::id()));
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                let chowned = owner.map_or(Ok(()), |acct| {
                    std::os::unix::fs::chown(&dir, Some(acct.uid), Some(acct.gid))
                });
                if let Err(e) = chowned {
                    let _ = fs::remove_dir(&dir);
                    return Err(e);
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes scratch directories left behind by processes that no longer exist
/// (killed test runs, and the never-dropped `shared_pg`).
fn sweep_stale_scratch() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(scratch_owner_pid) else {
                continue;
            };
            if pid != std::process::id() && !pid_exists(pid) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    });
}

fn scratch_owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(SCRATCH_PREFIX)?;
    let (kind, rest) = rest.split_once('-')?;
    if !SCRATCH_KINDS.contains(&kind) {
        return None;
    }
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

pub(crate) fn pid_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Gives a whole tree to `acct` (used when root hands a data dir to postgres).
pub(crate) fn chown_tree(path: &Path, acct: Account) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(acct.uid), Some(acct.gid))?;
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), acct)?;
        }
    }
    Ok(())
}

/// Whether `acct` (with no supplementary groups) may traverse every ancestor
/// of `dir`.
pub(crate) fn unreachable_ancestor(dir: &Path, acct: Account) -> Option<PathBuf> {
    dir.ancestors().skip(1).find_map(|ancestor| {
        let meta = fs::metadata(ancestor).ok()?;
        let mode = meta.permissions().mode();
        let searchable = if meta.uid() == acct.uid {
            mode & 0o100 != 0
        } else if meta.gid() == acct.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!searchable).then(|| ancestor.to_path_buf())
    })
}

/// Opens a server log for appending and returns it with its current length,
/// so readiness checks and error reports only look at this run's output.
pub(crate) fn open_log(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let offset = file.metadata()?.len();
    Ok((file, offset))
}

/// The log written since `offset`.
pub(crate) fn read_log_since(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    let _ = File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_end(&mut text)
    });
    String::from_utf8_lossy(&text).into_owned()
}

/// The last lines of this run's log, for error messages.
pub(crate) fn log_tail(path: &Path, offset: u64) -> String {
    const LINES: usize = 30;
    let text = read_log_since(path, offset);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
    if tail.trim().is_empty() {
        format!("(log {} is empty)", path.display())
    } else {
        format!("last lines of {}:\n{tail}", path.display())
    }
}

pub(crate) fn mentions_addr_in_use(log: &str) -> bool {
    log.to_ascii_lowercase().contains("address already in use")
}

/// Asks the child to exit with `signal`, waits up to `grace`, then SIGKILLs.
pub(crate) fn stop_child(child: &mut Child, signal: libc::c_int, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if sys::send_signal(child.id(), signal).is_ok() {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Why a launch attempt failed; `addr_in_use` allows a retry on another port.
pub(crate) struct LaunchFailure {
    pub addr_in_use: bool,
    pub error: anyhow::Error,
}

/// Polls `ready` every `interval` until it says yes, failing early (with why) if the
/// child exits first, and after `timeout`. `what` names the readiness in the error,
/// e.g. "accept connections".
pub(crate) fn wait_until_ready(
    child: &mut Child,
    timeout: Duration,
    interval: Duration,
    what: &str,
    mut ready: impl FnMut(&Child) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Err(format!("it exited ({status}) before it could {what}")),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot check on it: {e}")),
        }
        if ready(child) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("it did not {what} within {}s", timeout.as_secs()));
        }
        std::thread::sleep(interval);
    }
}
