//! `kpin sync` and `kpin verify` against a local HTTP(S) server: fetching, caching, the lockfile,
//! --locked/--offline, network faults, and all-or-nothing updates.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::http::{Fault, Server};
use crate::support::{Project, filter_ports, upstream_or_skip};

/// A small release file: one Namespace and one ConfigMap, distinct per package and version.
fn release(package: &str, version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {package}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {package}-config\n  namespace: {package}\ndata:\n  version: \"{version}\"\n"
    )
}

fn crds(package: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{package}.example.com\nspec:\n  group: {package}.example.com\n  names: {{kind: Widget, plural: widgets}}\n  scope: Namespaced\n  versions: []\n"
    )
}

/// kpin.lock with the server port and the port-dependent manifest digests masked.
fn lock_text(p: &Project) -> String {
    filter_ports(&p.read("kpin.lock"))
        .lines()
        .map(|l| match l.split_once("manifestDigest: ") {
            Some((indent, _)) => format!("{indent}manifestDigest: [DIGEST OF THE ENTRY]\n"),
            None => format!("{l}\n"),
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    kpin::digest::sha256_hex(bytes)
}

/// A project whose kpin.yaml is `manifest` with `{base}` replaced by the server's base URL.
fn project(server: &Server, manifest: &str) -> Project {
    let p = Project::new();
    p.write("kpin.yaml", &manifest.replace("{base}", &server.base()));
    p
}

/// Every file under the project's vendor/ and kpin.lock, with their bytes.
fn tree(p: &Project) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.insert(
                    format!("{}/", path.strip_prefix(root).unwrap().display()),
                    Vec::new(),
                );
                walk(&path, root, out);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&p.path().join("vendor"), p.path(), &mut out);
    if let Ok(lock) = std::fs::read(p.path().join("kpin.lock")) {
        out.insert("kpin.lock".into(), lock);
    }
    out
}

const TWO_PACKAGES: &str = "\
packages:
  web:
    version: 1.0.0
    urls:
      - {base}/web/v{version}/deploy.yaml
      - {base}/web/v{version}/crds.yaml
  metrics:
    version: 0.7.2
    github:
      repo: example/metrics
      assets: [components.yaml]
      apiUrl: {base}/api
";

/// A server publishing `TWO_PACKAGES` and a project whose kpin.yaml points at it.
fn two_packages() -> (Server, Project) {
    let server = Server::http();
    server
        .file("/web/v1.0.0/deploy.yaml", release("web", "1.0.0"))
        .file("/web/v1.0.0/crds.yaml", crds("web"))
        .github_release(
            "example/metrics",
            "v0.7.2",
            &[("components.yaml", release("metrics", "0.7.2").as_bytes())],
        );
    let p = project(&server, TWO_PACKAGES);
    (server, p)
}

#[test]
fn first_sync_vendors_every_file_and_writes_the_lockfile() {
    let (server, p) = two_packages();

    let run = p.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(
        p.read("vendor/web/1.0.0/deploy.yaml"),
        release("web", "1.0.0")
    );
    assert_eq!(p.read("vendor/web/1.0.0/crds.yaml"), crds("web"));
    assert_eq!(
        p.read("vendor/metrics/0.7.2/components.yaml"),
        release("metrics", "0.7.2")
    );
    insta::assert_snapshot!("first_sync_lockfile", lock_text(&p));

    // The asset came through the API with the binary Accept header, and without a token
    // (none is set) nothing carries credentials.
    let asset = server
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/releases/assets/"))
        .unwrap();
    assert_eq!(
        asset.headers.get("accept").map(String::as_str),
        Some("application/octet-stream")
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| !r.headers.contains_key("authorization"))
    );
    let verify = p.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
}

#[test]
fn github_token_goes_to_the_api_only() {
    let (server, p) = two_packages();
    let run = p.run_with(&["sync"], |c| c.env("GITHUB_TOKEN", "t0ken"));
    assert_eq!(run.code, 0, "{}", run.transcript());
    for r in server.requests() {
        let auth = r.headers.get("authorization").map(String::as_str);
        if r.path.starts_with("/api/") {
            assert_eq!(auth, Some("Bearer t0ken"), "{}", r.path);
        } else {
            assert_eq!(auth, None, "{}", r.path);
        }
    }
}

#[test]
fn second_sync_downloads_nothing_and_the_cache_restores_vendor() {
    let (server, p) = two_packages();
    assert_eq!(p.run(&["sync"]).code, 0);
    let after_first = server.request_count();
    let lock = p.read("kpin.lock");

    let run = p.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(
        server.request_count(),
        after_first,
        "a second sync makes no requests"
    );
    assert!(run.stderr.contains("nothing downloaded"), "{}", run.stderr);

    std::fs::remove_dir_all(p.path().join("vendor")).unwrap();
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(
        server.request_count(),
        after_first,
        "vendor/ is restored from the cache"
    );
    assert!(run.stderr.contains("Cached web 1.0.0"), "{}", run.stderr);
    assert_eq!(
        p.read("vendor/web/1.0.0/deploy.yaml"),
        release("web", "1.0.0")
    );
    assert_eq!(p.read("kpin.lock"), lock);

    let run = p.run(&["sync", "--locked", "--offline"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn locked_github_files_download_again_through_the_api() {
    let (server, p) = two_packages();
    assert_eq!(p.run(&["sync"]).code, 0);
    let before = tree(&p);
    std::fs::remove_dir_all(p.path().join("vendor")).unwrap();
    std::fs::remove_dir_all(p.cache.path().join("sha256")).unwrap();
    let requests = server.request_count();

    let run = p.run_with(&["sync", "--locked"], |c| c.env("GITHUB_TOKEN", "t0ken"));
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(tree(&p), before);
    let again: Vec<_> = server.requests().into_iter().skip(requests).collect();
    let asset = again
        .iter()
        .find(|r| r.path.contains("/releases/assets/"))
        .expect("asset API used");
    assert_eq!(
        asset.headers.get("authorization").map(String::as_str),
        Some("Bearer t0ken")
    );
}

#[test]
fn the_cache_defaults_to_the_xdg_cache_dir_then_home() {
    let server = Server::http();
    server.file("/a/1.0.0/a.yaml", release("a", "1.0.0"));
    let p = project(
        &server,
        "packages:\n  a:\n    version: 1.0.0\n    url: {base}/a/{version}/a.yaml\n",
    );
    let digest = sha256(release("a", "1.0.0").as_bytes());
    let entry = format!("sha256/{}/{digest}", &digest[..2]);

    let xdg = tempfile::tempdir().unwrap();
    let run = p.run_with(&["sync"], |c| {
        c.env_remove("KPIN_CACHE_DIR")
            .env("XDG_CACHE_HOME", xdg.path())
    });
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(xdg.path().join("kpin").join(&entry).is_file());

    std::fs::remove_dir_all(p.path().join("vendor")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let run = p.run_with(
        &["sync", "--cache-dir", p.cache.path().to_str().unwrap()],
        |c| {
            c.env_remove("KPIN_CACHE_DIR")
                .env_remove("XDG_CACHE_HOME")
                .env("HOME", home.path())
        },
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(p.cache.path().join(&entry).is_file(), "--cache-dir wins");
    assert!(!home.path().join(".cache").exists());

    std::fs::remove_dir_all(p.path().join("vendor")).unwrap();
    let run = p.run_with(&["sync"], |c| {
        c.env_remove("KPIN_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env("HOME", home.path())
    });
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(home.path().join(".cache/kpin").join(&entry).is_file());
}

#[test]
fn the_size_limit_is_enforced() {
    let server = Server::http();
    server.file("/big.yaml", vec![b'#'; 4096]);
    let url = url::Url::parse(&server.url("/big.yaml")).unwrap();
    let options = kpin::fetch::NetOptions {
        max_size: 1000,
        ..Default::default()
    };
    let client = kpin::fetch::Client::new(options).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = runtime
        .block_on(client.download(&url, kpin::fetch::Auth::None, dir.path(), &|_| {}))
        .err()
        .expect("refused");
    let text = filter_ports(&kpin::error::format_error(&err));
    assert!(
        text.contains("larger than the limit of 1000 bytes"),
        "{text}"
    );
    assert!(
        text.contains("hint: raise the limit with --max-size"),
        "{text}"
    );
    assert_eq!(server.hits("/big.yaml"), 1, "not retried");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial file left"
    );
}

#[test]
fn locked_fails_with_drift_on_a_stale_or_missing_lockfile() {
    let (server, p) = two_packages();
    server
        .file("/web/v1.1.0/deploy.yaml", release("web", "1.1.0"))
        .file("/web/v1.1.0/crds.yaml", crds("web"));

    let run = p.run(&["sync", "--locked"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    insta::assert_snapshot!("locked_missing_lockfile", run.transcript());
    assert!(!p.path().join("kpin.lock").exists());

    assert_eq!(p.run(&["sync"]).code, 0);
    let before = tree(&p);
    p.write(
        "kpin.yaml",
        &TWO_PACKAGES
            .replace("1.0.0", "1.1.0")
            .replace("{base}", &server.base()),
    );
    let requests = server.request_count();
    let run = p.run(&["sync", "--locked"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    insta::assert_snapshot!("locked_stale_lockfile", run.transcript());
    assert_eq!(tree(&p), before, "--locked never rewrites kpin.lock");
    assert_eq!(
        server.request_count(),
        requests,
        "the drift is found before any download"
    );
}

#[test]
fn offline_fails_clearly_when_files_are_missing() {
    let (server, p) = two_packages();

    // Not locked yet: the GitHub release cannot be looked up offline.
    let run = p.run(&["sync", "--offline"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert_eq!(server.request_count(), 0);

    assert_eq!(p.run(&["sync"]).code, 0);
    let requests = server.request_count();
    std::fs::remove_dir_all(p.path().join("vendor/web")).unwrap();
    for e in std::fs::read_dir(p.cache.path()).unwrap() {
        std::fs::remove_dir_all(e.unwrap().path()).unwrap();
    }
    let run = p.run(&["sync", "--offline"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    insta::assert_snapshot!("offline_missing_file", run.transcript());
    assert_eq!(
        server.request_count(),
        requests,
        "--offline never touches the network"
    );
    assert!(!p.path().join("vendor/web").exists());
}

#[test]
fn digest_mismatch_against_the_lockfile_changes_nothing() {
    let (server, p) = two_packages();
    assert_eq!(p.run(&["sync"]).code, 0);

    // Upstream re-published the file; the vendored copy is gone and the cache is cold.
    server.file("/web/v1.0.0/deploy.yaml", release("web", "1.0.0-evil"));
    std::fs::write(p.path().join("vendor/web/1.0.0/deploy.yaml"), "edited\n").unwrap();
    std::fs::remove_dir_all(p.cache.path().join("sha256")).unwrap();
    let before = tree(&p);
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    let expected = sha256(release("web", "1.0.0").as_bytes());
    let actual = sha256(release("web", "1.0.0-evil").as_bytes());
    assert!(
        run.stderr
            .contains(&format!("expected {expected} (kpin.lock), got {actual}")),
        "{}",
        run.stderr
    );
    insta::assert_snapshot!("digest_mismatch_lockfile", run.transcript());
    assert_eq!(tree(&p), before, "nothing in vendor/ or kpin.lock changes");
}

#[test]
fn digest_mismatch_against_a_pin() {
    let server = Server::http();
    server.file("/a/1.0.0/a.yaml", release("a", "1.0.0"));
    let p = project(
        &server,
        &format!(
            "packages:\n  a:\n    version: 1.0.0\n    url: {{base}}/a/{{version}}/a.yaml\n    sha256: '{}'\n",
            "0".repeat(64)
        ),
    );
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    insta::assert_snapshot!("digest_mismatch_pin", run.transcript());
    assert!(!p.path().join("kpin.lock").exists());
    assert!(!p.path().join("vendor/a").exists());

    // The right pin is accepted.
    p.write(
        "kpin.yaml",
        &p.read("kpin.yaml")
            .replace(&"0".repeat(64), &sha256(release("a", "1.0.0").as_bytes())),
    );
    assert_eq!(p.run(&["sync"]).code, 0);
}

#[test]
fn pinned_files_come_from_the_shared_cache_even_before_they_are_locked() {
    let server = Server::http();
    server.file("/a/1.0.0/a.yaml", release("a", "1.0.0"));
    let manifest = format!(
        "packages:\n  a:\n    version: 1.0.0\n    url: {{base}}/a/{{version}}/a.yaml\n    sha256: '{}'\n",
        sha256(release("a", "1.0.0").as_bytes())
    );
    let first = project(&server, &manifest);
    assert_eq!(first.run(&["sync"]).code, 0);

    // Another checkout sharing the cache: no lockfile yet, offline, and still complete.
    let second = project(&server, &manifest);
    let cache = first.cache.path().to_str().unwrap();
    let run = second.run(&["sync", "--offline", "--cache-dir", cache]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(server.request_count(), 1);
    assert_eq!(second.read("kpin.lock"), first.read("kpin.lock"));
}

#[test]
fn not_found_is_an_error_with_a_hint() {
    let server = Server::http();
    let p = project(
        &server,
        "packages:\n  a:\n    version: 9.9.9\n    url: {base}/a/{version}/a.yaml\n",
    );
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 2);
    insta::assert_snapshot!("not_found", run.transcript());
    assert_eq!(server.hits("/a/9.9.9/a.yaml"), 1, "a 404 is not retried");
}

#[test]
fn server_errors_and_429_are_retried() {
    let server = Server::http();
    server
        .file("/a/1.0.0/a.yaml", release("a", "1.0.0"))
        .fail_next("/a/1.0.0/a.yaml", Fault::Status(500))
        .fail_next("/a/1.0.0/a.yaml", Fault::TooManyRequests(0));
    let p = project(
        &server,
        "packages:\n  a:\n    version: 1.0.0\n    url: {base}/a/{version}/a.yaml\n",
    );
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(server.hits("/a/1.0.0/a.yaml"), 3);
    assert_eq!(p.read("vendor/a/1.0.0/a.yaml"), release("a", "1.0.0"));
}

#[test]
fn persistent_server_errors_give_up_after_the_retries() {
    let server = Server::http();
    server
        .file("/a/1.0.0/a.yaml", "x")
        .fail_always("/a/1.0.0/a.yaml", Fault::Status(503));
    let p = project(
        &server,
        "packages:\n  a:\n    version: 1.0.0\n    url: {base}/a/{version}/a.yaml\n",
    );
    let run = p.run(&["sync", "--retries", "1"]);
    assert_eq!(run.code, 2);
    insta::assert_snapshot!("server_error_after_retries", run.transcript());
    assert_eq!(server.hits("/a/1.0.0/a.yaml"), 2);
}

#[test]
fn truncated_bodies_are_detected_and_retried() {
    let server = Server::http();
    let body = release("a", "1.0.0");
    server
        .file("/a/1.0.0/a.yaml", body.clone())
        .fail_always("/a/1.0.0/a.yaml", Fault::Truncate);
    let p = project(
        &server,
        "packages:\n  a:\n    version: 1.0.0\n    url: {base}/a/{version}/a.yaml\n",
    );
    let run = p.run(&["sync", "--retries", "1"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains(&format!(
            "body truncated after {} of {} bytes",
            body.len() / 2,
            body.len()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(server.hits("/a/1.0.0/a.yaml"), 2);
    assert!(!p.path().join("vendor").join("a").exists());

    // A single truncated response is healed by the retry.
    let server = Server::http();
    server
        .file("/a/1.0.0/a.yaml", body.clone())
        .fail_next("/a/1.0.0/a.yaml", Fault::Truncate);
    let p = project(
        &server,
        "packages:\n  a:\n    version: 1.0.0\n    url: {base}/a/{version}/a.yaml\n",
    );
    assert_eq!(p.run(&["sync"]).code, 0);
    assert_eq!(p.read("vendor/a/1.0.0/a.yaml"), body);
}

#[test]
fn a_slow_server_times_out() {
    let server = Server::http();
    server
        .file("/a/1.0.0/a.yaml", "x")
        .fail_always("/a/1.0.0/a.yaml", Fault::Delay(Duration::from_secs(5)));
    let p = project(
        &server,
        "packages:\n  a:\n    version: 1.0.0\n    url: {base}/a/{version}/a.yaml\n",
    );
    let started = std::time::Instant::now();
    let run = p.run(&["sync", "--timeout", "1", "--retries", "0"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "gave up after the timeout"
    );
    insta::assert_snapshot!("timeout", run.transcript());
}

#[test]
fn https_with_an_extra_ca_certificate() {
    let server = Server::https();
    server.file("/a/1.0.0/a.yaml", release("a", "1.0.0"));
    let p = project(
        &server,
        "packages:\n  a:\n    version: 1.0.0\n    url: {base}/a/{version}/a.yaml\n",
    );
    let run = p.run(&["sync", "--retries", "0"]);
    assert_eq!(
        run.code,
        2,
        "an unknown CA is refused: {}",
        run.transcript()
    );
    assert!(run.stderr.contains("certificate"), "{}", run.stderr);
    assert!(
        run.stderr.contains("extra CAs from --ca-cert"),
        "the hint names the way out: {}",
        run.stderr
    );

    let ca = server.ca_path();
    let run = p.run(&["sync", "--ca-cert", ca.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(p.read("vendor/a/1.0.0/a.yaml"), release("a", "1.0.0"));

    // SSL_CERT_FILE works too (cold cache and vendor).
    std::fs::remove_dir_all(p.path().join("vendor")).unwrap();
    std::fs::remove_dir_all(p.cache.path().join("sha256")).unwrap();
    let run = p.run_with(&["sync"], |c| c.env("SSL_CERT_FILE", &ca));
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn plain_http_is_refused_for_remote_hosts() {
    let p = Project::new();
    p.write("kpin.yaml", "packages:\n  a:\n    version: 1.0.0\n    url: http://mirror.example.invalid/a/{version}/a.yaml\n");
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 2);
    insta::assert_snapshot!("plain_http_refused", run.transcript());
}

#[test]
fn an_interrupted_sync_leaves_the_previous_state_intact() {
    let server = Server::http();
    for pkg in ["a", "b", "c"] {
        for v in ["1.0.0", "2.0.0"] {
            server.file(&format!("/{pkg}/{v}/{pkg}.yaml"), release(pkg, v));
        }
    }
    let manifest = |v: &str| {
        ["a", "b", "c"]
            .iter()
            .fold("packages:\n".to_owned(), |m, pkg| {
                m + &format!(
                    "  {pkg}:\n    version: {v}\n    url: {{base}}/{pkg}/{{version}}/{pkg}.yaml\n"
                )
            })
    };
    let p = project(&server, &manifest("1.0.0"));
    assert_eq!(p.run(&["sync"]).code, 0);
    let before = tree(&p);

    // The second of three downloads fails: the other two have already been fetched.
    server.fail_always("/b/2.0.0/b.yaml", Fault::Status(404));
    p.write(
        "kpin.yaml",
        &manifest("2.0.0").replace("{base}", &server.base()),
    );
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert_eq!(
        server.hits("/a/2.0.0/a.yaml") + server.hits("/c/2.0.0/c.yaml"),
        2
    );
    assert_eq!(
        tree(&p),
        before,
        "vendor/ and kpin.lock are byte-identical to before"
    );
}

#[test]
fn a_killed_sync_leaves_the_previous_state_intact() {
    let server = Server::http();
    for v in ["1.0.0", "2.0.0"] {
        server
            .file(&format!("/a/{v}/a.yaml"), release("a", v))
            .file(&format!("/b/{v}/b.yaml"), release("b", v));
    }
    let manifest = |v: &str| {
        format!(
            "packages:\n  a:\n    version: {v}\n    url: {{base}}/a/{{version}}/a.yaml\n  b:\n    version: {v}\n    url: {{base}}/b/{{version}}/b.yaml\n"
        )
    };
    let p = project(&server, &manifest("1.0.0"));
    assert_eq!(p.run(&["sync"]).code, 0);
    let before = tree(&p);

    // `a` arrives at once, `b` hangs: kill the sync while it waits.
    server.fail_always("/b/2.0.0/b.yaml", Fault::Delay(Duration::from_secs(30)));
    p.write(
        "kpin.yaml",
        &manifest("2.0.0").replace("{base}", &server.base()),
    );
    let mut child = p
        .kpin()
        .args(["sync"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.hits("/b/2.0.0/b.yaml") == 0 || server.hits("/a/2.0.0/a.yaml") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "sync never reached the slow download"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();

    let mut after = tree(&p);
    after.retain(|path, _| !path.starts_with("vendor/.kpin-"));
    assert_eq!(
        after, before,
        "only a hidden staging directory may be left behind"
    );
    let run = p.run(&["sync", "--timeout", "1", "--retries", "0"]);
    assert_eq!(run.code, 2, "b still hangs: {}", run.transcript());
    server.fail_always("/b/2.0.0/b.yaml", Fault::Delay(Duration::ZERO));
    assert_eq!(p.run(&["sync"]).code, 0);
    assert!(
        tree(&p)
            .keys()
            .all(|path| !path.starts_with("vendor/.kpin-")),
        "leftovers are cleaned up"
    );
}

#[test]
fn new_versions_replace_old_directories_and_removed_packages_go() {
    let (server, p) = two_packages();
    server
        .file("/web/v1.1.0/deploy.yaml", release("web", "1.1.0"))
        .file("/web/v1.1.0/crds.yaml", crds("web"));
    assert_eq!(p.run(&["sync"]).code, 0);

    let only_web = TWO_PACKAGES
        .split("  metrics:")
        .next()
        .unwrap()
        .replace("1.0.0", "1.1.0");
    p.write("kpin.yaml", &only_web.replace("{base}", &server.base()));
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let files: Vec<String> = tree(&p).into_keys().collect();
    assert_eq!(
        files,
        [
            "kpin.lock",
            "vendor/web/",
            "vendor/web/1.1.0/",
            "vendor/web/1.1.0/crds.yaml",
            "vendor/web/1.1.0/deploy.yaml"
        ]
    );
    assert!(
        run.stderr.contains("Removed vendor/metrics"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Removed vendor/web/1.0.0"),
        "{}",
        run.stderr
    );
    assert!(!p.read("kpin.lock").contains("metrics"));
}

#[test]
fn local_path_and_file_url_sources() {
    let p = Project::new();
    p.write("mirror/web/1.0.0/deploy.yaml", &release("web", "1.0.0"))
        .write("mirror/web/1.0.0/crds.yml", &crds("web"))
        .write("mirror/web/1.0.0/README.md", "not vendored")
        .write("mirror/single/3/single.yaml", &release("single", "3"));
    let file_url = url::Url::from_file_path(p.path().join("mirror/single/3/single.yaml"))
        .unwrap()
        .as_str()
        .replace("/3/", "/{version}/");
    p.write(
        "kpin.yaml",
        &format!("packages:\n  web:\n    version: 1.0.0\n    path: mirror/web/{{version}}\n  single:\n    version: '3'\n    url: {file_url}\n"),
    );
    let run = p.run(&["sync", "--offline"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let lock = p.read("kpin.lock");
    assert!(
        lock.contains("url: path:mirror/web/1.0.0/crds.yml"),
        "{lock}"
    );
    assert!(!p.path().join("vendor/web/1.0.0/README.md").exists());
    assert_eq!(
        p.read("vendor/single/3/single.yaml"),
        release("single", "3")
    );

    // Local sources are re-read each time: an edited mirror file is drift for --locked.
    p.write("mirror/web/1.0.0/deploy.yaml", &release("web", "1.0.1"));
    let verify = p.run(&["verify"]);
    assert_eq!(verify.code, 1, "{}", verify.transcript());
    assert!(
        verify
            .stdout
            .contains("web: local source file `deploy.yaml` changed since it was locked")
    );
    let run = p.run(&["sync", "--locked"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("would change (--locked): package `web`"),
        "{}",
        run.stderr
    );
}

#[test]
fn manifest_errors_are_reported_with_file_and_field() {
    let p = Project::new();
    p.write(
        "kpin.yaml",
        "packages:\n  a:\n    version: 1.0.0\n    url: [unclosed\n",
    );
    insta::assert_snapshot!("invalid_yaml", p.run(&["sync"]).transcript());

    p.write(
        "kpin.yaml",
        "packages:\n  a:\n    version: 1.0.0\n    url: https://example.com/a.yaml\n    sha: abc\n",
    );
    insta::assert_snapshot!("unknown_key", p.run(&["sync"]).transcript());

    p.write(
        "kpin.yaml",
        "packages:\n  ../escape:\n    version: 1.0.0\n    url: https://example.com/a.yaml\n",
    );
    insta::assert_snapshot!("bad_package_name", p.run(&["sync"]).transcript());
    assert!(!p.path().join("vendor").exists());
}

#[test]
fn an_empty_manifest_or_lockfile_says_so() {
    let p = Project::new();
    p.write("kpin.yaml", "# packages come later\n");
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("error: [PROJECT]/kpin.yaml: the file is empty or only has comments\n  hint: start with `packages:"),
        "{}",
        run.stderr
    );

    p.write("kpin.yaml", "packages: {}\n")
        .write("kpin.lock", "");
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "kpin.lock: the file is empty or only has comments\n  hint: the lockfile is generated"
        ),
        "{}",
        run.stderr
    );
    p.write("kpin.lock", "- a\n");
    let run = p.run(&["verify"]);
    assert!(
        run.stderr
            .contains("kpin.lock: expected a mapping at the top of the file, found a list"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_vendor_dir_that_is_a_file_is_named_before_anything_is_fetched() {
    let (server, p) = two_packages();
    p.write("vendor", "not a directory\n");
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert_eq!(
        run.stderr,
        "error: [PROJECT]/kpin.yaml: vendorDir [PROJECT]/vendor is not a directory\n  hint: kpin keeps the vendored releases there: make it a writable directory, or point `vendorDir` in kpin.yaml elsewhere\n"
    );
    assert_eq!(server.request_count(), 0);
}

#[test]
fn lockfile_names_that_are_not_plain_names_are_refused() {
    let (_server, p) = two_packages();
    assert_eq!(p.run(&["sync"]).code, 0);
    let lock = p.read("kpin.lock");
    p.write(
        "kpin.lock",
        &lock.replace("name: crds.yaml", "name: ../../crds.yaml"),
    );
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.starts_with("error: [PROJECT]/kpin.lock: package `web`\n  caused by: `../../crds.yaml` cannot be used as a file or directory name"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: the lockfile is generated"),
        "{}",
        run.stderr
    );

    p.write("kpin.lock", &lock.replace("  web:", "  ../web:"));
    let run = p.run(&["sync", "--offline"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("package `../web`\n  caused by: invalid package name `../web`"),
        "{}",
        run.stderr
    );
}

#[test]
fn verify_lists_every_problem() {
    let (server, p) = two_packages();
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "kpin.lock is missing\n");

    assert_eq!(p.run(&["sync"]).code, 0);
    std::fs::write(p.path().join("vendor/web/1.0.0/deploy.yaml"), "tampered\n").unwrap();
    std::fs::remove_file(p.path().join("vendor/web/1.0.0/crds.yaml")).unwrap();
    p.write("vendor/web/1.0.0/extra.yaml", "{}\n")
        .write("vendor/web/0.9.0/x.yaml", "{}\n")
        // A Go vendor tree is not kpin's: no problem for verify, and sync leaves it alone.
        .write("vendor/github.com/x/y/go.mod", "module y\n");
    p.write("kpin.yaml", &p.read("kpin.yaml").replace("0.7.2", "0.8.0"));
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!("verify_problems", run.transcript());
    let json = p.run(&["verify", "--output", "json"]);
    assert_eq!(json.code, 1);
    insta::assert_snapshot!("verify_problems_json", json.stdout);

    // `kpin sync` repairs everything verify complained about.
    server.github_release(
        "example/metrics",
        "v0.8.0",
        &[("components.yaml", release("metrics", "0.8.0").as_bytes())],
    );
    let sync = p.run(&["sync"]);
    assert_eq!(sync.code, 0, "{}", sync.transcript());
    assert!(
        sync.stderr.contains(
            "warning: vendor/github.com is not a package kpin manages (not in kpin.yaml or kpin.lock); kpin leaves it alone"
        ),
        "{}",
        sync.stderr
    );
    assert!(
        sync.stderr.contains("Removed vendor/web/0.9.0"),
        "{}",
        sync.stderr
    );
    assert_eq!(p.read("vendor/github.com/x/y/go.mod"), "module y\n");
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn verify_sends_only_what_sync_can_fix_to_sync() {
    let p = Project::new();
    p.write("mirror/1.0.0/web.yaml", &release("web", "1.0.0"))
        .write(
            "overlays/web.yaml",
            "operations:\n- labels: {select: {kind: ConfigMap}, set: {team: web}}\n",
        )
        .write(
            "kpin.yaml",
            "packages:\n  web:\n    version: 1.0.0\n    path: mirror/{version}\n    overlays: [overlays/web.yaml]\n",
        );
    assert_eq!(p.run(&["sync"]).code, 0);
    // The overlay now selects nothing: a render failure, which sync cannot repair.
    p.write(
        "overlays/web.yaml",
        "operations:\n- labels: {select: {kind: Secret}, set: {team: web}}\n",
    );
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.starts_with("web: does not render: "),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("warning: 1 problem found; fix the overlays or kpin.yaml of the packages that do not render (`kpin sync` cannot fix that)\n"),
        "{}",
        run.stderr
    );
    assert_eq!(p.run(&["sync"]).code, 0);
    let after_sync = p.run(&["verify"]);
    assert_eq!(after_sync.code, 1, "sync indeed cannot fix it");
    assert!(after_sync.stdout.starts_with("web: does not render: "));

    // Next to a problem sync does fix (a package not locked yet), both are named.
    p.write("other/1.0.0/other.yaml", &release("other", "1.0.0"))
        .write(
            "kpin.yaml",
            &format!(
                "{}  other:\n    version: 1.0.0\n    path: other/{{version}}\n",
                p.read("kpin.yaml")
            ),
        );
    let run = p.run(&["verify"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.contains("2 problems found; fix the overlays or kpin.yaml of the packages that do not render (`kpin sync` cannot fix that); for the rest run `kpin sync`"),
        "{}",
        run.stderr
    );
    let locked = p.run(&["render", "--locked"]);
    assert_eq!(locked.code, 1, "{}", locked.transcript());
    assert!(
        locked
            .stderr
            .contains("hint: fix the overlays or kpin.yaml of the packages that do not render"),
        "{}",
        locked.stderr
    );
}

#[test]
fn offline_sync_says_a_vendored_file_was_modified() {
    let (_server, p) = two_packages();
    assert_eq!(p.run(&["sync"]).code, 0);
    let locked = sha256(release("web", "1.0.0").as_bytes());
    std::fs::write(p.path().join("vendor/web/1.0.0/deploy.yaml"), "tampered\n").unwrap();
    // The cache would restore it; without one the file must come from upstream.
    std::fs::remove_dir_all(p.cache.path()).unwrap();
    let run = p.run(&["sync", "--offline"]);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(
        run.stderr.contains(&format!(
            "package `web`: vendor/web/1.0.0/deploy.yaml was modified (sha256 {}, locked {locked}), and --offline forbids downloading it again from http://[HOST]/web/v1.0.0/deploy.yaml",
            sha256(b"tampered\n")
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: restore it from version control (`git checkout -- vendor/web/1.0.0/deploy.yaml`), or run `kpin sync` with network access"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("neither in vendor/ nor in the cache"));
}

#[cfg(unix)]
#[test]
fn written_files_get_the_mode_the_umask_gives() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Project, rel: &str| {
        std::fs::metadata(p.path().join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    for (umask, file, dir) in [("022", 0o644, 0o755), ("077", 0o600, 0o700)] {
        let p = Project::new();
        p.write("mirror/1.0.0/a.yaml", &release("a", "1.0.0"))
            .write("mirror/2.0.0/a.yaml", &release("a", "2.0.0"))
            .write(
                "kpin.yaml",
                "packages:\n  a:\n    version: 1.0.0\n    path: mirror/{version}\n",
            );
        // As a checkout under this umask would have it.
        std::fs::set_permissions(
            p.path().join("kpin.yaml"),
            std::fs::Permissions::from_mode(file),
        )
        .unwrap();

        let run = p.run_with_umask(umask, &["sync"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        assert_eq!(mode(&p, "kpin.lock"), file, "umask {umask}: kpin.lock");
        assert_eq!(mode(&p, "vendor/a/1.0.0/a.yaml"), file, "umask {umask}");
        assert_eq!(mode(&p, "vendor/a/1.0.0"), dir, "umask {umask}");

        let run = p.run_with_umask(umask, &["upgrade", "a", "--to", "2.0.0"]);
        assert_eq!(run.code, 0, "{}", run.transcript());
        for rel in ["kpin.yaml", "kpin.lock", "vendor/a/2.0.0/a.yaml"] {
            assert_eq!(mode(&p, rel), file, "umask {umask}: {rel}");
        }
        assert_eq!(mode(&p, "vendor/a/2.0.0"), dir, "umask {umask}");
    }
    // A replaced file keeps the mode it had, whatever the umask.
    let p = Project::new();
    p.write("mirror/1.0.0/a.yaml", &release("a", "1.0.0"))
        .write("mirror/2.0.0/a.yaml", &release("a", "2.0.0"))
        .write(
            "kpin.yaml",
            "packages:\n  a:\n    version: 1.0.0\n    path: mirror/{version}\n",
        );
    std::fs::set_permissions(
        p.path().join("kpin.yaml"),
        std::fs::Permissions::from_mode(0o664),
    )
    .unwrap();
    assert_eq!(p.run_with_umask("022", &["sync"]).code, 0);
    assert_eq!(
        p.run_with_umask("022", &["upgrade", "a", "--to", "2.0.0"])
            .code,
        0
    );
    assert_eq!(mode(&p, "kpin.yaml"), 0o664);
}

#[test]
fn github_releases_are_listed_across_pages_and_rate_limits_are_clear() {
    let server = Server::http();
    let tags: Vec<String> = (0..7).map(|i| format!("v1.{i}.0")).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    server.github_release_list("example/many", &tags, 3);
    server
        .file("/api/repos/example/limited/releases?per_page=100", "[]")
        .fail_always(
            "/api/repos/example/limited/releases?per_page=100",
            Fault::RateLimit,
        );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = kpin::fetch::Client::new(kpin::fetch::NetOptions::default()).unwrap();
    let api = server.api_url();

    let releases = runtime
        .block_on(kpin::fetch::github::list_releases(
            &client,
            &api,
            "example/many",
        ))
        .unwrap();
    let listed: Vec<&str> = releases.iter().map(|r| r.tag_name.as_str()).collect();
    assert_eq!(listed, tags);
    assert_eq!(server.request_count(), 3, "three pages");

    let err = runtime
        .block_on(kpin::fetch::github::list_releases(
            &client,
            &api,
            "example/limited",
        ))
        .unwrap_err();
    let text = filter_ports(&kpin::error::format_error(&err));
    insta::assert_snapshot!("github_rate_limit", text);
    assert_eq!(
        server.hits("/api/repos/example/limited/releases?per_page=100"),
        1,
        "a rate limit is not retried"
    );
}

/// The real upstream releases in ../shared/upstream, served locally and synced: every file's
/// sha256 in kpin.lock and vendor/ must match INDEX.tsv.
#[test]
fn real_upstream_releases_sync_with_their_published_digests() {
    let Some(upstream) =
        upstream_or_skip("sync::real_upstream_releases_sync_with_their_published_digests")
    else {
        return;
    };
    let index = std::fs::read_to_string(upstream.join("INDEX.tsv")).unwrap();
    let mut lines = index.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (c_project, c_version, c_file, c_sha) =
        (col("project"), col("version"), col("file"), col("sha256"));

    let server = Server::http();
    // package name -> (version, files)
    let mut packages: BTreeMap<String, (String, Vec<(String, String)>)> = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (project, version, file, sha) = (f[c_project], f[c_version], f[c_file], f[c_sha]);
        let bytes = std::fs::read(upstream.join(project).join(version).join(file)).unwrap();
        server.file(&format!("/{project}/{version}/{file}"), bytes);
        // One package per release file: ingress-nginx's cloud and aws variants are
        // alternatives (the same objects twice), not parts of one install.
        let stem = file.trim_end_matches(".yaml");
        let name = format!("{project}-{}-{stem}", version.replace('.', "-"));
        let entry = packages
            .entry(name)
            .or_insert_with(|| (version.to_owned(), Vec::new()));
        entry.1.push((
            format!("{{base}}/{project}/{{version}}/{file}"),
            sha.to_owned(),
        ));
    }
    let mut manifest = String::from("packages:\n");
    for (name, (version, files)) in &packages {
        manifest += &format!("  {name}:\n    version: {version}\n    urls:\n");
        for (url, _) in files {
            manifest += &format!("      - {url}\n");
        }
    }
    let p = project(&server, &manifest);
    let run = p.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.transcript());

    let lock = kpin::vendoring::lockfile::Lockfile::load(&p.path().join("kpin.lock"))
        .unwrap()
        .unwrap();
    let mut checked = 0;
    for (name, (version, files)) in &packages {
        let locked = &lock.packages[name];
        for (url, sha) in files {
            let file = url.rsplit('/').next().unwrap();
            let entry = locked.version(version).unwrap();
            let entry = entry.files.iter().find(|f| f.name == file).unwrap();
            assert_eq!(&entry.sha256, sha, "{name}/{file} in kpin.lock");
            let vendored =
                std::fs::read(p.path().join("vendor").join(name).join(version).join(file)).unwrap();
            assert_eq!(&sha256(&vendored), sha, "{name}/{file} in vendor/");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} upstream files checked");
    assert_eq!(p.run(&["verify"]).code, 0);
}
