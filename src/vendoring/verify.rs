//! Whether kpin.lock is current for kpin.yaml, its environments and its renders, and if not,
//! why; and whether vendor/ holds what it locks. The one place `kpin verify`, `sync --locked`,
//! `--locked` on render/diff/apply/status and `apply`'s warning ask; every problem is listed
//! rather than stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::{DriftError, HintExt};
use crate::fetch;
use crate::manifest::{DEFAULT_ENV, Manifest, Package, PackageVersion};
use crate::render::{self, RenderedPackage};
use crate::vendoring::lockfile::{LOCK_FORMAT, LockedPackage, LockedVersion, Lockfile};
use crate::vendoring::vendor::{self, Difference, Extra};

/// One disagreement between kpin.yaml, kpin.lock and vendor/.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Problem {
    /// There is no kpin.lock.
    LockMissing,
    /// A package of kpin.yaml has no lock entry.
    PackageNotLocked { package: String },
    /// The kpin.yaml entry changed since it was locked (version, source or pins); with
    /// `environment`, the version of that environment changed.
    StaleEntry {
        package: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        environment: Option<String>,
        locked_version: String,
        version: String,
    },
    /// kpin.lock was written in an older format; `kpin sync` rewrites it.
    LockFormat { found: u32, current: u32 },
    /// kpin.lock records a version of the package that no environment uses.
    VersionNotInUse { package: String, version: String },
    /// kpin.lock has a package that kpin.yaml no longer lists.
    NotInManifest { package: String },
    /// A local `path:` source no longer has the locked files.
    SourceChanged { package: String, file: String },
    /// `vendor/<package>/<version>` does not exist.
    VendorMissing { package: String, version: String },
    MissingFile {
        package: String,
        version: String,
        file: String,
    },
    ExtraFile {
        package: String,
        version: String,
        file: String,
    },
    /// A vendored file's bytes differ from the locked digest.
    TamperedFile {
        package: String,
        version: String,
        file: String,
        expected: String,
        actual: String,
    },
    /// A directory kpin manages in vendor/ that no package at its pinned version accounts for.
    ExtraVendorDir { path: String },
    /// Overlay files or settings changed since the lock (reported by the render stage's hook).
    OverlaysChanged { package: String },
    /// The rendered output differs from the locked digest (reported by the render stage's hook).
    RenderChanged { package: String, env: String },
    /// The package does not render (an overlay error, duplicate objects...).
    RenderFailed { package: String, error: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::LockMissing => write!(f, "kpin.lock is missing"),
            Problem::PackageNotLocked { package } => write!(f, "{package}: not in kpin.lock"),
            Problem::StaleEntry {
                package,
                environment: None,
                locked_version,
                version,
            } => {
                write!(
                    f,
                    "{package}: kpin.yaml entry changed since it was locked (locked {locked_version}, now {version})"
                )
            }
            Problem::StaleEntry {
                package,
                environment: Some(env),
                locked_version,
                version,
            } => {
                write!(
                    f,
                    "{package}: the version of environment `{env}` changed since it was locked (locked {locked_version}, now {version})"
                )
            }
            Problem::LockFormat { found, current } => write!(
                f,
                "kpin.lock is in lockfile format {found}; this kpin writes format {current}"
            ),
            Problem::VersionNotInUse { package, version } => write!(
                f,
                "{package}: kpin.lock records version {version}, which no environment uses"
            ),
            Problem::NotInManifest { package } => {
                write!(f, "{package}: locked but not in kpin.yaml")
            }
            Problem::SourceChanged { package, file } => write!(
                f,
                "{package}: local source file `{file}` changed since it was locked"
            ),
            Problem::VendorMissing { package, version } => {
                write!(f, "{package}: vendor/{package}/{version} is missing")
            }
            Problem::MissingFile {
                package,
                version,
                file,
            } => write!(f, "{package}: vendor/{package}/{version}/{file} is missing"),
            Problem::ExtraFile {
                package,
                version,
                file,
            } => {
                write!(
                    f,
                    "{package}: vendor/{package}/{version}/{file} is not in kpin.lock"
                )
            }
            Problem::TamperedFile {
                package,
                version,
                file,
                expected,
                actual,
            } => write!(
                f,
                "{package}: vendor/{package}/{version}/{file} was modified (sha256 {actual}, locked {expected})"
            ),
            Problem::ExtraVendorDir { path } => {
                write!(f, "{path} is not a package version pinned in kpin.yaml")
            }
            Problem::OverlaysChanged { package } => {
                write!(f, "{package}: overlays changed since they were locked")
            }
            Problem::RenderChanged { package, env } => {
                write!(
                    f,
                    "{package}: rendered output for `{env}` differs from kpin.lock"
                )
            }
            Problem::RenderFailed { package, error } => {
                write!(f, "{package}: does not render: {error}")
            }
        }
    }
}

/// What clears a problem: `kpin sync` (which re-locks and restores vendor/), or an edit only
/// the user can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    Sync,
    /// A package that does not render: sync locks it without render digests, and it still
    /// does not render.
    FixInputs,
}

impl Problem {
    pub fn remedy(&self) -> Remedy {
        match self {
            Problem::RenderFailed { .. } => Remedy::FixInputs,
            _ => Remedy::Sync,
        }
    }
}

/// The advice after a list of problems: what to run, or what to fix first.
pub fn advice(problems: &[Problem]) -> &'static str {
    let needs = |r: Remedy| problems.iter().any(|p| p.remedy() == r);
    match (needs(Remedy::FixInputs), needs(Remedy::Sync)) {
        (true, true) => {
            "fix the overlays or kpin.yaml of the packages that do not render (`kpin sync` cannot fix that); for the rest run `kpin sync`, then commit kpin.lock and vendor/"
        }
        (true, false) => {
            "fix the overlays or kpin.yaml of the packages that do not render (`kpin sync` cannot fix that)"
        }
        _ => "run `kpin sync` and commit kpin.lock and vendor/",
    }
}

/// Extra checks per package once its lock entry and vendored files agree (the render stage
/// compares overlay and render digests here).
pub trait VerifyHook: Send + Sync {
    fn problems(
        &self,
        manifest: &Manifest,
        package: &Package,
        locked: &LockedPackage,
    ) -> Result<Vec<Problem>>;
}

impl<F> VerifyHook for F
where
    F: Fn(&Manifest, &Package, &LockedPackage) -> Result<Vec<Problem>> + Send + Sync,
{
    fn problems(
        &self,
        manifest: &Manifest,
        package: &Package,
        locked: &LockedPackage,
    ) -> Result<Vec<Problem>> {
        self(manifest, package, locked)
    }
}

/// Every problem found, in a stable order (by package, then version, then file). Errors are
/// I/O failures and an unreadable lockfile, not disagreements.
pub fn verify(manifest: &Manifest, hook: Option<&dyn VerifyHook>) -> Result<Vec<Problem>> {
    let lock = Lockfile::load(&manifest.lock_path())?;
    let mut problems = Vec::new();
    if let Some(lock) = &lock
        && lock.version != LOCK_FORMAT
    {
        problems.push(Problem::LockFormat {
            found: lock.version,
            current: LOCK_FORMAT,
        });
    }
    problems.extend(lock_problems(manifest, lock.as_ref()));
    if let Some(lock) = &lock {
        for package in manifest.packages.values() {
            let Some(entry) = lock.packages.get(&package.name) else {
                continue; // `lock_problems` reported it.
            };
            if stale_entry(manifest, package, entry).is_empty() {
                problems.extend(package_problems(manifest, package, entry, hook)?);
            }
        }
    }
    problems.extend(extra_vendor_dirs(manifest, lock.as_ref())?);
    Ok(problems)
}

/// Whether kpin.lock is current for kpin.yaml: it exists, locks every package at every version
/// in use as kpin.yaml now describes it, and nothing else. The one check behind `kpin verify`
/// and `kpin sync --locked` (the lockfile format is judged by each: sync rewrites it).
pub fn lock_problems(manifest: &Manifest, lock: Option<&Lockfile>) -> Vec<Problem> {
    let Some(lock) = lock else {
        return vec![Problem::LockMissing];
    };
    let mut problems = Vec::new();
    for package in manifest.packages.values() {
        match lock.packages.get(&package.name) {
            None => problems.push(Problem::PackageNotLocked {
                package: package.name.clone(),
            }),
            Some(entry) => problems.extend(stale_entry(manifest, package, entry)),
        }
    }
    for name in lock.packages.keys() {
        if !manifest.packages.contains_key(name) {
            problems.push(Problem::NotInManifest {
                package: name.clone(),
            });
        }
    }
    problems
}

/// `sync --locked` before any work: kpin.lock exists and covers exactly the manifest's
/// entries, every version in use included (`lock_problems`, as `kpin verify` reports them).
pub fn require_current(manifest: &Manifest, lock: Option<&Lockfile>) -> Result<()> {
    let path = manifest.lock_path();
    let Some(lock) = lock else {
        return Err(DriftError::error(format!(
            "{} is missing (--locked)",
            path.display()
        )))
        .hint("run `kpin sync` and commit kpin.lock");
    };
    let reasons = lock_problems(manifest, Some(lock));
    if reasons.is_empty() {
        return Ok(());
    }
    let reasons: Vec<String> = reasons.iter().map(ToString::to_string).collect();
    Err(DriftError::error(format!(
        "{} is out of date (--locked): {}",
        path.display(),
        reasons.join("; ")
    )))
    .hint("run `kpin sync` and commit kpin.lock")
}

/// `sync --locked` after resolving: kpin.lock would be written with exactly its current bytes.
pub fn require_unchanged(
    manifest: &Manifest,
    old: Option<&Lockfile>,
    new: &Lockfile,
) -> Result<()> {
    let Some(old) = old else {
        return require_current(manifest, None);
    };
    if old.to_text() == new.to_text() && old.version == LOCK_FORMAT {
        return Ok(());
    }
    if old.version != LOCK_FORMAT {
        return Err(DriftError::error(format!(
            "{} is in lockfile format {} (--locked); this kpin writes format {LOCK_FORMAT}",
            manifest.lock_path().display(),
            old.version
        )))
        .hint("run `kpin sync` once and commit kpin.lock: it records the same versions and digests in the new format");
    }
    let changed: Vec<&str> = new
        .packages
        .iter()
        .filter(|(name, entry)| old.packages.get(*name) != Some(*entry))
        .map(|(name, _)| name.as_str())
        .collect();
    Err(DriftError::error(format!(
        "{} would change (--locked): package{} {}",
        manifest.lock_path().display(),
        if changed.len() == 1 { "" } else { "s" },
        changed
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
    .hint("run `kpin sync`, review the changes and commit kpin.lock")
}

/// The render stage's part of lock currency (the `VerifyHook` of `kpin verify` and
/// `--locked`): overlay edits that were not re-locked, renders that no longer match the lock (an
/// environment added or removed counts as changed), and packages that no longer render at all.
pub fn render_problems(
    manifest: &Manifest,
    package: &Package,
    locked: &LockedPackage,
) -> Result<Vec<Problem>> {
    let now = match render::digests(manifest, package) {
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

/// Whether this lock entry still describes `view` (the package at that version) as kpin.yaml pins
/// it: the one test of an entry's currency, for `sync` (may the entry's files be reused?),
/// `verify` and `--locked`.
pub fn entry_is_current(manifest: &Manifest, entry: &LockedVersion, view: &PackageVersion) -> bool {
    let inputs_current = match (view.source.renderer(), &entry.rendered_from) {
        (None, None) => true,
        (Some(renderer), Some(from)) => renderer
            .inputs_digest(manifest.project())
            .is_ok_and(|d| d == from.values),
        _ => false,
    };
    entry.version == view.version.raw
        && entry.manifest_digest == view.manifest_digest
        && inputs_current
}

/// The packages of `rendered` (renders for `env`) whose render kpin.lock records otherwise:
/// what an `apply` without `--locked` would leave for `kpin status` to show as not matching.
pub fn unlocked_renders<'a>(
    lock: &Lockfile,
    env: &str,
    rendered: impl IntoIterator<Item = &'a RenderedPackage>,
) -> Vec<&'a RenderedPackage> {
    rendered
        .into_iter()
        .filter(|r| {
            let locked = lock.packages.get(&r.name).and_then(|p| p.rendered.get(env));
            locked != Some(&render::rendered_digest(&r.objects))
        })
        .collect()
}

/// The vendored files (and local sources) of a package whose lock entry is current, then the
/// render checks of `hook` when the files are right.
fn package_problems(
    manifest: &Manifest,
    package: &Package,
    entry: &LockedPackage,
    hook: Option<&dyn VerifyHook>,
) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for version in package.versions_in_use() {
        let view = package.at_version(version);
        let Some(locked) = entry.version(&version.raw) else {
            continue; // `stale_entry` reported it.
        };
        if package.source.rereads() {
            problems.extend(local_source_problems(manifest, &view, locked)?);
        }
        problems.extend(vendor_problems(manifest, &view, locked)?);
    }
    if problems.is_empty()
        && let Some(hook) = hook
    {
        problems.extend(
            hook.problems(manifest, package, entry)
                .with_context(|| format!("package `{}`", package.name))?,
        );
    }
    Ok(problems)
}

/// How the lock entry disagrees with kpin.yaml about what is fetched: an environment (or the
/// package) on another version, a version whose source or pins changed, a locked version no
/// environment uses.
fn stale_entry(manifest: &Manifest, package: &Package, entry: &LockedPackage) -> Vec<Problem> {
    let mut problems = Vec::new();
    let now = manifest.environment_versions(package);
    let follows_default = |versions: &BTreeMap<String, String>, env: &str| {
        versions.get(env) == versions.get(DEFAULT_ENV)
    };
    for (env, version) in &now {
        // An environment added since the lock is the render stage's to report (its render
        // digest is missing) when its version is locked.
        let locked = match entry.environments.get(env) {
            Some(l) => l.clone(),
            None if env != DEFAULT_ENV && entry.version(version).is_some() => continue,
            None => "-".to_owned(),
        };
        // An environment that follows the package's version on both sides moved with it: the
        // package's own line says so.
        let moved_with_package = env != DEFAULT_ENV
            && follows_default(&now, env)
            && follows_default(&entry.environments, env);
        if locked != *version && !moved_with_package {
            problems.push(Problem::StaleEntry {
                package: package.name.clone(),
                environment: (env != DEFAULT_ENV).then(|| env.clone()),
                locked_version: locked,
                version: version.clone(),
            });
        }
    }
    let in_use = package.versions_in_use();
    for version in &in_use {
        let view = package.at_version(version);
        let fresh = entry
            .version(&version.raw)
            .is_some_and(|l| entry_is_current(manifest, l, &view));
        let reported = problems
            .iter()
            .any(|p| matches!(p, Problem::StaleEntry { version: v, .. } if *v == version.raw));
        if !fresh && !reported {
            problems.push(Problem::StaleEntry {
                package: package.name.clone(),
                environment: None,
                locked_version: version.raw.clone(),
                version: version.raw.clone(),
            });
        }
    }
    for locked in &entry.versions {
        let used = in_use.iter().any(|v| v.raw == locked.version);
        let reported = problems.iter().any(
            |p| matches!(p, Problem::StaleEntry { locked_version: v, .. } if *v == locked.version),
        );
        if !used && !reported {
            problems.push(Problem::VersionNotInUse {
                package: package.name.clone(),
                version: locked.version.clone(),
            });
        }
    }
    problems
}

/// Files of `vendor/<package>/<version>` against the locked version.
fn vendor_problems(
    manifest: &Manifest,
    package: &PackageVersion,
    entry: &LockedVersion,
) -> Result<Vec<Problem>> {
    let scan = vendor::scan(&manifest.package_vendor_dir(package))?;
    let (package, version) = (package.name.clone(), package.version.raw.clone());
    if !scan.exists {
        return Ok(vec![Problem::VendorMissing { package, version }]);
    }
    let problems = scan
        .differences(&entry.files)
        .into_iter()
        .map(|difference| {
            let (package, version) = (package.clone(), version.clone());
            match difference {
                Difference::Missing(file) => Problem::MissingFile {
                    package,
                    version,
                    file,
                },
                Difference::Extra(file) => Problem::ExtraFile {
                    package,
                    version,
                    file,
                },
                Difference::Changed {
                    file,
                    expected,
                    actual,
                } => Problem::TamperedFile {
                    package,
                    version,
                    file,
                    expected,
                    actual,
                },
            }
        })
        .collect();
    Ok(problems)
}

/// A local `path:` source re-read: the files it has now against the locked ones.
fn local_source_problems(
    manifest: &Manifest,
    package: &PackageVersion,
    entry: &LockedVersion,
) -> Result<Vec<Problem>> {
    // Sources that are re-read are local: their files are named at once, without the network.
    let files = futures::FutureExt::now_or_never(fetch::resolve(
        manifest.project(),
        &package.name,
        &package.source,
        &package.version,
        None,
    ))
    .ok_or_else(|| anyhow::anyhow!("package `{}`: its source is not local", package.name))??;
    let mut problems = Vec::new();
    for file in &files {
        let locked = entry.files.iter().find(|f| f.name == file.name);
        let changed = match (&file.origin, locked) {
            (fetch::Origin::Local { path }, Some(locked)) => {
                crate::digest::hash_file(path)?.0 != locked.sha256
            }
            _ => true,
        };
        if changed {
            problems.push(Problem::SourceChanged {
                package: package.name.clone(),
                file: file.name.clone(),
            });
        }
    }
    for locked in &entry.files {
        if !files.iter().any(|f| f.name == locked.name) {
            problems.push(Problem::SourceChanged {
                package: package.name.clone(),
                file: locked.name.clone(),
            });
        }
    }
    Ok(problems)
}

/// Directories kpin manages in vendor/ beyond the versions in use (`kpin sync` removes them).
/// Directories that are not kpin's are not problems: kpin never touches them.
fn extra_vendor_dirs(manifest: &Manifest, lock: Option<&Lockfile>) -> Result<Vec<Problem>> {
    let show = |p: &Path| format!("{}/", crate::fsutil::display_relative(p, &manifest.root));
    Ok(vendor::extras(manifest, lock, None)?
        .into_iter()
        .filter_map(|extra| match extra {
            Extra::Stale(path) => Some(Problem::ExtraVendorDir { path: show(&path) }),
            Extra::Foreign(_) | Extra::Leftover(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_runs_only_for_packages_whose_files_agree() {
        let (dir, manifest) = crate::vendoring::sync::tests::project_with(
            "packages:\n  a:\n    version: 1.0.0\n    path: mirror/{version}\n  b:\n    version: 1.0.0\n    path: mirror/{version}\n",
            &[("mirror/1.0.0/a.yaml", "kind: ConfigMap\n")],
        );
        let options = crate::vendoring::sync::tests::options(dir.path(), false, None);
        crate::vendoring::sync::tests::run(&manifest, &options).unwrap();
        assert_eq!(verify(&manifest, None).unwrap(), []);

        std::fs::write(dir.path().join("vendor/b/1.0.0/a.yaml"), "edited\n").unwrap();
        let hook = |_: &Manifest, p: &Package, _: &LockedPackage| {
            Ok(vec![Problem::RenderChanged {
                package: p.name.clone(),
                env: "default".into(),
            }])
        };
        let problems = verify(&manifest, Some(&hook)).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0],
            Problem::RenderChanged {
                package: "a".into(),
                env: "default".into()
            }
        );
        assert!(matches!(&problems[1], Problem::TamperedFile { package, .. } if package == "b"));
    }
}
