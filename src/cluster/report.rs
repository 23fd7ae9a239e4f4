//! What `kpin apply` did, per object: the final table for people and JSON for machines.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::admission::Refusal;
use super::connect::{Unreachable, causes};
use super::{Destination, api_status, immutable_fields, is_immutable};
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

const HINT_CONFLICT: &str = "three ways out: take the fields over with --force-conflicts; stop setting them in kpin \
(an overlay that removes them) so the other manager keeps them; or set kpin's value to the live one";
const HINT_IMMUTABLE: &str =
    "pass --recreate to delete and re-create it, or annotate it with kpin.dev/recreate: \"true\"";
/// Server messages longer than this are cut in the report (`-v` shows them whole): a 422 for a
/// Job's pod template carries a dump of the whole template.
const MESSAGE_MAX: usize = 300;

/// `text` cut to about `max` bytes on a character boundary, saying how long it was.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} characters; -v shows all)",
        &text[..end],
        text.len()
    )
}

/// A failed object with the server's reason in one short line and, where one helps, the way
/// out; the server's whole text is kept in `detail` for `-v`.
pub(crate) fn failure(object: ObjectRef, err: &kube::Error) -> ObjectResult {
    let mut r = ObjectResult::new(object, Action::Failed);
    match api_status(err) {
        Some(s) if s.code == 409 && s.details.as_ref().is_some_and(|d| !d.causes.is_empty()) => {
            let causes: Vec<String> = s
                .details
                .iter()
                .flat_map(|d| &d.causes)
                .map(|c| format!("{} ({})", c.field, c.message))
                .collect();
            r.message = Some(format!(
                "conflicts with other field managers: {}",
                causes.join("; ")
            ));
            r.hint = Some(HINT_CONFLICT.into());
        }
        Some(s) if is_immutable(err) => {
            let fields = immutable_fields(err);
            r.message = Some(if fields.is_empty() {
                "field is immutable".to_owned()
            } else {
                format!("{}: field is immutable", fields.join(", "))
            });
            r.hint = Some(HINT_IMMUTABLE.into());
            r.detail = Some(s.message.clone());
        }
        Some(s) if let Some(refusal) = Refusal::of(err) => {
            r.message = Some(refusal.message());
            r.hint = Some(refusal.hint());
            r.detail = Some(s.message.clone());
        }
        Some(s) => {
            r.message = Some(format!("{} ({})", shorten(&s.message, MESSAGE_MAX), s.code));
            if s.message.len() > MESSAGE_MAX {
                r.detail = Some(s.message.clone());
            }
        }
        None => match Unreachable::of(&causes(err), None) {
            Some(problem) => {
                r.server_unreachable = true;
                r.hint = Some(problem.hint());
                r.message = Some(format!("the API server could not be reached: {problem}"));
            }
            None => r.message = Some(err.to_string()),
        },
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The 422 a real kube-apiserver v1.36 answers for a changed Job template
    /// (../shared/apiserver-recordings/immutable-fields.json), its dump cut short.
    fn job_template_422() -> kube::Error {
        let dump = format!(
            "{{\"labels\":{{}},\"Spec\":{{{}}}}}",
            "\"Volumes\":null,".repeat(200)
        );
        kube::Error::Api(
            serde_json::from_value(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("Job.batch \"once\" is invalid: spec.template: Invalid value: {dump}: field is immutable"),
                "reason": "Invalid",
                "details": {"name": "once", "group": "batch", "kind": "Job", "causes": [
                    {"reason": "FieldValueInvalid", "message": format!("Invalid value: {dump}: field is immutable"), "field": "spec.template"}]},
                "code": 422}))
            .unwrap(),
        )
    }

    #[test]
    fn an_immutable_field_is_reported_in_one_short_line_with_the_server_text_kept() {
        let err = job_template_422();
        assert!(is_immutable(&err));
        assert_eq!(immutable_fields(&err), ["spec.template"]);
        let r = failure(
            ObjectRef {
                group: "batch".into(),
                kind: "Job".into(),
                namespace: Some("rec".into()),
                name: "once".into(),
            },
            &err,
        );
        assert_eq!(
            r.message.as_deref(),
            Some("spec.template: field is immutable")
        );
        assert_eq!(r.hint.as_deref(), Some(HINT_IMMUTABLE));
        assert!(r.detail.as_deref().unwrap().len() > 3000);
    }

    #[test]
    fn long_server_messages_are_cut_on_a_character_boundary() {
        let text = "é".repeat(400);
        let short = shorten(&text, MESSAGE_MAX);
        assert!(short.len() < 400 && short.ends_with("(800 characters; -v shows all)"));
        assert_eq!(shorten("short", MESSAGE_MAX), "short");
    }
}
