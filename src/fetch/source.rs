//! Source kinds behind one trait. Each kind's module (`fetch/<kind>/`) owns how it is written
//! in kpin.yaml, how a version resolves to files, what kpin.lock records of it beyond those files
//! and where newer versions are listed; [`KINDS`] is the one place that lists the kinds.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::{Client, SourceFile};
use crate::fsutil;
use crate::progress::Reporter;
use crate::version::Version;

/// Every source kind, in the order kpin.yaml documents them. Adding a kind is a module under
/// `fetch/` and one entry here.
pub const KINDS: &[&dyn Kind] = &[
    &super::url::UrlKind,
    &super::github::GithubKind,
    &super::path::PathKind,
    &super::chart::ChartKind,
];

/// A source kind as kpin.yaml writes it.
pub trait Kind: Sync {
    /// The keys of a package entry that write this kind (`url`, `urls`).
    fn keys(&self) -> &'static [&'static str];
    /// The source of `package` from its entry; `fields` holds only this kind's keys (at least
    /// one).
    fn parse(
        &self,
        package: &str,
        fields: &Map<String, Value>,
        version: &Version,
    ) -> Result<Source>;
    /// The JSON Schema of each key, for `kpin schema`.
    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, Value)>;
}

/// The value of `key` among a kind's `fields`, typed; an error names the field's path
/// (`github.assets: invalid type: ...`).
pub fn field<T: serde::de::DeserializeOwned>(fields: &Map<String, Value>, key: &str) -> Result<T> {
    let value = fields.get(key).cloned().unwrap_or_default();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." {
            String::new()
        } else {
            format!(".{at}")
        };
        anyhow::anyhow!(
            "{key}{at}: {}",
            crate::yaml::user_words(&e.into_inner().to_string())
        )
    })
}

/// A kind and the values of its keys in one package entry.
pub type KindFields = (&'static dyn Kind, Map<String, Value>);

/// The kind whose keys `entry` (a package entry) uses, and those keys' values; `None` without
/// any; an error when keys of more than one kind, or two keys of one kind, are given.
pub fn kind_of(entry: &Map<String, Value>) -> Result<Option<KindFields>> {
    let mut found: Vec<KindFields> = Vec::new();
    for kind in KINDS {
        let fields: Map<String, Value> = kind
            .keys()
            .iter()
            .filter_map(|k| entry.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        if !fields.is_empty() {
            found.push((*kind, fields));
        }
    }
    if found.len() > 1 || found.first().is_some_and(|(_, f)| f.len() > 1) {
        anyhow::bail!(
            "more than one source: give only one of {}",
            source_keys_text()
        );
    }
    Ok(found.pop())
}

/// `` `url`, `urls`, `github`, `path` or `chart` ``: every key that gives a source.
pub fn source_keys_text() -> String {
    let keys: Vec<String> = KINDS
        .iter()
        .flat_map(|k| k.keys())
        .map(|k| format!("`{k}`"))
        .collect();
    match keys.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => keys.concat(),
    }
}

/// What sources resolve relative to: the project of kpin.yaml.
#[derive(Debug, Clone, Copy)]
pub struct Project<'a> {
    /// kpin.yaml.
    pub manifest: &'a Path,
    /// Its directory.
    pub root: &'a Path,
    /// Its `kubernetesVersion`, when given.
    pub kubernetes_version: Option<crate::kube_version::KubeVersion>,
}

impl Project<'_> {
    /// A path that `field` of kpin.yaml names, inside the project (symlinks followed).
    pub fn resolve(&self, field: &str, relative: &str) -> Result<PathBuf> {
        fsutil::resolve_inside(self.root, self.root, relative)
            .with_context(|| format!("{}: {field}", self.manifest.display()))
    }
}

/// A template of kpin.yaml that a source kind fills with the version.
#[derive(Debug, Clone)]
pub struct Template<'a> {
    /// Where it is written (`url`, `urls[1]`, `github.tag`).
    pub field: String,
    pub text: &'a str,
    /// Whether it decides which release is fetched, so it must hold `{version}` (a GitHub
    /// asset name need not: the tag already does).
    pub addresses: bool,
}

/// One package's source, parsed by its [`Kind`].
pub trait SourceKind: fmt::Debug + Send + Sync + Any {
    /// The kind's name in kpin.lock (`source:`).
    fn kind(&self) -> &'static str;
    /// Its templates, checked for unknown placeholders and for `{version}`.
    fn templates(&self) -> Vec<Template<'_>>;
    /// What to write when an addressing template lacks `{version}`.
    fn version_hint(&self) -> &'static str;
    /// Checks that need the version (a local path must stay inside the project).
    fn check_version(&self, _version: &Version) -> Result<()> {
        Ok(())
    }
    /// How many files it resolves to, when kpin.yaml alone says (a single `sha256:` pin
    /// needs exactly one).
    fn file_count(&self) -> Option<usize>;
    /// Whether naming the files needs the network (an API or a repository index).
    fn lookup_online(&self) -> bool;
    /// Whether getting the files at `version` needs the network.
    fn needs_network(&self, version: &Version) -> bool;
    /// Whether the files can change while kpin.yaml does not (local files): every sync reads
    /// them again instead of trusting kpin.lock.
    fn rereads(&self) -> bool {
        false
    }
    /// The files at `version`. `client` is `None` offline; a kind that must look them up
    /// online then fails with a hint.
    fn resolve<'a>(
        &'a self,
        project: Project<'a>,
        version: &'a Version,
        client: Option<&'a Client>,
    ) -> BoxFuture<'a, Result<Vec<SourceFile>>>;
    /// The environments it names (each must be declared in kpin.yaml).
    fn environments(&self) -> Vec<&str> {
        Vec::new()
    }
    /// The one vendored file `env` renders from, for a kind that vendors a file per
    /// environment (a chart with values per environment); `None`: every vendored file.
    fn vendored_for(&self, _env: Option<&str>) -> Option<String> {
        None
    }
    /// Where newer versions are listed when kpin.yaml has no `versions:`.
    fn version_feed(&self) -> Option<VersionFeed> {
        None
    }
    /// How its fetched files become the vendored ones, for a kind that renders them (a chart);
    /// `None`: they are vendored as they are.
    fn renderer(&self) -> Option<&dyn Renderer> {
        None
    }
    fn as_any(&self) -> &dyn Any;
}

/// A parsed source: one of the [`KINDS`].
#[derive(Debug, Clone)]
pub struct Source(Arc<dyn SourceKind>);

impl Source {
    pub fn new(kind: impl SourceKind) -> Source {
        Source(Arc::new(kind))
    }

    /// The kind's own type, for code and tests that know it.
    pub fn downcast<T: SourceKind>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }
}

/// Two sources are the same when they are of one kind with the same settings (kinds derive
/// `Debug` over every field they parse).
impl PartialEq for Source {
    fn eq(&self, other: &Source) -> bool {
        self.kind() == other.kind() && format!("{:?}", self.0) == format!("{:?}", other.0)
    }
}

impl std::ops::Deref for Source {
    type Target = dyn SourceKind;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// Where `kpin outdated` and `kpin upgrade` list a package's versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFeed {
    pub listing: Listing,
    /// Maps tags to versions (`v{version}`); `{version}` where the listing gives versions.
    pub tag: String,
    pub prereleases: bool,
}

/// What a [`VersionFeed`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The releases (and, failing those, the tags) of a GitHub repository.
    GithubReleases { repo: String, api_url: String },
    /// The versions of a chart: a repository's index.yaml or an OCI repository's tags.
    ChartVersions(super::chart::ChartAddress),
}

impl VersionFeed {
    /// What reports name as the feed: `owner/repo`, or the chart's address.
    pub fn origin(&self) -> String {
        match &self.listing {
            Listing::GithubReleases { repo, .. } => repo.clone(),
            Listing::ChartVersions(address) => address.to_string(),
        }
    }
}

/// A fetched file ready to render: its name and where its bytes are now.
#[derive(Debug, Clone)]
pub struct RenderInput {
    pub source: SourceFile,
    pub content: PathBuf,
}

/// One vendored file a renderer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub name: String,
    pub text: String,
}

/// What a render recorded besides its files: it goes into kpin.lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderFacts {
    /// The tool and version that rendered (`helm v4.3.2`).
    pub renderer: String,
    /// sha256 of the values (and settings) the render used.
    pub values: String,
    /// What the rendered input brought along (a chart's packaged dependencies): sha256 by
    /// `name version`.
    pub dependencies: BTreeMap<String, String>,
}

/// How a render may go, from the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Vendor a render that differs run to run (with a warning) instead of refusing it.
    pub allow_nondeterministic: bool,
}

/// Fetches what a render turns out to need beyond the resolved files (a chart's dependencies
/// its archive lacks): obtained and checked like any file, and recorded in kpin.lock with the
/// files the render came from.
pub trait Fetcher: Sync {
    /// `None` offline.
    fn client(&self) -> Option<&Client>;
    /// Obtain `file`; where its bytes are now.
    fn fetch<'a>(&'a self, file: &'a SourceFile) -> BoxFuture<'a, Result<PathBuf>>;
}

/// Turns a kind's fetched files into the files vendored (a chart into its rendered objects).
pub trait Renderer: Sync {
    /// The digest of the render's inputs that live in the project (values files), compared
    /// with kpin.lock so that editing them makes the lock stale.
    fn inputs_digest(&self, project: Project<'_>) -> Result<String>;
    /// A vendored file holding the upstream's default settings (a chart's `values.yaml`),
    /// which `kpin upgrade` shows the changes of.
    fn defaults_file(&self) -> Option<String> {
        None
    }
    /// Render `inputs` (the resolved files, fetched) at `version` into files to vendor.
    fn render<'a>(
        &'a self,
        project: Project<'a>,
        version: &'a Version,
        inputs: &'a [RenderInput],
        options: RenderOptions,
        fetcher: &'a dyn Fetcher,
        reporter: &'a dyn Reporter,
    ) -> BoxFuture<'a, Result<(Vec<Rendered>, RenderFacts)>>;
}
