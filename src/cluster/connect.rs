//! Connecting like kubectl: kubeconfig from `--kubeconfig` or `KUBECONFIG` (or ~/.kube/config),
//! `--context` or the environment's context, in-cluster config as the fallback; exec credential
//! plugins work because kube runs them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::ClusterError;
use super::discovery::RestMapper;

/// Where to connect, as the user asked for it.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`; else `KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// The selected environment and the context it names in kpin.yaml, if any.
    pub environment: Option<(String, Option<String>)>,
}

/// The cluster kpin talks to, printed before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The kubeconfig context, `None` for in-cluster config.
    pub context: Option<String>,
    pub server: String,
    /// The namespace for namespaced objects that name none.
    pub default_namespace: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.context {
            Some(c) => write!(f, "context {c} ({})", self.server),
            None => write!(f, "in-cluster ({})", self.server),
        }
    }
}

/// A connected cluster: the kube client and the lazily filled RESTMapper.
pub struct Cluster {
    pub client: kube::Client,
    pub target: Target,
    pub mapper: RestMapper,
}

/// Decide the context without touching the network: `--context` wins, but it must agree with
/// the environment's context, so `--env prod` can never reach another cluster by accident.
pub fn choose_context(opts: &ConnectOptions) -> Result<Option<String>, ClusterError> {
    let env_context = opts
        .environment
        .as_ref()
        .and_then(|(e, c)| c.as_ref().map(|c| (e, c)));
    match (&opts.context, env_context) {
        (Some(given), Some((env, wanted))) if given != wanted => {
            Err(ClusterError::ContextMismatch {
                env: env.clone(),
                wanted: wanted.clone(),
                given: given.clone(),
            })
        }
        (Some(given), _) => Ok(Some(given.clone())),
        (None, Some((_, wanted))) => Ok(Some(wanted.clone())),
        (None, None) => Ok(None),
    }
}

fn read_kubeconfig(path: Option<&Path>) -> Result<Option<Kubeconfig>> {
    if let Some(path) = path {
        return Kubeconfig::read_from(path)
            .map(Some)
            .with_context(|| format!("reading kubeconfig {}", path.display()));
    }
    let from_env = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"));
    if from_env.is_none() && !home.as_ref().is_some_and(|h| h.is_file()) {
        return Ok(None);
    }
    Kubeconfig::read()
        .map(Some)
        .context("reading kubeconfig from KUBECONFIG or ~/.kube/config")
}

/// Build the client for `opts`. Makes no request: the first request is the caller's.
pub async fn connect(opts: &ConnectOptions) -> Result<Cluster> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let context = choose_context(opts)?;
    let (config, context) = match read_kubeconfig(opts.kubeconfig.as_deref())? {
        Some(kubeconfig) => {
            let name = context
                .clone()
                .or_else(|| kubeconfig.current_context.clone())
                .ok_or(ClusterError::NoContext)?;
            if !kubeconfig.contexts.iter().any(|c| c.name == name) {
                let known: Vec<&str> = kubeconfig
                    .contexts
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(ClusterError::UnknownContext {
                    name,
                    known: known.join(", "),
                }
                .into());
            }
            let options = KubeConfigOptions {
                context: Some(name.clone()),
                ..Default::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("loading kubeconfig context {name}"))?;
            (config, Some(name))
        }
        None => {
            if let Some(name) = context {
                return Err(ClusterError::UnknownContext {
                    name,
                    known: "(no kubeconfig found)".into(),
                }
                .into());
            }
            let config = kube::Config::incluster()
                .map_err(|e| anyhow::anyhow!(e))
                .context(
                    "no kubeconfig found (KUBECONFIG, ~/.kube/config) and not running in a cluster",
                )?;
            (config, None)
        }
    };
    let target = Target {
        context,
        server: config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned(),
        default_namespace: config.default_namespace.clone(),
    };
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    Ok(Cluster {
        mapper: RestMapper::new(client.clone()),
        client,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(context: Option<&str>, env_context: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: None,
            context: context.map(str::to_owned),
            environment: Some(("prod".into(), env_context.map(str::to_owned))),
        }
    }

    #[test]
    fn environment_context_is_the_default_and_cannot_be_overridden() {
        assert_eq!(
            choose_context(&opts(None, Some("prod-eu")))
                .ok()
                .flatten()
                .as_deref(),
            Some("prod-eu")
        );
        assert_eq!(
            choose_context(&opts(Some("prod-eu"), Some("prod-eu")))
                .ok()
                .flatten()
                .as_deref(),
            Some("prod-eu")
        );
        assert_eq!(
            choose_context(&opts(Some("dev"), None))
                .ok()
                .flatten()
                .as_deref(),
            Some("dev")
        );
        let err = choose_context(&opts(Some("dev"), Some("prod-eu"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("environment prod uses context prod-eu"),
            "{err}"
        );
    }
}
