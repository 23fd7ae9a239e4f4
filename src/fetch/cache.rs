//! The content-addressed download cache: files stored by sha256, shared by every project, so
//! a second sync (or another checkout) downloads nothing.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use url::Url;

use super::http::{Auth, Client};
use crate::error::HintExt;

/// Where the cache lives when nothing overrides it: `$XDG_CACHE_HOME/kpin`, else `~/.cache/kpin`.
///
/// `explicit` (from `--cache-dir`) wins, then `$KPIN_CACHE_DIR`.
pub fn default_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let env_dir = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env_dir("KPIN_CACHE_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = env_dir("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("kpin"));
    }
    match env_dir("HOME") {
        Some(home) => Ok(home.join(".cache").join("kpin")),
        None => Err(anyhow::anyhow!(
            "cannot locate a cache directory: HOME is not set"
        ))
        .hint("pass --cache-dir DIR or set KPIN_CACHE_DIR"),
    }
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: PathBuf) -> Cache {
        Cache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a file with this digest is (or would be) stored.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("00");
        self.root.join("sha256").join(prefix).join(sha256)
    }

    /// Scratch space for downloads in progress, on the cache's file system so that storing a
    /// finished download is a rename.
    pub fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The cached file with this digest, if present.
    pub fn get(&self, sha256: &str) -> Option<PathBuf> {
        let path = self.path_of(sha256);
        path.is_file().then_some(path)
    }

    /// Store a finished download under its digest (atomically: a rename).
    pub fn insert(&self, file: tempfile::NamedTempFile, sha256: &str) -> Result<PathBuf> {
        let path = self.path_of(sha256);
        if path.is_file() {
            return Ok(path);
        }
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        file.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("storing {} in the cache", path.display()))?;
        Ok(path)
    }

    /// Store a copy of a local file whose digest is known (e.g. from vendor/).
    pub fn insert_copy(&self, source: &Path, sha256: &str) -> Result<PathBuf> {
        let path = self.path_of(sha256);
        if path.is_file() {
            return Ok(path);
        }
        let bytes = fs::read(source).with_context(|| format!("reading {}", source.display()))?;
        crate::fsutil::write_atomic(&path, &bytes)?;
        Ok(path)
    }

    /// Download `url` into the cache; returns its sha256, size and cached path. The file is
    /// stored under its real digest even when it will not match a pin: callers compare.
    pub async fn download(
        &self,
        client: &Client,
        url: &Url,
        auth: Auth,
    ) -> Result<(String, u64, PathBuf)> {
        let download = client
            .download(url, auth, &self.temp_dir(), &|_| {})
            .await?;
        let path = self.insert(download.file, &download.sha256)?;
        Ok((download.sha256, download.size, path))
    }

    /// Drop an entry whose bytes no longer match its name (disk corruption, manual edits).
    pub fn evict(&self, sha256: &str) {
        let _ = fs::remove_file(self.path_of(sha256));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_stored_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let src = dir.path().join("src.yaml");
        fs::write(&src, "kind: ConfigMap\n").unwrap();
        let (sha, size) = crate::digest::hash_file(&src).unwrap();
        assert_eq!(size, 16);
        assert!(cache.get(&sha).is_none());
        let stored = cache.insert_copy(&src, &sha).unwrap();
        assert_eq!(cache.get(&sha), Some(stored.clone()));
        assert!(stored.ends_with(format!("sha256/{}/{sha}", &sha[..2])));
        assert_eq!(default_dir(Some(Path::new("/x"))).unwrap(), Path::new("/x"));
    }
}
