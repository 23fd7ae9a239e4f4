//! The deterministic YAML emitter for everything kpin writes: block style, kubectl-style
//! sequence indentation, and quoting of every string a YAML 1.1 or 1.2 reader could take for
//! something else.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::resolve::{TypedScalar, resolve_plain};

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
        '-' | '?'
            | ':'
            | ','
            | '['
            | ']'
            | '{'
            | '}'
            | '#'
            | '&'
            | '*'
            | '!'
            | '|'
            | '>'
            | '\''
            | '"'
            | '%'
            | '@'
            | '`'
            | '='
            | '<'
            | '~'
    ) {
        // `-foo` and `--flag=x` are plain-safe; a lone `-`, `- x` or a `---` marker is not.
        let dash_ok = first == '-'
            && s.len() > 1
            && !s[1..].starts_with(' ')
            && !s.starts_with("---")
            && !looks_numeric(s);
        if !dash_ok {
            return false;
        }
    }
    if s.ends_with(':') || s.contains(": ") || s.contains(" #") {
        return false;
    }
    if s.chars()
        .any(|c| c.is_control() || !is_yaml_printable(c) || is_line_break(c))
    {
        return false;
    }
    // Belt and braces: what go-yaml v2 (Kubernetes) types, plus a broad net for YAML 1.1/1.2
    // numbers, timestamps and sexagesimals that other readers know.
    resolve_plain(s) == TypedScalar::Str && !is_reserved_word(s) && !looks_numeric(s)
}

/// Characters YAML allows in a document without escaping.
fn is_yaml_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

/// Characters some YAML 1.1 readers treat as line breaks.
fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Words YAML 1.1 (Kubernetes) or 1.2 read as null, boolean or a special float, in any case.
fn is_reserved_word(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "~", "null", "y", "yes", "n", "no", "true", "false", "on", "off", ".inf", "-.inf", "+.inf",
        ".nan", "<<", "=",
    ];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

/// Anything a YAML 1.1 reader might take as a number or timestamp (deliberately broad:
/// a needlessly quoted string costs nothing, a misread one breaks a deployment).
fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let all = |t: &str, ok: fn(u8) -> bool| !t.is_empty() && t.bytes().all(|b| ok(b) || b == b'_');
    let decimal = |t: &str| all(t, |b| b.is_ascii_digit());
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return false;
    }
    // Radix integers: 0x1F (both), 0o17 (1.2), 0b101 (1.1); 017 is covered as a decimal below.
    for (prefix, ok) in [
        ("0x", (|b: u8| b.is_ascii_hexdigit()) as fn(u8) -> bool),
        ("0X", |b| b.is_ascii_hexdigit()),
        ("0o", |b| (b'0'..=b'7').contains(&b)),
        ("0b", |b| b == b'0' || b == b'1'),
    ] {
        if let Some(rest) = body.strip_prefix(prefix) {
            return all(rest, ok);
        }
    }
    // Dates: go-yaml turns `2024-01-01` into a timestamp, which JSON conversion rewrites.
    let bytes = body.as_bytes();
    if bytes.len() >= 8 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' {
        return true;
    }
    // YAML 1.1 sexagesimal numbers (`1:30`), which Kubernetes reads as 90.
    if body.contains(':') {
        return body
            .split(':')
            .all(|part| decimal(part) || all(part, |b| b.is_ascii_digit() || b == b'.'));
    }
    // Decimal and float: digits with at most one dot, then an optional exponent.
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = mantissa.bytes().filter(|&b| b == b'.').count() <= 1
        && mantissa.bytes().any(|b| b.is_ascii_digit())
        && all(mantissa, |b| b.is_ascii_digit() || b == b'.');
    let exponent_ok = exponent.is_none_or(|e| decimal(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

fn literal_block_ok(s: &str) -> bool {
    s.contains('\n')
        && !s
            .chars()
            .any(|c| (is_line_break(c) && c != '\n') || (c.is_control() && c != '\n' && c != '\t') || !is_yaml_printable(c))
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
            c if c.is_control() || is_line_break(c) || !is_yaml_printable(c) => {
                if (c as u32) > 0xffff {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                } else {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod numeric_tests {
    use super::looks_numeric;

    #[test]
    fn numbers_dates_and_sexagesimals_are_numeric_versions_and_digests_are_not() {
        for yes in [
            "1",
            "-1",
            "+1.5",
            ".5",
            "1e3",
            "1E-3",
            "0x1F",
            "0o17",
            "0b101",
            "0755",
            "1_000",
            "1:30",
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "1.",
            "6.02e+23",
        ] {
            assert!(looks_numeric(yes), "{yes}");
        }
        for no in [
            "1.2.0",
            "v1",
            "08260f92d2ce",
            "1.2.3-rc.1",
            "1e",
            "10Mi",
            "100m",
            "0x",
            "e3",
            "1:a",
            ".",
        ] {
            assert!(!looks_numeric(no), "{no}");
        }
    }
}
