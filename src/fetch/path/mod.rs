//! The `path` source kind: a local file, or every YAML/JSON file directly in a local directory,
//! relative to kpin.yaml (internal mirrors, monorepos). Read again by every sync.

use std::any::Any;

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::source::{Kind, Project, Source, SourceKind, Template};
use super::{Client, Origin, PATH_PREFIX, SourceFile};
use crate::error::HintExt;
use crate::fsutil::{check_path_segment, check_relative_path};
use crate::version::{Version, expand};

/// File extensions vendored from a local directory source.
const LOCAL_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// How kpin.yaml writes it: `path: TEMPLATE`.
pub struct PathKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSource {
    pub template: String,
    /// `packages.<name>.path`, for messages.
    field: String,
}

impl Kind for PathKind {
    fn keys(&self) -> &'static [&'static str] {
        &["path"]
    }

    fn parse(
        &self,
        package: &str,
        fields: &Map<String, Value>,
        version: &Version,
    ) -> Result<Source> {
        let template: String = super::source::field(fields, "path")?;
        let source = PathSource {
            template,
            field: format!("packages.{package}.path"),
        };
        source.check_version(version)?;
        Ok(Source::new(source))
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, Value)> {
        let mut schema = generator.subschema_for::<String>().to_value();
        schema["description"] =
            "Local directory or file template, relative to kpin.yaml (internal mirrors, monorepos)."
                .into();
        vec![("path", schema)]
    }
}

impl SourceKind for PathSource {
    fn kind(&self) -> &'static str {
        "path"
    }

    fn templates(&self) -> Vec<Template<'_>> {
        vec![Template {
            field: "path".to_owned(),
            text: &self.template,
            addresses: true,
        }]
    }

    fn version_hint(&self) -> &'static str {
        "keep each version in a directory of its own, e.g. path: mirror/NAME/{version}; or pin the files with `sha256:`"
    }

    fn check_version(&self, version: &Version) -> Result<()> {
        check_relative_path(&expand(&self.template, version)).context("path")
    }

    fn file_count(&self) -> Option<usize> {
        None
    }

    fn lookup_online(&self) -> bool {
        false
    }

    fn needs_network(&self, _version: &Version) -> bool {
        false
    }

    fn rereads(&self) -> bool {
        true
    }

    fn resolve<'a>(
        &'a self,
        project: Project<'a>,
        version: &'a Version,
        _client: Option<&'a Client>,
    ) -> BoxFuture<'a, Result<Vec<SourceFile>>> {
        Box::pin(async move { local_files(project, &self.field, &expand(&self.template, version)) })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A local source (`field` of kpin.yaml): one file, or every YAML/JSON file directly in a
/// directory, sorted.
fn local_files(project: Project<'_>, field: &str, rel: &str) -> Result<Vec<SourceFile>> {
    let rel = rel.trim_start_matches("./").trim_end_matches('/');
    let path = project.resolve(field, rel)?;
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("local source {}", path.display()))
        .hint("`path:` is relative to the directory of kpin.yaml")?;
    if meta.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        check_path_segment(&name).with_context(|| format!("local source {}", path.display()))?;
        return Ok(vec![SourceFile {
            name,
            origin: Origin::Local { path },
            locked_from: format!("{PATH_PREFIX}{rel}"),
            expected: None,
        }]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))? {
        let entry = entry.with_context(|| format!("reading {}", path.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = !name.starts_with('.')
            && name
                .rsplit_once('.')
                .is_some_and(|(_, ext)| LOCAL_EXTENSIONS.contains(&ext))
            && entry.file_type().is_ok_and(|t| t.is_file());
        if !wanted {
            continue;
        }
        check_path_segment(&name)
            .with_context(|| format!("local source {}", entry.path().display()))?;
        files.push(SourceFile {
            origin: Origin::Local { path: entry.path() },
            locked_from: format!("{PATH_PREFIX}{rel}/{name}"),
            name,
            expected: None,
        });
    }
    if files.is_empty() {
        return Err(anyhow::anyhow!(
            "local source {}: no *.yaml, *.yml or *.json files",
            path.display()
        ))
        .hint("point `path:` at a directory of release files or at one file");
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}
