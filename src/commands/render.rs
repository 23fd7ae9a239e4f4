//! `kpin render`: rendered YAML on stdout, a one-file-per-object directory with `--output-dir`,
//! and/or the reviewer's upstream-to-rendered diff with `--explain`. Warnings go to stderr.

use anyhow::Result;
use kpin::error::Outcome;
use kpin::progress::Reporter;
use kpin::render::{self, RenderedPackage};
use kpin::yaml;

use super::Ctx;
use crate::cli::RenderArgs;

pub fn run(ctx: &Ctx<'_>, args: &RenderArgs) -> Result<Outcome> {
    let manifest = ctx.checked_manifest(&args.lock)?;
    if let Some(env) = &args.env {
        manifest.environment(env)?;
    }
    let mut packages = manifest.select_in(&args.packages, args.env.as_deref())?;
    // `kpin render a a` renders `a` once; output order is the manifest's, not the argument's.
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    packages.dedup_by(|a, b| a.name == b.name);
    let mut rendered: Vec<RenderedPackage> = Vec::with_capacity(packages.len());
    for package in packages {
        let out =
            render::render_package_with(&manifest, package, args.env.as_deref(), args.explain)?;
        for warning in &out.warnings {
            ctx.term.warn(&format!("{}: {warning}", out.name));
        }
        rendered.push(out);
    }
    super::validate(
        ctx,
        &manifest,
        args.env.as_deref(),
        &rendered.iter().collect::<Vec<_>>(),
        &args.validate,
        false,
        "nothing was written",
    )?;
    if let Some(dir) = &args.output_dir {
        render::write_output_dir(dir, &rendered)?;
        for p in &rendered {
            ctx.term.status(
                "Rendered",
                &format!(
                    "{} {} ({} objects) to {}",
                    p.name,
                    p.version,
                    p.objects.len(),
                    dir.join(&p.name).display()
                ),
            );
        }
    }
    if args.explain {
        let text: Vec<String> = rendered.iter().map(render::explain).collect();
        super::out(&text.join("\n"))?;
    } else if args.output_dir.is_none() {
        let all = render::combine(&rendered)?;
        super::out(&yaml::emit_documents(all.iter().map(|o| &o.0)))?;
    }
    Ok(Outcome::Clean)
}
