//! Every message of every Hearth contract, checked against the reflection descriptor
//! set that `grpcurl`, `buf curl` and event consumers see: a message filled from its
//! descriptor (every field set, one variant per oneof member) is encoded, decoded into
//! the generated Rust type, encoded again, and must decode to the same message. A field
//! the Rust type lost, mistyped or renumbered makes the two differ.

use std::collections::BTreeSet;

use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value,
};

include!(concat!(env!("OUT_DIR"), "/messages.rs"));

/// Nested messages are filled to this depth; recursive types (rule conditions) stop here.
const MAX_DEPTH: usize = 3;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(hearth_proto::FILE_DESCRIPTOR_SET).expect("the descriptor set decodes")
}

#[test]
fn every_message_round_trips_through_its_rust_type_and_the_descriptor_set() {
    let pool = pool();
    let mut checked = 0;
    for (name, reencode) in MESSAGES {
        let desc = pool
            .get_message_by_name(name)
            .unwrap_or_else(|| panic!("{name} is missing from the descriptor set"));
        for variant in 0..variants(&desc) {
            let original = filled(&desc, variant, 0);
            let bytes = original.encode_to_vec();
            let again = reencode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = DynamicMessage::decode(desc.clone(), again.as_slice())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                back, original,
                "{name} (variant {variant}) changed on the way"
            );
            checked += 1;
        }
    }
    assert!(checked >= MESSAGES.len());
}

#[test]
fn the_index_and_the_descriptor_set_list_the_same_messages() {
    let pool = pool();
    let described: BTreeSet<String> = pool
        .all_messages()
        .filter(|m| m.package_name().starts_with("hearth.") && !m.is_map_entry())
        .map(|m| m.full_name().to_owned())
        .collect();
    let indexed: BTreeSet<String> = MESSAGES.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(described, indexed);
    for package in [
        "hearth.assessments.v1",
        "hearth.delivery.v1",
        "hearth.evaluation.v1",
    ] {
        assert!(
            described
                .iter()
                .filter(|n| n.starts_with(&format!("{package}.")))
                .count()
                > 20,
            "{package} is compiled into the contract crate"
        );
    }
}

#[test]
fn the_descriptor_set_describes_every_service() {
    let pool = pool();
    let services: BTreeSet<String> = pool.services().map(|s| s.full_name().to_owned()).collect();
    for s in [
        "hearth.referrals.v1.ReferralsService",
        "hearth.assessments.v1.AssessmentsService",
        "hearth.delivery.v1.DeliveryService",
        "hearth.evaluation.v1.EvaluationService",
        "hearth.access.v1.AccessService",
    ] {
        assert!(services.contains(s), "{s} missing from {services:?}");
    }
}

/// How many variants cover every member of the message's largest oneof.
fn variants(desc: &MessageDescriptor) -> usize {
    desc.oneofs()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.fields().count())
        .max()
        .unwrap_or(1)
        .max(1)
}

/// A message with every field set to a non-default value; in oneof `k` members the
/// `variant % k`-th is the one set.
fn filled(desc: &MessageDescriptor, variant: usize, depth: usize) -> DynamicMessage {
    let mut msg = DynamicMessage::new(desc.clone());
    for field in desc.fields() {
        if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
            let members: Vec<FieldDescriptor> = oneof.fields().collect();
            if members[variant % members.len()].number() != field.number() {
                continue;
            }
        }
        if let Some(v) = field_value(&field, variant, depth) {
            msg.set_field(&field, v);
        }
    }
    msg
}

fn field_value(field: &FieldDescriptor, variant: usize, depth: usize) -> Option<Value> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("a map field's kind is its entry message")
        };
        let key = match single(&entry.map_entry_key_field().kind(), variant, depth)? {
            Value::String(s) => MapKey::String(s),
            Value::I32(n) => MapKey::I32(n),
            Value::I64(n) => MapKey::I64(n),
            Value::U32(n) => MapKey::U32(n),
            Value::U64(n) => MapKey::U64(n),
            Value::Bool(b) => MapKey::Bool(b),
            other => panic!("unexpected map key {other:?}"),
        };
        let value = single(&entry.map_entry_value_field().kind(), variant, depth)?;
        return Some(Value::Map([(key, value)].into_iter().collect()));
    }
    let one = single(&field.kind(), variant, depth)?;
    Some(if field.is_list() {
        Value::List(vec![one])
    } else {
        one
    })
}

fn single(kind: &Kind, variant: usize, depth: usize) -> Option<Value> {
    Some(match kind {
        Kind::Double => Value::F64(1.5),
        Kind::Float => Value::F32(2.5),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(-7),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(-70_000_000_000),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(7),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(70_000_000_000),
        Kind::Bool => Value::Bool(true),
        Kind::String => Value::String("x".into()),
        Kind::Bytes => Value::Bytes(vec![1, 2, 3].into()),
        Kind::Enum(e) => Value::EnumNumber(
            e.values()
                .map(|v| v.number())
                .find(|n| *n != 0)
                .unwrap_or(0),
        ),
        Kind::Message(m) => {
            if depth >= MAX_DEPTH {
                return None;
            }
            Value::Message(filled(m, variant, depth + 1))
        }
    })
}
