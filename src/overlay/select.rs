//! Selectors: which objects an overlay operation touches (apiVersion/group, kind, name glob,
//! namespace glob, label selector), compiled once and matched against the current objects.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, Result};
use globset::{Glob, GlobMatcher};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::Object;

/// Which objects an operation applies to. Every given field must match; an empty selector
/// matches every object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSelector {
    /// Exact `apiVersion`, e.g. `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// API group (`apps`, `rbac.authorization.k8s.io`; empty string for the core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Exact kind, e.g. `Deployment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Object name, exact or a glob (`*-controller`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace (as it is when the operation runs), exact or a glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kubernetes label selector on `metadata.labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelExpression>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelExpression {
    pub key: String,
    pub operator: LabelOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum LabelOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A compiled selector.
#[derive(Debug, Clone)]
pub struct Selector {
    raw: RawSelector,
    name: Option<GlobMatcher>,
    namespace: Option<GlobMatcher>,
}

impl Selector {
    pub fn compile(raw: &RawSelector) -> Result<Selector> {
        let glob = |pattern: &Option<String>, field: &str| -> Result<Option<GlobMatcher>> {
            pattern
                .as_deref()
                .map(|p| {
                    Glob::new(p).map(|g| g.compile_matcher()).with_context(|| {
                        format!(
                            "select.{field}: {} is not a valid glob",
                            crate::error::quote(p)
                        )
                    })
                })
                .transpose()
        };
        for expr in raw.label_selector.iter().flat_map(|l| &l.match_expressions) {
            let needs_values = matches!(expr.operator, LabelOperator::In | LabelOperator::NotIn);
            if needs_values == expr.values.is_empty() {
                anyhow::bail!(
                    "select.labelSelector: operator {:?} on {} {}",
                    expr.operator,
                    crate::error::quote(&expr.key),
                    if needs_values {
                        "needs values"
                    } else {
                        "takes no values"
                    }
                );
            }
        }
        Ok(Selector {
            name: glob(&raw.name, "name")?,
            namespace: glob(&raw.namespace, "namespace")?,
            raw: raw.clone(),
        })
    }

    /// A selector that matches everything.
    pub fn all() -> Selector {
        Selector {
            raw: RawSelector::default(),
            name: None,
            namespace: None,
        }
    }

    pub fn is_all(&self) -> bool {
        self.raw == RawSelector::default()
    }

    pub fn matches(&self, object: &Object) -> bool {
        let r = &self.raw;
        r.api_version
            .as_deref()
            .is_none_or(|v| v == object.api_version())
            && r.group.as_deref().is_none_or(|g| g == object.group())
            && r.kind.as_deref().is_none_or(|k| k == object.kind())
            && self.name.as_ref().is_none_or(|g| g.is_match(object.name()))
            && self
                .namespace
                .as_ref()
                .is_none_or(|g| object.namespace().is_some_and(|ns| g.is_match(ns)))
            && r.label_selector
                .as_ref()
                .is_none_or(|l| labels_match(l, object))
    }
}

fn labels_match(selector: &LabelSelector, object: &Object) -> bool {
    let label = |key: &str| {
        object
            .labels()
            .and_then(|l| l.get(key))
            .and_then(|v| v.as_str())
    };
    selector
        .match_labels
        .iter()
        .all(|(k, v)| label(k) == Some(v.as_str()))
        && selector.match_expressions.iter().all(|e| {
            let value = label(&e.key);
            match e.operator {
                LabelOperator::In => value.is_some_and(|v| e.values.iter().any(|x| x == v)),
                LabelOperator::NotIn => value.is_none_or(|v| e.values.iter().all(|x| x != v)),
                LabelOperator::Exists => value.is_some(),
                LabelOperator::DoesNotExist => value.is_none(),
            }
        })
}

impl fmt::Display for Selector {
    /// `{kind: Deployment, name: controller}`: the selector as the user wrote it, in YAML flow style.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn flow(value: &Value) -> String {
            match value {
                Value::Object(map) => {
                    let items: Vec<String> = map
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", flow(v)))
                        .collect();
                    format!("{{{}}}", items.join(", "))
                }
                Value::Array(items) => {
                    format!(
                        "[{}]",
                        items.iter().map(flow).collect::<Vec<_>>().join(", ")
                    )
                }
                Value::String(s)
                    if crate::yaml::is_plain_safe(s) && !s.contains([',', '{', '}', '[', ']']) =>
                {
                    s.clone()
                }
                other => other.to_string(),
            }
        }
        f.write_str(&flow(
            &serde_json::to_value(&self.raw).unwrap_or(Value::Null),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Object {
        Object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "ingress-controller", "namespace": "ingress", "labels": {"app": "x", "tier": "web"}}}))
    }

    fn sel(v: serde_json::Value) -> Selector {
        Selector::compile(&serde_json::from_value(v).unwrap()).unwrap()
    }

    #[test]
    fn fields_globs_and_labels() {
        let o = obj();
        assert!(Selector::all().matches(&o));
        assert!(
            sel(json!({"kind": "Deployment", "name": "*-controller", "group": "apps"})).matches(&o)
        );
        assert!(!sel(json!({"kind": "Deployment", "name": "other"})).matches(&o));
        assert!(sel(json!({"namespace": "ing*", "apiVersion": "apps/v1"})).matches(&o));
        assert!(
            sel(json!({"labelSelector": {"matchLabels": {"app": "x"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]},
                                 {"key": "gone", "operator": "DoesNotExist"}]}}))
            .matches(&o)
        );
        assert!(!sel(json!({"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}})).matches(&o));
    }

    #[test]
    fn display_reads_like_yaml_flow() {
        assert_eq!(
            sel(json!({"kind": "Deployment", "name": "x-*"})).to_string(),
            "{kind: Deployment, name: x-*}"
        );
        assert_eq!(
            sel(json!({"group": "", "labelSelector": {"matchLabels": {"a": "on"}}})).to_string(),
            "{group: \"\", labelSelector: {matchLabels: {a: \"on\"}}}"
        );
    }

    #[test]
    fn bad_label_expression_is_rejected() {
        let raw = serde_json::from_value(
            json!({"labelSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
        )
        .unwrap();
        assert!(Selector::compile(&raw).is_err());
    }
}
