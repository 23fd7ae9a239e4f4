//! Helm charts as a source: fetched from a classic repository served on loopback or a real OCI
//! registry (with basic auth), rendered once by the real helm at sync time, vendored, locked
//! (archive digest, values digest, helm version) and used afterwards with no helm and no network.

use std::path::{Path, PathBuf};

use crate::support::charts::{
    self, Registry, helm_or_skip, package_fixture, upstream_charts, upstream_charts_or_skip,
};
use crate::support::http::Server;
use crate::support::{Project, Run, filter_ports};

/// A scratch helm home and a directory of packaged charts.
struct Charts {
    helm: PathBuf,
    home: tempfile::TempDir,
}

impl Charts {
    fn new(test: &str) -> Option<Charts> {
        Some(Charts {
            helm: helm_or_skip(test)?,
            home: tempfile::tempdir().unwrap(),
        })
    }

    fn out(&self) -> PathBuf {
        self.home.path().join("packaged")
    }

    /// The test chart at `version`, packaged.
    fn fixture(&self, version: &str) -> PathBuf {
        package_fixture(
            &self.helm,
            self.home.path(),
            "kpin-demo",
            version,
            &self.out(),
        )
    }

    /// A classic repository of `archives` served over HTTP on loopback.
    fn serve(&self, archives: &[PathBuf]) -> Server {
        let server = Server::http();
        self.publish(&server, archives);
        server
    }

    /// `archives` and their index.yaml served by `server` under `/charts`.
    fn publish(&self, server: &Server, archives: &[PathBuf]) {
        let repo = self.home.path().join("repo");
        let _ = std::fs::remove_dir_all(&repo);
        std::fs::create_dir_all(&repo).unwrap();
        for a in archives {
            std::fs::copy(a, repo.join(a.file_name().unwrap())).unwrap();
        }
        charts::helm(
            &self.helm,
            self.home.path(),
            &[
                "repo",
                "index",
                repo.to_str().unwrap(),
                "--url",
                &server.url("/charts"),
            ],
        );
        for entry in std::fs::read_dir(&repo).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            server.file(&format!("/charts/{name}"), std::fs::read(&path).unwrap());
        }
    }

    /// `helm template` as the test runs it by hand, for comparisons.
    fn template(&self, release: &str, archive: &Path, args: &[&str]) -> String {
        let mut all = vec!["template", release, archive.to_str().unwrap()];
        all.extend(args);
        charts::helm(&self.helm, self.home.path(), &all)
    }
}

/// kpin with helm reachable only through `KPIN_HELM` (so that removing it removes helm).
fn run(p: &Project, args: &[&str], helm: Option<&Path>) -> Run {
    p.run_with(args, |c| {
        c.env("PATH", "/usr/bin:/bin");
        match helm {
            Some(h) => c.env("KPIN_HELM", h),
            None => c.env_remove("KPIN_HELM"),
        }
    })
}

#[track_caller]
fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "{}", run.transcript());
    run
}

#[track_caller]
fn fails(run: Run, code: i32) -> Run {
    assert_eq!(run.code, code, "{}", run.transcript());
    run
}

/// Every 64-hex digest as `[SHA256]`, ports as `[HOST]`, archive sizes as `[SIZE]`: the
/// lockfile's shape in snapshots (an archive's bytes depend on the file times of the checkout
/// the test chart was packaged from).
fn lock_shape(text: &str) -> String {
    let mut archive = false;
    let text: String = filter_ports(text)
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("- name:") {
                archive = line.ends_with(".tgz");
            }
            match line.split_once("size: ") {
                Some((indent, _)) if archive => format!("{indent}size: [SIZE]\n"),
                _ => format!("{line}\n"),
            }
        })
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for ch in text.chars() {
        if ch.is_ascii_hexdigit() {
            run.push(ch);
            continue;
        }
        out.push_str(if run.len() == 64 { "[SHA256]" } else { &run });
        run.clear();
        out.push(ch);
    }
    out.push_str(if run.len() == 64 { "[SHA256]" } else { &run });
    out
}

fn demo_manifest(repository: &str, extra: &str) -> String {
    format!(
        "kubernetesVersion: \"1.31\"\nenvironments: {{dev: {{}}, prod: {{}}}}\npackages:\n  demo:\n    version: 1.0.0\n    chart:\n      repository: {repository}\n      name: kpin-demo\n      namespace: demo\n{extra}"
    )
}

#[test]
fn a_chart_from_a_classic_repository_is_rendered_once_and_then_needs_neither_helm_nor_network() {
    let test = "a_chart_from_a_classic_repository_is_rendered_once_and_then_needs_neither_helm_nor_network";
    let Some(c) = Charts::new(test) else { return };
    let archive = c.fixture("1.0.0");
    let server = c.serve(std::slice::from_ref(&archive));
    let p = Project::new();
    p.write(
        "kpin.yaml",
        &demo_manifest(
            &server.url("/charts"),
            "      values: {replicas: 2}\n      valuesFiles: [values/demo.yaml]\n      environments:\n        prod: {values: {replicas: 3}}\n",
        ),
    );
    p.write("values/demo.yaml", "image: registry.example/demo:1.0.1\n");

    let first = ok(run(&p, &["sync"], Some(&c.helm)));
    assert!(
        first.stderr.contains("Rendering demo 1.0.0"),
        "{}",
        first.stderr
    );
    insta::assert_snapshot!("chart_lock", lock_shape(&p.read("kpin.lock")));
    let vendored = p.read("vendor/demo/1.0.0/kpin-demo.yaml");
    insta::assert_snapshot!("chart_vendored", vendored);
    // The vendored render is helm's own output for the same settings.
    let by_hand = c.template(
        "demo",
        &archive,
        &[
            "--namespace",
            "demo",
            "--kube-version",
            "1.31",
            "--include-crds",
            "--skip-tests",
            "--values",
            p.path().join("values/demo.yaml").to_str().unwrap(),
            "--set",
            "replicas=2",
        ],
    );
    assert!(
        vendored.ends_with(&by_hand),
        "{vendored}\n---- by hand:\n{by_hand}"
    );
    // prod has values of its own, so a render of its own; dev reads the chart's.
    let prod = ok(run(&p, &["render", "--env", "prod"], None)).stdout;
    assert!(prod.contains("replicas: 3"), "{prod}");
    let dev = ok(run(&p, &["render", "--env", "dev"], None)).stdout;
    assert!(
        dev.contains("replicas: 2") && dev.contains("demo:1.0.1"),
        "{dev}"
    );
    assert!(
        dev.contains("kind: CustomResourceDefinition"),
        "the chart's crds/ are included"
    );
    assert!(
        !dev.contains("helm.sh/hook: test"),
        "test hooks are left out"
    );

    // Without helm and without the repository, everything but a new render works.
    drop(server);
    ok(run(&p, &["sync", "--locked", "--offline"], None));
    ok(run(&p, &["verify"], None));
    ok(run(&p, &["render", "--locked"], None));

    // A vendored render edited by hand is caught offline, and sync --locked cannot redo it
    // without helm: the error names the version kpin expects.
    let path = p.path().join("vendor/demo/1.0.0/kpin-demo.yaml");
    std::fs::write(&path, vendored.replace("replicas: 2", "replicas: 9")).unwrap();
    let verify = fails(run(&p, &["verify"], None), 1);
    assert!(
        verify.stdout.contains("kpin-demo.yaml"),
        "{}",
        verify.transcript()
    );
    let no_helm = fails(run(&p, &["sync", "--locked"], None), 2);
    assert!(
        no_helm
            .stderr
            .contains("rendering a chart needs helm (v4.3.2)"),
        "{}",
        no_helm.stderr
    );
}

#[test]
fn editing_a_values_file_makes_the_lock_stale() {
    let test = "editing_a_values_file_makes_the_lock_stale";
    let Some(c) = Charts::new(test) else { return };
    let archive = c.fixture("1.0.0");
    let server = c.serve(&[archive]);
    let p = Project::new();
    p.write(
        "kpin.yaml",
        &demo_manifest(&server.url("/charts"), "      valuesFiles: [values.yaml]\n"),
    );
    p.write("values.yaml", "replicas: 2\n");
    ok(run(&p, &["sync"], Some(&c.helm)));
    p.write("values.yaml", "replicas: 4\n");
    let stale = fails(run(&p, &["sync", "--locked"], Some(&c.helm)), 1);
    assert!(stale.stderr.contains("demo"), "{}", stale.transcript());
    ok(run(&p, &["sync"], Some(&c.helm)));
    assert!(
        p.read("vendor/demo/1.0.0/kpin-demo.yaml")
            .contains("replicas: 4")
    );
}

#[test]
fn a_render_that_differs_run_to_run_is_refused_naming_the_objects() {
    let test = "a_render_that_differs_run_to_run_is_refused_naming_the_objects";
    let Some(c) = Charts::new(test) else { return };
    let server = c.serve(&[c.fixture("1.0.0")]);
    let p = Project::new();
    p.write(
        "kpin.yaml",
        &demo_manifest(
            &server.url("/charts"),
            "      values: {randomPassword: true}\n",
        ),
    );
    let refused = fails(run(&p, &["sync"], Some(&c.helm)), 2);
    insta::assert_snapshot!("chart_nondeterministic", filter_ports(&refused.stderr));
    assert!(!p.path().join("vendor").exists() && !p.path().join("kpin.lock").exists());
    let allowed = ok(run(
        &p,
        &["sync", "--allow-nondeterministic"],
        Some(&c.helm),
    ));
    assert!(allowed.stderr.contains("warning:"), "{}", allowed.stderr);
}

#[test]
fn hooks_are_kept_with_a_warning_or_dropped_and_lookup_is_reported() {
    let test = "hooks_are_kept_with_a_warning_or_dropped_and_lookup_is_reported";
    let Some(c) = Charts::new(test) else { return };
    let server = c.serve(&[c.fixture("1.0.0")]);
    let p = Project::new();
    p.write(
        "kpin.yaml",
        &demo_manifest(&server.url("/charts"), "      values: {hook: true}\n"),
    );
    let kept = ok(run(&p, &["sync"], Some(&c.helm)));
    assert!(
        kept.stderr.contains("Helm hook Job demo/demo-migrate (hook pre-install,pre-upgrade) is vendored into kpin-demo.yaml"),
        "{}",
        kept.stderr
    );
    assert!(
        kept.stderr.contains("templates/lookup.yaml calls `lookup`"),
        "{}",
        kept.stderr
    );
    assert!(
        p.read("vendor/demo/1.0.0/kpin-demo.yaml")
            .contains("kind: Job")
    );
    p.write(
        "kpin.yaml",
        &demo_manifest(
            &server.url("/charts"),
            "      values: {hook: true}\n      hooks: drop\n",
        ),
    );
    ok(run(&p, &["sync"], Some(&c.helm)));
    assert!(
        !p.read("vendor/demo/1.0.0/kpin-demo.yaml")
            .contains("kind: Job")
    );
}

#[test]
fn an_archive_that_is_not_the_one_the_index_lists_is_refused() {
    let test = "an_archive_that_is_not_the_one_the_index_lists_is_refused";
    let Some(c) = Charts::new(test) else { return };
    let archive = c.fixture("1.0.0");
    let server = c.serve(std::slice::from_ref(&archive));
    // The repository now serves other bytes under the indexed name.
    let other = c.fixture("1.0.1");
    server.file("/charts/kpin-demo-1.0.0.tgz", std::fs::read(other).unwrap());
    let p = Project::new();
    p.write("kpin.yaml", &demo_manifest(&server.url("/charts"), ""));
    let refused = fails(run(&p, &["sync"], Some(&c.helm)), 2);
    assert!(
        refused.stderr.contains("expected") && refused.stderr.contains("the repository's digest"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_chart_from_an_oci_registry_with_basic_auth_syncs_and_upgrades_with_a_report() {
    let test = "a_chart_from_an_oci_registry_with_basic_auth_syncs_and_upgrades_with_a_report";
    let Some(c) = Charts::new(test) else { return };
    let Some(registry) = Registry::start(test, true) else {
        return;
    };
    for (i, version) in ["1.0.0", "1.1.0"].into_iter().enumerate() {
        registry.push(&c.helm, c.home.path(), &c.fixture(version), i == 0);
    }
    let p = Project::new();
    p.write(
        "kpin.yaml",
        &demo_manifest(
            &format!("oci://{}/charts", registry.host()),
            "    overlays: [overlays/demo.yaml]\n",
        ),
    );
    p.write(
        "overlays/demo.yaml",
        "operations:\n- labels: {set: {team: platform}}\n",
    );
    // No credentials: the registry's challenge is answered with a hint.
    let denied = fails(run(&p, &["sync"], Some(&c.helm)), 2);
    assert!(
        denied.stderr.contains("asks for credentials")
            && denied.stderr.contains("helm registry login"),
        "{}",
        denied.stderr
    );
    // The credentials `helm registry login` stored.
    let config = c.home.path().join("registry.json");
    let with_login = |args: &[&str]| {
        p.run_with(args, |cmd| {
            cmd.env("KPIN_HELM", &c.helm)
                .env("KPIN_REGISTRY_CONFIG", &config)
        })
    };
    ok(with_login(&["sync"]));
    let lock = p.read("kpin.lock");
    assert!(
        lock.contains(&format!(
            "url: oci://{}/charts/kpin-demo:1.0.0@sha256:",
            registry.host()
        )),
        "the OCI manifest digest is locked: {lock}"
    );
    let rendered = ok(run(&p, &["render"], None)).stdout;
    assert!(rendered.contains("team: platform"), "{rendered}");

    let outdated = fails(with_login(&["outdated"]), 1);
    assert!(
        outdated.stdout.contains("1.1.0"),
        "{}",
        outdated.transcript()
    );
    // An overlay that only fits the old render refuses the upgrade, as for any source.
    p.write(
        "overlays/demo.yaml",
        "operations:\n- labels: {set: {team: platform}}\n- annotations:\n    select: {kind: Deployment, labelSelector: {matchLabels: {helm.sh/chart: kpin-demo-1.0.0}}}\n    set: {pinned: \"yes\"}\n",
    );
    ok(with_login(&["sync"]));
    let refused = fails(with_login(&["upgrade", "demo", "--to", "1.1.0"]), 2);
    assert!(
        refused.stdout.contains("matches no object in demo 1.1.0"),
        "{}",
        refused.transcript()
    );
    assert!(
        p.read("kpin.yaml").contains("version: 1.0.0"),
        "nothing was written"
    );
    p.write(
        "overlays/demo.yaml",
        "operations:\n- labels: {set: {team: platform}}\n",
    );
    ok(with_login(&["sync"]));
    let upgrade = ok(with_login(&["upgrade", "demo", "--to", "1.1.0"]));
    insta::assert_snapshot!("chart_upgrade_report", filter_ports(&upgrade.stdout));
    assert!(p.read("kpin.yaml").contains("version: 1.1.0"));
    ok(run(&p, &["sync", "--locked", "--offline"], None));
}

#[test]
fn a_chart_source_is_checked_where_it_is_written() {
    let p = Project::new();
    for (extra, message) in [
        (
            "      hooks: sometimes\n",
            "chart.hooks: unknown variant `sometimes`",
        ),
        ("      values: [1]\n", "chart.values: expected a mapping"),
        (
            "      environments: {qa: {values: {a: 1}}}\n",
            "chart.environments.qa: no such environment",
        ),
        ("      valuesFiles: [../x.yaml]\n", "chart.valuesFiles[0]"),
        ("      release: Bad_Name\n", "chart.release"),
    ] {
        p.write("kpin.yaml", &demo_manifest("https://charts.example", extra));
        let refused = fails(p.run(&["render"]), 2);
        assert!(
            refused.stderr.contains(message),
            "{extra}: {}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains("package `demo`"),
            "{}",
            refused.stderr
        );
    }
    p.write(
        "kpin.yaml",
        "packages:\n  demo:\n    version: 1.0.0\n    url: https://h/{version}/a.yaml\n    chart: {repository: https://charts.example}\n",
    );
    let both = fails(p.run(&["render"]), 2);
    assert!(
        both.stderr
            .contains("give only one of `url`, `urls`, `github`, `path` or `chart`"),
        "{}",
        both.stderr
    );
}

/// Fidelity against the real tool: every chart and version in ../shared/upstream-charts/,
/// published to a loopback OCI registry, vendored by kpin; the render equals `helm template`
/// with the same settings (objects equal, order aside); and `kpin upgrade` goes from each
/// chart's older version to its newer one.
#[test]
fn every_upstream_chart_renders_as_helm_template_does_and_upgrades() {
    let test = "every_upstream_chart_renders_as_helm_template_does_and_upgrades";
    let Some(c) = Charts::new(test) else { return };
    let Some(dir) = upstream_charts_or_skip(test) else {
        return;
    };
    let Some(registry) = Registry::start(test, false) else {
        return;
    };
    let all = upstream_charts(&dir);
    assert!(all.len() >= 8, "INDEX.tsv lists the charts: {all:?}");
    let archives = charts::publish(&c.helm, c.home.path(), &registry, &all, false);
    for (name, versions) in charts::versions_by_name(&all) {
        let name = name.as_str();
        let p = Project::new();
        p.write(
            "kpin.yaml",
            &format!(
                "kubernetesVersion: \"1.31\"\npackages:\n  {name}:\n    version: {}\n    chart:\n      repository: oci://{}/charts\n      namespace: {name}\n",
                versions[0],
                registry.host()
            ),
        );
        ok(run(&p, &["sync"], Some(&c.helm)));
        for (i, version) in versions.iter().enumerate() {
            if i > 0 {
                let upgrade = ok(run(&p, &["upgrade", name, "--to", version], Some(&c.helm)));
                assert!(
                    upgrade
                        .stdout
                        .contains(&format!("{name} {} -> {version}", versions[i - 1])),
                    "{name}: {}",
                    upgrade.stdout
                );
                // The chart's own values.yaml moved too: the report shows how.
                assert!(
                    upgrade.stdout.contains(&format!(
                        "{name} {} -> {version}: default values (0 added, 1 changed",
                        versions[i - 1]
                    )),
                    "{name}: {}",
                    upgrade.stdout
                );
            }
            let vendored = p.read(&format!("vendor/{name}/{version}/{name}.yaml"));
            let by_hand = c.template(
                name,
                &archives[&(name.to_owned(), (*version).to_owned())],
                &[
                    "--namespace",
                    name,
                    "--kube-version",
                    "1.31",
                    "--include-crds",
                    "--skip-tests",
                ],
            );
            assert_eq!(
                objects(&vendored),
                objects(&by_hand),
                "{name} {version}: kpin's render is helm's"
            );
        }
    }
}

/// The objects of a YAML stream, sorted by their text (order aside).
fn objects(text: &str) -> Vec<String> {
    let mut out: Vec<String> = serde_yaml::Deserializer::from_str(text)
        .filter_map(|d| {
            let v = serde_yaml::Value::deserialize(d).ok()?;
            (!v.is_null()).then(|| serde_yaml::to_string(&v).unwrap())
        })
        .collect();
    out.sort();
    out
}

use serde::Deserialize as _;

/// A dependency the chart archive lacks is fetched from its own repository (Chart.lock's
/// version, else the newest its constraint allows) and locked with the archive; a packaged one
/// is locked by its digest; one that cannot be fetched is named.
#[test]
fn chart_dependencies_are_fetched_or_packaged_and_locked() {
    let test = "chart_dependencies_are_fetched_or_packaged_and_locked";
    let Some(c) = Charts::new(test) else { return };
    let server = Server::http();
    // A parent chart that needs the test chart from the loopback repository.
    let parent = |repository: &str| {
        let src = c.home.path().join("src/kpin-parent");
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(src.join("templates")).unwrap();
        std::fs::write(
            src.join("Chart.yaml"),
            format!("apiVersion: v2\nname: kpin-parent\nversion: 1.0.0\ndependencies:\n- name: kpin-demo\n  version: \"~1.0\"\n  repository: {repository}\n"),
        )
        .unwrap();
        std::fs::write(
            src.join("templates/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: parent, namespace: {{ .Release.Namespace }}}\n",
        )
        .unwrap();
        src
    };
    // Packed without its dependency, as `tar` (not helm, which refuses) packs it.
    let pack_bare = |src: &Path| {
        let out = c.home.path().join("bare/kpin-parent-1.0.0.tgz");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let status = std::process::Command::new("tar")
            .args(["czf", out.to_str().unwrap(), "-C"])
            .arg(src.parent().unwrap())
            .arg("kpin-parent")
            .status()
            .unwrap();
        assert!(status.success());
        out
    };
    let demo_100 = c.fixture("1.0.0");
    let demo_105 = c.fixture("1.0.5");
    let demo_110 = c.fixture("1.1.0");
    let p = Project::new();
    let manifest = |url: &str| {
        format!(
            "packages:\n  parent:\n    version: 1.0.0\n    chart: {{repository: \"{url}\", name: kpin-parent, namespace: demo}}\n"
        )
    };
    p.write("kpin.yaml", &manifest(&server.url("/charts")));

    // From a repository that does not answer: named, with the chart that needs it.
    let bare = pack_bare(&parent("http://127.0.0.1:9/charts"));
    c.publish(&server, &[bare]);
    let refused = fails(run(&p, &["sync", "--retries", "0"], Some(&c.helm)), 2);
    assert!(
        refused.stderr.contains("chart kpin-parent 1.0.0 declares the dependency kpin-demo ~1.0 from http://[HOST]/charts, which its archive does not hold"),
        "{}",
        refused.stderr
    );

    // From the loopback repository: ~1.0 allows 1.0.5, not 1.1.0.
    let bare = pack_bare(&parent(&server.url("/charts")));
    c.publish(&server, &[bare, demo_100.clone(), demo_105, demo_110]);
    ok(run(&p, &["sync"], Some(&c.helm)));
    let lock = p.read("kpin.lock");
    assert!(lock.contains("- name: kpin-demo-1.0.5.tgz"), "{lock}");
    assert!(lock.contains("- name: kpin-parent-1.0.0.tgz"), "{lock}");
    let rendered = ok(run(&p, &["render"], None)).stdout;
    assert!(
        rendered.contains("name: parent") && rendered.contains("helm.sh/chart: kpin-demo-1.0.5"),
        "{rendered}"
    );
    ok(run(&p, &["sync", "--locked", "--offline"], None));

    // Packaged by helm with the dependency in charts/: locked by its digest.
    let src = parent(&server.url("/charts"));
    std::fs::create_dir_all(src.join("charts")).unwrap();
    std::fs::copy(&demo_100, src.join("charts/kpin-demo-1.0.0.tgz")).unwrap();
    charts::helm(
        &c.helm,
        c.home.path(),
        &[
            "package",
            src.to_str().unwrap(),
            "-d",
            c.out().to_str().unwrap(),
        ],
    );
    c.publish(&server, &[c.out().join("kpin-parent-1.0.0.tgz")]);
    let q = Project::new();
    q.write("kpin.yaml", &manifest(&server.url("/charts")));
    ok(run(&q, &["sync"], Some(&c.helm)));
    let lock = q.read("kpin.lock");
    assert!(
        lock.contains("dependencies:\n          kpin-demo 1.0.0: "),
        "{lock}"
    );
}

/// `kpin add --chart`: the newest released version from the repository's index, the entry
/// written and the chart rendered in one transaction.
#[test]
fn add_pins_the_newest_chart_version_and_renders_it() {
    let test = "add_pins_the_newest_chart_version_and_renders_it";
    let Some(c) = Charts::new(test) else { return };
    let server = c.serve(&[
        c.fixture("1.0.0"),
        c.fixture("1.1.0"),
        c.fixture("1.2.0-rc.1"),
    ]);
    let p = Project::new();
    p.write("kpin.yaml", "packages: {}\n");
    let repository = server.url("/charts");
    let added = ok(run(
        &p,
        &[
            "add",
            "demo",
            "--chart",
            &repository,
            "--chart-name",
            "kpin-demo",
            "--namespace",
            "demo",
        ],
        Some(&c.helm),
    ));
    assert!(
        added
            .stderr
            .contains("newest version of the chart kpin-demo from"),
        "{}",
        added.stderr
    );
    let manifest = p.read("kpin.yaml");
    assert!(
        manifest.contains("version: 1.1.0")
            && manifest.contains("name: kpin-demo")
            && manifest.contains("namespace: demo"),
        "{manifest}"
    );
    assert!(p.path().join("vendor/demo/1.1.0/kpin-demo.yaml").is_file());
    ok(run(&p, &["sync", "--locked", "--offline"], None));
}

/// A chart repository inside the project may not hand out archives outside it.
#[test]
fn a_project_repository_cannot_lead_out_of_the_project() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("kpin-demo-1.0.0.tgz"), "not read").unwrap();
    let p = Project::new();
    p.write(
        "charts/index.yaml",
        &format!(
            "apiVersion: v1\nentries:\n  kpin-demo:\n  - name: kpin-demo\n    version: 1.0.0\n    urls: [\"file://{}/kpin-demo-1.0.0.tgz\"]\n",
            outside.path().display()
        ),
    );
    p.write("kpin.yaml", &demo_manifest("charts", ""));
    let refused = fails(p.run(&["sync"]), 2);
    assert!(
        refused.stderr.contains("outside the project directory"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("hint: kpin reads and writes only inside"),
        "{}",
        refused.stderr
    );
}
