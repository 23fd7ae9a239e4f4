//! `kpin upgrade` (and `kpin promote`, which is an upgrade of one environment's version): move
//! a package, or one environment of it, to another version, report what changes upstream and
//! after overlays, and write kpin.yaml, kpin.lock and vendor/ all together or not at all.
//!
//! Order of effects: kpin.yaml is edited in memory (the version line, or the environment's,
//! added if needed; comments kept) and its versions tidied (`normalise_versions`). Every version
//! no environment used before is fetched into the staging tree of a [`Transaction`], and the
//! change is analysed (upstream diff, overlay check, rendered diff) while nothing visible
//! changes. Only then, and only when allowed, the transaction puts the new version directories
//! in, removes those no environment uses any more and writes kpin.lock and kpin.yaml, all or
//! nothing, even across a kill.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::changes::{self, Detail, DiffOptions, MarkdownLimits, ObjectChange, Section};
use crate::error::HintExt;
use crate::fetch::source::{RenderOptions, Renderer};
use crate::fetch::{Cache, Client};
use crate::manifest::{
    MANIFEST_FILE, Manifest, Package, PackageVersion, Pins, Version, edit_env_version,
    edit_manifest_version, install_in, normalise_versions,
};
use crate::object::Object;
use crate::overlay::Miss;
use crate::progress::{Reporter, Silent};
use crate::render;
use crate::vendoring::lockfile::{
    LockedFile, LockedPackage, LockedRender, LockedVersion, Lockfile,
};
use crate::vendoring::sync::{Fetch, stage_new_version};
use crate::vendoring::transaction::Transaction;
use crate::yaml::edit::set_scalar;

/// One package to move, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMove {
    pub package: String,
    /// The environment whose version moves (`environments.<env>.version`); `None` moves the
    /// package's `version`, which every environment without a version of its own follows.
    pub env: Option<String>,
    pub version: String,
    /// Why, for the report (`promoted from qa`).
    pub note: Option<String>,
}

/// The command a report is for: upgrades and promotions share the workflow and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verb {
    #[default]
    Upgrade,
    Promote,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Upgrade => "upgrade",
            Verb::Promote => "promote",
        }
    }

    /// What the workflow writes, in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Verb::Upgrade => "upgrade",
            Verb::Promote => "promotion",
        }
    }

    /// The status line once written.
    fn done(self) -> &'static str {
        match self {
            Verb::Upgrade => "Upgraded",
            Verb::Promote => "Promoted",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    /// Write the upgrade even when overlay operations no longer match anything.
    pub allow_broken_overlays: bool,
    /// Analyse and report; change nothing.
    pub dry_run: bool,
    /// Which command runs the workflow (for the report's wording).
    pub verb: Verb,
}

/// An overlay operation whose selector matches nothing in the new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenOverlay {
    pub package: String,
    /// The overlay file as written in kpin.yaml.
    pub file: String,
    /// `operations[2] (jsonPatch)`.
    pub operation: String,
    pub selector: String,
    /// Environments whose render hits it (`default` is the render without `--env`).
    pub environments: Vec<String>,
}

impl BrokenOverlay {
    pub fn message(&self) -> String {
        format!(
            "{} {}: selector {} matches no object in {} (environments: {})",
            self.file,
            self.operation,
            self.selector,
            self.package,
            self.environments.join(", ")
        )
    }

    pub fn hint(&self) -> &'static str {
        "upstream may have renamed or removed the object: fix the selector, or add `optional: true` to the operation if it should apply only when the object exists"
    }

    /// The broken operation as an error, so it prints like every other (`error:` / `hint:`).
    pub fn to_error(&self) -> anyhow::Error {
        anyhow::Error::msg(self.message()).hint(self.hint())
    }
}

/// What one package's upgrade changes.
#[derive(Debug, Clone)]
pub struct PackageUpgrade {
    pub package: String,
    /// The environment whose version moved; `None` for the package's version.
    pub environment: Option<String>,
    pub from: String,
    pub to: String,
    /// Upstream objects, old release vs new release, before overlays.
    pub upstream: Vec<ObjectChange>,
    /// Rendered objects of the environment (without one: the render without `--env`), old vs
    /// new, after overlays.
    pub rendered: Vec<ObjectChange>,
    /// The upstream's default settings (a chart's values.yaml), old vs new, as one object.
    pub defaults: Vec<ObjectChange>,
    /// Warnings of the new render (e.g. leftover references to a moved namespace).
    pub render_warnings: Vec<String>,
    pub broken_overlays: Vec<BrokenOverlay>,
    /// Facts about the edit: pins rewritten, directories removed.
    pub notes: Vec<String>,
}

/// The result of `upgrade`.
#[derive(Debug, Clone)]
pub struct UpgradeReport {
    pub verb: Verb,
    pub packages: Vec<PackageUpgrade>,
    /// Whether kpin.yaml, kpin.lock and vendor/ were changed.
    pub written: bool,
}

impl UpgradeReport {
    pub fn broken_overlays(&self) -> impl Iterator<Item = &BrokenOverlay> {
        self.packages.iter().flat_map(|p| &p.broken_overlays)
    }

    /// Two sections per package: upstream changes (field level) and rendered changes (unified).
    pub fn sections(&self) -> Vec<Section> {
        let mut out = Vec::new();
        for p in &self.packages {
            let base = Section {
                package: p.package.clone(),
                title: "upstream changes".to_owned(),
                version_before: Some(p.from.clone()),
                version_after: Some(p.to.clone()),
                notes: p.notes.clone(),
                warnings: Vec::new(),
                changes: p.upstream.clone(),
                detail: Detail::Fields,
            };
            let mut warnings = p.render_warnings.clone();
            warnings.extend(changes::review_warnings(&p.rendered));
            let rendered = Section {
                title: match &p.environment {
                    Some(env) => format!("rendered changes in {env}, after overlays"),
                    None => "rendered changes, after overlays".to_owned(),
                },
                notes: Vec::new(),
                warnings,
                changes: p.rendered.clone(),
                detail: Detail::Unified,
                ..base.clone()
            };
            let defaults = (!p.defaults.is_empty()).then(|| Section {
                title: "default values".to_owned(),
                notes: Vec::new(),
                warnings: Vec::new(),
                changes: p.defaults.clone(),
                detail: Detail::Unified,
                ..base.clone()
            });
            out.push(base);
            out.extend(defaults);
            out.push(rendered);
        }
        out
    }

    pub fn to_text(&self, options: &DiffOptions) -> String {
        let mut out = changes::to_text(&self.sections(), options);
        for b in self.broken_overlays() {
            out.push('\n');
            out.push_str(&crate::error::format_error(&b.to_error()));
        }
        out
    }

    pub fn to_markdown(&self, options: &DiffOptions) -> String {
        let verb = self.verb.as_str();
        let title = match (self.packages.as_slice(), self.verb) {
            ([one], Verb::Promote) => format!(
                "kpin promote {} to {}: {} → {}",
                one.package,
                one.environment.as_deref().unwrap_or_default(),
                one.from,
                one.to
            ),
            ([one], Verb::Upgrade) => {
                let env = one
                    .environment
                    .as_deref()
                    .map(|e| format!(" in {e}"))
                    .unwrap_or_default();
                format!(
                    "kpin upgrade {} {} → {}{env}",
                    one.package, one.from, one.to
                )
            }
            _ => format!("kpin {verb}"),
        };
        let mut out = changes::to_markdown(
            &title,
            "",
            &self.sections(),
            options,
            MarkdownLimits::default(),
            &format!("kpin {verb} --dry-run"),
        );
        let broken: Vec<&BrokenOverlay> = self.broken_overlays().collect();
        if !broken.is_empty() {
            out.push_str("\n> [!CAUTION]\n> Overlays that no longer match:\n");
            for b in broken {
                let _ = writeln!(
                    out,
                    "> - `{}` {}: selector `{}` matches nothing ({})",
                    b.file,
                    b.operation,
                    b.selector,
                    b.environments.join(", ")
                );
            }
        }
        out
    }

    pub fn to_json(&self, options: &DiffOptions) -> Value {
        let broken: Vec<Value> = self
            .broken_overlays()
            .map(|b| {
                json!({"package": b.package, "file": b.file, "operation": b.operation, "selector": b.selector,
                       "environments": b.environments, "hint": b.hint()})
            })
            .collect();
        let packages: Vec<Value> = self
            .packages
            .iter()
            .map(|p| {
                json!({"package": p.package, "environment": p.environment, "from": p.from, "to": p.to})
            })
            .collect();
        let mut v = changes::to_json(&self.sections(), options);
        if let Value::Object(map) = &mut v {
            map.insert("packages".into(), Value::Array(packages));
            map.insert("brokenOverlays".into(), Value::Array(broken));
            map.insert("written".into(), Value::Bool(self.written));
        }
        v
    }
}

/// How an upgrade fetches new files: the HTTP client and the download cache.
pub struct Fetching<'a> {
    /// `None` offline: only local (`path:`, `file://`) sources can be upgraded.
    pub client: Option<&'a Client>,
    pub cache: Cache,
    /// How a chart of a new version may render.
    pub render: RenderOptions,
}

/// Upgrade `targets` (see the module documentation for the order of effects).
pub async fn upgrade(
    manifest: &Manifest,
    targets: &[VersionMove],
    fetching: &Fetching<'_>,
    options: &UpgradeOptions,
    reporter: &dyn Reporter,
) -> Result<UpgradeReport> {
    let mut workflow = Workflow::read(manifest, targets)?;
    workflow.edit_versions()?;
    let txn = Transaction::begin(
        &format!("{} of {}", options.verb.as_str(), workflow.names.join(", ")),
        &manifest.root,
        &manifest.vendor_dir,
    )?;
    workflow
        .fetch_new_versions(&txn, fetching, reporter)
        .await?;
    let staged = staged_manifest(&workflow.text, manifest, txn.stage_root())?;
    let analysed = workflow.analyse_targets(&staged, options, reporter)?;
    let broken = analysed.report.broken_overlays().count();
    if options.dry_run || (broken > 0 && !options.allow_broken_overlays) {
        return Ok(analysed.report);
    }
    workflow.commit(txn, &analysed, reporter)?;
    Ok(analysed.written(options.verb, reporter))
}

/// An upgrade under way: what its steps share, and kpin.yaml's text as they edit it.
struct Workflow<'a> {
    manifest: &'a Manifest,
    targets: &'a [VersionMove],
    lock_path: PathBuf,
    /// kpin.lock before the upgrade; `None` when there is none yet.
    old_lock: Option<Lockfile>,
    /// kpin.yaml as edited so far.
    text: String,
    /// The packages that move, in the order given.
    names: Vec<&'a str>,
    /// Facts about the edit, per package, for the report.
    notes: BTreeMap<String, Vec<String>>,
    /// The locked files of every version in use of the packages that move, by (package,
    /// version).
    files: BTreeMap<(String, String), Vec<LockedFile>>,
    /// What the versions of sources that render (charts) were rendered from.
    rendered_from: BTreeMap<(String, String), LockedRender>,
    /// The (package, version) pairs fetched into the transaction's staging tree.
    staged_dirs: Vec<(String, String)>,
}

/// What the analysis leaves for the commit.
struct Analysed {
    report: UpgradeReport,
    /// kpin.lock as the upgrade writes it.
    lock: Lockfile,
    /// Per package, the versions no environment uses any more: their directories go.
    removed: BTreeMap<String, Vec<String>>,
}

impl<'a> Workflow<'a> {
    /// Read kpin.yaml and kpin.lock as they are before the upgrade.
    fn read(manifest: &'a Manifest, targets: &'a [VersionMove]) -> Result<Self> {
        let text = fs::read_to_string(&manifest.path)
            .with_context(|| format!("reading {}", manifest.path.display()))?;
        let lock_path = manifest.lock_path();
        let old_lock = Lockfile::load(&lock_path)?;
        Ok(Workflow {
            manifest,
            targets,
            lock_path,
            old_lock,
            text,
            names: Vec::new(),
            notes: BTreeMap::new(),
            files: BTreeMap::new(),
            rendered_from: BTreeMap::new(),
            staged_dirs: Vec::new(),
        })
    }

    /// 1. kpin.yaml with the new versions, in canonical form (pins follow once the new files
    ///    are known).
    fn edit_versions(&mut self) -> Result<()> {
        let (manifest, targets) = (self.manifest, self.targets);
        for t in targets {
            let package = manifest.select(std::slice::from_ref(&t.package))?[0];
            if self.names.contains(&t.package.as_str()) {
                anyhow::bail!("package `{}` is given twice", t.package);
            }
            self.names.push(&t.package);
            let env = t.env.as_deref();
            if let Some(env) = env {
                manifest.environment(env)?;
            }
            let installing = !package.installed_in(env);
            if !installing && package.version_in(env).raw == t.version {
                return Err(anyhow::anyhow!(
                    "package `{}` is already at version {}{}",
                    t.package,
                    t.version,
                    env.map(|e| format!(" in {e}")).unwrap_or_default()
                ))
                .hint("pass a different version with --to");
            }
            let text = &self.text;
            let edited = match env {
                None => edit_manifest_version(text, &manifest.path, &t.package, &t.version)?,
                Some(env) if installing => {
                    let with_version =
                        edit_env_version(text, &manifest.path, &t.package, env, Some(&t.version))?;
                    install_in(&with_version, &manifest.path, &t.package, env)?
                }
                Some(env) => {
                    edit_env_version(text, &manifest.path, &t.package, env, Some(&t.version))?
                }
            };
            let (normal, normal_notes) = normalise_versions(&edited, &manifest.path, &t.package)?;
            self.text = normal;
            let entry = self.notes.entry(t.package.clone()).or_default();
            entry.extend(t.note.clone());
            entry.extend(normal_notes);
        }
        Ok(())
    }

    /// 2. Versions no environment used before are fetched into the transaction's staging
    ///    tree; the others are vendored and locked already. The pins follow the new files.
    async fn fetch_new_versions(
        &mut self,
        txn: &Transaction,
        fetching: &Fetching<'_>,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        let manifest = self.manifest;
        let versioned = staged_manifest(&self.text, manifest, txn.stage_root())?;
        for name in self.names.clone() {
            let old = &manifest.packages[name];
            let new = &versioned.packages[name];
            for version in new.versions_in_use() {
                let key = (name.to_string(), version.raw.clone());
                let found = if old.versions_in_use().contains(&version) {
                    let (files, from) =
                        carried_files(self.old_lock.as_ref(), manifest, old, version)?;
                    if let Some(from) = from {
                        self.rendered_from.insert(key.clone(), from);
                    }
                    files
                } else {
                    let view = new.at_version(version);
                    reporter.status("Fetching", &format!("{name} {version}"));
                    let dir = txn.staging_for(&manifest.version_dir(name, &version.raw));
                    self.staged_dirs.push(key.clone());
                    let (fetched, from) = stage_package(&versioned, &view, &dir, fetching)
                        .await
                        .with_context(|| format!("fetching {name} {version}"))?;
                    if let Some(from) = from {
                        self.rendered_from.insert(key.clone(), from);
                    }
                    refuse_same_files(manifest, old, self.old_lock.as_ref(), version, &fetched)?;
                    fetched
                };
                self.files.insert(key, found);
            }
            // The pins name the bytes of the package's version: they follow it.
            if new.version != old.version {
                let key = (name.to_string(), new.version.raw.clone());
                let (new_text, pin_notes) =
                    update_pins(&self.text, manifest, new, &self.files[&key])?;
                self.text = new_text;
                self.notes
                    .entry(name.to_string())
                    .or_default()
                    .extend(pin_notes);
            }
        }
        Ok(())
    }

    /// 3. Analyse: upstream diff, overlay check of every render whose version moves, rendered
    ///    diff of the target's environment; and kpin.lock as it will be.
    fn analyse_targets(
        &mut self,
        staged: &Manifest,
        options: &UpgradeOptions,
        reporter: &dyn Reporter,
    ) -> Result<Analysed> {
        let mut out = Analysed {
            report: UpgradeReport {
                verb: options.verb,
                packages: Vec::new(),
                written: false,
            },
            lock: self.old_lock.clone().unwrap_or_default(),
            removed: BTreeMap::new(),
        };
        for t in self.targets {
            self.analyse_target(t, staged, options, reporter, &mut out)?;
        }
        Ok(out)
    }

    /// Step 3 for one target: its report, its kpin.lock entry and the versions it drops.
    fn analyse_target(
        &mut self,
        t: &VersionMove,
        staged: &Manifest,
        options: &UpgradeOptions,
        reporter: &dyn Reporter,
        out: &mut Analysed,
    ) -> Result<()> {
        let old = &self.manifest.packages[&t.package];
        let new = &staged.packages[&t.package];
        let env = t.env.as_deref();
        reporter.status(
            "Comparing",
            &format!(
                "{} {} -> {}{}",
                old.name,
                if old.installed_in(env) {
                    old.version_in(env).raw.as_str()
                } else {
                    NOT_INSTALLED
                },
                new.version_in(env),
                env.map(|e| format!(" in {e}")).unwrap_or_default()
            ),
        );
        let moved: Vec<Option<&str>> = staged
            .renders_of(new)
            .filter(|e| old.version_in(*e) != new.version_in(*e) || !old.installed_in(*e))
            .collect();
        let analysis = analyse(self.manifest, old, staged, new, env, &moved)?;
        let digests = if analysis.broken_overlays.is_empty() {
            Some(render::digests(staged, new)?)
        } else {
            if options.allow_broken_overlays {
                self.notes.entry(t.package.clone()).or_default().push(
                    "kpin.lock has no render digests for this package until its overlays match again"
                        .to_owned(),
                );
            }
            None
        };
        let versions = new
            .versions_in_use()
            .into_iter()
            .map(|v| {
                let key = (t.package.clone(), v.raw.clone());
                LockedVersion::new(
                    &new.at_version(v),
                    self.files.remove(&key).unwrap_or_default(),
                    self.rendered_from.remove(&key),
                )
            })
            .collect();
        out.lock.packages.insert(
            new.name.clone(),
            LockedPackage::new(staged, new, versions, digests),
        );
        let gone: Vec<String> = old
            .versions_in_use()
            .into_iter()
            .filter(|v| !new.versions_in_use().contains(v))
            .map(|v| v.raw.clone())
            .collect();
        out.removed.insert(t.package.clone(), gone);
        let mut package_notes = self.notes.remove(&t.package).unwrap_or_default();
        package_notes.extend(analysis.notes.iter().cloned());
        out.report.packages.push(PackageUpgrade {
            package: t.package.clone(),
            environment: t.env.clone(),
            notes: package_notes,
            ..analysis
        });
        Ok(())
    }

    /// 4. Commit: the new version directories, the ones no environment uses any more removed,
    ///    kpin.lock and kpin.yaml, all or nothing.
    fn commit(
        self,
        mut txn: Transaction,
        analysed: &Analysed,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        let manifest = self.manifest;
        for (name, version) in &self.staged_dirs {
            let locked = analysed
                .lock
                .packages
                .get(name)
                .and_then(|e| e.version(version))
                .map(|v| v.files.clone())
                .unwrap_or_default();
            txn.replace_dir(&manifest.version_dir(name, version), locked);
        }
        for (name, versions) in &analysed.removed {
            for version in versions {
                let dir = manifest.version_dir(name, version);
                if dir.exists() {
                    txn.remove_dir(&dir);
                }
            }
        }
        txn.write_file(&self.lock_path, analysed.lock.to_text().into_bytes());
        txn.write_file(&manifest.path, self.text.into_bytes());
        txn.commit(reporter)?;
        Ok(())
    }
}

impl Analysed {
    /// The report once the commit wrote everything: each removed directory noted, each move
    /// announced.
    fn written(self, verb: Verb, reporter: &dyn Reporter) -> UpgradeReport {
        let mut report = self.report;
        for p in &mut report.packages {
            for version in self.removed.get(&p.package).into_iter().flatten() {
                p.notes
                    .push(format!("removed vendor/{}/{version}", p.package));
            }
            let env = p
                .environment
                .as_deref()
                .map(|e| format!(" in {e}"))
                .unwrap_or_default();
            reporter.status(
                verb.done(),
                &format!("{} {} -> {}{env}", p.package, p.from, p.to),
            );
        }
        report.written = true;
        report
    }
}

/// `text` parsed as the manifest, reading version directories staged in the transaction.
fn staged_manifest(text: &str, manifest: &Manifest, stage: &Path) -> Result<Manifest> {
    let mut m = Manifest::parse(text, &manifest.path).context("the upgraded kpin.yaml")?;
    m.staged = Some(stage.to_path_buf());
    Ok(m)
}

/// The locked files of a version some environment already uses: it stays vendored as it is.
fn carried_files(
    lock: Option<&Lockfile>,
    manifest: &Manifest,
    package: &Package,
    version: &Version,
) -> Result<(Vec<LockedFile>, Option<LockedRender>)> {
    lock.and_then(|l| l.packages.get(&package.name))
        .and_then(|e| e.version(&version.raw))
        .map(|v| (v.files.clone(), v.rendered_from.clone()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} does not record {} {version}, which kpin.yaml uses",
                manifest.lock_path().display(),
                package.name
            )
        })
        .hint("run `kpin sync` first, so kpin.lock and vendor/ hold every version in use")
}

/// Obtain (or render) every file of `package` at a version kpin.lock does not know yet into
/// the directory `dir`, as sync does; the lock entries.
async fn stage_package(
    manifest: &Manifest,
    package: &PackageVersion,
    dir: &Path,
    fetching: &Fetching<'_>,
) -> Result<(Vec<LockedFile>, Option<LockedRender>)> {
    let fetch = Fetch {
        client: fetching.client,
        cache: &fetching.cache,
        render: fetching.render,
        reporter: &Silent,
    };
    let staged = stage_new_version(manifest, package, dir, &fetch).await?;
    Ok((staged.files, staged.rendered_from))
}

/// Refuse a new version whose files are byte for byte those of a version the package uses
/// now: its source does not depend on the version, and the upgrade would change nothing but
/// the name.
fn refuse_same_files(
    manifest: &Manifest,
    old: &Package,
    lock: Option<&Lockfile>,
    version: &Version,
    fetched: &[LockedFile],
) -> Result<()> {
    for current in old.versions_in_use() {
        if same_files(fetched, &current_files(manifest, old, current, lock)?) {
            return Err(anyhow::anyhow!(
                "{} {version} fetched exactly the files of {} {current}: its source does not depend on the version, so the upgrade would change nothing but the name",
                old.name,
                old.name,
            ))
            .hint(format!(
                "put {{version}} in the url, urls, path or github.tag of `{}` in {MANIFEST_FILE} so that each version fetches its own release; nothing was changed",
                old.name
            ));
        }
    }
    Ok(())
}

/// The files of a version in use, by name and digest: from kpin.lock when it records that
/// version, else hashed in vendor/ (empty when neither has them).
fn current_files(
    manifest: &Manifest,
    package: &Package,
    version: &Version,
    lock: Option<&Lockfile>,
) -> Result<Vec<LockedFile>> {
    if let Some(v) = lock
        .and_then(|l| l.packages.get(&package.name))
        .and_then(|e| e.version(&version.raw))
    {
        return Ok(v.files.clone());
    }
    Ok(
        crate::vendoring::vendor::scan(&manifest.version_dir(&package.name, &version.raw))?
            .as_locked(),
    )
}

/// Whether two versions' files have the same names and bytes.
fn same_files(new: &[LockedFile], old: &[LockedFile]) -> bool {
    let key = |files: &[LockedFile]| -> Vec<(String, String)> {
        let mut k: Vec<_> = files
            .iter()
            .map(|f| (f.name.clone(), f.sha256.clone()))
            .collect();
        k.sort();
        k
    };
    !old.is_empty() && key(new) == key(old)
}

/// Rewrite the package's `sha256` pins to the new files' digests: pins name the old version's
/// bytes and would refuse the upgrade otherwise. Returns the new text and notes for the report.
fn update_pins(
    text: &str,
    manifest: &Manifest,
    package: &Package,
    files: &[LockedFile],
) -> Result<(String, Vec<String>)> {
    // Each pin as (key path under the package, file, note).
    let mut pins: Vec<(Vec<&str>, &LockedFile, String)> = Vec::new();
    match &package.pins {
        Pins::None => {}
        Pins::Single(_) => {
            let [file] = files else {
                return Err(anyhow::anyhow!(
                    "package `{}` pins one sha256, but version {} has {} files",
                    package.name,
                    package.version,
                    files.len()
                ))
                .hint("pin each file by name in kpin.yaml: sha256: {file.yaml: <hex>}");
            };
            let note = format!("sha256 pin updated to {} (review it)", file.sha256);
            pins.push((vec!["sha256"], file, note));
        }
        Pins::ByFile(by_file) => {
            for name in by_file.keys() {
                let file = files.iter().find(|f| &f.name == name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "package `{}` pins file `{name}`, which version {} does not have",
                        package.name,
                        package.version
                    )
                    .hint("update the sha256 pins in kpin.yaml by hand")
                })?;
                let note = format!(
                    "sha256 pin of {name} updated to {} (review it)",
                    file.sha256
                );
                pins.push((vec!["sha256", name.as_str()], file, note));
            }
        }
    }
    let mut text = text.to_owned();
    let mut notes = Vec::new();
    for (keys, file, note) in pins {
        let path: Vec<&str> = ["packages", package.name.as_str()]
            .into_iter()
            .chain(keys)
            .collect();
        text = set_scalar(&text, &path, &file.sha256)
            .map_err(anyhow::Error::new)
            .with_context(|| {
                format!(
                    "{}: updating the sha256 pin of `{}`",
                    manifest.path.display(),
                    package.name
                )
            })?;
        notes.push(note);
    }
    Ok((text, notes))
}

/// The objects `env` renders of the current version, as far as they render: a current
/// version whose overlays no longer match (written with --allow-broken-overlays) is compared
/// without the operations that match nothing, so it can be moved off (said in `notes`).
fn current_objects(
    manifest: &Manifest,
    old: &Package,
    env: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Vec<Object>> {
    let err = match render::render_package(manifest, old, env) {
        Ok(r) => return Ok(r.objects),
        Err(err) => err,
    };
    let what = || format!("the current version of `{}` does not render", old.name);
    let (check, misses) =
        render::render_package_noting_misses(manifest, old, env).with_context(what)?;
    if misses.is_empty() {
        return Err(err).with_context(what);
    }
    notes.push(format!(
        "{} {} does not render ({} overlay operation(s) match nothing): compared without them",
        old.name,
        old.version_in(env),
        misses.len()
    ));
    Ok(check.objects)
}

/// What a report shows as the version an environment ran before the package was installed
/// there.
pub const NOT_INSTALLED: &str = "(not installed)";

/// Upstream diff, overlay check of the renders in `checked`, and the rendered diff of one
/// package in `env` (`None`: the render without `--env`), which is among `checked`.
fn analyse(
    manifest: &Manifest,
    old: &Package,
    staged: &Manifest,
    new: &Package,
    env: Option<&str>,
    checked: &[Option<&str>],
) -> Result<PackageUpgrade> {
    let (old_view, new_view) = (old.for_env(env), new.for_env(env));
    // A package not installed in `env` yet is compared with nothing: every object is new.
    let installed = old.installed_in(env);
    // The diff starts from what is vendored now: without it there is nothing to compare.
    let old_upstream = if installed {
        render::read_upstream(manifest, &old_view, env)
            .with_context(|| format!("reading the current version of `{}`", old.name))?
    } else {
        Vec::new()
    };
    let new_upstream = render::read_upstream(staged, &new_view, env)?;
    let mut notes = Vec::new();
    let old_objects = if installed {
        current_objects(manifest, old, env, &mut notes)?
    } else {
        Vec::new()
    };

    let mut broken: BTreeMap<Miss, Vec<String>> = BTreeMap::new();
    let mut env_check = None;
    for e in checked {
        let (check, misses) = render::render_package_noting_misses(staged, new, *e)?;
        for key in &misses {
            broken
                .entry(key.clone())
                .or_default()
                .push(e.unwrap_or(render::DEFAULT_ENV).to_owned());
        }
        if *e == env {
            env_check = Some(check);
        }
    }
    let new_render = match env_check {
        Some(check) => check,
        None => render::render_package(staged, new, env)?,
    };
    let (new_objects, warnings) = (new_render.objects, new_render.warnings);
    Ok(PackageUpgrade {
        package: new.name.clone(),
        environment: env.map(str::to_owned),
        from: if installed {
            old_view.version.raw.clone()
        } else {
            NOT_INSTALLED.to_owned()
        },
        to: new_view.version.raw.clone(),
        upstream: changes::compare(old_upstream, new_upstream),
        defaults: default_values(manifest, &old_view, staged, &new_view, installed)?,
        rendered: changes::compare(old_objects, new_objects),
        render_warnings: warnings,
        broken_overlays: broken
            .into_iter()
            .map(|(miss, environments)| BrokenOverlay {
                package: format!("{} {}", new.name, new_view.version),
                file: miss.overlay,
                operation: miss.operation,
                selector: miss.selector,
                environments,
            })
            .collect(),
        notes,
    })
}

/// The upstream's default settings of both versions (a chart's values.yaml), compared as one
/// object `ChartValues <package>` whose `values` are the file's; empty for sources without
/// them.
fn default_values(
    manifest: &Manifest,
    old: &PackageVersion,
    staged: &Manifest,
    new: &PackageVersion,
    installed: bool,
) -> Result<Vec<ObjectChange>> {
    let Some(file) = new.source.renderer().and_then(Renderer::defaults_file) else {
        return Ok(Vec::new());
    };
    let read = |m: &Manifest, view: &PackageVersion| -> Result<Vec<Object>> {
        let path = m.package_vendor_dir(view).join(&file);
        let Ok(text) = fs::read_to_string(&path) else {
            return Ok(Vec::new());
        };
        let values: Value =
            crate::yaml::from_str_flavored(&text, &path, crate::yaml::Flavor::Kubernetes)
                .map_err(anyhow::Error::new)?;
        Ok(vec![Object(json!({
            "apiVersion": "kpin.dev/v1",
            "kind": "ChartValues",
            "metadata": {"name": view.name},
            "values": values,
        }))])
    };
    let before = if installed {
        read(manifest, old)?
    } else {
        Vec::new()
    };
    Ok(changes::compare(before, read(staged, new)?))
}
