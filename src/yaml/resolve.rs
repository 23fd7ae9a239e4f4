//! Kubernetes scalar resolution: a plain scalar typed the way go-yaml v2 `resolve()` types it,
//! then converted the way `sigs.k8s.io/yaml`'s JSON step converts it.

use std::borrow::Cow;

use granit_parser::{ScalarStyle, Tag};
use serde_json::{Number, Value};

use crate::error::quote;

// ---------------------------------------------------------------------------------------------
// Kubernetes scalar resolution (go-yaml v2 `resolve()` plus `sigs.k8s.io/yaml`'s JSON step)

/// A plain scalar typed the way go-yaml v2 types it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum TypedScalar {
    Null,
    Bool(bool),
    Int(i64),
    /// Above `i64::MAX`: go-yaml keeps a `uint64`, which the API server's JSON decoder turns
    /// into a float.
    Uint(u64),
    Float(f64),
    Str,
}

/// go-yaml v2's `resolve()` for an untagged plain scalar. Mixed-case words (`tRUE`), YAML 1.1
/// sexagesimals (`1:20`) and timestamps stay strings; underscores vanish from numbers (`1_000`);
/// a leading `0` means octal, `0x`/`0o`/`0b` (either case) pick the base.
pub(super) fn resolve_plain(s: &str) -> TypedScalar {
    let Some(&first) = s.as_bytes().first() else {
        return TypedScalar::Null;
    };
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return TypedScalar::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return TypedScalar::Bool(false);
        }
        "~" | "null" | "Null" | "NULL" => return TypedScalar::Null,
        ".nan" | ".NaN" | ".NAN" => return TypedScalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return TypedScalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return TypedScalar::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match first {
        // Go's ParseFloat on the text as written: no underscores allowed here.
        b'.' => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => TypedScalar::Float(f),
            _ => TypedScalar::Str,
        },
        b'+' | b'-' | b'0'..=b'9' => {
            let plain: Cow<str> = if s.contains('_') {
                Cow::Owned(s.replace('_', ""))
            } else {
                Cow::Borrowed(s)
            };
            if let Some(int) = go_parse_int(&plain) {
                return int;
            }
            if yaml_style_float(&plain) {
                // An overflow (`1e400`) is a ParseFloat error in Go: the scalar stays a string.
                if let Ok(f) = plain.parse::<f64>()
                    && f.is_finite()
                {
                    return TypedScalar::Float(f);
                }
            }
            TypedScalar::Str
        }
        _ => TypedScalar::Str,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, falling back to `ParseUint` for unsigned text.
fn go_parse_int(s: &str) -> Option<TypedScalar> {
    let (negative, signed, body) = match s.as_bytes().first()? {
        b'+' => (false, true, &s[1..]),
        b'-' => (true, true, &s[1..]),
        _ => (false, false, s),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits) = match body.as_bytes() {
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'b') => (2, &body[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'o') => (8, &body[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'x') => (16, &body[2..]),
        [b'0', ..] => (8, &body[1..]),
        _ => (10, body),
    };
    if !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let magnitude = if digits.is_empty() {
        0
    } else {
        u64::from_str_radix(digits, radix).ok()?
    };
    if negative {
        // Down to i64::MIN, whose magnitude (2^63) no positive i64 holds.
        0_i64.checked_sub_unsigned(magnitude).map(TypedScalar::Int)
    } else if let Ok(int) = i64::try_from(magnitude) {
        Some(TypedScalar::Int(int))
    } else {
        (!signed).then_some(TypedScalar::Uint(magnitude))
    }
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The JSON value the API server ends up with: `sigs.k8s.io/yaml` marshals go-yaml's value to
/// JSON and the server decodes numbers back as int64 when they fit, float64 otherwise.
pub(super) fn resolved_to_json(resolved: TypedScalar, text: &str) -> Result<Value, String> {
    Ok(match resolved {
        TypedScalar::Null => Value::Null,
        TypedScalar::Bool(b) => Value::Bool(b),
        TypedScalar::Int(i) => Value::from(i),
        TypedScalar::Uint(u) => float_to_json(u as f64),
        TypedScalar::Float(f) if !f.is_finite() => {
            return Err(format!(
                "{} is not a finite number and cannot be converted to JSON (Kubernetes rejects it too); quote it if a string is meant",
                quote(text)
            ));
        }
        TypedScalar::Float(f) => float_to_json(f),
        TypedScalar::Str => Value::String(text.to_owned()),
    })
}

/// Go's JSON encoder writes integral floats below 1e21 without a fraction, so the API server
/// reads them back as integers when they fit int64.
fn float_to_json(f: f64) -> Value {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
        #[allow(clippy::cast_possible_truncation)] // integral and within i64's range: exact
        let int = f as i64;
        Value::from(int)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// The mapping key `sigs.k8s.io/yaml` produces for a resolved scalar key (`on:` becomes
/// `"true"`, `0755:` becomes `"493"`).
pub(super) fn resolved_to_key(resolved: TypedScalar, text: &str) -> Result<String, String> {
    match resolved {
        TypedScalar::Str => Ok(text.to_owned()),
        TypedScalar::Bool(b) => Ok(b.to_string()),
        TypedScalar::Int(i) => Ok(i.to_string()),
        TypedScalar::Float(f) => Ok(go_format_g32(f)),
        TypedScalar::Null => Err(format!(
            "mapping key {} is null, which Kubernetes cannot read; quote it",
            quote(text)
        )),
        TypedScalar::Uint(_) => Err(format!(
            "mapping key {} is an unsigned 64-bit integer, which Kubernetes cannot read; quote it",
            quote(text)
        )),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, which `sigs.k8s.io/yaml` uses for float keys.
pub(super) fn go_format_g32(f: f64) -> String {
    #[allow(clippy::cast_possible_truncation)] // Go formats the key at float32 precision
    let x = f as f32;
    if x.is_nan() {
        return ".nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if x != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{x}")
    }
}

fn yaml_tag_name(tag: &Tag) -> Option<Cow<'_, str>> {
    tag.suffix_in_namespace("tag:yaml.org,2002:")
}

/// Resolve a scalar with its style and explicit tag, as go-yaml v2's decoder does.
pub(super) fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
) -> Result<TypedScalar, String> {
    let Some(tag) = tag else {
        return Ok(match style {
            ScalarStyle::Plain => resolve_plain(text),
            _ => TypedScalar::Str,
        });
    };
    let Some(name) = yaml_tag_name(tag) else {
        // Local tags (`!foo`) are not resolvable in go-yaml: the text is kept as a string.
        return Ok(TypedScalar::Str);
    };
    let resolved = resolve_plain(text);
    let ok = match name.as_ref() {
        "binary" => {
            return Err("`!!binary` scalars are not supported in Kubernetes objects".into());
        }
        "int" => matches!(resolved, TypedScalar::Int(_) | TypedScalar::Uint(_)),
        "float" => match resolved {
            TypedScalar::Int(i) => return Ok(TypedScalar::Float(i as f64)),
            TypedScalar::Float(_) => true,
            _ => false,
        },
        "bool" => matches!(resolved, TypedScalar::Bool(_)),
        "null" => resolved == TypedScalar::Null,
        // `!!str`, `!!timestamp` (go-yaml v2 leaves it a string) and tags it does not know.
        _ => return Ok(TypedScalar::Str),
    };
    if ok {
        Ok(resolved)
    } else {
        Err(format!("cannot decode {} as a !!{name}", quote(text)))
    }
}

pub(super) fn is_merge_key(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> bool {
    match tag {
        Some(tag) => yaml_tag_name(tag).is_some_and(|n| n == "merge"),
        None => style == ScalarStyle::Plain && text == "<<",
    }
}
