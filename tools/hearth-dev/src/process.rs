//! Child processes the tool starts itself (the `referrals` binary), and the few libc
//! calls that needs. This is the only module with `unsafe`; each block is a plain
//! syscall on integers.

use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Whether we run as root (then Postgres runs as the `postgres` user).
#[allow(unsafe_code)]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Our effective uid.
#[allow(unsafe_code)]
pub fn uid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::geteuid() }
}

/// While alive, this process sits in a process group of its own; on drop it returns
/// to the group it came from.
///
/// Servers started meanwhile (Postgres and NATS, through the testkit) stay in the new
/// group. A terminal's Ctrl-C goes to its foreground group, so it then reaches
/// `hearth-dev` (back in that group) but not the servers, and shutdown can go in order:
/// the service first, while its database and NATS are still up. A Ctrl-C pressed during
/// the detour itself reaches only `make`, not us; pressing it again once the servers
/// are up works. The servers still die with us, through their parent-death signal.
#[derive(Debug)]
pub struct GroupDetour {
    original: libc::pid_t,
}

impl GroupDetour {
    /// `None` when we lead our group already (then there is no group to return to:
    /// e.g. `cargo run` typed at an interactive shell) or lead a session.
    #[allow(unsafe_code)]
    pub fn enter() -> Option<GroupDetour> {
        // SAFETY: getpgrp and getpid cannot fail; setpgid takes integers only.
        unsafe {
            let original = libc::getpgrp();
            if original == libc::getpid() || libc::setpgid(0, 0) != 0 {
                return None;
            }
            Some(GroupDetour { original })
        }
    }
}

impl Drop for GroupDetour {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: as above. If the original group has gone (its last member exited),
        // we stay where we are: nobody is left to send us its Ctrl-C anyway.
        unsafe {
            libc::setpgid(0, self.original);
        }
    }
}

/// Spawns `cmd` in its own process group (so a terminal's Ctrl-C reaches only us, and
/// we stop the child in order), with SIGTERM as its parent-death signal (so it never
/// outlives a killed `hearth-dev`). Call from the main thread: the death signal fires
/// when the spawning *thread* exits.
#[allow(unsafe_code)]
pub fn spawn_guarded(cmd: &mut Command) -> std::io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0).kill_on_drop(true);
    // SAFETY: the hook runs between fork and exec and only makes async-signal-safe
    // syscalls on integers; it does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// How a child ended after [`terminate`].
#[derive(Debug)]
pub enum Ending {
    Exited,
    /// Killed after the grace period; `cut_short` says whether it had been shortened.
    Killed {
        after: Duration,
        cut_short: bool,
    },
}

/// Sends SIGTERM and waits up to `grace` for the child to exit, then kills it. While
/// waiting, `hurry` is asked every 100 ms; once it says yes, the wait ends at most
/// `short_grace` later.
pub async fn terminate(
    child: &mut Child,
    grace: Duration,
    short_grace: Duration,
    mut hurry: impl FnMut() -> bool,
) -> Result<Ending> {
    if child
        .try_wait()
        .context("cannot check on the child")?
        .is_some()
    {
        return Ok(Ending::Exited);
    }
    if let Some(pid) = child.id() {
        send_sigterm(pid);
    }
    let start = Instant::now();
    let mut deadline = start + grace;
    let mut cut_short = false;
    loop {
        // Child::wait is cancel-safe: a timed-out wait loses nothing.
        if let Ok(status) = tokio::time::timeout(Duration::from_millis(100), child.wait()).await {
            status.context("cannot wait for the child")?;
            return Ok(Ending::Exited);
        }
        if !cut_short && hurry() {
            cut_short = true;
            deadline = deadline.min(Instant::now() + short_grace);
        }
        if Instant::now() >= deadline {
            child.kill().await.context("cannot kill the child")?;
            return Ok(Ending::Killed {
                after: start.elapsed(),
                cut_short,
            });
        }
    }
}

#[allow(unsafe_code)]
fn send_sigterm(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill has no memory-safety preconditions; the child has not been reaped
    // (tokio only reaps in wait/try_wait, which returned "still running"), so the pid
    // is still ours.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}
