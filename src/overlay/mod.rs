//! Overlay files: the declarative patch format (parsed at the edge from `RawOverlay` into
//! `Overlay`), and the engine that applies its operations, in order, to a package's objects.
//!
//! An overlay file is a YAML mapping with `operations:`, a list of single-key mappings such as
//! `namespace: {name: ingress}` or `jsonPatch: {select: {...}, patch: [...]}`. Each operation
//! that selects objects must match at least one, unless it says `optional: true`: that is how
//! an upgrade reveals that upstream renamed something a patch relied on.

mod meta;
mod namespace;
mod patch;
mod rbac;
mod select;

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest;
use crate::error::HintExt;
use crate::object::{Object, PathKey, push_path};
use crate::yaml::{self, Flavor};

pub use meta::{RawImage, RawMeta};
pub use namespace::{RawNamespace, leftover_references};
pub use patch::{MERGE_KEYS, RawJsonPatch, RawMergePatch, strategic_merge};
pub use rbac::RawRbac;
pub use select::{LabelExpression, LabelOperator, LabelSelector, RawSelector, Selector};

// ---------------------------------------------------------------------------------------------
// Raw form: exactly what users write.
// ---------------------------------------------------------------------------------------------

/// An overlay file as written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    title = "kpin overlay",
    description = "Declarative changes kpin applies, in order, to the objects of a vendored release."
)]
pub struct RawOverlay {
    /// What this overlay is for; shown nowhere, read by reviewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Operations, applied in order. Each is a mapping with exactly one key: the operation.
    pub operations: Vec<RawOperation>,
}

/// One operation.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum RawOperation {
    /// Move the package into a namespace, rewriting every reference to the old one.
    Namespace(RawNamespace),
    /// RFC 6902 JSON patch on the selected objects.
    JsonPatch(RawJsonPatch),
    /// RFC 7386 JSON merge patch on the selected objects (lists are replaced whole).
    MergePatch(RawMergePatch),
    /// Merge patch that merges well-known lists by key (containers and env by name, volumeMounts
    /// by mountPath, ...), so patching one container's args keeps the others.
    /// An item `{name: x, $patch: delete}` removes that item.
    StrategicMerge(RawMergePatch),
    /// Add or remove rules of Roles/ClusterRoles, add or replace subjects of bindings.
    Rbac(RawRbac),
    /// Set or remove labels.
    Labels(RawMeta),
    /// Set or remove annotations.
    Annotations(RawMeta),
    /// Change container images: registry mirror, name, tag or digest.
    Image(RawImage),
    /// Remove the selected objects.
    Remove(RawRemove),
    /// Add objects from YAML files (paths relative to the overlay file).
    Add(RawAdd),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRemove {
    pub select: RawSelector,
    /// Do not fail when the selector matches nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAdd {
    /// YAML files with one or more objects, relative to the overlay file.
    pub files: Vec<String>,
}

/// The JSON Schema of overlay files, for editors.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(RawOverlay)).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Validated form.
// ---------------------------------------------------------------------------------------------

/// A parsed overlay file.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// The file as named in messages (relative to kpin.yaml).
    pub display: String,
    pub operations: Vec<Operation>,
    /// Every input file (the overlay itself, then files it adds) with its sha256, for the lockfile.
    pub inputs: Vec<(String, String)>,
    /// Stands for a kpin.yaml setting rather than a file (messages name the setting alone).
    pub shorthand: bool,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub index: usize,
    pub optional: bool,
    pub op: Op,
}

#[derive(Debug, Clone)]
pub enum Op {
    Namespace(String),
    JsonPatch(Selector, json_patch::Patch),
    MergePatch(Selector, Value),
    StrategicMerge(Selector, Value),
    Rbac(Selector, rbac::RbacChange),
    Labels(Selector, meta::MetaChange),
    Annotations(Selector, meta::MetaChange),
    Image(Selector, meta::ImageChange),
    Remove(Selector),
    Add(Vec<Object>),
}

impl Op {
    /// The operation's key in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Namespace(_) => "namespace",
            Op::JsonPatch(..) => "jsonPatch",
            Op::MergePatch(..) => "mergePatch",
            Op::StrategicMerge(..) => "strategicMerge",
            Op::Rbac(..) => "rbac",
            Op::Labels(..) => "labels",
            Op::Annotations(..) => "annotations",
            Op::Image(..) => "image",
            Op::Remove(_) => "remove",
            Op::Add(_) => "add",
        }
    }
}

/// What an overlay file looks like, for errors about its overall shape.
const SHAPE_HINT: &str =
    "an overlay is a mapping with `operations:`, a list of operations (see `kpin schema overlay`)";

impl Overlay {
    /// The overlay that `namespace:` on a package in kpin.yaml stands for; `origin` names it.
    pub fn namespace_shorthand(origin: &str, namespace: &str) -> Overlay {
        Overlay {
            display: origin.to_owned(),
            operations: vec![Operation {
                index: 0,
                optional: false,
                op: Op::Namespace(namespace.to_owned()),
            }],
            inputs: Vec::new(),
            shorthand: true,
        }
    }

    /// Read and validate the overlay at `path`; `display` names it in messages. Files it adds
    /// must resolve inside `root`, the project directory.
    pub fn load(root: &Path, path: &Path, display: &str) -> Result<Overlay> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading overlay {display}"))
            .hint("check the overlay paths in kpin.yaml (they are relative to kpin.yaml)")?;
        Overlay::parse(&text, path, display, root)
    }

    /// Validate overlay text; `path` locates files it adds, which must resolve inside `root`.
    pub fn parse(text: &str, path: &Path, display: &str, root: &Path) -> Result<Overlay> {
        let shown = Path::new(display);
        // Two readings of one file: kpin's own keys (selectors, label values) with YAML 1.2 so
        // `name: on` stays the string the user meant, and the values that end up inside
        // Kubernetes objects (patch bodies, rules) the way kubectl would read them (YAML 1.1:
        // `defaultMode: 0644` is octal), so a patch means what the same YAML applied by kubectl means.
        let own: Value = yaml::from_str(text, shown)?;
        let k8s: Value = yaml::from_str_flavored(text, shown, Flavor::Kubernetes)?;
        if own.is_null() {
            return Err(anyhow::anyhow!("{display}: the file is empty")).hint(SHAPE_HINT);
        }
        yaml::expect_mapping(&own, shown).hint(SHAPE_HINT)?;
        check_list_shapes(&own, display)?;
        let raw: RawOverlay = serde_path_to_error::deserialize(own).map_err(|e| {
            let at = crate::error::abbreviate(&e.path().to_string());
            let inner = yaml::user_words(&e.into_inner().to_string());
            let err = anyhow::anyhow!("{display}: at `{at}`: {inner}");
            if inner.contains("unknown variant") {
                err.hint("each operation is a mapping with exactly one of these keys; `kpin schema overlay` shows their fields")
            } else if inner.contains("unknown field") {
                err.hint("see `kpin schema overlay` for every accepted key")
            } else {
                err
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut inputs = vec![(display.to_owned(), digest::sha256_hex(text.as_bytes()))];
        let mut operations = Vec::with_capacity(raw.operations.len());
        for (index, raw_op) in raw.operations.iter().enumerate() {
            // The key as serde spells it (`jsonPatch`), so messages and lookups never drift
            // from the file format.
            let key = serde_json::to_value(raw_op)
                .ok()
                .and_then(|v| v.as_object().and_then(|m| m.keys().next().cloned()))
                .unwrap_or_default();
            let at = |field: &str| {
                k8s.pointer(&format!("/operations/{index}/{key}/{field}"))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let files = Files { root, base };
            let (op, optional) = build(raw_op, &at, &files, display, &mut inputs)
                .with_context(|| format!("{display} operations[{index}] ({key})"))?;
            operations.push(Operation {
                index,
                optional,
                op,
            });
        }
        Ok(Overlay {
            display: display.to_owned(),
            operations,
            inputs,
            shorthand: false,
        })
    }
}

/// serde reads a struct from a list too, so `remove: [{kind: Job}]` or `select: [Job]` would
/// quietly mean something else; operation bodies and selectors must be mappings.
fn check_list_shapes(own: &Value, display: &str) -> Result<()> {
    let Some(Value::Array(operations)) = own.get("operations") else {
        return Ok(());
    };
    for (index, operation) in operations.iter().enumerate() {
        let Some(map) = operation.as_object() else {
            continue;
        };
        for (key, body) in map {
            let (at, value) = match body.get("select") {
                _ if body.is_array() => (format!("operations[{index}].{key}"), body),
                Some(select) if select.is_array() => {
                    (format!("operations[{index}].{key}.select"), select)
                }
                _ => continue,
            };
            return Err(anyhow::anyhow!(
                "{display}: at `{at}`: expected a mapping, found {}",
                yaml::shape(value)
            ))
            .hint("see `kpin schema overlay` for the fields of each operation");
        }
    }
    Ok(())
}

/// Where the files an overlay adds are: relative to `base` (the overlay's directory), and
/// inside `root` (the project directory).
struct Files<'a> {
    root: &'a Path,
    base: &'a Path,
}

/// Turn one raw operation into its validated form; `k8s_field` gives a field of the operation
/// read with Kubernetes YAML typing.
fn build(
    raw: &RawOperation,
    k8s_field: &dyn Fn(&str) -> Value,
    files: &Files,
    display: &str,
    inputs: &mut Vec<(String, String)>,
) -> Result<(Op, bool)> {
    Ok(match raw {
        RawOperation::Namespace(n) => {
            crate::manifest::check_dns_label(&n.name).context("namespace.name")?;
            (Op::Namespace(n.name.clone()), false)
        }
        RawOperation::JsonPatch(p) => {
            let patch = patch::parse_json_patch(k8s_field("patch"))?;
            (
                Op::JsonPatch(Selector::compile(&p.select)?, patch),
                p.optional,
            )
        }
        RawOperation::MergePatch(p) => (
            Op::MergePatch(
                Selector::compile(&p.select)?,
                patch::object_patch(k8s_field("patch"))?,
            ),
            p.optional,
        ),
        RawOperation::StrategicMerge(p) => (
            Op::StrategicMerge(
                Selector::compile(&p.select)?,
                patch::object_patch(k8s_field("patch"))?,
            ),
            p.optional,
        ),
        RawOperation::Rbac(r) => (
            Op::Rbac(
                Selector::compile(&r.select)?,
                rbac::RbacChange::build(r, k8s_field)?,
            ),
            r.optional,
        ),
        RawOperation::Labels(m) => (
            Op::Labels(Selector::compile(&m.select)?, meta::MetaChange::build(m)?),
            m.optional,
        ),
        RawOperation::Annotations(m) => (
            Op::Annotations(Selector::compile(&m.select)?, meta::MetaChange::build(m)?),
            m.optional,
        ),
        RawOperation::Image(i) => (
            Op::Image(Selector::compile(&i.select)?, meta::ImageChange::build(i)?),
            i.optional,
        ),
        RawOperation::Remove(r) => (Op::Remove(Selector::compile(&r.select)?), r.optional),
        RawOperation::Add(a) => {
            let mut objects = Vec::new();
            for (i, file) in a.files.iter().enumerate() {
                if Path::new(file).is_absolute() {
                    anyhow::bail!(
                        "add.files[{i}]: {} must be relative to the overlay file",
                        crate::error::quote(file)
                    );
                }
                let full = crate::fsutil::resolve_inside(files.root, files.base, file)
                    .with_context(|| format!("add.files[{i}]"))?;
                let shown = format!(
                    "{}/{file}",
                    Path::new(display)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .display()
                )
                .trim_start_matches('/')
                .to_owned();
                let text = std::fs::read_to_string(&full)
                    .with_context(|| format!("add.files[{i}]: reading {shown}"))?;
                inputs.push((shown.clone(), digest::sha256_hex(text.as_bytes())));
                let added = Object::all_from_yaml(&text, Path::new(&shown))?;
                if added.is_empty() {
                    anyhow::bail!("add.files[{i}]: {shown} holds no objects");
                }
                objects.extend(added);
            }
            (Op::Add(objects), false)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Applying operations.
// ---------------------------------------------------------------------------------------------

/// The package an overlay is applied to, for messages.
#[derive(Debug, Clone, Copy)]
pub struct PackageAt<'a> {
    pub package: &'a str,
    pub version: &'a str,
}

/// An object on its way from upstream to rendered, with the history `--explain` shows.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub object: Object,
    /// The object as upstream published it (kept only when explaining); `None` for added objects.
    pub upstream: Option<Object>,
    pub effects: Vec<Effect>,
}

/// One overlay operation's effect on one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// `overlays/x.yaml operations[2] (jsonPatch)`.
    pub origin: String,
    pub edit: Edit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    Added,
    /// Field paths that changed (`spec.replicas`, `metadata.namespace`).
    Modified(Vec<String>),
    Removed,
}

/// A namespace move, remembered to scan the final output for leftover references.
#[derive(Debug, Clone)]
pub struct NamespaceMove {
    pub from: BTreeSet<String>,
    pub to: String,
    pub origin: String,
}

/// The objects being rendered and what happened to them.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub objects: Vec<Tracked>,
    /// Objects removed by overlays (for `--explain`).
    pub removed: Vec<Tracked>,
    pub moves: Vec<NamespaceMove>,
    /// Things found while applying that a reviewer should look at.
    pub warnings: Vec<String>,
    /// Whether to keep upstream copies and changed paths (costs a clone per touched object).
    pub explain: bool,
}

/// Where an operation comes from, for messages and `--explain`.
pub struct OpCtx<'a> {
    pub origin: String,
    pub optional: bool,
    pub target: PackageAt<'a>,
}

impl Workspace {
    pub fn new(objects: Vec<Object>, explain: bool) -> Workspace {
        Workspace {
            objects: objects
                .into_iter()
                .map(|object| Tracked {
                    upstream: explain.then(|| object.clone()),
                    object,
                    effects: Vec::new(),
                })
                .collect(),
            removed: Vec::new(),
            moves: Vec::new(),
            warnings: Vec::new(),
            explain,
        }
    }

    /// Change object `index` with `f`, recording which fields changed when explaining.
    pub fn modify(
        &mut self,
        index: usize,
        origin: &str,
        f: impl FnOnce(&mut Object) -> Result<()>,
    ) -> Result<()> {
        let explain = self.explain;
        let tracked = &mut self.objects[index];
        let before = explain.then(|| tracked.object.clone());
        f(&mut tracked.object)?;
        if let Some(before) = before {
            let mut paths = Vec::new();
            changed_paths(&before.0, &tracked.object.0, "", &mut paths);
            if !paths.is_empty() {
                tracked.effects.push(Effect {
                    origin: origin.to_owned(),
                    edit: Edit::Modified(paths),
                });
            }
        }
        Ok(())
    }

    /// Indices of the objects `selector` matches; an error when none and the op is not optional.
    pub fn select(&self, selector: &Selector, ctx: &OpCtx) -> Result<Vec<usize>> {
        let hits: Vec<usize> = (0..self.objects.len())
            .filter(|&i| selector.matches(&self.objects[i].object))
            .collect();
        if hits.is_empty() && !ctx.optional {
            return Err(anyhow::Error::new(NoMatch {
                selector: selector.to_string(),
                package: ctx.target.package.to_owned(),
                version: ctx.target.version.to_owned(),
            })
            .hint("upstream may have renamed or removed the object in this version: fix the selector, or add `optional: true` to the operation if it is meant to apply only sometimes"));
        }
        Ok(hits)
    }

    /// Apply every operation of `overlay` in order.
    pub fn apply(&mut self, overlay: &Overlay, target: PackageAt) -> Result<()> {
        self.apply_ops(overlay, target, None)
    }

    /// Like `apply`, but an operation whose selector matches nothing is recorded in `misses`
    /// and skipped instead of stopping, so one run can list every operation a new upstream
    /// version breaks (`kpin upgrade`).
    pub fn apply_noting_misses(
        &mut self,
        overlay: &Overlay,
        target: PackageAt,
        misses: &mut Vec<Miss>,
    ) -> Result<()> {
        self.apply_ops(overlay, target, Some(misses))
    }

    fn apply_ops(
        &mut self,
        overlay: &Overlay,
        target: PackageAt,
        mut misses: Option<&mut Vec<Miss>>,
    ) -> Result<()> {
        for op in &overlay.operations {
            let operation = format!("operations[{}] ({})", op.index, op.op.name());
            let origin = if overlay.shorthand {
                overlay.display.clone()
            } else {
                format!("{} {operation}", overlay.display)
            };
            let ctx = OpCtx {
                origin,
                optional: op.optional,
                target,
            };
            let result = self.apply_op(&op.op, &ctx);
            if let (Err(err), Some(misses)) = (&result, misses.as_deref_mut())
                && let Some(miss) = crate::error::find_cause::<NoMatch>(err)
            {
                misses.push(Miss {
                    overlay: overlay.display.clone(),
                    operation,
                    selector: miss.selector.clone(),
                });
                continue;
            }
            result.with_context(|| ctx.origin.clone())?;
        }
        Ok(())
    }

    pub fn apply_op(&mut self, op: &Op, ctx: &OpCtx) -> Result<()> {
        match op {
            Op::Namespace(to) => namespace::apply(self, to, ctx),
            Op::JsonPatch(sel, p) => {
                for i in self.select(sel, ctx)? {
                    self.modify(i, &ctx.origin, |o| patch::apply_json_patch(o, p))?;
                }
                Ok(())
            }
            Op::MergePatch(sel, p) => {
                for i in self.select(sel, ctx)? {
                    self.modify(i, &ctx.origin, |o| {
                        json_patch::merge(&mut o.0, p);
                        Ok(())
                    })?;
                }
                Ok(())
            }
            Op::StrategicMerge(sel, p) => {
                for i in self.select(sel, ctx)? {
                    self.modify(i, &ctx.origin, |o| patch::apply_strategic_merge(o, p))?;
                }
                Ok(())
            }
            Op::Rbac(sel, change) => rbac::apply(self, sel, change, ctx),
            Op::Labels(sel, change) => meta::apply_meta(self, sel, change, "labels", ctx),
            Op::Annotations(sel, change) => meta::apply_meta(self, sel, change, "annotations", ctx),
            Op::Image(sel, change) => meta::apply_image(self, sel, change, ctx),
            Op::Remove(sel) => {
                let hits: BTreeSet<usize> = self.select(sel, ctx)?.into_iter().collect();
                let mut kept = Vec::with_capacity(self.objects.len());
                for (i, mut t) in std::mem::take(&mut self.objects).into_iter().enumerate() {
                    if hits.contains(&i) {
                        if self.explain {
                            t.effects.push(Effect {
                                origin: ctx.origin.clone(),
                                edit: Edit::Removed,
                            });
                            self.removed.push(t);
                        }
                    } else {
                        kept.push(t);
                    }
                }
                self.objects = kept;
                Ok(())
            }
            Op::Add(objects) => {
                for object in objects {
                    let reference = object.reference();
                    if self
                        .objects
                        .iter()
                        .any(|t| t.object.reference() == reference)
                    {
                        return Err(anyhow::anyhow!("{reference} already exists in the package"))
                            .hint("patch the existing object instead of adding a second one");
                    }
                    self.objects.push(Tracked {
                        object: object.clone(),
                        upstream: None,
                        effects: vec![Effect {
                            origin: ctx.origin.clone(),
                            edit: Edit::Added,
                        }],
                    });
                }
                Ok(())
            }
        }
    }

    pub fn into_objects(self) -> Vec<Object> {
        self.objects.into_iter().map(|t| t.object).collect()
    }
}

/// The overlay and operation index of an `Effect::origin` (`overlays/x.yaml operations[2]
/// (jsonPatch)` -> (`overlays/x.yaml`, 2)); a kpin.yaml shorthand has no index. The inverse of
/// the origin `apply_ops` writes.
pub fn split_origin(origin: &str) -> (&str, Option<usize>) {
    match origin.rsplit_once(" operations[") {
        Some((overlay, rest)) => (
            overlay,
            rest.split_once(']').and_then(|(i, _)| i.parse().ok()),
        ),
        None => (origin, None),
    }
}

/// An operation skipped by `Workspace::apply_noting_misses` because it matched nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Miss {
    /// The overlay file as shown in messages.
    pub overlay: String,
    /// `operations[N] (kind)`.
    pub operation: String,
    /// The selector, in YAML flow style.
    pub selector: String,
}

/// A selector that matched no object: callers (upgrade) branch on it to explain renames.
#[derive(Debug, thiserror::Error)]
#[error("selector {selector} matches no object in {package} {version}")]
pub struct NoMatch {
    pub selector: String,
    pub package: String,
    pub version: String,
}

/// The dotted paths where `a` and `b` differ.
fn changed_paths(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let sub = push_path(path, PathKey::Key(k));
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => changed_paths(l, r, &sub, out),
                    _ => out.push(sub),
                }
            }
        }
        // Going into a list only helps when one item changed in place; otherwise items were
        // added, removed or reordered, and naming the list is the honest answer.
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            let differing: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
            match differing.as_slice() {
                [] => {}
                [i] => changed_paths(&x[*i], &y[*i], &push_path(path, PathKey::Index(*i)), out),
                _ => out.push(path.to_owned()),
            }
        }
        _ if a == b => {}
        _ => out.push(path.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use serde_json::json;

    pub(crate) fn parse(text: &str) -> Result<Overlay> {
        Overlay::parse(
            text,
            Path::new("/nowhere/overlays/x.yaml"),
            "overlays/x.yaml",
            Path::new("/nowhere"),
        )
    }

    /// A workspace over `objects` (`explain` as in `Workspace::new`) after applying `overlay`.
    pub(crate) fn applied(objects: Vec<Value>, explain: bool, overlay: &str) -> Result<Workspace> {
        let overlay = parse(overlay)?;
        let mut ws = Workspace::new(objects.into_iter().map(Object).collect(), explain);
        ws.apply(
            &overlay,
            PackageAt {
                package: "pkg",
                version: "1.0.0",
            },
        )?;
        Ok(ws)
    }

    pub(crate) fn run(objects: Vec<Value>, overlay: &str) -> Result<Vec<Value>> {
        let ws = applied(objects, true, overlay)?;
        Ok(ws.into_objects().into_iter().map(|o| o.0).collect())
    }

    pub(crate) fn err(objects: Vec<Value>, overlay: &str) -> String {
        match run(objects, overlay) {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => crate::error::format_error(&e),
        }
    }

    pub(crate) fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "controller", "namespace": "up"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "main", "image": "registry.k8s.io/up/controller:v1.0@sha256:abc", "args": ["--a"]},
                {"name": "side", "image": "busybox"}]}}}})
    }

    #[test]
    fn operations_and_selectors_written_as_lists_are_refused() {
        let text = err(
            vec![deployment()],
            "operations:\n- remove: [{kind: Deployment}]\n",
        );
        assert!(
            text.contains(
                "overlays/x.yaml: at `operations[0].remove`: expected a mapping, found a list"
            ),
            "{text}"
        );
        let text = err(
            vec![deployment()],
            "operations:\n- mergePatch: {select: [Deployment], patch: {}}\n",
        );
        assert!(
            text.contains("at `operations[0].mergePatch.select`: expected a mapping, found a list"),
            "{text}"
        );
    }

    #[test]
    fn unknown_operation_and_field_are_errors_with_hints() {
        let e = parse("operations:\n- jsonpatch: {}\n").unwrap_err();
        let text = crate::error::format_error(&e);
        assert!(
            text.contains("overlays/x.yaml: at `operations[0]`: unknown variant `jsonpatch`"),
            "{text}"
        );
        assert!(text.contains("hint: each operation is a mapping"), "{text}");
        let e = parse("operations:\n- remove: {select: {kind: X}, optinal: true}\n").unwrap_err();
        assert!(crate::error::format_error(&e).contains("unknown field `optinal`"));
    }

    #[test]
    fn patch_values_read_like_kubectl_and_selectors_like_kpin() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "on", "namespace": "up"}});
        let out = run(vec![cm], "operations:\n- mergePatch:\n    select: {name: on}\n    patch: {data: {mode: 0644, flag: yes}}\n").unwrap();
        assert_eq!(out[0]["data"], json!({"mode": 420, "flag": true}));
    }

    #[test]
    fn selector_matching_nothing_names_package_and_version() {
        let text = err(
            vec![deployment()],
            "operations:\n- remove: {select: {kind: Deployment, name: gone}}\n",
        );
        assert!(
            text.contains("error: overlays/x.yaml operations[0] (remove)"),
            "{text}"
        );
        assert!(
            text.contains("selector {kind: Deployment, name: gone} matches no object in pkg 1.0.0"),
            "{text}"
        );
        assert!(text.contains("hint: upstream may have renamed"), "{text}");
        assert!(
            run(
                vec![deployment()],
                "operations:\n- remove: {select: {name: gone}, optional: true}\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn remove_and_explain_paths() {
        let ws = applied(
            vec![deployment()],
            true,
            "operations:\n- mergePatch: {select: {kind: Deployment}, patch: {spec: {replicas: 3}}}\n",
        )
        .unwrap();
        assert_eq!(
            ws.objects[0].effects,
            vec![Effect {
                origin: "overlays/x.yaml operations[0] (mergePatch)".into(),
                edit: Edit::Modified(vec!["spec.replicas".into()])
            }]
        );
        let out = run(
            vec![deployment()],
            "operations:\n- remove: {select: {kind: Deployment}}\n",
        )
        .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn add_reads_files_next_to_the_overlay() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pdb.yaml"), "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p, namespace: up}\n").unwrap();
        std::fs::write(dir.path().join("empty.yaml"), "# nothing\n").unwrap();
        let at = dir.path().join("o.yaml");
        let o = Overlay::parse(
            "operations:\n- add: {files: [pdb.yaml]}\n",
            &at,
            "overlays/o.yaml",
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            o.inputs.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["overlays/o.yaml", "overlays/pdb.yaml"]
        );
        let e = Overlay::parse(
            "operations:\n- add: {files: [empty.yaml]}\n",
            &at,
            "overlays/o.yaml",
            dir.path(),
        )
        .unwrap_err();
        assert!(
            crate::error::format_error(&e)
                .contains("add.files[0]: overlays/empty.yaml holds no objects")
        );
        let e = Overlay::parse(
            "operations:\n- add: {files: [gone.yaml]}\n",
            &at,
            "overlays/o.yaml",
            dir.path(),
        )
        .unwrap_err();
        assert!(
            crate::error::format_error(&e).contains("add.files[0]: reading overlays/gone.yaml")
        );
    }

    #[test]
    fn label_values_must_be_strings() {
        let e = parse("operations:\n- labels: {set: {enabled: true}}\n").unwrap_err();
        let text = crate::error::format_error(&e);
        assert!(text.contains("at `operations[0].labels.set.enabled`: invalid type: boolean `true`, expected a string"), "{text}");
        // YAML 1.2 for kpin's own keys: `on` stays a string.
        assert!(parse("operations:\n- labels: {set: {enabled: on}}\n").is_ok());
    }

    #[test]
    fn alias_bombs_and_deep_nesting_in_overlays_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10u8 {
            let (n, p) = ((b'a' + i) as char, (b'a' + i - 1) as char);
            let _ = writeln!(
                bomb,
                "{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
            );
        }
        bomb.push_str("operations: []\n");
        assert!(parse(&bomb).is_err());
        let deep = format!(
            "operations:\n- mergePatch: {{select: {{}}, patch: {}x: 1{}}}}}\n",
            "{a: ".repeat(300),
            "}".repeat(300)
        );
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn origins_split_into_overlay_and_operation() {
        assert_eq!(
            split_origin("overlays/x.yaml operations[12] (jsonPatch)"),
            ("overlays/x.yaml", Some(12))
        );
        assert_eq!(
            split_origin("kpin.yaml packages.a.namespace"),
            ("kpin.yaml packages.a.namespace", None)
        );
    }

    #[test]
    fn schema_lists_operations() {
        let schema = json_schema().to_string();
        for op in [
            "namespace",
            "jsonPatch",
            "strategicMerge",
            "rbac",
            "image",
            "remove",
            "add",
        ] {
            assert!(schema.contains(&format!("\"{op}\"")), "{op}");
        }
    }
}
