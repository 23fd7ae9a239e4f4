//! Reports of changes: titled sections and their text, JSON and markdown renderers.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::style::{Style, paint};

use super::{Change, Counts, DiffOptions, FieldChange, ObjectChange};

/// How each changed object is detailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Field-level changes (and CRD summaries): the upstream view of an upgrade.
    Fields,
    /// Unified YAML diff per object: the rendered view.
    Unified,
}

/// A titled group of object changes: one package of a `diff --base`, or one view (upstream,
/// rendered) of an upgrade. Every renderer works on a list of these.
#[derive(Debug, Clone)]
pub struct Section {
    /// Package name (the summary table's first column).
    pub package: String,
    /// What this section shows, e.g. `upstream changes`; empty for a plain package diff.
    pub title: String,
    pub version_before: Option<String>,
    pub version_after: Option<String>,
    /// Facts for the reviewer, e.g. `overlay changed: overlays/x.yaml`.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    pub changes: Vec<ObjectChange>,
    pub detail: Detail,
}

impl Section {
    pub fn version_text(&self, arrow: &str) -> String {
        match (&self.version_before, &self.version_after) {
            (Some(a), Some(b)) if a == b => a.clone(),
            (Some(a), Some(b)) => format!("{a} {arrow} {b}"),
            (None, Some(b)) => format!("(new) {b}"),
            (Some(a), None) => format!("{a} (removed)"),
            (None, None) => String::new(),
        }
    }

    fn heading(&self, arrow: &str) -> String {
        let mut h = self.package.clone();
        let v = self.version_text(arrow);
        if !v.is_empty() {
            h.push(' ');
            h.push_str(&v);
        }
        if !self.title.is_empty() {
            h.push_str(": ");
            h.push_str(&self.title);
        }
        h
    }

    pub fn counts(&self) -> Counts {
        Counts::of(&self.changes)
    }
}

fn paint_diff_line(color: bool, line: &str) -> String {
    match line.as_bytes().first() {
        _ if !color => line.to_owned(),
        _ if line.starts_with("+++") || line.starts_with("---") => paint(true, Style::Bold, line),
        Some(b'+') => paint(true, Style::Added, line),
        Some(b'-') => paint(true, Style::Removed, line),
        Some(b'@') => paint(true, Style::Hunk, line),
        _ => line.to_owned(),
    }
}

/// Lines detailing one change in `Detail::Fields` mode.
fn field_lines(change: &ObjectChange, options: &DiffOptions) -> Vec<String> {
    let mut out = Vec::new();
    let crd = change.crd_summary();
    if let Some(summary) = &crd {
        out.extend(summary.lines(25));
    }
    if change.change != Change::Changed {
        return out;
    }
    let fields = change.field_changes(options);
    let (schema, other): (Vec<_>, Vec<_>) = fields
        .into_iter()
        .partition(|f| crd.is_some() && f.path.starts_with("spec.versions["));
    out.extend(other.iter().map(FieldChange::to_string));
    if !schema.is_empty() {
        out.push(format!(
            "{} other schema detail(s) changed (descriptions, validation)",
            schema.len()
        ));
    }
    out
}

/// Plain text (optionally coloured) report: one block per section.
pub fn to_text(sections: &[Section], options: &DiffOptions) -> String {
    let mut out = String::new();
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let counts = section.counts();
        let _ = writeln!(
            out,
            "{}",
            paint(
                options.color,
                Style::Bold,
                &format!("{} ({counts})", section.heading("->"))
            )
        );
        for note in &section.notes {
            let _ = writeln!(out, "  {note}");
        }
        for warning in &section.warnings {
            let _ = writeln!(
                out,
                "  {} {warning}",
                paint(options.color, Style::Warning, "warning:")
            );
        }
        for change in section
            .changes
            .iter()
            .filter(|c| c.change != Change::Unchanged)
        {
            let style = match change.change {
                Change::Added => Style::Added,
                Change::Removed => Style::Removed,
                Change::Changed | Change::Unchanged => Style::Changed,
            };
            let _ = writeln!(
                out,
                "  {}",
                paint(
                    options.color,
                    style,
                    &format!("{} {}", change.change.symbol(), change.reference)
                )
            );
            match section.detail {
                Detail::Fields => {
                    for line in field_lines(change, options) {
                        let _ = writeln!(out, "      {line}");
                    }
                }
                Detail::Unified => {
                    for line in change.unified_diff(options).lines() {
                        let _ = writeln!(out, "    {}", paint_diff_line(options.color, line));
                    }
                }
            }
        }
    }
    out
}

/// Machine-readable report. Unchanged objects are counted, not listed.
pub fn to_json(sections: &[Section], options: &DiffOptions) -> Value {
    let sections: Vec<Value> = sections
        .iter()
        .map(|s| {
            let c = s.counts();
            let objects: Vec<Value> = s
                .changes
                .iter()
                .filter(|c| c.change != Change::Unchanged)
                .map(|c| object_json(c, s.detail, options))
                .collect();
            json!({
                "package": s.package,
                "title": s.title,
                "version": {"before": s.version_before, "after": s.version_after},
                "notes": s.notes,
                "warnings": s.warnings,
                "summary": {"added": c.added, "changed": c.changed, "removed": c.removed, "unchanged": c.unchanged},
                "objects": objects,
            })
        })
        .collect();
    json!({ "sections": sections })
}

fn object_json(change: &ObjectChange, detail: Detail, options: &DiffOptions) -> Value {
    let r = &change.reference;
    let mut obj = json!({
        "group": r.group,
        "kind": r.kind,
        "namespace": r.namespace,
        "name": r.name,
        "change": change.change.as_str(),
    });
    let Value::Object(map) = &mut obj else {
        return obj;
    };
    match detail {
        Detail::Fields => {
            let fields: Vec<Value> = change
                .field_changes(options)
                .into_iter()
                .map(|f| json!({"path": f.path, "change": f.change.as_str(), "before": f.before, "after": f.after}))
                .collect();
            map.insert("fields".into(), Value::Array(fields));
            if let Some(crd) = change.crd_summary() {
                map.insert("crd".into(), crd.to_json());
            }
        }
        Detail::Unified => {
            map.insert("diff".into(), Value::String(change.unified_diff(options)));
        }
    }
    obj
}

/// Limits that keep a markdown report postable as one pull-request comment.
#[derive(Debug, Clone, Copy)]
pub struct MarkdownLimits {
    /// GitHub rejects comments over 65536 characters; stop adding diffs before that.
    pub max_chars: usize,
    /// Longer per-object diffs are cut.
    pub max_lines_per_object: usize,
}

impl Default for MarkdownLimits {
    fn default() -> Self {
        MarkdownLimits {
            max_chars: 60_000,
            max_lines_per_object: 400,
        }
    }
}

/// A pull-request comment: a summary table, notes and warnings per package, and one collapsible
/// block per changed object. `title` becomes the top heading and `preamble` (markdown, e.g.
/// validation findings) follows it; `rerun` is the command printed when diffs had to be left
/// out for size.
pub fn to_markdown(
    title: &str,
    preamble: &str,
    sections: &[Section],
    options: &DiffOptions,
    limits: MarkdownLimits,
    rerun: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {title}\n");
    out.push_str(preamble);
    if sections.is_empty() {
        out.push_str("No packages.\n");
        return out;
    }
    out.push_str("| Package | Version | Added | Changed | Removed | Unchanged |\n");
    out.push_str("|---|---|--:|--:|--:|--:|\n");
    for s in sections {
        let c = s.counts();
        let name = if s.title.is_empty() {
            format!("`{}`", s.package)
        } else {
            format!("`{}` ({})", s.package, s.title)
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            md_escape(&s.version_text("→")),
            c.added,
            c.changed,
            c.removed,
            c.unchanged
        );
    }
    let mut omitted = 0usize;
    for s in sections {
        if !s.counts().any() && s.notes.is_empty() && s.warnings.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n### {}\n", md_escape(&s.heading("→")));
        for note in &s.notes {
            let _ = writeln!(out, "- {}", md_escape(note));
        }
        if !s.notes.is_empty() {
            out.push('\n');
        }
        if !s.warnings.is_empty() {
            out.push_str("> [!WARNING]\n");
            for w in &s.warnings {
                let _ = writeln!(out, "> - {}", md_escape(w));
            }
            out.push('\n');
        }
        if !s.counts().any() {
            out.push_str("No object changes.\n");
            continue;
        }
        for change in s.changes.iter().filter(|c| c.change != Change::Unchanged) {
            let body = match s.detail {
                Detail::Fields => field_lines(change, options).join("\n") + "\n",
                Detail::Unified => change.unified_diff(options),
            };
            if body.trim().is_empty() {
                let _ = writeln!(out, "- `{} {}`", change.change.symbol(), change.reference);
                continue;
            }
            let body = cut_lines(&body, limits.max_lines_per_object);
            let summary = format!(
                "<details><summary><code>{} {}</code></summary>\n\n",
                change.change.symbol(),
                html_escape(&change.reference.to_string())
            );
            let fence = fence_for(&body);
            let block = format!("{summary}{fence}diff\n{body}{fence}\n\n</details>\n");
            if out.len() + block.len() > limits.max_chars {
                omitted += 1;
                let _ = writeln!(
                    out,
                    "- `{} {}` (diff omitted)",
                    change.change.symbol(),
                    change.reference
                );
            } else {
                out.push_str(&block);
            }
        }
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "\n_{omitted} diff(s) left out to stay within the comment size limit; run `{rerun}` to see them._"
        );
    }
    out
}

/// A code fence longer than any run of backticks in `body` (at least three), so an object that
/// carries markdown itself (a README in a ConfigMap) cannot end the block early.
pub(super) fn fence_for(body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

fn cut_lines(text: &str, max: usize) -> String {
    let total = text.lines().count();
    if total <= max {
        return text.to_owned();
    }
    let mut out: String = text.lines().take(max).flat_map(|l| [l, "\n"]).collect();
    let _ = writeln!(out, "... {} more line(s)", total - max);
    out
}

/// Text safe in a table cell or list item: no cell breaks, no HTML tags.
fn md_escape(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
