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

/// Write `bytes` to `path` through a temp file in the same directory and a rename. A new file
/// gets the mode the umask gives (0644 under umask 022), a replaced file keeps its mode: CI
/// runners and `git diff` see no mode change.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let tmp = sibling_temp_name(path, "tmp");
    let written = write_new(&tmp, bytes, mode_of(path)).and_then(|()| {
        fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
    });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Create `path` (which must not exist) holding `bytes`, synced to disk, with `mode` or else
/// the mode the umask gives a new file.
pub fn write_new(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    let mut file = create_new(path)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    if let Some(mode) = mode {
        set_mode(path, mode)?;
    }
    Ok(())
}

/// Copy the file `from` to the new file `to`, which gets the mode the umask gives (the source
/// may be a private cache file).
pub fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let mut source = fs::File::open(from).with_context(|| format!("reading {}", from.display()))?;
    let mut dest = create_new(to)?;
    std::io::copy(&mut source, &mut dest)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

#[cfg(unix)]
fn create_new(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

#[cfg(not(unix))]
fn create_new(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// The permission bits of an existing file.
#[cfg(unix)]
pub fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
pub fn mode_of(_path: &Path) -> Option<u32> {
    None
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
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

    #[cfg(unix)]
    #[test]
    fn new_files_follow_the_umask_and_replaced_files_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kpin.lock");
        write_atomic(&path, b"a").unwrap();
        let mode = mode_of(&path).unwrap();
        // Whatever the umask, the group and others get what it allows, not 0600.
        let probe = dir.path().join("probe");
        fs::File::create(&probe).unwrap();
        assert_eq!(mode, mode_of(&probe).unwrap());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"b").unwrap();
        assert_eq!(mode_of(&path), Some(0o640));
        let copy = dir.path().join("copy");
        copy_file(&path, &copy).unwrap();
        assert_eq!(mode_of(&copy), Some(mode));
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
