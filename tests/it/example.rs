//! Integration tests: the repository's own example (kpin.yaml, examples/upstream, overlays/,
//! vendor/, lockfile.example) works offline from a fresh clone.

use std::path::Path;

use crate::support::{Project, repo_root};

/// A scratch copy of the example: the files a fresh clone has.
fn example_project() -> Project {
    let project = Project::new();
    for dir in ["examples/upstream", "overlays", "vendor"] {
        copy_tree(&repo_root().join(dir), &project.path().join(dir));
    }
    std::fs::copy(repo_root().join("kpin.yaml"), project.path().join("kpin.yaml")).unwrap();
    project
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn lockfile_example_is_exactly_what_sync_writes() {
    let project = example_project();
    let run = project.run(&["sync", "--offline"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let written = project.read("kpin.lock");
    let example = std::fs::read_to_string(repo_root().join("lockfile.example")).unwrap();
    assert_eq!(
        written, example,
        "lockfile.example is stale: run `kpin sync --offline && cp kpin.lock lockfile.example`"
    );
}

#[test]
fn fresh_clone_renders_offline_and_verifies_clean() {
    let project = example_project();
    let run = project.run(&["render", "--env", "prod", "--offline"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("namespace: ingress"), "{}", run.stdout);
    let verify = project.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    // The committed vendor tree is exactly what sync produces: nothing was rewritten.
    let again = project.run(&["sync", "--locked", "--offline"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
}
