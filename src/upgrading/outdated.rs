//! `kpin outdated`: newer upstream versions per package, from GitHub releases mapped to
//! versions through the package's tag template, within and beyond its semver constraint.
//! Environments that run a version of their own are shown; "newer" means newer than the
//! newest version any environment runs, so a version on its way through the promotion order
//! is not reported again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;

use anyhow::Result;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::fetch::source::{Listing, VersionFeed};
use crate::manifest::Package;
use crate::version::{lenient_semver, version_from_tag};

/// One upstream release as the version feed reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRelease {
    pub tag: String,
    pub prerelease: bool,
    pub draft: bool,
}

/// Lists the releases and tags of a feed. The real one is the GitHub API client from `fetch`;
/// tests use fakes.
pub trait ReleaseFeed: Sync {
    fn releases(
        &self,
        feed: &VersionFeed,
    ) -> impl Future<Output = Result<Vec<UpstreamRelease>>> + Send;
    /// Tag names, consulted when no release maps to a version (projects that only tag).
    fn tags(&self, feed: &VersionFeed) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// The listings through kpin's HTTP client: every page of a GitHub (Enterprise) repository's
/// releases, or a chart's versions (a repository index, an OCI repository's tags).
impl ReleaseFeed for crate::fetch::Client {
    async fn releases(&self, feed: &VersionFeed) -> Result<Vec<UpstreamRelease>> {
        match &feed.listing {
            Listing::GithubReleases { repo, api_url } => {
                let releases = crate::fetch::github::list_releases(self, api_url, repo).await?;
                Ok(releases
                    .into_iter()
                    .map(|r| UpstreamRelease {
                        tag: r.tag_name,
                        prerelease: r.prerelease,
                        draft: r.draft,
                    })
                    .collect())
            }
            // A chart's versions are its releases; semver says which are prereleases.
            Listing::ChartVersions(address) => Ok(address
                .versions(self)
                .await?
                .into_iter()
                .map(|v| UpstreamRelease {
                    prerelease: lenient_semver(&v).is_some_and(|s| !s.pre.is_empty()),
                    tag: v,
                    draft: false,
                })
                .collect()),
        }
    }

    async fn tags(&self, feed: &VersionFeed) -> Result<Vec<String>> {
        match &feed.listing {
            Listing::GithubReleases { repo, api_url } => {
                let tags = crate::fetch::github::list_tags(self, api_url, repo).await?;
                Ok(tags.into_iter().map(|t| t.name).collect())
            }
            Listing::ChartVersions(_) => Ok(Vec::new()),
        }
    }
}

/// Releases, or when none maps to a version through the tag template, plain tags (which carry
/// no prerelease flag: their semver decides).
async fn versions_of<F: ReleaseFeed>(
    feed: &F,
    source: &VersionFeed,
    prereleases: bool,
) -> Result<Vec<Candidate>> {
    let releases = feed.releases(source).await?;
    let found = candidates(&releases, &source.tag, prereleases);
    if !found.is_empty() {
        return Ok(found);
    }
    let tags: Vec<UpstreamRelease> = feed
        .tags(source)
        .await?
        .into_iter()
        .map(|tag| UpstreamRelease {
            tag,
            prerelease: false,
            draft: false,
        })
        .collect();
    Ok(candidates(&tags, &source.tag, prereleases))
}

/// A version available upstream: its text as it goes into kpin.yaml and its semver form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub version: String,
    pub semver: semver::Version,
}

/// The versions a feed offers, newest first: drafts, tags the template does not match, tags that
/// are not versions and (unless asked) prereleases are dropped.
pub fn candidates(
    releases: &[UpstreamRelease],
    tag_template: &str,
    prereleases: bool,
) -> Vec<Candidate> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<Candidate> = releases
        .iter()
        .filter(|r| !r.draft && (prereleases || !r.prerelease))
        .filter_map(|r| {
            let version = version_from_tag(tag_template, &r.tag)?;
            let semver = lenient_semver(&version)?;
            (prereleases || semver.pre.is_empty()).then_some(Candidate { version, semver })
        })
        .filter(|c| seen.insert(c.semver.clone()))
        .collect();
    out.sort_by(|a, b| b.semver.cmp(&a.semver));
    out
}

/// Why a package could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionsUnknown {
    /// A `url` or `path` source without `versions:`.
    NoVersionSource,
    /// The pinned version does not read as a semantic version, so nothing compares to it.
    CurrentNotSemver,
    /// The feed answered, but no release maps to a version through the tag template.
    NoVersions { tag_template: String },
    /// The feed failed (network, HTTP status, rate limit); the rendered error chain and hint.
    Feed {
        message: String,
        hint: Option<String>,
    },
}

impl VersionsUnknown {
    pub fn message(&self) -> String {
        match self {
            VersionsUnknown::NoVersionSource => "no version source".to_owned(),
            VersionsUnknown::CurrentNotSemver => {
                "current version is not a semantic version".to_owned()
            }
            VersionsUnknown::NoVersions { tag_template } => {
                format!("no release tag matches `{tag_template}`")
            }
            VersionsUnknown::Feed { message, .. } => message.clone(),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            VersionsUnknown::NoVersionSource => Some(
                "add `versions: {github: OWNER/REPO, tag: \"v{version}\"}` to the package in kpin.yaml".to_owned(),
            ),
            VersionsUnknown::CurrentNotSemver => Some("pin a version such as 1.2.3 or v1.2.3".to_owned()),
            VersionsUnknown::NoVersions { .. } => {
                Some("check `tag:` (e.g. \"controller-v{version}\") under `versions:` or `github:`".to_owned())
            }
            VersionsUnknown::Feed { hint, .. } => hint.clone(),
        }
    }

    /// A feed error stops the command with exit 2; the other problems are configuration notes.
    pub fn is_error(&self) -> bool {
        matches!(self, VersionsUnknown::Feed { .. })
    }
}

/// The outcome for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageVersions {
    pub package: String,
    /// The package's version (environments without their own run it).
    pub current: String,
    /// Environments that run another version, by name.
    pub environments: BTreeMap<String, String>,
    pub constraint: Option<String>,
    /// `owner/name` of the feed, when there is one.
    pub source: Option<String>,
    /// Newest version allowed by the constraint (the newest overall without one), when newer
    /// than the current one.
    pub wanted: Option<String>,
    /// Newest version overall, when newer than the current one.
    pub latest: Option<String>,
    /// Every newer version, newest first.
    pub newer: Vec<String>,
    pub problem: Option<VersionsUnknown>,
}

impl PackageVersions {
    /// The package's version, with the environments that run another: `1.9.4 (dev 1.10.6)`.
    pub fn current_text(&self) -> String {
        if self.environments.is_empty() {
            return self.current.clone();
        }
        let own: Vec<String> = self
            .environments
            .iter()
            .map(|(e, v)| format!("{e} {v}"))
            .collect();
        format!("{} ({})", self.current, own.join(", "))
    }

    /// Outdated means `kpin upgrade` (within the constraint) would move it.
    pub fn is_outdated(&self) -> bool {
        self.wanted.is_some()
    }

    pub fn status(&self) -> &'static str {
        match (&self.problem, &self.wanted, &self.latest) {
            (Some(p), _, _) if p.is_error() => "error",
            (Some(_), _, _) => "unknown",
            (None, Some(_), _) => "outdated",
            (None, None, Some(_)) => "newer outside constraint",
            (None, None, None) => "up to date",
        }
    }
}

/// Compare a package's pin with the candidates offered upstream: the versions every
/// environment runs, or with `env` the version that environment runs.
pub fn assess(package: &Package, env: Option<&str>, candidates: &[Candidate]) -> PackageVersions {
    let mut report = PackageVersions {
        package: package.name.clone(),
        current: package.version_in(env).raw.clone(),
        environments: package
            .env_versions
            .iter()
            .filter(|(_, v)| env.is_none() && **v != package.version)
            .map(|(e, v)| (e.clone(), v.raw.clone()))
            .collect(),
        constraint: package.constraint.as_ref().map(ToString::to_string),
        source: package.versions.as_ref().map(VersionFeed::origin),
        wanted: None,
        latest: None,
        newer: Vec::new(),
        problem: None,
    };
    // The newest version in use: an environment ahead of the others already runs it.
    let in_use = match env {
        Some(_) => vec![package.version_in(env)],
        None => package.versions_in_use(),
    };
    let Some(current) = in_use.into_iter().filter_map(|v| v.semver.as_ref()).max() else {
        report.problem = Some(VersionsUnknown::CurrentNotSemver);
        return report;
    };
    let newer: Vec<&Candidate> = candidates.iter().filter(|c| c.semver > *current).collect();
    report.newer = newer.iter().map(|c| c.version.clone()).collect();
    report.latest = newer.first().map(|c| c.version.clone());
    report.wanted = newer
        .iter()
        .find(|c| {
            package
                .constraint
                .as_ref()
                .is_none_or(|req| matches_constraint(req, &c.semver))
        })
        .map(|c| c.version.clone());
    report
}

/// `req.matches` that also admits prereleases when the user asked for them: semver's rule only
/// admits a prerelease if a comparator names the same major.minor.patch.
fn matches_constraint(req: &semver::VersionReq, version: &semver::Version) -> bool {
    if req.matches(version) {
        return true;
    }
    if version.pre.is_empty() {
        return false;
    }
    let mut release = version.clone();
    release.pre = semver::Prerelease::EMPTY;
    req.matches(&release)
}

/// Check every package against its feed, `jobs` feeds at a time. The result is sorted by
/// package name; feed failures are recorded per package, not returned as errors.
pub async fn newer_versions<F: ReleaseFeed>(
    packages: &[&Package],
    env: Option<&str>,
    feed: &F,
    include_prereleases: bool,
    jobs: usize,
) -> Vec<PackageVersions> {
    let mut reports: Vec<PackageVersions> = futures::stream::iter(packages.iter().copied())
        .map(|package| async move {
            let Some(source) = &package.versions else {
                let mut report = assess(package, env, &[]);
                report.problem = Some(VersionsUnknown::NoVersionSource);
                return report;
            };
            match versions_of(feed, source, include_prereleases || source.prereleases).await {
                Ok(found) => {
                    let mut report = assess(package, env, &found);
                    if found.is_empty() && report.problem.is_none() {
                        report.problem = Some(VersionsUnknown::NoVersions {
                            tag_template: source.tag.clone(),
                        });
                    }
                    report
                }
                Err(err) => {
                    let mut report = assess(package, env, &[]);
                    report.problem = Some(feed_problem(&err));
                    report
                }
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    reports.sort_by(|a, b| a.package.cmp(&b.package));
    reports
}

fn feed_problem(err: &anyhow::Error) -> VersionsUnknown {
    VersionsUnknown::Feed {
        message: crate::error::summary(err),
        hint: crate::error::hint_of(err).map(str::to_owned),
    }
}

/// Whether no package could be checked at all: every status is unknown (or an error). Then
/// "nothing is outdated" would be a guess, so `kpin outdated` fails instead of passing a
/// scheduled CI job.
pub fn none_checked(reports: &[PackageVersions]) -> bool {
    !reports.is_empty() && reports.iter().all(|r| r.problem.is_some())
}

/// Whether any package is outdated within its constraint (exit 1 for scheduled CI jobs).
pub fn any_outdated(reports: &[PackageVersions]) -> bool {
    reports.iter().any(PackageVersions::is_outdated)
}

/// Aligned table for the terminal, followed by notes for packages with problems.
pub fn to_table(reports: &[PackageVersions]) -> String {
    let dash = || "-".to_owned();
    let mut rows = vec![[
        "PACKAGE".to_owned(),
        "CURRENT".to_owned(),
        "CONSTRAINT".to_owned(),
        "WANTED".to_owned(),
        "LATEST".to_owned(),
        "STATUS".to_owned(),
    ]];
    for r in reports {
        rows.push([
            r.package.clone(),
            r.current_text(),
            r.constraint.clone().unwrap_or_else(dash),
            r.wanted.clone().unwrap_or_else(dash),
            r.latest.clone().unwrap_or_else(dash),
            r.status().to_owned(),
        ]);
    }
    let mut out = crate::table::aligned(&rows);
    let problems: Vec<&PackageVersions> = reports.iter().filter(|r| r.problem.is_some()).collect();
    if !problems.is_empty() {
        out.push('\n');
    }
    for r in problems {
        if let Some(p) = &r.problem {
            let _ = writeln!(out, "{}: {}", r.package, p.message());
            if let Some(h) = p.hint() {
                let _ = writeln!(out, "  hint: {h}");
            }
        }
    }
    out
}

/// The report as JSON for machines.
pub fn to_json(reports: &[PackageVersions]) -> Value {
    let packages: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "package": r.package,
                "current": r.current,
                "environments": r.environments,
                "constraint": r.constraint,
                "source": r.source,
                "wanted": r.wanted,
                "latest": r.latest,
                "newer": r.newer,
                "status": r.status(),
                "outdated": r.is_outdated(),
                "problem": r.problem.as_ref().map(|p| json!({"message": p.message(), "hint": p.hint()})),
            })
        })
        .collect();
    json!({ "outdated": any_outdated(reports), "packages": packages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use std::path::Path;

    fn release(tag: &str) -> UpstreamRelease {
        UpstreamRelease {
            tag: tag.into(),
            prerelease: tag.contains("beta"),
            draft: false,
        }
    }

    /// Releases by repository; a repository named `fail/*` errors like a rate-limited API.
    struct Fake(BTreeMap<&'static str, Vec<UpstreamRelease>>);

    impl ReleaseFeed for Fake {
        async fn releases(&self, feed: &VersionFeed) -> Result<Vec<UpstreamRelease>> {
            if feed.origin().starts_with("fail/") {
                return Err(crate::error::HintExt::hint(
                    anyhow::anyhow!("GET /repos/fail/x/releases: GitHub API rate limit exceeded"),
                    "set GITHUB_TOKEN to raise the limit, or wait for the reset",
                )
                .context("listing releases of fail/x"));
            }
            Ok(self
                .0
                .get(feed.origin().as_str())
                .cloned()
                .unwrap_or_default())
        }

        async fn tags(&self, feed: &VersionFeed) -> Result<Vec<String>> {
            Ok(match feed.origin().as_str() {
                "example/tags-only" => vec!["v2.1.0".into(), "v2.0.0".into(), "nightly".into()],
                _ => Vec::new(),
            })
        }
    }

    fn fake() -> Fake {
        let ingress = [
            "controller-v1.12.8",
            "controller-v1.11.8",
            "controller-v1.10.6",
            "controller-v1.9.6",
            "controller-v1.9.4",
            "helm-chart-4.0.0",
            "controller-v1.13.0-beta.0",
        ]
        .map(release)
        .to_vec();
        let lpp = ["v0.0.31", "v0.0.26", "v0.0.30", "latest"]
            .map(release)
            .to_vec();
        Fake(BTreeMap::from([
            ("kubernetes/ingress-nginx", ingress),
            ("rancher/local-path-provisioner", lpp),
        ]))
    }

    const MANIFEST: &str = "\
packages:
  ingress:
    version: 1.9.4
    url: https://example.com/controller-v{version}/deploy.yaml
    constraint: \"~1.9\"
    versions: {github: kubernetes/ingress-nginx, tag: \"controller-v{version}\"}
  ingress-free:
    version: 1.9.4
    url: https://example.com/controller-v{version}/deploy.yaml
    versions: {github: kubernetes/ingress-nginx, tag: \"controller-v{version}\"}
  pinned-major:
    version: 1.11.8
    url: https://example.com/controller-v{version}/deploy.yaml
    constraint: \"~1.11\"
    versions: {github: kubernetes/ingress-nginx, tag: \"controller-v{version}\"}
  lpp:
    version: v0.0.26
    github: {repo: rancher/local-path-provisioner, tag: \"{version}\", assets: [a.yaml]}
  local:
    version: 1.0.0
    path: vendored/{version}
  limited:
    version: 1.0.0
    url: https://example.com/{version}/a.yaml
    versions: {github: fail/x}
  tagged:
    version: 2.0.0
    url: https://example.com/{version}/a.yaml
    versions: {github: example/tags-only}
";

    async fn run(prereleases: bool) -> Vec<PackageVersions> {
        let m = Manifest::parse(MANIFEST, Path::new("/r/kpin.yaml")).unwrap();
        let pkgs: Vec<&Package> = m.packages.values().collect();
        newer_versions(&pkgs, None, &fake(), prereleases, 4).await
    }

    fn by_name<'a>(reports: &'a [PackageVersions], name: &str) -> &'a PackageVersions {
        reports.iter().find(|r| r.package == name).unwrap()
    }

    #[tokio::test]
    async fn constraint_wanted_and_latest() {
        let reports = run(false).await;
        let r = by_name(&reports, "ingress");
        assert_eq!(
            (r.wanted.as_deref(), r.latest.as_deref()),
            (Some("1.9.6"), Some("1.12.8"))
        );
        assert_eq!(r.newer, ["1.12.8", "1.11.8", "1.10.6", "1.9.6"]);
        let free = by_name(&reports, "ingress-free");
        assert_eq!(free.wanted.as_deref(), Some("1.12.8"));
        let pinned = by_name(&reports, "pinned-major");
        assert_eq!(
            (pinned.wanted.as_deref(), pinned.latest.as_deref()),
            (None, Some("1.12.8"))
        );
        assert_eq!(pinned.status(), "newer outside constraint");
        assert!(any_outdated(&reports));
    }

    #[tokio::test]
    async fn non_semver_tags_and_versions_with_prefixes() {
        let reports = run(false).await;
        let lpp = by_name(&reports, "lpp");
        assert_eq!(lpp.wanted.as_deref(), Some("v0.0.31"));
        assert_eq!(lpp.newer, ["v0.0.31", "v0.0.30"]);
    }

    #[tokio::test]
    async fn tags_are_used_when_no_release_maps_to_a_version() {
        let reports = run(false).await;
        assert_eq!(by_name(&reports, "tagged").wanted.as_deref(), Some("2.1.0"));
    }

    #[tokio::test]
    async fn prereleases_only_when_asked() {
        let reports = run(true).await;
        assert_eq!(
            by_name(&reports, "ingress-free").latest.as_deref(),
            Some("1.13.0-beta.0")
        );
        assert_eq!(
            by_name(&reports, "ingress").wanted.as_deref(),
            Some("1.9.6")
        );
    }

    #[tokio::test]
    async fn problems_are_reported_per_package() {
        let reports = run(false).await;
        assert_eq!(
            by_name(&reports, "local").problem,
            Some(VersionsUnknown::NoVersionSource)
        );
        let limited = by_name(&reports, "limited");
        assert_eq!(limited.status(), "error");
        let Some(VersionsUnknown::Feed { message, hint }) = &limited.problem else {
            panic!()
        };
        assert_eq!(
            message,
            "listing releases of fail/x: GET /repos/fail/x/releases: GitHub API rate limit exceeded"
        );
        assert!(hint.as_deref().unwrap().contains("GITHUB_TOKEN"));
        let table = to_table(&reports);
        assert!(
            table.starts_with("PACKAGE       CURRENT  CONSTRAINT  WANTED   LATEST   STATUS\n"),
            "{table}"
        );
        assert!(
            table.contains("local: no version source\n  hint: add `versions:"),
            "{table}"
        );
        let json = to_json(&reports);
        assert_eq!(json["outdated"], true);
    }

    #[test]
    fn an_environment_ahead_counts_as_current_and_is_shown() {
        let m = Manifest::parse(
            "environments: {dev: {}, prod: {}}\npackages:\n  a:\n    version: 1.9.4\n    url: https://x/{version}\n    constraint: \"~1.9\"\n    versions: {github: kubernetes/ingress-nginx, tag: \"controller-v{version}\"}\n    environments:\n      dev: {version: 1.9.6}\n",
            Path::new("/r/kpin.yaml"),
        )
        .unwrap();
        let found = candidates(
            &fake().0["kubernetes/ingress-nginx"],
            "controller-v{version}",
            false,
        );
        let r = assess(&m.packages["a"], None, &found);
        // dev runs the newest 1.9 already: what remains is promoting it, not upgrading.
        assert_eq!(r.wanted, None);
        assert_eq!(r.latest.as_deref(), Some("1.12.8"));
        assert_eq!(r.current_text(), "1.9.4 (dev 1.9.6)");
        assert!(to_table(&[r]).contains("a        1.9.4 (dev 1.9.6)  ~1.9"));
        // `upgrade --env prod` compares what prod runs: dev being ahead does not count there.
        let prod = assess(&m.packages["a"], Some("prod"), &found);
        assert_eq!(prod.current_text(), "1.9.4");
        assert_eq!(prod.wanted.as_deref(), Some("1.9.6"));
        let dev = assess(&m.packages["a"], Some("dev"), &found);
        assert_eq!((dev.current.as_str(), dev.wanted), ("1.9.6", None));
    }

    #[test]
    fn up_to_date_is_not_outdated() {
        let m = Manifest::parse(
            "packages:\n  a:\n    version: 1.12.8\n    url: https://x/{version}\n    versions: {github: kubernetes/ingress-nginx, tag: \"controller-v{version}\"}\n",
            Path::new("/r/kpin.yaml"),
        )
        .unwrap();
        let found = candidates(
            &fake().0["kubernetes/ingress-nginx"],
            "controller-v{version}",
            false,
        );
        let r = assess(&m.packages["a"], None, &found);
        assert_eq!(r.status(), "up to date");
        assert!(!any_outdated(&[r]));
    }
}
