//! Render: vendored files plus overlays to the deterministic list of objects to apply (this
//! file), and its views, one file each: the overlay files that apply (`overlays`), the digests
//! kpin.lock records (`digests`), one file per object (`output_dir`), `--explain` (`explain`).
//!
//! Pipeline per package: read `vendor/<pkg>/<version>/*` (sorted, `List` kinds flattened) ->
//! `namespace:` shorthand -> package overlays -> package overlays for the environment ->
//! the environment's overlays -> sort by `Object::order_key` (the table in `kinds`).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::error::HintExt;
use crate::fsutil;
use crate::manifest::{Manifest, Package, PackageVersion};
use crate::object::Object;
use crate::overlay::{self, Miss, Overlay, PackageAt, Tracked, Workspace};
use crate::yaml;

mod digests;
mod explain;
mod output_dir;
mod overlays;

pub use digests::{DEFAULT_ENV, RenderDigests, digests, rendered_digest};
pub use explain::explain;
pub use output_dir::{object_file_name, write_output_dir};
pub use overlays::{ListedOverlay, load_overlay, overlay_paths, package_overlays};

/// One package rendered for one environment.
#[derive(Debug, Clone)]
pub struct RenderedPackage {
    pub name: String,
    pub version: String,
    pub env: Option<String>,
    /// Objects in apply order (see `kinds::Stage`), ties by identity.
    pub objects: Vec<Object>,
    /// Things a reviewer should look at (e.g. leftover references to a moved namespace).
    pub warnings: Vec<String>,
    /// Per-object history from upstream, present when rendered with `explain`.
    pub explanation: Option<Vec<Tracked>>,
    /// Every overlay input (overlay files and the files they add) with its sha256.
    pub inputs: Vec<(String, String)>,
}

/// Render one package from `vendor/` with its overlays (and the environment's).
pub fn render_package(
    manifest: &Manifest,
    package: &Package,
    env: Option<&str>,
) -> Result<RenderedPackage> {
    render_package_with(manifest, package, env, false)
}

/// Render one package; with `explain`, keep what every overlay changed for `explain()`.
///
/// The environment decides the version: its own (`environments.<env>.version`), else the
/// package's.
pub fn render_package_with(
    manifest: &Manifest,
    package: &Package,
    env: Option<&str>,
    explain: bool,
) -> Result<RenderedPackage> {
    render(manifest, package, env, explain, None)
}

/// Render one package, but note each operation whose selector matches nothing and carry on,
/// so one run lists every overlay a new upstream version breaks (`kpin upgrade`). The
/// render is otherwise the same: sorted, checked for duplicates, with its warnings.
pub fn render_package_noting_misses(
    manifest: &Manifest,
    package: &Package,
    env: Option<&str>,
) -> Result<(RenderedPackage, Vec<Miss>)> {
    let mut misses = Vec::new();
    let rendered = render(manifest, package, env, false, Some(&mut misses))?;
    Ok((rendered, misses))
}

fn render(
    manifest: &Manifest,
    package: &Package,
    env: Option<&str>,
    explain: bool,
    misses: Option<&mut Vec<Miss>>,
) -> Result<RenderedPackage> {
    let release = &package.for_env(env);
    let version = release.version.raw.as_str();
    let rendering = || match env {
        Some(e) => format!("rendering {} {version} for environment `{e}`", package.name),
        None => format!("rendering {} {version}", package.name),
    };
    let upstream = read_upstream(manifest, release, env).with_context(rendering)?;
    let overlays = package_overlays(manifest, package, env).with_context(rendering)?;
    let target = PackageAt {
        package: &package.name,
        version,
    };
    let out = render_objects_noting(upstream, &overlays, target, explain, misses)
        .with_context(rendering)?;
    Ok(RenderedPackage {
        name: package.name.clone(),
        version: version.to_owned(),
        env: env.map(str::to_owned),
        objects: out.objects,
        warnings: out.warnings,
        explanation: out.explanation,
        inputs: overlays
            .iter()
            .flat_map(|o| o.inputs.iter().cloned())
            .collect(),
    })
}

/// The result of `render_objects`.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub objects: Vec<Object>,
    pub warnings: Vec<String>,
    pub explanation: Option<Vec<Tracked>>,
}

/// The core of rendering, without files: apply `overlays` in order to `upstream`, sort, check.
pub fn render_objects(
    upstream: Vec<Object>,
    overlays: &[Overlay],
    target: PackageAt,
    explain: bool,
) -> Result<Rendered> {
    render_objects_noting(upstream, overlays, target, explain, None)
}

/// `render_objects`; with `misses`, operations that match nothing are noted there and skipped.
fn render_objects_noting(
    upstream: Vec<Object>,
    overlays: &[Overlay],
    target: PackageAt,
    explain: bool,
    mut misses: Option<&mut Vec<Miss>>,
) -> Result<Rendered> {
    let mut ws = Workspace::new(upstream, explain);
    for overlay in overlays {
        match misses.as_deref_mut() {
            Some(misses) => ws.apply_noting_misses(overlay, target, misses)?,
            None => ws.apply(overlay, target)?,
        }
    }
    let mut tracked = std::mem::take(&mut ws.objects);
    tracked.sort_by_cached_key(|t| t.object.order_key());
    check_duplicates(&tracked)?;
    // Multi-MB CRD bundles make a second copy of every object costly: copy only to explain.
    let (objects, explanation): (Vec<Object>, _) = if explain {
        let objects = tracked.iter().map(|t| t.object.clone()).collect();
        tracked.extend(std::mem::take(&mut ws.removed));
        (objects, Some(tracked))
    } else {
        (tracked.into_iter().map(|t| t.object).collect(), None)
    };
    let mut warnings = std::mem::take(&mut ws.warnings);
    warnings.extend(overlay::leftover_references(&objects, &ws.moves));
    Ok(Rendered {
        objects,
        warnings,
        explanation,
    })
}

pub(super) fn display_manifest(manifest: &Manifest) -> String {
    manifest.path.file_name().map_or_else(
        || "kpin.yaml".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Two objects with one identity would fight in the cluster; this is always a mistake.
fn check_duplicates(sorted: &[Tracked]) -> Result<()> {
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0].object.reference(), pair[1].object.reference());
        if a == b {
            return Err(anyhow::anyhow!("{a} appears twice in the rendered output"))
                .hint("remove one copy with a `remove` operation, or move one with a patch");
        }
    }
    Ok(())
}

/// The vendored objects of a package at its version (for another version in use, pass
/// `package.at_version(v)`) as `env` renders them (a chart with values per environment has a
/// file per environment), files in name order.
pub fn read_upstream(
    manifest: &Manifest,
    package: &PackageVersion,
    env: Option<&str>,
) -> Result<Vec<Object>> {
    let only = package.source.vendored_for(env);
    let dir = manifest.package_vendor_dir(package);
    let entries = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))
        .hint("run `kpin sync` to vendor the package")?;
    let mut files: Vec<PathBuf> = entries
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("reading {}", dir.display()))?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            p.is_file()
                && name.as_ref().is_some_and(|n| !n.starts_with('.'))
                && only.as_ref().is_none_or(|o| name.as_ref() == Some(o))
        })
        .collect();
    files.sort();
    if let Some(only) = &only
        && files.is_empty()
    {
        return Err(anyhow::anyhow!("{} has no {only}", dir.display()))
            .hint("run `kpin sync` to vendor the package");
    }
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let shown = PathBuf::from(fsutil::display_relative(&file, &manifest.root));
        objects.extend(Object::all_from_yaml(&text, &shown).hint(
            "vendored files are kept as fetched: `kpin verify` tells whether this one changed since it was locked, and `kpin sync` restores it",
        )?);
    }
    Ok(objects)
}

/// The objects of several packages as one stream in apply order (all CRDs first, webhooks
/// last), so `kubectl apply -f` of the whole output works. Two packages shipping the same
/// object would overwrite each other in the cluster, so that is an error naming both.
pub fn combine(packages: &[RenderedPackage]) -> Result<Vec<&Object>> {
    let mut all: Vec<(&str, &Object)> = packages
        .iter()
        .flat_map(|p| p.objects.iter().map(move |o| (p.name.as_str(), o)))
        .collect();
    all.sort_by_cached_key(|(_, o)| o.order_key());
    for pair in all.windows(2) {
        let ((a_pkg, a), (b_pkg, b)) = (pair[0], pair[1]);
        if a_pkg != b_pkg && a.reference() == b.reference() {
            return Err(anyhow::anyhow!(
                "{} is rendered by both {a_pkg} and {b_pkg}",
                a.reference()
            ))
            .hint("remove it from one of them with a `remove` operation");
        }
    }
    Ok(all.into_iter().map(|(_, o)| o).collect())
}

/// The YAML stream of rendered objects.
pub fn to_yaml(objects: &[Object]) -> String {
    yaml::emit_documents(objects.iter().map(|o| &o.0))
}
