//! Real chart tooling for tests: helm (`KPIN_HELM`) packages charts and builds repository
//! indexes, the distribution registry (`KPIN_REGISTRY`) serves them as an OCI registry on
//! loopback, with basic auth when asked. Both are built from Go modules by `tools/go-tool`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo_root;

/// User and password of the registry instance with basic auth.
pub const REGISTRY_USER: &str = "kpin";
pub const REGISTRY_PASSWORD: &str = "kpin-test-password";

/// The helm binary `.ci/run` builds, or None (the calling test is skipped).
pub fn helm_or_skip(test: &str) -> Option<PathBuf> {
    tool_or_skip(test, "KPIN_HELM", "helm")
}

fn tool_or_skip(test: &str, var: &str, name: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os(var).map(PathBuf::from) else {
        super::skip(
            test,
            &format!("{var} is not set ({var}=$(tools/go-tool {name}) to run it)"),
        );
        return None;
    };
    assert!(path.is_file(), "{var}={} is no file", path.display());
    Some(path)
}

/// `../shared/upstream-charts/`, or None (the calling test is skipped).
pub fn upstream_charts_or_skip(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("KPIN_UPSTREAM_CHARTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/upstream-charts"));
    if dir.join("INDEX.tsv").is_file() {
        Some(dir)
    } else {
        super::skip(
            test,
            "../shared/upstream-charts/ is absent (set KPIN_UPSTREAM_CHARTS_DIR to run it)",
        );
        None
    }
}

/// One chart of `../shared/upstream-charts/INDEX.tsv`.
#[derive(Debug, Clone)]
pub struct UpstreamChart {
    pub name: String,
    pub version: String,
    pub dir: PathBuf,
    /// `name@version` of a dependency that is not inside the chart's folder.
    pub missing_dependency: Option<(String, String)>,
}

/// Every chart and version the index lists, but those published only as another chart's
/// dependency.
pub fn upstream_charts(dir: &Path) -> Vec<UpstreamChart> {
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    let mut out = Vec::new();
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, version, deps, notes) = (cols[0], cols[1], cols[10], cols[11]);
        if notes.starts_with("dependency source for") {
            continue;
        }
        let missing_dependency = (notes.contains("NOT vendored in charts/"))
            .then(|| deps.split_once('@'))
            .flatten()
            .map(|(n, v)| (n.to_owned(), v.trim_start_matches('v').to_owned()));
        out.push(UpstreamChart {
            name: name.to_owned(),
            version: version.to_owned(),
            dir: dir.join(name).join(version),
            missing_dependency,
        });
    }
    out
}

/// Package each of `charts` and push it to `registry` (logging in first when `login`); the
/// archives by (name, version).
pub fn publish(
    helm_bin: &Path,
    home: &Path,
    registry: &Registry,
    charts: &[UpstreamChart],
    login: bool,
) -> std::collections::BTreeMap<(String, String), PathBuf> {
    let mut archives = std::collections::BTreeMap::new();
    for (i, chart) in charts.iter().enumerate() {
        let archive = package(helm_bin, home, chart, &home.join("out"));
        registry.push(helm_bin, home, &archive, login && i == 0);
        archives.insert((chart.name.clone(), chart.version.clone()), archive);
    }
    archives
}

/// Each chart name of `charts` with its versions, oldest first.
pub fn versions_by_name(charts: &[UpstreamChart]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for c in charts {
        match out.iter_mut().find(|(n, _)| *n == c.name) {
            Some((_, versions)) => versions.push(c.version.clone()),
            None => out.push((c.name.clone(), vec![c.version.clone()])),
        }
    }
    for (_, versions) in &mut out {
        versions.sort_by_key(|v| semver::Version::parse(v).unwrap());
    }
    out
}

/// Run helm with an empty home of its own under `home`; its stdout. Fails the test on error.
pub fn helm(helm: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new(helm)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("HELM_REGISTRY_CONFIG", home.join("registry.json"))
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Package the chart source `chart` into `out` (read in place; a dependency that upstream
/// leaves out of the folder is packaged from its own source into a scratch copy first, as
/// upstream's release workflow does). The archive's path.
pub fn package(helm_bin: &Path, home: &Path, chart: &UpstreamChart, out: &Path) -> PathBuf {
    std::fs::create_dir_all(out).unwrap();
    let source = match &chart.missing_dependency {
        None => chart.dir.clone(),
        Some((dep, version)) => {
            let copy = home.join(format!("src-{}-{}", chart.name, chart.version));
            if !copy.exists() {
                super::copy_dir(&chart.dir, &copy);
            }
            let dep_source = chart.dir.join("../..").join(dep).join("0.1.0");
            let charts = copy.join("charts");
            std::fs::create_dir_all(&charts).unwrap();
            helm(
                helm_bin,
                home,
                &[
                    "package",
                    dep_source.to_str().unwrap(),
                    "--version",
                    version,
                    "--app-version",
                    version,
                    "-d",
                    charts.to_str().unwrap(),
                ],
            );
            copy
        }
    };
    helm(
        helm_bin,
        home,
        &[
            "package",
            source.to_str().unwrap(),
            "-d",
            out.to_str().unwrap(),
        ],
    );
    out.join(format!("{}-{}.tgz", chart.name, chart.version))
}

/// Package the test chart `tests/fixtures/charts/<name>` at `version` into `out`.
pub fn package_fixture(
    helm_bin: &Path,
    home: &Path,
    name: &str,
    version: &str,
    out: &Path,
) -> PathBuf {
    let dir = repo_root().join("tests/fixtures/charts").join(name);
    helm(
        helm_bin,
        home,
        &[
            "package",
            dir.to_str().unwrap(),
            "--version",
            version,
            "-d",
            out.to_str().unwrap(),
        ],
    );
    out.join(format!("{name}-{version}.tgz"))
}

/// A distribution registry on a loopback port, stopped when dropped.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Start one (`auth`: basic auth with `REGISTRY_USER`/`REGISTRY_PASSWORD`), or None when
    /// `KPIN_REGISTRY` is not set (the calling test is skipped).
    pub fn start(test: &str, auth: bool) -> Option<Registry> {
        let binary = tool_or_skip(test, "KPIN_REGISTRY", "registry")?;
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if auth {
            let hash = bcrypt::hash(REGISTRY_PASSWORD, 4).unwrap();
            std::fs::write(
                dir.path().join("htpasswd"),
                format!("{REGISTRY_USER}:{hash}\n"),
            )
            .unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: kpin-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new(binary)
            .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the registry");
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(registry)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Log helm in (writing `home/registry.json`, the file kpin is then pointed at) and push
    /// `archive` under `oci://HOST/charts`.
    pub fn push(&self, helm_bin: &Path, home: &Path, archive: &Path, login: bool) {
        if login {
            helm(
                helm_bin,
                home,
                &[
                    "registry",
                    "login",
                    &self.host(),
                    "--username",
                    REGISTRY_USER,
                    "--password",
                    REGISTRY_PASSWORD,
                    "--plain-http",
                ],
            );
        }
        helm(
            helm_bin,
            home,
            &[
                "push",
                archive.to_str().unwrap(),
                &format!("oci://{}/charts", self.host()),
                "--plain-http",
            ],
        );
    }
}
