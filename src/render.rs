//! Render: vendored files plus overlays to the deterministic list of objects to apply.

use anyhow::{Context, Result};

use crate::manifest::{Manifest, Package};
use crate::object::Object;
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
}

/// Render one package from `vendor/` (baseline: upstream objects in order, no overlays yet).
pub fn render_package(manifest: &Manifest, package: &Package, env: Option<&str>) -> Result<RenderedPackage> {
    let dir = manifest.package_vendor_dir(package);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("reading {}", dir.display()))?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        objects.extend(yaml::documents(&text, &file)?.into_iter().map(Object));
    }
    objects.sort_by_cached_key(Object::order_key);
    Ok(RenderedPackage {
        name: package.name.clone(),
        version: package.version.raw.clone(),
        env: env.map(str::to_owned),
        objects,
        warnings: Vec::new(),
    })
}

/// The YAML stream of rendered objects.
pub fn to_yaml(objects: &[Object]) -> String {
    yaml::emit_documents(objects.iter().map(|o| &o.0))
}
