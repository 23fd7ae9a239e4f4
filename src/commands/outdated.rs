//! `kpin outdated`: the table (or JSON) of newer upstream versions; exit 1 when a package can
//! be upgraded within its constraint, 2 when a version feed failed or no package could be
//! checked.

use anyhow::Result;
use kpin::error::{HintExt, Outcome};
use kpin::fetch::Client;
use kpin::upgrading::outdated;

use super::Ctx;
use crate::cli::{OutdatedArgs, ReportFormat};

pub async fn run(ctx: &Ctx<'_>, args: OutdatedArgs) -> Result<Outcome> {
    let manifest = ctx.manifest()?;
    let packages = manifest.select(&args.packages)?;
    let client = Client::new(args.net.to_options())?;
    let reports =
        outdated::newer_versions(&packages, None, &client, args.prereleases, args.net.jobs).await;
    match args.output {
        ReportFormat::Text => super::out(&outdated::to_table(&reports))?,
        ReportFormat::Json => super::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&outdated::to_json(&reports))?
        ))?,
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| {
            r.problem
                .as_ref()
                .is_some_and(kpin::upgrading::outdated::VersionsUnknown::is_error)
        })
        .map(|r| r.package.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(anyhow::anyhow!(
            "could not list upstream versions of {} (see above)",
            failed.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        ))
        .hint("set GITHUB_TOKEN for rate limits and private repositories; check `versions:` in kpin.yaml");
    }
    if outdated::none_checked(&reports) {
        return Err(anyhow::anyhow!(
            "could not check any package: the status of {} is unknown (see the notes above)",
            if reports.len() == 1 {
                format!("`{}`", reports[0].package)
            } else {
                "every package".to_owned()
            }
        ))
        .hint("each note says what kpin needs to look up a package's versions");
    }
    Ok(if outdated::any_outdated(&reports) {
        Outcome::Drift
    } else {
        Outcome::Clean
    })
}
