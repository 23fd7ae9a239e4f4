//! What runs where: per environment, each package's ApplySet parent says which version and
//! render the last complete apply left ([`Deployed`]); compared with what kpin.lock records for
//! that environment, and, where the cluster runs exactly the render at hand, a server-side dry
//! run ([`diff::diff_all`]) tells whether anything kpin applied changed since (drift).
//! Renderers: the matrix as text, JSON and markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use serde_json::{Value, json};

use super::applyset::{self, Deployed};
use super::package::{self, Selected, prepare_package, read_parent};
use super::prune::PruneOptions;
use super::{Cluster, ClusterError, Destination, diff};
use crate::changes::Change;
use crate::object::ObjectRef;
use crate::render;

/// What kpin.lock says an environment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub version: String,
    /// `None` when the lock records no render (its overlays did not match when it was written).
    pub rendered_digest: Option<String>,
}

/// One package in one environment. A closed set: the matrix shows exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// The cluster runs what kpin.lock records, and nothing kpin applied changed.
    InSync,
    /// It runs what kpin.lock records, but objects kpin applied changed or went.
    Drift,
    /// It runs another version or render than kpin.lock records (or the lock has none).
    Differs,
    /// No ApplySet parent: never applied here.
    NotDeployed,
    /// A parent that records no version: written by an older kpin, or no apply completed.
    Unrecorded,
    /// The package could not be checked (e.g. its parent belongs to another tool).
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::InSync => "in-sync",
            State::Drift => "drift",
            State::Differs => "differs",
            State::NotDeployed => "not-deployed",
            State::Unrecorded => "unrecorded",
            State::Failed => "error",
        }
    }
}

/// The status of one package in one environment.
#[derive(Debug, Clone)]
pub struct PackageStatus {
    pub package: String,
    pub state: State,
    pub expected: Option<Expected>,
    pub deployed: Option<Deployed>,
    /// The kpin that last wrote the parent (`kpin/0.1.0`).
    pub tooling: Option<String>,
    /// Objects that differ from what kpin applied; `None` when not measured, because the
    /// cluster runs another render than the one at hand.
    pub drift: Option<Vec<(ObjectRef, Change)>>,
    /// Why the package could not be checked.
    pub error: Option<String>,
    /// The parent ConfigMap, `namespace/name`.
    pub parent: String,
}

impl PackageStatus {
    /// Whether the parent's record is what the lock expects.
    pub fn matches_lock(&self) -> bool {
        matches!((&self.deployed, &self.expected), (Some(d), Some(e))
            if d.version == e.version && e.rendered_digest.as_deref() == Some(d.rendered_digest.as_str()))
    }
}

/// Check every selected package in one cluster. Errors that concern the cluster as a whole
/// (unreachable, credentials, permissions) are `Err`; a package whose parent another tool owns
/// is reported as `Failed` and the others are still checked.
pub async fn read_cluster(
    cluster: &Cluster,
    packages: &[Selected<'_>],
    expected: &BTreeMap<String, Expected>,
    field_manager: &str,
) -> Result<Vec<PackageStatus>> {
    let custom = package::custom_kinds(packages.iter().flat_map(|p| &p.rendered.objects));
    let mut out = Vec::with_capacity(packages.len());
    let mut measured: Vec<(usize, Selected<'_>)> = Vec::new();
    for p in packages {
        let name = &p.rendered.name;
        let prepared = prepare_package(cluster, p.rendered, p.namespace, &custom).await;
        let parent = format!("{}/{}", prepared.parent.namespace, prepared.parent.name);
        let mut status = PackageStatus {
            package: name.clone(),
            state: State::Failed,
            expected: expected.get(name).cloned(),
            deployed: None,
            tooling: None,
            drift: None,
            error: None,
            parent,
        };
        match read_parent(cluster, name, &prepared.parent).await {
            Ok(state) => {
                status.tooling = state.live.as_ref().and_then(applyset::tooling);
                status.deployed = state.deployed;
                status.state = match (&state.live, &status.deployed) {
                    (None, _) => State::NotDeployed,
                    (Some(_), None) => State::Unrecorded,
                    (Some(_), Some(_)) if status.matches_lock() => State::InSync,
                    (Some(_), Some(_)) => State::Differs,
                };
            }
            Err(err) if crate::error::find_cause::<ClusterError>(&err).is_some() => {
                status.error = Some(crate::error::summary(&err));
            }
            Err(err) => return Err(err),
        }
        // A dry run against the render at hand measures drift only where that render is what
        // the cluster runs; otherwise it would show the pending change, not drift.
        let runs_this_render = status
            .deployed
            .as_ref()
            .is_some_and(|d| d.rendered_digest == render::rendered_digest(&p.rendered.objects));
        if status.state == State::InSync && runs_this_render {
            measured.push((out.len(), *p));
        }
        out.push(status);
    }
    if !measured.is_empty() {
        let selected: Vec<Selected<'_>> = measured.iter().map(|(_, s)| *s).collect();
        let sections =
            diff::diff_all(cluster, &selected, field_manager, &PruneOptions::default()).await?;
        for ((i, _), section) in measured.iter().zip(sections) {
            let drift: Vec<(ObjectRef, Change)> = section
                .changes
                .into_iter()
                .filter(|c| c.change != Change::Unchanged)
                .map(|c| (c.reference, c.change))
                .collect();
            if !drift.is_empty() {
                out[*i].state = State::Drift;
            }
            out[*i].drift = Some(drift);
        }
    }
    Ok(out)
}

/// Why an environment could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unchecked {
    /// No answer from the API server (connection refused, DNS, TLS, timeouts).
    Unreachable,
    /// It answered, or kpin did not get that far: credentials, permissions, kubeconfig.
    Failed,
}

impl Unchecked {
    /// Classify the error of an environment's check.
    pub fn of(err: &anyhow::Error) -> Unchecked {
        match crate::error::find_cause::<kube::Error>(err) {
            Some(kube::Error::HyperError(_) | kube::Error::Service(_)) => Unchecked::Unreachable,
            _ => Unchecked::Failed,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Unchecked::Unreachable => "unreachable",
            Unchecked::Failed => "error",
        }
    }
}

/// One environment (column) of the matrix.
#[derive(Debug, Clone)]
pub struct EnvironmentStatus {
    /// The environment's name; `default` without environments.
    pub name: String,
    /// The cluster, once its context was resolved.
    pub target: Option<Destination>,
    pub packages: Result<Vec<PackageStatus>, (Unchecked, String, Option<String>)>,
}

/// The whole matrix.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// Rows, in order.
    pub packages: Vec<String>,
    /// Columns, in order.
    pub environments: Vec<EnvironmentStatus>,
}

impl EnvironmentStatus {
    /// The table cell of `package` in this environment.
    fn cell(&self, package: &str) -> String {
        let statuses = match &self.packages {
            Ok(p) => p,
            Err((why, ..)) => return why.as_str().to_owned(),
        };
        let Some(p) = statuses.iter().find(|p| p.package == package) else {
            return "-".to_owned();
        };
        let version = p.deployed.as_ref().map_or("", |d| d.version.as_str());
        match p.state {
            State::InSync => format!("{version} in sync"),
            State::Drift => {
                let n = p.drift.as_ref().map_or(0, Vec::len);
                format!("{version} drift ({n})")
            }
            State::Differs => match &p.expected {
                Some(e) if e.version != version => format!("{version} (lock {})", e.version),
                Some(_) => format!("{version} (lock: other render)"),
                None => format!("{version} (not locked)"),
            },
            State::NotDeployed => "not deployed".to_owned(),
            State::Unrecorded => "unrecorded".to_owned(),
            State::Failed => "error".to_owned(),
        }
    }
}

impl StatusReport {
    /// Something runs other than kpin.lock says, drifted, or is not deployed (exit 1).
    pub fn differs(&self) -> bool {
        self.environments.iter().any(|e| match &e.packages {
            Ok(p) => p.iter().any(|p| p.state != State::InSync),
            Err(_) => false,
        })
    }

    /// Some environment or package could not be checked (exit 2, which wins over 1).
    pub fn incomplete(&self) -> bool {
        self.environments.iter().any(|e| match &e.packages {
            Ok(p) => p.iter().any(|p| p.state == State::Failed),
            Err(_) => true,
        })
    }

    /// What each cell that is not in sync means, one fact per line.
    fn details(&self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for env in &self.environments {
            let name = &env.name;
            let statuses = match &env.packages {
                Ok(p) => p,
                Err((why, message, hint)) => {
                    out.push((format!("{name}: {}: {message}", why.as_str()), hint.clone()));
                    continue;
                }
            };
            for p in statuses {
                let at = format!("{name} {}", p.package);
                let line = match p.state {
                    State::InSync if p.drift.is_none() => Some(format!(
                        "{at}: drift not measured: the working tree renders {} otherwise than what runs (run `kpin sync`)",
                        p.package
                    )),
                    State::InSync => None,
                    State::Drift => {
                        let objects: Vec<String> = p
                            .drift
                            .iter()
                            .flatten()
                            .map(|(r, c)| {
                                let what = match c {
                                    Change::Added => "missing from the cluster",
                                    Change::Removed => "no longer rendered, still in the cluster",
                                    _ => "changed in the cluster",
                                };
                                format!("\n  {} {r} ({what})", c.symbol())
                            })
                            .collect();
                        Some(format!(
                            "{at}: drift: differs from what kpin applied:{}",
                            objects.concat()
                        ))
                    }
                    State::Differs => {
                        let runs = p
                            .deployed
                            .as_ref()
                            .map(|d| format!("{} ({})", d.version, d.rendered_digest))
                            .unwrap_or_default();
                        Some(match &p.expected {
                            Some(e) => format!(
                                "{at}: runs {runs}; kpin.lock has {} ({}) for {name}",
                                e.version,
                                e.rendered_digest.as_deref().unwrap_or("no render digest")
                            ),
                            None => format!("{at}: runs {runs}; kpin.lock has no entry for it"),
                        })
                    }
                    State::NotDeployed => Some(format!(
                        "{at}: not deployed (no ApplySet parent ConfigMap {})",
                        p.parent
                    )),
                    State::Unrecorded => Some(format!(
                        "{at}: the ApplySet parent ConfigMap {} records no version (written by {}); the next `kpin apply` records it",
                        p.parent,
                        p.tooling.as_deref().unwrap_or("another kpin")
                    )),
                    State::Failed => Some(format!(
                        "{at}: {}",
                        p.error.as_deref().unwrap_or("could not be checked")
                    )),
                };
                out.extend(line.map(|l| (l, None)));
            }
        }
        out
    }

    /// The matrix for people: one row per package, one column per environment, then what each
    /// cell that is not in sync means.
    pub fn table(&self) -> String {
        let mut rows = vec![
            std::iter::once("PACKAGE".to_owned())
                .chain(self.environments.iter().map(|e| e.name.clone()))
                .collect::<Vec<_>>(),
        ];
        for package in &self.packages {
            rows.push(
                std::iter::once(package.clone())
                    .chain(self.environments.iter().map(|e| e.cell(package)))
                    .collect(),
            );
        }
        let mut out = crate::table::aligned(&rows);
        let details = self.details();
        if !details.is_empty() {
            out.push('\n');
        }
        for (line, hint) in details {
            let _ = writeln!(out, "{line}");
            if let Some(h) = hint {
                let _ = writeln!(out, "  hint: {h}");
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let environments: Vec<Value> = self
            .environments
            .iter()
            .map(|e| {
                let (packages, error) = match &e.packages {
                    Ok(p) => (p.iter().map(package_json).collect(), Value::Null),
                    Err((why, message, hint)) => (
                        Vec::new(),
                        json!({"kind": why.as_str(), "message": message, "hint": hint}),
                    ),
                };
                json!({
                    "name": e.name,
                    "target": e.target,
                    "error": error,
                    "packages": packages,
                })
            })
            .collect();
        json!({
            "differs": self.differs(),
            "complete": !self.incomplete(),
            "environments": environments,
        })
    }

    /// A comment for a pull request, an issue or a chat: the matrix and its details.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("## kpin status\n\n");
        let header: Vec<String> = self
            .environments
            .iter()
            .map(|e| md(&e.name).clone())
            .collect();
        let _ = writeln!(out, "| Package | {} |", header.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(self.environments.len()));
        for package in &self.packages {
            let cells: Vec<String> = self
                .environments
                .iter()
                .map(|e| {
                    let mark = match &e.packages {
                        Err(_) => "❌",
                        Ok(p) => match p.iter().find(|p| p.package == *package).map(|p| p.state) {
                            Some(State::InSync) => "✅",
                            Some(State::Failed) | None => "❌",
                            Some(_) => "⚠️",
                        },
                    };
                    format!("{mark} {}", md(&e.cell(package)))
                })
                .collect();
            let _ = writeln!(out, "| `{package}` | {} |", cells.join(" | "));
        }
        let details = self.details();
        if !details.is_empty() {
            out.push('\n');
        }
        for (line, hint) in details {
            let mut lines = line.lines();
            let _ = writeln!(out, "- {}", md(lines.next().unwrap_or_default()));
            for more in lines {
                let _ = writeln!(out, "  - `{}`", more.trim());
            }
            if let Some(h) = hint {
                let _ = writeln!(out, "  - hint: {}", md(&h));
            }
        }
        out
    }
}

fn md(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;")
}

fn package_json(p: &PackageStatus) -> Value {
    json!({
        "package": p.package,
        "state": p.state.as_str(),
        "matchesLock": p.matches_lock(),
        "deployed": p.deployed,
        "tooling": p.tooling,
        "lock": p.expected.as_ref().map(|e| json!({"version": e.version, "renderedDigest": e.rendered_digest})),
        "drift": p.drift.as_ref().map(|d| d.iter().map(|(r, c)| json!({
            "group": r.group, "kind": r.kind, "namespace": r.namespace, "name": r.name, "change": c.as_str(),
        })).collect::<Vec<_>>()),
        "parent": p.parent,
        "error": p.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(package: &str, state: State, deployed: &str, locked: &str) -> PackageStatus {
        PackageStatus {
            package: package.into(),
            state,
            expected: Some(Expected {
                version: locked.into(),
                rendered_digest: Some("sha256:l".into()),
            }),
            deployed: Some(Deployed {
                version: deployed.into(),
                environment: "dev".into(),
                rendered_digest: "sha256:d".into(),
            }),
            tooling: Some("kpin/0.1.0".into()),
            drift: Some(Vec::new()),
            error: None,
            parent: format!("ns/kpin-{package}"),
        }
    }

    fn report() -> StatusReport {
        StatusReport {
            packages: vec!["a".into(), "b".into()],
            environments: vec![
                EnvironmentStatus {
                    name: "dev".into(),
                    target: None,
                    packages: Ok(vec![
                        status("a", State::InSync, "1.1.0", "1.1.0"),
                        status("b", State::Differs, "1.0.0", "2.0.0"),
                    ]),
                },
                EnvironmentStatus {
                    name: "prod".into(),
                    target: None,
                    packages: Err((Unchecked::Unreachable, "connection refused".into(), None)),
                },
            ],
        }
    }

    #[test]
    fn the_matrix_has_a_row_per_package_and_a_column_per_environment() {
        let r = report();
        assert_eq!(
            r.table(),
            "PACKAGE  dev                 prod\n\
             a        1.1.0 in sync       unreachable\n\
             b        1.0.0 (lock 2.0.0)  unreachable\n\
             \n\
             dev b: runs 1.0.0 (sha256:d); kpin.lock has 2.0.0 (sha256:l) for dev\n\
             prod: unreachable: connection refused\n"
        );
        assert!(r.differs() && r.incomplete());
        let md = r.to_markdown();
        assert!(
            md.contains("| `b` | ⚠️ 1.0.0 (lock 2.0.0) | ❌ unreachable |"),
            "{md}"
        );
        let json = r.to_json();
        assert_eq!(json["environments"][0]["packages"][1]["state"], "differs");
        assert_eq!(json["environments"][1]["error"]["kind"], "unreachable");
    }
}
