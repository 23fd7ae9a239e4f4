//! `kpin diff --base REV`: compare the working tree's render with the one at a git revision and
//! print text, JSON or a pull-request comment (markdown). Exit 1 when anything changed.

use std::io::IsTerminal;

use anyhow::Result;
use kpin::changes::DiffOptions;
use kpin::error::Outcome;
use kpin::upgrading::diff_base::{self, BaseDiffOptions};
use kpin::validate;

use super::Ctx;
use super::diff_report::{DiffOutput, print_report};
use crate::cli::DiffArgs;

pub fn run(ctx: &Ctx<'_>, args: &DiffArgs, base: &str) -> Result<Outcome> {
    let head = ctx.manifest()?;
    let snapshot = diff_base::extract(&head, base)?;
    let base_manifest = diff_base::base_manifest(&snapshot, base)?;
    let options = BaseDiffOptions {
        packages: args.packages.clone(),
        env: args.env.clone(),
        base_label: base.to_owned(),
    };
    let sections = diff_base::compare(base_manifest.as_ref(), &head, &options)?;
    // The head is what will be applied: validate it, and show the findings first.
    let validation = if args.validate.enabled(true) {
        let report = validate::validate_manifest(
            &head,
            &args.packages,
            std::slice::from_ref(&args.env),
            args.validate.kubernetes_version,
        )?;
        super::show_findings(ctx, &report);
        Some(report)
    } else {
        None
    };
    let errors = validation
        .as_ref()
        .map_or(0, |v| v.count(validate::Severity::Error));
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
    print_report(
        &sections,
        &diff,
        args.output,
        &DiffOutput {
            title: format!("kpin diff against `{base}`{env}"),
            rerun: format!("kpin diff --base {base}{env}"),
            json_fields: vec![("base", base.into())],
            validation,
        },
    )?;
    if errors > 0 {
        return Err(validate::failed_as_listed(errors));
    }
    let changed = sections.iter().any(|s| s.counts().any());
    Ok(if changed {
        Outcome::Drift
    } else {
        Outcome::Clean
    })
}
