//! `kpin render`.

use anyhow::Result;
use kpin::error::Outcome;

use super::Ctx;
use crate::cli::RenderArgs;

pub async fn run(ctx: &Ctx<'_>, args: RenderArgs) -> Result<Outcome> {
    let _ = (ctx.manifest()?, args);
    anyhow::bail!("`kpin render` is not implemented yet")
}
