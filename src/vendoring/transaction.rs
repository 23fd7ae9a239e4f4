//! The one way kpin changes the project on disk: `sync`, `upgrade` (and every command that
//! writes vendor/, kpin.lock or kpin.yaml) stage the new state, verify it, then commit it with a
//! journal next to kpin.yaml. After a failure the commit rolls back at once; after a kill at any
//! point, the next kpin command of any kind finds the journal and rolls the commit back, or
//! finishes it when every step was done, before it does anything else. So the project is always
//! wholly old or wholly new.
//!
//! A commit is a list of steps, each undoable from what is on disk:
//! - replace `dest` by a staged directory or file, the old one kept as a backup until the end;
//! - remove a directory (moved to a backup until the end).
//!
//! Files are never missing, even for an instant: the old file is hard-linked to its backup and
//! the new one renamed over it. Directories are moved aside first (a rename cannot replace a
//! non-empty directory); the journal covers that window.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::error::HintExt as _;
use crate::fsutil;
use crate::progress::Reporter;
use crate::vendoring::lockfile::LockedFile;

/// The journal of a commit in progress, in the directory of kpin.yaml.
pub const JOURNAL_FILE: &str = ".kpin-transaction.json";

/// Test hook: `fail:N` makes the N-th commit step fail (the commit rolls back), `kill:N` ends
/// the process there as a kill would (no clean-up runs), so tests can interrupt every step.
pub const INTERRUPT_ENV: &str = "KPIN_TEST_INTERRUPT";

/// Exit status of a process ended by `kill:N`, as a shell shows a SIGKILL.
pub const KILLED_EXIT: i32 = 137;

const JOURNAL_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Journal {
    version: u32,
    /// The kpin process that owns the transaction: while it runs, nobody else may recover it.
    pid: u32,
    /// What the commit does, for messages (`sync`, `upgrade ingress-nginx`).
    what: String,
    /// Every step is done: recovery finishes the commit instead of rolling it back.
    committed: bool,
    /// The staging directory, removed at the end either way.
    stage: PathBuf,
    steps: Vec<Step>,
}

/// One undoable change; paths are relative to the directory of kpin.yaml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "op")]
enum Step {
    /// `staged` (a directory or file) becomes `dest`; the old `dest`, if any, is `backup`.
    Replace {
        dest: PathBuf,
        staged: PathBuf,
        backup: PathBuf,
        dir: bool,
    },
    /// The directory `path` goes (to `backup`, deleted once the commit is final).
    Remove { path: PathBuf, backup: PathBuf },
}

/// A directory staged to replace one in vendor/, with the files it must hold.
struct StagedDir {
    dest: PathBuf,
    staged: PathBuf,
    expected: Vec<LockedFile>,
}

/// Changes to the project, staged and not yet visible.
pub struct Transaction {
    what: String,
    /// Directory of kpin.yaml: every path the transaction touches lies below it.
    root: PathBuf,
    vendor_dir: PathBuf,
    /// Staged directories live here, laid out like vendor/ (`<package>/<version>`).
    stage: PathBuf,
    dirs: Vec<StagedDir>,
    files: Vec<(PathBuf, Vec<u8>)>,
    removals: Vec<PathBuf>,
    /// The journal says committed: it is recovery's now (only its clean-up may be left).
    committed: bool,
    /// Whether `begin` created vendor/ (removed again when nothing is committed).
    created_vendor_dir: bool,
}

impl Transaction {
    /// Start a transaction for the project at `root` whose vendored packages live in
    /// `vendor_dir` (created if needed, with a fresh staging directory in it). The journal is
    /// written at once, so that a kill even while staging leaves nothing behind for long: the
    /// next command removes the staging directory.
    pub fn begin(what: &str, root: &Path, vendor_dir: &Path) -> Result<Transaction> {
        recover(root)?;
        let created_vendor_dir = !vendor_dir.exists();
        fs::create_dir_all(vendor_dir)
            .with_context(|| format!("creating {}", vendor_dir.display()))?;
        let stage = fsutil::sibling_temp_name(&vendor_dir.join("txn"), "stage");
        let txn = Transaction {
            what: what.to_owned(),
            root: root.to_path_buf(),
            vendor_dir: vendor_dir.to_path_buf(),
            stage,
            dirs: Vec::new(),
            files: Vec::new(),
            removals: Vec::new(),
            committed: false,
            created_vendor_dir,
        };
        txn.write_journal(&txn.journal(Vec::new()))?;
        fs::create_dir(&txn.stage).with_context(|| format!("creating {}", txn.stage.display()))?;
        Ok(txn)
    }

    fn journal(&self, steps: Vec<Step>) -> Journal {
        Journal {
            version: JOURNAL_VERSION,
            pid: std::process::id(),
            what: self.what.clone(),
            committed: false,
            stage: self.rel(&self.stage),
            steps,
        }
    }

    /// The staging tree, laid out like vendor/: a manifest whose vendor directory is this one
    /// reads the staged packages.
    pub fn stage_root(&self) -> &Path {
        &self.stage
    }

    /// Where to stage the new contents of `dest` (a directory below vendor/).
    pub fn staging_for(&self, dest: &Path) -> PathBuf {
        match dest.strip_prefix(&self.vendor_dir) {
            Ok(rel) => self.stage.join(rel),
            Err(_) => self.stage.join(dest.file_name().unwrap_or_default()),
        }
    }

    /// Replace the directory `dest` with what was staged at `staging_for(dest)`, which must
    /// hold exactly `expected` (checked before the commit).
    pub fn replace_dir(&mut self, dest: &Path, expected: Vec<LockedFile>) {
        self.dirs.push(StagedDir {
            staged: self.staging_for(dest),
            dest: dest.to_path_buf(),
            expected,
        });
    }

    /// Write `bytes` to `path` (kpin.lock, kpin.yaml), unless it already holds them.
    pub fn write_file(&mut self, path: &Path, bytes: Vec<u8>) {
        if fs::read(path).is_ok_and(|old| old == bytes) {
            return;
        }
        self.files.push((path.to_path_buf(), bytes));
    }

    /// Remove the directory `path`.
    pub fn remove_dir(&mut self, path: &Path) {
        self.removals.push(path.to_path_buf());
    }

    /// Whether committing would change nothing.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.files.is_empty() && self.removals.is_empty()
    }

    /// Verify what was staged, then make every change visible, all or nothing. Returns whether
    /// anything changed. The staging directory goes either way (see `Drop`).
    pub fn commit(mut self, reporter: &dyn Reporter) -> Result<bool> {
        if self.is_empty() {
            return Ok(false);
        }
        for d in &self.dirs {
            verify_staged(&d.staged, &d.expected)?;
        }
        let steps = self.plan()?;
        let mut journal = self.journal(steps);
        let mut at = Checkpoints::new(reporter);
        let applied = (|| -> Result<()> {
            at.step("write the journal")?;
            self.write_journal(&journal)?;
            for step in &journal.steps {
                self.apply(step, &mut at)?;
            }
            at.step("mark the journal committed")?;
            journal.committed = true;
            self.write_journal(&journal)
        })();
        if let Err(err) = applied {
            return Err(match rollback(&self.root, &journal) {
                Ok(()) => err.context(format!(
                    "{} was rolled back; kpin.yaml, kpin.lock and vendor/ are as they were",
                    self.what
                )),
                Err(undo) => err
                    .context(format!(
                        "{} failed and could not be rolled back: {}",
                        self.what,
                        crate::error::summary(&undo)
                    ))
                    .hint(format!(
                        "the next kpin command retries the roll-back from {JOURNAL_FILE}; \
                         or restore kpin.yaml, kpin.lock and vendor/ from version control"
                    )),
            });
        }
        // Committed: what is left is deleting backups, which the next command retries.
        self.committed = true;
        if let Err(err) = finish(&self.root, &journal, &mut at) {
            reporter.warn(&format!(
                "{} is done, but its clean-up failed (the next kpin command finishes it): {}",
                self.what,
                crate::error::summary(&err)
            ));
        }
        Ok(true)
    }

    /// The steps of the commit, in order, with each new file's bytes staged.
    fn plan(&self) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        for d in &self.dirs {
            steps.push(Step::Replace {
                backup: self.rel(&fsutil::sibling_temp_name(&d.dest, "old")),
                dest: self.rel(&d.dest),
                staged: self.rel(&d.staged),
                dir: true,
            });
        }
        for (i, (path, bytes)) in self.files.iter().enumerate() {
            let staged = self.stage.join(format!("file-{i}"));
            fsutil::write_new(&staged, bytes, fsutil::mode_of(path))?;
            steps.push(Step::Replace {
                backup: self.rel(&fsutil::sibling_temp_name(path, "old")),
                dest: self.rel(path),
                staged: self.rel(&staged),
                dir: false,
            });
        }
        for path in &self.removals {
            steps.push(Step::Remove {
                backup: self.rel(&fsutil::sibling_temp_name(path, "old")),
                path: self.rel(path),
            });
        }
        Ok(steps)
    }

    fn apply(&self, step: &Step, at: &mut Checkpoints<'_>) -> Result<()> {
        match step {
            Step::Replace {
                dest,
                staged,
                backup,
                dir,
            } => {
                let (dest, staged, backup) = (
                    self.root.join(dest),
                    self.root.join(staged),
                    self.root.join(backup),
                );
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                if dest.exists() {
                    at.step(&format!("keep the old {}", self.show(&dest)))?;
                    if *dir {
                        rename(&dest, &backup)?;
                    } else {
                        link_or_copy(&dest, &backup)?;
                    }
                }
                at.step(&format!("move in the new {}", self.show(&dest)))?;
                rename(&staged, &dest)
            }
            Step::Remove { path, backup } => {
                let path = self.root.join(path);
                if !path.exists() {
                    return Ok(());
                }
                at.step(&format!("remove {}", self.show(&path)))?;
                rename(&path, &self.root.join(backup))
            }
        }
    }

    fn write_journal(&self, journal: &Journal) -> Result<()> {
        let text = serde_json::to_string_pretty(journal).context("encoding the journal")?;
        fsutil::write_atomic(&self.root.join(JOURNAL_FILE), text.as_bytes())
    }

    fn rel(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).unwrap_or(path).to_path_buf()
    }

    fn show(&self, path: &Path) -> String {
        fsutil::display_relative(path, &self.root)
    }
}

impl Drop for Transaction {
    /// A transaction dropped without a commit (a dry run, a refusal, an error) leaves nothing;
    /// after a commit the staging directory is empty. A kill skips this: the next run removes
    /// the leftover (`.kpin-*` in vendor/).
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.stage);
        let path = self.root.join(JOURNAL_FILE);
        let ours = |j: Option<Journal>| j.is_some_and(|j| j.pid == std::process::id());
        if !self.committed && read_journal(&path).is_ok_and(ours) {
            let _ = fs::remove_file(path);
        }
        // A vendor/ this transaction made and did not fill goes too (remove_dir refuses a
        // directory that is not empty).
        if !self.committed && self.created_vendor_dir {
            let _ = fs::remove_dir(&self.vendor_dir);
        }
    }
}

/// Finish or roll back a commit that a killed kpin left behind in the project at `root`.
/// Returns what was done, for the status line; `None` when there was nothing to do. A
/// transaction whose kpin still runs is not touched: that is an error.
pub fn recover(root: &Path) -> Result<Option<String>> {
    let path = root.join(JOURNAL_FILE);
    let Some(journal) = read_journal(&path)? else {
        return Ok(None);
    };
    if journal.pid != std::process::id() && process_alive(journal.pid) {
        return Err(anyhow::anyhow!(
            "another kpin (process {}) is running the {} of this project",
            journal.pid,
            journal.what
        ))
        .hint(format!(
            "wait for it to finish; if no kpin runs, delete {} and run the command again",
            path.display()
        ));
    }
    if journal.committed {
        finish(root, &journal, &mut Checkpoints::none())?;
        Ok(Some(format!("finished the interrupted {}", journal.what)))
    } else {
        rollback(root, &journal)?;
        Ok(Some(format!(
            "rolled back the interrupted {}",
            journal.what
        )))
    }
}

fn read_journal(path: &Path) -> Result<Option<Journal>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("reading {}", path.display()))
        .hint(format!(
            "an interrupted kpin command left it; restore kpin.yaml, kpin.lock and vendor/ from \
             version control, then delete {JOURNAL_FILE}"
        ))
}

/// Whether process `pid` still runs (Linux: its /proc entry; elsewhere it is assumed gone,
/// as after a kill).
fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Undo every step that happened, newest first. Each undo looks at the disk, so a roll-back
/// that is itself interrupted can run again.
fn rollback(root: &Path, journal: &Journal) -> Result<()> {
    for step in journal.steps.iter().rev() {
        match step {
            Step::Replace {
                dest,
                staged,
                backup,
                ..
            } => {
                let (dest, staged, backup) =
                    (root.join(dest), root.join(staged), root.join(backup));
                if !staged.exists() && dest.exists() {
                    // The new one is in place: back to staging, out of the way.
                    rename(&dest, &staged)?;
                }
                if dest.exists() {
                    // The old one never left (a file's backup is only a link to it). Renaming
                    // a link onto itself would do nothing, so the backup is removed instead.
                    remove_any(&backup)?;
                } else if backup.exists() {
                    rename(&backup, &dest)?;
                }
            }
            Step::Remove { path, backup } => {
                let (path, backup) = (root.join(path), root.join(backup));
                if backup.exists() && !path.exists() {
                    rename(&backup, &path)?;
                }
            }
        }
    }
    remove_any(&root.join(&journal.stage))?;
    remove_any(&root.join(JOURNAL_FILE))
}

/// Delete the backups of a committed journal, then the journal.
fn finish(root: &Path, journal: &Journal, at: &mut Checkpoints<'_>) -> Result<()> {
    for step in &journal.steps {
        let backup = match step {
            Step::Replace { backup, .. } | Step::Remove { backup, .. } => root.join(backup),
        };
        if backup.exists() {
            at.step(&format!(
                "delete the backup {}",
                fsutil::display_relative(&backup, root)
            ))?;
            remove_any(&backup)?;
        }
    }
    remove_any(&root.join(&journal.stage))?;
    at.step("delete the journal")?;
    remove_any(&root.join(JOURNAL_FILE))
}

/// The staged directory holds exactly the expected files with their digests.
fn verify_staged(dir: &Path, expected: &[LockedFile]) -> Result<()> {
    let scan = crate::vendoring::vendor::scan(dir)?;
    let differences = scan.differences(expected);
    if let Some(crate::vendoring::vendor::Difference::Changed {
        file,
        expected,
        actual,
    }) = differences
        .iter()
        .find(|d| matches!(d, crate::vendoring::vendor::Difference::Changed { .. }))
    {
        anyhow::bail!(
            "staged file {} has sha256 {actual}, expected {expected}",
            dir.join(file).display()
        );
    }
    if !differences.is_empty() {
        let found: std::collections::BTreeSet<&String> =
            scan.files.keys().chain(&scan.others).collect();
        let wanted: std::collections::BTreeSet<&String> =
            expected.iter().map(|f| &f.name).collect();
        anyhow::bail!(
            "staged {} holds {found:?}, expected {wanted:?}",
            dir.display()
        );
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).with_context(|| format!("moving {} to {}", from.display(), to.display()))
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

fn remove_any(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.with_context(|| format!("removing {}", path.display()))
}

/// Numbered points between the steps of a commit, where the test hook may interrupt it.
struct Checkpoints<'a> {
    reporter: Option<&'a dyn Reporter>,
    count: usize,
    interrupt: Option<(bool, usize)>,
}

impl<'a> Checkpoints<'a> {
    fn new(reporter: &'a dyn Reporter) -> Checkpoints<'a> {
        let interrupt = std::env::var(INTERRUPT_ENV).ok().and_then(|spec| {
            let (kind, n) = spec.split_once(':')?;
            Some((kind == "kill", n.parse().ok()?))
        });
        Checkpoints {
            reporter: Some(reporter),
            count: 0,
            interrupt,
        }
    }

    /// Recovery is never interrupted by the hook.
    fn none() -> Checkpoints<'static> {
        Checkpoints {
            reporter: None,
            count: 0,
            interrupt: None,
        }
    }

    fn step(&mut self, name: &str) -> Result<()> {
        self.count += 1;
        let Some((kill, n)) = self.interrupt else {
            return Ok(());
        };
        if n != self.count {
            return Ok(());
        }
        if let Some(r) = self.reporter {
            r.warn(&format!("{INTERRUPT_ENV}: step {n}: {name}"));
        }
        if kill {
            std::process::exit(KILLED_EXIT);
        }
        anyhow::bail!("{INTERRUPT_ENV}: step {n} ({name}) failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
            let mut entries: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .filter_map(std::result::Result::ok)
                .collect();
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for e in entries {
                let p = e.path();
                let rel = fsutil::display_relative(&p, root);
                if p.is_dir() {
                    out.push((format!("{rel}/"), Vec::new()));
                    walk(&p, root, out);
                } else {
                    out.push((rel, fs::read(&p).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out
    }

    fn file(name: &str, bytes: &[u8]) -> LockedFile {
        LockedFile {
            name: name.into(),
            from: format!("https://x/{name}"),
            sha256: crate::digest::sha256_hex(bytes),
            size: bytes.len() as u64,
        }
    }

    /// A project with version 1 of `a` vendored, a lock and a manifest.
    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("vendor/a/1")).unwrap();
        fs::write(root.join("vendor/a/1/a.yaml"), "one").unwrap();
        fs::create_dir_all(root.join("vendor/gone/1")).unwrap();
        fs::write(root.join("vendor/gone/1/g.yaml"), "gone").unwrap();
        fs::write(root.join("kpin.lock"), "lock 1").unwrap();
        fs::write(root.join("kpin.yaml"), "yaml 1").unwrap();
        dir
    }

    /// Upgrade `a` from 1 to 2, drop `gone`, rewrite both files.
    fn upgrade(root: &Path) -> Transaction {
        let mut t = Transaction::begin("upgrade a", root, &root.join("vendor")).unwrap();
        let dest = root.join("vendor/a/2");
        let staged = t.staging_for(&dest);
        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("a.yaml"), "two").unwrap();
        t.replace_dir(&dest, vec![file("a.yaml", b"two")]);
        t.remove_dir(&root.join("vendor/a/1"));
        t.remove_dir(&root.join("vendor/gone"));
        t.write_file(&root.join("kpin.lock"), b"lock 2".to_vec());
        t.write_file(&root.join("kpin.yaml"), b"yaml 2".to_vec());
        t
    }

    #[test]
    fn a_commit_makes_everything_new_and_leaves_nothing_behind() {
        let dir = project();
        let root = dir.path();
        assert!(upgrade(root).commit(&Silent).unwrap());
        assert_eq!(
            tree(root),
            [
                ("kpin.lock".to_owned(), b"lock 2".to_vec()),
                ("kpin.yaml".to_owned(), b"yaml 2".to_vec()),
                ("vendor/".to_owned(), vec![]),
                ("vendor/a/".to_owned(), vec![]),
                ("vendor/a/2/".to_owned(), vec![]),
                ("vendor/a/2/a.yaml".to_owned(), b"two".to_vec()),
            ]
        );
    }

    #[test]
    fn a_failing_step_rolls_everything_back_at_once() {
        let dir = project();
        let root = dir.path();
        let before = tree(root);
        let mut t = upgrade(root);
        // The last write fails: its parent directory is a regular file.
        fs::write(root.join("blocker"), "").unwrap();
        t.files[1].0 = root.join("blocker/kpin.yaml");
        let err = t.commit(&Silent).unwrap_err();
        assert!(
            crate::error::format_error(&err).contains("upgrade a was rolled back"),
            "{err:#}"
        );
        fs::remove_file(root.join("blocker")).unwrap();
        assert_eq!(tree(root), before);
        assert!(!root.join(JOURNAL_FILE).exists());
    }

    #[test]
    fn a_staged_file_that_does_not_verify_stops_the_commit_before_any_change() {
        let dir = project();
        let root = dir.path();
        let before = tree(root);
        let mut t = upgrade(root);
        t.dirs[0].expected = vec![file("a.yaml", b"something else")];
        let err = t.commit(&Silent).unwrap_err();
        assert!(format!("{err:#}").contains("has sha256"), "{err:#}");
        assert_eq!(tree(root), before);
    }

    #[test]
    fn recovery_rolls_back_an_unfinished_commit_from_any_state_on_disk() {
        // Every number of renames a kill could have let happen before the journal says
        // committed: the new directory, link and rename of each file, the two removals.
        for moves in 0..=7 {
            let dir = project();
            let root = dir.path();
            let before = tree(root);
            let t = upgrade(root);
            partial_commit(&t, moves);
            assert!(recover(root).unwrap().is_some());
            assert_eq!(tree(root), before, "stopped after {moves} moves");
        }
    }

    /// Write the journal, then do only the first `moves` renames of the commit.
    fn partial_commit(t: &Transaction, moves: usize) {
        let mut done = 0;
        let mut journal = t.journal(t.plan().unwrap());
        // As a killed process leaves it.
        journal.pid = u32::MAX;
        t.write_journal(&journal).unwrap();
        let root = &t.root;
        for step in &journal.steps {
            match step {
                Step::Replace {
                    dest,
                    staged,
                    backup,
                    dir,
                } => {
                    if root.join(dest).exists() {
                        if done == moves {
                            return;
                        }
                        if *dir {
                            fs::rename(root.join(dest), root.join(backup)).unwrap();
                        } else {
                            fs::hard_link(root.join(dest), root.join(backup)).unwrap();
                        }
                        done += 1;
                    }
                    if done == moves {
                        return;
                    }
                    fs::create_dir_all(root.join(dest).parent().unwrap()).unwrap();
                    fs::rename(root.join(staged), root.join(dest)).unwrap();
                    done += 1;
                }
                Step::Remove { path, backup } => {
                    if done == moves {
                        return;
                    }
                    fs::rename(root.join(path), root.join(backup)).unwrap();
                    done += 1;
                }
            }
        }
    }

    #[test]
    fn recovery_finishes_a_commit_marked_committed() {
        let dir = project();
        let root = dir.path();
        let t = upgrade(root);
        partial_commit(&t, usize::MAX);
        let mut journal: Journal =
            serde_json::from_str(&fs::read_to_string(root.join(JOURNAL_FILE)).unwrap()).unwrap();
        journal.committed = true;
        t.write_journal(&journal).unwrap();
        assert_eq!(
            recover(root).unwrap().as_deref(),
            Some("finished the interrupted upgrade a")
        );
        assert_eq!(tree(root).len(), 6, "{:?}", tree(root));
        assert!(!root.join(JOURNAL_FILE).exists());
        assert_eq!(recover(root).unwrap(), None);
    }
}
