//! Cluster access: connect, discover, staged server-side apply, live diff, ApplySet prune and
//! readiness waits.
//!
//! - [`connect`](mod@connect): kubeconfig/context/in-cluster to a [`Cluster`]
//! - [`discovery`]: the lazy RESTMapper
//! - [`package`]: a rendered package made ready to send, and its ApplySet parent as it is live
//! - [`admission`]: refusals of admission explained (a webhook that cannot be called, a
//!   namespace being deleted)
//! - [`apply`]: staged server-side apply of all selected packages, with recreate
//! - [`prune`]: which live ApplySet members to delete, the guards around it, and the deletes
//! - [`csa`]: taking over fields from client-side `kubectl apply`
//! - [`applyset`]: the ApplySet parent that records what a package owns
//! - [`live`]: the live copies of a package's objects, read with a few LISTs (apply and diff
//!   share it)
//! - [`unchanged`]: objects provably unchanged without a dry run: the fingerprints a parent
//!   records (apply, diff and status ask it first)
//! - [`owned`]: whether an apply changes an object, judged on the fields kpin owns (apply, diff
//!   and status share it)
//! - [`diff`]: live objects against server-side dry-run results, as `crate::changes` sections
//! - [`wait`]: readiness of workloads, Jobs, CRDs and APIServices
//! - [`report`]: what happened per object, as a table or JSON
//! - [`status`]: what runs where (`kpin status`): the parents' records against kpin.lock, and
//!   drift

pub mod admission;
pub mod apply;
pub mod applyset;
pub mod connect;
pub mod csa;
pub mod diff;
pub mod discovery;
pub mod live;
pub mod owned;
pub mod package;
pub mod prune;
pub mod report;
pub mod status;
pub mod unchanged;
pub mod wait;

use kube::api::{DeleteParams, DynamicObject, GetParams, ListParams, Patch, PatchParams};
use serde_json::Value;

pub use connect::{Cluster, ConnectOptions, Destination, connect};

use crate::object::Object;
use discovery::Resolved;

/// Errors callers (and tests) branch on.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `--context` names another context than the environment's `context:` in kpin.yaml:
    /// `--env prod` never reaches another cluster by accident.
    #[error("environment {env} uses context {wanted}, but --context {given} was given")]
    ContextMismatch {
        env: String,
        wanted: String,
        given: String,
    },
    /// Neither `--context`, the environment nor the kubeconfig's `current-context` names a
    /// context.
    #[error("the kubeconfig has no current context")]
    NoContext,
    /// The context to use is not in the kubeconfig, or no kubeconfig was found for it.
    #[error("context {name} is not in the kubeconfig (known: {known})")]
    UnknownContext { name: String, known: String },
    /// A request never reached the API server: refused, timed out, or a TLS or server
    /// certificate failure (`Cluster::explain`).
    #[error("cannot reach the cluster at {server} ({via}): {problem}")]
    Unreachable {
        server: String,
        via: String,
        problem: connect::Unreachable,
    },
    /// The kubeconfig user's client certificate cannot be used (e.g. an X.509 v1
    /// certificate), found while building the client.
    #[error("the client certificate of user `{user}` ({via}) {problem}")]
    ClientCertificate {
        user: String,
        via: String,
        problem: connect::CertificateProblem,
    },
    /// The package's ApplySet parent ConfigMap exists but another tool (kubectl, another
    /// applier) manages it: kpin neither adopts nor prunes its set.
    #[error("package {package}: the ApplySet parent {parent} is managed by {tooling}, not kpin")]
    ForeignParent {
        package: String,
        parent: String,
        tooling: String,
    },
    /// `--prune` of a package that renders no objects, without `--allow-empty`.
    #[error(
        "package {package} renders no objects, so --prune would delete everything it applied before"
    )]
    EmptyPrune { package: String },
    /// `--prune` would delete more than half of the package's objects in the cluster (and
    /// more than a handful), without `--allow-mass-prune`.
    #[error(
        "package {package}: --prune would delete {count} of the {members} objects in the cluster that it applied before:\n{list}"
    )]
    MassPrune {
        package: String,
        count: usize,
        members: usize,
        /// One object per line, indented.
        list: String,
    },
}

/// Fields the server owns; sending them makes an apply fail or take over server state.
const SERVER_FIELDS: &[&str] = &[
    "/metadata/managedFields",
    "/metadata/resourceVersion",
    "/metadata/uid",
    "/metadata/creationTimestamp",
    "/metadata/generation",
    "/metadata/selfLink",
    "/metadata/deletionTimestamp",
    "/metadata/deletionGracePeriodSeconds",
    "/status",
];

fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    let parent = if parent.is_empty() {
        Some(&mut *value)
    } else {
        value.pointer_mut(parent)
    };
    if let Some(map) = parent.and_then(Value::as_object_mut) {
        map.remove(key);
    }
}

/// The object as kpin sends it: without status and server-owned metadata.
pub fn apply_body(object: &Object) -> Value {
    let mut v = object.0.clone();
    for p in SERVER_FIELDS {
        remove_pointer(&mut v, p);
    }
    v
}

/// Requests for one kind in one namespace, answered as plain JSON. Like `kube::Api`, minus the
/// typed `DynamicObject` round trip, which costs more than the request on large CRDs.
pub(crate) struct ResourceApi {
    client: kube::Client,
    request: kube::core::Request,
    /// What the requests address: the identity of every object they return.
    resource: kube::api::ApiResource,
}

impl ResourceApi {
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<T, kube::Error> {
        self.client
            .request(req.map_err(kube::Error::BuildRequest)?)
            .await
    }

    pub async fn get_opt(&self, name: &str) -> Result<Option<Value>, kube::Error> {
        match self
            .send(self.request.get(name, &GetParams::default()))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if api_status(&e).is_some_and(|s| s.code == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn patch<P: serde::Serialize + std::fmt::Debug>(
        &self,
        name: &str,
        pp: &PatchParams,
        patch: &Patch<P>,
    ) -> Result<Value, kube::Error> {
        self.send(self.request.patch(name, pp, patch)).await
    }

    /// The items of a LIST. A real API server leaves `kind` and `apiVersion` off the items of
    /// built-in kinds (only the list has them), so they are set here from what was asked for:
    /// whatever reads an item gets its identity from the request, never from the item.
    pub async fn list(&self, lp: &ListParams) -> Result<Vec<Value>, kube::Error> {
        let list: Value = self.send(self.request.list(lp)).await?;
        let items = match list {
            Value::Object(mut m) => match m.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        Ok(items
            .into_iter()
            .map(|item| with_identity(item, &self.resource))
            .collect())
    }

    pub async fn delete(&self, name: &str, dp: &DeleteParams) -> Result<(), kube::Error> {
        self.send::<Value>(self.request.delete(name, dp))
            .await
            .map(drop)
    }
}

/// `item` with the `apiVersion` and `kind` of the resource it was read from.
fn with_identity(item: Value, resource: &kube::api::ApiResource) -> Value {
    let Value::Object(fields) = item else {
        return item;
    };
    // First, where every object has them.
    let mut map = serde_json::Map::with_capacity(fields.len() + 2);
    map.insert(
        "apiVersion".into(),
        Value::String(resource.api_version.clone()),
    );
    map.insert("kind".into(), Value::String(resource.kind.clone()));
    for (key, value) in fields {
        if key != "apiVersion" && key != "kind" {
            map.insert(key, value);
        }
    }
    Value::Object(map)
}

/// Requests for one resolved kind in a namespace (ignored for cluster-scoped kinds).
pub(crate) fn api_for(
    cluster: &Cluster,
    resolved: &Resolved,
    namespace: Option<&str>,
) -> ResourceApi {
    let ns = match (resolved.namespaced, namespace) {
        (true, Some(ns)) => Some(ns),
        (true, None) => Some(cluster.target.default_namespace.as_str()),
        (false, _) => None,
    };
    ResourceApi {
        client: cluster.client.clone(),
        request: kube::core::Request::new(<DynamicObject as kube::Resource>::url_path(
            &resolved.resource,
            ns,
        )),
        resource: resolved.resource.clone(),
    }
}

/// Requests for one namespaced kind across all namespaces (LIST only).
pub(crate) fn api_all_namespaces(cluster: &Cluster, resolved: &Resolved) -> ResourceApi {
    ResourceApi {
        client: cluster.client.clone(),
        request: kube::core::Request::new(<DynamicObject as kube::Resource>::url_path(
            &resolved.resource,
            None,
        )),
        resource: resolved.resource.clone(),
    }
}

/// GET one object; `None` when it does not exist.
pub(crate) async fn get(api: &ResourceApi, name: &str) -> Result<Option<Value>, kube::Error> {
    api.get_opt(name).await
}

/// The API server's failure status, if the error is one.
pub(crate) fn api_status(err: &kube::Error) -> Option<&kube::core::Status> {
    match err {
        kube::Error::Api(s) => Some(s),
        _ => None,
    }
}

/// Whether the server refused a change to an immutable field (the way out is `--recreate`).
pub(crate) fn is_immutable(err: &kube::Error) -> bool {
    api_status(err).is_some_and(|s| s.code == 422 && s.message.contains("field is immutable"))
}

/// The fields a 422 "field is immutable" names, from its causes (`spec.template`).
pub(crate) fn immutable_fields(err: &kube::Error) -> Vec<String> {
    let Some(s) = api_status(err) else {
        return Vec::new();
    };
    let mut fields: Vec<String> = s
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .filter(|c| c.message.contains("field is immutable") && !c.field.is_empty())
        .map(|c| c.field.clone())
        .collect();
    fields.dedup();
    if fields.is_empty() {
        // `Job.batch "x" is invalid: spec.template: Invalid value: ...`
        fields.extend(
            s.message
                .split_once("is invalid: ")
                .and_then(|(_, rest)| rest.split_once(": "))
                .map(|(field, _)| field.to_owned()),
        );
    }
    fields
}

/// Strip what the server adds and changes on its own, for comparisons and diffs.
pub fn strip_noise(value: &Value) -> Value {
    let mut v = value.clone();
    for p in SERVER_FIELDS {
        remove_pointer(&mut v, p);
    }
    if let Some(ann) = v
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        ann.remove("kubectl.kubernetes.io/last-applied-configuration");
        ann.remove("deployment.kubernetes.io/revision");
        if ann.is_empty() {
            remove_pointer(&mut v, "/metadata/annotations");
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_body_drops_server_fields_only() {
        let o = Object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "3", "uid": "u", "managedFields": [], "labels": {"x": "y"}},
            "data": {"k": "v"}, "status": {}}));
        assert_eq!(
            apply_body(&o),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn list_items_take_their_identity_from_the_request() {
        let resource = kube::api::ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
        };
        // As a real server lists built-in kinds: no kind, no apiVersion on the item.
        let item = json!({"metadata": {"name": "web", "namespace": "demo"}, "spec": {}});
        let item = Object(with_identity(item, &resource));
        assert_eq!(item.reference().to_string(), "Deployment demo/web");
        assert_eq!(item.group(), "apps");
    }

    #[test]
    fn strip_noise_leaves_only_what_a_diff_should_show() {
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "uid": "u", "resourceVersion": "7", "generation": 3,
                "creationTimestamp": "2025-01-01T00:00:00Z", "managedFields": [{"manager": "kpin"}],
                "annotations": {"deployment.kubernetes.io/revision": "3",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 2}, "status": {"readyReplicas": 2}});
        assert_eq!(
            strip_noise(&live),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "demo"}, "spec": {"replicas": 2}})
        );
        let mut annotated = live.clone();
        annotated["metadata"]["annotations"]["team"] = json!("platform");
        assert_eq!(
            strip_noise(&annotated)["metadata"]["annotations"],
            json!({"team": "platform"})
        );
    }
}
