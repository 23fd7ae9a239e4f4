//! Live diff: server-side dry-run results against live objects, with Secret masking.
