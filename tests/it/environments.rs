//! Three clusters, one manifest: each environment runs its own version of a package
//! (`environments.<env>.version`), a new version enters through dev with `kpin upgrade --env`,
//! travels with `kpin promote` along `promotion: [dev, qa, prod]`, and `kpin status` tells which
//! version runs where. Every cluster is an in-process fake API server of its own; the flows that
//! reach a cluster also run against a real one in `cluster::real`, each environment a context
//! with a namespace of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::fake_apiserver::{FakeApiServer, Options};
use crate::support::http::Server;
use crate::support::{Project, Run, upstream_or_skip};

pub(crate) const MANIFEST: &str = "\
# Three clusters, one manifest.
environments:
  dev:
    context: dev-admin
  qa:
    context: qa-admin
  prod:
    context: prod-admin
    overlays: [overlays/prod.yaml]

promotion: [dev, qa, prod]

packages:
  web:
    version: 1.0.0   # what prod runs
    path: mirror/web/{version}
";

pub(crate) const PROD_OVERLAY: &str = "\
# prod: three replicas.
operations:
- strategicMerge:
    select: {kind: Deployment, name: web}
    patch:
      spec:
        replicas: 3
";

/// Release `version` of `web`: its image and setting change with each release.
fn release(version: &str, mode: &str) -> String {
    format!(
        "\
apiVersion: v1
kind: Namespace
metadata: {{name: web}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: web-settings, namespace: web}}
data: {{mode: {mode}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: example.com/web:{version}
"
    )
}

/// The project with 1.0.0 everywhere, synced; the mirror has 1.1.0 too.
fn project() -> Project {
    let p = Project::new();
    p.write("kpin.yaml", MANIFEST)
        .write("overlays/prod.yaml", PROD_OVERLAY)
        .write("mirror/web/1.0.0/web.yaml", &release("1.0.0", "classic"))
        .write("mirror/web/1.1.0/web.yaml", &release("1.1.0", "modern"));
    expect(p.run(&["sync"]), 0);
    p
}

/// The project after `kpin upgrade web --env dev --to 1.1.0`.
fn dev_ahead() -> Project {
    let p = project();
    expect(
        p.run(&["upgrade", "web", "--env", "dev", "--to", "1.1.0"]),
        0,
    );
    p
}

#[track_caller]
fn expect(run: Run, code: i32) -> Run {
    assert_eq!(run.code, code, "{}", run.transcript());
    run
}

#[track_caller]
fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "no {needle:?} in:\n{text}");
}

/// Every file of the project with its bytes.
fn files(p: &Project) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
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

fn lock(p: &Project) -> kpin::vendoring::lockfile::Lockfile {
    kpin::vendoring::lockfile::Lockfile::load(&p.path().join("kpin.lock"))
        .unwrap()
        .unwrap()
}

/// One kubeconfig with a context per environment, each pointing at its own server.
fn write_kubeconfig(dir: &Path, contexts: &[(&str, String)]) -> PathBuf {
    let mut clusters = String::new();
    let mut names = String::new();
    for (name, url) in contexts {
        clusters.push_str(&format!("- name: {name}\n  cluster:\n    server: {url}\n"));
        names.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: ci\n    namespace: default\n"
        ));
    }
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: {}\nclusters:\n{clusters}contexts:\n{names}users:\n- name: ci\n  user:\n    token: fake-token\n",
        contexts[0].0
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// A loopback address nothing listens on: a cluster that cannot be reached.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// dev, qa and prod clusters; prod unreachable when asked.
struct Clusters {
    dev: FakeApiServer,
    qa: FakeApiServer,
    prod: Option<FakeApiServer>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Clusters {
    fn start(prod_reachable: bool) -> Clusters {
        let dir = tempfile::tempdir().unwrap();
        let dev = FakeApiServer::start(Options::default());
        let qa = FakeApiServer::start(Options::default());
        let prod = prod_reachable.then(|| FakeApiServer::start(Options::default()));
        let prod_url = prod.as_ref().map_or_else(closed_port, FakeApiServer::url);
        let kubeconfig = write_kubeconfig(
            dir.path(),
            &[
                ("dev-admin", dev.url()),
                ("qa-admin", qa.url()),
                ("prod-admin", prod_url),
            ],
        );
        Clusters {
            dev,
            qa,
            prod,
            kubeconfig,
            _dir: dir,
        }
    }

    /// Run kpin in `p` against these clusters.
    fn kpin(&self, p: &Project, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        let kubeconfig = self.kubeconfig.display().to_string();
        all.extend(["--kubeconfig", &kubeconfig]);
        p.run(&all)
    }
}

fn image(cluster: &FakeApiServer) -> String {
    let deployment = cluster
        .get("apps", "Deployment", Some("web"), "web")
        .expect("web is deployed");
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The annotations of `web`'s ApplySet parent say what runs in `env`: the version, the
/// environment, the lock's rendered digest and the kpin that wrote them.
pub(crate) fn assert_parent_records(
    annotations: &Value,
    env: &str,
    version: &str,
    lock: &kpin::vendoring::lockfile::Lockfile,
) {
    assert_eq!(annotations["kpin.dev/version"], version);
    assert_eq!(annotations["kpin.dev/environment"], env);
    assert_eq!(
        annotations["kpin.dev/rendered-digest"],
        lock.packages["web"].rendered[env].as_str()
    );
    assert_eq!(
        annotations["applyset.kubernetes.io/tooling"],
        format!("kpin/{}", kpin::VERSION)
    );
}

fn parent_annotations(cluster: &FakeApiServer) -> Value {
    cluster
        .get("", "ConfigMap", Some("default"), "kpin-web")
        .expect("ApplySet parent")["metadata"]["annotations"]
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Per-environment versions: kpin.yaml, kpin.lock, vendor/, render, apply.
// ---------------------------------------------------------------------------------------------

#[test]
fn upgrading_one_environment_leaves_the_others_and_locks_both_versions() {
    let p = project();
    let run = expect(
        p.run(&["upgrade", "web", "--env", "dev", "--to", "1.1.0"]),
        0,
    );
    // The report is dev's: its rendered diff, no prod overlay in it.
    assert_contains(
        &run.stdout,
        "web 1.0.0 -> 1.1.0: rendered changes in dev, after overlays",
    );
    assert_contains(&run.stderr, "Upgraded web 1.0.0 -> 1.1.0 in dev");
    // Only dev's version is added, in place: comments and the package's version stay.
    assert_eq!(
        p.read("kpin.yaml"),
        format!("{MANIFEST}    environments:\n      dev:\n        version: 1.1.0\n")
    );
    // Both versions are vendored, and the lock records each with the environments using it.
    assert!(p.path().join("vendor/web/1.0.0/web.yaml").is_file());
    assert!(p.path().join("vendor/web/1.1.0/web.yaml").is_file());
    insta::assert_snapshot!("two_versions_lockfile", p.read("kpin.lock"));
    expect(p.run(&["verify"]), 0);
    expect(p.run(&["sync", "--locked", "--offline"]), 0);

    // Each environment renders its version; without --env, the package's.
    let dev = expect(p.run(&["render", "--env", "dev", "--locked"]), 0);
    assert_contains(&dev.stdout, "image: example.com/web:1.1.0");
    for env in ["qa", "prod"] {
        let run = expect(p.run(&["render", "--env", env, "--locked"]), 0);
        assert_contains(&run.stdout, "image: example.com/web:1.0.0");
    }
    assert_contains(
        &expect(p.run(&["render"]), 0).stdout,
        "image: example.com/web:1.0.0",
    );

    let again = expect(
        p.run(&["upgrade", "web", "--env", "dev", "--to", "1.1.0"]),
        2,
    );
    assert_contains(
        &again.stderr,
        "error: package `web` is already at version 1.1.0 in dev",
    );
}

#[test]
fn verify_checks_every_vendored_version() {
    let p = dev_ahead();
    p.write("vendor/web/1.1.0/web.yaml", "tampered\n");
    std::fs::remove_dir_all(p.path().join("vendor/web/1.0.0")).unwrap();
    p.write("vendor/web/0.9.0/web.yaml", "{}\n");
    let run = expect(p.run(&["verify"]), 1);
    assert_eq!(
        run.stdout,
        format!(
            "web: vendor/web/1.0.0 is missing\n\
             web: vendor/web/1.1.0/web.yaml was modified (sha256 {}, locked {})\n\
             vendor/web/0.9.0/ is not a package version pinned in kpin.yaml\n",
            kpin::digest::sha256_hex(b"tampered\n"),
            kpin::digest::sha256_hex(release("1.1.0", "modern").as_bytes()),
        )
    );
    // sync restores what the lock says, and removes the version no one uses.
    expect(p.run(&["sync", "--offline"]), 0);
    expect(p.run(&["verify"]), 0);
    assert!(!p.path().join("vendor/web/0.9.0").exists());

    // An environment's version changed by hand is stale, named by environment.
    p.write(
        "kpin.yaml",
        &p.read("kpin.yaml").replace("      dev:\n", "      qa:\n"),
    );
    let run = expect(p.run(&["verify"]), 1);
    assert_eq!(
        run.stdout,
        "web: the version of environment `dev` changed since it was locked (locked 1.1.0, now 1.0.0)\n\
         web: the version of environment `qa` changed since it was locked (locked 1.0.0, now 1.1.0)\n"
    );
    let locked = expect(p.run(&["sync", "--locked", "--offline"]), 1);
    assert_contains(
        &locked.stderr,
        "environment `qa` changed since it was locked",
    );
}

#[test]
fn a_format_1_lockfile_is_read_and_rewritten_by_sync() {
    let p = project();
    let v2 = lock(&p);
    let entry = &v2.packages["web"];
    let v1 = format!(
        "version: 1\npackages:\n  web:\n    version: 1.0.0\n    source: path\n    manifestDigest: {}\n    files:\n    - {{name: web.yaml, url: 'path:mirror/web/1.0.0/web.yaml', sha256: {}, size: {}}}\n    overlaysDigest: {}\n    rendered:\n{}",
        entry.versions[0].manifest_digest,
        entry.versions[0].files[0].sha256,
        entry.versions[0].files[0].size,
        entry.overlays_digest.as_deref().unwrap(),
        entry
            .rendered
            .iter()
            .map(|(e, d)| format!("      {e}: {d}\n"))
            .collect::<String>()
    );
    let current = p.read("kpin.lock");
    p.write("kpin.lock", &v1);
    // Everything reads it; CI's --locked asks for the rewrite.
    expect(p.run(&["render", "--env", "prod"]), 0);
    let verify = expect(p.run(&["verify"]), 1);
    assert_eq!(
        verify.stdout,
        "kpin.lock is in lockfile format 1; this kpin writes format 2\n"
    );
    let locked = expect(p.run(&["sync", "--locked", "--offline"]), 1);
    assert_contains(
        &locked.stderr,
        "kpin.lock is in lockfile format 1 (--locked); this kpin writes format 2",
    );
    assert_contains(
        &locked.stderr,
        "hint: run `kpin sync` once and commit kpin.lock",
    );
    expect(p.run(&["sync", "--offline"]), 0);
    assert_eq!(p.read("kpin.lock"), current, "the same facts, in format 2");
}

#[test]
fn each_environment_applies_its_own_version_and_its_parent_records_it() {
    let p = dev_ahead();
    let c = Clusters::start(true);
    for env in ["dev", "qa", "prod"] {
        let run = expect(
            c.kpin(&p, &["apply", "--env", env, "--locked", "--wait=false"]),
            0,
        );
        assert_contains(&run.stderr, &format!("Target context {env}-admin"));
    }
    let prod = c.prod.as_ref().unwrap();
    assert_eq!(image(&c.dev), "example.com/web:1.1.0");
    assert_eq!(image(&c.qa), "example.com/web:1.0.0");
    assert_eq!(image(prod), "example.com/web:1.0.0");
    let replicas = |s: &FakeApiServer| {
        s.get("apps", "Deployment", Some("web"), "web").unwrap()["spec"]["replicas"].clone()
    };
    assert_eq!((replicas(&c.qa), replicas(prod)), (json!(1), json!(3)));

    // Each parent says what runs there: the version, the environment and the lock's digest.
    let locked = lock(&p);
    for (env, cluster, version) in [("dev", &c.dev, "1.1.0"), ("prod", prod, "1.0.0")] {
        assert_parent_records(&parent_annotations(cluster), env, version, &locked);
    }
    // An unchanged re-apply writes nothing, the parent included.
    c.dev.clear_log();
    expect(c.kpin(&p, &["apply", "--env", "dev", "--wait=false"]), 0);
    assert_eq!(c.dev.mutations(), Vec::<String>::new());

    // The live diff names the deployed version on the cluster's side.
    expect(p.run(&["promote", "web", "--to", "qa"]), 0);
    let diff = expect(c.kpin(&p, &["diff", "--env", "qa"]), 1);
    assert_contains(&diff.stdout, "web 1.0.0 -> 1.1.0 (0 added, 2 changed");
}

// ---------------------------------------------------------------------------------------------
// Promotion.
// ---------------------------------------------------------------------------------------------

#[test]
fn promote_moves_the_version_one_environment_at_a_time() {
    let p = dev_ahead();
    let ahead = p.read("kpin.yaml");

    // prod takes qa's version, which is prod's: moving dev's would skip qa.
    let before = files(&p);
    let skip = expect(p.run(&["promote", "web", "--to", "prod"]), 2);
    insta::assert_snapshot!("promote_skip_refused", skip.stderr);
    assert_eq!(files(&p), before, "a refused promotion writes nothing");
    let preview = expect(
        p.run(&[
            "promote",
            "web",
            "--to",
            "prod",
            "--allow-skip",
            "--dry-run",
        ]),
        0,
    );
    assert_contains(
        &preview.stderr,
        "Promoting web 1.0.0 -> 1.1.0 in prod (from dev)",
    );
    assert_eq!(files(&p), before, "a dry run writes nothing");

    // qa gets dev's version, with the report of an upgrade of qa.
    let run = expect(p.run(&["promote", "web", "--to", "qa"]), 0);
    insta::assert_snapshot!("promote_to_qa", run.transcript());
    assert_eq!(
        p.read("kpin.yaml"),
        ahead.replace(
            "        version: 1.1.0\n",
            "        version: 1.1.0\n      qa:\n        version: 1.1.0\n"
        )
    );
    expect(p.run(&["verify"]), 0);
    let again = expect(p.run(&["promote", "web", "--to", "qa"]), 0);
    assert_contains(&again.stderr, "Up to date web 1.1.0 in qa");

    // prod follows qa: every environment runs 1.1.0, which becomes the package's version. The
    // manifest is as before the upgrade, one version on; 1.0.0 leaves vendor/ and the lock.
    let markdown = expect(
        p.run(&["promote", "--all", "--to", "prod", "--output", "markdown"]),
        0,
    );
    assert!(
        markdown
            .stdout
            .starts_with("## kpin promote web to prod: 1.0.0 → 1.1.0\n"),
        "{}",
        markdown.stdout
    );
    assert_contains(
        &markdown.stdout,
        "every environment runs 1.1.0 now: it becomes the package's version (1.0.0 before)",
    );
    assert_eq!(
        p.read("kpin.yaml"),
        MANIFEST.replace("version: 1.0.0   #", "version: 1.1.0   #")
    );
    assert!(!p.path().join("vendor/web/1.0.0").exists());
    let versions: Vec<String> = lock(&p).packages["web"]
        .versions
        .iter()
        .map(|v| v.version.clone())
        .collect();
    assert_eq!(versions, ["1.1.0"]);
    expect(p.run(&["verify"]), 0);
    expect(p.run(&["sync", "--locked", "--offline"]), 0);
}

#[test]
fn promotion_needs_an_order_and_refuses_to_go_back() {
    let p = dev_ahead();
    let first = expect(p.run(&["promote", "web", "--to", "dev"]), 2);
    assert_contains(
        &first.stderr,
        "error: dev is the first environment of the promotion order",
    );
    assert_contains(
        &first.stderr,
        "hint: a new version enters through dev with `kpin upgrade PACKAGE --env dev`",
    );

    // prod ahead of qa (a hotfix): promoting qa's version would downgrade prod.
    expect(
        p.run(&["upgrade", "web", "--env", "prod", "--to", "1.1.0"]),
        0,
    );
    expect(
        p.run(&["upgrade", "web", "--env", "dev", "--to", "1.0.0"]),
        0,
    );
    let back = expect(p.run(&["promote", "web", "--to", "prod"]), 2);
    assert_contains(
        &back.stderr,
        "error: promoting web to prod would downgrade it from 1.1.0 to 1.0.0, the version qa runs",
    );
    // `--all` skips such a package with a warning and promotes the rest (here: nothing).
    let all = expect(p.run(&["promote", "--all", "--to", "prod"]), 0);
    assert_contains(
        &all.stderr,
        "warning: web: skipped: promoting web to prod would downgrade it",
    );

    p.write(
        "kpin.yaml",
        &p.read("kpin.yaml")
            .replace("promotion: [dev, qa, prod]\n", ""),
    );
    let none = expect(p.run(&["promote", "web", "--to", "qa"]), 2);
    assert_contains(&none.stderr, "declares no promotion order");
    assert_contains(
        &none.stderr,
        "hint: add the order versions travel in to kpin.yaml, e.g. `promotion: [dev, qa, prod]`",
    );
}

#[test]
fn a_failed_or_killed_promotion_is_wholly_old_or_wholly_new() {
    // To qa: kpin.lock and kpin.yaml change together.
    let p = dev_ahead();
    crate::crash::interrupt_every_step(&p, &["promote", "web", "--to", "qa"]);

    // To prod, ending the promotion: the package's version moves and vendor/web/1.0.0 goes.
    expect(p.run(&["promote", "web", "--to", "qa"]), 0);
    let before = files(&p);
    let failed = p.run_with(&["promote", "web", "--to", "prod"], |c| {
        c.env("KPIN_TEST_INTERRUPT", "fail:4")
    });
    expect(failed, 2);
    assert_eq!(files(&p), before, "byte for byte as before");
    crate::crash::interrupt_every_step(&p, &["promote", "web", "--to", "prod"]);
}

// ---------------------------------------------------------------------------------------------
// What runs where.
// ---------------------------------------------------------------------------------------------

/// The matrix part of `kpin status` output (up to the details).
fn matrix(run: &Run) -> String {
    run.stdout
        .split_inclusive('\n')
        .take_while(|l| *l != "\n")
        .collect()
}

#[test]
fn status_shows_what_runs_where_across_three_clusters() {
    let p = dev_ahead();
    let c = Clusters::start(false);
    expect(c.kpin(&p, &["apply", "--env", "dev", "--wait=false"]), 0);

    // qa was never applied: not deployed.
    let run = expect(c.kpin(&p, &["status", "--env", "dev,qa"]), 1);
    assert_eq!(
        matrix(&run),
        "PACKAGE  dev            qa\nweb      1.1.0 in sync  not deployed\n"
    );
    assert_contains(
        &run.stdout,
        "qa web: not deployed (no ApplySet parent ConfigMap default/kpin-web)",
    );

    // qa runs 1.0.0 as locked, but someone changed a field kpin applied; prod cannot be
    // reached, and is reported in its column while the others are checked.
    expect(c.kpin(&p, &["apply", "--env", "qa", "--wait=false"]), 0);
    c.qa.apply_as(
        "kubectl",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "web-settings", "namespace": "web"},
                   "data": {"mode": "hacked"}}),
        true,
    )
    .unwrap();
    let run = expect(c.kpin(&p, &["status"]), 2);
    insta::assert_snapshot!("status_matrix", matrix(&run));
    assert_contains(
        &run.stdout,
        "qa web: drift: differs from what kpin applied:\n  ~ ConfigMap web/web-settings (changed in the cluster)\n",
    );
    assert_contains(
        &run.stdout,
        "prod: unreachable: context prod-admin (http://[HOST]): ",
    );
    assert_contains(
        &run.stdout,
        "  hint: check the cluster's address in the kubeconfig",
    );
    assert_contains(
        &run.stderr,
        "error: some environments or packages could not be checked (see above)",
    );
    let json = expect(c.kpin(&p, &["status", "--output", "json"]), 2);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (v["differs"].clone(), v["complete"].clone()),
        (json!(true), json!(false))
    );
    let envs = v["environments"].as_array().unwrap();
    let names: Vec<&str> = envs.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dev", "qa", "prod"], "in promotion order");
    let dev = &envs[0]["packages"][0];
    assert_eq!(dev["state"], "in-sync");
    assert_eq!(dev["matchesLock"], true);
    assert_eq!(dev["deployed"]["version"], "1.1.0");
    assert_eq!(dev["lock"]["version"], "1.1.0");
    assert_eq!(dev["drift"], json!([]));
    assert_eq!(envs[1]["packages"][0]["state"], "drift");
    assert_eq!(envs[1]["packages"][0]["drift"][0]["name"], "web-settings");
    assert_eq!(envs[2]["error"]["kind"], "unreachable");

    // qa is promoted in kpin.yaml but not applied yet: it runs another version than locked.
    expect(p.run(&["promote", "web", "--to", "qa"]), 0);
    let run = expect(c.kpin(&p, &["status", "--env", "dev,qa"]), 1);
    assert_eq!(
        matrix(&run),
        "PACKAGE  dev            qa\nweb      1.1.0 in sync  1.0.0 (lock 1.1.0)\n"
    );
    // Once applied (taking the field back from kubectl), everything matches.
    expect(
        c.kpin(
            &p,
            &[
                "apply",
                "--env",
                "qa",
                "--locked",
                "--force-conflicts",
                "--wait=false",
            ],
        ),
        0,
    );
    let run = expect(
        c.kpin(&p, &["status", "--env", "dev,qa", "--output", "markdown"]),
        0,
    );
    insta::assert_snapshot!("status_markdown", run.stdout);
}

// ---------------------------------------------------------------------------------------------
// Review.
// ---------------------------------------------------------------------------------------------

fn git(p: &Project, args: &[&str]) {
    let out = std::process::Command::new("git")
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

#[test]
fn diff_base_reviews_a_promotion_per_environment() {
    let p = dev_ahead();
    git(&p, &["init", "-q", "-b", "main"]);
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "-qm", "web 1.1.0 in dev"]);
    expect(p.run(&["diff", "--base", "main"]), 0);

    // The pull request of `kpin promote web --to qa`: the render without --env does not change,
    // qa's does, and dev (its own version, unchanged) is listed too.
    expect(p.run(&["promote", "web", "--to", "qa"]), 0);
    let run = expect(
        p.run(&["diff", "--base", "main", "--output", "markdown"]),
        1,
    );
    insta::assert_snapshot!("diff_base_promotion", run.stdout);
    let one = expect(p.run(&["diff", "--base", "main", "--env", "prod"]), 0);
    assert_eq!(
        one.stdout,
        "web 1.0.0 (0 added, 0 changed, 0 removed, 3 unchanged)\n"
    );
}

// ---------------------------------------------------------------------------------------------
// The walk-through of the README with the real ingress-nginx releases.
// ---------------------------------------------------------------------------------------------

#[test]
fn ingress_nginx_travels_from_dev_to_prod() {
    let Some(dir) = upstream_or_skip("ingress_nginx_travels_from_dev_to_prod") else {
        return;
    };
    let server = Server::http();
    for v in ["1.9.4", "1.10.6"] {
        let path = dir.join(format!("ingress-nginx/controller-v{v}/deploy-cloud.yaml"));
        server.file(
            &format!("/controller-v{v}/deploy.yaml"),
            std::fs::read(&path).unwrap(),
        );
    }
    let p = Project::new();
    p.write(
        "kpin.yaml",
        &format!(
            "environments:\n  dev: {{context: dev-admin}}\n  qa: {{context: qa-admin}}\n  prod: {{context: prod-admin}}\npromotion: [dev, qa, prod]\npackages:\n  ingress-nginx:\n    version: 1.9.4\n    url: {}/controller-v{{version}}/deploy.yaml\n",
            server.base()
        ),
    );
    expect(p.run(&["sync"]), 0);
    let c = Clusters::start(true);
    let apply = |env: &str| {
        expect(
            c.kpin(
                &p,
                &[
                    "apply",
                    "--env",
                    env,
                    "--locked",
                    "--prune",
                    "--recreate",
                    "--wait=false",
                ],
            ),
            0,
        )
    };
    for env in ["dev", "qa", "prod"] {
        apply(env);
    }
    expect(c.kpin(&p, &["status"]), 0);

    // 1.10.6 enters through dev. Its report: the NetworkPolicy goes, the admission Jobs change.
    let run = expect(
        p.run(&["upgrade", "ingress-nginx", "--env", "dev", "--to", "1.10.6"]),
        0,
    );
    assert_contains(
        &run.stdout,
        "- NetworkPolicy ingress-nginx/ingress-nginx-admission",
    );
    assert_contains(&run.stdout, "apply needs `--recreate`");
    let dev = apply("dev");
    assert!(
        dev.stdout.lines().any(|l| l.contains(" pruned ")
            && l.ends_with(" NetworkPolicy ingress-nginx/ingress-nginx-admission")),
        "{}",
        dev.stdout
    );
    let status = expect(c.kpin(&p, &["status"]), 0);
    assert!(
        matrix(&status).ends_with("ingress-nginx  1.10.6 in sync  1.9.4 in sync  1.9.4 in sync\n"),
        "{}",
        status.stdout
    );

    // qa, then prod; each status in between says what still runs the old version.
    expect(p.run(&["promote", "ingress-nginx", "--to", "qa"]), 0);
    let pending = expect(c.kpin(&p, &["status"]), 1);
    assert_contains(&matrix(&pending), "1.9.4 (lock 1.10.6)");
    apply("qa");
    expect(p.run(&["promote", "ingress-nginx", "--to", "prod"]), 0);
    apply("prod");
    let done = expect(c.kpin(&p, &["status"]), 0);
    assert!(
        matrix(&done).ends_with("ingress-nginx  1.10.6 in sync  1.10.6 in sync  1.10.6 in sync\n"),
        "{}",
        done.stdout
    );
    assert_contains(&p.read("kpin.yaml"), "    version: 1.10.6\n");
    assert!(!p.read("kpin.yaml").contains("1.9.4"));
    assert!(!p.path().join("vendor/ingress-nginx/1.9.4").exists());
}

/// The manifest as people write it by hand: flow mappings, comments, quoted versions.
const FLOW_MANIFEST: &str = "\
# Three clusters, one manifest, written in flow style.
environments: {dev: {context: dev-admin}, qa: {context: qa-admin}, prod: {context: prod-admin}}
promotion: [dev, qa, prod]
packages:
  web: {version: '1.0.0', path: 'mirror/web/{version}', environments: {dev: {version: 1.1.0}, qa: {version: '1.0.0'}}}   # pinned
";

#[test]
fn promote_and_upgrade_edit_a_flow_style_manifest_in_one_line() {
    let p = Project::new();
    p.write("kpin.yaml", FLOW_MANIFEST)
        .write("mirror/web/1.0.0/web.yaml", &release("1.0.0", "classic"))
        .write("mirror/web/1.1.0/web.yaml", &release("1.1.0", "modern"))
        .write("mirror/web/1.2.0/web.yaml", &release("1.2.0", "modern"));
    expect(p.run(&["sync"]), 0);

    // qa takes dev's version: only qa's value changes, its quotes kept.
    expect(p.run(&["promote", "web", "--to", "qa"]), 0);
    let promoted = p.read("kpin.yaml");
    assert_eq!(
        promoted,
        FLOW_MANIFEST.replace("qa: {version: '1.0.0'}", "qa: {version: '1.1.0'}")
    );
    expect(p.run(&["verify"]), 0);

    // dev moves on: one value again, in the braces where it was.
    expect(
        p.run(&["upgrade", "web", "--env", "dev", "--to", "1.2.0"]),
        0,
    );
    assert_eq!(
        p.read("kpin.yaml"),
        promoted.replace("dev: {version: 1.1.0}", "dev: {version: 1.2.0}")
    );
    expect(p.run(&["verify"]), 0);
}
