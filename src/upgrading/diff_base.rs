//! `kpin diff --base REV`: what a change to kpin.yaml, overlays or vendor/ does to the rendered
//! output, per package, compared with the same project at a git revision. No cluster needed:
//! the revision is extracted with `git archive` into a temp directory (vendor/ and overlays/
//! are committed), rendered there, and the directory removed however the comparison ends.
//! Each environment renders the version it runs: without `--env`, the environments that run a
//! version of their own get a section each, so a promotion shows up in review.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::changes::{self, Detail, Section};
use crate::error::HintExt;
use crate::manifest::{MANIFEST_FILE, Manifest, Package};
use crate::render;

/// A project extracted at a git revision; removed when dropped.
pub struct Snapshot {
    _dir: tempfile::TempDir,
    /// kpin.yaml inside the extracted tree (it may not exist at that revision).
    pub manifest_path: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("running git")
        .hint("kpin diff --base needs git on PATH")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

/// Extract the directory holding `manifest` as it is at `rev` into a temp directory.
pub fn extract(manifest: &Manifest, rev: &str) -> Result<Snapshot> {
    let root = manifest
        .root
        .canonicalize()
        .with_context(|| format!("resolving {}", manifest.root.display()))?;
    let top = git(&root, &["rev-parse", "--show-toplevel"]).context(
        "kpin diff --base compares with a git revision, but the project is not in a git repository",
    )?;
    let top = PathBuf::from(top)
        .canonicalize()
        .context("resolving the git top level")?;
    git(
        &root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| anyhow::anyhow!("`{rev}` is not a commit in {}", top.display()))
    .hint("fetch it first (in CI: `git fetch origin main`, or checkout with fetch-depth: 0)")?;
    let rel = root
        .strip_prefix(&top)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let dir = tempfile::Builder::new()
        .prefix("kpin-base-")
        .tempdir()
        .context("creating a temp directory for the base revision")?;

    // `git archive REV -- DIR | tar -x -C TMP`: no change to the repository or its worktrees.
    let mut archive = Command::new("git");
    archive
        .arg("-C")
        .arg(&top)
        .args(["archive", "--format=tar", rev]);
    if !rel.as_os_str().is_empty() {
        archive.arg("--").arg(&rel);
    }
    let mut archive = archive
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running git archive")?;
    let stdout = archive.stdout.take().context("git archive has no output")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dir.path())
        .stdin(stdout)
        .stderr(Stdio::piped())
        .output()
        .context("running tar")
        .hint("kpin diff --base needs tar on PATH")?;
    let archived = archive.wait_with_output().context("running git archive")?;
    if !archived.status.success() {
        bail!(
            "git archive {rev} failed: {}",
            String::from_utf8_lossy(&archived.stderr).trim()
        );
    }
    if !tar.status.success() {
        bail!(
            "extracting {rev}: {}",
            String::from_utf8_lossy(&tar.stderr).trim()
        );
    }
    let file_name = manifest
        .path
        .file_name()
        .map_or_else(|| PathBuf::from(MANIFEST_FILE), PathBuf::from);
    Ok(Snapshot {
        manifest_path: dir.path().join(&rel).join(file_name),
        _dir: dir,
    })
}

/// What to compare.
#[derive(Debug, Clone, Default)]
pub struct BaseDiffOptions {
    /// Packages to compare; all (on either side) when empty.
    pub packages: Vec<String>,
    /// Environment whose overlays to add.
    pub env: Option<String>,
    /// The revision, for notes.
    pub base_label: String,
}

/// Compare the working tree's render (`head`) with the one at the base revision (`base`,
/// `None` when kpin.yaml did not exist there): one section per package.
pub fn compare(
    base: Option<&Manifest>,
    head: &Manifest,
    options: &BaseDiffOptions,
) -> Result<Vec<Section>> {
    let mut names: BTreeSet<&str> = head.packages.keys().map(String::as_str).collect();
    if let Some(b) = base {
        names.extend(b.packages.keys().map(String::as_str));
    }
    for wanted in &options.packages {
        if !names.contains(wanted.as_str()) {
            head.select(std::slice::from_ref(wanted))?;
        }
    }
    if let Some(env) = &options.env {
        head.environment(env)?;
    }
    // Without --env, the render without one, plus each environment that runs another version
    // than the package's on either side: its render is not the default one.
    let views: Vec<Option<&str>> = match options.env.as_deref() {
        Some(env) => vec![Some(env)],
        None => std::iter::once(None)
            .chain(head.environments.keys().map(|e| Some(e.as_str())))
            .collect(),
    };
    let mut sections = Vec::new();
    for name in names {
        if !options.packages.is_empty() && !options.packages.iter().any(|p| p == name) {
            continue;
        }
        let old = base.and_then(|b| b.packages.get(name).map(|p| (b, p)));
        let new = head.packages.get(name).map(|p| (head, p));
        for env in &views {
            // The environment as each side declares it (it may be new on one side).
            let declared = |m: &Manifest| env.filter(|e| m.environments.contains_key(*e));
            let own_render = |side: Option<(&Manifest, &Package)>| {
                side.is_some_and(|(m, p)| {
                    p.version_in(declared(m)) != &p.version || !p.installed_in(declared(m))
                })
            };
            if options.env.is_none() && env.is_some() && !own_render(old) && !own_render(new) {
                continue;
            }
            // A package not installed in the environment renders nothing there.
            let old = old.filter(|(m, p)| p.installed_in(declared(m)));
            let new = new.filter(|(m, p)| p.installed_in(declared(m)));
            if old.is_none() && new.is_none() {
                continue;
            }
            sections.push(section(name, old, new, *env, options)?);
        }
    }
    Ok(sections)
}

/// One package compared in one environment (`None`: without `--env`).
fn section(
    name: &str,
    old: Option<(&Manifest, &Package)>,
    new: Option<(&Manifest, &Package)>,
    env: Option<&str>,
    options: &BaseDiffOptions,
) -> Result<Section> {
    let old_render = old
        .map(|(m, p)| {
            env_render(m, p, env)
                .with_context(|| format!("rendering `{name}` at {}", options.base_label))
        })
        .transpose()?;
    let new_render = new.map(|(m, p)| env_render(m, p, env)).transpose()?;
    let changes = changes::compare(
        old_render
            .as_ref()
            .map(|r| r.objects.clone())
            .unwrap_or_default(),
        new_render
            .as_ref()
            .map(|r| r.objects.clone())
            .unwrap_or_default(),
    );
    let mut warnings: Vec<String> = new_render
        .as_ref()
        .map(|r| r.warnings.clone())
        .unwrap_or_default();
    warnings.extend(changes::review_warnings(&changes));
    Ok(Section {
        package: name.to_owned(),
        // Named when several environments of one package are listed.
        title: match (env, &options.env) {
            (Some(e), None) => format!("environment {e}"),
            _ => String::new(),
        },
        version_before: old_render.as_ref().map(|r| r.version.clone()),
        version_after: new_render.as_ref().map(|r| r.version.clone()),
        notes: notes(old, new, env)?,
        warnings,
        changes,
        detail: Detail::Unified,
    })
}

/// Render for `env`, skipping packages in environments that do not exist at that revision.
fn env_render(
    manifest: &Manifest,
    package: &Package,
    env: Option<&str>,
) -> Result<render::RenderedPackage> {
    let env = env.filter(|e| manifest.environments.contains_key(*e));
    render::render_package(manifest, package, env)
}

/// What an overlay reads (`Overlay::inputs`); `None` when it does not load.
type Inputs = Option<Vec<(String, String)>>;

/// Version bumps and overlay changes: what a reviewer reads before the object diffs.
fn notes(
    old: Option<(&Manifest, &Package)>,
    new: Option<(&Manifest, &Package)>,
    env: Option<&str>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let version = |(m, p): (&Manifest, &Package)| {
        p.version_in(env.filter(|e| m.environments.contains_key(*e)))
            .clone()
    };
    match (old.map(version), new.map(version)) {
        (None, Some(v)) => out.push(format!("new package at version {v}")),
        (Some(v), None) => out.push(format!("package removed (was version {v})")),
        (Some(a), Some(b)) if a != b => out.push(format!("version {a} -> {b}")),
        _ => {}
    }
    if let (Some((_, a)), Some((_, b))) = (old, new) {
        if a.source != b.source {
            out.push(format!(
                "source changed ({} -> {})",
                a.source.kind(),
                b.source.kind()
            ));
        }
        if a.namespace != b.namespace {
            let show = |n: &Option<String>| n.clone().unwrap_or_else(|| "(upstream)".to_owned());
            out.push(format!(
                "namespace {} -> {}",
                show(&a.namespace),
                show(&b.namespace)
            ));
        }
    }
    // An overlay counts as changed when its file or any file it adds changed (`Overlay::inputs`).
    let overlays = |side: Option<(&Manifest, &Package)>| -> Result<Vec<(String, Inputs)>> {
        let Some((m, p)) = side else {
            return Ok(Vec::new());
        };
        let env = env.filter(|e| m.environments.contains_key(*e));
        Ok(render::overlay_paths(m, p, env)?
            .iter()
            .map(|listed| {
                let inputs = render::load_overlay(m, listed).ok().map(|o| o.inputs);
                (listed.path.to_owned(), inputs)
            })
            .collect())
    };
    let before = overlays(old)?;
    let after = overlays(new)?;
    for (path, bytes) in &after {
        match before.iter().find(|(p, _)| p == path) {
            None => out.push(format!("overlay added: {path}")),
            Some((_, old_bytes)) if old_bytes != bytes => {
                out.push(format!("overlay changed: {path}"));
            }
            Some(_) => {}
        }
    }
    for (path, _) in &before {
        if !after.iter().any(|(p, _)| p == path) {
            out.push(format!("overlay removed: {path}"));
        }
    }
    let order = |list: &[(String, Inputs)]| list.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    let (a, b) = (order(&before), order(&after));
    if a != b && a.len() == b.len() && a.iter().all(|p| b.contains(p)) {
        out.push("overlays reordered".to_owned());
    }
    Ok(out)
}

/// Load the base manifest from a snapshot, `None` when kpin.yaml did not exist at that revision.
pub fn base_manifest(snapshot: &Snapshot, rev: &str) -> Result<Option<Manifest>> {
    if !snapshot.manifest_path.is_file() {
        return Ok(None);
    }
    Manifest::load(&snapshot.manifest_path)
        .map(Some)
        .with_context(|| format!("kpin.yaml at {rev}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_in(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.email=t@example.com",
                "-c",
                "user.name=t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: a\ndata:\n  v: \"1\"\n";

    #[test]
    fn compares_the_working_tree_with_a_revision_in_a_subdirectory() {
        let repo = tempfile::tempdir().unwrap();
        let root = repo.path().join("deploy");
        write(
            &root,
            "kpin.yaml",
            "packages:\n  a:\n    version: 1.0.0\n    path: up/{version}\n",
        );
        write(&root, "vendor/a/1.0.0/all.yaml", CM);
        write(&root, "up/1.0.0/all.yaml", CM);
        git_in(repo.path(), &["init", "-q"]);
        git_in(repo.path(), &["add", "-A"]);
        git_in(repo.path(), &["commit", "-qm", "base"]);
        // The working tree moves to 1.1.0 with a changed ConfigMap and an overlay.
        write(
            &root,
            "kpin.yaml",
            "packages:\n  a:\n    version: 1.1.0\n    path: up/{version}\n    overlays: [o.yaml]\n",
        );
        write(
            &root,
            "vendor/a/1.1.0/all.yaml",
            &CM.replace("\"1\"", "\"2\""),
        );
        write(
            &root,
            "o.yaml",
            "operations:\n- labels:\n    set: {team: x}\n",
        );

        let head = Manifest::load(&root.join("kpin.yaml")).unwrap();
        let snapshot = extract(&head, "HEAD").unwrap();
        let base_dir = snapshot.manifest_path.parent().unwrap().to_path_buf();
        let base = base_manifest(&snapshot, "HEAD").unwrap();
        let options = BaseDiffOptions {
            base_label: "HEAD".into(),
            ..BaseDiffOptions::default()
        };
        let sections = compare(base.as_ref(), &head, &options).unwrap();
        assert_eq!(sections.len(), 1);
        assert_eq!(
            sections[0].notes,
            ["version 1.0.0 -> 1.1.0", "overlay added: o.yaml"]
        );
        assert_eq!(changes::Counts::of(&sections[0].changes).changed, 1);
        drop(snapshot);
        assert!(!base_dir.exists(), "the extracted revision is removed");

        // A file added by an overlay changes: the overlay counts as changed.
        write(
            &root,
            "o.yaml",
            "operations:\n- add: {files: [extra.yaml]}\n",
        );
        write(
            &root,
            "extra.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: e, namespace: a}\n",
        );
        git_in(repo.path(), &["add", "-A"]);
        git_in(repo.path(), &["commit", "-qm", "overlay"]);
        write(
            &root,
            "extra.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: e, namespace: a}\ndata: {x: y}\n",
        );
        let snapshot = extract(&head, "HEAD").unwrap();
        let base = base_manifest(&snapshot, "HEAD").unwrap();
        let sections = compare(base.as_ref(), &head, &options).unwrap();
        assert_eq!(sections[0].notes, ["overlay changed: o.yaml"]);

        let err = extract(&head, "no-such-rev").err().unwrap();
        assert!(
            crate::error::format_error(&err).contains("`no-such-rev` is not a commit"),
            "{err:#}"
        );
    }
}
