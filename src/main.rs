//! The `kpin` binary: parse arguments, run one command, map the result to an exit code.

// The CLI layer is the one place that prints (the library reports through `Reporter`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod ui;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use kpin::error::{Exit, exit_code_for, format_error};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let color = match cli.color {
        cli::ColorChoice::Always => true,
        cli::ColorChoice::Never => false,
        cli::ColorChoice::Auto => {
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let term = ui::Terminal::new(cli.quiet, cli.verbose, color);
    let code = match commands::run(cli, &term) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            term.error(&format_error(&err));
            exit_code_for(&err)
        }
    };
    ExitCode::from(match code {
        Exit::Ok => 0,
        Exit::Drift => 1,
        Exit::Error => 2,
    })
}
