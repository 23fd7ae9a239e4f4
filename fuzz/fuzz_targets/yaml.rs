//! The YAML reader (releases, kpin.yaml, kpin.lock) on arbitrary bytes: `kpin::fuzz::yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpin::fuzz::yaml(data));
