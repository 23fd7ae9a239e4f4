//! A chart archive (`.tgz`) read in place: its Chart.yaml, its default values and the
//! dependencies packaged in its `charts/`, each with its digest.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::error::HintExt;

/// Archive members larger than this are not read into memory (Chart.yaml, values.yaml and a
/// packaged dependency are far smaller).
const MAX_MEMBER: u64 = 64 * 1024 * 1024;

/// What kpin reads of a chart archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub name: String,
    pub version: String,
    /// The chart's `values.yaml`, as text (empty when it has none).
    pub default_values: String,
    /// `dependencies:` of Chart.yaml.
    pub declared: Vec<Declared>,
    /// Dependencies packaged in `charts/`.
    pub dependencies: Vec<Packaged>,
    /// Templates (paths inside the archive) that call `lookup`, which `helm template` answers
    /// with nothing.
    pub lookups: Vec<String>,
    /// The exact dependency versions `Chart.lock` records, by name.
    pub locked: std::collections::BTreeMap<String, String>,
}

/// A dependency Chart.yaml declares.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Declared {
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub repository: String,
    #[serde(default)]
    pub condition: Option<String>,
}

/// A dependency inside the archive: `charts/NAME-VERSION.tgz` or `charts/NAME/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packaged {
    pub name: String,
    pub version: String,
    /// sha256 of the packaged archive, or of the directory's files in path order.
    pub sha256: String,
}

#[derive(Debug, Deserialize)]
struct ChartLock {
    #[serde(default)]
    dependencies: Vec<Declared>,
}

#[derive(Debug, Deserialize)]
struct ChartYaml {
    name: String,
    version: String,
    #[serde(default)]
    dependencies: Vec<Declared>,
}

impl Chart {
    /// Read the chart archive at `path`.
    pub fn read(path: &Path) -> Result<Chart> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Chart::from_reader(file)
    }

    fn from_reader(reader: impl Read) -> Result<Chart> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
        let mut chart_yaml = None;
        let mut chart_lock = None;
        let mut default_values = String::new();
        // Subchart directories: name -> (Chart.yaml text, hasher over their files).
        let mut sub_dirs: std::collections::BTreeMap<
            String,
            (Option<String>, crate::digest::Hasher),
        > = std::collections::BTreeMap::default();
        let mut dependencies = Vec::new();
        let mut lookups = Vec::new();
        let entries = archive
            .entries()
            .context("not a gzip-compressed tar archive")?;
        for entry in entries {
            let mut entry = entry.context("reading the archive")?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry
                .path()
                .context("an archive member's path")?
                .to_string_lossy()
                .into_owned();
            let parts: Vec<&str> = path.split('/').collect();
            // Every member sits under the chart's own directory: `NAME/...`.
            let inner = &parts[1.min(parts.len())..];
            let read = |entry: &mut tar::Entry<'_, _>| -> Result<Vec<u8>> {
                if entry.size() > MAX_MEMBER {
                    anyhow::bail!("{path}: larger than {MAX_MEMBER} bytes");
                }
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .with_context(|| format!("reading {path}"))?;
                Ok(bytes)
            };
            match inner {
                ["Chart.yaml"] => {
                    chart_yaml = Some(String::from_utf8_lossy(&read(&mut entry)?).into_owned());
                }
                ["Chart.lock"] => {
                    chart_lock = Some(String::from_utf8_lossy(&read(&mut entry)?).into_owned());
                }
                ["values.yaml"] => {
                    default_values = String::from_utf8_lossy(&read(&mut entry)?).into_owned();
                }
                ["charts", file]
                    if std::path::Path::new(file)
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("tgz")) =>
                {
                    let bytes = read(&mut entry)?;
                    let sub = Chart::from_reader(bytes.as_slice())
                        .with_context(|| format!("packaged dependency {path}"))?;
                    dependencies.push(Packaged {
                        name: sub.name,
                        version: sub.version,
                        sha256: crate::digest::sha256_hex(&bytes),
                    });
                }
                ["charts", dir, rest @ ..] if !rest.is_empty() => {
                    let bytes = read(&mut entry)?;
                    let slot = sub_dirs.entry((*dir).to_owned()).or_default();
                    if rest == ["Chart.yaml"] {
                        slot.0 = Some(String::from_utf8_lossy(&bytes).into_owned());
                    }
                    slot.1.update(rest.join("/").as_bytes());
                    slot.1.update(&bytes);
                }
                ["templates", ..] => {
                    let text = String::from_utf8_lossy(&read(&mut entry)?).into_owned();
                    if calls_lookup(&text) {
                        lookups.push(inner.join("/"));
                    }
                }
                _ => {}
            }
        }
        dependencies.extend(unpacked_dependencies(sub_dirs)?);
        let text = chart_yaml
            .ok_or_else(|| anyhow::anyhow!("the archive has no NAME/Chart.yaml"))
            .hint("a chart archive is what `helm package` writes")?;
        let meta: ChartYaml = crate::yaml::from_str(&text, Path::new("Chart.yaml"))?;
        dependencies.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        let locked = match chart_lock {
            Some(text) => locked_versions(&text)?,
            None => std::collections::BTreeMap::new(),
        };
        Ok(Chart {
            name: meta.name,
            version: meta.version,
            default_values,
            declared: meta.dependencies,
            dependencies,
            lookups,
            locked,
        })
    }

    /// The declared dependencies its `charts/` does not hold (`helm template` needs every one,
    /// enabled or not).
    pub fn missing(&self) -> Vec<&Declared> {
        self.declared
            .iter()
            .filter(|d| !self.dependencies.iter().any(|p| p.name == d.name))
            .collect()
    }

    /// Unpack the archive into `dir` (the chart lands in `dir/<name>/`); the chart's path.
    pub fn unpack(archive: &Path, dir: &Path, name: &str) -> Result<std::path::PathBuf> {
        let file = std::fs::File::open(archive)
            .with_context(|| format!("opening {}", archive.display()))?;
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(dir)
            .with_context(|| format!("unpacking {}", archive.display()))?;
        let chart = dir.join(name);
        if !chart.join("Chart.yaml").is_file() {
            anyhow::bail!("{}: no {name}/Chart.yaml", archive.display());
        }
        Ok(chart)
    }
}

/// The dependencies packaged as directories (`charts/NAME/`), from each one's Chart.yaml text
/// and the digest of its files.
fn unpacked_dependencies(
    dirs: std::collections::BTreeMap<String, (Option<String>, crate::digest::Hasher)>,
) -> Result<Vec<Packaged>> {
    let mut out = Vec::new();
    for (dir, (chart_yaml, hasher)) in dirs {
        let Some(text) = chart_yaml else { continue };
        let meta: ChartYaml =
            crate::yaml::from_str(&text, Path::new(&format!("charts/{dir}/Chart.yaml")))?;
        out.push(Packaged {
            name: meta.name,
            version: meta.version,
            sha256: hasher.finish_hex(),
        });
    }
    Ok(out)
}

/// The exact versions a `Chart.lock` records, by dependency name.
fn locked_versions(text: &str) -> Result<std::collections::BTreeMap<String, String>> {
    Ok(
        crate::yaml::from_str::<ChartLock>(text, Path::new("Chart.lock"))?
            .dependencies
            .into_iter()
            .map(|d| (d.name, d.version))
            .collect(),
    )
}

/// Whether template text calls Helm's `lookup` function.
fn calls_lookup(text: &str) -> bool {
    text.split("{{").skip(1).any(|action| {
        let action = action.split("}}").next().unwrap_or_default();
        action
            .split(|c: char| c.is_whitespace() || c == '(' || c == '|')
            .any(|word| word == "lookup")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_calls_are_found_in_actions_only() {
        assert!(calls_lookup(
            r#"{{- $s := (lookup "v1" "Secret" .Release.Namespace "x") }}"#
        ));
        assert!(calls_lookup(r#"{{ if lookup "v1" "Namespace" "" "a" }}"#));
        assert!(!calls_lookup(
            "# lookup is mentioned in a comment\n{{ .Values.lookupName }}"
        ));
    }
}
