//! An in-process fake Kubernetes API server on loopback, speaking enough of the real HTTP API
//! (discovery, GET/LIST, server-side apply with managed fields, JSON patch, DELETE, CRDs that
//! become Established after a delay, 409/422 errors, rollout status) to drive kpin and kubectl.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
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

#[derive(Debug, Clone)]
struct ResourceType {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
}

type Key = (String, String, String, String); // group, plural, namespace, name

struct Inner {
    started: Instant,
    options: Options,
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Value>,
    log: Vec<Logged>,
    next_rv: u64,
    /// CRD name -> when it becomes Established.
    pending_crds: BTreeMap<String, Instant>,
    /// (object, manager) -> (last applied configuration, resourceVersion it produced).
    memo: std::collections::HashMap<(Key, String), (String, Value)>,
}

/// The running fake server. Dropping it stops the server thread's runtime.
pub struct FakeApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

const BUILTIN: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "Namespace", "namespaces", false),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Pod", "pods", true),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("", "v1", "Endpoints", "endpoints", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    ("batch", "v1", "Job", "jobs", true),
    ("batch", "v1", "CronJob", "cronjobs", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    (
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        false,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
    ),
];

/// Fields that may not change once set: (group, kind, dotted path).
const IMMUTABLE: &[(&str, &str, &str)] = &[
    ("batch", "Job", "spec.template"),
    ("batch", "Job", "spec.selector"),
    ("apps", "Deployment", "spec.selector"),
    ("networking.k8s.io", "IngressClass", "spec.controller"),
];

impl FakeApiServer {
    pub fn start(options: Options) -> FakeApiServer {
        let types = BUILTIN
            .iter()
            .map(|(g, v, k, p, n)| ResourceType {
                group: g.to_string(),
                version: v.to_string(),
                kind: k.to_string(),
                plural: p.to_string(),
                namespaced: *n,
            })
            .collect();
        let state = Arc::new(Mutex::new(Inner {
            started: Instant::now(),
            options,
            types,
            objects: BTreeMap::new(),
            log: Vec::new(),
            next_rv: 1000,
            pending_crds: BTreeMap::new(),
            memo: std::collections::HashMap::new(),
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
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
        let inner = self.lock();
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

    /// Store an object as is (plus server fields), e.g. one created by `kubectl apply`.
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
        let mut obj = object;
        inner.stamp_new(&mut obj, &t);
        inner
            .objects
            .insert((t.group.clone(), t.plural.clone(), ns, name), obj);
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
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
            .ok_or("unknown kind")?;
        let _ = version;
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
        inner
            .server_side_apply(&t, key, object, manager, force, false)
            .map_err(|(_, v)| v.to_string())
    }

    /// Number of stored objects.
    pub fn object_count(&self) -> usize {
        self.lock().objects.len()
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

type Reply = (StatusCode, Value);

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn status(code: StatusCode, reason: &str, message: String, details: Value) -> Reply {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "details": details, "code": code.as_u16()}),
    )
}

fn not_found(what: &str, name: &str) -> Reply {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{what} \"{name}\" not found"),
        json!({"name": name, "kind": what}),
    )
}

async fn handle(State(state): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let latency = {
        let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
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
    let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
    inner.tick();
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
    let mut resp = (code, value.to_string()).into_response();
    resp.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header"),
    );
    resp
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

impl Inner {
    fn bump(&mut self) -> String {
        self.next_rv += 1;
        self.next_rv.to_string()
    }

    /// Let time pass: CRDs whose delay is over become Established and their kinds discoverable.
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
            let key = (
                "apiextensions.k8s.io".to_owned(),
                "customresourcedefinitions".to_owned(),
                String::new(),
                name,
            );
            let rv = self.bump();
            let Some(crd) = self.objects.get_mut(&key) else {
                continue;
            };
            crd["metadata"]["resourceVersion"] = json!(rv);
            crd["status"] = json!({"conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}
            ], "acceptedNames": crd["spec"]["names"].clone()});
            let crd = crd.clone();
            self.register_crd(&crd);
        }
    }

    fn register_crd(&mut self, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or("").to_owned();
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let namespaced = crd["spec"]["scope"].as_str() == Some("Namespaced");
        for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
            let version = v["name"].as_str().unwrap_or("").to_owned();
            self.types
                .retain(|t| !(t.group == group && t.version == version && t.kind == kind));
            self.types.push(ResourceType {
                group: group.clone(),
                version,
                kind: kind.clone(),
                plural: plural.clone(),
                namespaced,
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
                json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "platform": "linux/amd64"}),
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
                Some(g) => (StatusCode::OK, g.clone()),
                None => not_found("group", group),
            },
            ("GET", ["apis", group, version]) => {
                if self
                    .types
                    .iter()
                    .any(|t| t.group == *group && t.version == *version)
                {
                    (StatusCode::OK, self.resource_list(group, version))
                } else {
                    not_found("groupversion", &format!("{group}/{version}"))
                }
            }
            ("GET", ["openapi", "v2"]) => (
                StatusCode::OK,
                json!({"swagger": "2.0", "info": {"title": "fake", "version": "v1.32.0"}, "paths": {}, "definitions": {}}),
            ),
            ("GET", ["openapi", "v3"]) => (StatusCode::OK, json!({"paths": {}})),
            (_, ["api", "v1", rest @ ..]) => {
                self.resource_request(method, "", "v1", rest, query, headers, body)
            }
            (_, ["apis", group, version, rest @ ..]) => {
                let (g, v) = (group.to_string(), version.to_string());
                self.resource_request(method, &g, &v, rest, query, headers, body)
            }
            _ => not_found("path", path),
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
                            .map(|t| {
                                json!({"resource": t.plural, "singularResource": t.kind.to_lowercase(),
                                       "responseKind": {"group": g, "version": v, "kind": t.kind},
                                       "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                       "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
                            })
                            .collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": g}, "versions": versions})
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

    fn resource_list(&self, group: &str, version: &str) -> Value {
        let resources: Vec<Value> = self
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .map(|t| {
                json!({"name": t.plural, "singularName": t.kind.to_lowercase(), "namespaced": t.namespaced,
                       "kind": t.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            })
            .collect();
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
        // /namespaces/<ns>/<plural>[/<name>] or /<plural>[/<name>]
        let (ns, plural, name) = match rest {
            ["namespaces", ns, plural, tail @ ..] => {
                (ns.to_string(), plural.to_string(), tail.first().copied())
            }
            [plural, tail @ ..] => (String::new(), plural.to_string(), tail.first().copied()),
            [] => return not_found("path", "/"),
        };
        let Some(t) = self
            .types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
        else {
            return not_found("resource", &plural);
        };
        // `/api/v1/namespaces/<name>` addresses the Namespace object itself.
        let (ns, name) =
            if !t.namespaced && rest.first() == Some(&"namespaces") && plural != "namespaces" {
                (String::new(), rest.get(1).copied())
            } else if !t.namespaced
                && plural == "namespaces"
                && rest.len() == 2
                && rest[0] == "namespaces"
            {
                (String::new(), Some(rest[1]))
            } else {
                (ns, name)
            };
        let name = name.map(str::to_owned);
        let dry_run = query.get("dryRun").map(String::as_str) == Some("All") || body_dry_run(body);
        match (method.as_str(), name) {
            ("GET", None) => self.list(&t, &ns, query.get("labelSelector").map(String::as_str)),
            ("GET", Some(name)) => {
                let key = (t.group.clone(), t.plural.clone(), ns, name.clone());
                match self.objects.get(&key) {
                    Some(o) => (StatusCode::OK, o.clone()),
                    None => not_found(&format!("{}.{}", t.plural, t.group), &name),
                }
            }
            ("DELETE", Some(name)) => {
                let key = (t.group.clone(), t.plural.clone(), ns, name.clone());
                match self.objects.get(&key).cloned() {
                    Some(o) => {
                        if !dry_run {
                            self.objects.remove(&key);
                        }
                        (StatusCode::OK, o)
                    }
                    None => not_found(&format!("{}.{}", t.plural, t.group), &name),
                }
            }
            ("PATCH", Some(name)) => {
                let key = (t.group.clone(), t.plural.clone(), ns, name);
                let ct = header(headers, "content-type");
                if ct.starts_with("application/apply-patch") {
                    let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
                        return status(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            "PATCH, fieldManager: Required value: is required for apply patch"
                                .into(),
                            json!({}),
                        );
                    };
                    let config: Value = match serde_json::from_slice(body).or_else(|_| {
                        serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
                    }) {
                        Ok(v) => v,
                        Err(e) => {
                            return status(
                                StatusCode::BAD_REQUEST,
                                "BadRequest",
                                format!("bad body: {e}"),
                                json!({}),
                            );
                        }
                    };
                    let ns_key = (
                        String::new(),
                        "namespaces".to_owned(),
                        String::new(),
                        key.2.clone(),
                    );
                    if t.namespaced && !self.objects.contains_key(&ns_key) {
                        return not_found("namespaces", &key.2);
                    }
                    let force = query.get("force").map(String::as_str) == Some("true");
                    match self.server_side_apply(&t, key, config, &manager.clone(), force, dry_run)
                    {
                        Ok(v) => (StatusCode::OK, v),
                        Err(r) => r,
                    }
                } else if ct.starts_with("application/json-patch") {
                    self.json_patch(&t, key, body, dry_run)
                } else if ct.starts_with("application/merge-patch") {
                    self.merge_patch(&t, key, body, dry_run)
                } else {
                    status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!("the fake supports apply and JSON patches, not {ct}"),
                        json!({}),
                    )
                }
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not supported by the fake API server here"),
                json!({}),
            ),
        }
    }

    fn list(&self, t: &ResourceType, ns: &str, selector: Option<&str>) -> Reply {
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == t.group && *p == t.plural && (ns.is_empty() || n == ns)
            })
            .filter(|(_, o)| selector.is_none_or(|s| matches_selector(o, s)))
            .map(|(_, o)| o.clone())
            .collect();
        let av = if t.group.is_empty() {
            t.version.clone()
        } else {
            format!("{}/{}", t.group, t.version)
        };
        (
            StatusCode::OK,
            json!({"kind": format!("{}List", t.kind), "apiVersion": av,
                   "metadata": {"resourceVersion": self.next_rv.to_string()}, "items": items}),
        )
    }

    /// Set the fields the server owns on a new object.
    fn stamp_new(&mut self, obj: &mut Value, t: &ResourceType) {
        let rv = self.bump();
        let meta = obj_mut(obj, "metadata");
        meta.insert("uid".into(), json!(format!("uid-{rv}")));
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("generation".into(), json!(1));
        let _ = t;
    }

    fn json_patch(&mut self, t: &ResourceType, key: Key, body: &[u8], dry_run: bool) -> Reply {
        let Some(live) = self.objects.get(&key).cloned() else {
            return not_found(&format!("{}.{}", t.plural, t.group), &key.3);
        };
        let patch: json_patch::Patch = match serde_json::from_slice(body) {
            Ok(p) => p,
            Err(e) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    e.to_string(),
                    json!({}),
                );
            }
        };
        let mut new = live.clone();
        if let Err(e) = json_patch::patch(&mut new, &patch) {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                e.to_string(),
                json!({}),
            );
        }
        if new != live && !dry_run {
            let rv = self.bump();
            obj_mut(&mut new, "metadata").insert("resourceVersion".into(), json!(rv));
            self.objects.insert(key, new.clone());
        }
        (StatusCode::OK, new)
    }

    /// RFC 7386 merge patch; a `metadata.resourceVersion` in the patch is a precondition.
    fn merge_patch(&mut self, t: &ResourceType, key: Key, body: &[u8], dry_run: bool) -> Reply {
        let Some(live) = self.objects.get(&key).cloned() else {
            return not_found(&format!("{}.{}", t.plural, t.group), &key.3);
        };
        let patch: Value = match serde_json::from_slice(body) {
            Ok(p) => p,
            Err(e) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    e.to_string(),
                    json!({}),
                );
            }
        };
        if let Some(rv) = patch.pointer("/metadata/resourceVersion")
            && Some(rv) != live.pointer("/metadata/resourceVersion")
        {
            return status(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified",
                    t.plural, key.3
                ),
                json!({}),
            );
        }
        let mut new = live.clone();
        json_patch::merge(&mut new, &patch);
        if new != live && !dry_run {
            let rv = self.bump();
            obj_mut(&mut new, "metadata").insert("resourceVersion".into(), json!(rv));
            self.objects.insert(key, new.clone());
        }
        (StatusCode::OK, new)
    }

    /// Server-side apply with managed-field bookkeeping (lists are atomic, unlike a real server).
    fn server_side_apply(
        &mut self,
        t: &ResourceType,
        key: Key,
        config: Value,
        manager: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<Value, Reply> {
        // Server-side apply is deterministic: the same manager applying the same configuration
        // to an unchanged object is a no-op. Remembering that keeps the fake's own work on
        // megabyte-sized CRDs from dominating benchmarks of re-applies.
        let rv_of = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
        let memo_key = (key.clone(), manager.to_owned());
        let text = config.to_string();
        if let (Some(live), Some((seen, rv))) = (self.objects.get(&key), self.memo.get(&memo_key))
            && *seen == text
            && rv_of(live).as_ref() == Some(rv)
        {
            return Ok(live.clone());
        }
        let result =
            self.server_side_apply_full(t, key.clone(), config, manager, force, dry_run)?;
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

    fn server_side_apply_full(
        &mut self,
        t: &ResourceType,
        key: Key,
        config: Value,
        manager: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<Value, Reply> {
        let live = self.objects.get(&key).cloned();
        let what = format!("{}.{}", t.kind, t.group);
        for field in [
            "status",
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
        ] {
            if field == "status" && config.get("status").is_some() {
                continue; // ignored, like the real server does for resources with a status subresource
            }
            if config.pointer(&format!("/metadata/{field}")).is_some() && field != "resourceVersion"
            {
                return Err(status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("metadata.{field} must not be set in an apply configuration"),
                    json!({}),
                ));
            }
        }
        let api_version = config["apiVersion"].as_str().unwrap_or("").to_owned();
        let mut managers = live.as_ref().map(managed_fields_of).unwrap_or_default();
        let mine: BTreeSet<Vec<String>> = leaf_paths(&config);
        let base = live.clone().unwrap_or_else(|| json!({}));

        // Conflicts: another manager owns a field we set, with a different value.
        let mut conflicts = Vec::new();
        for m in managers
            .iter_mut()
            .filter(|m| !(m.manager == manager && m.operation == "Apply"))
        {
            let owned: Vec<Vec<String>> = m.fields.intersection(&mine).cloned().collect();
            for p in owned {
                if get_path(&base, &p) != get_path(&config, &p) {
                    if force {
                        m.fields.remove(&p);
                    } else {
                        conflicts.push((m.manager.clone(), m.api_version.clone(), p));
                    }
                }
            }
        }
        if !conflicts.is_empty() {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|(m, av, p)| {
                    json!({"reason": "FieldManagerConflict",
                           "message": format!("conflict with \"{m}\" using {av}"),
                           "field": format!(".{}", p.join("."))})
                })
                .collect();
            let list: Vec<String> = conflicts
                .iter()
                .map(|(m, av, p)| format!("conflict with \"{m}\" using {av}: .{}", p.join(".")))
                .collect();
            return Err(status(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Apply failed with {} conflict{}: {}",
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" },
                    list.join("\n")
                ),
                json!({"name": key.3, "group": t.group, "kind": t.plural, "causes": causes}),
            ));
        }

        // Fields we owned before and no longer set disappear unless someone else owns them.
        let previous: BTreeSet<Vec<String>> = managers
            .iter()
            .filter(|m| m.manager == manager && m.operation == "Apply")
            .flat_map(|m| m.fields.iter().cloned())
            .collect();
        let mut new = base.clone();
        for p in previous.difference(&mine) {
            let others_own = managers
                .iter()
                .filter(|m| !(m.manager == manager && m.operation == "Apply"))
                .any(|m| m.fields.contains(p));
            if !others_own {
                remove_path(&mut new, p);
            }
        }
        let mut incoming = config.clone();
        if let Some(o) = incoming.as_object_mut() {
            o.remove("status");
        }
        merge(&mut new, &incoming);

        // Immutable fields.
        if let Some(live) = &live {
            for (g, k, field) in IMMUTABLE {
                if *g == t.group && *k == t.kind {
                    let p: Vec<String> = field.split('.').map(str::to_owned).collect();
                    if get_path(live, &p) != get_path(&new, &p) {
                        let msg = format!(
                            "{} \"{}\" is invalid: {field}: Invalid value: {}: field is immutable",
                            what,
                            key.3,
                            get_path(&new, &p).cloned().unwrap_or(Value::Null)
                        );
                        return Err(status(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            msg,
                            json!({"name": key.3, "group": t.group, "kind": t.kind,
                                   "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: field is immutable", "field": field}]}),
                        ));
                    }
                }
            }
        }

        managers.retain(|m| !(m.manager == manager && m.operation == "Apply"));
        managers.push(Managed {
            manager: manager.to_owned(),
            operation: "Apply".into(),
            api_version: api_version.clone(),
            time: live
                .as_ref()
                .and_then(|l| {
                    managed_fields_of(l)
                        .into_iter()
                        .find(|m| {
                            m.manager == manager && m.operation == "Apply" && m.fields == mine
                        })
                        .map(|m| m.time)
                })
                .unwrap_or_else(now),
            fields: mine,
        });
        managers.retain(|m| !m.fields.is_empty());
        managers.sort_by(|a, b| (&a.manager, &a.operation).cmp(&(&b.manager, &b.operation)));
        obj_mut(&mut new, "metadata").insert(
            "managedFields".into(),
            Value::Array(managers.iter().map(Managed::to_json).collect()),
        );

        match &live {
            None => self.stamp_new(&mut new, t),
            Some(live) => {
                let spec_changed = strip_meta(live) != strip_meta(&new);
                if spec_changed {
                    let g = live
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    obj_mut(&mut new, "metadata").insert("generation".into(), json!(g + 1));
                }
            }
        }
        self.simulate_status(t, &mut new);
        if live.as_ref() != Some(&new) {
            if let Some(live) = &live {
                let mut check = new.clone();
                obj_mut(&mut check, "metadata").insert(
                    "resourceVersion".into(),
                    live.pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(Value::Null),
                );
                if &check == live {
                    return Ok(live.clone());
                }
            }
            if !dry_run {
                let rv = self.bump();
                obj_mut(&mut new, "metadata").insert("resourceVersion".into(), json!(rv));
            }
        }
        if !dry_run {
            if t.kind == "CustomResourceDefinition" && live.is_none() {
                let at = Instant::now() + self.options.crd_establish_delay;
                self.pending_crds.insert(key.3.clone(), at);
            }
            self.objects.insert(key, new.clone());
        }
        Ok(new)
    }

    /// What controllers would write into status, decided by the options.
    fn simulate_status(&self, t: &ResourceType, obj: &mut Value) {
        let ready = self.options.workloads_become_ready;
        let generation = obj
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let replicas = obj
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let n = if ready { replicas } else { 0 };
        let st = match (t.group.as_str(), t.kind.as_str()) {
            ("apps", "Deployment") => {
                json!({"observedGeneration": generation, "replicas": replicas,
                "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n})
            }
            ("apps", "StatefulSet") => {
                json!({"observedGeneration": generation, "replicas": replicas,
                "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n, "currentReplicas": n})
            }
            ("apps", "DaemonSet") => {
                json!({"observedGeneration": generation, "desiredNumberScheduled": 1,
                "updatedNumberScheduled": if ready {1} else {0}, "numberAvailable": if ready {1} else {0}, "numberReady": if ready {1} else {0}})
            }
            ("batch", "Job") if ready => {
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
            }
            ("batch", "Job") => json!({"active": 1}),
            ("apiregistration.k8s.io", "APIService") => {
                json!({"conditions": [{"type": "Available", "status": "True"}]})
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                if obj.get("status").is_none() {
                    obj["status"] = json!({"conditions": []});
                }
                return;
            }
            _ => return,
        };
        obj["status"] = st;
    }
}

#[derive(Debug, Clone)]
struct Managed {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    fields: BTreeSet<Vec<String>>,
}

impl Managed {
    fn to_json(&self) -> Value {
        json!({"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
               "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": fields_v1(&self.fields)})
    }
}

fn managed_fields_of(obj: &Value) -> Vec<Managed> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let mut fields = BTreeSet::new();
            collect_fields_v1(
                m.get("fieldsV1").unwrap_or(&Value::Null),
                &mut Vec::new(),
                &mut fields,
            );
            Managed {
                manager: m["manager"].as_str().unwrap_or("").to_owned(),
                operation: m["operation"].as_str().unwrap_or("").to_owned(),
                api_version: m["apiVersion"].as_str().unwrap_or("").to_owned(),
                time: m["time"].as_str().unwrap_or("").to_owned(),
                fields,
            }
        })
        .collect()
}

/// Leaves of a FieldsV1 tree; `k:`/`v:`/`i:` entries make their parent atomic.
fn collect_fields_v1(v: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    let Some(map) = v.as_object() else { return };
    let named: Vec<(&String, &Value)> = map.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    let atomic = map
        .keys()
        .any(|k| k.starts_with("k:") || k.starts_with("v:") || k.starts_with("i:"));
    if atomic || (named.is_empty() && !prefix.is_empty()) {
        out.insert(prefix.clone());
        return;
    }
    for (k, child) in named {
        prefix.push(k[2..].to_owned());
        collect_fields_v1(child, prefix, out);
        prefix.pop();
    }
}

fn fields_v1(fields: &BTreeSet<Vec<String>>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for seg in path {
            let entry = cur
                .entry(format!("f:{seg}"))
                .or_insert_with(|| Value::Object(Map::new()));
            cur = match entry {
                Value::Object(m) => m,
                _ => unreachable!("fieldsV1 nodes are objects"),
            };
        }
    }
    Value::Object(root)
}

/// Field paths an apply configuration sets: object leaves, with lists atomic.
fn leaf_paths(config: &Value) -> BTreeSet<Vec<String>> {
    fn walk(v: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    if prefix.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "status") {
                        continue;
                    }
                    if prefix.len() == 1
                        && prefix[0] == "metadata"
                        && matches!(k.as_str(), "name" | "namespace")
                    {
                        continue;
                    }
                    prefix.push(k.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(config, &mut Vec::new(), &mut out);
    out
}

fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| cur.get(seg.as_str()))
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
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

fn strip_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels.and_then(|l| l.get(k)).and_then(Value::as_str) != Some(v)
        } else if let Some((k, v)) = term.split_once('=') {
            let v = v.trim_start_matches('=');
            labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v)
        } else {
            labels.is_some_and(|l| l.contains_key(term))
        }
    })
}
