//! `kpin outdated`: newer upstream versions per package.
