//! Charts in an OCI registry (the distribution API): a chart's tags, its manifest by tag and
//! the chart layer's blob; registry credentials as `helm registry login` and `docker login`
//! store them, sent for Basic challenges or traded for a Bearer token.

use std::fmt;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde::Deserialize;
use url::Url;

use crate::error::{HintExt, quote};
use crate::fetch::{Auth, Client, Origin, SourceFile};
use crate::fsutil::check_path_segment;

/// The media type of a chart's archive layer.
const CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// What kpin asks a registry for when it reads a manifest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json";

/// An OCI repository: `host[:port]/path/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: String,
    /// The repository path under the host, ending in the chart's name.
    pub repository: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.host, self.repository)
    }
}

impl Reference {
    /// `host/path` (after `oci://`) and the chart name.
    pub fn parse(rest: &str, name: &str) -> Result<Reference> {
        let rest = rest.trim_end_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || name.is_empty() || name.contains('/') {
            bail!(
                "{} is not an OCI repository",
                quote(&format!("oci://{rest}"))
            );
        }
        let repository = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}/{name}")
        };
        let valid = repository.split('/').all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        });
        if !valid {
            bail!("{} is not a valid OCI repository path", quote(&repository));
        }
        Ok(Reference {
            host: host.to_owned(),
            repository,
        })
    }

    pub fn name(&self) -> &str {
        self.repository.rsplit('/').next().unwrap_or_default()
    }

    /// A loopback registry speaks plain http, as docker and helm assume for `localhost`.
    fn base(&self) -> Result<Url> {
        let host = self
            .host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(self.host.as_str(), |(h, _)| h);
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        let scheme = if loopback { "http" } else { "https" };
        Url::parse(&format!("{scheme}://{}/v2/{}/", self.host, self.repository))
            .with_context(|| format!("{self}: not a valid registry address"))
    }
}

/// Helm stores chart versions as tags with `+` (not allowed in a tag) written `_`.
fn tag_of(version: &str) -> String {
    version.replace('+', "_")
}

#[derive(Debug, Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Every tag of the chart's repository, as versions (`_` back to `+`).
pub async fn tags(client: &Client, reference: &Reference) -> Result<Vec<String>> {
    let url = reference.base()?.join("tags/list?n=10000")?;
    let (bytes, _) = client
        .get_bytes(&url, Auth::Registry)
        .await
        .with_context(|| format!("listing the tags of {reference}"))?;
    let list: TagList =
        serde_json::from_slice(&bytes).with_context(|| format!("GET {url}: unexpected JSON"))?;
    Ok(list
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.replace('_', "+"))
        .collect())
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
}

/// The chart archive of `version`: its manifest looked up by tag (the manifest's digest is
/// recorded in the file's locked address), the archive layer's blob as the file, expected to
/// have the layer's digest.
pub async fn chart_archive(
    client: &Client,
    reference: &Reference,
    version: &str,
) -> Result<SourceFile> {
    let base = reference.base()?;
    let url = base.join(&format!("manifests/{}", tag_of(version)))?;
    let (bytes, _) = client
        .get_bytes(&url, Auth::RegistryManifest)
        .await
        .with_context(|| format!("looking up {reference}:{version}"))?;
    let manifest_digest = crate::digest::sha256_hex(&bytes);
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("GET {url}: not an OCI manifest"))?;
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == CHART_LAYER)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{reference}:{version} is not a Helm chart (no layer of type {CHART_LAYER})"
            )
        })?;
    let Some(hex) = layer.digest.strip_prefix("sha256:") else {
        bail!(
            "{reference}:{version}: layer digest {} is not sha256",
            quote(&layer.digest)
        );
    };
    let name = format!("{}-{version}.tgz", reference.name());
    check_path_segment(&name)?;
    Ok(SourceFile {
        name,
        origin: Origin::Remote {
            url: base.join(&format!("blobs/{}", layer.digest))?,
            auth: Auth::Registry,
        },
        locked_from: format!("{reference}:{}@sha256:{manifest_digest}", tag_of(version)),
        expected: Some(hex.to_ascii_lowercase()),
    })
}

/// A registry's `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut realm = None;
        let mut service = None;
        let mut scope = None;
        for part in split_params(params) {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').to_owned();
            match k.trim() {
                "realm" => realm = Some(v),
                "service" => service = Some(v),
                "scope" => scope = Some(v),
                _ => {}
            }
        }
        Some(Challenge::Bearer {
            realm: realm?,
            service,
            scope,
        })
    }
}

/// `a="x,y",b="z"` split at the commas outside quotes.
fn split_params(params: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in params.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&params[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&params[start..]);
    out
}

/// A user name and password for a registry host.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, ConfigAuth>,
}

#[derive(Debug, Deserialize)]
struct ConfigAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The registry credential files kpin reads, first match wins: `KPIN_REGISTRY_CONFIG`, helm's
/// (`HELM_REGISTRY_CONFIG`, `~/.config/helm/registry/config.json`), docker's
/// (`DOCKER_CONFIG/config.json`, `~/.docker/config.json`).
fn config_files() -> Vec<std::path::PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    let home = env("HOME");
    let xdg = env("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
    [
        env("KPIN_REGISTRY_CONFIG"),
        env("HELM_REGISTRY_CONFIG"),
        xdg.map(|x| x.join("helm/registry/config.json")),
        env("DOCKER_CONFIG").map(|d| d.join("config.json")),
        home.map(|h| h.join(".docker/config.json")),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The stored credentials for `host` (`host:port`), if any file has them.
pub fn credentials(host: &str) -> Result<Option<Credentials>> {
    for path in config_files() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let config: ConfigFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a registry credentials file", path.display()))?;
        let entry = config.auths.iter().find(|(k, _)| {
            let k = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            k.trim_end_matches('/') == host
        });
        let Some((_, auth)) = entry else { continue };
        if let (Some(username), Some(password)) = (&auth.username, &auth.password) {
            return Ok(Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }));
        }
        if let Some(encoded) = &auth.auth {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
            let Some((username, password)) = decoded else {
                return Err(anyhow::anyhow!(
                    "{}: auths.{host}.auth is not base64 of USER:PASSWORD",
                    path.display()
                ))
                .hint("log in again with `helm registry login`");
            };
            return Ok(Some(Credentials { username, password }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_challenges() {
        let r = Reference::parse("127.0.0.1:5000/charts", "ingress-nginx").unwrap();
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/charts/ingress-nginx");
        assert_eq!(r.name(), "ingress-nginx");
        assert_eq!(
            r.base().unwrap().as_str(),
            "http://127.0.0.1:5000/v2/charts/ingress-nginx/"
        );
        let gh =
            Reference::parse("ghcr.io/external-secrets/charts", "bitwarden-sdk-server").unwrap();
        assert!(
            gh.base()
                .unwrap()
                .as_str()
                .starts_with("https://ghcr.io/v2/")
        );
        assert!(Reference::parse("host/Upper", "x").is_err());
        assert_eq!(tag_of("1.0.0+build.1"), "1.0.0_build.1");
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:a/b:pull".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
    }
}
