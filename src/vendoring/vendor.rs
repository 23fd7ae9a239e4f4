//! What vendor/ holds, decided in one place: what one version directory holds against the files
//! locked for it (`scan`, for `sync`, `verify`, `upgrade` and the transaction's pre-commit
//! check), and, for `sync` (which removes what is stale) and `verify` (which reports it), the
//! directories kpin manages — the packages of kpin.yaml and of
//! the previous kpin.lock, one directory per version in use by the package or any of its
//! environments — and everything else, which kpin never touches (a Go `vendor/github.com` tree,
//! a README).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::manifest::Manifest;
use crate::vendoring::lockfile::{LockedFile, Lockfile};

/// What one version directory (`vendor/<package>/<version>`, or its staged copy) holds.
#[derive(Debug, Clone, Default)]
pub struct VersionDir {
    pub dir: PathBuf,
    /// Whether the directory exists.
    pub exists: bool,
    /// Its files by name, with their sha256 and size.
    pub files: BTreeMap<String, (String, u64)>,
    /// Entries that are not files (subdirectories, sockets...).
    pub others: BTreeSet<String>,
}

/// How a version directory differs from the files locked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A locked file that is not there as a file.
    Missing(String),
    /// Something there that is not locked.
    Extra(String),
    /// A locked file with other bytes.
    Changed {
        file: String,
        expected: String,
        actual: String,
    },
}

/// Read and hash `dir`; a directory that does not exist holds nothing.
pub fn scan(dir: &Path) -> Result<VersionDir> {
    let mut out = VersionDir {
        dir: dir.to_path_buf(),
        ..VersionDir::default()
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    out.exists = true;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Followed: a vendored file may be a symlink (tests link upstream releases in place).
        if entry.path().is_file() {
            out.files
                .insert(name, crate::digest::hash_file(&entry.path())?);
        } else {
            out.others.insert(name);
        }
    }
    Ok(out)
}

impl VersionDir {
    /// How the directory differs from `expected`: the locked files in their order (missing or
    /// changed), then what is there beyond them, by name.
    pub fn differences(&self, expected: &[LockedFile]) -> Vec<Difference> {
        let mut out = Vec::new();
        for file in expected {
            match self.files.get(&file.name) {
                None => out.push(Difference::Missing(file.name.clone())),
                Some((actual, _)) if *actual != file.sha256 => out.push(Difference::Changed {
                    file: file.name.clone(),
                    expected: file.sha256.clone(),
                    actual: actual.clone(),
                }),
                Some(_) => {}
            }
        }
        let locked: BTreeSet<&str> = expected.iter().map(|f| f.name.as_str()).collect();
        let there: BTreeSet<&String> = self.files.keys().chain(&self.others).collect();
        out.extend(
            there
                .into_iter()
                .filter(|name| !locked.contains(name.as_str()))
                .map(|name| Difference::Extra(name.clone())),
        );
        out
    }

    /// Whether the directory holds exactly `expected`, byte for byte, and nothing else.
    pub fn holds_exactly(&self, expected: &[LockedFile]) -> bool {
        self.exists && self.differences(expected).is_empty()
    }

    /// The files as lock entries with no origin (for versions kpin.lock does not record).
    pub fn as_locked(&self) -> Vec<LockedFile> {
        self.files
            .iter()
            .map(|(name, (sha256, size))| LockedFile {
                name: name.clone(),
                from: String::new(),
                sha256: sha256.clone(),
                size: *size,
            })
            .collect()
    }
}

/// Something in vendor/ that is not a package version in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// A directory kpin put there and no longer needs: another version of a package, or a
    /// package the lock recorded and kpin.yaml no longer has.
    Stale(PathBuf),
    /// Not kpin's: it stays.
    Foreign(PathBuf),
    /// What an interrupted kpin left (`.kpin-*` staging and backups), garbage once any pending
    /// transaction was recovered.
    Leftover(PathBuf),
}

/// Everything in vendor/ beyond the versions in use, in path order. `skip` is left out (the
/// staging directory of the running transaction).
pub fn extras(
    manifest: &Manifest,
    lock: Option<&Lockfile>,
    skip: Option<&Path>,
) -> Result<Vec<Extra>> {
    let mut out = Vec::new();
    let mut entries = match sorted_entries(&manifest.vendor_dir) {
        Ok(entries) => entries,
        Err(_) if !manifest.vendor_dir.exists() => return Ok(out),
        Err(e) => return Err(e),
    };
    entries.retain(|p| Some(p.as_path()) != skip);
    let locked = |name: &str| lock.is_some_and(|l| l.packages.contains_key(name));
    for path in entries {
        let name = file_name(&path);
        if name.starts_with(".kpin-") {
            out.push(Extra::Leftover(path));
            continue;
        }
        if !path.is_dir() {
            continue; // A README or .gitattributes next to the packages.
        }
        match manifest.packages.get(&name) {
            Some(package) => {
                let in_use = package.versions_in_use();
                for version in sorted_entries(&path)? {
                    let v = file_name(&version);
                    if in_use.iter().any(|u| u.raw == v) {
                        continue;
                    }
                    out.push(if v.starts_with(".kpin-") {
                        Extra::Leftover(version)
                    } else if version.is_dir() {
                        Extra::Stale(version)
                    } else {
                        Extra::Foreign(version)
                    });
                }
            }
            None if locked(&name) => out.push(Extra::Stale(path)),
            None => out.push(Extra::Foreign(path)),
        }
    }
    Ok(out)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dev's 3.0.0 is in use next to the package's 2.0.0; 1.0.0 is no one's.
    #[test]
    fn only_what_kpin_put_there_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let manifest = Manifest::parse(
            "environments:\n  dev: {}\n  prod: {}\npackages:\n  web:\n    version: 2.0.0\n    path: mirror/{version}\n    environments:\n      dev:\n        version: 3.0.0\n",
            &root.join("kpin.yaml"),
        )
        .unwrap();
        for d in [
            "vendor/web/2.0.0",
            "vendor/web/3.0.0",
            "vendor/web/1.0.0",
            "vendor/gone/1.0.0",
            "vendor/github.com/x/y",
            "vendor/.kpin-stage-sync-1-0",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("vendor/README.md"), "ours").unwrap();
        let mut lock = Lockfile::new();
        lock.packages.insert(
            "gone".into(),
            crate::vendoring::lockfile::LockedPackage {
                source: "path".into(),
                versions: Vec::new(),
                environments: std::collections::BTreeMap::default(),
                overlays_digest: None,
                rendered: std::collections::BTreeMap::default(),
            },
        );
        let found = extras(&manifest, Some(&lock), None).unwrap();
        let v = |p: &str| root.join("vendor").join(p);
        assert_eq!(
            found,
            [
                Extra::Leftover(v(".kpin-stage-sync-1-0")),
                Extra::Foreign(v("github.com")),
                Extra::Stale(v("gone")),
                Extra::Stale(v("web/1.0.0")),
            ]
        );
        // Without the lock, `gone` is not known to be kpin's.
        assert!(
            extras(&manifest, None, None)
                .unwrap()
                .contains(&Extra::Foreign(v("gone")))
        );
    }
}
