//! One long-lived thread spawns every child process.
//!
//! PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not
//! the process. Test harness threads come and go, so spawning from them would
//! kill servers mid-run; this thread lives until the process exits.

use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;

use crate::sys::{self, Account};

struct SpawnRequest {
    cmd: Command,
    reply: mpsc::SyncSender<io::Result<Child>>,
}

// The sender lives in a static and is never dropped, so the keeper's receive
// loop never ends.
static KEEPER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();

/// Spawns `cmd` on the keeper thread, optionally as another user.
pub(crate) fn spawn(mut cmd: Command, run_as: Option<Account>) -> io::Result<Child> {
    sys::guard_child(&mut cmd, run_as);
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("hearth-testkit-keeper".into())
            .spawn(move || {
                for mut req in rx {
                    let _ = req.reply.send(req.cmd.spawn());
                }
            })
            .expect("hearth-testkit: cannot start the process keeper thread");
        tx
    });
    let gone = || io::Error::other("hearth-testkit keeper thread is gone");
    let (reply, answer) = mpsc::sync_channel(1);
    keeper
        .send(SpawnRequest { cmd, reply })
        .map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}
