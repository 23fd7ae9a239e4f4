//! `kpin render --output-dir`: one file per object, named so a listing reads in apply order.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::HintExt;
use crate::fsutil;
use crate::kinds;
use crate::object::Object;
use crate::yaml;

use super::RenderedPackage;

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
