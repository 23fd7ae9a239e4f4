//! Metadata and image operations: set/remove labels and annotations, rewrite container images
//! (registry mirror, name, tag, digest).

use std::collections::BTreeMap;

use anyhow::Result;
use globset::{Glob, GlobMatcher};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OpCtx, RawSelector, Selector, Workspace};
use crate::error::{HintExt, quote};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMeta {
    /// Objects to change; all objects when absent.
    #[serde(default)]
    pub select: RawSelector,
    /// Do not fail when the selector matches nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Keys and values to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Keys to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Also change the pod template (`spec.template.metadata`, and the job template of CronJobs).
    /// Selectors (`spec.selector`) are never changed: they are immutable on most workloads.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pod_template: bool,
}

#[derive(Debug, Clone)]
pub struct MetaChange {
    set: BTreeMap<String, String>,
    remove: Vec<String>,
    pod_template: bool,
}

impl MetaChange {
    pub(super) fn build(raw: &RawMeta) -> Result<MetaChange> {
        if raw.set.is_empty() && raw.remove.is_empty() {
            anyhow::bail!("nothing to do: give `set` and/or `remove`");
        }
        Ok(MetaChange {
            set: raw.set.clone(),
            remove: raw.remove.clone(),
            pod_template: raw.pod_template,
        })
    }
}

/// Pod templates whose metadata `podTemplate: true` changes too.
const POD_TEMPLATES: &[&str] = &["/spec/template", "/spec/jobTemplate/spec/template"];

pub(super) fn apply_meta(
    ws: &mut Workspace,
    selector: &Selector,
    change: &MetaChange,
    field: &str,
    ctx: &OpCtx,
) -> Result<()> {
    for i in ws.select(selector, ctx)? {
        ws.modify(i, &ctx.origin, |o| {
            edit(o.metadata_mut(), field, change);
            if change.pod_template {
                for pointer in POD_TEMPLATES {
                    if let Some(Value::Object(template)) = o.0.pointer_mut(pointer) {
                        let metadata = template
                            .entry("metadata")
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(m) = metadata {
                            edit(m, field, change);
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Apply `change` to `metadata.<field>`, dropping the mapping when it ends up empty.
fn edit(metadata: &mut Map<String, Value>, field: &str, change: &MetaChange) {
    let entry = metadata
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(map) = entry {
        for key in &change.remove {
            map.remove(key);
        }
        for (k, v) in &change.set {
            map.insert(k.clone(), Value::String(v.clone()));
        }
        if map.is_empty() {
            metadata.remove(field);
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawImage {
    /// Objects whose containers to change; all objects when absent.
    #[serde(default)]
    pub select: RawSelector,
    /// Do not fail when no container image matches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Image repository to change, exact or a glob, without tag or digest
    /// (`registry.k8s.io/ingress-nginx/controller`, `*/controller`).
    pub name: String,
    /// New repository (registry included) replacing the whole name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// New registry host (a mirror), keeping the path: `registry.k8s.io/x/y` -> `<registry>/x/y`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// New tag. Drops the old digest unless `digest` is given too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// New digest (`sha256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ImageChange {
    name: GlobMatcher,
    pattern: String,
    new_name: Option<String>,
    registry: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

impl ImageChange {
    pub(super) fn build(raw: &RawImage) -> Result<ImageChange> {
        if raw.new_name.is_some() && raw.registry.is_some() {
            anyhow::bail!("image: give `newName` or `registry`, not both");
        }
        if raw.new_name.is_none()
            && raw.registry.is_none()
            && raw.new_tag.is_none()
            && raw.digest.is_none()
        {
            anyhow::bail!("image: nothing to change: give newName, registry, newTag and/or digest");
        }
        if let Some(d) = &raw.digest
            && (!d.starts_with("sha256:") || d.len() != 71)
        {
            return Err(anyhow::anyhow!(
                "image.digest: {} is not a sha256 digest",
                quote(d)
            ))
            .hint("write it as sha256:<64 hex characters>");
        }
        let name = Glob::new(&raw.name)
            .map_err(|e| {
                anyhow::anyhow!("image.name: {} is not a valid glob: {e}", quote(&raw.name))
            })?
            .compile_matcher();
        Ok(ImageChange {
            name,
            pattern: raw.name.clone(),
            new_name: raw.new_name.clone(),
            registry: raw.registry.clone(),
            new_tag: raw.new_tag.clone(),
            digest: raw.digest.clone(),
        })
    }

    /// The rewritten reference, or `None` when `image` is not one this change targets.
    pub fn rewrite(&self, image: &str) -> Option<String> {
        let parts = ImageRef::parse(image);
        if !self.name.is_match(parts.repository) {
            return None;
        }
        let repository = match (&self.new_name, &self.registry) {
            (Some(n), _) => n.clone(),
            (None, Some(r)) => format!("{}/{}", r.trim_end_matches('/'), parts.path()),
            (None, None) => parts.repository.to_owned(),
        };
        let tag = self.new_tag.as_deref().or(parts.tag);
        let digest = match (&self.digest, &self.new_tag) {
            (Some(d), _) => Some(d.as_str()),
            (None, Some(_)) => None,
            (None, None) => parts.digest,
        };
        let mut out = repository;
        if let Some(t) = tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = digest {
            out.push('@');
            out.push_str(d);
        }
        Some(out)
    }
}

/// `registry/path:tag@digest`, borrowed from the original string.
struct ImageRef<'a> {
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    fn parse(image: &'a str) -> ImageRef<'a> {
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (image, None),
        };
        // A `:` after the last `/` is a tag; before it, a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        ImageRef {
            repository,
            tag,
            digest,
        }
    }

    /// The repository without its registry host (Docker Hub names have none).
    fn path(&self) -> &'a str {
        match self.repository.split_once('/') {
            Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => path,
            _ => self.repository,
        }
    }
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// Every `image` of every container list anywhere in `value`.
fn for_each_image(value: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if CONTAINER_LISTS.contains(&k.as_str())
                    && let Value::Array(items) = v
                {
                    for item in items {
                        if let Some(image) = item.get_mut("image") {
                            f(image);
                        }
                    }
                    continue;
                }
                for_each_image(v, f);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| for_each_image(i, f)),
        _ => {}
    }
}

pub(super) fn apply_image(
    ws: &mut Workspace,
    selector: &Selector,
    change: &ImageChange,
    ctx: &OpCtx,
) -> Result<()> {
    let mut matched = 0usize;
    for i in ws.select(selector, ctx)? {
        ws.modify(i, &ctx.origin, |o| {
            for_each_image(&mut o.0, &mut |image| {
                if let Some(new) = image.as_str().and_then(|s| change.rewrite(s)) {
                    matched += 1;
                    *image = Value::String(new);
                }
            });
            Ok(())
        })?;
    }
    if matched == 0 && !ctx.optional {
        return Err(anyhow::anyhow!(
            "image `{}` matches no container image in {} {}",
            change.pattern,
            ctx.target.package,
            ctx.target.version
        ))
        .hint("the name is the image without tag or digest (globs allowed); upstream may have renamed it, or add `optional: true`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{deployment, err, run};
    use super::*;
    use serde_json::json;

    fn change(v: Value) -> ImageChange {
        ImageChange::build(&serde_json::from_value(v).unwrap()).unwrap()
    }

    #[test]
    fn image_rewrites() {
        let c = change(json!({"name": "registry.k8s.io/*", "registry": "mirror.local:5000"}));
        assert_eq!(
            c.rewrite("registry.k8s.io/a/b:v1@sha256:x").unwrap(),
            "mirror.local:5000/a/b:v1@sha256:x"
        );
        assert_eq!(c.rewrite("busybox"), None);
        let c = change(json!({"name": "busybox", "newTag": "1.36"}));
        assert_eq!(c.rewrite("busybox:1.0@sha256:old").unwrap(), "busybox:1.36");
        let d = format!("sha256:{}", "a".repeat(64));
        let c = change(json!({"name": "localhost:5000/x", "newName": "r.io/y", "digest": d}));
        assert_eq!(
            c.rewrite("localhost:5000/x:1").unwrap(),
            format!("r.io/y:1@{d}")
        );
    }

    #[test]
    fn image_op_and_no_match() {
        let out = run(
            vec![deployment()],
            "operations:\n- image: {name: busybox, newTag: '1.36'}\n",
        )
        .unwrap();
        assert_eq!(
            out[0]["spec"]["template"]["spec"]["containers"][1]["image"],
            "busybox:1.36"
        );
        let text = err(
            vec![deployment()],
            "operations:\n- image: {name: nginx, newTag: '1'}\n",
        );
        assert!(
            text.contains("image `nginx` matches no container image in pkg 1.0.0"),
            "{text}"
        );
    }

    #[test]
    fn labels_and_annotations() {
        let out = run(
            vec![deployment()],
            "operations:\n- labels: {set: {team: edge}, podTemplate: true}\n- annotations: {select: {kind: Deployment}, set: {a: 'on'}}\n",
        )
        .unwrap();
        assert_eq!(out[0]["metadata"]["labels"], json!({"team": "edge"}));
        assert_eq!(
            out[0]["spec"]["template"]["metadata"]["labels"],
            json!({"team": "edge"})
        );
        assert_eq!(out[0]["metadata"]["annotations"], json!({"a": "on"}));
        let out = run(out, "operations:\n- labels: {remove: [team]}\n").unwrap();
        assert!(out[0]["metadata"].get("labels").is_none());
    }
}
