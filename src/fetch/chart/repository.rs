//! A classic chart repository: its `index.yaml`, the versions it lists for a chart and where
//! each version's archive is, with the digest the repository gives it.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use url::Url;

use crate::error::{HintExt, quote};
use crate::fetch::{Auth, Client, Origin, SourceFile};
use crate::fsutil::check_path_segment;

/// The index.yaml of the classic repository at `repository` (`https://HOST/PATH`, or the
/// index's own URL).
pub fn index_url(repository: &str) -> Result<Url> {
    let url =
        Url::parse(repository).with_context(|| format!("{} is not a URL", quote(repository)))?;
    if !matches!(url.scheme(), "https" | "http" | "file") {
        return Err(anyhow::anyhow!(
            "scheme {} is not supported",
            quote(url.scheme())
        ))
        .hint("a classic repository is https://HOST/PATH (its index.yaml), an OCI registry oci://HOST/PATH");
    }
    if url.path().ends_with("/index.yaml") {
        return Ok(url);
    }
    let base = format!("{}/", url.as_str().trim_end_matches('/'));
    Ok(Url::parse(&base)?.join("index.yaml")?)
}

/// A repository's index.yaml, as far as kpin reads it.
#[derive(Debug, Deserialize)]
pub struct Index {
    #[serde(default)]
    entries: BTreeMap<String, Vec<Entry>>,
}

/// One chart version of the index.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub version: String,
    #[serde(default)]
    pub urls: Vec<String>,
    /// The archive's sha256 (hex), as `helm repo index` records it.
    #[serde(default)]
    pub digest: Option<String>,
}

impl Index {
    /// GET and parse the index at `url`.
    pub async fn fetch(client: &Client, url: &Url) -> Result<Index> {
        if url.scheme() == "file" {
            return Index::read_local(url);
        }
        let (bytes, _) = client
            .get_bytes(url, Auth::None)
            .await
            .with_context(|| format!("reading the chart repository index {url}"))?;
        Index::parse(&String::from_utf8_lossy(&bytes), url)
    }

    /// Read a `file://` index.
    pub fn read_local(url: &Url) -> Result<Index> {
        let path = url
            .to_file_path()
            .map_err(|()| anyhow::anyhow!("{url}: not a local file path"))?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the chart repository index {}", path.display()))?;
        Index::parse(&text, url)
    }

    fn parse(text: &str, url: &Url) -> Result<Index> {
        crate::yaml::from_str_flavored(
            text,
            std::path::Path::new(url.as_str()),
            crate::yaml::Flavor::Kubernetes,
        )
        .map_err(anyhow::Error::new)
        .context("not a chart repository index")
    }

    /// Every listed version of chart `name`, as listed (newest first, as helm writes them).
    pub fn versions(&self, name: &str) -> Result<&[Entry]> {
        if let Some(entries) = self.entries.get(name) {
            return Ok(entries);
        }
        let names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        Err(anyhow::anyhow!(
            "the repository has no chart {}",
            quote(name)
        ))
        .hint(if names.is_empty() {
            "its index lists no charts".to_owned()
        } else {
            format!("it has: {}", crate::error::abbreviate(&names.join(", ")))
        })
    }

    /// The archive of chart `name` at `version`, at the URL the index gives (relative to the
    /// index), expected to have the index's digest.
    pub fn archive(&self, index_url: &Url, name: &str, version: &str) -> Result<SourceFile> {
        let entries = self.versions(name)?;
        let Some(entry) = entries.iter().find(|e| e.version == version) else {
            let listed: Vec<&str> = entries.iter().take(8).map(|e| e.version.as_str()).collect();
            return Err(anyhow::anyhow!(
                "the repository has no version {} of chart {}",
                quote(version),
                quote(name)
            ))
            .hint(format!("its newest versions are: {}", listed.join(", ")));
        };
        let first = entry
            .urls
            .first()
            .ok_or_else(|| anyhow::anyhow!("the index lists no URL for chart {name} {version}"))?;
        let url = index_url
            .join(first)
            .with_context(|| format!("chart {name} {version}: bad URL {}", quote(first)))?;
        let file_name = format!("{name}-{version}.tgz");
        check_path_segment(&file_name)?;
        let origin = if url.scheme() == "file" {
            Origin::Local {
                path: url
                    .to_file_path()
                    .map_err(|()| anyhow::anyhow!("{url}: not a local file path"))?,
            }
        } else {
            Origin::Remote {
                url: url.clone(),
                auth: Auth::None,
            }
        };
        Ok(SourceFile {
            name: file_name,
            origin,
            locked_from: url.to_string(),
            expected: entry
                .digest
                .clone()
                .map(|d| d.trim_start_matches("sha256:").to_ascii_lowercase()),
        })
    }
}
