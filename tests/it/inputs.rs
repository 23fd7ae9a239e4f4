//! Bad input that must not slip through: paths that lead out of the project (`..` or a
//! symlink), and values too long to repeat in a message.

use crate::support::{Project, Run};

/// A file outside the project whose objects must never reach the output.
const STOLEN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\n  namespace: demo\ndata:\n  secret: from-outside\n";
const UPSTREAM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: demo\n";

/// A vendored package `a` 1.0.0 (render reads vendor/ only) with environment `prod`, and a
/// directory outside the project holding an overlay, a release and a file to add.
struct Setup {
    project: Project,
    outside: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let project = Project::new();
        let outside = tempfile::tempdir().unwrap();
        project.write("vendor/a/1.0.0/a.yaml", UPSTREAM);
        for (rel, text) in [
            ("stolen.yaml", STOLEN),
            (
                "overlay.yaml",
                "operations:\n- labels: {set: {from: outside}}\n",
            ),
            ("mirror/1.0.0/a.yaml", STOLEN),
        ] {
            let path = outside.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Setup { project, outside }
    }

    /// kpin.yaml with package `a` (`package` lines added to it) and environment `prod`
    /// (`environments` replaces its declaration when given).
    fn manifest(&self, environments: &str, package: &str) -> &Self {
        let environments = match environments {
            "" => "environments:\n  prod: {}\n",
            given => given,
        };
        self.project.write(
            "kpin.yaml",
            &format!(
                "{environments}packages:\n  a:\n    version: 1.0.0\n    url: https://example.invalid/{{version}}/a.yaml\n{package}"
            ),
        );
        self
    }

    /// A symlink at `rel` in the project to `target` in the outside directory.
    fn link(&self, rel: &str, target: &str) -> &Self {
        let at = self.project.path().join(rel);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(self.outside.path().join(target), at).unwrap();
        self
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut run = self.project.run(args);
        let outside = self.outside.path().canonicalize().unwrap();
        for text in [&mut run.stdout, &mut run.stderr] {
            *text = text.replace(&outside.display().to_string(), "[OUTSIDE]");
        }
        run
    }

    /// `args` fail before anything is rendered, fetched or written, with `expected` on stderr.
    #[track_caller]
    fn refused(&self, args: &[&str], expected: &[&str]) {
        let run = self.run(args);
        assert_eq!(run.code, 2, "{}", run.transcript());
        for line in expected {
            assert!(run.stderr.contains(line), "{line}\n{}", run.transcript());
        }
        assert!(
            run.stderr
                .contains("hint: kpin reads and writes only inside the directory of kpin.yaml"),
            "{}",
            run.stderr
        );
        assert!(!run.stdout.contains("stolen") && !run.stdout.contains("outside"));
        assert!(!self.project.path().join("kpin.lock").exists());
    }
}

#[test]
fn overlay_lists_in_kpin_yaml_cannot_lead_out_of_the_project() {
    // Each overlay list of kpin.yaml, through a symlink.
    let link = "[overlays/link.yaml]";
    for (top, package, field) in [
        (
            String::new(),
            format!("    overlays: {link}\n"),
            "packages.a.overlays[0]",
        ),
        (
            String::new(),
            format!("    environments:\n      prod: {{overlays: {link}}}\n"),
            "packages.a.environments.prod.overlays[0]",
        ),
        (
            format!("environments:\n  prod: {{overlays: {link}}}\n"),
            String::new(),
            "environments.prod.overlays[0]",
        ),
    ] {
        let s = Setup::new();
        s.manifest(&top, &package);
        s.link("overlays/link.yaml", "overlay.yaml");
        s.refused(
            &["render", "--env", "prod"],
            &[
                &format!("caused by: [PROJECT]/kpin.yaml: {field}\n"),
                "caused by: `overlays/link.yaml` resolves to [OUTSIDE]/overlay.yaml through a symlink, outside the project directory [PROJECT]\n",
            ],
        );
    }
    // `..` is refused as written, naming the field.
    let s = Setup::new();
    s.manifest("", "    overlays: [../overlay.yaml]\n");
    s.refused(
        &["render"],
        &["package `a`\n  caused by: overlays[0]\n  caused by: `../overlay.yaml` must be a relative path below the directory of kpin.yaml"],
    );
}

#[test]
fn add_files_cannot_lead_out_of_the_project() {
    let s = Setup::new();
    s.manifest("", "    overlays: [overlays/a/base.yaml]\n");
    let escape = format!(
        "../../../{}/stolen.yaml",
        s.outside.path().file_name().unwrap().to_string_lossy()
    );
    s.project.write(
        "overlays/a/base.yaml",
        &format!("operations:\n- add: {{files: [{escape}]}}\n"),
    );
    s.refused(
        &["render"],
        &[
            "overlays/a/base.yaml operations[0] (add)\n  caused by: add.files[0]\n",
            &format!("caused by: `{escape}` resolves to [OUTSIDE]/stolen.yaml, outside the project directory [PROJECT]\n"),
        ],
    );

    s.project.write(
        "overlays/a/base.yaml",
        "operations:\n- add: {files: [extra.yaml]}\n",
    );
    s.link("overlays/a/extra.yaml", "stolen.yaml");
    s.refused(
        &["render"],
        &["caused by: `extra.yaml` resolves to [OUTSIDE]/stolen.yaml through a symlink, outside the project directory [PROJECT]\n"],
    );

    // `..` that stays inside the project is fine.
    s.project.write(
        "overlays/shared/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  namespace: demo\n",
    );
    s.project.write(
        "overlays/a/base.yaml",
        "operations:\n- add: {files: [../shared/extra.yaml]}\n",
    );
    let run = s.run(&["render"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("name: shared"), "{}", run.stdout);
}

#[test]
fn path_sources_and_vendor_dir_cannot_lead_out_of_the_project() {
    let s = Setup::new();
    s.project.write(
        "kpin.yaml",
        "packages:\n  m:\n    version: 1.0.0\n    path: mirror/{version}\n",
    );
    s.link("mirror", "mirror");
    s.refused(
        &["sync"],
        &[
            "caused by: [PROJECT]/kpin.yaml: packages.m.path\n",
            "caused by: `mirror/1.0.0` resolves to [OUTSIDE]/mirror/1.0.0 through a symlink, outside the project directory [PROJECT]\n",
        ],
    );
    assert!(!s.project.path().join("vendor/m").exists());

    s.project.write(
        "kpin.yaml",
        "packages:\n  m:\n    version: 1.0.0\n    path: ../mirror/{version}\n",
    );
    s.refused(
        &["sync"],
        &["`../mirror/1.0.0` must be a relative path below the directory of kpin.yaml"],
    );

    s.project.write(
        "kpin.yaml",
        "vendorDir: ../deps\npackages:\n  m:\n    version: 1.0.0\n    path: mirror/{version}\n",
    );
    s.refused(
        &["sync"],
        &["error: [PROJECT]/kpin.yaml: vendorDir\n  caused by: `../deps` must be a relative path below the directory of kpin.yaml"],
    );

    // vendorDir: a symlink out of the project, also one that does not lead anywhere yet.
    for target in ["mirror", "not-yet"] {
        let s = Setup::new();
        s.project.write(
            "kpin.yaml",
            "vendorDir: deps\npackages:\n  m:\n    version: 1.0.0\n    path: local/{version}\n",
        );
        s.project.write("local/1.0.0/m.yaml", UPSTREAM);
        s.link("deps", target);
        for command in ["sync", "render", "verify"] {
            s.refused(
                &[command],
                &[
                    "error: [PROJECT]/kpin.yaml: vendorDir\n",
                    &format!("caused by: `deps` resolves to [OUTSIDE]/{target} through a symlink, outside the project directory [PROJECT]\n"),
                ],
            );
        }
        assert!(!s.outside.path().join("not-yet").exists());
    }
}

#[test]
fn vendored_files_may_be_symlinks_read_in_place() {
    // Not a field of kpin.yaml: tests and benchmarks link real upstream releases this way.
    let s = Setup::new();
    s.manifest("", "");
    std::fs::remove_file(s.project.path().join("vendor/a/1.0.0/a.yaml")).unwrap();
    s.link("vendor/a/1.0.0/a.yaml", "stolen.yaml");
    let run = s.run(&["render"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("name: stolen"), "{}", run.stdout);
}

#[test]
fn errors_quote_a_short_prefix_of_huge_values() {
    let huge = "1".repeat(10 * 1024 * 1024);
    let p = Project::new();
    for (field, entry) in [
        (
            "version",
            format!("version: \"{huge}\"\n    url: https://x.invalid/{{version}}/a.yaml"),
        ),
        (
            "constraint",
            format!(
                "version: 1.0.0\n    url: https://x.invalid/{{version}}/a.yaml\n    constraint: \"{huge}\""
            ),
        ),
        (
            "namespace",
            format!(
                "version: 1.0.0\n    url: https://x.invalid/{{version}}/a.yaml\n    namespace: \"{huge}\""
            ),
        ),
        (
            "overlays",
            format!(
                "version: 1.0.0\n    url: https://x.invalid/{{version}}/a.yaml\n    overlays: [\"{huge}/..\"]"
            ),
        ),
        ("url", format!("version: 1.0.0\n    url: \"{huge}\"")),
        (
            "unknown key",
            format!(
                "version: 1.0.0\n    url: https://x.invalid/{{version}}/a.yaml\n    ? \"{huge}\"\n    : x"
            ),
        ),
        (
            "type",
            format!(
                "version: 1.0.0\n    url: https://x.invalid/{{version}}/a.yaml\n    needs: \"{huge}\""
            ),
        ),
    ] {
        p.write("kpin.yaml", &format!("packages:\n  a:\n    {entry}\n"));
        let run = p.run(&["verify"]);
        assert_eq!(
            run.code,
            2,
            "{field}: {}",
            &run.transcript()[..2000.min(run.transcript().len())]
        );
        assert!(
            run.stderr.len() < 1500,
            "{field}: {} bytes on stderr:\n{}",
            run.stderr.len(),
            &run.stderr[..3000.min(run.stderr.len())]
        );
        let quoted = format!("{}…` (1048576", "1".repeat(60));
        assert!(run.stderr.contains(&quoted), "{field}: {}", run.stderr);
    }
    // An overlay too.
    p.write(
        "kpin.yaml",
        "packages:\n  a:\n    version: 1.0.0\n    url: https://x.invalid/{version}/a.yaml\n    overlays: [o.yaml]\n",
    )
    .write("vendor/a/1.0.0/a.yaml", UPSTREAM)
    .write("o.yaml", &format!("operations:\n- image: {{name: \"[{huge}\", newTag: x}}\n"));
    let run = p.run(&["render"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.len() < 1500,
        "{} bytes:\n{}",
        run.stderr.len(),
        &run.stderr[..3000.min(run.stderr.len())]
    );
    assert!(run.stderr.contains("image.name: `[1111"), "{}", run.stderr);
}
