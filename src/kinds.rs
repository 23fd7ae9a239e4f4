//! The data tables about Kubernetes kinds: scope (namespaced or cluster-wide) and apply order.
//! Every rule that depends on a kind lives here, not in `if kind == ...` scattered elsewhere.

/// When an object is applied, in order. Rendering sorts by this too, so output reads
/// foundations first and webhooks last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// CustomResourceDefinitions: everything else may depend on them.
    Crds = 0,
    Namespaces = 1,
    /// Cluster-wide policy and RBAC: roles must exist before workloads use them.
    ClusterSetup = 2,
    /// Namespaced configuration and identities: service accounts, roles, config maps, secrets.
    NamespacedSetup = 3,
    /// Services and other networking before the workloads that serve them.
    Networking = 4,
    Workloads = 5,
    /// Objects of kinds kpin does not know, including custom resources.
    Other = 6,
    /// Admission webhooks and API services last: registering them before their backend runs
    /// would block the rest of the apply.
    Admission = 7,
}

impl Stage {
    /// Short name used in `kpin render --output-dir` file names.
    pub fn slug(self) -> &'static str {
        match self {
            Stage::Crds => "crds",
            Stage::Namespaces => "namespaces",
            Stage::ClusterSetup => "cluster",
            Stage::NamespacedSetup => "setup",
            Stage::Networking => "networking",
            Stage::Workloads => "workloads",
            Stage::Other => "other",
            Stage::Admission => "admission",
        }
    }
}

pub struct KindInfo {
    pub group: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub stage: Stage,
}

macro_rules! kinds {
    ($( $group:literal $kind:literal $namespaced:literal $stage:ident ; )*) => {
        &[ $( KindInfo { group: $group, kind: $kind, namespaced: $namespaced, stage: Stage::$stage } ),* ]
    };
}

/// Built-in kinds kpin knows; the order within one stage is the order of this table.
pub static KINDS: &[KindInfo] = kinds! {
    "apiextensions.k8s.io" "CustomResourceDefinition" false Crds;
    "" "Namespace" false Namespaces;
    "scheduling.k8s.io" "PriorityClass" false ClusterSetup;
    "storage.k8s.io" "StorageClass" false ClusterSetup;
    "storage.k8s.io" "CSIDriver" false ClusterSetup;
    "node.k8s.io" "RuntimeClass" false ClusterSetup;
    "networking.k8s.io" "IngressClass" false ClusterSetup;
    "admissionregistration.k8s.io" "ValidatingAdmissionPolicy" false ClusterSetup;
    "admissionregistration.k8s.io" "ValidatingAdmissionPolicyBinding" false ClusterSetup;
    "" "PersistentVolume" false ClusterSetup;
    "rbac.authorization.k8s.io" "ClusterRole" false ClusterSetup;
    "rbac.authorization.k8s.io" "ClusterRoleBinding" false ClusterSetup;
    "" "ResourceQuota" true NamespacedSetup;
    "" "LimitRange" true NamespacedSetup;
    "" "ServiceAccount" true NamespacedSetup;
    "" "Secret" true NamespacedSetup;
    "" "ConfigMap" true NamespacedSetup;
    "rbac.authorization.k8s.io" "Role" true NamespacedSetup;
    "rbac.authorization.k8s.io" "RoleBinding" true NamespacedSetup;
    "" "PersistentVolumeClaim" true NamespacedSetup;
    "networking.k8s.io" "NetworkPolicy" true Networking;
    "" "Service" true Networking;
    "" "Endpoints" true Networking;
    "discovery.k8s.io" "EndpointSlice" true Networking;
    "networking.k8s.io" "Ingress" true Networking;
    "policy" "PodDisruptionBudget" true Workloads;
    "apps" "Deployment" true Workloads;
    "apps" "DaemonSet" true Workloads;
    "apps" "StatefulSet" true Workloads;
    "apps" "ReplicaSet" true Workloads;
    "" "Pod" true Workloads;
    "batch" "Job" true Workloads;
    "batch" "CronJob" true Workloads;
    "autoscaling" "HorizontalPodAutoscaler" true Workloads;
    "apiregistration.k8s.io" "APIService" false Admission;
    "admissionregistration.k8s.io" "MutatingWebhookConfiguration" false Admission;
    "admissionregistration.k8s.io" "ValidatingWebhookConfiguration" false Admission;
};

/// The API group of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

pub fn lookup(group: &str, kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.group == group && k.kind == kind)
}

/// Position of a kind in apply/render order: (stage, index in table). Unknown kinds sort in
/// `Stage::Other` after all known ones of that stage.
pub fn rank(group: &str, kind: &str) -> (Stage, usize) {
    match KINDS
        .iter()
        .position(|k| k.group == group && k.kind == kind)
    {
        Some(i) => (KINDS[i].stage, i),
        None => (Stage::Other, KINDS.len()),
    }
}

/// Whether a kind is namespaced: the table for built-ins, `extra` (from CRDs in the same
/// render) for custom kinds; `None` when unknown.
pub fn namespaced(
    group: &str,
    kind: &str,
    extra: &dyn Fn(&str, &str) -> Option<bool>,
) -> Option<bool> {
    lookup(group, kind)
        .map(|k| k.namespaced)
        .or_else(|| extra(group, kind))
}

/// A field outside `metadata.namespace` that names a namespace: the `namespace` key inside the
/// mapping at `parent` (keys, `*` for every list item), only for items whose `kind` equals
/// `only_kind` when given. Moving a package rewrites these; kustomize misses several of them.
pub struct NamespaceRef {
    pub group: &'static str,
    pub kind: &'static str,
    pub parent: &'static [&'static str],
    pub only_kind: Option<&'static str>,
}

macro_rules! namespace_refs {
    ($( $group:literal $kind:literal [$($seg:literal)*] $only:expr ; )*) => {
        &[ $( NamespaceRef { group: $group, kind: $kind, parent: &[$($seg),*], only_kind: $only } ),* ]
    };
}

pub static NAMESPACE_REFS: &[NamespaceRef] = namespace_refs! {
    "rbac.authorization.k8s.io" "RoleBinding" ["subjects" "*"] Some("ServiceAccount");
    "rbac.authorization.k8s.io" "ClusterRoleBinding" ["subjects" "*"] Some("ServiceAccount");
    "admissionregistration.k8s.io" "ValidatingWebhookConfiguration" ["webhooks" "*" "clientConfig" "service"] None;
    "admissionregistration.k8s.io" "MutatingWebhookConfiguration" ["webhooks" "*" "clientConfig" "service"] None;
    "apiregistration.k8s.io" "APIService" ["spec" "service"] None;
    "apiextensions.k8s.io" "CustomResourceDefinition" ["spec" "conversion" "webhook" "clientConfig" "service"] None;
};

/// Kinds holding RBAC `rules`.
pub static RULE_KINDS: &[(&str, &str)] = &[
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
];

/// Kinds holding RBAC `subjects`.
pub static BINDING_KINDS: &[(&str, &str)] = &[
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
];

/// `ServiceAccount`, the subject kind a namespace move rewrites.
pub const SERVICE_ACCOUNT_KIND: (&str, &str) = ("", "ServiceAccount");

/// The `Namespace` kind itself, renamed when a package moves.
pub const NAMESPACE_KIND: (&str, &str) = ("", "Namespace");

/// `CustomResourceDefinition`, whose `spec.scope` tells the scope of custom kinds.
pub const CRD_KIND: (&str, &str) = ("apiextensions.k8s.io", "CustomResourceDefinition");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_puts_crds_first_and_webhooks_last() {
        let crd = rank("apiextensions.k8s.io", "CustomResourceDefinition");
        let ns = rank("", "Namespace");
        let deploy = rank("apps", "Deployment");
        let custom = rank("example.com", "Widget");
        let webhook = rank(
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
        );
        assert!(crd < ns && ns < deploy && deploy < custom && custom < webhook);
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
    }
}
