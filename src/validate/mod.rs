//! Offline validation of rendered objects before any cluster sees them: built-in kinds against
//! the API schemas of the cluster's Kubernetes minor version, custom resources against the CRDs
//! of every package, retired API versions against the table in `apis`. Each finding names the
//! package, environment, object, field path, what the schema expected, and the overlay
//! operation that wrote the field (from the history `render --explain` keeps).

pub mod apis;
mod builtin;
pub mod crd;
pub mod schema;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use anyhow::{Context as _, Result};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::HintExt;
pub use crate::kube_version::KubeVersion;
use crate::manifest::Manifest;
use crate::object::{Object, ObjectRef};
use crate::overlay::{Edit, Tracked};
use crate::render::{self, RenderedPackage};
use builtin::Builtin;
pub use crd::CrdIndex;
use crd::Lookup;
use schema::Arena;

// ---------------------------------------------------------------------------------------------
// Kubernetes versions.
// ---------------------------------------------------------------------------------------------

/// The minor versions kpin has API schemas for, oldest first.
pub fn supported_versions() -> Vec<KubeVersion> {
    builtin::versions()
}

/// The version used when neither kpin.yaml nor the command line names one: the newest kpin
/// has schemas for (lenient about new fields, strict about removed APIs).
pub fn default_version() -> KubeVersion {
    supported_versions()
        .last()
        .copied()
        .unwrap_or(KubeVersion { major: 1, minor: 0 })
}

/// The version an environment validates against: the command line's, the environment's, the
/// manifest's, else `default_version()`.
pub fn version_for(
    manifest: &Manifest,
    env: Option<&str>,
    override_version: Option<KubeVersion>,
) -> KubeVersion {
    override_version
        .or_else(|| {
            env.and_then(|e| manifest.environments.get(e))
                .and_then(|e| e.kubernetes_version)
        })
        .or(manifest.kubernetes_version)
        .unwrap_or_else(default_version)
}

// ---------------------------------------------------------------------------------------------
// Findings.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// The API server would refuse the object: the command stops (exit 2).
    Error,
    /// Works today, needs attention (a deprecated API version).
    Warning,
    /// Could not be checked (a custom kind whose CRD no package renders).
    Note,
}

/// Which check a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    /// A field the schema does not declare.
    UnknownField,
    /// A value of another type than the schema's.
    WrongType,
    /// A required field is missing.
    MissingRequired,
    /// A value outside the schema's enum.
    NotInEnum,
    /// Two items of a list-map (or set) with the same key.
    DuplicateItem,
    /// A number, length or item count outside the schema's bounds.
    OutOfRange,
    /// The API version is no longer served by this Kubernetes version.
    RemovedApi,
    /// The API version is deprecated in this Kubernetes version.
    DeprecatedApi,
    /// Neither Kubernetes nor any CRD serves this API version of the kind.
    UnservedVersion,
    /// A custom kind with no CRD in any package.
    NotValidated,
}

/// One thing validation found about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub check: Check,
    pub package: String,
    /// Environments whose render has this finding; empty for the render without `--env`.
    pub environments: Vec<String>,
    pub object: ObjectRef,
    pub api_version: String,
    /// Field path as `render --explain` prints it; `None` for the object as a whole.
    pub path: Option<String>,
    /// What is there.
    pub found: String,
    /// What the schema (or the cluster version) expects.
    pub expected: String,
    /// The overlay operation that wrote the field (`overlays/x.yaml operations[2] (mergePatch)`).
    pub written_by: Option<String>,
}

impl fmt::Display for Finding {
    /// `pkg (env prod): Deployment ns/name: spec.replica: unknown field `replica`, expected
    /// ...; written by overlays/x.yaml operations[0] (mergePatch)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.package)?;
        match self.environments.as_slice() {
            [] => {}
            [one] => write!(f, " (env {one})")?,
            many => write!(f, " (envs {})", many.join(", "))?,
        }
        write!(f, ": {}", self.object)?;
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.found)?;
        if !self.expected.is_empty() {
            write!(f, ", expected {}", self.expected)?;
        }
        if let Some(origin) = &self.written_by {
            write!(f, "; written by {origin}")?;
        }
        Ok(())
    }
}

impl Finding {
    pub fn to_json(&self) -> Value {
        let written_by = self.written_by.as_ref().map(|origin| {
            let (overlay, operation) = crate::overlay::split_origin(origin);
            json!({"overlay": overlay, "operation": operation, "origin": origin})
        });
        json!({
            "severity": self.severity,
            "check": self.check,
            "package": self.package,
            "environments": self.environments,
            "object": {
                "apiVersion": self.api_version,
                "kind": self.object.kind,
                "namespace": self.object.namespace,
                "name": self.object.name,
            },
            "path": self.path,
            "found": self.found,
            "expected": self.expected,
            "writtenBy": written_by,
            "message": self.to_string(),
        })
    }
}

/// Everything validation found, over one or more environments.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The Kubernetes version each validated render was checked against (`default` for the
    /// render without `--env`).
    pub versions: BTreeMap<String, KubeVersion>,
    /// Objects checked, summed over environments.
    pub objects: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// Add another environment's report; a finding already reported for another environment
    /// gains this one instead of repeating.
    pub fn merge(&mut self, other: Report) {
        self.versions.extend(other.versions);
        self.objects += other.objects;
        let same = |a: &Finding, b: &Finding| {
            (a.severity, a.check) == (b.severity, b.check)
                && (&a.package, &a.object, &a.path) == (&b.package, &b.object, &b.path)
                && (&a.found, &a.expected, &a.written_by) == (&b.found, &b.expected, &b.written_by)
        };
        for f in other.findings {
            match self.findings.iter_mut().find(|g| same(g, &f)) {
                Some(g) => {
                    for e in f.environments {
                        if !g.environments.contains(&e) {
                            g.environments.push(e);
                        }
                    }
                }
                None => self.findings.push(f),
            }
        }
    }

    /// `Kubernetes 1.31` or `Kubernetes 1.31 (dev, prod), 1.32 (qa)`.
    pub fn versions_text(&self) -> String {
        let mut by_version: BTreeMap<KubeVersion, Vec<&str>> = BTreeMap::new();
        for (env, v) in &self.versions {
            by_version.entry(*v).or_default().push(env);
        }
        let parts: Vec<String> = if by_version.len() <= 1 {
            by_version.keys().map(ToString::to_string).collect()
        } else {
            by_version
                .iter()
                .map(|(v, envs)| format!("{v} ({})", envs.join(", ")))
                .collect()
        };
        format!("Kubernetes {}", parts.join(", "))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.count(Severity::Error) == 0,
            "kubernetesVersions": self.versions,
            "schemas": builtin::source(),
            "objects": self.objects,
            "errors": self.count(Severity::Error),
            "warnings": self.count(Severity::Warning),
            "notValidated": self.count(Severity::Note),
            "findings": self.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
        })
    }

    /// One line per finding, `error: ...`, `warning: ...`, `not validated: ...`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let label = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "not validated",
            };
            let _ = writeln!(out, "{label}: {f}");
        }
        out
    }

    /// The block a pull-request comment opens with: nothing when there is nothing to say.
    pub fn to_markdown(&self) -> String {
        if self.findings.is_empty() {
            return String::new();
        }
        let esc = |s: &str| s.replace('|', "\\|").replace('<', "&lt;");
        let errors = self.count(Severity::Error);
        let mut out = String::new();
        let (kind, title) = if errors > 0 {
            (
                "CAUTION",
                format!(
                    "{errors} error{}, the API server would refuse these objects",
                    if errors == 1 { "" } else { "s" }
                ),
            )
        } else {
            ("WARNING", "validation warnings".to_owned())
        };
        let _ = writeln!(
            out,
            "> [!{kind}]\n> **Validation against {}: {title}**\n",
            self.versions_text()
        );
        out.push_str(
            "| | Package | Object | Field | Problem | Written by |\n|---|---|---|---|---|---|\n",
        );
        for f in &self.findings {
            let icon = match f.severity {
                Severity::Error => "❌",
                Severity::Warning => "⚠️",
                Severity::Note => "➖",
            };
            let envs = if f.environments.is_empty() {
                String::new()
            } else {
                format!(" ({})", f.environments.join(", "))
            };
            let problem = if f.expected.is_empty() {
                f.found.clone()
            } else {
                format!("{}, expected {}", f.found, f.expected)
            };
            let _ = writeln!(
                out,
                "| {icon} | `{}`{} | {} | {} | {} | {} |",
                f.package,
                esc(&envs),
                esc(&f.object.to_string()),
                f.path
                    .as_deref()
                    .map(|p| format!("`{p}`"))
                    .unwrap_or_default(),
                esc(&problem),
                f.written_by.as_deref().map(esc).unwrap_or_default()
            );
        }
        out.push('\n');
        out
    }

    /// An error listing the errors (exit 2), or `Ok` when there are none.
    pub fn into_result(self, what: &str) -> Result<Report> {
        let errors: Vec<String> = self.errors().map(|f| format!("  - {f}")).collect();
        if errors.is_empty() {
            return Ok(self);
        }
        Err(anyhow::Error::new(ValidationFailed {
            message: format!(
                "{} validation error{} in the rendered objects ({}); {what}:\n{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                self.versions_text(),
                errors.join("\n")
            ),
        }))
        .hint(format!("{FIX_HINT}; `--no-validate` skips validation"))
    }
}

/// Rendered objects the API server would refuse.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ValidationFailed {
    pub message: String,
}

const FIX_HINT: &str =
    "fix the overlay operation named on each line (`kpin render --explain` shows what it changed)";

/// The error of a command that printed its findings already (`verify`, `diff --base`).
pub fn failed_as_listed(errors: usize) -> anyhow::Error {
    anyhow::Error::new(ValidationFailed {
        message: format!(
            "{errors} validation error{}: the API server would refuse these objects (listed above)",
            if errors == 1 { "" } else { "s" }
        ),
    })
    .hint(FIX_HINT)
}

// ---------------------------------------------------------------------------------------------
// Validating.
// ---------------------------------------------------------------------------------------------

/// Validate packages rendered for `env` against `version`. CRDs come from these packages and,
/// when a custom kind needs one, from the manifest's other packages rendered for `env`.
pub fn validate_rendered(
    manifest: &Manifest,
    env: Option<&str>,
    rendered: &[&RenderedPackage],
    version: KubeVersion,
) -> Result<Report> {
    let mut crds = CrdIndex::default();
    for p in rendered {
        crds.add(&p.name, &p.objects);
    }
    let builtin = load(version)?;
    let needs_more = rendered.iter().flat_map(|p| &p.objects).any(|o| {
        !builtin.is_builtin_group(o.group())
            && apis::lookup(o.api_version(), o.kind()).is_none()
            && !crds.knows(o.group(), o.kind())
    });
    if needs_more {
        for package in manifest.packages.values() {
            if rendered.iter().any(|r| r.name == package.name) {
                continue;
            }
            let other = render::render_package(manifest, package, env).with_context(|| {
                format!(
                    "rendering {} for the CRDs other packages' objects use",
                    package.name
                )
            })?;
            crds.add(&package.name, &other.objects);
        }
    }
    let packages: Vec<(&str, &[Object])> = rendered
        .iter()
        .map(|p| (p.name.as_str(), p.objects.as_slice()))
        .collect();
    let mut report = check_packages(&packages, env, version, &mut crds)?;
    for package in rendered {
        let mut findings: Vec<&mut Finding> = report
            .findings
            .iter_mut()
            .filter(|f| f.package == package.name && f.severity != Severity::Note)
            .collect();
        if !findings.is_empty() {
            attach_provenance(manifest, package, env, &mut findings)?;
        }
    }
    Ok(report)
}

/// A Kubernetes version kpin has no schemas for (callers tell it apart from render errors).
#[derive(Debug, thiserror::Error)]
#[error("kpin has no API schemas for Kubernetes {0}")]
pub struct UnsupportedVersion(pub KubeVersion);

fn load(version: KubeVersion) -> Result<Builtin> {
    Builtin::load(version)
        .ok_or_else(|| anyhow::Error::new(UnsupportedVersion(version)))
        .hint(format!(
            "supported versions: {}; set `kubernetesVersion` in kpin.yaml or pass --kubernetes-version",
            supported_versions()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
}

/// Check the objects of `packages` (name, objects) rendered for `env` against `version`, with
/// the CRDs in `crds`; no provenance (see `validate_rendered`).
pub fn check_packages(
    packages: &[(&str, &[Object])],
    env: Option<&str>,
    version: KubeVersion,
    crds: &mut CrdIndex,
) -> Result<Report> {
    let mut builtin = load(version)?;
    let mut arena = Arena::default();
    let meta = builtin.definition(&mut arena, builtin::OBJECT_META);
    let mut checker = Checker {
        builtin: &mut builtin,
        arena: &mut arena,
        crds,
        meta,
        version,
    };
    let mut report = Report {
        versions: BTreeMap::from([(env.unwrap_or(render::DEFAULT_ENV).to_owned(), version)]),
        ..Report::default()
    };
    for (name, objects) in packages {
        for object in *objects {
            for (check, severity, path, found, expected) in checker.object(object) {
                report.findings.push(Finding {
                    severity,
                    check,
                    package: (*name).to_owned(),
                    environments: env.map(|e| vec![e.to_owned()]).unwrap_or_default(),
                    object: object.reference(),
                    api_version: object.api_version().to_owned(),
                    path,
                    found,
                    expected,
                    written_by: None,
                });
            }
        }
        report.objects += objects.len();
    }
    Ok(report)
}

/// Render `packages` (all when empty) for each of `envs` and validate each render.
pub fn validate_manifest(
    manifest: &Manifest,
    packages: &[String],
    envs: &[Option<String>],
    override_version: Option<KubeVersion>,
) -> Result<Report> {
    for env in envs {
        load(version_for(manifest, env.as_deref(), override_version))?;
    }
    let mut report = Report::default();
    for env in envs {
        let env = env.as_deref();
        let rendered = manifest
            .select_in(packages, env)?
            .iter()
            .map(|p| render::render_package(manifest, p, env))
            .collect::<Result<Vec<_>>>()?;
        let version = version_for(manifest, env, override_version);
        let refs: Vec<&RenderedPackage> = rendered.iter().collect();
        report.merge(validate_rendered(manifest, env, &refs, version)?);
    }
    Ok(report)
}

type Raw = (Check, Severity, Option<String>, String, String);

struct Checker<'a> {
    builtin: &'a mut Builtin,
    arena: &'a mut Arena,
    crds: &'a mut CrdIndex,
    meta: Option<schema::Id>,
    version: KubeVersion,
}

impl Checker<'_> {
    fn object(&mut self, object: &Object) -> Vec<Raw> {
        let (api_version, kind) = (object.api_version(), object.kind());
        let at_api_version = Some("apiVersion".to_owned());
        let mut out = Vec::new();
        match apis::status(api_version, kind, self.version) {
            Some(apis::Status::Removed(r)) => {
                out.push((
                    Check::RemovedApi,
                    Severity::Error,
                    at_api_version,
                    format!(
                        "{api_version} {kind} is no longer served (removed in Kubernetes {})",
                        r.removed_in.unwrap_or(self.version)
                    ),
                    r.replacement.to_owned(),
                ));
                return out;
            }
            Some(apis::Status::Deprecated(r)) => out.push((
                Check::DeprecatedApi,
                Severity::Warning,
                at_api_version.clone(),
                match r.removed_in {
                    Some(removed) => format!(
                        "{api_version} {kind} is deprecated since Kubernetes {} and removed in {removed}",
                        r.deprecated_in
                    ),
                    None => format!(
                        "{api_version} {kind} is deprecated since Kubernetes {}",
                        r.deprecated_in
                    ),
                },
                r.replacement.to_owned(),
            )),
            None => {}
        }
        let group = object.group();
        let mut violations = Vec::new();
        if self.builtin.is_builtin_group(group) || apis::lookup(api_version, kind).is_some() {
            if let Some(id) = self.builtin.kind(self.arena, api_version, kind) {
                schema::validate_value(self.arena, id, &object.0, "", self.meta, &mut violations);
            } else {
                let served = self.builtin.versions_of(group, kind);
                out.push((
                    Check::UnservedVersion,
                    Severity::Error,
                    at_api_version,
                    format!("Kubernetes {} serves no {api_version} {kind}", self.version),
                    if served.is_empty() {
                        "a kind this Kubernetes version serves".to_owned()
                    } else {
                        served.join(" or ")
                    },
                ));
            }
        } else {
            match self.crds.lookup(self.arena, api_version, kind) {
                Lookup::Schema { id, .. } => {
                    schema::validate_resource(
                        self.arena,
                        id,
                        &object.0,
                        self.meta,
                        &mut violations,
                    );
                }
                Lookup::NoSchema { .. } => {}
                Lookup::NotServed { package, served } => out.push((
                    Check::UnservedVersion,
                    Severity::Error,
                    at_api_version,
                    format!("the {kind} CRD (package {package}) does not serve {api_version}"),
                    if served.is_empty() {
                        "a served version".to_owned()
                    } else {
                        served.join(" or ")
                    },
                )),
                Lookup::Unknown => out.push((
                    Check::NotValidated,
                    Severity::Note,
                    None,
                    format!("no package renders a CRD for {group} {kind}: not validated"),
                    String::new(),
                )),
            }
        }
        out.extend(
            violations
                .into_iter()
                .map(|v| (v.check, Severity::Error, Some(v.path), v.found, v.expected)),
        );
        out
    }
}

/// Name, for each finding, the overlay operation that last wrote its field: render the package
/// again with the history `render --explain` keeps (only packages with findings pay for it).
fn attach_provenance(
    manifest: &Manifest,
    rendered: &RenderedPackage,
    env: Option<&str>,
    findings: &mut [&mut Finding],
) -> Result<()> {
    let Some(package) = manifest.packages.get(&rendered.name) else {
        return Ok(());
    };
    let explained = match &rendered.explanation {
        Some(_) => rendered.clone(),
        None => render::render_package_with(manifest, package, env, true)?,
    };
    let history = explained.explanation.unwrap_or_default();
    for f in findings {
        if let Some(t) = history.iter().find(|t| {
            t.object.reference() == f.object && !t.effects.iter().any(|c| c.edit == Edit::Removed)
        }) {
            f.written_by = writer(t, f.path.as_deref());
        }
    }
    Ok(())
}

/// The last operation that changed `path` (or the field above or below it), else the one that
/// added the object.
fn writer(tracked: &Tracked, path: Option<&str>) -> Option<String> {
    let covers = |changed: &str, path: &str| {
        let under = |a: &str, b: &str| {
            a == b || (a.starts_with(b) && matches!(a.as_bytes().get(b.len()), Some(b'.' | b'[')))
        };
        changed.is_empty() || under(path, changed) || under(changed, path)
    };
    let modified = path.and_then(|path| {
        tracked.effects.iter().rev().find(|c| match &c.edit {
            Edit::Modified(paths) => paths.iter().any(|p| covers(p, path)),
            _ => false,
        })
    });
    modified
        .or_else(|| tracked.effects.iter().find(|c| c.edit == Edit::Added))
        .map(|c| c.origin.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_people_write_them() {
        let v = |minor| KubeVersion { major: 1, minor };
        assert_eq!(KubeVersion::parse("1.31"), Ok(v(31)));
        assert_eq!(KubeVersion::parse("v1.33"), Ok(v(33)));
        assert_eq!(KubeVersion::parse("1.30.4"), Ok(v(30)));
        for bad in ["1", "1.x", "2.1", "1.31.4.1", "", "1.31-rc"] {
            assert!(KubeVersion::parse(bad).is_err(), "{bad}");
        }
        assert!(v(9) < v(31));
        assert_eq!(v(31).to_string(), "1.31");
    }

    #[test]
    fn the_writer_is_the_last_operation_touching_the_field() {
        use crate::overlay::Effect;
        let t = Tracked {
            object: Object(json!({})),
            upstream: None,
            effects: vec![
                Effect {
                    origin: "a.yaml operations[0] (mergePatch)".into(),
                    edit: Edit::Modified(vec!["spec.template".into()]),
                },
                Effect {
                    origin: "b.yaml operations[1] (jsonPatch)".into(),
                    edit: Edit::Modified(vec!["spec.replicas".into()]),
                },
            ],
        };
        let w = |p| writer(&t, Some(p));
        assert_eq!(
            w("spec.template.spec.containers[0].x").as_deref(),
            Some("a.yaml operations[0] (mergePatch)")
        );
        assert_eq!(
            w("spec.replicas").as_deref(),
            Some("b.yaml operations[1] (jsonPatch)")
        );
        assert_eq!(w("spec.replicasx"), None);
        assert_eq!(w("spec"), Some("b.yaml operations[1] (jsonPatch)".into()));
    }
}
