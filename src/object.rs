//! A Kubernetes object as kpin handles it: JSON as the API server reads it, plus the
//! accessors and identity (`ObjectRef`) every stage needs.

use std::fmt;

use serde_json::{Map, Value};

use std::path::Path;

use crate::error::HintExt;
use crate::kinds;

/// One Kubernetes object (a JSON mapping with `apiVersion`, `kind`, `metadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct Object(pub Value);

/// The identity of an object: group, kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    /// `Deployment ingress/controller` or `ClusterRole ingress-nginx`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl Object {
    /// The objects of a YAML stream read as Kubernetes reads it (`List` kinds flattened by
    /// `yaml::object_values`), unchecked.
    pub fn from_stream(text: &str, origin: &Path) -> Result<Vec<Object>, crate::yaml::YamlError> {
        Ok(crate::yaml::object_values(text, origin)?
            .into_iter()
            .map(Object)
            .collect())
    }

    /// `from_stream`, each object checked to have the identity kpin sorts, selects and applies
    /// by.
    pub fn all_from_yaml(text: &str, origin: &Path) -> anyhow::Result<Vec<Object>> {
        let objects = Object::from_stream(text, origin)?;
        for (index, object) in objects.iter().enumerate() {
            let missing = [
                ("apiVersion", object.api_version()),
                ("kind", object.kind()),
                ("metadata.name", object.name()),
            ]
            .into_iter()
            .find(|(_, v)| v.is_empty());
            if let Some((field, _)) = missing {
                return Err(anyhow::anyhow!(
                    "{}: object {} (kind `{}`, name `{}`) has no `{field}`",
                    origin.display(),
                    index + 1,
                    object.kind(),
                    object.name()
                ))
                .hint("every object needs apiVersion, kind and metadata.name (generateName cannot be applied declaratively)");
            }
        }
        Ok(objects)
    }

    pub fn api_version(&self) -> &str {
        self.0
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn group(&self) -> &str {
        kinds::group_of(self.api_version())
    }
    pub fn kind(&self) -> &str {
        self.0.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.0
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.0
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }
    pub fn labels(&self) -> Option<&Map<String, Value>> {
        self.0
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
    }
    pub fn annotations(&self) -> Option<&Map<String, Value>> {
        self.0
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
    }
    pub fn reference(&self) -> ObjectRef {
        ObjectRef {
            group: self.group().to_owned(),
            kind: self.kind().to_owned(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }
    /// The `metadata` mapping, created when missing.
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let root = ensure_object(&mut self.0);
        ensure_object(
            root.entry("metadata")
                .or_insert_with(|| Value::Object(Map::new())),
        )
    }
    pub fn set_namespace(&mut self, namespace: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(namespace.to_owned()));
    }
    /// Sort key for deterministic output: apply stage, kind table position, then identity.
    pub fn order_key(&self) -> ((kinds::Stage, usize), ObjectRef) {
        (kinds::rank(self.group(), self.kind()), self.reference())
    }
}

fn ensure_object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// Append `path` + `key` in the dotted form used in messages (`spec.containers[0].args`).
pub fn push_path(path: &str, key: PathKey) -> String {
    match key {
        PathKey::Key(k) if path.is_empty() => k.to_owned(),
        PathKey::Key(k) if k.contains(['.', '/', ' ']) || k.is_empty() => format!("{path}[{k:?}]"),
        PathKey::Key(k) => format!("{path}.{k}"),
        PathKey::Index(i) => format!("{path}[{i}]"),
    }
}

#[derive(Debug, Clone, Copy)]
pub enum PathKey<'a> {
    Key(&'a str),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_are_flattened() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- apiVersion: v1\n  kind: ConfigMapList\n  items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}]\n---\n{apiVersion: v1, kind: Secret, metadata: {name: c}}\n";
        let names: Vec<String> = Object::all_from_yaml(text, Path::new("t.yaml"))
            .unwrap()
            .iter()
            .map(|o| o.name().to_owned())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn objects_need_identity() {
        let err = Object::all_from_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n",
            Path::new("t.yaml"),
        )
        .unwrap_err();
        let text = crate::error::format_error(&err);
        assert!(
            text.contains("t.yaml: object 1 (kind `ConfigMap`, name ``) has no `metadata.name`"),
            "{text}"
        );
    }

    #[test]
    fn identity_and_display() {
        let o = Object(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "c", "namespace": "ingress"}}),
        );
        assert_eq!(o.reference().to_string(), "Deployment ingress/c");
        let mut cr =
            Object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"}));
        assert_eq!(cr.group(), "rbac.authorization.k8s.io");
        cr.metadata_mut().insert("name".into(), json!("x"));
        assert_eq!(cr.reference().to_string(), "ClusterRole x");
    }
}
