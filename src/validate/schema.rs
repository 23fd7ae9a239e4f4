//! The schema engine: JSON schemas (the built-in API schemas and CRDs' `openAPIV3Schema`)
//! compiled into one arena of nodes, and the walk that checks an object against a node.
//!
//! Only what the API server itself refuses is checked: unknown fields, wrong types, missing
//! required fields, enum values, duplicate items of `x-kubernetes-list-type` set/map lists,
//! int32 overflow and the cheap value bounds of CRD schemas. `null` passes everywhere: the
//! built-in schemas allow it for every field, and the API server prunes it from custom resources.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::Check;
use crate::object::{PathKey, push_path};

/// Index of a node in `Arena::nodes`.
pub type Id = u32;

/// JSON types a node accepts, as a bit set; empty means any.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Types(u8);

impl Types {
    pub const OBJECT: u8 = 1;
    pub const ARRAY: u8 = 2;
    pub const STRING: u8 = 4;
    pub const INTEGER: u8 = 8;
    pub const NUMBER: u8 = 16;
    pub const BOOLEAN: u8 = 32;
    const NAMES: [(u8, &'static str); 6] = [
        (Self::OBJECT, "object"),
        (Self::ARRAY, "array"),
        (Self::STRING, "string"),
        (Self::INTEGER, "integer"),
        (Self::NUMBER, "number"),
        (Self::BOOLEAN, "boolean"),
    ];

    fn from_name(name: &str) -> u8 {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(0, |(bit, _)| *bit)
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// `integer`, `integer or string`.
    fn describe(self) -> String {
        let names: Vec<&str> = Self::NAMES
            .iter()
            .filter(|(bit, _)| self.has(*bit))
            .map(|(_, n)| *n)
            .collect();
        names.join(" or ")
    }

    fn accepts(self, value: &Value) -> bool {
        if self.0 == 0 {
            return true;
        }
        match value {
            Value::Null => true,
            Value::Bool(_) => self.has(Self::BOOLEAN),
            Value::String(_) => self.has(Self::STRING),
            Value::Array(_) => self.has(Self::ARRAY),
            Value::Object(_) => self.has(Self::OBJECT),
            Value::Number(n) => {
                self.has(Self::NUMBER) || (self.has(Self::INTEGER) && (n.is_i64() || n.is_u64()))
            }
        }
    }
}

/// What a mapping may hold besides its declared `properties`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Additional {
    /// Anything (no `properties` declared, or `additionalProperties: true`).
    #[default]
    Any,
    /// Only the declared properties: anything else is an unknown field.
    Denied,
    /// Every other key is a value of this schema (maps such as labels).
    Schema(Id),
}

/// `x-kubernetes-list-type`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum ListType {
    #[default]
    Atomic,
    /// Items are unique scalars.
    Set,
    /// Items are mappings, unique by these keys.
    Map(Vec<String>),
}

/// One compiled schema node.
#[derive(Debug, Default, Clone)]
pub struct Node {
    /// The definition this node is (`io.k8s.api.apps.v1.DeploymentSpec`), for messages.
    pub title: Option<String>,
    pub types: Types,
    /// Declared fields; `None` when the schema declares none.
    pub properties: Option<HashMap<String, Id>>,
    pub additional: Additional,
    pub items: Option<Id>,
    pub required: Vec<String>,
    pub enumeration: Option<Vec<Value>>,
    pub list: ListType,
    /// `format: int32`: values must fit.
    pub int32: bool,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    /// `x-kubernetes-embedded-resource`: `apiVersion`, `kind` and `metadata` are allowed.
    pub embedded: bool,
}

/// Every compiled node, built-in and custom; `Id`s index it.
#[derive(Debug, Default)]
pub struct Arena {
    pub nodes: Vec<Node>,
}

impl Arena {
    pub fn push(&mut self, node: Node) -> Id {
        self.nodes.push(node);
        Id::try_from(self.nodes.len() - 1)
            .expect("the built-in schemas and a project's CRDs are far fewer than 2^32 nodes")
    }

    pub fn node(&self, id: Id) -> &Node {
        &self.nodes[id as usize]
    }

    /// Compile one JSON schema. `resolve` turns a `$ref` into a node (built-in definitions);
    /// `dialect` says how a missing `additionalProperties` next to `properties` reads.
    pub fn compile(
        &mut self,
        schema: &Value,
        dialect: Dialect,
        resolve: &mut dyn FnMut(&mut Arena, &str) -> Option<Id>,
    ) -> Id {
        // A reference is the definition itself, shared (and possibly still being compiled:
        // definitions may refer to themselves, as JSONSchemaProps does).
        if let Some(Value::String(name)) = schema.get("$ref")
            && let Some(target) = resolve(self, name)
        {
            return target;
        }
        let id = self.push(Node::default());
        self.compile_into(id, schema, dialect, resolve);
        id
    }

    /// Fill the node `id` (already allocated, so definitions can refer to themselves).
    pub fn compile_into(
        &mut self,
        id: Id,
        schema: &Value,
        dialect: Dialect,
        resolve: &mut dyn FnMut(&mut Arena, &str) -> Option<Id>,
    ) {
        let Some(map) = schema.as_object() else {
            return;
        };
        let mut node = Node::default();
        let mut type_bits = match map.get("type") {
            Some(Value::String(t)) => Types::from_name(t),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .fold(0, |acc, t| acc | Types::from_name(t)),
            _ => 0,
        };
        // `oneOf` in the built-in schemas only spells type unions (IntOrString, Quantity).
        if let Some(Value::Array(branches)) = map.get("oneOf")
            && dialect == Dialect::Builtin
        {
            for b in branches {
                if let Some(t) = b.get("type") {
                    type_bits |= match t {
                        Value::String(t) => Types::from_name(t),
                        Value::Array(ts) => ts
                            .iter()
                            .filter_map(Value::as_str)
                            .fold(0, |acc, t| acc | Types::from_name(t)),
                        _ => 0,
                    };
                }
            }
        }
        if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            type_bits = Types::INTEGER | Types::STRING;
        }
        node.types = Types(type_bits);
        let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        node.embedded = map.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
        node.int32 = map.get("format").and_then(Value::as_str) == Some("int32");
        let number = |k: &str| map.get(k).and_then(Value::as_f64);
        let count = |k: &str| map.get(k).and_then(Value::as_u64);
        node.minimum = number("minimum");
        node.maximum = number("maximum");
        node.min_length = count("minLength");
        node.max_length = count("maxLength");
        node.min_items = count("minItems");
        node.max_items = count("maxItems");
        if let Some(Value::Array(req)) = map.get("required") {
            node.required = req
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        if let Some(Value::Array(values)) = map.get("enum") {
            node.enumeration = Some(values.clone());
        }
        node.list = match map.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                map.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        };
        if let Some(items) = map.get("items").filter(|i| i.is_object()) {
            node.items = Some(self.compile(items, dialect, resolve));
        }
        if let Some(Value::Object(props)) = map.get("properties") {
            let mut fields = HashMap::with_capacity(props.len());
            for (key, sub) in props {
                fields.insert(key.clone(), self.compile(sub, dialect, resolve));
            }
            node.properties = Some(fields);
        }
        node.additional = match map.get("additionalProperties") {
            Some(Value::Bool(false)) => Additional::Denied,
            Some(sub @ Value::Object(_)) => Additional::Schema(self.compile(sub, dialect, resolve)),
            // A structural CRD schema prunes (and server-side apply refuses) fields it does
            // not declare, unless told to keep them.
            None if dialect == Dialect::Crd && node.properties.is_some() && !preserve => {
                Additional::Denied
            }
            Some(_) | None => Additional::Any,
        };
        if preserve && node.additional == Additional::Denied {
            node.additional = Additional::Any;
        }
        self.nodes[id as usize] = node;
    }
}

/// Where a schema comes from, which decides how its gaps read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The strict built-in schemas: `additionalProperties: false` is spelled out.
    Builtin,
    /// A CRD's structural schema: undeclared fields are refused unless preserved.
    Crd,
}

/// One schema violation: where, what, and what the schema expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which schema rule is broken (one of the schema checks of [`Check`]).
    pub check: Check,
    /// Dotted path as `render --explain` prints it (`spec.template.spec.containers[0].name`).
    pub path: String,
    /// What was found, short.
    pub found: String,
    /// What the schema expected.
    pub expected: String,
}

/// Stop collecting after this many violations in one object: one broken patch can make a
/// whole list of items wrong, and the first ones say what happened.
const MAX_PER_OBJECT: usize = 20;

/// Check `value` at `path` against node `id`; violations go to `out`. `meta` is the node of
/// built-in ObjectMeta, used for `metadata` inside embedded resources.
pub fn validate_value(
    arena: &Arena,
    id: Id,
    value: &Value,
    path: &str,
    meta: Option<Id>,
    out: &mut Vec<Violation>,
) {
    if out.len() >= MAX_PER_OBJECT || value.is_null() {
        return;
    }
    let node = arena.node(id);
    if !node.types.accepts(value) {
        out.push(Violation {
            check: Check::WrongType,
            path: path.to_owned(),
            found: describe_value(value),
            expected: node.types.describe(),
        });
        return;
    }
    if let Some(allowed) = &node.enumeration
        && !allowed.contains(value)
    {
        out.push(Violation {
            check: Check::NotInEnum,
            path: path.to_owned(),
            found: describe_value(value),
            expected: format!("one of {}", list_values(allowed)),
        });
    }
    match value {
        Value::Object(map) => check_object(arena, node, map, path, node.embedded, meta, out),
        Value::Array(items) => check_array(arena, node, items, path, meta, out),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let int32 = node.int32 && n.as_i64().is_none_or(|i| i32::try_from(i).is_err());
            let below = node.minimum.is_some_and(|m| x < m);
            let above = node.maximum.is_some_and(|m| x > m);
            if int32 || below || above {
                let expected = match (node.minimum, node.maximum) {
                    _ if int32 => "a 32-bit integer".to_owned(),
                    (Some(lo), Some(hi)) => format!("a number from {lo} to {hi}"),
                    (Some(lo), None) => format!("a number of at least {lo}"),
                    (None, Some(hi)) => format!("a number of at most {hi}"),
                    (None, None) => String::new(),
                };
                out.push(Violation {
                    check: Check::OutOfRange,
                    path: path.to_owned(),
                    found: n.to_string(),
                    expected,
                });
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if node.min_length.is_some_and(|m| len < m) || node.max_length.is_some_and(|m| len > m)
            {
                out.push(Violation {
                    check: Check::OutOfRange,
                    path: path.to_owned(),
                    found: format!("a string of {len} characters"),
                    expected: bounds("characters", node.min_length, node.max_length),
                });
            }
        }
        _ => {}
    }
}

/// Check a whole custom resource: `apiVersion` and `kind` are the API server's to check,
/// `metadata` is checked against ObjectMeta (`meta`) whatever the CRD says about it.
pub fn validate_resource(
    arena: &Arena,
    id: Id,
    value: &Value,
    meta: Option<Id>,
    out: &mut Vec<Violation>,
) {
    let node = arena.node(id);
    match value {
        Value::Object(map) => check_object(arena, node, map, "", true, meta, out),
        _ => validate_value(arena, id, value, "", meta, out),
    }
}

/// `resource`: the mapping is a whole object (the root of a custom resource, or an embedded
/// resource), whose `apiVersion`, `kind` and `metadata` follow the API's rules, not the schema's.
fn check_object(
    arena: &Arena,
    node: &Node,
    map: &Map<String, Value>,
    path: &str,
    resource: bool,
    meta: Option<Id>,
    out: &mut Vec<Violation>,
) {
    for field in &node.required {
        if !map.contains_key(field) {
            out.push(Violation {
                check: Check::MissingRequired,
                path: push_path(path, PathKey::Key(field)),
                found: "nothing".to_owned(),
                expected: format!("required field `{field}`"),
            });
        }
    }
    for (key, sub) in map {
        let at = push_path(path, PathKey::Key(key));
        if resource {
            match (key.as_str(), meta) {
                ("metadata", Some(m)) => {
                    validate_value(arena, m, sub, &at, meta, out);
                    continue;
                }
                ("apiVersion" | "kind" | "metadata", _) => continue,
                _ => {}
            }
        }
        if let Some(&child) = node.properties.as_ref().and_then(|p| p.get(key)) {
            validate_value(arena, child, sub, &at, meta, out);
            continue;
        }
        match node.additional {
            Additional::Any => {}
            Additional::Schema(child) => validate_value(arena, child, sub, &at, meta, out),
            Additional::Denied => {
                let known: Vec<&str> = node
                    .properties
                    .as_ref()
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let mut expected = match &node.title {
                    Some(t) => format!("a field of {}", short_title(t)),
                    None => "a field the CRD schema declares here".to_owned(),
                };
                if let Some(close) = closest(key, &known) {
                    let _ = write!(expected, " (did you mean `{close}`?)");
                }
                out.push(Violation {
                    check: Check::UnknownField,
                    path: at,
                    found: format!("unknown field `{}`", short(key)),
                    expected,
                });
            }
        }
        if out.len() >= MAX_PER_OBJECT {
            return;
        }
    }
}

fn check_array(
    arena: &Arena,
    node: &Node,
    items: &[Value],
    path: &str,
    meta: Option<Id>,
    out: &mut Vec<Violation>,
) {
    let len = items.len() as u64;
    if node.min_items.is_some_and(|m| len < m) || node.max_items.is_some_and(|m| len > m) {
        out.push(Violation {
            check: Check::OutOfRange,
            path: path.to_owned(),
            found: format!("{len} items"),
            expected: bounds("items", node.min_items, node.max_items),
        });
    }
    if let Some(child) = node.items {
        for (i, item) in items.iter().enumerate() {
            validate_value(
                arena,
                child,
                item,
                &push_path(path, PathKey::Index(i)),
                meta,
                out,
            );
        }
    }
    // Server-side apply refuses duplicates in set and map lists ("duplicate entries for key").
    let key_of = |item: &Value| -> Option<String> {
        match &node.list {
            ListType::Atomic => None,
            ListType::Set => Some(item.to_string()),
            ListType::Map(keys) if keys.is_empty() => None,
            ListType::Map(keys) => Some(
                keys.iter()
                    .map(|k| {
                        let v = item.get(k).map_or("null".to_owned(), Value::to_string);
                        format!("{k}={v}")
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    };
    if node.list == ListType::Atomic || items.len() < 2 {
        return;
    }
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(key) = key_of(item) else { continue };
        if let Some(first) = seen.get(&key) {
            out.push(Violation {
                check: Check::DuplicateItem,
                path: push_path(path, PathKey::Index(i)),
                found: format!("a second item with {}", short(&key)),
                expected: format!("unique items (the first is [{first}])"),
            });
        } else {
            seen.insert(key, i);
        }
    }
}

fn bounds(unit: &str, lo: Option<u64>, hi: Option<u64>) -> String {
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{lo} to {hi} {unit}"),
        (Some(lo), None) => format!("at least {lo} {unit}"),
        (None, Some(hi)) => format!("at most {hi} {unit}"),
        (None, None) => String::new(),
    }
}

/// `io.k8s.api.apps.v1.DeploymentSpec` -> `DeploymentSpec (apps/v1)`.
fn short_title(title: &str) -> String {
    match title.rsplit_once('.') {
        Some((prefix, name)) => {
            let mut parts = prefix.rsplit('.');
            match (parts.next(), parts.next()) {
                (Some(version), Some(group)) if prefix.starts_with("io.k8s.api.") => {
                    let group = if group == "core" { "" } else { group };
                    if group.is_empty() {
                        format!("{name} ({version})")
                    } else {
                        format!("{name} ({group}/{version})")
                    }
                }
                _ => name.to_owned(),
            }
        }
        None => title.to_owned(),
    }
}

/// Values quoted as a short prefix: messages never dump whole objects.
pub fn short(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// `string "2"`, `integer 3`, `a mapping`, `a list`.
pub fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_i64() || n.is_u64() => format!("integer {n}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {:?}", short(s)),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

fn list_values(values: &[Value]) -> String {
    const SHOWN: usize = 8;
    let mut parts: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|v| short(&v.to_string()))
        .collect();
    if values.len() > SHOWN {
        parts.push(format!("… ({} in all)", values.len()));
    }
    parts.join(", ")
}

/// The declared field closest to a typo, when close enough to be a likely meaning.
fn closest<'a>(typo: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = typo.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).clamp(1, 3))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd_check(schema: &Value, value: &Value) -> Vec<Violation> {
        let mut arena = Arena::default();
        let id = arena.compile(schema, Dialect::Crd, &mut |_, _| None);
        let mut out = Vec::new();
        validate_value(&arena, id, value, "", None, &mut out);
        out
    }

    #[test]
    fn structural_schemas_refuse_undeclared_fields_unless_preserved() {
        let schema = json!({"type": "object", "properties": {"replicas": {"type": "integer"}}});
        let v = crd_check(&schema, &json!({"replica": 2}));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].check, Check::UnknownField);
        assert_eq!(v[0].path, "replica");
        assert!(v[0].expected.contains("did you mean `replicas`?"), "{v:?}");
        let mut preserved = schema;
        preserved["x-kubernetes-preserve-unknown-fields"] = json!(true);
        assert!(crd_check(&preserved, &json!({"replica": 2})).is_empty());
        // No properties at all: nothing to compare with, so nothing is refused.
        assert!(crd_check(&json!({"type": "object"}), &json!({"a": 1})).is_empty());
    }

    #[test]
    fn types_required_enums_and_bounds() {
        let schema = json!({"type": "object", "required": ["mode"], "properties": {
            "mode": {"type": "string", "enum": ["a", "b"]},
            "port": {"type": "integer", "format": "int32", "minimum": 1},
            "size": {"x-kubernetes-int-or-string": true},
            "name": {"type": "string", "maxLength": 3}}});
        let v = crd_check(&schema, &json!({"port": "80"}));
        let got: Vec<(Check, &str)> = v.iter().map(|v| (v.check, v.path.as_str())).collect();
        assert_eq!(
            got,
            [(Check::MissingRequired, "mode"), (Check::WrongType, "port")]
        );
        assert_eq!(v[1].found, "string \"80\"");
        assert_eq!(v[1].expected, "integer");
        let v = crd_check(
            &schema,
            &json!({"mode": "c", "port": 0, "size": "1Gi", "name": "long"}),
        );
        let got: Vec<(Check, &str)> = v.iter().map(|v| (v.check, v.path.as_str())).collect();
        assert_eq!(
            got,
            [
                (Check::NotInEnum, "mode"),
                (Check::OutOfRange, "port"),
                (Check::OutOfRange, "name")
            ]
        );
        assert_eq!(v[0].expected, "one of \"a\", \"b\"");
        let v = crd_check(
            &schema,
            &json!({"mode": "a", "port": 4_294_967_296_u64, "size": 3}),
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].expected, "a 32-bit integer");
    }

    #[test]
    fn nulls_pass_and_map_lists_refuse_duplicate_keys() {
        let schema = json!({"type": "object", "properties": {"ports": {"type": "array",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
            "items": {"type": "object", "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}});
        assert!(crd_check(&schema, &json!({"ports": null})).is_empty());
        let v = crd_check(
            &schema,
            &json!({"ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}, {"port": 80, "protocol": "TCP"}],
                   "tags": ["a", "a"]}),
        );
        let got: Vec<(Check, &str)> = v.iter().map(|v| (v.check, v.path.as_str())).collect();
        assert_eq!(
            got,
            [
                (Check::DuplicateItem, "ports[2]"),
                (Check::DuplicateItem, "tags[1]")
            ]
        );
        assert_eq!(v[0].found, "a second item with port=80, protocol=\"TCP\"");
    }

    #[test]
    fn typos_find_their_field_and_long_values_are_cut() {
        assert_eq!(
            closest("minReadySecond", &["minReadySeconds", "replicas"]),
            Some("minReadySeconds")
        );
        assert_eq!(closest("foo", &["replicas"]), None);
        assert_eq!(short(&"x".repeat(100)).chars().count(), 41);
        assert_eq!(
            short_title("io.k8s.api.apps.v1.DeploymentSpec"),
            "DeploymentSpec (apps/v1)"
        );
        assert_eq!(
            short_title("io.k8s.api.core.v1.Container"),
            "Container (v1)"
        );
    }
}
