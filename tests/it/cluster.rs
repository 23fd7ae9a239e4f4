//! `kpin apply` and `kpin diff` end to end against the in-process fake API server, plus the same
//! flows against a real cluster when `KPIN_TEST_KUBECONFIG` is set (see `real_cluster`).

use serde_json::{Value, json};

use crate::support::fake_apiserver::{FakeApiServer, Options};
use crate::support::{Project, Run};

const MANIFEST: &str = "\
environments:
  prod:
    context: other
packages:
  demo:
    version: 1.0.0
    url: https://example.invalid/demo-{version}.yaml
    namespace: demo
";

const NAMESPACE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
";

const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
";

const CLUSTER_ROLE: &str = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: demo-reader
rules:
- apiGroups: ['']
  resources: [configmaps]
  verbs: [get]
";

const SETTINGS: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  mode: fast
";

const LEGACY: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: legacy
  namespace: demo
data:
  old: 'true'
";

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
";

const WIDGET: &str = "\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gadget
  namespace: demo
spec:
  size: 3
";

const WEBHOOK: &str = "\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: demo-webhook
webhooks: []
";

const KEEPME: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: keepme
  namespace: demo
  annotations: {kpin.dev/prune: keep}
";

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: demo
data:
  password: b2xkLXBhc3N3b3Jk
  user: YWRtaW4=
";

fn yaml(docs: &[&str]) -> String {
    docs.join("---\n")
}

/// The first release of `demo`: one object of each stage.
fn v1() -> String {
    yaml(&[
        NAMESPACE,
        CRD,
        CLUSTER_ROLE,
        SETTINGS,
        LEGACY,
        DEPLOYMENT,
        WIDGET,
        WEBHOOK,
    ])
}

/// A project whose `demo` package vendors `yaml` as version `version`.
fn project(version: &str, yaml: &str) -> Project {
    let p = Project::new();
    p.write("kpin.yaml", &MANIFEST.replace("1.0.0", version));
    p.write(&format!("vendor/demo/{version}/demo.yaml"), yaml);
    p
}

fn upgrade(p: &Project, version: &str, yaml: &str) {
    p.write("kpin.yaml", &MANIFEST.replace("1.0.0", version));
    p.write(&format!("vendor/demo/{version}/demo.yaml"), yaml);
}

struct Setup {
    fake: FakeApiServer,
    project: Project,
    kubeconfig: String,
}

fn setup(yaml: &str) -> Setup {
    let fake = FakeApiServer::start(Options::default());
    let project = project("1.0.0", yaml);
    let kubeconfig = fake.write_kubeconfig(project.path()).display().to_string();
    Setup {
        fake,
        project,
        kubeconfig,
    }
}

impl Setup {
    fn kpin(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", &self.kubeconfig]);
        self.project.run(&all)
    }

    /// Run kpin and check its exit code, showing the whole transcript when it differs.
    #[track_caller]
    fn expect(&self, code: i32, args: &[&str]) -> Run {
        expect_code(self.kpin(args), code)
    }
}

#[track_caller]
fn expect_code(run: Run, code: i32) -> Run {
    assert_eq!(run.code, code, "{}", run.transcript());
    run
}

/// Assert that `text` contains `needle`, showing all of `text` when it does not.
#[track_caller]
fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "no {needle:?} in:\n{text}");
}

/// Assert that the report table has a row `<package> <action> <object>`.
#[track_caller]
fn assert_row(table: &str, action: &str, object: &str) {
    let found = table.lines().any(|l| {
        let mut words = l.split_whitespace().skip(1);
        words.next() == Some(action) && words.collect::<Vec<_>>().join(" ") == object
    });
    assert!(found, "no row {action} {object} in:\n{table}");
}

#[test]
fn first_apply_creates_in_stages_and_an_unchanged_reapply_patches_nothing() {
    let s = setup(&v1());
    let run = s.expect(0, &["apply"]);
    insta::assert_snapshot!("first_apply", run.transcript());

    // Stage order: the CRD before the ClusterRole and the ConfigMaps, the webhook last, and the
    // custom resource only once its CRD is established.
    let mutations = s.fake.mutations();
    let pos = |needle: &str| {
        mutations
            .iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not applied: {mutations:#?}"))
    };
    assert!(pos("/namespaces/demo") < pos("customresourcedefinitions"));
    assert!(pos("customresourcedefinitions") < pos("clusterroles"));
    assert!(pos("clusterroles") < pos("configmaps/settings"));
    assert!(pos("deployments/web") < pos("widgets/gadget"));
    assert!(pos("widgets/gadget") < pos("validatingwebhookconfigurations"));
    let cm = s
        .fake
        .get("", "ConfigMap", Some("demo"), "settings")
        .expect("applied");
    assert_eq!(cm["metadata"]["managedFields"][0]["manager"], "kpin");
    assert!(
        cm["metadata"]["labels"]["applyset.kubernetes.io/part-of"]
            .as_str()
            .unwrap()
            .starts_with("applyset-")
    );
    let parent = s
        .fake
        .get("", "ConfigMap", Some("demo"), "kpin-demo")
        .expect("ApplySet parent");
    insta::assert_json_snapshot!(
        "applyset_parent_annotations",
        parent["metadata"]["annotations"]
    );

    s.fake.clear_log();
    let again = s.expect(0, &["apply"]);
    assert_contains(&again.stdout, "8 unchanged");
    assert_eq!(
        s.fake.mutations(),
        Vec::<String>::new(),
        "an unchanged re-apply changes nothing"
    );
}

#[test]
fn dry_run_sends_only_dry_run_requests() {
    let s = setup(&v1());
    let before = s.fake.object_count();
    let run = s.expect(0, &["apply", "--dry-run"]);
    assert_contains(&run.stdout, "dry run: 8 created");
    assert_eq!(s.fake.mutations(), Vec::<String>::new());
    assert_eq!(s.fake.object_count(), before);
}

#[test]
fn validation_failure_sends_no_request() {
    let s = setup("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n");
    s.expect(2, &["apply"]);
    let run = s.expect(2, &["apply", "--env", "staging"]);
    assert_contains(&run.stderr, "no environment `staging`");
    assert_eq!(s.fake.requests(), vec![]);
}

#[test]
fn environment_context_must_match() {
    let s = setup(&v1());
    let run = s.expect(2, &["apply", "--env", "prod", "--context", "fake"]);
    assert_contains(
        &run.stderr,
        "environment prod uses context other, but --context fake was given",
    );
    assert_eq!(s.fake.requests(), vec![]);

    // Without --context, the environment's context is used and named before anything changes.
    let run = s.expect(0, &["apply", "--env", "prod", "--dry-run"]);
    assert_contains(&run.stderr, "Target context other (http://[HOST])");
}

#[test]
fn the_fake_serves_aggregated_discovery_to_clients_that_ask() {
    let fake = FakeApiServer::start(Options::default());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (content_type, body) = rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("{}/apis", fake.url()))
            .header("accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;q=0.9")
            .send()
            .await
            .expect("request");
        let ct = resp.headers()["content-type"].to_str().unwrap_or("").to_owned();
        let text = resp.text().await.expect("body");
        (ct, serde_json::from_str::<Value>(&text).expect("json"))
    });
    assert!(
        content_type.contains("as=APIGroupDiscoveryList"),
        "{content_type}"
    );
    let apps = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .expect("apps");
    assert_eq!(
        apps["versions"][0]["resources"][0]["responseKind"]["kind"],
        "Deployment"
    );
}

fn masked(text: &str) -> String {
    text.replace("b2xkLXBhc3N3b3Jk", "OLD-SECRET")
        .replace("bmV3LXBhc3N3b3Jk", "NEW-SECRET")
}

#[test]
fn diff_shows_updates_creations_and_prunes_and_masks_secrets() {
    let s = setup(&yaml(&[NAMESPACE, SETTINGS, LEGACY, SECRET]));
    s.expect(0, &["apply"]);
    let no_changes = s.expect(0, &["diff"]);
    assert_eq!(no_changes.stdout, "");

    let secret2 = SECRET.replace("b2xkLXBhc3N3b3Jk", "bmV3LXBhc3N3b3Jk");
    upgrade(
        &s.project,
        "1.1.0",
        &yaml(&[
            NAMESPACE,
            &SETTINGS.replace("fast", "slow"),
            &secret2,
            CLUSTER_ROLE,
        ]),
    );
    s.fake.clear_log();
    let run = s.expect(1, &["diff"]);
    assert_eq!(
        s.fake.mutations(),
        Vec::<String>::new(),
        "diff changes nothing"
    );
    assert!(
        !run.stdout.contains("bmV3") && !run.stdout.contains("b2xk"),
        "{}",
        run.stdout
    );
    insta::assert_snapshot!("diff_text", run.transcript());

    let shown = s.kpin(&["diff", "--show-secrets"]);
    assert_contains(&shown.stdout, "bmV3LXBhc3N3b3Jk");

    let md = s.kpin(&["diff", "--output", "markdown"]);
    assert_eq!(md.code, 1);
    insta::assert_snapshot!("diff_markdown", masked(&md.stdout));
    let json = s.kpin(&["diff", "--output", "json"]);
    let v: Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["changed"], true);
    assert_eq!(v["target"]["context"], "fake");
    assert_eq!(
        v["sections"][0]["objects"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(v["sections"][0]["summary"]["unchanged"], 1);

    // `--base` compares with a git revision instead (tests/it/upgrade.rs); here there is no repository.
    let base = s.kpin(&["diff", "--base", "HEAD"]);
    assert_eq!(base.code, 2);
    assert_contains(&base.stderr, "not in a git repository");
}

#[test]
fn upgrade_with_prune_deletes_removed_objects_but_keeps_marked_ones() {
    let s = setup(&yaml(&[NAMESPACE, CRD, SETTINGS, LEGACY, KEEPME, WIDGET]));
    s.expect(0, &["apply"]);
    upgrade(&s.project, "1.1.0", &yaml(&[NAMESPACE, SETTINGS]));

    // Without --prune, removed objects stay (and stay recorded).
    s.expect(0, &["apply"]);
    assert!(
        s.fake
            .get("", "ConfigMap", Some("demo"), "legacy")
            .is_some()
    );

    // The live diff lists what --prune would delete and names what it keeps, and why: the
    // annotated ConfigMap, and the CRD, whose deletion would take every Widget in the cluster.
    let diff = s.expect(1, &["diff"]);
    let listed: Vec<&str> = diff
        .stdout
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .collect();
    assert_eq!(
        listed,
        [
            "  no longer rendered, kept by `kpin apply --prune`: ConfigMap demo/keepme (kpin.dev/prune: keep)",
            "  no longer rendered, kept by `kpin apply --prune`: CustomResourceDefinition widgets.example.com \
             (deleting a CustomResourceDefinition deletes every custom resource of its kind in the cluster; \
             pass --prune-allow with its kind to delete it)",
            "  warning: 2 object(s) no longer rendered; `kpin apply --prune` would delete them: \
             ConfigMap demo/legacy, Widget demo/gadget",
            "  - ConfigMap demo/legacy",
            "  - Widget demo/gadget",
        ],
        "{}",
        diff.stdout
    );
    // Naming the kind lets it go.
    let allowed = s.expect(1, &["diff", "--prune-allow", "CustomResourceDefinition"]);
    assert_contains(
        &allowed.stdout,
        "  - CustomResourceDefinition widgets.example.com",
    );
    let bad = s.expect(2, &["diff", "--prune-allow", "ConfigMap"]);
    assert_contains(
        &bad.stderr,
        "expected one of: CustomResourceDefinition, Namespace",
    );

    // A dry run reports the same prune and only sends dry-run requests.
    s.fake.clear_log();
    let dry = s.expect(0, &["apply", "--prune", "--dry-run"]);
    assert_contains(&dry.stdout, "dry run: 2 unchanged, 2 pruned, 2 kept");
    assert_eq!(s.fake.mutations(), Vec::<String>::new());
    assert!(
        s.fake
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.dry_run())
    );
    assert!(
        s.fake
            .get("", "ConfigMap", Some("demo"), "legacy")
            .is_some()
    );

    s.fake.clear_log();
    let run = s.expect(0, &["apply", "--prune"]);
    insta::assert_snapshot!("prune", run.stdout);
    assert!(
        s.fake
            .get("", "ConfigMap", Some("demo"), "legacy")
            .is_none()
    );
    assert!(
        s.fake
            .get("", "ConfigMap", Some("demo"), "keepme")
            .is_some()
    );
    let crd = || {
        s.fake.get(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            None,
            "widgets.example.com",
        )
    };
    assert!(crd().is_some(), "kept without --prune-allow");
    // The parent still records the kept kinds, so a later prune finds them again.
    let recorded = || {
        s.fake
            .get("", "ConfigMap", Some("demo"), "kpin-demo")
            .expect("parent")["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"]
            .clone()
    };
    assert_eq!(
        recorded(),
        "ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,Namespace"
    );

    s.fake.clear_log();
    let run = s.expect(
        0,
        &[
            "apply",
            "--prune",
            "--prune-allow",
            "CustomResourceDefinition",
        ],
    );
    assert_contains(
        &run.stdout,
        "pruned     CustomResourceDefinition widgets.example.com",
    );
    assert!(crd().is_none());
    let deletes: Vec<String> = s
        .fake
        .mutations()
        .into_iter()
        .filter(|m| m.starts_with("DELETE"))
        .collect();
    assert_eq!(
        deletes,
        ["DELETE /apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"]
    );
    assert_eq!(recorded(), "ConfigMap,Namespace");
}

#[test]
fn prune_refuses_an_empty_package_and_a_parent_of_other_tooling() {
    let s = setup(&yaml(&[NAMESPACE, SETTINGS]));
    s.expect(0, &["apply"]);
    upgrade(&s.project, "2.0.0", "");
    let run = s.expect(2, &["apply", "--prune"]);
    assert_contains(&run.stderr, "renders no objects");

    let other = setup(&yaml(&[NAMESPACE, SETTINGS]));
    other
        .fake
        .seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kpin-demo", "namespace": "demo",
                     "annotations": {"applyset.kubernetes.io/tooling": "kubectl/v1.32.0"}}}));
    let run = other.expect(2, &["apply"]);
    assert_contains(&run.stderr, "is managed by kubectl/v1.32.0, not kpin");
    assert_eq!(other.fake.mutations(), Vec::<String>::new());
}

#[test]
fn a_missing_package_namespace_is_reported_with_a_hint() {
    let s = setup(SETTINGS);
    let run = s.expect(2, &["apply"]);
    assert_contains(&run.stderr, "namespace demo does not exist");
    assert_contains(&run.stderr, "hint: create it first");
    assert_eq!(s.fake.object_count(), 2, "only the built-in namespaces");
}

#[test]
fn conflicts_with_another_manager_are_explained_and_can_be_forced() {
    let s = setup(&yaml(&[NAMESPACE, SETTINGS]));
    s.expect(0, &["apply"]);
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "demo"}, "data": {"mode": "manual"}});
    s.fake
        .apply_as("helm", theirs, true)
        .expect("other manager applies");

    let run = s.expect(1, &["apply"]);
    insta::assert_snapshot!("conflict", run.stdout);

    let run = s.expect(0, &["apply", "--force-conflicts"]);
    assert_contains(&run.stdout, "configured  ConfigMap demo/settings");
    let cm = s
        .fake
        .get("", "ConfigMap", Some("demo"), "settings")
        .unwrap();
    assert_eq!(cm["data"]["mode"], "fast");
}

#[test]
fn immutable_field_changes_fail_clearly_and_recreate_on_request() {
    let s = setup(&yaml(&[NAMESPACE, DEPLOYMENT]));
    s.expect(0, &["apply"]);
    upgrade(
        &s.project,
        "1.1.0",
        &yaml(&[NAMESPACE, &DEPLOYMENT.replace("app: web", "app: web2")]),
    );

    // The diff shows the change and warns that apply needs --recreate, instead of failing.
    let diff = s.expect(1, &["diff"]);
    assert_contains(
        &diff.stdout,
        "warning: apply needs `--recreate` (or the annotation kpin.dev/recreate: \"true\"): \
         immutable fields change in Deployment demo/web (spec.selector)",
    );
    assert_contains(&diff.stdout, "+        app: web2");

    let run = s.expect(1, &["apply"]);
    assert_contains(
        &run.stdout,
        "demo Deployment demo/web (failed): spec.selector: field is immutable\n  hint: pass --recreate",
    );
    assert!(!run.stdout.contains("Invalid value"), "{}", run.stdout);
    // The server's own words are behind -v.
    let verbose = s.expect(1, &["apply", "-v"]);
    assert_contains(
        &verbose.stdout,
        "server said: Deployment.apps \"web\" is invalid",
    );

    s.fake.clear_log();
    let run = s.expect(0, &["apply", "--recreate"]);
    assert_contains(&run.stdout, "recreated  Deployment demo/web");
    assert!(
        s.fake
            .mutations()
            .contains(&"DELETE /apis/apps/v1/namespaces/demo/deployments/web".to_owned())
    );
    let d = s
        .fake
        .get("apps", "Deployment", Some("demo"), "web")
        .unwrap();
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web2");
}

#[test]
fn the_recreate_annotation_allows_recreation_without_the_flag() {
    let s = setup(&yaml(&[NAMESPACE, DEPLOYMENT]));
    s.expect(0, &["apply"]);
    let annotated = DEPLOYMENT.replace("app: web", "app: web2").replace(
        "  namespace: demo\nspec:",
        "  namespace: demo\n  annotations: {kpin.dev/recreate: 'true'}\nspec:",
    );
    upgrade(&s.project, "1.1.0", &yaml(&[NAMESPACE, &annotated]));
    let run = s.expect(0, &["apply", "--dry-run"]);
    assert_contains(&run.stdout, "would delete and re-create");
    assert!(
        s.fake
            .get("apps", "Deployment", Some("demo"), "web")
            .is_some()
    );
    let run = s.expect(0, &["apply"]);
    assert_contains(&run.stdout, "recreated  Deployment demo/web");
}

#[test]
fn client_side_applied_objects_are_migrated_so_removed_fields_disappear() {
    let s = setup(&yaml(&[NAMESPACE, SETTINGS]));
    // As `kubectl apply` (client-side) left it, in its namespace: an extra key upstream has
    // since dropped.
    s.fake
        .seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}));
    s.fake.seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "demo",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"mode\":\"fast\",\"dropped\":\"x\"}}"},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, "f:mode": {}, "f:dropped": {}},
                             "f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/last-applied-configuration": {}}}}}]},
        "data": {"mode": "fast", "dropped": "x"}}));

    let run = s.expect(0, &["apply"]);
    assert_contains(
        &run.stdout,
        "took over the fields of client-side kubectl apply",
    );
    let cm = s
        .fake
        .get("", "ConfigMap", Some("demo"), "settings")
        .unwrap();
    assert_eq!(
        cm["data"],
        json!({"mode": "fast"}),
        "the field dropped upstream is gone"
    );
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, vec!["kpin"]);
}

#[test]
fn wait_times_out_with_a_list_of_what_is_not_ready() {
    let s = setup(&yaml(&[NAMESPACE, SETTINGS, DEPLOYMENT]));
    s.fake.set_options(|o| o.workloads_become_ready = false);
    let run = s.expect(1, &["apply", "--timeout", "1"]);
    insta::assert_snapshot!("wait_timeout", run.stdout);
    let json = s.kpin(&["apply", "--timeout", "1", "--output", "json"]);
    insta::assert_snapshot!("wait_timeout_json", json.stdout);
    let v: Value = serde_json::from_str(&json.stdout).expect("json report");
    assert_eq!(v["failed"], true);
    assert_eq!(v["packages"][0]["notReady"][0]["object"]["name"], "web");
}

/// The DELETEs the fake received, dry runs left out.
fn deletes(fake: &FakeApiServer) -> Vec<String> {
    fake.mutations()
        .into_iter()
        .filter(|m| m.starts_with("DELETE"))
        .collect()
}

#[test]
fn prune_with_nothing_removed_deletes_nothing_and_diff_after_apply_is_clean() {
    // Cluster-scoped and namespaced objects, a CRD and a webhook: what a real server lists
    // without `kind` on its items.
    let s = setup(&v1());
    s.expect(0, &["apply", "--wait=false"]);
    let diff = s.expect(0, &["diff"]);
    assert_eq!(diff.stdout, "", "nothing would change");
    assert!(
        !diff.stderr.contains("no longer rendered"),
        "{}",
        diff.stderr
    );

    s.fake.clear_log();
    let run = s.expect(0, &["apply", "--prune", "--wait=false"]);
    assert_contains(&run.stdout, "8 unchanged");
    assert!(!run.stdout.contains("pruned"), "{}", run.stdout);
    assert_eq!(deletes(&s.fake), Vec::<String>::new());
    assert_eq!(s.fake.mutations(), Vec::<String>::new());
    let dry = s.expect(0, &["apply", "--prune", "--dry-run"]);
    assert!(!dry.stdout.contains("pruned"), "{}", dry.stdout);
}

#[test]
fn an_unchanged_reapply_of_many_services_in_one_namespace_sends_no_write() {
    // More Services than the LIST threshold: they are read with one LIST, whose items carry no
    // kind, and must still compare equal to their dry runs.
    let services: Vec<String> = (0..6)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: demo\n\
                 spec:\n  selector: {{app: x}}\n  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n"
            )
        })
        .collect();
    let mut docs = vec![NAMESPACE];
    docs.extend(services.iter().map(String::as_str));
    let s = setup(&yaml(&docs));
    s.expect(0, &["apply"]);
    s.fake.clear_log();
    let run = s.expect(0, &["apply"]);
    assert_contains(&run.stdout, "7 unchanged");
    assert_eq!(s.fake.mutations(), Vec::<String>::new());
    assert!(
        s.fake
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/api/v1/namespaces/demo/services"),
        "read with one LIST"
    );
}

#[test]
fn a_prune_of_most_of_a_package_is_refused_unless_allowed() {
    let configmaps: Vec<String> = (0..8)
        .map(|i| {
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n  namespace: demo\n")
        })
        .collect();
    let mut docs = vec![NAMESPACE];
    docs.extend(configmaps.iter().map(String::as_str));
    let s = setup(&yaml(&docs));
    s.expect(0, &["apply"]);
    upgrade(
        &s.project,
        "1.1.0",
        &yaml(&[NAMESPACE, &configmaps[0], &configmaps[1]]),
    );

    s.fake.clear_log();
    let run = s.expect(2, &["apply", "--prune"]);
    assert_contains(
        &run.stderr,
        "package demo: --prune would delete 6 of the 9 objects in the cluster that it applied before:",
    );
    assert_contains(&run.stderr, "  ConfigMap demo/c7");
    assert_contains(&run.stderr, "hint: check that the render is what you meant");
    assert_eq!(
        s.fake.mutations(),
        Vec::<String>::new(),
        "refused before any write"
    );

    let diff = s.expect(1, &["diff"]);
    assert_contains(&diff.stdout, "would refuse to delete 6 of the 9 objects");

    let run = s.expect(0, &["apply", "--prune", "--allow-mass-prune"]);
    assert_contains(&run.stdout, "6 pruned");
    assert_eq!(deletes(&s.fake).len(), 6);
}

#[test]
fn a_namespace_is_pruned_only_when_named() {
    // Without the `namespace:` shorthand, which would move the second Namespace into `demo`.
    let other_ns = NAMESPACE.replace("demo", "extra");
    let s = setup(&yaml(&[NAMESPACE, &other_ns, SETTINGS]));
    s.project
        .write("kpin.yaml", &MANIFEST.replace("    namespace: demo\n", ""));
    s.expect(0, &["apply"]);
    s.project
        .write("vendor/demo/1.0.0/demo.yaml", &yaml(&[NAMESPACE, SETTINGS]));
    let run = s.expect(0, &["apply", "--prune"]);
    assert_row(&run.stdout, "kept", "Namespace extra");
    assert_contains(&run.stdout, "deleting a Namespace deletes everything in it");
    assert!(s.fake.get("", "Namespace", None, "extra").is_some());
    assert_eq!(deletes(&s.fake), Vec::<String>::new());

    let run = s.expect(0, &["apply", "--prune", "--prune-allow", "Namespace"]);
    assert_row(&run.stdout, "pruned", "Namespace extra");
    assert!(s.fake.get("", "Namespace", None, "extra").is_none());
}

const MONITORED: &str = "\
packages:
  ingress:
    version: 1.0.0
    url: https://example.invalid/ingress-{version}.yaml
    namespace: ingress
    overlays: [overlays/ingress.yaml]
  monitoring:
    version: 1.0.0
    url: https://example.invalid/monitoring-{version}.yaml
    namespace: monitoring
";

const SERVICE_MONITOR_CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
";

/// `ingress` adds a ServiceMonitor (an overlay), whose CRD comes from `monitoring`, which sorts
/// after it.
fn monitored_project() -> Project {
    let p = Project::new();
    p.write("kpin.yaml", MONITORED);
    p.write(
        "vendor/ingress/1.0.0/ingress.yaml",
        &yaml(&[
            &NAMESPACE.replace("demo", "ingress"),
            &SETTINGS.replace("demo", "ingress"),
        ]),
    );
    p.write(
        "vendor/monitoring/1.0.0/monitoring.yaml",
        &yaml(&[
            &NAMESPACE.replace("demo", "monitoring"),
            SERVICE_MONITOR_CRD,
        ]),
    );
    p.write(
        "overlays/ingress.yaml",
        "operations:\n- add: {files: [servicemonitor.yaml]}\n",
    );
    p.write(
        "overlays/servicemonitor.yaml",
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: controller\n\
         spec:\n  endpoints: [{port: metrics}]\n  selector: {matchLabels: {app: ingress}}\n",
    );
    p
}

#[test]
fn a_package_can_use_the_crds_of_another_in_one_apply() {
    let fake = FakeApiServer::start(Options::default());
    let p = monitored_project();
    let kubeconfig = fake.write_kubeconfig(p.path()).display().to_string();
    let kpin = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", &kubeconfig]);
        p.run(&all)
    };

    // Dry run and diff know the CRD comes with this apply.
    let dry = expect_code(kpin(&["apply", "--dry-run"]), 0);
    assert_row(&dry.stdout, "created", "ServiceMonitor ingress/controller");
    let diff = expect_code(kpin(&["diff"]), 1);
    assert_contains(&diff.stdout, "+ ServiceMonitor ingress/controller");

    let run = expect_code(kpin(&["apply"]), 0);
    insta::assert_snapshot!("cross_package_crd", run.transcript());
    let mutations = fake.mutations();
    let pos = |needle: &str| {
        mutations
            .iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not applied: {mutations:#?}"))
    };
    assert!(pos("customresourcedefinitions/servicemonitors") < pos("servicemonitors/controller"));
    assert!(pos("/namespaces/monitoring") < pos("configmaps/settings"));
    assert!(
        fake.get(
            "monitoring.coreos.com",
            "ServiceMonitor",
            Some("ingress"),
            "controller"
        )
        .is_some()
    );
    expect_code(kpin(&["diff"]), 0);
}

#[test]
fn an_unchanged_reapply_reads_the_members_of_all_packages_together_and_sends_no_dry_run() {
    let fake = FakeApiServer::start(Options::default());
    let p = monitored_project();
    let kubeconfig = fake.write_kubeconfig(p.path()).display().to_string();
    expect_code(p.run(&["apply", "--kubeconfig", &kubeconfig]), 0);
    fake.clear_log();
    let run = expect_code(p.run(&["apply", "--kubeconfig", &kubeconfig]), 0);
    assert_contains(&run.stdout, "\n5 unchanged\n");
    let requests = fake.requests();
    let dry_runs: Vec<String> = requests
        .iter()
        .filter(|r| r.dry_run())
        .map(|r| r.line())
        .collect();
    assert_eq!(dry_runs, Vec::<String>::new());
    assert_eq!(fake.mutations(), Vec::<String>::new());
    // Both packages render a Namespace: one LIST reads the two sets' members.
    let selectors: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/namespaces")
        .filter_map(|r| {
            url::form_urlencoded::parse(r.query.as_bytes())
                .find(|(k, _)| k == "labelSelector")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(selectors.len(), 1, "{selectors:?}");
    assert!(
        selectors[0].starts_with("applyset.kubernetes.io/part-of in (applyset-"),
        "{selectors:?}"
    );
    // And that LIST found them: the diff reads no object on its own.
    fake.clear_log();
    expect_code(p.run(&["diff", "--kubeconfig", &kubeconfig]), 0);
    let reads: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/v1/namespaces/"))
        .filter(|r| !r.path.contains("/configmaps"))
        .map(|r| r.line())
        .collect();
    assert_eq!(reads, Vec::<String>::new());
}

#[test]
fn needs_orders_packages_and_a_cycle_is_an_error() {
    let fake = FakeApiServer::start(Options::default());
    let p = monitored_project();
    let kubeconfig = fake.write_kubeconfig(p.path()).display().to_string();
    p.write(
        "kpin.yaml",
        &MONITORED.replace(
            "    namespace: ingress\n",
            "    namespace: ingress\n    needs: [monitoring]\n",
        ),
    );
    let run = expect_code(p.run(&["apply", "--kubeconfig", &kubeconfig]), 0);
    let applying: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("Applying") && l.contains("1.0.0"))
        .collect();
    assert!(applying[0].contains("monitoring"), "{applying:?}");
    assert!(applying[1].contains("ingress"), "{applying:?}");

    p.write(
        "kpin.yaml",
        &MONITORED
            .replace(
                "    namespace: ingress\n",
                "    namespace: ingress\n    needs: [monitoring]\n",
            )
            .replace(
                "    namespace: monitoring\n",
                "    namespace: monitoring\n    needs: [ingress]\n",
            ),
    );
    fake.clear_log();
    let run = expect_code(p.run(&["apply", "--kubeconfig", &kubeconfig]), 2);
    assert_contains(
        &run.stderr,
        "packages need each other in a cycle: ingress -> monitoring -> ingress",
    );
    assert_eq!(fake.requests(), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Connection edges: every failure to reach the API server is one plain sentence naming the
// server and the context, with a hint. Only loopback is contacted.
// ---------------------------------------------------------------------------------------------

/// A kubeconfig in `p` for `server`, context `fake`, user `admin` with `user` (YAML lines
/// indented by four spaces) as credentials.
fn kubeconfig_for(p: &Project, server: &str, user: &str) -> String {
    let path = p.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: admin\nusers:\n- name: admin\n  user:\n{user}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

const TOKEN: &str = "    token: t\n";

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_refused_connection_names_the_server_and_the_context() {
    let p = project("1.0.0", &v1());
    for scheme in ["https", "http"] {
        let kubeconfig = kubeconfig_for(
            &p,
            &format!("{scheme}://127.0.0.1:{}", closed_port()),
            TOKEN,
        );
        for command in ["apply", "diff"] {
            let run = expect_code(p.run(&[command, "--kubeconfig", &kubeconfig]), 2);
            assert_eq!(
                run.stderr
                    .lines()
                    .filter(|l| {
                        let l = l.trim_start();
                        !l.starts_with("Target") && !l.starts_with("Validated")
                    })
                    .collect::<Vec<_>>(),
                [
                    format!("error: cannot reach the cluster at {scheme}://[HOST] (context fake): the connection was refused").as_str(),
                    "  hint: is the API server running, and are the address and port of `server:` in the kubeconfig right? (`kubectl cluster-info` tries the same)",
                ],
                "{}",
                run.stderr
            );
        }
    }
}

#[test]
fn a_server_that_never_answers_gives_up_after_the_request_timeout() {
    // Accepts connections and never writes a byte.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let p = project("1.0.0", &v1());
    for (scheme, command, limit, shown) in [
        ("https", "apply", "1s", "1s"),
        ("http", "apply", "1", "1s"),
        ("http", "diff", "500ms", "500ms"),
    ] {
        let kubeconfig = kubeconfig_for(&p, &format!("{scheme}://127.0.0.1:{port}"), TOKEN);
        let started = std::time::Instant::now();
        let run = expect_code(
            p.run(&[
                command,
                "--kubeconfig",
                &kubeconfig,
                "--request-timeout",
                limit,
            ]),
            2,
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert_contains(
            &run.stderr,
            &format!(
                "error: cannot reach the cluster at {scheme}://[HOST] (context fake): no answer within {shown} (--request-timeout)\n"
            ),
        );
        assert_contains(
            &run.stderr,
            "hint: the server took the connection but sent nothing back",
        );
        assert!(!run.stderr.contains("deadline"), "{}", run.stderr);
    }
    let run = expect_code(p.run(&["apply", "--request-timeout", "soon"]), 2);
    assert_contains(&run.stderr, "`soon` is not a duration");
}

#[test]
fn tls_problems_say_what_is_wrong_with_the_server() {
    let p = project("1.0.0", &v1());
    // TLS to a port that speaks plain HTTP.
    let fake = FakeApiServer::start(Options::default());
    let kubeconfig = kubeconfig_for(&p, &fake.url().replace("http://", "https://"), TOKEN);
    let run = expect_code(p.run(&["diff", "--kubeconfig", &kubeconfig]), 2);
    assert_contains(
        &run.stderr,
        "error: cannot reach the cluster at https://[HOST] (context fake): the server does not answer with TLS there (an http:// port?)\n  hint: use the scheme and port",
    );

    // A certificate from a CA the kubeconfig does not name.
    let server = crate::support::http::Server::https();
    let kubeconfig = kubeconfig_for(&p, &server.base(), TOKEN);
    let run = expect_code(p.run(&["apply", "--kubeconfig", &kubeconfig]), 2);
    assert_contains(
        &run.stderr,
        "error: cannot reach the cluster at https://[HOST] (context fake): its certificate is not signed by a certificate authority the kubeconfig trusts\n  hint: give the cluster the CA that signed the API server's certificate",
    );
    // Naming that CA gets past TLS (this server is no API server, so something else fails).
    let text = std::fs::read_to_string(&kubeconfig).unwrap().replace(
        "    server:",
        &format!(
            "    certificate-authority: {}\n    server:",
            server.ca_path().display()
        ),
    );
    std::fs::write(&kubeconfig, text).unwrap();
    let run = expect_code(p.run(&["apply", "--kubeconfig", &kubeconfig]), 2);
    assert!(!run.stderr.contains("certificate"), "{}", run.stderr);
}

#[test]
fn an_x509_v1_client_certificate_is_named_as_such() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        crate::support::skip(
            "an_x509_v1_client_certificate_is_named_as_such",
            "openssl is not installed",
        );
        return;
    }
    let p = project("1.0.0", &v1());
    let dir = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "admin.key",
        "-out",
        "admin.csr",
        "-subj",
        "/CN=admin",
    ]);
    std::fs::write(dir.path().join("v3.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let sign = |out: &str, extensions: &[&str]| {
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "admin.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            out,
        ];
        args.extend(extensions);
        openssl(&args);
    };
    sign("v1.crt", &[]); // No extensions: X.509 version 1.
    sign("v3.crt", &["-extfile", "v3.ext"]);
    let user = |cert: &str| {
        format!(
            "    client-certificate: {}\n    client-key: {}\n",
            dir.path().join(cert).display(),
            dir.path().join("admin.key").display()
        )
    };
    let server = format!("https://127.0.0.1:{}", closed_port());

    let kubeconfig = kubeconfig_for(&p, &server, &user("v1.crt"));
    let run = expect_code(p.run(&["apply", "--kubeconfig", &kubeconfig]), 2);
    assert_contains(
        &run.stderr,
        "error: the client certificate of user `admin` (context fake) is an X.509 version 1 certificate, which kpin's TLS library (rustls) does not accept\n  hint: issue the client certificate again as X.509 v3",
    );
    assert!(!run.stderr.contains("private key"), "{}", run.stderr);

    // The same key with a v3 certificate is fine: kpin goes on to connect.
    let kubeconfig = kubeconfig_for(&p, &server, &user("v3.crt"));
    let run = expect_code(p.run(&["apply", "--kubeconfig", &kubeconfig]), 2);
    assert_contains(&run.stderr, "the connection was refused");
}

/// Faults a real server shows only under load or while an aggregated API is down, on demand.
#[test]
fn a_server_that_asks_to_slow_down_is_asked_again() {
    let s = setup(&yaml(&[NAMESPACE, SETTINGS]));
    // Priority and fairness answers 429 with Retry-After when the server is busy.
    s.fake
        .inject_fault("PATCH", "/configmaps/settings", 429, Some(0), 2);
    let run = s.expect(0, &["apply", "--wait=false"]);
    assert_row(&run.stdout, "created", "ConfigMap demo/settings");
    let attempts = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/configmaps/settings"))
        .count();
    assert_eq!(attempts, 3, "two refusals, then the apply");
}

#[test]
fn an_aggregated_api_that_is_down_fails_only_its_objects_and_soon() {
    let thing = "\
apiVersion: down.example.com/v1
kind: Thing
metadata:
  name: t
  namespace: demo
";
    let s = setup(&yaml(&[NAMESPACE, SETTINGS, thing]));
    // The aggregator's answer while an APIService's backend is down: 503, plain text.
    s.fake
        .inject_fault("GET", "/apis/down.example.com/v1", 503, None, usize::MAX);
    let started = std::time::Instant::now();
    let run = s.expect(1, &["apply", "--wait=false"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "kube's own retry policy (15 retries, up to 1000 s apart) is off: {:?}",
        started.elapsed()
    );
    assert_row(&run.stdout, "created", "ConfigMap demo/settings");
    assert_row(&run.stdout, "failed", "Thing demo/t");
    assert_contains(
        &run.stdout,
        "the API group version down.example.com/v1 is unavailable: the APIService v1.down.example.com that serves it does not answer",
    );
    assert_contains(&run.stdout, "kubectl get apiservice v1.down.example.com");
    let discoveries = s
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/apis/down.example.com/v1")
        .count();
    // Asked once, retried three times, and remembered for the other objects of the group.
    assert_eq!(discoveries, 4, "bounded, remembered retries");
}

/// The same flows against a real cluster. Ignored by default and skipped unless
/// `KPIN_TEST_KUBECONFIG` names a kubeconfig whose current context may be written to; each test
/// works in its own namespaces `kpin-it-<pid>-<hash>` (and `-extra`, `-prod`) and deletes them and
/// the cluster-scoped objects it created afterwards, also when it fails. The cluster flows of
/// tests/it/environments.rs (per-environment apply, promotion, `kpin status`) are here too:
/// each environment is a context of its own, the test cluster with its own namespace. With kind:
///
/// ```text
/// kind create cluster --name kpin-it
/// kind get kubeconfig --name kpin-it > /tmp/kpin-it.kubeconfig
/// KPIN_TEST_KUBECONFIG=/tmp/kpin-it.kubeconfig cargo test --test it cluster::real -- --ignored --test-threads 2
/// ```
mod real {
    use std::process::Command;

    use serde_json::{Value, json};

    use super::{assert_contains, assert_row, expect_code};
    use crate::support::{Project, Run};

    struct Real {
        /// The kubeconfig kpin and kubectl use: `KPIN_TEST_KUBECONFIG`, or the copy with named
        /// contexts that `use_contexts` writes.
        kubeconfig: String,
        namespace: String,
        project: Project,
        /// Cluster-scoped objects a test created, deleted afterwards (`kind/name`).
        cluster_scoped: std::cell::RefCell<Vec<String>>,
        /// Delete everything the project renders afterwards (releases with fixed names).
        clean_render: bool,
        /// Held until the test's objects are deleted (fields drop after `Drop::drop`).
        _hold: Hold,
    }

    /// Tests share the cluster; a test that changes what every request meets (a webhook on
    /// namespaces, an apiserver restart) has it to itself.
    static CLUSTER: std::sync::RwLock<()> = std::sync::RwLock::new(());

    /// What kpin sent that the audit log records: `verb path?query` per request.
    #[derive(Debug, Default)]
    struct Sent {
        writes: Vec<String>,
        dry_runs: Vec<String>,
    }

    impl Sent {
        /// The last path segment of each dry run (the object's name), sorted.
        fn dry_run_names(&self) -> Vec<String> {
            let mut names: Vec<String> = self
                .dry_runs
                .iter()
                .map(|d| {
                    let path = d.split('?').next().unwrap_or(d);
                    path.rsplit('/').next().unwrap_or(path).to_owned()
                })
                .collect();
            names.sort();
            names
        }

        /// Writes to anything but the ApplySet parent `kpin-<package>`.
        fn object_writes(&self) -> Vec<&String> {
            self.writes
                .iter()
                .filter(|w| !w.contains("/configmaps/kpin-"))
                .collect()
        }

        fn parent_written(&self) -> bool {
            self.writes.iter().any(|w| w.contains("/configmaps/kpin-"))
        }
    }

    #[allow(dead_code)] // held for its Drop
    enum Hold {
        Shared(std::sync::RwLockReadGuard<'static, ()>),
        Exclusive(std::sync::RwLockWriteGuard<'static, ()>),
    }

    impl Drop for Real {
        fn drop(&mut self) {
            if self.clean_render {
                let rendered = self.project.run(&["render"]);
                self.kubectl_input(
                    &["delete", "--ignore-not-found", "--wait=false", "-f", "-"],
                    &rendered.stdout,
                );
            }
            for object in self.cluster_scoped.borrow().iter() {
                let _ = self.kubectl(&["delete", object, "--wait=false", "--ignore-not-found"]);
            }
            for ns in [self.namespace.clone(), format!("{}-extra", self.namespace)] {
                let _ = self.kubectl(&[
                    "delete",
                    "namespace",
                    &ns,
                    "--wait=false",
                    "--ignore-not-found",
                ]);
            }
        }
    }

    /// Eight hex digits of FNV-1a over the test's name: stable, short, a valid name part.
    fn name_hash(test: &str) -> String {
        let hash = test.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{:08x}", hash as u32)
    }

    impl Real {
        fn new(test: &str) -> Option<Real> {
            Real::start(test, false)
        }

        /// As `new`, with the cluster to itself: no other test runs against it meanwhile.
        fn exclusive(test: &str) -> Option<Real> {
            Real::start(test, true)
        }

        /// The test's namespace is `kpin-it-<pid>-<hash of the test's name>`: no two tests
        /// share one (a namespace one test deletes is Terminating when the next applies to it).
        fn start(test: &str, exclusive: bool) -> Option<Real> {
            let Some(kubeconfig) = std::env::var_os("KPIN_TEST_KUBECONFIG") else {
                crate::support::skip(
                    test,
                    "KPIN_TEST_KUBECONFIG is not set (tools/test-cluster/up DIR starts a real \
                     cluster; source DIR/env)",
                );
                return None;
            };
            let hold = if exclusive {
                Hold::Exclusive(
                    CLUSTER
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                )
            } else {
                Hold::Shared(
                    CLUSTER
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                )
            };
            Some(Real {
                kubeconfig: kubeconfig.to_string_lossy().into_owned(),
                namespace: format!("kpin-it-{}-{}", std::process::id(), name_hash(test)),
                project: Project::new(),
                cluster_scoped: std::cell::RefCell::new(Vec::new()),
                clean_render: false,
                _hold: hold,
            })
        }

        /// The directory of the cluster `tools/test-cluster/up` started (`KPIN_TEST_CLUSTER_DIR`):
        /// its audit log, its restart script. `None`, with the reason printed, for another
        /// cluster.
        fn cluster_dir(test: &str) -> Option<std::path::PathBuf> {
            let dir = std::env::var_os("KPIN_TEST_CLUSTER_DIR").map(std::path::PathBuf::from);
            if dir.is_none() {
                crate::support::skip(
                    test,
                    "KPIN_TEST_CLUSTER_DIR is not set: this check needs the cluster of \
                     tools/test-cluster/up (its audit log or its restart script)",
                );
            }
            dir
        }

        /// Run `f`, and return with its result the writes kpin sent meanwhile as the server's
        /// audit log recorded them (`verb path`, dry runs left out); `None` without the test
        /// cluster's audit log.
        fn writes_during<T>(&self, f: impl FnOnce() -> T) -> (T, Option<Vec<String>>) {
            let (out, sent) = self.sent_during(f);
            (out, sent.map(|s| s.writes))
        }

        /// Run `f`, and return with its result what kpin sent meanwhile that the server's
        /// audit log records (every write, dry runs included); `None` without the test
        /// cluster's audit log.
        fn sent_during<T>(&self, f: impl FnOnce() -> T) -> (T, Option<Sent>) {
            let Some(log) = std::env::var_os("KPIN_TEST_CLUSTER_DIR")
                .map(|d| std::path::PathBuf::from(d).join("audit.log"))
            else {
                return (f(), None);
            };
            let start = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
            let out = f();
            // The audit backend writes before the response ends; a moment for the file.
            std::thread::sleep(std::time::Duration::from_millis(200));
            let text = std::fs::read(&log).expect("reading the audit log");
            let mut sent = Sent::default();
            for e in String::from_utf8_lossy(&text[start.min(text.len())..])
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|e| {
                    e["userAgent"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("kpin/"))
                        && self.sent_by_this_test(e)
                })
            {
                let uri = e["requestURI"].as_str().unwrap_or("?");
                let line = format!("{} {uri}", e["verb"].as_str().unwrap_or("?"));
                if uri.contains("dryRun=All") {
                    sent.dry_runs.push(line);
                } else {
                    sent.writes.push(line);
                }
            }
            (out, Some(sent))
        }

        /// Whether an audit event is about this test's objects: other tests share the cluster
        /// (and kpin's user agent) unless this one holds it exclusively. Its namespaces are
        /// `namespace` and `namespace-suffix`; its cluster-scoped objects carry the namespace
        /// in their name (`gizmos.NS.kpin.example.com`, `NS-empty`); a namespace is never a prefix
        /// of another test's (its hash part has one length), and a suffix starts with a letter.
        fn sent_by_this_test(&self, event: &Value) -> bool {
            if matches!(self._hold, Hold::Exclusive(_)) {
                return true;
            }
            let ours = |name: &str| {
                name.strip_prefix(self.namespace.as_str())
                    .is_some_and(|rest| {
                        rest.is_empty()
                            || rest
                                .strip_prefix('-')
                                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_alphabetic()))
                    })
            };
            let object = &event["objectRef"];
            match object["namespace"].as_str() {
                Some(namespace) => ours(namespace),
                None => object["name"]
                    .as_str()
                    .is_none_or(|name| ours(name) || name.split('.').any(ours)),
            }
        }

        /// When the test ends, delete everything the project renders then: releases that
        /// install objects with fixed names outside the test's namespaces.
        fn clean_render_on_drop(&mut self) {
            self.clean_render = true;
        }

        /// The test namespace with `suffix` (`""`, `"-extra"`, `"-prod"`).
        fn ns(&self, suffix: &str) -> String {
            format!("{}{suffix}", self.namespace)
        }

        /// Delete this cluster-scoped object (`kind/name`, `NS` replaced) when the test ends.
        fn cleanup(&self, object: &str) {
            self.cluster_scoped
                .borrow_mut()
                .push(object.replace("NS", &self.namespace));
        }

        fn exists(&self, args: &[&str]) -> bool {
            let mut all: Vec<&str> = vec!["get"];
            all.extend(args);
            all.extend(["--ignore-not-found", "-o", "name"]);
            !self.kubectl(&all).trim().is_empty()
        }

        /// `kubectl get ARGS -o json`: the object, `None` when the cluster has none. Fails the
        /// test when kubectl fails.
        fn get(&self, args: &[&str]) -> Option<Value> {
            let out = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg("get")
                .args(args)
                .args(["--ignore-not-found", "-o", "json"])
                .output()
                .expect("running kubectl");
            assert!(
                out.status.success(),
                "kubectl get {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if out.stdout.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            Some(serde_json::from_slice(&out.stdout).expect("kubectl get -o json"))
        }

        /// Whether the object is gone or going: a Namespace or CRD takes a moment to go after
        /// the DELETE that kpin sends returns.
        fn deleted(&self, args: &[&str]) -> bool {
            self.get(args)
                .is_none_or(|o| o["metadata"]["deletionTimestamp"].is_string())
        }

        /// The annotations of the ApplySet parent `kpin-<package>` in `namespace`.
        fn parent_annotations(&self, package: &str, namespace: &str) -> Value {
            let parent = self
                .get(&["configmap", &format!("kpin-{package}"), "-n", namespace])
                .unwrap_or_else(|| panic!("no ApplySet parent kpin-{package} in {namespace}"));
            parent["metadata"]["annotations"].clone()
        }

        /// `kpin apply` again, which must write nothing: every object unchanged and, with the
        /// audit log, no write reaching the server. Jobs with ttlSecondsAfterFinished in the
        /// applied `text` are the exception: the cluster deletes them once they finished (the
        /// simulated node finishes them at once), and an apply after that creates them again,
        /// as kubectl's would. `what` names the release in failures.
        fn reapply_writes_nothing(&self, what: &str, text: &str) -> Run {
            let (again, writes) = self.writes_during(|| self.kpin(&["apply", "--wait=false"]));
            assert_eq!(again.code, 0, "{what} re-apply: {}", again.transcript());
            let mut rerun = Vec::new();
            for action in ["created", "configured", "recreated", "pruned"] {
                for object in rows(&again.stdout, action) {
                    let ttl_job = action == "created"
                        && object.starts_with("Job ")
                        && text.contains("ttlSecondsAfterFinished");
                    assert!(ttl_job, "{what}: the re-apply {action} {object}");
                    rerun.push(object.rsplit('/').next().unwrap_or_default().to_owned());
                }
            }
            if let Some(writes) = &writes {
                let others: Vec<&String> = writes
                    .iter()
                    .filter(|w| {
                        !rerun
                            .iter()
                            .any(|job| w.contains("/jobs") && w.contains(&format!("/{job}")))
                    })
                    .collect();
                assert_eq!(
                    others,
                    Vec::<&String>::new(),
                    "{what}: writes reached the server"
                );
            }
            again
        }

        /// Delete everything the project renders now, and give the apiserver's admission a
        /// moment to see deleted webhooks go.
        fn delete_rendered(&self) {
            let rendered = expect_code(self.project.run(&["render"]), 0);
            self.kubectl_input(
                &["delete", "--ignore-not-found", "--wait=false", "-f", "-"],
                &rendered.stdout,
            );
            std::thread::sleep(std::time::Duration::from_secs(2));
        }

        /// Write a file of the project, `NS` replaced by the test namespace.
        fn write(&self, rel: &str, text: &str) {
            self.project
                .write(rel, &text.replace("NS", &self.namespace));
        }

        /// Vendor `yaml` (with `NS` replaced by the test namespace) as the package `demo`.
        fn vendor(&self, version: &str, yaml: &str) {
            self.project.write(
                "kpin.yaml",
                &format!(
                    "packages:\n  demo:\n    version: {version}\n    url: https://example.invalid/demo/{{version}}/demo.yaml\n    namespace: {}\n",
                    self.namespace
                ),
            );
            self.write(&format!("vendor/demo/{version}/demo.yaml"), yaml);
        }

        /// From now on, kpin and kubectl use a kubeconfig with the current context of the test
        /// kubeconfig (credentials inlined) under each name of `contexts`, with its default
        /// namespace (`NS` replaced); the first is the current context.
        fn use_contexts(&mut self, contexts: &[(&str, &str)]) {
            let out = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args([
                    "config",
                    "view",
                    "--raw",
                    "--flatten",
                    "--minify",
                    "-o",
                    "json",
                ])
                .output()
                .expect("running kubectl");
            assert!(
                out.status.success(),
                "kubectl config view: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut config: Value =
                serde_json::from_slice(&out.stdout).expect("kubectl config view -o json");
            let current = config["contexts"][0]["context"].clone();
            assert!(current.is_object(), "no current context: {config}");
            config["contexts"] = contexts
                .iter()
                .map(|(name, namespace)| {
                    let mut context = current.clone();
                    context["namespace"] = json!(namespace.replace("NS", &self.namespace));
                    json!({"name": name, "context": context})
                })
                .collect();
            config["current-context"] = json!(contexts[0].0);
            // JSON is YAML: kubectl and kpin read it as a kubeconfig.
            let path = self.project.path().join("kubeconfig");
            std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
            self.kubeconfig = path.display().to_string();
        }

        /// Create namespace `name` (`NS` replaced) with kubectl, as someone before kpin did.
        fn create_namespace(&self, name: &str) {
            self.kubectl_stdin(
                &["apply", "-f", "-"],
                &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"),
            );
        }

        /// Run kpin against the test cluster; an apply waits up to 180 s.
        fn kpin(&self, args: &[&str]) -> Run {
            let mut all = args.to_vec();
            all.extend(["--kubeconfig", &self.kubeconfig]);
            if args.first() == Some(&"apply") {
                all.extend(["--timeout", "180"]);
            }
            self.project.run(&all)
        }

        #[track_caller]
        fn expect(&self, code: i32, args: &[&str]) -> Run {
            expect_code(self.kpin(args), code)
        }

        fn kubectl(&self, args: &[&str]) -> String {
            let out = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args)
                .output()
                .expect("running kubectl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        /// `kubectl ARGS` with `input` on stdin.
        fn kubectl_with_input(&self, args: &[&str], input: &str) -> std::process::Output {
            use std::io::Write as _;
            let mut child = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("running kubectl");
            // kubectl may stop reading early on an error; its output says why.
            let _ = child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes());
            child.wait_with_output().expect("kubectl")
        }

        /// `kubectl ARGS` with `input` on stdin, whatever it answers (cleanups).
        fn kubectl_input(&self, args: &[&str], input: &str) {
            let _ = self.kubectl_with_input(args, input);
        }

        /// `kubectl ARGS` with `input` (`NS` replaced) on stdin; fails the test when kubectl does.
        fn kubectl_stdin(&self, args: &[&str], input: &str) {
            let out = self.kubectl_with_input(args, &input.replace("NS", &self.namespace));
            assert!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    const BASE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: NS
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: NS
data:
  mode: fast
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: NS
stringData:
  password: old-password
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: NS
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: pause
        image: registry.k8s.io/pause:3.10
";

    const LEGACY: &str = "---
apiVersion: v1
kind: ConfigMap
metadata:
  name: legacy
  namespace: NS
data:
  old: 'true'
";

    #[test]
    fn real_apply_reapply_diff_and_prune() {
        let Some(r) = Real::new("real_apply_reapply_diff_and_prune") else {
            return;
        };
        r.vendor("1.0.0", &format!("{BASE}{LEGACY}"));
        r.expect(0, &["apply"]);
        let again = r.expect(0, &["apply"]);
        assert_contains(&again.stdout, "5 unchanged");
        r.expect(0, &["diff"]);

        r.vendor("1.1.0", &BASE.replace("old-password", "new-password"));
        let diff = r.expect(1, &["diff"]);
        assert_contains(&diff.stdout, "*** (after)");
        assert!(
            !diff.stdout.contains("bmV3LXBhc3N3b3Jk") && !diff.stdout.contains("new-password"),
            "{}",
            diff.stdout
        );
        let pruned = r.expect(0, &["apply", "--prune"]);
        assert!(
            pruned
                .stdout
                .lines()
                .any(|l| l.contains("pruned") && l.contains("/legacy")),
            "{}",
            pruned.stdout
        );
        assert_eq!(
            r.kubectl(&[
                "get",
                "configmap",
                "legacy",
                "-n",
                &r.namespace,
                "--ignore-not-found",
                "-o",
                "name"
            ]),
            ""
        );
    }

    #[test]
    fn real_conflict_immutable_and_csa_migration() {
        let Some(r) = Real::new("real_conflict_immutable_and_csa_migration") else {
            return;
        };
        r.vendor("1.0.0", BASE);
        // Client-side kubectl apply first, with a key upstream later dropped.
        r.kubectl_stdin(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NS\n",
        );
        r.kubectl_stdin(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: NS\ndata:\n  mode: fast\n  dropped: x\n",
        );
        r.expect(0, &["apply"]);
        let data = r.kubectl(&[
            "get",
            "configmap",
            "settings",
            "-n",
            &r.namespace,
            "-o",
            "jsonpath={.data}",
        ]);
        assert!(!data.contains("dropped"), "{data}");

        // Another manager takes a field.
        r.kubectl_stdin(
            &["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: NS\ndata:\n  mode: manual\n",
        );
        let run = r.expect(1, &["apply"]);
        assert_contains(&run.stdout, "conflict");
        r.expect(0, &["apply", "--force-conflicts"]);

        // An immutable selector change.
        r.vendor("1.1.0", &BASE.replace("app: web", "app: web2"));
        let run = r.expect(1, &["apply"]);
        assert_contains(&run.stdout, "immutable");
        let run = r.expect(0, &["apply", "--recreate"]);
        assert_contains(&run.stdout, "recreated");
    }

    /// Cluster-scoped objects and more Services than kpin's LIST threshold: what a real server
    /// lists without `kind` on its items.
    fn wide(extra_services: usize) -> String {
        let mut text = format!(
            "{BASE}---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: NS-reader
rules:
- apiGroups: ['']
  resources: [configmaps]
  verbs: [get]
"
        );
        for i in 0..extra_services {
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: NS\n\
                 spec:\n  selector: {{app: web}}\n  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n"
            ));
        }
        text
    }

    #[test]
    fn real_prune_with_nothing_removed_deletes_nothing() {
        let Some(r) = Real::new("real_prune_with_nothing_removed_deletes_nothing") else {
            return;
        };
        r.cleanup("clusterrole/NS-reader");
        r.vendor("1.0.0", &wide(6));
        r.expect(0, &["apply", "--wait=false"]);
        // A diff right after an apply is clean, and names nothing to prune.
        let diff = r.expect(0, &["diff"]);
        assert_eq!(diff.stdout, "");
        let again = r.expect(0, &["apply", "--prune", "--wait=false"]);
        assert!(!again.stdout.contains("pruned"), "{}", again.stdout);
        assert!(
            !again.stdout.contains("configured"),
            "an unchanged re-apply (Services read by LIST) changes nothing: {}",
            again.stdout
        );
        assert!(r.exists(&["clusterrole", &format!("{}-reader", r.namespace)]));
        assert!(r.exists(&["namespace", &r.namespace]));
        assert!(r.exists(&["service", "svc-5", "-n", &r.namespace]));
    }

    #[test]
    fn real_mass_prune_is_refused_and_crds_are_kept_unless_named() {
        let Some(r) = Real::new("real_mass_prune_is_refused_and_crds_are_kept_unless_named") else {
            return;
        };
        r.cleanup("customresourcedefinition/widgets.NS.kpin.example.com");
        let configmaps: String = (0..8)
            .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n  namespace: NS\n"))
            .collect();
        r.vendor(
            "1.0.0",
            &format!("{NAMESPACE}{}{configmaps}", crd("Widget")),
        );
        r.expect(0, &["apply", "--wait=false"]);

        // One ConfigMap left: deleting 7 of 10 is refused before anything is written.
        r.vendor(
            "1.1.0",
            &format!("{NAMESPACE}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c0\n  namespace: NS\n"),
        );
        let refused = r.expect(2, &["apply", "--prune", "--wait=false"]);
        assert_contains(
            &refused.stderr,
            "package demo: --prune would delete 7 of the 10 objects in the cluster that it applied before:",
        );
        assert_contains(&refused.stderr, &format!("  ConfigMap {}/c7", r.namespace));
        assert_contains(
            &refused.stderr,
            "hint: check that the render is what you meant",
        );
        assert!(r.exists(&["configmap", "c7", "-n", &r.namespace]));
        let diff = r.expect(1, &["diff"]);
        assert_contains(&diff.stdout, "would refuse to delete 7 of the 10 objects");

        let run = r.expect(
            0,
            &["apply", "--prune", "--allow-mass-prune", "--wait=false"],
        );
        assert_contains(&run.stdout, "7 pruned");
        assert_contains(&run.stdout, "kept");
        let crd_name = format!("widgets.{}.kpin.example.com", r.namespace);
        assert!(
            r.exists(&["customresourcedefinition", &crd_name]),
            "kept without --prune-allow"
        );
        r.expect(
            0,
            &[
                "apply",
                "--prune",
                "--prune-allow",
                "CustomResourceDefinition",
                "--wait=false",
            ],
        );
        assert!(r.deleted(&["customresourcedefinition", &crd_name]));
    }

    #[test]
    fn real_a_package_uses_the_crds_of_another() {
        let Some(r) = Real::new("real_a_package_uses_the_crds_of_another") else {
            return;
        };
        r.monitored();
        let run = r.expect(0, &["apply", "--dry-run"]);
        assert_row(
            &run.stdout,
            "created",
            &format!("ServiceMonitor {}/controller", r.namespace),
        );
        let diff = r.expect(1, &["diff"]);
        assert_contains(
            &diff.stdout,
            &format!("+ ServiceMonitor {}/controller", r.namespace),
        );
        assert!(
            !r.exists(&["namespace", &r.namespace]),
            "a dry run creates nothing"
        );
        r.expect(0, &["apply", "--wait=false"]);
        r.expect(0, &["diff"]);
        assert!(r.exists(&[
            &format!("servicemonitors.{}.kpin.example.com", r.namespace),
            "controller",
            "-n",
            &r.namespace
        ]));
    }

    #[test]
    fn real_wait_times_out_on_an_image_that_never_starts() {
        let Some(r) = Real::new("real_wait_times_out_on_an_image_that_never_starts") else {
            return;
        };
        r.vendor(
            "1.0.0",
            &BASE.replace("registry.k8s.io/pause:3.10", "registry.invalid/none:0"),
        );
        let run = expect_code(
            r.project
                .run(&["apply", "--timeout", "20", "--kubeconfig", &r.kubeconfig]),
            1,
        );
        assert_contains(&run.stdout, "not ready");
    }

    // Single documents, `NS` standing for the test namespace; all but NAMESPACE start with `---`.

    const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NS\n";

    const SETTINGS: &str = "---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: NS
data:
  mode: fast
";

    const KEEPME: &str = "---
apiVersion: v1
kind: ConfigMap
metadata:
  name: keepme
  namespace: NS
  annotations: {kpin.dev/prune: keep}
";

    const CLUSTER_ROLE: &str = "---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: NS-reader
rules:
- apiGroups: ['']
  resources: [configmaps]
  verbs: [get]
";

    /// A CRD of `kind` in a group of the test's own, so that tests do not share it.
    fn crd(kind: &str) -> String {
        let singular = kind.to_lowercase();
        format!(
            "---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {singular}s.NS.kpin.example.com
spec:
  group: NS.kpin.example.com
  names: {{kind: {kind}, plural: {singular}s, singular: {singular}, listKind: {kind}List}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"
        )
    }

    const WIDGET: &str = "---
apiVersion: NS.kpin.example.com/v1
kind: Widget
metadata:
  name: gadget
  namespace: NS
spec:
  size: 3
";

    const WEBHOOK: &str = "---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: NS-webhook
webhooks: []
";

    /// kpin.yaml of `super::MONITORED` in the test namespaces: `ingress` (in `NS`) adds a
    /// ServiceMonitor with an overlay, whose CRD comes from `monitoring` (in `NS-extra`).
    const MONITORED: &str = "\
packages:
  ingress:
    version: 1.0.0
    url: https://example.invalid/ingress-{version}.yaml
    namespace: NS
    overlays: [overlays/ingress.yaml]
  monitoring:
    version: 1.0.0
    url: https://example.invalid/monitoring-{version}.yaml
    namespace: NS-extra
";

    /// A release of `web` as in tests/it/environments.rs, without namespaces: each
    /// environment's objects (and ApplySet parent) go to its context's namespace.
    fn release(mode: &str, pause: &str) -> String {
        format!(
            "\
apiVersion: v1
kind: ConfigMap
metadata: {{name: web-settings}}
data: {{mode: {mode}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/pause:{pause}
"
        )
    }

    /// The matrix part of `kpin status` output (up to the details).
    fn matrix(run: &Run) -> String {
        run.stdout
            .split_inclusive('\n')
            .take_while(|l| *l != "\n")
            .collect()
    }

    impl Real {
        /// The two packages of `MONITORED`, vendored.
        fn monitored(&self) {
            self.cleanup("customresourcedefinition/servicemonitors.NS.kpin.example.com");
            self.write("kpin.yaml", MONITORED);
            self.write(
                "vendor/ingress/1.0.0/ingress.yaml",
                &format!("{NAMESPACE}{SETTINGS}"),
            );
            self.write(
                "vendor/monitoring/1.0.0/monitoring.yaml",
                &format!(
                    "{}{}",
                    NAMESPACE.replace("NS", "NS-extra"),
                    crd("ServiceMonitor")
                ),
            );
            self.write(
                "overlays/ingress.yaml",
                "operations:\n- add: {files: [servicemonitor.yaml]}\n",
            );
            self.write(
                "overlays/servicemonitor.yaml",
                "apiVersion: NS.kpin.example.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: controller\n\
                 spec:\n  endpoints: [{port: metrics}]\n  selector: {matchLabels: {app: ingress}}\n",
            );
        }

        /// The project of tests/it/environments.rs against the test cluster: `web` 1.0.0,
        /// 1.1.0 in dev (`kpin upgrade --env dev`), locked. dev, qa and prod are contexts of
        /// the test cluster in namespaces `NS`, `NS-extra` and `NS-prod`, created here.
        fn environments(&mut self) {
            self.cleanup("namespace/NS-prod");
            for ns in ["NS", "NS-extra", "NS-prod"] {
                self.create_namespace(ns);
            }
            self.use_contexts(&[
                ("dev-admin", "NS"),
                ("qa-admin", "NS-extra"),
                ("prod-admin", "NS-prod"),
            ]);
            let p = &self.project;
            p.write("kpin.yaml", crate::environments::MANIFEST)
                .write("overlays/prod.yaml", crate::environments::PROD_OVERLAY)
                .write("mirror/web/1.0.0/web.yaml", &release("classic", "3.9"))
                .write("mirror/web/1.1.0/web.yaml", &release("modern", "3.10"));
            expect_code(p.run(&["sync"]), 0);
            expect_code(
                p.run(&["upgrade", "web", "--env", "dev", "--to", "1.1.0"]),
                0,
            );
        }

        /// The image of Deployment `web` in `namespace`.
        fn image(&self, namespace: &str) -> String {
            let web = self
                .get(&["deployment", "web", "-n", namespace])
                .expect("web is deployed");
            web["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }

        /// The resourceVersion of an object: it moves with every write.
        fn resource_version(&self, args: &[&str]) -> Value {
            self.get(args)
                .unwrap_or_else(|| panic!("{args:?} exists"))["metadata"]["resourceVersion"]
                .clone()
        }
    }

    #[test]
    fn real_first_apply_creates_every_stage_and_records_the_applyset() {
        let Some(r) = Real::new("real_first_apply_creates_every_stage_and_records_the_applyset")
        else {
            return;
        };
        r.cleanup("customresourcedefinition/widgets.NS.kpin.example.com");
        r.cleanup("clusterrole/NS-reader");
        r.cleanup("validatingwebhookconfiguration/NS-webhook");
        // The webhook and the custom resource come first in the file: kpin's stages apply the
        // CRD, waits until it is established, and the webhook last.
        r.vendor(
            "1.0.0",
            &format!(
                "{WEBHOOK}{WIDGET}---\n{BASE}{}{CLUSTER_ROLE}",
                crd("Widget")
            ),
        );
        let run = r.expect(0, &["apply"]);
        for object in [
            "CustomResourceDefinition widgets.NS.kpin.example.com",
            "Namespace NS",
            "ClusterRole NS-reader",
            "ConfigMap NS/settings",
            "Secret NS/creds",
            "Deployment NS/web",
            "Widget NS/gadget",
            "ValidatingWebhookConfiguration NS-webhook",
        ] {
            assert_row(&run.stdout, "created", &object.replace("NS", &r.namespace));
        }
        assert_contains(&run.stdout, "\n8 created\n");

        // Applied by kpin's field manager, labelled as members of the parent's ApplySet.
        let ns = r.namespace.as_str();
        let settings = r
            .get(&["configmap", "settings", "-n", ns, "--show-managed-fields"])
            .expect("applied");
        let managers: Vec<&str> = settings["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert_eq!(managers, ["kpin"], "{settings}");
        let part_of = settings["metadata"]["labels"]["applyset.kubernetes.io/part-of"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(part_of.starts_with("applyset-"), "{settings}");
        let parent = r
            .get(&["configmap", "kpin-demo", "-n", ns])
            .expect("ApplySet parent");
        assert_eq!(
            parent["metadata"]["labels"]["applyset.kubernetes.io/id"],
            part_of.as_str()
        );
        let annotations = &parent["metadata"]["annotations"];
        assert_eq!(
            annotations["applyset.kubernetes.io/tooling"],
            format!("kpin/{}", kpin::VERSION)
        );
        assert_eq!(
            annotations["applyset.kubernetes.io/contains-group-kinds"],
            format!(
                "ClusterRole.rbac.authorization.k8s.io,ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,\
                 Deployment.apps,Namespace,Secret,ValidatingWebhookConfiguration.admissionregistration.k8s.io,\
                 Widget.{ns}.kpin.example.com"
            )
        );
        assert_eq!(
            annotations["applyset.kubernetes.io/additional-namespaces"],
            ""
        );
        assert_eq!(annotations["kpin.dev/version"], "1.0.0");
        assert_eq!(annotations["kpin.dev/environment"], "default");
        assert!(
            annotations["kpin.dev/rendered-digest"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:")),
            "{annotations}"
        );

        // An unchanged re-apply writes nothing, the parent included.
        let widgets = format!("widgets.{ns}.kpin.example.com");
        let written = || {
            (
                r.resource_version(&["configmap", "kpin-demo", "-n", ns]),
                r.resource_version(&["configmap", "settings", "-n", ns]),
                r.resource_version(&[&widgets, "gadget", "-n", ns]),
            )
        };
        let before = written();
        let again = r.expect(0, &["apply"]);
        assert_contains(&again.stdout, "\n8 unchanged\n");
        assert_eq!(written(), before, "an unchanged re-apply writes nothing");
        let diff = r.expect(0, &["diff"]);
        assert_eq!(diff.stdout, "");
    }

    #[test]
    fn real_dry_run_creates_nothing_and_diff_lists_creations_changes_and_removals() {
        let Some(r) =
            Real::new("real_dry_run_creates_nothing_and_diff_lists_creations_changes_and_removals")
        else {
            return;
        };
        let ns = r.namespace.clone();
        r.cleanup("clusterrole/NS-reader");
        r.vendor("1.0.0", &format!("{BASE}{LEGACY}"));
        let secrets = |text: &str| {
            [
                "old-password",
                "b2xkLXBhc3N3b3Jk",
                "new-password",
                "bmV3LXBhc3N3b3Jk",
            ]
            .iter()
            .any(|s| text.contains(s))
        };

        // Nothing deployed yet: the diff lists every object as a creation.
        let diff = r.expect(1, &["diff"]);
        for object in [
            "Namespace NS",
            "ConfigMap NS/settings",
            "Secret NS/creds",
            "Deployment NS/web",
            "ConfigMap NS/legacy",
        ] {
            assert_contains(
                &diff.stdout,
                &format!("  + {}\n", object.replace("NS", &ns)),
            );
        }
        assert!(!secrets(&diff.stdout), "{}", diff.stdout);

        // A dry run reports the same and creates nothing.
        let dry = r.expect(0, &["apply", "--dry-run"]);
        assert_contains(&dry.stdout, "dry run: 5 created");
        assert!(!r.exists(&["namespace", &ns]), "a dry run creates nothing");
        r.expect(1, &["diff"]);

        r.expect(0, &["apply", "--wait=false"]);
        let clean = r.expect(0, &["diff"]);
        assert_eq!(clean.stdout, "");

        // 1.1.0 adds a ClusterRole, changes the ConfigMap and the Secret, drops `legacy`.
        r.vendor(
            "1.1.0",
            &format!(
                "{}{CLUSTER_ROLE}",
                BASE.replace("mode: fast", "mode: slow")
                    .replace("old-password", "new-password")
            ),
        );
        let diff = r.expect(1, &["diff"]);
        assert!(
            diff.stdout
                .starts_with("demo 1.0.0 -> 1.1.0 (1 added, 2 changed, 1 removed, 2 unchanged)\n"),
            "{}",
            diff.stdout
        );
        assert_contains(
            &diff.stdout,
            &format!(
                "  warning: 1 object(s) no longer rendered; `kpin apply --prune` would delete them: ConfigMap {ns}/legacy\n"
            ),
        );
        for line in [
            "  + ClusterRole NS-reader\n",
            "  ~ Secret NS/creds\n",
            "  - ConfigMap NS/legacy\n",
            "  ~ ConfigMap NS/settings\n",
            "    -  mode: fast\n",
            "    +  mode: slow\n",
            "    +  password: \"*** (after)\"\n",
        ] {
            assert_contains(&diff.stdout, &line.replace("NS", &ns));
        }
        assert!(!secrets(&diff.stdout), "{}", diff.stdout);
        assert!(
            !r.exists(&["clusterrole", &format!("{ns}-reader")]),
            "diff creates nothing"
        );
        assert!(r.exists(&["configmap", "legacy", "-n", &ns]), "nor deletes");

        let shown = r.expect(1, &["diff", "--show-secrets"]);
        assert!(
            shown.stdout.contains("bmV3LXBhc3N3b3Jk") || shown.stdout.contains("new-password"),
            "{}",
            shown.stdout
        );

        let context = r.kubectl(&["config", "current-context"]).trim().to_owned();
        let md = r.expect(1, &["diff", "--output", "markdown"]);
        assert!(
            md.stdout
                .starts_with(&format!("## kpin diff against context `{context}`\n")),
            "{}",
            md.stdout
        );
        assert_contains(&md.stdout, "| `demo` | 1.0.0 → 1.1.0 | 1 | 2 | 1 | 2 |");
        assert!(!secrets(&md.stdout), "{}", md.stdout);
        let json = r.expect(1, &["diff", "--output", "json"]);
        assert!(!secrets(&json.stdout), "{}", json.stdout);
        let v: Value = serde_json::from_str(&json.stdout).expect("json");
        assert_eq!(v["changed"], true);
        assert_eq!(v["target"]["context"], context.as_str());
        assert_eq!(
            v["sections"][0]["objects"].as_array().map(Vec::len),
            Some(4)
        );
        assert_eq!(v["sections"][0]["summary"]["unchanged"], 2);
    }

    #[test]
    fn real_refusals_before_any_request_create_nothing() {
        let Some(mut r) = Real::new("real_refusals_before_any_request_create_nothing") else {
            return;
        };
        let ns = r.namespace.clone();
        // A field the API schemas do not know: refused before anything is sent.
        r.vendor("1.0.0", &BASE.replace("  replicas: 1\n", "  replica: 1\n"));
        for command in ["apply", "diff"] {
            let run = r.expect(2, &[command]);
            assert_contains(&run.stderr, "spec.replica: unknown field `replica`");
            assert_contains(&run.stderr, "nothing was sent to the cluster");
        }
        // YAML that does not parse, an environment kpin.yaml does not declare.
        r.vendor(
            "1.0.0",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n",
        );
        r.expect(2, &["apply"]);
        r.vendor("1.0.0", BASE);
        let run = r.expect(2, &["apply", "--env", "staging"]);
        assert_contains(&run.stderr, "no environment `staging`");
        assert!(!r.exists(&["namespace", &ns]), "nothing was created");

        // An environment names its context: another --context is refused, and without one
        // the environment's is used.
        r.use_contexts(&[("it", "NS"), ("other", "NS")]);
        let manifest = r.project.read("kpin.yaml");
        r.project.write(
            "kpin.yaml",
            &format!("environments:\n  prod:\n    context: other\n{manifest}"),
        );
        let run = r.expect(2, &["apply", "--env", "prod", "--context", "it"]);
        assert_contains(
            &run.stderr,
            "environment prod uses context other, but --context it was given",
        );
        assert!(!r.exists(&["namespace", &ns]), "nothing was created");
        let run = r.expect(0, &["apply", "--env", "prod", "--dry-run"]);
        assert_contains(&run.stderr, "Target context other (");
        assert_contains(&run.stdout, "dry run: 4 created");
        assert!(!r.exists(&["namespace", &ns]), "a dry run creates nothing");
    }

    #[test]
    fn real_upgrade_with_prune_deletes_removed_objects_but_keeps_marked_ones() {
        let Some(r) =
            Real::new("real_upgrade_with_prune_deletes_removed_objects_but_keeps_marked_ones")
        else {
            return;
        };
        let ns = r.namespace.clone();
        r.cleanup("customresourcedefinition/widgets.NS.kpin.example.com");
        let crd_name = format!("widgets.{ns}.kpin.example.com");
        r.vendor(
            "1.0.0",
            &format!(
                "{NAMESPACE}{}{SETTINGS}{LEGACY}{KEEPME}{WIDGET}",
                crd("Widget")
            ),
        );
        r.expect(0, &["apply", "--wait=false"]);
        r.vendor("1.1.0", &format!("{NAMESPACE}{SETTINGS}"));

        // Without --prune, removed objects stay.
        r.expect(0, &["apply", "--wait=false"]);
        assert!(r.exists(&["configmap", "legacy", "-n", &ns]));

        // The live diff lists what --prune would delete and names what it keeps, and why.
        let diff = r.expect(1, &["diff"]);
        let listed: Vec<&str> = diff
            .stdout
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
            .collect();
        assert_eq!(
            listed,
            [
                format!(
                    "  no longer rendered, kept by `kpin apply --prune`: ConfigMap {ns}/keepme (kpin.dev/prune: keep)"
                ),
                format!(
                    "  no longer rendered, kept by `kpin apply --prune`: CustomResourceDefinition {crd_name} \
                     (deleting a CustomResourceDefinition deletes every custom resource of its kind in the cluster; \
                     pass --prune-allow with its kind to delete it)"
                ),
                format!(
                    "  warning: 2 object(s) no longer rendered; `kpin apply --prune` would delete them: \
                     ConfigMap {ns}/legacy, Widget {ns}/gadget"
                ),
                format!("  - ConfigMap {ns}/legacy"),
                format!("  - Widget {ns}/gadget"),
            ],
            "{}",
            diff.stdout
        );
        let allowed = r.expect(1, &["diff", "--prune-allow", "CustomResourceDefinition"]);
        assert_contains(
            &allowed.stdout,
            &format!("  - CustomResourceDefinition {crd_name}\n"),
        );

        // A dry run reports the same prune and deletes nothing.
        let dry = r.expect(0, &["apply", "--prune", "--dry-run"]);
        assert_contains(&dry.stdout, "dry run: 2 unchanged, 2 pruned, 2 kept");
        assert!(r.exists(&["configmap", "legacy", "-n", &ns]));
        assert!(!r.deleted(&[&crd_name, "gadget", "-n", &ns]));

        let run = r.expect(0, &["apply", "--prune", "--wait=false"]);
        assert_row(&run.stdout, "pruned", &format!("ConfigMap {ns}/legacy"));
        assert_row(&run.stdout, "pruned", &format!("Widget {ns}/gadget"));
        assert_row(&run.stdout, "kept", &format!("ConfigMap {ns}/keepme"));
        assert_row(
            &run.stdout,
            "kept",
            &format!("CustomResourceDefinition {crd_name}"),
        );
        assert_contains(&run.stdout, "\n2 unchanged, 2 pruned, 2 kept\n");
        assert!(!r.exists(&["configmap", "legacy", "-n", &ns]));
        assert!(r.deleted(&[&crd_name, "gadget", "-n", &ns]));
        assert!(r.exists(&["configmap", "keepme", "-n", &ns]));
        assert!(
            !r.deleted(&["customresourcedefinition", &crd_name]),
            "kept without --prune-allow"
        );
        // The parent still records the kept kinds, so a later prune finds them again.
        let recorded = || {
            r.parent_annotations("demo", &ns)["applyset.kubernetes.io/contains-group-kinds"].clone()
        };
        assert_eq!(
            recorded(),
            "ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,Namespace"
        );
        // What is kept is no change: the diff after the prune is clean.
        let clean = r.expect(0, &["diff"]);
        assert_eq!(clean.stdout, "");

        let run = r.expect(
            0,
            &[
                "apply",
                "--prune",
                "--prune-allow",
                "CustomResourceDefinition",
                "--wait=false",
            ],
        );
        assert_row(
            &run.stdout,
            "pruned",
            &format!("CustomResourceDefinition {crd_name}"),
        );
        assert!(r.deleted(&["customresourcedefinition", &crd_name]));
        assert!(r.exists(&["configmap", "keepme", "-n", &ns]), "still kept");
        assert_eq!(recorded(), "ConfigMap,Namespace");
        let clean = r.expect(0, &["diff"]);
        assert_eq!(clean.stdout, "");
    }

    #[test]
    fn real_a_namespace_is_pruned_only_when_named() {
        let Some(mut r) = Real::new("real_a_namespace_is_pruned_only_when_named") else {
            return;
        };
        let extra = r.ns("-extra");
        // Without the `namespace:` shorthand, which would move the second Namespace into the
        // first: the parent lives in the namespace of the context.
        r.use_contexts(&[("it", "NS")]);
        r.write(
            "kpin.yaml",
            "packages:\n  demo:\n    version: 1.0.0\n    url: https://example.invalid/demo/{version}/demo.yaml\n",
        );
        let second = "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: NS-extra\n";
        r.write(
            "vendor/demo/1.0.0/demo.yaml",
            &format!("{NAMESPACE}{second}{SETTINGS}"),
        );
        r.expect(0, &["apply", "--wait=false"]);
        assert!(!r.deleted(&["namespace", &extra]));
        assert!(r.exists(&["configmap", "kpin-demo", "-n", &r.namespace]));

        r.write(
            "vendor/demo/1.0.0/demo.yaml",
            &format!("{NAMESPACE}{SETTINGS}"),
        );
        let run = r.expect(0, &["apply", "--prune", "--wait=false"]);
        assert_row(&run.stdout, "kept", &format!("Namespace {extra}"));
        assert_contains(&run.stdout, "deleting a Namespace deletes everything in it");
        assert!(!r.deleted(&["namespace", &extra]), "kept");

        let run = r.expect(
            0,
            &[
                "apply",
                "--prune",
                "--prune-allow",
                "Namespace",
                "--wait=false",
            ],
        );
        assert_row(&run.stdout, "pruned", &format!("Namespace {extra}"));
        assert!(r.deleted(&["namespace", &extra]));
        assert!(
            !r.deleted(&["namespace", &r.namespace]),
            "the rendered Namespace stays"
        );
    }

    #[test]
    fn real_prune_refuses_an_empty_package() {
        let Some(r) = Real::new("real_prune_refuses_an_empty_package") else {
            return;
        };
        let ns = r.namespace.clone();
        r.vendor("1.0.0", &format!("{NAMESPACE}{SETTINGS}"));
        r.expect(0, &["apply", "--wait=false"]);
        r.vendor("2.0.0", "");
        let run = r.expect(2, &["apply", "--prune", "--wait=false"]);
        assert_contains(&run.stderr, "renders no objects");
        assert!(r.exists(&["configmap", "settings", "-n", &ns]));
        assert!(!r.deleted(&["namespace", &ns]));
    }

    #[test]
    fn real_a_parent_of_other_tooling_is_refused() {
        let Some(r) = Real::new("real_a_parent_of_other_tooling_is_refused") else {
            return;
        };
        let ns = r.namespace.clone();
        r.kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--field-manager=other-tool",
                "-f",
                "-",
            ],
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NS\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kpin-demo\n  namespace: NS\n  \
             annotations:\n    applyset.kubernetes.io/tooling: kubectl/v1.32.0\n",
        );
        r.vendor("1.0.0", &format!("{NAMESPACE}{SETTINGS}"));
        let run = r.expect(2, &["apply", "--wait=false"]);
        assert_contains(&run.stderr, "is managed by kubectl/v1.32.0, not kpin");
        assert!(!r.exists(&["configmap", "settings", "-n", &ns]));
        let annotations = r.parent_annotations("demo", &ns);
        assert_eq!(
            annotations["applyset.kubernetes.io/tooling"],
            "kubectl/v1.32.0"
        );
        assert!(
            annotations
                .get("applyset.kubernetes.io/contains-group-kinds")
                .is_none(),
            "{annotations}"
        );
    }

    #[test]
    fn real_a_missing_package_namespace_is_reported_with_a_hint() {
        let Some(r) = Real::new("real_a_missing_package_namespace_is_reported_with_a_hint") else {
            return;
        };
        let ns = r.namespace.clone();
        r.vendor("1.0.0", SETTINGS);
        let run = r.expect(2, &["apply"]);
        assert_contains(&run.stderr, &format!("namespace {ns} does not exist"));
        assert_contains(&run.stderr, "hint: create it first");
        assert!(!r.exists(&["namespace", &ns]));
    }

    #[test]
    fn real_immutable_changes_are_flagged_and_the_recreate_annotation_recreates() {
        let Some(r) =
            Real::new("real_immutable_changes_are_flagged_and_the_recreate_annotation_recreates")
        else {
            return;
        };
        let ns = r.namespace.clone();
        let selector = || {
            r.get(&["deployment", "web", "-n", &ns]).expect("web")["spec"]["selector"]
                ["matchLabels"]["app"]
                .clone()
        };
        r.vendor("1.0.0", BASE);
        r.expect(0, &["apply", "--wait=false"]);

        // The diff shows the change and warns that apply needs --recreate, instead of failing.
        r.vendor("1.1.0", &BASE.replace("app: web", "app: web2"));
        let diff = r.expect(1, &["diff"]);
        assert_contains(
            &diff.stdout,
            &format!(
                "warning: apply needs `--recreate` (or the annotation kpin.dev/recreate: \"true\"): \
                 immutable fields change in Deployment {ns}/web (spec.selector)"
            ),
        );
        assert_contains(&diff.stdout, "+        app: web2");
        let run = r.expect(1, &["apply", "--wait=false"]);
        assert_contains(
            &run.stdout,
            &format!(
                "demo Deployment {ns}/web (failed): spec.selector: field is immutable\n  hint: pass --recreate"
            ),
        );
        assert!(!run.stdout.contains("Invalid value"), "{}", run.stdout);
        let verbose = r.expect(1, &["apply", "-v", "--wait=false"]);
        assert_contains(
            &verbose.stdout,
            "server said: Deployment.apps \"web\" is invalid",
        );
        assert_eq!(selector(), "web");

        // The annotation lets apply recreate it without the flag.
        let annotated = BASE.replace("app: web", "app: web2").replace(
            "  name: web\n  namespace: NS\nspec:",
            "  name: web\n  namespace: NS\n  annotations: {kpin.dev/recreate: 'true'}\nspec:",
        );
        assert!(annotated.contains("kpin.dev/recreate"));
        r.vendor("1.2.0", &annotated);
        let dry = r.expect(0, &["apply", "--dry-run"]);
        assert_contains(&dry.stdout, "would delete and re-create");
        assert_eq!(selector(), "web", "a dry run recreates nothing");
        let run = r.expect(0, &["apply", "--wait=false"]);
        assert_row(&run.stdout, "recreated", &format!("Deployment {ns}/web"));
        assert_eq!(selector(), "web2");
        r.expect(0, &["diff"]);
    }

    #[test]
    fn real_needs_orders_packages_and_a_cycle_is_an_error() {
        let Some(r) = Real::new("real_needs_orders_packages_and_a_cycle_is_an_error") else {
            return;
        };
        r.monitored();
        let (ingress_ns, monitoring_ns) = (r.ns(""), r.ns("-extra"));
        let needs = |ingress: bool, monitoring: bool| {
            let mut manifest = MONITORED.to_owned();
            if ingress {
                manifest = manifest.replace(
                    "    namespace: NS\n",
                    "    namespace: NS\n    needs: [monitoring]\n",
                );
            }
            if monitoring {
                manifest = manifest.replace(
                    "    namespace: NS-extra\n",
                    "    namespace: NS-extra\n    needs: [ingress]\n",
                );
            }
            r.write("kpin.yaml", &manifest);
        };

        // A cycle is refused before anything is sent.
        needs(true, true);
        let run = r.expect(2, &["apply", "--wait=false"]);
        assert_contains(
            &run.stderr,
            "packages need each other in a cycle: ingress -> monitoring -> ingress",
        );
        assert!(!r.exists(&["namespace", &ingress_ns]));
        assert!(!r.exists(&["namespace", &monitoring_ns]));

        // `monitoring` sorts after `ingress`, but ingress needs it: it is applied first.
        needs(true, false);
        let run = r.expect(0, &["apply", "--wait=false"]);
        let applying: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.trim_start().starts_with("Applying") && l.contains("1.0.0"))
            .collect();
        assert_eq!(applying.len(), 2, "{}", run.stderr);
        assert!(applying[0].contains("monitoring"), "{applying:?}");
        assert!(applying[1].contains("ingress"), "{applying:?}");
        assert!(r.exists(&["configmap", "settings", "-n", &ingress_ns]));
        assert!(r.exists(&[
            &format!("servicemonitors.{}.kpin.example.com", r.namespace),
            "controller",
            "-n",
            &ingress_ns
        ]));
        r.expect(0, &["diff"]);
    }

    #[test]
    fn real_each_environment_applies_its_own_version_and_its_parent_records_it() {
        let Some(mut r) =
            Real::new("real_each_environment_applies_its_own_version_and_its_parent_records_it")
        else {
            return;
        };
        r.environments();
        let (dev, qa, prod) = (r.ns(""), r.ns("-extra"), r.ns("-prod"));
        for env in ["dev", "qa", "prod"] {
            let run = r.expect(0, &["apply", "--env", env, "--locked", "--wait=false"]);
            assert_contains(&run.stderr, &format!("Target context {env}-admin"));
        }
        assert_eq!(r.image(&dev), "registry.k8s.io/pause:3.10");
        assert_eq!(r.image(&qa), "registry.k8s.io/pause:3.9");
        assert_eq!(r.image(&prod), "registry.k8s.io/pause:3.9");
        let replicas = |ns: &str| {
            r.get(&["deployment", "web", "-n", ns]).expect("web")["spec"]["replicas"].clone()
        };
        assert_eq!((replicas(&qa), replicas(&prod)), (json!(1), json!(3)));

        // Each parent says what runs there: the version, the environment and the lock's digest.
        let locked = kpin::vendoring::lockfile::Lockfile::load(&r.project.path().join("kpin.lock"))
            .unwrap()
            .expect("kpin.lock");
        for (env, ns, version) in [("dev", &dev, "1.1.0"), ("prod", &prod, "1.0.0")] {
            let annotations = r.parent_annotations("web", ns);
            crate::environments::assert_parent_records(&annotations, env, version, &locked);
        }
        // An unchanged re-apply writes nothing, the parent included.
        let written = || {
            (
                r.resource_version(&["configmap", "kpin-web", "-n", &dev]),
                r.resource_version(&["configmap", "web-settings", "-n", &dev]),
            )
        };
        let before = written();
        let again = r.expect(0, &["apply", "--env", "dev", "--wait=false"]);
        assert!(
            !again.stdout.contains("configured") && !again.stdout.contains("created"),
            "{}",
            again.stdout
        );
        assert_eq!(written(), before, "an unchanged re-apply writes nothing");

        // The live diff names the deployed version on the cluster's side.
        expect_code(r.project.run(&["promote", "web", "--to", "qa"]), 0);
        let diff = r.expect(1, &["diff", "--env", "qa"]);
        assert_contains(&diff.stdout, "web 1.0.0 -> 1.1.0 (0 added, 2 changed");
        assert_eq!(
            r.image(&qa),
            "registry.k8s.io/pause:3.9",
            "diff changes nothing"
        );
    }

    #[test]
    fn real_status_shows_what_runs_where() {
        let Some(mut r) = Real::new("real_status_shows_what_runs_where") else {
            return;
        };
        r.environments();
        let qa = r.ns("-extra");
        r.expect(0, &["apply", "--env", "dev", "--wait=false"]);

        // qa was never applied: not deployed.
        let run = r.expect(1, &["status", "--env", "dev,qa"]);
        assert_eq!(
            matrix(&run),
            "PACKAGE  dev            qa\nweb      1.1.0 in sync  not deployed\n"
        );
        assert_contains(
            &run.stdout,
            &format!("qa web: not deployed (no ApplySet parent ConfigMap {qa}/kpin-web)"),
        );

        // qa runs 1.0.0 as locked, but someone changed a field kpin applied.
        r.expect(0, &["apply", "--env", "qa", "--wait=false"]);
        r.kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--field-manager=kubectl",
                "--force-conflicts",
                "-f",
                "-",
            ],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-settings\n  namespace: NS-extra\ndata:\n  mode: hacked\n",
        );
        let run = r.expect(1, &["status"]);
        assert_eq!(
            matrix(&run),
            "PACKAGE  dev            qa               prod\n\
             web      1.1.0 in sync  1.0.0 drift (1)  not deployed\n"
        );
        assert_contains(
            &run.stdout,
            &format!(
                "qa web: drift: differs from what kpin applied:\n  ~ ConfigMap {qa}/web-settings (changed in the cluster)\n"
            ),
        );
        let json = r.expect(1, &["status", "--output", "json"]);
        let v: Value = serde_json::from_str(&json.stdout).expect("json");
        assert_eq!(
            (v["differs"].clone(), v["complete"].clone()),
            (json!(true), json!(true))
        );
        let envs = v["environments"].as_array().expect("environments");
        let names: Vec<&str> = envs.iter().filter_map(|e| e["name"].as_str()).collect();
        assert_eq!(names, ["dev", "qa", "prod"], "in promotion order");
        let dev = &envs[0]["packages"][0];
        assert_eq!(dev["state"], "in-sync");
        assert_eq!(dev["matchesLock"], true);
        assert_eq!(dev["deployed"]["version"], "1.1.0");
        assert_eq!(dev["lock"]["version"], "1.1.0");
        assert_eq!(dev["drift"], json!([]));
        assert_eq!(envs[1]["packages"][0]["state"], "drift");
        assert_eq!(envs[1]["packages"][0]["drift"][0]["name"], "web-settings");
        assert_eq!(envs[2]["packages"][0]["state"], "not-deployed");

        // qa is promoted in kpin.yaml but not applied yet: it runs another version than locked.
        expect_code(r.project.run(&["promote", "web", "--to", "qa"]), 0);
        let run = r.expect(1, &["status", "--env", "dev,qa"]);
        assert_eq!(
            matrix(&run),
            "PACKAGE  dev            qa\nweb      1.1.0 in sync  1.0.0 (lock 1.1.0)\n"
        );
        // Once applied (taking the field back from kubectl), everything matches.
        r.expect(
            0,
            &[
                "apply",
                "--env",
                "qa",
                "--locked",
                "--force-conflicts",
                "--wait=false",
            ],
        );
        let run = r.expect(0, &["status", "--env", "dev,qa", "--output", "markdown"]);
        assert_contains(
            &run.stdout,
            "| `web` | ✅ 1.1.0 in sync | ✅ 1.1.0 in sync |",
        );
        let settings = r
            .get(&["configmap", "web-settings", "-n", &qa])
            .expect("web-settings");
        assert_eq!(settings["data"]["mode"], "modern");
    }

    // ----- Issue 16: diff and apply agree; real faults -----------------------------------------

    /// Shapes whose stored form differs from what kpin sends, or that other writers touch: empty
    /// lists and maps the server drops, defaults it fills, quantities it normalises, write-only
    /// fields, statuses and annotations controllers write, custom resources with schema defaults.
    const SHAPES: &str = "---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: NS-empty
webhooks: []
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: NS-empty
webhooks: []
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: empty
  namespace: NS
  labels: {}
  annotations: {}
data: {}
---
apiVersion: v1
kind: Secret
metadata:
  name: written-once
  namespace: NS
stringData:
  password: hunter2
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: robot
  namespace: NS
secrets: []
imagePullSecrets: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: nothing
  namespace: NS
rules: []
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: NS
spec:
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 25%}
  template:
    metadata:
      labels: {app: web}
      annotations: {}
    spec:
      securityContext: {}
      volumes: []
      initContainers: []
      containers:
      - name: web
        image: registry.k8s.io/pause:3.10
        args: []
        env: []
        ports:
        - containerPort: 8080
        resources:
          requests: {cpu: 1000m, memory: 0.5Gi}
          limits: {cpu: '2', memory: 1024Mi}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: NS
spec:
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: registry.k8s.io/pause:3.10
  volumeClaimTemplates: []
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: NS
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      tolerations: []
      containers:
      - name: agent
        image: registry.k8s.io/pause:3.10
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
  namespace: NS
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: once
        image: registry.k8s.io/pause:3.10
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: NS
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: node
  namespace: NS
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - port: 81
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: NS
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: web}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
  namespace: NS
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: quiet
  namespace: NS
spec:
  podSelector: {}
  ingress: []
  policyTypes: [Ingress]
---
apiVersion: NS.kpin.example.com/v1
kind: Gizmo
metadata:
  name: defaulted
  namespace: NS
spec:
  parts: []
  labels: {}
";

    /// A CRD whose schema defaults a field the custom resource leaves out.
    const GIZMO_CRD: &str = "---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.NS.kpin.example.com
spec:
  group: NS.kpin.example.com
  names: {kind: Gizmo, plural: gizmos, singular: gizmo, listKind: GizmoList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, default: 3}
              parts: {type: array, items: {type: string}}
              labels: {type: object, additionalProperties: {type: string}}
";

    /// `kind namespace/name` of every row of a report with this action.
    fn rows(report: &str, action: &str) -> Vec<String> {
        report
            .lines()
            .filter(|l| {
                l.split_whitespace().count() >= 4 && l.split_whitespace().nth(1) == Some(action)
            })
            .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn real_diff_and_apply_agree_and_an_unchanged_reapply_writes_nothing() {
        let test = "real_diff_and_apply_agree_and_an_unchanged_reapply_writes_nothing";
        let Some(r) = Real::new(test) else {
            return;
        };
        let ns = r.namespace.clone();
        r.cleanup("customresourcedefinition/gizmos.NS.kpin.example.com");
        r.cleanup("validatingwebhookconfiguration/NS-empty");
        r.cleanup("mutatingwebhookconfiguration/NS-empty");
        r.vendor(
            "1.0.0",
            &format!("{NAMESPACE}{GIZMO_CRD}{SHAPES}").replace("NS", &ns),
        );
        let first = r.expect(0, &["apply"]);
        let objects = rows(&first.stdout, "created");
        assert_eq!(objects.len(), 18, "{}", first.stdout);
        // Every object by `kind/name -n ns`, for kubectl.
        let resource_versions = || -> Vec<(String, Value)> {
            objects
                .iter()
                .map(|o| {
                    let (kind, id) = o.split_once(' ').expect("kind and name");
                    let (namespace, name) = id.split_once('/').unwrap_or(("", id));
                    let kind = if kind == "Gizmo" {
                        format!("gizmos.{ns}.kpin.example.com")
                    } else {
                        kind.to_owned()
                    };
                    let mut args = vec![kind.as_str(), name];
                    if !namespace.is_empty() {
                        args.extend(["-n", namespace]);
                    }
                    (o.clone(), r.resource_version(&args))
                })
                .collect()
        };
        // Right away, while controllers still write statuses, and once they have settled.
        for round in ["right after the first apply", "after controllers settled"] {
            if round.starts_with("after") {
                std::thread::sleep(std::time::Duration::from_secs(3));
            }
            let before = resource_versions();
            let diff = r.expect(0, &["diff", "--output", "json"]);
            let diff_json: Value = serde_json::from_str(&diff.stdout).expect("diff --output json");
            let (again, writes) = r.writes_during(|| r.expect(0, &["apply"]));
            assert_eq!(
                rows(&again.stdout, "unchanged").len(),
                objects.len(),
                "{round}: every object unchanged:\n{}",
                again.stdout
            );
            assert_contains(&again.stdout, &format!("\n{} unchanged\n", objects.len()));
            let section = &diff_json["sections"][0];
            assert_eq!(
                (
                    section["summary"]["unchanged"].as_u64(),
                    &section["objects"]
                ),
                (Some(objects.len() as u64), &json!([])),
                "{round}: diff agrees with apply: {diff_json}"
            );
            if let Some(writes) = writes {
                assert_eq!(
                    writes,
                    Vec::<String>::new(),
                    "{round}: no write reached the server"
                );
            }
            // Controllers write the status of workloads, budgets, autoscalers and namespaces at
            // any time; every other object's resourceVersion stays. (The audit log above shows
            // kpin wrote none of them.)
            let written_by_controllers = [
                "Namespace ",
                "CustomResourceDefinition ",
                "Deployment ",
                "StatefulSet ",
                "DaemonSet ",
                "Job ",
                "PodDisruptionBudget ",
                "HorizontalPodAutoscaler ",
            ];
            let after = resource_versions();
            for ((object, rv), (_, rv_after)) in before.iter().zip(&after) {
                if !written_by_controllers.iter().any(|k| object.starts_with(k)) {
                    assert_eq!(rv, rv_after, "{round}: {object} was written");
                }
            }
        }

        // One real change: diff and apply name the same object, and only it.
        r.vendor(
            "1.0.0",
            &format!("{NAMESPACE}{GIZMO_CRD}{SHAPES}")
                .replace(
                    "limits: {cpu: '2', memory: 1024Mi}",
                    "limits: {cpu: '3', memory: 1024Mi}",
                )
                .replace("NS", &ns),
        );
        let diff = r.expect(1, &["diff"]);
        assert_contains(&diff.stdout, &format!("Deployment {ns}/web"));
        assert_contains(&diff.stdout, "1 changed");
        let (applied, writes) = r.writes_during(|| r.expect(0, &["apply"]));
        assert_eq!(
            rows(&applied.stdout, "configured"),
            [format!("Deployment {ns}/web")]
        );
        if let Some(writes) = writes {
            let deployment: Vec<&String> = writes
                .iter()
                .filter(|w| w.contains("/deployments/web"))
                .collect();
            assert_eq!(deployment.len(), 1, "{writes:?}");
        }
    }

    #[test]
    fn real_kubectl_apply_with_validation_works_against_the_test_server() {
        // A kube-apiserver built with a newer Go than its release names serves an OpenAPI
        // document kubectl cannot read ("failed to download openapi").
        let Some(r) = Real::new("real_kubectl_apply_with_validation_works_against_the_test_server")
        else {
            return;
        };
        r.create_namespace(&r.namespace);
        let objects = BASE
            .split("---\n")
            .skip(1)
            .collect::<Vec<_>>()
            .join("---\n");
        let out = r.kubectl_with_input(
            &["apply", "--validate=strict", "-n", &r.namespace, "-f", "-"],
            &objects.replace("NS", &r.namespace),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubectl apply --validate=strict: {stderr}"
        );
        assert!(!stderr.contains("openapi"), "{stderr}");
        assert_contains(
            &String::from_utf8_lossy(&out.stdout),
            "deployment.apps/web created",
        );
    }

    #[test]
    fn real_an_exec_credential_plugin_kubeconfig_connects() {
        let test = "real_an_exec_credential_plugin_kubeconfig_connects";
        let Some(mut r) = Real::new(test) else {
            return;
        };
        let Some(exec) = std::env::var_os("KPIN_TEST_EXEC_KUBECONFIG") else {
            crate::support::skip(
                test,
                "KPIN_TEST_EXEC_KUBECONFIG is not set (tools/test-cluster/up writes one)",
            );
            return;
        };
        r.kubeconfig = exec.to_string_lossy().into_owned();
        r.vendor("1.0.0", &format!("{NAMESPACE}{SETTINGS}"));
        let run = r.expect(0, &["apply"]);
        assert_contains(&run.stdout, "2 created");
        r.expect(0, &["diff"]);
    }

    /// A webhook with `failurePolicy: Fail` on ConfigMaps of the test namespace only, calling a
    /// Service that no pod backs.
    const GUARD: &str = "---
apiVersion: v1
kind: Service
metadata:
  name: guard
  namespace: NS
spec:
  selector: {app: guard}
  ports:
  - port: 443
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: NS-guard
webhooks:
- name: guard.NS.kpin.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig:
    service: {name: guard, namespace: NS, port: 443}
  namespaceSelector:
    matchLabels: {kubernetes.io/metadata.name: NS}
  objectSelector:
    matchLabels: {guarded: 'true'}
  rules:
  - apiGroups: ['']
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [configmaps]
";

    #[test]
    fn real_a_webhook_that_cannot_be_called_is_named_with_its_service() {
        let Some(r) = Real::new("real_a_webhook_that_cannot_be_called_is_named_with_its_service")
        else {
            return;
        };
        r.cleanup("validatingwebhookconfiguration/NS-guard");
        let guarded = |mode: &str| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: guarded\n  namespace: NS\n  labels: {{guarded: 'true'}}\ndata:\n  mode: {mode}\n"
            )
        };
        // Webhooks go last: the first apply creates the ConfigMap before the webhook exists.
        r.vendor(
            "1.0.0",
            &format!("{NAMESPACE}{SETTINGS}{}{GUARD}", guarded("fast")),
        );
        r.expect(0, &["apply", "--wait=false"]);
        // Now every change to that ConfigMap meets the webhook, which nothing serves.
        r.vendor(
            "1.0.0",
            &format!(
                "{NAMESPACE}{}{}{GUARD}",
                SETTINGS.replace("fast", "slow"),
                guarded("slow")
            ),
        );
        let ns = &r.namespace;
        let message = format!(
            "admission webhook guard.{ns}.kpin.example.com (service {ns}/guard) cannot be called: no endpoints available for service \"guard\""
        );
        let diff = r.expect(2, &["diff"]);
        assert_contains(&diff.stderr, &message);
        assert_contains(&diff.stderr, "hint: its failurePolicy is Fail");
        let apply = r.expect(1, &["apply", "--wait=false"]);
        assert_row(&apply.stdout, "failed", &format!("ConfigMap {ns}/guarded"));
        assert_row(
            &apply.stdout,
            "configured",
            &format!("ConfigMap {ns}/settings"),
        );
        assert_contains(&apply.stdout, &message);
        assert_contains(&apply.stdout, "apply the package that serves it first");
        assert!(
            !apply.stdout.contains("Status {"),
            "no dump of the server's answer: {}",
            apply.stdout
        );
        assert_eq!(
            r.get(&["configmap", "guarded", "-n", ns]).expect("kept")["data"]["mode"],
            "fast",
            "the refused object is as it was"
        );
    }

    #[test]
    fn real_an_unavailable_apiservice_fails_only_its_group() {
        let Some(r) = Real::new("real_an_unavailable_apiservice_fails_only_its_group") else {
            return;
        };
        r.cleanup("apiservice/v1.NS.kpin.example.com");
        let apiservice = "---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1.NS.kpin.example.com
spec:
  group: NS.kpin.example.com
  version: v1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {name: guard, namespace: NS, port: 443}
";
        let service = GUARD
            .split("---\napiVersion: admissionregistration")
            .next()
            .unwrap();
        r.vendor(
            "1.0.0",
            &format!("{NAMESPACE}{SETTINGS}{service}{apiservice}"),
        );
        // Like metrics-server before its pod is ready: the APIService is not Available.
        let waited = expect_code(
            r.project
                .run(&["apply", "--timeout", "5", "--kubeconfig", &r.kubeconfig]),
            1,
        );
        assert_contains(
            &waited.stdout,
            &format!("APIService v1.{}.kpin.example.com", r.namespace),
        );
        assert_contains(&waited.stdout, "not ready");
        // Other groups are still discovered and applied.
        let again = r.expect(0, &["apply", "--wait=false"]);
        assert_contains(&again.stdout, "unchanged");
        // An object of the unavailable group names it.
        let thing = "---\napiVersion: NS.kpin.example.com/v1\nkind: Thing\nmetadata:\n  name: t\n  namespace: NS\n";
        r.vendor(
            "1.0.0",
            &format!("{NAMESPACE}{SETTINGS}{service}{apiservice}{thing}"),
        );
        let failed = r.expect(1, &["apply", "--wait=false"]);
        let ns = &r.namespace;
        assert_contains(
            &failed.stdout,
            &format!("the API group version {ns}.kpin.example.com/v1 is unavailable"),
        );
        assert_row(
            &failed.stdout,
            "unchanged",
            &format!("ConfigMap {ns}/settings"),
        );
    }

    #[test]
    fn real_a_namespace_stuck_terminating_is_named() {
        let Some(r) = Real::new("real_a_namespace_stuck_terminating_is_named") else {
            return;
        };
        let ns = r.namespace.clone();
        r.create_namespace(&ns);
        r.kubectl_stdin(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: NS\n  finalizers: [kpin.example.com/hold]\n",
        );
        r.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
        r.vendor("1.0.0", SETTINGS);
        let run = r.expect(2, &["apply", "--wait=false"]);
        assert_contains(
            &run.stderr,
            &format!("namespace {ns} is being deleted (Terminating)"),
        );
        assert_contains(&run.stderr, "finalizer");
        let diff = r.kpin(&["diff"]);
        assert_ne!(diff.code, 0, "{}", diff.transcript());
        // Let it go.
        r.kubectl(&[
            "patch",
            "configmap",
            "held",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            "{\"metadata\":{\"finalizers\":null}}",
        ]);
    }

    /// A small set for the fall-back tests: a ConfigMap to edit, one with an annotation to
    /// remove, a Secret with a value (always dry-run), an object in a version of its group
    /// that is not the preferred one (the member LIST returns another), and a custom resource
    /// of GIZMO_CRD.
    const FALLBACK_SET: &str = "---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: NS}
data: {mode: fast}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: noted
  namespace: NS
  annotations: {example.com/note: keep-me}
data: {a: '1'}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: NS}
stringData: {password: hunter2}
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: older-version, namespace: NS}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: absent}
  minReplicas: 1
  maxReplicas: 2
---
apiVersion: NS.kpin.example.com/v1
kind: Gizmo
metadata: {name: g1, namespace: NS}
spec: {parts: [a]}
";

    /// The hash the server publishes for the OpenAPI schema of a group version.
    fn schema_hash(r: &Real, group_version: &str) -> Option<String> {
        let index: Value =
            serde_json::from_str(&r.kubectl(&["get", "--raw", "/openapi/v3"])).expect("index");
        index["paths"][group_version]["serverRelativeURL"]
            .as_str()
            .and_then(|u| u.split_once("hash="))
            .map(|(_, h)| h.to_owned())
    }

    #[test]
    fn real_an_unchanged_reapply_sends_no_dry_run_and_falls_back_whenever_kpins_part_moved() {
        let test =
            "real_an_unchanged_reapply_sends_no_dry_run_and_falls_back_whenever_kpins_part_moved";
        let Some(_dir) = Real::cluster_dir(test) else {
            return;
        };
        let Some(r) = Real::new(test) else {
            return;
        };
        let ns = r.namespace.clone();
        // The CRD comes from elsewhere (another tool installs it), the custom resource from kpin.
        r.cleanup("customresourcedefinition/gizmos.NS.kpin.example.com");
        r.kubectl_input(&["apply", "-f", "-"], &GIZMO_CRD.replace("NS", &ns));
        r.kubectl(&[
            "wait",
            "--for=condition=Established",
            &format!("customresourcedefinition/gizmos.{ns}.kpin.example.com"),
        ]);
        // Installed a while ago: the server publishes its schema shortly after it is
        // established (until then its resources are not fingerprinted).
        let group_version = format!("apis/{ns}.kpin.example.com/v1");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while schema_hash(&r, &group_version).is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the schema was never published"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        r.vendor(
            "1.0.0",
            &format!("{NAMESPACE}{FALLBACK_SET}").replace("NS", &ns),
        );
        r.expect(0, &["apply", "--wait=false"]);
        let reapply = || {
            let (run, sent) = r.sent_during(|| r.expect(0, &["apply", "--wait=false"]));
            (run, sent.expect("the test cluster's audit log"))
        };

        // Unchanged: nothing but the Secret (never fingerprinted) is dry-run; nothing written.
        let (run, sent) = reapply();
        assert_contains(&run.stdout, "\n6 unchanged\n");
        assert_eq!(sent.dry_run_names(), ["creds"], "{sent:?}");
        assert_eq!(sent.writes, Vec::<String>::new());

        // A value kpin owns, changed by another manager: seen (the dry run meets the
        // conflict), then taken back with --force-conflicts.
        r.kubectl(&[
            "patch",
            "configmap",
            "settings",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"data":{"mode":"slow"}}"#,
        ]);
        let diff = r.expect(1, &["diff"]);
        assert_contains(&diff.stdout, "mode: slow");
        let (conflict, sent) = r.sent_during(|| r.kpin(&["apply", "--wait=false"]));
        assert_contains(
            &conflict.stdout,
            "conflicts with other field managers: .data.mode",
        );
        let sent = sent.expect("the test cluster's audit log");
        assert_eq!(sent.dry_run_names(), ["creds", "settings"], "{sent:?}");
        assert_eq!(sent.writes, Vec::<String>::new());
        let (forced, sent) =
            r.sent_during(|| r.expect(0, &["apply", "--wait=false", "--force-conflicts"]));
        let sent = sent.expect("the test cluster's audit log");
        assert_row(
            &forced.stdout,
            "configured",
            &format!("ConfigMap {ns}/settings"),
        );
        assert_eq!(sent.dry_run_names(), ["creds", "settings"], "{sent:?}");
        assert_eq!(sent.object_writes().len(), 1, "{sent:?}");
        let settings = r
            .get(&["configmap", "settings", "-n", &ns])
            .expect("settings");
        assert_eq!(settings["data"]["mode"], "fast");

        // An annotation kpin owns, removed by hand.
        r.kubectl(&[
            "annotate",
            "configmap",
            "noted",
            "-n",
            &ns,
            "example.com/note-",
        ]);
        let (run, sent) = reapply();
        assert_row(&run.stdout, "configured", &format!("ConfigMap {ns}/noted"));
        assert_eq!(sent.dry_run_names(), ["creds", "noted"], "{sent:?}");
        let noted = r.get(&["configmap", "noted", "-n", &ns]).expect("noted");
        assert_eq!(
            noted["metadata"]["annotations"]["example.com/note"],
            "keep-me"
        );

        // An object deleted: missing from the LIST, created again without a dry run.
        r.kubectl(&["delete", "configmap", "noted", "-n", &ns]);
        let (run, sent) = reapply();
        assert_row(&run.stdout, "created", &format!("ConfigMap {ns}/noted"));
        assert_eq!(sent.dry_run_names(), ["creds"], "{sent:?}");
        assert_eq!(sent.object_writes().len(), 1, "{sent:?}");

        // The CRD's schema gains a defaulted field: the custom resource is dry-run once the
        // server publishes the new schema, found unchanged (kpin owns no defaulted field), and
        // recorded anew.
        let before = schema_hash(&r, &group_version).expect("the CRD's schema is published");
        r.kubectl(&[
            "patch", "customresourcedefinition", &format!("gizmos.{ns}.kpin.example.com"),
            "--type=json", "-p",
            r#"[{"op":"add","path":"/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/color","value":{"type":"string","default":"blue"}}]"#,
        ]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while schema_hash(&r, &group_version).as_deref() == Some(before.as_str()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the new schema was never published"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let gizmo = r
            .get(&[&format!("gizmos.{ns}.kpin.example.com"), "g1", "-n", &ns])
            .expect("g1");
        assert_eq!(gizmo["spec"]["color"], "blue", "defaulted on read");
        let (run, sent) = reapply();
        assert_row(&run.stdout, "unchanged", &format!("Gizmo {ns}/g1"));
        assert_eq!(sent.dry_run_names(), ["creds", "g1"], "{sent:?}");
        assert_eq!(sent.object_writes(), Vec::<&String>::new());
        assert!(
            sent.parent_written(),
            "the new fingerprint is recorded: {sent:?}"
        );
        let (_, sent) = reapply();
        assert_eq!(sent.dry_run_names(), ["creds"], "{sent:?}");
        assert_eq!(sent.writes, Vec::<String>::new());
    }

    /// Restarts the test cluster's apiserver as it was started when dropped.
    struct RestoreServer(std::path::PathBuf);

    impl RestoreServer {
        fn restart(dir: &std::path::Path, extra_args: &str) {
            let status =
                Command::new(crate::support::repo_root().join("tools/test-cluster/restart"))
                    .arg(dir)
                    .env("KPIN_TEST_EXTRA_ARGS", extra_args)
                    .status()
                    .expect("restarting the apiserver");
            assert!(status.success(), "restarting the apiserver {extra_args}");
        }
    }

    impl Drop for RestoreServer {
        fn drop(&mut self) {
            RestoreServer::restart(&self.0, "");
        }
    }

    #[test]
    fn real_a_server_upgrade_makes_every_object_go_through_a_dry_run_once() {
        let test = "real_a_server_upgrade_makes_every_object_go_through_a_dry_run_once";
        let Some(dir) = Real::cluster_dir(test) else {
            return;
        };
        let Some(r) = Real::exclusive(test) else {
            return;
        };
        let ns = r.namespace.clone();
        let set = "---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: NS}
data: {mode: fast}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: NS}
";
        r.vendor("1.0.0", &format!("{NAMESPACE}{set}").replace("NS", &ns));
        r.expect(0, &["apply", "--wait=false"]);
        let reapply = || {
            let (run, sent) = r.sent_during(|| r.expect(0, &["apply", "--wait=false"]));
            (run, sent.expect("the test cluster's audit log"))
        };
        let (_, sent) = reapply();
        assert_eq!(sent.dry_runs, Vec::<String>::new());

        // The same binary emulating the previous minor version: another /version, other
        // defaults. Every object is dry-run once, nothing but the record is written.
        let restore = RestoreServer(dir.clone());
        RestoreServer::restart(&dir, "--emulated-version=1.35");
        let mut expected = vec![ns.clone(), "robot".to_owned(), "settings".to_owned()];
        expected.sort();
        let (run, sent) = reapply();
        assert_contains(&run.stdout, "\n3 unchanged\n");
        assert_eq!(sent.dry_run_names(), expected, "{sent:?}");
        assert_eq!(sent.object_writes(), Vec::<&String>::new());
        assert!(sent.parent_written(), "{sent:?}");
        let (_, sent) = reapply();
        assert_eq!(sent.dry_runs, Vec::<String>::new(), "recorded anew");

        // And back.
        drop(restore);
        let (_, sent) = reapply();
        assert_eq!(sent.dry_run_names(), expected, "{sent:?}");
    }

    #[test]
    fn real_an_apiserver_restart_mid_apply_converges_on_the_next_apply() {
        let test = "real_an_apiserver_restart_mid_apply_converges_on_the_next_apply";
        let Some(dir) = Real::cluster_dir(test) else {
            return;
        };
        let Some(r) = Real::exclusive(test) else {
            return;
        };
        let many: String = (0..2000)
            .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}\n  namespace: NS\ndata:\n  i: '{i}'\n"))
            .collect();
        r.vendor("1.0.0", &format!("{NAMESPACE}{many}"));
        r.expect(0, &["apply", "--wait=false"]);
        let changed = many.replace("data:\n  i:", "data:\n  changed: 'yes'\n  i:");
        r.vendor("1.0.0", &format!("{NAMESPACE}{changed}"));
        let mut apply =
            r.project
                .command(&["apply", "--wait=false", "--kubeconfig", &r.kubeconfig]);
        let child = apply
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kpin apply");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let restart = Command::new(crate::support::repo_root().join("tools/test-cluster/restart"))
            .arg(&dir)
            .status()
            .expect("restarting the apiserver");
        assert!(restart.success());
        let interrupted = child.wait_with_output().expect("kpin apply");
        eprintln!(
            "apply during the restart exited {:?}:\n{}{}",
            interrupted.status.code(),
            String::from_utf8_lossy(&interrupted.stdout),
            String::from_utf8_lossy(&interrupted.stderr)
        );
        assert_ne!(interrupted.status.code(), Some(101), "no panic");
        // Once the server is gone, the rest is not sent: the requests in flight fail, the
        // others are skipped with the reason.
        let report = String::from_utf8_lossy(&interrupted.stdout);
        let failed = rows(&report, "failed");
        assert!(failed.len() <= 32, "{} failed: {report}", failed.len());
        // The next apply converges, and a prune deletes nothing the render holds.
        let run = r.expect(0, &["apply", "--wait=false", "--prune"]);
        assert!(rows(&run.stdout, "pruned").is_empty(), "{}", run.stdout);
        let live = r.kubectl(&["get", "configmaps", "-n", &r.namespace, "-o", "name"]);
        for i in 0..2000 {
            assert_contains(&live, &format!("configmap/cm-{i:04}\n"));
        }
        let again = r.expect(0, &["apply", "--wait=false"]);
        assert_contains(&again.stdout, "2001 unchanged");
    }

    /// The release files of `../shared/upstream`, a version at a time per project, in the order
    /// INDEX.tsv lists them (oldest first), one file per version (the first listed).
    fn upstream_releases(
        upstream: &std::path::Path,
    ) -> Vec<(String, Vec<(String, std::path::PathBuf)>)> {
        let index = std::fs::read_to_string(upstream.join("INDEX.tsv")).expect("INDEX.tsv");
        let mut projects: Vec<(String, Vec<(String, std::path::PathBuf)>)> = Vec::new();
        for line in index.lines().skip(1) {
            let cols: Vec<&str> = line.split('\t').collect();
            let (project, version, file) = (cols[0], cols[1], cols[2]);
            if projects.last().is_none_or(|(p, _)| p != project) {
                projects.push((project.to_owned(), Vec::new()));
            }
            let versions = &mut projects.last_mut().unwrap().1;
            if versions.iter().all(|(v, _)| v != version) {
                versions.push((
                    version.to_owned(),
                    upstream.join(project).join(version).join(file),
                ));
            }
        }
        projects
    }

    use crate::support::charts::{self, Registry, UpstreamChart};

    /// What the real-cluster chart tests share: helm, the charts of ../shared/upstream-charts/,
    /// a loopback OCI registry, the cluster (its test namespace created, everything the project
    /// renders deleted afterwards) and a helm home.
    struct ChartCluster {
        helm: std::path::PathBuf,
        charts: Vec<UpstreamChart>,
        registry: Registry,
        r: Real,
        home: tempfile::TempDir,
    }

    impl ChartCluster {
        /// `auth`: the registry asks for credentials; `exclusive`: no other test uses the
        /// cluster meanwhile.
        fn start(test: &str, auth: bool, exclusive: bool) -> Option<ChartCluster> {
            let helm = charts::helm_or_skip(test)?;
            let dir = charts::upstream_charts_or_skip(test)?;
            let registry = Registry::start(test, auth)?;
            let mut r = if exclusive {
                Real::exclusive(test)?
            } else {
                Real::new(test)?
            };
            r.clean_render_on_drop();
            let ns = r.namespace.clone();
            r.create_namespace(&ns);
            Some(ChartCluster {
                helm,
                charts: charts::upstream_charts(&dir),
                registry,
                r,
                home: tempfile::tempdir().unwrap(),
            })
        }
    }

    /// Every chart and version of ../shared/upstream-charts/ from the loopback OCI registry:
    /// synced (rendered by helm), applied to the real cluster with its hooks as ordinary
    /// objects, re-applied without a write, upgraded to the chart's next version through
    /// `kpin upgrade` and applied again. Releases are named after the test namespace, so
    /// cluster-scoped names meet nothing else.
    #[test]
    fn real_every_upstream_chart_applies_upgrades_and_reapplies_without_a_write() {
        let test = "real_every_upstream_chart_applies_upgrades_and_reapplies_without_a_write";
        // Webhooks and APIServices of these charts change what every request meets.
        let Some(ChartCluster {
            helm,
            charts: all,
            registry,
            r,
            home,
        }) = ChartCluster::start(test, false, true)
        else {
            return;
        };
        charts::publish(&helm, home.path(), &registry, &all, false);
        let kpin = |args: &[&str]| r.project.run_with(args, |c| c.env("KPIN_HELM", &helm));
        let mut summary = Vec::new();
        for (name, versions) in charts::versions_by_name(&all) {
            let name = name.as_str();
            r.write(
                "kpin.yaml",
                &format!(
                    "kubernetesVersion: \"1.31\"\npackages:\n  {name}:\n    version: {}\n    chart:\n      repository: oci://{}/charts\n      release: NS-{name}\n      namespace: NS\n",
                    versions[0],
                    registry.host()
                ),
            );
            expect_code(kpin(&["sync"]), 0);
            for (i, version) in versions.iter().enumerate() {
                if i > 0 {
                    let upgrade = expect_code(kpin(&["upgrade", name, "--to", version]), 0);
                    assert_contains(
                        &upgrade.stdout,
                        &format!("{name} {} -> {version}: upstream changes", versions[i - 1]),
                    );
                }
                let applied = r.kpin(&[
                    "apply",
                    "--wait=false",
                    "--prune",
                    "--recreate",
                    "--allow-mass-prune",
                ]);
                assert_eq!(
                    applied.code,
                    0,
                    "{name} {version}: {}",
                    applied.transcript()
                );
                let text = expect_code(r.project.run(&["render"]), 0).stdout;
                let again = r.reapply_writes_nothing(&format!("{name} {version}"), &text);
                summary.push(format!(
                    "{name} {version}: {} unchanged",
                    rows(&again.stdout, "unchanged").len()
                ));
            }
            r.delete_rendered();
        }
        eprintln!("{}", summary.join("\n"));
    }

    /// The issue's own check, written by hand: ingress-nginx as a chart from the loopback OCI
    /// registry (basic auth) syncs, renders through an overlay, applies to the real cluster,
    /// re-applies without a write, upgrades to the newer chart with a report and applies that;
    /// kpin.lock then needs neither helm nor network.
    #[test]
    fn real_a_chart_from_an_oci_registry_applies_reapplies_unchanged_and_upgrades() {
        let test = "real_a_chart_from_an_oci_registry_applies_reapplies_unchanged_and_upgrades";
        let Some(ChartCluster {
            helm,
            charts: all,
            registry,
            r,
            home,
        }) = ChartCluster::start(test, true, false)
        else {
            return;
        };
        let ns = r.namespace.clone();
        let ingress: Vec<_> = all
            .into_iter()
            .filter(|c| c.name == "ingress-nginx")
            .collect();
        charts::publish(&helm, home.path(), &registry, &ingress, true);
        let versions: Vec<String> = charts::versions_by_name(&ingress)
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect();
        let [old, new] = versions.as_slice() else {
            panic!("two ingress-nginx charts in upstream-charts: {versions:?}");
        };
        // Cluster-scoped names follow the release (the test namespace), so parallel runs and
        // other tests do not meet; the admission webhook needs certificates its hook Jobs make.
        r.write(
            "kpin.yaml",
            &format!(
                "kubernetesVersion: \"1.31\"\npackages:\n  ingress-nginx:\n    version: {old}\n    chart:\n      repository: oci://{}/charts\n      release: NS\n      namespace: NS\n      hooks: drop\n      values:\n        controller:\n          admissionWebhooks: {{enabled: false}}\n          ingressClassResource: {{name: NS, controllerValue: k8s.io/NS}}\n          service: {{type: ClusterIP}}\n    overlays: [overlays/ingress.yaml]\n",
                registry.host()
            ),
        );
        r.write(
            "overlays/ingress.yaml",
            "operations:\n- labels: {set: {team: platform}}\n",
        );
        let config = home.path().join("registry.json");
        let kpin = |args: &[&str]| {
            r.project.run_with(args, |c| {
                c.env("KPIN_HELM", &helm)
                    .env("KPIN_REGISTRY_CONFIG", &config)
            })
        };
        expect_code(kpin(&["sync"]), 0);
        let rendered = expect_code(r.project.run(&["render"]), 0).stdout;
        assert_contains(&rendered, "team: platform");
        assert_contains(&rendered, &format!("name: {ns}"));
        let first = r.expect(0, &["apply", "--wait=false"]);
        assert!(
            !rows(&first.stdout, "created").is_empty(),
            "{}",
            first.stdout
        );
        let (again, writes) = r.writes_during(|| r.expect(0, &["apply", "--wait=false"]));
        for action in ["created", "configured", "recreated", "pruned"] {
            assert!(
                rows(&again.stdout, action).is_empty(),
                "{action}: {}",
                again.stdout
            );
        }
        if let Some(writes) = writes {
            assert_eq!(writes, Vec::<String>::new(), "the re-apply wrote");
        }
        let upgrade = expect_code(kpin(&["upgrade", "ingress-nginx", "--to", new]), 0);
        assert_contains(
            &upgrade.stdout,
            &format!("ingress-nginx {old} -> {new}: upstream changes"),
        );
        assert_contains(
            &upgrade.stdout,
            &format!("ingress-nginx {old} -> {new}: default values"),
        );
        let upgraded = r.expect(0, &["apply", "--wait=false", "--prune"]);
        assert!(
            !rows(&upgraded.stdout, "configured").is_empty(),
            "{}",
            upgraded.stdout
        );
        // A clean clone in CI: the vendored render is all it needs.
        let ci = r.project.run_with(&["sync", "--locked", "--offline"], |c| {
            c.env_remove("KPIN_HELM").env("PATH", "/usr/bin:/bin")
        });
        expect_code(ci, 0);
    }

    #[test]
    fn real_every_upstream_release_applies_upgrades_and_reapplies_without_a_write() {
        let test = "real_every_upstream_release_applies_upgrades_and_reapplies_without_a_write";
        let Some(upstream) = crate::support::upstream_or_skip(test) else {
            return;
        };
        // Gatekeeper's webhook on namespaces refuses every namespace while it is installed.
        let Some(r) = Real::exclusive(test) else {
            return;
        };
        let mut semver_sorted = upstream_releases(&upstream);
        for (_, versions) in &mut semver_sorted {
            versions.sort_by_key(|(v, _)| {
                v.trim_start_matches(|c: char| !c.is_ascii_digit())
                    .split('.')
                    .map(|p| p.parse::<u64>().unwrap_or(0))
                    .collect::<Vec<_>>()
            });
        }
        // ApplySet parents of packages without `namespace:` go to the context's namespace.
        let mut r = r;
        r.create_namespace(&r.namespace.clone());
        r.use_contexts(&[("kpin-test", "NS")]);
        r.clean_render_on_drop();
        let index = std::fs::read_to_string(upstream.join("INDEX.tsv")).expect("INDEX.tsv");
        let mut summary = Vec::new();
        for (project, versions) in &semver_sorted {
            // Upstream namespaces as they are (gatekeeper's webhook spares only its own); a
            // release whose namespaced objects name none (argo-cd) goes to the test namespace.
            let unnamespaced = index.lines().any(|l| {
                l.starts_with(&format!("{project}\t")) && l.contains("without metadata.namespace")
            });
            let namespace = if unnamespaced {
                format!("    namespace: {}\n", r.namespace)
            } else {
                String::new()
            };
            for (version, file) in versions {
                let vendored = format!(
                    "vendor/{project}/{version}/{}",
                    file.file_name().unwrap().to_string_lossy()
                );
                let text = std::fs::read_to_string(file).expect("upstream release");
                r.project.write(&vendored, &text);
                // Namespaced objects without a namespace (argo-cd) go to the test namespace.
                r.project.write(
                    "kpin.yaml",
                    &format!(
                        "packages:\n  {project}:\n    version: {version}\n    url: https://example.invalid/{project}/{{version}}/{}\n{namespace}",
                        file.file_name().unwrap().to_string_lossy(),
                    ),
                );
                let applied = r.kpin(&[
                    "apply",
                    "--wait=false",
                    "--prune",
                    "--recreate",
                    "--allow-mass-prune",
                ]);
                assert_eq!(
                    applied.code,
                    0,
                    "{project} {version}: {}",
                    applied.transcript()
                );
                let again = r.reapply_writes_nothing(&format!("{project} {version}"), &text);
                // Clean, but for Jobs with ttlSecondsAfterFinished, which the cluster deletes
                // once they finished (the next apply creates them again, as kubectl's would).
                let diff = r.kpin(&["diff", "--output", "json"]);
                let report: Value = serde_json::from_str(&diff.stdout)
                    .unwrap_or_else(|_| panic!("{project} {version}: diff: {}", diff.transcript()));
                let section = &report["sections"][0];
                for o in section["objects"].as_array().into_iter().flatten() {
                    assert!(
                        o["kind"] == "Job"
                            && o["change"] == "added"
                            && text.contains("ttlSecondsAfterFinished"),
                        "{project} {version}: diff after apply: {o}"
                    );
                    // ... and the diff says why.
                    let job = format!(
                        "Job {}/{}",
                        o["namespace"].as_str().unwrap_or(""),
                        o["name"].as_str().unwrap_or("")
                    );
                    assert!(
                        section["warnings"].to_string().contains(&job),
                        "{project} {version}: no warning about {job}: {section}"
                    );
                }
                summary.push(format!(
                    "{project} {version}: {} unchanged",
                    rows(&again.stdout, "unchanged").len()
                ));
            }
            // Delete the project before the next one (its webhooks may refuse what follows).
            r.delete_rendered();
        }
        eprintln!("{}", summary.join("\n"));
    }
}

/// A real upstream upgrade through the fake server: ingress-nginx's admission Jobs change their
/// pod template between releases, which only `--recreate` can apply.
#[test]
fn ingress_nginx_upgrade_needs_recreate_for_its_admission_jobs() {
    let Some(upstream) = crate::support::upstream_or_skip(
        "ingress_nginx_upgrade_needs_recreate_for_its_admission_jobs",
    ) else {
        return;
    };
    let fake = FakeApiServer::start(Options::default());
    let project = Project::new();
    let kubeconfig = fake.write_kubeconfig(project.path()).display().to_string();
    let use_version = |version: &str| {
        project.write(
            "kpin.yaml",
            &format!(
                "packages:\n  ingress-nginx:\n    version: {version}\n    url: https://example.invalid/ingress-nginx/{{version}}/deploy.yaml\n    namespace: ingress-nginx\n"
            ),
        );
        let dir = project
            .path()
            .join(format!("vendor/ingress-nginx/{version}"));
        std::fs::create_dir_all(&dir).unwrap();
        // A link, not a copy: upstream releases are read in place.
        let source = upstream.join(format!(
            "ingress-nginx/controller-{version}/deploy-cloud.yaml"
        ));
        let _ = std::os::unix::fs::symlink(source, dir.join("deploy.yaml"));
    };
    let kpin = |code: i32, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", &kubeconfig]);
        expect_code(project.run(&all), code)
    };

    use_version("v1.9.4");
    let first = kpin(0, &["apply"]);
    assert_contains(
        &first.stdout,
        "created  Job ingress-nginx/ingress-nginx-admission-create",
    );

    use_version("v1.10.6");
    let blocked = kpin(1, &["apply"]);
    assert_contains(
        &blocked.stdout,
        "Job ingress-nginx/ingress-nginx-admission-create (failed): spec.template: field is immutable",
    );
    // The upgrade review says so before any cluster is involved.
    let review = kpin(1, &["diff"]);
    assert_contains(&review.stdout, "apply needs `--recreate`");

    let recreated = kpin(0, &["apply", "--recreate", "--prune"]);
    assert_row(
        &recreated.stdout,
        "recreated",
        "Job ingress-nginx/ingress-nginx-admission-create",
    );
    // Every object 1.10.6 still renders stays: only the NetworkPolicy it dropped is pruned.
    let pruned: Vec<&str> = recreated
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("pruned"))
        .collect();
    assert_eq!(
        pruned,
        ["ingress-nginx  pruned      NetworkPolicy ingress-nginx/ingress-nginx-admission"],
        "{}",
        recreated.stdout
    );
    let again = kpin(0, &["apply"]);
    assert!(
        !again.stdout.contains("configured") && !again.stdout.contains("created"),
        "{}",
        again.stdout
    );
}
