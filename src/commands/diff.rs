//! `kpin diff`: validate and render like `apply`, then show what a server-side apply would
//! change in the cluster (exit 1 when something would change, as `kubectl diff`).

use std::io::IsTerminal as _;

use anyhow::Result;
use kpin::changes::DiffOptions;
use kpin::cluster::diff::{LABELS, diff_all};
use kpin::error::Outcome;
use kpin::progress::Reporter as _;

use super::Ctx;
use super::apply::{connect, plan, report_requests};
use super::diff_report::{DiffOutput, print_report};
use crate::cli::{DiffArgs, DiffFormat};

pub async fn run(ctx: &Ctx<'_>, args: DiffArgs) -> Result<Outcome> {
    if let Some(base) = args.base.clone() {
        return super::diff_base::run(ctx, &args, &base);
    }
    let plan = plan(
        ctx,
        &args.packages,
        args.env.as_deref(),
        &args.lock,
        &args.validate,
    )?;
    let cluster = connect(ctx, &args.cluster, &plan).await?;
    let mut sections = diff_all(
        &cluster,
        &plan.selected(),
        &args.field_manager,
        &args.prune.options(),
    )
    .await?;
    report_requests(ctx, &cluster);
    for section in &sections {
        ctx.term.status(
            "Compared",
            &format!(
                "{} {}: {}",
                section.package,
                section.version_after.as_deref().unwrap_or_default(),
                section.counts()
            ),
        );
    }
    let changed = sections.iter().any(|s| s.counts().any());
    let options = DiffOptions {
        reveal_secrets: args.show_secrets,
        color: ctx.term.color() && std::io::stdout().is_terminal(),
        labels: (LABELS.0.to_owned(), LABELS.1.to_owned()),
        ..DiffOptions::default()
    };
    if args.output == DiffFormat::Text {
        // Like `kubectl diff`: nothing on stdout when nothing would change (the counts of every
        // package are on stderr already).
        sections.retain(|s| s.counts().any());
    }
    let env = args
        .env
        .as_deref()
        .map(|e| format!(" --env {e}"))
        .unwrap_or_default();
    let target = match &cluster.target.context {
        Some(c) => format!("context `{c}`"),
        None => "the in-cluster API server".to_owned(),
    };
    print_report(
        &sections,
        &options,
        args.output,
        &DiffOutput {
            title: format!("kpin diff against {target}{env}"),
            rerun: format!("kpin diff{env}"),
            json_fields: vec![("target", serde_json::to_value(&cluster.target)?)],
            validation: None,
        },
    )?;
    Ok(if changed {
        Outcome::Drift
    } else {
        Outcome::Clean
    })
}
