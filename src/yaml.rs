//! All YAML reading and writing: Kubernetes-faithful decoding of upstream releases and a
//! deterministic emitter for everything kpin writes.
//!
//! Reading uses `serde-saphyr` configured like Kubernetes' `sigs.k8s.io/yaml` (YAML 1.1 booleans
//! and octals, bounded alias expansion); see `docs/yaml.md` for the measurement behind the choice.
//! Writing uses a small emitter of our own so output bytes never depend on a library's defaults:
//! block style, kubectl-style sequence indentation, and quoting of every string a YAML 1.1 or 1.2
//! reader could take for something else.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Largest input kpin agrees to parse (a multi-MB CRD bundle is ~4 MB; this leaves headroom).
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;
/// Deepest nesting accepted; real manifests stay far below (CRD schemas reach ~30).
pub const MAX_DEPTH: usize = 256;

/// A YAML document that could not be read, with the file and position.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", origin.display())]
pub struct YamlError {
    pub origin: PathBuf,
    pub message: String,
}

impl YamlError {
    fn new(origin: &Path, message: impl Into<String>) -> Self {
        YamlError {
            origin: origin.to_path_buf(),
            message: message.into(),
        }
    }
}

/// How plain scalars are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// kpin's own files (kpin.yaml, kpin.lock): YAML 1.2 core schema, so `y`, `on` and `0755`
    /// stay the strings users meant.
    Kpin,
    /// Kubernetes objects and the values patched into them: YAML 1.1 like `sigs.k8s.io/yaml`.
    Kubernetes,
}

fn options(flavor: Flavor) -> serde_saphyr::Options {
    match flavor {
        Flavor::Kpin => serde_saphyr::options! {
            legacy_octal_numbers: false,
            strict_booleans: true,
            duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
            alias_limits: alias_limits(),
        },
        Flavor::Kubernetes => k8s_options(),
    }
}

fn k8s_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        // sigs.k8s.io/yaml reads YAML 1.1: `0755` is octal 493, `yes`/`on` are booleans.
        legacy_octal_numbers: true,
        strict_booleans: false,
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
        alias_limits: alias_limits(),
    }
}

/// Alias bombs ("billion laughs") stop after a bounded amount of replay.
fn alias_limits() -> serde_saphyr::options::AliasLimits {
    let mut limits = serde_saphyr::options::AliasLimits::default();
    limits.max_total_replayed_events = 100_000;
    limits.max_replay_stack_depth = 32;
    limits.max_alias_expansions_per_anchor = 1_000;
    limits
}

fn check_size(text: &str, origin: &Path) -> Result<(), YamlError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(YamlError::new(
            origin,
            format!(
                "file is {} bytes, larger than the {} byte limit",
                text.len(),
                MAX_INPUT_BYTES
            ),
        ));
    }
    Ok(())
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
    let value: Value = serde_saphyr::from_str_with_options(text, options(flavor))
        .map_err(|e| YamlError::new(origin, e.to_string()))?;
    check_depth(&value, origin)?;
    serde_json::from_value(value).map_err(|e| YamlError::new(origin, e.to_string()))
}

/// Read a multi-document stream of Kubernetes objects as the API server would see them.
///
/// Empty documents (`---` followed by nothing, or only comments) are dropped; every other
/// document must be a mapping.
pub fn documents(text: &str, origin: &Path) -> Result<Vec<Value>, YamlError> {
    check_size(text, origin)?;
    let docs: Vec<Option<Value>> =
        serde_saphyr::from_multiple_with_options(text, k8s_options())
            .map_err(|e| YamlError::new(origin, e.to_string()))?;
    let mut out = Vec::with_capacity(docs.len());
    for (index, doc) in docs.into_iter().enumerate() {
        match doc {
            None | Some(Value::Null) => {}
            Some(value @ Value::Object(_)) => {
                check_depth(&value, origin)?;
                out.push(value);
            }
            Some(other) => {
                return Err(YamlError::new(
                    origin,
                    format!(
                        "document {} is a {}, expected a Kubernetes object (a mapping)",
                        index + 1,
                        json_type_name(&other)
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn check_depth(value: &Value, origin: &Path) -> Result<(), YamlError> {
    fn depth(v: &Value) -> usize {
        // Iterative to stay safe on adversarial input.
        let mut max = 0;
        let mut stack = vec![(v, 1usize)];
        while let Some((v, d)) = stack.pop() {
            max = max.max(d);
            if d > MAX_DEPTH {
                return d;
            }
            match v {
                Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
                Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
                _ => {}
            }
        }
        max
    }
    if depth(value) > MAX_DEPTH {
        return Err(YamlError::new(
            origin,
            format!("nesting deeper than {MAX_DEPTH} levels"),
        ));
    }
    Ok(())
}

pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// Serialize any value to deterministic YAML (one document, no leading `---`).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(v) => emit(&v),
        // Only non-string map keys fail here; kpin's own types have none.
        Err(e) => format!("# unserializable value: {e}\n"),
    }
}

/// Emit a JSON value as one YAML document.
pub fn emit(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            write_scalar(&mut out, scalar, 0);
            out.push('\n');
        }
    }
    out
}

/// Emit several documents separated by `---`.
pub fn emit_documents<'a>(docs: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&emit(doc));
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, level: usize) {
    let mut first = true;
    for (key, value) in map {
        if !first {
            indent(out, level);
        }
        first = false;
        write_string(out, key, level, true);
        out.push(':');
        write_child(out, value, level, true);
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    let mut first = true;
    for item in items {
        if !first {
            indent(out, level);
        }
        first = false;
        out.push('-');
        write_child(out, item, level, false);
    }
}

/// Write the value after `key:` or `-`. Maps under a key go on the next line indented by two;
/// sequences under a key stay at the key's indentation (kubectl style); items of a sequence
/// continue on the dash's line.
fn write_child(out: &mut String, value: &Value, level: usize, under_key: bool) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            if under_key {
                out.push('\n');
                indent(out, level + 2);
            } else {
                out.push(' ');
            }
            write_map(out, map, level + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            if under_key {
                out.push('\n');
                indent(out, level);
                write_seq(out, items, level);
            } else {
                out.push(' ');
                write_seq(out, items, level + 2);
            }
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, level);
            out.push('\n');
        }
    }
}

fn write_scalar(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s, level, false),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn write_string(out: &mut String, s: &str, level: usize, is_key: bool) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else if !is_key && literal_block_ok(s) {
        write_literal(out, s, level);
    } else {
        write_double_quoted(out, s);
    }
}

/// Strings that every YAML 1.1 and 1.2 reader takes as this exact string when written plain.
pub fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.trim() != s || s.len() > 1024 {
        return false;
    }
    if matches!(
        first,
        '-' | '?' | ':' | ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\''
            | '"' | '%' | '@' | '`' | '=' | '<' | '~'
    ) {
        // `-foo` and `--flag=x` are plain-safe; a lone `-` or `- x` is not.
        let dash_ok = first == '-' && s.len() > 1 && !s[1..].starts_with(' ') && !looks_numeric(s);
        if !dash_ok {
            return false;
        }
    }
    if s.ends_with(':') || s.contains(": ") || s.contains(" #") {
        return false;
    }
    if s.chars().any(|c| c.is_control() || c == '\u{feff}' || c == '\u{2028}' || c == '\u{2029}' || c == '\u{85}') {
        return false;
    }
    if is_reserved_word(s) || looks_numeric(s) {
        return false;
    }
    true
}

/// Words YAML 1.1 (Kubernetes) or 1.2 read as null or boolean.
fn is_reserved_word(s: &str) -> bool {
    matches!(
        s,
        "~" | "null" | "Null" | "NULL"
            | "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO"
            | "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
            | "on" | "On" | "ON" | "off" | "Off" | "OFF"
            | ".inf" | ".Inf" | ".INF" | "-.inf" | "+.inf" | ".nan" | ".NaN" | ".NAN"
    )
}

/// Anything a YAML 1.1 reader might take as a number or timestamp (deliberately broad:
/// a needlessly quoted string costs nothing, a misread one breaks a deployment).
fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let Some(first) = body.chars().next() else {
        return false;
    };
    if !(first.is_ascii_digit() || first == '.') {
        return false;
    }
    body.chars().all(|c| {
        c.is_ascii_hexdigit() || matches!(c, '.' | '_' | ':' | '-' | '+' | 'x' | 'X' | 'o' | 'O' | 't' | 'T' | 'z' | 'Z' | ' ')
    })
}

fn literal_block_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.chars().any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}' || c == '\u{85}' || c == '\u{2028}' || c == '\u{2029}')
        // Trailing spaces on a line survive a literal block, but whitespace-only lines before
        // content confuse indentation detection in some readers; quote those.
        && !s.lines().any(|l| !l.is_empty() && l.trim().is_empty())
        && !s.starts_with('\n')
}

fn write_literal(out: &mut String, s: &str, level: usize) {
    let body_indent = level + 2;
    out.push('|');
    if s.starts_with(' ') || s.starts_with('\t') {
        let _ = write!(out, "2");
    }
    let trailing = s.len() - s.trim_end_matches('\n').len();
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    let content = s.strip_suffix('\n').unwrap_or(s);
    for line in content.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(out, body_indent);
            out.push_str(line);
        }
    }
    // The caller writes the newline that ends the scalar.
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{feff}' | '\u{85}' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(v: &Value) -> Value {
        let text = emit(v);
        documents(&text, Path::new("t.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .pop()
            .unwrap()
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_survive() {
        let v = json!({"a": ["on", "yes", "=", "0755", "1e3", "null", "", " x", "-", "- x", "a: b", "x #y", "--flag=a,b", "2024-01-01", "<<"]});
        let text = emit(&v);
        assert!(text.contains("- --flag=a,b\n"), "{text}");
        assert!(text.contains("- \"on\"\n"), "{text}");
        assert_eq!(roundtrip(&v), v);
    }

    #[test]
    fn kubernetes_reads_yaml_1_1_scalars() {
        let docs = documents("a: yes\nb: on\nc: 0755\nd: '0755'\ne: =\n", Path::new("t")).unwrap();
        assert_eq!(docs[0], json!({"a": true, "b": true, "c": 493, "d": "0755", "e": "="}));
    }

    #[test]
    fn multiline_strings_use_literal_blocks() {
        let v = json!({"script": "#!/bin/sh\necho hi\n", "nochomp": "a\nb", "keep": "a\n\n", "lead": "  x\ny\n"});
        let text = emit(&v);
        assert!(text.contains("script: |\n  #!/bin/sh\n  echo hi\n"), "{text}");
        assert_eq!(roundtrip(&v), v);
    }

    #[test]
    fn nested_structures_use_kubectl_layout() {
        let v = json!({"spec": {"containers": [{"name": "c", "args": ["--a", "--b"], "env": []}], "empty": {}}});
        assert_eq!(
            emit(&v),
            "spec:\n  containers:\n  - name: c\n    args:\n    - --a\n    - --b\n    env: []\n  empty: {}\n"
        );
        assert_eq!(roundtrip(&v), v);
    }

    #[test]
    fn empty_documents_and_comments_are_skipped() {
        let text = "# leading comment\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\ndata: null\n---\n";
        let docs = documents(text, Path::new("t")).unwrap();
        assert_eq!(docs, vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "data": null})]);
    }

    #[test]
    fn non_mapping_documents_are_errors_naming_the_file() {
        let err = documents("- a\n", Path::new("up/deploy.yaml")).unwrap_err();
        assert_eq!(err.to_string(), "up/deploy.yaml: document 1 is a list, expected a Kubernetes object (a mapping)");
    }
}
