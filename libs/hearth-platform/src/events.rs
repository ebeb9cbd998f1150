//! The event envelope every Hearth service shares.
//!
//! Subject grammar: `hearth.<service>.v<major>.<entity>.<verb>`, for example
//! `hearth.referrals.v1.referral.accepted`. `<verb>` is a past-tense fact. The subject
//! is also the CloudEvents `ce-type`. Each service publishes into one JetStream stream
//! named after it in upper case (`REFERRALS`) that captures `hearth.<service>.v1.>`.
//!
//! CloudEvents binary mode over NATS: the payload is the protobuf message named in
//! `docs/EVENTS.md`; attributes travel as headers.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// CloudEvents spec version carried in `ce-specversion`.
pub const CE_SPECVERSION: &str = "1.0";
/// Payload media type.
pub const CONTENT_TYPE: &str = "application/protobuf";

/// Header names, in one place.
pub mod headers {
    pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
    pub const CE_ID: &str = "ce-id";
    pub const CE_TYPE: &str = "ce-type";
    pub const CE_SOURCE: &str = "ce-source";
    pub const CE_SUBJECT: &str = "ce-subject";
    pub const CE_TIME: &str = "ce-time";
    pub const CE_SPECVERSION: &str = "ce-specversion";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const TRACEPARENT: &str = "traceparent";
}

/// The CloudEvents attributes of one event, as NATS headers carry them.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// `ce-id`, also `Nats-Msg-Id` (JetStream drops a repeat within its window).
    pub id: Uuid,
    /// `ce-type`: the event's subject, e.g. `hearth.referrals.v1.referral.accepted`.
    pub ce_type: &'a str,
    /// `ce-source`, e.g. `//hearth/referrals`.
    pub source: &'a str,
    /// `ce-subject`: the resource the event is about.
    pub resource: &'a str,
    /// `ce-time`.
    pub time: DateTime<Utc>,
    pub traceparent: Option<&'a str>,
}

impl Envelope<'_> {
    pub fn headers(&self) -> async_nats::HeaderMap {
        let mut headers = async_nats::HeaderMap::new();
        let id = self.id.to_string();
        headers.insert(headers::NATS_MSG_ID, id.as_str());
        headers.insert(headers::CE_ID, id.as_str());
        headers.insert(headers::CE_SPECVERSION, CE_SPECVERSION);
        headers.insert(headers::CE_TYPE, self.ce_type);
        headers.insert(headers::CE_SOURCE, self.source);
        headers.insert(headers::CE_SUBJECT, self.resource);
        headers.insert(
            headers::CE_TIME,
            self.time
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .as_str(),
        );
        headers.insert(headers::CONTENT_TYPE, CONTENT_TYPE);
        if let Some(tp) = self.traceparent {
            headers.insert(headers::TRACEPARENT, tp);
        }
        headers
    }
}

/// An event as a consumer sees it.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    /// The NATS subject (= `ce-type`).
    pub subject: String,
    pub ce_type: String,
    pub source: String,
    /// `ce-subject`: the resource the event is about.
    pub resource: String,
    pub time: Option<DateTime<Utc>>,
    pub traceparent: Option<String>,
    pub payload: bytes::Bytes,
}

/// Why a message is not a valid Hearth event.
#[derive(Debug, thiserror::Error)]
#[error("malformed event envelope: {0}")]
pub struct EnvelopeError(pub String);

impl Event {
    /// Reads the CloudEvents attributes from a NATS message.
    pub fn from_message(msg: &async_nats::Message) -> Result<Event, EnvelopeError> {
        let hdrs = msg
            .headers
            .as_ref()
            .ok_or_else(|| EnvelopeError("no headers".into()))?;
        let get = |name: &str| hdrs.get(name).map(|v| v.as_str().to_owned());
        let id = get(headers::CE_ID).ok_or_else(|| EnvelopeError("no ce-id".into()))?;
        let id = Uuid::parse_str(&id).map_err(|_| EnvelopeError("ce-id is not a UUID".into()))?;
        let ce_type = get(headers::CE_TYPE).ok_or_else(|| EnvelopeError("no ce-type".into()))?;
        Ok(Event {
            id,
            subject: msg.subject.to_string(),
            ce_type,
            source: get(headers::CE_SOURCE).unwrap_or_default(),
            resource: get(headers::CE_SUBJECT).unwrap_or_default(),
            time: get(headers::CE_TIME)
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
            traceparent: get(headers::TRACEPARENT),
            payload: msg.payload.clone(),
        })
    }
}
