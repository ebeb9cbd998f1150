//! Compiles every `.proto` under the workspace's `proto/` with a vendored `protoc`, so
//! building needs no system protobuf compiler, and writes the file descriptor set that
//! server reflection serves.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it was compiled: checkouts that share a
    // target directory (fresh clones beside a working copy) share the compiled
    // script, and a path fixed at compile time would read another checkout's protos.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?;
    let proto_root = Path::new(&manifest_dir)
        .join("../../proto")
        .canonicalize()?;
    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();

    // SAFETY of intent: build scripts are single-threaded; PROTOC is read by prost-build.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // Setting an environment variable is unsafe in edition 2024 only because of other
    // threads; a build script has none.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PROTOC", protoc);
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("hearth_descriptor.bin"))
        // Maps as BTreeMaps: a message then encodes to the same bytes however its map
        // was filled, so a retried request hashes the same (the idempotency claim).
        .btree_map(".")
        .compile_protos(&files, &[proto_root.clone(), include])?;

    write_message_index(&out_dir)?;
    write_event_catalogue(&out_dir)?;
    write_enum_names(&out_dir)?;

    // Relative to this package, so that each checkout sharing the target directory is
    // watched in its own tree (an absolute path would watch whichever checkout built
    // last, and another checkout's changed protos would not regenerate the code).
    println!("cargo:rerun-if-changed=../../proto");
    for f in &files {
        if let Ok(rel) = f.strip_prefix(&proto_root) {
            println!("cargo:rerun-if-changed=../../proto/{}", rel.display());
        }
    }
    Ok(())
}

/// The Rust path of every Hearth message, by full protobuf name.
fn rust_paths(set: &prost_types::FileDescriptorSet) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    for file in &set.file {
        let package = file.package();
        if !package.starts_with("hearth.") {
            continue;
        }
        let module: Vec<String> = package
            .split('.')
            .map(|p| {
                if p == "type" {
                    "r#type".to_owned()
                } else {
                    p.to_owned()
                }
            })
            .collect();
        for m in &file.message_type {
            index_message(package, &module.join("::"), m, &mut entries);
        }
    }
    entries
}

/// Writes `enum_names.rs`: an `EnumName` impl for every Hearth enum (top-level and
/// nested), so code that stores or parses enums by name can be generic over them.
fn write_enum_names(out_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use prost::Message;
    let bytes = std::fs::read(out_dir.join("hearth_descriptor.bin"))?;
    let set = prost_types::FileDescriptorSet::decode(bytes.as_slice())?;
    let mut paths = Vec::new();
    fn nested(module: &str, m: &prost_types::DescriptorProto, out: &mut Vec<String>) {
        let inner = format!("{module}::{}", snake(m.name()));
        for e in &m.enum_type {
            out.push(format!("{inner}::{}", upper_camel(e.name())));
        }
        for n in &m.nested_type {
            nested(&inner, n, out);
        }
    }
    for file in &set.file {
        let package = file.package();
        if !package.starts_with("hearth.") {
            continue;
        }
        let module = package
            .split('.')
            .map(|p| if p == "type" { "r#type" } else { p })
            .collect::<Vec<_>>()
            .join("::");
        for e in &file.enum_type {
            paths.push(format!("{module}::{}", upper_camel(e.name())));
        }
        for m in &file.message_type {
            nested(&module, m, &mut paths);
        }
    }
    let mut out = String::new();
    for path in paths {
        out.push_str(&format!(
            "impl crate::EnumName for crate::{path} {{\n    fn name(self) -> &'static str {{\n        Self::as_str_name(&self)\n    }}\n    fn from_name(name: &str) -> Option<Self> {{\n        Self::from_str_name(name)\n    }}\n}}\n"
        ));
    }
    std::fs::write(out_dir.join("enum_names.rs"), out)?;
    Ok(())
}

/// Writes `events.rs`: for every `events.proto` (and the analyst feed's `feed.proto`),
/// the JetStream stream its header names, the subjects of its event messages (each
/// event message's comment opens with its subject in backticks), and the message each
/// subject carries. The stream captures each event entity's subjects
/// (`hearth.<service>.v1.<entity>.>`), so two streams of one service never overlap.
fn write_event_catalogue(out_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use prost::Message;
    let bytes = std::fs::read(out_dir.join("hearth_descriptor.bin"))?;
    let set = prost_types::FileDescriptorSet::decode(bytes.as_slice())?;
    let paths: std::collections::HashMap<String, String> = rust_paths(&set).into_iter().collect();
    let mut out = String::new();
    let mut streams = Vec::new();
    for file in &set.file {
        let name = file.name();
        let is_events = name.starts_with("hearth/")
            && (name.ends_with("/events.proto") || name == "hearth/evaluation/v1/feed.proto");
        if !is_events {
            continue;
        }
        let info = file
            .source_code_info
            .as_ref()
            .ok_or("protoc wrote no source info")?;
        let header: String = info
            .location
            .iter()
            .flat_map(|l| {
                l.leading_detached_comments
                    .iter()
                    .chain(l.leading_comments.iter())
            })
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let header = header.split_whitespace().collect::<Vec<_>>().join(" ");
        let stream = header
            .split("stream `")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .ok_or_else(|| format!("{name}: its header names no JetStream stream `NAME`"))?
            .to_owned();
        let service = name.split('/').nth(1).ok_or("unexpected proto path")?;
        let mut events = Vec::new();
        for (i, m) in file.message_type.iter().enumerate() {
            let comment = info
                .location
                .iter()
                .find(|l| l.path == [4, i as i32])
                .map(|l| l.leading_comments())
                .unwrap_or_default()
                .trim_start();
            let Some(subject) = comment
                .strip_prefix('`')
                .and_then(|c| c.split('`').next())
                .filter(|s| s.starts_with(&format!("hearth.{service}.v1.")))
            else {
                continue;
            };
            let full = format!("{}.{}", file.package(), m.name());
            let path = paths
                .get(&full)
                .ok_or_else(|| format!("no Rust type for {full}"))?;
            events.push((subject.to_owned(), full, path.clone()));
        }
        if events.is_empty() {
            return Err(
                format!("{name}: no event message opens its comment with a subject").into(),
            );
        }
        let mut captures: Vec<String> = events
            .iter()
            .map(|(s, _, _)| {
                let entity = s.rsplit_once('.').map(|(e, _)| e).unwrap_or(s);
                format!("{entity}.>")
            })
            .collect();
        captures.sort();
        captures.dedup();
        let module = stream.to_lowercase();
        out.push_str(&format!(
            "/// Stream `{stream}`, from `{name}`.\npub mod {module} {{\n    #[allow(unused_imports)]\n    use super::{{EventType, Stream}};\n\n"
        ));
        out.push_str(&format!(
            "    /// The stream and what it captures.\n    pub const STREAM: Stream = Stream {{\n        name: \"{stream}\",\n        subjects: &[{}],\n        source: \"//hearth/{service}\",\n    }};\n\n",
            captures.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
        ));
        for (subject, full, path) in &events {
            let constant = subject
                .strip_prefix(&format!("hearth.{service}.v1."))
                .unwrap_or(subject)
                .replace('.', "_")
                .to_uppercase();
            out.push_str(&format!(
                "    /// `{subject}`, carrying `{full}`.\n    pub const {constant}: EventType<crate::{path}> = EventType::new(\"{subject}\", \"{full}\");\n"
            ));
        }
        out.push_str(&format!(
            "\n    /// Every event of the stream: `(subject, message)`.\n    pub const EVENTS: &[(&str, &str)] = &[\n{}    ];\n}}\n\n",
            events
                .iter()
                .map(|(s, f, _)| format!("        (\"{s}\", \"{f}\"),\n"))
                .collect::<String>()
        ));
        streams.push(module);
    }
    streams.sort();
    out.push_str(&format!(
        "/// Every stream of every contract.\npub const STREAMS: &[&Stream] = &[{}];\n",
        streams
            .iter()
            .map(|m| format!("&{m}::STREAM"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    std::fs::write(out_dir.join("events.rs"), out)?;
    Ok(())
}

/// Writes `messages.rs`: every Hearth message's full protobuf name beside a function
/// that decodes bytes into its generated Rust type and encodes it again. The contract
/// tests use it to check each generated type against the reflection descriptor set.
fn write_message_index(out_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use prost::Message;
    let bytes = std::fs::read(out_dir.join("hearth_descriptor.bin"))?;
    let set = prost_types::FileDescriptorSet::decode(bytes.as_slice())?;
    let entries = rust_paths(&set);
    let mut out = String::from(
        "/// Decodes bytes into a generated Rust type and encodes it again.\n\
         pub type Reencode = fn(&[u8]) -> Result<Vec<u8>, prost::DecodeError>;\n\
         /// `(full protobuf name, decode-then-encode with its generated Rust type)`.\n\
         pub const MESSAGES: &[(&str, Reencode)] = &[\n",
    );
    for (full, path) in entries {
        out.push_str(&format!(
            "    (\"{full}\", |b| <hearth_proto::{path} as prost::Message>::decode(b).map(|m| prost::Message::encode_to_vec(&m))),\n"
        ));
    }
    out.push_str("];\n");
    std::fs::write(out_dir.join("messages.rs"), out)?;
    Ok(())
}

fn index_message(
    scope: &str,
    module: &str,
    m: &prost_types::DescriptorProto,
    out: &mut Vec<(String, String)>,
) {
    // Map entries have no Rust type of their own.
    if m.options.as_ref().is_some_and(|o| o.map_entry()) {
        return;
    }
    let full = format!("{scope}.{}", m.name());
    out.push((full.clone(), format!("{module}::{}", upper_camel(m.name()))));
    let nested_module = format!("{module}::{}", snake(m.name()));
    for n in &m.nested_type {
        index_message(&full, &nested_module, n, out);
    }
}

/// prost's spelling of a message name (as heck's UpperCamelCase).
fn upper_camel(name: &str) -> String {
    words(name)
        .iter()
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(c.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect()
}

/// prost's module name for a message's nested types (as heck's snake_case).
fn snake(name: &str) -> String {
    words(name)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

/// Splits an identifier into words the way heck does: at underscores, at a lower-case
/// letter or digit followed by an upper-case one, and before the last capital of a run
/// of capitals followed by a lower-case letter.
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some(&prev) = i.checked_sub(1).and_then(|j| chars.get(j)) {
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = c.is_uppercase()
                && (prev.is_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_uppercase() && next_lower));
            if boundary && !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
