//! Error vocabulary shared by every module: exit codes, hints, and the errors callers branch on.

use std::fmt::{self, Write as _};

/// How the process exits, as documented in the README (`std::process::ExitCode` is the number
/// `main` returns for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything is as it should be.
    Ok = 0,
    /// Drift: an out-of-date lockfile, a diff with changes, outdated packages, failed verification.
    Drift = 1,
    /// Usage, configuration, network or I/O error.
    Error = 2,
}

/// What a command reports when it finished without an error: clean, or drift found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    Drift,
}

impl Outcome {
    pub fn exit_code(self) -> Exit {
        match self {
            Outcome::Clean => Exit::Ok,
            Outcome::Drift => Exit::Drift,
        }
    }

    /// Drift if either side has drift.
    pub fn and(self, other: Outcome) -> Outcome {
        if self == Outcome::Drift || other == Outcome::Drift {
            Outcome::Drift
        } else {
            Outcome::Clean
        }
    }
}

/// An error that means "the inputs are valid but out of date" (exit 1), e.g. `sync --locked`
/// on a lockfile that would change. Everything else exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DriftError {
    pub message: String,
}

impl DriftError {
    /// The `anyhow::Error` for drift described by `message`.
    pub fn error(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(DriftError {
            message: message.into(),
        })
    }
}

/// Wraps an error with a hint that the CLI prints after the cause chain.
///
/// It displays as the wrapped error and forwards `source()`, so the chain printed by the CLI
/// is unchanged; only the `hint:` line is added.
pub struct Hinted {
    inner: anyhow::Error,
    hint: String,
}

impl Hinted {
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl fmt::Debug for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (hint: {})", self.inner, self.hint)
    }
}

/// Whether `err`, or an error in its chain, is an `E`, looking through hints (a `Hinted`
/// forwards `source()` past the error it wraps, so the chain alone does not show it).
pub fn is<E: std::error::Error + Send + Sync + 'static>(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.is::<E>()
            || e.downcast_ref::<Hinted>()
                .is_some_and(|h| is::<E>(&h.inner))
    })
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

/// Attach a hint to an error (`anyhow::Error` or `Result`).
pub trait HintExt<T> {
    fn hint(self, hint: impl Into<String>) -> T;
}

impl HintExt<anyhow::Error> for anyhow::Error {
    fn hint(self, hint: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Hinted {
            inner: self,
            hint: hint.into(),
        })
    }
}

impl<T, E: Into<anyhow::Error>> HintExt<anyhow::Result<T>> for Result<T, E> {
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| e.into().hint(hint))
    }
}

/// The exit code for an error that reached `main`.
pub fn exit_code_for(err: &anyhow::Error) -> Exit {
    if find_cause::<DriftError>(err).is_some() {
        Exit::Drift
    } else {
        Exit::Error
    }
}

/// The first error of type `T` in the chain, also inside `Hinted` (whose `source()` skips its
/// inner error), so callers can branch on typed errors that carry a hint.
pub fn find_cause<T: std::error::Error + Send + Sync + 'static>(err: &anyhow::Error) -> Option<&T> {
    if let Some(found) = err.downcast_ref::<T>() {
        return Some(found);
    }
    err.chain().find_map(|e| {
        e.downcast_ref::<T>().or_else(|| {
            e.downcast_ref::<Hinted>()
                .and_then(|h| find_cause(&h.inner))
        })
    })
}

/// The hint attached anywhere in an error's chain, if any.
pub fn hint_of(err: &anyhow::Error) -> Option<&str> {
    err.chain()
        .find_map(|e| e.downcast_ref::<Hinted>())
        .map(Hinted::hint)
}

/// How many characters of a value from the user's files a message quotes: enough to recognise
/// it, never a whole file (a 10 MB `version` must not put 10 MB on stderr).
pub const QUOTE_CHARS: usize = 60;

/// Longest line of one cause that the CLI prints, for messages that quote a value without
/// `quote` (library errors); longer lines are cut with their length.
pub const LINE_CHARS: usize = 1000;

/// A value from kpin.yaml, an overlay or the lockfile as messages quote it: in backticks,
/// control characters escaped, and cut to its first `QUOTE_CHARS` characters followed by its
/// length when it is longer.
pub fn quote(value: &str) -> String {
    let (shown, count) = prefix(value);
    if count > QUOTE_CHARS {
        format!("`{shown}…` ({count} characters)")
    } else {
        format!("`{shown}`")
    }
}

/// Like `quote`, without the backticks: for field paths built from the user's keys.
pub fn abbreviate(value: &str) -> String {
    let (shown, count) = prefix(value);
    if count > QUOTE_CHARS {
        format!("{shown}… ({count} characters)")
    } else {
        shown
    }
}

/// The first `QUOTE_CHARS` characters of `value`, control characters escaped, and how many
/// characters it has.
fn prefix(value: &str) -> (String, usize) {
    let mut shown = String::new();
    for c in value.chars().take(QUOTE_CHARS) {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    (shown, value.chars().count())
}

/// `message` with every `"..."` or `` `...` `` segment longer than `QUOTE_CHARS` shortened
/// like `quote` does: for messages of libraries (serde) that quote whole values.
pub fn shorten_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4 * LINE_CHARS));
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let q = rest.as_bytes()[open] as char;
        let after = &rest[open + 1..];
        let Some(close) = after.find(q) else {
            break;
        };
        out.push_str(&rest[..open]);
        let inner = &after[..close];
        if inner.chars().count() > QUOTE_CHARS {
            out.push_str(&quote(inner));
        } else {
            out.push(q);
            out.push_str(inner);
            out.push(q);
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Each line of `text` cut to `LINE_CHARS` characters, with how many were left out.
fn cap_lines(text: &str) -> String {
    if text.len() <= LINE_CHARS {
        return text.to_owned();
    }
    text.split('\n')
        .map(|line| {
            let count = line.chars().count();
            if count <= LINE_CHARS {
                line.to_owned()
            } else {
                let kept: String = line.chars().take(LINE_CHARS).collect();
                format!("{kept}… ({} more characters)", count - LINE_CHARS)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The messages of an error's chain, skipping empty ones and any already contained in the
/// message before it, so a message never repeats its source. Over-long lines are cut.
fn distinct_causes(err: &anyhow::Error) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        // kube's own display of a server's answer appends a dump of the whole Status.
        let text = match cause.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => format!("{} ({})", status.message, status.code),
            _ => cause.to_string(),
        };
        let text = cap_lines(&text);
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts
}

/// The lines the CLI prints for an error: the message, each distinct cause, then the hint.
pub fn format_error(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for (i, text) in distinct_causes(err).iter().enumerate() {
        let label = if i == 0 { "error:" } else { "  caused by:" };
        let _ = writeln!(out, "{label} {text}");
    }
    if let Some(hint) = hint_of(err) {
        let _ = writeln!(out, "  hint: {}", cap_lines(hint));
    }
    out
}

/// An error on one line, causes joined by `: ` (for warnings and problem lists that report
/// several errors together).
pub fn summary(err: &anyhow::Error) -> String {
    distinct_causes(err).join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_survives_context_and_hint() {
        let err = DriftError::error("kpin.lock is out of date")
            .hint("run `kpin sync`")
            .context("in CI");
        assert_eq!(exit_code_for(&err), Exit::Drift);
        let text = format_error(&err);
        assert!(text.contains("error: in CI"));
        assert!(text.contains("caused by: kpin.lock is out of date"));
        assert!(text.contains("hint: run `kpin sync`"));
    }

    #[test]
    fn quotes_show_a_short_prefix_and_the_length() {
        assert_eq!(quote("1.2.3"), "`1.2.3`");
        assert_eq!(quote("a\nb"), "`a\\nb`");
        let long = "x".repeat(10_000_000);
        let quoted = quote(&long);
        assert_eq!(
            quoted,
            format!("`{}…` (10000000 characters)", "x".repeat(QUOTE_CHARS))
        );
        let serde = format!("invalid type: string \"{long}\", expected u64");
        assert_eq!(
            shorten_quoted(&serde),
            format!("invalid type: string {quoted}, expected u64")
        );
        assert_eq!(
            shorten_quoted("unknown field `urll`"),
            "unknown field `urll`"
        );
        assert_eq!(shorten_quoted("an \"open quote"), "an \"open quote");
    }

    #[test]
    fn the_printer_cuts_very_long_lines() {
        let err = anyhow::anyhow!("bad value {}", "y".repeat(5000)).context("reading kpin.yaml");
        let text = format_error(&err);
        assert!(text.len() < 2 * LINE_CHARS, "{} bytes", text.len());
        assert!(text.contains("(4010 more characters)"), "{text}");
        assert!(text.starts_with("error: reading kpin.yaml\n  caused by: bad value yyy"));
    }

    #[test]
    fn plain_errors_exit_two_and_causes_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(io).context("reading kpin.yaml: no such file");
        assert_eq!(exit_code_for(&err), Exit::Error);
        assert_eq!(
            format_error(&err),
            "error: reading kpin.yaml: no such file\n"
        );
    }
}
