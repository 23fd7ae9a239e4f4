//! One function per command: each loads what it needs, calls the library, and prints results.

mod add;
mod apply;
mod diff;
mod diff_base;
mod diff_report;
mod init;
mod outdated;
mod promote;
mod render;
mod status;
mod sync;
mod upgrade;
mod verify;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use kpin::error::{DriftError, HintExt, Outcome};
use kpin::fetch::cache;
use kpin::manifest::{self, Manifest};
use kpin::progress::Reporter as _;
use kpin::validate;
use kpin::vendoring::sync::SyncOptions;

use crate::cli::{Cli, Command, LockArgs, LockedArg, NetArgs, SchemaKind, ValidateArgs};
use crate::ui::Terminal;

/// What every command gets: where the manifest is and how to report.
pub struct Ctx<'a> {
    pub manifest_arg: Option<PathBuf>,
    pub term: &'a Terminal,
}

impl Ctx<'_> {
    /// Load kpin.yaml from --manifest or by searching upward from the current directory.
    pub fn manifest(&self) -> Result<Manifest> {
        let path = match &self.manifest_arg {
            Some(p) if p.is_dir() => {
                return Err(anyhow::anyhow!("--manifest {} is a directory", p.display())).hint(
                    format!(
                        "pass the file itself: --manifest {}",
                        p.join(manifest::MANIFEST_FILE).display()
                    ),
                );
            }
            Some(p) => p.clone(),
            None => manifest::discover(&std::env::current_dir()?)?,
        };
        // A kpin killed while committing left a journal: finish or undo that first, so this
        // command reads a project that is wholly old or wholly new.
        let root = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(done) = kpin::vendoring::transaction::recover(root.unwrap_or(Path::new(".")))? {
            self.term.warn(&done);
        }
        Manifest::load(&path)
    }

    /// Load the manifest for a command that reads vendor/. With `--locked` (CI) everything must
    /// agree first — kpin.yaml, kpin.lock, vendor/ and the overlays' digests — or the command
    /// stops with drift (exit 1) before doing anything, in particular before any cluster request.
    pub fn checked_manifest(&self, locked: &LockedArg) -> Result<Manifest> {
        let manifest = self.manifest()?;
        if locked.locked {
            let problems = kpin::vendoring::verify::verify(
                &manifest,
                Some(&kpin::vendoring::verify::render_problems),
            )?;
            if !problems.is_empty() {
                let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
                return Err(DriftError::error(format!(
                    "--locked: kpin.lock and vendor/ are not up to date:\n{}",
                    list.join("\n")
                )))
                .hint(kpin::vendoring::verify::advice(&problems));
            }
        }
        Ok(manifest)
    }
}

/// Validate packages rendered for `env` when the flags (and the command's `default`) ask for
/// it: warnings and unvalidated objects go to stderr, errors become the command's error
/// (exit 2) saying `what` did not happen.
pub fn validate(
    ctx: &Ctx<'_>,
    manifest: &Manifest,
    env: Option<&str>,
    rendered: &[&kpin::render::RenderedPackage],
    args: &ValidateArgs,
    default: bool,
    what: &str,
) -> Result<()> {
    if !args.enabled(default) {
        return Ok(());
    }
    let version = validate::version_for(manifest, env, args.kubernetes_version);
    let report = validate::validate_rendered(manifest, env, rendered, version)?;
    show_findings(ctx, &report);
    report.into_result(what).map(drop)
}

/// Warnings and unvalidated objects on stderr, then the one-line summary.
pub fn show_findings(ctx: &Ctx<'_>, report: &validate::Report) {
    use kpin::progress::Reporter as _;
    for f in &report.findings {
        match f.severity {
            validate::Severity::Error => {}
            validate::Severity::Warning => ctx.term.warn(&f.to_string()),
            validate::Severity::Note => ctx.term.warn(&format!("not validated: {f}")),
        }
    }
    let errors = report.count(validate::Severity::Error);
    ctx.term.status(
        "Validated",
        &format!(
            "{} object{} against {}: {}",
            report.objects,
            if report.objects == 1 { "" } else { "s" },
            report.versions_text(),
            match errors {
                0 => "no errors".to_owned(),
                1 => "1 error".to_owned(),
                n => format!("{n} errors"),
            }
        ),
    );
}

/// Sync settings from the shared flags, with the render stage filling the lock's digests.
fn sync_options<'a>(lock: &LockArgs, net: &NetArgs) -> Result<SyncOptions<'a>> {
    Ok(SyncOptions {
        locked: lock.locked,
        offline: lock.offline,
        jobs: net.jobs,
        net: net.to_options(),
        cache_dir: cache::default_dir(net.cache_dir.as_deref())?,
        hook: Some(&kpin::render::digests),
        manifest_text: None,
        render: net.render_options(),
    })
}

/// Run the parsed command. The one `match` over commands.
pub fn run(cli: Cli, term: &Terminal) -> Result<Outcome> {
    let ctx = Ctx {
        manifest_arg: cli.manifest,
        term,
    };
    match cli.command {
        Command::Init(args) => init::run(&ctx, args),
        Command::Add(args) => block_on(add::run(&ctx, args)),
        Command::Sync(args) => block_on(sync::run(&ctx, args)),
        Command::Verify(args) => verify::run(&ctx, &args),
        Command::Render(args) => render::run(&ctx, &args),
        Command::Diff(args) => block_on(diff::run(&ctx, args)),
        Command::Apply(args) => block_on(apply::run(&ctx, args)),
        Command::Outdated(args) => block_on(outdated::run(&ctx, args)),
        Command::Upgrade(args) => block_on(upgrade::run(&ctx, args)),
        Command::Promote(args) => block_on(promote::run(&ctx, args)),
        Command::Status(args) => block_on(status::run(&ctx, args)),
        Command::Schema(args) => {
            let schema = match args.kind {
                SchemaKind::Manifest => manifest::json_schema(),
                SchemaKind::Overlay => kpin::overlay::json_schema(),
            };
            out(&format!("{}\n", serde_json::to_string_pretty(&schema)?))?;
            Ok(Outcome::Clean)
        }
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "kpin", &mut script);
            out(&String::from_utf8_lossy(&script))?;
            Ok(Outcome::Clean)
        }
    }
}

/// Write command output (data) to stdout. A reader that stops early (`kpin render | head`)
/// ends the output quietly: `print!` would panic on the closed pipe.
pub fn out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

fn block_on<F: std::future::Future<Output = Result<Outcome>>>(future: F) -> Result<Outcome> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}
