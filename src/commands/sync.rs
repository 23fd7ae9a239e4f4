//! `kpin sync`.

use anyhow::Result;
use kpin::error::Outcome;
use kpin::fetch::cache;
use kpin::progress::Reporter;
use kpin::sync::{self, SyncOptions};

use super::Ctx;
use crate::cli::SyncArgs;

pub async fn run(ctx: &Ctx<'_>, args: SyncArgs) -> Result<Outcome> {
    let manifest = ctx.manifest()?;
    let options = SyncOptions {
        locked: args.lock.locked,
        offline: args.lock.offline,
        jobs: args.net.jobs,
        net: args.net.to_options(),
        cache_dir: cache::default_dir(args.net.cache_dir.as_deref())?,
        hook: None,
    };
    let report = sync::sync(&manifest, &options, ctx.term).await?;
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
