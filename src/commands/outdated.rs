//! `kpin outdated`.

use anyhow::Result;
use kpin::error::Outcome;

use super::Ctx;
use crate::cli::OutdatedArgs;

pub async fn run(ctx: &Ctx<'_>, args: OutdatedArgs) -> Result<Outcome> {
    let _ = (ctx.manifest()?, args);
    anyhow::bail!("`kpin outdated` is not implemented yet")
}
