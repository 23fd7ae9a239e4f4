//! Live diff: what `kpin apply` would change, as a [`changes::Section`] per package whose
//! `before` side is the live objects and whose `after` side is the server's dry-run result, both
//! stripped of server noise. Comparison, Secret masking and rendering are `crate::changes`'s.

use anyhow::{Context as _, Result};
use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::{Patch, PatchParams};

use super::apply::{
    HINT_IMMUTABLE, Stale, is_immutable, prepare_package, read_parent, stale_members,
};
use super::{Cluster, api_for, api_status, applyset, get, strip_noise};
use crate::changes::{self, Detail, Section};
use crate::object::Object;
use crate::render::RenderedPackage;

/// What the two sides of a live diff are called in diff headers.
pub const LABELS: (&str, &str) = ("live", "after apply");

/// Objects compared at the same time.
const CONCURRENCY: usize = 16;

/// Diff one rendered package against the cluster. Sends only GET/LIST and dryRun=All PATCH.
///
/// ApplySet members that are no longer rendered are `Removed` (what `kpin apply --prune` would
/// delete), except those marked `kpin.dev/prune: keep`, which are named in a note instead.
pub async fn diff_package(
    cluster: &Cluster,
    rendered: &RenderedPackage,
    namespace: Option<&str>,
    field_manager: &str,
) -> Result<Section> {
    let package = prepare_package(cluster, rendered, namespace).await;
    let objects = &package.objects;
    // Forced: the diff shows what kpin wants; a conflict is reported by `apply`.
    let pp = PatchParams::apply(field_manager).force().dry_run();
    let sides: Vec<Sides> = futures::stream::iter(objects)
        .map(|o| live_and_dry_run(cluster, o, &pp))
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut before = Vec::with_capacity(sides.len());
    let mut after = Vec::with_capacity(sides.len());
    let mut immutable = Vec::new();
    for sides in sides {
        if sides.immutable {
            immutable.push(sides.after.reference().to_string());
        }
        before.extend(sides.live);
        after.push(sides.after);
    }
    let mut kept = Vec::new();
    let state = read_parent(cluster, &rendered.name, &package.parent).await?;
    if state.live.is_some() {
        let stale = stale_members(
            cluster,
            &state.recorded,
            &package.parent_ns,
            &package.id,
            objects,
        )
        .await?;
        for Stale { object, live, .. } in stale {
            if applyset::keep(&live) {
                kept.push(object.to_string());
            } else {
                before.push(Object(strip_noise(&live)));
            }
        }
    }
    let changes = changes::compare(&before, &after);
    let notes = if kept.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "no longer rendered but kept by {}: keep: {}",
            applyset::KEEP_ANNOTATION,
            kept.join(", ")
        )]
    };
    let mut warnings: Vec<String> = changes::removal_warning(&changes).into_iter().collect();
    if !immutable.is_empty() {
        warnings.push(format!(
            "immutable fields change, so applying needs a delete and re-create: {} \
             ({HINT_IMMUTABLE}); their diffs compare with the render, not a server dry run",
            immutable.join(", ")
        ));
    }
    Ok(Section {
        package: rendered.name.clone(),
        title: String::new(),
        // The cluster does not record which version was applied; both sides name the render's.
        version_before: Some(rendered.version.clone()),
        version_after: Some(rendered.version.clone()),
        notes,
        warnings,
        changes,
        detail: Detail::Unified,
    })
}

/// One object's two sides, without server noise.
struct Sides {
    live: Option<Object>,
    /// What the server would store after applying; the object as rendered where the server
    /// cannot say (its CRD or namespace does not exist yet, or an immutable field changes).
    after: Object,
    /// The dry run was refused because an immutable field changes.
    immutable: bool,
}

/// The live object (if any) and what the server would store after applying `object`.
async fn live_and_dry_run(cluster: &Cluster, object: &Object, pp: &PatchParams) -> Result<Sides> {
    let clean = |v: &serde_json::Value| Object(strip_noise(v));
    let rendered = |live: Option<serde_json::Value>, immutable| Sides {
        live: live.as_ref().map(clean),
        after: clean(&object.0),
        immutable,
    };
    let Some(resolved) = cluster
        .mapper
        .resolve(object.api_version(), object.kind())
        .await?
    else {
        // Its CRD is not installed yet (it may be in this same package).
        return Ok(rendered(None, false));
    };
    let r = object.reference();
    let api = api_for(cluster, &resolved, object.namespace());
    let live = get(&api, object.name())
        .await
        .with_context(|| format!("reading {r}"))?;
    match api.patch(object.name(), pp, &Patch::Apply(&object.0)).await {
        Ok(result) => Ok(Sides {
            live: live.as_ref().map(clean),
            after: clean(&result),
            immutable: false,
        }),
        // A namespace created by the same apply does not exist yet.
        Err(e) if live.is_none() && api_status(&e).is_some_and(|s| s.code == 404) => {
            Ok(rendered(None, false))
        }
        Err(e) if live.is_some() && is_immutable(&e) => Ok(rendered(live, true)),
        Err(e) => Err(e).with_context(|| format!("server-side dry run of {r}")),
    }
}
