//! A Kubernetes minor version (`1.31`), as kpin.yaml, the command line and the validation tables
//! name it. Below `manifest` and `validate`, which both use it.

use std::fmt;

use serde::Serialize;

/// A Kubernetes minor version (`1.31`): what schemas and retired APIs depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
}

impl KubeVersion {
    /// `1.31`, `v1.31` or `1.31.4` (the patch level does not change the API).
    pub fn parse(text: &str) -> Result<KubeVersion, String> {
        let bad = || format!("`{text}` is not a Kubernetes version such as \"1.31\"");
        let body = text.trim().strip_prefix('v').unwrap_or(text.trim());
        let mut parts = body.split('.');
        let number = |p: Option<&str>| -> Result<u32, String> {
            p.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        if let Some(patch) = parts.next() {
            number(Some(patch))?;
        }
        if parts.next().is_some() || major != 1 {
            return Err(bad());
        }
        Ok(KubeVersion { major, minor })
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for KubeVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
