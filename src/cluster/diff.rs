//! Live diff: what a server-side apply would change, from dry-run results against the live
//! objects, with server noise stripped and Secret values masked the way `kubectl diff` does.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::apply::{Stale, prepare, read_parent, stale_members};
use super::applyset::Parent;
use super::{Cluster, api_for, api_status, get, strip_noise};
use crate::object::{Object, ObjectRef};
use crate::render::RenderedPackage;
use crate::yaml;

/// How an object would change. A closed set shown in every output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Create,
    Update,
    /// Deleted by `kpin apply --prune`: an ApplySet member that is no longer rendered.
    Prune,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Prune => "prune",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ObjectDiff {
    pub object: ObjectRef,
    pub change: Change,
    /// Unified diff, uncoloured, with `live/...` and `desired/...` headers.
    pub diff: String,
}

#[derive(Debug, Clone)]
pub struct PackageDiff {
    pub package: String,
    pub version: String,
    pub changes: Vec<ObjectDiff>,
}

#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub field_manager: String,
    pub show_secrets: bool,
    /// Objects compared at the same time.
    pub concurrency: usize,
}

const MASK: &str = "***";

/// Mask Secret `data` and `stringData` values like kubectl: equal values become `***` on both
/// sides, changed ones `*** (before)` and `*** (after)`.
pub fn mask_secret(before: &mut Value, after: &mut Value) {
    for field in ["data", "stringData"] {
        let old = before
            .get(field)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let new = after
            .get(field)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let masked = |side: &serde_json::Map<String, Value>,
                      other: &serde_json::Map<String, Value>,
                      label: &str| {
            side.iter()
                .map(|(k, v)| {
                    let text = match other.get(k) {
                        Some(o) if o != v => format!("{MASK} ({label})"),
                        _ => MASK.to_owned(),
                    };
                    (k.clone(), Value::String(text))
                })
                .collect::<serde_json::Map<_, _>>()
        };
        if let Some(b) = before.get_mut(field).filter(|v| v.is_object()) {
            *b = Value::Object(masked(&old, &new, "before"));
        }
        if let Some(a) = after.get_mut(field).filter(|v| v.is_object()) {
            *a = Value::Object(masked(&new, &old, "after"));
        }
    }
}

fn is_secret(r: &ObjectRef) -> bool {
    r.group.is_empty() && r.kind == "Secret"
}

/// The unified diff of two objects (either may be absent).
pub fn unified(
    object: &ObjectRef,
    before: Option<&Value>,
    after: Option<&Value>,
    show_secrets: bool,
) -> String {
    let mut before = before.map(strip_noise);
    let mut after = after.map(strip_noise);
    if is_secret(object) && !show_secrets {
        let mut empty_b = json!({});
        let mut empty_a = json!({});
        mask_secret(
            before.as_mut().unwrap_or(&mut empty_b),
            after.as_mut().unwrap_or(&mut empty_a),
        );
    }
    let text = |v: &Option<Value>| v.as_ref().map(yaml::emit).unwrap_or_default();
    let (a, b) = (text(&before), text(&after));
    let name = object.to_string().replace(' ', "/");
    similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{name}"), &format!("desired/{name}"))
        .to_string()
}

/// Diff one rendered package against the cluster. Sends only GET/LIST and dryRun=All PATCH.
pub async fn diff_package(
    cluster: &Cluster,
    rendered: &RenderedPackage,
    namespace: Option<&str>,
    opts: &DiffOptions,
) -> Result<PackageDiff> {
    let parent_ns = namespace
        .unwrap_or(&cluster.target.default_namespace)
        .to_owned();
    let parent = Parent::for_package(&rendered.name, &parent_ns);
    let id = parent.id();
    let objects = prepare(rendered, &parent_ns, Some(&id));
    cluster
        .mapper
        .preload(objects.iter().map(Object::api_version).chain(["v1"]))
        .await;
    // Forced: the diff shows what kpin wants; a conflict is reported by `apply`.
    let pp = PatchParams::apply(&opts.field_manager).force().dry_run();
    let diffs: Vec<Result<Option<ObjectDiff>>> = futures::stream::iter(&objects)
        .map(|o| diff_object(cluster, o, &pp, opts.show_secrets))
        .buffered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut changes = Vec::new();
    for d in diffs {
        changes.extend(d?);
    }
    let state = read_parent(cluster, &rendered.name, &parent).await?;
    if state.live.is_some() {
        for Stale { object, live, .. } in
            stale_members(cluster, &state.recorded, &parent_ns, &id, &objects).await?
        {
            let diff = unified(&object, Some(&live), None, opts.show_secrets);
            changes.push(ObjectDiff {
                object,
                change: Change::Prune,
                diff,
            });
        }
    }
    Ok(PackageDiff {
        package: rendered.name.clone(),
        version: rendered.version.clone(),
        changes,
    })
}

async fn diff_object(
    cluster: &Cluster,
    object: &Object,
    pp: &PatchParams,
    show_secrets: bool,
) -> Result<Option<ObjectDiff>> {
    let r = object.reference();
    let Some(resolved) = cluster
        .mapper
        .resolve(object.api_version(), object.kind())
        .await?
    else {
        // Its CRD is not installed yet (it may be in this same package).
        let diff = unified(&r, None, Some(&object.0), show_secrets);
        return Ok(Some(ObjectDiff {
            object: r,
            change: Change::Create,
            diff,
        }));
    };
    let api = api_for(cluster, &resolved, object.namespace());
    let live = get(&api, object.name())
        .await
        .with_context(|| format!("reading {r}"))?;
    let result = match api.patch(object.name(), pp, &Patch::Apply(&object.0)).await {
        Ok(v) => v,
        // A namespace created by the same apply does not exist yet: show the object as rendered.
        Err(e) if live.is_none() && api_status(&e).is_some_and(|s| s.code == 404) => {
            object.0.clone()
        }
        Err(e) => return Err(e).with_context(|| format!("server-side dry run of {r}")),
    };
    let change = match &live {
        None => Change::Create,
        Some(l) if strip_noise(l) == strip_noise(&result) => return Ok(None),
        Some(_) => Change::Update,
    };
    let diff = unified(&r, live.as_ref(), Some(&result), show_secrets);
    Ok(Some(ObjectDiff {
        object: r,
        change,
        diff,
    }))
}

fn ref_json(r: &ObjectRef) -> Value {
    json!({"group": r.group, "kind": r.kind, "namespace": r.namespace, "name": r.name})
}

/// Machine-readable form of a diff run.
pub fn to_json(packages: &[PackageDiff]) -> Value {
    json!({
        "changed": packages.iter().any(|p| !p.changes.is_empty()),
        "packages": packages.iter().map(|p| json!({
            "name": p.package,
            "version": p.version,
            "changes": p.changes.iter().map(|c| json!({
                "object": ref_json(&c.object), "change": c.change.as_str(), "diff": c.diff,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Markdown for pull request comments: per package a table of changes, diffs collapsed.
pub fn to_markdown(packages: &[PackageDiff]) -> String {
    let mut out = String::new();
    for p in packages {
        out.push_str(&format!("### {} {}\n\n", p.package, p.version));
        if p.changes.is_empty() {
            out.push_str("No changes.\n\n");
            continue;
        }
        let mut counts: BTreeMap<Change, usize> = BTreeMap::new();
        for c in &p.changes {
            *counts.entry(c.change).or_default() += 1;
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(c, n)| format!("{n} to {}", c.as_str()))
            .collect();
        out.push_str(&format!(
            "{}\n\n| Change | Object |\n| --- | --- |\n",
            summary.join(", ")
        ));
        for c in &p.changes {
            out.push_str(&format!("| {} | `{}` |\n", c.change.as_str(), c.object));
        }
        out.push('\n');
        for c in &p.changes {
            out.push_str(&format!(
                "<details><summary>{} <code>{}</code></summary>\n\n```diff\n{}```\n\n</details>\n\n",
                c.change.as_str(),
                c.object,
                c.diff.replace("```", "`\u{200b}``")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_like_kubectl() {
        let mut before = json!({"data": {"same": "YQ==", "changed": "Yg==", "gone": "Yw=="}});
        let mut after = json!({"data": {"same": "YQ==", "changed": "ZA==", "new": "ZQ=="}, "stringData": {"p": "x"}});
        mask_secret(&mut before, &mut after);
        assert_eq!(
            before,
            json!({"data": {"same": "***", "changed": "*** (before)", "gone": "***"}})
        );
        assert_eq!(
            after,
            json!({"data": {"same": "***", "changed": "*** (after)", "new": "***"}, "stringData": {"p": "***"}})
        );
    }

    #[test]
    fn unified_diff_strips_noise_and_masks() {
        let r = ObjectRef {
            group: String::new(),
            kind: "Secret".into(),
            namespace: Some("demo".into()),
            name: "creds".into(),
        };
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "resourceVersion": "9", "uid": "u"}, "data": {"password": "b2xk"}});
        let want = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "data": {"password": "bmV3"}});
        let d = unified(&r, Some(&live), Some(&want), false);
        assert!(
            d.contains("-  password: '*** (before)'")
                || d.contains("-  password: \"*** (before)\""),
            "{d}"
        );
        assert!(!d.contains("b2xk") && !d.contains("resourceVersion"), "{d}");
        assert!(unified(&r, Some(&live), Some(&want), true).contains("bmV3"));
    }
}
