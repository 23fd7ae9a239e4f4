//! All or nothing: `sync` and `upgrade` (and `promote`, in environments.rs) interrupted at
//! every step of their commit — a failure (rolled back at once) and a kill (rolled back or
//! finished by the next command of any kind) — leave kpin.yaml, kpin.lock and vendor/ byte for
//! byte as they were, or as a clean run makes them. The steps are the commit's numbered checkpoints (`KPIN_TEST_INTERRUPT=kill:N`), not
//! timing.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{Project, copy_dir};

/// The project's state: every file under it (journal and leftovers included), by path.
fn state(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                walk(&path, root, out);
            } else {
                out.insert(
                    rel,
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A copy of `p` (same files, its own cache).
fn copy(p: &Project) -> Project {
    let q = Project::new();
    copy_dir(p.path(), q.path());
    q
}

const V1: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\ndata: {v: '1'}\n";
const V2: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\ndata: {v: '2'}\n";

/// Package `a` at 1.0.0 and package `gone`, synced; the local mirror also has `a` 2.0.0.
fn synced() -> Project {
    let p = Project::new();
    p.write("mirror/1.0.0/a.yaml", V1)
        .write("mirror/2.0.0/a.yaml", V2)
        .write("other/1.0.0/g.yaml", V1)
        .write(
            "kpin.yaml",
            "# the team's manifest\npackages:\n  a:\n    version: 1.0.0   # pinned\n    path: mirror/{version}\n  gone:\n    version: 1.0.0\n    path: other/{version}\n",
        );
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    p
}

/// Run `args` on copies of `before`, interrupting the commit at each step in turn, until a run
/// is no longer interrupted. After a kill, `kpin verify` (any command would do) must find the
/// project wholly old or wholly new; after a failure, wholly old at once.
pub(crate) fn interrupt_every_step(before: &Project, args: &[&str]) {
    let old = state(before.path());
    let clean = copy(before);
    let run = clean.run(args);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let new = state(clean.path());
    assert_ne!(old, new, "the command must change something");

    let mut steps = Vec::new();
    for n in 1.. {
        let p = copy(before);
        let killed = p.run_with(args, |c| c.env("KPIN_TEST_INTERRUPT", format!("kill:{n}")));
        if killed.code != 137 {
            assert_eq!(killed.code, 0, "{}", killed.transcript());
            assert!(state(p.path()) == new, "uninterrupted run {n}");
            break;
        }
        let step = killed
            .stderr
            .lines()
            .find_map(|l| {
                l.split_once("KPIN_TEST_INTERRUPT: ")
                    .map(|(_, s)| s.to_owned())
            })
            .unwrap_or_else(|| format!("step {n}"));
        let after = p.run(&["verify"]);
        let now = state(p.path());
        assert!(
            now == old || now == new,
            "killed at {step}: neither old nor new; then verify said:\n{}\nfiles: {:?}",
            after.transcript(),
            now.keys().collect::<Vec<_>>()
        );
        assert!(
            after.stderr.contains("the interrupted"),
            "{step}: {}",
            after.stderr
        );

        // A failure before the commit is final rolls back at once; after it (deleting the
        // backups), the command succeeds and the next one finishes the clean-up.
        let p = copy(before);
        let failed = p.run_with(args, |c| c.env("KPIN_TEST_INTERRUPT", format!("fail:{n}")));
        if failed.code == 0 {
            assert!(
                failed.stderr.contains("clean-up failed"),
                "{}",
                failed.stderr
            );
            p.run(&["verify"]);
            let now = state(p.path());
            assert!(
                now == new,
                "failed at {step}: not finished: {:?}",
                now.keys().collect::<Vec<_>>()
            );
        } else {
            assert_eq!(failed.code, 2, "{step}: {}", failed.transcript());
            assert!(
                failed.stderr.contains("was rolled back"),
                "{}",
                failed.stderr
            );
            let now = state(p.path());
            assert!(
                now == old,
                "failed at {step}: not rolled back: {:?}",
                now.keys().collect::<Vec<_>>()
            );
        }
        steps.push(step);
    }
    // The commit has real steps to interrupt: the journal, each move, the backups, the end.
    assert!(steps.len() >= 8, "{steps:#?}");
}

#[test]
fn sync_is_wholly_old_or_wholly_new_after_a_kill_at_any_step() {
    let p = synced();
    // Version 2 of `a`, `gone` dropped: sync swaps a directory, removes two, writes the lock.
    p.write(
        "kpin.yaml",
        &p.read("kpin.yaml")
            .replace("1.0.0   # pinned", "2.0.0   # pinned")
            .replace(
                "  gone:\n    version: 1.0.0\n    path: other/{version}\n",
                "",
            ),
    );
    interrupt_every_step(&p, &["sync"]);
}

#[test]
fn upgrade_is_wholly_old_or_wholly_new_after_a_kill_at_any_step() {
    let p = synced();
    interrupt_every_step(&p, &["upgrade", "a", "--to", "2.0.0"]);
}
