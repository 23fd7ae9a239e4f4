//! What changed in a CustomResourceDefinition, at the level a reviewer decides on.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

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
