//! `kpin promote`: decide per package which version the environment receives (the rules are
//! `kpin::upgrading::promote`'s), then run it through the upgrade workflow and print the same report.

use anyhow::Result;
use kpin::error::Outcome;
use kpin::fetch::{Cache, cache};
use kpin::progress::Reporter;
use kpin::upgrading::promote::{self, Decision};
use kpin::upgrading::upgrade::{self, Fetching, UpgradeOptions, Verb};

use super::Ctx;
use crate::cli::PromoteArgs;

pub async fn run(ctx: &Ctx<'_>, args: PromoteArgs) -> Result<Outcome> {
    let manifest = ctx.manifest()?;
    manifest.environment(&args.to)?;
    let packages = match &args.package {
        Some(name) => manifest.select(std::slice::from_ref(name))?,
        None => manifest.packages.values().collect(),
    };
    let mut targets = Vec::new();
    for package in packages {
        match promote::decide(&manifest, package, &args.to, args.allow_skip) {
            Ok(Decision::Promote { target, from }) => {
                ctx.term.status(
                    "Promoting",
                    &format!(
                        "{} {} -> {} in {} (from {from})",
                        package.name,
                        if package.installed_in(Some(&args.to)) {
                            package.version_in(Some(&args.to)).raw.as_str()
                        } else {
                            upgrade::NOT_INSTALLED
                        },
                        target.version,
                        args.to
                    ),
                );
                targets.push(target);
            }
            Ok(Decision::NotInstalledBefore) => ctx.term.status(
                "Skipped",
                &format!(
                    "{}: not installed in any environment before {}",
                    package.name, args.to
                ),
            ),
            Ok(Decision::UpToDate { version }) => ctx.term.status(
                "Up to date",
                &format!(
                    "{} {version} in {} (as the environments before it)",
                    package.name, args.to
                ),
            ),
            // `--all` promotes what it can; a single package's refusal is the answer.
            Err(refusal) if args.all && refusal.is_per_package() => ctx.term.warn(&format!(
                "{}: skipped: {refusal}\n  hint: {}",
                package.name,
                refusal.hint()
            )),
            Err(refusal) => return Err(promote::refusal_error(*refusal)),
        }
    }
    if targets.is_empty() {
        ctx.term.status("Finished", "nothing to promote");
        return Ok(Outcome::Clean);
    }
    // Promotion moves versions kpin.lock and vendor/ hold already: no network.
    let fetching = Fetching {
        client: None,
        cache: Cache::new(cache::default_dir(None)?),
        render: kpin::fetch::source::RenderOptions::default(),
    };
    let options = UpgradeOptions {
        allow_broken_overlays: args.allow_broken_overlays,
        dry_run: args.dry_run,
        verb: Verb::Promote,
    };
    let report = upgrade::upgrade(&manifest, &targets, &fetching, &options, ctx.term).await?;
    super::upgrade::finish(ctx, &report, args.output, &options)
}
