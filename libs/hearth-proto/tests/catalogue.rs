//! The generated event catalogue (`hearth_proto::events`) against the contracts: every
//! subject a publisher's contract defines is in it once, with the message its comment
//! sits on, and the streams never overlap.

use std::collections::BTreeSet;

use hearth_proto::events::{self, STREAMS};

fn catalogue() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    for (stream, events) in [
        (events::referrals::STREAM, events::referrals::EVENTS),
        (events::assessments::STREAM, events::assessments::EVENTS),
        (events::delivery::STREAM, events::delivery::EVENTS),
        (events::evaluation::STREAM, events::evaluation::EVENTS),
        (events::analytics::STREAM, events::analytics::EVENTS),
    ] {
        for (subject, message) in events {
            out.push((stream.name, *subject, *message));
        }
    }
    out
}

#[test]
fn every_stream_of_every_contract_is_listed() {
    let names: BTreeSet<&str> = STREAMS.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "ANALYTICS",
            "ASSESSMENTS",
            "DELIVERY",
            "EVALUATION",
            "REFERRALS"
        ])
    );
}

#[test]
fn each_stream_captures_its_own_subjects_and_no_other_streams() {
    for (stream, subject, _) in catalogue() {
        let capturing: Vec<&str> = STREAMS
            .iter()
            .filter(|s| s.captures(subject))
            .map(|s| s.name)
            .collect();
        assert_eq!(capturing, [stream], "{subject}");
    }
}

#[test]
fn every_subject_names_a_message_of_its_own_package() {
    let pool = prost_reflect::DescriptorPool::decode(hearth_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut seen = BTreeSet::new();
    for (_, subject, message) in catalogue() {
        assert!(seen.insert(subject), "{subject} twice");
        let desc = pool
            .get_message_by_name(message)
            .unwrap_or_else(|| panic!("{message} is not in the descriptor set"));
        let service = subject.split('.').nth(1).unwrap();
        assert_eq!(desc.package_name(), format!("hearth.{service}.v1"));
    }
    assert!(seen.len() > 60, "only {} subjects", seen.len());
}

#[test]
fn typed_constants_decode_their_own_message() {
    use prost::Message;
    let ev = events::referrals::REFERRAL_ACCEPTED;
    assert_eq!(ev.subject, "hearth.referrals.v1.referral.accepted");
    assert_eq!(ev.message, "hearth.referrals.v1.ReferralAccepted");
    let msg = hearth_proto::referrals::ReferralAccepted {
        r#ref: Some(hearth_proto::referrals::ReferralRef {
            referral: "referrals/x".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let back = ev.decode(&msg.encode_to_vec()).unwrap();
    assert_eq!(back, msg);
    assert!(ev.is("hearth.referrals.v1.referral.accepted"));
    assert!(!ev.is("hearth.referrals.v1.referral.accepted_later"));
    assert!(!ev.is("hearth.referrals.v1.referral"));
}
