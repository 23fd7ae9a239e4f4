//! The rbac operation: add or remove rules of Roles/ClusterRoles, add or replace subjects of
//! RoleBindings/ClusterRoleBindings.

use std::collections::BTreeSet;

use anyhow::Result;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpCtx, RawSelector, Selector, Workspace};
use crate::error::HintExt;
use crate::kinds;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRbac {
    pub select: RawSelector,
    /// Do not fail when the selector matches nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Rules appended to `rules` (Role/ClusterRole); rules already present are not repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<serde_json::Map<String, Value>>>")]
    pub add_rules: Option<Value>,
    /// Rules removed from `rules`; each must equal an existing rule (lists compared as sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<serde_json::Map<String, Value>>>")]
    pub remove_rules: Option<Value>,
    /// Subjects appended to a binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<serde_json::Map<String, Value>>>")]
    pub add_subjects: Option<Value>,
    /// Subjects that replace a binding's subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<serde_json::Map<String, Value>>>")]
    pub replace_subjects: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct RbacChange {
    add_rules: Vec<Value>,
    remove_rules: Vec<Value>,
    add_subjects: Vec<Value>,
    replace_subjects: Option<Vec<Value>>,
}

fn mappings(value: Value, field: &str, required: &[&str]) -> Result<Vec<Value>> {
    let Value::Array(items) = value else {
        anyhow::bail!("rbac.{field}: expected a list");
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            anyhow::bail!("rbac.{field}[{i}]: expected a mapping");
        };
        for key in required {
            if !map.contains_key(*key) {
                anyhow::bail!("rbac.{field}[{i}]: missing `{key}`");
            }
        }
    }
    Ok(items)
}

impl RbacChange {
    pub(super) fn build(raw: &RawRbac, k8s_field: &dyn Fn(&str) -> Value) -> Result<RbacChange> {
        let list = |present: bool, field: &str, required: &[&str]| -> Result<Vec<Value>> {
            if present {
                mappings(k8s_field(field), field, required)
            } else {
                Ok(Vec::new())
            }
        };
        let change = RbacChange {
            add_rules: list(raw.add_rules.is_some(), "addRules", &["verbs"])?,
            remove_rules: list(raw.remove_rules.is_some(), "removeRules", &["verbs"])?,
            add_subjects: list(raw.add_subjects.is_some(), "addSubjects", &["kind", "name"])?,
            replace_subjects: raw
                .replace_subjects
                .is_some()
                .then(|| list(true, "replaceSubjects", &["kind", "name"]))
                .transpose()?,
        };
        let rules = !change.add_rules.is_empty() || !change.remove_rules.is_empty();
        let subjects = !change.add_subjects.is_empty() || change.replace_subjects.is_some();
        if rules == subjects {
            return Err(anyhow::anyhow!(
                "rbac: give rule changes (addRules/removeRules) or subject changes (addSubjects/replaceSubjects), not {}",
                if rules { "both" } else { "neither" }
            ))
            .hint("rules live on Roles/ClusterRoles and subjects on bindings: use one operation for each");
        }
        Ok(change)
    }

    fn on_rules(&self) -> bool {
        !self.add_rules.is_empty() || !self.remove_rules.is_empty()
    }
}

/// Two rules are the same when each field holds the same set of values.
fn same_rule(a: &Value, b: &Value) -> bool {
    let fields = |v: &Value| -> BTreeSet<(String, BTreeSet<String>)> {
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let set: BTreeSet<String> = match v {
                    Value::Array(items) => {
                        items.iter().map(std::string::ToString::to_string).collect()
                    }
                    other => std::iter::once(other.to_string()).collect(),
                };
                (k.clone(), set)
            })
            .filter(|(_, s)| !s.is_empty())
            .collect()
    };
    fields(a) == fields(b)
}

pub(super) fn apply(
    ws: &mut Workspace,
    selector: &Selector,
    change: &RbacChange,
    ctx: &OpCtx,
) -> Result<()> {
    let (table, field) = if change.on_rules() {
        (kinds::RULE_KINDS, "rules")
    } else {
        (kinds::BINDING_KINDS, "subjects")
    };
    for i in ws.select(selector, ctx)? {
        let object = &ws.objects[i].object;
        if !table.contains(&(object.group(), object.kind())) {
            let expected: Vec<&str> = table.iter().map(|(_, k)| *k).collect();
            return Err(anyhow::anyhow!(
                "{}: has no `{field}` to change",
                object.reference()
            ))
            .hint(format!("narrow the selector to {}", expected.join(" or ")));
        }
        ws.modify(i, &ctx.origin, |o| {
            let reference = o.reference();
            let root = o.0.as_object_mut().ok_or_else(|| anyhow::anyhow!("{reference}: not a mapping"))?;
            let list = root.entry(field).or_insert_with(|| Value::Array(Vec::new()));
            if list.is_null() {
                *list = Value::Array(Vec::new());
            }
            let Value::Array(items) = list else {
                anyhow::bail!("{reference}: {field}: expected a list");
            };
            for (n, rule) in change.remove_rules.iter().enumerate() {
                let before = items.len();
                items.retain(|r| !same_rule(r, rule));
                if items.len() == before && !ctx.optional {
                    return Err(anyhow::anyhow!(
                        "{reference}: removeRules[{n}] {} matches no rule in rules",
                        serde_json::to_string(rule).unwrap_or_default()
                    ))
                    .hint("rules must match exactly (lists compared as sets); upstream may have changed the rule");
                }
            }
            for rule in &change.add_rules {
                if !items.iter().any(|r| same_rule(r, rule)) {
                    items.push(rule.clone());
                }
            }
            if let Some(subjects) = &change.replace_subjects {
                items.clone_from(subjects);
            }
            for subject in &change.add_subjects {
                if !items.contains(subject) {
                    items.push(subject.clone());
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{err, run};
    use serde_json::{Value, json};

    fn role() -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cr"},
            "rules": [{"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "list"]}]})
    }

    #[test]
    fn add_and_remove_rules() {
        let out = run(vec![role()], "operations:\n- rbac:\n    select: {kind: ClusterRole}\n    removeRules:\n    - {apiGroups: [''], resources: [configmaps, secrets], verbs: [list, get]}\n    addRules:\n    - {apiGroups: [''], resources: [configmaps], verbs: [get]}\n").unwrap();
        assert_eq!(
            out[0]["rules"],
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}])
        );
        let text = err(
            vec![role()],
            "operations:\n- rbac:\n    select: {kind: ClusterRole}\n    removeRules: [{resources: [pods], verbs: [get]}]\n",
        );
        assert!(text.contains("ClusterRole cr: removeRules[0]"), "{text}");
    }

    #[test]
    fn subjects_on_bindings_only() {
        let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b", "namespace": "n"},
            "subjects": [{"kind": "ServiceAccount", "name": "a", "namespace": "n"}]});
        let out = run(vec![binding.clone()], "operations:\n- rbac:\n    select: {kind: RoleBinding}\n    addSubjects: [{kind: Group, name: ops, apiGroup: rbac.authorization.k8s.io}]\n").unwrap();
        assert_eq!(out[0]["subjects"].as_array().unwrap().len(), 2);
        let out = run(vec![binding.clone()], "operations:\n- rbac:\n    select: {kind: RoleBinding}\n    replaceSubjects: [{kind: Group, name: ops}]\n").unwrap();
        assert_eq!(
            out[0]["subjects"],
            json!([{"kind": "Group", "name": "ops"}])
        );
        let text = err(
            vec![role()],
            "operations:\n- rbac:\n    select: {name: cr}\n    addSubjects: [{kind: Group, name: ops}]\n",
        );
        assert!(
            text.contains("ClusterRole cr: has no `subjects` to change"),
            "{text}"
        );
    }
}
