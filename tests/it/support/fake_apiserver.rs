//! An in-process fake Kubernetes API server on loopback that answers like a real kube-apiserver
//! wherever kpin depends on it. `tests/it/conformance.rs` replays recordings of a real server
//! (`../shared/apiserver-recordings`) against it and lists what it does not model (KNOWN_GAPS).
//!
//! Modelled: discovery (plain and aggregated, with scopes and subresources); GET and LIST (items
//! of built-in kinds carry no kind/apiVersion, those of custom resources do; label and field
//! selectors); server-side apply with managed fields kept as the real server keeps them (keyed
//! list maps such as containers and env, sets, atomic lists and maps, conflicts naming the other
//! manager, `force`, shared ownership of equal values, removal of fields a manager stops
//! applying, no-op applies that keep the resourceVersion); create (POST), update (PUT), JSON and
//! merge patches with `Update` entries; DELETE with finalizers and foreground deletion, and
//! Namespaces and CRDs that terminate while their finalizers (controllers here) delete what they
//! hold; CRDs that become Established after a delay and whose schemas type-check custom resources; error answers (404 texts, 409, 422 for immutable fields, 500 for
//! schema errors) worded as the real server words them; `metadata.generation` only on kinds that
//! have it; and a few controllers: each namespace's `kube-root-ca.crt`, the Job selector and
//! labels, the Deployment revision annotation, and the status of Deployments, StatefulSets,
//! DaemonSets, Jobs and APIServices.
//!
//! Controllers act on an object once the controller delay has passed (zero by default: before
//! the next request) or right before the next write to it, whichever comes first. The answer to
//! the write that gave them work never shows that work, as on a real server.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// How the fake behaves; tests change it before or while kpin runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Added to every request, like network and API server latency.
    pub latency: Duration,
    /// Time between creating a CRD and its Established condition (and its kinds in discovery).
    pub crd_establish_delay: Duration,
    /// Whether Deployments, StatefulSets, DaemonSets and Jobs report themselves rolled out.
    pub workloads_become_ready: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            latency: Duration::ZERO,
            crd_establish_delay: Duration::from_millis(300),
            workloads_become_ready: true,
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    /// When the request arrived, since the server started.
    pub at: Duration,
    /// DELETE sends `dryRun` in its DeleteOptions body rather than the query.
    pub body_dry_run: bool,
}

impl Logged {
    pub fn dry_run(&self) -> bool {
        self.query.contains("dryRun=All") || self.body_dry_run
    }
    /// `PATCH /api/v1/namespaces/x/configmaps/y` style summary.
    pub fn line(&self) -> String {
        let dry = if self.dry_run() { " (dry run)" } else { "" };
        format!("{} {}{dry}", self.method, self.path)
    }
    pub fn is_discovery(&self) -> bool {
        self.method == "GET"
            && (self.path == "/api"
                || self.path == "/apis"
                || self.path == "/version"
                || self.path.starts_with("/openapi")
                || self.path.matches('/').count() <= 3 && self.path.starts_with("/apis/")
                || self.path == "/api/v1")
    }
}

/// A kind the fake serves.
#[derive(Debug, Clone)]
struct ResourceType {
    group: String,
    version: String,
    kind: String,
    plural: String,
    list_kind: String,
    namespaced: bool,
    /// The CRD that defines it; `None` for built-in kinds (whose LIST items carry no kind).
    crd: Option<String>,
    /// `metadata.generation` is set, and bumped when anything but metadata and status changes.
    generation: bool,
    subresources: Vec<String>,
    /// Top-level fields of a built-in kind besides apiVersion, kind and metadata.
    fields: Vec<String>,
    /// A custom resource's `openAPIV3Schema`.
    schema: Option<Arc<Value>>,
}

impl ResourceType {
    fn builtin(&self) -> bool {
        self.crd.is_none()
    }

    /// With a status subresource, writes to the object itself leave `status` alone.
    fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `configmaps` or `jobs.batch`, as NotFound and conflict messages name a resource.
    fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `ConfigMap` or `Job.batch`, as validation messages name a kind.
    fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `{name, group (when not core), kind: <plural>}` as Status details name an object.
    fn details(&self, name: &str) -> Value {
        let mut d = Map::new();
        d.insert("name".into(), json!(name));
        if !self.group.is_empty() {
            d.insert("group".into(), json!(self.group));
        }
        d.insert("kind".into(), json!(self.plural));
        Value::Object(d)
    }
}

type Key = (String, String, String, String); // group, plural, namespace, name

/// A built-in kind.
struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    generation: bool,
    subresources: &'static [&'static str],
    fields: &'static [&'static str],
}

#[allow(clippy::too_many_arguments)]
const fn builtin(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    generation: bool,
    subresources: &'static [&'static str],
    fields: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        generation,
        subresources,
        fields,
    }
}

const SPEC_STATUS: &[&str] = &["spec", "status"];
const STATUS: &[&str] = &["status"];
const SCALE_STATUS: &[&str] = &["scale", "status"];
const NONE: &[&str] = &[];
const RBAC: &str = "rbac.authorization.k8s.io";
const ADMISSION: &str = "admissionregistration.k8s.io";
const NETWORKING: &str = "networking.k8s.io";

/// The built-in kinds: scope, whether they have `metadata.generation`, the subresources the real
/// server lists for them, and their top-level fields (an apply with any other is refused).
#[rustfmt::skip]
const BUILTIN: &[Builtin] = &[
    builtin("", "v1", "Namespace", "namespaces", false, false, &["finalize", "status"], SPEC_STATUS),
    builtin("", "v1", "ConfigMap", "configmaps", true, false, NONE, &["data", "binaryData", "immutable"]),
    builtin("", "v1", "Secret", "secrets", true, false, NONE, &["data", "stringData", "type", "immutable"]),
    builtin(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        false,
        &["token"],
        &["secrets", "imagePullSecrets", "automountServiceAccountToken"],
    ),
    builtin("", "v1", "Service", "services", true, false, &["proxy", "status"], SPEC_STATUS),
    builtin(
        "",
        "v1",
        "Pod",
        "pods",
        true,
        true,
        &["attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward", "proxy", "resize", "status"],
        SPEC_STATUS,
    ),
    builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, false, STATUS, SPEC_STATUS),
    builtin("", "v1", "Endpoints", "endpoints", true, false, NONE, &["subsets"]),
    builtin("apps", "v1", "Deployment", "deployments", true, true, SCALE_STATUS, SPEC_STATUS),
    builtin("apps", "v1", "StatefulSet", "statefulsets", true, true, SCALE_STATUS, SPEC_STATUS),
    builtin("apps", "v1", "DaemonSet", "daemonsets", true, true, STATUS, SPEC_STATUS),
    builtin("apps", "v1", "ReplicaSet", "replicasets", true, true, SCALE_STATUS, SPEC_STATUS),
    builtin("batch", "v1", "Job", "jobs", true, true, STATUS, SPEC_STATUS),
    builtin("batch", "v1", "CronJob", "cronjobs", true, true, STATUS, SPEC_STATUS),
    builtin(RBAC, "v1", "ClusterRole", "clusterroles", false, false, NONE, &["rules", "aggregationRule"]),
    builtin(RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings", false, false, NONE, &["subjects", "roleRef"]),
    builtin(RBAC, "v1", "Role", "roles", true, false, NONE, &["rules"]),
    builtin(RBAC, "v1", "RoleBinding", "rolebindings", true, false, NONE, &["subjects", "roleRef"]),
    builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        true,
        STATUS,
        SPEC_STATUS,
    ),
    builtin("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, false, STATUS, SPEC_STATUS),
    builtin(ADMISSION, "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false, true, NONE, &["webhooks"]),
    builtin(ADMISSION, "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false, true, NONE, &["webhooks"]),
    builtin(NETWORKING, "v1", "NetworkPolicy", "networkpolicies", true, true, NONE, &["spec"]),
    builtin(NETWORKING, "v1", "Ingress", "ingresses", true, true, STATUS, SPEC_STATUS),
    builtin(NETWORKING, "v1", "IngressClass", "ingressclasses", false, true, NONE, &["spec"]),
    builtin("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, true, STATUS, SPEC_STATUS),
    builtin("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, true, STATUS, SPEC_STATUS),
    builtin(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        false,
        NONE,
        &["value", "globalDefault", "description", "preemptionPolicy"],
    ),
    builtin(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        false,
        NONE,
        &["provisioner", "parameters", "reclaimPolicy", "mountOptions", "allowVolumeExpansion", "volumeBindingMode", "allowedTopologies"],
    ),
];

/// Fields of `metadata` (any other makes an apply fail like an unknown top-level field).
const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Lists the server stores as absent but whose update strategy compares with what was sent
/// (nil against empty), so that every apply with the list empty writes and bumps `generation`,
/// though nothing changes: (kind, top-level field). Recording `empty-collections-and-defaults`.
const REWRITTEN_WHEN_EMPTY: &[(&str, &str)] = &[
    ("MutatingWebhookConfiguration", "webhooks"),
    ("ValidatingWebhookConfiguration", "webhooks"),
];

fn rewritten_when_empty(t: &ResourceType, config: &Value) -> bool {
    t.builtin()
        && REWRITTEN_WHEN_EMPTY.iter().any(|(kind, field)| {
            t.kind == *kind
                && config
                    .get(*field)
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
        })
}

/// Fields that may not change once set: (group, kind, dotted path).
const IMMUTABLE: &[(&str, &str, &str)] = &[
    ("batch", "Job", "spec.selector"),
    ("batch", "Job", "spec.template"),
    ("apps", "Deployment", "spec.selector"),
    ("apps", "StatefulSet", "spec.selector"),
    ("apps", "DaemonSet", "spec.selector"),
    ("apps", "ReplicaSet", "spec.selector"),
    ("networking.k8s.io", "IngressClass", "spec.controller"),
];

// The schema facts server-side apply needs, as data: which lists are maps (and keyed by what),
// which are sets, which objects are atomic and which are free-form maps. Lists not named here are
// atomic, objects not named here are structs. A pattern matches the end of a path of field names
// in which `[]` stands for a list item; a leading `^` anchors it at the object's root.

/// Lists that are maps: (kind, "" for any; pattern; key fields).
const LIST_MAPS: &[(&str, &str, &[&str])] = &[
    ("", "^metadata.ownerReferences", &["uid"]),
    ("", "spec.containers", &["name"]),
    ("", "spec.initContainers", &["name"]),
    ("", "spec.ephemeralContainers", &["name"]),
    ("", "spec.volumes", &["name"]),
    ("", "spec.imagePullSecrets", &["name"]),
    ("", "spec.hostAliases", &["ip"]),
    (
        "",
        "spec.topologySpreadConstraints",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    ("", "spec.schedulingGates", &["name"]),
    ("", "spec.resourceClaims", &["name"]),
    ("", "status.conditions", &["type"]),
    ("Service", "^spec.ports", &["port", "protocol"]),
    ("MutatingWebhookConfiguration", "^webhooks", &["name"]),
    ("ValidatingWebhookConfiguration", "^webhooks", &["name"]),
];

/// Lists inside a container that are maps: (field, key fields).
const CONTAINER_LIST_MAPS: &[(&str, &[&str])] = &[
    ("env", &["name"]),
    ("ports", &["containerPort", "protocol"]),
    ("volumeMounts", &["mountPath"]),
    ("volumeDevices", &["devicePath"]),
];

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// Lists that are sets.
const LIST_SETS: &[(&str, &str)] = &[("", "^metadata.finalizers")];

/// Defaults of key fields that an item may leave out.
const KEY_DEFAULTS: &[(&str, &str)] = &[("protocol", "TCP")];

/// Objects owned as a whole (label selectors, references).
const ATOMIC: &[(&str, &str)] = &[
    ("Deployment", "^spec.selector"),
    ("ReplicaSet", "^spec.selector"),
    ("StatefulSet", "^spec.selector"),
    ("DaemonSet", "^spec.selector"),
    ("Job", "^spec.selector"),
    ("CronJob", "^spec.jobTemplate.spec.selector"),
    ("PodDisruptionBudget", "^spec.selector"),
    ("Service", "^spec.selector"),
    ("", "podSelector"),
    ("", "namespaceSelector"),
    ("", "labelSelector"),
    ("", "configMapKeyRef"),
    ("", "secretKeyRef"),
    ("", "fieldRef"),
    ("", "resourceFieldRef"),
    (
        "",
        "nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
    ),
];

/// Objects with free-form keys (as opposed to structs with declared fields).
const FREE_MAPS: &[(&str, &str)] = &[
    ("", "labels"),
    ("", "annotations"),
    ("", "matchLabels"),
    ("", "nodeSelector"),
    ("", "resources.limits"),
    ("", "resources.requests"),
    ("", "status.capacity"),
    ("ConfigMap", "^data"),
    ("ConfigMap", "^binaryData"),
    ("Secret", "^data"),
    ("Secret", "^stringData"),
    ("StorageClass", "^parameters"),
];

// ---------------------------------------------------------------------------------------------
// Schema facts

#[derive(Debug, Clone, PartialEq, Eq)]
enum ListType {
    Atomic,
    Set,
    /// A list map keyed by these fields (sorted).
    Map(Vec<String>),
}

/// What server-side apply needs to know about one node of an object.
#[derive(Debug, Clone)]
struct Info {
    list: ListType,
    /// Owned and replaced as a whole.
    atomic: bool,
    /// Keys are data, not declared fields (labels, ConfigMap data).
    free_map: bool,
}

/// Whether `names` (field names, `[]` for list items) ends with `pattern`.
fn path_matches(names: &[String], pattern: &str) -> bool {
    let (anchored, pattern) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let pat: Vec<&str> = pattern.split('.').collect();
    if names.len() < pat.len() || anchored && names.len() != pat.len() {
        return false;
    }
    names[names.len() - pat.len()..]
        .iter()
        .zip(&pat)
        .all(|(n, p)| n == p)
}

fn for_kind(kind: &str, k: &str) -> bool {
    k.is_empty() || k == kind
}

fn builtin_info(kind: &str, names: &[String]) -> Info {
    let n = names.len();
    let sorted = |keys: &[&str]| {
        let mut keys: Vec<String> = keys.iter().map(std::string::ToString::to_string).collect();
        keys.sort();
        keys
    };
    let mut list = ListType::Atomic;
    if let Some((_, _, keys)) = LIST_MAPS
        .iter()
        .find(|(k, p, _)| for_kind(kind, k) && path_matches(names, p))
    {
        list = ListType::Map(sorted(keys));
    } else if n >= 4
        && names[n - 2] == "[]"
        && CONTAINER_LISTS.contains(&names[n - 3].as_str())
        && names[n - 4] == "spec"
        && let Some((_, keys)) = CONTAINER_LIST_MAPS.iter().find(|(f, _)| names[n - 1] == *f)
    {
        list = ListType::Map(sorted(keys));
    } else if LIST_SETS
        .iter()
        .any(|(k, p)| for_kind(kind, k) && path_matches(names, p))
    {
        list = ListType::Set;
    }
    Info {
        list,
        atomic: ATOMIC
            .iter()
            .any(|(k, p)| for_kind(kind, k) && path_matches(names, p)),
        free_map: FREE_MAPS
            .iter()
            .any(|(k, p)| for_kind(kind, k) && path_matches(names, p)),
    }
}

/// The node of a CRD schema at `names`, if the schema declares it.
fn schema_node<'a>(schema: &'a Value, names: &[String]) -> Option<&'a Value> {
    let mut node = schema;
    for n in names {
        node = if n == "[]" {
            node.get("items")?
        } else {
            match node.get("properties").and_then(|p| p.get(n)) {
                Some(s) => s,
                None => match node.get("additionalProperties") {
                    Some(ap) if ap.is_object() => ap,
                    _ => return None,
                },
            }
        };
    }
    Some(node)
}

impl ResourceType {
    fn info(&self, names: &[String]) -> Info {
        let Some(schema) = &self.schema else {
            return builtin_info(&self.kind, names);
        };
        if names.first().is_some_and(|n| n == "metadata") {
            return builtin_info(&self.kind, names);
        }
        let Some(node) = schema_node(schema, names) else {
            return Info {
                list: ListType::Atomic,
                atomic: false,
                free_map: false,
            };
        };
        let list = match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                let mut keys: Vec<String> = node
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                keys.sort();
                ListType::Map(keys)
            }
            Some("set") => ListType::Set,
            _ => ListType::Atomic,
        };
        Info {
            list,
            atomic: node.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic"),
            free_map: node.get("additionalProperties").is_some()
                && node.get("properties").is_none(),
        }
    }

    /// The default of key field `key` of the list map at `names`, for items that leave it out.
    fn key_default(&self, names: &[String], key: &str) -> Option<Value> {
        if let Some(schema) = &self.schema
            && names.first().is_none_or(|n| n != "metadata")
        {
            let mut item = names.to_vec();
            item.push("[]".into());
            item.push(key.into());
            return schema_node(schema, &item).and_then(|n| n.get("default").cloned());
        }
        KEY_DEFAULTS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| json!(v))
    }

    /// The path element of `item` in the list at `names`.
    fn item_pe(&self, names: &[String], list: &ListType, item: &Value) -> Result<Pe, String> {
        match list {
            ListType::Map(keys) => {
                let Some(obj) = item.as_object() else {
                    return Err(format!("expected map, got {}", go_repr(item)));
                };
                let mut key = Map::new();
                for k in keys {
                    match obj.get(k).cloned().or_else(|| self.key_default(names, k)) {
                        Some(v) => {
                            key.insert(k.clone(), v);
                        }
                        None => {
                            return Err(format!(
                                "associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                            ));
                        }
                    }
                }
                Ok(Pe::Key(Value::Object(key).to_string()))
            }
            ListType::Set => Ok(Pe::Value(item.to_string())),
            ListType::Atomic => Err("atomic lists have no item keys".into()),
        }
    }
}

/// How the Go server prints an unexpected value (`%#v` of its unstructured value).
fn go_repr(v: &Value) -> String {
    format!("&value.valueUnstructured{{Value:{}}}", go_plain(v))
}

fn go_plain(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "map[string]interface {}{...}".into(),
        Value::Array(_) => "[]interface {}{...}".into(),
        other => other.to_string(),
    }
}

/// The Go type name of a JSON value (`%T`).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

// ---------------------------------------------------------------------------------------------
// Field paths and sets, as in managedFields (`f:`, `k:`, `v:`, `i:`)

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Pe {
    /// `f:name`: a field of an object.
    Field(String),
    /// `k:{"name":"app"}`: an item of a list map, by its key fields (JSON, sorted keys).
    Key(String),
    /// `v:"x"`: an item of a set.
    Value(String),
    /// `i:0`: an item of a list by position.
    Index(usize),
}

type FPath = Vec<Pe>;
type FSet = BTreeSet<FPath>;

impl Pe {
    fn encode(&self) -> String {
        match self {
            Pe::Field(f) => format!("f:{f}"),
            Pe::Key(k) => format!("k:{k}"),
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<Pe> {
        let (prefix, rest) = s.split_at_checked(2)?;
        match prefix {
            "f:" => Some(Pe::Field(rest.to_owned())),
            // Re-serialised so that key order does not matter (keys sort).
            "k:" => {
                let v: Value = serde_json::from_str(rest).ok()?;
                let mut sorted: Vec<(String, Value)> = v.as_object()?.clone().into_iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                Some(Pe::Key(
                    Value::Object(sorted.into_iter().collect()).to_string(),
                ))
            }
            "v:" => Some(Pe::Value(
                serde_json::from_str::<Value>(rest).ok()?.to_string(),
            )),
            "i:" => rest.parse().ok().map(Pe::Index),
            _ => None,
        }
    }

    /// How conflict messages show it: `.name`, `[name="app"]`, `[="x"]`, `[0]`.
    fn display(&self) -> String {
        match self {
            Pe::Field(f) => format!(".{f}"),
            Pe::Key(k) => {
                let v: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("[{}]", parts.join(","))
            }
            Pe::Value(v) => format!("[={v}]"),
            Pe::Index(i) => format!("[{i}]"),
        }
    }

    fn name(&self) -> String {
        match self {
            Pe::Field(f) => f.clone(),
            _ => "[]".into(),
        }
    }
}

fn path_display(p: &[Pe]) -> String {
    p.iter().map(Pe::display).collect()
}

fn names_of(p: &[Pe]) -> Vec<String> {
    p.iter().map(Pe::name).collect()
}

/// Paths no manager owns: identity and server bookkeeping.
fn is_stripped(p: &[Pe]) -> bool {
    match p {
        [Pe::Field(f)] => matches!(f.as_str(), "apiVersion" | "kind" | "metadata"),
        [Pe::Field(m), Pe::Field(f), ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
        ),
        _ => false,
    }
}

/// A set as a FieldsV1 tree: `".": {}` marks a node that is itself a member and has children.
fn fields_v1(set: &FSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn render(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &n.children {
            m.insert(k.clone(), render(c));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for path in set {
        let mut cur = &mut root;
        for pe in path {
            cur = cur.children.entry(pe.encode()).or_default();
        }
        cur.member = true;
    }
    render(&root)
}

fn parse_fields_v1(v: &Value) -> FSet {
    fn walk(v: &Value, prefix: &mut FPath, out: &mut FSet) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            return;
        }
        for (k, child) in m {
            if k == "." {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
                continue;
            }
            let Some(pe) = Pe::decode(k) else { continue };
            prefix.push(pe);
            walk(child, prefix, out);
            prefix.pop();
        }
    }
    let mut out = FSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Whether `set` holds `p` or a path below it.
fn owns_at_or_below(set: &FSet, p: &FPath) -> bool {
    set.range(p.clone()..)
        .next()
        .is_some_and(|q| q.starts_with(p))
}

// ---------------------------------------------------------------------------------------------
// Walking objects along the schema

impl ResourceType {
    /// The fields an applied configuration sets, as server-side apply records them; or the
    /// schema errors that make the apply fail.
    fn field_set(&self, config: &Value) -> Result<FSet, Vec<String>> {
        let mut out = FSet::new();
        let mut errors = Vec::new();
        self.set_walk(
            config,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut out,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        out.retain(|p| !is_stripped(p));
        Ok(out)
    }

    fn set_walk(
        &self,
        v: &Value,
        names: &mut Vec<String>,
        path: &mut FPath,
        out: &mut FSet,
        errors: &mut Vec<String>,
    ) {
        let info = self.info(names);
        match v {
            Value::Object(m) if !info.atomic && !m.is_empty() => {
                for (k, child) in m {
                    names.push(k.clone());
                    path.push(Pe::Field(k.clone()));
                    self.set_walk(child, names, path, out, errors);
                    if info.free_map {
                        out.insert(path.clone());
                    }
                    names.pop();
                    path.pop();
                }
            }
            Value::Array(items) if info.list != ListType::Atomic && !items.is_empty() => {
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    match self.item_pe(names, &info.list, item) {
                        Ok(pe) => {
                            if !seen.insert(pe.clone()) {
                                errors.push(format!(
                                    "{}: duplicate entries for key {}",
                                    path_display(path),
                                    pe.display()
                                ));
                                continue;
                            }
                            path.push(pe);
                            names.push("[]".into());
                            out.insert(path.clone());
                            if item.is_object() {
                                self.set_walk(item, names, path, out, errors);
                            }
                            names.pop();
                            path.pop();
                        }
                        Err(e) => errors.push(format!("{}: element {i}: {e}", path_display(path))),
                    }
                }
            }
            // An empty list map or set leaves nothing to own: the real server records no field
            // for `webhooks: []` or `volumes: []` (an empty atomic list is a field: `args: []`).
            Value::Array(items) if info.list != ListType::Atomic && items.is_empty() => {}
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }

    /// What a built-in kind keeps of `v` when stored: Go's `omitempty` drops empty lists and
    /// empty free-form maps (`args: []`, `data: {}`, `labels: {}`), not empty structs
    /// (`resources: {}`, `securityContext: {}`). Custom resources keep what was sent.
    fn drop_empty_collections(&self, names: &mut Vec<String>, v: &mut Value) {
        if self.schema.is_some() {
            return;
        }
        match v {
            Value::Object(m) => {
                m.retain(|k, child| {
                    names.push(k.clone());
                    let keep = match child {
                        Value::Array(items) => !items.is_empty(),
                        Value::Object(o) if o.is_empty() => !self.info(names).free_map,
                        _ => true,
                    };
                    names.pop();
                    keep
                });
                for (k, child) in m.iter_mut() {
                    names.push(k.clone());
                    self.drop_empty_collections(names, child);
                    names.pop();
                }
            }
            Value::Array(items) => {
                names.push("[]".into());
                for item in items {
                    self.drop_empty_collections(names, item);
                }
                names.pop();
            }
            _ => {}
        }
    }

    /// `config` merged into `live`: objects field by field, list maps and sets item by item (in
    /// the order the real server keeps), everything else replaced.
    fn merge(&self, names: &mut Vec<String>, live: &Value, config: &Value) -> Value {
        let info = self.info(names);
        match (live, config) {
            (Value::Object(l), Value::Object(c)) if !info.atomic => {
                let mut out = l.clone();
                for (k, cv) in c {
                    names.push(k.clone());
                    let merged = match l.get(k) {
                        Some(lv) => self.merge(names, lv, cv),
                        None => cv.clone(),
                    };
                    names.pop();
                    out.insert(k.clone(), merged);
                }
                Value::Object(out)
            }
            (Value::Array(l), Value::Array(c)) if info.list != ListType::Atomic => {
                Value::Array(self.merge_items(names, &info.list, l, c))
            }
            _ => config.clone(),
        }
    }

    /// structured-merge-diff's merge of associative lists: items keep the live order, items only
    /// in the configuration go where the configuration puts them relative to shared ones.
    fn merge_items(
        &self,
        names: &mut Vec<String>,
        list: &ListType,
        lhs: &[Value],
        rhs: &[Value],
    ) -> Vec<Value> {
        let pe = |v: &Value, i: usize| self.item_pe(names, list, v).unwrap_or(Pe::Index(i));
        let lpes: Vec<Pe> = lhs.iter().enumerate().map(|(i, v)| pe(v, i)).collect();
        let rpes: Vec<Pe> = rhs.iter().enumerate().map(|(i, v)| pe(v, i)).collect();
        let mut observed_l: HashMap<&Pe, usize> = HashMap::new();
        for (i, p) in lpes.iter().enumerate() {
            observed_l.entry(p).or_insert(i);
        }
        let mut observed_r: HashMap<&Pe, usize> = HashMap::new();
        for (i, p) in rpes.iter().enumerate() {
            observed_r.entry(p).or_insert(i);
        }
        let mut shared = rpes.iter().filter(|p| observed_l.contains_key(p));
        let mut next_shared = shared.next();
        let mut merged_r: HashSet<&Pe> = HashSet::new();
        let mut out = Vec::new();
        let item = |l: Option<&Value>, r: Option<&Value>, names: &mut Vec<String>| match (l, r) {
            (Some(l), Some(r)) => {
                names.push("[]".into());
                let m = self.merge(names, l, r);
                names.pop();
                m
            }
            (Some(v), None) | (None, Some(v)) => v.clone(),
            (None, None) => Value::Null,
        };
        let (mut li, mut ri) = (0, 0);
        while li < lpes.len() || ri < rpes.len() {
            if li < lpes.len() && ri < rpes.len() {
                let p = &lpes[li];
                if *p == rpes[ri] {
                    merged_r.insert(p);
                    out.push(item(
                        Some(&lhs[observed_l[p]]),
                        Some(&rhs[observed_r[p]]),
                        names,
                    ));
                    li += 1;
                    ri += 1;
                    next_shared = shared.next();
                    continue;
                }
                if observed_r.contains_key(p) && next_shared.is_some_and(|n| n != p) {
                    li += 1;
                    continue;
                }
            }
            if li < lpes.len() {
                let p = &lpes[li];
                if !observed_r.contains_key(p) {
                    out.push(item(Some(&lhs[li]), None, names));
                    li += 1;
                    continue;
                } else if merged_r.contains(p) {
                    li += 1;
                    continue;
                }
            }
            if ri < rpes.len() {
                let p = &rpes[ri];
                merged_r.insert(p);
                let l = observed_l.get(p).map(|&i| &lhs[i]);
                out.push(item(l, Some(&rhs[observed_r[p]]), names));
                ri += 1;
                if next_shared == Some(p) {
                    next_shared = shared.next();
                }
            }
        }
        out
    }

    /// What changed between two versions of an object, as structured-merge-diff compares them.
    fn compare(&self, old: &Value, new: &Value) -> Diff {
        let mut d = Diff::default();
        self.cmp_walk(
            &mut Vec::new(),
            &mut Vec::new(),
            Some(old),
            Some(new),
            &mut d,
        );
        for set in [&mut d.added, &mut d.modified, &mut d.removed] {
            set.retain(|p| !is_stripped(p));
        }
        d
    }

    fn cmp_walk(
        &self,
        names: &mut Vec<String>,
        path: &mut FPath,
        a: Option<&Value>,
        b: Option<&Value>,
        d: &mut Diff,
    ) {
        // `metadata` itself belongs to no one, but what is in it (labels, annotations) does.
        let metadata = matches!(path.as_slice(), [Pe::Field(f)] if f == "metadata");
        if a.is_none() && b.is_none() || is_stripped(path) && !metadata {
            return;
        }
        let info = self.info(names);
        let absent_or =
            |v: Option<&Value>, f: fn(&Value) -> bool| v.is_none_or(|v| v.is_null() || f(v));
        let empty = |v: Option<&Value>| match v {
            None | Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        let both_empty = empty(a) && empty(b);
        let is_obj = a.is_some_and(Value::is_object) || b.is_some_and(Value::is_object);
        let is_arr = a.is_some_and(Value::is_array) || b.is_some_and(Value::is_array);
        if is_obj
            && absent_or(a, Value::is_object)
            && absent_or(b, Value::is_object)
            && !info.atomic
            && !both_empty
        {
            if !path.is_empty() && info.free_map {
                if a.is_none() {
                    d.added.insert(path.clone());
                } else if b.is_none() {
                    d.removed.insert(path.clone());
                }
            }
            let mut keys: Vec<&String> = Vec::new();
            for v in [a, b].into_iter().flatten() {
                for k in v.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            for k in keys {
                names.push(k.clone());
                path.push(Pe::Field(k.clone()));
                self.cmp_walk(
                    names,
                    path,
                    a.and_then(|v| v.get(k)),
                    b.and_then(|v| v.get(k)),
                    d,
                );
                names.pop();
                path.pop();
            }
        } else if is_arr
            && absent_or(a, Value::is_array)
            && absent_or(b, Value::is_array)
            && info.list != ListType::Atomic
            && !both_empty
        {
            if !path.is_empty() {
                if a.is_none() {
                    d.added.insert(path.clone());
                } else if b.is_none() {
                    d.removed.insert(path.clone());
                }
            }
            let index = |v: Option<&Value>, names: &[String]| -> Vec<(Pe, Value)> {
                v.and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, item)| {
                        (
                            self.item_pe(names, &info.list, item)
                                .unwrap_or(Pe::Index(i)),
                            item.clone(),
                        )
                    })
                    .collect()
            };
            let ai = index(a, names);
            let bi = index(b, names);
            names.push("[]".into());
            for (pe, av) in &ai {
                let bv = bi.iter().find(|(p, _)| p == pe).map(|(_, v)| v);
                path.push(pe.clone());
                if bv.is_none() {
                    d.removed.insert(path.clone());
                }
                self.cmp_walk(names, path, Some(av), bv, d);
                path.pop();
            }
            for (pe, bv) in &bi {
                if ai.iter().any(|(p, _)| p == pe) {
                    continue;
                }
                path.push(pe.clone());
                d.added.insert(path.clone());
                self.cmp_walk(names, path, None, Some(bv), d);
                path.pop();
            }
            names.pop();
        } else if !path.is_empty() {
            match (a, b) {
                (None, Some(_)) => {
                    d.added.insert(path.clone());
                }
                (Some(_), None) => {
                    d.removed.insert(path.clone());
                }
                (Some(x), Some(y)) if x != y => {
                    d.modified.insert(path.clone());
                }
                _ => {}
            }
        }
    }

    fn remove_at(&self, v: &mut Value, path: &[Pe]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let names = names_of(parents);
        let mut cur = v;
        for (i, pe) in parents.iter().enumerate() {
            let next = match pe {
                Pe::Field(f) => cur.get_mut(f),
                Pe::Index(idx) => cur.get_mut(idx),
                _ => {
                    let list = self.info(&names[..i]).list;
                    let pos = cur.as_array().and_then(|a| {
                        a.iter().position(|item| {
                            self.item_pe(&names[..i], &list, item).as_ref() == Ok(pe)
                        })
                    });
                    match pos {
                        Some(p) => cur.get_mut(p),
                        None => None,
                    }
                }
            };
            match next {
                Some(n) => cur = n,
                None => return,
            }
        }
        match last {
            Pe::Field(f) => {
                if let Some(m) = cur.as_object_mut() {
                    m.shift_remove(f);
                }
            }
            pe => {
                let list = self.info(&names).list;
                if let Some(items) = cur.as_array_mut() {
                    let keep: Vec<Value> = items
                        .iter()
                        .enumerate()
                        .filter(|(i, item)| match pe {
                            Pe::Index(idx) => i != idx,
                            _ => self.item_pe(&names, &list, item).as_ref() != Ok(pe),
                        })
                        .map(|(_, item)| item.clone())
                        .collect();
                    *items = keep;
                }
            }
        }
    }

    /// Remove what the applying manager set last time (`last`) and no manager owns now
    /// (`owned`), with the named fields above it that no longer hold anything owned — as the real
    /// server prunes, so a key a manager stops applying disappears.
    fn prune(&self, obj: &mut Value, last: &FSet, owned: &FSet) {
        let mut candidates = FSet::new();
        for p in last {
            for i in 1..=p.len() {
                if i == p.len() || matches!(p[i - 1], Pe::Field(_)) {
                    candidates.insert(p[..i].to_vec());
                }
            }
        }
        let mut doomed: Vec<FPath> = candidates
            .into_iter()
            .filter(|p| !is_stripped(p) && !p.is_empty() && !owns_at_or_below(owned, p))
            .collect();
        doomed.sort_by_key(Vec::len);
        let mut removed: Vec<FPath> = Vec::new();
        for p in doomed {
            if removed.iter().any(|r| p.starts_with(r)) {
                continue;
            }
            self.remove_at(obj, &p);
            removed.push(p);
        }
    }
}

#[derive(Debug, Default)]
struct Diff {
    added: FSet,
    modified: FSet,
    removed: FSet,
}

impl Diff {
    fn changed(&self) -> FSet {
        self.added.union(&self.modified).cloned().collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Managed fields

#[derive(Debug, Clone)]
struct Managed {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FSet,
}

impl Managed {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), fields_v1(&self.fields));
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }

    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// How conflict messages name the manager.
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

fn managed_fields_of(obj: &Value) -> Vec<Managed> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| Managed {
            manager: m["manager"].as_str().unwrap_or("").to_owned(),
            operation: m["operation"].as_str().unwrap_or("").to_owned(),
            api_version: m["apiVersion"].as_str().unwrap_or("").to_owned(),
            time: m["time"].as_str().map(str::to_owned),
            subresource: m["subresource"].as_str().map(str::to_owned),
            fields: parse_fields_v1(m.get("fieldsV1").unwrap_or(&Value::Null)),
        })
        .collect()
}

/// Store `managers` in `obj`: empty entries dropped, sorted as the real server sorts them
/// (operation, then time, then manager).
fn set_managed_fields(obj: &mut Value, mut managers: Vec<Managed>) {
    managers.retain(|m| !m.fields.is_empty());
    managers.sort_by(|a, b| {
        (&a.operation, &a.time, &a.manager, &a.api_version).cmp(&(
            &b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
        ))
    });
    let list: Vec<Value> = managers.iter().map(Managed::to_json).collect();
    let meta = obj_mut(obj, "metadata");
    if list.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

// ---------------------------------------------------------------------------------------------
// The server

struct Inner {
    started: Instant,
    options: Options,
    /// How long controllers leave a changed object alone (they also act before the next write).
    controller_delay: Duration,
    /// Controllers act only through `FakeApiServer::run_controllers`.
    controllers_paused: bool,
    /// Answers given instead of serving matching requests (`FakeApiServer::inject_fault`).
    faults: Vec<Fault>,
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Value>,
    log: Vec<Logged>,
    next_rv: u64,
    next_uid: u64,
    /// CRD name -> when it becomes Established.
    pending_crds: BTreeMap<String, Instant>,
    /// Objects a controller will act on -> when at the latest.
    pending: BTreeMap<Key, Instant>,
    /// Deployment -> (revision, the pod template of that revision).
    revisions: HashMap<Key, (u64, Value)>,
    /// Objects the fake's controllers made on their own (each namespace's kube-root-ca.crt).
    system: BTreeSet<Key>,
    /// (object, manager) -> (last applied configuration, resourceVersion it produced).
    memo: HashMap<(Key, String), (String, Value)>,
}

/// The running fake server. Dropping it stops the server thread's runtime.
pub struct FakeApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeApiServer {
    pub fn start(options: Options) -> FakeApiServer {
        let types = BUILTIN
            .iter()
            .map(|b| ResourceType {
                group: b.group.into(),
                version: b.version.into(),
                kind: b.kind.into(),
                plural: b.plural.into(),
                list_kind: format!("{}List", b.kind),
                namespaced: b.namespaced,
                crd: None,
                generation: b.generation,
                subresources: b
                    .subresources
                    .iter()
                    .map(std::string::ToString::to_string)
                    .collect(),
                fields: b
                    .fields
                    .iter()
                    .map(std::string::ToString::to_string)
                    .collect(),
                schema: None,
            })
            .collect();
        let state = Arc::new(Mutex::new(Inner {
            started: Instant::now(),
            options,
            controller_delay: Duration::ZERO,
            controllers_paused: false,
            faults: Vec::new(),
            types,
            objects: BTreeMap::new(),
            log: Vec::new(),
            next_rv: 1000,
            next_uid: 0,
            pending_crds: BTreeMap::new(),
            pending: BTreeMap::new(),
            revisions: HashMap::new(),
            system: BTreeSet::new(),
            memo: HashMap::new(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding loopback");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("fake server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = axum::Router::new().fallback(handle).with_state(shared);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        let server = FakeApiServer {
            addr,
            state,
            _shutdown: tx,
        };
        // Every cluster has these.
        for ns in ["default", "kube-system"] {
            server.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write a kubeconfig with context `fake` (and an identical `other` context) into `dir`.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             - name: other\n  context:\n    cluster: fake\n    user: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            url = self.url()
        );
        std::fs::write(&path, text).expect("writing kubeconfig");
        path
    }

    pub fn set_options(&self, f: impl FnOnce(&mut Options)) {
        f(&mut self.lock().options);
    }

    /// How long controllers leave a changed object alone before acting on it (default zero:
    /// they act before the next request). They always act right before the next write to it.
    pub fn set_controller_delay(&self, delay: Duration) {
        self.lock().controller_delay = delay;
    }

    /// Answer the next `times` requests whose method is `method` and whose path contains `path`
    /// with `status` (and `Retry-After: retry_after` seconds when given) instead of serving
    /// them: what a real server shows only under load or while an aggregated API is down (429
    /// from priority and fairness, 503, 504). `usize::MAX` times for ever.
    pub fn inject_fault(
        &self,
        method: &str,
        path: &str,
        status: u16,
        retry_after: Option<u64>,
        times: usize,
    ) {
        self.lock().faults.push(Fault {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            retry_after,
            remaining: times,
        });
    }

    /// Controllers act only when `run_controllers` says so, not before the next write: on a real
    /// server whether they acted between two requests is a matter of timing, which a replay of
    /// recorded exchanges reads off the recording.
    pub fn pause_controllers(&self) {
        self.lock().controllers_paused = true;
    }

    /// Every controller's pending work, done now.
    pub fn run_controllers(&self) {
        let mut inner = self.lock();
        let keys: Vec<Key> = inner.pending.keys().cloned().collect();
        for key in keys {
            inner.run_pending(&key);
        }
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// Requests that could change something: PATCH/PUT/POST/DELETE without dryRun.
    pub fn mutations(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.dry_run())
            .map(|r| r.line())
            .collect()
    }

    /// The stored object, if any (`group` "" for core).
    pub fn get(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let mut inner = self.lock();
        inner.tick();
        let plural = inner
            .types
            .iter()
            .find(|t| t.group == group && t.kind == kind)?
            .plural
            .clone();
        inner
            .objects
            .get(&(
                group.to_owned(),
                plural,
                namespace.unwrap_or("").to_owned(),
                name.to_owned(),
            ))
            .cloned()
    }

    /// Every stored object, by `group/plural/namespace/name`.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        let mut inner = self.lock();
        inner.tick();
        inner
            .objects
            .iter()
            .map(|((g, p, n, name), v)| (format!("{g}/{p}/{n}/{name}"), v.clone()))
            .collect()
    }

    /// Store an object as is (plus server fields), e.g. one created by `kubectl apply`. A seeded
    /// CRD is Established at once, a seeded Namespace gets its kube-root-ca.crt.
    pub fn seed(&self, object: Value) {
        let mut inner = self.lock();
        inner.tick();
        let (group, _) = split_api_version(object["apiVersion"].as_str().unwrap_or(""));
        let kind = object["kind"].as_str().unwrap_or("").to_owned();
        let Some(t) = inner
            .types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
        else {
            panic!("fake API server: unknown kind {kind}");
        };
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let key = (t.group.clone(), t.plural.clone(), ns, name.clone());
        let mut obj = object;
        inner.stamp_new(&mut obj, &t, &key);
        inner.admit_create(&t, &mut obj);
        inner.store(&t, key, obj, true);
        if t.kind == "CustomResourceDefinition" {
            inner.pending_crds.remove(&name);
            inner.establish_crd(&name);
        }
    }

    /// Server-side apply `object` as another field manager (like a second tool or a human).
    pub fn apply_as(&self, manager: &str, object: Value, force: bool) -> Result<Value, String> {
        let mut inner = self.lock();
        inner.tick();
        let (group, version) = split_api_version(object["apiVersion"].as_str().unwrap_or(""));
        let kind = object["kind"].as_str().unwrap_or("");
        let t = inner
            .types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
            .ok_or("unknown kind")?;
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let key = (t.group.clone(), t.plural.clone(), ns, name);
        inner.run_pending(&key);
        inner
            .apply(&t, key, object, manager, force, false)
            .map_err(|(_, v)| v.to_string())
    }

    /// Number of stored objects, not counting those the fake's controllers made on their own
    /// (each namespace's kube-root-ca.crt).
    pub fn object_count(&self) -> usize {
        let inner = self.lock();
        inner
            .objects
            .keys()
            .filter(|k| !inner.system.contains(*k))
            .count()
    }
}

fn split_api_version(av: &str) -> (String, String) {
    match av.rsplit_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), av.to_owned()),
    }
}

fn now() -> String {
    // A fixed time keeps outputs deterministic; nothing in kpin may depend on it.
    "2026-01-01T00:00:00Z".to_owned()
}

/// A status code and a body: JSON, or plain text when the value is a JSON string.
type Reply = (StatusCode, Value);

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn status(code: StatusCode, reason: &str, message: String, details: Value) -> Reply {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "details": details, "code": code.as_u16()}),
    )
}

/// What the real server answers for a path nothing serves (a kind whose CRD does not exist, an
/// unknown group): plain text, not a Status.
fn page_not_found() -> Reply {
    (
        StatusCode::NOT_FOUND,
        Value::String("404 page not found\n".into()),
    )
}

fn not_found(t: &ResourceType, name: &str) -> Reply {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} {name:?} not found", t.resource()),
        t.details(name),
    )
}

fn namespace_not_found(ns: &str) -> Reply {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("namespaces {ns:?} not found"),
        json!({"name": ns, "kind": "namespaces"}),
    )
}

/// What the real server answers for a create in a namespace being deleted.
fn terminating_namespace(t: &ResourceType, name: &str, ns: &str) -> Reply {
    status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            t.resource()
        ),
        t.details(name),
    )
}

fn bad_request(message: String) -> Reply {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, json!({}))
}

/// The optimistic-concurrency failure of a write with a stale resourceVersion.
fn modified_conflict(t: &ResourceType, name: &str) -> Reply {
    status(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
            t.resource()
        ),
        t.details(name),
    )
}

/// The 500 the real server answers when an applied configuration does not fit the schema:
/// no reason, no details, whatever `fieldValidation` says.
fn typed_patch_error(t: &ResourceType, key: &Key, errors: &[String]) -> Reply {
    let what = if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("errors:\n  {}", errors.join("\n  "))
    };
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("failed to create typed patch object ({}/{}; {}/{}, Kind={}): {what}",
                                  key.2, key.3, t.group, t.version, t.kind),
               "code": 500}),
    )
}

fn conflict_reply(conflicts: &[(Managed, FPath)]) -> Reply {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| {
            json!({"reason": "FieldManagerConflict",
                   "message": format!("conflict with {}", m.describe()),
                   "field": path_display(p)})
        })
        .collect();
    let message = if let [(m, p)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            m.describe(),
            path_display(p)
        )
    } else {
        let mut by_manager: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (m, p) in conflicts {
            by_manager
                .entry(m.describe())
                .or_default()
                .push(path_display(p));
        }
        let mut lines = Vec::new();
        for (m, paths) in by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    status(
        StatusCode::CONFLICT,
        "Conflict",
        message,
        json!({"causes": causes}),
    )
}

/// A 422 when fields that may not change did, worded like the real validation.
fn immutable_error(t: &ResourceType, name: &str, live: &Value, new: &Value) -> Option<Reply> {
    let mut causes = Vec::new();
    for (g, k, field) in IMMUTABLE {
        if *g != t.group || *k != t.kind {
            continue;
        }
        let pointer = format!("/{}", field.replace('.', "/"));
        let (before, after) = (live.pointer(&pointer), new.pointer(&pointer));
        if before.is_some() && before != after {
            let shown = after.map_or_else(|| "null".into(), Value::to_string);
            causes.push((
                *field,
                format!("Invalid value: {shown}: field is immutable"),
            ));
        }
    }
    if causes.is_empty() {
        return None;
    }
    let listed: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    let what = if listed.len() == 1 {
        listed[0].clone()
    } else {
        format!("[{}]", listed.join(", "))
    };
    let mut details = Map::new();
    details.insert("name".into(), json!(name));
    if !t.group.is_empty() {
        details.insert("group".into(), json!(t.group));
    }
    details.insert("kind".into(), json!(t.kind));
    details.insert(
        "causes".into(),
        causes
            .iter()
            .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
            .collect(),
    );
    Some(status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{} {name:?} is invalid: {what}", t.qualified_kind()),
        Value::Object(details),
    ))
}

async fn handle(State(state): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let latency = {
        let mut inner = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = inner.started.elapsed();
        inner.log.push(Logged {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            content_type: header(&parts.headers, "content-type"),
            at,
            body_dry_run: body_dry_run(&body),
        });
        inner.options.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut inner = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    inner.tick();
    if let Some(resp) = inner.injected_fault(&parts.method, parts.uri.path()) {
        return resp;
    }
    let query = parse_query(parts.uri.query().unwrap_or(""));
    // Aggregated discovery (apidiscovery.k8s.io/v2), which kubectl asks for first.
    let path = parts.uri.path();
    if parts.method == Method::GET
        && (path == "/api" || path == "/apis")
        && header(&parts.headers, "accept").contains("as=APIGroupDiscoveryList")
    {
        let body = inner.aggregated_discovery(path == "/api").to_string();
        let mut resp = (StatusCode::OK, body).into_response();
        resp.headers_mut()
            .insert("content-type", AGGREGATED.parse().expect("static header"));
        return resp;
    }
    let (code, value) = inner.route(&parts.method, path, &query, &parts.headers, &body);
    let (text, content_type) = match value {
        Value::String(text) => (text, "text/plain; charset=utf-8"),
        v => (v.to_string(), "application/json"),
    };
    let mut resp = (code, text).into_response();
    resp.headers_mut()
        .insert("content-type", content_type.parse().expect("static header"));
    resp
}

/// An answer given instead of serving matching requests.
struct Fault {
    method: String,
    path: String,
    status: u16,
    retry_after: Option<u64>,
    remaining: usize,
}

impl Inner {
    /// The injected answer for this request, if a fault matches it (counted down).
    fn injected_fault(&mut self, method: &Method, path: &str) -> Option<Response> {
        let fault = self.faults.iter_mut().find(|f| {
            f.remaining > 0 && f.method == method.as_str() && path.contains(f.path.as_str())
        })?;
        fault.remaining = fault.remaining.saturating_sub(1);
        let code = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        // A down aggregated API answers plain text, as the real proxy does; others a Status.
        let mut resp = if code == StatusCode::SERVICE_UNAVAILABLE {
            (code, "service unavailable").into_response()
        } else {
            let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": code.canonical_reason().unwrap_or("error"),
                "reason": "TooManyRequests", "code": fault.status});
            (code, body.to_string()).into_response()
        };
        if let Some(seconds) = fault.retry_after {
            resp.headers_mut()
                .insert("retry-after", seconds.to_string().parse().expect("digits"));
        }
        Some(resp)
    }
}

/// Whether a DeleteOptions body asks for `dryRun: ["All"]`.
fn body_dry_run(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("dryRun").cloned())
        .is_some_and(|d| d == json!(["All"]))
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

/// The manager of a non-apply write: `fieldManager`, else the client's name from its
/// User-Agent, as the real server derives it.
fn manager_for(query: &BTreeMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    let ua = header(headers, "user-agent");
    let name = ua.split('/').next().unwrap_or("").trim();
    if name.is_empty() {
        "unknown".into()
    } else {
        name.to_owned()
    }
}

fn parse_body(body: &[u8]) -> Result<Value, Reply> {
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string()))
        .map_err(|e| bad_request(format!("error decoding the request body: {e}")))
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    let entry = v
        .as_object_mut()
        .expect("just made an object")
        .entry(key)
        .or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("just made an object")
}

/// The object under `key` in `m`, made one if it is anything else.
fn map_mut<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = m.entry(key).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("just made an object")
}

/// Everything but metadata and status: what `metadata.generation` counts changes of.
fn strip_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.shift_remove("metadata");
        m.shift_remove("status");
    }
    v
}

/// The object without what moves on its own (resourceVersion, managedFields).
fn without_bookkeeping(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("resourceVersion");
        m.shift_remove("managedFields");
    }
    v
}

/// Server-owned metadata a client may not set.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// A label selector as kube-apiserver reads it: terms joined by commas outside parentheses,
/// each `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` or `!k`.
fn matches_selector(obj: &Value, selector: &str) -> bool {
    let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
    let value = |k: &str| labels.and_then(|l| l.get(k.trim())).and_then(Value::as_str);
    let set = |values: &str| -> Vec<String> {
        values
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(|v| v.trim().to_owned())
            .collect()
    };
    terms(selector).iter().all(|term| {
        let term = term.trim();
        if let Some((k, values)) = term.split_once(" notin ") {
            value(k).is_none_or(|v| !set(values).iter().any(|x| x == v))
        } else if let Some((k, values)) = term.split_once(" in ") {
            value(k).is_some_and(|v| set(values).iter().any(|x| x == v))
        } else if let Some((k, v)) = term.split_once("!=") {
            value(k) != Some(v)
        } else if let Some((k, v)) = term.split_once('=') {
            value(k) == Some(v.trim_start_matches('='))
        } else if let Some(k) = term.strip_prefix('!') {
            value(k).is_none() && labels.is_none_or(|l| !l.contains_key(k))
        } else {
            labels.is_some_and(|l| l.contains_key(term))
        }
    })
}

/// The terms of a selector: split at commas outside parentheses.
fn terms(selector: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&selector[start..]);
    out.into_iter().filter(|t| !t.trim().is_empty()).collect()
}

/// `metadata.name=x,metadata.namespace!=y`; `Err` names a field the server cannot select on.
fn matches_fields(obj: &Value, selector: &str) -> Result<bool, String> {
    let mut all = true;
    for term in selector.split(',').filter(|s| !s.is_empty()) {
        let (field, want, negate) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v.trim_start_matches('='), false)
        } else {
            return Err(format!("invalid field selector: {term}"));
        };
        let have = match field {
            "metadata.name" => obj.pointer("/metadata/name"),
            "metadata.namespace" => obj.pointer("/metadata/namespace"),
            other => {
                return Err(format!("field label not supported: {other}"));
            }
        }
        .and_then(Value::as_str)
        .unwrap_or("");
        all &= (have == want) != negate;
    }
    Ok(all)
}

const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

const FAKE_CA: &str =
    "-----BEGIN CERTIFICATE-----\nZmFrZSBBUEkgc2VydmVyIENB\n-----END CERTIFICATE-----\n";

fn subresource_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "finalize" => vec!["update"],
        "token" | "eviction" | "binding" => vec!["create"],
        "log" => vec!["get"],
        "attach" | "exec" | "portforward" => vec!["create", "get"],
        "proxy" => vec!["create", "delete", "get", "patch", "update"],
        _ => vec!["get", "patch", "update"],
    }
}

/// (group, version, kind) a subresource answers with; `None` for the kind itself.
fn subresource_kind(sub: &str) -> Option<(&'static str, &'static str, &'static str)> {
    match sub {
        "scale" => Some(("autoscaling", "v1", "Scale")),
        "token" => Some(("authentication.k8s.io", "v1", "TokenRequest")),
        "eviction" => Some(("policy", "v1", "Eviction")),
        "binding" => Some(("", "v1", "Binding")),
        _ => None,
    }
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl Inner {
    fn bump(&mut self) -> String {
        self.next_rv += 1;
        self.next_rv.to_string()
    }

    fn new_uid(&mut self) -> String {
        self.next_uid += 1;
        format!("5eed0000-0000-4000-8000-{:012x}", self.next_uid)
    }

    fn type_for(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    fn type_of_key(&self, key: &Key) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == key.0 && t.plural == key.1)
            .cloned()
    }

    fn namespace_terminating(&self, ns: &str) -> bool {
        self.objects
            .get(&(
                String::new(),
                "namespaces".to_owned(),
                String::new(),
                ns.to_owned(),
            ))
            .is_some_and(|n| n.pointer("/metadata/deletionTimestamp").is_some())
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects.contains_key(&(
            String::new(),
            "namespaces".to_owned(),
            String::new(),
            ns.to_owned(),
        ))
    }

    /// Let time pass: CRDs whose delay is over become Established, controllers whose delay is
    /// over act.
    fn tick(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .pending_crds
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.pending_crds.remove(&name);
            self.establish_crd(&name);
        }
        let due: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.pending.remove(&key);
            self.reconcile(&key);
        }
    }

    /// A controller's pending work on `key`, done now (before another write to it).
    fn run_pending(&mut self, key: &Key) {
        if self.pending.remove(key).is_some() {
            self.reconcile(key);
        }
    }

    /// Store `obj` under a new resourceVersion.
    fn put(&mut self, key: Key, mut obj: Value) -> Value {
        let rv = self.bump();
        obj_mut(&mut obj, "metadata").insert("resourceVersion".into(), json!(rv));
        self.objects.insert(key, obj.clone());
        obj
    }

    /// Store a client's write and give the controllers their work.
    fn store(&mut self, t: &ResourceType, key: Key, obj: Value, created: bool) -> Value {
        let stored = self.put(key.clone(), obj);
        match (t.group.as_str(), t.kind.as_str()) {
            ("", "Namespace") if created => self.publish_root_ca(&key.3),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                if created {
                    let at = Instant::now() + self.options.crd_establish_delay;
                    self.pending_crds.insert(key.3.clone(), at);
                } else if established(&stored) {
                    self.register_crd(&stored);
                }
            }
            ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
            | ("batch", "Job")
            | ("apiregistration.k8s.io", "APIService") => self.schedule(&key),
            _ => {}
        }
        stored
    }

    fn remove(&mut self, key: &Key) {
        self.objects.remove(key);
        self.pending.remove(key);
        self.revisions.remove(key);
        self.system.remove(key);
    }

    /// The root-CA publisher of kube-controller-manager: every namespace gets kube-root-ca.crt.
    fn publish_root_ca(&mut self, ns: &str) {
        let key = (
            String::new(),
            "configmaps".to_owned(),
            ns.to_owned(),
            "kube-root-ca.crt".to_owned(),
        );
        let Some(t) = self.type_of_key(&key) else {
            return;
        };
        if self.objects.contains_key(&key) {
            return;
        }
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                         "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
            "data": {"ca.crt": FAKE_CA}});
        self.stamp_new(&mut cm, &t, &key);
        record_update(
            &t,
            &json!({}),
            &mut cm,
            "kube-controller-manager",
            None,
            Vec::new(),
        );
        self.put(key.clone(), cm);
        self.system.insert(key);
    }

    /// Give the controllers work on `key` (they do it after the controller delay, or before the
    /// next write to it).
    fn schedule(&mut self, key: &Key) {
        let at = Instant::now() + self.controller_delay;
        self.pending.entry(key.clone()).or_insert(at);
    }

    /// The finalizers of a Namespace (the namespace controller deletes everything in it) and of a
    /// CRD (every custom resource of its kind goes, then the kind stops being served).
    fn finalize(&mut self, t: &ResourceType, key: &Key, obj: &Value) {
        let doomed: Vec<Key> = match (t.group.as_str(), t.kind.as_str()) {
            ("", "Namespace") => self
                .objects
                .keys()
                .filter(|k| k.2 == key.3)
                .cloned()
                .collect(),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                let group = obj["spec"]["group"].as_str().unwrap_or("");
                let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or("");
                self.types.retain(|x| x.crd.as_deref() != Some(&key.3));
                self.pending_crds.remove(&key.3);
                self.objects
                    .keys()
                    .filter(|k| k.0 == group && k.1 == plural)
                    .cloned()
                    .collect()
            }
            _ => return,
        };
        for k in doomed {
            self.remove(&k);
        }
        self.remove(key);
    }

    /// What controllers write into an object's status (and the Deployment revision annotation),
    /// recorded as kube-controller-manager's update of the status subresource.
    fn reconcile(&mut self, key: &Key) {
        let Some(old) = self.objects.get(key).cloned() else {
            return;
        };
        let Some(t) = self.type_of_key(key) else {
            return;
        };
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            self.finalize(&t, key, &old);
            return;
        }
        let ready = self.options.workloads_become_ready;
        let generation = old
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let replicas = old
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let n = if ready { replicas } else { 0 };
        let time = now();
        let condition = |kind: &str, ok: bool, reason: &str, message: &str| {
            json!({"type": kind, "status": if ok { "True" } else { "False" },
                   "lastUpdateTime": time, "lastTransitionTime": time,
                   "reason": reason, "message": message})
        };
        let mut new = old.clone();
        let status = match (t.group.as_str(), t.kind.as_str()) {
            ("apps", "Deployment") => {
                let template = old.pointer("/spec/template").cloned().unwrap_or_default();
                let entry = self
                    .revisions
                    .entry(key.clone())
                    .or_insert((0, Value::Null));
                if entry.0 == 0 || entry.1 != template {
                    entry.0 += 1;
                    entry.1 = template;
                }
                let revision = entry.0.to_string();
                map_mut(obj_mut(&mut new, "metadata"), "annotations")
                    .insert("deployment.kubernetes.io/revision".into(), json!(revision));
                let rs = format!("{}-{revision}", key.3);
                let mut st = json!({"observedGeneration": generation, "replicas": replicas,
                    "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n});
                st["conditions"] = if ready {
                    json!([
                        condition(
                            "Available",
                            true,
                            "MinimumReplicasAvailable",
                            "Deployment has minimum availability."
                        ),
                        condition(
                            "Progressing",
                            true,
                            "NewReplicaSetAvailable",
                            &format!("ReplicaSet {rs:?} has successfully progressed.")
                        ),
                    ])
                } else {
                    st["unavailableReplicas"] = json!(replicas);
                    json!([
                        condition(
                            "Available",
                            false,
                            "MinimumReplicasUnavailable",
                            "Deployment does not have minimum availability."
                        ),
                        condition(
                            "Progressing",
                            true,
                            "ReplicaSetUpdated",
                            &format!("ReplicaSet {rs:?} is progressing.")
                        ),
                    ])
                };
                st
            }
            ("apps", "StatefulSet") => {
                json!({"observedGeneration": generation, "replicas": replicas,
                "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n, "currentReplicas": n})
            }
            ("apps", "DaemonSet") => {
                let n = i64::from(ready);
                json!({"observedGeneration": generation, "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                "updatedNumberScheduled": n, "numberAvailable": n, "numberReady": n})
            }
            ("batch", "Job") if ready => {
                json!({"startTime": time, "completionTime": time, "succeeded": 1,
                "conditions": [condition("SuccessCriteriaMet", true, "CompletionsReached", "Reached expected number of succeeded pods"),
                               condition("Complete", true, "CompletionsReached", "Reached expected number of succeeded pods")]})
            }
            ("batch", "Job") => json!({"startTime": time, "active": 1}),
            ("apiregistration.k8s.io", "APIService") => json!({"conditions": [
                condition("Available", true, "Local", "Local APIServices are always available")]}),
            _ => return,
        };
        new["status"] = status;
        if new == old {
            return;
        }
        record_update(
            &t,
            &old,
            &mut new,
            "kube-controller-manager",
            Some("status"),
            managed_fields_of(&old),
        );
        self.put(key.clone(), new);
    }

    /// The API server accepts a CRD's names: the conditions the real server writes, recorded as
    /// kube-apiserver's update of the status subresource, and its kinds become servable.
    fn establish_crd(&mut self, name: &str) {
        let key = (
            "apiextensions.k8s.io".to_owned(),
            "customresourcedefinitions".to_owned(),
            String::new(),
            name.to_owned(),
        );
        let Some(old) = self.objects.get(&key).cloned() else {
            return;
        };
        let Some(t) = self.type_of_key(&key) else {
            return;
        };
        let names = &old["spec"]["names"];
        let kind = names["kind"].as_str().unwrap_or("");
        let accepted = json!({
            "plural": names["plural"],
            "singular": names.get("singular").cloned().unwrap_or_else(|| json!(kind.to_lowercase())),
            "kind": kind,
            "listKind": names.get("listKind").cloned().unwrap_or_else(|| json!(format!("{kind}List"))),
        });
        let mut new = old.clone();
        let status = obj_mut(&mut new, "status");
        status.insert(
            "conditions".into(),
            json!([
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now(),
                 "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": now(),
                 "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
            ]),
        );
        status.insert("acceptedNames".into(), accepted);
        record_update(
            &t,
            &old,
            &mut new,
            "kube-apiserver",
            Some("status"),
            managed_fields_of(&old),
        );
        let stored = self.put(key, new);
        self.register_crd(&stored);
    }

    fn register_crd(&mut self, crd: &Value) {
        let name = crd["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let spec = &crd["spec"];
        let group = spec["group"].as_str().unwrap_or("").to_owned();
        let kind = spec["names"]["kind"].as_str().unwrap_or("").to_owned();
        let plural = spec["names"]["plural"].as_str().unwrap_or("").to_owned();
        let list_kind = spec["names"]["listKind"]
            .as_str()
            .map_or_else(|| format!("{kind}List"), str::to_owned);
        let namespaced = spec["scope"].as_str() == Some("Namespaced");
        self.types.retain(|t| t.crd.as_deref() != Some(&name));
        for v in spec["versions"].as_array().into_iter().flatten() {
            if v["served"] == json!(false) {
                continue;
            }
            let subresources: Vec<String> = v["subresources"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys().cloned())
                .collect();
            self.types.push(ResourceType {
                group: group.clone(),
                version: v["name"].as_str().unwrap_or("").to_owned(),
                kind: kind.clone(),
                plural: plural.clone(),
                list_kind: list_kind.clone(),
                namespaced,
                crd: Some(name.clone()),
                generation: true,
                subresources,
                fields: Vec::new(),
                schema: v
                    .pointer("/schema/openAPIV3Schema")
                    .map(|s| Arc::new(s.clone())),
            });
        }
    }

    fn route(
        &mut self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        let segs: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match (method.as_str(), segs.as_slice()) {
            ("GET", ["version"]) => (
                StatusCode::OK,
                json!({"major": "1", "minor": "36", "gitVersion": "v1.36.2-fake", "platform": "linux/amd64"}),
            ),
            ("GET", ["api"]) => (
                StatusCode::OK,
                json!({"kind": "APIVersions", "versions": ["v1"],
                       "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:0"}]}),
            ),
            ("GET", ["apis"]) => (StatusCode::OK, self.group_list()),
            ("GET", ["api", "v1"]) => (StatusCode::OK, self.resource_list("", "v1")),
            ("GET", ["apis", group]) => match self.group_list()["groups"]
                .as_array()
                .and_then(|g| g.iter().find(|g| g["name"] == *group))
            {
                Some(g) => {
                    let mut g = g.clone();
                    if let Some(m) = g.as_object_mut() {
                        let mut out = Map::new();
                        out.insert("kind".into(), json!("APIGroup"));
                        out.insert("apiVersion".into(), json!("v1"));
                        out.append(m);
                        g = Value::Object(out);
                    }
                    (StatusCode::OK, g)
                }
                None => page_not_found(),
            },
            ("GET", ["apis", group, version]) => {
                if self
                    .types
                    .iter()
                    .any(|t| t.group == *group && t.version == *version)
                {
                    (StatusCode::OK, self.resource_list(group, version))
                } else {
                    page_not_found()
                }
            }
            ("GET", ["openapi", "v2"]) => (
                StatusCode::OK,
                json!({"swagger": "2.0", "info": {"title": "fake", "version": "v1.36.2"}, "paths": {}, "definitions": {}}),
            ),
            ("GET", ["openapi", "v3"]) => (StatusCode::OK, self.openapi_index()),
            (_, ["api", "v1", rest @ ..]) => {
                self.resource_request(method, "", "v1", rest, query, headers, body)
            }
            (_, ["apis", group, version, rest @ ..]) => {
                let (g, v) = (group.to_string(), version.to_string());
                self.resource_request(method, &g, &v, rest, query, headers, body)
            }
            _ => page_not_found(),
        }
    }

    fn resource_json(t: &ResourceType, aggregated: bool) -> Value {
        let (rk_group, rk_version) = if t.builtin() {
            (String::new(), String::new())
        } else {
            (t.group.clone(), t.version.clone())
        };
        let scope = if t.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        };
        let verbs: Vec<&str> = VERBS
            .iter()
            .copied()
            .filter(|v| t.kind != "Namespace" || *v != "deletecollection")
            .collect();
        if aggregated {
            let mut r = json!({"resource": t.plural,
                "responseKind": {"group": rk_group, "version": rk_version, "kind": t.kind},
                "scope": scope, "singularResource": t.kind.to_lowercase(), "verbs": verbs});
            if !t.subresources.is_empty() {
                r["subresources"] = t
                    .subresources
                    .iter()
                    .map(|s| {
                        let (g, v, k) = match subresource_kind(s) {
                            Some(x) => x,
                            None => ("", "", t.kind.as_str()),
                        };
                        json!({"subresource": s, "responseKind": {"group": g, "version": v, "kind": k},
                               "verbs": subresource_verbs(s)})
                    })
                    .collect();
            }
            r
        } else {
            json!({"name": t.plural, "singularName": t.kind.to_lowercase(), "namespaced": t.namespaced,
                   "kind": t.kind, "verbs": verbs})
        }
    }

    /// `/api` (core only) or `/apis` (every other group) as an APIGroupDiscoveryList.
    fn aggregated_discovery(&self, core: bool) -> Value {
        let mut groups: BTreeMap<&str, BTreeMap<&str, Vec<&ResourceType>>> = BTreeMap::new();
        for t in self.types.iter().filter(|t| t.group.is_empty() == core) {
            groups
                .entry(&t.group)
                .or_default()
                .entry(&t.version)
                .or_default()
                .push(t);
        }
        let items: Vec<Value> = groups
            .into_iter()
            .map(|(g, versions)| {
                let versions: Vec<Value> = versions
                    .into_iter()
                    .rev()
                    .map(|(v, types)| {
                        let resources: Vec<Value> = types
                            .iter()
                            .map(|t| Inner::resource_json(t, true))
                            .collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                let metadata = if g.is_empty() {
                    json!({})
                } else {
                    json!({"name": g})
                };
                json!({"metadata": metadata, "versions": versions})
            })
            .collect();
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
               "metadata": {}, "items": items})
    }

    fn group_list(&self) -> Value {
        let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            groups.entry(&t.group).or_default().insert(&t.version);
        }
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs
                    .iter()
                    .rev()
                    .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                    .collect();
                json!({"name": g, "versions": versions.clone(), "preferredVersion": versions[0].clone()})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// The OpenAPI v3 index as kube-apiserver serves it: a path per group version with a
    /// `hash` that changes with its schema (here: the schemas of the custom kinds in it).
    fn openapi_index(&self) -> Value {
        let mut paths = serde_json::Map::new();
        for t in &self.types {
            let path = if t.group.is_empty() {
                format!("api/{}", t.version)
            } else {
                format!("apis/{}/{}", t.group, t.version)
            };
            let schema = t
                .schema
                .as_deref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let entry = paths.entry(path.clone()).or_insert_with(|| json!(""));
            let so_far = entry.as_str().unwrap_or("").to_owned();
            *entry = json!(format!("{so_far}{}:{schema};", t.kind));
        }
        let paths = paths
            .into_iter()
            .map(|(path, schemas)| {
                let hash = kpin::digest::sha256_hex(schemas.as_str().unwrap_or("").as_bytes());
                let url = format!("/openapi/v3/{path}?hash={}", hash.to_uppercase());
                (path, json!({ "serverRelativeURL": url }))
            })
            .collect::<serde_json::Map<_, _>>();
        json!({ "paths": paths })
    }

    fn resource_list(&self, group: &str, version: &str) -> Value {
        let mut resources = Vec::new();
        for t in self
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
        {
            resources.push(Inner::resource_json(t, false));
            for s in &t.subresources {
                let mut r = json!({"name": format!("{}/{s}", t.plural), "singularName": "",
                                   "namespaced": t.namespaced});
                if let Some((g, v, k)) = subresource_kind(s) {
                    if g != t.group {
                        r["group"] = json!(g);
                        r["version"] = json!(v);
                    }
                    r["kind"] = json!(k);
                } else {
                    r["kind"] = json!(t.kind);
                }
                r["verbs"] = json!(subresource_verbs(s));
                resources.push(r);
            }
        }
        let gv = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
    }

    #[allow(clippy::too_many_arguments)]
    fn resource_request(
        &mut self,
        method: &Method,
        group: &str,
        version: &str,
        rest: &[&str],
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        // /namespaces/<ns>/<plural>[/<name>[/<subresource>]] or /<plural>[/<name>[/<subresource>]]
        let (ns, plural, tail) = match rest {
            ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
                (Some(*ns), *plural, tail)
            }
            [plural, tail @ ..] => (None, *plural, tail),
            [] => return page_not_found(),
        };
        if tail.len() > 2 {
            return page_not_found();
        }
        let (name, sub) = (tail.first().copied(), tail.get(1).copied());
        let Some(t) = self.type_for(group, version, plural) else {
            return page_not_found();
        };
        if !t.namespaced && ns.is_some() || t.namespaced && ns.is_none() && name.is_some() {
            return page_not_found();
        }
        if sub.is_some_and(|s| !t.subresources.iter().any(|x| x == s)) {
            return page_not_found();
        }
        let ns = ns.unwrap_or("").to_owned();
        let dry_run = query.get("dryRun").map(String::as_str) == Some("All") || body_dry_run(body);
        let strict = query.get("fieldValidation").map(String::as_str) == Some("Strict");
        let Some(name) = name.map(str::to_owned) else {
            return match method.as_str() {
                "GET" => self.list(&t, &ns, query),
                "POST" => self.create(&t, &ns, query, headers, body, dry_run),
                _ => method_not_allowed(method),
            };
        };
        let key = (t.group.clone(), t.plural.clone(), ns, name);
        if sub.is_some() && method != Method::GET {
            return method_not_allowed(method);
        }
        if method != Method::GET && !dry_run && !self.controllers_paused {
            self.run_pending(&key);
        }
        match method.as_str() {
            "GET" => match self.objects.get(&key) {
                Some(o) => (StatusCode::OK, o.clone()),
                None => not_found(&t, &key.3),
            },
            "DELETE" => self.delete(&t, key, body, dry_run),
            "PUT" => {
                let manager = manager_for(query, headers);
                let Some(live) = self.objects.get(&key).cloned() else {
                    return not_found(&t, &key.3);
                };
                let mut new = match parse_body(body) {
                    Ok(v) => v,
                    Err(r) => return r,
                };
                if let Some(rv) = new.pointer("/metadata/resourceVersion")
                    && Some(rv) != live.pointer("/metadata/resourceVersion")
                {
                    return modified_conflict(&t, &key.3);
                }
                match drop_unknown(&t, &mut new, strict) {
                    Ok(()) => self.update(&t, key, live, new, &manager, dry_run),
                    Err(r) => r,
                }
            }
            "PATCH" => {
                let ct = header(headers, "content-type");
                if ct.starts_with("application/apply-patch") {
                    let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
                        return status(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
                            json!({"group": "meta.k8s.io", "kind": "PatchOptions",
                                   "causes": [{"reason": "FieldValueRequired",
                                               "message": "Required value: is required for apply patch",
                                               "field": "fieldManager"}]}),
                        );
                    };
                    let config = match parse_body(body) {
                        Ok(v) => v,
                        Err(r) => return r,
                    };
                    if t.namespaced && !self.namespace_exists(&key.2) {
                        return namespace_not_found(&key.2);
                    }
                    let force = query.get("force").map(String::as_str) == Some("true");
                    let existed = self.objects.contains_key(&key);
                    if !existed && t.namespaced && self.namespace_terminating(&key.2) {
                        return terminating_namespace(&t, &key.3, &key.2);
                    }
                    match self.apply(&t, key, config, &manager.clone(), force, dry_run) {
                        Ok(v) if existed => (StatusCode::OK, v),
                        Ok(v) => (StatusCode::CREATED, v),
                        Err(r) => r,
                    }
                } else if ct.starts_with("application/json-patch")
                    || ct.starts_with("application/merge-patch")
                {
                    let Some(live) = self.objects.get(&key).cloned() else {
                        return not_found(&t, &key.3);
                    };
                    let mut new = live.clone();
                    if ct.starts_with("application/json-patch") {
                        let patch: json_patch::Patch = match serde_json::from_slice(body) {
                            Ok(p) => p,
                            Err(e) => return bad_request(e.to_string()),
                        };
                        if let Err(e) = json_patch::patch(&mut new, &patch) {
                            return status(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                "Invalid",
                                e.to_string(),
                                json!({}),
                            );
                        }
                    } else {
                        let patch: Value = match serde_json::from_slice(body) {
                            Ok(p) => p,
                            Err(e) => return bad_request(e.to_string()),
                        };
                        // A resourceVersion in the patch is a precondition.
                        if let Some(rv) = patch.pointer("/metadata/resourceVersion")
                            && Some(rv) != live.pointer("/metadata/resourceVersion")
                        {
                            return modified_conflict(&t, &key.3);
                        }
                        json_patch::merge(&mut new, &patch);
                    }
                    let manager = manager_for(query, headers);
                    match drop_unknown(&t, &mut new, strict) {
                        Ok(()) => self.update(&t, key, live, new, &manager, dry_run),
                        Err(r) => r,
                    }
                } else {
                    status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (not {ct})"
                        ),
                        json!({}),
                    )
                }
            }
            _ => method_not_allowed(method),
        }
    }

    fn list(&self, t: &ResourceType, ns: &str, query: &BTreeMap<String, String>) -> Reply {
        let labels = query.get("labelSelector").map(String::as_str);
        let fields = query.get("fieldSelector").map(String::as_str);
        let mut items = Vec::new();
        for ((g, p, n, _), o) in &self.objects {
            if *g != t.group || *p != t.plural || !(ns.is_empty() || n == ns) {
                continue;
            }
            if labels.is_some_and(|s| !matches_selector(o, s)) {
                continue;
            }
            if let Some(fs) = fields {
                match matches_fields(o, fs) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => return bad_request(e),
                }
            }
            let mut o = o.clone();
            // Built-in kinds are listed from typed objects: their items carry no kind.
            if t.builtin()
                && let Some(m) = o.as_object_mut()
            {
                m.shift_remove("kind");
                m.shift_remove("apiVersion");
            }
            items.push(o);
        }
        let rv = self.next_rv.to_string();
        let list = if t.builtin() {
            json!({"kind": t.list_kind, "apiVersion": t.api_version(),
                   "metadata": {"resourceVersion": rv}, "items": items})
        } else {
            json!({"apiVersion": t.api_version(), "items": items, "kind": t.list_kind,
                   "metadata": {"continue": "", "resourceVersion": rv}})
        };
        (StatusCode::OK, list)
    }

    /// The fields the server sets on a new object (not its resourceVersion: that comes when it
    /// is stored).
    fn stamp_new(&mut self, obj: &mut Value, t: &ResourceType, key: &Key) {
        let uid = self.new_uid();
        let generation = t.generation;
        let meta = obj_mut(obj, "metadata");
        for f in SERVER_METADATA {
            if *f != "managedFields" {
                meta.shift_remove(*f);
            }
        }
        meta.insert("name".into(), json!(key.3));
        if t.namespaced {
            meta.insert("namespace".into(), json!(key.2));
        } else {
            meta.shift_remove("namespace");
        }
        meta.insert("uid".into(), json!(uid));
        if generation {
            meta.insert("generation".into(), json!(1));
        }
        meta.insert("creationTimestamp".into(), json!(now()));
    }

    /// What the API server itself adds when an object is created.
    fn admit_create(&mut self, t: &ResourceType, obj: &mut Value) {
        secret_string_data(t, obj);
        t.drop_empty_collections(&mut Vec::new(), obj);
        if t.builtin() && t.has_status() {
            obj["status"] = match t.kind.as_str() {
                "Service" | "Ingress" => json!({"loadBalancer": {}}),
                _ => json!({}),
            };
        }
        match (t.group.as_str(), t.kind.as_str()) {
            ("", "Namespace") => {
                let name = obj["metadata"]["name"].clone();
                map_mut(obj_mut(obj, "metadata"), "labels")
                    .insert("kubernetes.io/metadata.name".into(), name);
                if obj.pointer("/spec/finalizers").is_none() {
                    obj_mut(obj, "spec").insert("finalizers".into(), json!(["kubernetes"]));
                }
                obj["status"] = json!({"phase": "Active"});
            }
            ("batch", "Job") if obj.pointer("/spec/manualSelector") != Some(&json!(true)) => {
                let uid = obj["metadata"]["uid"].clone();
                let name = obj["metadata"]["name"].clone();
                let spec = obj_mut(obj, "spec");
                spec.insert(
                    "selector".into(),
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                );
                spec.insert("manualSelector".into(), json!(false));
                let labels = map_mut(map_mut(map_mut(spec, "template"), "metadata"), "labels");
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", &uid),
                    ("batch.kubernetes.io/job-name", &name),
                    ("controller-uid", &uid),
                    ("job-name", &name),
                ] {
                    labels.insert(k.into(), v.clone());
                }
                let template_labels = labels.clone();
                let meta = obj_mut(obj, "metadata");
                if meta
                    .get("labels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                {
                    meta.insert("labels".into(), Value::Object(template_labels));
                }
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                if obj.pointer("/spec/conversion").is_none() {
                    obj_mut(obj, "spec").insert("conversion".into(), json!({"strategy": "None"}));
                }
                let stored: Vec<Value> = obj
                    .pointer("/spec/versions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|v| v["storage"] == json!(true))
                    .map(|v| v["name"].clone())
                    .collect();
                obj["status"] = json!({"conditions": null, "acceptedNames": {"plural": "", "kind": ""},
                                       "storedVersions": stored});
            }
            _ => {}
        }
    }

    /// What the API server keeps or adds when an object changes.
    fn admit_update(&self, t: &ResourceType, live: &Value, new: &mut Value) {
        secret_string_data(t, new);
        t.drop_empty_collections(&mut Vec::new(), new);
        if t.has_status() {
            match live.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.shift_remove("status");
                    }
                }
            }
        }
        if t.kind == "Namespace" && t.group.is_empty() {
            let name = new["metadata"]["name"].clone();
            map_mut(obj_mut(new, "metadata"), "labels")
                .insert("kubernetes.io/metadata.name".into(), name);
        }
    }

    fn bump_generation(&self, t: &ResourceType, live: &Value, new: &mut Value) {
        if t.generation && strip_meta(live) != strip_meta(new) {
            let g = live
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            obj_mut(new, "metadata").insert("generation".into(), json!(g + 1));
        }
    }

    /// Server-side apply. It is deterministic: the same manager applying the same configuration
    /// to an unchanged object is a no-op. Remembering that keeps the fake's own work on
    /// megabyte-sized CRDs from dominating benchmarks of re-applies.
    fn apply(
        &mut self,
        t: &ResourceType,
        key: Key,
        config: Value,
        manager: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<Value, Reply> {
        let rv_of = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
        let memo_key = (key.clone(), manager.to_owned());
        let text = config.to_string();
        if let (Some(live), Some((seen, rv))) = (self.objects.get(&key), self.memo.get(&memo_key))
            && !rewritten_when_empty(t, &config)
            && *seen == text
            && rv_of(live).as_ref() == Some(rv)
        {
            return Ok(live.clone());
        }
        let result = self.apply_full(t, key.clone(), config, manager, force, dry_run)?;
        // Only when the result is what is stored: a dry run that would change something is not
        // a no-op to remember.
        if let Some(live) = self.objects.get(&key)
            && *live == result
            && let Some(rv) = rv_of(live)
        {
            self.memo.insert(memo_key, (text, rv));
        }
        Ok(result)
    }

    fn apply_full(
        &mut self,
        t: &ResourceType,
        key: Key,
        config: Value,
        manager: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<Value, Reply> {
        let live = self.objects.get(&key).cloned();
        // Schema errors: a 500 without reason, whatever fieldValidation says.
        let mut errors = validate(t, &config);
        let mut cfg = config.clone();
        if let Some(meta) = cfg.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in SERVER_METADATA {
                meta.shift_remove(*f);
            }
        }
        if t.has_status()
            && let Some(m) = cfg.as_object_mut()
        {
            m.shift_remove("status");
        }
        let config_set = match t.field_set(&cfg) {
            Ok(s) => s,
            Err(e) => {
                errors.extend(e);
                FSet::new()
            }
        };
        if !errors.is_empty() {
            return Err(typed_patch_error(t, &key, &errors));
        }
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|v| !v.is_null())
        {
            return Err(bad_request("metadata.managedFields must be nil".into()));
        }
        if let Some(rv) = config
            .pointer("/metadata/resourceVersion")
            .filter(|v| !v.is_null())
            && live
                .as_ref()
                .and_then(|l| l.pointer("/metadata/resourceVersion"))
                != Some(rv)
        {
            return Err(modified_conflict(t, &key.3));
        }
        let is_mine = |m: &Managed| m.is(manager, "Apply", None);
        let mut managers = live.as_ref().map(managed_fields_of).unwrap_or_default();
        let base = live.clone().unwrap_or_else(|| json!({}));
        let mut new = t.merge(&mut Vec::new(), &base, &cfg);
        // Fields this manager applied last time and no longer does go, unless someone owns them.
        let last = managers
            .iter()
            .find(|m| is_mine(m))
            .map(|m| m.fields.clone())
            .unwrap_or_default();
        let mut owned = config_set.clone();
        for m in managers.iter().filter(|m| !is_mine(m)) {
            owned.extend(m.fields.iter().cloned());
        }
        t.prune(&mut new, &last, &owned);
        match &live {
            None => {
                self.stamp_new(&mut new, t, &key);
                self.admit_create(t, &mut new);
            }
            Some(l) => self.admit_update(t, l, &mut new),
        }
        // A field another manager owns and this apply changes is a conflict; the same value is
        // shared ownership.
        let diff = t.compare(&base, &new);
        let changed = diff.changed();
        let conflicts: Vec<(Managed, FPath)> = managers
            .iter()
            .filter(|m| !is_mine(m))
            .flat_map(|m| {
                m.fields
                    .intersection(&changed)
                    .map(|p| (m.clone(), p.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !conflicts.is_empty() && !force {
            return Err(conflict_reply(&conflicts));
        }
        for m in managers.iter_mut().filter(|m| !is_mine(m)) {
            m.fields
                .retain(|p| !changed.contains(p) && !diff.removed.contains(p));
        }
        if let Some(l) = &live
            && let Some(err) = immutable_error(t, &key.3, l, &new)
        {
            return Err(err);
        }
        // The manager's time moves only when the object does.
        let content_changed = live
            .as_ref()
            .is_none_or(|l| without_bookkeeping(l) != without_bookkeeping(&new));
        let previous_time = managers
            .iter()
            .find(|m| is_mine(m))
            .and_then(|m| m.time.clone());
        managers.retain(|m| !is_mine(m));
        managers.push(Managed {
            manager: manager.to_owned(),
            operation: "Apply".into(),
            api_version: config["apiVersion"]
                .as_str()
                .map_or_else(|| t.api_version(), str::to_owned),
            time: if content_changed {
                Some(now())
            } else {
                previous_time
            },
            subresource: None,
            fields: config_set,
        });
        set_managed_fields(&mut new, managers);
        let rewrite = rewritten_when_empty(t, &config);
        if let Some(l) = &live {
            self.bump_generation(t, l, &mut new);
            if rewrite && new.pointer("/metadata/generation") == l.pointer("/metadata/generation") {
                let g = l
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                obj_mut(&mut new, "metadata").insert("generation".into(), json!(g + 1));
            }
            if *l == new {
                return Ok(new);
            }
        }
        if dry_run {
            return Ok(new);
        }
        Ok(self.store(t, key, new, live.is_none()))
    }

    /// POST: create, recorded as an `Update` by the request's manager.
    fn create(
        &mut self,
        t: &ResourceType,
        ns: &str,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
        body: &[u8],
        dry_run: bool,
    ) -> Reply {
        let mut obj = match parse_body(body) {
            Ok(v) if v.is_object() => v,
            Ok(_) => return bad_request("the request body is not an object".into()),
            Err(r) => return r,
        };
        let mut name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if name.is_empty()
            && let Some(prefix) = obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
        {
            name = format!("{prefix}{:05x}", self.next_uid + 1);
        }
        if name.is_empty() {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    t.qualified_kind()
                ),
                json!({"kind": t.kind, "group": t.group,
                       "causes": [{"reason": "FieldValueRequired",
                                   "message": "Required value: name or generateName is required",
                                   "field": "metadata.name"}]}),
            );
        }
        if t.namespaced && !self.namespace_exists(ns) {
            return namespace_not_found(ns);
        }
        if t.namespaced && self.namespace_terminating(ns) {
            return terminating_namespace(t, &name, ns);
        }
        let key = (
            t.group.clone(),
            t.plural.clone(),
            ns.to_owned(),
            name.clone(),
        );
        if self.objects.contains_key(&key) {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {name:?} already exists", t.resource()),
                t.details(&name),
            );
        }
        let strict = query.get("fieldValidation").map(String::as_str) == Some("Strict");
        if let Err(r) = drop_unknown(t, &mut obj, strict) {
            return r;
        }
        let given = managed_fields_of(&obj);
        self.stamp_new(&mut obj, t, &key);
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.shift_remove("managedFields");
        }
        obj["apiVersion"] = json!(t.api_version());
        obj["kind"] = json!(t.kind);
        self.admit_create(t, &mut obj);
        let manager = manager_for(query, headers);
        record_update(t, &json!({}), &mut obj, &manager, None, given);
        if dry_run {
            return (StatusCode::CREATED, obj);
        }
        (StatusCode::CREATED, self.store(t, key, obj, true))
    }

    /// PUT, JSON patch and merge patch: `new` replaces `live`, recorded as an `Update` by
    /// `manager`. managedFields the client changed are taken as given.
    fn update(
        &mut self,
        t: &ResourceType,
        key: Key,
        live: Value,
        mut new: Value,
        manager: &str,
        dry_run: bool,
    ) -> Reply {
        let given = new.pointer("/metadata/managedFields");
        let base = if given.is_some_and(|g| g.as_array().is_some_and(|a| !a.is_empty()))
            && given != live.pointer("/metadata/managedFields")
        {
            managed_fields_of(&new)
        } else {
            managed_fields_of(&live)
        };
        {
            let live_meta = live["metadata"].as_object().cloned().unwrap_or_default();
            let meta = obj_mut(&mut new, "metadata");
            for f in SERVER_METADATA {
                match live_meta.get(*f) {
                    Some(v) if *f != "managedFields" => {
                        meta.insert(f.to_string(), v.clone());
                    }
                    _ => {
                        meta.shift_remove(*f);
                    }
                }
            }
            meta.insert("name".into(), json!(key.3));
            if t.namespaced {
                meta.insert("namespace".into(), json!(key.2));
            }
        }
        new["apiVersion"] = live["apiVersion"].clone();
        new["kind"] = live["kind"].clone();
        self.admit_update(t, &live, &mut new);
        if let Some(err) = immutable_error(t, &key.3, &live, &new) {
            return err;
        }
        record_update(t, &live, &mut new, manager, None, base);
        self.bump_generation(t, &live, &mut new);
        if new == live || dry_run {
            return (StatusCode::OK, new);
        }
        (StatusCode::OK, self.store(t, key, new, false))
    }

    /// DELETE: gone at once (answering a Status), or, with finalizers, marked for deletion
    /// (answering the object). Deleting a Namespace deletes everything in it, deleting a CRD
    /// every resource of its kind.
    fn delete(&mut self, t: &ResourceType, key: Key, body: &[u8], dry_run: bool) -> Reply {
        let Some(live) = self.objects.get(&key).cloned() else {
            return not_found(t, &key.3);
        };
        let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let policy = options["propagationPolicy"]
            .as_str()
            .unwrap_or("Background");
        let mut gone = live.clone();
        {
            let meta = obj_mut(&mut gone, "metadata");
            if !meta.contains_key("deletionTimestamp") {
                meta.insert("deletionTimestamp".into(), json!(now()));
            }
        }
        let mut finalizers: Vec<Value> = live
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match (t.group.as_str(), t.kind.as_str()) {
            ("", "Namespace") => {
                obj_mut(&mut gone, "status").insert("phase".into(), json!("Terminating"));
                if !dry_run {
                    gone = self.put(key.clone(), gone);
                    self.schedule(&key);
                }
                return (StatusCode::OK, gone);
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                finalizers.push(json!("customresourcecleanup.apiextensions.k8s.io"));
                obj_mut(&mut gone, "metadata").insert("finalizers".into(), json!(finalizers));
                if let Some(conditions) = gone
                    .pointer_mut("/status/conditions")
                    .and_then(Value::as_array_mut)
                {
                    conditions.push(json!({"type": "Terminating", "status": "True",
                        "lastTransitionTime": now(), "reason": "InstanceDeletionPending",
                        "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"}));
                }
                if !dry_run {
                    gone = self.put(key.clone(), gone);
                    self.schedule(&key);
                }
                return (StatusCode::OK, gone);
            }
            _ => {}
        }
        if !finalizers.is_empty() {
            if !dry_run {
                gone = self.put(key, gone);
            }
            return (StatusCode::OK, gone);
        }
        if policy == "Foreground" {
            obj_mut(&mut gone, "metadata")
                .insert("finalizers".into(), json!(["foregroundDeletion"]));
            if !dry_run {
                gone = self.put(key.clone(), gone);
                // No dependents are modelled: the garbage collector finishes at once.
                self.remove(&key);
            }
            return (StatusCode::OK, gone);
        }
        if !dry_run {
            self.remove(&key);
        }
        let mut details = t.details(&key.3);
        details["uid"] = live["metadata"]["uid"].clone();
        (
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                   "details": details}),
        )
    }
}

/// Fields a create or update may not set are dropped (the real server prunes custom resources
/// by their schema and ignores unknown fields of built-in kinds), or refused with
/// `fieldValidation=Strict`. Server-side apply refuses them instead (see `validate`).
fn drop_unknown(t: &ResourceType, obj: &mut Value, strict: bool) -> Result<(), Reply> {
    let mut unknown = Vec::new();
    if let Some(m) = obj.as_object_mut() {
        let keys: Vec<String> = m.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match &t.schema {
                None if !t.fields.contains(&k) => {
                    m.shift_remove(&k);
                    unknown.push(k);
                }
                None => {}
                Some(schema) => match schema.get("properties").and_then(|p| p.get(&k)) {
                    Some(node) => {
                        if let Some(child) = m.get_mut(&k) {
                            prune_by_schema(node, child, &k, &mut unknown);
                        }
                    }
                    None if schema.get("properties").is_some() && !preserves_unknown(schema) => {
                        m.shift_remove(&k);
                        unknown.push(k);
                    }
                    None => {}
                },
            }
        }
    }
    if strict && !unknown.is_empty() {
        let listed: Vec<String> = unknown
            .iter()
            .map(|k| format!("unknown field {k:?}"))
            .collect();
        return Err(bad_request(format!(
            "strict decoding error: {}",
            listed.join(", ")
        )));
    }
    Ok(())
}

fn prune_by_schema(node: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if preserves_unknown(node) && node.get("properties").is_none() {
        return;
    }
    match v {
        Value::Object(m) if node.get("properties").is_some() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let child_path = format!("{path}.{k}");
                match node.get("properties").and_then(|p| p.get(&k)) {
                    Some(sub) => {
                        if let Some(child) = m.get_mut(&k) {
                            prune_by_schema(sub, child, &child_path, unknown);
                        }
                    }
                    None if preserves_unknown(node) => {}
                    None => {
                        m.shift_remove(&k);
                        unknown.push(child_path);
                    }
                }
            }
        }
        Value::Object(m) => {
            if let Some(ap) = node.get("additionalProperties").filter(|ap| ap.is_object()) {
                for (k, child) in m.iter_mut() {
                    prune_by_schema(ap, child, &format!("{path}.{k}"), unknown);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.get("items") {
                for (i, child) in items.iter_mut().enumerate() {
                    prune_by_schema(item, child, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// A Secret's `stringData` is write-only: the server stores it base64-encoded in `data`.
fn secret_string_data(t: &ResourceType, obj: &mut Value) {
    use base64::Engine as _;
    if !(t.group.is_empty() && t.kind == "Secret") {
        return;
    }
    let Some(Value::Object(plain)) = obj
        .as_object_mut()
        .and_then(|m| m.shift_remove("stringData"))
    else {
        return;
    };
    let data = obj_mut(obj, "data");
    for (k, v) in plain {
        let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        data.insert(
            k,
            json!(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
}

fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
}

fn method_not_allowed(method: &Method) -> Reply {
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
        json!({}),
    )
}

/// The managed-fields bookkeeping of a non-apply write (`operation: Update`) by `manager`: it
/// owns what it changed, other managers lose what it changed or removed.
fn record_update(
    t: &ResourceType,
    old: &Value,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    mut managers: Vec<Managed>,
) {
    let diff = t.compare(old, new);
    let changed = diff.changed();
    let api_version = new["apiVersion"]
        .as_str()
        .map_or_else(|| t.api_version(), str::to_owned);
    let is_me = |m: &Managed| m.is(manager, "Update", subresource) && m.api_version == api_version;
    for m in managers.iter_mut().filter(|m| !is_me(m)) {
        m.fields
            .retain(|p| !changed.contains(p) && !diff.removed.contains(p));
    }
    let mut me = match managers.iter().position(is_me) {
        Some(i) => managers.remove(i),
        None => Managed {
            manager: manager.to_owned(),
            operation: "Update".into(),
            api_version: api_version.clone(),
            time: None,
            subresource: subresource.map(str::to_owned),
            fields: FSet::new(),
        },
    };
    if !changed.is_empty() || !diff.removed.is_empty() {
        me.time = Some(now());
    }
    me.fields.extend(changed);
    me.fields.retain(|p| !diff.removed.contains(p));
    managers.push(me);
    set_managed_fields(new, managers);
}

// ---------------------------------------------------------------------------------------------
// Schema validation of applied configurations

/// Errors that make the real server refuse an apply with "failed to create typed patch object":
/// fields a built-in kind does not declare (its top level and metadata only), and for custom
/// resources everything their CRD's schema says about fields and types.
fn validate(t: &ResourceType, config: &Value) -> Vec<String> {
    let Some(obj) = config.as_object() else {
        return vec![format!("expected map, got {}", go_repr(config))];
    };
    let mut errors = Vec::new();
    for (k, v) in obj {
        let path = format!(".{k}");
        match k.as_str() {
            "apiVersion" | "kind" => {
                if !v.is_string() {
                    errors.push(format!("{path}: expected string, got {}", go_repr(v)));
                }
            }
            "metadata" => validate_metadata(v, &mut errors),
            _ => match &t.schema {
                None if !t.fields.contains(k) => {
                    errors.push(format!("{path}: field not declared in schema"));
                }
                None => validate_builtin_field(t, k, v, &mut errors),
                Some(schema) => match schema.get("properties").and_then(|p| p.get(k)) {
                    Some(node) => validate_schema(node, v, &path, &mut errors),
                    None => {
                        if schema.get("properties").is_some() && !preserves_unknown(schema) {
                            errors.push(format!("{path}: field not declared in schema"));
                        }
                    }
                },
            },
        }
    }
    errors.sort();
    errors
}

fn preserves_unknown(node: &Value) -> bool {
    node.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
}

fn validate_metadata(v: &Value, errors: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    let Some(meta) = v.as_object() else {
        errors.push(format!(".metadata: expected map, got {}", go_repr(v)));
        return;
    };
    for (k, v) in meta {
        if !METADATA_FIELDS.contains(&k.as_str()) {
            errors.push(format!(".metadata.{k}: field not declared in schema"));
        } else if matches!(k.as_str(), "labels" | "annotations") {
            string_map(v, &format!(".metadata.{k}"), errors);
        }
    }
}

/// A map of strings (labels, ConfigMap data).
fn string_map(v: &Value, path: &str, errors: &mut Vec<String>) {
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                if !v.is_string() && !v.is_null() {
                    errors.push(format!("{path}.{k}: expected string, got {}", go_repr(v)));
                }
            }
        }
        other => errors.push(format!("{path}: expected map, got {}", go_repr(other))),
    }
}

fn validate_builtin_field(t: &ResourceType, field: &str, v: &Value, errors: &mut Vec<String>) {
    let path = format!(".{field}");
    match (t.kind.as_str(), field) {
        ("ConfigMap" | "Secret", "data" | "binaryData" | "stringData") => {
            string_map(v, &path, errors);
        }
        (_, "spec" | "status") if !v.is_object() && !v.is_null() => {
            errors.push(format!("{path}: expected map, got {}", go_repr(v)));
        }
        _ => {}
    }
}

/// A value against a node of a CRD's structural schema.
fn validate_schema(node: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    if node.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        if !v.is_number() && !v.is_string() {
            errors.push(format!(
                "{path}: expected numeric (int or float), got {}",
                go_type(v)
            ));
        }
        return;
    }
    let ty = node.get("type").and_then(Value::as_str);
    match ty {
        Some("object") | None
            if node.get("properties").is_some() || node.get("additionalProperties").is_some() =>
        {
            let Some(m) = v.as_object() else {
                errors.push(format!("{path}: expected map, got {}", go_repr(v)));
                return;
            };
            for (k, child) in m {
                let child_path = format!("{path}.{k}");
                if let Some(sub) = node.get("properties").and_then(|p| p.get(k)) {
                    validate_schema(sub, child, &child_path, errors);
                } else if let Some(ap) = node.get("additionalProperties") {
                    if ap.is_object() {
                        validate_schema(ap, child, &child_path, errors);
                    } else if ap == &json!(false) && !preserves_unknown(node) {
                        errors.push(format!("{child_path}: field not declared in schema"));
                    }
                } else if !preserves_unknown(node) {
                    errors.push(format!("{child_path}: field not declared in schema"));
                }
            }
        }
        Some("object") if !v.is_object() => {
            errors.push(format!("{path}: expected map, got {}", go_repr(v)));
        }
        Some("array") => {
            let Some(items) = v.as_array() else {
                errors.push(format!("{path}: expected list, got {}", go_repr(v)));
                return;
            };
            if let Some(item_schema) = node.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_schema(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Some("integer" | "number") if !v.is_number() => {
            errors.push(format!(
                "{path}: expected numeric (int or float), got {}",
                go_type(v)
            ));
        }
        Some("string") if !v.is_string() => {
            errors.push(format!("{path}: expected string, got {}", go_repr(v)));
        }
        Some("boolean") if !v.is_boolean() => {
            errors.push(format!("{path}: expected boolean, got {}", go_repr(v)));
        }
        _ => {}
    }
}
