//! What `make run` prints once the stack is ready: where things live, the ports, and
//! commands that work as printed (buf curl through server reflection, with literal
//! tokens, and with `--mtls` the client certificate of the token's organisation),
//! plus `.hearth/dev.env` with the same tokens for scripts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{SecondsFormat, Utc};
use hearth_proto::referrals::State;

use crate::demo::{self, AREA, Facts, Tokens};
use crate::keys;
use crate::paths::Layout;
use crate::run::RunOptions;
use crate::tls::DevTls;

/// Everything the banner shows.
pub struct View<'a> {
    pub layout: &'a Layout,
    pub opts: RunOptions,
    pub pg_dir: &'a Path,
    pub database_url: &'a str,
    /// The referrals service's serving role on that database.
    pub serving_url: &'a str,
    pub nats_url: &'a str,
    pub facts: &'a Facts,
    pub tokens: &'a Tokens,
    /// The run's development PKI, with `--mtls`.
    pub tls: Option<&'a DevTls>,
    /// This binary, for the `hearth-dev token` hint.
    pub hearth_dev: Option<PathBuf>,
}

const BUF: &str = ".tools/node_modules/.bin/buf";
const SERVICE: &str = "hearth.referrals.v1.ReferralsService";
const SCHOOL: &str = "newbattle-high-school";

/// Tokens written to dev.env: variable, organisation, what it is for.
const ENV_TOKENS: &[(&str, &str, &str)] = &[
    ("HEARTH_TRIAGE_TOKEN", AREA, "front-door triage"),
    ("HEARTH_SCHOOL_TOKEN", SCHOOL, "referrer"),
    ("HEARTH_HEALTH_VISITOR_TOKEN", "nhs-lothian", "referrer"),
    ("HEARTH_YOT_TOKEN", "midlothian-yot", "referrer"),
];

/// How a printed command reaches the service: plaintext (`http://`), or over mutual
/// TLS (`https://`) trusting the development CA and presenting an organisation's
/// client certificate.
#[derive(Clone, Copy)]
struct Dial<'a> {
    port: u16,
    tls: Option<&'a DevTls>,
    layout: &'a Layout,
    /// A schema file, for a port without reflection.
    schema: Option<&'a Path>,
}

impl Dial<'_> {
    /// `buf curl` and its connection flags, as `org` (whose certificate it presents).
    fn curl(&self, org: &str) -> Result<String> {
        let l = self.layout;
        let schema = self
            .schema
            .map(|s| format!(" --schema {}", l.relative(s)))
            .unwrap_or_default();
        let Some(tls) = self.tls else {
            return Ok(format!(
                "{BUF} curl{schema} --protocol grpc --http2-prior-knowledge"
            ));
        };
        let (cert, key) = tls.client_files(org)?;
        Ok(format!(
            "{BUF} curl{schema} --protocol grpc \\\n  --cacert {} --cert {} --key {}",
            l.relative(&tls.ca),
            l.relative(cert),
            l.relative(key)
        ))
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

/// A `buf curl` command as `org`: optional token, optional JSON body, then the URL.
fn buf_curl(
    dial: &Dial<'_>,
    org: &str,
    token: Option<&str>,
    body: Option<&str>,
    method: &str,
) -> Result<String> {
    let mut cmd = dial.curl(org)?;
    if let Some(token) = token {
        let _ = write!(cmd, " \\\n  -H \"Authorization: Bearer {token}\"");
    }
    if let Some(body) = body {
        let _ = write!(cmd, " \\\n  -d '{body}'");
    }
    let _ = write!(cmd, " \\\n  {}/{method}", dial.url());
    Ok(cmd)
}

/// JSON that pastes safely inside single quotes.
fn quoted_json(value: &serde_json::Value) -> String {
    value.to_string().replace('\'', "\\u0027")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The ready banner.
pub fn render(v: &View<'_>) -> Result<String> {
    let port = v.opts.grpc_port;
    let l = v.layout;
    let dial = Dial {
        port,
        tls: v.tls,
        layout: l,
        schema: None,
    };
    // Probes' way in: with mTLS, the plaintext health-only port, which serves no
    // reflection.
    let health = match v.tls {
        Some(tls) => Dial {
            port: v.opts.health_port,
            tls: None,
            layout: l,
            schema: Some(&tls.health_schema),
        },
        None => dial,
    };
    let f = v.facts;
    let triage = v.tokens.token(AREA)?;
    let school = v.tokens.token(SCHOOL)?;
    let mut out = String::new();
    let w = &mut out;

    let _ = writeln!(w, "\nHearth is running. Ctrl-C stops everything.\n");
    let _ = writeln!(w, "  data       {}/", l.relative(&l.data));
    let _ = writeln!(
        w,
        "  postgres   {}  (data {})",
        v.database_url,
        l.relative(v.pg_dir)
    );
    let _ = writeln!(w, "  nats       {}", v.nats_url);
    match v.tls {
        None => {
            let _ = writeln!(
                w,
                "  referrals  grpc://127.0.0.1:{port}  (health, reflection; log {})",
                l.relative(&l.referrals_log)
            );
        }
        Some(tls) => {
            let _ = writeln!(
                w,
                "  referrals  {}  (mutual TLS: TLS 1.2/1.3, a client certificate from the \
                 development CA; log {})",
                dial.url(),
                l.relative(&l.referrals_log)
            );
            let _ = writeln!(
                w,
                "             {}  (health only, plaintext, for probes)",
                health.url()
            );
            let _ = writeln!(
                w,
                "  tls        {}/  ca.pem, server.pem, clients/<organisation>.pem and .key \
                 (made anew each run)",
                l.relative(&tls.dir)
            );
        }
    }
    let news = match f.created {
        0 => "already loaded, nothing new".to_owned(),
        n if n == f.total => "loaded now".to_owned(),
        n => format!("{n} created now"),
    };
    let _ = writeln!(
        w,
        "  demo       {} referrals to area `{AREA}` ({news})",
        f.total
    );
    let _ = writeln!(
        w,
        "  tokens     12-hour tokens in {} (`source {0}`); more with:",
        l.relative(&l.dev_env)
    );
    let hearth_dev = v
        .hearth_dev
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "hearth-dev".into());
    let _ = writeln!(
        w,
        "             {hearth_dev} token --org {SCHOOL} --roles referrer"
    );

    if !l.root.join(BUF).is_file() {
        let _ = writeln!(
            w,
            "\n(buf is not installed: run `bash scripts/ensure-deps.sh --with-buf`, \
             which `make run` does for you.)"
        );
    }
    let _ = writeln!(w, "\nPaste from {}:\n", l.root.display());

    let _ = writeln!(
        w,
        "{}",
        if v.tls.is_some() {
            "# Health, as a probe asks it: the plaintext port (no certificate, no token; it \
             serves health alone, without reflection, so the schema comes from a file)"
        } else {
            "# Health (no token needed)"
        }
    );
    let body = format!("{{\"service\":\"{SERVICE}\"}}");
    let check = buf_curl(
        &health,
        AREA,
        None,
        Some(&body),
        "grpc.health.v1.Health/Check",
    )?;
    let _ = writeln!(w, "{check}\n");

    let _ = writeln!(w, "# Every method, through server reflection");
    let _ = writeln!(
        w,
        "{} \\\n  --list-methods {}\n",
        dial.curl(AREA)?,
        dial.url()
    );

    let _ = writeln!(w, "# Referrals waiting for triage, as {AREA} triage");
    let list_body = r#"{"filter":"state = RECEIVED"}"#;
    let _ = writeln!(
        w,
        "{}\n",
        buf_curl(
            &dial,
            AREA,
            Some(triage),
            Some(list_body),
            &format!("{SERVICE}/ListReferrals")
        )?
    );

    let _ = writeln!(
        w,
        "# One referral (health visitor: sleep and low mood; contacted and accepted)"
    );
    let body = serde_json::json!({ "name": f.example_referral });
    let _ = writeln!(
        w,
        "{}\n",
        buf_curl(
            &dial,
            AREA,
            Some(triage),
            Some(&quoted_json(&body)),
            &format!("{SERVICE}/GetReferral")
        )?
    );

    let linked = if f.linked {
        "a GP's referral for the same baby was linked into it"
    } else {
        "note: the GP's referral did not come back linked"
    };
    let _ = writeln!(w, "# The Brown family ({linked})");
    let body = serde_json::json!({ "name": f.linked_family });
    let _ = writeln!(
        w,
        "{}\n",
        buf_curl(
            &dial,
            AREA,
            Some(triage),
            Some(&quoted_json(&body)),
            &format!("{SERVICE}/GetFamily")
        )?
    );

    let _ = writeln!(
        w,
        "# A new referral from the school (pasting it again returns the same referral: same request_id)"
    );
    let body = demo::school_create_body(&uuid::Uuid::new_v4().to_string(), Utc::now());
    let _ = writeln!(
        w,
        "{}\n",
        buf_curl(
            &dial,
            SCHOOL,
            Some(school),
            Some(&body),
            &format!("{SERVICE}/CreateReferral")
        )?
    );

    let state = f.accept_candidate_state;
    let note = if state == State::Received {
        "it has assessment consent and is still RECEIVED".to_owned()
    } else {
        format!(
            "now {}: this replays if it was decided by this command, else FAILED_PRECONDITION; \
             `make clean-data` resets the demo",
            state.as_str_name()
        )
    };
    let _ = writeln!(
        w,
        "# Accept a referral as triage: {} ({note})",
        f.accept_candidate_what
    );
    let body = serde_json::json!({
        "name": f.accept_candidate,
        "requestId": f.accept_request_id,
        "reason": "Assessment consent recorded; allocated to the family support team.",
    });
    let _ = writeln!(
        w,
        "{}",
        buf_curl(
            &dial,
            AREA,
            Some(triage),
            Some(&quoted_json(&body)),
            &format!("{SERVICE}/AcceptReferral")
        )?
    );

    let _ = writeln!(
        w,
        "\n# Who has seen the Brown family's records, when and why, as Midlothian's data \
         protection officer\n# (every read and change of personal data is in the audit log; \
         see README, \"Audit and access\")"
    );
    let body = serde_json::json!({ "family": f.linked_family });
    let _ = writeln!(
        w,
        "{}",
        buf_curl(
            &dial,
            AREA,
            Some(v.tokens.dpo()),
            Some(&quoted_json(&body)),
            "hearth.access.v1.AccessService/ListFamilyAccess"
        )?
    );

    if v.tls.is_none() && on_path("grpcurl") {
        let _ = writeln!(w, "\n# The same list with grpcurl");
        let _ = writeln!(
            w,
            "grpcurl -plaintext -H \"authorization: Bearer {triage}\" \\\n  -d '{list_body}' \\\n  127.0.0.1:{port} {SERVICE}/ListReferrals"
        );
    }
    Ok(out)
}

/// Writes `.hearth/dev.env` (mode 0600: it holds tokens).
pub fn write_dev_env(v: &View<'_>) -> Result<()> {
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(keys::DEFAULT_TTL).unwrap_or_default();
    let mut text = format!(
        "# Written by `hearth-dev run` at {}; the tokens expire at {}.\n\
         # Use: source {}\n",
        now.to_rfc3339_opts(SecondsFormat::Secs, true),
        expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        v.layout.relative(&v.layout.dev_env),
    );
    match v.tls {
        None => {
            let _ = writeln!(
                text,
                "export HEARTH_GRPC_URL=http://127.0.0.1:{}",
                v.opts.grpc_port
            );
        }
        Some(tls) => {
            // Mutual TLS: buf curl --cacert "$HEARTH_DEV_TLS_CA" --cert "$HEARTH_DEV_TLS_DIR/clients/ORG.pem" …
            let _ = writeln!(
                text,
                "export HEARTH_GRPC_URL=https://127.0.0.1:{}",
                v.opts.grpc_port
            );
            let _ = writeln!(
                text,
                "export HEARTH_HEALTH_URL=http://127.0.0.1:{}",
                v.opts.health_port
            );
            let _ = writeln!(text, "export HEARTH_DEV_TLS_DIR={}", tls.dir.display());
            let _ = writeln!(text, "export HEARTH_DEV_TLS_CA={}", tls.ca.display());
        }
    }
    let _ = writeln!(
        text,
        "export HEARTH_BUF={}",
        v.layout.root.join(BUF).display()
    );
    let _ = writeln!(text, "export HEARTH_DEV_PG_URL={}", v.database_url);
    let _ = writeln!(text, "export HEARTH_DEV_NATS_URL={}", v.nats_url);
    for (var, org, what) in ENV_TOKENS {
        let _ = writeln!(
            text,
            "export {var}={}  # {org}: {what}",
            v.tokens.token(org)?
        );
    }
    let _ = writeln!(
        text,
        "export HEARTH_DPO_TOKEN={}  # {AREA}: data protection officer",
        v.tokens.dpo()
    );
    // What `make verify-audit` needs: the serving role and the seal key's file.
    let _ = writeln!(text, "export HEARTH_DEV_REFERRALS_DB_URL={}", v.serving_url);
    let _ = writeln!(
        text,
        "export HEARTH_DEV_AUDIT_SEAL_KEY_FILE={}",
        v.layout.keys_dir.join("audit-seal.key").display()
    );
    keys::write_file(&v.layout.dev_env, &text, 0o600)
}
