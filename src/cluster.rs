//! Cluster access: server-side apply, live diff, prune and wait.
