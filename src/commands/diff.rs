//! `kpin diff`.

use anyhow::Result;
use kpin::error::Outcome;

use super::Ctx;
use crate::cli::DiffArgs;

pub async fn run(ctx: &Ctx<'_>, args: DiffArgs) -> Result<Outcome> {
    if let Some(base) = args.base.clone() {
        return super::diff_base::run(ctx, &args, &base);
    }
    let _ = (ctx.manifest()?, args);
    anyhow::bail!("`kpin diff` is not implemented yet")
}
