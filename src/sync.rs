//! `kpin sync`: bring vendor/ and kpin.lock in line with kpin.yaml.
