//! Integration tests: render. Overlays turn vendored releases into exactly the objects a team
//! runs; every failure names the overlay file, the operation, the object and the path.

use std::path::{Path, PathBuf};

use kpin::manifest::Manifest;
use kpin::object::Object;
use kpin::overlay::{Overlay, PackageAt};
use kpin::render;
use proptest::prelude::*;

use crate::support::{Project, Run, copy_dir, upstream_or_skip};

fn fixture(name: &str) -> PathBuf {
    crate::support::repo_root()
        .join("tests/fixtures/render")
        .join(name)
}

/// Vendor a scratch project's `path:` sources (render itself never fetches).
fn sync(p: &Project) {
    let run = p.run(&["--quiet", "sync"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

/// A scratch copy of a fixture project, synced.
fn project(name: &str) -> Project {
    let p = Project::new();
    copy_dir(&fixture(name), p.path());
    sync(&p);
    p
}

// ---------------------------------------------------------------------------------------------
// Rendered output.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_operation_renders_as_reviewed() {
    let p = project("app");
    for (name, args) in [
        ("app_default", vec!["--quiet", "render"]),
        ("app_dev", vec!["--quiet", "render", "--env", "dev"]),
        (
            "app_prod",
            vec!["--quiet", "render", "app", "--env", "prod"],
        ),
    ] {
        let run = p.run(&args);
        assert_eq!(run.code, 0, "{}", run.transcript());
        insta::assert_snapshot!(name, run.transcript());
    }
}

#[test]
fn explain_shows_which_overlay_changed_which_fields() {
    let p = project("app");
    let run = p.run(&["--quiet", "render", "--env", "prod", "--explain"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    insta::assert_snapshot!(run.transcript());
}

#[test]
fn rendering_is_byte_for_byte_repeatable() {
    let p = project("app");
    let first = p.run(&["--quiet", "render", "--env", "prod"]);
    let second = p.run(&["--quiet", "render", "--env", "prod"]);
    assert_eq!(first.stdout, second.stdout);
    assert_eq!(first.stderr, second.stderr);
}

#[test]
fn output_dir_has_one_file_per_object_and_is_replaced_whole() {
    let p = project("app");
    p.write("out/app/stale.yaml", "old: true\n");
    p.write("out/other/keep.yaml", "kept: true\n");
    let run = p.run(&["--quiet", "render", "--env", "prod", "--output-dir", "out"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let mut files: Vec<String> = std::fs::read_dir(p.path().join("out/app"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    insta::assert_snapshot!(format!("{}\n{}", run.stderr, files.join("\n")));
    assert!(
        p.path().join("out/other/keep.yaml").exists(),
        "other packages' directories are left alone"
    );
    // The files hold exactly the objects of the stream (listed by stage, then kind and name).
    let stream = p.run(&["--quiet", "render", "--env", "prod"]).stdout;
    let mut from_stream: Vec<&str> = stream.split("---\n").collect();
    let mut from_files: Vec<String> = files
        .iter()
        .map(|f| p.read(&format!("out/app/{f}")))
        .collect();
    from_stream.sort_unstable();
    from_files.sort();
    assert_eq!(from_files, from_stream);
    let leftovers: Vec<_> = std::fs::read_dir(p.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no staging directories left: {leftovers:?}"
    );
}

#[test]
fn output_dir_never_replaces_a_directory_it_did_not_write() {
    let p = project("app");
    p.write("out/app/notes/keep.md", "mine\n");
    let run = p.run(&["--quiet", "render", "--output-dir", "out"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "error: out/app holds `notes`, which `kpin render` does not write: refusing to replace the directory\n  hint: --output-dir replaces"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(p.read("out/app/notes/keep.md"), "mine\n");
}

#[test]
fn package_namespace_shorthand_moves_the_package() {
    let p = Project::new();
    p.write(
        "kpin.yaml",
        "packages:\n  web:\n    version: 2.0.0\n    path: upstream/{version}/web.yaml\n    namespace: frontend\n",
    );
    p.write("upstream/2.0.0/web.yaml", WEB);
    sync(&p);
    let run = p.run(&["--quiet", "render"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    insta::assert_snapshot!(run.transcript());
}

#[test]
fn lock_digests_follow_overlay_edits() {
    let p = project("app");
    let manifest = Manifest::load(&p.path().join("kpin.yaml")).unwrap();
    let package = &manifest.packages["app"];
    let first = render::digests(&manifest, package).unwrap();
    assert_eq!(first, render::digests(&manifest, package).unwrap());
    assert_eq!(
        first.rendered.keys().collect::<Vec<_>>(),
        ["default", "dev", "prod"]
    );
    assert_ne!(first.rendered["default"], first.rendered["prod"]);

    // An edit to a file an overlay adds changes the overlay digest and the renders.
    let pdb = p.read("overlays/app/pdb.yaml");
    p.write(
        "overlays/app/pdb.yaml",
        &pdb.replace("maxUnavailable: 1", "maxUnavailable: 2"),
    );
    let edited = render::digests(&manifest, package).unwrap();
    assert_ne!(first.overlays_digest, edited.overlays_digest);
    assert_ne!(first.rendered["default"], edited.rendered["default"]);

    // A comment changes the overlay bytes (so `verify` asks to re-lock) but not the output.
    let dev = p.read("overlays/app/dev.yaml");
    p.write("overlays/app/dev.yaml", &format!("# reviewed\n{dev}"));
    let commented = render::digests(&manifest, package).unwrap();
    assert_ne!(edited.overlays_digest, commented.overlays_digest);
    assert_eq!(edited.rendered, commented.rendered);
}

// ---------------------------------------------------------------------------------------------
// Failure modes: each names the overlay file, operation, object and path, with a hint.
// ---------------------------------------------------------------------------------------------

const WEB: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: web}
spec:
  replicas: 1
  template:
    spec:
      serviceAccountName: web
      containers:
      - {name: web, image: nginx:1.25, args: [--port=80]}
";

/// Render package `web` 2.0.0 from `upstream` with one overlay file holding `overlay`.
fn render_web(upstream: &str, overlay: &str) -> Run {
    let p = Project::new();
    p.write(
        "kpin.yaml",
        "packages:\n  web:\n    version: 2.0.0\n    path: upstream/{version}/web.yaml\n    overlays: [overlays/web.yaml]\n",
    );
    p.write("upstream/2.0.0/web.yaml", upstream);
    p.write("overlays/web.yaml", overlay);
    sync(&p);
    p.run(&["--quiet", "render"])
}

fn assert_error(name: &str, run: Run) {
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stdout.is_empty(),
        "nothing rendered on error: {}",
        run.stdout
    );
    insta::assert_snapshot!(name, run.transcript());
}

#[test]
fn malformed_overlay_yaml() {
    assert_error(
        "error_malformed_yaml",
        render_web(
            WEB,
            "operations:\n- jsonPatch: {select: {kind: Deployment}\n",
        ),
    );
}

#[test]
fn unknown_operation() {
    assert_error(
        "error_unknown_operation",
        render_web(
            WEB,
            "operations:\n- patchJson: {select: {kind: Deployment}}\n",
        ),
    );
}

#[test]
fn invalid_json_pointer() {
    assert_error(
        "error_invalid_pointer",
        render_web(
            WEB,
            "operations:\n- jsonPatch:\n    select: {kind: Deployment}\n    patch: [{op: replace, path: spec/replicas, value: 2}]\n",
        ),
    );
}

#[test]
fn json_patch_path_missing_in_object() {
    assert_error(
        "error_patch_path_missing",
        render_web(
            WEB,
            "operations:\n- jsonPatch:\n    select: {kind: Deployment}\n    patch: [{op: replace, path: /spec/template/spec/containers/1/image, value: x}]\n",
        ),
    );
}

#[test]
fn json_patch_test_fails() {
    assert_error(
        "error_test_failed",
        render_web(
            WEB,
            "operations:\n- jsonPatch:\n    select: {kind: Deployment, name: web}\n    patch:\n    - {op: test, path: /spec/template/spec/containers/0/image, value: 'nginx:1.24'}\n    - {op: replace, path: /spec/template/spec/containers/0/image, value: 'nginx:1.24-alpine'}\n",
        ),
    );
}

#[test]
fn selector_matching_nothing() {
    assert_error(
        "error_selector_matches_nothing",
        render_web(
            WEB,
            "operations:\n- mergePatch:\n    select: {kind: Deployment, name: web-frontend}\n    patch: {spec: {replicas: 3}}\n",
        ),
    );
    let optional = render_web(
        WEB,
        "operations:\n- mergePatch:\n    select: {kind: Deployment, name: web-frontend}\n    optional: true\n    patch: {spec: {replicas: 3}}\n",
    );
    assert_eq!(optional.code, 0, "{}", optional.transcript());
}

#[test]
fn strategic_merge_item_without_its_merge_key() {
    // Replacing the list instead would drop the upstream container without a word.
    assert_error(
        "error_strategic_merge_missing_key",
        render_web(
            WEB,
            "operations:\n- strategicMerge:\n    select: {kind: Deployment}\n    patch: {spec: {template: {spec: {containers: [{image: 'nginx:1.26'}]}}}}\n",
        ),
    );
}

#[test]
fn operation_written_as_a_list() {
    // serde would read `[{kind: Deployment}]` as the selector and remove the Deployment.
    assert_error(
        "error_operation_as_list",
        render_web(WEB, "operations:\n- remove: [{kind: Deployment}]\n"),
    );
}

#[test]
fn namespace_on_cluster_scoped_only_package() {
    let crds_only = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: web}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec: {group: example.com, scope: Namespaced, names: {kind: Widget}}\n";
    assert_error(
        "error_namespace_cluster_scoped",
        render_web(crds_only, "operations:\n- namespace: {name: web}\n"),
    );
}

#[test]
fn missing_overlay_file() {
    let p = Project::new();
    p.write(
        "kpin.yaml",
        "packages:\n  web:\n    version: 2.0.0\n    path: upstream/{version}/web.yaml\n    overlays: [overlays/missing.yaml]\n",
    );
    p.write("upstream/2.0.0/web.yaml", WEB);
    sync(&p);
    let run = p.run(&["--quiet", "render"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("reading overlay overlays/missing.yaml"),
        "{}",
        run.stderr
    );
}

#[test]
fn added_object_that_already_exists() {
    let p = Project::new();
    p.write(
        "kpin.yaml",
        "packages:\n  web:\n    version: 2.0.0\n    path: upstream/{version}/web.yaml\n    overlays: [overlays/web.yaml]\n",
    );
    p.write("upstream/2.0.0/web.yaml", WEB);
    p.write(
        "overlays/web.yaml",
        "operations:\n- add: {files: [sa.yaml]}\n",
    );
    p.write(
        "overlays/sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: web}\n",
    );
    sync(&p);
    assert_error("error_add_duplicate", p.run(&["--quiet", "render"]));
}

#[test]
fn alias_bomb_in_upstream_is_refused_quickly() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!(
            "{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n",
            (b'a' + i) as char,
            (b'a' + i) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char
        ));
    }
    let run = render_web(&bomb, "operations: []\n");
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains("vendor/web/2.0.0/web.yaml"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

fn arb_object() -> impl Strategy<Value = serde_json::Value> {
    let kinds = prop::sample::select(vec![
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("example.com/v1", "Widget"),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
        ),
    ]);
    (kinds, "[a-z][a-z0-9-]{0,8}", prop::option::of("[a-z]{1,5}"), prop::collection::btree_map("[a-z]{1,4}", "[a-z0-9 :-]{0,6}", 0..3))
        .prop_map(|((api, kind), name, ns, labels)| {
            let mut meta = serde_json::json!({"name": name, "labels": labels});
            if let Some(ns) = ns {
                meta["namespace"] = ns.into();
            }
            serde_json::json!({"apiVersion": api, "kind": kind, "metadata": meta, "data": {"k": "v"}})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Same inputs, same bytes; and document order upstream never changes the output.
    #[test]
    fn rendering_is_deterministic(objects in prop::collection::vec(arb_object(), 1..12), seed in any::<u64>()) {
        let mut seen = std::collections::BTreeSet::new();
        let objects: Vec<Object> = objects.into_iter().map(Object).filter(|o| seen.insert(o.reference())).collect();
        let overlay = Overlay::parse(
            "operations:\n- labels: {set: {team: a}}\n- namespace: {name: moved}\n",
            Path::new("/x/overlays/p.yaml"),
            "overlays/p.yaml",
            Path::new("/x"),
        ).unwrap();
        let target = PackageAt { package: "p", version: "1" };
        let render = |objs: Vec<Object>| {
            render::render_objects(objs, std::slice::from_ref(&overlay), target, false)
                .map(|r| (render::to_yaml(&r.objects), r.warnings))
                .map_err(|e| e.to_string())
        };
        let first = render(objects.clone());
        prop_assert_eq!(&first, &render(objects.clone()));
        let mut shuffled = objects;
        let n = shuffled.len();
        for i in 0..n {
            shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % n);
        }
        // Moving into one namespace can make two objects collide; both orders must agree on that too.
        prop_assert_eq!(first.is_ok(), render(shuffled.clone()).is_ok());
        if first.is_ok() {
            prop_assert_eq!(first.map(|r| r.0), render(shuffled).map(|r| r.0));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real upstream releases, read in place from ../shared/upstream/.
// ---------------------------------------------------------------------------------------------

/// The release files of `project` listed in INDEX.tsv, as (version, path).
fn upstream_files(dir: &Path, project: &str) -> Vec<(String, PathBuf)> {
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    index
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (cols.first() == Some(&project)).then(|| {
                (
                    cols[1].to_owned(),
                    dir.join(cols[0]).join(cols[1]).join(cols[2]),
                )
            })
        })
        .collect()
}

fn render_upstream(path: &Path, version: &str, overlay: &str) -> render::Rendered {
    let text = std::fs::read_to_string(path).unwrap();
    let objects = kpin::object::Object::all_from_yaml(&text, path).unwrap();
    let overlay = Overlay::parse(
        overlay,
        Path::new("/x/overlays/o.yaml"),
        "overlays/o.yaml",
        Path::new("/x"),
    )
    .unwrap();
    render::render_objects(
        objects,
        &[overlay],
        PackageAt {
            package: "upstream",
            version,
        },
        false,
    )
    .unwrap_or_else(|e| panic!("{}: {}", path.display(), kpin::error::format_error(&e)))
}

/// Every string value equal to `ns` under a `namespace` key, or naming `ns/` or `.ns.svc`, with its path.
fn namespace_mentions(value: &serde_json::Value, ns: &str, path: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if matches!(k.as_str(), "labels" | "matchLabels" | "image") {
                    continue;
                }
                if k == "namespace" && v.as_str() == Some(ns) {
                    out.push(format!("{path}.{k}"));
                }
                namespace_mentions(v, ns, format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                namespace_mentions(v, ns, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::String(s)
            if s.starts_with(&format!("{ns}/"))
                || s.contains(&format!("={ns}/"))
                || s.contains(&format!(".{ns}.svc")) =>
        {
            out.push(path);
        }
        _ => {}
    }
}

#[test]
fn ingress_nginx_moves_without_leftovers() {
    let Some(dir) = upstream_or_skip("ingress_nginx_moves_without_leftovers") else {
        return;
    };
    let files = upstream_files(&dir, "ingress-nginx");
    assert!(!files.is_empty());
    for (version, path) in files {
        let out = render_upstream(
            &path,
            &version,
            "operations:\n- namespace: {name: ingress}\n",
        );
        assert!(
            out.objects
                .iter()
                .any(|o| o.kind() == "Namespace" && o.name() == "ingress")
        );
        for o in &out.objects {
            let mut mentions = Vec::new();
            namespace_mentions(&o.0, "ingress-nginx", String::new(), &mut mentions);
            for m in mentions {
                let warned = out.warnings.iter().any(|w| {
                    w.starts_with(&format!("{}: {}", o.reference(), m.trim_start_matches('.')))
                });
                assert!(
                    warned,
                    "{}: {} {m} still names ingress-nginx without a warning",
                    path.display(),
                    o.reference()
                );
            }
            if let Some(ns) = o.namespace() {
                assert_eq!(ns, "ingress", "{}", o.reference());
            }
        }
        let webhook = out
            .objects
            .iter()
            .find(|o| o.kind() == "ValidatingWebhookConfiguration")
            .unwrap();
        assert_eq!(
            webhook
                .0
                .pointer("/webhooks/0/clientConfig/service/namespace")
                .unwrap(),
            "ingress"
        );
    }
}

#[test]
fn gatekeeper_webhooks_follow_the_move() {
    let Some(dir) = upstream_or_skip("gatekeeper_webhooks_follow_the_move") else {
        return;
    };
    for (version, path) in upstream_files(&dir, "gatekeeper") {
        let out = render_upstream(
            &path,
            &version,
            "operations:\n- namespace: {name: policy}\n",
        );
        let webhooks: Vec<&Object> = out
            .objects
            .iter()
            .filter(|o| o.kind().ends_with("WebhookConfiguration"))
            .collect();
        assert_eq!(webhooks.len(), 2, "{}", path.display());
        for w in webhooks {
            for hook in w.0["webhooks"].as_array().unwrap() {
                assert_eq!(
                    hook["clientConfig"]["service"]["namespace"],
                    "policy",
                    "{}",
                    w.reference()
                );
            }
        }
        // `--exempt-namespace=gatekeeper-system` cannot be rewritten blindly: it must be warned.
        assert!(
            out.warnings
                .iter()
                .any(|w| w.contains("--exempt-namespace=gatekeeper-system")),
            "{}: {:#?}",
            path.display(),
            out.warnings
        );
        assert!(
            out.objects
                .iter()
                .all(|o| o.kind() != "Namespace" || o.name() == "policy")
        );
    }
}

#[test]
fn metrics_server_apiservice_follows_the_move() {
    let Some(dir) = upstream_or_skip("metrics_server_apiservice_follows_the_move") else {
        return;
    };
    for (version, path) in upstream_files(&dir, "metrics-server") {
        let out = render_upstream(
            &path,
            &version,
            "operations:\n- namespace: {name: monitoring}\n- jsonPatch:\n    select: {kind: Deployment, name: metrics-server}\n    patch: [{op: add, path: /spec/template/spec/containers/0/args/-, value: --kubelet-insecure-tls}]\n",
        );
        let api = out
            .objects
            .iter()
            .find(|o| o.kind() == "APIService")
            .unwrap();
        assert_eq!(
            api.0.pointer("/spec/service/namespace").unwrap(),
            "monitoring"
        );
        let deploy = out
            .objects
            .iter()
            .find(|o| o.kind() == "Deployment")
            .unwrap();
        let args = deploy
            .0
            .pointer("/spec/template/spec/containers/0/args")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(args.last().unwrap(), "--kubelet-insecure-tls");
        // The auth-reader binding grants a Role that only exists in kube-system: moving it is flagged.
        assert!(
            out.warnings
                .iter()
                .any(|w| w.contains("extension-apiserver-authentication-reader")),
            "{}: {:#?}",
            path.display(),
            out.warnings
        );
    }
}

#[test]
fn every_upstream_release_renders_twice_the_same() {
    let Some(dir) = upstream_or_skip("every_upstream_release_renders_twice_the_same") else {
        return;
    };
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let path = dir.join(cols[0]).join(cols[1]).join(cols[2]);
        let a = render::to_yaml(&render_upstream(&path, cols[1], "operations: []\n").objects);
        let b = render::to_yaml(&render_upstream(&path, cols[1], "operations: []\n").objects);
        assert!(a == b, "{}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// The bundled example.
// ---------------------------------------------------------------------------------------------

/// A fresh clone of the repository's example, synced offline (its `path:` sources point at
/// examples/upstream/; its chart is vendored).
fn example_project() -> Project {
    let p = crate::support::example_project_locked();
    sync(&p);
    p
}

#[test]
fn example_renders_per_environment() {
    let p = example_project();
    for env in ["dev", "qa", "prod"] {
        let run = p.run(&["--quiet", "render", "--env", env]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        assert!(
            !run.stderr.contains("warning"),
            "the example's overlays leave nothing to warn about: {}",
            run.stderr
        );
        insta::assert_snapshot!(format!("example_{env}"), run.stdout);
    }
    let run = p.run(&["--quiet", "render", "--env", "prod", "--explain"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    insta::assert_snapshot!("example_prod_explain", run.stdout);
}

#[test]
fn two_packages_rendering_one_object_is_an_error() {
    let p = Project::new();
    p.write(
        "kpin.yaml",
        "packages:\n  a:\n    version: '1'\n    path: upstream/{version}/a.yaml\n  b:\n    version: '1'\n    path: upstream/{version}/b.yaml\n",
    );
    let role =
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: shared}\n";
    p.write("upstream/1/a.yaml", role);
    p.write("upstream/1/b.yaml", role);
    sync(&p);
    assert_error(
        "error_two_packages_one_object",
        p.run(&["--quiet", "render"]),
    );
    // Each package on its own is fine.
    assert_eq!(p.run(&["--quiet", "render", "a"]).code, 0);
}

#[test]
fn argo_cd_bindings_follow_a_namespace_it_never_writes_on_objects() {
    let Some(dir) =
        upstream_or_skip("argo_cd_bindings_follow_a_namespace_it_never_writes_on_objects")
    else {
        return;
    };
    for (version, path) in upstream_files(&dir, "argo-cd") {
        let out = render_upstream(
            &path,
            &version,
            "operations:\n- namespace: {name: gitops}\n",
        );
        let mut subjects = 0;
        for o in out
            .objects
            .iter()
            .filter(|o| o.kind() == "ClusterRoleBinding")
        {
            for s in o.0["subjects"].as_array().unwrap() {
                if s["kind"] == "ServiceAccount" {
                    assert_eq!(
                        s["namespace"],
                        "gitops",
                        "{}: {}",
                        path.display(),
                        o.reference()
                    );
                    subjects += 1;
                }
            }
        }
        assert!(subjects > 0);
        assert!(out.warnings.is_empty(), "{:#?}", out.warnings);
    }
}

#[test]
fn lock_currency_reports_overlay_edits_that_were_not_relocked() {
    let p = project("app");
    let manifest = Manifest::load(&p.path().join("kpin.yaml")).unwrap();
    let package = &manifest.packages["app"];
    let digests = render::digests(&manifest, package).unwrap();
    let locked = kpin::vendoring::lockfile::LockedPackage::new(
        &manifest,
        package,
        Vec::new(),
        Some(digests),
    );
    assert!(
        kpin::vendoring::verify::render_problems(&manifest, package, &locked)
            .unwrap()
            .is_empty()
    );

    let dev = p.read("overlays/app/dev.yaml");
    p.write(
        "overlays/app/dev.yaml",
        &dev.replace("replicas: 2", "replicas: 4"),
    );
    let problems: Vec<String> =
        kpin::vendoring::verify::render_problems(&manifest, package, &locked)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
    assert_eq!(
        problems,
        [
            "app: overlays changed since they were locked",
            "app: rendered output for `dev` differs from kpin.lock"
        ]
    );

    p.write(
        "overlays/app/dev.yaml",
        "operations:\n- remove: {select: {name: gone}}\n",
    );
    let problems = kpin::vendoring::verify::render_problems(&manifest, package, &locked).unwrap();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .to_string()
            .starts_with("app: does not render: rendering app 1.0.0 for environment `dev`"),
        "{}",
        problems[0]
    );
}
