//! `kpin render --explain`: what every overlay changed, object by object.

use std::fmt::Write as _;

use crate::overlay::{Edit, Effect};

use super::RenderedPackage;

/// The reviewer's view: per changed object, which overlay operation changed which fields, and
/// a unified diff from upstream to rendered. Unchanged objects are counted, not shown.
pub fn explain(package: &RenderedPackage) -> String {
    let mut out = String::new();
    let title = match &package.env {
        Some(e) => format!("{} {} (environment {e})", package.name, package.version),
        None => format!("{} {}", package.name, package.version),
    };
    let _ = writeln!(out, "# {title}");
    let Some(history) = &package.explanation else {
        return out;
    };
    let mut unchanged = 0;
    for t in history {
        if t.effects.is_empty() {
            unchanged += 1;
            continue;
        }
        let removed = t.effects.iter().any(|c| c.edit == Edit::Removed);
        let shown = if removed {
            t.upstream.as_ref().unwrap_or(&t.object)
        } else {
            &t.object
        };
        let _ = writeln!(out, "\n## {}", shown.reference());
        if let Some(up) = &t.upstream
            && up.reference() != t.object.reference()
        {
            let _ = writeln!(out, "upstream: {}", up.reference());
        }
        for Effect { origin, edit } in &t.effects {
            let what = match edit {
                Edit::Added => "added".to_owned(),
                Edit::Removed => "removed".to_owned(),
                Edit::Modified(paths) => paths.join(", "),
            };
            let _ = writeln!(out, "- {origin}: {what}");
        }
        let after = (!removed).then_some(&t.object.0);
        let upstream = t.upstream.as_ref().map(|o| &o.0);
        out.push_str(&crate::changes::yaml_diff(
            upstream,
            after,
            ("upstream", "rendered"),
            3,
        ));
    }
    let _ = writeln!(out, "\n{unchanged} object(s) unchanged");
    out
}
