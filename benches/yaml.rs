//! YAML reader benchmark: serde_yaml 0.9 vs serde-saphyr 2.2 vs kpin's reader on every upstream
//! release in `../shared/upstream` (read in place) plus kpin's quirk fixtures: parse speed,
//! peak heap while parsing, and fidelity to Kubernetes. Prints the table behind docs/yaml.md.
//!
//! Run: `cargo bench --bench yaml` (set `KPIN_UPSTREAM_DIR` when the folder is elsewhere).
//! Fidelity reference: kpin's reader, which `tests/it/fidelity.rs` proves equal to kubectl's
//! own decoder on the same files.

// Benchmarks print their figures and measure with libc or a counting allocator.
#![allow(clippy::print_stdout, clippy::print_stderr, unsafe_code)]
// Pedantic lints hold the shipped code, not the measuring harness.
#![allow(clippy::pedantic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// Counts live heap bytes so each parse's peak can be measured in-process.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Reader = fn(&str) -> Result<Vec<Value>, String>;

fn serde_yaml_read(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Option::<Value>::deserialize(doc).map_err(|e| e.to_string())?;
        out.extend(v.filter(|v| !v.is_null()));
    }
    Ok(out)
}

/// serde-saphyr configured as close to Kubernetes as its options allow.
fn saphyr_read(text: &str) -> Result<Vec<Value>, String> {
    let options = serde_saphyr::options! {
        legacy_octal_numbers: true,
        strict_booleans: false,
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::LastWins,
    };
    let docs: Vec<Option<Value>> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| e.to_string())?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|v| !v.is_null())
        .collect())
}

fn kpin_read(text: &str) -> Result<Vec<Value>, String> {
    kpin::yaml::documents(text, Path::new("bench.yaml")).map_err(|e| e.to_string())
}

/// Lower bound: the parser events alone, no values built.
fn events_only(text: &str) -> Result<Vec<Value>, String> {
    let mut n = 0usize;
    for event in granit_parser::Parser::new_from_str(text) {
        event.map_err(|e| e.to_string())?;
        n += 1;
    }
    std::hint::black_box(n);
    Ok(Vec::new())
}

const READERS: &[(&str, Reader)] = &[
    ("serde_yaml", serde_yaml_read),
    ("serde-saphyr", saphyr_read),
    ("kpin", kpin_read),
];

struct Measure {
    mb_per_s: f64,
    peak_bytes: usize,
    result: Result<Vec<Value>, String>,
}

fn measure(reader: Reader, text: &str) -> Measure {
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let result = reader(text);
    let peak_bytes = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);
    let mut best = Duration::MAX;
    let started = Instant::now();
    let mut runs = 0;
    while runs < 3 || (started.elapsed() < Duration::from_millis(400) && runs < 200) {
        let t = Instant::now();
        std::hint::black_box(reader(std::hint::black_box(text)).ok());
        best = best.min(t.elapsed());
        runs += 1;
    }
    Measure {
        mb_per_s: text.len() as f64 / 1e6 / best.as_secs_f64(),
        peak_bytes,
        result,
    }
}

/// Leaf values that differ from the reference (numbers compared by value, as the API
/// server's int64/float64 decoding would see them).
fn mismatches(reference: &[Value], other: &[Value], first: &mut Option<String>) -> usize {
    fn walk(a: &Value, b: &Value, path: &str, first: &mut Option<String>) -> usize {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut n = 0;
                for (k, v) in x {
                    if let Some(w) = y.get(k) {
                        n += walk(v, w, &format!("{path}/{k}"), first)
                    } else {
                        n += 1;
                        first.get_or_insert_with(|| format!("{path}/{k}: key missing"));
                    }
                }
                n + y.keys().filter(|k| !x.contains_key(*k)).count()
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .map(|(i, (v, w))| walk(v, w, &format!("{path}/{i}"), first))
                .sum(),
            (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => 0,
            _ if a == b => 0,
            _ => {
                first.get_or_insert_with(|| format!("{path}: {a} vs {b}"));
                1
            }
        }
    }
    if reference.len() != other.len() {
        first.get_or_insert_with(|| format!("{} vs {} objects", reference.len(), other.len()));
        return reference.len().abs_diff(other.len());
    }
    reference
        .iter()
        .zip(other)
        .map(|(a, b)| walk(a, b, "", first))
        .sum()
}

/// Which reading quirks a file contains, from its parser events (so text inside block scalars
/// does not count) plus kpin's reading.
fn quirks(text: &str, objects: &[Value]) -> String {
    use granit_parser::{Event, ScalarStyle};
    #[derive(Default)]
    struct Counts {
        empty_docs: usize,
        null: usize,
        equals: usize,
        yaml11_bool: usize,
        leading_zero: usize,
        big_int: usize,
        anchors: usize,
        aliases: usize,
        merge_keys: usize,
        tags: usize,
        block_scalars: usize,
    }
    let mut c = Counts::default();
    // Events since the current document started (an empty document has exactly one: "").
    let mut in_doc: Vec<bool> = Vec::new();
    for event in granit_parser::Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        match event {
            Event::DocumentStart(..) => in_doc.push(true),
            Event::DocumentEnd if in_doc.pop() == Some(true) => c.empty_docs += 1,
            Event::DocumentEnd => {}
            Event::Scalar(v, style, anchor, tag) => {
                // The parser reports missing content as a zero-width plain `~`.
                let missing = style == ScalarStyle::Plain
                    && v == "~"
                    && span.start.index() == span.end.index();
                if let Some(flag) = in_doc.last_mut()
                    && !(missing && *flag)
                {
                    *flag = false;
                }
                if missing {
                    continue;
                }
                c.anchors += usize::from(anchor != 0);
                c.tags += usize::from(tag.is_some());
                match style {
                    ScalarStyle::Literal | ScalarStyle::Folded => c.block_scalars += 1,
                    ScalarStyle::Plain => match v.as_ref() {
                        "null" | "Null" | "NULL" | "~" => c.null += 1,
                        "=" => c.equals += 1,
                        "<<" => c.merge_keys += 1,
                        "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO"
                        | "on" | "On" | "ON" | "off" | "Off" | "OFF" => c.yaml11_bool += 1,
                        v if v.len() > 1
                            && v.starts_with('0')
                            && v.bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            c.leading_zero += 1;
                        }
                        v if v.len() > 18 && v.bytes().all(|b| b.is_ascii_digit()) => {
                            c.big_int += 1;
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
            Event::SequenceStart(_, anchor, tag) | Event::MappingStart(_, anchor, tag) => {
                if let Some(flag) = in_doc.last_mut() {
                    *flag = false;
                }
                c.anchors += usize::from(anchor != 0);
                c.tags += usize::from(tag.is_some());
            }
            Event::Alias(_) => c.aliases += 1,
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut note = |name: &str, n: usize| {
        if n > 0 {
            out.push(format!("{name}:{n}"));
        }
    };
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    note("lead-comment", usize::from(first.starts_with('#')));
    note("starts-with---", usize::from(first.starts_with("---")));
    note("empty-docs", c.empty_docs);
    note("null", c.null);
    note("plain-=", c.equals);
    note("yaml1.1-bool", c.yaml11_bool);
    note("leading-0-int", c.leading_zero);
    note("big-int", c.big_int);
    note("anchors", c.anchors);
    note("aliases", c.aliases);
    note("merge-keys", c.merge_keys);
    note("tags", c.tags);
    note("block-scalars", c.block_scalars);
    note("crlf", usize::from(text.contains("\r\n")));
    let lists = objects
        .iter()
        .filter(|o| {
            o["kind"].as_str().is_some_and(|k| k.ends_with("List")) && o.get("items").is_some()
        })
        .count();
    note("List", lists);
    let no_ns = objects
        .iter()
        .filter(|o| {
            let api = o["apiVersion"].as_str().unwrap_or("");
            let kind = o["kind"].as_str().unwrap_or("");
            o.pointer("/metadata/namespace").is_none()
                && kpin::kinds::namespaced(kpin::kinds::group_of(api), kind, &|_, _| None)
                    == Some(true)
        })
        .count();
    note("no-namespace", no_ns);
    out.join(" ")
}

fn fixtures() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let quirks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quirks");
    let mut own: Vec<PathBuf> = std::fs::read_dir(&quirks)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    own.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    own.sort();
    for path in own {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        out.push((format!("quirks/{name}"), path.clone()));
    }
    let dir = std::env::var_os("KPIN_UPSTREAM_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/upstream"),
        PathBuf::from,
    );
    match std::fs::read_to_string(dir.join("INDEX.tsv")) {
        Ok(index) => {
            for line in index.lines().skip(1).filter(|l| !l.trim().is_empty()) {
                let f: Vec<&str> = line.split('\t').collect();
                if f.len() > 2 {
                    let rel = format!("{}/{}/{}", f[0], f[1], f[2]);
                    out.push((rel.clone(), dir.join(rel)));
                }
            }
        }
        Err(_) => eprintln!(
            "SKIPPED upstream releases: {} is absent (set KPIN_UPSTREAM_DIR)",
            dir.display()
        ),
    }
    out
}

fn mib(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks fixtures by substring.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut totals = vec![(0f64, 0usize, 0usize, 0usize); READERS.len() + 1];
    let mut total_bytes = 0usize;
    println!(
        "{:<58} {:>7} | {:>21} | {:>21} | {:>21} | {:>6} | quirks",
        "fixture",
        "KiB",
        "serde_yaml MB/s MiB ≠",
        "serde-saphyr MB/s MiB ≠",
        "kpin MB/s MiB ≠",
        "events"
    );
    for (label, path) in fixtures() {
        if filter.as_ref().is_some_and(|f| !label.contains(f.as_str())) {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                println!("{label}: {e}");
                continue;
            }
        };
        total_bytes += text.len();
        let reference = kpin_read(&text).unwrap_or_default();
        let mut cells = Vec::new();
        let mut notes = Vec::new();
        for (i, (name, reader)) in READERS.iter().enumerate() {
            let m = measure(*reader, &text);
            let t = &mut totals[i];
            t.0 += text.len() as f64 / 1e6 / m.mb_per_s;
            t.1 = t.1.max(m.peak_bytes);
            match &m.result {
                Ok(docs) => {
                    let mut first = None;
                    let n = mismatches(&reference, docs, &mut first);
                    t.2 += n;
                    if let Some(first) = first {
                        notes.push(format!(
                            "    {name}: {n} value(s) differ from kubectl, e.g. {first}"
                        ));
                    }
                    cells.push(format!(
                        "{:>7.1} {:>6} {:>6}",
                        m.mb_per_s,
                        mib(m.peak_bytes),
                        n
                    ));
                }
                Err(e) => {
                    t.3 += 1;
                    let e = e.lines().next().unwrap_or_default().to_owned();
                    notes.push(format!("    {name}: fails: {e}"));
                    cells.push(format!(
                        "{:>7.1} {:>6} {:>6}",
                        m.mb_per_s,
                        mib(m.peak_bytes),
                        "ERR"
                    ));
                }
            }
        }
        let ev = measure(events_only, &text);
        totals[READERS.len()].0 += text.len() as f64 / 1e6 / ev.mb_per_s;
        println!(
            "{:<58} {:>7} | {} | {} | {} | {:>6.1} | {}",
            label,
            text.len() / 1024,
            cells[0],
            cells[1],
            cells[2],
            ev.mb_per_s,
            quirks(&text, &reference)
        );
        for n in notes {
            println!("{n}");
        }
    }
    println!();
    println!("total input: {:.1} MB", total_bytes as f64 / 1e6);
    for (i, (name, _)) in READERS.iter().enumerate() {
        let (secs, peak, diffs, errors) = totals[i];
        println!(
            "{name:<13} {:>7.1} MB/s overall, peak heap {:>6} MiB on the largest file, {diffs} value(s) read differently from kubectl, {errors} file(s) rejected",
            total_bytes as f64 / 1e6 / secs,
            mib(peak)
        );
    }
    println!(
        "{:<13} {:>7.1} MB/s overall (granit-parser events only, no values: the floor)",
        "events",
        total_bytes as f64 / 1e6 / totals[READERS.len()].0
    );
}
