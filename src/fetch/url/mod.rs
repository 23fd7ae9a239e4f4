//! The `url` / `urls` source kind: release files at URL templates (`https`, `http`, `file`),
//! each named after its URL's last path segment.

use std::any::Any;

use anyhow::{Context, Result, bail};
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use url::Url;

use super::source::{Kind, Project, Source, SourceKind, Template};
use super::{Auth, Client, Origin, SourceFile};
use crate::error::quote;
use crate::fsutil::check_path_segment;
use crate::version::{Version, expand};

/// How kpin.yaml writes it: `url: TEMPLATE` or `urls: [TEMPLATE, ...]`.
pub struct UrlKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlSource {
    /// The URL templates, as written.
    pub templates: Vec<String>,
    /// Written as `url:` (one file) rather than `urls:`.
    single: bool,
}

impl Kind for UrlKind {
    fn keys(&self) -> &'static [&'static str] {
        &["url", "urls"]
    }

    fn parse(
        &self,
        _package: &str,
        fields: &Map<String, Value>,
        version: &Version,
    ) -> Result<Source> {
        let (templates, single) = match (fields.get("url"), fields.get("urls")) {
            (Some(_), _) => (vec![super::source::field::<String>(fields, "url")?], true),
            (None, Some(_)) => {
                let urls: Vec<String> = super::source::field(fields, "urls")?;
                if urls.is_empty() {
                    bail!("urls: the list is empty");
                }
                (urls, false)
            }
            (None, None) => bail!("no `url` or `urls`"),
        };
        for t in &templates {
            let expanded = expand(t, version);
            let parsed = Url::parse(&expanded)
                .with_context(|| format!("url: {} is not a valid URL", quote(&expanded)))?;
            if !matches!(parsed.scheme(), "https" | "http" | "file") {
                bail!(
                    "url: scheme {} is not supported (use https, http or file)",
                    quote(parsed.scheme())
                );
            }
        }
        Ok(Source::new(UrlSource { templates, single }))
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> Vec<(&'static str, Value)> {
        let mut url = generator.subschema_for::<String>().to_value();
        url["description"] =
            "URL template of a single release file, e.g. `https://host/{version}/deploy.yaml`."
                .into();
        let mut urls = generator.subschema_for::<Vec<String>>().to_value();
        urls["description"] = "URL templates of several release files.".into();
        vec![("url", url), ("urls", urls)]
    }
}

impl SourceKind for UrlSource {
    fn kind(&self) -> &'static str {
        "url"
    }

    fn templates(&self) -> Vec<Template<'_>> {
        self.templates
            .iter()
            .enumerate()
            .map(|(i, t)| Template {
                field: if self.single {
                    "url".to_owned()
                } else {
                    format!("urls[{i}]")
                },
                text: t,
                addresses: true,
            })
            .collect()
    }

    fn version_hint(&self) -> &'static str {
        "put {version} where the release's version goes, e.g. https://github.com/OWNER/REPO/releases/download/v{version}/install.yaml; or pin the file with `sha256:` if it really never changes"
    }

    fn file_count(&self) -> Option<usize> {
        Some(self.templates.len())
    }

    fn lookup_online(&self) -> bool {
        false
    }

    fn needs_network(&self, version: &Version) -> bool {
        self.templates
            .iter()
            .any(|t| !expand(t, version).starts_with("file:"))
    }

    fn resolve<'a>(
        &'a self,
        _project: Project<'a>,
        version: &'a Version,
        _client: Option<&'a Client>,
    ) -> BoxFuture<'a, Result<Vec<SourceFile>>> {
        Box::pin(async move {
            self.templates
                .iter()
                .map(|t| url_file(&expand(t, version)))
                .collect()
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A file at a URL, named after the URL's last path segment.
pub fn url_file(text: &str) -> Result<SourceFile> {
    let url = Url::parse(text).with_context(|| format!("{} is not a valid URL", quote(text)))?;
    let segment = url
        .path_segments()
        .and_then(|mut s| s.rfind(|p| !p.is_empty()))
        .unwrap_or("");
    let name = percent_decode(segment);
    check_path_segment(&name).with_context(|| {
        format!(
            "{}: cannot name the vendored file after the last path segment",
            quote(url.as_str())
        )
    })?;
    let origin = if url.scheme() == "file" {
        let path = url
            .to_file_path()
            .map_err(|()| anyhow::anyhow!("{url}: not a local file path"))?;
        Origin::Local { path }
    } else {
        Origin::Remote {
            url: url.clone(),
            auth: Auth::None,
        }
    };
    Ok(SourceFile {
        name,
        origin,
        locked_from: url.to_string(),
        expected: None,
    })
}

/// Undo `%XX` escapes in a URL path segment (file names with spaces and the like).
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("a%20b.yaml"), "a b.yaml");
        assert_eq!(percent_decode("bad%zz%2"), "bad%zz%2");
        assert_eq!(percent_decode("%e2%82"), "\u{fffd}");
        assert_eq!(
            percent_decode("deploy%41"),
            "deployA",
            "an escape at the very end"
        );
    }
}
