//! A lazy RESTMapper: maps `apiVersion` + `kind` to the resource URL, asking the API server only
//! for the group versions a render uses (one request each) instead of walking all of discovery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use kube::api::ApiResource;

use super::api_status;
use crate::error::HintExt as _;

/// A resolved kind: where it lives and whether it is namespaced.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

type GroupVersionResources = Arc<Vec<Resolved>>;

/// What discovery learnt of one group version: its resources, or that the APIService serving
/// it does not answer (remembered too, so that each object of that group does not wait for the
/// retries again).
type Discovered = Result<GroupVersionResources, Unavailable>;

/// One group version's resources, discovered once: callers that ask while the request is in
/// flight wait for its answer instead of sending their own.
type Slot = Arc<tokio::sync::OnceCell<Discovered>>;

/// An aggregated API group version whose APIService answers 503: its backend is down.
#[derive(Debug, Clone)]
struct Unavailable {
    api_version: String,
}

impl Unavailable {
    fn error(&self) -> anyhow::Error {
        let api_version = &self.api_version;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        anyhow::Error::msg(format!(
            "the API group version {api_version} is unavailable: the APIService \
             {version}.{group} that serves it does not answer"
        ))
        .hint(format!(
            "`kubectl get apiservice {version}.{group}` says why; the Deployment behind \
             its service must be ready (for metrics.k8s.io: metrics-server)"
        ))
    }
}

pub struct RestMapper {
    client: kube::Client,
    /// apiVersion -> resources served (empty when the group version is not served).
    cache: Mutex<HashMap<String, Slot>>,
    /// group -> preferred version.
    preferred: Mutex<Option<HashMap<String, String>>>,
}

impl RestMapper {
    pub fn new(client: kube::Client) -> RestMapper {
        RestMapper {
            client,
            cache: Mutex::new(HashMap::new()),
            preferred: Mutex::new(None),
        }
    }

    async fn group_version(&self, api_version: &str) -> Result<GroupVersionResources> {
        let slot: Slot = match self.cache.lock() {
            Ok(mut c) => c.entry(api_version.to_owned()).or_default().clone(),
            Err(_) => Slot::default(),
        };
        match slot.get_or_try_init(|| self.discover(api_version)).await? {
            Ok(resources) => Ok(resources.clone()),
            Err(unavailable) => Err(unavailable.error()),
        }
    }

    /// Ask the server which resources `api_version` serves.
    async fn discover(&self, api_version: &str) -> Result<Discovered> {
        let listed = if api_version.contains('/') {
            self.client.list_api_group_resources(api_version).await
        } else {
            self.client.list_core_api_resources(api_version).await
        };
        let list = match listed {
            Ok(list) => list.resources,
            Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
            // An aggregated API (an APIService) whose backend is down: only its own group is
            // unknown, every other group still resolves.
            Err(e)
                if api_status(&e).is_some_and(|s| s.code == 503) && api_version.contains('/') =>
            {
                return Ok(Err(Unavailable {
                    api_version: api_version.to_owned(),
                }));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("discovering the API group version {api_version}"));
            }
        };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resolved: Vec<Resolved> = list
            .into_iter()
            .filter(|r| !r.name.contains('/'))
            .map(|r| Resolved {
                resource: ApiResource {
                    group: group.to_owned(),
                    version: version.to_owned(),
                    api_version: api_version.to_owned(),
                    kind: r.kind,
                    plural: r.name,
                },
                namespaced: r.namespaced,
            })
            .collect();
        Ok(Ok(Arc::new(resolved)))
    }

    /// Discover all of `api_versions` at once (one round trip instead of one per apply stage).
    /// Errors are left for `resolve` to report with the object that needs the kind.
    pub async fn preload<'a>(&self, api_versions: impl IntoIterator<Item = &'a str>) {
        let unique: std::collections::BTreeSet<&str> = api_versions.into_iter().collect();
        futures::future::join_all(unique.into_iter().map(|av| self.group_version(av))).await;
    }

    /// The resource for `apiVersion`/`kind`; `None` when the server does not serve it (yet).
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>> {
        Ok(self
            .group_version(api_version)
            .await?
            .iter()
            .find(|r| r.resource.kind == kind)
            .cloned())
    }

    /// The resource for a group and kind at the group's preferred version (for ApplySet members,
    /// which are recorded without a version).
    pub async fn resolve_group_kind(&self, group: &str, kind: &str) -> Result<Option<Resolved>> {
        if group.is_empty() {
            return self.resolve("v1", kind).await;
        }
        let known = self.preferred.lock().ok().and_then(|p| p.clone());
        let preferred = if let Some(p) = known {
            p
        } else {
            let groups = self
                .client
                .list_api_groups()
                .await
                .context("listing API groups")?;
            let map: HashMap<String, String> = groups
                .groups
                .into_iter()
                .filter_map(|g| {
                    let v = g
                        .preferred_version
                        .or_else(|| g.versions.first().cloned())?;
                    Some((g.name, v.group_version))
                })
                .collect();
            if let Ok(mut p) = self.preferred.lock() {
                *p = Some(map.clone());
            }
            map
        };
        match preferred.get(group) {
            Some(gv) => self.resolve(gv, kind).await,
            None => Ok(None),
        }
    }

    /// Forget what is known about `groups`, e.g. after their CRDs became established.
    pub fn forget(&self, groups: &[String]) {
        if let Ok(mut c) = self.cache.lock() {
            c.retain(|gv, _| {
                !groups
                    .iter()
                    .any(|g| gv.rsplit_once('/').is_some_and(|(cg, _)| cg == g))
            });
        }
        if let Ok(mut p) = self.preferred.lock() {
            *p = None;
        }
    }
}
