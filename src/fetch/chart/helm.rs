//! Running `helm template` on a chart archive: the helm kpin finds, the command it runs in an
//! empty helm home, the check that two renders agree, and the hooks in the output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::archive::Chart;
use crate::error::HintExt;
use crate::fetch::source::RenderOptions;
use crate::progress::Reporter;

/// The helm release kpin is tested with (`tools/helm/go.mod`); a missing helm names it.
pub const EXPECTED_HELM: &str = "v4.3.2";
/// The environment variable naming the helm binary; otherwise `helm` on PATH.
pub const HELM_ENV: &str = "KPIN_HELM";
/// The annotation that makes an object a Helm hook.
const HOOK_ANNOTATION: &str = "helm.sh/hook";

/// One render's settings.
pub struct Request<'a> {
    pub release: &'a str,
    pub namespace: &'a str,
    pub archive: &'a Path,
    /// Values by where they come from (a values file, `chart.values`), in the order applied.
    pub values: &'a [(String, String)],
    pub kube_version: Option<&'a str>,
    pub api_versions: &'a [String],
    pub include_crds: bool,
}

/// What `helm template` printed, and which helm printed it.
pub struct Output {
    pub text: String,
    /// `helm v4.3.2`.
    pub helm_version: String,
}

/// The helm binary: `$KPIN_HELM`, else `helm` on PATH.
pub fn binary() -> Result<PathBuf> {
    let missing = || {
        anyhow::anyhow!("rendering a chart needs helm ({EXPECTED_HELM}), and none was found")
            .hint(format!(
                "install helm {EXPECTED_HELM} on PATH or set {HELM_ENV} to its path (`tools/go-tool helm` builds it); only `kpin sync` and `kpin upgrade` of a chart that is not vendored yet need it"
            ))
    };
    if let Some(path) = std::env::var_os(HELM_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(missing())
            .with_context(|| format!("{HELM_ENV}={} is not a file", path.display()));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("helm"))
        .find(|p| p.is_file())
        .ok_or_else(missing)
}

/// Run helm with `args` in an empty helm home (no user repositories, plugins or registry
/// logins leak into a render); its stdout.
async fn run(helm: &Path, home: &Path, args: &[String]) -> Result<String> {
    let output = tokio::process::Command::new(helm)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("HELM_KUBECONTEXT")
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", helm.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr
            .trim()
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n");
        bail!(
            "`helm {}` failed: {message}",
            args.first().map_or("", String::as_str)
        );
    }
    String::from_utf8(output.stdout).context("helm printed text that is not UTF-8")
}

/// `helm template` twice; refused (unless allowed) when the renders differ, naming the
/// objects that do.
pub async fn template_twice(
    request: &Request<'_>,
    options: RenderOptions,
    reporter: &dyn Reporter,
) -> Result<Output> {
    let helm = binary()?;
    let home = tempfile::Builder::new()
        .prefix(".kpin-helm-")
        .tempdir()
        .context("creating a helm home")?;
    let version = run(
        &helm,
        home.path(),
        &["version".into(), "--template".into(), "{{.Version}}".into()],
    )
    .await?
    .trim()
    .to_owned();
    let mut args = vec![
        "template".to_owned(),
        request.release.to_owned(),
        request.archive.display().to_string(),
        "--namespace".to_owned(),
        request.namespace.to_owned(),
        "--skip-tests".to_owned(),
    ];
    if request.include_crds {
        args.push("--include-crds".to_owned());
    }
    if let Some(v) = request.kube_version {
        args.extend(["--kube-version".to_owned(), v.to_owned()]);
    }
    for a in request.api_versions {
        args.extend(["--api-versions".to_owned(), a.clone()]);
    }
    for (i, (_, text)) in request.values.iter().enumerate() {
        let path = home.path().join(format!("values-{i}.yaml"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        args.extend(["--values".to_owned(), path.display().to_string()]);
    }
    let first = run(&helm, home.path(), &args).await?;
    let second = run(&helm, home.path(), &args).await?;
    if first != second {
        let differing = differing_objects(&first, &second);
        let named = if differing.is_empty() {
            "the output".to_owned()
        } else {
            differing.join(", ")
        };
        if options.allow_nondeterministic {
            reporter.warn(&format!(
                "`helm template` rendered {named} differently twice; vendoring the first render (--allow-nondeterministic)"
            ));
        } else {
            return Err(anyhow::anyhow!(
                "`helm template` rendered {named} differently twice (random values, generated certificates or the current time), so every sync would vendor new churn"
            ))
            .hint("set values that pin them (an existing Secret, a given certificate), replace them with an overlay, or pass --allow-nondeterministic to vendor one render");
        }
    }
    Ok(Output {
        text: first,
        helm_version: format!("helm {version}"),
    })
}

/// The vendored file: a header saying how it was rendered and with which values, then helm's
/// output as it printed it.
pub fn vendored_text(request: &Request<'_>, output: &Output, chart: &Chart) -> String {
    let mut header = format!(
        "# Rendered by kpin with {}: helm template {} {}-{}.tgz --namespace {}",
        output.helm_version, request.release, chart.name, chart.version, request.namespace
    );
    if let Some(v) = request.kube_version {
        let _ = write!(header, " --kube-version {v}");
    }
    for a in request.api_versions {
        let _ = write!(header, " --api-versions {a}");
    }
    if request.include_crds {
        header.push_str(" --include-crds");
    }
    header.push_str(" --skip-tests\n");
    if request.values.is_empty() {
        header.push_str("# Values: the chart's defaults.\n");
    }
    for (from, text) in request.values {
        let _ = writeln!(header, "# Values from {from}:");
        for line in text.lines() {
            let _ = writeln!(header, "#   {line}");
        }
    }
    format!("{header}{}", output.text)
}

/// The documents of helm's output, split at its `---` lines.
fn documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" && offset > start {
            docs.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    if offset > start {
        docs.push(&text[start..]);
    }
    docs
}

/// The object a document holds, if it holds one.
fn object(doc: &str) -> Option<Value> {
    crate::yaml::documents(doc, Path::new("helm template"))
        .ok()?
        .into_iter()
        .next()
}

/// `Kind namespace/name` of an object.
fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("?");
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Objects whose text differs between two renders (or that only one has), by name.
fn differing_objects(a: &str, b: &str) -> Vec<String> {
    let by_name = |text: &str| -> BTreeMap<String, String> {
        documents(text)
            .into_iter()
            .filter_map(|d| object(d).map(|o| (describe(&o), d.to_owned())))
            .collect()
    };
    let (a, b) = (by_name(a), by_name(b));
    let mut names: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The Helm hooks in rendered text: `Kind namespace/name (hook pre-install)`.
pub fn hooks(text: &str) -> Vec<String> {
    documents(text)
        .into_iter()
        .filter_map(object)
        .filter_map(|o| {
            let hook = o["metadata"]["annotations"][HOOK_ANNOTATION]
                .as_str()?
                .to_owned();
            Some(format!("{} (hook {hook})", describe(&o)))
        })
        .collect()
}

/// The rendered text without its hook objects.
pub fn drop_hooks(text: &str) -> String {
    documents(text)
        .into_iter()
        .filter(|d| {
            object(d).is_none_or(|o| o["metadata"]["annotations"][HOOK_ANNOTATION].is_null())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "# header\n---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: web\n---\n# Source: c/templates/job.yaml\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-install\n";

    #[test]
    fn hooks_are_named_and_dropped() {
        assert_eq!(hooks(OUTPUT), ["Job migrate (hook pre-install)"]);
        let dropped = drop_hooks(OUTPUT);
        assert!(dropped.contains("kind: ConfigMap"));
        assert!(!dropped.contains("kind: Job"));
        assert!(dropped.starts_with("# header\n"));
    }

    #[test]
    fn differing_objects_are_named() {
        let other = OUTPUT.replace("name: a\n", "name: a\n  labels: {r: x}\n");
        assert_eq!(differing_objects(OUTPUT, &other), ["ConfigMap web/a"]);
        assert!(differing_objects(OUTPUT, OUTPUT).is_empty());
    }
}
