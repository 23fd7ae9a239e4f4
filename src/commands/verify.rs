//! `kpin verify`: offline, kpin.yaml, kpin.lock, vendor/ and overlays agree (exit 1 when not),
//! and the render of every environment validates against its Kubernetes version (exit 2 when
//! an object would be refused).

use std::fmt::Write as _;

use anyhow::Result;
use kpin::error::Outcome;
use kpin::progress::Reporter;
use kpin::validate::{self, Severity};
use kpin::vendoring::verify;

use super::Ctx;
use crate::cli::{ReportFormat, VerifyArgs};

pub fn run(ctx: &Ctx<'_>, args: &VerifyArgs) -> Result<Outcome> {
    let manifest = ctx.manifest()?;
    let problems = verify::verify(&manifest, Some(&kpin::vendoring::verify::render_problems))?;
    let validation = if args.validate.enabled(true) {
        let envs = manifest.every_environment();
        match validate::validate_manifest(&manifest, &[], &envs, args.validate.kubernetes_version) {
            Ok(report) => Some(report),
            // Vendored files that are missing, tampered or do not render are in `problems`
            // already: say validation could not run, and report those.
            Err(err)
                if !problems.is_empty()
                    && kpin::error::find_cause::<validate::UnsupportedVersion>(&err).is_none() =>
            {
                ctx.term.warn(&format!(
                    "validation skipped: {}",
                    kpin::error::summary(&err)
                ));
                None
            }
            Err(err) => return Err(err),
        }
    } else {
        None
    };
    match args.output {
        ReportFormat::Json => {
            let mut doc = serde_json::json!({ "ok": problems.is_empty(), "problems": problems });
            if let Some(report) = &validation {
                doc["ok"] = (problems.is_empty() && report.count(Severity::Error) == 0).into();
                doc["validation"] = report.to_json();
            }
            super::out(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
        }
        ReportFormat::Text => {
            let mut text = String::new();
            for p in &problems {
                let _ = writeln!(text, "{p}");
            }
            if let Some(report) = &validation {
                text.push_str(&report.to_text());
            }
            super::out(&text)?;
        }
    }
    if let Some(report) = &validation {
        super::show_findings(ctx, report);
    }
    let count = manifest.packages.len();
    let errors = validation.as_ref().map_or(0, |r| r.count(Severity::Error));
    if errors > 0 {
        return Err(validate::failed_as_listed(errors));
    }
    if problems.is_empty() {
        ctx.term.status(
            "Verified",
            &format!(
                "{count} package{}: kpin.yaml, kpin.lock and vendor/ agree",
                if count == 1 { "" } else { "s" }
            ),
        );
        Ok(Outcome::Clean)
    } else {
        let n = problems.len();
        ctx.term.warn(&format!(
            "{n} problem{} found; {}",
            if n == 1 { "" } else { "s" },
            verify::advice(&problems)
        ));
        Ok(Outcome::Drift)
    }
}
