//! A rendered package made ready for the cluster, shared by `apply` and `diff`: its objects as
//! they will be sent (server fields dropped, namespaces defaulted, the ApplySet member label)
//! and its ApplySet parent as it is in the cluster.

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::applyset::{self, Contents, Deployed, Fingerprints, Parent};
use super::{Cluster, ClusterError, ResourceApi, api_for, apply_body, get};
use crate::kinds;
use crate::object::Object;
use crate::render::RenderedPackage;

/// Custom kinds defined by CRDs in the render of any selected package: (group, kind) ->
/// namespaced. A custom resource may come from one package and its CRD from another.
pub type CustomKinds = HashMap<(String, String), bool>;

/// The custom kinds the CRDs among `objects` define.
pub fn custom_kinds<'a>(objects: impl IntoIterator<Item = &'a Object>) -> CustomKinds {
    objects
        .into_iter()
        .filter(|o| (o.group(), o.kind()) == kinds::CRD_KIND)
        .filter_map(|o| {
            let group = o.0.pointer("/spec/group")?.as_str()?.to_owned();
            let kind = o.0.pointer("/spec/names/kind")?.as_str()?.to_owned();
            let namespaced =
                o.0.pointer("/spec/scope").and_then(Value::as_str) == Some("Namespaced");
            Some(((group, kind), namespaced))
        })
        .collect()
}

/// The objects as they will be sent: server fields dropped, namespace defaulted, member label.
/// `scope` answers for kinds the kinds table does not know (custom kinds).
pub fn prepare(
    rendered: &RenderedPackage,
    default_namespace: &str,
    applyset_id: Option<&str>,
    scope: &dyn Fn(&str, &str) -> Option<bool>,
) -> Vec<Object> {
    rendered
        .objects
        .iter()
        .map(|o| {
            let mut o = Object(apply_body(o));
            match kinds::namespaced(o.group(), o.kind(), scope) {
                Some(true) if o.namespace().is_none() => o.set_namespace(default_namespace),
                // Upstream YAML sometimes gives cluster-scoped objects a namespace; the server
                // ignores it, and keeping it would make the object look foreign to prune.
                Some(false) if o.namespace().is_some() => {
                    o.metadata_mut().remove("namespace");
                }
                _ => {}
            }
            if let Some(id) = applyset_id {
                applyset::label_member(&mut o, id);
            }
            o
        })
        .collect()
}

/// One selected package: its render and the namespace its ApplySet parent lives in.
#[derive(Debug, Clone, Copy)]
pub struct Selected<'a> {
    pub rendered: &'a RenderedPackage,
    pub namespace: Option<&'a str>,
}

/// A package ready to send: its ApplySet parent and its objects as they will be applied.
pub(crate) struct Prepared {
    /// Where the parent lives, and the default for namespaced objects that name none.
    pub parent_ns: String,
    pub parent: Parent,
    /// The ApplySet id every member is labelled with.
    pub id: String,
    pub objects: Vec<Object>,
}

/// Prepare a package (see [`prepare`]) and warm discovery for the API versions it uses, so the
/// per-object requests that follow do not each wait for it. The scope of a custom kind comes
/// from the CRDs of the selected packages, else from the cluster, so that the identity of every
/// object (its namespace included) is the one the server will give it.
pub(crate) async fn prepare_package(
    cluster: &Cluster,
    rendered: &RenderedPackage,
    namespace: Option<&str>,
    custom: &CustomKinds,
) -> Prepared {
    let parent = parent_of(cluster, &rendered.name, namespace);
    let (parent_ns, id) = (parent.namespace.clone(), parent.id());
    cluster
        .mapper
        .preload(
            rendered
                .objects
                .iter()
                .map(Object::api_version)
                .chain(["v1"]),
        )
        .await;
    let mut served: CustomKinds = HashMap::new();
    for o in &rendered.objects {
        let key = (o.group().to_owned(), o.kind().to_owned());
        if kinds::lookup(&key.0, &key.1).is_some()
            || custom.contains_key(&key)
            || served.contains_key(&key)
        {
            continue;
        }
        if let Ok(Some(resolved)) = cluster.mapper.resolve(o.api_version(), o.kind()).await {
            served.insert(key, resolved.namespaced);
        }
    }
    let scope = |g: &str, k: &str| {
        let key = (g.to_owned(), k.to_owned());
        custom.get(&key).or_else(|| served.get(&key)).copied()
    };
    let objects = prepare(rendered, &parent_ns, Some(&id), &scope);
    Prepared {
        parent_ns,
        parent,
        id,
        objects,
    }
}

/// The ApplySet parent of package `name`: in its namespace, else in the context's.
pub(crate) fn parent_of(cluster: &Cluster, name: &str, namespace: Option<&str>) -> Parent {
    Parent::for_package(name, namespace.unwrap_or(&cluster.target.default_namespace))
}

/// An error unless namespace `name` exists (the ApplySet parent of a package lives in it).
pub(crate) async fn require_namespace(cluster: &Cluster, name: &str) -> Result<()> {
    let ns = cluster
        .mapper
        .resolve("v1", "Namespace")
        .await?
        .context("the cluster does not serve v1 Namespace")?;
    match get(&api_for(cluster, &ns, None), name)
        .await
        .with_context(|| format!("reading namespace {name}"))?
    {
        Some(_) => Ok(()),
        None => Err(anyhow::anyhow!("namespace {name} does not exist")),
    }
}

/// A package's ApplySet parent as it is in the cluster.
pub(crate) struct ParentState {
    pub api: ResourceApi,
    pub live: Option<Value>,
    /// What the live parent records (empty when there is none).
    pub recorded: Contents,
    /// What it says runs, when it says.
    pub deployed: Option<Deployed>,
    /// The fingerprints of the objects its last apply saw through.
    pub fingerprints: Fingerprints,
}

/// Read the parent and refuse one that another tool manages.
pub(crate) async fn read_parent(
    cluster: &Cluster,
    package: &str,
    parent: &Parent,
) -> Result<ParentState> {
    let cm = cluster
        .mapper
        .resolve("v1", "ConfigMap")
        .await?
        .context("the cluster does not serve v1 ConfigMap")?;
    let api = api_for(cluster, &cm, Some(&parent.namespace));
    let live = get(&api, &parent.name).await.with_context(|| {
        format!(
            "reading the ApplySet parent ConfigMap {}/{}",
            parent.namespace, parent.name
        )
    })?;
    if let Some(tooling) = live.as_ref().and_then(applyset::foreign_tooling) {
        return Err(ClusterError::ForeignParent {
            package: package.to_owned(),
            parent: format!("ConfigMap {}/{}", parent.namespace, parent.name),
            tooling,
        }
        .into());
    }
    let recorded = live.as_ref().map(Contents::from_parent).unwrap_or_default();
    let deployed = live.as_ref().and_then(Deployed::from_parent);
    let fingerprints = live
        .as_ref()
        .map(Fingerprints::from_parent)
        .unwrap_or_default();
    Ok(ParentState {
        api,
        live,
        recorded,
        deployed,
        fingerprints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prepare_defaults_namespaces_drops_them_from_cluster_objects_and_labels_members() {
        let widget_crd = Object(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget"}}}),
        );
        let rendered = RenderedPackage {
            name: "demo".into(),
            version: "1".into(),
            env: None,
            objects: vec![
                Object(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "1"}}),
                ),
                Object(
                    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r", "namespace": "x"}}),
                ),
                Object(
                    json!({"apiVersion": "example.com/v1", "kind": "Mystery", "metadata": {"name": "m"}}),
                ),
                Object(
                    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
                ),
            ],
            warnings: vec![],
            explanation: None,
            inputs: vec![],
        };
        // The CRD may come from another package.
        let custom = custom_kinds([&widget_crd]);
        let scope = |g: &str, k: &str| custom.get(&(g.to_owned(), k.to_owned())).copied();
        let out = prepare(&rendered, "demo", Some("applyset-x-v1"), &scope);
        assert_eq!(out[0].namespace(), Some("demo"));
        assert!(out[0].0.pointer("/metadata/resourceVersion").is_none());
        assert_eq!(out[1].namespace(), None);
        assert_eq!(
            out[2].namespace(),
            None,
            "unknown scope is left to the server"
        );
        assert_eq!(out[3].namespace(), Some("demo"));
        assert_eq!(
            out[1].labels().unwrap()[applyset::PART_OF_LABEL],
            "applyset-x-v1"
        );
    }
}
