//! Integration tests: the repository's own example (kpin.yaml, examples/upstream, overlays/,
//! vendor/, lockfile.example) works offline from a fresh clone.

use crate::support::{example_project, example_project_locked, repo_root};

#[test]
fn lockfile_example_is_exactly_what_sync_writes() {
    // As the README's walk-through starts: lockfile.example as kpin.lock. A sync keeps it.
    let project = example_project_locked();
    let run = project.run(&["sync", "--offline"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let written = project.read("kpin.lock");
    let example = std::fs::read_to_string(repo_root().join("lockfile.example")).unwrap();
    assert_eq!(
        written, example,
        "lockfile.example is stale: run `kpin sync --offline && cp kpin.lock lockfile.example`"
    );
}

/// Without a lock, kpin trusts no vendored chart render: it renders the chart again with helm,
/// and that render is byte for byte the committed one, locked as lockfile.example says.
#[test]
fn the_example_chart_renders_again_to_the_committed_vendor_files() {
    let test = "the_example_chart_renders_again_to_the_committed_vendor_files";
    let Some(helm) = crate::support::charts::helm_or_skip(test) else {
        return;
    };
    let project = example_project();
    let vendored = snapshot_tree(&project.path().join("vendor"));
    let run = project.run_with(&["sync", "--offline"], |c| c.env("KPIN_HELM", &helm));
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.contains("Rendering example-dashboard 0.3.0"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot_tree(&project.path().join("vendor")), vendored);
    let example = std::fs::read_to_string(repo_root().join("lockfile.example")).unwrap();
    assert_eq!(project.read("kpin.lock"), example);
}

#[test]
fn fresh_clone_renders_offline_and_verifies_clean() {
    let project = example_project();
    // Render needs only kpin.yaml, vendor/ and overlays/: no lockfile, no network.
    let run = project.run(&["render", "--env", "prod"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("namespace: ingress"), "{}", run.stdout);

    let vendored = snapshot_tree(&project.path().join("vendor"));
    std::fs::copy(
        repo_root().join("lockfile.example"),
        project.path().join("kpin.lock"),
    )
    .unwrap();
    let sync = project.run(&["sync", "--offline"]);
    assert_eq!(sync.code, 0, "{}", sync.transcript());
    assert_eq!(
        snapshot_tree(&project.path().join("vendor")),
        vendored,
        "the committed vendor/ is exactly what sync produces"
    );
    let verify = project.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    let locked = project.run(&["render", "--env", "prod", "--locked"]);
    assert_eq!(locked.code, 0, "{}", locked.transcript());
    assert_eq!(locked.stdout, run.stdout);
}

/// Every file below `dir` with its bytes, for before/after comparisons.
fn snapshot_tree(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    // `kpin render | head -1`: the closed pipe must not turn into a panic.
    let p = example_project();
    for args in [
        &["render"][..],
        &["schema"][..],
        &["render", "--explain"][..],
    ] {
        let mut child = p
            .kpin()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn manifest_flag_pointing_at_a_directory_names_the_file_to_pass() {
    let p = example_project();
    let run = p.run(&["--manifest", ".", "verify"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert_eq!(
        run.stderr,
        "error: --manifest . is a directory\n  hint: pass the file itself: --manifest ./kpin.yaml\n"
    );
}
