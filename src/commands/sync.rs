//! `kpin sync`.

use anyhow::Result;
use kpin::error::Outcome;

use super::Ctx;
use crate::cli::SyncArgs;

pub async fn run(ctx: &Ctx<'_>, args: SyncArgs) -> Result<Outcome> {
    let _ = (ctx.manifest()?, args);
    anyhow::bail!("`kpin sync` is not implemented yet")
}
