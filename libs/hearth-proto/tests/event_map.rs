//! The event map stays one whole: every event subject any contract mentions is defined
//! by its publisher's contract, and `docs/EVENTS.md` and `docs/asyncapi.yaml` describe
//! exactly the subjects the contracts define.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const SERVICES: [&str; 4] = ["referrals", "assessments", "delivery", "evaluation"];

/// The checkout under test (read at run time: a test binary built in another
/// checkout that shares the target directory must not read that one's files).
fn root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    Path::new(&manifest_dir).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `hearth.<service>.v1.<entity>.<verb>`, or `hearth.evaluation.v1.feed.<entity>.<verb>`
/// for the analyst feed; lower-case words and underscores only (no wildcards).
fn is_subject(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let words = |p: &[&str]| {
        p.iter()
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    };
    match parts.as_slice() {
        ["hearth", "evaluation", "v1", "feed", rest @ ..] => rest.len() == 2 && words(rest),
        ["hearth", service, "v1", rest @ ..] => {
            SERVICES.contains(service) && rest.len() == 2 && words(rest)
        }
        _ => false,
    }
}

/// Every subject quoted in backticks in `text`.
fn quoted_subjects(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| is_subject(s))
        .map(str::to_owned)
        .collect()
}

/// The contract that publishes `subject`.
fn publisher_file(subject: &str) -> String {
    if subject.starts_with("hearth.evaluation.v1.feed.") {
        return "proto/hearth/evaluation/v1/feed.proto".into();
    }
    let service = subject.split('.').nth(1).expect("checked by is_subject");
    format!("proto/hearth/{service}/v1/events.proto")
}

fn contract_files() -> Vec<String> {
    let mut files: Vec<String> = SERVICES
        .iter()
        .map(|s| format!("proto/hearth/{s}/v1/events.proto"))
        .collect();
    files.push("proto/hearth/evaluation/v1/feed.proto".into());
    files
}

/// Subjects each publisher's contract defines: an event message's comment opens with
/// its subject in backticks.
fn defined_subjects() -> BTreeSet<String> {
    let mut defined = BTreeSet::new();
    for file in contract_files() {
        let text = read(&file);
        for s in quoted_subjects(&text) {
            if publisher_file(&s) == file {
                defined.insert(s);
            }
        }
    }
    defined
}

#[test]
fn every_subject_a_contract_mentions_is_defined_by_its_publisher() {
    let defined = defined_subjects();
    assert!(defined.len() > 60, "only {} subjects found", defined.len());
    let mut undefined = Vec::new();
    for file in std::fs::read_dir(root().join("proto/hearth"))
        .expect("proto/hearth")
        .flat_map(|d| std::fs::read_dir(d.expect("entry").path().join("v1")).into_iter())
        .flatten()
    {
        let path = file.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("proto");
        for s in quoted_subjects(&text) {
            if !defined.contains(&s) {
                undefined.push(format!("{} mentions {s}", path.display()));
            }
        }
    }
    assert!(
        undefined.is_empty(),
        "subjects no publisher defines:\n{}",
        undefined.join("\n")
    );
}

#[test]
fn the_event_docs_describe_exactly_the_defined_subjects() {
    let defined = defined_subjects();
    let events_md = read("docs/EVENTS.md");
    let documented = quoted_subjects(&events_md);
    let missing: Vec<_> = defined.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&defined).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/EVENTS.md: missing {missing:?}; not in any contract {stale:?}"
    );
    let asyncapi = read("docs/asyncapi.yaml");
    let absent: Vec<_> = defined
        .iter()
        .filter(|s| !asyncapi.contains(s.as_str()))
        .collect();
    assert!(absent.is_empty(), "docs/asyncapi.yaml lacks {absent:?}");
}

#[test]
fn subject_shapes() {
    assert!(is_subject("hearth.referrals.v1.referral.accepted"));
    assert!(is_subject("hearth.delivery.v1.order_notice.issued"));
    assert!(is_subject("hearth.evaluation.v1.feed.enrolment.changed"));
    assert!(!is_subject(
        "hearth.evaluation.v1.feed.enrolment.changed.some-area"
    ));
    assert!(!is_subject("hearth.referrals.v1.>"));
    assert!(!is_subject("hearth.type.v1.date.made"));
    assert!(!is_subject("hearth.referrals.v1.referral"));
}

#[test]
fn the_generated_catalogue_holds_exactly_the_defined_subjects() {
    let generated: BTreeSet<String> = hearth_proto::events::STREAMS
        .iter()
        .flat_map(|s| {
            let events: &[(&str, &str)] = match s.name {
                "REFERRALS" => hearth_proto::events::referrals::EVENTS,
                "ASSESSMENTS" => hearth_proto::events::assessments::EVENTS,
                "DELIVERY" => hearth_proto::events::delivery::EVENTS,
                "EVALUATION" => hearth_proto::events::evaluation::EVENTS,
                "ANALYTICS" => hearth_proto::events::analytics::EVENTS,
                other => panic!("unexpected stream {other}"),
            };
            events.iter().map(|(subject, _)| (*subject).to_owned())
        })
        .collect();
    assert_eq!(generated, defined_subjects());
}
