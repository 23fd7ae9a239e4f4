//! Fetching release files: every source kind resolved to the same shape (named files at a URL
//! or local path), the HTTP client, the GitHub API and the content-addressed cache.

pub mod cache;
pub mod github;
pub mod http;

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use url::Url;

pub use cache::Cache;
pub use http::{Auth, Client, Download, FetchError, NetOptions};

use crate::error::{HintExt, quote};
use crate::fsutil;
use crate::manifest::{self, Manifest, PackageVersion, Source};
use crate::progress::Reporter;

/// Prefix of lockfile URLs that name a file relative to kpin.yaml (local `path:` sources).
pub const PATH_PREFIX: &str = "path:";
/// File extensions vendored from a local directory source.
const LOCAL_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// One release file of a package: its name under `vendor/<package>/<version>/` and where its
/// bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub origin: Origin,
    /// What the lockfile records as the file's `url`.
    pub locked_from: String,
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
}

/// A file whose bytes are not the ones kpin.lock or a `sha256` pin expects.
#[derive(Debug, thiserror::Error)]
#[error(
    "sha256 mismatch for `{file}` of package `{package}` from {url}: expected {expected} ({}), got {actual}",
    match against { PinSource::Lockfile => "kpin.lock", PinSource::Pin => "sha256 pin in kpin.yaml" }
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
    announce: &dyn Fn(),
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
    announce: &dyn Fn(),
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

/// Whether resolving this package's files needs the network (GitHub API or remote URLs).
pub fn needs_network(package: &PackageVersion) -> bool {
    match &package.source {
        Source::Github(_) => true,
        Source::Url { templates } => templates
            .iter()
            .any(|t| !manifest::expand(t, &package.version).starts_with("file:")),
        Source::Path { .. } => false,
    }
}

/// The files of `package` at its pinned version. `client` is `None` offline; sources that need
/// the API (GitHub) then fail.
pub async fn resolve(
    manifest: &Manifest,
    package: &PackageVersion,
    client: Option<&Client>,
) -> Result<Vec<SourceFile>> {
    let (Source::Github(gh), Some(client)) = (&package.source, client) else {
        return resolve_offline(manifest, package);
    };
    let files = {
        let tag = manifest::expand(&gh.tag, &package.version);
        let release = github::release_by_tag(client, &gh.api_url, &gh.repo, &tag).await?;
        gh.assets
            .iter()
            .map(|template| {
                let name = manifest::expand(template, &package.version);
                let asset = release
                    .assets
                    .iter()
                    .find(|a| a.name == name)
                    .ok_or_else(|| {
                        let names: Vec<&str> =
                            release.assets.iter().map(|a| a.name.as_str()).collect();
                        anyhow::anyhow!("release `{tag}` of {} has no asset `{name}`", gh.repo)
                            .hint(if names.is_empty() {
                                "the release has no assets".to_owned()
                            } else {
                                format!("its assets are: {}", names.join(", "))
                            })
                    })?;
                manifest::check_path_segment(&name)
                    .with_context(|| format!("asset {}", quote(&name)))?;
                let url = Url::parse(&asset.url)
                    .with_context(|| format!("asset `{name}`: bad API URL `{}`", asset.url))?;
                Ok(SourceFile {
                    name,
                    origin: Origin::Remote {
                        url,
                        auth: Auth::GithubAsset,
                    },
                    locked_from: asset.browser_download_url.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?
    };
    distinct_names(package, files)
}

/// The files of `package` at its pinned version, for sources that need no network to name them
/// (URL templates, local paths); a GitHub release must be looked up online.
pub fn resolve_offline(manifest: &Manifest, package: &PackageVersion) -> Result<Vec<SourceFile>> {
    let files = match &package.source {
        Source::Url { templates } => templates
            .iter()
            .map(|t| url_file(&manifest::expand(t, &package.version)))
            .collect::<Result<Vec<_>>>()?,
        Source::Github(_) => {
            return Err(anyhow::anyhow!(
                "the GitHub release of package `{}` must be looked up online",
                package.name
            ))
            .hint("run without --offline once; afterwards kpin.lock records the download URLs");
        }
        Source::Path { template } => local_files(
            manifest,
            &format!("packages.{}.path", package.name),
            &manifest::expand(template, &package.version),
        )?,
    };
    distinct_names(package, files)
}

/// `files`, refused when two have the same name (they would be vendored to one path).
fn distinct_names(package: &PackageVersion, files: Vec<SourceFile>) -> Result<Vec<SourceFile>> {
    let mut seen = BTreeSet::new();
    for f in &files {
        if !seen.insert(f.name.as_str()) {
            bail!(
                "two files of package `{}` are both named `{}`",
                package.name,
                f.name
            );
        }
    }
    Ok(files)
}

/// A file recorded in the lockfile (its `name` and where it came `from`), to fetch again
/// without resolving the source.
pub fn locked_source(manifest: &Manifest, name: &str, from: &str) -> Result<SourceFile> {
    // The lockfile is input too: a crafted name must not write outside vendor/.
    manifest::check_path_segment(name)
        .with_context(|| format!("{}: file {}", manifest.lock_path().display(), quote(name)))?;
    let origin = match from.strip_prefix(PATH_PREFIX) {
        Some(rel) => {
            let at = || format!("{}: file {}", manifest.lock_path().display(), quote(name));
            manifest::check_relative_path(rel).with_context(at)?;
            Origin::Local {
                path: fsutil::resolve_inside(&manifest.root, &manifest.root, rel)
                    .with_context(at)?,
            }
        }
        None => url_file(from)?.origin,
    };
    Ok(SourceFile {
        name: name.to_owned(),
        origin,
        locked_from: from.to_owned(),
    })
}

/// A URL source file: named after the last path segment.
fn url_file(text: &str) -> Result<SourceFile> {
    let url = Url::parse(text).with_context(|| format!("{} is not a valid URL", quote(text)))?;
    let segment = url
        .path_segments()
        .and_then(|mut s| s.rfind(|p| !p.is_empty()))
        .unwrap_or("");
    let name = percent_decode(segment);
    manifest::check_path_segment(&name).with_context(|| {
        format!(
            "{}: cannot name the vendored file after the last path segment",
            quote(url.as_str())
        )
    })?;
    let origin = if url.scheme() == "file" {
        let path = url
            .to_file_path()
            .map_err(|()| anyhow::anyhow!("{url}: not a local file path"))?;
        Origin::Local { path }
    } else {
        Origin::Remote {
            url: url.clone(),
            auth: Auth::None,
        }
    };
    Ok(SourceFile {
        name,
        origin,
        locked_from: url.to_string(),
    })
}

/// A `path:` source (`field` of kpin.yaml): one file, or every YAML/JSON file directly in a
/// directory, sorted.
fn local_files(manifest: &Manifest, field: &str, rel: &str) -> Result<Vec<SourceFile>> {
    let rel = rel.trim_start_matches("./").trim_end_matches('/');
    let path = manifest.resolve(field, rel)?;
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("local source {}", path.display()))
        .hint("`path:` is relative to the directory of kpin.yaml")?;
    if meta.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        manifest::check_path_segment(&name)
            .with_context(|| format!("local source {}", path.display()))?;
        return Ok(vec![SourceFile {
            name,
            origin: Origin::Local { path },
            locked_from: format!("{PATH_PREFIX}{rel}"),
        }]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))? {
        let entry = entry.with_context(|| format!("reading {}", path.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = !name.starts_with('.')
            && name
                .rsplit_once('.')
                .is_some_and(|(_, ext)| LOCAL_EXTENSIONS.contains(&ext))
            && entry.file_type().is_ok_and(|t| t.is_file());
        if !wanted {
            continue;
        }
        manifest::check_path_segment(&name)
            .with_context(|| format!("local source {}", entry.path().display()))?;
        files.push(SourceFile {
            origin: Origin::Local { path: entry.path() },
            locked_from: format!("{PATH_PREFIX}{rel}/{name}"),
            name,
        });
    }
    if files.is_empty() {
        return Err(anyhow::anyhow!(
            "local source {}: no *.yaml, *.yml or *.json files",
            path.display()
        ))
        .hint("point `path:` at a directory of release files or at one file");
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Undo `%XX` escapes in a URL path segment (file names with spaces and the like).
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest(dir: &Path, text: &str) -> Manifest {
        Manifest::parse(text, &dir.join("kpin.yaml")).unwrap()
    }

    #[tokio::test]
    async fn url_sources_are_named_after_the_last_segment() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(
            dir.path(),
            "packages:\n  a:\n    version: 1.2.3\n    urls:\n      - https://h/v{version}/deploy.yaml\n      - https://h/v{version}/crds%2Dx.yaml\n",
        );
        let files = resolve(&m, &m.packages["a"].for_env(None), None)
            .await
            .unwrap();
        assert_eq!(files[0].name, "deploy.yaml");
        assert_eq!(files[0].locked_from, "https://h/v1.2.3/deploy.yaml");
        assert!(files[0].origin.is_remote());
        assert_eq!(files[1].name, "crds-x.yaml");
        assert!(needs_network(&m.packages["a"].for_env(None)));
    }

    #[tokio::test]
    async fn local_directories_list_yaml_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let rel = dir.path().join("releases/1.0.0");
        std::fs::create_dir_all(&rel).unwrap();
        for f in ["b.yaml", "a.yml", "c.json", "README.md", ".hidden.yaml"] {
            std::fs::write(rel.join(f), "{}").unwrap();
        }
        let m = manifest(
            dir.path(),
            "packages:\n  a:\n    version: 1.0.0\n    path: ./releases/{version}/\n",
        );
        let files = resolve(&m, &m.packages["a"].for_env(None), None)
            .await
            .unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.yml", "b.yaml", "c.json"]);
        assert_eq!(files[0].locked_from, "path:releases/1.0.0/a.yml");
        assert!(!needs_network(&m.packages["a"].for_env(None)));
        let again = locked_source(&m, "a.yml", &files[0].locked_from).unwrap();
        assert_eq!(again.origin, files[0].origin);
        assert!(locked_source(&m, "../../escape.yaml", "https://h/a.yaml").is_err());
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("a%20b.yaml"), "a b.yaml");
        assert_eq!(percent_decode("bad%zz%2"), "bad%zz%2");
        assert_eq!(percent_decode("%e2%82"), "\u{fffd}");
        assert_eq!(
            percent_decode("deploy%41"),
            "deployA",
            "an escape at the very end"
        );
    }
}
