//! `kpin upgrade`: move a package to a new version with an upstream and rendered diff.
