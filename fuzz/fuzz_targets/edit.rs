//! The kpin.yaml editor on arbitrary bytes: `kpin::fuzz::edit`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpin::fuzz::edit(data));
