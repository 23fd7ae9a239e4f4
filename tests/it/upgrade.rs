//! Integration tests: upgrade.
