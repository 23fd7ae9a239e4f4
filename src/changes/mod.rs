//! Object-level change model shared by `upgrade`, `diff --base` and the cluster diff: which
//! objects were added, removed or changed between two renders, their unified diffs, and the
//! warnings a reviewer needs. Field-level diffs (`fields`), CRD summaries (`crd`), Secret
//! masking (`mask`) and the text / JSON / markdown renderers (`report`) have files of their own.

mod crd;
mod fields;
mod mask;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde_json::Value;

use crate::kinds;
use crate::object::{Object, ObjectRef};
use crate::yaml;

pub use crd::CrdSummary;
pub use fields::{FieldChange, short_value};
pub use mask::mask_secrets;
pub use report::{Detail, MarkdownLimits, Section, to_json, to_markdown, to_text};

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
pub fn compare(before: Vec<Object>, after: Vec<Object>) -> Vec<ObjectChange> {
    // Owned, and moved into the changes: a large set (thousands of objects, megabytes of CRDs)
    // is held once on each side, not copied again.
    let mut old: BTreeMap<ObjectRef, Object> =
        before.into_iter().map(|o| (o.reference(), o)).collect();
    let mut out = Vec::with_capacity(after.len().max(old.len()));
    for object in after {
        let reference = object.reference();
        let change = match old.remove(&reference) {
            Some(prev) => ObjectChange {
                reference,
                change: if prev == object {
                    Change::Unchanged
                } else {
                    Change::Changed
                },
                before: Some(prev),
                after: Some(object),
            },
            None => ObjectChange {
                reference,
                change: Change::Added,
                before: None,
                after: Some(object),
            },
        };
        out.push(change);
    }
    out.extend(old.into_iter().map(|(reference, prev)| ObjectChange {
        reference,
        change: Change::Removed,
        before: Some(prev),
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
        fields::between(&before, &after)
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
        kinds::RECREATE_ANNOTATION,
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

/// Unified diff of two objects (either may be absent) as the YAML kpin writes.
pub fn yaml_diff(
    before: Option<&Value>,
    after: Option<&Value>,
    headers: (&str, &str),
    context_lines: usize,
) -> String {
    let old = before.map(yaml::emit).unwrap_or_default();
    let new = after.map(yaml::emit).unwrap_or_default();
    text_diff(&old, &new, headers, context_lines)
}

/// Unified diff of two texts, line by line.
pub fn text_diff(old: &str, new: &str, headers: (&str, &str), context_lines: usize) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(context_lines)
        .header(headers.0, headers.1)
        .to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
        let changes = compare(before, after);
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
            vec![deploy("c:1", &["--a", "--old"])],
            vec![deploy("c:2", &["--a", "--new"])],
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
        let out = fields::between(&a, &b);
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
        let changes = compare(vec![s("b2xk")], vec![s("bmV3")]);
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

    fn crd(versions: &Value) -> Object {
        obj(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "versions": versions}}),
        )
    }

    fn version(name: &str, storage: bool, spec_props: &Value) -> Value {
        json!({"name": name, "served": true, "storage": storage, "schema": {"openAPIV3Schema": {
            "type": "object", "properties": {"spec": {"type": "object", "properties": spec_props}}}}})
    }

    #[test]
    fn crd_summary_lists_versions_storage_and_outermost_fields() {
        let before = crd(&json!([
            version(
                "v1alpha1",
                true,
                &json!({"size": {"type": "integer"}, "old": {"type": "string"}})
            ),
            version("v1beta0", false, &json!({}))
        ]));
        let after = crd(&json!([
            version(
                "v1alpha1",
                false,
                &json!({"size": {"type": "integer"}, "hydrator": {"type": "object", "properties": {"repo": {"type": "string"}}}, "items": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}}})
            ),
            version("v1", true, &json!({}))
        ]));
        let change = &compare(vec![before], vec![after])[0];
        let s = change.crd_summary().unwrap();
        assert_eq!(s.versions_added, ["v1"]);
        assert_eq!(s.versions_removed, ["v1beta0"]);
        assert_eq!(s.storage, Some(("v1alpha1".into(), "v1".into())));
        assert_eq!(
            s.fields_added,
            ["v1alpha1 spec.hydrator", "v1alpha1 spec.items"]
        );
        assert_eq!(s.fields_removed, ["v1alpha1 spec.old"]);
        let text = to_text(
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
        let changes = compare(vec![deploy("c:1", &[]), netpol()], vec![deploy("c:2", &[])]);
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
        let md = to_markdown(
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
        let md = to_markdown(
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
            changes: compare(
                vec![cm("a\n```sh\nls\n```\n")],
                vec![cm("b\n```sh\nls\n```\n")],
            ),
            detail: Detail::Unified,
        };
        let md = to_markdown(
            "kpin diff",
            "",
            &[section],
            &DiffOptions::default(),
            MarkdownLimits::default(),
            "kpin diff",
        );
        assert!(md.contains("````diff\n"), "{md}");
        assert!(md.contains("\n````\n\n</details>"), "{md}");
        assert_eq!(report::fence_for("no ticks"), "```");
    }

    #[test]
    fn json_lists_only_changed_objects() {
        let changes = compare(vec![role(), netpol()], vec![role()]);
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
