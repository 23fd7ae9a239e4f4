//! Fetching release files: resolving sources to URLs, HTTP with retries, the content cache.
//! (Filled in by the foundation work.)
