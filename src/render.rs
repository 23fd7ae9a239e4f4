//! Render: vendored files plus overlays to the deterministic list of objects to apply, and the
//! views of it: YAML stream, one-file-per-object directory, `--explain` diffs, lockfile digests.
//!
//! Pipeline per package: read `vendor/<pkg>/<version>/*` (sorted, `List` kinds flattened) ->
//! `namespace:` shorthand -> package overlays -> package overlays for the environment ->
//! the environment's overlays -> sort by `Object::order_key` (the table in `kinds`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::digest;
use crate::error::HintExt;
use crate::fsutil;
use crate::kinds;
use crate::manifest::{Manifest, Package};
use crate::object::Object;
use crate::overlay::{self, Edit, Effect, Miss, Overlay, PackageAt, Tracked, Workspace};
use crate::yaml;

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
    let package = &package.for_env(env);
    let version = package.version.raw.as_str();
    let rendering = || match env {
        Some(e) => format!("rendering {} {version} for environment `{e}`", package.name),
        None => format!("rendering {} {version}", package.name),
    };
    let upstream = read_upstream(manifest, package).with_context(rendering)?;
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

fn display_manifest(manifest: &Manifest) -> String {
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
/// `package.at_version(v)`), files in name order.
pub fn read_upstream(manifest: &Manifest, package: &Package) -> Result<Vec<Object>> {
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
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
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

/// An overlay file as kpin.yaml lists it, with the field that lists it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedOverlay<'a> {
    /// `packages.a.overlays[0]`, `environments.prod.overlays[1]`.
    pub field: String,
    /// The path as written, relative to kpin.yaml.
    pub path: &'a str,
}

/// Overlay files that apply to `package` in `env`, in order: the package's own, the package's
/// for this environment, then the environment's.
pub fn overlay_paths<'a>(
    manifest: &'a Manifest,
    package: &'a Package,
    env: Option<&str>,
) -> Result<Vec<ListedOverlay<'a>>> {
    let listed = |prefix: String, paths: &'a [String]| {
        paths
            .iter()
            .enumerate()
            .map(move |(i, path)| ListedOverlay {
                field: format!("{prefix}.overlays[{i}]"),
                path,
            })
            .collect::<Vec<_>>()
    };
    let mut out = listed(format!("packages.{}", package.name), &package.overlays);
    if let Some(env) = env {
        let environment = manifest.environment(env)?;
        if let Some(paths) = package.env_overlays.get(env) {
            out.extend(listed(
                format!("packages.{}.environments.{env}", package.name),
                paths,
            ));
        }
        out.extend(listed(format!("environments.{env}"), &environment.overlays));
    }
    Ok(out)
}

/// Read one overlay file kpin.yaml lists; it, and every file it adds, must be inside the project.
pub fn load_overlay(manifest: &Manifest, listed: &ListedOverlay) -> Result<Overlay> {
    let path = manifest.resolve(&listed.field, listed.path)?;
    Overlay::load(&manifest.root, &path, listed.path)
}

fn load_overlays(
    manifest: &Manifest,
    package: &Package,
    env: Option<&str>,
) -> Result<Vec<Overlay>> {
    overlay_paths(manifest, package, env)?
        .iter()
        .map(|listed| load_overlay(manifest, listed))
        .collect()
}

/// Every overlay of a package in the order they apply: the `namespace:` shorthand, then the
/// overlay files for `env` (see `overlay_paths`).
pub fn package_overlays(
    manifest: &Manifest,
    package: &Package,
    env: Option<&str>,
) -> Result<Vec<Overlay>> {
    let mut overlays = Vec::new();
    if let Some(ns) = &package.namespace {
        overlays.push(Overlay::namespace_shorthand(
            &format!(
                "{} packages.{}.namespace",
                display_manifest(manifest),
                package.name
            ),
            ns,
        ));
    }
    overlays.extend(load_overlays(manifest, package, env)?);
    Ok(overlays)
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

// ---------------------------------------------------------------------------------------------
// Lockfile digests.
// ---------------------------------------------------------------------------------------------

pub use crate::lockfile::RenderDigests;

/// Name of the render without `--env` in `RenderDigests::rendered`.
pub use crate::manifest::DEFAULT_ENV;

/// The digest kpin.lock records for a render, and the ApplySet parent for what was applied.
pub fn rendered_digest(objects: &[Object]) -> String {
    format!("sha256:{}", digest::sha256_hex(to_yaml(objects).as_bytes()))
}

/// Digests of a package's overlay inputs and rendered output for every environment, each
/// rendered from the version that environment uses. It is `sync`'s `LockHook`.
pub fn digests(manifest: &Manifest, package: &Package) -> Result<RenderDigests> {
    let envs: Vec<Option<&str>> = manifest.renders_of(package).collect();
    let mut files = BTreeMap::new();
    let mut chains = serde_json::Map::new();
    let mut rendered = BTreeMap::new();
    for env in envs {
        let key = env.unwrap_or(DEFAULT_ENV);
        let paths: Vec<&str> = overlay_paths(manifest, package, env)?
            .iter()
            .map(|listed| listed.path)
            .collect();
        chains.insert(key.to_owned(), Value::from(paths));
        let out = render_package(manifest, package, env)?;
        files.extend(
            out.inputs
                .iter()
                .map(|(p, d)| (p.clone(), Value::String(d.clone()))),
        );
        rendered.insert(key.to_owned(), rendered_digest(&out.objects));
    }
    let inputs = serde_json::json!({
        "namespace": package.namespace,
        "overlays": chains,
        "files": files,
    });
    Ok(RenderDigests {
        overlays_digest: digest::of_json(&inputs),
        rendered,
    })
}

/// `verify::VerifyHook`: overlay edits that were not re-locked, renders that no longer match
/// the lock (an environment added or removed counts as changed), and packages that no longer
/// render at all.
pub fn verify_hook(
    manifest: &Manifest,
    package: &Package,
    locked: &crate::lockfile::LockedPackage,
) -> Result<Vec<crate::verify::Problem>> {
    use crate::verify::Problem;
    let now = match digests(manifest, package) {
        Ok(d) => d,
        Err(err) => {
            return Ok(vec![Problem::RenderFailed {
                package: package.name.clone(),
                error: crate::error::summary(&err),
            }]);
        }
    };
    let mut problems = Vec::new();
    if locked.overlays_digest.as_deref() != Some(now.overlays_digest.as_str()) {
        problems.push(Problem::OverlaysChanged {
            package: package.name.clone(),
        });
    }
    let envs: BTreeSet<&String> = now.rendered.keys().chain(locked.rendered.keys()).collect();
    for env in envs {
        if now.rendered.get(env) != locked.rendered.get(env) {
            problems.push(Problem::RenderChanged {
                package: package.name.clone(),
                env: env.clone(),
            });
        }
    }
    Ok(problems)
}

// ---------------------------------------------------------------------------------------------
// Output directory.
// ---------------------------------------------------------------------------------------------

/// File name of an object in `--output-dir`: `<NN>-<stage>_<kind>[_<namespace>]_<name>.yaml`,
/// so a directory listing reads in apply order and names never depend on other objects.
pub fn object_file_name(object: &Object) -> String {
    let (stage, _) = kinds::rank(object.group(), object.kind());
    let kind = match kinds::lookup(object.group(), object.kind()) {
        Some(_) => object.kind().to_ascii_lowercase(),
        // Custom kinds may share a name across groups.
        None => format!("{}.{}", object.kind().to_ascii_lowercase(), object.group()),
    };
    let mut name = format!("{:02}-{}_{kind}", stage as u8, stage.slug());
    if let Some(ns) = object.namespace() {
        name.push('_');
        name.push_str(ns);
    }
    name.push('_');
    name.push_str(object.name());
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{safe}.yaml")
}

/// Write `<dir>/<package>/<file per object>`, each package directory replaced whole.
pub fn write_output_dir(dir: &Path, packages: &[RenderedPackage]) -> Result<()> {
    for package in packages {
        let dest = dir.join(&package.name);
        check_replaceable(&dest)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let staged = fsutil::sibling_temp_name(&dest, "render");
        let result = (|| -> Result<()> {
            std::fs::create_dir_all(&staged)
                .with_context(|| format!("creating {}", staged.display()))?;
            let mut seen = BTreeSet::new();
            for object in &package.objects {
                let file = object_file_name(object);
                if !seen.insert(file.clone()) {
                    return Err(anyhow::anyhow!(
                        "{} and another object of {} map to the same file {file}",
                        object.reference(),
                        package.name
                    ))
                    .hint("their names differ only in characters a file name cannot hold");
                }
                std::fs::write(staged.join(&file), yaml::emit(&object.0))
                    .with_context(|| format!("writing {file}"))?;
            }
            fsutil::replace_dir(&staged, &dest)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        result?;
    }
    Ok(())
}

/// A package directory is replaced whole, so refuse one holding anything render would not
/// have written (subdirectories, other files): `--output-dir .` next to a package named
/// `overlays` must not wipe the overlays.
fn check_replaceable(dest: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dest) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Exactly as `object_file_name` writes it: a `FOO.YAML` is someone else's file.
        let rendered_file = entry.file_type().is_ok_and(|t| t.is_file())
            && Path::new(&name).extension() == Some(OsStr::new("yaml"));
        if !rendered_file {
            return Err(anyhow::anyhow!(
                "{} holds `{name}`, which `kpin render` does not write: refusing to replace the directory",
                dest.display()
            ))
            .hint("--output-dir replaces each package's directory whole: use a directory that only holds rendered output, e.g. `--output-dir rendered`");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Explain.
// ---------------------------------------------------------------------------------------------

/// The reviewer's view: per changed object, which overlay operation changed which fields, and
/// a unified diff from upstream to rendered. Unchanged objects are counted, not shown.
pub fn explain(package: &RenderedPackage) -> String {
    let mut out = String::new();
    let title = match &package.env {
        Some(e) => format!("{} {} (environment {e})", package.name, package.version),
        None => format!("{} {}", package.name, package.version),
    };
    let _ = writeln!(out, "# {title}");
    let Some(history) = &package.explanation else {
        return out;
    };
    let mut unchanged = 0;
    for t in history {
        if t.effects.is_empty() {
            unchanged += 1;
            continue;
        }
        let removed = t.effects.iter().any(|c| c.edit == Edit::Removed);
        let shown = if removed {
            t.upstream.as_ref().unwrap_or(&t.object)
        } else {
            &t.object
        };
        let _ = writeln!(out, "\n## {}", shown.reference());
        if let Some(up) = &t.upstream
            && up.reference() != t.object.reference()
        {
            let _ = writeln!(out, "upstream: {}", up.reference());
        }
        for Effect { origin, edit } in &t.effects {
            let what = match edit {
                Edit::Added => "added".to_owned(),
                Edit::Removed => "removed".to_owned(),
                Edit::Modified(paths) => paths.join(", "),
            };
            let _ = writeln!(out, "- {origin}: {what}");
        }
        let after = (!removed).then_some(&t.object.0);
        let upstream = t.upstream.as_ref().map(|o| &o.0);
        out.push_str(&crate::changes::yaml_diff(
            upstream,
            after,
            ("upstream", "rendered"),
            3,
        ));
    }
    let _ = writeln!(out, "\n{unchanged} object(s) unchanged");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_names_are_stable_and_safe() {
        let o = Object(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:metrics"}}),
        );
        assert_eq!(
            object_file_name(&o),
            "02-cluster_clusterrole_system-metrics.yaml"
        );
        let o = Object(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "n"}}),
        );
        assert_eq!(object_file_name(&o), "06-other_widget.example.com_n_w.yaml");
    }
}
