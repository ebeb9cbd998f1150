//! The only place that calls into libc directly; everything else stays safe.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// A system account to run a child as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Account {
    pub uid: u32,
    pub gid: u32,
}

#[allow(unsafe_code)]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks up a user by name. Uses the reentrant `getpwnam_r` because tests
/// start servers from several threads at once.
#[allow(unsafe_code)]
pub(crate) fn lookup_user(name: &str) -> io::Result<Option<Account>> {
    let cname = CString::new(name).map_err(io::Error::other)?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: passwd is plain old data; all-zero (null pointers) is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to live, correctly sized storage owned by
        // this frame, and `buf.len()` is the true length of `buf`.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        return Ok(Some(Account {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }));
    }
}

#[allow(unsafe_code)]
pub(crate) fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill has no memory-safety preconditions. Callers only signal
    // children they have not reaped yet, so the pid cannot have been recycled.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the child drop to `run_as` (if given) and die with SIGKILL when the
/// spawning thread goes away, so servers never outlive a killed test run.
#[allow(unsafe_code)]
pub(crate) fn guard_child(cmd: &mut Command, run_as: Option<Account>) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the hook runs between fork and exec; it only makes
    // async-signal-safe libc calls and does not allocate.
    unsafe {
        cmd.pre_exec(move || in_child_before_exec(run_as, parent));
    }
}

#[allow(unsafe_code)]
fn in_child_before_exec(run_as: Option<Account>, parent: libc::pid_t) -> io::Result<()> {
    // SAFETY (all blocks below): plain syscalls on integers and a null
    // pointer with a zero count; no Rust memory is touched.
    if let Some(acct) = run_as {
        // Group first: after setuid we would no longer be allowed to change it.
        if unsafe { libc::setgid(acct.gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if unsafe { libc::setuid(acct.uid) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // Must come after setuid: the kernel clears the death signal whenever
    // credentials change.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // The parent may have died before prctl took effect; then nobody would
    // ever send the signal.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}
