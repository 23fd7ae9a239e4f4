//! Staged server-side apply of one rendered package: CRDs, Namespaces and cluster RBAC first
//! (then wait for CRDs and refresh discovery), the rest after, admission webhooks last; bounded
//! parallelism within a stage; dry-run comparison so unchanged objects are not patched;
//! client-side-apply migration, conflict and immutable-field handling, ApplySet prune, waits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::applyset::{self, Contents, Parent};
use super::discovery::Resolved;
use super::report::{Action, NotReady, ObjectResult, PackageReport};
use super::wait::{self, Rule, Watched};
use super::{
    Cluster, ClusterError, ResourceApi, api_for, api_status, apply_body, csa, get, reference_of,
};
use crate::error::HintExt as _;
use crate::kinds::{self, Stage};
use crate::object::{Object, ObjectRef};
use crate::progress::Reporter;
use crate::render::RenderedPackage;

/// Objects with this annotation set to `"true"` are deleted and re-created when an immutable
/// field changes, even without `--recreate`.
pub const RECREATE_ANNOTATION: &str = "kpin.dev/recreate";

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub field_manager: String,
    pub force_conflicts: bool,
    pub recreate: bool,
    /// `dryRun=All` on every request; nothing is changed.
    pub dry_run: bool,
    pub prune: bool,
    pub allow_empty: bool,
    /// Wait this long for readiness after applying; `None` to not wait.
    pub wait: Option<Duration>,
    /// Objects applied at the same time within a stage.
    pub concurrency: usize,
    /// Interval between readiness polls.
    pub poll: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            field_manager: "kpin".into(),
            force_conflicts: false,
            recreate: false,
            dry_run: false,
            prune: false,
            allow_empty: false,
            wait: None,
            concurrency: 16,
            poll: Duration::from_millis(500),
        }
    }
}

const HINT_CONFLICT: &str = "three ways out: take the fields over with --force-conflicts; stop setting them in kpin \
(an overlay that removes them) so the other manager keeps them; or set kpin's value to the live one";
pub(crate) const HINT_IMMUTABLE: &str =
    "pass --recreate to delete and re-create it, or annotate it with kpin.dev/recreate: \"true\"";
/// Groups larger than this are read with one LIST instead of one GET per object.
const LIST_THRESHOLD: usize = 4;
/// How long to wait for new CRDs to be established before applying their custom resources.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);

/// Kinds defined by CRDs in the render: (group, kind) -> namespaced.
fn render_crds(objects: &[Object]) -> HashMap<(String, String), bool> {
    objects
        .iter()
        .filter(|o| o.group() == "apiextensions.k8s.io" && o.kind() == "CustomResourceDefinition")
        .filter_map(|o| {
            let group = o.0.pointer("/spec/group")?.as_str()?.to_owned();
            let kind = o.0.pointer("/spec/names/kind")?.as_str()?.to_owned();
            let namespaced =
                o.0.pointer("/spec/scope").and_then(Value::as_str) == Some("Namespaced");
            Some(((group, kind), namespaced))
        })
        .collect()
}

/// The objects as they will be sent: server fields dropped, namespace defaulted, member label.
pub fn prepare(
    rendered: &RenderedPackage,
    default_namespace: &str,
    applyset_id: Option<&str>,
) -> Vec<Object> {
    let crds = render_crds(&rendered.objects);
    rendered
        .objects
        .iter()
        .map(|o| {
            let mut o = Object(apply_body(o));
            let extra = |g: &str, k: &str| crds.get(&(g.to_owned(), k.to_owned())).copied();
            match kinds::namespaced(o.group(), o.kind(), &extra) {
                Some(true) if o.namespace().is_none() => o.set_namespace(default_namespace),
                // Upstream YAML sometimes gives cluster-scoped objects a namespace; the server
                // ignores it, and keeping it would make the object look foreign to prune.
                Some(false) if o.namespace().is_some() => {
                    o.metadata_mut().remove("namespace");
                }
                _ => {}
            }
            if let Some(id) = applyset_id {
                applyset::label_member(&mut o, id);
            }
            o
        })
        .collect()
}

/// A package ready to send: its ApplySet parent and its objects as they will be applied.
pub(crate) struct Prepared {
    /// Where the parent lives, and the default for namespaced objects that name none.
    pub parent_ns: String,
    pub parent: Parent,
    /// The ApplySet id every member is labelled with.
    pub id: String,
    pub objects: Vec<Object>,
}

/// Prepare a package for `apply` or `diff` (see [`prepare`]) and warm discovery for the API
/// versions it uses, so the per-object requests that follow do not each wait for it.
pub(crate) async fn prepare_package(
    cluster: &Cluster,
    rendered: &RenderedPackage,
    namespace: Option<&str>,
) -> Prepared {
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
    Prepared {
        parent_ns,
        parent,
        id,
        objects,
    }
}

/// Compare what the server would store with what it has, ignoring bookkeeping that moves on
/// its own (resourceVersion, managed-field timestamps).
fn same_as_live(dry_run: &Value, live: &Value) -> bool {
    fn norm(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            if let Some(mf) = meta.get_mut("managedFields").and_then(Value::as_array_mut) {
                for e in mf.iter_mut().filter_map(Value::as_object_mut) {
                    e.remove("time");
                }
            }
        }
        v
    }
    norm(dry_run) == norm(live)
}

/// Whether the server refused a change to an immutable field (the way out is `--recreate`).
pub(crate) fn is_immutable(err: &kube::Error) -> bool {
    api_status(err).is_some_and(|s| s.code == 422 && s.message.contains("field is immutable"))
}

/// A failed object with the server's reason and, where one helps, the way out.
fn failure(object: ObjectRef, err: &kube::Error) -> ObjectResult {
    let mut r = ObjectResult::new(object, Action::Failed);
    match api_status(err) {
        Some(s) if s.code == 409 && s.details.as_ref().is_some_and(|d| !d.causes.is_empty()) => {
            let causes: Vec<String> = s
                .details
                .iter()
                .flat_map(|d| &d.causes)
                .map(|c| format!("{} ({})", c.field, c.message))
                .collect();
            r.message = Some(format!(
                "conflicts with other field managers: {}",
                causes.join("; ")
            ));
            r.hint = Some(HINT_CONFLICT.into());
        }
        Some(s) if is_immutable(err) => {
            r.message = Some(format!("an immutable field changed: {}", s.message));
            r.hint = Some(HINT_IMMUTABLE.into());
        }
        Some(s) => r.message = Some(format!("{} ({})", s.message, s.code)),
        None => r.message = Some(err.to_string()),
    }
    r
}

struct Ctx<'a> {
    cluster: &'a Cluster,
    opts: &'a ApplyOptions,
    crds: HashMap<(String, String), bool>,
    /// Namespaces the render creates: a dry run cannot create objects in them yet.
    namespaces: HashSet<String>,
}

impl Ctx<'_> {
    fn params(&self, dry_run: bool) -> PatchParams {
        let mut pp = PatchParams::apply(&self.opts.field_manager);
        if self.opts.force_conflicts {
            pp = pp.force();
        }
        if dry_run {
            pp = pp.dry_run();
        }
        pp
    }

    async fn resolve(&self, object: &Object) -> Result<Option<Resolved>, ObjectResult> {
        let r = object.reference();
        match self
            .cluster
            .mapper
            .resolve(object.api_version(), object.kind())
            .await
        {
            Ok(Some(res)) => Ok(Some(res)),
            Ok(None)
                if self.opts.dry_run
                    && self.crds.contains_key(&(r.group.clone(), r.kind.clone())) =>
            {
                Ok(None)
            }
            Ok(None) => {
                let mut f = ObjectResult::new(r, Action::Failed).with_message(format!(
                    "the cluster does not serve {} {}",
                    object.api_version(),
                    object.kind()
                ));
                f.hint = Some(
                    "install the CRD that defines this kind first (or add it to the package)"
                        .into(),
                );
                Err(f)
            }
            Err(e) => Err(ObjectResult::new(r, Action::Failed).with_message(format!("{e:#}"))),
        }
    }

    /// Apply one object. `known_live` is the live object when a LIST already fetched it.
    async fn apply_one(
        &self,
        object: &Object,
        known_live: Option<Option<Value>>,
    ) -> (ObjectResult, Option<Watched>) {
        let r = object.reference();
        let resolved = match self.resolve(object).await {
            Ok(Some(res)) => res,
            // Dry run of a custom resource whose CRD this same apply would create.
            Ok(None) => {
                return (
                    ObjectResult::new(r, Action::Created)
                        .with_message("its CRD is created by this apply"),
                    None,
                );
            }
            Err(f) => return (f, None),
        };
        let api = api_for(self.cluster, &resolved, object.namespace());
        let name = object.name();
        let mut live = match known_live {
            Some(l) => l,
            None => match get(&api, name).await {
                Ok(l) => l,
                Err(e) => return (failure(r, &e), None),
            },
        };
        let mut note = None;
        if let Some(patch) = live
            .as_ref()
            .filter(|l| csa::needs_migration(l))
            .and_then(|l| csa::migration_patch(l, &self.opts.field_manager))
        {
            if self.opts.dry_run {
                note = Some("would take over the fields of client-side kubectl apply");
            } else {
                match api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(updated) => live = Some(updated),
                    Err(e) => return (failure(r, &e), None),
                }
                note = Some("took over the fields of client-side kubectl apply");
            }
        }
        // The object as the server now has it, when a response showed it: if that is already
        // ready (an unchanged, rolled-out Deployment; an established CRD) there is nothing to wait for.
        let mut now: Option<Value> = None;
        let result = match live {
            None => match api
                .patch(
                    name,
                    &self.params(self.opts.dry_run),
                    &Patch::Apply(&object.0),
                )
                .await
            {
                Ok(v) => {
                    now = Some(v);
                    ObjectResult::new(r.clone(), Action::Created)
                }
                Err(e)
                    if self.opts.dry_run
                        && api_status(&e).is_some_and(|s| s.code == 404)
                        && object
                            .namespace()
                            .is_some_and(|ns| self.namespaces.contains(ns)) =>
                {
                    ObjectResult::new(r.clone(), Action::Created)
                        .with_message("its namespace is created by this apply")
                }
                Err(e) => failure(r.clone(), &e),
            },
            Some(live) => match api
                .patch(name, &self.params(true), &Patch::Apply(&object.0))
                .await
            {
                Ok(dry) if same_as_live(&dry, &live) => {
                    now = Some(live);
                    ObjectResult::new(r.clone(), Action::Unchanged)
                }
                Ok(_) if self.opts.dry_run => ObjectResult::new(r.clone(), Action::Configured),
                Ok(_) => match api
                    .patch(name, &self.params(false), &Patch::Apply(&object.0))
                    .await
                {
                    Ok(v) => {
                        now = Some(v);
                        ObjectResult::new(r.clone(), Action::Configured)
                    }
                    Err(e) => failure(r.clone(), &e),
                },
                Err(e) if is_immutable(&e) && (self.opts.recreate || wants_recreate(object)) => {
                    self.recreate(&api, object, &e).await
                }
                Err(e) => failure(r.clone(), &e),
            },
        };
        let watched = wait::rule_for(&r.group, &r.kind)
            .filter(|rule| now.as_ref().is_none_or(|v| wait::check(*rule, v).is_err()))
            .map(|rule: Rule| Watched {
                object: r,
                resolved,
                rule,
            });
        let result = match (note, result.message.is_none()) {
            (Some(n), true) => result.with_message(n),
            _ => result,
        };
        (result, watched)
    }

    /// Delete, wait until gone, apply again.
    async fn recreate(
        &self,
        api: &ResourceApi,
        object: &Object,
        why: &kube::Error,
    ) -> ObjectResult {
        let r = object.reference();
        let reason = api_status(why)
            .map(|s| s.message.clone())
            .unwrap_or_default();
        if self.opts.dry_run {
            return ObjectResult::new(r, Action::Recreated)
                .with_message(format!("would delete and re-create: {reason}"));
        }
        let name = object.name();
        if let Err(e) = api.delete(name, &DeleteParams::foreground()).await
            && api_status(&e).is_none_or(|s| s.code != 404)
        {
            return failure(r, &e);
        }
        let deadline = Instant::now() + CRD_TIMEOUT;
        loop {
            match get(api, name).await {
                Ok(None) => break,
                Ok(Some(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(self.opts.poll.min(Duration::from_millis(200))).await
                }
                Ok(Some(_)) => {
                    return ObjectResult::new(r, Action::Failed)
                        .with_message("deleted for re-creation but still present after 60s");
                }
                Err(e) => return failure(r, &e),
            }
        }
        match api
            .patch(name, &self.params(false), &Patch::Apply(&object.0))
            .await
        {
            Ok(_) => ObjectResult::new(r, Action::Recreated)
                .with_message(format!("immutable field changed: {reason}")),
            Err(e) => failure(r, &e),
        }
    }

    /// Live objects of groups big enough to LIST: ref -> live (None = absent).
    async fn prefetch(&self, objects: &[Object]) -> HashMap<ObjectRef, Option<Value>> {
        let mut groups: BTreeMap<(String, String, Option<String>), Vec<&Object>> = BTreeMap::new();
        for o in objects {
            groups
                .entry((
                    o.api_version().to_owned(),
                    o.kind().to_owned(),
                    o.namespace().map(str::to_owned),
                ))
                .or_default()
                .push(o);
        }
        let mut out = HashMap::new();
        for ((api_version, kind, ns), members) in groups {
            if members.len() < LIST_THRESHOLD {
                continue;
            }
            let Ok(Some(resolved)) = self.cluster.mapper.resolve(&api_version, &kind).await else {
                continue;
            };
            // Only within a namespace: a cluster-wide LIST (all CRDs of a big cluster) can be
            // far larger than the objects kpin needs.
            if !resolved.namespaced {
                continue;
            }
            let api = api_for(self.cluster, &resolved, ns.as_deref());
            // A failed LIST (e.g. no list permission) just falls back to one GET per object.
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            let mut live: HashMap<String, Value> = list
                .into_iter()
                .map(|o| {
                    (
                        o.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        o,
                    )
                })
                .collect();
            for m in members {
                out.insert(m.reference(), live.remove(m.name()));
            }
        }
        out
    }
}

fn wants_recreate(object: &Object) -> bool {
    object
        .annotations()
        .and_then(|a| a.get(RECREATE_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true")
}

/// A package's ApplySet parent as it is in the cluster.
pub(crate) struct ParentState {
    pub api: ResourceApi,
    pub live: Option<Value>,
    /// What the live parent records (empty when there is none).
    pub recorded: Contents,
}

/// Read the parent and refuse one that another tool manages.
pub(crate) async fn read_parent(
    cluster: &Cluster,
    package: &str,
    parent: &Parent,
) -> Result<ParentState> {
    let cm = cluster
        .mapper
        .resolve("v1", "ConfigMap")
        .await?
        .context("the cluster does not serve v1 ConfigMap")?;
    let api = api_for(cluster, &cm, Some(&parent.namespace));
    let live = get(&api, &parent.name).await.with_context(|| {
        format!(
            "reading the ApplySet parent ConfigMap {}/{}",
            parent.namespace, parent.name
        )
    })?;
    if let Some(tooling) = live.as_ref().and_then(applyset::foreign_tooling) {
        return Err(ClusterError::ForeignParent {
            package: package.to_owned(),
            parent: format!("ConfigMap {}/{}", parent.namespace, parent.name),
            tooling,
        }
        .into());
    }
    let recorded = live.as_ref().map(Contents::from_parent).unwrap_or_default();
    Ok(ParentState {
        api,
        live,
        recorded,
    })
}

/// Apply one rendered package. Errors that stop before anything changes (foreign ApplySet
/// parent, empty prune, unreadable parent) are `Err`; per-object failures are in the report.
pub async fn apply_package(
    cluster: &Cluster,
    rendered: &RenderedPackage,
    namespace: Option<&str>,
    opts: &ApplyOptions,
    reporter: &dyn Reporter,
) -> Result<PackageReport> {
    if opts.prune && rendered.objects.is_empty() && !opts.allow_empty {
        return Err(ClusterError::EmptyPrune {
            package: rendered.name.clone(),
        }
        .into());
    }
    let Prepared {
        parent_ns,
        parent,
        id,
        objects,
    } = prepare_package(cluster, rendered, namespace).await;
    let ctx = Ctx {
        cluster,
        opts,
        crds: render_crds(&objects),
        namespaces: objects
            .iter()
            .filter(|o| o.group().is_empty() && o.kind() == "Namespace")
            .map(|o| o.name().to_owned())
            .collect(),
    };
    let ParentState {
        api: parent_api,
        live: live_parent,
        recorded,
    } = read_parent(cluster, &rendered.name, &parent).await?;
    let desired = Contents::of(&objects, &parent_ns);

    let mut results: Vec<ObjectResult> = Vec::new();
    let mut watched: Vec<Watched> = Vec::new();
    let mut done: HashSet<ObjectRef> = HashSet::new();
    let mut failed = false;

    // The parent lives in the package namespace: create that first when the package brings it,
    // then record the superset before any member is applied, so a crash leaves nothing untracked.
    if !opts.dry_run {
        if let Some(ns) = objects
            .iter()
            .find(|o| o.group().is_empty() && o.kind() == "Namespace" && o.name() == parent_ns)
        {
            let (r, _) = ctx.apply_one(ns, None).await;
            failed |= r.action == Action::Failed;
            done.insert(r.object.clone());
            results.push(r);
        }
        let superset = recorded.union(&desired);
        if !failed && (live_parent.is_none() || superset != recorded) {
            let body = parent.object(&superset);
            let written = parent_api
                .patch(
                    &parent.name,
                    &PatchParams::apply(&opts.field_manager).force(),
                    &Patch::Apply(&body),
                )
                .await;
            if let Err(e) = &written
                && api_status(e).is_some_and(|s| s.code == 404)
            {
                return Err(anyhow::anyhow!("namespace {parent_ns} does not exist")).hint(format!(
                    "create it first, or add a Namespace {parent_ns} object to package {} (an overlay)",
                    rendered.name
                ));
            }
            written.with_context(|| {
                format!(
                    "writing the ApplySet parent ConfigMap {parent_ns}/{}",
                    parent.name
                )
            })?;
        }
    }

    let mut stages: BTreeMap<Stage, Vec<&Object>> = BTreeMap::new();
    for o in objects.iter().filter(|o| !done.contains(&o.reference())) {
        stages
            .entry(kinds::rank(o.group(), o.kind()).0)
            .or_default()
            .push(o);
    }
    let task = reporter.task("Applying", objects.len() as u64);
    task.advance(done.len() as u64);
    for (stage, members) in stages {
        if failed {
            results.extend(
                members
                    .iter()
                    .map(|o| ObjectResult::new(o.reference(), Action::Skipped)),
            );
            continue;
        }
        let owned: Vec<Object> = members.iter().map(|o| (*o).clone()).collect();
        let mut known = ctx.prefetch(&owned).await;
        let mut outcomes: Vec<(usize, (ObjectResult, Option<Watched>))> =
            futures::stream::iter(members.iter().enumerate())
                .map(|(i, o)| {
                    let known_live = known.remove(&o.reference());
                    let ctx = &ctx;
                    let task = &task;
                    async move {
                        let out = ctx.apply_one(o, known_live).await;
                        task.advance(1);
                        (i, out)
                    }
                })
                .buffer_unordered(opts.concurrency.max(1))
                .collect()
                .await;
        outcomes.sort_by_key(|(i, _)| *i);
        for (_, (r, w)) in outcomes {
            failed |= r.action == Action::Failed;
            if r.action != Action::Failed {
                watched.extend(w);
            }
            results.push(r);
        }
        if stage == Stage::Crds && !opts.dry_run && !failed {
            let crds: Vec<Watched> = watched
                .iter()
                .filter(|w| w.rule == Rule::Condition("Established"))
                .cloned()
                .collect();
            if !crds.is_empty() {
                reporter.status(
                    "Waiting",
                    &format!("for CRDs to be established ({})", crds.len()),
                );
                let not_ready = wait::wait_ready(
                    cluster,
                    &crds,
                    CRD_TIMEOUT,
                    opts.poll.min(Duration::from_millis(200)),
                )
                .await?;
                if !not_ready.is_empty() {
                    task.finish();
                    results.extend(
                        objects
                            .iter()
                            .filter(|o| kinds::rank(o.group(), o.kind()).0 > Stage::Crds)
                            .map(|o| ObjectResult::new(o.reference(), Action::Skipped)),
                    );
                    return Ok(PackageReport {
                        package: rendered.name.clone(),
                        version: rendered.version.clone(),
                        objects: results,
                        not_ready,
                    });
                }
                let groups: Vec<String> = ctx.crds.keys().map(|(g, _)| g.clone()).collect();
                cluster.mapper.forget(&groups);
            }
        }
    }
    task.finish();

    if opts.prune && !failed {
        let pruned = prune(&ctx, &recorded.union(&desired), &parent_ns, &id, &objects).await?;
        failed |= pruned.iter().any(|r| r.action == Action::Failed);
        results.extend(pruned);
        if !opts.dry_run && !failed && desired != recorded.union(&desired) {
            parent_api
                .patch(
                    &parent.name,
                    &PatchParams::apply(&opts.field_manager).force(),
                    &Patch::Apply(&parent.object(&desired)),
                )
                .await
                .with_context(|| {
                    format!(
                        "writing the ApplySet parent ConfigMap {parent_ns}/{}",
                        parent.name
                    )
                })?;
        }
    }

    let mut not_ready: Vec<NotReady> = Vec::new();
    if let (Some(timeout), false, false) = (opts.wait, opts.dry_run, failed) {
        let workloads: Vec<Watched> = watched
            .into_iter()
            .filter(|w| w.rule != Rule::Condition("Established"))
            .collect();
        if !workloads.is_empty() {
            reporter.status(
                "Waiting",
                &format!(
                    "for {} to be ready ({} objects)",
                    rendered.name,
                    workloads.len()
                ),
            );
            not_ready = wait::wait_ready(cluster, &workloads, timeout, opts.poll).await?;
        }
    }
    Ok(PackageReport {
        package: rendered.name.clone(),
        version: rendered.version.clone(),
        objects: results,
        not_ready,
    })
}

/// A live member of a package's ApplySet that is no longer rendered.
pub(crate) struct Stale {
    pub rank: (Stage, usize),
    pub object: ObjectRef,
    pub resolved: Resolved,
    pub live: Value,
}

/// Members of the set (found by label in every recorded group-kind and namespace) that are not
/// in `desired`, in reverse apply order: webhooks first, CRDs last.
pub(crate) async fn stale_members(
    cluster: &Cluster,
    recorded: &Contents,
    parent_ns: &str,
    id: &str,
    desired: &[Object],
) -> Result<Vec<Stale>> {
    let wanted: HashSet<ObjectRef> = desired.iter().map(Object::reference).collect();
    let selector = format!("{}={id}", applyset::PART_OF_LABEL);
    let mut stale: Vec<Stale> = Vec::new();
    for gk in &recorded.group_kinds {
        let Some(resolved) = cluster
            .mapper
            .resolve_group_kind(&gk.group, &gk.kind)
            .await?
        else {
            continue; // The kind is gone (e.g. its CRD was removed), and with it its objects.
        };
        let namespaces: Vec<Option<&str>> = if resolved.namespaced {
            std::iter::once(parent_ns)
                .chain(recorded.namespaces.iter().map(String::as_str))
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        for ns in namespaces {
            let api = api_for(cluster, &resolved, ns);
            let list = api
                .list(&ListParams::default().labels(&selector))
                .await
                .with_context(|| format!("listing {gk} members of the ApplySet"))?;
            for live in list {
                let object = reference_of(&live);
                if !wanted.contains(&object) {
                    stale.push(Stale {
                        rank: kinds::rank(&object.group, &object.kind),
                        object,
                        resolved: resolved.clone(),
                        live,
                    });
                }
            }
        }
    }
    stale.sort_by(|a, b| (b.rank, &a.object).cmp(&(a.rank, &b.object)));
    Ok(stale)
}

/// Delete members of the set that are no longer rendered, in reverse apply order.
async fn prune(
    ctx: &Ctx<'_>,
    recorded: &Contents,
    parent_ns: &str,
    id: &str,
    desired: &[Object],
) -> Result<Vec<ObjectResult>> {
    let stale = stale_members(ctx.cluster, recorded, parent_ns, id, desired).await?;
    let mut out = Vec::new();
    for Stale {
        object: r,
        resolved,
        live,
        ..
    } in stale
    {
        if applyset::keep(&live) {
            out.push(
                ObjectResult::new(r, Action::Kept)
                    .with_message(format!("{}: keep", applyset::KEEP_ANNOTATION)),
            );
            continue;
        }
        let api = api_for(ctx.cluster, &resolved, r.namespace.as_deref());
        let params = if ctx.opts.dry_run {
            DeleteParams::background().dry_run()
        } else {
            DeleteParams::background()
        };
        match api.delete(&r.name, &params).await {
            Ok(_) => out.push(ObjectResult::new(r, Action::Pruned)),
            Err(e) if api_status(&e).is_some_and(|s| s.code == 404) => {
                out.push(ObjectResult::new(r, Action::Pruned))
            }
            Err(e) => out.push(failure(r, &e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prepare_defaults_namespaces_drops_them_from_cluster_objects_and_labels_members() {
        let rendered = RenderedPackage {
            name: "demo".into(),
            version: "1".into(),
            env: None,
            objects: vec![
                Object(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "1"}}),
                ),
                Object(
                    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r", "namespace": "x"}}),
                ),
                Object(
                    json!({"apiVersion": "example.com/v1", "kind": "Mystery", "metadata": {"name": "m"}}),
                ),
            ],
            warnings: vec![],
            explanation: None,
            inputs: vec![],
        };
        let out = prepare(&rendered, "demo", Some("applyset-x-v1"));
        assert_eq!(out[0].namespace(), Some("demo"));
        assert!(out[0].0.pointer("/metadata/resourceVersion").is_none());
        assert_eq!(out[1].namespace(), None);
        assert_eq!(
            out[2].namespace(),
            None,
            "unknown scope is left to the server"
        );
        assert_eq!(
            out[1].labels().unwrap()[applyset::PART_OF_LABEL],
            "applyset-x-v1"
        );
    }

    #[test]
    fn unchanged_ignores_resource_version_and_managed_field_times() {
        let live = json!({"metadata": {"resourceVersion": "1", "managedFields": [{"manager": "kpin", "time": "a"}]}, "data": {"k": "v"}});
        let same = json!({"metadata": {"resourceVersion": "2", "managedFields": [{"manager": "kpin", "time": "b"}]}, "data": {"k": "v"}});
        let changed = json!({"metadata": {"resourceVersion": "1", "managedFields": [{"manager": "kpin", "time": "a"}]}, "data": {"k": "w"}});
        assert!(same_as_live(&same, &live));
        assert!(!same_as_live(&changed, &live));
    }
}
