//! The namespace operation: move a package into another namespace, rewriting every reference
//! `kinds::NAMESPACE_REFS` lists, then scan the output for references it could not know about.

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{NamespaceMove, OpCtx, Workspace};
use crate::error::HintExt;
use crate::kinds;
use crate::object::Object;
use crate::object::{PathKey, push_path};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNamespace {
    /// The target namespace.
    pub name: String,
}

/// Scope of custom kinds declared by CRDs among `objects`: (group, kind) -> namespaced.
fn crd_scopes(objects: &[super::Tracked]) -> HashMap<(String, String), bool> {
    objects
        .iter()
        .map(|t| &t.object)
        .filter(|o| (o.group(), o.kind()) == kinds::CRD_KIND)
        .filter_map(|o| {
            let spec = o.0.get("spec")?;
            let group = spec.get("group")?.as_str()?;
            let kind = spec.pointer("/names/kind")?.as_str()?;
            let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
            Some(((group.to_owned(), kind.to_owned()), namespaced))
        })
        .collect()
}

/// Whether `object` lives in a namespace. Custom kinds not declared in this render are taken
/// as namespaced when they carry a namespace, like kubectl and kustomize do.
fn is_namespaced(object: &Object, crds: &HashMap<(String, String), bool>) -> bool {
    let lookup = |g: &str, k: &str| crds.get(&(g.to_owned(), k.to_owned())).copied();
    kinds::namespaced(object.group(), object.kind(), &lookup).unwrap_or(true)
}

pub(super) fn apply(ws: &mut Workspace, to: &str, ctx: &OpCtx) -> Result<()> {
    let crds = crd_scopes(&ws.objects);
    let is_ns_object = |o: &Object| (o.group(), o.kind()) == kinds::NAMESPACE_KIND;
    let mut from = BTreeSet::new();
    let mut any_namespaced = false;
    for t in &ws.objects {
        if is_ns_object(&t.object) {
            from.insert(t.object.name().to_owned());
        } else if is_namespaced(&t.object, &crds) {
            any_namespaced = true;
            from.extend(t.object.namespace().map(str::to_owned));
        }
    }
    from.extend(implied_namespaces(ws));
    // A package that renders nothing (everything removed) has nothing to move either; only a
    // package made entirely of cluster-scoped objects is a mistake worth stopping for.
    let only_cluster_scoped = !ws.objects.is_empty()
        && !any_namespaced
        && !ws.objects.iter().any(|t| is_ns_object(&t.object));
    if only_cluster_scoped {
        return Err(anyhow::anyhow!(
            "every object of {} {} is cluster-scoped, so moving it to namespace `{to}` changes nothing",
            ctx.target.package,
            ctx.target.version
        ))
        .hint("remove this namespace operation (or `namespace:` from the package in kpin.yaml)");
    }
    from.remove(to);
    warn_external_roles(ws, &from, to, ctx);
    let mut seen_namespace = false;
    let mut duplicates = Vec::new();
    for i in 0..ws.objects.len() {
        let object = &ws.objects[i].object;
        if is_ns_object(object) {
            // Several upstream namespaces collapse into one: keep the first Namespace object.
            if from.contains(object.name()) || object.name() == to {
                if seen_namespace {
                    duplicates.push(i);
                    continue;
                }
                seen_namespace = true;
            }
        }
        let namespaced = !is_ns_object(object) && is_namespaced(object, &crds);
        ws.modify(i, &ctx.origin, |o| {
            if is_ns_object(o) {
                if from.contains(o.name()) {
                    o.metadata_mut()
                        .insert("name".into(), Value::String(to.to_owned()));
                }
            } else if namespaced {
                o.set_namespace(to);
            }
            rewrite_references(o, &from, to);
            Ok(())
        })?;
    }
    for i in duplicates.into_iter().rev() {
        let mut dropped = ws.objects.remove(i);
        if ws.explain {
            dropped.effects.push(super::Effect {
                origin: ctx.origin.clone(),
                edit: super::Edit::Removed,
            });
            ws.removed.push(dropped);
        }
    }
    ws.moves.push(NamespaceMove {
        from,
        to: to.to_owned(),
        origin: ctx.origin.clone(),
    });
    Ok(())
}

/// Namespaces a package assumes without writing them on its objects: releases such as Argo CD
/// leave `metadata.namespace` out (to be installed with `kubectl -n argocd`) yet bind their
/// ServiceAccounts as `{kind: ServiceAccount, name: x, namespace: argocd}`. A subject naming a
/// ServiceAccount the package defines without a namespace reveals that namespace.
fn implied_namespaces(ws: &Workspace) -> BTreeSet<String> {
    let unplaced_accounts: BTreeSet<&str> = ws
        .objects
        .iter()
        .map(|t| &t.object)
        .filter(|o| (o.group(), o.kind()) == kinds::SERVICE_ACCOUNT_KIND && o.namespace().is_none())
        .map(Object::name)
        .collect();
    let mut implied = BTreeSet::new();
    for t in &ws.objects {
        if !kinds::BINDING_KINDS.contains(&(t.object.group(), t.object.kind())) {
            continue;
        }
        for subject in t
            .object
            .0
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = |k: &str| subject.get(k).and_then(Value::as_str);
            if field("kind") == Some("ServiceAccount")
                && field("name").is_some_and(|n| unplaced_accounts.contains(n))
            {
                implied.extend(field("namespace").map(str::to_owned));
            }
        }
    }
    implied
}

/// A RoleBinding that grants a Role the package does not define (metrics-server's binding to
/// `extension-apiserver-authentication-reader` in kube-system) stops working when moved.
fn warn_external_roles(ws: &mut Workspace, from: &BTreeSet<String>, to: &str, ctx: &OpCtx) {
    let roles: BTreeSet<&str> = ws
        .objects
        .iter()
        .filter(|t| (t.object.group(), t.object.kind()) == kinds::RULE_KINDS[0])
        .map(|t| t.object.name())
        .collect();
    let mut warnings = Vec::new();
    for t in &ws.objects {
        let o = &t.object;
        let Some(ns) = o.namespace() else { continue };
        if (o.group(), o.kind()) != kinds::BINDING_KINDS[0] || !from.contains(ns) {
            continue;
        }
        let role_ref = o.0.get("roleRef");
        let kind = role_ref.and_then(|r| r.get("kind")).and_then(Value::as_str);
        let name = role_ref
            .and_then(|r| r.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if kind == Some("Role") && !roles.contains(name) {
            let mut moved = o.reference();
            moved.namespace = Some(to.to_owned());
            warnings.push(format!(
                "{moved}: roleRef.name: binds Role `{name}`, which the package does not define; it exists in `{ns}`, and {} moved this binding to `{to}`",
                ctx.origin
            ));
        }
    }
    ws.warnings.extend(warnings);
}

/// Rewrite the namespace fields of `kinds::NAMESPACE_REFS` that name one of `from`.
fn rewrite_references(object: &mut Object, from: &BTreeSet<String>, to: &str) {
    let (group, kind) = (object.group().to_owned(), object.kind().to_owned());
    for r in kinds::NAMESPACE_REFS
        .iter()
        .filter(|r| r.group == group && r.kind == kind)
    {
        let mut parents = vec![&mut object.0];
        for segment in r.parent {
            parents = parents
                .into_iter()
                .flat_map(|v| -> Vec<&mut Value> {
                    match (*segment, v) {
                        ("*", Value::Array(items)) => items.iter_mut().collect(),
                        (key, Value::Object(map)) => map.get_mut(key).into_iter().collect(),
                        _ => Vec::new(),
                    }
                })
                .collect();
        }
        for parent in parents {
            if r.only_kind
                .is_some_and(|k| parent.get("kind").and_then(Value::as_str) != Some(k))
            {
                continue;
            }
            if let Some(ns) = parent.get_mut("namespace")
                && ns.as_str().is_some_and(|s| from.contains(s))
            {
                *ns = Value::String(to.to_owned());
            }
        }
    }
}

/// Warnings for strings in `objects` that still point at a namespace a move left behind:
/// `<old>/name` (args, `cert-manager.io/inject-ca-from`), `svc.<old>.svc` host names, and
/// fields or arguments equal to the old name.
pub fn leftover_references(objects: &[Object], moves: &[NamespaceMove]) -> Vec<String> {
    let mut warnings = Vec::new();
    for m in moves {
        for old in &m.from {
            for object in objects {
                let mut hits = Vec::new();
                scan(&object.0, old, &mut Vec::new(), None, None, &mut hits);
                for (path, value) in hits {
                    warnings.push(format!(
                        "{}: {path}: `{value}` still refers to namespace `{old}`, which {} moved to `{}`",
                        object.reference(),
                        m.origin,
                        m.to
                    ));
                }
            }
        }
    }
    warnings
}

/// Walks every string once; the path is kept as a stack of segments and only formatted on a
/// hit, since multi-MB CRD bundles make per-node allocations add up.
fn scan<'a>(
    value: &'a Value,
    old: &str,
    path: &mut Vec<PathKey<'a>>,
    key: Option<&str>,
    previous: Option<&str>,
    hits: &mut Vec<(String, String)>,
) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                // Label values commonly repeat the project name, which often equals its namespace.
                if k == "labels" || k == "matchLabels" || k == "image" {
                    continue;
                }
                path.push(PathKey::Key(k));
                scan(v, old, path, Some(k), None, hits);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let previous = i.checked_sub(1).and_then(|p| items[p].as_str());
                path.push(PathKey::Index(i));
                scan(v, old, path, key, previous, hits);
                path.pop();
            }
        }
        Value::String(s) if refers_to(s, old, key, previous) => {
            let shown = path
                .iter()
                .fold(String::new(), |acc, k| push_path(&acc, *k));
            hits.push((shown, s.clone()));
        }
        _ => {}
    }
}

/// Whether string `s`, found under `key` (after list item `previous`), names namespace `old`.
/// A bare `old` counts only where it must be a namespace: a `namespace` field, an env `value`,
/// or the argument after a `--namespace`-like flag (`argocd` alone is also a command name).
fn refers_to(s: &str, old: &str, key: Option<&str>, previous: Option<&str>) -> bool {
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/');
    let qualified = s
        .match_indices(&format!("{old}/"))
        .any(|(i, _)| s[..i].chars().next_back().is_none_or(|c| !name_char(c)));
    let dns = s.contains(&format!(".{old}.svc"));
    let argument = matches!(key, Some("args" | "command")) && s.ends_with(&format!("={old}"));
    let bare = s == old
        && match key {
            Some("namespace" | "value") => true,
            Some("args" | "command") => {
                previous.is_some_and(|p| p.starts_with('-') && p.contains("namespace"))
            }
            _ => false,
        };
    qualified || dns || argument || bare
}

#[cfg(test)]
mod tests {
    use super::super::tests::{applied, err, run};
    use super::*;
    use serde_json::json;

    fn package() -> Vec<Value> {
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "up"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "up"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nons"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cr"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "crb"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "up"},
                             {"kind": "ServiceAccount", "name": "other", "namespace": "elsewhere"},
                             {"kind": "Group", "name": "g", "namespace": "up"}]}),
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "wh"},
                "webhooks": [{"name": "a", "clientConfig": {"service": {"name": "s", "namespace": "up"}}}]}),
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"},
                "spec": {"service": {"name": "s", "namespace": "up"}}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
                "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget"},
                    "conversion": {"webhook": {"clientConfig": {"service": {"name": "s", "namespace": "up"}}}}}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "up",
                    "annotations": {"cert-manager.io/inject-ca-from": "up/cert"}, "labels": {"app": "up"}},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "r.io/up/c:1",
                    "command": ["up"],
                    "args": ["--publish-service=up/svc", "--host=svc.up.svc", "--ns=up", "--nsx=$(POD_NAMESPACE)/x", "--backup/up/x", "--namespace", "up"]}]}}}}),
        ]
    }

    #[test]
    fn moves_every_reference() {
        let out = run(package(), "operations:\n- namespace: {name: ingress}\n").unwrap();
        assert_eq!(out[0]["metadata"]["name"], "ingress");
        assert_eq!(out[1]["metadata"]["namespace"], "ingress");
        assert_eq!(
            out[2]["metadata"]["namespace"], "ingress",
            "namespaced objects without a namespace get it"
        );
        assert!(
            out[3]["metadata"].get("namespace").is_none(),
            "cluster-scoped stay"
        );
        assert_eq!(
            out[4]["subjects"],
            json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "ingress"},
            {"kind": "ServiceAccount", "name": "other", "namespace": "elsewhere"},
            {"kind": "Group", "name": "g", "namespace": "up"}])
        );
        assert_eq!(
            out[5]["webhooks"][0]["clientConfig"]["service"]["namespace"],
            "ingress"
        );
        assert_eq!(out[6]["spec"]["service"]["namespace"], "ingress");
        assert_eq!(
            out[7]["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["namespace"],
            "ingress"
        );
        assert!(
            out[8]["metadata"].get("namespace").is_none(),
            "cluster-scoped custom kind from the CRD"
        );
    }

    #[test]
    fn leftovers_are_warned_with_paths() {
        let ws = applied(
            package(),
            false,
            "operations:\n- namespace: {name: ingress}\n",
        )
        .unwrap();
        let objects: Vec<Object> = ws.objects.iter().map(|t| t.object.clone()).collect();
        let warnings = leftover_references(&objects, &ws.moves);
        let paths: Vec<&str> = warnings
            .iter()
            .map(|w| w.split(": `").next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "ClusterRoleBinding crb: subjects[2].namespace",
                "Deployment ingress/d: metadata.annotations[\"cert-manager.io/inject-ca-from\"]",
                "Deployment ingress/d: spec.template.spec.containers[0].args[0]",
                "Deployment ingress/d: spec.template.spec.containers[0].args[1]",
                "Deployment ingress/d: spec.template.spec.containers[0].args[2]",
                "Deployment ingress/d: spec.template.spec.containers[0].args[6]",
            ],
            "{warnings:#?}"
        );
        assert!(
            warnings[0]
                .ends_with("which overlays/x.yaml operations[0] (namespace) moved to `ingress`")
        );
    }

    #[test]
    fn namespace_implied_by_bindings_moves_too() {
        let out = run(
            vec![
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ctrl"}}),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"},
                    "subjects": [{"kind": "ServiceAccount", "name": "ctrl", "namespace": "argocd"}]}),
            ],
            "operations:\n- namespace: {name: gitops}\n",
        )
        .unwrap();
        assert_eq!(out[0]["metadata"]["namespace"], "gitops");
        assert_eq!(out[1]["subjects"][0]["namespace"], "gitops");
    }

    #[test]
    fn several_upstream_namespaces_collapse_into_one() {
        let out = run(
            vec![
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "b"}}),
            ],
            "operations:\n- namespace: {name: one}\n",
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["metadata"]["name"], "one");
        assert_eq!(out[1]["metadata"]["namespace"], "one");
    }

    #[test]
    fn cluster_scoped_only_package_is_an_error() {
        let text = err(
            vec![
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cr"}}),
            ],
            "operations:\n- namespace: {name: ingress}\n",
        );
        assert!(
            text.contains("every object of pkg 1.0.0 is cluster-scoped"),
            "{text}"
        );
    }
}
