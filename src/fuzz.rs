//! Entry points for fuzzing: each reader of untrusted text fed arbitrary bytes. The cargo-fuzz
//! targets in `fuzz/` and the bounded stable run in `tests/it/fuzz.rs` both call these, so
//! they exercise the same code. A panic is the only failure; errors are the expected outcome.

use std::path::Path;

use crate::lockfile::Lockfile;
use crate::manifest::Manifest;
use crate::overlay::Overlay;

/// The YAML reader as it reads upstream releases, kpin.yaml and kpin.lock. What kpin writes
/// from objects it read must read back as the same objects.
pub fn yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let origin = Path::new("fuzz.yaml");
    if let Ok(objects) = crate::yaml::objects_from_stream(&text, origin) {
        let emitted = crate::yaml::emit_documents(objects.iter().map(|o| &o.0));
        match crate::yaml::objects_from_stream(&emitted, origin) {
            Ok(again) => assert!(
                again == objects,
                "emitted YAML reads back differently:\n{emitted}"
            ),
            Err(e) => panic!("emitted YAML does not read back: {e}\n{emitted}"),
        }
    }
    let _ = crate::yaml::from_str::<serde_json::Value>(&text, origin);
    let _ = Manifest::parse(&text, Path::new("/fuzz/kpin.yaml"));
    let _ = Lockfile::parse(&text, Path::new("/fuzz/kpin.lock"));
}

/// The overlay parser (files it adds resolve below a project directory that does not exist).
pub fn overlay(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Overlay::parse(
        &text,
        Path::new("/fuzz/overlays/fuzz.yaml"),
        "overlays/fuzz.yaml",
        Path::new("/fuzz"),
    );
}
