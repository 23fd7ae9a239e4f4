//! The data tables about Kubernetes kinds: scope (namespaced or cluster-wide), apply order,
//! fields the API server refuses to change, and kinds whose deletion deletes other objects.
//! Every rule that depends on a kind lives here, not in `if kind == ...` scattered elsewhere.

use serde_json::Value;

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
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
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

/// `Secret`, whose values are masked in diffs and never fingerprinted.
pub const SECRET_KIND: (&str, &str) = ("", "Secret");

/// The `Namespace` kind itself, renamed when a package moves.
pub const NAMESPACE_KIND: (&str, &str) = ("", "Namespace");

/// `CustomResourceDefinition`, whose `spec.scope` tells the scope of custom kinds.
pub const CRD_KIND: (&str, &str) = ("apiextensions.k8s.io", "CustomResourceDefinition");

/// A field the API server refuses to change once the object exists (422 "field is immutable"):
/// the field at `path`, or, when `except` is not empty, every child of `path` but those.
pub struct ImmutableField {
    pub group: &'static str,
    pub kind: &'static str,
    pub path: &'static [&'static str],
    pub except: &'static [&'static str],
}

macro_rules! immutable_fields {
    ($( $group:literal $kind:literal [$($seg:literal)*] except [$($ex:literal)*] ; )*) => {
        &[ $( ImmutableField { group: $group, kind: $kind, path: &[$($seg),*], except: &[$($ex),*] } ),* ]
    };
}

/// Objects with this annotation set to `"true"` are deleted and re-created when an immutable
/// field changes, even without `--recreate`.
pub const RECREATE_ANNOTATION: &str = "kpin.dev/recreate";

/// From the API server's validation (`ValidateXUpdate` in kubernetes/pkg/apis/*/validation):
/// changing one of these makes `kpin apply` need `--recreate` or the `kpin.dev/recreate`
/// annotation, so reviews of upgrades and diffs flag them before any cluster is involved.
pub static IMMUTABLE_FIELDS: &[ImmutableField] = immutable_fields! {
    "batch" "Job" ["spec" "template"] except [];
    "batch" "Job" ["spec" "selector"] except [];
    "apps" "Deployment" ["spec" "selector"] except [];
    "apps" "DaemonSet" ["spec" "selector"] except [];
    "apps" "ReplicaSet" ["spec" "selector"] except [];
    // "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template',
    // 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and
    // 'minReadySeconds' are forbidden"
    "apps" "StatefulSet" ["spec"] except ["replicas" "ordinals" "template" "updateStrategy"
        "revisionHistoryLimit" "persistentVolumeClaimRetentionPolicy" "minReadySeconds"];
    "" "Service" ["spec" "clusterIP"] except [];
    "networking.k8s.io" "IngressClass" ["spec" "controller"] except [];
    // A bound claim may only grow (resources) or change its volume attributes class.
    "" "PersistentVolumeClaim" ["spec"] except ["resources" "volumeAttributesClassName"];
    "rbac.authorization.k8s.io" "RoleBinding" ["roleRef"] except [];
    "rbac.authorization.k8s.io" "ClusterRoleBinding" ["roleRef"] except [];
    "storage.k8s.io" "StorageClass" ["provisioner"] except [];
    "storage.k8s.io" "StorageClass" ["parameters"] except [];
    "storage.k8s.io" "StorageClass" ["reclaimPolicy"] except [];
    "storage.k8s.io" "StorageClass" ["volumeBindingMode"] except [];
};

/// The known-immutable fields of a `group`/`kind` object that differ between `before` and
/// `after`, as dotted paths (`spec.template`, `spec.serviceName`), in table order.
pub fn immutable_changes(group: &str, kind: &str, before: &Value, after: &Value) -> Vec<String> {
    let at = |v: &Value, path: &[&str]| path.iter().try_fold(v, |cur, seg| cur.get(*seg)).cloned();
    let mut out = Vec::new();
    for rule in IMMUTABLE_FIELDS
        .iter()
        .filter(|r| r.group == group && r.kind == kind)
    {
        let (b, a) = (at(before, rule.path), at(after, rule.path));
        if rule.except.is_empty() {
            if b != a {
                out.push(rule.path.join("."));
            }
            continue;
        }
        let empty = serde_json::Map::new();
        let (b, a) = (
            b.as_ref().and_then(Value::as_object).unwrap_or(&empty),
            a.as_ref().and_then(Value::as_object).unwrap_or(&empty),
        );
        let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        for key in keys {
            if !rule.except.contains(&key.as_str()) && b.get(key) != a.get(key) {
                out.push(format!("{}.{key}", rule.path.join(".")));
            }
        }
    }
    out
}

/// A kind whose deletion deletes other objects too: `kpin apply --prune` deletes objects of
/// these kinds only when `--prune-allow` names the kind.
pub struct CascadingKind {
    pub group: &'static str,
    pub kind: &'static str,
    /// What else goes, for the `kept` reason.
    pub deletes: &'static str,
}

pub static CASCADING_KINDS: &[CascadingKind] = &[
    CascadingKind {
        group: "apiextensions.k8s.io",
        kind: "CustomResourceDefinition",
        deletes: "deleting a CustomResourceDefinition deletes every custom resource of its kind in the cluster",
    },
    CascadingKind {
        group: "",
        kind: "Namespace",
        deletes: "deleting a Namespace deletes everything in it",
    },
];

/// A field the API server takes on write but never stores: it folds each key into `stored` (a
/// Secret's `stringData` into `data`). What kpin owns there shows in `stored` only.
pub struct WriteOnlyField {
    pub group: &'static str,
    pub kind: &'static str,
    pub field: &'static str,
    pub stored: &'static str,
}

pub static WRITE_ONLY_FIELDS: &[WriteOnlyField] = &[WriteOnlyField {
    group: "",
    kind: "Secret",
    field: "stringData",
    stored: "data",
}];

pub fn cascading(group: &str, kind: &str) -> Option<&'static CascadingKind> {
    CASCADING_KINDS
        .iter()
        .find(|c| c.group == group && c.kind == kind)
}

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

    #[test]
    fn immutable_changes_name_the_fields_the_server_refuses() {
        let job = |image: &str| serde_json::json!({"spec": {"backoffLimit": 1, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
        assert_eq!(
            immutable_changes("batch", "Job", &job("a:1"), &job("a:2")),
            ["spec.template"]
        );
        assert!(immutable_changes("batch", "Job", &job("a:1"), &job("a:1")).is_empty());
        assert!(
            immutable_changes("apps", "Deployment", &job("a:1"), &job("a:2")).is_empty(),
            "a Deployment's template may change"
        );
        let sts = |replicas: u32, service: &str| serde_json::json!({"spec": {"replicas": replicas, "serviceName": service, "template": {}}});
        assert!(immutable_changes("apps", "StatefulSet", &sts(1, "a"), &sts(3, "a")).is_empty());
        assert_eq!(
            immutable_changes("apps", "StatefulSet", &sts(1, "a"), &sts(1, "b")),
            ["spec.serviceName"]
        );
        let binding =
            |role: &str| serde_json::json!({"roleRef": {"kind": "ClusterRole", "name": role}});
        assert_eq!(
            immutable_changes(
                "rbac.authorization.k8s.io",
                "ClusterRoleBinding",
                &binding("a"),
                &binding("b")
            ),
            ["roleRef"]
        );
    }

    #[test]
    fn crds_and_namespaces_cascade() {
        assert!(cascading("apiextensions.k8s.io", "CustomResourceDefinition").is_some());
        assert!(cascading("", "Namespace").is_some());
        assert!(cascading("", "ConfigMap").is_none());
    }
}
