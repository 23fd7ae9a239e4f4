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

const V1: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
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
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: demo-reader
rules:
- apiGroups: ['']
  resources: [configmaps]
  verbs: [get]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  mode: fast
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: legacy
  namespace: demo
data:
  old: 'true'
---
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
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gadget
  namespace: demo
spec:
  size: 3
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: demo-webhook
webhooks: []
";

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
}

#[test]
fn first_apply_creates_in_stages_and_an_unchanged_reapply_patches_nothing() {
    let s = setup(V1);
    let run = s.kpin(&["apply"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
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
    let again = s.kpin(&["apply"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(again.stdout.contains("8 unchanged"), "{}", again.stdout);
    assert_eq!(
        s.fake.mutations(),
        Vec::<String>::new(),
        "an unchanged re-apply changes nothing"
    );
}

#[test]
fn dry_run_sends_only_dry_run_requests() {
    let s = setup(V1);
    let run = s.kpin(&["apply", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stdout.contains("dry run: 8 created"), "{}", run.stdout);
    assert_eq!(s.fake.mutations(), Vec::<String>::new());
    assert_eq!(s.fake.object_count(), 0);
}

#[test]
fn validation_failure_sends_no_request() {
    let s = setup("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n");
    let run = s.kpin(&["apply"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    let run = s.kpin(&["apply", "--env", "staging"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains("no environment named staging"),
        "{}",
        run.stderr
    );
    assert_eq!(s.fake.requests(), vec![]);
}

#[test]
fn environment_context_must_match() {
    let s = setup(V1);
    let run = s.kpin(&["apply", "--env", "prod", "--context", "fake"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("environment prod uses context other, but --context fake was given"),
        "{}",
        run.stderr
    );
    assert_eq!(s.fake.requests(), vec![]);
}
