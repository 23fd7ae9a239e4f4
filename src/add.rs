//! `kpin add`: a new package entry for kpin.yaml, resolved from how the user names its source
//! (a GitHub release asset, a URL template or a Helm chart), and written into the file
//! losslessly.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::error::HintExt;
use crate::fetch::Client;
use crate::fetch::chart::ChartAddress;
use crate::fetch::github::{self, Release};
use crate::fetch::github::{DEFAULT_GITHUB_API, DEFAULT_TAG};
use crate::version::{VERSION_PLACEHOLDER, lenient_semver, version_from_tag};
use crate::yaml;

/// Where a new package comes from, as the command line names it.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// Release assets of a GitHub (Enterprise) repository.
    Github {
        repo: String,
        /// The asset's name; `None` lists the release's YAML assets in the error.
        asset: Option<String>,
        /// Tag template; `None` infers it from the releases' tags.
        tag: Option<String>,
        /// API base URL; `None` is GitHub's.
        api_url: Option<String>,
    },
    /// One file at a URL template containing `{version}`.
    Url { template: String },
    /// A Helm chart in a repository (`https://…`, `oci://…`, or a directory of the project).
    Chart {
        repository: String,
        /// The chart's name; `None` is the package's.
        chart: Option<String>,
    },
}

/// A package to add.
#[derive(Debug, Clone)]
pub struct Request {
    pub name: String,
    pub upstream: Upstream,
    /// The version to pin; `None` takes the newest release (GitHub sources and charts).
    pub version: Option<String>,
    pub namespace: Option<String>,
    /// Environments the package starts out of (`installed: false`), so that it enters through
    /// the others and `kpin promote` brings it further.
    pub absent: Vec<String>,
}

/// The resolved entry: its version, its block-style YAML under `packages.<name>`, and what kpin
/// decided on the user's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub version: String,
    pub yaml: String,
    pub notes: Vec<String>,
}

/// Resolve `request` to an entry; GitHub sources list the repository's releases through
/// `client` (built on first use by `connect`).
pub async fn resolve(request: &Request, connect: impl FnOnce() -> Result<Client>) -> Result<Entry> {
    let mut notes = Vec::new();
    let (version, source_yaml) = match &request.upstream {
        Upstream::Url { template } => {
            let Some(version) = &request.version else {
                return Err(anyhow::anyhow!(
                    "`--url` needs `--version`: kpin cannot list the versions a URL serves"
                ))
                .hint(
                    "pass the version the URL template should be pinned at, e.g. `--version 1.2.3`",
                );
            };
            if !template.contains(VERSION_PLACEHOLDER) {
                return Err(anyhow::anyhow!(
                    "--url `{template}` does not contain `{VERSION_PLACEHOLDER}`"
                ))
                .hint("write the version in the URL as {version}, e.g. `https://host/{version}/install.yaml`, so upgrades fetch the new release");
            }
            (
                version.clone(),
                format!("url: {}\n", yaml::edit::scalar_text(template)),
            )
        }
        Upstream::Github {
            repo,
            asset,
            tag,
            api_url,
        } => {
            let client = connect()?;
            let api = api_url.as_deref().unwrap_or(DEFAULT_GITHUB_API);
            let releases = github::list_releases(&client, api, repo).await?;
            let chosen = choose_release(
                repo,
                &releases,
                asset.as_deref(),
                tag.as_deref(),
                request.version.as_deref(),
            )?;
            notes.extend(chosen.notes);
            let mut github = format!("github:\n  repo: {}\n", yaml::edit::scalar_text(repo));
            if chosen.tag != DEFAULT_TAG {
                let _ = writeln!(github, "  tag: {}", yaml::edit::scalar_text(&chosen.tag));
            }
            let _ = writeln!(
                github,
                "  assets: [{}]",
                yaml::edit::scalar_text(&chosen.asset)
            );
            if let Some(url) = api_url {
                let _ = writeln!(github, "  apiUrl: {}", yaml::edit::scalar_text(url));
            }
            (chosen.version, github)
        }
        Upstream::Chart { repository, chart } => {
            chart_entry(request, repository, chart.as_deref(), connect, &mut notes).await?
        }
    };
    let mut text = format!("version: {}\n", yaml::edit::scalar_text(&version));
    text.push_str(&source_yaml);
    if let Some(namespace) = request
        .namespace
        .as_ref()
        .filter(|_| !matches!(request.upstream, Upstream::Chart { .. }))
    {
        let _ = writeln!(text, "namespace: {}", yaml::edit::scalar_text(namespace));
    }
    if !request.absent.is_empty() {
        text.push_str("environments:\n");
        for env in &request.absent {
            let _ = writeln!(
                text,
                "  {}: {{installed: false}}",
                yaml::edit::scalar_text(env)
            );
        }
    }
    Ok(Entry {
        version,
        yaml: text,
        notes,
    })
}

/// The version and `chart:` YAML of a chart package: `--version`, else the newest released
/// version the repository lists.
async fn chart_entry(
    request: &Request,
    repository: &str,
    chart: Option<&str>,
    connect: impl FnOnce() -> Result<Client>,
    notes: &mut Vec<String>,
) -> Result<(String, String)> {
    let name = chart.unwrap_or(&request.name);
    let version = if let Some(v) = &request.version {
        v.clone()
    } else {
        let address = ChartAddress::parse(repository, name)?;
        let versions = address.versions(&connect()?).await?;
        let newest = versions
            .iter()
            .filter_map(|v| {
                let s = lenient_semver(v)?;
                s.pre.is_empty().then_some((s, v))
            })
            .max()
            .map(|(_, v)| v.clone())
            .ok_or_else(|| anyhow::anyhow!("{address} lists no released version"))
            .hint("pass the version to pin with --version")?;
        notes.push(format!("newest version of the chart {address}: {newest}"));
        newest
    };
    let mut entry = format!(
        "chart:\n  repository: {}\n",
        yaml::edit::scalar_text(repository)
    );
    if name != request.name {
        let _ = writeln!(entry, "  name: {}", yaml::edit::scalar_text(name));
    }
    // A chart renders into its release namespace.
    if let Some(namespace) = &request.namespace {
        let _ = writeln!(entry, "  namespace: {}", yaml::edit::scalar_text(namespace));
    }
    Ok((version, entry))
}

/// kpin.yaml `text` with `name` added under `packages:` (created at the end when missing), the
/// rest of the file unchanged.
pub fn insert(text: &str, name: &str, entry: &Entry) -> Result<String, yaml::edit::EditError> {
    match yaml::edit::insert_mapping(text, &["packages"], name, &entry.yaml) {
        Err(yaml::edit::EditError::Missing(_)) => {
            let indented = entry.yaml.lines().fold(String::new(), |mut out, line| {
                let _ = writeln!(out, "  {line}");
                out
            });
            yaml::edit::insert_mapping(text, &[], "packages", &format!("{name}:\n{indented}"))
        }
        // A `packages:` written in flow style takes the entry in flow style, where a plain
        // `{version}` would not read as text: the entry as JSON, every string quoted.
        Err(yaml::edit::EditError::NotRoundTrip(_)) => {
            let value: serde_json::Value =
                yaml::from_str(&entry.yaml, std::path::Path::new("entry"))
                    .map_err(|_| yaml::edit::EditError::NotRoundTrip(name.to_owned()))?;
            yaml::edit::insert_mapping(text, &["packages"], name, &value.to_string())
        }
        other => other,
    }
}

/// The release a GitHub source pins, with the tag template and asset name kpin.yaml gets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chosen {
    version: String,
    tag: String,
    asset: String,
    notes: Vec<String>,
}

fn choose_release(
    repo: &str,
    releases: &[Release],
    asset: Option<&str>,
    tag: Option<&str>,
    version: Option<&str>,
) -> Result<Chosen> {
    let published: Vec<&Release> = releases
        .iter()
        .filter(|r| !r.draft && (version.is_some() || !r.prerelease))
        .collect();
    if published.is_empty() {
        bail!("{repo} has no published release");
    }
    let mut notes = Vec::new();
    // Releases that carry the asset, or any YAML asset when none is named: a monorepo also
    // releases charts and tools under other tags.
    let carrying: Vec<&Release> = published
        .iter()
        .copied()
        .filter(|r| {
            r.assets.iter().any(|x| match asset {
                Some(a) => x.name == a || templated(&x.name, r) == a,
                None => is_yaml(&x.name),
            })
        })
        .collect();
    let pool = if carrying.is_empty() {
        &published
    } else {
        &carrying
    };
    let tag = if let Some(t) = tag {
        t.to_owned()
    } else {
        let template = infer_tag(repo, pool)?;
        if template != DEFAULT_TAG {
            notes.push(format!(
                "the release tags of {repo} carry a prefix: tag template `{template}`"
            ));
        }
        template
    };
    let (version, release) = pick_version(repo, &published, pool, &tag, version, &mut notes)?;
    let asset = pick_asset(repo, release, asset, &version)?;
    Ok(Chosen {
        version,
        tag,
        asset,
        notes,
    })
}

/// The release of `wanted`, or the newest of `pool` whose tag `tag` maps to a version.
fn pick_version<'r>(
    repo: &str,
    published: &[&'r Release],
    pool: &[&'r Release],
    tag: &str,
    wanted: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<(String, &'r Release)> {
    let mut versioned: Vec<(String, semver::Version, &Release)> = pool
        .iter()
        .filter_map(|r| {
            let v = version_from_tag(tag, &r.tag_name)?;
            let semver = lenient_semver(&v)?;
            Some((v, semver, *r))
        })
        .collect();
    versioned.sort_by(|a, b| b.1.cmp(&a.1));
    if let Some(wanted) = wanted {
        let tag_name = tag.replace(VERSION_PLACEHOLDER, wanted);
        let Some(release) = published.iter().find(|r| r.tag_name == tag_name) else {
            let newest: Vec<&str> = versioned.iter().take(5).map(|v| v.0.as_str()).collect();
            return Err(anyhow::anyhow!("{repo} has no release tagged `{tag_name}`")).hint(
                if newest.is_empty() {
                    format!("check the tag template (`--tag`, now `{tag}`)")
                } else {
                    format!("the newest releases: {}", newest.join(", "))
                },
            );
        };
        return Ok((wanted.to_owned(), *release));
    }
    let Some((v, _, release)) = versioned.first() else {
        return Err(anyhow::anyhow!(
            "no release of {repo} has a tag that `{tag}` maps to a version"
        ))
        .hint("name the tag template with `--tag`, e.g. `--tag 'release-{version}'`");
    };
    notes.push(format!("newest release: {v} (tag {})", release.tag_name));
    Ok((v.clone(), *release))
}

/// The asset template kpin.yaml names: `asset` as found in `release`, listed when missing.
fn pick_asset(repo: &str, release: &Release, asset: Option<&str>, version: &str) -> Result<String> {
    let yaml_assets: Vec<&str> = release
        .assets
        .iter()
        .map(|a| a.name.as_str())
        .filter(|n| is_yaml(n))
        .collect();
    let Some(asset) = asset else {
        let listed = if yaml_assets.is_empty() {
            "it has no YAML assets".to_owned()
        } else {
            format!("its YAML assets: {}", yaml_assets.join(", "))
        };
        return Err(anyhow::anyhow!(
            "name the asset to vendor from release `{}` of {repo} with `--asset`; {listed}",
            release.tag_name
        ))
        .hint(match yaml_assets.first() {
            Some(first) => format!("e.g. `--asset {first}`"),
            None => "a repository that publishes manifests only in its tree can be added with `--url` (its raw file URL with {version})".to_owned(),
        });
    };
    let Some(found) = release
        .assets
        .iter()
        .find(|a| a.name == asset || templated(&a.name, release) == asset)
    else {
        return Err(anyhow::anyhow!(
            "release `{}` of {repo} has no asset `{asset}`",
            release.tag_name
        ))
        .hint(format!("its YAML assets: {}", yaml_assets.join(", ")));
    };
    // An asset named after its version (`components-v0.7.2.yaml`) becomes a template.
    Ok(templated_with(&found.name, version))
}

fn is_yaml(name: &str) -> bool {
    std::path::Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// The tag template the releases follow: their common prefix before the version, refused
/// with the candidates when they follow several.
fn infer_tag(repo: &str, releases: &[&Release]) -> Result<String> {
    let mut prefixes: BTreeMap<&str, usize> = BTreeMap::new();
    for release in releases {
        if let Some((prefix, _)) = split_tag(&release.tag_name) {
            *prefixes.entry(prefix).or_default() += 1;
        }
    }
    match prefixes.len() {
        0 => Ok(DEFAULT_TAG.to_owned()),
        1 => Ok(format!(
            "{}{VERSION_PLACEHOLDER}",
            prefixes.keys().next().unwrap_or(&"")
        )),
        _ => {
            let mut ranked: Vec<(&str, usize)> = prefixes.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let listed: Vec<String> = ranked
                .iter()
                .map(|(p, n)| format!("`{p}{VERSION_PLACEHOLDER}` ({n})"))
                .collect();
            Err(anyhow::anyhow!(
                "the releases of {repo} follow several tag patterns: {}",
                listed.join(", ")
            ))
            .hint(format!(
                "pick one with `--tag '{}{VERSION_PLACEHOLDER}'`, or name the asset with `--asset` so only the releases that carry it count",
                ranked[0].0
            ))
        }
    }
}

/// A tag split into its prefix and a semantic version (`controller-v1.12.8`: `controller-v`,
/// `1.12.8`).
fn split_tag(tag: &str) -> Option<(&str, &str)> {
    let start = tag.find(|c: char| c.is_ascii_digit())?;
    let (prefix, version) = tag.split_at(start);
    semver::Version::parse(version).ok()?;
    Some((prefix, version))
}

/// An asset name with its release's version written `{version}`.
fn templated(name: &str, release: &Release) -> String {
    match split_tag(&release.tag_name) {
        Some((_, version)) => templated_with(name, version),
        None => name.to_owned(),
    }
}

fn templated_with(name: &str, version: &str) -> String {
    if !version.is_empty() && name.contains(version) {
        return name.replacen(version, VERSION_PLACEHOLDER, 1);
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::github::Asset;

    fn release(tag: &str, assets: &[&str]) -> Release {
        Release {
            tag_name: tag.to_owned(),
            name: None,
            draft: false,
            prerelease: false,
            assets: assets
                .iter()
                .map(|a| Asset {
                    name: (*a).to_owned(),
                    url: format!("https://api.example/assets/{a}"),
                    browser_download_url: format!("https://example/{tag}/{a}"),
                    size: 1,
                })
                .collect(),
        }
    }

    /// ingress-nginx's releases, as its repository mixes them: the controller's and the chart's.
    fn ingress() -> Vec<Release> {
        vec![
            release("helm-chart-4.12.1", &["ingress-nginx-4.12.1.tgz"]),
            release("controller-v1.12.1", &["deploy.yaml", "cloud.yaml"]),
            release("controller-v1.11.5", &["deploy.yaml"]),
            release("helm-chart-4.11.5", &["ingress-nginx-4.11.5.tgz"]),
        ]
    }

    #[test]
    fn a_prefixed_tag_is_inferred_from_the_releases_that_carry_the_asset() {
        let chosen = choose_release(
            "k/ingress-nginx",
            &ingress(),
            Some("deploy.yaml"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(chosen.version, "1.12.1");
        assert_eq!(chosen.tag, "controller-v{version}");
        assert_eq!(chosen.asset, "deploy.yaml");
        assert_eq!(
            chosen.notes,
            [
                "the release tags of k/ingress-nginx carry a prefix: tag template `controller-v{version}`",
                "newest release: 1.12.1 (tag controller-v1.12.1)"
            ]
        );
        let pinned = choose_release(
            "k/ingress-nginx",
            &ingress(),
            Some("deploy.yaml"),
            None,
            Some("1.11.5"),
        )
        .unwrap();
        assert_eq!(pinned.version, "1.11.5");
    }

    #[test]
    fn without_an_asset_the_yaml_assets_are_listed_and_mixed_tags_need_a_template() {
        let err = choose_release("k/ingress-nginx", &ingress(), None, None, None).unwrap_err();
        let text = crate::error::format_error(&err);
        assert!(
            text.contains("release `controller-v1.12.1` of k/ingress-nginx with `--asset`; its YAML assets: deploy.yaml, cloud.yaml"),
            "{text}"
        );
        assert!(text.contains("hint: e.g. `--asset deploy.yaml`"), "{text}");
        let mut mixed = ingress();
        mixed.push(release("v2.0.0", &["deploy.yaml"]));
        let err =
            choose_release("k/ingress-nginx", &mixed, Some("deploy.yaml"), None, None).unwrap_err();
        let text = crate::error::format_error(&err);
        assert!(
            text.contains("several tag patterns: `controller-v{version}` (2), `v{version}` (1)"),
            "{text}"
        );
        assert!(
            text.contains("hint: pick one with `--tag 'controller-v{version}'`"),
            "{text}"
        );
    }

    #[test]
    fn an_asset_named_after_its_version_becomes_a_template() {
        let releases = vec![
            release("v0.7.2", &["components-v0.7.2.yaml"]),
            release("v0.7.1", &["components-v0.7.1.yaml"]),
        ];
        let chosen =
            choose_release("m/s", &releases, Some("components-v0.7.2.yaml"), None, None).unwrap();
        assert_eq!(
            (
                chosen.version.as_str(),
                chosen.tag.as_str(),
                chosen.asset.as_str()
            ),
            ("0.7.2", "v{version}", "components-v{version}.yaml")
        );
        let err =
            choose_release("m/s", &releases, Some("x.yaml"), None, Some("0.9.0")).unwrap_err();
        let text = crate::error::format_error(&err);
        assert!(
            text.contains("m/s has no release tagged `v0.9.0`"),
            "{text}"
        );
        assert!(
            text.contains("hint: the newest releases: 0.7.2, 0.7.1"),
            "{text}"
        );
    }

    #[test]
    fn the_entry_lands_under_packages_in_the_files_own_style() {
        let entry = Entry {
            version: "1.10".into(),
            yaml: "version: \"1.10\"\nurl: https://x/{version}/a.yaml\n".into(),
            notes: Vec::new(),
        };
        let block = "# ours\npackages:\n  a:   # first\n    version: 1.0.0\n    url: https://x/{version}/a.yaml\n";
        assert_eq!(
            insert(block, "b", &entry).unwrap(),
            format!("{block}  b:\n    version: \"1.10\"\n    url: https://x/{{version}}/a.yaml\n")
        );
        let none = "# ours\nkubernetesVersion: \"1.31\"\n";
        assert_eq!(
            insert(none, "b", &entry).unwrap(),
            format!(
                "{none}packages:\n  b:\n    version: \"1.10\"\n    url: https://x/{{version}}/a.yaml\n"
            )
        );
        assert!(insert(block, "a", &entry).is_err());
        // In flow style the entry is flow too, its strings quoted ({version} in a plain
        // scalar would end the mapping there).
        let flow = "packages: {a: {version: 1.0.0, url: 'https://x/{version}/a.yaml'}}   # ours\n";
        assert_eq!(
            insert(flow, "b", &entry).unwrap(),
            "packages: {a: {version: 1.0.0, url: 'https://x/{version}/a.yaml'}, b: {version: \"1.10\", url: \"https://x/{version}/a.yaml\"}}   # ours\n"
        );
    }
}
