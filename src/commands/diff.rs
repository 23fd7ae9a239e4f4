//! `kpin diff`: validate and render like `apply`, then show what a server-side apply would
//! change in the cluster (exit 1 when something would change, as `kubectl diff`).

use std::io::IsTerminal as _;

use anyhow::{Context as _, Result};
use kpin::changes::{self, DiffOptions, MarkdownLimits, Section};
use kpin::cluster::diff::{LABELS, diff_all};
use kpin::error::Outcome;
use kpin::progress::Reporter as _;
use serde_json::Value;

use super::Ctx;
use super::apply::{connect, plan, report_requests};
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

/// What a report says beyond its sections.
pub(super) struct DiffOutput {
    /// The markdown heading.
    pub title: String,
    /// The command that shows the diffs a markdown comment had to leave out.
    pub rerun: String,
    /// Extra top-level JSON fields, e.g. the target cluster or the base revision.
    pub json_fields: Vec<(&'static str, Value)>,
    /// Validation findings, shown first (`diff --base`).
    pub validation: Option<kpin::validate::Report>,
}

/// Print sections as text, JSON (with `changed` and the report's fields) or markdown: the one
/// printer for every flavour of `kpin diff`.
pub(super) fn print_report(
    sections: &[Section],
    options: &DiffOptions,
    format: DiffFormat,
    report: &DiffOutput,
) -> Result<()> {
    match format {
        DiffFormat::Text => {
            let findings = report
                .validation
                .as_ref()
                .map(kpin::validate::Report::to_text);
            super::out(&(findings.unwrap_or_default() + &changes::render_text(sections, options)))?;
        }
        DiffFormat::Json => {
            let mut json = changes::to_json(sections, options);
            if let Value::Object(map) = &mut json {
                for (key, value) in &report.json_fields {
                    map.insert((*key).to_owned(), value.clone());
                }
                if let Some(v) = &report.validation {
                    map.insert("validation".into(), v.to_json());
                }
                map.insert(
                    "changed".into(),
                    sections.iter().any(|s| s.counts().any()).into(),
                );
            }
            super::out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&json).context("encoding JSON")?
            ))?;
        }
        DiffFormat::Markdown => super::out(&changes::render_markdown(
            &report.title,
            &report
                .validation
                .as_ref()
                .map(kpin::validate::Report::to_markdown)
                .unwrap_or_default(),
            sections,
            options,
            MarkdownLimits::default(),
            &report.rerun,
        ))?,
    }
    Ok(())
}
