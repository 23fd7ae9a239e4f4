//! `kpin add`: resolve the new package's source, add its entry to kpin.yaml, and sync it in
//! the same transaction that writes kpin.lock and vendor/.

use anyhow::{Context, Result};
use kpin::add::{self, Request, Upstream};
use kpin::error::{HintExt, Outcome};
use kpin::fetch::Client;
use kpin::manifest::Manifest;
use kpin::progress::Reporter;
use kpin::vendoring::sync;

use super::Ctx;
use crate::cli::{AddArgs, LockArgs};

pub async fn run(ctx: &Ctx<'_>, args: AddArgs) -> Result<Outcome> {
    let manifest = ctx.manifest()?;
    if let Some(package) = manifest.packages.get(&args.name) {
        return Err(anyhow::anyhow!(
            "{}: package `{}` exists already (version {})",
            manifest.path.display(),
            args.name,
            package.version
        ))
        .hint(format!(
            "`kpin upgrade {} --to VERSION` moves it to another version",
            args.name
        ));
    }
    let source = match (args.github, args.url, args.chart) {
        (Some(repo), _, _) => Upstream::Github {
            repo,
            asset: args.asset,
            tag: args.tag,
            api_url: args.api_url,
        },
        (None, Some(template), _) => Upstream::Url { template },
        (None, None, Some(repository)) => Upstream::Chart {
            repository,
            chart: args.chart_name,
        },
        (None, None, None) => {
            anyhow::bail!("name the package's source with --github, --url or --chart")
        }
    };
    for env in &args.environments {
        manifest.environment(env)?;
    }
    let absent: Vec<String> = if args.environments.is_empty() {
        Vec::new()
    } else {
        manifest
            .environments
            .keys()
            .filter(|e| !args.environments.contains(e))
            .cloned()
            .collect()
    };
    let request = Request {
        name: args.name.clone(),
        upstream: source,
        version: args.pin,
        namespace: args.namespace,
        absent,
    };
    let options = args.net.to_options();
    let entry = add::resolve(&request, || Client::new(options)).await?;
    for note in &entry.notes {
        ctx.term.status("Resolved", note);
    }
    let text = std::fs::read_to_string(&manifest.path)
        .with_context(|| format!("reading {}", manifest.path.display()))?;
    let edited = add::insert(&text, &args.name, &entry)
        .map_err(anyhow::Error::new)
        .with_context(|| {
            format!(
                "{}: cannot add `{}` under `packages:` in place",
                manifest.path.display(),
                args.name
            )
        })
        .hint("add the entry by hand (`kpin schema` lists its fields)")?;
    // The new file must be a valid manifest before anything is fetched.
    let added = Manifest::parse(&edited, &manifest.path)?;
    if args.dry_run {
        let name = manifest.path.display().to_string();
        print!(
            "{}",
            kpin::changes::text_diff(&text, &edited, (&name, &name), 3)
        );
        return Ok(Outcome::Clean);
    }
    let lock = LockArgs {
        locked: false,
        offline: false,
    };
    let mut options = super::sync_options(&lock, &args.net)?;
    options.manifest_text = Some(&edited);
    sync::sync(&added, &options, ctx.term).await?;
    ctx.term.status(
        "Added",
        &format!(
            "{} {} to {} (kpin.lock and vendor/ with it)",
            args.name,
            entry.version,
            manifest.path.display()
        ),
    );
    Ok(Outcome::Clean)
}
