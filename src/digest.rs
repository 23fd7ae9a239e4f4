//! sha256 digests: of bytes, of files, streamed, and of canonical JSON (for manifest entries, overlays and
//! the fingerprints of applied objects).

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex sha256 and size of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Hasher::default();
    let size = std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok((hasher.finish_hex(), size))
}

/// `sha256:<hex>` of a JSON value with object keys sorted, so key order never changes it.
pub fn of_json(value: &Value) -> String {
    let mut hasher = Hasher::default();
    hasher.json(value);
    format!("sha256:{}", hasher.finish_hex())
}

/// Incremental sha256: streamed downloads, and values fed piece by piece.
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Feed `value` as canonical JSON (object keys sorted), without building the text.
    pub fn json(&mut self, value: &Value) {
        match value {
            Value::Object(map) => self.json_map(map),
            Value::Array(items) => {
                self.update(b"[");
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        self.update(b",");
                    }
                    self.json(v);
                }
                self.update(b"]");
            }
            scalar => {
                let _ = serde_json::to_writer(&mut *self, scalar);
            }
        }
    }

    /// Feed `value` as serde_json writes it, keys in the order they are in: cheaper than
    /// [`Hasher::json`] for values whose key order is itself deterministic (a render, what a
    /// server stored), where another order only gives another digest.
    pub fn json_as_is(&mut self, value: &Value) {
        // Writing into the hasher cannot fail.
        let _ = serde_json::to_writer(&mut *self, value);
    }

    /// Feed a JSON object, as [`Hasher::json`] does.
    fn json_map(&mut self, map: &serde_json::Map<String, Value>) {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        self.update(b"{");
        for (i, k) in keys.into_iter().enumerate() {
            if i > 0 {
                self.update(b",");
            }
            self.json_string(k);
            self.update(b":");
            self.json(&map[k]);
        }
        self.update(b"}");
    }

    /// Feed `text` as a JSON string: quoted, so two strings fed in a row cannot run together.
    pub fn json_string(&mut self, text: &str) {
        let _ = serde_json::to_writer(&mut *self, text);
    }

    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":[{"y":2,"x":1}]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":[{"x":1,"y":2}],"b":1}"#).unwrap();
        assert_eq!(of_json(&a), of_json(&b));
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
