//! Terminal colours: the one table of ANSI styles that kpin's text output (status lines,
//! errors, diffs) paints with.

/// What a piece of text is, which decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Headings and diff file headers.
    Bold,
    /// Added lines and objects.
    Added,
    /// Removed lines and objects.
    Removed,
    /// Changed objects.
    Changed,
    /// Diff hunk headers.
    Hunk,
    /// `warning:`.
    Warning,
    /// `error:`.
    Error,
    /// `hint:`.
    Hint,
    /// Status verbs (`Vendored`, `Applied`).
    Status,
    /// Debug lines.
    Dim,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Added => "32",
            Style::Removed => "31",
            Style::Changed => "33",
            Style::Hunk => "36",
            Style::Warning => "1;33",
            Style::Error => "1;31",
            Style::Hint => "1;36",
            Style::Status => "1;32",
            Style::Dim => "2",
        }
    }
}

/// `text` in `style` when `color` is on, else unchanged.
pub fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("\x1b[{}m{text}\x1b[0m", style.code())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paints_only_with_color() {
        assert_eq!(paint(false, Style::Error, "error:"), "error:");
        assert_eq!(
            paint(true, Style::Error, "error:"),
            "\x1b[1;31merror:\x1b[0m"
        );
    }
}
