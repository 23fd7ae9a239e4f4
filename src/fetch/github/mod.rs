//! The `github` source kind: assets of a GitHub (or GitHub Enterprise) release found by a tag
//! template; the release's listing is its version feed.

pub mod api;

use std::any::Any;

use anyhow::{Context, Result, bail};
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::source::{Kind, Listing, Project, Source, SourceKind, Template, VersionFeed};
use super::{Auth, Client, Origin, SourceFile};
use crate::error::{HintExt, quote};
use crate::fsutil::check_path_segment;
use crate::version::{Version, expand};

pub use api::{Asset, Release, list_releases, list_tags, release_by_tag};

pub const DEFAULT_GITHUB_API: &str = "https://api.github.com";
/// The tag a release is looked up by when `tag:` is not given.
pub const DEFAULT_TAG: &str = "v{version}";

/// How kpin.yaml writes it: `github: {repo, tag, assets, apiUrl}`.
pub struct GithubKind;

/// A GitHub release source.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGithub {
    /// `owner/name`.
    pub repo: String,
    /// Release tag template. Default: `v{version}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Asset names (templates) to download from the release.
    pub assets: Vec<String>,
    /// API base URL, for GitHub Enterprise or tests. Default: `https://api.github.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubSource {
    pub repo: String,
    pub tag: String,
    pub assets: Vec<String>,
    pub api_url: String,
}

/// `api_url:` of a GitHub source or version feed, defaulted and without a trailing slash.
pub fn api_url(api_url: Option<&String>) -> String {
    api_url
        .map_or(DEFAULT_GITHUB_API, String::as_str)
        .trim_end_matches('/')
        .to_owned()
}

/// `repo` is `owner/name`.
pub fn check_repo(repo: &str, field: &str) -> Result<()> {
    if !repo.split('/').filter(|p| !p.is_empty()).count().eq(&2) || repo.contains("..") {
        bail!("{field}: {} is not of the form owner/name", quote(repo));
    }
    Ok(())
}

impl Kind for GithubKind {
    fn keys(&self) -> &'static [&'static str] {
        &["github"]
    }

    fn parse(
        &self,
        _package: &str,
        fields: &Map<String, Value>,
        _version: &Version,
    ) -> Result<Source> {
        let gh: RawGithub = super::source::field(fields, "github")?;
        check_repo(&gh.repo, "github.repo")?;
        if gh.assets.is_empty() {
            return Err(anyhow::anyhow!("github.assets: the list is empty"))
                .hint("name the release files to vendor, e.g. assets: [components.yaml]");
        }
        Ok(Source::new(GithubSource {
            repo: gh.repo.clone(),
            tag: gh.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_owned()),
            assets: gh.assets.clone(),
            api_url: api_url(gh.api_url.as_ref()),
        }))
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, Value)> {
        let mut schema = generator.subschema_for::<RawGithub>().to_value();
        schema["description"] = "Release assets of a GitHub (or GitHub Enterprise) release.".into();
        vec![("github", schema)]
    }
}

impl SourceKind for GithubSource {
    fn kind(&self) -> &'static str {
        "github"
    }

    fn templates(&self) -> Vec<Template<'_>> {
        std::iter::once(Template {
            field: "github.tag".to_owned(),
            text: &self.tag,
            addresses: true,
        })
        .chain(self.assets.iter().enumerate().map(|(i, a)| Template {
            field: format!("github.assets[{i}]"),
            text: a,
            addresses: false,
        }))
        .collect()
    }

    fn version_hint(&self) -> &'static str {
        "name the release by its version, e.g. tag: v{version}; or pin the files with `sha256:`"
    }

    fn file_count(&self) -> Option<usize> {
        Some(self.assets.len())
    }

    fn lookup_online(&self) -> bool {
        true
    }

    fn needs_network(&self, _version: &Version) -> bool {
        true
    }

    fn resolve<'a>(
        &'a self,
        _project: Project<'a>,
        version: &'a Version,
        client: Option<&'a Client>,
    ) -> BoxFuture<'a, Result<Vec<SourceFile>>> {
        Box::pin(async move {
            let Some(client) = client else {
                return Err(anyhow::anyhow!(
                    "the GitHub release must be looked up online"
                ))
                .hint(
                    "run without --offline once; afterwards kpin.lock records the download URLs",
                );
            };
            self.release_files(client, version).await
        })
    }

    fn version_feed(&self) -> Option<VersionFeed> {
        Some(VersionFeed {
            listing: Listing::GithubReleases {
                repo: self.repo.clone(),
                api_url: self.api_url.clone(),
            },
            tag: self.tag.clone(),
            prereleases: false,
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl GithubSource {
    /// The release's assets this source names, at `version`.
    async fn release_files(&self, client: &Client, version: &Version) -> Result<Vec<SourceFile>> {
        let tag = expand(&self.tag, version);
        let release = release_by_tag(client, &self.api_url, &self.repo, &tag).await?;
        self.assets
            .iter()
            .map(|template| {
                let name = expand(template, version);
                let asset = release
                    .assets
                    .iter()
                    .find(|a| a.name == name)
                    .ok_or_else(|| {
                        let names: Vec<&str> =
                            release.assets.iter().map(|a| a.name.as_str()).collect();
                        anyhow::anyhow!("release `{tag}` of {} has no asset `{name}`", self.repo)
                            .hint(if names.is_empty() {
                                "the release has no assets".to_owned()
                            } else {
                                format!("its assets are: {}", names.join(", "))
                            })
                    })?;
                check_path_segment(&name).with_context(|| format!("asset {}", quote(&name)))?;
                let url = Url::parse(&asset.url)
                    .with_context(|| format!("asset `{name}`: bad API URL `{}`", asset.url))?;
                Ok(SourceFile {
                    name,
                    origin: Origin::Remote {
                        url,
                        auth: Auth::GithubAsset,
                    },
                    locked_from: asset.browser_download_url.clone(),
                    expected: None,
                })
            })
            .collect()
    }
}
