//! kpin's integration tests: one binary, one module per stage, each reading like a spec.

// Tests print SKIPPED notes and diagnostics.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Pedantic lints hold the shipped code; tests favour the shortest readable spec.
#![allow(clippy::pedantic)]

mod support;

mod chart;
mod cluster;
mod conformance;
mod crash;
mod environments;
mod example;
mod fidelity;
mod fuzz;
mod inputs;
mod recipe;
mod render;
mod start;
mod sync;
mod upgrade;
mod validate;
