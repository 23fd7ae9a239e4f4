//! Live diff: what `kpin apply` would change, as a [`changes::Section`] per package whose
//! `before` side is the live objects and whose `after` side is the server's dry-run result, both
//! stripped of server noise, plus the members `kpin apply --prune` would delete. What is live
//! comes from the same LISTs as apply's ([`super::live`]). An object is unchanged exactly when
//! `kpin apply` would leave it alone, decided as apply decides: its fingerprint is recorded
//! ([`super::unchanged`]), or else its dry run changes nothing kpin owns ([`owned::changes`]);
//! its `after` side is then the live object. Comparison, Secret masking and rendering are
//! `crate::changes`'s.

use anyhow::{Context as _, Result};
use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::{Patch, PatchParams};

use super::applyset::Fingerprints;
use super::applyset::Parent;
use super::live::{Known, LiveObjects};
use super::package::{self, CustomKinds, ParentState, Selected, prepare_package, read_parent};
use super::prune::{self, InRender, MemberSet, PruneOptions, PrunePlan};
use super::unchanged::Shortcut;
use super::{
    Cluster, api_for, api_status, get, immutable_fields, is_immutable, owned, strip_noise,
};
use crate::changes::{self, Change, Detail, Section};
use crate::object::{Object, ObjectRef};

/// What the two sides of a live diff are called in diff headers.
pub const LABELS: (&str, &str) = ("live", "after apply");

/// Objects compared at the same time.
const CONCURRENCY: usize = 16;
/// Packages whose members are read together (and held at once).
const PACKAGES_READ_TOGETHER: usize = 16;

/// Diff every selected package against the cluster, in the order `apply` takes them. Sends only
/// GET/LIST and dryRun=All PATCH.
///
/// ApplySet members that `kpin apply --prune` (with `prune`'s limits) would delete are
/// `Removed`; members it would keep are named in a note with the reason.
pub async fn diff_all(
    cluster: &Cluster,
    packages: &[Selected<'_>],
    field_manager: &str,
    prune: &PruneOptions,
) -> Result<Vec<Section>> {
    diff_selected(cluster, packages, field_manager, prune)
        .await
        .map_err(|e| cluster.explain(e))
}

async fn diff_selected(
    cluster: &Cluster,
    packages: &[Selected<'_>],
    field_manager: &str,
    prune: &PruneOptions,
) -> Result<Vec<Section>> {
    let custom = package::custom_kinds(packages.iter().flat_map(|p| &p.rendered.objects));
    let shortcut = Shortcut::read(cluster, field_manager).await;
    let mut sections = Vec::with_capacity(packages.len());
    // A few packages at a time: their members are read with a few LISTs, and only theirs are
    // held at once.
    for chunk in packages.chunks(PACKAGES_READ_TOGETHER) {
        for (p, read) in chunk.iter().zip(read_packages(cluster, chunk).await?) {
            let section = diff_package(cluster, *p, read, field_manager, prune, &custom, &shortcut)
                .await
                .with_context(|| format!("diffing package {}", p.rendered.name))?;
            sections.push(section);
        }
    }
    Ok(sections)
}

/// The parents of `packages` and the members of their sets.
async fn read_packages(cluster: &Cluster, packages: &[Selected<'_>]) -> Result<Vec<Read>> {
    let parents: Vec<Parent> = packages
        .iter()
        .map(|p| package::parent_of(cluster, &p.rendered.name, p.namespace))
        .collect();
    let states = futures::future::try_join_all(
        packages
            .iter()
            .zip(&parents)
            .map(|(p, parent)| read_parent(cluster, &p.rendered.name, parent)),
    )
    .await?;
    let ids: Vec<String> = parents.iter().map(Parent::id).collect();
    let sets: Vec<Option<MemberSet>> = states
        .iter()
        .zip(parents.iter().zip(&ids))
        .map(|(state, (parent, id))| {
            state.live.as_ref().map(|_| MemberSet {
                recorded: &state.recorded,
                parent_ns: &parent.namespace,
                id,
            })
        })
        .collect();
    let members = prune::live_members(cluster, &sets).await?;
    drop(sets);
    Ok(states
        .into_iter()
        .zip(members)
        .map(|(state, members)| Read { state, members })
        .collect())
}

/// A package's parent as it is live, and the live members of its set.
struct Read {
    state: ParentState,
    members: Vec<prune::Member>,
}

async fn diff_package(
    cluster: &Cluster,
    selected: Selected<'_>,
    Read { state, members }: Read,
    field_manager: &str,
    prune_opts: &PruneOptions,
    custom: &CustomKinds,
    shortcut: &Shortcut,
) -> Result<Section> {
    let rendered = selected.rendered;
    let package = prepare_package(cluster, rendered, selected.namespace, custom).await;
    let objects = &package.objects;
    let mut plan = PrunePlan::new(members, &InRender::of(objects), prune_opts);
    let known = LiveObjects::new(plan.take_rendered(), objects)
        .take(cluster, &objects.iter().collect::<Vec<_>>())
        .await;
    // Forced: the diff shows what kpin wants; a conflict is reported by `apply`.
    let pp = PatchParams::apply(field_manager).force().dry_run();
    let judge = Judge {
        shortcut,
        recorded: &state.fingerprints,
        manager: field_manager,
    };
    let sides: Vec<Sides> = futures::stream::iter(objects.iter().zip(known))
        .map(|(o, known)| live_and_dry_run(cluster, o, known, &pp, &judge))
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut before = Vec::with_capacity(sides.len());
    let mut after = Vec::with_capacity(sides.len());
    let mut immutable: Vec<(ObjectRef, Vec<String>)> = Vec::new();
    let mut ownership: std::collections::BTreeSet<ObjectRef> = std::collections::BTreeSet::new();
    for sides in sides {
        if !sides.immutable.is_empty() {
            immutable.push((sides.after.reference(), sides.immutable));
        }
        if sides.ownership_only {
            ownership.insert(sides.after.reference());
        }
        before.extend(sides.live);
        after.push(sides.after);
    }
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    if state.live.is_some() {
        before.extend(plan.delete.iter().map(|m| Object(strip_noise(&m.live))));
        notes.extend(plan.keep.iter().map(|(m, reason)| {
            format!(
                "no longer rendered, kept by `kpin apply --prune`: {} ({})",
                m.object,
                reason.message()
            )
        }));
        warnings.extend(
            plan.refusal(objects.len(), prune_opts)
                .map(|r| plan.refusal_warning(r)),
        );
    }
    let mut changes = changes::compare(before, after);
    // Equal values, but `kpin apply` would write: it takes fields over or gives them up.
    for c in changes
        .iter_mut()
        .filter(|c| ownership.contains(&c.reference))
    {
        c.change = Change::Changed;
        notes.push(format!(
            "{}: kpin's apply changes which fields it owns (no value changes)",
            c.reference
        ));
    }
    if state.live.is_some() {
        warnings.extend(rerun_warning(&changes));
    }
    warnings.extend(changes::removal_warning(&changes));
    warnings.extend(changes::recreate_warning(&immutable).map(|w| {
        format!("{w}; the server refused their dry run, so their diffs compare with the render")
    }));
    // Unchanged objects are counted, never shown: their bodies go now, so a diff of thousands
    // of objects holds only what changes until every package is compared.
    for c in changes.iter_mut().filter(|c| c.change == Change::Unchanged) {
        (c.before, c.after) = (None, None);
    }
    // The parent says which version the last complete apply applied; without a record, both
    // sides name the render's.
    let live_version = state
        .deployed
        .as_ref()
        .map_or_else(|| rendered.version.clone(), |d| d.version.clone());
    Ok(Section {
        package: rendered.name.clone(),
        title: String::new(),
        version_before: Some(live_version),
        version_after: Some(rendered.version.clone()),
        notes,
        warnings,
        changes,
        detail: Detail::Unified,
    })
}

/// Jobs to create that set `ttlSecondsAfterFinished`: in a package applied before, the cluster
/// most likely deleted them once they finished (the TTL controller), and applying creates, and
/// so runs, them again.
fn rerun_warning(changes: &[changes::ObjectChange]) -> Option<String> {
    let jobs: Vec<String> = changes
        .iter()
        .filter(|c| c.change == Change::Added)
        .filter(|c| (c.reference.group.as_str(), c.reference.kind.as_str()) == ("batch", "Job"))
        .filter(|c| {
            c.after
                .as_ref()
                .is_some_and(|o| o.0.pointer("/spec/ttlSecondsAfterFinished").is_some())
        })
        .map(|c| c.reference.to_string())
        .collect();
    (!jobs.is_empty()).then(|| {
        format!(
            "{} Job(s) to create set ttlSecondsAfterFinished: if they ran before, the cluster \
             deleted them once they finished, and `kpin apply` runs them again: {} (an overlay \
             removing the field keeps them)",
            jobs.len(),
            jobs.join(", ")
        )
    })
}

/// One object's two sides, without server noise.
struct Sides {
    live: Option<Object>,
    /// What the server would store after applying; the object as rendered where the server
    /// cannot say (its CRD or namespace does not exist yet, or an immutable field changes).
    after: Object,
    /// The fields whose change made the server refuse the dry run as immutable.
    immutable: Vec<String>,
    /// Applying writes only to change which fields kpin owns: the two sides are equal.
    ownership_only: bool,
}

/// How one package's objects are judged unchanged, as apply judges them.
struct Judge<'a> {
    shortcut: &'a Shortcut,
    /// The fingerprints the package's parent records.
    recorded: &'a Fingerprints,
    manager: &'a str,
}

/// The live object (if any) and what the server would store after applying `object` as
/// `manager`: the live object itself when that apply changes nothing kpin owns.
async fn live_and_dry_run(
    cluster: &Cluster,
    object: &Object,
    known: Known,
    pp: &PatchParams,
    judge: &Judge<'_>,
) -> Result<Sides> {
    let clean = |v: &serde_json::Value| Object(strip_noise(v));
    let rendered = |live: Option<serde_json::Value>, immutable: Vec<String>| Sides {
        live: live.as_ref().map(clean),
        after: clean(&object.0),
        immutable,
        ownership_only: false,
    };
    let Some(resolved) = cluster
        .mapper
        .resolve(object.api_version(), object.kind())
        .await?
    else {
        // Its CRD is not installed yet (it may be in this same package).
        return Ok(rendered(None, Vec::new()));
    };
    let r = object.reference();
    let api = api_for(cluster, &resolved, object.namespace());
    let live = match known {
        Known::Listed(live) => live,
        Known::Unknown => get(&api, object.name())
            .await
            .with_context(|| format!("reading {r}"))?,
    };
    if let Some(l) = &live
        && judge.shortcut.recorded(judge.recorded, object, l).is_some()
    {
        let live = clean(l);
        return Ok(Sides {
            after: live.clone(),
            live: Some(live),
            immutable: Vec::new(),
            ownership_only: false,
        });
    }
    match api.patch(object.name(), pp, &Patch::Apply(&object.0)).await {
        Ok(result) => {
            let (after, ownership_only) = match &live {
                Some(l) if !owned::changes(&result, l, judge.manager) => (clean(l), false),
                Some(l) => {
                    let after = clean(&result);
                    let same = after == clean(l);
                    (after, same)
                }
                None => (clean(&result), false),
            };
            Ok(Sides {
                live: live.as_ref().map(clean),
                after,
                immutable: Vec::new(),
                ownership_only,
            })
        }
        // A namespace created by the same apply does not exist yet.
        Err(e) if live.is_none() && api_status(&e).is_some_and(|s| s.code == 404) => {
            Ok(rendered(None, Vec::new()))
        }
        Err(e) if live.is_some() && is_immutable(&e) => Ok(rendered(live, immutable_fields(&e))),
        // A refusal of admission is put in kpin's words by `Cluster::explain` (`diff_all`).
        Err(e) => Err(e).with_context(|| format!("server-side dry run of {r}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn added(object: serde_json::Value) -> changes::ObjectChange {
        let object = Object(object);
        changes::ObjectChange {
            reference: object.reference(),
            change: Change::Added,
            before: None,
            after: Some(object),
        }
    }

    #[test]
    fn a_job_the_ttl_controller_deletes_is_named_when_it_would_run_again() {
        let job = |name: &str, ttl: bool| {
            let mut spec = json!({"template": {}});
            if ttl {
                spec["ttlSecondsAfterFinished"] = json!(0);
            }
            added(json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": "ingress"}, "spec": spec}))
        };
        let warning =
            rerun_warning(&[job("admission-create", true), job("once", false)]).expect("a warning");
        assert!(
            warning.starts_with("1 Job(s) to create set ttlSecondsAfterFinished"),
            "{warning}"
        );
        assert!(
            warning.contains("Job ingress/admission-create"),
            "{warning}"
        );
        assert!(!warning.contains("ingress/once"), "{warning}");
        assert_eq!(rerun_warning(&[job("once", false)]), None);
    }
}
