//! `kpin sync`: bring vendor/ and kpin.lock in line with kpin.yaml, all or nothing.
//!
//! Every version in use of every package (the package's and its environments') is first
//! prepared (resolved, downloaded, verified, staged) without touching vendor/ or the lockfile.
//! Only when all succeeded do the staged directories, the lockfile and the removal of stale
//! directories go in, together, as one [`Transaction`]: a sync that fails or is killed at any
//! point leaves the previous lockfile and vendor tree, or the new ones.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use futures::StreamExt;
use serde::Serialize;

use crate::error::HintExt;
use crate::fetch::source::{Fetcher, RenderInput, RenderOptions, Renderer};
use crate::fetch::{
    self, Cache, Client, DigestMismatch, Expected, NetOptions, PinSource, SourceFile,
};
use crate::fsutil;
use crate::manifest::{Manifest, Package, PackageVersion, Pins};
use crate::progress::Reporter;
use crate::render::RenderDigests;
use crate::vendoring::lockfile::{
    LockedFile, LockedPackage, LockedRender, LockedVersion, Lockfile, RENDERED,
};
use crate::vendoring::transaction::Transaction;
use crate::vendoring::vendor::{self, Extra, VersionDir};
use crate::vendoring::verify;

/// Computes the render-stage lock fields of a package once its files are vendored.
///
/// Sync calls it for every package after vendor/ is up to date and before the lockfile is
/// written. Any `Fn(&Manifest, &Package) -> Result<RenderDigests>` closure implements it.
pub trait LockHook: Send + Sync {
    fn digests(&self, manifest: &Manifest, package: &Package) -> Result<RenderDigests>;
}

impl<F> LockHook for F
where
    F: Fn(&Manifest, &Package) -> Result<RenderDigests> + Send + Sync,
{
    fn digests(&self, manifest: &Manifest, package: &Package) -> Result<RenderDigests> {
        self(manifest, package)
    }
}

pub struct SyncOptions<'a> {
    /// The lockfile is the truth: fail with drift if it is missing or would change.
    pub locked: bool,
    /// Never touch the network.
    pub offline: bool,
    /// Packages prepared at the same time.
    pub jobs: usize,
    pub net: NetOptions,
    pub cache_dir: PathBuf,
    /// Fills `overlays_digest` and `rendered`; without it the lockfile's values are kept for
    /// packages whose files did not change.
    pub hook: Option<&'a dyn LockHook>,
    /// kpin.yaml's text as this sync makes it (`kpin add`), written in the same transaction as
    /// kpin.lock and vendor/; `manifest` must be its parse.
    pub manifest_text: Option<&'a str>,
    /// How sources that render (charts) may render.
    pub render: RenderOptions,
}

/// What a sync did, for the summary line and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub packages: Vec<VendoredPackage>,
    /// Whether kpin.lock was (re)written.
    pub lock_written: bool,
    /// Stale paths removed from vendor/, relative to the manifest directory.
    pub removed: Vec<String>,
}

impl SyncReport {
    pub fn downloaded_files(&self) -> usize {
        self.packages.iter().map(|p| p.downloaded).sum()
    }
    pub fn downloaded_bytes(&self) -> u64 {
        self.packages.iter().map(|p| p.bytes).sum()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VendoredPackage {
    pub name: String,
    pub version: String,
    /// Files downloaded from the network.
    pub downloaded: usize,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Files taken from the cache.
    pub cached: usize,
    /// Whether `vendor/<name>/<version>` was (re)written.
    pub vendored: bool,
}

/// What to do when vendor/ cannot hold the vendored releases.
const VENDOR_HINT: &str = "kpin keeps the vendored releases there: make it a writable directory, or point `vendorDir` in kpin.yaml elsewhere";

/// Run a sync. See the module documentation for the order of effects.
pub async fn sync(
    manifest: &Manifest,
    options: &SyncOptions<'_>,
    reporter: &dyn Reporter,
) -> Result<SyncReport> {
    check_vendor_dir(manifest)?;
    let lock_path = manifest.lock_path();
    let old_lock = Lockfile::load(&lock_path)?;
    if options.locked {
        verify::require_current(manifest, old_lock.as_ref())?;
    }

    // What is fetched and vendored: each package at each version in use.
    let units: Vec<PackageVersion> = manifest
        .packages
        .values()
        .flat_map(|p| p.versions_in_use().into_iter().map(|v| p.at_version(v)))
        .collect();
    let mut txn = Transaction::begin("sync", &manifest.root, &manifest.vendor_dir)
        .with_context(|| {
            format!(
                "cannot write to vendorDir {}",
                manifest.vendor_dir.display()
            )
        })
        .hint(VENDOR_HINT)?;
    let session = Session {
        manifest,
        old_lock: old_lock.as_ref(),
        offline: options.offline,
        cache: Cache::new(options.cache_dir.clone()),
        net: options.net.clone(),
        client: OnceLock::new(),
        staging: staging_dirs(manifest, &txn, &units),
        render: options.render,
        reporter,
    };

    // Phase 1: prepare every version of every package; nothing visible changes.
    let prepared = session.prepare_all(&units, options.jobs).await?;

    // Phase 2: the lockfile as it will be, checked before vendor/ changes in --locked mode.
    let mut lock = planned_lock(manifest, old_lock.as_ref(), &prepared);
    if options.locked && options.hook.is_none() {
        verify::require_unchanged(manifest, old_lock.as_ref(), &lock)?;
    }

    // Phase 3: staged version directories replace the vendored ones (at the commit).
    let mut report = replace_staged(manifest, &mut txn, &prepared);

    // Phase 4: render-stage digests, computed from the files as they will be vendored.
    if let Some(hook) = options.hook {
        add_render_digests(hook, manifest, txn.stage_root(), &mut lock, reporter);
    }

    // Phase 5: the lockfile.
    let mut locked = Vec::new();
    if options.locked {
        verify::require_unchanged(manifest, old_lock.as_ref(), &lock)?;
    } else {
        locked = changed_entries(old_lock.as_ref(), &lock);
        let text = lock.to_text();
        report.lock_written = fs::read(&lock_path).ok().as_deref() != Some(text.as_bytes());
        txn.write_file(&lock_path, text.into_bytes());
    }

    // Phase 6: stale vendor directories (old versions, removed packages) that kpin manages.
    report.removed = stale_dirs(manifest, old_lock.as_ref(), txn.stage_root(), reporter)?;
    for dir in &report.removed {
        txn.remove_dir(&manifest.root.join(dir));
    }

    if let Some(text) = options.manifest_text {
        txn.write_file(&manifest.path, text.as_bytes().to_vec());
    }

    // Phase 7: all of it at once.
    txn.commit(reporter)?;
    announce(&report, &locked, reporter);
    Ok(report)
}

/// vendorDir must be a directory of its own: sync removes stale directories in it.
fn check_vendor_dir(manifest: &Manifest) -> Result<()> {
    if fs::canonicalize(&manifest.vendor_dir).ok() == fs::canonicalize(&manifest.root).ok() {
        return Err(anyhow::anyhow!(
            "{}: vendorDir must not be the directory of kpin.yaml",
            manifest.path.display()
        ))
        .hint("kpin removes stale directories there; use a dedicated directory such as `vendor`");
    }
    if manifest.vendor_dir.exists() && !manifest.vendor_dir.is_dir() {
        return Err(anyhow::anyhow!(
            "{}: vendorDir {} is not a directory",
            manifest.path.display(),
            manifest.vendor_dir.display()
        ))
        .hint(VENDOR_HINT);
    }
    Ok(())
}

/// Where each unit's new vendor directory is staged in the transaction, by (package, version).
fn staging_dirs(
    manifest: &Manifest,
    txn: &Transaction,
    units: &[PackageVersion],
) -> BTreeMap<(String, String), PathBuf> {
    units
        .iter()
        .map(|p| {
            (
                (p.name.clone(), p.version.raw.clone()),
                txn.staging_for(&manifest.package_vendor_dir(p)),
            )
        })
        .collect()
}

/// Phase 2 of a sync: kpin.lock for the prepared files, keeping the old render digests of
/// every package they still describe.
fn planned_lock(
    manifest: &Manifest,
    old_lock: Option<&Lockfile>,
    prepared: &[(&PackageVersion, Staged)],
) -> Lockfile {
    let mut lock = Lockfile::new();
    for package in manifest.packages.values() {
        let versions: Vec<LockedVersion> = prepared
            .iter()
            .filter(|(view, _)| view.name == package.name)
            .map(|(view, p)| LockedVersion::new(view, p.files.clone(), p.rendered_from.clone()))
            .collect();
        let fresh = LockedPackage::new(manifest, package, versions, None);
        // The render digests still describe the files when every version has the same files
        // and every environment the same version.
        let unchanged = old_lock
            .and_then(|l| l.packages.get(&package.name))
            .filter(|o| {
                o.environments == fresh.environments
                    && o.versions.len() == fresh.versions.len()
                    && o.versions.iter().zip(&fresh.versions).all(|(a, b)| {
                        a.version == b.version
                            && a.files == b.files
                            && a.rendered_from == b.rendered_from
                    })
            });
        let mut entry = fresh;
        entry.set_digests(unchanged.and_then(LockedPackage::digests));
        lock.packages.insert(package.name.clone(), entry);
    }
    lock
}

/// Phase 3 of a sync: each staged directory replaces its vendored one at the commit. The
/// report of what each unit took.
fn replace_staged(
    manifest: &Manifest,
    txn: &mut Transaction,
    prepared: &[(&PackageVersion, Staged)],
) -> SyncReport {
    let mut report = SyncReport::default();
    for (view, p) in prepared {
        if p.replacement {
            txn.replace_dir(&manifest.package_vendor_dir(view), p.files.clone());
        }
        report.packages.push(VendoredPackage {
            name: view.name.clone(),
            version: view.version.raw.clone(),
            downloaded: p.downloaded,
            bytes: p.bytes,
            cached: p.cached,
            vendored: p.replacement,
        });
    }
    report
}

/// Phase 4 of a sync: render-stage digests, computed from the files as they will be vendored
/// (staged ones from the staging tree at `stage_root`, the others from vendor/). A package
/// that does not render (e.g. an overlay that no longer matches after a version bump) is
/// still vendored and locked: fetching is sync's job, and `kpin render`/`kpin verify` report
/// the overlay error.
fn add_render_digests(
    hook: &dyn LockHook,
    manifest: &Manifest,
    stage_root: &Path,
    lock: &mut Lockfile,
    reporter: &dyn Reporter,
) {
    let staged_view = Manifest {
        staged: Some(stage_root.to_path_buf()),
        ..manifest.clone()
    };
    for package in manifest.packages.values() {
        let digests = match hook.digests(&staged_view, package) {
            Ok(digests) => Some(digests),
            Err(err) => {
                reporter.warn(&format!(
                    "{}: does not render, so kpin.lock records no render digests for it: {}",
                    package.name,
                    crate::error::summary(&err)
                ));
                None
            }
        };
        if let Some(entry) = lock.packages.get_mut(&package.name) {
            entry.set_digests(digests);
        }
    }
}

/// The entries of `lock` that differ from the old lockfile's, as `name version, version`.
fn changed_entries(old_lock: Option<&Lockfile>, lock: &Lockfile) -> Vec<String> {
    let mut changed = Vec::new();
    for (name, entry) in &lock.packages {
        if old_lock.and_then(|l| l.packages.get(name)) != Some(entry) {
            let versions: Vec<&str> = entry.versions.iter().map(|v| v.version.as_str()).collect();
            changed.push(format!("{name} {}", versions.join(", ")));
        }
    }
    changed
}

/// After the commit: one status line per directory vendored, lock entry written and stale
/// directory removed.
fn announce(report: &SyncReport, locked: &[String], reporter: &dyn Reporter) {
    for p in report.packages.iter().filter(|p| p.vendored) {
        reporter.status("Vendored", &format!("{} {}", p.name, p.version));
    }
    for entry in locked {
        reporter.status("Locked", entry);
    }
    for dir in &report.removed {
        reporter.status("Removed", dir);
    }
}

/// One package version ready to be swapped in.
pub struct Staged {
    pub files: Vec<LockedFile>,
    pub rendered_from: Option<LockedRender>,
    /// Whether a replacement for `vendor/<package>/<version>` was staged (it was not right).
    pub replacement: bool,
    pub downloaded: usize,
    pub bytes: u64,
    pub cached: usize,
}

impl Staged {
    /// The files obtained, and where they came from; nothing staged yet.
    fn of(obtained: &[ReadyFile]) -> Staged {
        let mut files: Vec<LockedFile> = obtained.iter().map(|o| o.locked.clone()).collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Staged {
            files,
            rendered_from: None,
            replacement: false,
            downloaded: obtained.iter().filter(|o| o.downloaded).count(),
            bytes: obtained
                .iter()
                .filter(|o| o.downloaded)
                .map(|o| o.locked.size)
                .sum(),
            cached: obtained.iter().filter(|o| o.cached).count(),
        }
    }
}

/// A file to obtain, and the digest it must have when one is known in advance.
struct Wanted {
    source: SourceFile,
    expected: Option<(String, PinSource)>,
}

/// A file obtained and verified: where its bytes are now.
struct ReadyFile {
    locked: LockedFile,
    content: PathBuf,
    downloaded: bool,
    cached: bool,
}

/// What preparing each unit of one sync shares.
struct Session<'a> {
    manifest: &'a Manifest,
    old_lock: Option<&'a Lockfile>,
    offline: bool,
    cache: Cache,
    net: NetOptions,
    /// Built on first use, so runs that need no network never load certificates.
    client: OnceLock<Client>,
    /// Where each package version's new vendor directory is staged.
    staging: BTreeMap<(String, String), PathBuf>,
    render: RenderOptions,
    reporter: &'a dyn Reporter,
}

impl Session<'_> {
    fn client(&self) -> Result<&Client> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = Client::new(self.net.clone())?;
        Ok(self.client.get_or_init(|| client))
    }

    /// Phase 1 of a sync: prepare every unit, `jobs` at a time. In package and version order;
    /// the first error in that order is returned, and the others are warned about.
    async fn prepare_all<'p>(
        &self,
        units: &'p [PackageVersion],
        jobs: usize,
    ) -> Result<Vec<(&'p PackageVersion, Staged)>> {
        let task = self.reporter.task("Syncing", units.len() as u64);
        let mut results: Vec<(&PackageVersion, Result<Staged>)> = futures::stream::iter(units)
            .map(|package| {
                let task = &task;
                async move {
                    let result = self.prepare(package).await;
                    task.advance(1);
                    (package, result)
                }
            })
            .buffer_unordered(jobs.max(1))
            .collect()
            .await;
        task.finish();
        results.sort_by(|a, b| {
            a.0.name
                .cmp(&b.0.name)
                .then_with(|| a.0.version.cmp_order(&b.0.version))
        });
        let mut prepared = Vec::with_capacity(results.len());
        let mut first_error = None;
        for (package, result) in results {
            match result {
                Ok(p) => prepared.push((package, p)),
                Err(e) if first_error.is_none() => first_error = Some(e),
                // The first error is returned; the others must not be lost.
                Err(e) => self.reporter.warn(&crate::error::summary(&e)),
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(prepared),
        }
    }

    /// Prepare one package version: the files it must have, each obtained and verified, and a
    /// new vendor directory staged unless the vendored one holds exactly those files.
    async fn prepare(&self, package: &PackageVersion) -> Result<Staged> {
        let vendor_dir = self.manifest.package_vendor_dir(package);
        let vendored = vendor::scan(&vendor_dir)?;
        // Local sources are re-read every time: their files can change without kpin.yaml changing.
        let reusable = self
            .old_lock
            .and_then(|l| l.packages.get(&package.name))
            .and_then(|e| e.version(&package.version.raw))
            .filter(|e| verify::entry_is_current(self.manifest, e, package))
            .filter(|_| !package.source.rereads());
        if let Some(renderer) = package.source.renderer() {
            return self
                .prepare_rendered(package, renderer, reusable, &vendored)
                .await;
        }
        let mut wanted = match reusable {
            Some(entry) => self.locked_files(package, entry)?,
            None => self.resolved_files(package).await?,
        };
        if reusable.is_some() {
            self.refresh_asset_urls(package, &mut wanted, &vendored)
                .await?;
        }
        let obtained = futures::future::try_join_all(
            wanted.iter().map(|w| self.obtain(package, w, &vendored)),
        )
        .await?;
        let mut prepared = Staged::of(&obtained);
        let files: Vec<LockedFile> = obtained.iter().map(|o| o.locked.clone()).collect();
        if !vendored.holds_exactly(&files) {
            self.stage(package, &obtained, &prepared)?;
            prepared.replacement = true;
        }
        Ok(prepared)
    }

    /// The files kpin.lock records for a version it locked as kpin.yaml still describes it.
    fn locked_files(&self, package: &PackageVersion, entry: &LockedVersion) -> Result<Vec<Wanted>> {
        entry
            .files
            .iter()
            .map(|f| {
                Ok(Wanted {
                    source: fetch::locked_source(
                        self.manifest.project(),
                        &self.manifest.lock_path(),
                        &f.name,
                        &f.from,
                    )
                    .with_context(|| format!("package `{}`", package.name))?,
                    expected: Some((f.sha256.clone(), PinSource::Lockfile)),
                })
            })
            .collect()
    }

    /// The files of a version kpin.lock does not record (or not as kpin.yaml now describes
    /// it), resolved from its source, each with its `sha256` pin if it has one.
    async fn resolved_files(&self, package: &PackageVersion) -> Result<Vec<Wanted>> {
        // Only the GitHub API is needed to resolve; URL files are fetched in `obtain`.
        let client = if !self.offline && package.source.lookup_online() {
            Some(self.client()?)
        } else {
            None
        };
        let files = resolve_files(self.manifest, package, client).await?;
        check_pins_match(package, &files)?;
        let count = files.len();
        Ok(files
            .into_iter()
            .map(|source| Wanted {
                expected: package
                    .pins
                    .for_file(&source.name, count)
                    .map(|d| (d.to_owned(), PinSource::Pin)),
                source,
            })
            .collect())
    }

    /// Assets of private repositories download only through the API: when a locked GitHub
    /// file must be downloaded again, look the release up for its current asset URLs (the
    /// bytes are still checked against the lockfile).
    async fn refresh_asset_urls(
        &self,
        package: &PackageVersion,
        wanted: &mut [Wanted],
        vendored: &VersionDir,
    ) -> Result<()> {
        let missing = |w: &Wanted| {
            w.expected.as_ref().is_some_and(|(sha, _)| {
                vendored
                    .files
                    .get(&w.source.name)
                    .is_none_or(|(v, _)| v != sha)
                    && self.cache.get(sha).is_none()
            })
        };
        if self.offline || !package.source.lookup_online() || !wanted.iter().any(missing) {
            return Ok(());
        }
        let fresh = resolve_files(self.manifest, package, Some(self.client()?)).await?;
        for w in wanted {
            if let Some(f) = fresh.iter().find(|f| f.name == w.source.name) {
                w.source.origin = f.origin.clone();
            }
        }
        Ok(())
    }

    /// Prepare a version of a source that renders (a chart): kept as vendored when kpin.lock
    /// records it as kpin.yaml describes it and vendor/ holds exactly the locked render (no
    /// network, no renderer: what CI's `sync --locked` does); otherwise rendered again, and
    /// then it must render to the locked files when the lock is current.
    async fn prepare_rendered(
        &self,
        package: &PackageVersion,
        renderer: &dyn Renderer,
        reusable: Option<&LockedVersion>,
        vendored: &VersionDir,
    ) -> Result<Staged> {
        let locked = reusable.and_then(|e| e.rendered_from.as_ref().map(|r| (e, r)));
        if let Some((entry, from)) = locked
            && vendored.holds_exactly(&entry.files)
        {
            return Ok(Staged {
                files: entry.files.clone(),
                rendered_from: Some(from.clone()),
                replacement: false,
                downloaded: 0,
                bytes: 0,
                cached: 0,
            });
        }
        let client = if self.offline {
            None
        } else {
            Some(self.client()?)
        };
        let staged = &self.staging[&(package.name.clone(), package.version.raw.clone())];
        let fetching = Fetch {
            client,
            cache: &self.cache,
            render: self.render,
            reporter: self.reporter,
        };
        let mut out = render_version(
            self.manifest,
            package,
            renderer,
            locked.map(|(_, r)| r),
            staged,
            &fetching,
        )
        .await?;
        if let Some((entry, from)) = locked
            && entry.files != out.files
        {
            return Err(anyhow::anyhow!(
                "package `{}` {} rendered to other files than kpin.lock records (locked render by {}, this one by {})",
                package.name,
                package.version,
                from.renderer,
                out.rendered_from.as_ref().map_or("?", |r| r.renderer.as_str())
            ))
            .hint("render with the helm kpin.lock names, or delete the package's entry from kpin.lock, run `kpin sync` and review the new render");
        }
        out.replacement = true;
        Ok(out)
    }

    /// Copy the obtained files into the package version's staging directory.
    fn stage(
        &self,
        package: &PackageVersion,
        obtained: &[ReadyFile],
        prepared: &Staged,
    ) -> Result<()> {
        if prepared.downloaded == 0 && prepared.cached > 0 {
            self.reporter
                .status("Cached", &format!("{} {}", package.name, package.version));
        }
        let staged = &self.staging[&(package.name.clone(), package.version.raw.clone())];
        fs::create_dir_all(staged)
            .with_context(|| format!("creating {}", staged.display()))
            .with_context(|| {
                format!(
                    "cannot write to vendorDir {}",
                    self.manifest.vendor_dir.display()
                )
            })
            .hint(VENDOR_HINT)?;
        for o in obtained {
            fsutil::copy_file(&o.content, &staged.join(&o.locked.name))?;
        }
        Ok(())
    }

    /// Get one file's verified bytes: from vendor/, the cache, the local source or the network.
    async fn obtain(
        &self,
        package: &PackageVersion,
        wanted: &Wanted,
        vendored: &VersionDir,
    ) -> Result<ReadyFile> {
        let name = &wanted.source.name;
        let locked_file = |sha256: String, size: u64| LockedFile {
            name: name.clone(),
            from: wanted.source.locked_from.clone(),
            sha256,
            size,
        };
        let expected = wanted.expected.as_ref().map(|(sha, _)| sha.as_str());
        if let Some((sha, size)) =
            expected.and_then(|e| vendored.files.get(name).filter(|(sha, _)| sha == e))
        {
            self.reporter.debug(&format!(
                "{} {name}: vendored copy matches sha256 {sha}",
                package.name
            ));
            return Ok(ReadyFile {
                locked: locked_file(sha.clone(), *size),
                content: vendored.dir.join(name),
                downloaded: false,
                cached: false,
            });
        }
        let client = if wanted.source.origin.is_remote() && !self.offline {
            Some(self.client()?)
        } else {
            None
        };
        let announce = || {
            self.reporter.status(
                "Fetching",
                &format!("{} {} ({name})", package.name, package.version),
            );
        };
        let got = match fetch::obtain(
            &package.name,
            &wanted.source,
            wanted.expected.as_ref().map(|(sha256, against)| Expected {
                sha256,
                against: *against,
            }),
            &self.cache,
            client,
            self.reporter,
            &announce,
        )
        .await
        {
            Ok(got) => got,
            Err(e) if e.downcast_ref::<fetch::OfflineError>().is_some() => {
                return Err(self.offline_error(package, wanted, vendored));
            }
            Err(e) if crate::error::is::<DigestMismatch>(&e) => return Err(e),
            Err(e) if wanted.source.origin.is_remote() => {
                return Err(e.context(format!("package `{}` file `{name}`", package.name)));
            }
            Err(e) => return Err(e.context(format!("package `{}`", package.name))),
        };
        Ok(ReadyFile {
            locked: locked_file(got.sha256, got.size),
            content: got.content,
            downloaded: got.found == fetch::Found::Downloaded,
            cached: got.found == fetch::Found::Cache,
        })
    }

    /// Why `--offline` cannot get a file: the vendored copy was modified, or it was never
    /// vendored or cached.
    fn offline_error(
        &self,
        package: &PackageVersion,
        wanted: &Wanted,
        vendored: &VersionDir,
    ) -> anyhow::Error {
        let name = &wanted.source.name;
        if let (Some((sha, _)), Some((expected, _))) = (vendored.files.get(name), &wanted.expected)
        {
            let shown = fsutil::display_relative(&vendored.dir.join(name), &self.manifest.root);
            return anyhow::anyhow!(
                "package `{}`: {shown} was modified (sha256 {sha}, locked {expected}), and --offline forbids downloading it again from {}",
                package.name,
                wanted.source.locked_from
            )
            .hint(format!(
                "restore it from version control (`git checkout -- {shown}`), or run `kpin sync` with network access to fetch it again"
            ));
        }
        let locked = matches!(wanted.expected, Some((_, PinSource::Lockfile)));
        let why = if locked {
            "is neither in vendor/ nor in the cache"
        } else {
            "is not locked yet"
        };
        anyhow::anyhow!(
            "package `{}` file `{name}` {why}, and --offline forbids downloading {}",
            package.name,
            wanted.source.locked_from
        )
        .hint("run `kpin sync` once with network access, or restore vendor/ from version control")
    }
}

/// What obtaining and rendering a version needs besides the package.
pub struct Fetch<'a> {
    /// `None` offline.
    pub client: Option<&'a Client>,
    pub cache: &'a Cache,
    pub render: RenderOptions,
    pub reporter: &'a dyn Reporter,
}

/// Stage `package` at a version kpin.lock does not know into `dir`: its files resolved,
/// obtained (checked against the digest their publisher gives where there is one; the `sha256`
/// pins are not used, they pin the package's previous version until they are rewritten from
/// these files) and copied, or, for a source that renders, rendered there. `upgrade` stages its
/// new versions through here.
pub async fn stage_new_version(
    manifest: &Manifest,
    package: &PackageVersion,
    dir: &Path,
    fetching: &Fetch<'_>,
) -> Result<Staged> {
    if let Some(renderer) = package.source.renderer() {
        return render_version(manifest, package, renderer, None, dir, fetching).await;
    }
    let files = resolve_files(manifest, package, fetching.client).await?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut obtained = Vec::with_capacity(files.len());
    for file in &files {
        let ready = obtain_input(package, file, None, fetching).await?;
        fsutil::copy_file(&ready.content, &dir.join(&file.name))?;
        obtained.push(ready);
    }
    let mut staged = Staged::of(&obtained);
    staged.replacement = true;
    Ok(staged)
}

/// Resolve and obtain what a rendering source renders from (checked against `locked` when
/// kpin.lock records it, else against the digest its publisher gives), render it, and write the
/// rendered files into `dir`. Sync and upgrade both render through here.
pub async fn render_version(
    manifest: &Manifest,
    package: &PackageVersion,
    renderer: &dyn Renderer,
    locked: Option<&LockedRender>,
    dir: &Path,
    fetching: &Fetch<'_>,
) -> Result<Staged> {
    let at = || format!("package `{}` {}", package.name, package.version);
    let project = manifest.project();
    let mut inputs = Vec::new();
    let mut obtained = Vec::new();
    for file in resolve_files(manifest, package, fetching.client).await? {
        let ready = obtain_input(package, &file, locked, fetching)
            .await
            .with_context(at)?;
        inputs.push(RenderInput {
            source: file,
            content: ready.content.clone(),
        });
        obtained.push(ready);
    }
    let mut staged = Staged::of(&obtained);
    let mut sources: Vec<LockedFile> = obtained.into_iter().map(|r| r.locked).collect();
    fetching.reporter.status(
        "Rendering",
        &format!("{} {}", package.name, package.version),
    );
    let extra = ExtraInputs {
        package,
        locked,
        fetching,
        obtained: std::sync::Mutex::new(Vec::new()),
    };
    let (rendered, facts) = renderer
        .render(
            project,
            &package.version,
            &inputs,
            fetching.render,
            &extra,
            fetching.reporter,
        )
        .await
        .with_context(at)?;
    sources.extend(
        extra
            .obtained
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    for r in rendered {
        fsutil::check_path_segment(&r.name).with_context(at)?;
        fsutil::write_atomic(&dir.join(&r.name), r.text.as_bytes())?;
        files.push(LockedFile {
            name: r.name,
            from: RENDERED.to_owned(),
            sha256: crate::digest::sha256_hex(r.text.as_bytes()),
            size: r.text.len() as u64,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    staged.files = files;
    staged.rendered_from = Some(LockedRender {
        files: sources,
        renderer: facts.renderer,
        values: facts.values,
        dependencies: facts.dependencies,
    });
    staged.replacement = true;
    Ok(staged)
}

/// The files of `package` at its version, named by its source (`client` is `None` offline).
async fn resolve_files(
    manifest: &Manifest,
    package: &PackageVersion,
    client: Option<&Client>,
) -> Result<Vec<SourceFile>> {
    fetch::resolve(
        manifest.project(),
        &package.name,
        &package.source,
        &package.version,
        client,
    )
    .await
    .with_context(|| format!("package `{}` {}", package.name, package.version))
}

/// What a render fetches beyond its resolved files (a chart's dependencies its archive lacks),
/// each checked like those and recorded with them in kpin.lock.
struct ExtraInputs<'a> {
    package: &'a PackageVersion,
    locked: Option<&'a LockedRender>,
    fetching: &'a Fetch<'a>,
    obtained: std::sync::Mutex<Vec<LockedFile>>,
}

impl Fetcher for ExtraInputs<'_> {
    fn client(&self) -> Option<&Client> {
        self.fetching.client
    }

    fn fetch<'a>(
        &'a self,
        file: &'a SourceFile,
    ) -> futures::future::BoxFuture<'a, Result<PathBuf>> {
        Box::pin(async move {
            let ready = obtain_input(self.package, file, self.locked, self.fetching).await?;
            if let Ok(mut obtained) = self.obtained.lock() {
                obtained.push(ready.locked);
            }
            Ok(ready.content)
        })
    }
}

/// One file of a source, obtained and checked against kpin.lock's digest (from `locked`, what
/// a rendered version was rendered from), else its publisher's.
async fn obtain_input(
    package: &PackageVersion,
    file: &SourceFile,
    locked: Option<&LockedRender>,
    fetching: &Fetch<'_>,
) -> Result<ReadyFile> {
    let lock_digest = locked
        .and_then(|r| r.files.iter().find(|f| f.name == file.name))
        .map(|f| (f.sha256.clone(), PinSource::Lockfile));
    let expected =
        lock_digest.or_else(|| file.expected.clone().map(|sha| (sha, PinSource::Publisher)));
    let announce = || {
        fetching.reporter.status(
            "Fetching",
            &format!("{} {} ({})", package.name, package.version, file.name),
        );
    };
    let got = fetch::obtain(
        &package.name,
        file,
        expected.as_ref().map(|(sha256, against)| Expected {
            sha256,
            against: *against,
        }),
        fetching.cache,
        fetching.client,
        fetching.reporter,
        &announce,
    )
    .await?;
    Ok(ReadyFile {
        locked: LockedFile {
            name: file.name.clone(),
            from: file.locked_from.clone(),
            sha256: got.sha256,
            size: got.size,
        },
        content: got.content,
        downloaded: got.found == fetch::Found::Downloaded,
        cached: got.found == fetch::Found::Cache,
    })
}

/// Pins by file name must name files the source actually has.
fn check_pins_match(package: &PackageVersion, files: &[SourceFile]) -> Result<()> {
    if let Pins::ByFile(pins) = &package.pins {
        for name in pins.keys() {
            if !files.iter().any(|f| &f.name == name) {
                let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
                return Err(anyhow::anyhow!(
                    "package `{}`: sha256 pins file `{name}`, which the source does not have",
                    package.name
                ))
                .hint(format!("its files are: {}", names.join(", ")));
            }
        }
    }
    Ok(())
}

/// The directories below vendor/ that kpin put there and no longer needs (see
/// [`vendor::extras`]), relative to the project root. What is not kpin's stays, named in a
/// warning; leftovers of interrupted runs are deleted at once.
fn stale_dirs(
    manifest: &Manifest,
    old_lock: Option<&Lockfile>,
    stage: &Path,
    reporter: &dyn Reporter,
) -> Result<Vec<String>> {
    let shown = |p: &Path| fsutil::display_relative(p, &manifest.root);
    let mut stale = Vec::new();
    for extra in vendor::extras(manifest, old_lock, Some(stage))? {
        match extra {
            Extra::Stale(path) => stale.push(shown(&path)),
            Extra::Foreign(path) => reporter.warn(&format!(
                "{} is not a package kpin manages (not in kpin.yaml or kpin.lock); kpin leaves it alone",
                shown(&path)
            )),
            Extra::Leftover(path) => {
                let removed = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    Ok(stale)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::{Exit, exit_code_for};
    use crate::progress::{Recorder, Silent};

    /// A scratch project with `files` (path, text) next to a kpin.yaml holding `manifest`.
    pub(crate) fn project_with(
        manifest: &str,
        files: &[(&str, &str)],
    ) -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        fs::write(dir.path().join("kpin.yaml"), manifest).unwrap();
        let manifest = Manifest::load(&dir.path().join("kpin.yaml")).unwrap();
        (dir, manifest)
    }

    /// A project with one local-path package (no network needed).
    fn project() -> (tempfile::TempDir, Manifest) {
        project_with(
            "packages:\n  a:\n    version: 1.0.0\n    path: mirror/{version}\n",
            &[("mirror/1.0.0/a.yaml", "kind: ConfigMap\n")],
        )
    }

    /// Offline sync settings with the cache inside the project.
    pub(crate) fn options<'a>(
        dir: &Path,
        locked: bool,
        hook: Option<&'a dyn LockHook>,
    ) -> SyncOptions<'a> {
        SyncOptions {
            locked,
            offline: true,
            jobs: 2,
            net: NetOptions::default(),
            cache_dir: dir.join(".cache"),
            hook,
            manifest_text: None,
            render: RenderOptions::default(),
        }
    }

    /// Sync on a private runtime, silently.
    pub(crate) fn run(manifest: &Manifest, options: &SyncOptions<'_>) -> Result<SyncReport> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(sync(manifest, options, &Silent))
    }

    fn digests(
        overlays: &str,
    ) -> impl Fn(&Manifest, &Package) -> Result<RenderDigests> + Send + Sync {
        let overlays = overlays.to_owned();
        move |_: &Manifest, p: &Package| {
            Ok(RenderDigests {
                overlays_digest: overlays.clone(),
                rendered: BTreeMap::from([("default".to_owned(), format!("render-of-{}", p.name))]),
            })
        }
    }

    #[test]
    fn the_hook_fills_render_digests_and_they_survive_a_sync_without_it() {
        let (dir, manifest) = project();
        let hook = digests("sha256:o1");
        run(&manifest, &options(dir.path(), false, Some(&hook))).unwrap();
        let lock = Lockfile::load(&manifest.lock_path()).unwrap().unwrap();
        assert_eq!(
            lock.packages["a"].overlays_digest.as_deref(),
            Some("sha256:o1")
        );
        assert_eq!(lock.packages["a"].rendered["default"], "render-of-a");

        let report = run(&manifest, &options(dir.path(), false, None)).unwrap();
        assert!(
            !report.lock_written,
            "unchanged files keep the recorded digests"
        );

        // New upstream bytes: the old render digests no longer describe anything.
        fs::write(dir.path().join("mirror/1.0.0/a.yaml"), "kind: Secret\n").unwrap();
        run(&manifest, &options(dir.path(), false, None)).unwrap();
        let lock = Lockfile::load(&manifest.lock_path()).unwrap().unwrap();
        assert_eq!(lock.packages["a"].overlays_digest, None);
        assert!(lock.packages["a"].rendered.is_empty());
    }

    #[test]
    fn locked_fails_with_drift_when_the_hook_would_change_the_lockfile() {
        let (dir, manifest) = project();
        run(
            &manifest,
            &options(dir.path(), false, Some(&digests("sha256:o1"))),
        )
        .unwrap();
        let before = fs::read(manifest.lock_path()).unwrap();
        assert!(
            run(
                &manifest,
                &options(dir.path(), true, Some(&digests("sha256:o1")))
            )
            .is_ok()
        );

        let err = run(
            &manifest,
            &options(dir.path(), true, Some(&digests("sha256:o2"))),
        )
        .unwrap_err();
        assert_eq!(exit_code_for(&err), Exit::Drift);
        assert!(crate::error::format_error(&err).contains("would change (--locked): package `a`"));
        assert_eq!(fs::read(manifest.lock_path()).unwrap(), before);
    }

    #[test]
    fn status_lines_describe_what_changed() {
        let (dir, manifest) = project();
        let recorder = Recorder::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(sync(
            &manifest,
            &options(dir.path(), false, None),
            &recorder,
        ))
        .unwrap();
        assert_eq!(recorder.lines(), ["Vendored a 1.0.0", "Locked a 1.0.0"]);
        let again = Recorder::default();
        rt.block_on(sync(&manifest, &options(dir.path(), false, None), &again))
            .unwrap();
        assert!(again.lines().is_empty(), "{:?}", again.lines());
        assert_eq!(
            fs::read_dir(&manifest.vendor_dir).unwrap().count(),
            1,
            "no staging leftovers"
        );
    }

    #[test]
    fn vendor_dir_must_not_be_the_project_root() {
        let (dir, manifest) = project_with(
            "vendorDir: .\npackages:\n  a:\n    version: 1.0.0\n    path: a-{version}.yaml\n",
            &[("a-1.0.0.yaml", "kind: ConfigMap\n")],
        );
        let err = run(&manifest, &options(dir.path(), false, None)).unwrap_err();
        assert!(
            err.to_string()
                .contains("vendorDir must not be the directory of kpin.yaml"),
            "{err}"
        );
    }
}
