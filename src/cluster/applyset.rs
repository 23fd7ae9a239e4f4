//! The ApplySet convention (KEP-3659, readable by `kubectl apply --prune --applyset`): a parent
//! ConfigMap per package records which group-kinds and namespaces its members live in, and each
//! member carries the `applyset.kubernetes.io/part-of` label. kpin adds what runs: the
//! package's version, environment and rendered digest of the last complete apply
//! ([`Deployed`]), which `kpin status` compares with kpin.lock, and the fingerprints of the
//! objects it applied ([`Fingerprints`], see `super::unchanged`).

use std::collections::BTreeSet;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::object::Object;

pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
pub const TOOLING: &str = "applyset.kubernetes.io/tooling";
pub const GROUP_KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
pub const NAMESPACES: &str = "applyset.kubernetes.io/additional-namespaces";
/// Members with this annotation set to `keep` survive `--prune`.
pub const KEEP_ANNOTATION: &str = "kpin.dev/prune";
/// The version of the package the last complete apply applied.
pub const VERSION_ANNOTATION: &str = "kpin.dev/version";
/// The environment it was rendered for (`default` without `--env`).
pub const ENVIRONMENT_ANNOTATION: &str = "kpin.dev/environment";
/// The digest of its render, as kpin.lock records renders (`rendered.<env>`).
pub const DIGEST_ANNOTATION: &str = "kpin.dev/rendered-digest";

/// The data key of the parent that holds the fingerprints, one per line, sorted.
pub const FINGERPRINTS_KEY: &str = "fingerprints";

/// Fingerprints of the objects the last apply saw through (`super::unchanged` computes and
/// compares them; the parent only keeps them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprints(pub BTreeSet<String>);

impl FromIterator<String> for Fingerprints {
    fn from_iter<I: IntoIterator<Item = String>>(fingerprints: I) -> Fingerprints {
        Fingerprints(fingerprints.into_iter().collect())
    }
}

impl Fingerprints {
    /// Read from a live parent (none when it records none).
    pub fn from_parent(parent: &Value) -> Fingerprints {
        Fingerprints(
            parent
                .pointer(&format!("/data/{FINGERPRINTS_KEY}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn contains(&self, fingerprint: &str) -> bool {
        self.0.contains(fingerprint)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a package's parent says runs: written once every object of an apply succeeded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployed {
    pub version: String,
    pub environment: String,
    pub rendered_digest: String,
}

impl Deployed {
    /// Read from a live parent; `None` when it records none (written by an older kpin, or no
    /// apply of the package completed yet).
    pub fn from_parent(parent: &Value) -> Option<Deployed> {
        let ann = |key: &str| {
            parent
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Some(Deployed {
            version: ann(VERSION_ANNOTATION)?,
            environment: ann(ENVIRONMENT_ANNOTATION).unwrap_or_default(),
            rendered_digest: ann(DIGEST_ANNOTATION)?,
        })
    }
}

/// The kpin that last wrote a parent (`kpin/0.1.0`), from its tooling annotation.
pub fn tooling(parent: &Value) -> Option<String> {
    parent
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TOOLING))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The parent object of one package's ApplySet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    pub name: String,
    pub namespace: String,
}

/// A group and kind, written `Kind.group` (`Kind` for the core group) like kubectl.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKind {
    // Kind first: the annotation then lists kinds alphabetically, as people read them.
    pub kind: String,
    pub group: String,
}

impl GroupKind {
    pub fn parse(text: &str) -> Option<GroupKind> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let (kind, group) = text.split_once('.').unwrap_or((text, ""));
        Some(GroupKind {
            group: group.to_owned(),
            kind: kind.to_owned(),
        })
    }
}

impl std::fmt::Display for GroupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// What a parent records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    pub group_kinds: BTreeSet<GroupKind>,
    /// Namespaces of members other than the parent's own.
    pub namespaces: BTreeSet<String>,
}

impl Contents {
    pub fn of(objects: &[Object], parent_namespace: &str) -> Contents {
        let mut c = Contents::default();
        for o in objects {
            c.group_kinds.insert(GroupKind {
                group: o.group().to_owned(),
                kind: o.kind().to_owned(),
            });
            if let Some(ns) = o.namespace().filter(|ns| *ns != parent_namespace) {
                c.namespaces.insert(ns.to_owned());
            }
        }
        c
    }

    pub fn union(&self, other: &Contents) -> Contents {
        Contents {
            group_kinds: self
                .group_kinds
                .union(&other.group_kinds)
                .cloned()
                .collect(),
            namespaces: self.namespaces.union(&other.namespaces).cloned().collect(),
        }
    }

    /// Read from a live parent.
    pub fn from_parent(parent: &Value) -> Contents {
        let ann = |key: &str| {
            parent
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Contents {
            group_kinds: ann(GROUP_KINDS)
                .split(',')
                .filter_map(GroupKind::parse)
                .collect(),
            namespaces: ann(NAMESPACES)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

impl Parent {
    pub fn for_package(package: &str, namespace: &str) -> Parent {
        Parent {
            name: format!("kpin-{package}"),
            namespace: namespace.to_owned(),
        }
    }

    /// `applyset-<base64url(sha256(<name>.<namespace>.<kind>.<group>))>-v1`, as the KEP says.
    pub fn id(&self) -> String {
        let digest =
            Sha256::digest(format!("{}.{}.ConfigMap.", self.name, self.namespace).as_bytes());
        format!(
            "applyset-{}-v1",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        )
    }

    /// The parent object recording `contents`, what runs and the fingerprints of what was
    /// applied, to be server-side applied.
    pub fn object(
        &self,
        contents: &Contents,
        deployed: Option<&Deployed>,
        fingerprints: &Fingerprints,
    ) -> Value {
        let join = |items: Vec<String>| items.join(",");
        let mut parent = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {ID_LABEL: self.id()},
                "annotations": {
                    TOOLING: format!("kpin/{}", crate::VERSION),
                    GROUP_KINDS: join(contents.group_kinds.iter().map(ToString::to_string).collect()),
                    NAMESPACES: join(contents.namespaces.iter().cloned().collect()),
                },
            },
        });
        if let (Some(d), Some(ann)) = (
            deployed,
            parent
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut),
        ) {
            ann.insert(VERSION_ANNOTATION.into(), d.version.clone().into());
            ann.insert(ENVIRONMENT_ANNOTATION.into(), d.environment.clone().into());
            ann.insert(DIGEST_ANNOTATION.into(), d.rendered_digest.clone().into());
        }
        if !fingerprints.is_empty() {
            let mut lines = String::with_capacity(fingerprints.0.len() * 25);
            for f in &fingerprints.0 {
                lines.push_str(f);
                lines.push('\n');
            }
            parent["data"] = json!({ FINGERPRINTS_KEY: lines });
        }
        parent
    }
}

/// The tooling annotation of a live parent, when it is not kpin's.
pub fn foreign_tooling(parent: &Value) -> Option<String> {
    let tooling = parent
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TOOLING))
        .and_then(Value::as_str)
        .unwrap_or("(none)");
    (!tooling.starts_with("kpin/")).then(|| tooling.to_owned())
}

/// Whether a live member asks to survive pruning.
pub fn keep(member: &Value) -> bool {
    member
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(KEEP_ANNOTATION))
        .and_then(Value::as_str)
        == Some("keep")
}

/// Label a member as part of the set.
pub fn label_member(object: &mut Object, id: &str) {
    let meta = object.metadata_mut();
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    if let Some(l) = labels.as_object_mut() {
        l.insert(PART_OF_LABEL.into(), Value::String(id.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_follows_the_kep_formula() {
        let p = Parent::for_package("demo", "apps");
        let digest = Sha256::digest(b"kpin-demo.apps.ConfigMap.");
        let expected = format!(
            "applyset-{}-v1",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        assert_eq!(p.id(), expected);
        assert!(!p.id().contains('='));
    }

    #[test]
    fn contents_round_trip_through_the_parent() {
        let objects = vec![
            Object(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "apps"}}),
            ),
            Object(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "other"}}),
            ),
            Object(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "c"}}),
            ),
        ];
        let p = Parent::for_package("demo", "apps");
        let c = Contents::of(&objects, "apps");
        let deployed = Deployed {
            version: "1.2.0".into(),
            environment: "prod".into(),
            rendered_digest: "sha256:ab".into(),
        };
        let fingerprints = Fingerprints(["b2".to_owned(), "a1".to_owned()].into());
        let parent = p.object(&c, Some(&deployed), &fingerprints);
        assert_eq!(Deployed::from_parent(&parent), Some(deployed));
        assert_eq!(parent["data"][FINGERPRINTS_KEY], "a1\nb2\n");
        assert_eq!(Fingerprints::from_parent(&parent), fingerprints);
        let bare = p.object(&c, None, &Fingerprints::default());
        assert_eq!(Deployed::from_parent(&bare), None);
        assert!(bare.get("data").is_none());
        assert_eq!(tooling(&parent), Some(format!("kpin/{}", crate::VERSION)));
        assert_eq!(
            parent["metadata"]["annotations"][GROUP_KINDS],
            "ClusterRole.rbac.authorization.k8s.io,ConfigMap,Deployment.apps"
        );
        assert_eq!(parent["metadata"]["annotations"][NAMESPACES], "other");
        assert_eq!(Contents::from_parent(&parent), c);
        assert_eq!(foreign_tooling(&parent), None);
        let mut other = parent.clone();
        other["metadata"]["annotations"][TOOLING] = json!("kubectl/v1.32");
        assert_eq!(foreign_tooling(&other).as_deref(), Some("kubectl/v1.32"));
    }
}
