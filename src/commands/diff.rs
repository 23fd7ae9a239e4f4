//! `kpin diff`: validate and render like `apply`, then show what a server-side apply would
//! change in the cluster (exit 1 when something would change, as `kubectl diff`).

use anyhow::{Context as _, Result};
use kpin::cluster::diff::{self, Change, DiffOptions, diff_package};
use kpin::error::Outcome;
use kpin::progress::Reporter as _;

use super::Ctx;
use super::apply::{connect, plan};
use crate::cli::{DiffArgs, DiffFormat};

fn paint(diff: &str, color: bool) -> String {
    if !color {
        return diff.to_owned();
    }
    diff.lines()
        .map(|l| {
            let code = if l.starts_with("+++") || l.starts_with("---") {
                "1"
            } else if l.starts_with('+') {
                "32"
            } else if l.starts_with('-') {
                "31"
            } else if l.starts_with("@@") {
                "36"
            } else {
                return format!("{l}\n");
            };
            format!("\x1b[{code}m{l}\x1b[0m\n")
        })
        .collect()
}

pub async fn run(ctx: &Ctx<'_>, args: DiffArgs) -> Result<Outcome> {
    if let Some(base) = args.base.clone() {
        return super::diff_base::run(ctx, &args, &base);
    }
    let plan = plan(ctx, &args.packages, args.env.as_deref(), &args.lock)?;
    let cluster = connect(ctx, &args.cluster, &plan).await?;
    let opts = DiffOptions {
        field_manager: args.field_manager.clone(),
        show_secrets: args.show_secrets,
        concurrency: 16,
    };
    let mut packages = Vec::new();
    for (rendered, namespace) in &plan.packages {
        let d = diff_package(&cluster, rendered, namespace.as_deref(), &opts)
            .await
            .with_context(|| format!("diffing package {}", rendered.name))?;
        packages.push(d);
    }
    match args.output {
        DiffFormat::Text => {
            for p in &packages {
                for c in &p.changes {
                    print!("{}", paint(&c.diff, ctx.term.color()));
                }
                let count = |k: Change| p.changes.iter().filter(|c| c.change == k).count();
                ctx.term.status(
                    "Compared",
                    &format!(
                        "{} {}: {} to create, {} to update, {} to prune",
                        p.package,
                        p.version,
                        count(Change::Create),
                        count(Change::Update),
                        count(Change::Prune)
                    ),
                );
            }
        }
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&diff::to_json(&packages))?
        ),
        DiffFormat::Markdown => print!("{}", diff::to_markdown(&packages)),
    }
    let changed = packages.iter().any(|p| !p.changes.is_empty());
    Ok(if changed {
        Outcome::Drift
    } else {
        Outcome::Clean
    })
}
