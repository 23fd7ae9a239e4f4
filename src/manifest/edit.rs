//! kpin.yaml edited in place: one scalar set, added or removed while comments, key order,
//! quoting and line endings stay as the team wrote them, and every edit checked by reading the
//! file back.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::{MANIFEST_FILE, Manifest};
use crate::error::HintExt;
use crate::yaml;

/// Why a value in kpin.yaml could not be edited in place.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The key, or a mapping on its path, is not in the file (as a block-style key).
    #[error("no `{0}` written in block style")]
    Missing(String),
    /// The value, or a mapping on its path, is written in flow style (`{...}` or `[...]`).
    #[error("`{0}` is written in flow style ({{...}}), which kpin does not edit")]
    FlowStyle(String),
    /// The value is not a one-line plain or quoted scalar (a block scalar, an anchor or
    /// alias, a mapping), or the mapping that would receive a new key holds a value.
    #[error("`{0}` is not a plain or quoted scalar on one line")]
    ComplexValue(String),
    /// The edited text would not parse to the document with just that value changed, or a
    /// key to add needs quoting.
    #[error("the edited file would not read back as intended (`{0}`)")]
    NotRoundTrip(String),
}

/// Set `packages.<package>.version` in kpin.yaml text to `version`; see `set_scalar`.
pub fn set_package_version(text: &str, package: &str, version: &str) -> Result<String, EditError> {
    set_scalar(text, &["packages", package, "version"], version)
}

/// Set the string scalar at `path` (mapping keys from the top) in YAML `text` to `value`,
/// changing only that value: comments, blank lines, key order, quoting style and line endings
/// stay as they were.
///
/// The result is parsed again and must equal the original document with only that value
/// changed; otherwise nothing is returned, so a surprising layout can never corrupt the file.
pub fn set_scalar(text: &str, path: &[&str], value: &str) -> Result<String, EditError> {
    let dotted = path.join(".");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (line_index, value_start, value_end, quote) = locate_scalar(&lines, path, &dotted)?;
    let line = lines[line_index];
    let written = |q: Option<char>| match q {
        None => value.to_owned(),
        Some('\'') => format!("'{}'", value.replace('\'', "''")),
        Some(_) => Value::String(value.to_owned()).to_string(),
    };
    // Keep the user's quoting; fall back to double quotes when a plain scalar would be read as
    // something else (e.g. `1.10` as a number).
    let candidates = match quote {
        None => vec![None, Some('"')],
        q => vec![q],
    };
    let expected = expected_document(text, path, value)
        .ok_or_else(|| EditError::NotRoundTrip(dotted.clone()))?;
    for q in candidates {
        let mut edited = String::with_capacity(text.len() + value.len());
        for (i, l) in lines.iter().enumerate() {
            if i == line_index {
                edited.push_str(&line[..value_start]);
                edited.push_str(&written(q));
                edited.push_str(&line[value_end..]);
            } else {
                edited.push_str(l);
            }
        }
        let reread: Option<Value> = yaml::from_str(&edited, Path::new(MANIFEST_FILE)).ok();
        if reread.as_ref() == Some(&expected) {
            return Ok(edited);
        }
    }
    Err(EditError::NotRoundTrip(dotted))
}

/// The parsed document as it must read after the edit.
fn expected_document(text: &str, path: &[&str], value: &str) -> Option<Value> {
    let mut doc: Value = yaml::from_str(text, Path::new(MANIFEST_FILE)).ok()?;
    *doc.pointer_mut(&json_pointer(path))? = Value::String(value.to_owned());
    Some(doc)
}

/// The JSON pointer (RFC 6901) of a path of keys.
fn json_pointer(path: &[&str]) -> String {
    let mut pointer = String::new();
    for key in path {
        pointer.push('/');
        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
    }
    pointer
}

/// Indentation of a line, or `None` for blank and comment-only lines (which never end a block).
fn indent_of(line: &str) -> Option<usize> {
    let trimmed = line.trim_start_matches(' ');
    let body = trimmed.trim_end_matches(['\n', '\r']);
    if body.trim().is_empty() || body.starts_with('#') {
        None
    } else {
        Some(line.len() - trimmed.len())
    }
}

/// The key of a `key: value` / `key:` line (unquoted), and the byte offset after the colon.
fn key_of(line: &str) -> Option<(String, usize)> {
    let start = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[start..];
    let (key, after) = if let q @ ('"' | '\'') = rest.chars().next()? {
        let end = rest[1..].find(q)? + 1;
        (rest[1..end].to_owned(), end + 1)
    } else {
        let colon = rest.find(':')?;
        (rest[..colon].trim_end().to_owned(), colon)
    };
    let tail = &rest[after..];
    let colon = tail.find(':')?;
    if !tail[..colon].trim().is_empty() {
        return None;
    }
    let after_colon = &tail[colon + 1..];
    // `key:value` is a plain scalar, not a mapping entry.
    if !(after_colon.is_empty() || after_colon.starts_with([' ', '\n', '\r'])) {
        return None;
    }
    Some((key, start + after + colon + 1))
}

/// End (exclusive) of the block opened by the line before `from` whose indentation is
/// `parent`: everything indented deeper, plus interleaved blank and comment lines.
fn block_end(lines: &[&str], from: usize, parent: usize) -> usize {
    let mut end = from;
    for (i, line) in lines.iter().enumerate().skip(from) {
        match indent_of(line) {
            Some(n) if n <= parent => break,
            Some(_) => end = i + 1,
            None => {}
        }
    }
    end
}

/// The keys of `path` found in the text, outermost first.
struct Walk {
    /// (line index, indentation) of each key found, up to the first one missing.
    found: Vec<(usize, usize)>,
    /// The walk stopped at a key whose value is an empty flow mapping (`{}`).
    empty_flow: bool,
}

/// Follow `path` through block mappings. A key whose value is a non-empty flow collection on
/// the way is refused (kpin does not edit flow style); one holding `{}` ends the walk.
fn walk(lines: &[&str], path: &[&str]) -> Result<Walk, EditError> {
    // The block to search: lines [from, to) at indentation `indent`.
    let (mut from, mut to, mut indent) = (0, lines.len(), Some(0));
    let mut out = Walk {
        found: Vec::new(),
        empty_flow: false,
    };
    for (depth, key) in path.iter().enumerate() {
        let Some(level) = indent.or_else(|| lines[from..to].iter().find_map(|l| indent_of(l)))
        else {
            break;
        };
        let Some(line) = (from..to).find(|&i| {
            indent_of(lines[i]) == Some(level) && key_of(lines[i]).is_some_and(|(k, _)| k == *key)
        }) else {
            break;
        };
        out.found.push((line, level));
        if depth + 1 < path.len() {
            let (_, after) = key_of(lines[line]).ok_or(EditError::Missing(key.to_string()))?;
            let rest = value_text(&lines[line][after..]);
            if rest == "{}" {
                out.empty_flow = true;
                break;
            }
            if rest.starts_with(['{', '[']) {
                return Err(EditError::FlowStyle(path[..=depth].join(".")));
            }
            (from, to, indent) = (line + 1, block_end(lines, line + 1, level), None);
        }
    }
    Ok(out)
}

/// The value after a key's colon, without its comment and surrounding space.
fn value_text(after_colon: &str) -> &str {
    let value = after_colon.trim_end_matches(['\n', '\r']);
    let value = match value.find(" #") {
        Some(i) => &value[..i],
        None => value,
    };
    value.trim()
}

/// Find the scalar at `path`: (line index, value start byte, value end byte, quote char).
fn locate_scalar(
    lines: &[&str],
    path: &[&str],
    dotted: &str,
) -> Result<(usize, usize, usize, Option<char>), EditError> {
    let walked = walk(lines, path)?;
    let depth = walked.found.len();
    if depth < path.len() {
        return Err(if walked.empty_flow {
            EditError::FlowStyle(path[..depth].join("."))
        } else {
            EditError::Missing(path[..=depth].join("."))
        });
    }
    let index = walked.found[depth - 1].0;
    let line = lines[index];
    let (_, after_colon) = key_of(line).ok_or_else(|| EditError::Missing(dotted.to_owned()))?;
    let value_start = after_colon
        + (line[after_colon..].len() - line[after_colon..].trim_start_matches(' ').len());
    let value = &line[value_start..];
    let complex = || EditError::ComplexValue(dotted.to_owned());
    match value.chars().next() {
        Some(q @ ('"' | '\'')) => {
            // Find the closing quote, skipping escapes (`\"` in double, `''` in single quotes).
            let bytes = value.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                match (q, bytes[i]) {
                    ('"', b'\\') => i += 2,
                    ('\'', b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                    (_, b) if b == q as u8 => {
                        return Ok((index, value_start, value_start + i + 1, Some(q)));
                    }
                    _ => i += 1,
                }
            }
            Err(complex())
        }
        Some(c)
            if !matches!(
                c,
                '\n' | '\r' | '#' | '|' | '>' | '&' | '*' | '!' | '[' | '{'
            ) =>
        {
            let end = value.find(" #").unwrap_or(value.len());
            let token = value[..end].trim_end();
            Ok((index, value_start, value_start + token.len(), None))
        }
        _ => Err(complex()),
    }
}

/// Like `set_scalar`, but a missing key is added, with the mappings that lead to it: in block
/// style, at the end of the deepest mapping that exists (an empty `{}` one included), indented
/// like its siblings. The result is checked by reading it back, like `set_scalar`'s.
pub fn upsert_scalar(text: &str, path: &[&str], value: &str) -> Result<String, EditError> {
    match set_scalar(text, path, value) {
        Err(EditError::Missing(_)) => insert_scalar(text, path, value),
        Err(EditError::FlowStyle(at)) if walk_stops_at_empty_flow(text, path) => {
            insert_scalar(text, path, value).map_err(|_| EditError::FlowStyle(at))
        }
        other => other,
    }
}

fn walk_stops_at_empty_flow(text: &str, path: &[&str]) -> bool {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    walk(&lines, path).is_ok_and(|w| w.empty_flow)
}

/// Add the scalar at `path` below the deepest key of it that exists, with the keys missing
/// in between; plain if that reads back as the string `value`, else quoted.
fn insert_scalar(text: &str, path: &[&str], value: &str) -> Result<String, EditError> {
    let dotted = path.join(".");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let at = insertion_point(&lines, path, &dotted)?;
    let expected = expected_after_insert(text, path, value, &dotted)?;
    for written in [
        value.to_owned(),
        Value::String(value.to_owned()).to_string(),
    ] {
        let edited = write_insertion(&lines, &at, &path[at.depth..], &written);
        let reread: Option<Value> = yaml::from_str(&edited, Path::new(MANIFEST_FILE)).ok();
        if reread.as_ref() == Some(&expected) {
            return Ok(edited);
        }
    }
    Err(EditError::NotRoundTrip(dotted))
}

/// Where `insert_scalar` writes: below the deepest key of the path that exists.
struct InsertAt {
    /// How many keys of the path exist.
    depth: usize,
    /// The line of the deepest key that exists.
    parent: usize,
    /// The byte offset after that key's colon.
    after_colon: usize,
    /// That key is written `key: {}`: the braces go, the new keys come below.
    empty_flow: bool,
    /// The line before which the new keys are written: the end of the parent's block.
    end: usize,
    /// The indentation of the first new key, and the step to each one below it.
    child_indent: usize,
    unit: usize,
    /// The parent line's line ending, for the lines written.
    eol: &'static str,
}

/// Find where the missing keys of `path` go, or why they cannot be added in place.
fn insertion_point(lines: &[&str], path: &[&str], dotted: &str) -> Result<InsertAt, EditError> {
    let walked = walk(lines, path)?;
    let depth = walked.found.len();
    // Only below a key that exists: kpin never adds a top-level section.
    let Some(&(parent, parent_indent)) = walked.found.last().filter(|_| depth < path.len()) else {
        return Err(EditError::Missing(dotted.to_owned()));
    };
    let plain_key = |k: &str| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !path[depth..].iter().all(|k| plain_key(k)) {
        return Err(EditError::NotRoundTrip(dotted.to_owned()));
    }
    let parent_line = lines[parent];
    let (_, after_colon) =
        key_of(parent_line).ok_or_else(|| EditError::Missing(dotted.to_owned()))?;
    let parent_value = value_text(&parent_line[after_colon..]);
    if !(parent_value.is_empty() || walked.empty_flow) {
        return Err(EditError::ComplexValue(path[..depth].join(".")));
    }
    let eol = if parent_line.ends_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    // The indentation step of the file, from the keys found (two spaces in a flat file).
    let unit = walked
        .found
        .windows(2)
        .filter_map(|w| w[1].1.checked_sub(w[0].1).filter(|n| *n > 0))
        .next_back()
        .unwrap_or(2);
    let end = if walked.empty_flow {
        parent + 1
    } else {
        block_end(lines, parent + 1, parent_indent)
    };
    let child_indent = lines[parent + 1..end]
        .iter()
        .find_map(|l| indent_of(l))
        .unwrap_or(parent_indent + unit);
    Ok(InsertAt {
        depth,
        parent,
        after_colon,
        empty_flow: walked.empty_flow,
        end,
        child_indent,
        unit,
        eol,
    })
}

/// The parsed document as it must read after `insert_scalar`, with the missing mappings.
fn expected_after_insert(
    text: &str,
    path: &[&str],
    value: &str,
    dotted: &str,
) -> Result<Value, EditError> {
    let mut expected: Value = yaml::from_str(text, Path::new(MANIFEST_FILE))
        .map_err(|_| EditError::NotRoundTrip(dotted.to_owned()))?;
    let mut at = &mut expected;
    for key in path {
        if !at.is_object() {
            *at = Value::Object(serde_json::Map::new());
        }
        at = at
            .as_object_mut()
            .ok_or_else(|| EditError::NotRoundTrip(dotted.to_owned()))?
            .entry(key.to_string())
            .or_insert(Value::Null);
    }
    *at = Value::String(value.to_owned());
    Ok(expected)
}

/// The file with `new_keys` written at the end of the parent's block, each below the one
/// before, and `written` as the value of the last.
fn write_insertion(lines: &[&str], at: &InsertAt, new_keys: &[&str], written: &str) -> String {
    let eol = at.eol;
    let mut edited = String::with_capacity(lines.iter().map(|l| l.len()).sum::<usize>() + 64);
    for (i, l) in lines.iter().enumerate() {
        if i == at.end {
            break;
        }
        if i == at.parent && at.empty_flow {
            // `key: {}  # note` becomes `key:  # note` with the new entries below it.
            let parent_line = lines[at.parent];
            let brace = at.after_colon + parent_line[at.after_colon..].find("{}").unwrap_or(0);
            edited.push_str(parent_line[..brace].trim_end());
            let rest = &parent_line[brace + 2..];
            let comment = rest.trim_end_matches(['\n', '\r']).trim_end();
            if !comment.trim().is_empty() {
                edited.push(' ');
                edited.push_str(comment.trim_start());
            }
            edited.push_str(eol);
            continue;
        }
        edited.push_str(l);
    }
    if !edited.is_empty() && !edited.ends_with('\n') {
        edited.push_str(eol);
    }
    for (k, key) in new_keys.iter().enumerate() {
        edited.push_str(&" ".repeat(at.child_indent + k * at.unit));
        edited.push_str(key);
        edited.push(':');
        if k + 1 == new_keys.len() {
            edited.push(' ');
            edited.push_str(written);
        }
        edited.push_str(eol);
    }
    for l in &lines[at.end.min(lines.len())..] {
        edited.push_str(l);
    }
    edited
}

/// Remove the scalar at `path` (its line), and the mappings on its path it leaves empty, but
/// never those of the first `keep` keys. Comments inside a removed mapping go with it; the
/// rest of the file stays as it was. Checked by reading the result back.
pub fn remove_scalar(text: &str, path: &[&str], keep: usize) -> Result<String, EditError> {
    let dotted = path.join(".");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (index, ..) = locate_scalar(&lines, path, &dotted)?;
    let found = walk(&lines, path)?.found;
    let (mut start, mut end) = (index, index + 1);
    for depth in (keep..path.len() - 1).rev() {
        let (line, indent) = found[depth];
        let block_to = block_end(&lines, line + 1, indent);
        let others = (line + 1..block_to)
            .any(|i| !(start..end).contains(&i) && indent_of(lines[i]).is_some());
        if others {
            break;
        }
        (start, end) = (line, block_to.max(end));
    }
    let mut expected: Value = yaml::from_str(text, Path::new(MANIFEST_FILE))
        .map_err(|_| EditError::NotRoundTrip(dotted.clone()))?;
    for depth in (keep.max(1)..path.len()).rev() {
        let Some(map) = expected
            .pointer_mut(&json_pointer(&path[..depth]))
            .and_then(Value::as_object_mut)
        else {
            return Err(EditError::NotRoundTrip(dotted));
        };
        map.remove(path[depth]);
        if !map.is_empty() || depth <= keep {
            break;
        }
    }
    let edited: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !(start..end).contains(i))
        .map(|(_, l)| *l)
        .collect();
    let reread: Option<Value> = yaml::from_str(&edited, Path::new(MANIFEST_FILE)).ok();
    if reread.as_ref() == Some(&expected) {
        Ok(edited)
    } else {
        Err(EditError::NotRoundTrip(dotted))
    }
}

/// Set `packages.<package>.environments.<env>.version` to `version` (adding what is missing),
/// or remove it with `None` (and the mappings it leaves empty, up to the package).
pub fn set_env_version(
    text: &str,
    package: &str,
    env: &str,
    version: Option<&str>,
) -> Result<String, EditError> {
    let path = ["packages", package, "environments", env, "version"];
    match version {
        Some(v) => upsert_scalar(text, &path, v),
        None => remove_scalar(text, &path, 2),
    }
}

/// `set_env_version` with the error mapped for users: names the file and gives a hint.
pub fn edit_env_version(
    text: &str,
    manifest_path: &Path,
    package: &str,
    env: &str,
    version: Option<&str>,
) -> Result<String> {
    set_env_version(text, package, env, version)
        .map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "{}: cannot {} the version of `{package}` in environment {env} in place",
                manifest_path.display(),
                if version.is_some() { "set" } else { "remove" }
            ))
        })
        .hint(format!(
            "write `packages.{package}.environments` in block style (one key per line), or edit it by hand"
        ))
}

/// kpin.yaml `text` with the versions of `package` in their canonical form, and what changed
/// for the report: when every environment runs one version, it becomes the package's
/// `version`; an environment's own version equal to the package's is removed (it follows the
/// package again).
pub fn normalise_versions(
    text: &str,
    manifest_path: &Path,
    package: &str,
) -> Result<(String, Vec<String>)> {
    let manifest = Manifest::parse(text, manifest_path)?;
    let Some(p) = manifest.packages.get(package) else {
        return Ok((text.to_owned(), Vec::new()));
    };
    let mut text = text.to_owned();
    let mut notes = Vec::new();
    let mut version = p.version.raw.clone();
    let used: std::collections::BTreeSet<&str> = manifest
        .environments
        .keys()
        .map(|e| p.version_in(Some(e)).raw.as_str())
        .collect();
    let collapsed = match used.into_iter().collect::<Vec<_>>().as_slice() {
        [only] if *only != version => Some((*only).to_owned()),
        _ => None,
    };
    if let Some(only) = &collapsed {
        text = edit_manifest_version(&text, manifest_path, package, only)?;
        notes.push(format!(
            "every environment runs {only} now: it becomes the package's version ({version} before), and the environments' own versions go"
        ));
        version.clone_from(only);
    }
    for (env, v) in &p.env_versions {
        if v.raw == version {
            text = edit_env_version(&text, manifest_path, package, env, None)?;
            if collapsed.is_none() {
                notes.push(format!(
                    "{env} follows the package's version {version} again: environments.{env}.version removed"
                ));
            }
        }
    }
    Ok((text, notes))
}

/// `set_package_version` with the error mapped for users: names the file and gives a hint.
pub fn edit_manifest_version(
    text: &str,
    manifest_path: &Path,
    package: &str,
    version: &str,
) -> Result<String> {
    match set_package_version(text, package, version) {
        Ok(t) => Ok(t),
        Err(e) => {
            let err = anyhow::Error::new(e).context(format!(
                "{}: cannot update the version of `{package}` in place",
                manifest_path.display()
            ));
            Err(err).hint(format!(
                "write the package in block style with a one-line `version:` (e.g. `version: \"{version}\"`), or edit it by hand"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "\
# Our pinned packages.
environments:
  dev: {}

packages:
  # The ingress controller; see the runbook before upgrading.
  ingress-nginx:
    # pinned until the new admission webhook is tested
    version: 1.9.4   # keep in sync with the dashboard
    url: https://example.com/controller-v{version}/deploy.yaml
    versions:
      github: kubernetes/ingress-nginx
      version: nested-not-this-one
  \"metrics\":
    overlays: [overlays/m.yaml]
    version: 'v0.7.2'
    url: https://example.com/v{version}/components.yaml
  float:
    version: \"1.10\"
    url: https://example.com/{version}/a.yaml
";

    #[test]
    fn edits_only_the_version_value_keeping_comments() {
        let out = set_package_version(MANIFEST, "ingress-nginx", "1.10.6").unwrap();
        assert_eq!(
            out,
            MANIFEST.replace("version: 1.9.4   #", "version: 1.10.6   #")
        );
        let out = set_package_version(MANIFEST, "metrics", "v0.8.1").unwrap();
        assert_eq!(out, MANIFEST.replace("'v0.7.2'", "'v0.8.1'"));
        let out = set_package_version(MANIFEST, "float", "1.11").unwrap();
        assert_eq!(out, MANIFEST.replace("\"1.10\"", "\"1.11\""));
    }

    #[test]
    fn plain_values_that_would_read_as_numbers_get_quoted() {
        let text = "packages:\n  a:\n    version: 1.9.4\n    url: https://x/{version}\n";
        assert_eq!(
            set_package_version(text, "a", "1.10").unwrap(),
            "packages:\n  a:\n    version: \"1.10\"\n    url: https://x/{version}\n"
        );
        assert_eq!(
            set_package_version(text, "a", "2.0.0").unwrap(),
            "packages:\n  a:\n    version: 2.0.0\n    url: https://x/{version}\n"
        );
    }

    #[test]
    fn crlf_and_odd_indentation_survive() {
        let text = "packages:\r\n    a:\r\n          url: https://x\r\n          version: \"1.0.0\"\r\n    b:\r\n          version: 1.0.0\r\n";
        let out = set_package_version(text, "b", "1.1.0").unwrap();
        assert_eq!(
            out,
            text.replace("version: 1.0.0\r\n", "version: 1.1.0\r\n")
        );
        let out = set_package_version(text, "a", "2.0.0").unwrap();
        assert_eq!(out, text.replace("\"1.0.0\"", "\"2.0.0\""));
    }

    #[test]
    fn same_named_package_in_another_block_is_not_touched() {
        let text = "environments:\n  a:\n    version: 9\npackages:\n  a:\n    version: 1.0.0\n";
        let out = set_package_version(text, "a", "1.1.0").unwrap();
        assert_eq!(
            out,
            "environments:\n  a:\n    version: 9\npackages:\n  a:\n    version: 1.1.0\n"
        );
    }

    #[test]
    fn unsupported_layouts_are_refused() {
        let flow = "packages:\n  a: {version: 1.0.0, url: 'https://x'}\n";
        let err = set_package_version(flow, "a", "2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`packages.a` is written in flow style ({...}), which kpin does not edit"
        );
        let missing = "packages:\n  a:\n    url: https://x\n";
        let err = set_package_version(missing, "a", "2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no `packages.a.version` written in block style"
        );
        let err = set_package_version(missing, "b", "2").unwrap_err();
        assert_eq!(err.to_string(), "no `packages.b` written in block style");
        let anchor = "packages:\n  a:\n    version: &v 1.0.0\n";
        assert!(matches!(
            set_package_version(anchor, "a", "2"),
            Err(EditError::ComplexValue(_))
        ));
        assert!(matches!(
            set_package_version("packages: {}\n", "a", "2"),
            Err(EditError::FlowStyle(_))
        ));
        let err = edit_manifest_version(flow, Path::new("kpin.yaml"), "a", "2.0.0").unwrap_err();
        let text = crate::error::render_error(&err);
        assert!(
            text.contains("kpin.yaml: cannot update the version of `a` in place"),
            "{text}"
        );
        assert!(
            text.contains("hint: write the package in block style"),
            "{text}"
        );
    }

    #[test]
    fn nested_pins_are_edited_by_key_path() {
        let text = "packages:\n  a:\n    version: 1.0.0\n    sha256:\n      # per file\n      crds.yaml: \"00\"\n      deploy.yaml: ab12 # pinned\n";
        let out = set_scalar(text, &["packages", "a", "sha256", "deploy.yaml"], "1234").unwrap();
        assert_eq!(out, text.replace("ab12 #", "\"1234\" #"));
        let single = "packages:\n  a:\n    sha256: ab\n    version: 1.0.0\n";
        let out = set_scalar(single, &["packages", "a", "sha256"], "cd").unwrap();
        assert_eq!(out, "packages:\n  a:\n    sha256: cd\n    version: 1.0.0\n");
    }

    const ENVS: &str = "\
environments:
  dev: {}
  qa: {}
  prod: {}
packages:
  web:
    version: 1.9.4 # everyone
    url: https://x/{version}/a.yaml
  app:
    version: 1.0.0
    url: https://x/{version}/a.yaml
    environments:
      # dev is special
      dev:
        overlays: [o.yaml]
      qa: {}   # nothing yet
";

    #[test]
    fn an_environment_version_is_added_where_its_mapping_is() {
        // No `environments:` under the package yet: the whole path is added at its end.
        let out = set_env_version(ENVS, "web", "dev", Some("1.10.6")).unwrap();
        assert_eq!(
            out,
            ENVS.replace(
                "    url: https://x/{version}/a.yaml\n  app:",
                "    url: https://x/{version}/a.yaml\n    environments:\n      dev:\n        version: 1.10.6\n  app:"
            )
        );
        // Below an existing block mapping, and into an empty `{}` one (its comment kept).
        let out = set_env_version(ENVS, "app", "dev", Some("1.10")).unwrap();
        assert!(
            out.contains("        overlays: [o.yaml]\n        version: \"1.10\"\n      qa: {}"),
            "{out}"
        );
        let out = set_env_version(ENVS, "app", "qa", Some("2.0.0")).unwrap();
        assert!(
            out.contains("      qa: # nothing yet\n        version: 2.0.0\n"),
            "{out}"
        );
        // A missing environment mapping is added after the others.
        let out = set_env_version(ENVS, "app", "prod", Some("2.0.0")).unwrap();
        assert!(
            out.ends_with("      qa: {}   # nothing yet\n      prod:\n        version: 2.0.0\n"),
            "{out}"
        );
        // And an existing value is edited like any scalar.
        let again = set_env_version(&out, "app", "prod", Some("2.1.0")).unwrap();
        assert_eq!(again, out.replace("version: 2.0.0", "version: 2.1.0"));
    }

    #[test]
    fn removing_an_environment_version_removes_what_it_leaves_empty() {
        for (package, env) in [("web", "dev"), ("app", "dev"), ("app", "prod")] {
            let added = set_env_version(ENVS, package, env, Some("3.0.0")).unwrap();
            let removed = set_env_version(&added, package, env, None).unwrap();
            assert_eq!(removed, ENVS, "{package} {env}");
        }
        // `qa: {}` held nothing before either: the mapping goes with the version.
        let added = set_env_version(ENVS, "app", "qa", Some("3.0.0")).unwrap();
        let removed = set_env_version(&added, "app", "qa", None).unwrap();
        assert_eq!(removed, ENVS.replace("      qa: {}   # nothing yet\n", ""));
        let flow =
            "packages:\n  a:\n    version: 1.0.0\n    environments: {dev: {version: 2.0.0}}\n";
        assert!(matches!(
            set_env_version(flow, "a", "dev", None),
            Err(EditError::FlowStyle(_))
        ));
        let err =
            edit_env_version(flow, Path::new("kpin.yaml"), "a", "dev", Some("3.0.0")).unwrap_err();
        let text = crate::error::render_error(&err);
        assert!(
            text.contains("cannot set the version of `a` in environment dev in place"),
            "{text}"
        );
        assert!(
            text.contains("hint: write `packages.a.environments` in block style"),
            "{text}"
        );
    }

    #[test]
    fn normalising_collapses_one_version_everywhere_into_the_package_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kpin.yaml");
        let mut text = ENVS.to_owned();
        for env in ["dev", "qa"] {
            text = set_env_version(&text, "web", env, Some("1.10.6")).unwrap();
        }
        // dev and qa ahead, prod behind: nothing to tidy.
        let (same, notes) = normalise_versions(&text, &path, "web").unwrap();
        assert_eq!((same.as_str(), notes.len()), (text.as_str(), 0));
        // prod too: the package's version moves, the environments' own versions go.
        text = set_env_version(&text, "web", "prod", Some("1.10.6")).unwrap();
        let (out, notes) = normalise_versions(&text, &path, "web").unwrap();
        assert_eq!(out, ENVS.replace("1.9.4 # everyone", "1.10.6 # everyone"));
        assert!(
            notes[0].starts_with("every environment runs 1.10.6 now"),
            "{notes:?}"
        );
        // An environment back on the package's version follows it again.
        let back = set_env_version(ENVS, "web", "dev", Some("1.9.4")).unwrap();
        let (out, notes) = normalise_versions(&back, &path, "web").unwrap();
        assert_eq!(out, ENVS);
        assert_eq!(
            notes,
            ["dev follows the package's version 1.9.4 again: environments.dev.version removed"]
        );
    }

    proptest::proptest! {
        /// Any version text lands in the file as exactly that string, and no other line moves.
        #[test]
        fn any_version_text_is_written_faithfully(version in "[0-9A-Za-z][0-9A-Za-z._+-]{0,24}") {
            let out = set_package_version(MANIFEST, "ingress-nginx", &version).unwrap();
            let doc: Value = yaml::from_str(&out, Path::new(MANIFEST_FILE)).unwrap();
            proptest::prop_assert_eq!(doc["packages"]["ingress-nginx"]["version"].as_str(), Some(version.as_str()));
            let changed: Vec<(&str, &str)> = MANIFEST.lines().zip(out.lines()).filter(|(a, b)| a != b).collect();
            proptest::prop_assert_eq!(changed.len(), usize::from(version != "1.9.4"));
            proptest::prop_assert_eq!(MANIFEST.lines().count(), out.lines().count());
        }
    }

    #[test]
    fn escaped_quotes_are_handled() {
        let text = "packages:\n  a:\n    version: 'it''s' # odd\n";
        assert_eq!(
            set_package_version(text, "a", "x").unwrap(),
            "packages:\n  a:\n    version: 'x' # odd\n"
        );
    }
}
