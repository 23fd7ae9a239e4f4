//! The GitHub (Enterprise) releases API: one release by tag, and every release with pagination.

use anyhow::{Context, Result};
use reqwest::header::{HeaderMap, LINK};
use serde::Deserialize;
use url::Url;

use crate::fetch::http::{Auth, Client};

/// Upper bound on pages followed, so a misbehaving server cannot loop us forever.
const MAX_PAGES: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Release {
    pub tag_name: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub prerelease: bool,
    #[serde(default)]
    pub assets: Vec<Asset>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Asset {
    pub name: String,
    /// The API URL of the asset; with `Accept: application/octet-stream` it serves the bytes
    /// (and works for private repositories with a token).
    pub url: String,
    /// The public download URL, recorded in the lockfile because reviewers can read it.
    pub browser_download_url: String,
    #[serde(default)]
    pub size: u64,
}

/// `{api_url}/repos/{repo}/{rest}` as a URL.
fn api(api_url: &str, repo: &str, rest: &str) -> Result<Url> {
    let text = format!("{}/repos/{repo}/{rest}", api_url.trim_end_matches('/'));
    Url::parse(&text).with_context(|| format!("`{text}` is not a valid GitHub API URL"))
}

/// The release with tag `tag` of `repo`.
pub async fn release_by_tag(
    client: &Client,
    api_url: &str,
    repo: &str,
    tag: &str,
) -> Result<Release> {
    let url = api(api_url, repo, &format!("releases/tags/{tag}"))?;
    let (release, _) = client
        .get_json::<Release>(&url, Auth::GithubApi)
        .await
        .with_context(|| format!("looking up release `{tag}` of {repo}"))?;
    Ok(release)
}

/// Every release of `repo`, newest first as GitHub orders them, following `Link: rel="next"`.
pub async fn list_releases(client: &Client, api_url: &str, repo: &str) -> Result<Vec<Release>> {
    list_pages(
        client,
        api(api_url, repo, "releases?per_page=100")?,
        "releases",
        repo,
    )
    .await
}

/// A tag of a repository (`GET /repos/{repo}/tags`), for projects that tag without releases.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tag {
    pub name: String,
}

/// Every tag of `repo`, following `Link: rel="next"`.
pub async fn list_tags(client: &Client, api_url: &str, repo: &str) -> Result<Vec<Tag>> {
    list_pages(
        client,
        api(api_url, repo, "tags?per_page=100")?,
        "tags",
        repo,
    )
    .await
}

/// Every item of a paginated API list starting at `first`.
async fn list_pages<T: serde::de::DeserializeOwned>(
    client: &Client,
    first: Url,
    what: &str,
    repo: &str,
) -> Result<Vec<T>> {
    let mut url = Some(first);
    let mut items = Vec::new();
    let mut pages = 0;
    while let Some(page) = url.take() {
        pages += 1;
        if pages > MAX_PAGES {
            anyhow::bail!("listing {what} of {repo}: more than {MAX_PAGES} pages");
        }
        let (batch, headers) = client
            .get_json::<Vec<T>>(&page, Auth::GithubApi)
            .await
            .with_context(|| format!("listing {what} of {repo}"))?;
        items.extend(batch);
        url = next_page(&headers);
    }
    Ok(items)
}

/// The `rel="next"` target of a `Link` header.
fn next_page(headers: &HeaderMap) -> Option<Url> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        if is_next {
            Url::parse(target).ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_page() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            "<https://api.example/repos/a/b/releases?page=1>; rel=\"prev\", <https://api.example/repos/a/b/releases?page=3>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_page(&headers).unwrap().as_str(),
            "https://api.example/repos/a/b/releases?page=3"
        );
        headers.insert(LINK, "<https://x/?page=1>; rel=\"first\"".parse().unwrap());
        assert_eq!(next_page(&headers), None);
    }
}
