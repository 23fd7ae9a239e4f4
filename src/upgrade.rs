//! `kpin upgrade`: move a package to a newer version, report what changes upstream and after
//! overlays, and write kpin.yaml, kpin.lock and vendor/ all together or not at all.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::error::HintExt;
use crate::manifest::MANIFEST_FILE;
use crate::yaml;

// ---------------------------------------------------------------------------------------------
// Editing the version line of kpin.yaml.
// ---------------------------------------------------------------------------------------------

/// Why a value in kpin.yaml could not be edited in place.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no `{0}` written in block style")]
    Missing(String),
    #[error("`{0}` is written in flow style ({{...}}), which kpin does not edit")]
    FlowStyle(String),
    #[error("`{0}` is not a plain or quoted scalar on one line")]
    ComplexValue(String),
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
    let pointer: String = path
        .iter()
        .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
        .collect();
    *doc.pointer_mut(&pointer)? = Value::String(value.to_owned());
    Some(doc)
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
    let (key, after) = match rest.chars().next()? {
        q @ ('"' | '\'') => {
            let end = rest[1..].find(q)? + 1;
            (rest[1..end].to_owned(), end + 1)
        }
        _ => {
            let colon = rest.find(':')?;
            (rest[..colon].trim_end().to_owned(), colon)
        }
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

/// Find the scalar at `path`: (line index, value start byte, value end byte, quote char).
fn locate_scalar(
    lines: &[&str],
    path: &[&str],
    dotted: &str,
) -> Result<(usize, usize, usize, Option<char>), EditError> {
    let missing = |depth: usize| EditError::Missing(path[..=depth].join("."));
    // The block to search: lines [from, to) at indentation `indent`.
    let (mut from, mut to, mut indent) = (0, lines.len(), Some(0));
    let mut found = None;
    for (depth, key) in path.iter().enumerate() {
        let level = indent
            .or_else(|| lines[from..to].iter().find_map(|l| indent_of(l)))
            .ok_or_else(|| missing(depth))?;
        let line = (from..to)
            .find(|&i| {
                indent_of(lines[i]) == Some(level)
                    && key_of(lines[i]).is_some_and(|(k, _)| k == *key)
            })
            .ok_or_else(|| missing(depth))?;
        let (_, after) = key_of(lines[line]).ok_or_else(|| missing(depth))?;
        if depth + 1 < path.len() {
            let rest = lines[line][after..].trim();
            if rest.starts_with(['{', '[']) {
                return Err(EditError::FlowStyle(path[..=depth].join(".")));
            }
            (from, to, indent) = (line + 1, block_end(lines, line + 1, level), None);
        }
        found = Some((line, after));
    }
    let (index, after_colon) = found.ok_or_else(|| EditError::Missing(dotted.to_owned()))?;
    let line = lines[index];
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

    #[test]
    fn escaped_quotes_are_handled() {
        let text = "packages:\n  a:\n    version: 'it''s' # odd\n";
        assert_eq!(
            set_package_version(text, "a", "x").unwrap(),
            "packages:\n  a:\n    version: 'x' # odd\n"
        );
    }
}
