//! Dependencies a chart declares but its archive does not hold: looked up in their own
//! repository (a classic one or an OCI registry) at the version Chart.lock records, else the
//! newest the declared constraint allows, and fetched and locked like the chart itself.

use anyhow::{Context, Result, bail};

use super::archive::{Chart, Declared};
use super::{oci, repository};
use crate::error::{HintExt, quote};
use crate::fetch::{Client, SourceFile};

/// Where `dependency` of `chart` is published, at the version to render with.
pub async fn resolve(
    client: Option<&Client>,
    chart: &Chart,
    dependency: &Declared,
) -> Result<SourceFile> {
    let repo = dependency.repository.as_str();
    let Some(client) = client else {
        return Err(anyhow::anyhow!(
            "its repository {} must be looked up online",
            quote(repo)
        ))
        .hint("run without --offline once; afterwards kpin.lock and vendor/ hold the render");
    };
    let pinned = chart.locked.get(&dependency.name).cloned();
    if let Some(rest) = repo.strip_prefix("oci://") {
        let reference = oci::Reference::parse(rest, &dependency.name)?;
        let version = match pinned {
            Some(v) => v,
            None => newest_allowed(&dependency.version, oci::tags(client, &reference).await?)?,
        };
        return oci::chart_archive(client, &reference, &version).await;
    }
    if repo.starts_with("https://") || repo.starts_with("http://") {
        let url = repository::index_url(repo)?;
        let index = repository::Index::fetch(client, &url).await?;
        let version = match pinned {
            Some(v) => v,
            None => newest_allowed(
                &dependency.version,
                index
                    .versions(&dependency.name)?
                    .iter()
                    .map(|e| e.version.clone())
                    .collect(),
            )?,
        };
        return index.archive(&url, &dependency.name, &version);
    }
    Err(anyhow::anyhow!(
        "its repository {} is neither https:// nor oci://",
        quote(repo)
    ))
    .hint("kpin fetches dependencies from https:// and oci:// repositories; publish the chart with its dependencies packaged (`helm dependency build` before `helm package`)")
}

/// `constraint` itself when it is a version, else the newest of `versions` it allows
/// (prereleases only when the constraint names one).
fn newest_allowed(constraint: &str, versions: Vec<String>) -> Result<String> {
    let trimmed = constraint.trim().trim_start_matches('v');
    if semver::Version::parse(trimmed).is_ok() {
        return Ok(trimmed.to_owned());
    }
    let req = semver::VersionReq::parse(&constraint.replace(' ', ", ").replace(",,", ","))
        .with_context(|| {
            format!(
                "version constraint {} is not one kpin reads",
                quote(constraint)
            )
        })?;
    let mut allowed: Vec<(semver::Version, String)> = versions
        .into_iter()
        .filter_map(|v| {
            let parsed = semver::Version::parse(v.trim_start_matches('v')).ok()?;
            req.matches(&parsed).then_some((parsed, v))
        })
        .collect();
    allowed.sort();
    match allowed.pop() {
        Some((_, v)) => Ok(v),
        None => bail!("no version matches {}", quote(constraint)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_pick_the_newest_allowed_version() {
        let versions = || {
            vec![
                "1.2.0".into(),
                "1.3.1".into(),
                "2.0.0".into(),
                "1.3.0".into(),
            ]
        };
        assert_eq!(newest_allowed("1.2.0", versions()).unwrap(), "1.2.0");
        assert_eq!(newest_allowed("~1.3", versions()).unwrap(), "1.3.1");
        assert_eq!(
            newest_allowed(">=1.0.0 <2.0.0", versions()).unwrap(),
            "1.3.1"
        );
        assert_eq!(newest_allowed("^2", versions()).unwrap(), "2.0.0");
        assert!(newest_allowed("^3", versions()).is_err());
    }
}
