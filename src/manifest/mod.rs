//! `kpin.yaml`: the dependency manifest, parsed at the edge from `RawManifest` into the
//! validated `Manifest` every other module works with.

mod edit;

pub use crate::fsutil::{check_path_segment, check_relative_path};
pub use crate::version::{VERSION_PLACEHOLDER, Version, expand, lenient_semver, version_from_tag};
pub use edit::{
    edit_env_version, edit_manifest_version, install_in, normalise_versions, set_env_version,
    set_package_version,
};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest;
use crate::error::{HintExt, abbreviate, quote};
use crate::fetch::github;
use crate::fetch::source::{self, Listing, Source, VersionFeed};
use crate::fsutil;
use crate::kube_version::KubeVersion;
use crate::yaml;

pub const MANIFEST_FILE: &str = "kpin.yaml";
pub const LOCK_FILE: &str = "kpin.lock";
pub const DEFAULT_VENDOR_DIR: &str = "vendor";
/// How kpin.lock and reports name the render without `--env`.
pub const DEFAULT_ENV: &str = "default";

// ---------------------------------------------------------------------------------------------
// Raw form: exactly what users write. `deny_unknown_fields` everywhere so typos are errors.
// ---------------------------------------------------------------------------------------------

/// The `kpin.yaml` file as written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    title = "kpin.yaml",
    description = "Third-party Kubernetes YAML releases pinned, vendored, patched and applied by kpin."
)]
pub struct RawManifest {
    /// Directory for vendored releases, relative to kpin.yaml. Default: `vendor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_dir: Option<String>,
    /// Kubernetes minor version of the clusters (`"1.31"`): rendered objects are validated
    /// against its API schemas and retired API versions. Default: the newest kpin knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub kubernetes_version: Option<Value>,
    /// Target environments (clusters), e.g. dev, qa, prod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, RawEnvironment>,
    /// The order versions travel through the environments, e.g. `[dev, qa, prod]`:
    /// `kpin promote PACKAGE --to prod` gives prod the version qa runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotion: Vec<String>,
    /// The pinned packages, by name. The name becomes the directory `vendor/<name>/`.
    #[serde(default)]
    pub packages: BTreeMap<String, RawPackage>,
}

/// One environment (cluster).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEnvironment {
    /// kubeconfig context this environment must use; `kpin apply --env` refuses any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Overlay files applied to every package in this environment, after the package's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<String>,
    /// Kubernetes minor version of this environment's cluster, when it differs from the
    /// top-level `kubernetesVersion` (e.g. during a cluster upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub kubernetes_version: Option<Value>,
}

/// One package: a pinned version and where its release files come from.
///
/// Exactly one source is given, with the keys of its kind (`fetch::source::KINDS`: `url`,
/// `urls`, `github`, `path`, `chart`); they are read by the kind, not by this struct.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPackage {
    /// The pinned version. Substituted for `{version}` in URLs, tags and paths. Quote it when
    /// YAML would read it as a number (`"1.10"`).
    #[schemars(with = "String")]
    pub version: Value,
    /// Expected sha256 of the release file (a hex string), or of each file by name (a mapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<RawPins>,
    /// Move every object of the package into this namespace (shorthand for a namespace overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Overlay files applied in order, relative to kpin.yaml.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<String>,
    /// Extra settings per environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, RawPackageEnvironment>,
    /// Semver range `kpin outdated` and `kpin upgrade --all` stay within, e.g. `~1.11` or `^0.7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// Where `kpin outdated` looks for newer versions (needed for `url` and `path` sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<RawVersions>,
    /// Packages that `apply` and `diff` take before this one, e.g. one whose webhook or API
    /// service must run first. (CRDs and Namespaces of every package are applied first anyway.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
}

/// Per-environment settings of one package.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPackageEnvironment {
    /// The package's version in this environment, instead of the package's `version` (written
    /// by `kpin upgrade --env` and `kpin promote`). Quote it like `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub version: Option<Value>,
    /// Overlay files applied after the package's own overlays in this environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<String>,
    /// `false`: the package is not part of this environment yet; nothing of it is rendered,
    /// locked, diffed or applied there (`kpin add --env` writes it for the other
    /// environments; `kpin promote` removes it when the package reaches the environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<bool>,
}

/// Where to list upstream versions for sources that cannot list their own.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawVersions {
    /// List the releases of this GitHub repository (`owner/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<String>,
    /// Tag template that maps tags to versions. Default: `v{version}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// API base URL, for GitHub Enterprise or tests. Default: `https://api.github.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Consider prereleases too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prereleases: bool,
}

/// `sha256:` is a single digest or a map from file name to digest.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawPins {
    One(String),
    ByFile(BTreeMap<String, String>),
    /// Anything else (typically an unquoted all-digit digest YAML read as a number).
    #[schemars(skip)]
    Invalid(Value),
}

// ---------------------------------------------------------------------------------------------
// Validated form.
// ---------------------------------------------------------------------------------------------

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Path of kpin.yaml.
    pub path: PathBuf,
    /// Directory holding kpin.yaml; relative paths are resolved against it.
    pub root: PathBuf,
    pub vendor_dir: PathBuf,
    pub environments: BTreeMap<String, Environment>,
    /// Environments in the order versions are promoted through them (`promotion:`).
    pub promotion: Vec<String>,
    pub packages: BTreeMap<String, Package>,
    /// The clusters' Kubernetes minor version, when kpin.yaml names one.
    pub kubernetes_version: Option<KubeVersion>,
    /// Package names in dependency order (see `needs`).
    pub order: Vec<String>,
    /// A transaction's staging tree, laid out like vendor/: version directories staged there
    /// are read instead of vendor/'s, so `sync` and `upgrade` render what they are about to
    /// commit. `None` outside a transaction.
    pub staged: Option<PathBuf>,
    /// The parsed file, kept for tools that rewrite it (upgrade) and for schema checks.
    pub raw: RawManifest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    pub context: Option<String>,
    /// Overlay files (paths relative to the manifest root).
    pub overlays: Vec<String>,
    /// This environment's Kubernetes minor version, when it overrides the manifest's.
    pub kubernetes_version: Option<KubeVersion>,
}

#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    /// The version of the render without `--env` and of every environment without its own.
    pub version: Version,
    /// Environments that run another version (`environments.<env>.version`), by name.
    pub env_versions: BTreeMap<String, Version>,
    /// Environments the package is not part of (`environments.<env>.installed: false`).
    pub absent: BTreeSet<String>,
    pub source: Source,
    /// Expected digests by file name (a single `sha256:` string is keyed by the only file).
    pub pins: Pins,
    pub namespace: Option<String>,
    pub overlays: Vec<String>,
    pub env_overlays: BTreeMap<String, Vec<String>>,
    pub constraint: Option<semver::VersionReq>,
    pub versions: Option<VersionFeed>,
    /// Packages taken before this one by `apply` and `diff`.
    pub needs: Vec<String>,
    /// Digest of the entry fields that decide what is fetched for its own `version` (version,
    /// source, pins); each version's is on its `PackageVersion`.
    pub manifest_digest: String,
    /// `manifest_digest` of every version in use, by version: an environment's version is
    /// fetched from the same source, but the `sha256` pins belong to `version` only.
    fetch_digests: BTreeMap<String, String>,
}

impl Package {
    /// Whether `env` renders the package (`None`, the render without `--env`, always does).
    pub fn installed_in(&self, env: Option<&str>) -> bool {
        env.is_none_or(|e| !self.absent.contains(e))
    }

    /// The version `env` renders: its own, else the package's (`None`: without `--env`).
    pub fn version_in(&self, env: Option<&str>) -> &Version {
        env.and_then(|e| self.env_versions.get(e))
            .unwrap_or(&self.version)
    }

    /// Every version in use (the package's and the environments'), oldest first: each is
    /// vendored and locked.
    pub fn versions_in_use(&self) -> Vec<&Version> {
        let mut versions: Vec<&Version> = std::iter::once(&self.version)
            .chain(self.env_versions.values())
            .collect();
        versions.sort_by(|a, b| a.cmp_order(b));
        versions.dedup_by(|a, b| a.raw == b.raw);
        versions
    }

    /// The package at one of its versions: what is fetched, vendored and locked for it, with
    /// that version's fetch digest, and the `sha256` pins only when it is the package's own
    /// version.
    pub fn at_version(&self, version: &Version) -> PackageVersion {
        let own = version.raw == self.version.raw;
        PackageVersion {
            name: self.name.clone(),
            version: version.clone(),
            source: self.source.clone(),
            pins: if own { self.pins.clone() } else { Pins::None },
            manifest_digest: self
                .fetch_digests
                .get(&version.raw)
                .cloned()
                .unwrap_or_default(),
            versions: self.versions.clone(),
        }
    }

    /// The package at the version `env` renders (see `at_version`).
    pub fn for_env(&self, env: Option<&str>) -> PackageVersion {
        self.at_version(self.version_in(env))
    }
}

/// A package at one version (`Package::at_version`): the unit that is fetched, vendored and
/// locked. The kpin.yaml entry itself, with its environments and overlays, is [`Package`].
#[derive(Debug, Clone)]
pub struct PackageVersion {
    pub name: String,
    pub version: Version,
    pub source: Source,
    /// The `sha256` pins, when this is the package's own version.
    pub pins: Pins,
    /// Digest of the entry fields that decide what is fetched for this version.
    pub manifest_digest: String,
    /// Where newer versions are listed.
    pub versions: Option<VersionFeed>,
}

/// Expected file digests from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pins {
    None,
    /// The package has exactly one file and this is its digest.
    Single(String),
    ByFile(BTreeMap<String, String>),
}

impl Pins {
    pub fn for_file(&self, file: &str, file_count: usize) -> Option<&str> {
        match self {
            Pins::Single(d) if file_count == 1 => Some(d),
            Pins::None | Pins::Single(_) => None,
            Pins::ByFile(map) => map.get(file).map(String::as_str),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and validation.
// ---------------------------------------------------------------------------------------------

/// Find kpin.yaml in `start` or any parent directory, like cargo finds Cargo.toml.
pub fn discover(start: &Path) -> Result<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(MANIFEST_FILE);
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(anyhow::anyhow!(
        "could not find {MANIFEST_FILE} in {} or any parent directory",
        start.display()
    ))
    .hint("create one (see `kpin schema` for the format) or pass --manifest PATH")
}

impl Manifest {
    /// Every environment kpin.yaml declares, or the render without `--env` (`None`) when it
    /// declares none: what `kpin verify` validates.
    pub fn every_environment(&self) -> Vec<Option<String>> {
        if self.environments.is_empty() {
            vec![None]
        } else {
            self.environments.keys().cloned().map(Some).collect()
        }
    }

    /// Read and validate the manifest at `path`; `vendorDir` must resolve inside the project.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let manifest = Manifest::parse(&text, path)?;
        let vendor_dir = manifest.raw.vendor_dir.as_deref();
        manifest.resolve("vendorDir", vendor_dir.unwrap_or(DEFAULT_VENDOR_DIR))?;
        Ok(manifest)
    }

    /// Validate manifest text; `path` locates the file (and its directory the root).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let value: Value = yaml::from_str(text, path)?;
        // serde reads a struct from a list too (`a: [1.0.0]` would set `version`), so entries
        // that are not mappings are refused here, by name.
        for section in ["packages", "environments"] {
            let Some(Value::Object(entries)) = value.get(section) else {
                continue;
            };
            if let Some((name, entry)) = entries.iter().find(|(_, e)| e.is_array()) {
                return Err(anyhow::anyhow!(
                    "{} at `{section}.{name}`: expected a mapping, found {}",
                    path.display(),
                    yaml::shape(entry)
                ))
                .hint("see `kpin schema` for the keys of each entry");
            }
        }
        let raw_entries = match value.get("packages") {
            Some(Value::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        // Source keys belong to their kinds (`fetch::source::KINDS`), which read them from the
        // entry; `RawPackage` has the rest.
        let mut value = value;
        if let Some(Value::Object(entries)) = value.get_mut("packages") {
            for entry in entries.values_mut().filter_map(Value::as_object_mut) {
                for key in source::KINDS.iter().flat_map(|k| k.keys()) {
                    entry.remove(*key);
                }
            }
        }
        let raw: RawManifest = deserialize_with_path(value, path)?;
        let root = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let vendor_rel = raw
            .vendor_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_VENDOR_DIR.to_owned());
        check_relative_path(&vendor_rel)
            .with_context(|| format!("{}: vendorDir", path.display()))?;

        let mut environments = BTreeMap::new();
        for (name, env) in &raw.environments {
            check_name(name, "environment").with_context(|| {
                format!("{}: environments.{}", path.display(), abbreviate(name))
            })?;
            for (i, o) in env.overlays.iter().enumerate() {
                check_relative_path(o).with_context(|| {
                    format!("{}: environments.{name}.overlays[{i}]", path.display())
                })?;
            }
            let kubernetes_version = kubernetes_version(env.kubernetes_version.as_ref())
                .with_context(|| format!("reading {}: environments.{name}", path.display()))?;
            environments.insert(
                name.clone(),
                Environment {
                    name: name.clone(),
                    context: env.context.clone(),
                    overlays: env.overlays.clone(),
                    kubernetes_version,
                },
            );
        }

        let mut seen = std::collections::BTreeSet::new();
        for (i, name) in raw.promotion.iter().enumerate() {
            let at = || format!("{}: promotion[{i}]", path.display());
            if !environments.contains_key(name) {
                return Err(anyhow::anyhow!("{}: no environment `{name}`", at())).hint(format!(
                    "list environments declared under `environments:` ({})",
                    environments.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if !seen.insert(name) {
                return Err(anyhow::anyhow!("{}: `{name}` is listed twice", at()))
                    .hint("each environment has one place in the promotion order");
            }
        }

        let mut packages = BTreeMap::new();
        for (name, pkg) in &raw.packages {
            let entry = raw_entries.get(name).cloned().unwrap_or(Value::Null);
            let package = validate_package(name, pkg, &entry, &environments)
                .with_context(|| format!("{}: package {}", path.display(), quote(name)))?;
            packages.insert(name.clone(), package);
        }
        let order =
            dependency_order(&packages).with_context(|| format!("{}: `needs`", path.display()))?;

        let kubernetes_version = kubernetes_version(raw.kubernetes_version.as_ref())
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Manifest {
            order,
            kubernetes_version,
            path: path.to_path_buf(),
            vendor_dir: root.join(vendor_rel),
            root,
            environments,
            promotion: raw.promotion.clone(),
            packages,
            raw,
            staged: None,
        })
    }

    /// What sources resolve relative to.
    pub fn project(&self) -> source::Project<'_> {
        source::Project {
            manifest: &self.path,
            root: &self.root,
            kubernetes_version: self.kubernetes_version,
        }
    }

    /// The lockfile next to the manifest.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// `vendor/<package>/<version>` of a package at one version (see `version_dir`).
    pub fn package_vendor_dir(&self, package: &PackageVersion) -> PathBuf {
        self.version_dir(&package.name, &package.version.raw)
    }

    /// `vendor/<package>/<version>`, or its staged replacement while a transaction runs
    /// (see `staged`).
    pub fn version_dir(&self, package: &str, version: &str) -> PathBuf {
        if let Some(stage) = &self.staged {
            let staged = stage.join(package).join(version);
            if staged.is_dir() {
                return staged;
            }
        }
        self.vendor_dir.join(package).join(version)
    }

    /// The version every environment of `package` renders, by name, with the render without
    /// `--env` as `default`: what kpin.lock records under `environments`.
    pub fn environment_versions(&self, package: &Package) -> BTreeMap<String, String> {
        std::iter::once((DEFAULT_ENV.to_owned(), package.version.raw.clone()))
            .chain(self.renders_of(package).flatten().map(|e| {
                let v = package.version_in(Some(e));
                (e.to_owned(), v.raw.clone())
            }))
            .collect()
    }

    /// The renders `package` has: without `--env` (`None`), then each environment it is
    /// installed in.
    pub fn renders_of<'a>(&'a self, package: &'a Package) -> impl Iterator<Item = Option<&'a str>> {
        std::iter::once(None).chain(
            self.environments
                .keys()
                .map(String::as_str)
                .filter(|e| package.installed_in(Some(e)))
                .map(Some),
        )
    }

    /// `select`, keeping the packages `env` renders: a package named in `names` that is not
    /// installed there is an error.
    pub fn select_in(&self, names: &[String], env: Option<&str>) -> Result<Vec<&Package>> {
        let selected = self.select(names)?;
        if let Some(p) = selected
            .iter()
            .find(|p| !names.is_empty() && !p.installed_in(env))
        {
            let env = env.unwrap_or_default();
            return Err(anyhow::anyhow!(
                "package `{}` is not installed in {env} (`environments.{env}.installed: false` in {})",
                p.name,
                self.path.display()
            ))
            .hint(format!(
                "`kpin promote {} --to {env}` installs it there with the version the environment before runs",
                p.name
            ));
        }
        Ok(selected
            .into_iter()
            .filter(|p| p.installed_in(env))
            .collect())
    }

    /// A path that `field` of kpin.yaml names (an overlay, a local source), joined to the root
    /// after checking that it resolves inside the project, symlinks followed.
    pub fn resolve(&self, field: &str, relative: &str) -> Result<PathBuf> {
        fsutil::resolve_inside(&self.root, &self.root, relative)
            .with_context(|| format!("{}: {field}", self.path.display()))
    }

    /// Select packages by name; all when `names` is empty. Unknown names are errors. The
    /// result is in dependency order: a package comes after those it `needs`.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Package>> {
        if let Some(unknown) = names.iter().find(|n| !self.packages.contains_key(*n)) {
            return Err(anyhow::anyhow!(
                "no package {} in {}",
                quote(unknown),
                self.path.display()
            ))
            .hint(format!(
                "packages are: {}",
                self.packages.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(self
            .order
            .iter()
            .filter(|n| names.is_empty() || names.contains(n))
            .filter_map(|n| self.packages.get(n))
            .collect())
    }

    /// The named environment, or an error listing the known ones.
    pub fn environment(&self, name: &str) -> Result<&Environment> {
        self.environments.get(name).ok_or_else(|| {
            anyhow::anyhow!("no environment {} in {}", quote(name), self.path.display()).hint(
                if self.environments.is_empty() {
                    "declare it under `environments:` in kpin.yaml".to_owned()
                } else {
                    format!(
                        "environments are: {}",
                        self.environments
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            )
        })
    }
}

/// Package names in dependency order (those a package `needs` before it, otherwise by name);
/// an unknown name or a cycle is an error naming it.
fn dependency_order(packages: &BTreeMap<String, Package>) -> Result<Vec<String>> {
    // Depth first: a package goes out after everything it needs; meeting one again while it
    // is still `Visiting` means the path back to it is a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        name: &'a str,
        packages: &'a BTreeMap<String, Package>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
        out: &mut Vec<String>,
    ) -> Result<()> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| *p == name).unwrap_or(0);
                let mut cycle: Vec<&str> = path[start..].to_vec();
                cycle.push(name);
                bail!(
                    "packages need each other in a cycle: {}",
                    cycle.join(" -> ")
                );
            }
            None => {}
        }
        marks.insert(name, Mark::Visiting);
        path.push(name);
        if let Some(p) = packages.get(name) {
            let mut needs: Vec<&str> = p.needs.iter().map(String::as_str).collect();
            needs.sort_unstable();
            for n in needs {
                visit(n, packages, marks, path, out)?;
            }
        }
        path.pop();
        marks.insert(name, Mark::Done);
        out.push(name.to_owned());
        Ok(())
    }
    for p in packages.values() {
        if let Some(missing) = p.needs.iter().find(|n| !packages.contains_key(*n)) {
            return Err(anyhow::anyhow!(
                "package `{}` needs {}, which is not a package here",
                p.name,
                quote(missing)
            ))
            .hint(format!(
                "packages are: {}",
                packages.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut marks = BTreeMap::new();
    let mut out = Vec::with_capacity(packages.len());
    for name in packages.keys() {
        visit(name, packages, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// `kubernetesVersion:` as written: a quoted minor version. YAML reads `1.30` as the number
/// 1.3, so numbers are refused with the quoting hint rather than silently misread.
fn kubernetes_version(raw: Option<&Value>) -> Result<Option<KubeVersion>> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => KubeVersion::parse(text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("kubernetesVersion: {e}")),
        Some(Value::Number(n)) => Err(anyhow::anyhow!(
            "kubernetesVersion: YAML reads this as the number {n}, which loses digits (an unquoted 1.30 is 1.3)"
        ))
        .hint("quote the version: kubernetesVersion: \"1.30\""),
        Some(other) => bail!(
            "kubernetesVersion: expected a string such as \"1.31\", found a {}",
            yaml::json_type_name(other)
        ),
    }
}

/// Deserialize with the failing field's path in the message (`packages.x.urll`).
fn deserialize_with_path<T: serde::de::DeserializeOwned>(value: Value, path: &Path) -> Result<T> {
    if value.is_null() {
        return Err(anyhow::anyhow!(
            "{}: the file is empty or only has comments",
            path.display()
        ))
        .hint("start with `packages: {NAME: {version: X.Y.Z, url: https://...{version}...}}`; `kpin schema` lists every key");
    }
    yaml::expect_mapping(&value, path)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = abbreviate(&e.path().to_string());
        let mut inner = yaml::user_words(&e.into_inner().to_string());
        if field.starts_with("packages.") {
            inner = with_source_keys(&inner);
        }
        let at = if field == "." {
            String::new()
        } else {
            format!(" at `{field}`")
        };
        let err = anyhow::anyhow!("{}{at}: {inner}", path.display());
        if inner.starts_with("unknown field") {
            err.hint("see `kpin schema` for every accepted key")
        } else {
            err
        }
    })
}

/// One package of kpin.yaml checked and typed: each step below names the field it reads.
fn validate_package(
    name: &str,
    raw: &RawPackage,
    entry: &Value,
    environments: &BTreeMap<String, Environment>,
) -> Result<Package> {
    check_name(name, "package")?;
    let version = parse_version(&raw.version, "version")?;
    let source = package_source(name, raw, entry, &version)?;
    let pins = package_pins(raw, &source)?;
    if let Some(ns) = &raw.namespace {
        check_dns_label(ns).context("namespace")?;
    }
    for (i, o) in raw.overlays.iter().enumerate() {
        check_relative_path(o).with_context(|| format!("overlays[{i}]"))?;
    }
    let (env_overlays, env_versions, absent) = package_environments(raw, &source, environments)?;
    for env in source.environments() {
        if !environments.contains_key(env) {
            return Err(anyhow::anyhow!(
                "{}.environments.{}: no such environment",
                source.kind(),
                abbreviate(env)
            ))
            .hint(format!(
                "declare it at the top level: environments: {{{}: {{}}}}",
                abbreviate(env)
            ));
        }
    }
    let fetch_digests = fetch_digests(raw, entry)?;
    let constraint = raw
        .constraint
        .as_deref()
        .map(|c| {
            semver::VersionReq::parse(c)
                .with_context(|| format!("constraint: {} is not a semver range", quote(c)))
                .hint("examples: \"~1.11\", \"^0.7\", \">=2.0, <3\"")
        })
        .transpose()?;
    Ok(Package {
        name: name.to_owned(),
        manifest_digest: fetch_digests.get(&version.raw).cloned().unwrap_or_default(),
        fetch_digests,
        versions: version_feed(raw, &source)?,
        version,
        env_versions,
        source,
        pins,
        namespace: raw.namespace.clone(),
        overlays: raw.overlays.clone(),
        env_overlays,
        absent,
        constraint,
        needs: raw.needs.clone(),
    })
}

/// The source of a package entry: the keys of exactly one kind (`fetch::source::KINDS`), well
/// formed, with its placeholders.
fn package_source(
    name: &str,
    raw: &RawPackage,
    entry: &Value,
    version: &Version,
) -> Result<Source> {
    let empty = serde_json::Map::new();
    let fields = entry.as_object().unwrap_or(&empty);
    let Some((kind, fields)) = source::kind_of(fields)? else {
        return Err(anyhow::anyhow!(
            "no source: give one of {}",
            source::source_keys_text()
        ))
        .hint("e.g. url: https://github.com/OWNER/REPO/releases/download/v{version}/install.yaml");
    };
    let source = kind.parse(name, &fields, version)?;
    check_placeholders(&source)?;
    if raw.sha256.is_none() {
        check_depends_on_version(&source)?;
    }
    Ok(source)
}

/// `sha256:`: one digest for a one-file source, or one per file name.
fn package_pins(raw: &RawPackage, source: &Source) -> Result<Pins> {
    Ok(match &raw.sha256 {
        None => Pins::None,
        Some(RawPins::One(d)) => {
            let d = check_digest(d).context("sha256")?;
            if source.file_count() != Some(1) {
                return Err(anyhow::anyhow!(
                    "sha256: a single digest needs a source with exactly one file"
                ))
                .hint("pin each file by name: sha256: {deploy.yaml: <hex>, crds.yaml: <hex>}");
            }
            Pins::Single(d)
        }
        Some(RawPins::Invalid(v)) => {
            return Err(anyhow::anyhow!(
                "sha256: expected a hex string or a mapping of file name to hex string, found a {}",
                yaml::json_type_name(v)
            ))
            .hint("quote the digest: sha256: \"<64 hex characters>\"");
        }
        Some(RawPins::ByFile(map)) => {
            let mut out = BTreeMap::new();
            for (file, d) in map {
                out.insert(
                    file.clone(),
                    check_digest(d).with_context(|| format!("sha256.{}", abbreviate(file)))?,
                );
            }
            Pins::ByFile(out)
        }
    })
}

/// Overlays, versions and absences per environment, each environment declared at the top level.
type EnvSettings = (
    BTreeMap<String, Vec<String>>,
    BTreeMap<String, Version>,
    BTreeSet<String>,
);

/// `environments:` of a package: every environment declared at the top level, its overlay
/// paths relative, its version well formed.
fn package_environments(
    raw: &RawPackage,
    source: &Source,
    environments: &BTreeMap<String, Environment>,
) -> Result<EnvSettings> {
    let mut env_overlays = BTreeMap::new();
    let mut env_versions = BTreeMap::new();
    let mut absent = BTreeSet::new();
    for (env, settings) in &raw.environments {
        if !environments.contains_key(env) {
            return Err(anyhow::anyhow!(
                "environments.{}: no such environment",
                abbreviate(env)
            ))
            .hint(format!(
                "declare it at the top level: environments: {{{}: {{}}}}",
                abbreviate(env)
            ));
        }
        for (i, o) in settings.overlays.iter().enumerate() {
            check_relative_path(o)
                .with_context(|| format!("environments.{}.overlays[{i}]", abbreviate(env)))?;
        }
        env_overlays.insert(env.clone(), settings.overlays.clone());
        if let Some(v) = &settings.version {
            let v = parse_version(v, &format!("environments.{env}.version"))?;
            source
                .check_version(&v)
                .with_context(|| format!("environments.{env}.version"))?;
            env_versions.insert(env.clone(), v);
        }
        if settings.installed == Some(false) {
            if settings.version.is_some() {
                return Err(anyhow::anyhow!(
                    "environments.{}: `installed: false` and a `version` contradict each other",
                    abbreviate(env)
                ))
                .hint("remove `installed: false` to run that version there, or the version to leave the package out");
            }
            absent.insert(env.clone());
        }
    }
    Ok((env_overlays, env_versions, absent))
}

/// The fetch digest of every version the package uses, keyed by version text.
fn fetch_digests(raw: &RawPackage, entry: &Value) -> Result<BTreeMap<String, String>> {
    // The package's own version last: an environment that names the same version shares its
    // digest, pins included.
    let entry_versions = raw
        .environments
        .values()
        .filter_map(|e| e.version.as_ref())
        .map(|v| (v, false))
        .chain([(&raw.version, true)]);
    let mut digests = BTreeMap::new();
    for (value, own) in entry_versions {
        let text = parse_version(value, "version")?.raw;
        digests.insert(text, fetch_digest(entry, value, own));
    }
    Ok(digests)
}

/// Where `kpin outdated` / `upgrade` list versions: `versions:`, or the source's own listing.
fn version_feed(raw: &RawPackage, source: &Source) -> Result<Option<VersionFeed>> {
    let Some(v) = &raw.versions else {
        return Ok(source.version_feed());
    };
    let repo = v.github.clone().ok_or_else(|| {
        anyhow::anyhow!("versions.github: required (the repository whose releases list versions)")
    })?;
    Ok(Some(VersionFeed {
        listing: Listing::GithubReleases {
            repo,
            api_url: github::api_url(v.api_url.as_ref()),
        },
        tag: v
            .tag
            .clone()
            .unwrap_or_else(|| github::DEFAULT_TAG.to_owned()),
        prereleases: v.prereleases,
    }))
}

/// A version as written at `field`: a string, or an integer (`1`); never a float, which loses
/// digits.
fn parse_version(value: &Value, field: &str) -> Result<Version> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        Value::Number(n) => {
            let n = n.to_string();
            return Err(anyhow::anyhow!(
                "{field}: YAML reads {} as a number, which loses digits such as trailing zeros",
                quote(&n)
            ))
            .hint(if n.len() <= crate::error::QUOTE_CHARS {
                format!("quote it: version: \"{n}\"")
            } else {
                "quote it".to_owned()
            });
        }
        other => bail!(
            "{field}: expected a string, found a {}",
            yaml::json_type_name(other)
        ),
    };
    check_path_segment(&text).with_context(|| field.to_owned())?;
    Ok(Version::parse(&text))
}

/// Digest of the entry fields that decide what is fetched for `version` (as written), so
/// changing overlays does not force a re-download but changing the version, a URL or a pin
/// does. The pins count only for the package's own version (`own`), which they pin.
fn fetch_digest(entry: &Value, version: &Value, own: bool) -> String {
    let mut subset = serde_json::Map::new();
    subset.insert("version".to_owned(), version.clone());
    if let Value::Object(map) = entry {
        let pins = own.then_some("sha256");
        let source_keys = source::KINDS.iter().flat_map(|k| k.keys()).copied();
        for key in source_keys.chain(pins) {
            if let Some(v) = map.get(key) {
                subset.insert(key.to_owned(), v.clone());
            }
        }
    }
    digest::of_json(&Value::Object(subset))
}

fn check_placeholders(source: &Source) -> Result<()> {
    for t in source.templates() {
        let stripped = t.text.replace(VERSION_PLACEHOLDER, "");
        if let Some(start) = stripped.find('{') {
            let end = stripped[start..]
                .find('}')
                .map_or(stripped.len(), |e| start + e + 1);
            return Err(anyhow::anyhow!(
                "{}: unknown placeholder {}",
                quote(t.text),
                quote(&stripped[start..end])
            ))
            .hint("the only placeholder is {version}");
        }
    }
    Ok(())
}

/// A source whose address has no `{version}` fetches the same bytes for every version, so
/// `kpin upgrade` would vendor the old release under the new version's name. Only a `sha256:`
/// pin makes that deliberate (and an upgrade must then change the pin).
fn check_depends_on_version(source: &Source) -> Result<()> {
    let Some(t) = source
        .templates()
        .into_iter()
        .find(|t| t.addresses && !t.text.contains(VERSION_PLACEHOLDER))
    else {
        return Ok(());
    };
    Err(anyhow::anyhow!(
        "{}: {} has no {VERSION_PLACEHOLDER}, so every version would fetch the same files",
        t.field,
        quote(t.text)
    ))
    .hint(source.version_hint())
}

/// Names that become directory names: lowercase DNS-like, never a path.
pub fn check_name(name: &str, what: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && !name.contains("..");
    if !valid {
        return Err(anyhow::anyhow!("invalid {what} name {}", quote(name))).hint(
            "use lowercase letters, digits, '-', '_' and '.', starting with a letter or digit (it becomes a directory name)",
        );
    }
    Ok(())
}

pub fn check_dns_label(ns: &str) -> Result<()> {
    let valid = !ns.is_empty()
        && ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if !valid {
        bail!(
            "{} is not a valid namespace name (RFC 1123 label: lowercase letters, digits and '-')",
            quote(ns)
        );
    }
    Ok(())
}

fn check_digest(d: &str) -> Result<String> {
    let hex = d.strip_prefix("sha256:").unwrap_or(d).to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{} is not a sha256 digest (64 hex characters)", quote(d));
    }
    Ok(hex)
}

/// The JSON Schema of kpin.yaml, for editors: `RawManifest`'s, with each source kind's keys
/// in a package entry.
pub fn json_schema() -> Value {
    let mut generator = schemars::SchemaGenerator::default();
    let root = generator.root_schema_for::<RawManifest>();
    let mut kinds = Vec::new();
    for kind in source::KINDS {
        kinds.extend(kind.schema(&mut generator));
    }
    let mut schema = root.to_value();
    for (name, def) in generator.definitions() {
        schema["$defs"][name] = def.clone();
    }
    if let Some(Value::Object(props)) = schema.pointer_mut("/$defs/RawPackage/properties") {
        for (key, kind_schema) in kinds {
            props.insert(key.to_owned(), kind_schema);
        }
    }
    schema
}

/// serde's message for an unknown key of a package entry, with the source keys (read by the
/// kinds, not by `RawPackage`) listed after `version`.
fn with_source_keys(message: &str) -> String {
    let keys: Vec<String> = source::KINDS
        .iter()
        .flat_map(|k| k.keys())
        .map(|k| format!("`{k}`"))
        .collect();
    message.replacen(
        "expected one of `version`, ",
        &format!("expected one of `version`, {}, ", keys.join(", ")),
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, Path::new("/repo/kpin.yaml"))
    }

    #[test]
    fn kubernetes_versions_are_quoted_minors_per_manifest_and_environment() {
        let m = parse("kubernetesVersion: \"1.31\"\nenvironments:\n  dev: {kubernetesVersion: v1.33}\n  prod: {}\npackages: {}\n").unwrap();
        let v = |minor| Some(KubeVersion { major: 1, minor });
        assert_eq!(m.kubernetes_version, v(31));
        assert_eq!(m.environments["dev"].kubernetes_version, v(33));
        assert_eq!(m.environments["prod"].kubernetes_version, None);
        let text = err("kubernetesVersion: 1.30\npackages: {}\n");
        assert!(text.contains("YAML reads this as the number 1.3"), "{text}");
        assert!(text.contains("hint: quote the version"), "{text}");
        let text = err("environments:\n  dev: {kubernetesVersion: \"latest\"}\npackages: {}\n");
        assert!(text.contains("environments.dev"), "{text}");
        assert!(
            text.contains("`latest` is not a Kubernetes version"),
            "{text}"
        );
        let schema = json_schema().to_string();
        assert_eq!(
            schema.matches("\"kubernetesVersion\"").count(),
            2,
            "{schema}"
        );
    }

    fn err(text: &str) -> String {
        crate::error::format_error(&parse(text).unwrap_err())
    }

    #[test]
    fn minimal_form_from_the_issue() {
        let m = parse(
            "packages:\n  ingress-nginx:\n    version: 1.9.4\n    url: https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v{version}/deploy/static/provider/cloud/deploy.yaml\n",
        )
        .unwrap();
        let p = &m.packages["ingress-nginx"];
        assert_eq!(p.version.raw, "1.9.4");
        assert_eq!(p.version.semver, Some(semver::Version::new(1, 9, 4)));
        let url = p.source.downcast::<crate::fetch::url::UrlSource>().unwrap();
        assert!(expand(&url.templates[0], &p.version).contains("controller-v1.9.4/deploy"));
        assert_eq!(m.vendor_dir, Path::new("/repo/vendor"));
    }

    #[test]
    fn needs_orders_packages_and_a_cycle_or_unknown_name_is_an_error() {
        let m = parse(
            "packages:\n  a:\n    version: 1.0.0\n    url: https://x/{version}.yaml\n    needs: [c]\n  b:\n    version: 1.0.0\n    url: https://x/{version}.yaml\n  c:\n    version: 1.0.0\n    url: https://x/{version}.yaml\n",
        )
        .unwrap();
        let names = |selected: Vec<&Package>| -> Vec<String> {
            selected.iter().map(|p| p.name.clone()).collect()
        };
        assert_eq!(names(m.select(&[]).unwrap()), ["c", "a", "b"]);
        assert_eq!(
            names(m.select(&["b".into(), "a".into()]).unwrap()),
            ["a", "b"]
        );
        let e = err(
            "packages:\n  a:\n    version: 1.0.0\n    url: https://x/{version}.yaml\n    needs: [b]\n  b:\n    version: 1.0.0\n    url: https://x/{version}.yaml\n    needs: [a]\n",
        );
        assert!(e.contains("cycle: a -> b -> a"), "{e}");
        let e = err(
            "packages:\n  a:\n    version: 1.0.0\n    url: https://x/{version}.yaml\n    needs: [nope]\n",
        );
        assert!(e.contains("package `a` needs `nope`"), "{e}");
        assert!(e.contains("hint: packages are: a"), "{e}");
    }

    #[test]
    fn lenient_versions() {
        assert_eq!(
            lenient_semver("v0.0.31"),
            Some(semver::Version::new(0, 0, 31))
        );
        assert_eq!(
            lenient_semver("controller-v1.12.8"),
            Some(semver::Version::new(1, 12, 8))
        );
        assert_eq!(lenient_semver("1.2"), Some(semver::Version::new(1, 2, 0)));
        assert_eq!(lenient_semver("v1.0.0-rc.1").unwrap().pre.as_str(), "rc.1");
        assert_eq!(lenient_semver("latest"), None);
        assert_eq!(
            version_from_tag("controller-v{version}", "controller-v1.12.8").as_deref(),
            Some("1.12.8")
        );
        assert_eq!(version_from_tag("v{version}", "helm-chart-4.0.0"), None);
    }

    #[test]
    fn entries_and_files_that_are_not_mappings_say_so() {
        let e = err("packages:\n  a: [1.0.0]\n");
        assert!(
            e.contains("/repo/kpin.yaml at `packages.a`: expected a mapping, found a list"),
            "{e}"
        );
        let e = err("# soon\n");
        assert!(
            e.contains("/repo/kpin.yaml: the file is empty or only has comments"),
            "{e}"
        );
        let e = err("- packages\n");
        assert!(
            e.contains("/repo/kpin.yaml: expected a mapping at the top of the file, found a list"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_file() {
        let e = err(
            "packages:\n  a:\n    version: 1.0.0\n    url: https://x/{version}/a.yaml\n    urll: x\n",
        );
        assert!(
            e.contains("/repo/kpin.yaml at `packages.a.urll`: unknown field `urll`"),
            "{e}"
        );
        assert!(e.contains("hint: see `kpin schema`"), "{e}");
    }

    #[test]
    fn a_package_left_out_of_an_environment_renders_and_locks_nothing_there() {
        let text = "environments: {dev: {}, qa: {}}\npackages:\n  a:\n    version: 1.0.0\n    url: https://x/{version}/a.yaml\n    environments: {qa: {installed: false}}\n";
        let m = Manifest::parse(text, Path::new("/r/kpin.yaml")).unwrap();
        let a = &m.packages["a"];
        assert!(a.installed_in(None) && a.installed_in(Some("dev")) && !a.installed_in(Some("qa")));
        assert_eq!(m.renders_of(a).collect::<Vec<_>>(), [None, Some("dev")]);
        assert_eq!(
            m.environment_versions(a).keys().collect::<Vec<_>>(),
            ["default", "dev"]
        );
        assert!(m.select_in(&[], Some("qa")).unwrap().is_empty());
        let err = m.select_in(&["a".into()], Some("qa")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("package `a` is not installed in qa"),
            "{err}"
        );
        let both = text.replace("{installed: false}", "{installed: false, version: 2.0.0}");
        let err = Manifest::parse(&both, Path::new("/r/kpin.yaml")).unwrap_err();
        assert!(
            format!("{err:#}").contains("`installed: false` and a `version` contradict each other"),
            "{err:#}"
        );
    }

    #[test]
    fn package_names_cannot_escape_vendor() {
        for bad in ["../x", "a/b", "..", ".hidden", "A", "a\\b"] {
            let e = err(&format!(
                "packages:\n  '{bad}':\n    version: 1.0.0\n    url: https://x/{{version}}/a.yaml\n"
            ));
            assert!(e.contains("invalid package name"), "{bad}: {e}");
        }
        let e =
            err("packages:\n  a:\n    version: ../../etc\n    url: https://x/{version}/a.yaml\n");
        assert!(
            e.contains("cannot be used as a file or directory name"),
            "{e}"
        );
    }

    #[test]
    fn float_versions_need_quotes() {
        let e = err("packages:\n  a:\n    version: 1.10\n    url: https://x/{version}/a.yaml\n");
        assert!(e.contains("hint: quote it"), "{e}");
    }

    #[test]
    fn sources_are_exclusive_and_checked() {
        assert!(err("packages:\n  a:\n    version: '1'\n").contains("no source"));
        let e = err("packages:\n  a:\n    version: '1'\n    url: https://x\n    path: y\n");
        assert!(e.contains("more than one source"), "{e}");
        assert!(
            err("packages:\n  a:\n    version: '1'\n    url: ftp://x/a\n").contains("scheme `ftp`")
        );
        assert!(
            err("packages:\n  a:\n    version: '1'\n    url: https://x/{tag}/a\n")
                .contains("unknown placeholder `{tag}`")
        );
        assert!(
            err("packages:\n  a:\n    version: '1'\n    path: ../outside\n")
                .contains("relative path below")
        );
        assert!(err("packages:\n  a:\n    version: '1'\n    url: https://x/{version}/a\n    environments: {prod: {}}\n").contains("environments.prod: no such environment"));
    }

    #[test]
    fn a_source_must_depend_on_the_version_unless_pinned() {
        let e = err(
            "packages:\n  argo-cd:\n    version: 2.14.21\n    url: https://h/stable/install.yaml\n",
        );
        assert!(
            e.contains("url: `https://h/stable/install.yaml` has no {version}, so every version would fetch the same files"),
            "{e}"
        );
        assert!(
            e.contains("hint: put {version} where the release's version goes"),
            "{e}"
        );
        let e = err(
            "packages:\n  a:\n    version: '1'\n    urls:\n    - https://h/{version}/a.yaml\n    - https://h/b.yaml\n",
        );
        assert!(
            e.contains("urls[1]: `https://h/b.yaml` has no {version}"),
            "{e}"
        );
        let e = err("packages:\n  a:\n    version: '1'\n    path: mirror/a\n");
        assert!(e.contains("path: `mirror/a` has no {version}"), "{e}");
        let e = err(
            "packages:\n  a:\n    version: '1'\n    github: {repo: o/r, tag: latest, assets: [a.yaml]}\n",
        );
        assert!(e.contains("github.tag: `latest` has no {version}"), "{e}");
        // The default tag is v{version}; a pin makes a fixed address deliberate.
        assert!(
            parse("packages:\n  a:\n    version: '1'\n    github: {repo: o/r, assets: [a.yaml]}\n")
                .is_ok()
        );
        let pin = "0".repeat(64);
        assert!(parse(&format!("packages:\n  a:\n    version: '1'\n    url: https://h/a.yaml\n    sha256: \"{pin}\"\n")).is_ok());
    }

    #[test]
    fn github_source_defaults() {
        let m = parse("packages:\n  ms:\n    version: 0.7.2\n    github:\n      repo: kubernetes-sigs/metrics-server\n      assets: [components.yaml]\n    sha256: ab00000000000000000000000000000000000000000000000000000000000000\n").unwrap();
        let p = &m.packages["ms"];
        let gh = p.source.downcast::<github::GithubSource>().unwrap();
        assert_eq!(gh.tag, "v{version}");
        assert_eq!(gh.api_url, github::DEFAULT_GITHUB_API);
        assert_eq!(
            p.versions.as_ref().unwrap().origin(),
            "kubernetes-sigs/metrics-server"
        );
        assert!(matches!(p.pins, Pins::Single(_)));
    }

    const ENVS: &str = "environments: {dev: {}, qa: {}, prod: {}}\npromotion: [dev, qa, prod]\npackages:\n  a:\n    version: 1.9.4\n    url: https://x/{version}/a.yaml\n    sha256: ab00000000000000000000000000000000000000000000000000000000000000\n    environments:\n      dev: {version: 1.10.6}\n      qa: {version: 1.9.4}\n";

    #[test]
    fn environments_run_their_own_version_or_the_packages() {
        let m = parse(ENVS).unwrap();
        let a = &m.packages["a"];
        assert_eq!(m.promotion, ["dev", "qa", "prod"]);
        assert_eq!(a.version_in(Some("dev")).raw, "1.10.6");
        assert_eq!(a.version_in(Some("prod")).raw, "1.9.4");
        assert_eq!(a.version_in(None).raw, "1.9.4");
        let in_use: Vec<&str> = a.versions_in_use().iter().map(|v| v.raw.as_str()).collect();
        assert_eq!(in_use, ["1.9.4", "1.10.6"], "oldest first, once each");
        assert_eq!(
            m.environment_versions(a),
            BTreeMap::from([
                ("default".to_owned(), "1.9.4".to_owned()),
                ("dev".to_owned(), "1.10.6".to_owned()),
                ("prod".to_owned(), "1.9.4".to_owned()),
                ("qa".to_owned(), "1.9.4".to_owned()),
            ])
        );
        // The pins belong to the package's version; dev's view has none and its own digest.
        let dev = a.for_env(Some("dev"));
        assert_eq!(dev.version.raw, "1.10.6");
        assert_eq!(dev.pins, Pins::None);
        assert_ne!(dev.manifest_digest, a.manifest_digest);
        let qa = a.for_env(Some("qa"));
        assert!(matches!(qa.pins, Pins::Single(_)));
        assert_eq!(qa.manifest_digest, a.manifest_digest);
    }

    #[test]
    fn environment_versions_and_the_promotion_order_are_checked() {
        let e = err(&ENVS.replace("{version: 1.10.6}", "{version: 1.10}"));
        assert!(
            e.contains("environments.dev.version: YAML reads `1.1` as a number"),
            "{e}"
        );
        let e = err(&ENVS.replace("{version: 1.10.6}", "{version: ../x}"));
        assert!(e.contains("environments.dev.version"), "{e}");
        let e = err(&ENVS.replace("[dev, qa, prod]", "[dev, staging]"));
        assert!(e.contains("promotion[1]: no environment `staging`"), "{e}");
        assert!(e.contains("hint: list environments declared"), "{e}");
        let e = err(&ENVS.replace("[dev, qa, prod]", "[dev, qa, dev]"));
        assert!(e.contains("promotion[2]: `dev` is listed twice"), "{e}");
    }

    #[test]
    fn staged_version_directories_are_read_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::parse(ENVS, &dir.path().join("kpin.yaml")).unwrap();
        let stage = dir.path().join("vendor/.kpin-stage");
        std::fs::create_dir_all(stage.join("a/1.10.6")).unwrap();
        m.staged = Some(stage.clone());
        assert_eq!(m.version_dir("a", "1.10.6"), stage.join("a/1.10.6"));
        assert_eq!(
            m.version_dir("a", "1.9.4"),
            dir.path().join("vendor/a/1.9.4")
        );
    }

    #[test]
    fn fetch_digest_ignores_overlay_fields() {
        let a =
            parse("packages:\n  a:\n    version: '1'\n    url: https://x/{version}/a\n").unwrap();
        let b = parse(
            "packages:\n  a:\n    version: '1'\n    url: https://x/{version}/a\n    namespace: other\n",
        )
        .unwrap();
        let c =
            parse("packages:\n  a:\n    version: '2'\n    url: https://x/{version}/a\n").unwrap();
        assert_eq!(
            a.packages["a"].manifest_digest,
            b.packages["a"].manifest_digest
        );
        assert_ne!(
            a.packages["a"].manifest_digest,
            c.packages["a"].manifest_digest
        );
    }
}
