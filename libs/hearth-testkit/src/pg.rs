//! A private PostgreSQL server.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sqlx::Connection;

use crate::sys::{self, Account};
use crate::util::{self, LaunchFailure};
use crate::{bins, keeper};

const HOST: &str = "127.0.0.1";
const USER: &str = "hearth";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start a [`PgServer`].
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Cluster directory to use and keep; `None` means a fresh temporary one
    /// that is deleted when the server is dropped.
    pub data_dir: Option<PathBuf>,
    /// TCP port on 127.0.0.1; `None` picks a free one.
    pub port: Option<u16>,
    /// Keep fsync and friends on. Off by default because tests need speed,
    /// not crash safety.
    pub durable: bool,
}

/// A running private PostgreSQL server, listening on 127.0.0.1 only, with a
/// trusted superuser `hearth`. Stopped on drop.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    bin_dir: PathBuf,
    data_dir: PathBuf,
    /// Socket dir, and in the ephemeral case also the cluster; removed on drop.
    scratch: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl PgServer {
    /// Starts a server, running `initdb` first if the data directory holds no
    /// cluster, and blocks until it accepts connections.
    pub fn start(opts: PgOptions) -> Result<PgServer> {
        let bin_dir = bins::pg_bin_dir()?;
        let run_as = postgres_account()?;
        let scratch = util::make_scratch("pg", run_as)
            .context("cannot create a temporary directory for postgres")?;
        // Built before anything can fail so that Drop cleans up after errors.
        let mut server = PgServer {
            port: 0,
            bin_dir,
            data_dir: scratch.join("data"),
            log_path: scratch.join("postgres.log"),
            scratch,
            child: None,
        };
        if let Some(dir) = &opts.data_dir {
            server.data_dir = prepare_data_dir(dir, run_as)?;
            server.log_path = server.data_dir.join("postgres.log");
        }
        if !server.data_dir.join("PG_VERSION").exists() {
            initdb(&server.bin_dir, &server.data_dir, run_as, opts.durable)?;
        }
        remove_stale_pid_file(&server.data_dir)?;

        let mut may_retry = opts.port.is_none();
        loop {
            let port = match opts.port {
                Some(port) => port,
                None => util::free_port().context("cannot find a free TCP port")?,
            };
            match server.launch(port, run_as, opts.durable) {
                Ok(()) => return Ok(server),
                Err(f) if f.addr_in_use && may_retry => may_retry = false,
                Err(f) => return Err(f.error),
            }
        }
    }

    fn launch(
        &mut self,
        port: u16,
        run_as: Option<Account>,
        durable: bool,
    ) -> Result<(), LaunchFailure> {
        let fail = |error: anyhow::Error| LaunchFailure {
            addr_in_use: false,
            error,
        };
        let (log, log_offset) = util::open_log(&self.log_path)
            .with_context(|| format!("cannot open {}", self.log_path.display()))
            .map_err(fail)?;
        let mut cmd = Command::new(self.bin_dir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-c", &format!("listen_addresses={HOST}")])
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(&self.scratch)
            .args(["-c", "max_connections=300", "-c", "shared_buffers=128MB"]);
        if !durable {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"]);
        }
        let log_err = log.try_clone().map_err(|e| fail(e.into()))?;
        // "/" because our own cwd may be unreadable for the postgres user.
        cmd.current_dir("/")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = keeper::spawn(cmd, run_as)
            .with_context(|| format!("cannot run {}/postgres", self.bin_dir.display()))
            .map_err(fail)?;
        self.port = port;
        self.child = Some(child);

        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.stop();
                let log = util::read_log_since(&self.log_path, log_offset);
                Err(LaunchFailure {
                    addr_in_use: util::mentions_addr_in_use(&log),
                    error: anyhow!(
                        "private postgres on port {port} (data dir {}) failed: {reason}\n{}",
                        self.data_dir.display(),
                        util::log_tail(&self.log_path, log_offset)
                    ),
                })
            }
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let (data_dir, port) = (&self.data_dir, self.port);
        let Some(child) = self.child.as_mut() else {
            return Err("it is not running".into());
        };
        // Only probe the port once our own postmaster says it is ready: with a fixed
        // port somebody else's server may be listening there.
        util::wait_until_ready(
            child,
            READY_TIMEOUT,
            Duration::from_millis(50),
            "accept connections",
            |c| postmaster_ready(data_dir, c.id()) && probe(port),
        )
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: always `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// Connection URL for `database`, as the trusted superuser `hearth`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@{HOST}:{}/{database}", self.port)
    }

    /// Connection URL for the `postgres` maintenance database.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// Directory of the server binaries, so callers can run e.g. `pgbench`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Creates database `name` unless it exists; returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String> {
        // Restricting names keeps both the SQL identifier and the URL path
        // free of quoting and percent-encoding concerns.
        if name.is_empty()
            || name.len() > 63
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            bail!("invalid database name {name:?}: use 1-63 characters from [A-Za-z0-9_-]");
        }
        let admin_url = self.admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("cannot connect to {admin_url}"))?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            // CREATE DATABASE has no IF NOT EXISTS; a concurrent creator is fine.
            match sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await
            {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create database {name}")),
            }
        }
        let _ = conn.close().await;
        Ok(self.url(name))
    }

    /// The two roles a service uses on `database` (creating them if need be):
    /// `<service>_owner`, which owns its schema and migrates it, and `<service>_app`,
    /// which it serves as (granted what it needs by the owner's migration). Returns
    /// their URLs: `(owner, serving)`.
    pub async fn service_roles(&self, database: &str, service: &str) -> Result<(String, String)> {
        if service.is_empty() || !service.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            bail!("invalid service name {service:?}");
        }
        let (owner, app) = (format!("{service}_owner"), format!("{service}_app"));
        let mut conn = sqlx::PgConnection::connect(&self.admin_url()).await?;
        for role in [&owner, &app] {
            // Tests create them at once: whoever loses the race finds them made.
            sqlx::raw_sql(&format!(
                "DO $$ BEGIN
                     IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                         CREATE ROLE {role} LOGIN;
                     END IF;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END $$"
            ))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create role {role}"))?;
        }
        sqlx::raw_sql(&format!(
            "GRANT CONNECT, CREATE ON DATABASE \"{database}\" TO {owner};
             GRANT CONNECT ON DATABASE \"{database}\" TO {app};"
        ))
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot grant {database} to {owner} and {app}"))?;
        let _ = conn.close().await;
        let url = |role: &str| format!("postgres://{role}@{HOST}:{}/{database}", self.port);
        Ok((url(&owner), url(&app)))
    }

    /// Creates a database with a unique name (`t_<uuid>`); returns its URL.
    pub async fn fresh_database(&self) -> Result<String> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        self.create_database(&name).await
    }

    /// Fast shutdown (SIGINT), SIGKILL after 10s. Idempotent; Drop calls it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM would be a "smart" shutdown that waits for every client
            // (e.g. leaked pools) to disconnect.
            util::stop_child(&mut child, libc::SIGINT, STOP_GRACE);
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.scratch);
    }
}

/// One server per test process, started on first use and never stopped:
/// the death signal kills it when the process exits.
///
/// # Panics
/// If the server cannot start; the message says why.
pub fn shared_pg() -> &'static PgServer {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    SHARED.get_or_init(|| {
        PgServer::start(PgOptions::default())
            .unwrap_or_else(|e| panic!("hearth-testkit: cannot start the shared postgres: {e:#}"))
    })
}

/// Postgres refuses to run as root, so root runs it as `postgres`.
fn postgres_account() -> Result<Option<Account>> {
    if !sys::is_root() {
        return Ok(None);
    }
    static ACCOUNT: OnceLock<Option<Account>> = OnceLock::new();
    if let Some(acct) = ACCOUNT.get() {
        return Ok(*acct);
    }
    let acct = sys::lookup_user("postgres").context("cannot look up the `postgres` user")?;
    if acct.is_none() {
        bail!(
            "running as root, but there is no `postgres` system user to run the private \
             postgres as (postgres refuses to run as root); install PostgreSQL with `make deps` \
             or run as a normal user"
        );
    }
    Ok(*ACCOUNT.get_or_init(|| acct))
}

fn prepare_data_dir(dir: &Path, run_as: Option<Account>) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    if let Some(acct) = run_as {
        if let Some(blocker) = util::unreachable_ancestor(&dir, acct) {
            bail!(
                "the postgres user (uid {}) cannot reach data dir {}: {} is not searchable by it; \
                 use a directory it can reach",
                acct.uid,
                dir.display(),
                blocker.display()
            );
        }
        let meta = fs::metadata(&dir)?;
        if meta.uid() != acct.uid || meta.gid() != acct.gid {
            util::chown_tree(&dir, acct)
                .with_context(|| format!("cannot hand {} to the postgres user", dir.display()))?;
        }
    }
    // Postgres refuses data dirs readable by others.
    let mode = fs::metadata(&dir)?.permissions().mode() & 0o777;
    if mode != 0o700 && mode != 0o750 {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot chmod {}", dir.display()))?;
    }
    Ok(dir)
}

fn initdb(bin_dir: &Path, data_dir: &Path, run_as: Option<Account>, durable: bool) -> Result<()> {
    let mut failures = Vec::new();
    // C.UTF-8 is missing on some systems; initdb cleans up after a failure,
    // so retrying with plain C is safe.
    for locale in ["C.UTF-8", "C"] {
        let mut cmd = Command::new(bin_dir.join("initdb"));
        cmd.arg("-D")
            .arg(data_dir)
            .args(["--auth=trust", "--username=hearth", "--encoding=UTF8"])
            .arg(format!("--locale={locale}"));
        if !durable {
            cmd.arg("--no-sync");
        }
        cmd.current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = keeper::spawn(cmd, run_as)
            .and_then(|child| child.wait_with_output())
            .with_context(|| format!("cannot run {}/initdb", bin_dir.display()))?;
        if out.status.success() {
            return Ok(());
        }
        failures.push(format!(
            "--locale={locale}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    bail!(
        "initdb failed for {}:\n{}",
        data_dir.display(),
        failures.join("\n")
    )
}

/// A postmaster.pid left by a killed run makes postgres refuse to start.
fn remove_stale_pid_file(data_dir: &Path) -> Result<()> {
    let pid_file = data_dir.join("postmaster.pid");
    let Ok(text) = fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let pid = text
        .lines()
        .next()
        .and_then(|line| line.trim().parse::<i64>().ok())
        .and_then(|pid| u32::try_from(pid.unsigned_abs()).ok());
    if let Some(pid) = pid.filter(|&pid| util::pid_exists(pid) && is_postgres(pid)) {
        bail!(
            "data dir {} is in use by a running postgres (pid {pid}); stop it first",
            data_dir.display()
        );
    }
    fs::remove_file(&pid_file)
        .with_context(|| format!("cannot remove stale {}", pid_file.display()))
}

/// Whether `postmaster.pid` was written by `pid` and says "ready", i.e. the
/// postmaster bound its port and accepts connections.
fn postmaster_ready(data_dir: &Path, pid: u32) -> bool {
    let Ok(text) = fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines.first() == Some(&pid.to_string().as_str()) && lines.get(7) == Some(&"ready")
}

fn is_postgres(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| matches!(comm.trim(), "postgres" | "postmaster"))
}

/// Whether the server accepts connections. A bare TCP connect is not enough:
/// during startup postgres accepts sockets only to reject them with 57P03.
fn probe(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));

    let mut body = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (key, value) in [("user", USER), ("database", "postgres")] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    if stream.write_all(&message).is_err() {
        return false;
    }

    let mut header = [0u8; 5];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let ready = match header[0] {
        b'R' => true,
        b'E' => {
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut fields = vec![0u8; len.saturating_sub(4).min(64 * 1024)];
            if stream.read_exact(&mut fields).is_err() {
                return false;
            }
            // Any error other than "cannot connect now" means the server is up
            // and the problem lies elsewhere; let the real client report it.
            sqlstate(&fields).is_some_and(|code| code != "57P03")
        }
        _ => false,
    };
    if ready {
        let _ = stream.write_all(&[b'X', 0, 0, 0, 4]);
    }
    ready
}

fn sqlstate(fields: &[u8]) -> Option<&str> {
    fields
        .split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(b"C"))
        .and_then(|code| std::str::from_utf8(code).ok())
}
