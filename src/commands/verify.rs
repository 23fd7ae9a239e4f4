//! `kpin verify`.

use anyhow::Result;
use kpin::error::Outcome;

use super::Ctx;
use crate::cli::VerifyArgs;

pub fn run(ctx: &Ctx<'_>, args: VerifyArgs) -> Result<Outcome> {
    let _ = (ctx.manifest()?, args);
    anyhow::bail!("`kpin verify` is not implemented yet")
}
