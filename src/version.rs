//! Pinned versions: the text as written, its lenient semver reading, and `{version}` templates.

use std::fmt;

pub const VERSION_PLACEHOLDER: &str = "{version}";

/// A pinned version: the text as written (substituted into templates) and, where it reads as
/// one, its semver form for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub raw: String,
    pub semver: Option<semver::Version>,
}

impl Version {
    pub fn parse(raw: &str) -> Version {
        Version {
            raw: raw.to_owned(),
            semver: lenient_semver(raw),
        }
    }

    /// Oldest first: by semver where both read as one, versions that do not read as semver
    /// after those that do, then by text, so every order kpin writes is stable.
    pub fn cmp_order(&self, other: &Version) -> std::cmp::Ordering {
        (self.semver.is_none(), &self.semver, &self.raw).cmp(&(
            other.semver.is_none(),
            &other.semver,
            &other.raw,
        ))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Semver from tag-like text: `1.9.4`, `v0.0.31`, `controller-v1.12.8`, `1.2` (read as 1.2.0).
pub fn lenient_semver(text: &str) -> Option<semver::Version> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let prefix = &text[..start];
    // Only a tag-like prefix (`v`, `controller-v`, `release-`), never digits inside words.
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphabetic() || c == '-' || c == '_')
    {
        return None;
    }
    let body = &text[start..];
    if let Ok(v) = semver::Version::parse(body) {
        return Some(v);
    }
    let (core, rest) = match body.find(['-', '+']) {
        Some(i) => (&body[..i], &body[i..]),
        None => (body, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let padded = match parts.len() {
        1 => format!("{}.0.0{rest}", parts[0]),
        2 => format!("{}.{}.0{rest}", parts[0], parts[1]),
        _ => return None,
    };
    semver::Version::parse(&padded).ok()
}

/// Substitute `{version}` in a template.
pub fn expand(template: &str, version: &Version) -> String {
    template.replace(VERSION_PLACEHOLDER, &version.raw)
}

/// The version a tag stands for under a tag template, e.g. `controller-v{version}` and
/// `controller-v1.12.8` give `1.12.8`.
pub fn version_from_tag(template: &str, tag: &str) -> Option<String> {
    let (prefix, suffix) = template.split_once(VERSION_PLACEHOLDER)?;
    let v = tag.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (!v.is_empty()).then(|| v.to_owned())
}
