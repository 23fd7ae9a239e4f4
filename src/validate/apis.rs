//! Deprecated and removed built-in API versions: which Kubernetes minor stops serving an
//! `apiVersion`/kind and what replaces it, so a render is checked against the cluster's minor
//! version (and `kpin verify --kubernetes-version 1.33` answers "can we upgrade?").
//!
//! Source: the Kubernetes Deprecated API Migration Guide,
//! <https://kubernetes.io/docs/reference/using-api/deprecation-guide/> (the "removed in"
//! sections), and the deprecation notes of each release's changelog for "deprecated in".

use super::KubeVersion;

/// One API version of one kind that Kubernetes deprecates and removes.
#[derive(Debug, PartialEq, Eq)]
pub struct RetiredApi {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// First minor version that warns about it.
    pub deprecated_in: KubeVersion,
    /// First minor version that no longer serves it; `None` while only deprecated.
    pub removed_in: Option<KubeVersion>,
    /// What to use instead (`policy/v1`), or what to do when nothing replaces it.
    pub replacement: &'static str,
}

const fn v(minor: u32) -> KubeVersion {
    KubeVersion { major: 1, minor }
}

macro_rules! retired {
    ($( $group:literal $version:literal $kind:literal deprecated $dep:literal removed $rem:expr => $repl:literal ; )*) => {
        &[ $( RetiredApi { group: $group, version: $version, kind: $kind, deprecated_in: v($dep), removed_in: $rem, replacement: $repl } ),* ]
    };
}

/// The table, by removal version.
pub static RETIRED_APIS: &[RetiredApi] = retired! {
    // Removed in 1.16.
    "extensions" "v1beta1" "Deployment" deprecated 9 removed Some(v(16)) => "apps/v1";
    "extensions" "v1beta1" "DaemonSet" deprecated 9 removed Some(v(16)) => "apps/v1";
    "extensions" "v1beta1" "ReplicaSet" deprecated 9 removed Some(v(16)) => "apps/v1";
    "extensions" "v1beta1" "NetworkPolicy" deprecated 9 removed Some(v(16)) => "networking.k8s.io/v1";
    "extensions" "v1beta1" "PodSecurityPolicy" deprecated 10 removed Some(v(16)) => "policy/v1beta1 (itself removed in 1.25)";
    "apps" "v1beta1" "Deployment" deprecated 9 removed Some(v(16)) => "apps/v1";
    "apps" "v1beta1" "StatefulSet" deprecated 9 removed Some(v(16)) => "apps/v1";
    "apps" "v1beta2" "Deployment" deprecated 9 removed Some(v(16)) => "apps/v1";
    "apps" "v1beta2" "DaemonSet" deprecated 9 removed Some(v(16)) => "apps/v1";
    "apps" "v1beta2" "ReplicaSet" deprecated 9 removed Some(v(16)) => "apps/v1";
    "apps" "v1beta2" "StatefulSet" deprecated 9 removed Some(v(16)) => "apps/v1";
    // Removed in 1.22.
    "admissionregistration.k8s.io" "v1beta1" "MutatingWebhookConfiguration" deprecated 16 removed Some(v(22)) => "admissionregistration.k8s.io/v1";
    "admissionregistration.k8s.io" "v1beta1" "ValidatingWebhookConfiguration" deprecated 16 removed Some(v(22)) => "admissionregistration.k8s.io/v1";
    "apiextensions.k8s.io" "v1beta1" "CustomResourceDefinition" deprecated 16 removed Some(v(22)) => "apiextensions.k8s.io/v1";
    "apiregistration.k8s.io" "v1beta1" "APIService" deprecated 19 removed Some(v(22)) => "apiregistration.k8s.io/v1";
    "authentication.k8s.io" "v1beta1" "TokenReview" deprecated 19 removed Some(v(22)) => "authentication.k8s.io/v1";
    "authorization.k8s.io" "v1beta1" "SubjectAccessReview" deprecated 19 removed Some(v(22)) => "authorization.k8s.io/v1";
    "authorization.k8s.io" "v1beta1" "LocalSubjectAccessReview" deprecated 19 removed Some(v(22)) => "authorization.k8s.io/v1";
    "authorization.k8s.io" "v1beta1" "SelfSubjectAccessReview" deprecated 19 removed Some(v(22)) => "authorization.k8s.io/v1";
    "certificates.k8s.io" "v1beta1" "CertificateSigningRequest" deprecated 19 removed Some(v(22)) => "certificates.k8s.io/v1";
    "coordination.k8s.io" "v1beta1" "Lease" deprecated 19 removed Some(v(22)) => "coordination.k8s.io/v1";
    "extensions" "v1beta1" "Ingress" deprecated 14 removed Some(v(22)) => "networking.k8s.io/v1";
    "networking.k8s.io" "v1beta1" "Ingress" deprecated 19 removed Some(v(22)) => "networking.k8s.io/v1";
    "networking.k8s.io" "v1beta1" "IngressClass" deprecated 19 removed Some(v(22)) => "networking.k8s.io/v1";
    "rbac.authorization.k8s.io" "v1beta1" "ClusterRole" deprecated 17 removed Some(v(22)) => "rbac.authorization.k8s.io/v1";
    "rbac.authorization.k8s.io" "v1beta1" "ClusterRoleBinding" deprecated 17 removed Some(v(22)) => "rbac.authorization.k8s.io/v1";
    "rbac.authorization.k8s.io" "v1beta1" "Role" deprecated 17 removed Some(v(22)) => "rbac.authorization.k8s.io/v1";
    "rbac.authorization.k8s.io" "v1beta1" "RoleBinding" deprecated 17 removed Some(v(22)) => "rbac.authorization.k8s.io/v1";
    "scheduling.k8s.io" "v1beta1" "PriorityClass" deprecated 14 removed Some(v(22)) => "scheduling.k8s.io/v1";
    "storage.k8s.io" "v1beta1" "CSIDriver" deprecated 19 removed Some(v(22)) => "storage.k8s.io/v1";
    "storage.k8s.io" "v1beta1" "CSINode" deprecated 17 removed Some(v(22)) => "storage.k8s.io/v1";
    "storage.k8s.io" "v1beta1" "StorageClass" deprecated 19 removed Some(v(22)) => "storage.k8s.io/v1";
    "storage.k8s.io" "v1beta1" "VolumeAttachment" deprecated 19 removed Some(v(22)) => "storage.k8s.io/v1";
    // Removed in 1.25.
    "batch" "v1beta1" "CronJob" deprecated 21 removed Some(v(25)) => "batch/v1";
    "discovery.k8s.io" "v1beta1" "EndpointSlice" deprecated 21 removed Some(v(25)) => "discovery.k8s.io/v1";
    "events.k8s.io" "v1beta1" "Event" deprecated 22 removed Some(v(25)) => "events.k8s.io/v1";
    "autoscaling" "v2beta1" "HorizontalPodAutoscaler" deprecated 22 removed Some(v(25)) => "autoscaling/v2";
    "policy" "v1beta1" "PodDisruptionBudget" deprecated 21 removed Some(v(25)) => "policy/v1";
    "policy" "v1beta1" "PodSecurityPolicy" deprecated 21 removed Some(v(25)) => "nothing: use Pod Security Admission or a third-party admission webhook";
    "node.k8s.io" "v1beta1" "RuntimeClass" deprecated 20 removed Some(v(25)) => "node.k8s.io/v1";
    // Removed in 1.26.
    "flowcontrol.apiserver.k8s.io" "v1beta1" "FlowSchema" deprecated 23 removed Some(v(26)) => "flowcontrol.apiserver.k8s.io/v1";
    "flowcontrol.apiserver.k8s.io" "v1beta1" "PriorityLevelConfiguration" deprecated 23 removed Some(v(26)) => "flowcontrol.apiserver.k8s.io/v1";
    "autoscaling" "v2beta2" "HorizontalPodAutoscaler" deprecated 23 removed Some(v(26)) => "autoscaling/v2";
    // Removed in 1.27.
    "storage.k8s.io" "v1beta1" "CSIStorageCapacity" deprecated 24 removed Some(v(27)) => "storage.k8s.io/v1";
    // Removed in 1.29.
    "flowcontrol.apiserver.k8s.io" "v1beta2" "FlowSchema" deprecated 26 removed Some(v(29)) => "flowcontrol.apiserver.k8s.io/v1";
    "flowcontrol.apiserver.k8s.io" "v1beta2" "PriorityLevelConfiguration" deprecated 26 removed Some(v(29)) => "flowcontrol.apiserver.k8s.io/v1";
    // Removed in 1.32.
    "flowcontrol.apiserver.k8s.io" "v1beta3" "FlowSchema" deprecated 29 removed Some(v(32)) => "flowcontrol.apiserver.k8s.io/v1";
    "flowcontrol.apiserver.k8s.io" "v1beta3" "PriorityLevelConfiguration" deprecated 29 removed Some(v(32)) => "flowcontrol.apiserver.k8s.io/v1";
    // Deprecated, still served.
    "" "v1" "Endpoints" deprecated 33 removed None => "discovery.k8s.io/v1 EndpointSlice";
};

/// The table entry for an object's `apiVersion` and kind, if it is retired at all.
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static RetiredApi> {
    let group = crate::kinds::group_of(api_version);
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    RETIRED_APIS
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// What `kubernetes` makes of an API version: removed, deprecated, or fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Removed(&'static RetiredApi),
    Deprecated(&'static RetiredApi),
}

pub fn status(api_version: &str, kind: &str, kubernetes: KubeVersion) -> Option<Status> {
    let entry = lookup(api_version, kind)?;
    match entry.removed_in {
        Some(removed) if kubernetes >= removed => Some(Status::Removed(entry)),
        _ if kubernetes >= entry.deprecated_in => Some(Status::Deprecated(entry)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_disruption_budgets_moved_to_policy_v1_in_1_25() {
        assert_eq!(
            status("policy/v1beta1", "PodDisruptionBudget", v(24))
                .map(|s| matches!(s, Status::Deprecated(_))),
            Some(true)
        );
        match status("policy/v1beta1", "PodDisruptionBudget", v(25)) {
            Some(Status::Removed(r)) => assert_eq!(r.replacement, "policy/v1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(status("policy/v1", "PodDisruptionBudget", v(31)), None);
        assert_eq!(status("policy/v1beta1", "PodDisruptionBudget", v(20)), None);
    }

    #[test]
    fn every_entry_is_removed_after_it_is_deprecated() {
        for r in RETIRED_APIS {
            if let Some(removed) = r.removed_in {
                assert!(removed > r.deprecated_in, "{r:?}");
            }
            assert!(!r.replacement.is_empty(), "{r:?}");
        }
    }
}
