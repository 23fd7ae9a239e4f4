//! `kpin apply`: validate everything (manifest, lock, render of every selected package), then
//! connect, print the target cluster, apply package by package and print the report.

use std::time::Duration;

use anyhow::{Context as _, Result};
use kpin::cluster::apply::{ApplyOptions, apply_all};
use kpin::cluster::package::Selected;
use kpin::cluster::prune::PruneOptions;
use kpin::cluster::report::ApplyReport;
use kpin::cluster::{self, Cluster, ConnectOptions};
use kpin::error::Outcome;
use kpin::manifest::Manifest;
use kpin::progress::Reporter as _;
use kpin::render::{DEFAULT_ENV, RenderedPackage, render_package};
use kpin::vendoring::lockfile::Lockfile;

use super::Ctx;
use crate::cli::{ApplyArgs, ClusterArgs, LockedArg, ReportFormat, ValidateArgs};

/// Everything checked offline: the manifest and each selected package rendered.
pub(super) struct Plan {
    pub manifest: Manifest,
    pub env: Option<String>,
    /// Rendered packages, in apply order, with the namespace their ApplySet parent lives in.
    pub packages: Vec<(RenderedPackage, Option<String>)>,
}

impl Plan {
    /// The packages as the cluster functions take them.
    pub fn selected(&self) -> Vec<Selected<'_>> {
        self.packages
            .iter()
            .map(|(rendered, namespace)| Selected {
                rendered,
                namespace: namespace.as_deref(),
            })
            .collect()
    }
}

/// Validate before any request: an error here means the cluster was never contacted.
pub(super) fn plan(
    ctx: &Ctx<'_>,
    packages: &[String],
    env: Option<&str>,
    lock: &LockedArg,
    validate: &ValidateArgs,
) -> Result<Plan> {
    let plan = render_plan(ctx.checked_manifest(lock)?, packages, env)?;
    for (rendered, _) in &plan.packages {
        for w in &rendered.warnings {
            ctx.term.warn(&format!("{}: {w}", rendered.name));
        }
    }
    let rendered: Vec<_> = plan.packages.iter().map(|(r, _)| r).collect();
    super::validate(
        ctx,
        &plan.manifest,
        env,
        &rendered,
        validate,
        true,
        "nothing was sent to the cluster",
    )?;
    Ok(plan)
}

/// Render the selected packages of `manifest` for `env` (each in the version it uses there).
pub(super) fn render_plan(
    manifest: Manifest,
    packages: &[String],
    env: Option<&str>,
) -> Result<Plan> {
    if let Some(env) = env {
        manifest.environment(env)?;
    }
    let mut rendered = Vec::new();
    for package in manifest.select_in(packages, env)? {
        let r = render_package(&manifest, package, env)
            .with_context(|| format!("rendering package {}", package.name))?;
        rendered.push((r, package.namespace.clone()));
    }
    Ok(Plan {
        env: env.map(str::to_owned),
        manifest,
        packages: rendered,
    })
}

/// The ApplySet parents record the digest of each render applied, which `kpin status`
/// compares with kpin.lock: say beforehand when the lock records another render (an apply
/// without `--locked` of a working tree that differs from it). Without a lock there is nothing
/// to compare with.
fn warn_unlocked_renders(ctx: &Ctx<'_>, plan: &Plan) -> Result<()> {
    let Some(lock) = Lockfile::load(&plan.manifest.lock_path())? else {
        return Ok(());
    };
    let env = plan.env.as_deref().unwrap_or(DEFAULT_ENV);
    let rendered = plan.packages.iter().map(|(r, _)| r);
    for rendered in kpin::vendoring::verify::unlocked_renders(&lock, env, rendered) {
        ctx.term.warn(&format!(
            "{} {}: kpin.lock records another render for {env}; `kpin status` will show what this apply leaves as not matching the lock (run `kpin sync` and commit kpin.lock)",
            rendered.name, rendered.version
        ));
    }
    Ok(())
}

/// Connect to the cluster the flags and the environment select, and say which one it is.
pub(super) async fn connect(ctx: &Ctx<'_>, args: &ClusterArgs, plan: &Plan) -> Result<Cluster> {
    let environment = plan.env.as_ref().map(|e| {
        (
            e.clone(),
            plan.manifest
                .environments
                .get(e)
                .and_then(|env| env.context.clone()),
        )
    });
    let cluster = cluster::connect(&ConnectOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        environment,
        request_timeout: args.request_timeout(),
    })
    .await?;
    ctx.term.status("Target", &cluster.target.to_string());
    Ok(cluster)
}

/// With `-v`, how many requests a run sent (what it costs, whatever the machine's speed).
pub(super) fn report_requests(ctx: &Ctx<'_>, cluster: &Cluster) {
    if ctx.term.verbose() > 0 {
        let sent = cluster.requests_sent();
        ctx.term
            .status("Requests", &format!("{sent} sent to the API server"));
    }
}

pub async fn run(ctx: &Ctx<'_>, args: ApplyArgs) -> Result<Outcome> {
    let plan = plan(
        ctx,
        &args.packages,
        args.env.as_deref(),
        &args.lock,
        &args.validate,
    )?;
    if !args.dry_run {
        warn_unlocked_renders(ctx, &plan)?;
    }
    let cluster = connect(ctx, &args.cluster, &plan).await?;
    let opts = ApplyOptions {
        field_manager: args.field_manager.clone(),
        force_conflicts: args.force_conflicts,
        recreate: args.recreate,
        dry_run: args.dry_run,
        prune: args.prune.then(|| PruneOptions {
            allow_empty: args.allow_empty,
            ..args.prune_limits.options()
        }),
        wait: args.wait.then(|| Duration::from_secs(args.timeout)),
        concurrency: args.concurrency,
        poll: Duration::from_millis(if args.timeout <= 5 { 200 } else { 1000 }),
    };
    let packages = apply_all(&cluster, &plan.selected(), &opts, ctx.term).await?;
    report_requests(ctx, &cluster);
    let report = ApplyReport {
        target: cluster.target.clone(),
        dry_run: args.dry_run,
        packages,
    };
    match args.output {
        ReportFormat::Text => super::out(&report.table(ctx.term.verbose() > 0))?,
        ReportFormat::Json => super::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report.to_json())?
        ))?,
    }
    Ok(if report.failed() {
        Outcome::Drift
    } else {
        Outcome::Clean
    })
}
