//! Sync benchmark: 20 packages from a local server with 50 ms added latency per request.
//!
//! Prints the cold sync wall time against the slowest single fetch and the sum of all fetches
//! (parallel downloads should make it close to the former), then the warm
//! `kpin sync --locked --offline` time (goal: under 50 ms). Run with `cargo bench --bench sync`.

// Benchmarks print their figures.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Pedantic lints hold the shipped code, not the measuring harness.
#![allow(clippy::pedantic)]

#[path = "../tests/it/support/http.rs"]
#[allow(dead_code)]
mod http;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kpin::fetch::{Auth, Client, NetOptions};
use kpin::manifest::Manifest;
use kpin::progress::Silent;
use kpin::vendoring::sync::{SyncOptions, sync};

const PACKAGES: usize = 20;
const LATENCY: Duration = Duration::from_millis(50);
const WARM_RUNS: u32 = 20;
/// `kpin sync --jobs` default.
const DEFAULT_JOBS: usize = 32;

fn release(i: usize) -> String {
    let mut text = String::new();
    for n in 0..40 {
        text += &format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pkg{i}-cm{n}\n  namespace: pkg{i}\ndata:\n  key: \"value {n} of package {i}\"\n"
        );
    }
    text
}

fn options(cache: &Path, jobs: usize, locked: bool, offline: bool) -> SyncOptions<'static> {
    SyncOptions {
        locked,
        offline,
        jobs,
        net: NetOptions::default(),
        cache_dir: cache.to_path_buf(),
        hook: None,
        manifest_text: None,
        render: kpin::fetch::source::RenderOptions::default(),
    }
}

/// A fresh project and cache after a cold sync, kept for the warm runs.
struct ColdSync {
    project: tempfile::TempDir,
    cache: tempfile::TempDir,
    manifest: Manifest,
}

impl ColdSync {
    /// Sync `manifest` into a new project with an empty cache; returns it and the time taken.
    fn run(runtime: &tokio::runtime::Runtime, manifest: &str, jobs: usize) -> (ColdSync, Duration) {
        let project = tempfile::tempdir().expect("tempdir");
        let cache = tempfile::tempdir().expect("tempdir");
        std::fs::write(project.path().join("kpin.yaml"), manifest).expect("manifest");
        let m = Manifest::load(&project.path().join("kpin.yaml")).expect("manifest");
        let started = Instant::now();
        runtime
            .block_on(sync(
                &m,
                &options(cache.path(), jobs, false, false),
                &Silent,
            ))
            .expect("cold sync");
        let taken = started.elapsed();
        (
            ColdSync {
                project,
                cache,
                manifest: m,
            },
            taken,
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let server = http::Server::http();
    server.set_latency(LATENCY);
    let mut manifest = String::from("packages:\n");
    for i in 0..PACKAGES {
        server.file(&format!("/pkg{i}/1.0.{i}/release.yaml"), release(i));
        manifest += &format!(
            "  pkg{i}:\n    version: 1.0.{i}\n    url: {}/pkg{i}/{{version}}/release.yaml\n",
            server.base()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // Every file fetched alone, one after the other.
    let started = Instant::now();
    let client = Client::new(NetOptions::default()).expect("client");
    let client_setup = started.elapsed();
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut singles = Vec::new();
    for i in 0..PACKAGES {
        let url =
            url::Url::parse(&server.url(&format!("/pkg{i}/1.0.{i}/release.yaml"))).expect("url");
        let started = Instant::now();
        runtime
            .block_on(client.download(&url, Auth::None, scratch.path(), &|_| {}))
            .expect("download");
        singles.push(started.elapsed());
    }
    let slowest = singles.iter().max().copied().unwrap_or_default();
    let sum: Duration = singles.iter().sum();
    println!(
        "{PACKAGES} packages, {} ms added latency per request",
        LATENCY.as_millis()
    );
    println!("  HTTP client setup           {}", ms(client_setup));
    println!("  slowest single fetch        {}", ms(slowest));
    println!("  sum of single fetches       {}", ms(sum));

    // The same cold sync without the added latency: kpin's own overhead.
    server.set_latency(Duration::ZERO);
    let (.., cold) = ColdSync::run(&runtime, &manifest, DEFAULT_JOBS);
    println!("  cold sync, no added latency {}", ms(cold));
    server.set_latency(LATENCY);

    for jobs in [8, DEFAULT_JOBS] {
        let (
            ColdSync {
                project,
                cache,
                manifest: m,
            },
            cold,
        ) = ColdSync::run(&runtime, &manifest, jobs);
        println!(
            "  cold sync, --jobs {jobs:<3}       {}  ({:.2}x the slowest fetch, {:.2}x the sum)",
            ms(cold),
            cold.as_secs_f64() / slowest.as_secs_f64(),
            cold.as_secs_f64() / sum.as_secs_f64()
        );
        if jobs != DEFAULT_JOBS {
            continue;
        }

        // Warm: everything is vendored and locked.
        let requests = server.request_count();
        let started = Instant::now();
        for _ in 0..WARM_RUNS {
            runtime
                .block_on(sync(&m, &options(cache.path(), jobs, true, true), &Silent))
                .expect("warm sync");
        }
        println!(
            "  warm sync (library)         {}  per run",
            ms(started.elapsed() / WARM_RUNS)
        );
        let started = Instant::now();
        for _ in 0..WARM_RUNS {
            let status = Command::new(env!("CARGO_BIN_EXE_kpin"))
                .args(["sync", "--locked", "--offline", "--quiet"])
                .current_dir(project.path())
                .env("KPIN_CACHE_DIR", cache.path())
                .status()
                .expect("running kpin");
            assert!(status.success(), "warm kpin sync failed");
        }
        println!(
            "  warm `kpin sync --locked --offline` {}  per run (whole process; goal < 50 ms)",
            ms(started.elapsed() / WARM_RUNS)
        );
        assert_eq!(
            server.request_count(),
            requests,
            "warm syncs make no requests"
        );
    }
}
