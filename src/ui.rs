//! The terminal side of progress reporting: cargo-style status lines and progress bars on
//! stderr, hidden when stderr is not a terminal or with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kpin::progress::{Reporter, Task};
use kpin::style::{self, Style};

pub struct Terminal {
    quiet: bool,
    verbose: u8,
    color: bool,
    tty: bool,
}

impl Terminal {
    pub fn new(quiet: bool, verbose: u8, color: bool) -> Terminal {
        Terminal {
            quiet,
            verbose,
            color,
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn color(&self) -> bool {
        self.color
    }

    /// How many `-v` were given.
    pub fn verbose(&self) -> u8 {
        self.verbose
    }

    fn paint(&self, style: Style, text: &str) -> String {
        style::paint(self.color, style, text)
    }

    /// Print an error report (already formatted by `kpin::error::format_error`).
    pub fn error(&self, report: &str) {
        let mut out = String::new();
        for line in report.lines() {
            let painted = if let Some(rest) = line.strip_prefix("error:") {
                format!("{}{rest}", self.paint(Style::Error, "error:"))
            } else if let Some(rest) = line.strip_prefix("  hint:") {
                format!("  {}{rest}", self.paint(Style::Hint, "hint:"))
            } else {
                line.to_owned()
            };
            out.push_str(&painted);
            out.push('\n');
        }
        eprint!("{out}");
    }
}

impl Reporter for Terminal {
    fn status(&self, verb: &str, message: &str) {
        if !self.quiet {
            eprintln!(
                "{} {message}",
                self.paint(Style::Status, &format!("{verb:>12}"))
            );
        }
    }

    fn debug(&self, message: &str) {
        if self.verbose > 0 && !self.quiet {
            eprintln!(
                "{} {message}",
                self.paint(Style::Dim, &format!("{:>12}", "debug"))
            );
        }
    }

    fn warn(&self, message: &str) {
        eprintln!("{} {message}", self.paint(Style::Warning, "warning:"));
    }

    fn task(&self, label: &str, total: u64) -> Box<dyn Task> {
        if self.quiet || !self.tty {
            return Box::new(Bar(None));
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12.cyan.bold} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        Box::new(Bar(Some(bar)))
    }
}

struct Bar(Option<ProgressBar>);

impl Task for Bar {
    fn advance(&self, steps: u64) {
        if let Some(b) = &self.0 {
            b.inc(steps);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
