//! All YAML reading and writing: Kubernetes-faithful decoding of upstream releases and a
//! deterministic emitter for everything kpin writes.
//!
//! Kubernetes objects are read the way `kubectl` and the API server read them
//! (`sigs.k8s.io/yaml`: go-yaml v2 scalar resolution, then a JSON round trip). No serde YAML
//! library types scalars that way, so kpin walks the events of `granit-parser` (the parser
//! under `serde-saphyr`) and resolves every plain scalar itself. kpin's own files use
//! `serde-saphyr` with YAML 1.2 typing. `docs/yaml.md` has the measurements and every known
//! deviation. Writing uses a small emitter of our own so output bytes never depend on a
//! library's defaults: block style, kubectl-style sequence indentation, and quoting of every
//! string a YAML 1.1 or 1.2 reader could take for something else.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use granit_parser::{Event, Marker, Parser, ScalarStyle, Tag};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use crate::error::quote;
use crate::object::Object;

/// Largest input kpin agrees to parse (a multi-MB CRD bundle is ~4 MB; this leaves headroom).
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;
/// Deepest nesting accepted; real manifests stay far below (CRD schemas reach ~30).
pub const MAX_DEPTH: usize = 200;
/// Most nodes that alias expansion may add to one stream. Real releases use few or no
/// aliases; a "billion laughs" document hits this after a few megabytes of work.
pub const MAX_ALIAS_NODES: usize = 100_000;

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

    /// An error at a source position (`line 3 column 7: ...`, both counted from 1).
    fn at(origin: &Path, mark: &Marker, message: impl std::fmt::Display) -> Self {
        Self::new(
            origin,
            format!("line {} column {}: {message}", mark.line(), mark.col() + 1),
        )
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

/// A value's YAML shape, for messages: `a list`, `a string`, ...
pub fn shape(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "a mapping",
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "nothing",
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

/// Read a multi-document stream of Kubernetes objects as the API server would see them.
///
/// Empty documents (`---` followed by nothing, or only comments) are dropped; every other
/// document must be a mapping.
pub fn documents(text: &str, origin: &Path) -> Result<Vec<Value>, YamlError> {
    check_size(text, origin)?;
    let docs = read_stream(text, origin)?;
    let mut out = Vec::with_capacity(docs.len());
    for (index, doc) in docs.into_iter().enumerate() {
        match doc {
            None | Some(Value::Null) => {}
            Some(value @ Value::Object(_)) => out.push(value),
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

/// The objects of a multi-document stream, with `kind: List` (and any other `*List` kind that
/// carries `items`) flattened into its items, the way `kubectl apply -f` and kustomize do.
pub fn objects_from_stream(text: &str, origin: &Path) -> Result<Vec<Object>, YamlError> {
    let mut out = Vec::new();
    for doc in documents(text, origin)? {
        flatten_list(doc, origin, &mut out)?;
    }
    Ok(out)
}

fn flatten_list(value: Value, origin: &Path, out: &mut Vec<Object>) -> Result<(), YamlError> {
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value
            .get("items")
            .is_some_and(|i| i.is_array() || i.is_null());
    if !is_list {
        out.push(Object(value));
        return Ok(());
    }
    let kind = value["kind"].as_str().unwrap_or("List").to_owned();
    let Value::Object(mut map) = value else {
        return Ok(());
    };
    let items = match map.remove("items") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Value::Null => {}
            item @ Value::Object(_) => flatten_list(item, origin, out)?,
            other => {
                return Err(YamlError::new(
                    origin,
                    format!(
                        "{kind} items[{index}] is a {}, expected a Kubernetes object (a mapping)",
                        json_type_name(&other)
                    ),
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Kubernetes scalar resolution (go-yaml v2 `resolve()` plus `sigs.k8s.io/yaml`'s JSON step)

/// A plain scalar typed the way go-yaml v2 types it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Resolved {
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
fn resolve_plain(s: &str) -> Resolved {
    let Some(&first) = s.as_bytes().first() else {
        return Resolved::Null;
    };
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Resolved::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Resolved::Bool(false);
        }
        "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match first {
        // Go's ParseFloat on the text as written: no underscores allowed here.
        b'.' => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Resolved::Float(f),
            _ => Resolved::Str,
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
                    return Resolved::Float(f);
                }
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, falling back to `ParseUint` for unsigned text.
fn go_parse_int(s: &str) -> Option<Resolved> {
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
        (magnitude <= 1 << 63).then(|| Resolved::Int((magnitude as i64).wrapping_neg()))
    } else if let Ok(int) = i64::try_from(magnitude) {
        Some(Resolved::Int(int))
    } else {
        (!signed).then_some(Resolved::Uint(magnitude))
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
fn resolved_to_json(resolved: Resolved, text: &str) -> Result<Value, String> {
    Ok(match resolved {
        Resolved::Null => Value::Null,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(i) => Value::from(i),
        Resolved::Uint(u) => float_to_json(u as f64),
        Resolved::Float(f) if !f.is_finite() => {
            return Err(format!(
                "{} is not a finite number and cannot be converted to JSON (Kubernetes rejects it too); quote it if a string is meant",
                quote(text)
            ));
        }
        Resolved::Float(f) => float_to_json(f),
        Resolved::Str => Value::String(text.to_owned()),
    })
}

/// Go's JSON encoder writes integral floats below 1e21 without a fraction, so the API server
/// reads them back as integers when they fit int64.
fn float_to_json(f: f64) -> Value {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// The mapping key `sigs.k8s.io/yaml` produces for a resolved scalar key (`on:` becomes
/// `"true"`, `0755:` becomes `"493"`).
fn resolved_to_key(resolved: Resolved, text: &str) -> Result<String, String> {
    match resolved {
        Resolved::Str => Ok(text.to_owned()),
        Resolved::Bool(b) => Ok(b.to_string()),
        Resolved::Int(i) => Ok(i.to_string()),
        Resolved::Float(f) => Ok(go_format_g32(f)),
        Resolved::Null => Err(format!(
            "mapping key {} is null, which Kubernetes cannot read; quote it",
            quote(text)
        )),
        Resolved::Uint(_) => Err(format!(
            "mapping key {} is an unsigned 64-bit integer, which Kubernetes cannot read; quote it",
            quote(text)
        )),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, which `sigs.k8s.io/yaml` uses for float keys.
fn go_format_g32(f: f64) -> String {
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
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Resolved, String> {
    let Some(tag) = tag else {
        return Ok(match style {
            ScalarStyle::Plain => resolve_plain(text),
            _ => Resolved::Str,
        });
    };
    let Some(name) = yaml_tag_name(tag) else {
        // Local tags (`!foo`) are not resolvable in go-yaml: the text is kept as a string.
        return Ok(Resolved::Str);
    };
    let resolved = resolve_plain(text);
    let ok = match name.as_ref() {
        "str" | "timestamp" => return Ok(Resolved::Str),
        "binary" => {
            return Err("`!!binary` scalars are not supported in Kubernetes objects".into());
        }
        "int" => matches!(resolved, Resolved::Int(_) | Resolved::Uint(_)),
        "float" => match resolved {
            Resolved::Int(i) => return Ok(Resolved::Float(i as f64)),
            Resolved::Float(_) => true,
            _ => false,
        },
        "bool" => matches!(resolved, Resolved::Bool(_)),
        "null" => resolved == Resolved::Null,
        _ => return Ok(Resolved::Str),
    };
    if ok {
        Ok(resolved)
    } else {
        Err(format!("cannot decode {} as a !!{name}", quote(text)))
    }
}

fn is_merge_key(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> bool {
    match tag {
        Some(tag) => yaml_tag_name(tag).is_some_and(|n| n == "merge"),
        None => style == ScalarStyle::Plain && text == "<<",
    }
}

// ---------------------------------------------------------------------------------------------
// Event stream to JSON values

enum PendingKey {
    Name(String, Marker),
    Merge(Marker),
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        /// Keys that came from a `<<` merge and may still be overridden without a
        /// duplicate-key error.
        merged: HashSet<String>,
        key: Option<PendingKey>,
        anchor: usize,
    },
}

struct Anchored {
    value: Value,
    nodes: usize,
    height: usize,
}

struct Builder<'a> {
    origin: &'a Path,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    alias_nodes: usize,
    root: Option<Value>,
}

/// Every document of a stream; `None` for empty ones.
fn read_stream(text: &str, origin: &Path) -> Result<Vec<Option<Value>>, YamlError> {
    let mut options = granit_parser::Options::default();
    options.set_emit_comments(false);
    options.block_nesting_limit = MAX_DEPTH;
    options.flow_nesting_limit = MAX_DEPTH;
    let mut builder = Builder {
        origin,
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
    };
    let mut docs = Vec::new();
    for next in Parser::new_from_str_with_options(text, options) {
        let (event, span) = next.map_err(|e| {
            let info = e.info();
            if info.contains("recursion limit") {
                YamlError::at(
                    origin,
                    e.marker(),
                    format!("nesting deeper than {MAX_DEPTH} levels"),
                )
            } else {
                YamlError::at(origin, e.marker(), info)
            }
        })?;
        let mark = span.start;
        match event {
            Event::DocumentStart(..) => {
                builder.anchors.clear();
                builder.root = None;
            }
            Event::DocumentEnd => docs.push(builder.root.take()),
            Event::Scalar(text, style, anchor, tag) => {
                builder.scalar(&text, style, anchor, tag.as_deref(), &mark)?
            }
            Event::SequenceStart(_, anchor, _) => builder.open(
                Frame::Seq {
                    items: Vec::new(),
                    anchor,
                },
                &mark,
            )?,
            Event::MappingStart(_, anchor, _) => builder.open(
                Frame::Map {
                    map: Map::new(),
                    merged: HashSet::new(),
                    key: None,
                    anchor,
                },
                &mark,
            )?,
            Event::SequenceEnd | Event::MappingEnd => builder.close(&mark)?,
            Event::Alias(id) => builder.alias(id, &mark)?,
            _ => {}
        }
    }
    Ok(docs)
}

impl Builder<'_> {
    fn err(&self, mark: &Marker, message: impl std::fmt::Display) -> YamlError {
        YamlError::at(self.origin, mark, message)
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn set_key(&mut self, key: PendingKey) {
        if let Some(Frame::Map { key: slot, .. }) = self.stack.last_mut() {
            *slot = Some(key);
        }
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        mark: &Marker,
    ) -> Result<(), YamlError> {
        if self.expecting_key() && is_merge_key(text, style, tag) {
            self.set_key(PendingKey::Merge(*mark));
            return Ok(());
        }
        let resolved = resolve_scalar(text, style, tag).map_err(|m| self.err(mark, m))?;
        if self.expecting_key() {
            let name = resolved_to_key(resolved, text).map_err(|m| self.err(mark, m))?;
            if anchor != 0 {
                self.remember(anchor, Value::String(name.clone()));
            }
            self.set_key(PendingKey::Name(name, *mark));
            return Ok(());
        }
        let value = resolved_to_json(resolved, text).map_err(|m| self.err(mark, m))?;
        self.complete(value, anchor, mark)
    }

    fn open(&mut self, frame: Frame, mark: &Marker) -> Result<(), YamlError> {
        if self.expecting_key() {
            return Err(self.err(
                mark,
                "a mapping key is a list or mapping, which Kubernetes cannot read",
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.err(mark, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self, mark: &Marker) -> Result<(), YamlError> {
        let (value, anchor) = match self.stack.pop() {
            Some(Frame::Seq { items, anchor }) => (Value::Array(items), anchor),
            Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
            None => return Err(self.err(mark, "unbalanced end of collection")),
        };
        self.complete(value, anchor, mark)
    }

    fn alias(&mut self, id: usize, mark: &Marker) -> Result<(), YamlError> {
        let Some(anchored) = self.anchors.get(&id) else {
            return Err(self.err(mark, "alias to an unknown anchor"));
        };
        if self.expecting_key() {
            let key = match &anchored.value {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => i.to_string(),
                    None => go_format_g32(n.as_f64().unwrap_or(f64::NAN)),
                },
                _ => {
                    return Err(self.err(
                        mark,
                        "a mapping key is an alias to a non-string node, which Kubernetes cannot read",
                    ));
                }
            };
            self.set_key(PendingKey::Name(key, *mark));
            return Ok(());
        }
        self.alias_nodes += anchored.nodes;
        if self.alias_nodes > MAX_ALIAS_NODES {
            return Err(self.err(
                mark,
                format!("aliases expand to more than {MAX_ALIAS_NODES} nodes (a YAML alias bomb?)"),
            ));
        }
        if self.stack.len() + anchored.height > MAX_DEPTH {
            return Err(self.err(
                mark,
                format!("alias expands to nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        let value = anchored.value.clone();
        self.complete(value, 0, mark)
    }

    fn remember(&mut self, anchor: usize, value: Value) {
        let (nodes, height) = measure(&value);
        self.anchors.insert(
            anchor,
            Anchored {
                value,
                nodes,
                height,
            },
        );
    }

    /// A node is finished: store it under its anchor and attach it to its parent.
    fn complete(&mut self, value: Value, anchor: usize, mark: &Marker) -> Result<(), YamlError> {
        if anchor != 0 {
            self.remember(anchor, value.clone());
        }
        let origin = self.origin;
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, merged, key, ..
            }) => match key.take() {
                Some(PendingKey::Name(name, key_mark)) => {
                    if map.contains_key(&name) && !merged.remove(&name) {
                        return Err(YamlError::at(
                            origin,
                            &key_mark,
                            format!(
                                "duplicate mapping key {} (kubectl would silently keep the last value)",
                                quote(&name)
                            ),
                        ));
                    }
                    map.insert(name, value);
                }
                Some(PendingKey::Merge(merge_mark)) => merge_into(map, merged, value)
                    .map_err(|m| YamlError::at(origin, &merge_mark, m))?,
                // A collection in key position was refused in `open`.
                None => return Err(YamlError::at(origin, mark, "mapping value without a key")),
            },
        }
        Ok(())
    }
}

/// go-yaml v2's `<<`: entries overwrite what the mapping holds so far; in a list of
/// mappings, earlier ones win.
fn merge_into(
    map: &mut Map<String, Value>,
    merged: &mut HashSet<String>,
    value: Value,
) -> Result<(), String> {
    let sources = match value {
        Value::Object(source) => vec![source],
        Value::Array(items) => {
            let mut sources = Vec::with_capacity(items.len());
            for item in items.into_iter().rev() {
                match item {
                    Value::Object(source) => sources.push(source),
                    _ => return Err("a `<<` merge list must contain only mappings".into()),
                }
            }
            sources
        }
        _ => return Err("a `<<` merge needs a mapping or a list of mappings".into()),
    };
    for source in sources {
        for (k, v) in source {
            merged.insert(k.clone());
            map.insert(k, v);
        }
    }
    Ok(())
}

/// Node count and nesting height of a value, without recursion.
fn measure(value: &Value) -> (usize, usize) {
    let mut nodes = 0;
    let mut height = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        nodes += 1;
        height = height.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    (nodes, height)
}

fn check_depth(value: &Value, origin: &Path) -> Result<(), YamlError> {
    if measure(value).1 > MAX_DEPTH {
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
    resolve_plain(s) == Resolved::Str && !is_reserved_word(s) && !looks_numeric(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_yaml_shapes_not_rust_types() {
        #[derive(Debug, serde::Deserialize)]
        struct Doc {
            _a: Option<u8>,
        }
        let origin = Path::new("k.yaml");
        let err = from_str::<Doc>("hello\n", origin).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.yaml: invalid type: string \"hello\", expected a mapping"
        );
        let err = from_str::<Vec<Doc>>("{}\n", origin).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.yaml: invalid type: mapping, expected a list"
        );
        assert_eq!(
            user_words("expected a mapping, or expected a map"),
            "expected a mapping, or expected a mapping"
        );
        let err = from_str::<Doc>("# nothing yet\n", origin).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.yaml: the file is empty or only has comments"
        );
    }
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn read(text: &str) -> Result<Vec<Value>, YamlError> {
        documents(text, Path::new("up/t.yaml"))
    }

    fn roundtrip(v: &Value) -> Value {
        let text = emit(v);
        read(&text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .pop()
            .unwrap_or(Value::Null)
    }

    /// One `data:` value as Kubernetes reads it.
    fn k8s(scalar: &str) -> Value {
        let doc = format!("data:\n  v: {scalar}\n");
        read(&doc).unwrap_or_else(|e| panic!("{scalar}: {e}"))[0]["data"]["v"].clone()
    }

    /// Expected values were produced by `kubectl annotate --local -f` (sigs.k8s.io/yaml over
    /// go-yaml v2), kubectl v1.32.
    #[test]
    fn plain_scalars_resolve_like_kubectl() {
        let cases: &[(&str, Value)] = &[
            ("yes", json!(true)),
            ("Yes", json!(true)),
            ("YES", json!(true)),
            ("yEs", json!("yEs")),
            ("y", json!(true)),
            ("N", json!(false)),
            ("on", json!(true)),
            ("Off", json!(false)),
            ("oFF", json!("oFF")),
            ("tRUE", json!("tRUE")),
            ("True", json!(true)),
            ("~", Value::Null),
            ("Null", Value::Null),
            ("nULL", json!("nULL")),
            ("", Value::Null),
            ("=", json!("=")),
            ("==", json!("==")),
            ("a=b", json!("a=b")),
            ("<<x", json!("<<x")),
            ("0755", json!(493)),
            ("+0755", json!(493)),
            ("-0755", json!(-493)),
            ("'0755'", json!("0755")),
            ("0999", json!(999)),
            ("07.5", json!(7.5)),
            ("0o17", json!(15)),
            ("0O17", json!(15)),
            ("0x1F", json!(31)),
            ("0X1f", json!(31)),
            ("-0x1F", json!(-31)),
            ("0B11", json!(3)),
            ("-0b101", json!(-5)),
            ("0x", json!("0x")),
            ("0b", json!("0b")),
            ("1_000", json!(1000)),
            ("1_", json!(1)),
            ("_1", json!("_1")),
            ("0_x1f", json!(31)),
            ("1e1_0", json!(10_000_000_000i64)),
            ("1.", json!(1)),
            (".5", json!(0.5)),
            ("+.5", json!(0.5)),
            ("1e3", json!(1000)),
            ("1E3", json!(1000)),
            ("1.5e-3", json!(0.0015)),
            ("0.0000001", json!(1e-7)),
            ("-0.0", json!(0)),
            ("!!float 1", json!(1)),
            ("!!int 0755", json!(493)),
            ("!!str 0755", json!("0755")),
            ("!!bool yes", json!(true)),
            ("!custom 12", json!("12")),
            ("9223372036854775807", json!(i64::MAX)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("9223372036854775808", json!(9_223_372_036_854_775_808.0f64)),
            (
                "18446744073709551615",
                json!(18_446_744_073_709_551_615.0f64),
            ),
            ("0xFFFFFFFFFFFFFFFF", json!(18_446_744_073_709_551_615.0f64)),
            ("0x10000000000000000", json!("0x10000000000000000")),
            ("12345678901234567890123", json!(1.2345678901234568e22)),
            ("-12345678901234567890123", json!(-1.2345678901234568e22)),
            ("1e400", json!("1e400")),
            ("1:20:30", json!("1:20:30")),
            ("2001-12-14", json!("2001-12-14")),
            (
                "2001-12-14t21:59:43.10-05:00",
                json!("2001-12-14t21:59:43.10-05:00"),
            ),
            ("1,000", json!("1,000")),
            ("+", json!("+")),
            ("-.", json!("-.")),
            ("1e", json!("1e")),
        ];
        let mut wrong = Vec::new();
        for (text, want) in cases {
            let got = k8s(text);
            let same = match (got.as_f64(), want.as_f64()) {
                // Equal numbers, and integers stay integers.
                (Some(a), Some(b)) => a == b && got.is_f64() == want.is_f64(),
                _ => &got == want,
            };
            if !same {
                wrong.push(format!("{text:?}: got {got}, want {want}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn mapping_keys_are_stringified_like_kubectl() {
        let text = "data:\n  on: a\n  Off: b\n  0755: d\n  0x1F: e\n  1.5: f\n  1e3: g\n  1e6: h\n  0.00001: i\n  12345678.9: r\n  -0.0: k\n  \"yes\": l\n  2024-01-01: m\n  tRUE: p\n  1e400: q\n";
        let data = read(text).unwrap()[0]["data"].clone();
        let mut keys: Vec<_> = data.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "-0",
                "0.1e-3",
                "1.2345679e+07",
                "1.5",
                "1000",
                "1e+06",
                "1e-05",
                "1e400",
                "2024-01-01",
                "31",
                "493",
                "false",
                "tRUE",
                "true",
                "yes"
            ]
            .iter()
            .filter(|k| **k != "0.1e-3")
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
        );
        let err = read("data:\n  ~: x\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "up/t.yaml: line 2 column 3: mapping key `~` is null, which Kubernetes cannot read; quote it"
        );
    }

    #[test]
    fn merge_keys_follow_go_yaml_v2() {
        // kubectl: a merge overrides keys written before it, later keys override the merge,
        // and in a list of mappings the earlier mapping wins.
        let text =
            "b: &b {m1: a, m2: b}\no: &o {m2: c, m3: d}\ndata:\n  m1: t\n  <<: [*b, *o]\n  m3: u\n";
        let doc = &read(text).unwrap()[0];
        assert_eq!(doc["data"], json!({"m1": "a", "m2": "b", "m3": "u"}));
    }

    #[test]
    fn duplicate_keys_are_errors_with_position() {
        let err = read("kind: A\nkind: B\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "up/t.yaml: line 2 column 1: duplicate mapping key `kind` (kubectl would silently keep the last value)"
        );
    }

    #[test]
    fn infinities_are_errors_like_kubectl() {
        let err = read("data:\n  v: .inf\n").unwrap_err().to_string();
        assert!(
            err.starts_with("up/t.yaml: line 2 column 6: `.inf` is not a finite number"),
            "{err}"
        );
    }

    #[test]
    fn malformed_yaml_names_file_line_and_column() {
        let err = read("kind: A\nmetadata:\n  name: [x\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("up/t.yaml: line "), "{err}");
        let err = read("a: b\n c: d\n").unwrap_err().to_string();
        assert!(err.starts_with("up/t.yaml: line 2 column "), "{err}");
    }

    #[test]
    fn alias_bombs_fail_fast_in_bounded_memory() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = Instant::now();
        let err = read(&text).unwrap_err().to_string();
        assert!(err.contains("alias bomb"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // kpin's own files go through serde-saphyr with its replay limits.
        let err = from_str::<Value>(&text, Path::new("kpin.yaml")).unwrap_err();
        assert!(err.to_string().starts_with("kpin.yaml: "), "{err}");
    }

    #[test]
    fn deep_nesting_fails_cleanly() {
        for text in [
            format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            format!("a: {}{}\n", "{x: ".repeat(100_000), "}".repeat(100_000)),
            (0..1000)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect(),
            format!(
                "a: &a {}\nb: [[*a, *a]]\n",
                "[".repeat(198) + &"]".repeat(198)
            ),
        ] {
            let Err(err) = read(&text) else {
                panic!("accepted: {}", &text[..100]);
            };
            let err = err.to_string();
            assert!(
                err.starts_with("up/t.yaml: line "),
                "{}",
                &err[..err.len().min(300)]
            );
            assert!(from_str::<Value>(&text, Path::new("kpin.yaml")).is_err());
        }
    }

    #[test]
    fn lists_are_flattened() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMapList, items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}]}\n---\nkind: List\nitems: []\n";
        let objects = objects_from_stream(text, Path::new("t")).unwrap();
        let names: Vec<_> = objects.iter().map(|o| o.name().to_owned()).collect();
        assert_eq!(names, ["a", "b"]);
        let err = objects_from_stream("kind: List\nitems: [1]\n", Path::new("t")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t: List items[0] is a number, expected a Kubernetes object (a mapping)"
        );
    }

    #[test]
    fn crlf_line_endings_read_like_lf() {
        let text = "kind: ConfigMap\r\ndata:\r\n  script: |\r\n    a\r\n    b\r\n  v: on\r\n";
        assert_eq!(
            read(text).unwrap()[0],
            json!({"kind": "ConfigMap", "data": {"script": "a\nb\n", "v": true}})
        );
    }

    #[test]
    fn kubernetes_flavor_reads_one_typed_value() {
        let v: Value = from_str_flavored(
            "replicas: 0x10\nx: on\n",
            Path::new("p.yaml"),
            Flavor::Kubernetes,
        )
        .unwrap();
        assert_eq!(v, json!({"replicas": 16, "x": true}));
        let err =
            from_str_flavored::<Vec<String>>("- 1\n", Path::new("p.yaml"), Flavor::Kubernetes)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.yaml: [0]: invalid type: integer `1`, expected a string"
        );
    }

    #[test]
    fn kpin_flavor_keeps_yaml_1_2_strings() {
        let v: Value = from_str("a: on\nb: 0755\nc: y\n", Path::new("kpin.yaml")).unwrap();
        let err = from_str::<Value>("a: 1\na: 2\n", Path::new("kpin.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kpin.yaml: duplicate mapping key: a at line 2, column 1"
        );
        assert_eq!(v, json!({"a": "on", "b": "0755", "c": "y"}));
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_survive() {
        let v = json!({"a": ["on", "yes", "Y", "=", "0755", "1e3", "null", "", " x", "-", "- x", "a: b", "x #y", "--flag=a,b", "2024-01-01", "<<", "---", "--- x", "...", "0o17", "1_000", "+1", ".5", ".inf", "1:20", "\u{feff}x", "\u{fffe}", "tab\there", "a\rb", "\u{85}"], "on": 1, "0755": 2, ".dockerconfigjson": 3});
        let text = emit(&v);
        assert!(text.contains("- --flag=a,b\n"), "{text}");
        assert!(text.contains("- \"on\"\n"), "{text}");
        assert!(text.contains("\n\"on\": 1\n"), "{text}");
        assert!(text.contains("\n.dockerconfigjson: 3\n"), "{text}");
        assert_eq!(roundtrip(&v), v);
    }

    #[test]
    fn multiline_strings_use_literal_blocks() {
        let v = json!({"script": "#!/bin/sh\necho hi\n", "nochomp": "a\nb", "keep": "a\n\n", "lead": "  x\ny\n", "list": ["  x\ny", "a\n"]});
        let text = emit(&v);
        assert!(
            text.contains("script: |\n  #!/bin/sh\n  echo hi\n"),
            "{text}"
        );
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
        let docs = read(text).unwrap();
        assert_eq!(
            docs,
            vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "data": null})]
        );
    }

    #[test]
    fn non_mapping_documents_are_errors_naming_the_file() {
        let err = documents("- a\n", Path::new("up/deploy.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "up/deploy.yaml: document 1 is a list, expected a Kubernetes object (a mapping)"
        );
    }

    proptest::proptest! {
        /// Whatever string a patch or upstream carries, the emitter writes it so that kpin's
        /// Kubernetes reader gets the same string back.
        #[test]
        fn any_string_survives_emit_and_read(
            key in "[ -~\u{a0}-\u{ff}\t\n]{0,12}",
            value in "([ -~]|\n|\t|\r|\u{85}|\u{2028}|\u{feff}|\u{1F600}|é|:|#|-|0|x){0,24}",
        ) {
            let v = json!({ "data": { key: value } });
            proptest::prop_assert_eq!(roundtrip(&v), v);
        }

        #[test]
        fn numbers_and_words_survive(word in "[0-9a-fA-FxXoObBeE._+:-]{1,10}|[yYnNoOtTfF][a-zA-Z]{0,4}") {
            let v = json!({ "data": { "k": word } });
            proptest::prop_assert_eq!(roundtrip(&v), v);
        }
    }
}
