//! Field-level diff of two objects: one line per changed field, list items matched by their
//! key field (`containers[controller]`).

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use serde_json::Value;

use super::Change;
use crate::yaml;

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

/// Every field that differs between `before` and `after`, in document order.
pub(super) fn between(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff_values(&mut Vec::new(), before, after, &mut out);
    out
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
