//! `kpin apply`.

use anyhow::Result;
use kpin::error::Outcome;

use super::Ctx;
use crate::cli::ApplyArgs;

pub async fn run(ctx: &Ctx<'_>, args: ApplyArgs) -> Result<Outcome> {
    let _ = (ctx.manifest()?, args);
    anyhow::bail!("`kpin apply` is not implemented yet")
}
