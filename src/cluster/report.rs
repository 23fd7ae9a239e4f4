//! What `kpin apply` did, per object: the final table for people and JSON for machines.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::Destination;
use crate::object::ObjectRef;

/// What happened to one object. A closed set: the table and JSON show exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Recreated,
    Pruned,
    /// Left in place by `--prune` because of the `kpin.dev/prune: keep` annotation.
    Kept,
    Failed,
    /// Not attempted because an earlier stage failed.
    Skipped,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Recreated => "recreated",
            Action::Pruned => "pruned",
            Action::Kept => "kept",
            Action::Failed => "failed",
            Action::Skipped => "skipped",
        }
    }

    /// Whether the object was (or, in a dry run, would be) changed.
    pub fn is_change(self) -> bool {
        match self {
            Action::Created | Action::Configured | Action::Recreated | Action::Pruned => true,
            Action::Unchanged | Action::Kept | Action::Failed | Action::Skipped => false,
        }
    }
}

/// The outcome for one object.
#[derive(Debug, Clone)]
pub struct ObjectResult {
    pub object: ObjectRef,
    pub action: Action,
    /// Why it failed, or a note (e.g. migrated from client-side apply), in one short line.
    pub message: Option<String>,
    pub hint: Option<String>,
    /// The server's whole answer when `message` shortened it (shown with `-v`).
    pub detail: Option<String>,
    /// It failed because the API server could not be reached: the objects after it are not
    /// sent.
    pub server_unreachable: bool,
}

impl ObjectResult {
    pub fn new(object: ObjectRef, action: Action) -> ObjectResult {
        ObjectResult {
            object,
            action,
            message: None,
            hint: None,
            detail: None,
            server_unreachable: false,
        }
    }
    pub fn with_message(mut self, message: impl Into<String>) -> ObjectResult {
        self.message = Some(message.into());
        self
    }
}

/// An object that was not ready when `--wait` gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    pub object: ObjectRef,
    pub reason: String,
}

/// One package's results.
#[derive(Debug, Clone)]
pub struct PackageResult {
    pub package: String,
    pub version: String,
    pub objects: Vec<ObjectResult>,
    pub not_ready: Vec<NotReady>,
}

impl PackageResult {
    pub fn failed(&self) -> bool {
        !self.not_ready.is_empty() || self.objects.iter().any(|o| o.action == Action::Failed)
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    pub target: Destination,
    pub dry_run: bool,
    pub packages: Vec<PackageResult>,
}

fn ref_json(r: &ObjectRef) -> Value {
    json!({"group": r.group, "kind": r.kind, "namespace": r.namespace, "name": r.name})
}

impl ApplyReport {
    pub fn failed(&self) -> bool {
        self.packages.iter().any(PackageResult::failed)
    }

    /// Counts per action, in `Action` order, for the summary line.
    pub fn counts(&self) -> Vec<(Action, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for o in self.packages.iter().flat_map(|p| &p.objects) {
            *counts.entry(o.action).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }

    /// The final table: one row per object, then failures with their reasons and hints (and,
    /// when `verbose`, the server's whole answer where the reason shortened it).
    pub fn table(&self, verbose: bool) -> String {
        let mut rows = vec![[
            "PACKAGE".to_owned(),
            "ACTION".to_owned(),
            "OBJECT".to_owned(),
        ]];
        for p in &self.packages {
            for o in &p.objects {
                rows.push([
                    p.package.clone(),
                    o.action.as_str().to_owned(),
                    o.object.to_string(),
                ]);
            }
        }
        let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
        let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
        let mut out = String::new();
        for r in &rows {
            let _ = writeln!(out, "{:<w0$}  {:<w1$}  {}", r[0], r[1], r[2]);
        }
        let summary: Vec<String> = self
            .counts()
            .iter()
            .map(|(a, n)| format!("{n} {}", a.as_str()))
            .collect();
        let prefix = if self.dry_run { "dry run: " } else { "" };
        let _ = writeln!(
            out,
            "\n{prefix}{}",
            if summary.is_empty() {
                "no objects".into()
            } else {
                summary.join(", ")
            }
        );
        for p in &self.packages {
            for o in p.objects.iter().filter(|o| o.message.is_some()) {
                let msg = o.message.as_deref().unwrap_or("");
                let _ = writeln!(
                    out,
                    "\n{} {} ({}): {msg}",
                    p.package,
                    o.object,
                    o.action.as_str()
                );
                if let Some(h) = &o.hint {
                    let _ = writeln!(out, "  hint: {h}");
                }
                if let Some(d) = o.detail.as_ref().filter(|_| verbose) {
                    let _ = writeln!(out, "  server said: {d}");
                }
            }
            if !p.not_ready.is_empty() {
                let _ = writeln!(out, "\n{}: not ready when the wait timed out:", p.package);
                for n in &p.not_ready {
                    let _ = writeln!(out, "  {}: {}", n.object, n.reason);
                }
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "target": self.target,
            "dryRun": self.dry_run,
            "failed": self.failed(),
            "packages": self.packages.iter().map(|p| json!({
                "name": p.package,
                "version": p.version,
                "objects": p.objects.iter().map(|o| json!({
                    "object": ref_json(&o.object),
                    "action": o.action.as_str(),
                    "message": o.message,
                    "hint": o.hint,
                    "detail": o.detail,
                })).collect::<Vec<_>>(),
                "notReady": p.not_ready.iter().map(|n| json!({
                    "object": ref_json(&n.object), "reason": n.reason,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}
