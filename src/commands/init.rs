//! `kpin init`: write a new kpin.yaml (never over an existing one) and the .gitignore line.

use anyhow::Result;
use kpin::error::{HintExt, Outcome};
use kpin::fsutil;
use kpin::init::{self, InitOptions};
use kpin::manifest::MANIFEST_FILE;
use kpin::progress::Reporter;

use super::Ctx;
use crate::cli::InitArgs;

pub fn run(ctx: &Ctx<'_>, args: InitArgs) -> Result<Outcome> {
    let path = match &ctx.manifest_arg {
        Some(p) => p.clone(),
        None => std::env::current_dir()?.join(MANIFEST_FILE),
    };
    if path.exists() {
        return Err(anyhow::anyhow!("{} exists already", path.display()))
            .hint("kpin init never overwrites it; `kpin add` adds packages to it");
    }
    let options = InitOptions {
        environments: args.environments,
        promotion: args.promotion,
        kubernetes_version: args.kubernetes_version.map(|v| v.to_string()),
    };
    let text = init::manifest_text(&options);
    fsutil::create_atomic(&path, text.as_bytes())?;
    ctx.term.status("Created", &path.display().to_string());
    let gitignore = path.with_file_name(".gitignore");
    let existing = std::fs::read_to_string(&gitignore).ok();
    if let Some(text) = init::gitignore_with_line(existing.as_deref()) {
        fsutil::write_atomic(&gitignore, text.as_bytes())?;
        ctx.term.status(
            if existing.is_some() {
                "Updated"
            } else {
                "Created"
            },
            &format!("{} ({})", gitignore.display(), init::GITIGNORE_LINE),
        );
    }
    Ok(Outcome::Clean)
}
