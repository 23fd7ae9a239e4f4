//! Entry points for fuzzing: each reader of untrusted text fed arbitrary bytes. The cargo-fuzz
//! targets in `fuzz/` and the bounded stable run in `tests/it/fuzz.rs` both call these, so
//! they exercise the same code. A panic is the only failure; errors are the expected outcome.

use std::path::Path;

use crate::manifest::Manifest;
use crate::overlay::Overlay;
use crate::vendoring::lockfile::Lockfile;
use serde_json::Value;

/// The YAML reader as it reads upstream releases, kpin.yaml and kpin.lock. What kpin writes
/// from objects it read must read back as the same objects.
pub fn yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let origin = Path::new("fuzz.yaml");
    if let Ok(objects) = crate::object::Object::from_stream(&text, origin) {
        let emitted = crate::yaml::emit_documents(objects.iter().map(|o| &o.0));
        match crate::object::Object::from_stream(&emitted, origin) {
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

/// The kpin.yaml editor on arbitrary bytes: for scalars found in the document, and a key that
/// is not there, a set, an upsert and a removal. Whatever an edit returns must read back as
/// exactly the intended document, and touch nothing else: a set changes one line, an added key
/// only inserts bytes, a removal only deletes them.
pub fn edit(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(doc) = crate::yaml::from_str::<Value>(&text, Path::new("fuzz.yaml")) else {
        return;
    };
    let mut paths = Vec::new();
    scalar_paths(&doc, &mut Vec::new(), &mut paths);
    for path in paths.iter().take(8) {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        check_edit(&text, &keys, Edit::Set("2.0.0-fuzz"));
        check_edit(&text, &keys, Edit::Set("1.10"));
        check_edit(&text, &keys, Edit::Remove);
        let mut fresh = keys[..keys.len() - 1].to_vec();
        fresh.extend(["kpin-fuzz", "version"]);
        check_edit(&text, &fresh, Edit::Set("3.0"));
    }
}

/// One edit `check_edit` makes.
#[derive(Clone, Copy, Debug)]
pub enum Edit<'a> {
    Set(&'a str),
    Remove,
}

/// Run one edit of `text` at `path` and assert what it promises when it succeeds; whether it
/// did.
pub fn check_edit(text: &str, path: &[&str], edit: Edit<'_>) -> bool {
    use crate::yaml::edit::{json_pointer, remove_scalar, upsert_scalar};
    let origin = Path::new("fuzz.yaml");
    let before: Value = crate::yaml::from_str(text, origin).expect("the input reads");
    let existed = before.pointer(&json_pointer(path)).is_some();
    let result = match edit {
        Edit::Set(value) => upsert_scalar(text, path, value),
        Edit::Remove => remove_scalar(text, path, 1),
    };
    let Ok(edited) = result else { return false };
    let after: Value = crate::yaml::from_str(&edited, origin)
        .unwrap_or_else(|e| panic!("the edited text does not read: {e}\n{edited}"));
    let (removed, added) = changed_spans(text, &edited);
    match edit {
        Edit::Set(value) => {
            let at = after.pointer(&json_pointer(path)).cloned();
            assert_eq!(at, Some(Value::String(value.to_owned())), "{edited}");
            if existed {
                assert!(
                    !removed.contains('\n') && !added.contains('\n'),
                    "a set changes one line: {removed:?} -> {added:?}\n{edited}"
                );
            } else {
                assert!(
                    removed.is_empty(),
                    "an added key only inserts: {removed:?}\n{edited}"
                );
            }
        }
        Edit::Remove => {
            // An emptied document is written `{}` so that it still reads as a mapping.
            let emptied = after.as_object().is_some_and(serde_json::Map::is_empty);
            assert!(
                added.is_empty() || emptied,
                "a removal only deletes: {added:?}\n{edited}"
            );
            let at = after.pointer(&json_pointer(path)).cloned();
            assert_eq!(at, None, "{edited}");
        }
    }
    if let (Value::Object(a), Value::Object(b)) = (&before, &after) {
        // Nothing outside the edited top-level key moves.
        for (key, value) in a {
            if key != path[0] {
                assert_eq!(b.get(key), Some(value), "{key} changed\n{edited}");
            }
        }
    }
    true
}

/// What differs between `a` and `b` once their common prefix and suffix are set aside.
fn changed_spans<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    let prefix = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    let prefix = (0..=prefix)
        .rev()
        .find(|&i| a.is_char_boundary(i) && b.is_char_boundary(i))
        .unwrap_or(0);
    let max_suffix = a.len().min(b.len()) - prefix;
    let suffix = a
        .bytes()
        .rev()
        .zip(b.bytes().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    let suffix = (0..=suffix)
        .rev()
        .find(|&n| a.is_char_boundary(a.len() - n) && b.is_char_boundary(b.len() - n))
        .unwrap_or(0);
    (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix])
}

/// Paths (string keys only) to string, number or boolean leaves, depth first.
fn scalar_paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(map) = value {
        for (key, v) in map {
            at.push(key.clone());
            if v.is_object() {
                scalar_paths(v, at, out);
            } else if !v.is_array() && !v.is_null() {
                out.push(at.clone());
            }
            at.pop();
        }
    }
}
