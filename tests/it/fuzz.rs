//! A bounded, deterministic fuzz run on stable Rust: seeds from the repository's YAML (test
//! fixtures, the example's overlays and releases, kpin.yaml, the lockfile), mutated the way
//! YAML breaks, fed to the YAML reader and the overlay parser. No input may make kpin panic.
//! `docs/fuzzing.md` explains this run and the cargo-fuzz targets in `fuzz/`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use crate::support::repo_root;

/// Cases per run, about three seconds each in a debug build; `KPIN_FUZZ_CASES` and
/// `KPIN_FUZZ_SEED` run longer or other sequences (docs/fuzzing.md).
const YAML_CASES: usize = 2_000;
const OVERLAY_CASES: usize = 6_000;
const EDIT_CASES: usize = 2_000;

fn from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
/// Seeds above this size cost more time than they add coverage (deep nesting has its own tests).
const MAX_SEED: u64 = 16 * 1024;

/// Bytes that change what YAML means.
const SIGNIFICANT: &[&[u8]] = &[
    b":",
    b": ",
    b"-",
    b"- ",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b"&a",
    b"*a",
    b"!!str ",
    b"!!int ",
    b"!!binary ",
    b"!foo ",
    b"<<: ",
    b"? ",
    b"|",
    b">-",
    b"'",
    b"\"",
    b"#",
    b"%YAML 1.1\n",
    b"---\n",
    b"...\n",
    b"\n",
    b"\t",
    b"  ",
    b"\\",
    b"\0",
    b"\xef\xbb\xbf",
    b"\xff",
    b"~",
    b"1e400",
    b"0x",
    b"0o7",
    b".inf",
    b"-.NaN",
    b"9223372036854775808",
    b"kind: List\nitems:\n",
    b"operations:\n- ",
    b"add: {files: [",
    b"../",
    b"{version}",
];

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json" || e == "lock")
            {
                out.push(path);
            }
        }
    }
    let root = repo_root();
    let mut paths = vec![root.join("kpin.yaml"), root.join("lockfile.example")];
    for dir in ["tests/fixtures", "overlays", "examples"] {
        walk(&root.join(dir), &mut paths);
    }
    paths.sort();
    paths
        .iter()
        .filter(|p| p.metadata().is_ok_and(|m| m.len() <= MAX_SEED))
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// One mutation of `input`: a significant token inserted or overwritten, a range deleted or
/// duplicated, a splice from another seed, a truncation or a flipped byte.
fn mutate(input: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut Rng) {
    let at = rng.below(input.len() + 1);
    match rng.below(7) {
        0 => {
            let token = SIGNIFICANT[rng.below(SIGNIFICANT.len())];
            input.splice(at..at, token.iter().copied());
        }
        1 => {
            let token = SIGNIFICANT[rng.below(SIGNIFICANT.len())];
            let end = (at + token.len()).min(input.len());
            input.splice(at..end, token.iter().copied());
        }
        2 => {
            let end = (at + rng.below(64)).min(input.len());
            input.drain(at..end);
        }
        3 => {
            let end = (at + rng.below(256)).min(input.len());
            let copy = input[at..end].to_vec();
            input.splice(at..at, copy);
        }
        4 => {
            let other = &seeds[rng.below(seeds.len())];
            let from = rng.below(other.len());
            let end = (from + rng.below(512)).min(other.len());
            input.splice(at..at, other[from..end].iter().copied());
        }
        5 => input.truncate(at),
        _ => {
            if let Some(b) = input.get_mut(at) {
                *b ^= 1 << rng.below(8);
            }
        }
    }
}

/// Feed `cases` mutated inputs to `reader`; the inputs that panicked, with the panic message.
fn run(reader: fn(&[u8]), cases: usize, seed: u64) -> Vec<(String, String)> {
    let seeds = seeds();
    assert!(
        seeds.len() > 20,
        "the corpus is the repository's YAML files"
    );
    let cases = from_env("KPIN_FUZZ_CASES", cases as u64) as usize;
    let mut rng = Rng(from_env("KPIN_FUZZ_SEED", seed) | 1);
    let mut failures = Vec::new();
    for case in 0..cases {
        let mut input = seeds[case % seeds.len()].clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut input, &seeds, &mut rng);
        }
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| reader(&input))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push((String::from_utf8_lossy(&input).into_owned(), message));
        }
    }
    failures
}

#[track_caller]
fn assert_no_panics(failures: &[(String, String)]) {
    if let Some((input, message)) = failures.first() {
        panic!(
            "{} inputs panicked; the first: {message}\ninput: {input:?}",
            failures.len()
        );
    }
}

#[test]
fn no_mutated_yaml_makes_the_reader_panic() {
    assert_no_panics(&run(kpin::fuzz::yaml, YAML_CASES, 0x6b70_696e_0001));
}

#[test]
fn no_mutated_overlay_makes_the_parser_panic() {
    assert_no_panics(&run(kpin::fuzz::overlay, OVERLAY_CASES, 0x6b70_696e_0002));
}

#[test]
fn no_mutated_manifest_makes_the_editor_panic_or_touch_what_it_should_not() {
    assert_no_panics(&run(kpin::fuzz::edit, EDIT_CASES, 0x6b70_696e_0003));
}
