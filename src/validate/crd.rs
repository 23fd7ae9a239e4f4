//! Custom resource schemas: the `openAPIV3Schema` of every version of every CRD any package of
//! the manifest renders (so prometheus-operator's CRDs check the ServiceMonitor that
//! ingress-nginx's overlay adds), compiled the first time a custom resource needs them.

use std::collections::HashMap;

use serde_json::Value;

use super::schema::{Arena, Dialect, Id};
use crate::kinds;
use crate::object::Object;

/// A CRD found in a render, and the package that renders it.
#[derive(Debug, Clone)]
struct Definition {
    package: String,
    crd: Value,
}

/// What a CRD says about one `apiVersion` of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No CRD for this group and kind.
    Unknown,
    /// The CRD exists but does not serve this version; the served ones are listed.
    NotServed {
        package: String,
        served: Vec<String>,
    },
    /// The served version has no schema (allowed only by old CRDs): nothing to check.
    NoSchema {
        package: String,
    },
    Schema {
        package: String,
        id: Id,
    },
}

/// CRDs by (group, kind).
#[derive(Debug, Default)]
pub struct CrdIndex {
    by_kind: HashMap<(String, String), Definition>,
    compiled: HashMap<(String, String, String), Option<Id>>,
}

impl CrdIndex {
    /// Remember the CRDs among `objects`, rendered by `package`. A kind defined twice keeps
    /// the first definition (render order is deterministic; two packages shipping one CRD is
    /// an error of its own in `render::combine`).
    pub fn add(&mut self, package: &str, objects: &[Object]) {
        for o in objects {
            if (o.group(), o.kind()) != kinds::CRD_KIND {
                continue;
            }
            let group = o.0.pointer("/spec/group").and_then(Value::as_str);
            let kind = o.0.pointer("/spec/names/kind").and_then(Value::as_str);
            if let (Some(group), Some(kind)) = (group, kind) {
                self.by_kind
                    .entry((group.to_owned(), kind.to_owned()))
                    .or_insert_with(|| Definition {
                        package: package.to_owned(),
                        crd: o.0.clone(),
                    });
            }
        }
    }

    /// Whether any CRD defines `group`/`kind`.
    pub fn knows(&self, group: &str, kind: &str) -> bool {
        self.by_kind
            .contains_key(&(group.to_owned(), kind.to_owned()))
    }

    /// The schema of `apiVersion`/`kind`, compiled into `arena` on first use.
    pub fn lookup(&mut self, arena: &mut Arena, api_version: &str, kind: &str) -> Lookup {
        let group = kinds::group_of(api_version);
        let version = api_version.rsplit('/').next().unwrap_or(api_version);
        let Some(def) = self.by_kind.get(&(group.to_owned(), kind.to_owned())) else {
            return Lookup::Unknown;
        };
        let package = def.package.clone();
        let versions = def
            .crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(entry) = versions.iter().find(|v| {
            v.get("name").and_then(Value::as_str) == Some(version)
                && v.get("served").and_then(Value::as_bool) != Some(false)
        }) else {
            let served = versions
                .iter()
                .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .map(|n| format!("{group}/{n}"))
                .collect();
            return Lookup::NotServed { package, served };
        };
        let key = (group.to_owned(), kind.to_owned(), version.to_owned());
        let id = *self.compiled.entry(key).or_insert_with(|| {
            entry
                .pointer("/schema/openAPIV3Schema")
                .filter(|s| s.is_object())
                .map(|schema| arena.compile(schema, Dialect::Crd, &mut |_, _| None))
        });
        match id {
            Some(id) => Lookup::Schema { package, id },
            None => Lookup::NoSchema { package },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Object {
        Object(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "names": {"kind": "Widget"}, "scope": "Namespaced",
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1alpha1", "served": false, "storage": false}]}}),
        )
    }

    #[test]
    fn served_versions_have_schemas() {
        let mut index = CrdIndex::default();
        index.add("widgets", &[crd()]);
        let mut arena = Arena::default();
        assert!(matches!(
            index.lookup(&mut arena, "example.com/v1", "Widget"),
            Lookup::Schema { .. }
        ));
        assert_eq!(
            index.lookup(&mut arena, "example.com/v1alpha1", "Widget"),
            Lookup::NotServed {
                package: "widgets".into(),
                served: vec!["example.com/v1".into()]
            }
        );
        assert_eq!(
            index.lookup(&mut arena, "example.com/v1", "Gadget"),
            Lookup::Unknown
        );
        assert!(index.knows("example.com", "Widget"));
    }
}
