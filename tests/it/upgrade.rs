//! The upgrade workflow against a local server mimicking GitHub (release lists with pagination,
//! rate limits) and raw file hosting: `kpin outdated`, `kpin upgrade` with its report, the
//! broken-overlay refusal and all-or-nothing writes, and `kpin diff --base`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::http::{Fault, Server};
use crate::support::{Project, git, repo_root, upstream_or_skip};

fn fixture(rel: &str) -> Vec<u8> {
    let path = repo_root().join("tests/fixtures/upgrade").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every file of the project (kpin.yaml, kpin.lock, vendor/, overlays/), with its bytes.
fn snapshot_files(p: &Project) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(&path, root, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(p.path(), p.path(), &mut out);
    out
}

/// The widgets fixture served as raw files plus a release list (newest first, two per page).
fn serve_widgets(server: &Server) {
    server
        .file(
            "/widgets/1.0.0/widgets.yaml",
            fixture("widgets/1.0.0/widgets.yaml"),
        )
        .file(
            "/widgets/2.0.0/widgets.yaml",
            fixture("widgets/2.0.0/widgets.yaml"),
        )
        .github_release_list(
            "example/widgets",
            &["v2.1.0-rc.1", "v2.0.0", "v1.0.0", "chart-9.9.9"],
            2,
        );
}

const WIDGETS: &str = "\
# Widgets: our pinned operator.
packages:
  widgets:
    # reviewed by the platform team
    version: 1.0.0 # keep
    url: {base}/widgets/{version}/widgets.yaml
    overlays:
    - overlays/widgets.yaml
    versions: {github: example/widgets, apiUrl: {api}}
";

const WIDGETS_OVERLAY: &str = "\
operations:
- strategicMerge:
    select: {kind: Deployment, name: widget-controller}
    patch:
      spec:
        replicas: 2
";

const NETPOL_OVERLAY: &str = "\
- labels:
    select: {kind: NetworkPolicy, name: widget-controller}
    set: {team: platform}
";

/// A project whose kpin.yaml is `manifest` with `{base}` and `{api}` pointing at `server`.
fn project(server: &Server, manifest: &str) -> Project {
    let p = Project::new();
    p.write(
        "kpin.yaml",
        &manifest
            .replace("{base}", &server.base())
            .replace("{api}", &server.api_url()),
    );
    p
}

fn widgets_project(server: &Server, extra_overlay: &str) -> Project {
    let p = project(server, WIDGETS);
    p.write(
        "overlays/widgets.yaml",
        &format!("{WIDGETS_OVERLAY}{extra_overlay}"),
    );
    let sync = p.run(&["sync"]);
    assert_eq!(sync.code, 0, "{}", sync.transcript());
    p
}

#[test]
fn upgrade_reports_upstream_and_rendered_changes_and_writes_everything() {
    let server = Server::http();
    serve_widgets(&server);
    let p = widgets_project(&server, "");
    let before = p.read("kpin.yaml");

    // No --to: the newest release within the (absent) constraint, prereleases skipped.
    let run = p.run(&["upgrade", "widgets"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    insta::assert_snapshot!("widgets_upgrade_report", run.transcript());

    // Only the version value changed; comments stay.
    assert_eq!(
        p.read("kpin.yaml"),
        before.replace("version: 1.0.0 # keep", "version: 2.0.0 # keep")
    );
    assert!(p.path().join("vendor/widgets/2.0.0/widgets.yaml").is_file());
    assert!(!p.path().join("vendor/widgets/1.0.0").exists());
    let lock = kpin::vendoring::lockfile::Lockfile::load(&p.path().join("kpin.lock"))
        .unwrap()
        .unwrap();
    let widgets = &lock.packages["widgets"];
    assert_eq!(widgets.environments["default"], "2.0.0");
    assert_eq!(widgets.versions.len(), 1, "1.0.0 is no longer locked");
    assert!(widgets.version("2.0.0").is_some());
    assert!(
        !run.stdout.contains("b2xkLXRva2Vu") && !run.stdout.contains("bmV3LXRva2Vu"),
        "secrets leaked"
    );
    let verify = p.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    // Nothing left behind in vendor/.
    let leftovers: Vec<String> = snapshot_files(&p)
        .into_keys()
        .filter(|k| k.contains(".kpin-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn markdown_report_of_a_dry_run_changes_nothing() {
    let server = Server::http();
    serve_widgets(&server);
    let p = widgets_project(&server, "");
    let before = snapshot_files(&p);
    let run = p.run(&[
        "upgrade",
        "widgets",
        "--to",
        "2.0.0",
        "--dry-run",
        "--output",
        "markdown",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    insta::assert_snapshot!("widgets_upgrade_markdown", run.stdout);
    assert_eq!(snapshot_files(&p), before);
}

#[test]
fn broken_overlays_refuse_the_upgrade_unless_allowed() {
    let server = Server::http();
    serve_widgets(&server);
    let p = widgets_project(&server, NETPOL_OVERLAY);
    let before = snapshot_files(&p);

    let run = p.run(&["upgrade", "widgets", "--to", "2.0.0"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    let errors: Vec<&str> = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .filter(|l| l.starts_with("error:") || l.starts_with("  hint:"))
        .collect();
    insta::assert_snapshot!("widgets_broken_overlay", errors.join("\n"));
    assert_eq!(
        snapshot_files(&p),
        before,
        "a refused upgrade writes nothing"
    );

    let run = p.run(&[
        "upgrade",
        "widgets",
        "--to",
        "2.0.0",
        "--allow-broken-overlays",
        "--output",
        "json",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["written"], true);
    assert_eq!(report["brokenOverlays"][0]["file"], "overlays/widgets.yaml");
    assert_eq!(
        report["brokenOverlays"][0]["operation"],
        "operations[1] (labels)"
    );
    assert!(p.read("kpin.yaml").contains("version: 2.0.0"));
}

const TWO: &str = "\
packages:
  alpha:
    version: 1.0.0
    url: {base}/alpha/{version}/widgets.yaml
    versions: {github: example/alpha, apiUrl: {api}}
  beta:
    version: 1.0.0
    url: {base}/beta/{version}/widgets.yaml
    versions: {github: example/beta, apiUrl: {api}}
";

#[test]
fn a_server_error_midway_leaves_everything_as_it_was() {
    let server = Server::http();
    for pkg in ["alpha", "beta"] {
        server
            .file(
                &format!("/{pkg}/1.0.0/widgets.yaml"),
                fixture("widgets/1.0.0/widgets.yaml"),
            )
            .file(
                &format!("/{pkg}/2.0.0/widgets.yaml"),
                fixture("widgets/2.0.0/widgets.yaml"),
            )
            .github_release_list(&format!("example/{pkg}"), &["v2.0.0", "v1.0.0"], 10);
    }
    let p = project(&server, TWO);
    assert_eq!(p.run(&["sync"]).code, 0);
    let before = snapshot_files(&p);

    // alpha downloads fine, beta's new file keeps failing with 500 after retries.
    server.fail_always("/beta/2.0.0/widgets.yaml", Fault::Status(500));
    let run = p.run(&["upgrade", "--all", "--retries", "1"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run.stderr.contains("HTTP 500"), "{}", run.stderr);
    assert!(
        server.hits("/alpha/2.0.0/widgets.yaml") >= 1,
        "alpha was fetched before beta failed"
    );
    assert_eq!(
        snapshot_files(&p),
        before,
        "kpin.yaml, kpin.lock and vendor/ are untouched"
    );
}

/// A release file whose address has no `{version}`: every version gets the same bytes.
const FIXED_URL: &str = "\
packages:
  argo-cd:
    version: 2.14.21
    url: {base}/argo-cd/stable/install.yaml
";

#[test]
fn a_source_that_ignores_the_version_is_refused() {
    let server = Server::http();
    server.file(
        "/argo-cd/stable/install.yaml",
        fixture("widgets/1.0.0/widgets.yaml"),
    );
    let p = project(&server, FIXED_URL);
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains("caused by: url: `http://[HOST]/argo-cd/stable/install.yaml` has no {version}, so every version would fetch the same files\n  hint: put {version} where the release's version goes"),
        "{}",
        run.stderr
    );
    assert_eq!(server.request_count(), 0);
    assert!(!p.path().join("vendor").exists());

    // With a sha256 pin the fixed address is deliberate, but an upgrade must change the pin:
    // the same bytes under a new version's name are refused, and nothing changes.
    let pin = kpin::digest::sha256_hex(&fixture("widgets/1.0.0/widgets.yaml"));
    let pinned = format!("{}    sha256: {pin}\n", p.read("kpin.yaml"));
    p.write("kpin.yaml", &pinned);
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let before = snapshot_files(&p);
    let run = p.run(&["upgrade", "argo-cd", "--to", "3.3.14"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains("error: argo-cd 3.3.14 fetched exactly the files of argo-cd 2.14.21: its source does not depend on the version"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: put {version} in the url"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot_files(&p), before, "nothing was written");
}

const ALL: &str = "\
packages:
  alpha:
    version: 1.0.0
    url: {base}/alpha/{version}/widgets.yaml
    constraint: \"^1.0\"
    versions: {github: example/alpha, apiUrl: {api}}
  gh:
    version: 1.0.0 # pinned
    github:
      repo: example/gh
      assets: [widgets.yaml]
      apiUrl: {api}
    sha256: {pin}
";

#[test]
fn upgrade_all_stays_within_constraints_and_rewrites_pins() {
    let server = Server::http();
    let (v1, v2) = (
        fixture("widgets/1.0.0/widgets.yaml"),
        fixture("widgets/2.0.0/widgets.yaml"),
    );
    server
        .file("/alpha/1.0.0/widgets.yaml", v1.clone())
        .file("/alpha/1.1.0/widgets.yaml", v2.clone())
        .github_release_list("example/alpha", &["v2.0.0", "v1.1.0", "v1.0.0"], 10)
        .github_release_list("example/gh", &["v2.0.0", "v1.0.0"], 10)
        .github_release("example/gh", "v1.0.0", &[("widgets.yaml", &v1)])
        .github_release("example/gh", "v2.0.0", &[("widgets.yaml", &v2)]);
    let p = Project::new();
    let manifest = ALL
        .replace("{base}", &server.base())
        .replace("{api}", &server.api_url())
        .replace("{pin}", &kpin::digest::sha256_hex(&v1));
    p.write("kpin.yaml", &manifest);
    assert_eq!(p.run(&["sync"]).code, 0);

    let run = p.run(&["upgrade", "--all", "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let expected = manifest
        .replace("version: 1.0.0\n    url", "version: 1.1.0\n    url")
        .replace("version: 1.0.0 # pinned", "version: 2.0.0 # pinned")
        .replace(
            &kpin::digest::sha256_hex(&v1),
            &kpin::digest::sha256_hex(&v2),
        );
    assert_eq!(p.read("kpin.yaml"), expected);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["packages"].as_array().unwrap().len(), 2);
    // The lockfile and vendor/ agree with the new kpin.yaml: CI's `sync --locked` is satisfied.
    let locked = p.run(&["sync", "--locked", "--offline"]);
    assert_eq!(locked.code, 0, "{}", locked.transcript());
    assert_eq!(p.run(&["verify"]).code, 0);
}

// ---------------------------------------------------------------------------------------------
// diff --base
// ---------------------------------------------------------------------------------------------

#[test]
fn diff_base_renders_a_pull_request_comment() {
    let server = Server::http();
    serve_widgets(&server);
    let p = widgets_project(&server, "");
    // The team runs widgets in `apps`: the move leaves the upstream `--config=widgets/...` behind.
    let moved = p
        .read("kpin.yaml")
        .replace("    overlays:\n", "    namespace: apps\n    overlays:\n");
    p.write("kpin.yaml", &moved);
    assert_eq!(p.run(&["sync"]).code, 0);
    git(&p, &["init", "-q", "-b", "main"]);
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "-qm", "widgets 1.0.0"]);

    let clean = p.run(&["diff", "--base", "main"]);
    assert_eq!(clean.code, 0, "{}", clean.transcript());

    assert_eq!(p.run(&["upgrade", "widgets", "--to", "2.0.0"]).code, 0);
    let run = p.run(&["diff", "--base", "main", "--output", "markdown"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    insta::assert_snapshot!("widgets_diff_base_markdown", run.stdout);
    assert!(
        !run.stdout.contains("bmV3LXRva2Vu"),
        "secret value in the comment"
    );

    let json = p.run(&["diff", "--base", "main", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (v["base"].as_str(), v["changed"].as_bool()),
        (Some("main"), Some(true))
    );
    assert_eq!(v["sections"][0]["notes"][0], "version 1.0.0 -> 2.0.0");

    let revealed = p.run(&["diff", "--base", "main", "--show-secrets"]);
    assert!(
        revealed.stdout.contains("bmV3LXRva2Vu"),
        "{}",
        revealed.stdout
    );
    let bad = p.run(&["diff", "--base", "origin/nope"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("`origin/nope` is not a commit"),
        "{}",
        bad.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// outdated
// ---------------------------------------------------------------------------------------------

const OUTDATED: &str = "\
packages:
  ingress-nginx:
    version: 1.9.4
    url: {base}/ingress/{version}/deploy.yaml
    constraint: \"~1.9\"
    versions: {github: kubernetes/ingress-nginx, tag: \"controller-v{version}\", apiUrl: {api}}
  ingress-latest:
    version: 1.9.4
    url: {base}/ingress/{version}/deploy.yaml
    versions: {github: kubernetes/ingress-nginx, tag: \"controller-v{version}\", apiUrl: {api}}
  local-path:
    version: v0.0.26
    github: {repo: rancher/local-path-provisioner, tag: \"{version}\", assets: [local-path-storage.yaml], apiUrl: {api}}
  in-house:
    version: 0.4.1
    url: {base}/in-house/{version}/all.yaml
  kube-state-metrics:
    version: v2.10.1
    url: {base}/ksm/{version}/standard.yaml
    versions: {github: kubernetes/kube-state-metrics, tag: \"{version}\", apiUrl: {api}}
";

fn serve_feeds(server: &Server) {
    server
        .github_release_list(
            "kubernetes/ingress-nginx",
            &[
                "helm-chart-4.12.0",
                "controller-v1.12.8",
                "controller-v1.12.0-rc.1",
                "controller-v1.11.8",
                "controller-v1.10.6",
                "controller-v1.9.6",
                "controller-v1.9.4",
            ],
            3,
        )
        .github_release_list(
            "rancher/local-path-provisioner",
            &["v0.0.31", "v0.0.30", "v0.0.26"],
            100,
        )
        // A project that tags without publishing releases.
        .file(
            "/api/repos/kubernetes/kube-state-metrics/releases?per_page=100",
            "[]",
        )
        .github_tag_list(
            "kubernetes/kube-state-metrics",
            &["v2.17.0", "v2.10.1", "latest"],
        );
}

#[test]
fn outdated_lists_wanted_and_latest_and_exits_one() {
    let server = Server::http();
    serve_feeds(&server);
    let p = project(&server, OUTDATED);
    let run = p.run(&["outdated"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    insta::assert_snapshot!("outdated_table", run.stdout);
    // Every page of the paginated release list was read.
    assert_eq!(
        server.hits("/api/repos/kubernetes/ingress-nginx/releases?per_page=100&page=3"),
        2
    );

    let json = p.run(&["outdated", "--output", "json", "ingress-nginx"]);
    assert_eq!(json.code, 1);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["packages"][0]["wanted"], "1.9.6");
    assert_eq!(v["packages"][0]["latest"], "1.12.8");
    assert_eq!(
        v["packages"][0]["newer"],
        serde_json::json!(["1.12.8", "1.11.8", "1.10.6", "1.9.6"])
    );

    let pre = p.run(&[
        "outdated",
        "--output",
        "json",
        "--prereleases",
        "ingress-latest",
    ]);
    let v: serde_json::Value = serde_json::from_str(&pre.stdout).unwrap();
    assert_eq!(v["packages"][0]["newer"][1], "1.12.0-rc.1");
}

#[test]
fn outdated_exits_zero_when_everything_is_current_within_constraints() {
    let server = Server::http();
    serve_feeds(&server);
    let manifest = "\
packages:
  ingress-nginx:
    version: 1.11.8
    url: {base}/x/{version}/deploy.yaml
    constraint: \"~1.11\"
    versions: {github: kubernetes/ingress-nginx, tag: \"controller-v{version}\", apiUrl: {api}}
  local-path:
    version: v0.0.31
    github: {repo: rancher/local-path-provisioner, tag: \"{version}\", assets: [a.yaml], apiUrl: {api}}
";
    let p = project(&server, manifest);
    let run = p.run(&["outdated"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains(
            "ingress-nginx  1.11.8   ~1.11       -       1.12.8  newer outside constraint"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("local-path     v0.0.31  -           -       -       up to date"),
        "{}",
        run.stdout
    );
}

#[test]
fn outdated_fails_when_no_package_could_be_checked() {
    let server = Server::http();
    serve_feeds(&server);
    let unknown =
        "packages:\n  in-house:\n    version: 0.4.1\n    url: {base}/in-house/{version}/all.yaml\n";
    let p = project(&server, unknown);
    let run = p.run(&["outdated"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stdout.contains("in-house: no version source"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("error: could not check any package: the status of `in-house` is unknown"),
        "{}",
        run.stderr
    );
    // One package checked is enough to say the rest are only notes.
    p.write(
        "kpin.yaml",
        &format!(
            "{}  local-path:\n    version: v0.0.31\n    github: {{repo: rancher/local-path-provisioner, tag: \"{{version}}\", assets: [a.yaml], apiUrl: {}}}\n",
            unknown.replace("{base}", &server.base()),
            server.api_url()
        ),
    );
    let run = p.run(&["outdated"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn outdated_reports_rate_limits_clearly() {
    let server = Server::http();
    serve_feeds(&server);
    server.fail_always(
        "/api/repos/rancher/local-path-provisioner/releases?per_page=100",
        Fault::RateLimit,
    );
    let p = project(&server, OUTDATED);
    let run = p.run(&["outdated"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    insta::assert_snapshot!("outdated_rate_limited", run.transcript());
}

// ---------------------------------------------------------------------------------------------
// Real upstream releases, read in place from ../shared/upstream.
// ---------------------------------------------------------------------------------------------

fn upstream_file(dir: &Path, rel: &str) -> Vec<u8> {
    let path: PathBuf = dir.join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn ingress_nginx_1_9_to_1_10_drops_the_network_policy() {
    let Some(dir) = upstream_or_skip("ingress_nginx_1_9_to_1_10_drops_the_network_policy") else {
        return;
    };
    let server = Server::http();
    for v in ["1.9.4", "1.10.6", "1.11.8", "1.12.8"] {
        server.file(
            &format!("/ingress-nginx/controller-v{v}/deploy.yaml"),
            upstream_file(
                &dir,
                &format!("ingress-nginx/controller-v{v}/deploy-cloud.yaml"),
            ),
        );
    }
    server.github_release_list(
        "kubernetes/ingress-nginx",
        &[
            "controller-v1.12.8",
            "controller-v1.11.8",
            "controller-v1.10.6",
            "controller-v1.9.4",
        ],
        2,
    );
    let p = Project::new();
    p.write(
        "kpin.yaml",
        &format!(
            "packages:\n  ingress-nginx:\n    version: 1.9.4\n    url: {}/ingress-nginx/controller-v{{version}}/deploy.yaml\n    constraint: \"~1.10\"\n    versions: {{github: kubernetes/ingress-nginx, tag: \"controller-v{{version}}\", apiUrl: {}}}\n",
            server.base(),
            server.api_url()
        ),
    );
    assert_eq!(p.run(&["sync"]).code, 0);
    git(&p, &["init", "-q", "-b", "main"]);
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "-q", "-m", "1.9.4"]);
    // The markdown report of the upgrade, before anything is written, flags the admission Jobs,
    // whose pod templates change: the API server refuses that without a re-create.
    let preview = p.run(&[
        "upgrade",
        "ingress-nginx",
        "--dry-run",
        "--output",
        "markdown",
    ]);
    assert_eq!(preview.code, 0, "{}", preview.transcript());
    let recreate = "apply needs `--recreate` (or the annotation kpin.dev/recreate: \"true\"): \
                    immutable fields change in Job ingress-nginx/ingress-nginx-admission-create (spec.template), \
                    Job ingress-nginx/ingress-nginx-admission-patch (spec.template)";
    assert!(preview.stdout.contains(recreate), "{}", preview.stdout);
    // ~1.10 admits 1.10.6 only, although 1.12.8 exists.
    let run = p.run(&["upgrade", "ingress-nginx", "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["packages"][0]["to"], "1.10.6");
    let upstream = &v["sections"][0];
    let removed: Vec<String> = upstream["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["change"] == "removed")
        .map(|o| format!("{} {}", o["kind"], o["name"]))
        .collect();
    assert_eq!(removed, ["\"NetworkPolicy\" \"ingress-nginx-admission\""]);
    let controller = upstream["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    let fields: Vec<String> = controller["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["change"].as_str().unwrap(),
                f["path"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        fields.contains(&"changed spec.template.spec.containers[controller].image".to_owned()),
        "{fields:?}"
    );
    insta::assert_snapshot!("ingress_nginx_upstream_fields", fields.join("\n"));
    assert!(
        v["sections"][1]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("`kpin apply --prune` would delete")
    );
    assert_eq!(v["sections"][1]["warnings"][1], recreate);
    // The pull request's review says the same.
    let review = p.run(&["diff", "--base", "main", "--output", "markdown"]);
    assert_eq!(review.code, 1, "{}", review.transcript());
    assert!(review.stdout.contains(recreate), "{}", review.stdout);
}

#[test]
fn argo_cd_2_14_to_3_0_summarises_crd_changes() {
    let Some(dir) = upstream_or_skip("argo_cd_2_14_to_3_0_summarises_crd_changes") else {
        return;
    };
    let server = Server::http();
    for v in ["2.14.21", "3.0.23"] {
        server.file(
            &format!("/argo-cd/v{v}/install.yaml"),
            upstream_file(&dir, &format!("argo-cd/v{v}/install.yaml")),
        );
    }
    let p = Project::new();
    p.write(
        "kpin.yaml",
        &format!(
            "packages:\n  argo-cd:\n    version: 2.14.21\n    url: {}/argo-cd/v{{version}}/install.yaml\n    namespace: argocd\n",
            server.base()
        ),
    );
    assert_eq!(p.run(&["sync"]).code, 0);
    let run = p.run(&["upgrade", "argo-cd", "--to", "3.0.23", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let upstream_part = run
        .stdout
        .split("\nargo-cd 2.14.21 -> 3.0.23: rendered")
        .next()
        .unwrap();
    assert!(
        upstream_part.contains("~ CustomResourceDefinition applications.argoproj.io"),
        "{upstream_part}"
    );
    assert!(
        upstream_part.contains("CRD schema fields"),
        "{upstream_part}"
    );
    insta::assert_snapshot!("argo_cd_upstream_changes", upstream_part);
    // The rendered view follows, in the package's namespace.
    assert!(
        run.stdout.contains(
            "~ Deployment argocd/argocd-server\n    --- Deployment argocd/argocd-server (current)"
        ),
        "{}",
        &run.stdout[..2000.min(run.stdout.len())]
    );
}

#[test]
fn the_ci_example_runs_the_documented_commands() {
    let path = repo_root().join("examples/github-actions/kpin.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let workflow: serde_json::Value = kpin::yaml::from_str(&text, &path).unwrap();
    let jobs = workflow["jobs"].as_object().unwrap();
    let runs = |job: &str| -> String {
        jobs[job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["run"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(runs("review").contains("kpin verify"));
    assert!(
        runs("review")
            .contains("kpin diff --base \"origin/${{ github.base_ref }}\" --output markdown")
    );
    // Merges deploy the environments whose render changed, in promotion order.
    assert!(runs("changes").contains("kpin diff --base \"$BEFORE\" --env \"$env\""));
    for env in ["dev", "qa", "prod"] {
        let job = format!("deploy-{env}");
        assert_eq!(jobs[&job]["environment"], env);
        assert!(
            runs(&job).contains(&format!("kpin apply --locked --env {env}")),
            "{job}"
        );
        assert!(
            jobs[&job]["if"]
                .as_str()
                .unwrap()
                .contains(&format!("needs.changes.outputs.{env} == 'true'")),
            "{job}"
        );
    }
    assert_eq!(
        jobs["deploy-qa"]["needs"],
        serde_json::json!(["changes", "deploy-dev"])
    );
    assert_eq!(
        jobs["deploy-prod"]["needs"],
        serde_json::json!(["changes", "deploy-qa"])
    );
    // Promotions arrive as pull requests; status and outdated run on schedules.
    assert!(runs("promote").contains("kpin promote --all --to \"$TO\" --output markdown"));
    assert!(runs("promote").contains("gh pr create"));
    assert!(runs("status").contains("kpin status --locked --output markdown"));
    assert!(runs("outdated").contains("kpin outdated"));
}

/// The bundled example as a fresh clone has it, synced (offline: its sources are local, its
/// chart is vendored).
fn example_project() -> Project {
    let p = crate::support::example_project_locked();
    assert_eq!(p.run(&["sync", "--offline"]).code, 0);
    p
}

#[test]
fn the_bundled_example_upgrade_flags_its_network_policy_overlay() {
    let p = example_project();
    let before = snapshot_files(&p);
    let run = p.run(&["upgrade", "example-ingress", "--to", "1.3.0"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stdout.contains(
            "error: overlays/example-ingress/namespace-and-rbac.yaml operations[3] (mergePatch): selector {kind: NetworkPolicy, name: example-ingress-admission} matches no object in example-ingress 1.3.0 (environments: default, dev, prod, qa)"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(snapshot_files(&p), before);
}
