//! A private NATS server with JetStream.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::util::{self, LaunchFailure};
use crate::{bins, keeper};

const HOST: &str = "127.0.0.1";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start a [`NatsServer`].
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// JetStream storage directory to use and keep; `None` means a fresh
    /// temporary one that is deleted when the server is dropped.
    pub data_dir: Option<PathBuf>,
    /// TCP port on 127.0.0.1; `None` picks a free one.
    pub port: Option<u16>,
    /// Isolated accounts, each with JetStream of its own and a user `tN` (password
    /// `tN`), so that tests sharing one server cannot see each other's streams. Zero
    /// (the default) runs without accounts: anyone may connect.
    pub accounts: usize,
}

/// A running private nats-server with JetStream, listening on 127.0.0.1 only.
/// It can be stopped and restarted with its state intact; stopped on drop.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    bin: PathBuf,
    data_dir: PathBuf,
    /// Temporary data dir to delete on drop, when none was given.
    scratch: Option<PathBuf>,
    log_path: PathBuf,
    // A Mutex only so that `is_running(&self)` can reap an exited child.
    child: Mutex<Option<Child>>,
    accounts: usize,
    /// Accounts handed out by [`NatsServer::take_account`].
    taken: std::sync::atomic::AtomicUsize,
}

impl NatsServer {
    /// Starts nats-server with JetStream and blocks until it is ready.
    pub fn start(opts: NatsOptions) -> Result<NatsServer> {
        let bin = bins::nats_server_bin()?;
        let (data_dir, scratch) = match &opts.data_dir {
            Some(dir) => {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let dir = dir
                    .canonicalize()
                    .with_context(|| format!("cannot resolve {}", dir.display()))?;
                (dir, None)
            }
            None => {
                let dir = util::make_scratch("nats", None)
                    .context("cannot create a temporary directory for nats-server")?;
                (dir.clone(), Some(dir))
            }
        };
        let mut server = NatsServer {
            port: 0,
            bin,
            log_path: data_dir.join("nats-server.log"),
            data_dir,
            scratch,
            child: Mutex::new(None),
            accounts: opts.accounts,
            taken: std::sync::atomic::AtomicUsize::new(0),
        };
        let mut may_retry = opts.port.is_none();
        loop {
            let port = match opts.port {
                Some(port) => port,
                None => util::free_port().context("cannot find a free TCP port")?,
            };
            match server.launch(port) {
                Ok(()) => return Ok(server),
                Err(f) if f.addr_in_use && may_retry => may_retry = false,
                Err(f) => return Err(f.error),
            }
        }
    }

    fn launch(&mut self, port: u16) -> Result<(), LaunchFailure> {
        let fail = |error: anyhow::Error| LaunchFailure {
            addr_in_use: false,
            error,
        };
        let (log, log_offset) = util::open_log(&self.log_path)
            .with_context(|| format!("cannot open {}", self.log_path.display()))
            .map_err(fail)?;
        let log_err = log.try_clone().map_err(|e| fail(e.into()))?;
        let mut cmd = Command::new(&self.bin);
        if self.accounts > 0 {
            let conf = self.data_dir.join("accounts.conf");
            fs::write(&conf, accounts_conf(self.accounts)).map_err(|e| fail(e.into()))?;
            cmd.arg("-c").arg(conf);
        }
        cmd.args(["-a", HOST, "-p", &port.to_string(), "-js", "-sd"])
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = keeper::spawn(cmd, None)
            .with_context(|| format!("cannot run {}", self.bin.display()))
            .map_err(fail)?;
        self.port = port;
        *self.child.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(child);

        match self.wait_ready(log_offset) {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.stop();
                let log = util::read_log_since(&self.log_path, log_offset);
                Err(LaunchFailure {
                    addr_in_use: util::mentions_addr_in_use(&log),
                    error: anyhow!(
                        "private nats-server on port {port} (data dir {}) failed: {reason}\n{}",
                        self.data_dir.display(),
                        util::log_tail(&self.log_path, log_offset)
                    ),
                })
            }
        }
    }

    fn wait_ready(&mut self, log_offset: u64) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let log_path = &self.log_path;
        let Some(child) = self.child.get_mut().unwrap_or_else(|e| e.into_inner()) else {
            return Err("it is not running".into());
        };
        // The log line proves it is *our* server that answers, not something that
        // grabbed the port first.
        util::wait_until_ready(
            child,
            READY_TIMEOUT,
            Duration::from_millis(25),
            "be ready",
            |_| {
                util::read_log_since(log_path, log_offset).contains("Server is ready")
                    && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            },
        )
    }

    /// Client URL: `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{HOST}:{}", self.port)
    }

    /// A URL for a fresh account of this server's (see [`NatsOptions::accounts`]),
    /// or `None` when every account is taken.
    pub fn take_account(&self) -> Option<String> {
        let n = self
            .taken
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (n < self.accounts).then(|| format!("nats://t{n}:t{n}@{HOST}:{}", self.port))
    }

    /// The TCP port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGTERM, SIGKILL after 10s. Keeps the data dir so that
    /// [`restart`](Self::restart) finds its JetStream state. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child_slot().take() {
            util::stop_child(&mut child, libc::SIGTERM, STOP_GRACE);
        }
    }

    /// Starts the server again on the same port and data dir (stopping it
    /// first if it is running).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch(self.port).map_err(|f| f.error)
    }

    /// Whether the server process is alive.
    pub fn is_running(&self) -> bool {
        match self.child_slot().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn child_slot(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The server configuration for `n` isolated accounts with JetStream.
fn accounts_conf(n: usize) -> String {
    let mut conf = String::from("accounts {\n");
    for i in 0..n {
        conf.push_str(&format!(
            "  T{i}: {{ jetstream: enabled, users: [ {{ user: t{i}, password: t{i} }} ] }}\n"
        ));
    }
    conf.push_str("}\n");
    conf
}

/// How many accounts one shared server holds before another is started.
const SHARED_ACCOUNTS: usize = 200;

/// A fresh, isolated NATS account on a server shared by the whole test process: its
/// URL carries the account's user and password. A test that stops or restarts NATS
/// needs a server of its own ([`NatsServer::start`]) instead.
///
/// # Panics
/// If a server cannot start; the message says why.
pub fn shared_nats_account() -> String {
    static SERVERS: Mutex<Vec<&'static NatsServer>> = Mutex::new(Vec::new());
    let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(url) = servers.last().and_then(|s| s.take_account()) {
        return url;
    }
    let server = NatsServer::start(NatsOptions {
        accounts: SHARED_ACCOUNTS,
        ..NatsOptions::default()
    })
    .unwrap_or_else(|e| panic!("hearth-testkit: cannot start the shared nats-server: {e:#}"));
    let server: &'static NatsServer = Box::leak(Box::new(server));
    servers.push(server);
    server.take_account().expect("a new server has accounts")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.scratch {
            let _ = fs::remove_dir_all(dir);
        }
    }
}
