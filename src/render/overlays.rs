//! Which overlay files apply to a package in an environment, in order, and loading them.

use anyhow::Result;

use crate::manifest::{Manifest, Package};
use crate::overlay::Overlay;

use super::display_manifest;

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
