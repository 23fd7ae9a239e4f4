//! Render benchmark: the release `kpin render` against `kubectl kustomize` doing the same work
//! (namespace move plus two patches) on every upstream release in `../shared/upstream`, in the
//! same run. Prints wall time and peak RSS per package and the ratios the README quotes
//! (goal: kpin at least 10x faster, at most a third of the peak memory), then the same with
//! `kpin render --validate` (goal: render plus validation at least 8x faster than kustomize
//! alone).
//!
//! Run: `cargo build --release && cargo bench --bench render`. Copies of the releases go to a
//! temp dir only. Children are measured with `wait4` (wall clock around the process, `ru_maxrss`).

// Benchmarks print their figures and measure with libc or a counting allocator.
#![allow(clippy::print_stdout, clippy::print_stderr, unsafe_code)]
// Pedantic lints hold the shipped code, not the measuring harness.
#![allow(clippy::pedantic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Fixture {
    project: String,
    /// Package name in the generated kpin.yaml (also the kustomize directory).
    name: String,
    version: String,
    file: String,
    path: PathBuf,
    /// Only cluster-scoped objects: neither tool gets a namespace (kpin refuses one).
    cluster_scoped_only: bool,
}

#[derive(Clone, Copy)]
struct Usage {
    wall: Duration,
    max_rss_kib: i64,
}

/// Run a command to completion, stdout to `out`, and measure it.
fn run(cmd: &mut Command, out: &Path) -> Result<Usage, String> {
    let stdout = fs::File::create(out).map_err(|e| e.to_string())?;
    let stderr_path = out.with_extension("stderr");
    let stderr = fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| format!("starting {cmd:?}: {e}"))?;
    let mut status = 0;
    // SAFETY: plain libc call on our own child's pid with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &raw mut status, 0, &raw mut usage) };
    let wall = started.elapsed();
    if pid < 0 {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let err = fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(format!("{cmd:?} failed: {}", err.trim()));
    }
    Ok(Usage {
        wall,
        max_rss_kib: usage.ru_maxrss,
    })
}

/// Best wall time and largest RSS over `reps` runs.
fn best_of(reps: usize, mut f: impl FnMut() -> Result<Usage, String>) -> Result<Usage, String> {
    let mut best = Usage {
        wall: Duration::MAX,
        max_rss_kib: 0,
    };
    for _ in 0..reps {
        let u = f()?;
        best.wall = best.wall.min(u.wall);
        best.max_rss_kib = best.max_rss_kib.max(u.max_rss_kib);
    }
    Ok(best)
}

fn sanitize(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_owned()
}

fn fixtures(dir: &Path) -> Vec<Fixture> {
    let index = fs::read_to_string(dir.join("INDEX.tsv")).unwrap_or_default();
    let mut out = Vec::new();
    for line in index.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (project, version, file) = (f[0], f[1], f[2]);
        let path = dir.join(project).join(version).join(file);
        let text = fs::read_to_string(&path).unwrap_or_default();
        let objects = kpin::object::Object::from_stream(&text, &path).unwrap_or_default();
        let cluster_scoped_only = objects
            .iter()
            .all(|o| kpin::kinds::namespaced(o.group(), o.kind(), &|_, _| None) == Some(false));
        let stem = file.trim_end_matches(".yaml");
        out.push(Fixture {
            project: project.to_owned(),
            name: sanitize(&format!("{project}-{version}-{stem}")),
            version: version.to_owned(),
            file: file.to_owned(),
            path,
            cluster_scoped_only,
        });
    }
    out
}

/// The patches both tools apply: a JSON patch on every Deployment, a merge patch on every
/// ServiceAccount (optional: some releases have neither).
const KPIN_OVERLAY: &str = "description: benchmark patches
operations:
- jsonPatch:
    select: {kind: Deployment}
    optional: true
    patch:
    - {op: add, path: /spec/revisionHistoryLimit, value: 5}
- mergePatch:
    select: {kind: ServiceAccount}
    optional: true
    patch: {automountServiceAccountToken: false}
";

const KUSTOMIZE_PATCHES: &str = "patches:
- target: {kind: Deployment}
  patch: |-
    - op: add
      path: /spec/revisionHistoryLimit
      value: 5
- target: {kind: ServiceAccount}
  patch: |-
    - op: add
      path: /automountServiceAccountToken
      value: false
";

/// Write the kpin project and the kustomize directories into `root`.
fn scaffold(root: &Path, fixtures: &[Fixture], with_overlays: bool) -> std::io::Result<()> {
    let project = root.join("kpin");
    let mut manifest = String::from("packages:\n");
    for f in fixtures {
        let vendor = project.join("vendor").join(&f.name).join(&f.version);
        fs::create_dir_all(&vendor)?;
        fs::copy(&f.path, vendor.join(&f.file))?;
        manifest.push_str(&format!(
            "  {}:\n    version: \"{}\"\n    path: upstream/{{version}}/{}\n",
            f.name, f.version, f.file
        ));
        if !f.cluster_scoped_only {
            manifest.push_str(&format!("    namespace: bench-{}\n", short(&f.name)));
        }
        if with_overlays {
            manifest.push_str("    overlays: [overlays/bench.yaml]\n");
        }

        let k = root.join("kustomize").join(&f.name);
        fs::create_dir_all(&k)?;
        fs::copy(&f.path, k.join(&f.file))?;
        let mut kustomization = format!("resources:\n- {}\n", f.file);
        if !f.cluster_scoped_only {
            kustomization.push_str(&format!("namespace: bench-{}\n", short(&f.name)));
        }
        kustomization.push_str(KUSTOMIZE_PATCHES);
        fs::write(k.join("kustomization.yaml"), kustomization)?;
    }
    fs::create_dir_all(project.join("overlays"))?;
    fs::write(project.join("overlays/bench.yaml"), KPIN_OVERLAY)?;
    fs::write(project.join("kpin.yaml"), manifest)
}

/// Namespace names must stay within 63 characters.
fn short(name: &str) -> String {
    name.chars()
        .take(50)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

fn object_count(path: &Path) -> usize {
    let text = fs::read_to_string(path).unwrap_or_default();
    kpin::yaml::documents(&text, path).map_or(0, |d| d.len())
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let upstream = std::env::var_os("KPIN_UPSTREAM_DIR")
        .map_or_else(|| root.join("../shared/upstream"), PathBuf::from);
    if !upstream.join("INDEX.tsv").is_file() {
        println!(
            "SKIPPED render benchmark: {} is absent (set KPIN_UPSTREAM_DIR)",
            upstream.display()
        );
        return;
    }
    let kpin = std::env::var_os("KPIN_BIN")
        .map_or_else(|| root.join("target/release/kpin"), PathBuf::from);
    if !kpin.is_file() {
        println!(
            "SKIPPED render benchmark: {} is missing (cargo build --release)",
            kpin.display()
        );
        return;
    }
    if !Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("SKIPPED render benchmark: kubectl is not installed");
        return;
    }
    let fixtures = fixtures(&upstream);
    let temp = tempfile::tempdir().expect("tempdir");
    let out = temp.path().join("out.yaml");

    // Overlays are used when this kpin build supports them; otherwise only `namespace:`.
    let mut with_overlays = true;
    scaffold(temp.path(), &fixtures, true).expect("writing scratch projects");
    let manifest = temp.path().join("kpin/kpin.yaml");
    let kpin_all = |args: &[&str]| {
        let mut cmd = Command::new(&kpin);
        cmd.arg("--manifest")
            .arg(&manifest)
            .arg("render")
            .args(args);
        cmd
    };
    // Probe with one package: several versions of one project cannot render together (their
    // cluster-scoped objects collide, which kpin rightly refuses).
    let probe = [fixtures[0].name.as_str()];
    if let Err(e) = run(&mut kpin_all(&probe), &out) {
        println!(
            "note: this kpin build cannot render overlays ({e}); benchmarking the `namespace:` shorthand only"
        );
        with_overlays = false;
        let _ = fs::remove_dir_all(temp.path().join("kpin"));
        let _ = fs::remove_dir_all(temp.path().join("kustomize"));
        scaffold(temp.path(), &fixtures, false).expect("writing scratch projects");
        // Probe with one package: several versions of one project cannot render together (their
        // cluster-scoped objects collide, which kpin rightly refuses).
        let probe = [fixtures[0].name.as_str()];
        if let Err(e) = run(&mut kpin_all(&probe), &out) {
            println!("SKIPPED render benchmark: kpin render fails: {e}");
            return;
        }
    }
    let total_bytes: u64 = fixtures
        .iter()
        .filter_map(|f| fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{} releases, {:.1} MB; kpin: namespace{}; kustomize: namespace + 2 patches",
        fixtures.len(),
        total_bytes as f64 / 1e6,
        if with_overlays {
            " + 2 patches (overlay file)"
        } else {
            " shorthand only (no overlay support in this build)"
        }
    );
    println!(
        "{:<58} {:>9} {:>8} | {:>9} {:>8} | {:>7} | {:>9} {:>7} {:>7}",
        "package",
        "kustz ms",
        "MiB",
        "kpin ms",
        "MiB",
        "speedup",
        "+valid ms",
        "speedup",
        "objects"
    );
    let reps = 3;
    let (mut k_total, mut p_total) = (Duration::ZERO, Duration::ZERO);
    let mut v_total = Duration::ZERO;
    let mut v_rss = 0i64;
    let (mut k_rss, mut p_rss) = (0i64, 0i64);
    let mut mismatched = Vec::new();
    for f in &fixtures {
        let kdir = temp.path().join("kustomize").join(&f.name);
        let kout = temp.path().join("kustomize.out.yaml");
        let k = best_of(reps, || {
            run(Command::new("kubectl").arg("kustomize").arg(&kdir), &kout)
        });
        let pout = temp.path().join("kpin.out.yaml");
        let p = best_of(reps, || run(&mut kpin_all(&[&f.name]), &pout));
        let v = best_of(reps, || {
            run(&mut kpin_all(&[&f.name, "--validate", "--quiet"]), &pout)
        });
        match (k, p, v) {
            (Ok(k), Ok(p), Ok(v)) => {
                let (kn, pn) = (object_count(&kout), object_count(&pout));
                if kn != pn {
                    mismatched.push(format!("{}: kustomize {kn} objects, kpin {pn}", f.name));
                }
                k_total += k.wall;
                p_total += p.wall;
                k_rss = k_rss.max(k.max_rss_kib);
                p_rss = p_rss.max(p.max_rss_kib);
                v_total += v.wall;
                v_rss = v_rss.max(v.max_rss_kib);
                println!(
                    "{:<58} {:>9.1} {:>8.1} | {:>9.1} {:>8.1} | {:>6.1}x | {:>9.1} {:>6.1}x {:>7}",
                    f.name,
                    k.wall.as_secs_f64() * 1e3,
                    mib(k.max_rss_kib),
                    p.wall.as_secs_f64() * 1e3,
                    mib(p.max_rss_kib),
                    k.wall.as_secs_f64() / p.wall.as_secs_f64(),
                    v.wall.as_secs_f64() * 1e3,
                    k.wall.as_secs_f64() / v.wall.as_secs_f64(),
                    pn
                );
            }
            (k, p, v) => println!(
                "{}: kustomize {:?} / kpin {:?} / kpin --validate {:?}",
                f.name,
                k.err(),
                p.err(),
                v.err()
            ),
        }
    }
    // One process for the newest release of every project (what a real kpin.yaml holds).
    let mut latest: Vec<&str> = Vec::new();
    for f in fixtures.iter().rev() {
        if !fixtures
            .iter()
            .any(|g| g.project == f.project && latest.contains(&g.name.as_str()))
        {
            latest.push(&f.name);
        }
    }
    let all = best_of(reps, || run(&mut kpin_all(&latest), &out));
    let mut latest_validated = latest.clone();
    latest_validated.extend(["--validate", "--quiet"]);
    let all_validated = best_of(reps, || run(&mut kpin_all(&latest_validated), &out));
    let latest_bytes: u64 = fixtures
        .iter()
        .filter(|f| latest.contains(&f.name.as_str()))
        .filter_map(|f| fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum();
    println!();
    let speed = k_total.as_secs_f64() / p_total.as_secs_f64();
    let mem = p_rss as f64 / k_rss as f64;
    println!(
        "per package, summed: kubectl kustomize {:.2} s, kpin {:.2} s -> kpin is {speed:.1}x faster (goal >= 10x: {})",
        k_total.as_secs_f64(),
        p_total.as_secs_f64(),
        if speed >= 10.0 { "met" } else { "MISSED" }
    );
    let with_validation = k_total.as_secs_f64() / v_total.as_secs_f64();
    println!(
        "render + validation, summed: kpin {:.2} s (validation costs {:.2} s, {:+.0}%; peak RSS {:.1} MiB) -> {with_validation:.1}x faster than kubectl kustomize alone (goal >= 8x: {})",
        v_total.as_secs_f64(),
        v_total.as_secs_f64() - p_total.as_secs_f64(),
        (v_total.as_secs_f64() / p_total.as_secs_f64() - 1.0) * 100.0,
        mib(v_rss),
        if with_validation >= 8.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "peak RSS: kubectl kustomize {:.1} MiB, kpin {:.1} MiB -> kpin uses {:.2} of it (goal <= 0.33: {})",
        mib(k_rss),
        mib(p_rss),
        mem,
        if mem <= 1.0 / 3.0 { "met" } else { "MISSED" }
    );
    match all {
        Ok(all) => println!(
            "kpin rendering the newest release of each of the {} projects ({:.1} MB) in one process: {:.0} ms, peak RSS {:.1} MiB",
            latest.len(),
            latest_bytes as f64 / 1e6,
            all.wall.as_secs_f64() * 1e3,
            mib(all.max_rss_kib),
        ),
        Err(e) => println!("kpin rendering several packages in one process failed: {e}"),
    }
    match all_validated {
        Ok(v) => println!(
            "the same with --validate: {:.0} ms, peak RSS {:.1} MiB",
            v.wall.as_secs_f64() * 1e3,
            mib(v.max_rss_kib),
        ),
        Err(e) => println!("kpin --validate of several packages in one process failed: {e}"),
    }
    for m in &mismatched {
        println!("warning: object counts differ: {m}");
    }
}
