//! The one printer of every flavour of `kpin diff` (live, and `--base`): text, JSON or
//! markdown.

use anyhow::{Context as _, Result};
use kpin::changes::{self, DiffOptions, MarkdownLimits, Section};
use serde_json::Value;

use crate::cli::DiffFormat;

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
            super::out(&(findings.unwrap_or_default() + &changes::to_text(sections, options)))?;
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
        DiffFormat::Markdown => super::out(&changes::to_markdown(
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
