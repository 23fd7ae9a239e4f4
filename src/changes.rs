//! Object-level change model shared by `upgrade`, `diff --base` and the cluster diff: which
//! objects were added, removed or changed between two renders, field-level and unified diffs,
//! CRD schema summaries, Secret masking, and the text / JSON / markdown renderers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde_json::{Map, Value, json};

use crate::kinds;
use crate::object::{Object, ObjectRef};
use crate::yaml;

/// What happened to one object between `before` and `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    Added,
    Removed,
    Changed,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }

    /// One-character marker used in text and markdown listings.
    pub fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Changed => '~',
            Change::Unchanged => '=',
        }
    }
}

/// One object compared across two renders.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChange {
    pub reference: ObjectRef,
    pub change: Change,
    pub before: Option<Object>,
    pub after: Option<Object>,
}

/// Compare two object lists by identity (`ObjectRef`). The result is in render order of the
/// objects (the `after` side where present), so listings read like `kpin render` output.
pub fn compare(before: &[Object], after: &[Object]) -> Vec<ObjectChange> {
    let mut old: BTreeMap<ObjectRef, &Object> = before.iter().map(|o| (o.reference(), o)).collect();
    let mut out = Vec::with_capacity(after.len().max(before.len()));
    for object in after {
        let reference = object.reference();
        let change = match old.remove(&reference) {
            Some(prev) if prev == object => ObjectChange {
                reference,
                change: Change::Unchanged,
                before: Some(prev.clone()),
                after: Some(object.clone()),
            },
            Some(prev) => ObjectChange {
                reference,
                change: Change::Changed,
                before: Some(prev.clone()),
                after: Some(object.clone()),
            },
            None => ObjectChange {
                reference,
                change: Change::Added,
                before: None,
                after: Some(object.clone()),
            },
        };
        out.push(change);
    }
    out.extend(old.into_iter().map(|(reference, prev)| ObjectChange {
        reference,
        change: Change::Removed,
        before: Some(prev.clone()),
        after: None,
    }));
    out.sort_by_cached_key(|c| {
        c.after
            .as_ref()
            .or(c.before.as_ref())
            .map(Object::order_key)
    });
    out
}

/// How many objects fall in each category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
}

impl Counts {
    pub fn of(changes: &[ObjectChange]) -> Counts {
        let mut c = Counts::default();
        for change in changes {
            match change.change {
                Change::Added => c.added += 1,
                Change::Removed => c.removed += 1,
                Change::Changed => c.changed += 1,
                Change::Unchanged => c.unchanged += 1,
            }
        }
        c
    }

    pub fn any(&self) -> bool {
        self.added + self.removed + self.changed > 0
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} added, {} changed, {} removed, {} unchanged",
            self.added, self.changed, self.removed, self.unchanged
        )
    }
}

/// Whether any change in the list is not `Unchanged`.
pub fn has_changes(changes: &[ObjectChange]) -> bool {
    Counts::of(changes).any()
}

// ---------------------------------------------------------------------------------------------
// Secret masking.
// ---------------------------------------------------------------------------------------------

const MASK: &str = "***";
const MASK_BEFORE: &str = "*** (before)";
const MASK_AFTER: &str = "*** (after)";
const SECRET_FIELDS: [&str; 2] = ["data", "stringData"];

fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Copies of `before` and `after` with Secret values replaced like `kubectl diff` does: `***`
/// where a key's value is the same on both sides, `*** (before)` / `*** (after)` where it
/// differs, so a reviewer sees *that* a secret changed but never its value.
pub fn mask_secrets(
    before: Option<&Value>,
    after: Option<&Value>,
) -> (Option<Value>, Option<Value>) {
    let mut b = before.cloned();
    let mut a = after.cloned();
    let secret = b.as_ref().is_some_and(is_secret) || a.as_ref().is_some_and(is_secret);
    if !secret {
        return (b, a);
    }
    for field in SECRET_FIELDS {
        let old = before.and_then(|v| v.get(field)).and_then(Value::as_object);
        let new = after.and_then(|v| v.get(field)).and_then(Value::as_object);
        let masked =
            |side: Option<&Map<String, Value>>, other: Option<&Map<String, Value>>, tag: &str| {
                side.map(|map| {
                    map.iter()
                        .map(|(k, v)| {
                            let same = other.and_then(|o| o.get(k)).is_none_or(|o| o == v);
                            let text = if same { MASK } else { tag };
                            (k.clone(), Value::String(text.to_owned()))
                        })
                        .collect::<Map<String, Value>>()
                })
            };
        if let (Some(Value::Object(obj)), Some(m)) = (b.as_mut(), masked(old, new, MASK_BEFORE)) {
            obj.insert(field.to_owned(), Value::Object(m));
        }
        if let (Some(Value::Object(obj)), Some(m)) = (a.as_mut(), masked(new, old, MASK_AFTER)) {
            obj.insert(field.to_owned(), Value::Object(m));
        }
    }
    (b, a)
}

// ---------------------------------------------------------------------------------------------
// Unified YAML diff.
// ---------------------------------------------------------------------------------------------

/// Options shared by the diff computations and renderers.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Show Secret values instead of `***`.
    pub reveal_secrets: bool,
    /// ANSI colours in text output.
    pub color: bool,
    /// Lines of context around each hunk.
    pub context_lines: usize,
    /// What the two sides are called in diff headers, e.g. `origin/main` and `working tree`.
    pub labels: (String, String),
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            reveal_secrets: false,
            color: false,
            context_lines: 3,
            labels: ("before".to_owned(), "after".to_owned()),
        }
    }
}

impl ObjectChange {
    /// Both sides as JSON, masked unless secrets are revealed.
    pub fn sides(&self, options: &DiffOptions) -> (Option<Value>, Option<Value>) {
        let before = self.before.as_ref().map(|o| &o.0);
        let after = self.after.as_ref().map(|o| &o.0);
        if options.reveal_secrets {
            (before.cloned(), after.cloned())
        } else {
            mask_secrets(before, after)
        }
    }

    /// Unified diff of the two sides as YAML (empty when unchanged).
    pub fn unified_diff(&self, options: &DiffOptions) -> String {
        if self.change == Change::Unchanged {
            return String::new();
        }
        let (before, after) = self.sides(options);
        yaml_diff(
            before.as_ref(),
            after.as_ref(),
            (
                &format!("{} ({})", self.reference, options.labels.0),
                &format!("{} ({})", self.reference, options.labels.1),
            ),
            options.context_lines,
        )
    }

    /// Field-level changes between the two sides (empty unless `Changed`).
    pub fn field_changes(&self, options: &DiffOptions) -> Vec<FieldChange> {
        if self.change != Change::Changed {
            return Vec::new();
        }
        let (before, after) = self.sides(options);
        let (Some(before), Some(after)) = (before, after) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        diff_values(&mut Vec::new(), &before, &after, &mut out);
        out
    }

    /// CRD version and schema changes, for CustomResourceDefinitions.
    pub fn crd_summary(&self) -> Option<CrdSummary> {
        let is_crd = |o: &Object| {
            o.kind() == "CustomResourceDefinition" && o.group() == "apiextensions.k8s.io"
        };
        if !self.before.iter().chain(self.after.iter()).any(is_crd)
            || self.change == Change::Unchanged
        {
            return None;
        }
        Some(CrdSummary::between(
            self.before.as_ref().map(|o| &o.0),
            self.after.as_ref().map(|o| &o.0),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Field-level diff.
// ---------------------------------------------------------------------------------------------

/// One changed field, addressed by a readable path such as
/// `spec.template.spec.containers[controller].args[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub path: String,
    pub change: Change,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map(short_value).unwrap_or_default();
        match self.change {
            Change::Added => write!(f, "+ {}: {}", self.path, show(&self.after)),
            Change::Removed => write!(f, "- {}: {}", self.path, show(&self.before)),
            _ => write!(
                f,
                "~ {}: {} -> {}",
                self.path,
                show(&self.before),
                show(&self.after)
            ),
        }
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
    /// A list item matched by a key field (`containers[controller]`, `ports[containerPort=80]`).
    Keyed(&'static str, String),
    /// An item of a list of scalars, added or removed as a whole.
    Item,
}

fn path_text(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                let plain = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if plain {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                } else {
                    let _ = write!(out, "[{}]", Value::String(k.clone()));
                }
            }
            Segment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Segment::Keyed("name", v) => {
                let _ = write!(out, "[{v}]");
            }
            Segment::Keyed(k, v) => {
                let _ = write!(out, "[{k}={v}]");
            }
            Segment::Item => out.push_str("[]"),
        }
    }
    if out.is_empty() { ".".to_owned() } else { out }
}

/// Fields that identify items of well-known Kubernetes lists, tried in order.
const LIST_KEYS: [&str; 5] = ["name", "mountPath", "containerPort", "port", "devicePath"];

/// The key field that identifies every item in both lists uniquely, if any.
fn list_key(a: &[Value], b: &[Value]) -> Option<&'static str> {
    LIST_KEYS.into_iter().find(|key| {
        [a, b].iter().all(|items| {
            let mut seen = BTreeSet::new();
            items.iter().all(|item| {
                item.get(key)
                    .filter(|v| !v.is_object() && !v.is_array())
                    .is_some_and(|v| seen.insert(key_text(v)))
            })
        })
    })
}

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn push(
    out: &mut Vec<FieldChange>,
    path: &[Segment],
    change: Change,
    before: Option<&Value>,
    after: Option<&Value>,
) {
    out.push(FieldChange {
        path: path_text(path),
        change,
        before: before.cloned(),
        after: after.cloned(),
    });
}

fn diff_values(path: &mut Vec<Segment>, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                path.push(Segment::Key(k.clone()));
                match y.get(k) {
                    Some(vb) => diff_values(path, va, vb, out),
                    None => push(out, path, Change::Removed, Some(va), None),
                }
                path.pop();
            }
            for (k, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                path.push(Segment::Key(k.clone()));
                push(out, path, Change::Added, None, Some(vb));
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) => diff_lists(path, x, y, out),
        _ => push(out, path, Change::Changed, Some(a), Some(b)),
    }
}

fn diff_lists(path: &mut Vec<Segment>, x: &[Value], y: &[Value], out: &mut Vec<FieldChange>) {
    if let Some(key) = list_key(x, y) {
        let find = |items: &'_ [Value], v: &Value| items.iter().position(|i| i.get(key) == Some(v));
        for item in x {
            let id = item.get(key).cloned().unwrap_or(Value::Null);
            path.push(Segment::Keyed(key, key_text(&id)));
            match find(y, &id) {
                Some(j) => diff_values(path, item, &y[j], out),
                None => push(out, path, Change::Removed, Some(item), None),
            }
            path.pop();
        }
        for item in y {
            let id = item.get(key).cloned().unwrap_or(Value::Null);
            if find(x, &id).is_none() {
                path.push(Segment::Keyed(key, key_text(&id)));
                push(out, path, Change::Added, None, Some(item));
                path.pop();
            }
        }
        return;
    }
    let scalars = x.iter().chain(y).all(|v| !v.is_object() && !v.is_array());
    if scalars {
        // Lists of scalars (args, verbs, finalizers): report items added and removed, which is
        // what a reviewer cares about; a pure reordering is shown as one change.
        let mut remaining: Vec<&Value> = y.iter().collect();
        let mut removed = Vec::new();
        for v in x {
            match remaining.iter().position(|r| *r == v) {
                Some(i) => {
                    remaining.remove(i);
                }
                None => removed.push(v),
            }
        }
        if removed.is_empty() && remaining.is_empty() {
            push(
                out,
                path,
                Change::Changed,
                Some(&Value::Array(x.to_vec())),
                Some(&Value::Array(y.to_vec())),
            );
            return;
        }
        path.push(Segment::Item);
        for v in removed {
            push(out, path, Change::Removed, Some(v), None);
        }
        for v in remaining {
            push(out, path, Change::Added, None, Some(v));
        }
        path.pop();
        return;
    }
    for i in 0..x.len().max(y.len()) {
        path.push(Segment::Index(i));
        match (x.get(i), y.get(i)) {
            (Some(a), Some(b)) => diff_values(path, a, b, out),
            (Some(a), None) => push(out, path, Change::Removed, Some(a), None),
            (None, Some(b)) => push(out, path, Change::Added, None, Some(b)),
            (None, None) => {}
        }
        path.pop();
    }
}

/// A value on one line: plain strings as-is, everything else as compact JSON, cut at 120
/// characters.
pub fn short_value(v: &Value) -> String {
    const MAX: usize = 120;
    let text = match v {
        Value::String(s) if yaml::is_plain_safe(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------------
// CRD summaries.
// ---------------------------------------------------------------------------------------------

/// What changed in a CustomResourceDefinition, at the level a reviewer decides on: served
/// versions, the storage version, and schema fields per version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrdSummary {
    pub versions_added: Vec<String>,
    pub versions_removed: Vec<String>,
    /// `(before, after)` when the storage version moved.
    pub storage: Option<(String, String)>,
    /// Versions whose `served` or `deprecated` flag flipped, e.g. `v1beta1 no longer served`.
    pub status: Vec<String>,
    /// Schema fields added per version that exists on both sides (`v1alpha1 spec.sourceHydrator`);
    /// only the outermost new field is listed, not everything beneath it.
    pub fields_added: Vec<String>,
    pub fields_removed: Vec<String>,
}

#[derive(Debug, Default)]
struct CrdVersion {
    served: bool,
    deprecated: bool,
    storage: bool,
    fields: BTreeSet<String>,
}

fn crd_versions(crd: Option<&Value>) -> BTreeMap<String, CrdVersion> {
    let mut out = BTreeMap::new();
    let versions = crd
        .and_then(|c| c.pointer("/spec/versions"))
        .and_then(Value::as_array);
    for v in versions.into_iter().flatten() {
        let Some(name) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        let mut fields = BTreeSet::new();
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            schema_fields(schema, "", &mut fields);
        }
        out.insert(
            name.to_owned(),
            CrdVersion {
                served: v.get("served").and_then(Value::as_bool).unwrap_or(false),
                deprecated: v
                    .get("deprecated")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                storage: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
                fields,
            },
        );
    }
    out
}

fn schema_fields(schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            schema_fields(sub, &path, out);
            out.insert(path);
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        schema_fields(items, &format!("{prefix}[]"), out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|i| i.is_object()) {
        schema_fields(extra, &format!("{prefix}.*"), out);
    }
}

/// Paths in `paths` none of whose ancestors is in `paths`.
fn outermost(paths: &BTreeSet<String>) -> Vec<String> {
    paths
        .iter()
        .filter(|p| {
            !p.char_indices()
                .filter(|(_, c)| *c == '.' || *c == '[')
                .any(|(i, _)| paths.contains(&p[..i]))
        })
        .cloned()
        .collect()
}

impl CrdSummary {
    pub fn between(before: Option<&Value>, after: Option<&Value>) -> CrdSummary {
        let old = crd_versions(before);
        let new = crd_versions(after);
        let mut s = CrdSummary {
            versions_added: new
                .keys()
                .filter(|k| !old.contains_key(*k))
                .cloned()
                .collect(),
            versions_removed: old
                .keys()
                .filter(|k| !new.contains_key(*k))
                .cloned()
                .collect(),
            ..CrdSummary::default()
        };
        let storage = |m: &BTreeMap<String, CrdVersion>| {
            m.iter().find(|(_, v)| v.storage).map(|(k, _)| k.clone())
        };
        if let (Some(a), Some(b)) = (storage(&old), storage(&new))
            && a != b
        {
            s.storage = Some((a, b));
        }
        for (name, o) in &old {
            let Some(n) = new.get(name) else { continue };
            if o.served != n.served {
                let now = if n.served {
                    "now served"
                } else {
                    "no longer served"
                };
                s.status.push(format!("{name} {now}"));
            }
            if o.deprecated != n.deprecated {
                let now = if n.deprecated {
                    "now deprecated"
                } else {
                    "no longer deprecated"
                };
                s.status.push(format!("{name} {now}"));
            }
            let added: BTreeSet<String> = n.fields.difference(&o.fields).cloned().collect();
            let removed: BTreeSet<String> = o.fields.difference(&n.fields).cloned().collect();
            s.fields_added
                .extend(outermost(&added).into_iter().map(|f| format!("{name} {f}")));
            s.fields_removed.extend(
                outermost(&removed)
                    .into_iter()
                    .map(|f| format!("{name} {f}")),
            );
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        *self == CrdSummary::default()
    }

    /// Human-readable lines, at most `max_fields` field names per direction.
    pub fn lines(&self, max_fields: usize) -> Vec<String> {
        let mut out = Vec::new();
        if !self.versions_added.is_empty() {
            out.push(format!(
                "CRD versions added: {}",
                self.versions_added.join(", ")
            ));
        }
        if !self.versions_removed.is_empty() {
            out.push(format!(
                "CRD versions removed: {}",
                self.versions_removed.join(", ")
            ));
        }
        if let Some((a, b)) = &self.storage {
            out.push(format!("CRD storage version: {a} -> {b}"));
        }
        for s in &self.status {
            out.push(format!("CRD version {s}"));
        }
        for (sign, what, fields) in [
            ('+', "added", &self.fields_added),
            ('-', "removed", &self.fields_removed),
        ] {
            if fields.is_empty() {
                continue;
            }
            out.push(format!("CRD schema fields {what}: {}", fields.len()));
            for f in fields.iter().take(max_fields) {
                out.push(format!("  {sign} {f}"));
            }
            if fields.len() > max_fields {
                out.push(format!("  ... and {} more", fields.len() - max_fields));
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "versionsAdded": self.versions_added,
            "versionsRemoved": self.versions_removed,
            "storage": self.storage.as_ref().map(|(a, b)| json!({"before": a, "after": b})),
            "status": self.status,
            "fieldsAdded": self.fields_added,
            "fieldsRemoved": self.fields_removed,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Reports: sections of changes and their renderers.
// ---------------------------------------------------------------------------------------------

/// How each changed object is detailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Field-level changes (and CRD summaries): the upstream view of an upgrade.
    Fields,
    /// Unified YAML diff per object: the rendered view.
    Unified,
}

/// A titled group of object changes: one package of a `diff --base`, or one view (upstream,
/// rendered) of an upgrade. Every renderer works on a list of these.
#[derive(Debug, Clone)]
pub struct Section {
    /// Package name (the summary table's first column).
    pub package: String,
    /// What this section shows, e.g. `upstream changes`; empty for a plain package diff.
    pub title: String,
    pub version_before: Option<String>,
    pub version_after: Option<String>,
    /// Facts for the reviewer, e.g. `overlay changed: overlays/x.yaml`.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    pub changes: Vec<ObjectChange>,
    pub detail: Detail,
}

impl Section {
    pub fn version_text(&self, arrow: &str) -> String {
        match (&self.version_before, &self.version_after) {
            (Some(a), Some(b)) if a == b => a.clone(),
            (Some(a), Some(b)) => format!("{a} {arrow} {b}"),
            (None, Some(b)) => format!("(new) {b}"),
            (Some(a), None) => format!("{a} (removed)"),
            (None, None) => String::new(),
        }
    }

    fn heading(&self, arrow: &str) -> String {
        let mut h = self.package.clone();
        let v = self.version_text(arrow);
        if !v.is_empty() {
            h.push(' ');
            h.push_str(&v);
        }
        if !self.title.is_empty() {
            h.push_str(": ");
            h.push_str(&self.title);
        }
        h
    }

    pub fn counts(&self) -> Counts {
        Counts::of(&self.changes)
    }
}

/// The warning a reviewer needs when objects disappear: `kpin apply --prune` deletes them.
pub fn removal_warning(changes: &[ObjectChange]) -> Option<String> {
    let removed: Vec<String> = changes
        .iter()
        .filter(|c| c.change == Change::Removed)
        .map(|c| c.reference.to_string())
        .collect();
    if removed.is_empty() {
        return None;
    }
    let cascading: BTreeSet<&str> = changes
        .iter()
        .filter(|c| c.change == Change::Removed)
        .filter_map(|c| kinds::cascading(&c.reference.group, &c.reference.kind))
        .map(|c| c.deletes)
        .collect();
    let mut text = format!(
        "{} object(s) no longer rendered; `kpin apply --prune` would delete them: {}",
        removed.len(),
        removed.join(", ")
    );
    for deletes in cascading {
        let _ = write!(
            text,
            " ({deletes}; --prune keeps it unless --prune-allow names the kind)"
        );
    }
    Some(text)
}

/// Changed objects whose known-immutable fields differ (see `kinds::IMMUTABLE_FIELDS`), with
/// those fields.
pub fn immutable_changes(changes: &[ObjectChange]) -> Vec<(ObjectRef, Vec<String>)> {
    changes
        .iter()
        .filter(|c| c.change == Change::Changed)
        .filter_map(|c| {
            let (before, after) = (c.before.as_ref()?, c.after.as_ref()?);
            let fields = kinds::immutable_changes(
                &c.reference.group,
                &c.reference.kind,
                &before.0,
                &after.0,
            );
            (!fields.is_empty()).then(|| (c.reference.clone(), fields))
        })
        .collect()
}

/// The warning for objects whose immutable fields change: applying them needs a delete and
/// re-create, which `kpin apply` does only when asked.
pub fn recreate_warning(objects: &[(ObjectRef, Vec<String>)]) -> Option<String> {
    if objects.is_empty() {
        return None;
    }
    let list: Vec<String> = objects
        .iter()
        .map(|(r, fields)| format!("{r} ({})", fields.join(", ")))
        .collect();
    Some(format!(
        "apply needs `--recreate` (or the annotation {}: \"true\"): immutable fields change in {}",
        crate::cluster::apply::RECREATE_ANNOTATION,
        list.join(", ")
    ))
}

/// What a reviewer of rendered changes is warned about: objects `--prune` would delete and
/// objects only a re-create can update.
pub fn review_warnings(changes: &[ObjectChange]) -> Vec<String> {
    removal_warning(changes)
        .into_iter()
        .chain(recreate_warning(&immutable_changes(changes)))
        .collect()
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn paint_diff_line(color: bool, line: &str) -> String {
    match line.as_bytes().first() {
        _ if !color => line.to_owned(),
        _ if line.starts_with("+++") || line.starts_with("---") => paint(true, "1", line),
        Some(b'+') => paint(true, "32", line),
        Some(b'-') => paint(true, "31", line),
        Some(b'@') => paint(true, "36", line),
        _ => line.to_owned(),
    }
}

/// Lines detailing one change in `Detail::Fields` mode.
fn field_lines(change: &ObjectChange, options: &DiffOptions) -> Vec<String> {
    let mut out = Vec::new();
    let crd = change.crd_summary();
    if let Some(summary) = &crd {
        out.extend(summary.lines(25));
    }
    if change.change != Change::Changed {
        return out;
    }
    let fields = change.field_changes(options);
    let (schema, other): (Vec<_>, Vec<_>) = fields
        .into_iter()
        .partition(|f| crd.is_some() && f.path.starts_with("spec.versions["));
    out.extend(other.iter().map(FieldChange::to_string));
    if !schema.is_empty() {
        out.push(format!(
            "{} other schema detail(s) changed (descriptions, validation)",
            schema.len()
        ));
    }
    out
}

/// Plain text (optionally coloured) report: one block per section.
pub fn render_text(sections: &[Section], options: &DiffOptions) -> String {
    let mut out = String::new();
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let counts = section.counts();
        let _ = writeln!(
            out,
            "{}",
            paint(
                options.color,
                "1",
                &format!("{} ({counts})", section.heading("->"))
            )
        );
        for note in &section.notes {
            let _ = writeln!(out, "  {note}");
        }
        for warning in &section.warnings {
            let _ = writeln!(
                out,
                "  {} {warning}",
                paint(options.color, "1;33", "warning:")
            );
        }
        for change in section
            .changes
            .iter()
            .filter(|c| c.change != Change::Unchanged)
        {
            let code = match change.change {
                Change::Added => "32",
                Change::Removed => "31",
                _ => "33",
            };
            let _ = writeln!(
                out,
                "  {}",
                paint(
                    options.color,
                    code,
                    &format!("{} {}", change.change.symbol(), change.reference)
                )
            );
            match section.detail {
                Detail::Fields => {
                    for line in field_lines(change, options) {
                        let _ = writeln!(out, "      {line}");
                    }
                }
                Detail::Unified => {
                    for line in change.unified_diff(options).lines() {
                        let _ = writeln!(out, "    {}", paint_diff_line(options.color, line));
                    }
                }
            }
        }
    }
    out
}

/// Machine-readable report. Unchanged objects are counted, not listed.
pub fn to_json(sections: &[Section], options: &DiffOptions) -> Value {
    let sections: Vec<Value> = sections
        .iter()
        .map(|s| {
            let c = s.counts();
            let objects: Vec<Value> = s
                .changes
                .iter()
                .filter(|c| c.change != Change::Unchanged)
                .map(|c| object_json(c, s.detail, options))
                .collect();
            json!({
                "package": s.package,
                "title": s.title,
                "version": {"before": s.version_before, "after": s.version_after},
                "notes": s.notes,
                "warnings": s.warnings,
                "summary": {"added": c.added, "changed": c.changed, "removed": c.removed, "unchanged": c.unchanged},
                "objects": objects,
            })
        })
        .collect();
    json!({ "sections": sections })
}

fn object_json(change: &ObjectChange, detail: Detail, options: &DiffOptions) -> Value {
    let r = &change.reference;
    let mut obj = json!({
        "group": r.group,
        "kind": r.kind,
        "namespace": r.namespace,
        "name": r.name,
        "change": change.change.as_str(),
    });
    let Value::Object(map) = &mut obj else {
        return obj;
    };
    match detail {
        Detail::Fields => {
            let fields: Vec<Value> = change
                .field_changes(options)
                .into_iter()
                .map(|f| json!({"path": f.path, "change": f.change.as_str(), "before": f.before, "after": f.after}))
                .collect();
            map.insert("fields".into(), Value::Array(fields));
            if let Some(crd) = change.crd_summary() {
                map.insert("crd".into(), crd.to_json());
            }
        }
        Detail::Unified => {
            map.insert("diff".into(), Value::String(change.unified_diff(options)));
        }
    }
    obj
}

/// Limits that keep a markdown report postable as one pull-request comment.
#[derive(Debug, Clone, Copy)]
pub struct MarkdownLimits {
    /// GitHub rejects comments over 65536 characters; stop adding diffs before that.
    pub max_chars: usize,
    /// Longer per-object diffs are cut.
    pub max_lines_per_object: usize,
}

impl Default for MarkdownLimits {
    fn default() -> Self {
        MarkdownLimits {
            max_chars: 60_000,
            max_lines_per_object: 400,
        }
    }
}

/// A pull-request comment: a summary table, notes and warnings per package, and one collapsible
/// block per changed object. `title` becomes the top heading and `preamble` (markdown, e.g.
/// validation findings) follows it; `rerun` is the command printed when diffs had to be left
/// out for size.
pub fn render_markdown(
    title: &str,
    preamble: &str,
    sections: &[Section],
    options: &DiffOptions,
    limits: MarkdownLimits,
    rerun: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {title}\n");
    out.push_str(preamble);
    if sections.is_empty() {
        out.push_str("No packages.\n");
        return out;
    }
    out.push_str("| Package | Version | Added | Changed | Removed | Unchanged |\n");
    out.push_str("|---|---|--:|--:|--:|--:|\n");
    for s in sections {
        let c = s.counts();
        let name = if s.title.is_empty() {
            format!("`{}`", s.package)
        } else {
            format!("`{}` ({})", s.package, s.title)
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            md_escape(&s.version_text("→")),
            c.added,
            c.changed,
            c.removed,
            c.unchanged
        );
    }
    let mut omitted = 0usize;
    for s in sections {
        if !s.counts().any() && s.notes.is_empty() && s.warnings.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n### {}\n", md_escape(&s.heading("→")));
        for note in &s.notes {
            let _ = writeln!(out, "- {}", md_escape(note));
        }
        if !s.notes.is_empty() {
            out.push('\n');
        }
        if !s.warnings.is_empty() {
            out.push_str("> [!WARNING]\n");
            for w in &s.warnings {
                let _ = writeln!(out, "> - {}", md_escape(w));
            }
            out.push('\n');
        }
        if !s.counts().any() {
            out.push_str("No object changes.\n");
            continue;
        }
        for change in s.changes.iter().filter(|c| c.change != Change::Unchanged) {
            let body = match s.detail {
                Detail::Fields => field_lines(change, options).join("\n") + "\n",
                Detail::Unified => change.unified_diff(options),
            };
            if body.trim().is_empty() {
                let _ = writeln!(out, "- `{} {}`", change.change.symbol(), change.reference);
                continue;
            }
            let body = cut_lines(&body, limits.max_lines_per_object);
            let summary = format!(
                "<details><summary><code>{} {}</code></summary>\n\n",
                change.change.symbol(),
                html_escape(&change.reference.to_string())
            );
            let fence = fence_for(&body);
            let block = format!("{summary}{fence}diff\n{body}{fence}\n\n</details>\n");
            if out.len() + block.len() > limits.max_chars {
                omitted += 1;
                let _ = writeln!(
                    out,
                    "- `{} {}` (diff omitted)",
                    change.change.symbol(),
                    change.reference
                );
            } else {
                out.push_str(&block);
            }
        }
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "\n_{omitted} diff(s) left out to stay within the comment size limit; run `{rerun}` to see them._"
        );
    }
    out
}

/// A code fence longer than any run of backticks in `body` (at least three), so an object that
/// carries markdown itself (a README in a ConfigMap) cannot end the block early.
fn fence_for(body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

fn cut_lines(text: &str, max: usize) -> String {
    let total = text.lines().count();
    if total <= max {
        return text.to_owned();
    }
    let mut out: String = text.lines().take(max).flat_map(|l| [l, "\n"]).collect();
    let _ = writeln!(out, "... {} more line(s)", total - max);
    out
}

/// Text safe in a table cell or list item: no cell breaks, no HTML tags.
fn md_escape(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Unified diff of two objects (either may be absent) as the YAML kpin writes.
pub fn yaml_diff(
    before: Option<&Value>,
    after: Option<&Value>,
    headers: (&str, &str),
    context_lines: usize,
) -> String {
    let old = before.map(yaml::emit).unwrap_or_default();
    let new = after.map(yaml::emit).unwrap_or_default();
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(context_lines)
        .header(headers.0, headers.1)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Object {
        Object(v)
    }

    fn deploy(image: &str, args: &[&str]) -> Object {
        obj(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "controller", "namespace": "ingress", "labels": {"app.kubernetes.io/version": "1"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "controller", "image": image, "args": args},
                {"name": "sidecar", "image": "s:1"}
            ]}}}
        }))
    }

    fn netpol() -> Object {
        obj(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np", "namespace": "ingress"}}),
        )
    }

    fn role() -> Object {
        obj(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": "ingress"}}),
        )
    }

    #[test]
    fn compare_classifies_and_orders_like_render() {
        let before = vec![deploy("c:1", &["--a"]), netpol(), role()];
        let after = vec![role(), deploy("c:2", &["--a", "--b"])];
        let changes = compare(&before, &after);
        let listed: Vec<String> = changes
            .iter()
            .map(|c| format!("{} {}", c.change.symbol(), c.reference))
            .collect();
        assert_eq!(
            listed,
            [
                "= Role ingress/r",
                "- NetworkPolicy ingress/np",
                "~ Deployment ingress/controller"
            ]
        );
        assert_eq!(
            Counts::of(&changes),
            Counts {
                added: 0,
                removed: 1,
                changed: 1,
                unchanged: 1
            }
        );
        assert!(
            removal_warning(&changes)
                .unwrap()
                .contains("NetworkPolicy ingress/np")
        );
    }

    #[test]
    fn field_changes_match_containers_by_name_and_args_as_items() {
        let changes = compare(
            &[deploy("c:1", &["--a", "--old"])],
            &[deploy("c:2", &["--a", "--new"])],
        );
        let fields: Vec<String> = changes[0]
            .field_changes(&DiffOptions::default())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            fields,
            [
                "~ spec.template.spec.containers[controller].image: c:1 -> c:2",
                "- spec.template.spec.containers[controller].args[]: --old",
                "+ spec.template.spec.containers[controller].args[]: --new",
            ]
        );
    }

    #[test]
    fn field_paths_quote_odd_keys_and_use_other_list_keys() {
        let a = json!({"metadata": {"labels": {"app.kubernetes.io/version": "1"}}, "ports": [{"containerPort": 80, "protocol": "TCP"}]});
        let b = json!({"metadata": {"labels": {"app.kubernetes.io/version": "2"}}, "ports": [{"containerPort": 80, "protocol": "UDP"}], "new": {"x": 1}});
        let mut out = Vec::new();
        diff_values(&mut Vec::new(), &a, &b, &mut out);
        let text: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "~ metadata.labels[\"app.kubernetes.io/version\"]: \"1\" -> \"2\"",
                "~ ports[containerPort=80].protocol: TCP -> UDP",
                "+ new: {\"x\":1}",
            ]
        );
    }

    #[test]
    fn secrets_are_masked_unless_revealed() {
        let s = |v: &str| {
            obj(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"same": "c2FtZQ==", "key": v}}),
            )
        };
        let changes = compare(&[s("b2xk")], &[s("bmV3")]);
        let diff = changes[0].unified_diff(&DiffOptions::default());
        assert!(
            diff.contains("-  key: '*** (before)'") || diff.contains("-  key: \"*** (before)\""),
            "{diff}"
        );
        assert!(diff.contains("+  key: \"*** (after)\""), "{diff}");
        assert!(
            !diff.contains("b2xk") && !diff.contains("bmV3") && !diff.contains("c2FtZQ=="),
            "{diff}"
        );
        let revealed = changes[0].unified_diff(&DiffOptions {
            reveal_secrets: true,
            ..DiffOptions::default()
        });
        assert!(revealed.contains("bmV3"), "{revealed}");
        let fields = changes[0].field_changes(&DiffOptions::default());
        assert_eq!(
            fields[0].to_string(),
            "~ data.key: \"*** (before)\" -> \"*** (after)\""
        );
    }

    fn crd(versions: Value) -> Object {
        obj(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "versions": versions}}),
        )
    }

    fn version(name: &str, storage: bool, spec_props: Value) -> Value {
        json!({"name": name, "served": true, "storage": storage, "schema": {"openAPIV3Schema": {
            "type": "object", "properties": {"spec": {"type": "object", "properties": spec_props}}}}})
    }

    #[test]
    fn crd_summary_lists_versions_storage_and_outermost_fields() {
        let before = crd(json!([
            version(
                "v1alpha1",
                true,
                json!({"size": {"type": "integer"}, "old": {"type": "string"}})
            ),
            version("v1beta0", false, json!({}))
        ]));
        let after = crd(json!([
            version(
                "v1alpha1",
                false,
                json!({"size": {"type": "integer"}, "hydrator": {"type": "object", "properties": {"repo": {"type": "string"}}}, "items": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}}})
            ),
            version("v1", true, json!({}))
        ]));
        let change = &compare(&[before], &[after])[0];
        let s = change.crd_summary().unwrap();
        assert_eq!(s.versions_added, ["v1"]);
        assert_eq!(s.versions_removed, ["v1beta0"]);
        assert_eq!(s.storage, Some(("v1alpha1".into(), "v1".into())));
        assert_eq!(
            s.fields_added,
            ["v1alpha1 spec.hydrator", "v1alpha1 spec.items"]
        );
        assert_eq!(s.fields_removed, ["v1alpha1 spec.old"]);
        let text = render_text(
            &[Section {
                package: "widgets".into(),
                title: "upstream changes".into(),
                version_before: Some("1.0".into()),
                version_after: Some("2.0".into()),
                notes: vec![],
                warnings: vec![],
                changes: vec![change.clone()],
                detail: Detail::Fields,
            }],
            &DiffOptions::default(),
        );
        assert!(
            text.contains("CRD storage version: v1alpha1 -> v1"),
            "{text}"
        );
        assert!(text.contains("other schema detail(s) changed"), "{text}");
    }

    #[test]
    fn markdown_has_table_details_warnings_and_respects_size() {
        let changes = compare(&[deploy("c:1", &[]), netpol()], &[deploy("c:2", &[])]);
        let warnings = removal_warning(&changes).into_iter().collect();
        let section = Section {
            package: "ingress".into(),
            title: String::new(),
            version_before: Some("1.2.0".into()),
            version_after: Some("1.3.0".into()),
            notes: vec!["version 1.2.0 -> 1.3.0".into()],
            warnings,
            changes,
            detail: Detail::Unified,
        };
        let md = render_markdown(
            "kpin diff",
            "",
            std::slice::from_ref(&section),
            &DiffOptions::default(),
            MarkdownLimits::default(),
            "kpin diff",
        );
        assert!(
            md.contains("| `ingress` | 1.2.0 → 1.3.0 | 0 | 1 | 1 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("<details><summary><code>~ Deployment ingress/controller</code></summary>"),
            "{md}"
        );
        assert!(
            md.contains("> [!WARNING]\n> - 1 object(s) no longer rendered"),
            "{md}"
        );
        assert!(
            md.contains("```diff\n--- Deployment ingress/controller (before)\n"),
            "{md}"
        );
        let tiny = MarkdownLimits {
            max_chars: 600,
            max_lines_per_object: 400,
        };
        let md = render_markdown(
            "kpin diff",
            "",
            &[section],
            &DiffOptions::default(),
            tiny,
            "kpin diff --base main",
        );
        assert!(
            md.contains("(diff omitted)") && md.contains("run `kpin diff --base main`"),
            "{md}"
        );
    }

    #[test]
    fn markdown_fences_outlast_backticks_in_objects() {
        let cm = |text: &str| {
            obj(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "readme", "namespace": "docs"}, "data": {"README.md": text}}),
            )
        };
        let section = Section {
            package: "docs".into(),
            title: String::new(),
            version_before: Some("1".into()),
            version_after: Some("1".into()),
            notes: vec![],
            warnings: vec![],
            changes: compare(&[cm("a\n```sh\nls\n```\n")], &[cm("b\n```sh\nls\n```\n")]),
            detail: Detail::Unified,
        };
        let md = render_markdown(
            "kpin diff",
            "",
            &[section],
            &DiffOptions::default(),
            MarkdownLimits::default(),
            "kpin diff",
        );
        assert!(md.contains("````diff\n"), "{md}");
        assert!(md.contains("\n````\n\n</details>"), "{md}");
        assert_eq!(fence_for("no ticks"), "```");
    }

    #[test]
    fn json_lists_only_changed_objects() {
        let changes = compare(&[role(), netpol()], &[role()]);
        let section = Section {
            package: "p".into(),
            title: String::new(),
            version_before: None,
            version_after: Some("1".into()),
            notes: vec![],
            warnings: vec![],
            changes,
            detail: Detail::Unified,
        };
        let v = to_json(&[section], &DiffOptions::default());
        assert_eq!(v["sections"][0]["summary"]["unchanged"], 1);
        assert_eq!(v["sections"][0]["objects"].as_array().unwrap().len(), 1);
        assert_eq!(v["sections"][0]["objects"][0]["change"], "removed");
        assert_eq!(v["sections"][0]["version"]["before"], Value::Null);
    }
}
