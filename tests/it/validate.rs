//! Integration tests: validation. What kpin renders is checked offline against the API schemas
//! of the cluster's Kubernetes version and the CRDs of every package, so a typo in an overlay
//! fails the pull request, not the apply; each error names the overlay operation that wrote it.

use std::path::Path;

use kpin::object::Object;
use kpin::validate::{self, CrdIndex, KubeVersion, Severity};
use serde_json::Value;

use crate::support::{self, Project, copy_dir, git, upstream_or_skip};

fn k8s(minor: u32) -> KubeVersion {
    KubeVersion { major: 1, minor }
}

/// The `shop` fixture with `overlays` on the `web` package, synced.
fn shop(overlays: &[&str]) -> Project {
    let p = Project::new();
    copy_dir(
        &support::repo_root().join("tests/fixtures/validate/shop"),
        p.path(),
    );
    let list: Vec<String> = overlays
        .iter()
        .map(|o| format!("overlays/web/{o}.yaml"))
        .collect();
    let manifest = p
        .read("kpin.yaml")
        .replace("overlays: []", &format!("overlays: [{}]", list.join(", ")));
    p.write("kpin.yaml", &manifest);
    let sync = p.run(&["--quiet", "sync"]);
    assert_eq!(sync.code, 0, "{}", sync.transcript());
    p
}

// ---------------------------------------------------------------------------------------------
// What is refused, and how it is named.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_overlay_typo_is_refused_naming_the_overlay_operation() {
    let p = shop(&["replicas-typo"]);
    // Render stays a plain render unless asked to validate.
    assert_eq!(p.run(&["render", "web"]).code, 0);
    let run = p.run(&["render", "web", "--env", "prod", "--validate"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert_eq!(run.stdout, "", "nothing is written");
    insta::assert_snapshot!(run.transcript());
    let out = p.path().join("out");
    let run = p.run(&["render", "--validate", "--output-dir", "out"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(!out.exists(), "no output directory is written");
}

#[test]
fn a_wrong_type_names_the_field_the_expected_type_and_the_operation_index() {
    let p = shop(&["wrong-type"]);
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    let line = "error: web (envs prod, staging): Deployment web/web: spec.minReadySeconds: \
                string \"30\", expected integer; written by overlays/web/wrong-type.yaml \
                operations[1] (jsonPatch)\n";
    assert!(run.stdout.contains(line), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("error: 1 validation error: the API server would refuse these objects"),
        "{}",
        run.stderr
    );
    // --no-validate: the lock and vendor checks alone (they pass).
    assert_eq!(p.run(&["verify", "--no-validate"]).code, 0);
}

#[test]
fn custom_resources_are_checked_against_the_crd_of_another_package() {
    let p = shop(&["monitor"]);
    // Only `web` is rendered; the ServiceMonitor's CRD comes from `monitoring`.
    let run = p.run(&["render", "web", "--validate"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    insta::assert_snapshot!(run.transcript());
}

#[test]
fn custom_kinds_without_a_crd_are_reported_as_not_validated() {
    let p = shop(&["certificate"]);
    let run = p.run(&["render", "--validate"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "warning: not validated: web: Certificate web/web: no package renders a CRD for \
             cert-manager.io Certificate: not validated"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn removed_api_versions_are_errors_with_their_replacement() {
    let p = shop(&["removed-pdb"]);
    let run = p.run(&["render", "--validate"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "web: PodDisruptionBudget web/web: apiVersion: policy/v1beta1 PodDisruptionBudget is \
             no longer served (removed in Kubernetes 1.25), expected policy/v1; written by \
             overlays/web/removed-pdb.yaml operations[0] (add)"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn verify_with_a_kubernetes_version_answers_can_we_upgrade() {
    let p = shop(&["old-apis"]);
    // 1.31 still serves flowcontrol v1beta3, deprecated: a warning, exit 0.
    let today = p.run(&["verify", "--kubernetes-version", "1.31"]);
    assert_eq!(today.code, 0, "{}", today.transcript());
    assert!(
        today.stdout.contains(
            "warning: web (envs prod, staging): FlowSchema web: apiVersion: \
             flowcontrol.apiserver.k8s.io/v1beta3 FlowSchema is deprecated since Kubernetes 1.29 \
             and removed in 1.32, expected flowcontrol.apiserver.k8s.io/v1"
        ),
        "{}",
        today.transcript()
    );
    // 1.33 no longer does: the upgrade would break the package.
    let upgrade = p.run(&["verify", "--kubernetes-version", "1.33"]);
    assert_eq!(upgrade.code, 2, "{}", upgrade.transcript());
    assert!(
        upgrade.stdout.contains(
            "error: web (envs prod, staging): FlowSchema web: apiVersion: \
             flowcontrol.apiserver.k8s.io/v1beta3 FlowSchema is no longer served (removed in \
             Kubernetes 1.32), expected flowcontrol.apiserver.k8s.io/v1"
        ),
        "{}",
        upgrade.transcript()
    );
}

#[test]
fn each_environment_validates_against_its_own_kubernetes_version() {
    // kpin.yaml: 1.31 overall, staging already on 1.33.
    let p = shop(&["old-apis"]);
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stdout.contains(
            "error: web (env staging): FlowSchema web: apiVersion: \
             flowcontrol.apiserver.k8s.io/v1beta3 FlowSchema is no longer served"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("warning: web (env prod): FlowSchema web"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("Validated 8 objects against Kubernetes 1.31 (prod), 1.33 (staging)"),
        "{}",
        run.stderr
    );
}

#[test]
fn json_output_lists_every_finding_with_its_overlay_and_operation() {
    let p = shop(&["wrong-type", "monitor"]);
    let run = p.run(&["verify", "--output", "json"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let validation = &doc["validation"];
    assert_eq!(
        validation["kubernetesVersions"],
        serde_json::json!({"prod": "1.31", "staging": "1.33"})
    );
    let findings = validation["findings"].as_array().unwrap();
    let wrong_type = findings.iter().find(|f| f["check"] == "wrongType").unwrap();
    assert_eq!(
        wrong_type["object"],
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "web", "name": "web"})
    );
    assert_eq!(wrong_type["path"], "spec.minReadySeconds");
    assert_eq!(wrong_type["expected"], "integer");
    assert_eq!(
        wrong_type["writtenBy"]["overlay"],
        "overlays/web/wrong-type.yaml"
    );
    assert_eq!(wrong_type["writtenBy"]["operation"], 1);
    assert_eq!(
        wrong_type["environments"],
        serde_json::json!(["prod", "staging"])
    );
    let checks: Vec<&str> = findings
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        ["wrongType", "unknownField", "notInEnum"],
        "{findings:#?}"
    );
    assert_eq!(validation["errors"], 3);
}

#[test]
fn diff_and_apply_refuse_before_any_request() {
    let p = shop(&["replicas-typo"]);
    // No kubeconfig anywhere: reaching the cluster would fail differently.
    for command in ["diff", "apply"] {
        let run = p.run_with(&[command, "--env", "prod"], |c| {
            c.env("HOME", "/nonexistent")
        });
        assert_eq!(run.code, 2, "{}", run.transcript());
        assert!(
            run.stderr.contains("nothing was sent to the cluster"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("spec.replica: unknown field `replica`"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn diff_base_shows_findings_at_the_top_of_the_comment() {
    let p = shop(&[]);
    git(&p, &["init", "-q", "-b", "main"]);
    git(&p, &["add", "-A"]);
    git(&p, &["commit", "-q", "-m", "base"]);
    let manifest = p.read("kpin.yaml").replace(
        "overlays: []",
        "overlays: [overlays/web/replicas-typo.yaml]",
    );
    p.write("kpin.yaml", &manifest);
    let run = p.run(&[
        "diff", "--base", "main", "--env", "prod", "--output", "markdown",
    ]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    insta::assert_snapshot!(run.stdout);
    let json = p.run(&[
        "diff", "--base", "main", "--env", "prod", "--output", "json",
    ]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["validation"]["errors"], 1, "{}", json.stdout);
    let off = p.run(&["diff", "--base", "main", "--env", "prod", "--no-validate"]);
    assert_eq!(off.code, 1, "{}", off.transcript());
}

#[test]
fn kubernetes_version_must_be_quoted_and_known() {
    let p = shop(&[]);
    let manifest = p.read("kpin.yaml");
    p.write(
        "kpin.yaml",
        &manifest.replace("kubernetesVersion: \"1.31\"", "kubernetesVersion: 1.30"),
    );
    let run = p.run(&["render"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    insta::assert_snapshot!(run.stderr);
    p.write(
        "kpin.yaml",
        &manifest.replace("kubernetesVersion: \"1.31\"", "kubernetesVersion: \"1.19\""),
    );
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("error: kpin has no API schemas for Kubernetes 1.19"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// The upstream corpus.
// ---------------------------------------------------------------------------------------------

/// Findings in real releases that are real: (release, minors below which it appears, field).
/// external-secrets 0.20.4 sets `selectableFields` on its CRD versions, a field of Kubernetes
/// 1.30 and later: on older clusters the API server refuses the CRD.
const KNOWN_UPSTREAM_DEFECTS: &[(&str, u32, &str)] = &[(
    "external-secrets/v0.20.4/bundle.yaml",
    30,
    "selectableFields",
)];

fn read(path: &Path) -> Vec<Object> {
    let text = std::fs::read_to_string(path).unwrap();
    kpin::object::Object::all_from_yaml(&text, path).unwrap()
}

#[test]
fn every_upstream_release_validates_clean_on_every_supported_version() {
    let Some(dir) =
        upstream_or_skip("every_upstream_release_validates_clean_on_every_supported_version")
    else {
        return;
    };
    let releases: Vec<(String, Vec<Object>)> = support::upstream_releases(&dir)
        .into_iter()
        .map(|(label, path)| {
            let objects = read(&path);
            (label, objects)
        })
        .collect();
    assert_eq!(releases.len(), 29);
    let versions = validate::supported_versions();
    assert!(versions.contains(&k8s(29)) && versions.contains(&k8s(35)));
    let mut unexpected = Vec::new();
    let mut known_seen = 0;
    for version in versions {
        for (label, objects) in &releases {
            let mut crds = CrdIndex::default();
            crds.add(label, objects);
            let report =
                validate::check_packages(&[(label.as_str(), objects)], None, version, &mut crds)
                    .unwrap();
            assert_eq!(report.objects, objects.len());
            for f in &report.findings {
                let known = KNOWN_UPSTREAM_DEFECTS
                    .iter()
                    .any(|(release, below, field)| {
                        label == release
                            && version.minor < *below
                            && f.path.as_deref().is_some_and(|p| p.ends_with(field))
                    });
                if known {
                    known_seen += 1;
                } else {
                    unexpected.push(format!("{version} {:?} {f}", f.severity));
                }
            }
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    assert!(known_seen > 0, "the known defects are still found");
}

#[test]
fn a_broken_copy_of_every_upstream_workload_is_refused() {
    // The clean result above means something only if the same objects, broken, fail.
    let Some(dir) = upstream_or_skip("a_broken_copy_of_every_upstream_workload_is_refused") else {
        return;
    };
    for (label, path) in support::upstream_releases(&dir) {
        let mut objects = read(&path);
        let mut broken = 0;
        for o in &mut objects {
            if matches!(o.kind(), "Deployment" | "DaemonSet" | "StatefulSet") {
                o.0["spec"]["replica"] = 2.into();
                broken += 1;
            }
        }
        let mut crds = CrdIndex::default();
        crds.add(&label, &objects);
        let report =
            validate::check_packages(&[(label.as_str(), &objects)], None, k8s(31), &mut crds)
                .unwrap();
        let errors: Vec<_> = report.errors().collect();
        assert_eq!(errors.len(), broken, "{label}: {errors:#?}");
        assert!(errors.iter().all(|f| f.severity == Severity::Error
            && f.path.as_deref() == Some("spec.replica")));
    }
}
