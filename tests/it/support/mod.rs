//! Shared test helpers: running the kpin binary in a scratch project and snapshot filters.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod charts;
pub mod fake_apiserver;
pub mod http;

/// The repository root (where the bundled example lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/upstream/` with the real upstream releases, when present.
pub fn upstream_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KPIN_UPSTREAM_DIR")
        .map_or_else(|| repo_root().join("../shared/upstream"), PathBuf::from);
    dir.join("INDEX.tsv").is_file().then_some(dir)
}

/// Every release listed in `INDEX.tsv` of the upstream folder, as (label, path).
pub fn upstream_releases(dir: &Path) -> Vec<(String, PathBuf)> {
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).expect("reading INDEX.tsv");
    let mut lines = index.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("INDEX.tsv has no `{name}` column"))
    };
    let (project, version, file) = (col("project"), col("version"), col("file"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let rel = format!("{}/{}/{}", f[project], f[version], f[file]);
            (rel.clone(), dir.join(rel))
        })
        .collect()
}

/// Say why `test` does not run: a newcomer's machine may lack what it needs, so it prints
/// SKIPPED; in CI (`CI=true`) it fails instead, so that a green CI always means it ran.
#[track_caller]
pub fn skip(test: &str, why: &str) {
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "{test} cannot run in CI: {why}"
    );
    eprintln!("SKIPPED {test}: {why}");
}

/// Return the upstream folder, or print why the calling test is skipped.
#[track_caller]
pub fn upstream_or_skip(test: &str) -> Option<PathBuf> {
    let dir = upstream_dir();
    if dir.is_none() {
        skip(
            test,
            "../shared/upstream/ is absent (set KPIN_UPSTREAM_DIR to run it)",
        );
    }
    dir
}

/// A scratch copy of the repository's example: the files a fresh clone has.
pub fn example_project() -> Project {
    let project = Project::new();
    for dir in ["examples/upstream", "examples/charts", "overlays", "vendor"] {
        copy_dir(&repo_root().join(dir), &project.path().join(dir));
    }
    std::fs::copy(
        repo_root().join("kpin.yaml"),
        project.path().join("kpin.yaml"),
    )
    .unwrap();
    project
}

/// `example_project` with `lockfile.example` as its kpin.lock (`cp lockfile.example kpin.lock`,
/// as the README's walk-through starts): a sync then keeps the vendored chart render, which
/// without a lock only helm could vouch for.
pub fn example_project_locked() -> Project {
    let project = example_project();
    std::fs::copy(
        repo_root().join("lockfile.example"),
        project.path().join("kpin.lock"),
    )
    .unwrap();
    project
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A scratch project directory with its own cache dir.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub cache: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("tempdir"),
            cache: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel))
            .unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// `kpin` with this project as working directory and a private cache.
    pub fn kpin(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kpin"));
        cmd.current_dir(self.dir.path())
            .env("KPIN_CACHE_DIR", self.cache.path())
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_TOKEN")
            .env_remove("KUBECONFIG")
            .env_remove("KPIN_MANIFEST")
            // Registry credentials only where a test gives them.
            .env_remove("KPIN_REGISTRY_CONFIG")
            .env_remove("HELM_REGISTRY_CONFIG")
            .env("DOCKER_CONFIG", self.cache.path())
            .env("XDG_CONFIG_HOME", self.cache.path());
        cmd
    }

    /// The kpin command with `args`, in the project, to start and wait for by hand.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.kpin();
        cmd.args(args);
        cmd
    }

    /// Run kpin with `args`; returns (exit code, stdout, stderr) with temp paths filtered.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.kpin().args(args).output().expect("running kpin");
        Run::new(out, &[self.dir.path(), self.cache.path()])
    }

    /// Run kpin with `args` under the file mode creation mask `umask` (e.g. `022`), set by a
    /// shell the way a user's login sets it.
    pub fn run_with_umask(&self, umask: &str, args: &[&str]) -> Run {
        let kpin = self.kpin();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(kpin.get_program())
            .args(args)
            .current_dir(self.dir.path());
        for (key, value) in kpin.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        let out = cmd.output().expect("running kpin through sh");
        Run::new(out, &[self.dir.path(), self.cache.path()])
    }

    /// Run kpin with `args` after `setup` changed the command, e.g. its environment.
    pub fn run_with(&self, args: &[&str], setup: impl FnOnce(&mut Command) -> &mut Command) -> Run {
        let mut cmd = self.kpin();
        let out = setup(cmd.args(args)).output().expect("running kpin");
        Run::new(out, &[self.dir.path(), self.cache.path()])
    }
}

/// One finished kpin run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(out: Output, temp_paths: &[&Path]) -> Run {
        let filter = |s: &[u8]| {
            let mut text = String::from_utf8_lossy(s).into_owned();
            for (i, p) in temp_paths.iter().enumerate() {
                let name = if i == 0 { "[PROJECT]" } else { "[CACHE]" };
                // Canonical form first: macOS and some CI put temp dirs behind symlinks.
                if let Ok(c) = p.canonicalize() {
                    text = text.replace(&c.display().to_string(), name);
                }
                text = text.replace(&p.display().to_string(), name);
            }
            filter_ports(&text)
        };
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: filter(&out.stdout),
            stderr: filter(&out.stderr),
        }
    }

    /// Exit code, stdout and stderr in one string for snapshots.
    pub fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Replace `127.0.0.1:PORT` and `localhost:PORT` with `[HOST]`.
pub fn filter_ports(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Both prefixes are ten bytes long; take whichever comes first.
    let next = |t: &str| {
        [t.find("127.0.0.1:"), t.find("localhost:")]
            .into_iter()
            .flatten()
            .min()
    };
    while let Some(i) = next(rest) {
        let prefix_len = "127.0.0.1:".len();
        out.push_str(&rest[..i]);
        let after = &rest[i + prefix_len..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("[HOST]");
            rest = &after[digits..];
        } else {
            out.push_str(&rest[i..i + prefix_len]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Run git in the project (a throwaway identity, no signing); fails the test when git fails.
pub fn git(p: &Project, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(p.path())
        .args([
            "-c",
            "user.email=ci@example.com",
            "-c",
            "user.name=ci",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
