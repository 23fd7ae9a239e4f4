//! `kpin upgrade`: pick target versions (from `--to` or the version feed within constraints),
//! for the package or one environment (`--env`), run the upgrade and print its report; refused
//! upgrades exit 2 after the report. `kpin promote` prints through `finish` too.

use std::io::IsTerminal;

use anyhow::Result;
use kpin::changes::DiffOptions;
use kpin::error::{HintExt, Outcome};
use kpin::fetch::{Cache, Client, cache};
use kpin::manifest::{Manifest, Package};
use kpin::progress::Reporter;
use kpin::upgrading::outdated;
use kpin::upgrading::upgrade::{self, Fetching, UpgradeOptions, UpgradeReport, Verb, VersionMove};

use super::Ctx;
use crate::cli::{DiffFormat, UpgradeArgs};

pub async fn run(ctx: &Ctx<'_>, args: UpgradeArgs) -> Result<Outcome> {
    let manifest = ctx.manifest()?;
    if let Some(env) = &args.env {
        manifest.environment(env)?;
    }
    let client = Client::new(args.net.to_options())?;
    let targets = choose_targets(ctx, &manifest, &args, &client).await?;
    if targets.is_empty() {
        ctx.term.status("Finished", "nothing to upgrade");
        return Ok(Outcome::Clean);
    }
    let fetching = Fetching {
        client: Some(&client),
        cache: Cache::new(cache::default_dir(args.net.cache_dir.as_deref())?),
        render: args.net.render_options(),
    };
    let options = UpgradeOptions {
        allow_broken_overlays: args.allow_broken_overlays,
        dry_run: args.dry_run,
        verb: Verb::Upgrade,
    };
    let report = upgrade::upgrade(&manifest, &targets, &fetching, &options, ctx.term).await?;
    finish(ctx, &report, args.output, &options)
}

/// Print an upgrade's (or promotion's) report; a refusal for broken overlays exits 2 after it.
pub(super) fn finish(
    ctx: &Ctx<'_>,
    report: &UpgradeReport,
    output: DiffFormat,
    options: &UpgradeOptions,
) -> Result<Outcome> {
    let diff = DiffOptions {
        color: ctx.term.color() && std::io::stdout().is_terminal(),
        labels: match options.verb {
            Verb::Upgrade => ("current".to_owned(), "upgraded".to_owned()),
            Verb::Promote => ("current".to_owned(), "promoted".to_owned()),
        },
        ..DiffOptions::default()
    };
    match output {
        DiffFormat::Text => super::out(&report.to_text(&diff))?,
        DiffFormat::Json => super::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report.to_json(&diff))?
        ))?,
        DiffFormat::Markdown => super::out(&report.to_markdown(&diff))?,
    }
    let broken = report.broken_overlays().count();
    let noun = options.verb.noun();
    if broken > 0 && !options.allow_broken_overlays {
        return Err(anyhow::anyhow!(
            "{noun} not written: {broken} overlay operation(s) match nothing in the new version"
        ))
        .hint(format!("fix the overlays listed above, or pass --allow-broken-overlays to write the {noun} anyway"));
    }
    if !report.written {
        ctx.term.status(
            "Finished",
            "dry run: kpin.yaml, kpin.lock and vendor/ unchanged",
        );
    }
    Ok(Outcome::Clean)
}

/// `--to` for one package, else the newest version within each package's constraint; for the
/// environment's version with `--env`.
async fn choose_targets(
    ctx: &Ctx<'_>,
    manifest: &Manifest,
    args: &UpgradeArgs,
    client: &Client,
) -> Result<Vec<VersionMove>> {
    let env = args.env.as_deref();
    // With `--env`, the version the environment runs is what the feed is compared with.
    let selected: Vec<&Package> = match &args.package {
        Some(name) => manifest.select(std::slice::from_ref(name))?,
        // `--all --env E` upgrades what E has; a package enters E by name or by promotion.
        None => manifest.select_in(&[], env)?,
    };
    let target = |package: &str, version: &str| VersionMove {
        package: package.to_owned(),
        env: args.env.clone(),
        version: version.to_owned(),
        note: None,
    };
    if let (Some(to), [package]) = (&args.to, selected.as_slice()) {
        return Ok(vec![target(&package.name, to)]);
    }
    let mut with_feed = Vec::new();
    for package in selected.iter().copied() {
        if package.versions.is_some() {
            with_feed.push(package);
        } else if args.all {
            ctx.term
                .warn(&format!("{}: skipped, no version source", package.name));
        } else {
            return Err(anyhow::anyhow!("package `{}` has no version source to find a newer version", package.name))
                .hint("pass --to VERSION, or add `versions: {github: OWNER/REPO}` to the package in kpin.yaml");
        }
    }
    let reports = outdated::newer_versions(&with_feed, env, client, false, args.net.jobs).await;
    let mut targets = Vec::new();
    for r in reports {
        if let Some(problem) = r.problem.as_ref().filter(|p| p.is_error()) {
            let err = anyhow::anyhow!("listing versions of `{}`: {}", r.package, problem.message());
            return Err(match problem.hint() {
                Some(h) => err.hint(h),
                None => err,
            });
        }
        match (&r.wanted, &r.latest) {
            (Some(v), _) => targets.push(target(&r.package, v)),
            (None, Some(latest)) => ctx.term.status(
                "Up to date",
                &format!(
                    "{} {} (newest within {}; {latest} is outside it)",
                    r.package,
                    r.current,
                    r.constraint.as_deref().unwrap_or("constraint")
                ),
            ),
            (None, None) => ctx
                .term
                .status("Up to date", &format!("{} {}", r.package, r.current)),
        }
    }
    Ok(targets)
}
