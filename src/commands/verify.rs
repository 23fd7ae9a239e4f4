//! `kpin verify`.

use anyhow::Result;
use kpin::error::Outcome;
use kpin::progress::Reporter;
use kpin::verify;

use super::Ctx;
use crate::cli::{ReportFormat, VerifyArgs};

pub fn run(ctx: &Ctx<'_>, args: VerifyArgs) -> Result<Outcome> {
    let manifest = ctx.manifest()?;
    let problems = verify::verify(&manifest, Some(&kpin::render::verify_hook))?;
    match args.output {
        ReportFormat::Json => {
            let doc = serde_json::json!({ "ok": problems.is_empty(), "problems": problems });
            super::out(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
        }
        ReportFormat::Text => {
            let text: String = problems.iter().map(|p| format!("{p}\n")).collect();
            super::out(&text)?;
        }
    }
    let count = manifest.packages.len();
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
