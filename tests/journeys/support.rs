//! Starting service binaries as processes, as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hearth_platform::auth::{KeyPair, TokenIssuer};
use hearth_proto::referrals as pb;
use hearth_testkit::{NatsOptions, NatsServer};
use tonic::transport::Channel;

/// A service binary built by this workspace, next to the test executable's directory.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/journeys-… → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is not built; run the whole workspace's tests (`make test`) or `cargo build -p {name}` first",
        bin.display()
    );
    bin
}

/// A running service process; SIGKILLed if the test drops it without stopping it.
pub struct Service {
    pub child: Child,
    pub log: PathBuf,
    pub channel: Channel,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Keys {
    pub issuer: TokenIssuer,
    pub public_key_file: PathBuf,
}

pub fn keys(dir: &Path) -> Keys {
    let kp = KeyPair::generate();
    let public_key_file = dir.join("journey.pub.pem");
    std::fs::write(&public_key_file, kp.public_pem).unwrap();
    Keys {
        issuer: TokenIssuer::from_private_pem(
            "journey",
            &kp.private_pem,
            "hearth-journey",
            "hearth",
        )
        .unwrap(),
        public_key_file,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Service {
    /// Starts `name` with the given environment and waits for it to report SERVING.
    pub async fn start(
        name: &str,
        health_name: &str,
        env: &[(&str, String)],
        dir: &Path,
    ) -> Service {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary(name))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HEARTH_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "RUST_LOG",
                "debug,h2=info,hyper=info,tower=info,sqlx=warn,async_nats=info",
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start the service binary");
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_lazy();
        let svc = Service {
            child,
            log,
            channel,
        };
        svc.wait_serving(health_name).await;
        svc
    }

    async fn wait_serving(&self, health_name: &str) {
        use tonic_health::pb::health_check_response::ServingStatus;
        let mut client = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let req = tonic_health::pb::HealthCheckRequest {
                service: health_name.into(),
            };
            if let Ok(r) = client.check(req).await
                && r.into_inner().status == ServingStatus::Serving as i32
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{health_name} never became SERVING; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.exited().await
    }

    /// Sends SIGTERM, as an operator's `kill` or Kubernetes would.
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// Waits (up to 20 s) for the process to exit.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The referrals binary running against a fresh database on the shared private
/// Postgres and a private NATS, trusting `keys`. Its scratch folder (keys, log) is
/// removed when it is dropped.
pub struct Referrals {
    pub svc: Service,
    pub keys: Keys,
    pub db_url: String,
    pub nats: NatsServer,
    dir: PathBuf,
}

impl Referrals {
    /// Starts it with these settings on top of the connection and key settings.
    pub async fn start(extra: &[(&str, String)]) -> Referrals {
        let dir = std::env::temp_dir().join(format!("hearth-journey-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db_url = hearth_testkit::shared_pg().fresh_database().await.unwrap();
        let nats = NatsServer::start(NatsOptions::default()).unwrap();
        let keys = keys(&dir);
        let mut env = vec![
            ("HEARTH_DATABASE_URL", db_url.clone()),
            ("HEARTH_NATS_URL", nats.url()),
            ("HEARTH_AUTH_ISSUER", "hearth-journey".to_owned()),
            ("HEARTH_AUTH_AUDIENCE", "hearth".to_owned()),
            (
                "HEARTH_AUTH_PUBLIC_KEYS",
                keys.public_key_file.display().to_string(),
            ),
        ];
        env.extend(extra.iter().cloned());
        let svc = Service::start(
            "referrals",
            "hearth.referrals.v1.ReferralsService",
            &env,
            &dir,
        )
        .await;
        Referrals {
            svc,
            keys,
            db_url,
            nats,
            dir,
        }
    }
}

impl Drop for Referrals {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `msg` with `token` as its bearer token.
pub fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

/// A health visitor's referral of one child (`nhs` may be empty) to Midlothian.
pub fn referral(child: &str, nhs: &str) -> pb::Referral {
    pb::Referral {
        receiving_area: "midlothian".into(),
        referrer: Some(pb::Referrer {
            display_name: "Morag Baird".into(),
            job_title: "Health visitor".into(),
            contact: String::new(),
        }),
        source: pb::Source::HealthVisitor as i32,
        family: Some(pb::FamilyDetails {
            children: vec![pb::Child {
                given_name: child.into(),
                family_name: "Lindqvist".into(),
                date_of_birth: Some(hearth_proto::types::Date {
                    year: 2022,
                    month: 5,
                    day: 17,
                }),
                nhs_number: nhs.into(),
                ..Default::default()
            }],
            adults: vec![],
        }),
        reasons: vec![pb::Reason::ChildBehaviour as i32],
        urgency: pb::Urgency::Routine as i32,
        postcode: "EH19 2QT".into(),
        consents: vec![pb::Consent {
            given_by: "Elin Lindqvist".into(),
            given_by_role: pb::ParentingRole::Mother as i32,
            give_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            scopes: vec![pb::ConsentScope::Assessment as i32],
            ..Default::default()
        }],
        route: pb::Route::Voluntary as i32,
        ..Default::default()
    }
}
