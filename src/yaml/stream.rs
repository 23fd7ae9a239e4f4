//! Kubernetes YAML streams read as the API server reads them: parser events built into JSON
//! values (anchors, merge keys, limits), documents split, `List` kinds flattened.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use granit_parser::{Event, Marker, Parser, ScalarStyle, Tag};
use serde_json::{Map, Value};

use super::resolve::{
    go_format_g32, is_merge_key, resolve_scalar, resolved_to_json, resolved_to_key,
};
use super::{MAX_ALIAS_NODES, MAX_DEPTH, YamlError, check_size, json_type_name};
use crate::error::quote;

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

/// The objects of a multi-document stream as JSON values, with `kind: List` (and any other
/// `*List` kind that carries `items`) flattened into its items, the way `kubectl apply -f` and
/// kustomize do. `Object::from_stream` gives them their type.
pub fn object_values(text: &str, origin: &Path) -> Result<Vec<Value>, YamlError> {
    let mut out = Vec::new();
    for doc in documents(text, origin)? {
        flatten_list(doc, origin, &mut out)?;
    }
    Ok(out)
}

fn flatten_list(value: Value, origin: &Path, out: &mut Vec<Value>) -> Result<(), YamlError> {
    let is_list = value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value
            .get("items")
            .is_some_and(|i| i.is_array() || i.is_null());
    if !is_list {
        out.push(value);
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
pub(super) fn read_stream(text: &str, origin: &Path) -> Result<Vec<Option<Value>>, YamlError> {
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
                builder.scalar(&text, style, anchor, tag.as_deref(), &mark)?;
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

pub(super) fn check_depth(value: &Value, origin: &Path) -> Result<(), YamlError> {
    if measure(value).1 > MAX_DEPTH {
        return Err(YamlError::new(
            origin,
            format!("nesting deeper than {MAX_DEPTH} levels"),
        ));
    }
    Ok(())
}
