//! Patch operations: RFC 6902 JSON patch, RFC 7386 merge patch, and merge patch with
//! well-known lists merged by key (the table `MERGE_KEYS`).

use anyhow::Result;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::RawSelector;
use crate::error::HintExt;
use crate::object::Object;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawJsonPatch {
    pub select: RawSelector,
    /// Do not fail when the selector matches nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// RFC 6902 operations: `{op: add|remove|replace|move|copy|test, path: /json/pointer, value|from}`.
    #[schemars(with = "Vec<serde_json::Map<String, Value>>")]
    pub patch: Value,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMergePatch {
    pub select: RawSelector,
    /// Do not fail when the selector matches nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// The partial object to merge; `null` deletes a field.
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub patch: Value,
}

/// Lists merged item by item instead of replaced, with the keys that identify an item, in
/// order of preference (container ports by `containerPort`, Service ports by `port`).
pub static MERGE_KEYS: &[(&str, &[&str])] = &[
    ("containers", &["name"]),
    ("initContainers", &["name"]),
    ("ephemeralContainers", &["name"]),
    ("env", &["name"]),
    ("volumes", &["name"]),
    ("volumeMounts", &["mountPath"]),
    ("volumeDevices", &["devicePath"]),
    ("ports", &["containerPort", "port"]),
    ("imagePullSecrets", &["name"]),
];

/// Directive key on a list item: `$patch: delete` removes the matching item.
const DIRECTIVE: &str = "$patch";

pub(super) fn parse_json_patch(value: Value) -> Result<json_patch::Patch> {
    if !value.is_array() {
        return Err(anyhow::anyhow!(
            "jsonPatch.patch: expected a list of RFC 6902 operations"
        ))
        .hint("e.g. patch: [{op: replace, path: /spec/replicas, value: 3}]");
    }
    let pointer_hint = "paths are JSON pointers such as /spec/template/spec/containers/0/args (`~1` for `/` in a key, `~0` for `~`)";
    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
        for field in ["path", "from"] {
            if let Some(p) = item.get(field).and_then(Value::as_str)
                && let Err(why) = check_pointer(p)
            {
                return Err(anyhow::anyhow!(
                    "jsonPatch.patch[{i}].{field}: {} is not a JSON pointer: {why}",
                    crate::error::quote(p)
                ))
                .hint(pointer_hint);
            }
        }
    }
    serde_path_to_error::deserialize(value)
        .map_err(|e| {
            let at = e.path().to_string();
            anyhow::anyhow!(
                "jsonPatch.patch{}: {}",
                at.trim_start_matches('.'),
                crate::error::shorten_quoted(&e.into_inner().to_string())
            )
        })
        .hint("each operation is {op: add|remove|replace|move|copy|test, path: /pointer, value: ...} (`from:` for move and copy)")
}

/// RFC 6901: empty, or `/`-separated tokens where `~` is only followed by `0` or `1`.
fn check_pointer(p: &str) -> Result<(), &'static str> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err("it must start with `/`");
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("`~` must be followed by `0` or `1`");
        }
    }
    Ok(())
}

pub(super) fn object_patch(value: Value) -> Result<Value> {
    if !value.is_object() {
        anyhow::bail!("patch: expected a mapping (a partial object)");
    }
    Ok(value)
}

pub(super) fn apply_json_patch(object: &mut Object, patch: &json_patch::Patch) -> Result<()> {
    let reference = object.reference();
    json_patch::patch(&mut object.0, patch).map_err(|e| {
        let hint = match e.kind {
            json_patch::PatchErrorKind::TestFailed => {
                let actual = object
                    .0
                    .pointer(e.path.as_str()).map_or_else(|| "nothing".to_owned(), |v| serde_json::to_string(v).unwrap_or_default());
                format!("the value there is {actual}: upstream changed it, so review whether this patch still makes sense")
            }
            _ => "the path does not exist in this object: check it against `kpin render --explain` or the vendored file".to_owned(),
        };
        anyhow::anyhow!(
            "{reference}: patch[{}] ({}) at {}: {}",
            e.operation,
            op_name(&patch.0[e.operation.min(patch.0.len().saturating_sub(1))]),
            if e.path.as_str().is_empty() { "/" } else { e.path.as_str() },
            e.kind
        )
        .hint(hint)
    })
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation as P;
    match op {
        P::Add(_) => "add",
        P::Remove(_) => "remove",
        P::Replace(_) => "replace",
        P::Move(_) => "move",
        P::Copy(_) => "copy",
        P::Test(_) => "test",
    }
}

/// Merge patch (RFC 7386) except that lists named in `MERGE_KEYS` are merged item by item.
///
/// A patch item without its list's key is an error, as in kubectl: replacing the list instead
/// would silently drop every upstream item (a container patched without its `name`).
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), MissingMergeKey> {
    merge_at(target, patch, "")
}

/// A strategic-merge patch item that lacks the key its list is merged by.
#[derive(Debug, thiserror::Error)]
#[error("{path} has no {}: items of `{field}` are matched by it", self.keys())]
pub struct MissingMergeKey {
    /// Where the item is in the patch, e.g. `spec.template.spec.containers[0]`.
    pub path: String,
    pub field: String,
    pub keys: &'static [&'static str],
}

impl MissingMergeKey {
    fn keys(&self) -> String {
        let keys: Vec<String> = self.keys.iter().map(|k| format!("`{k}`")).collect();
        keys.join(" or ")
    }
}

pub(super) fn apply_strategic_merge(object: &mut Object, patch: &Value) -> Result<()> {
    let reference = object.reference();
    strategic_merge(&mut object.0, patch).map_err(|e| {
        let hint = format!(
            "add {} of the upstream item to change (or of a new one to append); mergePatch replaces the whole list",
            e.keys()
        );
        anyhow::anyhow!("{reference}: {e}").hint(hint)
    })
}

fn merge_at(target: &mut Value, patch: &Value, path: &str) -> Result<(), MissingMergeKey> {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return Ok(());
    };
    for (key, value) in patch_map {
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Array(items) => {
                let merged = match target_map.get_mut(key) {
                    Some(Value::Array(existing)) => merge_list(key, &field, existing, items)?,
                    _ => false,
                };
                if !merged {
                    target_map.insert(
                        key.clone(),
                        Value::Array(items.iter().map(strip_directives).collect()),
                    );
                }
            }
            Value::Object(_) => merge_at(
                target_map.entry(key.clone()).or_insert(Value::Null),
                value,
                &field,
            )?,
            scalar => {
                target_map.insert(key.clone(), scalar.clone());
            }
        }
    }
    Ok(())
}

/// Merge `items` into `existing` (found at `path`) by the list's key; `false` when the list
/// has no merge key that every item carries (then it is replaced like in a merge patch).
fn merge_list(
    field: &str,
    path: &str,
    existing: &mut Vec<Value>,
    items: &[Value],
) -> Result<bool, MissingMergeKey> {
    let Some((_, keys)) = MERGE_KEYS.iter().find(|(f, _)| *f == field) else {
        return Ok(false);
    };
    if let Some(i) = items
        .iter()
        .position(|item| item.is_object() && keys.iter().all(|k| item.get(*k).is_none()))
    {
        return Err(MissingMergeKey {
            path: format!("{path}[{i}]"),
            field: field.to_owned(),
            keys,
        });
    }
    let Some(key) = keys
        .iter()
        .find(|k| existing.iter().chain(items).all(|i| i.get(**k).is_some()))
    else {
        return Ok(false);
    };
    for item in items {
        let id = &item[*key];
        let position = existing.iter().position(|e| &e[*key] == id);
        let delete = item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(p), true) => {
                existing.remove(p);
            }
            (None, true) => {}
            (Some(p), false) => merge_at(
                &mut existing[p],
                &strip_directives(item),
                &format!("{path}[{p}]"),
            )?,
            (None, false) => existing.push(strip_directives(item)),
        }
    }
    Ok(true)
}

fn strip_directives(item: &Value) -> Value {
    match item {
        Value::Object(map) if map.contains_key(DIRECTIVE) => {
            let mut m = map.clone();
            m.remove(DIRECTIVE);
            Value::Object(m)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{deployment, err, run};
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_applies_and_reports_failures() {
        let out = run(
            vec![deployment()],
            "operations:\n- jsonPatch:\n    select: {kind: Deployment}\n    patch:\n    - {op: test, path: /spec/replicas, value: 1}\n    - {op: replace, path: /spec/replicas, value: 2}\n",
        )
        .unwrap();
        assert_eq!(out[0]["spec"]["replicas"], 2);

        let text = err(
            vec![deployment()],
            "operations:\n- jsonPatch:\n    select: {kind: Deployment}\n    patch: [{op: test, path: /spec/replicas, value: 5}]\n",
        );
        assert!(
            text.contains(
                "Deployment up/controller: patch[0] (test) at /spec/replicas: value did not match"
            ),
            "{text}"
        );
        assert!(text.contains("hint: the value there is 1"), "{text}");

        let text = err(
            vec![deployment()],
            "operations:\n- jsonPatch:\n    select: {kind: Deployment}\n    patch: [{op: replace, path: /spec/nope/x, value: 5}]\n",
        );
        assert!(text.contains("at /spec/nope/x: path is invalid"), "{text}");
    }

    #[test]
    fn invalid_pointer_is_a_parse_error() {
        let e = super::super::tests::parse("operations:\n- jsonPatch:\n    select: {kind: Deployment}\n    patch: [{op: add, path: spec/replicas, value: 5}]\n").unwrap_err();
        let text = crate::error::format_error(&e);
        assert!(
            text.contains("overlays/x.yaml operations[0] (jsonPatch)"),
            "{text}"
        );
        assert!(text.contains("jsonPatch.patch[0].path: `spec/replicas` is not a JSON pointer: it must start with `/`"), "{text}");
        assert!(text.contains("hint: paths are JSON pointers"), "{text}");
    }

    #[test]
    fn strategic_merge_keeps_other_containers_and_deletes_items() {
        let mut d = deployment();
        strategic_merge(
            &mut d,
            &json!({"spec": {"template": {"spec": {"containers": [
                {"name": "main", "args": ["--a", "--b"], "env": [{"name": "X", "value": "1"}]},
                {"name": "side", "$patch": "delete"},
                {"name": "new", "image": "n"}]}}}}),
        )
        .unwrap();
        let containers = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2);
        assert_eq!(
            containers[0]["image"],
            "registry.k8s.io/up/controller:v1.0@sha256:abc"
        );
        assert_eq!(containers[0]["args"], json!(["--a", "--b"]));
        assert_eq!(containers[1], json!({"name": "new", "image": "n"}));
    }

    #[test]
    fn lists_without_keys_are_replaced() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}, {"port": 443}], "tolerations": [1]}});
        strategic_merge(
            &mut svc,
            &json!({"spec": {"ports": [{"port": 443, "name": "https"}], "tolerations": [2]}}),
        )
        .unwrap();
        assert_eq!(
            svc,
            json!({"spec": {"ports": [{"port": 80}, {"port": 443, "name": "https"}], "tolerations": [2]}})
        );
    }

    #[test]
    fn a_keyed_list_item_without_its_key_is_an_error() {
        let text = err(
            vec![deployment()],
            "operations:\n- strategicMerge:\n    select: {kind: Deployment}\n    patch: {spec: {template: {spec: {containers: [{image: x}]}}}}\n",
        );
        assert!(
            text.contains("Deployment up/controller: spec.template.spec.containers[0] has no `name`: items of `containers` are matched by it"),
            "{text}"
        );
        assert!(
            text.contains("hint: add `name` of the upstream item"),
            "{text}"
        );
    }
}
