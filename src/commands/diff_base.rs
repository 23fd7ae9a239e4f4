//! `kpin diff --base REV`: compare the working tree's render with the one at a git revision and
//! print text, JSON or a pull-request comment (markdown). Exit 1 when anything changed.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use kpin::changes::{self, DiffOptions, MarkdownLimits};
use kpin::error::Outcome;
use kpin::review::{self, ReviewOptions};

use super::Ctx;
use crate::cli::{DiffArgs, DiffFormat};

pub fn run(ctx: &Ctx<'_>, args: &DiffArgs, base: &str) -> Result<Outcome> {
    let head = ctx.manifest()?;
    let snapshot = review::extract(&head, base)?;
    let base_manifest = review::base_manifest(&snapshot, base)?;
    let options = ReviewOptions {
        packages: args.packages.clone(),
        env: args.env.clone(),
        base_label: base.to_owned(),
    };
    let sections = review::compare(base_manifest.as_ref(), &head, &options)?;
    let diff = DiffOptions {
        reveal_secrets: args.show_secrets,
        color: ctx.term.color() && std::io::stdout().is_terminal(),
        labels: (base.to_owned(), "working tree".to_owned()),
        ..DiffOptions::default()
    };
    let env = args
        .env
        .as_deref()
        .map(|e| format!(" --env {e}"))
        .unwrap_or_default();
    match args.output {
        DiffFormat::Text => super::out(&changes::render_text(&sections, &diff))?,
        DiffFormat::Json => {
            let mut report = changes::to_json(&sections, &diff);
            if let serde_json::Value::Object(map) = &mut report {
                map.insert("base".into(), base.into());
                map.insert(
                    "changed".into(),
                    sections.iter().any(|s| s.counts().any()).into(),
                );
            }
            super::out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&report).context("encoding JSON")?
            ))?;
        }
        DiffFormat::Markdown => super::out(&changes::render_markdown(
            &format!("kpin diff against `{base}`{env}"),
            &sections,
            &diff,
            MarkdownLimits::default(),
            &format!("kpin diff --base {base}{env}"),
        ))?,
    }
    let changed = sections.iter().any(|s| s.counts().any());
    Ok(if changed {
        Outcome::Drift
    } else {
        Outcome::Clean
    })
}
