//! ApplySet prune: the live members of a package's set, which of them `--prune` deletes, and the
//! guards that keep it from deleting anything the current render contains, a CRD or Namespace
//! nobody named (their deletion cascades), or most of a package at once.
//!
//! The identity of a live member comes from the request that listed it (group and kind of the
//! resource, the namespace listed) and the item's name: a real API server leaves `kind` and
//! `apiVersion` off the items of built-in lists.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::{Context as _, Result};
use kube::api::{DeleteParams, ListParams};
use serde_json::Value;

use super::applyset::{self, Contents, GroupKind};
use super::discovery::Resolved;
use super::report::{Action, ObjectResult};
use super::{Cluster, ClusterError, api_all_namespaces, api_for, api_status};
use crate::error::HintExt as _;
use crate::kinds::{self, CascadingKind};
use crate::object::{Object, ObjectRef};

/// A prune that deletes more than this many objects, and more than half of the set, is refused
/// unless `--allow-mass-prune`.
pub const MASS_PRUNE_MIN: usize = 5;

/// What `--prune` may delete beyond the plain case.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Cascading kinds (see `kinds::CASCADING_KINDS`) that may be deleted, by kind name.
    pub allow_kinds: BTreeSet<String>,
    /// Delete even when that is most of the set.
    pub allow_mass: bool,
    /// Delete everything the package applied before when it renders no objects.
    pub allow_empty: bool,
}

/// Why `kpin apply --prune` refuses to prune a package: apply stops with it, `kpin diff` and
/// `apply --dry-run` warn with it, all from [`PrunePlan::refusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneRefusal {
    /// The package renders no objects: a prune would delete everything it applied before.
    EmptyRender,
    /// More than half of the set, and more than a handful.
    Mass,
}

/// A live member of a package's ApplySet.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub object: ObjectRef,
    pub resolved: Resolved,
    pub live: Value,
}

/// Why a member that is no longer rendered is not deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// `kpin.dev/prune: keep` on the live object.
    Annotation,
    /// Its deletion cascades and `--prune-allow` does not name its kind.
    Cascades(&'static str),
    /// The render has an object of the same kind, namespace and name under another API group
    /// (an API moving groups): it may be the very same object.
    SameNameRendered(String),
}

impl KeepReason {
    pub fn message(&self) -> String {
        match self {
            KeepReason::Annotation => format!("{}: keep", applyset::KEEP_ANNOTATION),
            KeepReason::Cascades(deletes) => {
                format!("{deletes}; pass --prune-allow with its kind to delete it")
            }
            KeepReason::SameNameRendered(group) => format!(
                "the render has an object of the same kind and name in API group `{group}`, which may be this one"
            ),
        }
    }
}

/// The identity of a listed item: group and kind from the request, namespace from the item
/// (or the namespace listed), name from the item.
pub(crate) fn member_ref(resolved: &Resolved, listed_ns: Option<&str>, item: &Value) -> ObjectRef {
    let meta = |key: &str| {
        item.pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    ObjectRef {
        group: resolved.resource.group.clone(),
        kind: resolved.resource.kind.clone(),
        namespace: if resolved.namespaced {
            meta("namespace").or_else(|| listed_ns.map(str::to_owned))
        } else {
            None
        },
        name: meta("name").unwrap_or_default(),
    }
}

/// One ApplySet whose live members to read: what its parent records, the namespace the parent
/// lives in, and its id.
pub(crate) struct MemberSet<'a> {
    pub recorded: &'a Contents,
    pub parent_ns: &'a str,
    pub id: &'a str,
}

impl MemberSet<'_> {
    /// The namespaces its namespaced members may be in.
    fn namespaces(&self) -> BTreeSet<&str> {
        std::iter::once(self.parent_ns)
            .chain(self.recorded.namespaces.iter().map(String::as_str))
            .collect()
    }
}

/// Sets read with one LIST at most: the label selector names each of their ids.
const SETS_PER_LIST: usize = 50;

/// The live members of every set (in the order given; none for `None`, a set without a parent
/// yet), found by label: per recorded
/// group-kind, one LIST for all the sets that record it (a selector naming their ids, across
/// namespaces; each member goes to its set when it is in one of the set's namespaces), all
/// kinds at once. A set alone with a kind in one namespace is listed there. Without permission
/// to list across namespaces, one LIST per set and namespace.
pub(crate) async fn live_members(
    cluster: &Cluster,
    sets: &[Option<MemberSet<'_>>],
) -> Result<Vec<Vec<Member>>> {
    let mut by_kind: BTreeMap<&GroupKind, Vec<usize>> = BTreeMap::new();
    for (i, set) in sets.iter().enumerate() {
        let Some(set) = set else { continue };
        for gk in &set.recorded.group_kinds {
            by_kind.entry(gk).or_default().push(i);
        }
    }
    let lists = by_kind.into_iter().flat_map(|(gk, users)| {
        users
            .chunks(SETS_PER_LIST)
            .map(<[usize]>::to_vec)
            .collect::<Vec<_>>()
            .into_iter()
            .map(move |chunk| async move {
                let Some(resolved) = cluster
                    .mapper
                    .resolve_group_kind(&gk.group, &gk.kind)
                    .await?
                else {
                    // The kind is gone (e.g. its CRD was removed), and with it its objects.
                    return Ok(Vec::new());
                };
                let chosen: Vec<&MemberSet> =
                    chunk.iter().filter_map(|&i| sets[i].as_ref()).collect();
                let found = list_kind(cluster, &resolved, &chosen)
                    .await
                    .with_context(|| format!("listing {gk} members of the ApplySets"))?;
                Ok::<_, anyhow::Error>(
                    found
                        .into_iter()
                        .map(|(k, member)| (chunk[k], member))
                        .collect(),
                )
            })
            .collect::<Vec<_>>()
    });
    let mut out: Vec<Vec<Member>> = sets.iter().map(|_| Vec::new()).collect();
    for (i, member) in futures::future::try_join_all(lists)
        .await?
        .into_iter()
        .flatten()
    {
        out[i].push(member);
    }
    Ok(out)
}

/// The members of one kind in `sets`, each with the index of its set in `sets`.
async fn list_kind(
    cluster: &Cluster,
    resolved: &Resolved,
    sets: &[&MemberSet<'_>],
) -> Result<Vec<(usize, Member)>, kube::Error> {
    let member = |ns: Option<&str>, live: Value| Member {
        object: member_ref(resolved, ns, &live),
        resolved: resolved.clone(),
        live,
    };
    let namespaces: Vec<BTreeSet<&str>> = sets.iter().map(|s| s.namespaces()).collect();
    if let [set] = sets
        && (!resolved.namespaced || namespaces[0].len() == 1)
    {
        let ns = namespaces[0]
            .first()
            .copied()
            .filter(|_| resolved.namespaced);
        let params = ListParams::default().labels(&selector(&[set.id]));
        let list = api_for(cluster, resolved, ns).list(&params).await?;
        return Ok(list.into_iter().map(|live| (0, member(ns, live))).collect());
    }
    let ids: Vec<&str> = sets.iter().map(|s| s.id).collect();
    let params = ListParams::default().labels(&selector(&ids));
    let everywhere = if resolved.namespaced {
        api_all_namespaces(cluster, resolved)
    } else {
        api_for(cluster, resolved, None)
    };
    match everywhere.list(&params).await {
        Ok(list) => Ok(list
            .into_iter()
            .filter_map(|live| {
                let id = live
                    .pointer("/metadata/labels")
                    .and_then(|l| l.get(applyset::PART_OF_LABEL))
                    .and_then(Value::as_str)?;
                let k = ids.iter().position(|i| *i == id)?;
                let m = member(None, live);
                let in_set = !resolved.namespaced
                    || m.object
                        .namespace
                        .as_deref()
                        .is_some_and(|ns| namespaces[k].contains(ns));
                in_set.then_some((k, m))
            })
            .collect()),
        Err(e) if resolved.namespaced && api_status(&e).is_some_and(|s| s.code == 403) => {
            let member = &member;
            let lists = sets.iter().enumerate().flat_map(|(k, set)| {
                let params = ListParams::default().labels(&selector(&[set.id]));
                namespaces[k]
                    .iter()
                    .map(move |ns| {
                        let params = params.clone();
                        async move {
                            let list = api_for(cluster, resolved, Some(ns)).list(&params).await?;
                            Ok::<_, kube::Error>(
                                list.into_iter()
                                    .map(move |live| (k, member(Some(ns), live))),
                            )
                        }
                    })
                    .collect::<Vec<_>>()
            });
            let lists = futures::future::try_join_all(lists).await?;
            Ok(lists.into_iter().flatten().collect())
        }
        Err(e) => Err(e),
    }
}

/// The label selector of the members of the sets with these ids.
fn selector(ids: &[&str]) -> String {
    match ids {
        [id] => format!("{}={id}", applyset::PART_OF_LABEL),
        _ => format!("{} in ({})", applyset::PART_OF_LABEL, ids.join(",")),
    }
}

/// What `--prune` does with the live members of one set.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrunePlan {
    /// Live members of the set, rendered or not.
    pub members: usize,
    /// Members to delete, in reverse apply order: webhooks first, CRDs last.
    pub delete: Vec<Member>,
    /// Members no longer rendered that stay, with the reason.
    pub keep: Vec<(Member, KeepReason)>,
    /// The live copies of the members the render contains, for the apply or diff that
    /// follows (taken out of the plan by [`PrunePlan::take_rendered`]).
    rendered: HashMap<ObjectRef, Value>,
}

/// The rendered identities `--prune` must never delete.
pub(crate) struct InRender {
    exact: HashSet<ObjectRef>,
    /// (kind, namespace, name) -> group, to catch the same object under another API group.
    loose: HashMap<(String, Option<String>, String), String>,
}

impl InRender {
    pub fn of(objects: &[Object]) -> InRender {
        let refs: Vec<ObjectRef> = objects.iter().map(Object::reference).collect();
        InRender {
            loose: refs
                .iter()
                .map(|r| {
                    (
                        (r.kind.clone(), r.namespace.clone(), r.name.clone()),
                        r.group.clone(),
                    )
                })
                .collect(),
            exact: refs.into_iter().collect(),
        }
    }

    pub fn contains(&self, object: &ObjectRef) -> bool {
        self.exact.contains(object)
    }

    /// The group of a rendered object with the same kind, namespace and name, if any.
    fn same_name(&self, object: &ObjectRef) -> Option<&String> {
        self.loose.get(&(
            object.kind.clone(),
            object.namespace.clone(),
            object.name.clone(),
        ))
    }

    /// The last check before a DELETE: the object is in the render under any group.
    fn forbids_delete(&self, object: &ObjectRef) -> bool {
        self.contains(object) || self.same_name(object).is_some()
    }
}

impl PrunePlan {
    pub fn new(members: Vec<Member>, rendered: &InRender, opts: &PruneOptions) -> PrunePlan {
        let mut plan = PrunePlan {
            members: members.len(),
            ..PrunePlan::default()
        };
        for member in members {
            let r = &member.object;
            if rendered.contains(r) {
                plan.rendered.insert(member.object, member.live);
                continue;
            }
            let reason = if let Some(group) = rendered.same_name(r) {
                Some(KeepReason::SameNameRendered(group.clone()))
            } else if applyset::keep(&member.live) {
                Some(KeepReason::Annotation)
            } else {
                kinds::cascading(&r.group, &r.kind)
                    .filter(|c| !opts.allow_kinds.contains(c.kind))
                    .map(|c: &CascadingKind| KeepReason::Cascades(c.deletes))
            };
            match reason {
                Some(reason) => plan.keep.push((member, reason)),
                None => plan.delete.push(member),
            }
        }
        let rank = |m: &Member| kinds::rank(&m.object.group, &m.object.kind);
        plan.delete
            .sort_by(|a, b| (rank(b), &a.object).cmp(&(rank(a), &b.object)));
        plan.keep.sort_by(|a, b| a.0.object.cmp(&b.0.object));
        plan
    }

    /// The live copies of the rendered members, by identity.
    pub fn take_rendered(&mut self) -> HashMap<ObjectRef, Value> {
        std::mem::take(&mut self.rendered)
    }

    /// Whether this prune deletes more than half of the set, and more than a handful.
    pub fn is_mass(&self) -> bool {
        self.delete.len() > MASS_PRUNE_MIN && self.delete.len() * 2 > self.members
    }

    /// Whether `kpin apply --prune` refuses this prune of a package that renders `rendered`
    /// objects, within the limits of `opts`.
    pub fn refusal(&self, rendered: usize, opts: &PruneOptions) -> Option<PruneRefusal> {
        if rendered == 0 && !opts.allow_empty {
            Some(PruneRefusal::EmptyRender)
        } else if self.is_mass() && !opts.allow_mass {
            Some(PruneRefusal::Mass)
        } else {
            None
        }
    }

    /// The error `kpin apply --prune` stops with.
    pub fn refusal_error(&self, package: &str, refusal: PruneRefusal) -> anyhow::Error {
        match refusal {
            PruneRefusal::EmptyRender => ClusterError::EmptyPrune {
                package: package.to_owned(),
            }
            .into(),
            PruneRefusal::Mass => self.mass_error(package),
        }
    }

    /// The warning `kpin diff` and `kpin apply --dry-run` give for it.
    pub fn refusal_warning(&self, refusal: PruneRefusal) -> String {
        match refusal {
            PruneRefusal::EmptyRender => format!(
                "this package renders no objects: `kpin apply --prune` would refuse to delete the {} objects it applied before without --allow-empty",
                self.members
            ),
            PruneRefusal::Mass => format!(
                "`kpin apply --prune` would refuse to delete {} of the {} objects of this package in the cluster (more than half) without --allow-mass-prune",
                self.delete.len(),
                self.members
            ),
        }
    }

    /// The refusal of a mass prune, listing what it would delete.
    fn mass_error(&self, package: &str) -> anyhow::Error {
        let list: Vec<String> = self
            .delete
            .iter()
            .map(|m| format!("  {}", m.object))
            .collect();
        anyhow::Error::new(ClusterError::MassPrune {
            package: package.to_owned(),
            count: self.delete.len(),
            members: self.members,
            list: list.join("\n"),
        })
        .hint("check that the render is what you meant (`kpin diff` lists what would go); pass --allow-mass-prune if it is")
    }

    /// What the parent records after the prune: the render, plus the members kept, so that a
    /// later `--prune` (with `--prune-allow`, or without the annotation) still finds them.
    pub fn contents_after(&self, desired: &Contents, parent_ns: &str) -> Contents {
        let mut contents = desired.clone();
        for (m, _) in &self.keep {
            contents.group_kinds.insert(GroupKind {
                group: m.object.group.clone(),
                kind: m.object.kind.clone(),
            });
            if let Some(ns) = m.object.namespace.as_ref().filter(|ns| *ns != parent_ns) {
                contents.namespaces.insert(ns.clone());
            }
        }
        contents
    }
}

/// Carry out a plan: delete (with `dryRun=All` in a dry run), then report what is kept.
/// Each DELETE is preceded by the check that the object is not in the current render.
pub(crate) async fn execute(
    cluster: &Cluster,
    plan: &PrunePlan,
    rendered: &InRender,
    dry_run: bool,
) -> Vec<ObjectResult> {
    let mut out = Vec::with_capacity(plan.delete.len() + plan.keep.len());
    let params = if dry_run {
        DeleteParams::background().dry_run()
    } else {
        DeleteParams::background()
    };
    for m in &plan.delete {
        let r = m.object.clone();
        if rendered.forbids_delete(&r) {
            out.push(ObjectResult::new(r, Action::Failed).with_message(
                "refused to delete it: the current render contains it (a kpin bug; please report it)",
            ));
            continue;
        }
        let api = api_for(cluster, &m.resolved, r.namespace.as_deref());
        match api.delete(&r.name, &params).await {
            Ok(()) => out.push(ObjectResult::new(r, Action::Pruned)),
            Err(e) if api_status(&e).is_some_and(|s| s.code == 404) => {
                out.push(ObjectResult::new(r, Action::Pruned));
            }
            Err(e) => out.push(super::report::failure(r, &e)),
        }
    }
    out.extend(plan.keep.iter().map(|(m, reason)| {
        ObjectResult::new(m.object.clone(), Action::Kept).with_message(reason.message())
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ApiResource;
    use serde_json::json;

    fn resolved(group: &str, kind: &str, plural: &str, namespaced: bool) -> Resolved {
        let api_version = if group.is_empty() {
            "v1".to_owned()
        } else {
            format!("{group}/v1")
        };
        Resolved {
            resource: ApiResource {
                group: group.into(),
                version: "v1".into(),
                api_version,
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced,
        }
    }

    /// A LIST item as a real server returns it for built-in kinds: no kind, no apiVersion.
    fn item(name: &str, namespace: Option<&str>) -> Value {
        let mut meta = json!({"name": name, "labels": {applyset::PART_OF_LABEL: "set"}});
        if let Some(ns) = namespace {
            meta["namespace"] = json!(ns);
        }
        json!({"metadata": meta})
    }

    fn member(r: &Resolved, name: &str, namespace: Option<&str>) -> Member {
        let live = item(name, namespace);
        Member {
            object: member_ref(r, namespace, &live),
            resolved: r.clone(),
            live,
        }
    }

    fn object(api_version: &str, kind: &str, name: &str, namespace: Option<&str>) -> Object {
        let mut o =
            Object(json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}));
        if let Some(ns) = namespace {
            o.set_namespace(ns);
        }
        o
    }

    #[test]
    fn list_items_without_kind_are_identified_by_the_request_and_nothing_rendered_is_pruned() {
        let cm = resolved("", "ConfigMap", "configmaps", true);
        let role = resolved(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "clusterroles",
            false,
        );
        let members = vec![
            member(&cm, "settings", Some("demo")),
            member(&role, "reader", None),
        ];
        assert_eq!(members[0].object.to_string(), "ConfigMap demo/settings");
        assert_eq!(members[1].object.to_string(), "ClusterRole reader");
        let desired = [
            object("v1", "ConfigMap", "settings", Some("demo")),
            object(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "reader",
                None,
            ),
        ];
        let plan = PrunePlan::new(members, &InRender::of(&desired), &PruneOptions::default());
        assert!(plan.delete.is_empty() && plan.keep.is_empty());
        assert_eq!(plan.members, 2);
    }

    #[test]
    fn one_refusal_for_an_empty_render_and_for_a_mass_prune() {
        let cm = resolved("", "ConfigMap", "configmaps", true);
        let members = |n: usize| -> Vec<Member> {
            (0..n)
                .map(|i| member(&cm, &format!("cm-{i}"), Some("demo")))
                .collect()
        };
        let opts = PruneOptions::default();
        let plan = PrunePlan::new(members(2), &InRender::of(&[]), &opts);
        assert_eq!(plan.refusal(0, &opts), Some(PruneRefusal::EmptyRender));
        assert_eq!(
            plan.refusal(3, &opts),
            None,
            "two deletions are not a mass prune"
        );
        let mass = PrunePlan::new(members(8), &InRender::of(&[]), &opts);
        assert_eq!(mass.refusal(1, &opts), Some(PruneRefusal::Mass));
        assert!(
            mass.refusal_warning(PruneRefusal::Mass)
                .contains("would refuse to delete 8 of the 8 objects")
        );
        let empty_allowed = PruneOptions {
            allow_empty: true,
            ..PruneOptions::default()
        };
        assert_eq!(plan.refusal(0, &empty_allowed), None);
        assert!(
            plan.refusal_warning(PruneRefusal::EmptyRender)
                .contains("without --allow-empty")
        );
        let error = plan.refusal_error("demo", PruneRefusal::EmptyRender);
        assert!(error.to_string().contains("renders no objects"), "{error}");
    }

    #[test]
    fn crds_and_namespaces_are_kept_unless_allowed_by_kind() {
        let ns = resolved("", "Namespace", "namespaces", false);
        let crd = resolved(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        );
        let cm = resolved("", "ConfigMap", "configmaps", true);
        let members = || {
            vec![
                member(&ns, "old", None),
                member(&crd, "widgets.example.com", None),
                member(&cm, "gone", Some("demo")),
            ]
        };
        let plan = PrunePlan::new(members(), &InRender::of(&[]), &PruneOptions::default());
        let deleted: Vec<String> = plan.delete.iter().map(|m| m.object.to_string()).collect();
        assert_eq!(deleted, ["ConfigMap demo/gone"]);
        assert_eq!(plan.keep.len(), 2);
        assert!(plan.keep[0].1.message().contains("--prune-allow"));

        let allow = PruneOptions {
            allow_kinds: [
                "CustomResourceDefinition".to_owned(),
                "Namespace".to_owned(),
            ]
            .into(),
            ..PruneOptions::default()
        };
        let plan = PrunePlan::new(members(), &InRender::of(&[]), &allow);
        let deleted: Vec<String> = plan.delete.iter().map(|m| m.object.to_string()).collect();
        // Reverse apply order: namespaced objects first, the Namespace, then the CRD last.
        assert_eq!(
            deleted,
            [
                "ConfigMap demo/gone",
                "Namespace old",
                "CustomResourceDefinition widgets.example.com"
            ]
        );
    }

    #[test]
    fn an_object_rendered_under_another_group_is_kept_and_never_deleted() {
        let old_ingress = resolved("extensions", "Ingress", "ingresses", true);
        let members = vec![member(&old_ingress, "web", Some("demo"))];
        let rendered = InRender::of(&[object(
            "networking.k8s.io/v1",
            "Ingress",
            "web",
            Some("demo"),
        )]);
        let plan = PrunePlan::new(members.clone(), &rendered, &PruneOptions::default());
        assert!(plan.delete.is_empty());
        assert_eq!(
            plan.keep[0].1,
            KeepReason::SameNameRendered("networking.k8s.io".into())
        );
        // The guard before DELETE holds even for a plan built wrongly.
        assert!(rendered.forbids_delete(&members[0].object));
    }

    #[test]
    fn a_prune_of_most_of_the_set_is_a_mass_prune() {
        let cm = resolved("", "ConfigMap", "configmaps", true);
        let members: Vec<Member> = (0..8)
            .map(|i| member(&cm, &format!("c{i}"), Some("demo")))
            .collect();
        let keep_two: Vec<Object> = (0..2)
            .map(|i| object("v1", "ConfigMap", &format!("c{i}"), Some("demo")))
            .collect();
        let plan = PrunePlan::new(
            members.clone(),
            &InRender::of(&keep_two),
            &PruneOptions::default(),
        );
        assert_eq!(plan.delete.len(), 6);
        assert!(plan.is_mass());
        let message = format!("{:#}", plan.mass_error("demo"));
        assert!(message.contains("would delete 6 of the 8"), "{message}");
        assert!(message.contains("ConfigMap demo/c7"), "{message}");

        // Five deletions are never a mass prune, nor is deleting less than half.
        let keep_three: Vec<Object> = (0..3)
            .map(|i| object("v1", "ConfigMap", &format!("c{i}"), Some("demo")))
            .collect();
        assert!(
            !PrunePlan::new(
                members,
                &InRender::of(&keep_three),
                &PruneOptions::default()
            )
            .is_mass()
        );
    }
}
