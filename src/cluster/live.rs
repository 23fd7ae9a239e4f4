//! What is live of a package's objects before anything is sent, read with as few requests as
//! possible: apply and diff share it. The members of the package's ApplySet come from the
//! LISTs prune makes anyway ([`super::prune::live_members`], one per kind); an object that is
//! not a member yet is absent when its namespace was just created, is read with one LIST per
//! kind and namespace when there are several, and otherwise with its own GET.

use std::collections::{BTreeMap, HashMap, HashSet};

use kube::api::ListParams;
use serde_json::Value;

use super::{Cluster, api_for};
use crate::object::{Object, ObjectRef};

/// Groups of non-members larger than this are read with one LIST instead of one GET each.
const LIST_THRESHOLD: usize = 4;

/// What is known of one object before its apply.
pub(crate) enum Known {
    /// Nothing: its apply reads it first.
    Unknown,
    /// The live object, `None` when the cluster has none.
    Listed(Option<Value>),
}

/// The live objects of a package: what the member LISTs returned, by identity.
pub(crate) struct LiveObjects {
    listed: HashMap<ObjectRef, Option<Value>>,
    /// Namespaces created by this very apply: nothing can be in them yet.
    fresh: HashSet<String>,
}

impl LiveObjects {
    /// What the member LISTs returned of `objects`. A member listed in another version of
    /// its group than the render's (the LIST asks for the preferred one) is read again in the
    /// render's: compared across versions, every field would look changed.
    pub(crate) fn new(mut members: HashMap<ObjectRef, Value>, objects: &[Object]) -> LiveObjects {
        let listed = objects
            .iter()
            .filter_map(|o| {
                let r = o.reference();
                let live = members.remove(&r)?;
                (live.get("apiVersion").and_then(Value::as_str) == Some(o.api_version()))
                    .then(|| (r, Some(live)))
            })
            .collect();
        LiveObjects {
            listed,
            fresh: HashSet::new(),
        }
    }

    /// Namespace `name` did not exist before this apply created it.
    pub(crate) fn created_namespace(&mut self, name: &str) {
        self.fresh.insert(name.to_owned());
    }

    /// Take what is known of `objects` (each is asked once): members as listed, the rest read
    /// with LISTs where several share a kind and namespace, absent in a fresh namespace.
    pub(crate) async fn take(&mut self, cluster: &Cluster, objects: &[&Object]) -> Vec<Known> {
        let mut unlisted: Vec<&Object> = Vec::new();
        for o in objects {
            let r = o.reference();
            if !self.listed.contains_key(&r)
                && o.namespace().is_some_and(|ns| self.fresh.contains(ns))
            {
                self.listed.insert(r, None);
            } else if !self.listed.contains_key(&r) {
                unlisted.push(o);
            }
        }
        self.listed
            .extend(list_by_namespace(cluster, &unlisted).await);
        objects
            .iter()
            .map(|o| {
                self.listed
                    .remove(&o.reference())
                    .map_or(Known::Unknown, Known::Listed)
            })
            .collect()
    }
}

/// Live objects of the groups (kind and namespace) of `objects` big enough to LIST: ref ->
/// live (`None` = absent). Objects of smaller groups, cluster-scoped ones and those whose LIST
/// failed are left out.
async fn list_by_namespace(
    cluster: &Cluster,
    objects: &[&Object],
) -> HashMap<ObjectRef, Option<Value>> {
    let mut groups: BTreeMap<(&str, &str, Option<&str>), Vec<&Object>> = BTreeMap::new();
    for &o in objects {
        groups
            .entry((o.api_version(), o.kind(), o.namespace()))
            .or_default()
            .push(o);
    }
    // The LISTs are independent of each other: all at once.
    let lists = groups
        .into_iter()
        .filter(|(_, members)| members.len() >= LIST_THRESHOLD)
        .map(|((api_version, kind, ns), members)| async move {
            let live = list_namespace(cluster, api_version, kind, ns).await?;
            Some((members, live))
        });
    let mut out = HashMap::new();
    for (members, mut live) in futures::future::join_all(lists).await.into_iter().flatten() {
        for m in members {
            out.insert(m.reference(), live.remove(m.name()));
        }
    }
    out
}

/// The live objects of one kind in one namespace by name; `None` when the kind is
/// cluster-scoped or the LIST fails (then each object is read with its own GET).
async fn list_namespace(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
    ns: Option<&str>,
) -> Option<HashMap<String, Value>> {
    let resolved = cluster.mapper.resolve(api_version, kind).await.ok()??;
    // Only within a namespace: a cluster-wide LIST (all CRDs of a big cluster) can be far
    // larger than the objects kpin needs.
    if !resolved.namespaced {
        return None;
    }
    let api = api_for(cluster, &resolved, ns);
    // A failed LIST (e.g. no list permission) just falls back to one GET per object.
    let list = api.list(&ListParams::default()).await.ok()?;
    Some(
        list.into_iter()
            .map(|o| {
                (
                    o.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    o,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_member_listed_in_another_version_than_the_renders_is_read_again() {
        let hpa = |version: &str| {
            Object(json!({"apiVersion": format!("autoscaling/{version}"),
                "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h", "namespace": "n"}}))
        };
        let cm = Object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}),
        );
        // The member LIST asked for the preferred version, autoscaling/v2.
        let members = [
            (hpa("v1").reference(), hpa("v2").0),
            (cm.reference(), cm.0.clone()),
        ]
        .into_iter()
        .collect();
        let live = LiveObjects::new(members, &[hpa("v1"), cm.clone()]);
        assert!(live.listed.contains_key(&cm.reference()));
        assert!(!live.listed.contains_key(&hpa("v1").reference()));
    }
}
