//! Fetching release files: every source kind (`fetch/<kind>/`, behind `source::SourceKind`)
//! resolved to the same shape (named files at a URL or local path), obtained through the HTTP
//! client and the content-addressed cache, and checked against their expected digest.

pub mod cache;
pub mod chart;
pub mod github;
pub mod http;
pub mod path;
pub mod source;
pub mod url;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ::url::Url;
use anyhow::{Context, Result, bail};

pub use cache::Cache;
pub use http::{Auth, Client, Download, FetchError, NetOptions};

use crate::error::{HintExt, quote};
use crate::fsutil;
use crate::progress::Reporter;
use crate::version::Version;
pub use source::{Project, Source};

/// Prefix of lockfile URLs that name a file relative to kpin.yaml (local `path:` sources).
pub const PATH_PREFIX: &str = "path:";

/// One release file of a package: its name under `vendor/<package>/<version>/` and where its
/// bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub origin: Origin,
    /// What the lockfile records as the file's `url`.
    pub locked_from: String,
    /// The sha256 its publisher gives (a chart repository's index, an OCI layer digest).
    pub expected: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Remote { url: Url, auth: Auth },
    Local { path: PathBuf },
}

impl Origin {
    pub fn is_remote(&self) -> bool {
        matches!(self, Origin::Remote { .. })
    }
}

/// Where `obtain` found a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The content-addressed cache had the expected digest.
    Cache,
    /// A local source (`path:`, `file://`), read where it is.
    Local,
    /// Downloaded now (and cached).
    Downloaded,
}

/// One file's bytes, obtained: where they are now, their digest and size.
#[derive(Debug, Clone)]
pub struct Obtained {
    pub sha256: String,
    pub size: u64,
    pub content: PathBuf,
    pub found: Found,
}

/// The file must be downloaded and there is no network (`--offline`, or no client given).
#[derive(Debug, thiserror::Error)]
#[error("`{url}` must be downloaded, and the network is off")]
pub struct OfflineError {
    pub url: String,
}

/// What a file's digest was checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinSource {
    Lockfile,
    Pin,
    /// The digest the publisher gives (a chart repository's index, an OCI manifest).
    Publisher,
}

/// A file whose bytes are not the ones kpin.lock or a `sha256` pin expects.
#[derive(Debug, thiserror::Error)]
#[error(
    "sha256 mismatch for `{file}` of package `{package}` from {url}: expected {expected} ({}), got {actual}",
    match against { PinSource::Lockfile => "kpin.lock", PinSource::Pin => "sha256 pin in kpin.yaml", PinSource::Publisher => "the repository's digest" }
)]
pub struct DigestMismatch {
    pub package: String,
    pub file: String,
    pub url: String,
    pub expected: String,
    pub actual: String,
    pub against: PinSource,
}

/// The error for bytes that are not the expected ones, with what to do about it.
fn mismatch(
    package: &str,
    source: &SourceFile,
    expected: &Expected<'_>,
    actual: &str,
) -> anyhow::Error {
    let against = expected.against;
    let hint = match against {
        PinSource::Lockfile => {
            "the file changed upstream since it was locked; if that is expected, delete the package's entry from kpin.lock, run `kpin sync` and review the new files"
        }
        PinSource::Pin => "if the new file is trusted, update the `sha256` pin in kpin.yaml",
        PinSource::Publisher => {
            "the file is not the one the repository lists: a broken mirror or a tampered download; try again, and report it to the repository if it persists"
        }
    };
    anyhow::Error::new(DigestMismatch {
        package: package.to_owned(),
        file: source.name.clone(),
        url: source.locked_from.clone(),
        expected: expected.sha256.to_owned(),
        actual: actual.to_owned(),
        against,
    })
    .hint(hint)
}

/// The digest a file must have, and who says so.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub sha256: &'a str,
    pub against: PinSource,
}

/// Get one release file (of `package`) and check it: from the cache when `expected` names a
/// digest it holds (re-hashed: a cache entry can be damaged like any file), from a local
/// source, or downloaded with `client` (`None`: an [`OfflineError`]). Bytes whose digest is not
/// the expected one are a [`DigestMismatch`], whatever their way here. `announce` is called
/// before a download.
pub async fn obtain(
    package: &str,
    source: &SourceFile,
    expected: Option<Expected<'_>>,
    cache: &Cache,
    client: Option<&Client>,
    reporter: &dyn Reporter,
    announce: &(dyn Fn() + Sync),
) -> Result<Obtained> {
    let got = obtain_unchecked(
        source,
        expected.map(|e| e.sha256),
        cache,
        client,
        reporter,
        announce,
    )
    .await?;
    match expected {
        Some(e) if e.sha256 != got.sha256 => Err(mismatch(package, source, &e, &got.sha256)),
        _ => Ok(got),
    }
}

async fn obtain_unchecked(
    source: &SourceFile,
    expected: Option<&str>,
    cache: &Cache,
    client: Option<&Client>,
    reporter: &dyn Reporter,
    announce: &(dyn Fn() + Sync),
) -> Result<Obtained> {
    let name = &source.name;
    if let Some(path) = expected.and_then(|sha| cache.get(sha)) {
        let (sha256, size) = crate::digest::hash_file(&path)?;
        if Some(sha256.as_str()) == expected {
            reporter.debug(&format!("{name}: cache hit {}", path.display()));
            return Ok(Obtained {
                sha256,
                size,
                content: path,
                found: Found::Cache,
            });
        }
        reporter.debug(&format!(
            "{name}: damaged cache entry {} evicted",
            path.display()
        ));
        cache.evict(expected.unwrap_or_default());
    }
    match &source.origin {
        Origin::Local { path } => {
            reporter.debug(&format!("{name}: reading {}", path.display()));
            let (sha256, size) = crate::digest::hash_file(path)?;
            Ok(Obtained {
                sha256,
                size,
                content: path.clone(),
                found: Found::Local,
            })
        }
        Origin::Remote { url, auth } => {
            let client = client.ok_or_else(|| OfflineError {
                url: source.locked_from.clone(),
            })?;
            reporter.debug(&format!("GET {url}"));
            announce();
            let (sha256, size, content) = cache.download(client, url, *auth).await?;
            Ok(Obtained {
                sha256,
                size,
                content,
                found: Found::Downloaded,
            })
        }
    }
}

/// The files of package `name` (its `source` at `version`), each name once. `client` is `None`
/// offline; a source that must look its files up online then fails.
pub async fn resolve(
    project: Project<'_>,
    name: &str,
    source: &Source,
    version: &Version,
    client: Option<&Client>,
) -> Result<Vec<SourceFile>> {
    let files = source.resolve(project, version, client).await?;
    let mut seen = BTreeSet::new();
    for f in &files {
        if !seen.insert(f.name.as_str()) {
            bail!("two files of package `{name}` are both named `{}`", f.name);
        }
    }
    Ok(files)
}

/// A file recorded in `lockfile` (its `name` and where it came `from`), to fetch again without
/// resolving the source.
pub fn locked_source(
    project: Project<'_>,
    lockfile: &Path,
    name: &str,
    from: &str,
) -> Result<SourceFile> {
    let at = || format!("{}: file {}", lockfile.display(), quote(name));
    // The lockfile is input too: a crafted name must not write outside vendor/.
    fsutil::check_path_segment(name).with_context(at)?;
    let origin = match from.strip_prefix(PATH_PREFIX) {
        Some(rel) => {
            fsutil::check_relative_path(rel).with_context(at)?;
            Origin::Local {
                path: fsutil::resolve_inside(project.root, project.root, rel).with_context(at)?,
            }
        }
        None => url::url_file(from)?.origin,
    };
    Ok(SourceFile {
        name: name.to_owned(),
        origin,
        locked_from: from.to_owned(),
        expected: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::source::Kind;

    fn source(kind: &dyn Kind, entry: &serde_json::Value, version: &Version) -> Source {
        kind.parse("a", entry.as_object().unwrap(), version)
            .unwrap()
    }

    fn project(root: &Path) -> Project<'_> {
        Project {
            manifest: Path::new("kpin.yaml"),
            root,
            kubernetes_version: None,
        }
    }

    #[tokio::test]
    async fn url_sources_are_named_after_the_last_segment() {
        let dir = tempfile::tempdir().unwrap();
        let v = Version::parse("1.2.3");
        let s = source(
            &url::UrlKind,
            &serde_json::json!({"urls": ["https://h/v{version}/deploy.yaml", "https://h/v{version}/crds%2Dx.yaml"]}),
            &v,
        );
        let files = resolve(project(dir.path()), "a", &s, &v, None)
            .await
            .unwrap();
        assert_eq!(files[0].name, "deploy.yaml");
        assert_eq!(files[0].locked_from, "https://h/v1.2.3/deploy.yaml");
        assert!(files[0].origin.is_remote());
        assert_eq!(files[1].name, "crds-x.yaml");
        assert!(s.needs_network(&v));
    }

    #[tokio::test]
    async fn local_directories_list_yaml_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let rel = dir.path().join("releases/1.0.0");
        std::fs::create_dir_all(&rel).unwrap();
        for f in ["b.yaml", "a.yml", "c.json", "README.md", ".hidden.yaml"] {
            std::fs::write(rel.join(f), "{}").unwrap();
        }
        let v = Version::parse("1.0.0");
        let s = source(
            &path::PathKind,
            &serde_json::json!({"path": "./releases/{version}/"}),
            &v,
        );
        let files = resolve(project(dir.path()), "a", &s, &v, None)
            .await
            .unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.yml", "b.yaml", "c.json"]);
        assert_eq!(files[0].locked_from, "path:releases/1.0.0/a.yml");
        assert!(!s.needs_network(&v));
        let lock = dir.path().join("kpin.lock");
        let again =
            locked_source(project(dir.path()), &lock, "a.yml", &files[0].locked_from).unwrap();
        assert_eq!(again.origin, files[0].origin);
        assert!(
            locked_source(
                project(dir.path()),
                &lock,
                "../../escape.yaml",
                "https://h/a.yaml"
            )
            .is_err()
        );
    }
}
