//! kpin's integration tests: one binary, one module per stage, each reading like a spec.

mod support;

mod cluster;
mod conformance;
mod crash;
mod environments;
mod example;
mod fidelity;
mod fuzz;
mod inputs;
mod render;
mod sync;
mod upgrade;
mod validate;
