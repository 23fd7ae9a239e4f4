//! Crash-safe file system writes: every file and directory kpin produces appears whole or not at all.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Write `bytes` to `path` through a temp file in the same directory and a rename.
///
/// Returns `false` (and touches nothing) when the file already holds exactly these bytes, so
/// generated files keep their timestamps and never show up as spurious changes.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool> {
    if fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(false);
    }
    write_atomic(path, bytes)?;
    Ok(true)
}

/// Write `bytes` to `path` through a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kpin-tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Replace directory `dest` with the fully written directory `staged` (same file system).
///
/// The old directory is first renamed aside, then `staged` renamed into place, then the old
/// one removed, so at every instant `dest` is either the complete old or the complete new tree.
pub fn replace_dir(staged: &Path, dest: &Path) -> Result<()> {
    let parent = parent_dir(dest);
    fs::create_dir_all(parent)
        .with_context(|| format!("creating directory {}", parent.display()))?;
    let aside = if dest.exists() {
        let aside = sibling_temp_name(dest, "old");
        fs::rename(dest, &aside).with_context(|| format!("moving {} aside", dest.display()))?;
        Some(aside)
    } else {
        None
    };
    if let Err(err) = fs::rename(staged, dest) {
        if let Some(aside) = &aside {
            // Put the old tree back; the staged copy is left for the caller's cleanup.
            let _ = fs::rename(aside, dest);
        }
        return Err(err).with_context(|| format!("moving {} into place", dest.display()));
    }
    if let Some(aside) = aside {
        fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))?;
    }
    Ok(())
}

/// A not-yet-existing path next to `path`, used for staging and moving aside.
pub fn sibling_temp_name(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = parent_dir(path);
    let pid = std::process::id();
    for n in 0u32.. {
        let candidate = parent.join(format!(".kpin-{tag}-{name}-{pid}-{n}"));
        if !candidate.exists() {
            return candidate;
        }
    }
    unreachable!("u32 range exhausted")
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `path` relative to `base` when it lies below it, for messages and the lockfile.
pub fn display_relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_if_changed_only_writes_new_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kpin.lock");
        assert!(write_if_changed(&path, b"a").unwrap());
        assert!(!write_if_changed(&path, b"a").unwrap());
        assert!(write_if_changed(&path, b"b").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"b");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp files left"
        );
    }

    #[test]
    fn replace_dir_swaps_whole_trees() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("pkg");
        fs::create_dir_all(&dest).unwrap();
        fs::write(dest.join("old.yaml"), "old").unwrap();
        let staged = dir.path().join("staged");
        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("new.yaml"), "new").unwrap();
        replace_dir(&staged, &dest).unwrap();
        assert!(dest.join("new.yaml").exists());
        assert!(!dest.join("old.yaml").exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
