//! Crash-safe file system writes: every file and directory kpin produces appears whole or not at all.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{HintExt, quote};

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

/// Create `path` whole or not at all, and never over a file that exists, even one that
/// appeared meanwhile: the temp file is hard-linked into place, which fails on an existing path.
pub fn create_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = sibling_temp_name(path, "tmp");
    let created = write_new(&tmp, bytes, None).and_then(|()| {
        fs::hard_link(&tmp, path).with_context(|| format!("creating {}", path.display()))
    });
    let _ = fs::remove_file(&tmp);
    created
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

/// A path named in kpin.yaml, an overlay or kpin.lock that leads out of the project.
#[derive(Debug, thiserror::Error)]
#[error("{} resolves to {}{}, outside the project directory {}", quote(.written), .resolved.display(), if *.through_symlink { " through a symlink" } else { "" }, .root.display())]
pub struct OutsideProject {
    /// The path as written.
    pub written: String,
    /// Where it leads, symlinks followed.
    pub resolved: PathBuf,
    pub through_symlink: bool,
    /// The project directory (the one holding kpin.yaml), symlinks followed.
    pub root: PathBuf,
}

/// Why kpin refuses paths out of the project.
pub const INSIDE_HINT: &str = "kpin reads and writes only inside the directory of kpin.yaml (symlinks are followed), so that the repository shows everything that is rendered; copy the file into the project";

/// `relative` joined to `base`, after checking that it resolves inside `root`: symlinks are
/// followed, and for a path that does not exist yet the longest existing prefix is resolved
/// (a dangling symlink by its target), so neither `..` nor a symlink leads out of the project.
/// Returns the joined path as written (messages show it), not the resolved one.
pub fn resolve_inside(root: &Path, base: &Path, relative: &str) -> Result<PathBuf> {
    let joined = base.join(relative);
    let real_root = real_path(root)
        .with_context(|| format!("resolving the project directory {}", root.display()))?;
    let resolved = real_path(&joined).with_context(|| format!("resolving {}", joined.display()))?;
    if resolved.starts_with(&real_root) {
        return Ok(joined);
    }
    // Written with `..` that leaves the project, or a symlink that does?
    let lexical = real_path(base)
        .map(|b| normalize(&b.join(relative)))
        .unwrap_or_default();
    Err(anyhow::Error::new(OutsideProject {
        written: relative.to_owned(),
        resolved,
        through_symlink: lexical.starts_with(&real_root),
        root: real_root,
    })
    .hint(INSIDE_HINT))
}

/// `path` with every symlink resolved, also when it does not exist (yet): the existing part is
/// canonicalized, a dangling symlink followed to its target, and the rest appended as written.
fn real_path(path: &Path) -> std::io::Result<PathBuf> {
    use std::path::Component;
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    let mut current = if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path.to_path_buf()
    };
    // Enough hops for any real tree; a symlink loop fails instead of spinning.
    for _ in 0..64 {
        match current.canonicalize() {
            Ok(mut real) => {
                for part in pending.iter().rev() {
                    if part == ".." {
                        real.pop();
                    } else if part != "." {
                        real.push(part);
                    }
                }
                return Ok(real);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Ok(target) = fs::read_link(&current) {
                    // A dangling symlink: what it points to is what a write would create.
                    let parent = current.parent().map(Path::to_path_buf).unwrap_or_default();
                    current = parent.join(target);
                    continue;
                }
                let last = current.components().next_back();
                match last {
                    Some(Component::Normal(name)) => pending.push(name.to_owned()),
                    Some(Component::ParentDir) => pending.push("..".into()),
                    Some(Component::CurDir) => {}
                    _ => return Err(e),
                }
                current = match current.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// `path` with `.` and `..` removed without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// One path segment that is safe as a directory or file name (versions, file names).
pub fn check_path_segment(segment: &str) -> Result<()> {
    let valid = !segment.is_empty()
        && segment.len() <= 128
        && !segment.starts_with('.')
        && !segment.contains("..")
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'));
    if !valid {
        anyhow::bail!(
            "{} cannot be used as a file or directory name (letters, digits, '-', '_', '.', '+'; no leading dot)",
            quote(segment)
        );
    }
    Ok(())
}

/// A relative path that stays below the manifest directory.
pub fn check_relative_path(path: &str) -> Result<()> {
    let p = Path::new(path);
    if path.is_empty()
        || p.is_absolute()
        || p.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
    {
        return Err(anyhow::anyhow!(
            "{} must be a relative path below the directory of kpin.yaml (no `..`)",
            quote(path)
        ))
        .hint(INSIDE_HINT);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[cfg(unix)]
    #[test]
    fn paths_resolve_inside_the_project_or_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("project");
        fs::create_dir_all(root.join("overlays")).unwrap();
        fs::write(dir.path().join("outside.yaml"), "x").unwrap();
        fs::write(root.join("overlays/a.yaml"), "x").unwrap();
        let inside = |base: &Path, rel: &str| resolve_inside(&root, base, rel);

        assert_eq!(
            inside(&root, "overlays/a.yaml").unwrap(),
            root.join("overlays/a.yaml")
        );
        // Not there yet (vendor/ before the first sync), and `..` that stays inside.
        assert!(inside(&root, "vendor/new").is_ok());
        assert!(inside(&root.join("overlays"), "../overlays/a.yaml").is_ok());

        let err = inside(&root, "../outside.yaml").unwrap_err();
        let outside = crate::error::find_cause::<OutsideProject>(&err).unwrap();
        assert!(!outside.through_symlink);
        assert_eq!(
            outside.resolved,
            dir.path().canonicalize().unwrap().join("outside.yaml")
        );

        std::os::unix::fs::symlink(dir.path().join("outside.yaml"), root.join("link.yaml"))
            .unwrap();
        let err = inside(&root, "link.yaml").unwrap_err();
        assert!(err.to_string().contains("through a symlink"), "{err}");
        // A dangling symlink is followed to where a write would land.
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("vendor2")).unwrap();
        assert!(inside(&root, "vendor2/pkg").is_err());
        // A directory symlink below the project that stays inside is fine.
        std::os::unix::fs::symlink(root.join("overlays"), root.join("alias")).unwrap();
        assert!(inside(&root, "alias/a.yaml").is_ok());
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
