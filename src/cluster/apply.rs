//! Staged server-side apply of every selected package: the ApplySet parents first, then the
//! CRDs and Namespaces of all packages (a package may use another's CRDs), a wait until the
//! CRDs are established, then the rest package by package, stage by stage (admission webhooks
//! last), with bounded parallelism within a stage. What is live comes from a few LISTs
//! ([`super::live`]); an object whose fingerprint the parent recorded is unchanged without a
//! request ([`super::unchanged`]), any other is dry-run first and compared on the fields kpin
//! owns ([`super::owned`]), so unchanged objects are never patched. Client-side-apply
//! migration, conflicts, immutable fields (`--recreate`), prune (see [`super::prune`]) and
//! readiness waits follow. Once every object of a package applied, its parent records what runs
//! ([`Deployed`]: version, environment, render digest) and the fingerprints of what it applied.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::Value;

use super::applyset::{Contents, Deployed, Fingerprints};
use super::discovery::Resolved;
use super::live::{Known, LiveObjects};
use super::package::{
    self, CustomKinds, ParentState, Prepared, Selected, prepare_package, read_parent,
};
use super::prune::{self, InRender, MemberSet, PruneOptions, PrunePlan};
use super::report::{Action, NotReady, ObjectResult, PackageResult, failure};
use super::unchanged::Shortcut;
use super::wait::{self, Rule, Watched};
use super::{
    Cluster, ResourceApi, api_for, api_status, csa, get, immutable_fields, is_immutable, owned,
};
use crate::error::HintExt as _;
use crate::kinds::{self, Stage};
use crate::object::{Object, ObjectRef};
use crate::progress::{Reporter, Task};
use crate::render::{self, DEFAULT_ENV, RenderedPackage};

/// The field manager kpin applies as unless told otherwise.
pub const FIELD_MANAGER: &str = "kpin";

/// How to apply.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // flags of a command line
pub struct ApplyOptions {
    pub field_manager: String,
    pub force_conflicts: bool,
    pub recreate: bool,
    /// `dryRun=All` on every request; nothing is changed.
    pub dry_run: bool,
    /// Delete members of each package's ApplySet that are no longer rendered, within these
    /// limits; `None` to delete nothing.
    pub prune: Option<PruneOptions>,
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
            field_manager: FIELD_MANAGER.into(),
            force_conflicts: false,
            recreate: false,
            dry_run: false,
            prune: None,
            wait: None,
            concurrency: 16,
            poll: Duration::from_millis(500),
        }
    }
}

/// How long to wait for new CRDs to be established before applying their custom resources.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest interval between two looks at CRDs that are not established yet.
const CRD_POLL: Duration = Duration::from_millis(50);
/// What applying one object came to.
struct Outcome {
    result: ObjectResult,
    /// What to wait for, when it is not ready yet.
    watched: Option<Watched>,
    /// Its fingerprint as the server now has it, when the apply was seen through.
    fingerprint: Option<String>,
}

impl Outcome {
    fn of(result: ObjectResult) -> Outcome {
        Outcome {
            result,
            watched: None,
            fingerprint: None,
        }
    }
}

/// What every object's apply needs to know about the whole run.
struct Applier<'a> {
    cluster: &'a Cluster,
    opts: &'a ApplyOptions,
    /// Custom kinds whose CRDs some selected package brings.
    custom: CustomKinds,
    /// Namespaces the render creates: a dry run cannot create objects in them yet.
    namespaces: HashSet<String>,
    /// A request found the API server unreachable: send nothing more.
    server_gone: AtomicBool,
    /// What tells an unchanged object without a dry run.
    shortcut: Shortcut,
}

impl Applier<'_> {
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
                    && self.custom.contains_key(&(r.group.clone(), r.kind.clone())) =>
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
                    "install the CRD that defines this kind first (or add it to a package)".into(),
                );
                Err(f)
            }
            Err(e) => {
                let mut f = ObjectResult::new(r, Action::Failed).with_message(format!("{e:#}"));
                f.hint = crate::error::hint_of(&e).map(str::to_owned);
                Err(f)
            }
        }
    }

    /// Apply one object: resolve its kind, read it from the cluster (unless a LIST already
    /// did), take over the fields of client-side kubectl apply, create or update it, and say
    /// whether to wait for it.
    async fn apply_one(&self, object: &Object, known: Known, recorded: &Fingerprints) -> Outcome {
        let r = object.reference();
        let resolved = match self.resolve(object).await {
            Ok(Some(res)) => res,
            // Dry run of a custom resource whose CRD this same apply would create.
            Ok(None) => {
                return Outcome::of(
                    ObjectResult::new(r, Action::Created)
                        .with_message("its CRD is created by this apply"),
                );
            }
            Err(f) => return Outcome::of(f),
        };
        let api = api_for(self.cluster, &resolved, object.namespace());
        let live = match known {
            Known::Listed(live) => live,
            Known::Unknown => match get(&api, object.name()).await {
                Ok(live) => live,
                Err(e) => return Outcome::of(failure(r, &e)),
            },
        };
        let (live, note) = match self.take_over_client_side(&api, object, live).await {
            Ok(taken) => taken,
            Err(e) => return Outcome::of(failure(r, &e)),
        };
        let (result, now, known) = match live {
            None => {
                let (result, now) = self.create(&api, object).await;
                (result, now, None)
            }
            Some(live) => {
                if let Some(f) = self.shortcut.recorded(recorded, object, &live) {
                    let unchanged = ObjectResult::new(r.clone(), Action::Unchanged);
                    (unchanged, Some(live), Some(f))
                } else {
                    let (result, now) = self.update(&api, object, live).await;
                    (result, now, None)
                }
            }
        };
        // Seen through: written, or found unchanged (a dry run records nothing).
        let fingerprint = known.or_else(|| {
            now.as_ref()
                .filter(|_| !self.opts.dry_run)
                .and_then(|now| self.shortcut.fingerprint(object, now))
        });
        let watched = wait::rule_for(&r.group, &r.kind)
            .filter(|rule| now.as_ref().is_none_or(|v| wait::ready(*rule, v).is_err()))
            .map(|rule: Rule| Watched {
                object: r,
                resolved,
                rule,
            });
        let result = match (note, result.message.is_none()) {
            (Some(n), true) => result.with_message(n),
            _ => result,
        };
        Outcome {
            result,
            watched,
            fingerprint,
        }
    }

    /// Move the fields a client-side `kubectl apply` recorded in `live` to kpin's field
    /// manager, so that server-side apply can remove them later. The live object afterwards,
    /// and a note for the report when there was something to take over.
    async fn take_over_client_side(
        &self,
        api: &ResourceApi,
        object: &Object,
        live: Option<Value>,
    ) -> Result<(Option<Value>, Option<&'static str>), kube::Error> {
        let Some(patch) = live
            .as_ref()
            .filter(|l| csa::needs_migration(l))
            .and_then(|l| csa::migration_patch(l, &self.opts.field_manager))
        else {
            return Ok((live, None));
        };
        if self.opts.dry_run {
            return Ok((
                live,
                Some("would take over the fields of client-side kubectl apply"),
            ));
        }
        let updated = api
            .patch(
                object.name(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok((
            Some(updated),
            Some("took over the fields of client-side kubectl apply"),
        ))
    }

    /// Apply an object the cluster does not have yet. With the result, the object as the
    /// server now has it, when a response showed it: if that is already ready (an established
    /// CRD) there is nothing to wait for.
    async fn create(&self, api: &ResourceApi, object: &Object) -> (ObjectResult, Option<Value>) {
        let r = object.reference();
        match api
            .patch(
                object.name(),
                &self.params(self.opts.dry_run),
                &Patch::Apply(&object.0),
            )
            .await
        {
            Ok(v) => (ObjectResult::new(r, Action::Created), Some(v)),
            Err(e)
                if self.opts.dry_run
                    && api_status(&e).is_some_and(|s| s.code == 404)
                    && object
                        .namespace()
                        .is_some_and(|ns| self.namespaces.contains(ns)) =>
            {
                (
                    ObjectResult::new(r, Action::Created)
                        .with_message("its namespace is created by this apply"),
                    None,
                )
            }
            Err(e) => (failure(r, &e), None),
        }
    }

    /// Apply an object the cluster has whose fingerprint is not recorded: a dry run first
    /// tells whether anything changes, and only then is it applied for real. With the result,
    /// the object as the server now has it, when a response showed it: if that is already
    /// ready (an unchanged, rolled-out Deployment) there is nothing to wait for.
    async fn update(
        &self,
        api: &ResourceApi,
        object: &Object,
        live: Value,
    ) -> (ObjectResult, Option<Value>) {
        let r = object.reference();
        let name = object.name();
        match api
            .patch(name, &self.params(true), &Patch::Apply(&object.0))
            .await
        {
            Ok(dry) if !owned::changes(&dry, &live, &self.opts.field_manager) => {
                (ObjectResult::new(r, Action::Unchanged), Some(live))
            }
            Ok(_) if self.opts.dry_run => (ObjectResult::new(r, Action::Configured), None),
            Ok(_) => match api
                .patch(name, &self.params(false), &Patch::Apply(&object.0))
                .await
            {
                Ok(v) => (ObjectResult::new(r, Action::Configured), Some(v)),
                Err(e) => (failure(r, &e), None),
            },
            Err(e) if is_immutable(&e) && (self.opts.recreate || wants_recreate(object)) => {
                self.recreate(api, object, &e).await
            }
            Err(e) => (failure(r, &e), None),
        }
    }

    /// Delete, wait until gone, apply again; with the object as the server then has it.
    async fn recreate(
        &self,
        api: &ResourceApi,
        object: &Object,
        why: &kube::Error,
    ) -> (ObjectResult, Option<Value>) {
        let r = object.reference();
        let reason = format!("{} changed (immutable)", immutable_fields(why).join(", "));
        if self.opts.dry_run {
            return (
                ObjectResult::new(r, Action::Recreated)
                    .with_message(format!("would delete and re-create: {reason}")),
                None,
            );
        }
        let name = object.name();
        if let Err(e) = api.delete(name, &DeleteParams::foreground()).await
            && api_status(&e).is_none_or(|s| s.code != 404)
        {
            return (failure(r, &e), None);
        }
        let deadline = Instant::now() + CRD_TIMEOUT;
        loop {
            match get(api, name).await {
                Ok(None) => break,
                Ok(Some(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(self.opts.poll.min(Duration::from_millis(200))).await;
                }
                Ok(Some(_)) => {
                    return (
                        ObjectResult::new(r, Action::Failed)
                            .with_message("deleted for re-creation but still present after 60s"),
                        None,
                    );
                }
                Err(e) => return (failure(r, &e), None),
            }
        }
        match api
            .patch(name, &self.params(false), &Patch::Apply(&object.0))
            .await
        {
            Ok(v) => (
                ObjectResult::new(r, Action::Recreated)
                    .with_message(format!("deleted and re-created: {reason}")),
                Some(v),
            ),
            Err(e) => (failure(r, &e), None),
        }
    }
}

/// After the CRDs and Namespaces of every package: what is in a namespace this apply created
/// is known to be absent. The apiVersions of the custom resources whose CRD this apply wrote,
/// whose schemas the server publishes anew.
fn foundation_written(runs: &mut [InFlight<'_>]) -> BTreeSet<String> {
    let written = |r: &&ObjectResult, kind: (&str, &str)| {
        (r.object.group.as_str(), r.object.kind.as_str()) == kind
            && matches!(
                r.action,
                Action::Created | Action::Configured | Action::Recreated
            )
    };
    let created_namespaces: Vec<String> = runs
        .iter()
        .flat_map(|r| &r.results)
        .filter(|r| written(r, kinds::NAMESPACE_KIND) && r.action == Action::Created)
        .map(|r| r.object.name.clone())
        .collect();
    let written_crds: HashSet<&str> = runs
        .iter()
        .flat_map(|r| &r.results)
        .filter(|r| written(r, kinds::CRD_KIND))
        .map(|r| r.object.name.as_str())
        .collect();
    let custom =
        package::custom_kinds(runs.iter().flat_map(|r| &r.prepared.objects).filter(|o| {
            (o.group(), o.kind()) == kinds::CRD_KIND && written_crds.contains(o.name())
        }));
    let custom_versions = runs
        .iter()
        .flat_map(|r| &r.prepared.objects)
        .filter(|o| custom.contains_key(&(o.group().to_owned(), o.kind().to_owned())))
        .map(|o| o.api_version().to_owned())
        .collect();
    for run in runs {
        for ns in &created_namespaces {
            run.live.created_namespace(ns);
        }
    }
    custom_versions
}

fn wants_recreate(object: &Object) -> bool {
    object
        .annotations()
        .and_then(|a| a.get(kinds::RECREATE_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true")
}

/// One package on its way into the cluster.
struct InFlight<'a> {
    rendered: &'a RenderedPackage,
    prepared: Prepared,
    parent: ParentState,
    /// What the parent holds now: what was live, then what this apply wrote.
    parent_now: (Contents, Option<Deployed>, Fingerprints),
    /// What the parent says runs once every object applied.
    deployed: Deployed,
    /// What the parent records once this apply is done (without prune: the union).
    desired: Contents,
    /// What `--prune` will do, decided before anything is written.
    plan: Option<PrunePlan>,
    rendered_refs: InRender,
    /// What is live of the objects not applied yet.
    live: LiveObjects,
    /// Fingerprints of the objects applied so far.
    fingerprints: Vec<String>,
    results: Vec<ObjectResult>,
    watched: Vec<Watched>,
    done: HashSet<ObjectRef>,
    not_ready: Vec<NotReady>,
    failed: bool,
}

impl InFlight<'_> {
    fn record(&mut self, outcome: Outcome) {
        let Outcome {
            result,
            watched,
            fingerprint,
        } = outcome;
        self.failed |= result.action == Action::Failed;
        if result.action != Action::Failed {
            self.watched.extend(watched);
            self.fingerprints.extend(fingerprint);
        }
        self.done.insert(result.object.clone());
        self.results.push(result);
    }

    /// Objects not applied yet whose stage passes `filter`, by stage, as indices into the
    /// prepared objects (which can be megabytes of CRDs: not copied).
    fn pending(&self, filter: impl Fn(Stage) -> bool) -> BTreeMap<Stage, Vec<usize>> {
        let mut stages: BTreeMap<Stage, Vec<usize>> = BTreeMap::new();
        for (i, o) in self.prepared.objects.iter().enumerate() {
            let stage = kinds::rank(o.group(), o.kind()).0;
            if filter(stage) && !self.done.contains(&o.reference()) {
                stages.entry(stage).or_default().push(i);
            }
        }
        stages
    }

    /// Report every object not applied yet as skipped.
    fn skip_rest(&mut self) {
        for i in self.pending(|_| true).into_values().flatten() {
            let r = self.prepared.objects[i].reference();
            self.done.insert(r.clone());
            self.results.push(ObjectResult::new(r, Action::Skipped));
        }
    }

    /// The package's results: applied objects in render order, then what prune did.
    fn report(mut self) -> PackageResult {
        self.results.sort_by_cached_key(|r| {
            match r.action {
                Action::Pruned | Action::Kept => None,
                _ => Some(kinds::rank(&r.object.group, &r.object.kind)),
            }
            .map_or((true, None), |rank| (false, Some((rank, r.object.clone()))))
        });
        PackageResult {
            package: self.rendered.name.clone(),
            version: self.rendered.version.clone(),
            objects: self.results,
            not_ready: self.not_ready,
        }
    }
}

/// Everything read and decided before the first write: the parents (refusing foreign ones),
/// the namespaces the parents live in, and the prune plans (refusing a mass prune). An error
/// here leaves the cluster untouched.
async fn start<'a>(
    cluster: &Cluster,
    packages: &[Selected<'a>],
    opts: &ApplyOptions,
    custom: &CustomKinds,
) -> Result<Vec<InFlight<'a>>> {
    let rendered_namespaces: HashSet<&str> = packages
        .iter()
        .flat_map(|p| &p.rendered.objects)
        .filter(|o| (o.group(), o.kind()) == kinds::NAMESPACE_KIND)
        .map(Object::name)
        .collect();
    // Packages are read at the same time: nothing here writes.
    let read = futures::future::join_all(
        packages
            .iter()
            .map(|p| read_package(cluster, *p, opts, custom, &rendered_namespaces)),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    // The members' LISTs, a few for all packages, tell what is live of the rendered objects
    // too: read with or without --prune.
    let sets: Vec<Option<MemberSet>> = read
        .iter()
        .map(|(prepared, parent)| {
            parent.live.as_ref().map(|_| MemberSet {
                recorded: &parent.recorded,
                parent_ns: &prepared.parent_ns,
                id: &prepared.id,
            })
        })
        .collect();
    let members = prune::live_members(cluster, &sets).await?;
    drop(sets);
    packages
        .iter()
        .zip(read)
        .zip(members)
        .map(|((p, (prepared, parent)), members)| begin(*p, prepared, parent, members, opts))
        .collect()
}

/// A package made ready and its parent as it is live, the namespace the parent lives in
/// checked.
async fn read_package(
    cluster: &Cluster,
    p: Selected<'_>,
    opts: &ApplyOptions,
    custom: &CustomKinds,
    rendered_namespaces: &HashSet<&str>,
) -> Result<(Prepared, ParentState)> {
    let name = &p.rendered.name;
    let prepared = prepare_package(cluster, p.rendered, p.namespace, custom).await;
    let parent = read_parent(cluster, name, &prepared.parent).await?;
    let ns = &prepared.parent_ns;
    if !opts.dry_run && parent.live.is_none() && !rendered_namespaces.contains(ns.as_str()) {
        package::require_namespace(cluster, ns).await.hint(format!(
            "create it first, or add a Namespace {ns} object to package {name} (an overlay)"
        ))?;
    }
    Ok((prepared, parent))
}

/// One package on its way, from what was read: its prune plan decided (or refused).
fn begin<'a>(
    p: Selected<'a>,
    prepared: Prepared,
    parent: ParentState,
    members: Vec<prune::Member>,
    opts: &ApplyOptions,
) -> Result<InFlight<'a>> {
    let name = &p.rendered.name;
    let ns = &prepared.parent_ns;
    let rendered_refs = InRender::of(&prepared.objects);
    let mut plan = PrunePlan::new(
        members,
        &rendered_refs,
        opts.prune.as_ref().unwrap_or(&PruneOptions::default()),
    );
    let live = LiveObjects::new(plan.take_rendered(), &prepared.objects);
    let plan = match &opts.prune {
        Some(prune_opts) => {
            if let Some(refusal) = plan.refusal(prepared.objects.len(), prune_opts) {
                return Err(plan.refusal_error(name, refusal));
            }
            Some(plan)
        }
        None => None,
    };
    let deployed = Deployed {
        version: p.rendered.version.clone(),
        environment: p.rendered.env.as_deref().unwrap_or(DEFAULT_ENV).to_owned(),
        rendered_digest: render::rendered_digest(&p.rendered.objects),
    };
    Ok(InFlight {
        rendered: p.rendered,
        parent_now: (
            parent.recorded.clone(),
            parent.deployed.clone(),
            parent.fingerprints.clone(),
        ),
        deployed,
        desired: Contents::of(&prepared.objects, ns),
        prepared,
        parent,
        plan,
        rendered_refs,
        live,
        fingerprints: Vec::new(),
        results: Vec::new(),
        watched: Vec::new(),
        done: HashSet::new(),
        not_ready: Vec::new(),
        failed: false,
    })
}

/// Apply every selected package (in the order given: `needs` first). Errors that stop before
/// anything changes (foreign ApplySet parent, empty or mass prune, missing namespace) are
/// `Err`; per-object failures are in the reports, and a failed package stops the ones after it.
pub async fn apply_all(
    cluster: &Cluster,
    packages: &[Selected<'_>],
    opts: &ApplyOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<PackageResult>> {
    apply_selected(cluster, packages, opts, reporter)
        .await
        .map_err(|e| cluster.explain(e))
}

async fn apply_selected(
    cluster: &Cluster,
    packages: &[Selected<'_>],
    opts: &ApplyOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<PackageResult>> {
    let custom = package::custom_kinds(packages.iter().flat_map(|p| &p.rendered.objects));
    let (runs, shortcut) = futures::join!(
        start(cluster, packages, opts, &custom),
        Shortcut::read(cluster, &opts.field_manager)
    );
    let mut runs = runs?;
    let mut applier = Applier {
        cluster,
        opts,
        custom,
        namespaces: runs
            .iter()
            .flat_map(|r| &r.prepared.objects)
            .filter(|o| (o.group(), o.kind()) == kinds::NAMESPACE_KIND)
            .map(|o| o.name().to_owned())
            .collect(),
        server_gone: AtomicBool::new(false),
        shortcut,
    };
    let total = runs.iter().map(|r| r.prepared.objects.len() as u64).sum();
    let task = reporter.task("Applying", total);

    // 1. Each parent records the union of what it had and what comes, before any member is
    //    applied, so that a crash leaves nothing untracked.
    if !opts.dry_run {
        for i in 0..runs.len() {
            applier
                .apply_parent_namespace(&mut runs, i, task.as_ref())
                .await;
        }
        // Each parent is its own object: all written at once.
        futures::future::try_join_all(
            runs.iter_mut()
                .filter(|run| !run.failed)
                .map(|run| applier.record_parent(run)),
        )
        .await?;
    }

    // 2. The CRDs and Namespaces of every package, then wait until the CRDs are established:
    //    a package may add custom resources whose CRD another package brings.
    let mut stop = !applier
        .apply_foundation(&mut runs, reporter, task.as_ref())
        .await?;

    // 3. The rest, package by package: a failure stops the packages after it.
    for run in &mut runs {
        if stop {
            run.skip_rest();
            continue;
        }
        reporter.status(
            if opts.dry_run {
                "Dry-running"
            } else {
                "Applying"
            },
            &format!(
                "{} {} ({} objects)",
                run.rendered.name,
                run.rendered.version,
                run.prepared.objects.len()
            ),
        );
        applier.apply_stages(run, |_| true, task.as_ref()).await;
        stop |= run.failed;
    }
    task.finish();

    // 4. Prune, record what runs, then wait, per package that applied cleanly.
    for run in &mut runs {
        if run.failed {
            continue;
        }
        let mut contents = run.parent_now.0.clone();
        let fingerprints: Fingerprints =
            std::mem::take(&mut run.fingerprints).into_iter().collect();
        if let Some(plan) = &run.plan {
            let pruned = prune::execute(cluster, plan, &run.rendered_refs, opts.dry_run).await;
            run.failed |= pruned.iter().any(|r| r.action == Action::Failed);
            run.results.extend(pruned);
            contents = plan.contents_after(&run.desired, &run.prepared.parent_ns);
        }
        // Every object is in: the parent says what runs (a failed prune leaves it as it was).
        let now = (contents, Some(run.deployed.clone()), fingerprints);
        if !opts.dry_run && !run.failed && now != run.parent_now {
            applier.write_parent(run, &now).await?;
            run.parent_now = now;
        }
        if let (Some(timeout), false, false) = (opts.wait, opts.dry_run, run.failed) {
            let workloads = &run.watched;
            if !workloads.is_empty() {
                reporter.status(
                    "Waiting",
                    &format!(
                        "for {} to be ready ({} objects)",
                        run.rendered.name,
                        workloads.len()
                    ),
                );
                run.not_ready = wait::wait_ready(cluster, workloads, timeout, opts.poll).await?;
            }
        }
    }
    Ok(runs.into_iter().map(InFlight::report).collect())
}

impl Applier<'_> {
    /// When another package renders the namespace of run `i`'s parent, apply that Namespace
    /// first; if it fails, run `i` fails too (its parent cannot be written, so none of its
    /// objects may be applied).
    async fn apply_parent_namespace(&self, runs: &mut [InFlight<'_>], i: usize, task: &dyn Task) {
        let ns = runs[i].prepared.parent_ns.clone();
        let is_parent_ns =
            |o: &Object| (o.group(), o.kind()) == kinds::NAMESPACE_KIND && o.name() == ns;
        let owner = runs.iter().enumerate().find_map(|(j, r)| {
            r.prepared
                .objects
                .iter()
                .find(|o| is_parent_ns(o))
                .map(|o| (j, o.clone()))
        });
        let Some((j, object)) = owner else {
            return;
        };
        if !runs[j].done.contains(&object.reference()) {
            let recorded = runs[j].parent.fingerprints.clone();
            let outcome = self.apply_one(&object, Known::Unknown, &recorded).await;
            task.advance(1);
            runs[j].record(outcome);
        }
        if runs[j].failed {
            // Reported with the package that renders it.
            runs[i].failed = true;
        }
    }

    /// The CRDs and Namespaces of every package at once, then a wait until the CRDs are
    /// established. `false` when something failed or is not ready: nothing more is applied.
    async fn apply_foundation(
        &mut self,
        runs: &mut [InFlight<'_>],
        reporter: &dyn Reporter,
        task: &dyn Task,
    ) -> Result<bool> {
        let foundation = |s: Stage| s <= Stage::Namespaces;
        if runs.iter().any(|r| !r.pending(foundation).is_empty()) {
            reporter.status("Applying", "CRDs and namespaces of every package first");
        }
        // Independent of each other: every package's at once.
        futures::future::join_all(
            runs.iter_mut()
                .map(|run| self.apply_stages(run, foundation, task)),
        )
        .await;
        if runs.iter().any(|r| r.failed) {
            return Ok(false);
        }
        if self.opts.dry_run {
            return Ok(true);
        }
        if !self.wait_for_crds(runs, reporter).await? {
            return Ok(false);
        }
        let custom_versions = foundation_written(runs);
        if !custom_versions.is_empty() {
            self.shortcut.refresh(self.cluster, &custom_versions).await;
        }
        Ok(true)
    }

    /// The parent records the union of what it had and what comes, before any member is
    /// applied.
    async fn record_parent(&self, run: &mut InFlight<'_>) -> Result<()> {
        let superset = run.parent.recorded.union(&run.desired);
        if run.parent.live.is_none() || superset != run.parent.recorded {
            // What runs has not changed yet: the old record stays until every object applied.
            let now = (superset, run.parent_now.1.clone(), run.parent_now.2.clone());
            self.write_parent(run, &now).await?;
            run.parent_now = now;
        }
        Ok(())
    }

    async fn write_parent(
        &self,
        run: &InFlight<'_>,
        (contents, deployed, fingerprints): &(Contents, Option<Deployed>, Fingerprints),
    ) -> Result<()> {
        let parent = &run.prepared.parent;
        run.parent
            .api
            .patch(
                &parent.name,
                &PatchParams::apply(&self.opts.field_manager).force(),
                &Patch::Apply(&parent.object(contents, deployed.as_ref(), fingerprints)),
            )
            .await
            .with_context(|| {
                format!(
                    "writing the ApplySet parent ConfigMap {}/{}",
                    parent.namespace, parent.name
                )
            })
            .map(drop)
    }

    /// Apply the run's pending objects whose stage passes `filter`, stage by stage; after a
    /// failure, the later stages are skipped.
    async fn apply_stages(
        &self,
        run: &mut InFlight<'_>,
        filter: impl Fn(Stage) -> bool,
        task: &dyn Task,
    ) {
        let stages = run.pending(filter);
        // Borrowed apart from the run, which records the results meanwhile.
        let objects = std::mem::take(&mut run.prepared.objects);
        for indices in stages.into_values() {
            if run.failed {
                break;
            }
            let members: Vec<&Object> = indices.iter().map(|&i| &objects[i]).collect();
            let known = run.live.take(self.cluster, &members).await;
            let recorded = &run.parent.fingerprints;
            let mut outcomes: Vec<(usize, Outcome)> =
                futures::stream::iter(members.iter().zip(known).enumerate())
                    .map(|(i, (o, known))| async move {
                        // Once the server is gone (restarted, network lost), the rest is not
                        // sent: one reason in the report, not one failure per object.
                        let out = if self.server_gone.load(Ordering::Relaxed) {
                            Outcome::of(
                                ObjectResult::new(o.reference(), Action::Skipped)
                                    .with_message("not sent: the API server could not be reached"),
                            )
                        } else {
                            self.apply_one(o, known, recorded).await
                        };
                        if out.result.server_unreachable {
                            self.server_gone.store(true, Ordering::Relaxed);
                        }
                        task.advance(1);
                        (i, out)
                    })
                    .buffer_unordered(self.opts.concurrency.max(1))
                    .collect()
                    .await;
            outcomes.sort_by_key(|(i, _)| *i);
            for (_, outcome) in outcomes {
                run.record(outcome);
            }
        }
        run.prepared.objects = objects;
        if run.failed {
            run.skip_rest();
        }
    }

    /// Wait until the CRDs applied so far whose custom resources some package renders are
    /// established, then forget what discovery knew of their groups. `false` (with the CRDs
    /// reported not ready) when they are not in time. The other CRDs are waited for with the
    /// workloads (with `--wait`): nothing in this apply needs them sooner.
    async fn wait_for_crds(
        &self,
        runs: &mut [InFlight<'_>],
        reporter: &dyn Reporter,
    ) -> Result<bool> {
        let objects = || runs.iter().flat_map(|r| &r.prepared.objects);
        let used: HashSet<(&str, &str)> = objects().map(|o| (o.group(), o.kind())).collect();
        let needed: HashSet<String> = objects()
            .filter(|crd| {
                package::custom_kinds([*crd])
                    .keys()
                    .any(|(g, k)| used.contains(&(g.as_str(), k.as_str())))
            })
            .map(|crd| crd.name().to_owned())
            .collect();
        let is_needed = |w: &Watched| {
            w.rule == Rule::Condition("Established") && needed.contains(&w.object.name)
        };
        let crds: Vec<Watched> = runs
            .iter()
            .flat_map(|r| &r.watched)
            .filter(|w| is_needed(w))
            .cloned()
            .collect();
        if crds.is_empty() {
            return Ok(true);
        }
        reporter.status(
            "Waiting",
            &format!("for CRDs to be established ({})", crds.len()),
        );
        // CRDs are usually established within a fraction of a second, and everything after
        // waits for them: poll often.
        let poll = self.opts.poll.min(CRD_POLL);
        let not_ready = wait::wait_ready(self.cluster, &crds, CRD_TIMEOUT, poll).await?;
        if !not_ready.is_empty() {
            for n in not_ready {
                if let Some(run) = runs
                    .iter_mut()
                    .find(|r| r.watched.iter().any(|w| w.object == n.object))
                {
                    run.not_ready.push(n);
                }
            }
            return Ok(false);
        }
        for run in runs.iter_mut() {
            run.watched.retain(|w| !is_needed(w));
        }
        let groups: Vec<String> = self.custom.keys().map(|(g, _)| g.clone()).collect();
        self.cluster.mapper.forget(&groups);
        Ok(true)
    }
}
