//! Secret masking for every diff kpin shows: values replaced like `kubectl diff` does.

use serde_json::{Map, Value};

const MASK: &str = "***";
const MASK_BEFORE: &str = "*** (before)";
const MASK_AFTER: &str = "*** (after)";
const SECRET_FIELDS: [&str; 2] = ["data", "stringData"];

fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Copies of `before` and `after` with Secret values replaced like `kubectl diff` does: `***`
/// where a key's value is the same on both sides, `*** (before)` / `*** (after)` where it
/// differs, so a reviewer sees *that* a secret changed but never its value.
pub fn mask_secrets(
    before: Option<&Value>,
    after: Option<&Value>,
) -> (Option<Value>, Option<Value>) {
    let mut b = before.cloned();
    let mut a = after.cloned();
    let secret = b.as_ref().is_some_and(is_secret) || a.as_ref().is_some_and(is_secret);
    if !secret {
        return (b, a);
    }
    for field in SECRET_FIELDS {
        let old = before.and_then(|v| v.get(field)).and_then(Value::as_object);
        let new = after.and_then(|v| v.get(field)).and_then(Value::as_object);
        let masked =
            |side: Option<&Map<String, Value>>, other: Option<&Map<String, Value>>, tag: &str| {
                side.map(|map| {
                    map.iter()
                        .map(|(k, v)| {
                            let same = other.and_then(|o| o.get(k)).is_none_or(|o| o == v);
                            let text = if same { MASK } else { tag };
                            (k.clone(), Value::String(text.to_owned()))
                        })
                        .collect::<Map<String, Value>>()
                })
            };
        if let (Some(Value::Object(obj)), Some(m)) = (b.as_mut(), masked(old, new, MASK_BEFORE)) {
            obj.insert(field.to_owned(), Value::Object(m));
        }
        if let (Some(Value::Object(obj)), Some(m)) = (a.as_mut(), masked(new, old, MASK_AFTER)) {
            obj.insert(field.to_owned(), Value::Object(m));
        }
    }
    (b, a)
}
