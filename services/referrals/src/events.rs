//! What the referrals service publishes: one builder per event. The stream, subjects
//! and payload types come from the contract (`hearth_proto::events::referrals`,
//! generated from `proto/hearth/referrals/v1/events.proto`); docs/EVENTS.md lists the
//! personal data each carries and why. The service consumes no events yet.

use chrono::{DateTime, Utc};
use hearth_platform::outbox::OutboxEvent;
use hearth_proto::events::EventType;
use hearth_proto::events::referrals as subject;
use hearth_proto::referrals as pb;
use prost::Message;

use crate::convert;
use crate::domain::{Consent, Contact, Corrected, CorrectionReason, Referral, State};

fn event<M: Message>(
    kind: EventType<M>,
    r: &Referral,
    payload: M,
    at: DateTime<Utc>,
) -> OutboxEvent {
    OutboxEvent::new(
        kind.subject,
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
    event(subject::REFERRAL_RECEIVED, r, msg, r.received_at)
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
            subject::REFERRAL_ACCEPTED,
            r,
            pb::ReferralAccepted {
                r#ref: rf,
                decision: dec,
                occur_time: at,
            },
            d.at,
        ),
        State::Signposted => event(
            subject::REFERRAL_SIGNPOSTED,
            r,
            pb::ReferralSignposted {
                r#ref: rf,
                decision: dec,
                occur_time: at,
            },
            d.at,
        ),
        State::Redirected => event(
            subject::REFERRAL_REDIRECTED,
            r,
            pb::ReferralRedirected {
                r#ref: rf,
                decision: dec,
                occur_time: at,
            },
            d.at,
        ),
        State::Declined => event(
            subject::REFERRAL_DECLINED,
            r,
            pb::ReferralDeclined {
                r#ref: rf,
                decision: dec,
                occur_time: at,
            },
            d.at,
        ),
        State::Withdrawn => event(
            subject::REFERRAL_WITHDRAWN,
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
        consent: Some(convert::consent(r.id, r.family_id, c)),
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
        members: convert::member_names(r.family_id, &c.members),
    };
    event(subject::CONSENT_WITHDRAWN, r, msg, now)
}

/// The order recorded on `r` (at create for a court-ordered referral, or later).
pub fn parenting_order_recorded(r: &Referral, replaced: bool, now: DateTime<Utc>) -> OutboxEvent {
    let msg = pb::ParentingOrderRecorded {
        r#ref: Some(convert::reference(r)),
        parenting_order: r
            .order
            .as_ref()
            .map(|o| convert::parenting_order(r.family_id, o)),
        replaced,
        occur_time: Some(convert::ts(now)),
    };
    event(subject::PARENTING_ORDER_RECORDED, r, msg, now)
}

/// A correction to the family's details on `r`: the corrected parts whole.
pub fn family_corrected(
    r: &Referral,
    c: &Corrected,
    reason: CorrectionReason,
    now: DateTime<Utc>,
) -> OutboxEvent {
    let has = |path: &str| c.paths.contains(&path);
    let people = has("family.children") || has("family.adults");
    let msg = pb::FamilyCorrected {
        r#ref: Some(convert::reference(r)),
        update_mask: Some(prost_types::FieldMask {
            paths: c.paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        family: people.then(|| convert::family_details(r)),
        address_lines: if has("address_lines") {
            r.address_lines.clone()
        } else {
            vec![]
        },
        postcode: if has("postcode") {
            r.postcode.clone()
        } else {
            String::new()
        },
        engagement_note: if has("engagement_note") {
            r.engagement_note.clone()
        } else {
            String::new()
        },
        access_needs: has("access_needs").then(|| convert::access_needs(&r.access)),
        changed_members: convert::member_names(r.family_id, &c.changed_members),
        added_members: convert::member_names(r.family_id, &c.added_members),
        reason: reason as i32,
        occur_time: Some(convert::ts(now)),
    };
    event(subject::FAMILY_CORRECTED, r, msg, now)
}
