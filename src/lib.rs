//! kpin: pin, vendor, patch, lock and apply third-party Kubernetes YAML releases without Helm.
//!
//! Every stage is a library module with its own tests; the `kpin` binary only parses arguments,
//! calls these modules and prints.
//!
//! - the project: [`manifest`] (kpin.yaml), [`init`] and [`add`] (starting it), [`fetch`]
//!   (release files by pinned version)
//! - the vendoring stage: [`vendoring`] (sync, the transaction that changes vendor/, kpin.lock
//!   and kpin.yaml together, the lockfile, lock currency and offline verification)
//! - overlays and render: [`overlay`], [`render`]
//! - cluster: [`cluster`]
//! - the upgrade workflow: [`upgrading`] (outdated, upgrade, promote, diff --base)
//! - validation of rendered objects (schemas, retired APIs): [`validate`]

pub mod add;
pub mod changes;
pub mod cluster;
pub mod digest;
pub mod error;
pub mod fetch;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzz;
pub mod init;
pub mod kinds;
pub mod kube_version;
pub mod manifest;
pub mod object;
pub mod overlay;
pub mod progress;
pub mod render;
pub mod style;
pub mod table;
pub mod upgrading;
pub mod validate;
pub mod vendoring;
pub mod version;
pub mod yaml;

/// The version recorded in generated files and the ApplySet tooling annotation.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
