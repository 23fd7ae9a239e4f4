//! The render-stage digests kpin.lock records (overlay inputs, rendered YAML per environment),
//! and the check `kpin verify` makes with them.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::Value;

use crate::digest;
use crate::manifest::{Manifest, Package};
use crate::object::Object;

use super::{overlay_paths, render_package, to_yaml};

/// The render-stage fields of a lock entry: computed here (`digests`), recorded in kpin.lock
/// by `sync` and `upgrade`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenderDigests {
    /// Digest of the overlay settings in kpin.yaml and the bytes of every overlay input.
    pub overlays_digest: String,
    /// Digest of the rendered YAML: `default` (no environment) and each environment by name.
    pub rendered: BTreeMap<String, String>,
}

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
