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
}

pub use hearth::assessments::v1 as assessments;
pub use hearth::delivery::v1 as delivery;
pub use hearth::evaluation::v1 as evaluation;
pub use hearth::referrals::v1 as referrals;
pub use hearth::r#type::v1 as types;
