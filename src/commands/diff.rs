//! `kpin diff`.

use anyhow::Result;
use kpin::error::Outcome;

use super::Ctx;
use crate::cli::DiffArgs;

pub async fn run(ctx: &Ctx<'_>, args: DiffArgs) -> Result<Outcome> {
    let _ = (ctx.manifest()?, args);
    anyhow::bail!("`kpin diff` is not implemented yet")
}
