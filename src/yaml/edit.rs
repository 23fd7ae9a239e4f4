//! Lossless edits of kpin's own YAML files (kpin.yaml): one scalar set, a key added or removed,
//! in block or flow style, with comments, blank lines, key order, quoting and line endings kept,
//! and every edit checked by reading the file back.
//!
//! The syntax tree comes from `yaml-edit` (a lossless rowan tree); scalars are written by byte
//! range here so the user's quoting survives, and structural inserts and removals go through the
//! library. Whatever the library does, the result must read back (with `from_str`, the reader
//! of kpin.yaml) as exactly the original document with the intended change, or the edit is
//! refused: a surprising layout can never corrupt the file.

use std::path::Path;
use std::str::FromStr;

use serde_json::Value;
use yaml_edit::{Document, Mapping, YamlNode};

use super::config::from_str;

/// Why a value in a YAML file could not be edited in place.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The key, or a mapping on its path, is not in the file.
    #[error("no `{0}` in the file")]
    Missing(String),
    /// The value is not a one-line plain or quoted scalar (a block scalar, an anchor or alias,
    /// a tagged value), or a key on the path holds something other than a mapping.
    #[error("`{0}` is not a plain or quoted scalar on one line")]
    ComplexValue(String),
    /// The edited text would not read back as the document with just that change.
    #[error("the edited file would not read back as intended (`{0}`)")]
    NotRoundTrip(String),
}

/// Set the string scalar at `path` (mapping keys from the top) in YAML `text` to `value`,
/// changing only its bytes: the user's quoting is kept (a plain value that would read as
/// something else, such as `1.10`, is double-quoted).
pub fn set_scalar(text: &str, path: &[&str], value: &str) -> Result<String, EditError> {
    let dotted = path.join(".");
    let doc = parse(text, &dotted)?;
    let (parent, depth) = deepest_mapping(&doc, path, &dotted)?;
    if depth < path.len() - 1 {
        return Err(EditError::Missing(dotted_prefix(path, depth + 1)));
    }
    let Some(node) = parent.get(path[depth]) else {
        return Err(EditError::Missing(dotted));
    };
    let range = scalar_range(text, &node).ok_or_else(|| EditError::ComplexValue(dotted.clone()))?;
    let written = &text[range.clone()];
    let candidates: Vec<String> = match written.chars().next() {
        Some('\'') => vec![format!("'{}'", value.replace('\'', "''"))],
        Some('"') => vec![Value::String(value.to_owned()).to_string()],
        _ => vec![
            value.to_owned(),
            Value::String(value.to_owned()).to_string(),
        ],
    };
    let expected = with_value(text, path, Some(value), &dotted)?;
    for candidate in candidates {
        let edited = format!("{}{candidate}{}", &text[..range.start], &text[range.end..]);
        if reads_as(&edited, &expected) {
            return Ok(edited);
        }
    }
    Err(EditError::NotRoundTrip(dotted))
}

/// `set_scalar`, or, when the key or mappings on its path are missing, add them at the end of
/// the deepest mapping that exists, in that mapping's style (block keys indented like their
/// siblings; `{...}` entries appended inside the braces).
pub fn upsert_scalar(text: &str, path: &[&str], value: &str) -> Result<String, EditError> {
    match set_scalar(text, path, value) {
        Err(EditError::Missing(_)) => {}
        other => return other,
    }
    let dotted = path.join(".");
    let doc = parse(text, &dotted)?;
    let (parent, depth) = deepest_mapping(&doc, path, &dotted)?;
    // A key the reader sees but the tree does not (written `0x1F:` or with a tag) is not added
    // a second time.
    if document(text, &dotted)?
        .pointer(&json_pointer(&path[..=depth]))
        .is_some()
    {
        return Err(EditError::ComplexValue(dotted_prefix(path, depth + 1)));
    }
    let expected = with_value(text, path, Some(value), &dotted)?;
    let scalar = scalar_text(value);
    let nested: String = path[depth + 1..]
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let indent = "  ".repeat(i);
            if i + depth + 2 == path.len() {
                format!("{indent}{key}: {scalar}\n")
            } else {
                format!("{indent}{key}:\n")
            }
        })
        .collect();
    if nested.is_empty() {
        let node = parse(&scalar, &dotted)?;
        let Some(value_node) = node.as_scalar() else {
            return Err(EditError::NotRoundTrip(dotted));
        };
        parent.set(path[depth], value_node);
    } else {
        let inner = parse(&nested, &dotted)?;
        let Some(mapping) = inner.as_mapping() else {
            return Err(EditError::NotRoundTrip(dotted));
        };
        parent.set(path[depth], mapping);
    }
    checked(&doc, &expected, &dotted)
}

/// Add `key` with the mapping written in `entry` (YAML text, block or flow) below the mapping at
/// `path`, which must exist (`{}` included) and must not hold `key` yet.
pub fn insert_mapping(
    text: &str,
    path: &[&str],
    key: &str,
    entry: &str,
) -> Result<String, EditError> {
    let full: Vec<&str> = path.iter().copied().chain([key]).collect();
    let dotted = full.join(".");
    let doc = parse(text, &dotted)?;
    let (parent, depth) = deepest_mapping(&doc, &full, &dotted)?;
    if depth < path.len() {
        return Err(EditError::Missing(dotted_prefix(&full, depth + 1)));
    }
    if parent.contains_key(key) {
        return Err(EditError::ComplexValue(dotted));
    }
    let entry_value: Value =
        from_str(entry, Path::new("entry")).map_err(|_| EditError::NotRoundTrip(dotted.clone()))?;
    let mut expected = document(text, &dotted)?;
    let Some(map) = expected
        .pointer_mut(&json_pointer(path))
        .and_then(Value::as_object_mut)
    else {
        return Err(EditError::NotRoundTrip(dotted));
    };
    if map.contains_key(key) {
        return Err(EditError::ComplexValue(dotted));
    }
    map.insert(key.to_owned(), entry_value);
    let inner = parse(entry, &dotted)?;
    let Some(mapping) = inner.as_mapping() else {
        return Err(EditError::NotRoundTrip(dotted));
    };
    parent.set(key, mapping);
    checked(&doc, &expected, &dotted)
}

/// Remove the scalar at `path` (its entry), and the mappings on its path it leaves empty, but
/// never those of the first `keep` keys.
pub fn remove_scalar(text: &str, path: &[&str], keep: usize) -> Result<String, EditError> {
    let dotted = path.join(".");
    let doc = parse(text, &dotted)?;
    let (_, depth) = deepest_mapping(&doc, path, &dotted)?;
    if depth < path.len() - 1 {
        return Err(EditError::Missing(dotted_prefix(path, depth + 1)));
    }
    let mut expected = with_value(text, path, None, &dotted)?;
    // The mappings on the path, outermost first: `mappings[d]` holds the key `path[d]`.
    let mut mappings: Vec<Mapping> = Vec::with_capacity(path.len());
    let Some(mut current) = doc.as_mapping() else {
        return Err(EditError::Missing(dotted));
    };
    for key in &path[..path.len() - 1] {
        let next = current
            .get_mapping(*key)
            .ok_or_else(|| EditError::ComplexValue(dotted.clone()))?;
        mappings.push(current);
        current = next;
    }
    mappings.push(current);
    let last = path.len() - 1;
    if !mappings[last].contains_key(path[last]) {
        return Err(EditError::Missing(dotted));
    }
    mappings[last].remove(path[last]);
    // Drop the mappings the removal left empty, from the inside out.
    for depth in (keep.max(1)..path.len()).rev() {
        if !mappings[depth].is_empty() {
            break;
        }
        mappings[depth - 1].remove(path[depth - 1]);
        if let Some(map) = expected
            .pointer_mut(&json_pointer(&path[..depth - 1]))
            .and_then(Value::as_object_mut)
        {
            map.remove(path[depth - 1]);
        }
    }
    checked(&doc, &expected, &dotted)
}

/// `value` as a scalar kpin.yaml reads back as that string: plain when it can be, else
/// double-quoted.
pub fn scalar_text(value: &str) -> String {
    let plain = format!("k: {value}\n");
    let reads_plain = from_str::<Value>(&plain, Path::new("scalar"))
        .is_ok_and(|v| v["k"].as_str() == Some(value));
    if reads_plain {
        value.to_owned()
    } else {
        Value::String(value.to_owned()).to_string()
    }
}

fn parse(text: &str, dotted: &str) -> Result<Document, EditError> {
    Document::from_str(text).map_err(|_| EditError::NotRoundTrip(dotted.to_owned()))
}

/// The deepest mapping on `path` (never the last key's value) and how many keys lead to it.
fn deepest_mapping(
    doc: &Document,
    path: &[&str],
    dotted: &str,
) -> Result<(Mapping, usize), EditError> {
    let Some(mut mapping) = doc.as_mapping() else {
        return Err(EditError::ComplexValue(dotted.to_owned()));
    };
    for (depth, key) in path[..path.len() - 1].iter().enumerate() {
        // Keys merged in with `<<` are read but not written here: an edit would add an
        // override rather than change what the user wrote.
        if mapping.contains_key(MERGE_KEY) {
            return Err(EditError::ComplexValue(dotted_prefix(path, depth)));
        }
        match mapping.get(*key) {
            None => return Ok((mapping, depth)),
            Some(node) => match node.as_mapping() {
                Some(next) => mapping = next.clone(),
                None => return Err(EditError::ComplexValue(dotted_prefix(path, depth + 1))),
            },
        }
    }
    if mapping.contains_key(MERGE_KEY) {
        return Err(EditError::ComplexValue(dotted_prefix(path, path.len() - 1)));
    }
    Ok((mapping, path.len() - 1))
}

const MERGE_KEY: &str = "<<";

/// The bytes of a one-line plain or quoted scalar; `None` for anything else.
fn scalar_range(text: &str, node: &YamlNode) -> Option<std::ops::Range<usize>> {
    node.as_scalar()?;
    let position = node.byte_range();
    let range = position.start as usize..position.end as usize;
    let written = text.get(range.clone())?.trim_end();
    let simple = !written.is_empty()
        && !written.contains(['\n', '\r'])
        && !written.starts_with(['|', '>', '&', '*', '!', '#']);
    simple.then(|| range.start..range.start + written.len())
}

fn dotted_prefix(path: &[&str], len: usize) -> String {
    path[..len].join(".")
}

/// The JSON pointer (RFC 6901) of a key path.
pub(crate) fn json_pointer(path: &[&str]) -> String {
    path.iter().fold(String::new(), |mut out, key| {
        out.push('/');
        out.push_str(&key.replace('~', "~0").replace('/', "~1"));
        out
    })
}

fn document(text: &str, dotted: &str) -> Result<Value, EditError> {
    from_str(text, Path::new("edit")).map_err(|_| EditError::NotRoundTrip(dotted.to_owned()))
}

/// The document of `text` with the string at `path` set (missing mappings added) or removed.
fn with_value(
    text: &str,
    path: &[&str],
    value: Option<&str>,
    dotted: &str,
) -> Result<Value, EditError> {
    let mut expected = document(text, dotted)?;
    let mut at = &mut expected;
    for key in &path[..path.len() - 1] {
        let Some(map) = at.as_object_mut() else {
            return Err(EditError::ComplexValue(dotted.to_owned()));
        };
        at = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    let Some(map) = at.as_object_mut() else {
        return Err(EditError::ComplexValue(dotted.to_owned()));
    };
    let last = path[path.len() - 1].to_owned();
    match value {
        Some(v) => {
            map.insert(last, Value::String(v.to_owned()));
        }
        None => {
            map.remove(&last);
        }
    }
    Ok(expected)
}

fn reads_as(text: &str, expected: &Value) -> bool {
    from_str::<Value>(text, Path::new("edit")).is_ok_and(|v| &v == expected)
}

fn checked(doc: &Document, expected: &Value, dotted: &str) -> Result<String, EditError> {
    let edited = doc.to_string();
    if reads_as(&edited, expected) {
        Ok(edited)
    } else {
        Err(EditError::NotRoundTrip(dotted.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use proptest::prelude::*;

    use super::*;
    use crate::fuzz::{Edit, check_edit};

    /// How one mapping of a generated kpin.yaml is written.
    #[derive(Clone, Debug)]
    struct Look {
        flow: bool,
        comment: bool,
    }

    fn look() -> impl Strategy<Value = Look> {
        (any::<bool>(), any::<bool>()).prop_map(|(flow, comment)| Look { flow, comment })
    }

    fn scalar(value: &str, quote: usize) -> String {
        match quote {
            0 => scalar_text(value),
            1 => format!("'{value}'"),
            _ => format!("\"{value}\""),
        }
    }

    /// `entries` as one mapping in `look`'s style, `indent` spaces deep in block style.
    fn mapping(entries: &[(String, String)], look: &Look, indent: usize) -> String {
        let pad = " ".repeat(indent);
        if look.flow || entries.is_empty() {
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| {
                    // A comment ends the line, so none is written inside braces.
                    let value = v.split("   #").next().unwrap_or_default();
                    format!("{k}: {}", value.trim())
                })
                .collect();
            let comment = if look.comment { "   # flow" } else { "" };
            return format!(" {{{}}}{comment}\n", inner.join(", "));
        }
        let mut out = String::from("\n");
        for (k, v) in entries {
            if look.comment {
                let _ = writeln!(out, "{pad}# about {k}");
            }
            if v.starts_with('\n') || v.starts_with(" {") {
                let _ = write!(out, "{pad}{k}:{v}");
            } else {
                let _ = writeln!(out, "{pad}{k}: {v}");
            }
        }
        out
    }

    type Package = (String, usize, Vec<&'static str>, Look, Look, Look);

    /// A package's version, its quoting, its environments and the looks of its mappings.
    fn package() -> impl Strategy<Value = Package> {
        (
            proptest::string::string_regex("[0-9]\\.[0-9]{1,2}(\\.[0-9])?").unwrap(),
            0..3usize,
            proptest::sample::subsequence(vec!["dev", "qa", "prod"], 0..=3),
            look(),
            look(),
            look(),
        )
    }

    /// A kpin.yaml with packages `a` and `b`, each mapping written in its own style.
    fn manifest() -> impl Strategy<Value = (String, Vec<(String, Vec<String>)>)> {
        (package(), package(), look(), any::<bool>()).prop_map(|(a, b, top, crlf)| {
            let mut packages = Vec::new();
            let mut listed = Vec::new();
            for (name, (version, quote, envs, mut look, mut env_look, mut inner)) in
                [("a", a), ("b", b)]
            {
                // Inside a flow mapping everything is flow.
                look.flow |= top.flow;
                env_look.flow |= look.flow;
                inner.flow |= env_look.flow;
                let mut entries = vec![
                    ("version".to_owned(), scalar(&version, quote)),
                    ("url".to_owned(), "'https://x/{version}/a.yaml'".to_owned()),
                ];
                let per_env: Vec<(String, String)> = envs
                    .iter()
                    .map(|env| {
                        let version = scalar(&format!("{version}-{env}"), quote);
                        let body = vec![("version".to_owned(), version)];
                        ((*env).to_owned(), mapping(&body, &inner, 8))
                    })
                    .collect();
                if !per_env.is_empty() {
                    entries.push(("environments".to_owned(), mapping(&per_env, &env_look, 6)));
                }
                packages.push((name.to_owned(), mapping(&entries, &look, 4)));
                listed.push((
                    name.to_owned(),
                    envs.iter().map(|e| (*e).to_owned()).collect(),
                ));
            }
            let text = format!(
                "# kpin.yaml\nenvironments:{}\npackages:{}",
                mapping(
                    &[
                        ("dev".into(), " {}\n".into()),
                        ("qa".into(), " {}\n".into())
                    ],
                    &top,
                    2
                )
                .trim_end_matches('\n'),
                mapping(&packages, &top, 2)
            );
            let text = if crlf {
                text.replace('\n', "\r\n")
            } else {
                text
            };
            (text, listed)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// On kpin.yaml files in any mix of styles, every version edit `upgrade` and `promote`
        /// make succeeds, reads back as exactly that change, and leaves the rest byte for byte.
        #[test]
        fn version_edits_succeed_in_any_style_and_touch_nothing_else((text, packages) in manifest()) {
            prop_assert!(from_str::<Value>(&text, Path::new("kpin.yaml")).is_ok(), "{}", text);
            for (name, envs) in &packages {
                prop_assert!(check_edit(&text, &["packages", name, "version"], Edit::Set("1.10")), "{}", text);
                for env in ["dev", "qa", "prod"] {
                    let path = ["packages", name.as_str(), "environments", env, "version"];
                    prop_assert!(check_edit(&text, &path, Edit::Set("2.0.0")), "{} {}", env, text);
                    if envs.iter().any(|e| e == env) {
                        prop_assert!(check_edit(&text, &path, Edit::Remove), "{} {}", env, text);
                    }
                }
            }
        }
    }
}
