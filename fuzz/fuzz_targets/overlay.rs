//! The overlay parser on arbitrary bytes: `kpin::fuzz::overlay`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kpin::fuzz::overlay(data));
