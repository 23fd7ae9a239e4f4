//! Integration tests: validation. What kpin renders is checked offline against the API schemas
//! of the cluster's Kubernetes version and the CRDs of every package, so a typo in an overlay
//! fails the pull request, not the apply.

use std::path::Path;

use kpin::object::Object;
use kpin::validate::{self, CrdIndex, KubeVersion, Severity};

use crate::support::{self, upstream_or_skip};

fn k8s(minor: u32) -> KubeVersion {
    KubeVersion { major: 1, minor }
}

fn read(path: &Path) -> Vec<Object> {
    let text = std::fs::read_to_string(path).unwrap();
    kpin::render::objects_from_yaml(&text, path).unwrap()
}

#[test]
fn every_upstream_release_validates_clean() {
    let Some(dir) = upstream_or_skip("every_upstream_release_validates_clean") else {
        return;
    };
    let mut all = Vec::new();
    for (label, path) in support::upstream_releases(&dir) {
        let objects = read(&path);
        let mut crds = CrdIndex::default();
        crds.add(&label, &objects);
        let report = validate::check_packages(
            &[(label.as_str(), &objects)],
            None,
            k8s(std::env::var("KV")
                .map(|v| v.parse().unwrap())
                .unwrap_or(31)),
            &mut crds,
        )
        .unwrap();
        for f in &report.findings {
            all.push(format!("{:?} {f}", f.severity));
        }
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}
