//! The vendoring stage: release files fetched by pinned version into vendor/, locked in
//! kpin.lock, and checked offline. `sync` drives it; every change to vendor/, kpin.lock and
//! kpin.yaml commits through `transaction`; `vendor` decides what vendor/ holds; `lockfile` is
//! the format; `verify` alone says whether the lock is current and vendor/ agrees.

pub mod lockfile;
pub mod sync;
pub mod transaction;
pub mod vendor;
pub mod verify;
