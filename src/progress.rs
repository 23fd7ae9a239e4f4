//! Progress reporting: libraries describe what they do through `Reporter`; only the CLI prints.

use std::sync::Mutex;

/// Receives status from library code. The CLI renders it on stderr; tests record it.
pub trait Reporter: Send + Sync {
    /// A cargo-style status line, e.g. verb `Fetching`, message `ingress-nginx 1.9.4`.
    fn status(&self, verb: &str, message: &str);
    /// Something the user should look at that does not stop the command.
    fn warn(&self, message: &str);
    /// Detail shown only with `-v`: requests, retries, cache hits.
    fn debug(&self, _message: &str) {}
    /// Start a task with `total` steps (bytes, objects, files). The CLI shows a bar on a terminal.
    fn task(&self, label: &str, total: u64) -> Box<dyn Task>;
}

/// One long-running piece of work started by `Reporter::task`.
pub trait Task: Send + Sync {
    fn advance(&self, steps: u64);
    fn finish(&self);
}

/// Reports nothing. For library callers that do not care.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

struct NoTask;

impl Task for NoTask {
    fn advance(&self, _steps: u64) {}
    fn finish(&self) {}
}

impl Reporter for Silent {
    fn status(&self, _verb: &str, _message: &str) {}
    fn warn(&self, _message: &str) {}
    fn task(&self, _label: &str, _total: u64) -> Box<dyn Task> {
        Box::new(NoTask)
    }
}

/// Keeps every line it is given; tests assert on it.
#[derive(Debug, Default)]
pub struct Recorder {
    lines: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn warnings(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter_map(|l| l.strip_prefix("warning: ").map(str::to_owned))
            .collect()
    }

    fn push(&self, line: String) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }
}

impl Reporter for Recorder {
    fn status(&self, verb: &str, message: &str) {
        self.push(format!("{verb} {message}"));
    }
    fn warn(&self, message: &str) {
        self.push(format!("warning: {message}"));
    }
    fn task(&self, _label: &str, _total: u64) -> Box<dyn Task> {
        Box::new(NoTask)
    }
}
