//! The CI recipe (examples/github-actions/) passes the real GitHub Actions linter, actionlint,
//! built from the Go modules pinned in tools/actionlint/ (`tools/go-tool actionlint`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::repo_root;

/// The actionlint binary `.ci/run` builds, or None (and the calling test is skipped).
fn actionlint_or_skip(test: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os("KPIN_ACTIONLINT").map(PathBuf::from) else {
        crate::support::skip(
            test,
            "KPIN_ACTIONLINT is not set (KPIN_ACTIONLINT=$(tools/go-tool actionlint) to run it)",
        );
        return None;
    };
    assert!(
        path.is_file(),
        "KPIN_ACTIONLINT={} is no file",
        path.display()
    );
    Some(path)
}

/// A scratch repository laid out as the recipe's README says to copy it: the workflow in
/// .github/workflows/, the composite action in .github/actions/install-kpin/, so that
/// actionlint also checks the `uses: ./.github/actions/install-kpin` steps against it.
fn recipe_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let recipe = repo_root().join("examples/github-actions");
    for (from, to) in [
        ("kpin.yml", ".github/workflows/kpin.yml"),
        (
            "install-kpin/action.yml",
            ".github/actions/install-kpin/action.yml",
        ),
    ] {
        let to = dir.path().join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(recipe.join(from), to).unwrap();
    }
    // actionlint finds the project (and its local actions) by .git next to .github/.
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    dir
}

/// actionlint on the workflow, shellcheck and pyflakes off (the linter's own rules only).
fn actionlint(bin: &Path, repo: &Path) -> Output {
    Command::new(bin)
        .args(["-shellcheck=", "-pyflakes=", "-no-color", "-oneline"])
        .arg(".github/workflows/kpin.yml")
        .current_dir(repo)
        .output()
        .unwrap()
}

#[test]
fn the_ci_recipe_passes_actionlint() {
    let Some(bin) = actionlint_or_skip("the_ci_recipe_passes_actionlint") else {
        return;
    };
    let repo = recipe_repository();
    let out = actionlint(&bin, repo.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim().is_empty(),
        "actionlint finds problems in examples/github-actions/ ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // The same linter does see into the composite action: a typo there is a finding.
    let action = repo.path().join(".github/actions/install-kpin/action.yml");
    let text = std::fs::read_to_string(&action).unwrap();
    std::fs::write(
        &action,
        text.replace("using: composite", "using: compositee"),
    )
    .unwrap();
    let out = actionlint(&bin, repo.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("\"compositee\""), "{stdout}");
}
