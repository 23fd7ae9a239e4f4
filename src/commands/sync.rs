//! `kpin sync`.

use anyhow::Result;
use kpin::error::Outcome;
use kpin::progress::Reporter;
use kpin::vendoring::sync;

use super::Ctx;
use crate::cli::SyncArgs;

pub async fn run(ctx: &Ctx<'_>, args: SyncArgs) -> Result<Outcome> {
    let manifest = ctx.manifest()?;
    let report = sync::sync(
        &manifest,
        &super::sync_options(&args.lock, &args.net)?,
        ctx.term,
    )
    .await?;
    let files = report.downloaded_files();
    let fetched = if files == 0 {
        "nothing downloaded".to_owned()
    } else {
        format!(
            "{files} file{} downloaded, {}",
            plural(files),
            human_bytes(report.downloaded_bytes())
        )
    };
    let count = report.packages.len();
    ctx.term.status(
        "Finished",
        &format!("{count} package{} in sync ({fetched})", plural(count)),
    );
    Ok(Outcome::Clean)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}
