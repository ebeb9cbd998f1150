//! What `make run` prints once the stack is ready: where things live, the ports, and
//! commands that work as printed (buf curl through server reflection, with literal
//! tokens), plus `.hearth/dev.env` with the same tokens for scripts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{SecondsFormat, Utc};
use hearth_proto::referrals::State;

use crate::demo::{self, AREA, Facts, Tokens};
use crate::keys;
use crate::paths::Layout;
use crate::run::RunOptions;

/// Everything the banner shows.
pub struct View<'a> {
    pub layout: &'a Layout,
    pub opts: RunOptions,
    pub pg_dir: &'a Path,
    pub database_url: &'a str,
    pub nats_url: &'a str,
    pub facts: &'a Facts,
    pub tokens: &'a Tokens,
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

/// A `buf curl` command: optional token, optional JSON body, then the URL.
fn buf_curl(port: u16, token: Option<&str>, body: Option<&str>, method: &str) -> String {
    let mut cmd = format!("{BUF} curl --protocol grpc --http2-prior-knowledge");
    if let Some(token) = token {
        let _ = write!(cmd, " \\\n  -H \"Authorization: Bearer {token}\"");
    }
    if let Some(body) = body {
        let _ = write!(cmd, " \\\n  -d '{body}'");
    }
    let _ = write!(cmd, " \\\n  http://127.0.0.1:{port}/{method}");
    cmd
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
    let _ = writeln!(
        w,
        "  referrals  grpc://127.0.0.1:{port}  (health, reflection; log {})",
        l.relative(&l.referrals_log)
    );
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

    let _ = writeln!(w, "# Health (no token needed)");
    let body = format!("{{\"service\":\"{SERVICE}\"}}");
    let _ = writeln!(
        w,
        "{}\n",
        buf_curl(port, None, Some(&body), "grpc.health.v1.Health/Check")
    );

    let _ = writeln!(w, "# Every method, through server reflection");
    let _ = writeln!(
        w,
        "{BUF} curl --protocol grpc --http2-prior-knowledge --list-methods http://127.0.0.1:{port}\n"
    );

    let _ = writeln!(w, "# Referrals waiting for triage, as {AREA} triage");
    let list_body = r#"{"filter":"state = RECEIVED"}"#;
    let _ = writeln!(
        w,
        "{}\n",
        buf_curl(
            port,
            Some(triage),
            Some(list_body),
            &format!("{SERVICE}/ListReferrals")
        )
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
            port,
            Some(triage),
            Some(&quoted_json(&body)),
            &format!("{SERVICE}/GetReferral")
        )
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
            port,
            Some(triage),
            Some(&quoted_json(&body)),
            &format!("{SERVICE}/GetFamily")
        )
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
            port,
            Some(school),
            Some(&body),
            &format!("{SERVICE}/CreateReferral")
        )
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
            port,
            Some(triage),
            Some(&quoted_json(&body)),
            &format!("{SERVICE}/AcceptReferral")
        )
    );

    if on_path("grpcurl") {
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
    let _ = writeln!(
        text,
        "export HEARTH_GRPC_URL=http://127.0.0.1:{}",
        v.opts.grpc_port
    );
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
    keys::write_file(&v.layout.dev_env, &text, 0o600)
}
