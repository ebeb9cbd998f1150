//! Hearth's contracts: the gRPC services and event messages generated from `proto/`.
//!
//! One module per protobuf package; `FILE_DESCRIPTOR_SET` feeds server reflection so
//! that `grpcurl` and `buf curl` work with no local proto files.

/// The encoded `FileDescriptorSet` of every Hearth proto file.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hearth_descriptor.bin"));

// Generated code: its doc comments are the proto comments, written as Markdown for
// proto readers, and its shapes follow the contracts, so style lints do not apply.
#[allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]
pub mod hearth {
    pub mod r#type {
        pub mod v1 {
            tonic::include_proto!("hearth.r#type.v1");
        }
    }
    pub mod referrals {
        pub mod v1 {
            tonic::include_proto!("hearth.referrals.v1");
        }
    }
    pub mod assessments {
        pub mod v1 {
            tonic::include_proto!("hearth.assessments.v1");
        }
    }
    pub mod delivery {
        pub mod v1 {
            tonic::include_proto!("hearth.delivery.v1");
        }
    }
    pub mod evaluation {
        pub mod v1 {
            tonic::include_proto!("hearth.evaluation.v1");
        }
    }
    pub mod access {
        pub mod v1 {
            tonic::include_proto!("hearth.access.v1");
        }
    }
}

/// The names of a protobuf enum's values (`SOURCE_SCHOOL`), for code that stores or
/// parses enums by name whatever the enum. Implemented for every Hearth enum.
pub trait EnumName: Sized + Copy + Default + 'static {
    /// The value's name in the contract, e.g. `STATE_RECEIVED`.
    fn name(self) -> &'static str;
    /// The value with this name, if the contract defines one.
    fn from_name(name: &str) -> Option<Self>;
}

include!(concat!(env!("OUT_DIR"), "/enum_names.rs"));

pub use hearth::access::v1 as access;
pub use hearth::assessments::v1 as assessments;
pub use hearth::delivery::v1 as delivery;
pub use hearth::evaluation::v1 as evaluation;
pub use hearth::referrals::v1 as referrals;
pub use hearth::r#type::v1 as types;

/// Every JetStream stream, event subject and the message each subject carries, for
/// all four services, generated at build time from the `events.proto` files (and the
/// analyst feed's `feed.proto`): each event message's comment opens with its subject,
/// and each file's header names its stream. The contracts stay the one source; a
/// publisher or consumer never types a subject string.
///
/// ```
/// use hearth_proto::events::referrals;
/// assert_eq!(referrals::STREAM.name, "REFERRALS");
/// assert_eq!(referrals::REFERRAL_ACCEPTED.subject, "hearth.referrals.v1.referral.accepted");
/// ```
pub mod events {
    use std::marker::PhantomData;

    /// A service's JetStream stream.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Stream {
        /// e.g. `REFERRALS`.
        pub name: &'static str,
        /// What it captures: one `hearth.<service>.v1.<entity>.>` per event entity.
        pub subjects: &'static [&'static str],
        /// The CloudEvents `ce-source` of its events, e.g. `//hearth/referrals`.
        pub source: &'static str,
    }

    impl Stream {
        /// Whether `subject` is one this stream captures.
        pub fn captures(&self, subject: &str) -> bool {
            self.subjects.iter().any(|s| {
                s.strip_suffix('>')
                    .is_some_and(|prefix| subject.starts_with(prefix))
            })
        }
    }

    /// One kind of event: its subject (also the CloudEvents `ce-type`) and the
    /// protobuf message it carries, `M`.
    #[derive(Debug)]
    pub struct EventType<M> {
        pub subject: &'static str,
        /// The full protobuf name of `M`, e.g. `hearth.referrals.v1.ReferralAccepted`.
        pub message: &'static str,
        _message: PhantomData<fn() -> M>,
    }

    impl<M> Clone for EventType<M> {
        fn clone(&self) -> Self {
            *self
        }
    }
    impl<M> Copy for EventType<M> {}

    impl<M> EventType<M> {
        pub const fn new(subject: &'static str, message: &'static str) -> Self {
            EventType {
                subject,
                message,
                _message: PhantomData,
            }
        }

        /// Whether an event's type (or, for the analyst feed, the type followed by the
        /// area) is this one.
        pub fn is(&self, subject: &str) -> bool {
            subject == self.subject
                || subject
                    .strip_prefix(self.subject)
                    .is_some_and(|rest| rest.starts_with('.'))
        }
    }

    impl<M: prost::Message + Default> EventType<M> {
        /// Decodes a payload of this type.
        pub fn decode(&self, payload: &[u8]) -> Result<M, prost::DecodeError> {
            M::decode(payload)
        }
    }

    include!(concat!(env!("OUT_DIR"), "/events.rs"));
}
