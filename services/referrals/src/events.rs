//! What the referrals service publishes. Subjects follow the platform grammar
//! `hearth.referrals.v1.<entity>.<verb>`; payloads are the messages in
//! `proto/hearth/referrals/v1/events.proto`; docs/EVENTS.md lists the personal data
//! each carries and why. The service consumes no events yet.

use chrono::{DateTime, Utc};
use hearth_platform::outbox::{OutboxEvent, StreamSpec};
use hearth_proto::referrals as pb;
use prost::Message;

use crate::convert;
use crate::domain::{Consent, Contact, Referral, State};

/// The JetStream stream this service owns.
pub const STREAM: &str = "REFERRALS";
/// Every subject the stream captures.
pub const SUBJECTS: &str = "hearth.referrals.v1.>";
/// The CloudEvents source.
pub const SOURCE: &str = "//hearth/referrals";

pub mod subject {
    pub const RECEIVED: &str = "hearth.referrals.v1.referral.received";
    pub const ACCEPTED: &str = "hearth.referrals.v1.referral.accepted";
    pub const SIGNPOSTED: &str = "hearth.referrals.v1.referral.signposted";
    pub const REDIRECTED: &str = "hearth.referrals.v1.referral.redirected";
    pub const DECLINED: &str = "hearth.referrals.v1.referral.declined";
    pub const WITHDRAWN: &str = "hearth.referrals.v1.referral.withdrawn";
    pub const CONTACT_RECORDED: &str = "hearth.referrals.v1.contact.recorded";
    pub const CONSENT_RECORDED: &str = "hearth.referrals.v1.consent.recorded";
    pub const CONSENT_WITHDRAWN: &str = "hearth.referrals.v1.consent.withdrawn";
    pub const FAMILY_LINKED: &str = "hearth.referrals.v1.family.linked";
}

pub fn stream_spec() -> StreamSpec {
    StreamSpec {
        name: STREAM.into(),
        subjects: vec![SUBJECTS.into()],
        duplicate_window: std::time::Duration::from_secs(120),
    }
}

fn event(subject: &str, r: &Referral, payload: impl Message, at: DateTime<Utc>) -> OutboxEvent {
    OutboxEvent::new(
        subject,
        convert::referral_name(r.id),
        payload.encode_to_vec(),
        at,
    )
}

pub fn received(r: &Referral) -> OutboxEvent {
    let msg = pb::ReferralReceived {
        r#ref: Some(convert::reference(r)),
        referral: Some(convert::referral(r, true)),
        occur_time: Some(convert::ts(r.received_at)),
    };
    event(subject::RECEIVED, r, msg, r.received_at)
}

pub fn family_linked(r: &Referral, matched: &[uuid::Uuid], how: pb::LinkMatch) -> OutboxEvent {
    let msg = pb::FamilyLinked {
        r#ref: Some(convert::reference(r)),
        family: convert::family_name(r.family_id),
        matched_members: matched
            .iter()
            .map(|m| convert::member_name(r.family_id, *m))
            .collect(),
        r#match: how as i32,
        occur_time: Some(convert::ts(r.received_at)),
    };
    event(subject::FAMILY_LINKED, r, msg, r.received_at)
}

/// The event for a decision just made.
pub fn decided(r: &Referral) -> OutboxEvent {
    let d = r
        .decision
        .as_ref()
        .expect("decided() is called after a decision");
    let (rf, dec, at) = (
        Some(convert::reference(r)),
        Some(convert::decision(d)),
        Some(convert::ts(d.at)),
    );
    match d.outcome {
        State::Accepted => event(
            subject::ACCEPTED,
            r,
            pb::ReferralAccepted {
                r#ref: rf,
                decision: dec,
                occur_time: at,
            },
            d.at,
        ),
        State::Signposted => event(
            subject::SIGNPOSTED,
            r,
            pb::ReferralSignposted {
                r#ref: rf,
                decision: dec,
                occur_time: at,
            },
            d.at,
        ),
        State::Redirected => event(
            subject::REDIRECTED,
            r,
            pb::ReferralRedirected {
                r#ref: rf,
                decision: dec,
                occur_time: at,
            },
            d.at,
        ),
        State::Declined => event(
            subject::DECLINED,
            r,
            pb::ReferralDeclined {
                r#ref: rf,
                decision: dec,
                occur_time: at,
            },
            d.at,
        ),
        State::Withdrawn => event(
            subject::WITHDRAWN,
            r,
            pb::ReferralWithdrawn {
                r#ref: rf,
                decision: dec,
                occur_time: at,
            },
            d.at,
        ),
        State::Received | State::Unspecified => unreachable!("not a decision"),
    }
}

pub fn contact_recorded(r: &Referral, c: &Contact, first: bool, now: DateTime<Utc>) -> OutboxEvent {
    let msg = pb::ContactRecorded {
        r#ref: Some(convert::reference(r)),
        contact: convert::contact_name(r.id, c.id),
        method: c.method as i32,
        contact_time: Some(convert::ts(c.at)),
        successful: c.successful,
        first_contact: first,
        occur_time: Some(convert::ts(now)),
    };
    event(subject::CONTACT_RECORDED, r, msg, now)
}

pub fn consent_recorded(r: &Referral, c: &Consent, now: DateTime<Utc>) -> OutboxEvent {
    let msg = pb::ConsentRecorded {
        r#ref: Some(convert::reference(r)),
        consent: Some(convert::consent(r.id, c)),
        occur_time: Some(convert::ts(now)),
    };
    event(subject::CONSENT_RECORDED, r, msg, now)
}

pub fn consent_withdrawn(r: &Referral, c: &Consent, now: DateTime<Utc>) -> OutboxEvent {
    let msg = pb::ConsentWithdrawn {
        r#ref: Some(convert::reference(r)),
        consent: convert::consent_name(r.id, c.id),
        scopes: c.scopes.iter().map(|s| *s as i32).collect(),
        withdraw_time: c.withdrawn_at.map(convert::ts),
        occur_time: Some(convert::ts(now)),
    };
    event(subject::CONSENT_WITHDRAWN, r, msg, now)
}
