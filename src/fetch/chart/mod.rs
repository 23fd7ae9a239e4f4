//! The `chart` source kind: a Helm chart from a classic repository (`index.yaml`) or an OCI
//! registry, fetched by its pinned version, checked against the repository's digest and
//! rendered once by `helm template` at sync time; the rendered YAML is what kpin vendors.

pub mod archive;
pub mod dependency;
pub mod helm;
pub mod oci;
pub mod repository;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::source::{
    Fetcher, Kind, Listing, Project, RenderFacts, RenderInput, RenderOptions, Rendered, Renderer,
    Source, SourceKind, Template, VersionFeed,
};
use super::{Client, SourceFile};
use crate::digest;
use crate::error::{HintExt, quote};
use crate::fsutil::check_relative_path;
use crate::progress::Reporter;
use crate::version::{VERSION_PLACEHOLDER, Version};

/// How kpin.yaml writes it: `chart: {repository, name, values, ...}`.
pub struct ChartKind;

/// A Helm chart, rendered at sync time.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawChart {
    /// The chart repository: `https://host/path` (its `index.yaml` lists the charts) or
    /// `oci://host/path` (an OCI registry; the chart is `host/path/NAME`).
    pub repository: String,
    /// The chart's name in the repository. Default: the package name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The release name `helm template` renders with. Default: the package name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The release namespace (`helm template --namespace`). Default: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Values, applied after `valuesFiles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Value>,
    /// Values files relative to kpin.yaml, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
    /// The Kubernetes version `helm template` assumes (`.Capabilities.KubeVersion`). Default:
    /// the manifest's `kubernetesVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    /// API versions the chart may assume the cluster serves (`.Capabilities.APIVersions`),
    /// e.g. `monitoring.coreos.com/v1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
    /// Render the chart's `crds/` too. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_crds: Option<bool>,
    /// Helm hooks: `keep` them as ordinary objects (with a warning naming each) or `drop`
    /// them. Default: keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// Values of an environment, applied after the chart's own: an environment with values
    /// gets a render of its own (environments with the same values share one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, RawValues>,
}

/// An environment's values.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawValues {
    /// Values, applied after `valuesFiles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Value>,
    /// Values files relative to kpin.yaml, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
}

/// Values from kpin.yaml: files, then inline values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    pub files: Vec<String>,
    pub inline: Option<Value>,
}

impl Values {
    /// `field` is where kpin.yaml writes them (`chart`, `chart.environments.qa`).
    fn parse(field: &str, inline: Option<&Value>, files: &[String]) -> Result<Values> {
        for (i, f) in files.iter().enumerate() {
            check_relative_path(f).with_context(|| format!("{field}.valuesFiles[{i}]"))?;
        }
        if let Some(v) = inline
            && !v.is_object()
        {
            bail!(
                "{field}.values: expected a mapping, found a {}",
                crate::yaml::json_type_name(v)
            );
        }
        Ok(Values {
            files: files.to_vec(),
            inline: inline.cloned(),
        })
    }

    fn is_empty(&self) -> bool {
        self.files.is_empty() && self.inline.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Hooks {
    Keep,
    Drop,
}

/// Where a chart is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartAddress {
    /// A classic repository: `index` is its index.yaml.
    Repository { index: Url, name: String },
    /// A classic repository in the project: `dir` (relative to kpin.yaml) holds its
    /// index.yaml and archives.
    Local { dir: String, name: String },
    /// An OCI repository `host/path/name`.
    Oci(oci::Reference),
}

impl fmt::Display for ChartAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChartAddress::Repository { index, name } => write!(f, "{name} from {index}"),
            ChartAddress::Local { dir, name } => write!(f, "{name} from {dir}/index.yaml"),
            ChartAddress::Oci(reference) => write!(f, "{reference}"),
        }
    }
}

impl ChartAddress {
    /// The chart `name` in `repository` as kpin.yaml's `chart.repository` writes it.
    pub fn parse(repository: &str, name: &str) -> Result<ChartAddress> {
        if let Some(rest) = repository.strip_prefix("oci://") {
            return Ok(ChartAddress::Oci(oci::Reference::parse(rest, name)?));
        }
        if !repository.contains("://") {
            let dir = repository.trim_start_matches("./").trim_end_matches('/');
            check_relative_path(dir)?;
            return Ok(ChartAddress::Local {
                dir: dir.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(ChartAddress::Repository {
            index: repository::index_url(repository)?,
            name: name.to_owned(),
        })
    }

    fn name(&self) -> &str {
        match self {
            ChartAddress::Repository { name, .. } | ChartAddress::Local { name, .. } => name,
            ChartAddress::Oci(r) => r.name(),
        }
    }

    /// The chart's versions, newest first as the repository lists them.
    pub async fn versions(&self, client: &Client) -> Result<Vec<String>> {
        match self {
            ChartAddress::Repository { index, name } => Ok(repository::Index::fetch(client, index)
                .await?
                .versions(name)?
                .iter()
                .map(|e| e.version.clone())
                .collect()),
            ChartAddress::Oci(reference) => oci::tags(client, reference).await,
            ChartAddress::Local { dir, .. } => Err(anyhow::anyhow!(
                "{dir} is a chart repository in the project: kpin lists no newer versions there"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChartSource {
    pub address: ChartAddress,
    pub release: String,
    pub namespace: String,
    pub values: Values,
    /// Values of the environments that have their own.
    pub environments: BTreeMap<String, Values>,
    pub kube_version: Option<String>,
    pub api_versions: Vec<String>,
    pub include_crds: bool,
    pub hooks: Hooks,
}

impl Kind for ChartKind {
    fn keys(&self) -> &'static [&'static str] {
        &["chart"]
    }

    fn parse(
        &self,
        package: &str,
        fields: &Map<String, Value>,
        _version: &Version,
    ) -> Result<Source> {
        let raw: RawChart = super::source::field(fields, "chart")?;
        let name = raw.name.clone().unwrap_or_else(|| package.to_owned());
        let address = ChartAddress::parse(&raw.repository, &name).context("chart.repository")?;
        let values = Values::parse("chart", raw.values.as_ref(), &raw.values_files)?;
        let mut environments = BTreeMap::new();
        for (env, v) in &raw.environments {
            let field = format!("chart.environments.{env}");
            let values = Values::parse(&field, v.values.as_ref(), &v.values_files)?;
            if !values.is_empty() {
                environments.insert(env.clone(), values);
            }
        }
        if let Some(ns) = &raw.namespace {
            check_label(ns).context("chart.namespace")?;
        }
        let release = raw.release.clone().unwrap_or_else(|| package.to_owned());
        check_label(&release).context("chart.release")?;
        Ok(Source::new(ChartSource {
            address,
            release,
            namespace: raw
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            values,
            environments,
            kube_version: raw.kube_version.clone(),
            api_versions: raw.api_versions.clone(),
            include_crds: raw.include_crds.unwrap_or(true),
            hooks: raw.hooks.unwrap_or(Hooks::Keep),
        }))
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, Value)> {
        let mut schema = generator.subschema_for::<RawChart>().to_value();
        schema["description"] =
            "A Helm chart, rendered once by `helm template` at sync time and vendored as YAML."
                .into();
        vec![("chart", schema)]
    }
}

/// A release name or namespace: a DNS label.
fn check_label(text: &str) -> Result<()> {
    let valid = !text.is_empty()
        && text.len() <= 53
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if !valid {
        bail!(
            "{} is not a valid name (lowercase letters, digits and '-', at most 53)",
            quote(text)
        );
    }
    Ok(())
}

impl ChartSource {
    /// The values of a render (the chart's, then those of `env` if it has its own) by where
    /// they come from, in the order helm applies them.
    fn values_sources(
        &self,
        project: Project<'_>,
        env: Option<&str>,
    ) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let layers = std::iter::once(("chart".to_owned(), &self.values)).chain(env.and_then(|e| {
            self.environments
                .get(e)
                .map(|v| (format!("chart.environments.{e}"), v))
        }));
        for (field, values) in layers {
            for (i, rel) in values.files.iter().enumerate() {
                let path = project.resolve(&format!("{field}.valuesFiles[{i}]"), rel)?;
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading values file {}", path.display()))
                    .hint("`valuesFiles` are relative to the directory of kpin.yaml")?;
                out.push((rel.clone(), text));
            }
            if let Some(inline) = &values.inline {
                out.push((format!("{field}.values"), crate::yaml::to_string(inline)));
            }
        }
        Ok(out)
    }

    /// The renders: the chart's values (named `None`), then each environment with values of its
    /// own whose values no earlier environment has (others share that one's render).
    fn renders(&self) -> Vec<Option<&str>> {
        let mut out: Vec<Option<&str>> = vec![None];
        for (env, values) in &self.environments {
            if !self
                .environments
                .iter()
                .any(|(e, v)| e < env && v == values)
            {
                out.push(Some(env));
            }
        }
        out
    }

    /// The render `env` reads.
    fn render_of<'a>(&'a self, env: Option<&'a str>) -> Option<&'a str> {
        let values = self.environments.get(env?)?;
        self.environments
            .iter()
            .find(|(_, v)| *v == values)
            .map(|(e, _)| e.as_str())
    }

    /// The vendored file of a render.
    fn file_name(&self, render: Option<&str>) -> String {
        match render {
            None => format!("{}.yaml", self.address.name()),
            Some(env) => format!("{}.{env}.yaml", self.address.name()),
        }
    }

    /// The Kubernetes version the render assumes.
    fn kube_version(&self, project: &Project<'_>) -> Option<String> {
        self.kube_version
            .clone()
            .or_else(|| project.kubernetes_version.map(|v| v.to_string()))
    }
}

impl SourceKind for ChartSource {
    fn kind(&self) -> &'static str {
        "chart"
    }

    fn templates(&self) -> Vec<Template<'_>> {
        Vec::new()
    }

    fn version_hint(&self) -> &'static str {
        "the chart version is the package version"
    }

    fn file_count(&self) -> Option<usize> {
        Some(1)
    }

    fn lookup_online(&self) -> bool {
        true
    }

    fn needs_network(&self, _version: &Version) -> bool {
        match &self.address {
            ChartAddress::Repository { index, .. } => index.scheme() != "file",
            ChartAddress::Local { .. } => false,
            ChartAddress::Oci(_) => true,
        }
    }

    fn environments(&self) -> Vec<&str> {
        self.environments.keys().map(String::as_str).collect()
    }

    fn vendored_for(&self, env: Option<&str>) -> Option<String> {
        Some(self.file_name(self.render_of(env)))
    }

    fn resolve<'a>(
        &'a self,
        project: Project<'a>,
        version: &'a Version,
        client: Option<&'a Client>,
    ) -> BoxFuture<'a, Result<Vec<SourceFile>>> {
        Box::pin(async move {
            let file = match &self.address {
                ChartAddress::Repository { index: url, name } => {
                    let index = match client {
                        Some(client) => repository::Index::fetch(client, url).await?,
                        None if url.scheme() == "file" => repository::Index::read_local(url)?,
                        None => return Err(offline(&self.address)),
                    };
                    index.archive(url, name, &version.raw)?
                }
                ChartAddress::Local { dir, name } => {
                    let path = project.resolve("chart.repository", dir)?.join("index.yaml");
                    let url = Url::from_file_path(&path).map_err(|()| {
                        anyhow::anyhow!("{}: not an absolute path", path.display())
                    })?;
                    let mut file =
                        repository::Index::read_local(&url)?.archive(&url, name, &version.raw)?;
                    // Recorded relative to the project, like a `path:` source; an index that
                    // points outside the project is refused like any path that leads out.
                    let root = std::fs::canonicalize(project.root)
                        .with_context(|| format!("reading {}", project.root.display()))?;
                    let inside = match &file.origin {
                        super::Origin::Local { path } => std::fs::canonicalize(path)
                            .ok()
                            .and_then(|p| p.strip_prefix(&root).ok().map(Path::to_path_buf)),
                        super::Origin::Remote { .. } => None,
                    };
                    let Some(rel) = inside else {
                        return Err(anyhow::anyhow!(
                            "{}: chart {name} {version} is at {}, outside the project directory {}",
                            path.display(),
                            file.locked_from,
                            root.display()
                        ))
                        .hint(crate::fsutil::INSIDE_HINT);
                    };
                    file.locked_from = format!("{}{}", super::PATH_PREFIX, rel.display());
                    file
                }
                ChartAddress::Oci(reference) => {
                    let client = client.ok_or_else(|| offline(&self.address))?;
                    oci::chart_archive(client, reference, &version.raw).await?
                }
            };
            Ok(vec![file])
        })
    }

    fn version_feed(&self) -> Option<VersionFeed> {
        if matches!(self.address, ChartAddress::Local { .. }) {
            return None;
        }
        Some(VersionFeed {
            listing: Listing::ChartVersions(self.address.clone()),
            tag: VERSION_PLACEHOLDER.to_owned(),
            prereleases: false,
        })
    }

    fn renderer(&self) -> Option<&dyn Renderer> {
        Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn offline(address: &ChartAddress) -> anyhow::Error {
    anyhow::anyhow!("the chart {address} must be looked up online")
        .hint("run without --offline once; afterwards kpin.lock and vendor/ hold its render")
}

/// The chart to render: the archive itself, or, when it lacks declared dependencies, a copy
/// unpacked into `scratch` with them fetched into its `charts/`.
async fn with_dependencies(
    chart: &archive::Chart,
    archive_path: &std::path::Path,
    scratch: &std::path::Path,
    fetcher: &dyn Fetcher,
) -> Result<std::path::PathBuf> {
    let missing = chart.missing();
    if missing.is_empty() {
        return Ok(archive_path.to_path_buf());
    }
    let dir = archive::Chart::unpack(archive_path, scratch, &chart.name)?;
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts).with_context(|| format!("creating {}", charts.display()))?;
    for d in missing {
        let at = || {
            format!(
                "chart {} {} declares the dependency {} {} from {}, which its archive does not hold",
                chart.name, chart.version, d.name, d.version, d.repository
            )
        };
        let file = dependency::resolve(fetcher.client(), chart, d)
            .await
            .with_context(at)?;
        let content = fetcher.fetch(&file).await.with_context(at)?;
        crate::fsutil::copy_file(&content, &charts.join(&file.name))?;
    }
    Ok(dir)
}

/// The vendored copy of a chart's own `values.yaml`, next to its renders (`<chart>.yaml`,
/// `<chart>.<env>.yaml`, which always hold a dot more than this name).
pub const DEFAULT_VALUES: &str = "chart-values.yaml";

impl Renderer for ChartSource {
    fn defaults_file(&self) -> Option<String> {
        Some(DEFAULT_VALUES.to_owned())
    }

    fn inputs_digest(&self, project: Project<'_>) -> Result<String> {
        let sources = self
            .renders()
            .into_iter()
            .map(|r| Ok((r, self.values_sources(project, r)?)))
            .collect::<Result<Vec<_>>>()?;
        let settings = serde_json::json!({
            "release": self.release,
            "namespace": self.namespace,
            "kubeVersion": self.kube_version(&project),
            "apiVersions": self.api_versions,
            "includeCrds": self.include_crds,
            "hooks": format!("{:?}", self.hooks),
            "values": sources,
        });
        Ok(digest::of_json(&settings))
    }

    fn render<'a>(
        &'a self,
        project: Project<'a>,
        version: &'a Version,
        inputs: &'a [RenderInput],
        options: RenderOptions,
        fetcher: &'a dyn Fetcher,
        reporter: &'a dyn Reporter,
    ) -> BoxFuture<'a, Result<(Vec<Rendered>, RenderFacts)>> {
        Box::pin(async move {
            let [input] = inputs else {
                bail!("a chart renders from one archive, got {}", inputs.len());
            };
            let chart = archive::Chart::read(&input.content)
                .with_context(|| format!("chart archive {}", input.source.name))?;
            if chart.name != self.address.name() || chart.version != version.raw {
                bail!(
                    "the archive {} holds chart {} {}, not {} {}",
                    input.source.locked_from,
                    chart.name,
                    chart.version,
                    self.address.name(),
                    version
                );
            }
            // Dependencies the archive lacks are fetched into an unpacked copy of it.
            let unpacked = tempfile::Builder::new()
                .prefix(".kpin-chart-")
                .tempdir()
                .context("creating a directory for the chart")?;
            let chart_path =
                with_dependencies(&chart, &input.content, unpacked.path(), fetcher).await?;
            for template in &chart.lookups {
                reporter.warn(&format!(
                    "chart {} {version}: {template} calls `lookup`, which `helm template` answers with nothing (what it looks up in a live cluster is not vendored)",
                    chart.name
                ));
            }
            let kube_version = self.kube_version(&project);
            let mut files = Vec::new();
            for render in self.renders() {
                let values = self.values_sources(project, render)?;
                let request = helm::Request {
                    release: &self.release,
                    namespace: &self.namespace,
                    archive: &chart_path,
                    values: &values,
                    kube_version: kube_version.as_deref(),
                    api_versions: &self.api_versions,
                    include_crds: self.include_crds,
                };
                let rendered = helm::template_twice(&request, options, reporter).await?;
                let mut text = helm::vendored_text(&request, &rendered, &chart);
                let name = self.file_name(render);
                match self.hooks {
                    Hooks::Drop => text = helm::drop_hooks(&text),
                    Hooks::Keep => {
                        for hook in helm::hooks(&text) {
                            reporter.warn(&format!(
                                "chart {} {version}: Helm hook {hook} is vendored into {name} as an ordinary object (kpin applies it with the rest; set `chart.hooks: drop` to leave hooks out)",
                                chart.name
                            ));
                        }
                    }
                }
                files.push((Rendered { name, text }, rendered.helm_version));
            }
            let facts = RenderFacts {
                renderer: files.first().map(|(_, v)| v.clone()).unwrap_or_default(),
                values: self.inputs_digest(project)?,
                dependencies: chart
                    .dependencies
                    .iter()
                    .map(|d| (format!("{} {}", d.name, d.version), d.sha256.clone()))
                    .collect::<BTreeMap<_, _>>(),
            };
            if self.file_name(None) == DEFAULT_VALUES {
                bail!("a chart named `chart-values` would be vendored over its default values");
            }
            let defaults = Rendered {
                name: DEFAULT_VALUES.to_owned(),
                text: chart.default_values.clone(),
            };
            Ok((
                files
                    .into_iter()
                    .map(|(r, _)| r)
                    .chain([defaults])
                    .collect(),
                facts,
            ))
        })
    }
}
