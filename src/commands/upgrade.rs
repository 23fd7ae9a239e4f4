//! `kpin upgrade`.

use anyhow::Result;
use kpin::error::Outcome;

use super::Ctx;
use crate::cli::UpgradeArgs;

pub async fn run(ctx: &Ctx<'_>, args: UpgradeArgs) -> Result<Outcome> {
    let _ = (ctx.manifest()?, args);
    anyhow::bail!("`kpin upgrade` is not implemented yet")
}
