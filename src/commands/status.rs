//! `kpin status`: render every selected environment offline (errors stop before any request),
//! then check each environment's cluster at the same time, and print the matrix. One cluster
//! that cannot be reached is reported in its column; the others are still checked.

use std::collections::BTreeMap;

use anyhow::Result;
use kpin::cluster::status::{self, EnvironmentStatus, Expected, StatusReport, Unchecked};
use kpin::error::{HintExt as _, Outcome};
use kpin::manifest::{DEFAULT_ENV, Manifest};
use kpin::progress::Reporter as _;
use kpin::render;
use kpin::vendoring::lockfile::Lockfile;

use super::Ctx;
use super::apply::{Plan, connect, render_plan};
use crate::cli::{ClusterArgs, DiffFormat, StatusArgs};

/// Why a cluster could not be checked, and what to look at.
const UNREACHABLE_HINT: &str = "check the cluster's address in the kubeconfig, the network (HTTPS_PROXY) and the VPN; the other environments were still checked";
const FAILED_HINT: &str = "check the context's credentials (exec plugins such as `aws eks get-token` must run here) and that they may read ConfigMaps";

pub async fn run(ctx: &Ctx<'_>, args: StatusArgs) -> Result<Outcome> {
    let manifest = ctx.checked_manifest(&args.lock)?;
    let envs = environments(&manifest, &args.env)?;
    let lock = Lockfile::load(&manifest.lock_path())?;
    if lock.is_none() {
        ctx.term.warn(
            "there is no kpin.lock: every environment is compared with the working tree's render",
        );
    }
    let mut plans = Vec::with_capacity(envs.len());
    let mut warnings = Vec::new();
    manifest.select(&args.packages)?;
    for env in &envs {
        // A package named but not installed in this environment shows as `-` there.
        let named: Vec<String> = args
            .packages
            .iter()
            .filter(|n| manifest.packages[*n].installed_in(env.as_deref()))
            .cloned()
            .collect();
        let plan = if named.is_empty() && !args.packages.is_empty() {
            Plan {
                env: env.clone(),
                manifest: manifest.clone(),
                packages: Vec::new(),
            }
        } else {
            render_plan(manifest.clone(), &named, env.as_deref())?
        };
        for (rendered, _) in &plan.packages {
            for w in &rendered.warnings {
                let w = format!("{}: {w}", rendered.name);
                if !warnings.contains(&w) {
                    ctx.term.warn(&w);
                    warnings.push(w);
                }
            }
        }
        plans.push(plan);
    }
    let cluster_args = ClusterArgs {
        kubeconfig: args.kubeconfig.clone(),
        context: None,
        request_timeout: args.request_timeout,
    };
    let checks = plans.iter().map(|plan| async {
        let name = plan.env.clone().unwrap_or_else(|| DEFAULT_ENV.to_owned());
        let expected = expected(lock.as_ref(), plan);
        let cluster = match connect(ctx, &cluster_args, plan).await {
            Ok(c) => c,
            Err(err) => return unchecked(name, None, &err),
        };
        let target = Some(cluster.target.clone());
        match status::read_cluster(&cluster, &plan.selected(), &expected, &args.field_manager).await
        {
            Ok(packages) => EnvironmentStatus {
                name,
                target,
                packages: Ok(packages),
            },
            Err(err) => unchecked(name, target, &err),
        }
    });
    let report = StatusReport {
        packages: plans
            .first()
            .map(|p| p.packages.iter().map(|(r, _)| r.name.clone()).collect())
            .unwrap_or_default(),
        environments: futures::future::join_all(checks).await,
    };
    match args.output {
        DiffFormat::Text => super::out(&report.table())?,
        DiffFormat::Json => super::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report.to_json())?
        ))?,
        DiffFormat::Markdown => super::out(&report.to_markdown())?,
    }
    if report.incomplete() {
        return Err(anyhow::anyhow!(
            "some environments or packages could not be checked (see above)"
        ))
        .hint("the matrix shows every environment that answered");
    }
    Ok(if report.differs() {
        Outcome::Drift
    } else {
        Outcome::Clean
    })
}

/// The environments to check: those named, else all, in promotion order (then by name);
/// without environments, the current context as `default`.
fn environments(manifest: &Manifest, named: &[String]) -> Result<Vec<Option<String>>> {
    if !named.is_empty() {
        for env in named {
            manifest.environment(env)?;
        }
        return Ok(named.iter().cloned().map(Some).collect());
    }
    if manifest.environments.is_empty() {
        return Ok(vec![None]);
    }
    let mut order: Vec<Option<String>> = manifest.promotion.iter().cloned().map(Some).collect();
    for env in manifest.environments.keys() {
        if !manifest.promotion.contains(env) {
            order.push(Some(env.clone()));
        }
    }
    Ok(order)
}

/// What kpin.lock records for each package in the plan's environment; without a lock, the
/// working tree's render.
fn expected(lock: Option<&Lockfile>, plan: &Plan) -> BTreeMap<String, Expected> {
    let env = plan.env.as_deref().unwrap_or(DEFAULT_ENV);
    plan.packages
        .iter()
        .filter_map(|(rendered, _)| {
            let expected = match lock {
                Some(lock) => {
                    let entry = lock.packages.get(&rendered.name)?;
                    Expected {
                        version: entry.environments.get(env)?.clone(),
                        rendered_digest: entry.rendered.get(env).cloned(),
                    }
                }
                None => Expected {
                    version: rendered.version.clone(),
                    rendered_digest: Some(render::rendered_digest(&rendered.objects)),
                },
            };
            Some((rendered.name.clone(), expected))
        })
        .collect()
}

fn unchecked(
    name: String,
    target: Option<kpin::cluster::Destination>,
    err: &anyhow::Error,
) -> EnvironmentStatus {
    let why = Unchecked::of(err);
    let hint = match why {
        Unchecked::Unreachable => UNREACHABLE_HINT,
        Unchecked::Failed => kpin::error::hint_of(err).unwrap_or(FAILED_HINT),
    };
    let mut message = kpin::error::summary(err);
    if let Some(t) = &target {
        message = format!("{t}: {message}");
    }
    EnvironmentStatus {
        name,
        target,
        packages: Err((why, message, Some(hint.to_owned()))),
    }
}
