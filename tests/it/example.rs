//! Integration tests: example.
