//! kpin: pin, vendor, patch, lock and apply third-party Kubernetes YAML releases without Helm.
//!
//! Every stage is a library module with its own tests; the `kpin` binary only parses arguments,
//! calls these modules and prints.
//!
//! - foundation: [`manifest`], [`lockfile`], [`fetch`], [`sync`], [`verify`], and
//!   [`transaction`], the one way vendor/, kpin.lock and kpin.yaml change together
//! - overlays and render: [`overlay`], [`render`]
//! - cluster: [`cluster`]
//! - upgrade workflow: [`outdated`], [`upgrade`], and [`promote`], which moves versions from
//!   one environment to the next through the same workflow
//! - validation of rendered objects (schemas, retired APIs): [`validate`]

pub mod add;
pub mod changes;
pub mod cluster;
pub mod diff_base;
pub mod digest;
pub mod error;
pub mod fetch;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzz;
pub mod init;
pub mod kinds;
pub mod kube_version;
pub mod lockfile;
pub mod manifest;
pub mod object;
pub mod outdated;
pub mod overlay;
pub mod progress;
pub mod promote;
pub mod render;
pub mod style;
pub mod sync;
pub mod table;
pub mod transaction;
pub mod upgrade;
pub mod validate;
pub mod vendor;
pub mod verify;
pub mod yaml;

/// The version recorded in generated files and the ApplySet tooling annotation.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
