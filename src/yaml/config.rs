//! kpin's own files (kpin.yaml, kpin.lock, overlays) read into typed values, with errors that
//! name YAML's shapes and the field path rather than Rust's types.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::stream::{check_depth, read_stream};
use super::{MAX_ALIAS_NODES, YamlError, check_size, shape};

/// How plain scalars are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// kpin's own files (kpin.yaml, kpin.lock): YAML 1.2 core schema, so `y`, `on` and `0755`
    /// stay the strings users meant.
    Kpin,
    /// Kubernetes objects and the values patched into them: YAML 1.1 like `sigs.k8s.io/yaml`.
    Kubernetes,
}

fn kpin_options() -> serde_saphyr::Options {
    let mut limits = serde_saphyr::options::AliasLimits::default();
    limits.max_total_replayed_events = MAX_ALIAS_NODES;
    limits.max_replay_stack_depth = 32;
    limits.max_alias_expansions_per_anchor = 1_000;
    serde_saphyr::options! {
        legacy_octal_numbers: false,
        strict_booleans: true,
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
        alias_limits: limits,
        // `0755` in kpin.yaml is text the user wrote, not a number.
        leading_zero_numbers_as_strings: true,
        // The snippet names the source `<input>`; kpin names the file itself.
        with_snippet: false,
    }
}

/// Read one of kpin's own YAML documents (kpin.yaml, the lockfile) into a typed value.
pub fn from_str<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T, YamlError> {
    from_str_flavored(text, origin, Flavor::Kpin)
}

/// Read one YAML document with the given scalar typing.
pub fn from_str_flavored<T: DeserializeOwned>(
    text: &str,
    origin: &Path,
    flavor: Flavor,
) -> Result<T, YamlError> {
    check_size(text, origin)?;
    let value: Value = match flavor {
        Flavor::Kpin => serde_saphyr::from_str_with_options(text, kpin_options()).map_err(|e| {
            // The library's advice is for programmers configuring it, not for kpin users.
            let message = e
                .to_string()
                .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
            YamlError::new(origin, crate::error::shorten_quoted(&message))
        })?,
        Flavor::Kubernetes => {
            let mut docs = read_stream(text, origin)?;
            if docs.len() > 1 {
                return Err(YamlError::new(
                    origin,
                    format!("expected one YAML document, found {}", docs.len()),
                ));
            }
            docs.pop().flatten().unwrap_or(Value::Null)
        }
    };
    check_depth(&value, origin)?;
    from_value(value, origin)
}

/// Deserialize a value read from `origin`; errors name the field path and the file.
pub fn from_value<T: DeserializeOwned>(value: Value, origin: &Path) -> Result<T, YamlError> {
    let empty = value.is_null();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = crate::error::abbreviate(&e.path().to_string());
        let inner = user_words(&e.into_inner().to_string());
        if empty {
            YamlError::new(origin, EMPTY_FILE)
        } else if path == "." {
            YamlError::new(origin, inner)
        } else {
            YamlError::new(origin, format!("{path}: {inner}"))
        }
    })
}

/// Replace `from` where it ends a word (so `expected a map` leaves `expected a mapping` alone).
fn replace_phrase(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let after = &rest[i + from.len()..];
        let whole = !after.starts_with(|c: char| c.is_alphanumeric());
        out.push_str(&rest[..i]);
        out.push_str(if whole { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// kpin's own files are mappings at the top. Say so plainly: for a list, serde would report
/// its first item against the first field (`[0]: expected u32`).
pub fn expect_mapping(value: &Value, origin: &Path) -> Result<(), YamlError> {
    match value {
        Value::Object(_) => Ok(()),
        Value::Null => Err(YamlError::new(origin, EMPTY_FILE)),
        other => Err(YamlError::new(
            origin,
            format!(
                "expected a mapping at the top of the file, found {}",
                shape(other)
            ),
        )),
    }
}

const EMPTY_FILE: &str = "the file is empty or only has comments";

/// serde names the Rust type it wanted (`expected struct RawManifest`) and says `map` and
/// `sequence`; users wrote YAML, so name YAML's shapes instead.
pub(crate) fn user_words(message: &str) -> String {
    let message = [
        ("invalid type: map,", "invalid type: mapping,"),
        ("invalid type: sequence,", "invalid type: list,"),
        ("expected a map", "expected a mapping"),
        ("expected a sequence", "expected a list"),
    ]
    .into_iter()
    .fold(crate::error::shorten_quoted(message), |m, (from, to)| {
        replace_phrase(&m, from, to)
    });
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(i) = rest.find("expected struct ") {
        out.push_str(&rest[..i]);
        out.push_str("expected a mapping");
        let after = &rest[i + "expected struct ".len()..];
        let name_len = after
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(after.len());
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out
}
