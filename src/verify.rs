//! `kpin verify`: offline agreement check of kpin.yaml, kpin.lock and vendor/.
