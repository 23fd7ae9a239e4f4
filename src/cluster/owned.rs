//! Whether applying an object changes it, judged on what kpin's apply decides: the fields kpin's
//! field manager owns (its `Apply` entry in `metadata.managedFields`) and their values, in the
//! server's dry-run result against the live object. `kpin apply` (skip the write), `kpin diff`
//! and `kpin status` (report it unchanged) all ask [`changes`], so they cannot disagree.
//!
//! Why not the whole object: other writers change a live object all the time, and none of that
//! is kpin's to report or to write again. Controllers write `status`, `metadata.generation`
//! and annotations of their own between kpin's read and its dry run; the server drops empty
//! collections kpin sent (`webhooks: []`: then every apply of the same body writes and bumps
//! `generation`, though nothing kpin owns moves), defaults fields kpin left out, and normalises
//! values (`1000m` is stored as `1`). Within kpin's fields, the dry run and the live object
//! both hold the server's form, so a difference there is a change kpin's apply makes. An apply
//! that would change which fields kpin owns (take one over, give one up) writes too, even when
//! no value moves.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::digest::Hasher;
use crate::kinds;

/// Whether applying as `manager` changes the live object, given the server's dry-run result of
/// that apply: the fields the manager owns, or their values, differ.
pub fn changes(dry_run: &Value, live: &Value, manager: &str) -> bool {
    let (after, before) = (
        applied_entry(dry_run, manager),
        applied_entry(live, manager),
    );
    if owned(after) != owned(before) {
        return true;
    }
    let Some(fields) = after
        .and_then(|e| e.get("fieldsV1"))
        .and_then(Value::as_object)
    else {
        // kpin owns nothing in either: nothing it applies can differ.
        return false;
    };
    let fields = with_stored_forms(dry_run, fields);
    !same_on(Some(dry_run), Some(live), &fields)
}

/// Feed into `hasher` what kpin's part of `object` is: the manager's `Apply` entry (the
/// apiVersion and the field set it owns) and the object's values under those fields, walked as
/// [`changes`] compares them. Two equal digests of one object mean that no writer changed,
/// took or removed anything the manager owns in between; what other writers own (status,
/// annotations of controllers, defaults) does not enter it. Fed as the server stored them,
/// without sorting (field sets of CRDs are megabytes): the same stored object gives the same
/// digest, and another order only another digest.
pub fn feed_owned(object: &Value, manager: &str, hasher: &mut Hasher) {
    let entry = applied_entry(object, manager);
    let Some((api_version, Some(Value::Object(fields)))) = owned(entry) else {
        hasher.update(b"owns nothing");
        return;
    };
    hasher.json_as_is(api_version.unwrap_or(&Value::Null));
    let fields = with_stored_forms(object, fields);
    feed_fields(hasher, &fields);
    feed_on(hasher, Some(object), &fields);
}

/// A field set, as the server stored it.
fn feed_fields(hasher: &mut Hasher, fields: &Map<String, Value>) {
    for (key, child) in fields {
        hasher.json_string(key);
        match child.as_object() {
            Some(child) => {
                hasher.update(b"{");
                feed_fields(hasher, child);
                hasher.update(b"}");
            }
            None => hasher.json_as_is(child),
        }
    }
}

/// [`same_on`]'s walk, feeding what it would compare.
fn feed_on(hasher: &mut Hasher, value: Option<&Value>, fields: &Map<String, Value>) {
    if fields.is_empty() {
        match value {
            Some(v) => hasher.json_as_is(v),
            None => hasher.update(b"absent"),
        }
        return;
    }
    hasher.update(if value.is_some() { b"+" } else { b"-" });
    for (key, child) in fields {
        let Some(child) = child.as_object().filter(|_| key != ".") else {
            continue;
        };
        hasher.json_string(key);
        feed_on(hasher, part(value, key), child);
    }
}

/// `fields` and, for each key of a write-only field kpin owns (`stringData.password`), the key
/// where the server stores it (`data.password`): neither side holds the write-only field.
/// Borrowed as it is unless such a field is owned: field sets of CRDs can be large.
fn with_stored_forms<'a>(
    object: &Value,
    fields: &'a Map<String, Value>,
) -> Cow<'a, Map<String, Value>> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let (group, kind) = (
        kinds::group_of(api_version),
        object["kind"].as_str().unwrap_or(""),
    );
    let mut out = Cow::Borrowed(fields);
    for w in kinds::WRITE_ONLY_FIELDS
        .iter()
        .filter(|w| w.group == group && w.kind == kind)
    {
        let Some(keys) = fields
            .get(&format!("f:{}", w.field))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let stored = out
            .to_mut()
            .entry(format!("f:{}", w.stored))
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(stored) = stored.as_object_mut() {
            for key in keys.keys().filter(|k| k.starts_with("f:")) {
                stored.insert(key.clone(), Value::Object(Map::new()));
            }
        }
    }
    out
}

/// What an entry says the manager owns: the fields, and the apiVersion they are in.
fn owned(entry: Option<&Value>) -> Option<(Option<&Value>, Option<&Value>)> {
    entry.map(|e| (e.get("apiVersion"), e.get("fieldsV1")))
}

/// The manager's `Apply` entry for the object itself (not a subresource such as `status`).
fn applied_entry<'a>(object: &'a Value, manager: &str) -> Option<&'a Value> {
    object
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| {
            e["manager"] == manager
                && e["operation"] == "Apply"
                && e.get("subresource")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
        })
}

/// Whether `a` and `b` agree on what the field set `fields` (fieldsV1) covers, walking both
/// without copying (objects can be megabyte-sized CRDs). Keys of a set: `f:name` a field,
/// `k:{...}` the list item with those key fields, `v:...` a set member, `i:N` an index, `.` the
/// node itself. A leaf (no children) covers the whole value under it; a node owned only as
/// `.` covers its presence.
fn same_on(a: Option<&Value>, b: Option<&Value>, fields: &Map<String, Value>) -> bool {
    if fields.is_empty() {
        return a == b;
    }
    if a.is_some() != b.is_some() {
        return false;
    }
    fields.iter().all(|(key, child)| {
        let Some(child) = child.as_object() else {
            return true;
        };
        if key == "." {
            return true;
        }
        let (x, y) = (part(a, key), part(b, key));
        (x.is_none() && y.is_none()) || same_on(x, y, child)
    })
}

/// The part of `value` a field-set key names.
fn part<'a>(value: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let value = value?;
    if let Some(name) = key.strip_prefix("f:") {
        value.get(name)
    } else if let Some(item_key) = key.strip_prefix("k:") {
        list_item(value, item_key)
    } else if let Some(member) = key.strip_prefix("v:") {
        let member = serde_json::from_str::<Value>(member).ok()?;
        value.as_array()?.iter().find(|v| **v == member)
    } else if let Some(index) = key.strip_prefix("i:") {
        value.get(index.parse::<usize>().ok()?)
    } else {
        None
    }
}

/// The item of the list `value` whose fields equal those of `item_key` (`{"name":"web"}`).
fn list_item<'a>(value: &'a Value, item_key: &str) -> Option<&'a Value> {
    let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(item_key) else {
        return None;
    };
    value
        .as_array()?
        .iter()
        .find(|item| wanted.iter().all(|(k, v)| item.get(k) == Some(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(manager: &str, fields: &Value) -> Value {
        json!({"manager": manager, "operation": "Apply", "apiVersion": "apps/v1",
            "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    fn deployment(image: &str, managed: &Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "5", "generation": 2,
                "annotations": {"deployment.kubernetes.io/revision": "2"}, "managedFields": managed},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"readyReplicas": 1}})
    }

    fn kpin_fields() -> Value {
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
    }

    #[test]
    fn what_other_writers_change_is_not_a_change() {
        let live = deployment("web:1", &json!([entry("kpin", &kpin_fields())]));
        let mut dry = live.clone();
        dry["status"]["readyReplicas"] = json!(0);
        dry["metadata"]["generation"] = json!(3);
        dry["metadata"]["resourceVersion"] = json!("9");
        dry["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("3");
        dry["spec"]["replicas"] = json!(4); // an autoscaler's
        dry["metadata"]["managedFields"][0]["time"] = json!("2026-02-02T00:00:00Z");
        assert!(!changes(&dry, &live, "kpin"));
    }

    #[test]
    fn a_value_kpin_owns_is_a_change() {
        let managed = json!([entry("kpin", &kpin_fields())]);
        let live = deployment("web:1", &managed);
        let dry = deployment("web:2", &managed);
        assert!(changes(&dry, &live, "kpin"));
    }

    #[test]
    fn taking_over_or_giving_up_a_field_is_a_change() {
        let live = deployment("web:1", &json!([entry("kpin", &kpin_fields())]));
        let mut more = kpin_fields();
        more["f:spec"]["f:replicas"] = json!({});
        let dry = deployment("web:1", &json!([entry("kpin", &more)]));
        assert!(changes(&dry, &live, "kpin"));
        // First apply by kpin over an object another tool made: kpin had no entry.
        let foreign = deployment("web:1", &json!([entry("kubectl", &kpin_fields())]));
        assert!(changes(&live, &foreign, "kpin"));
    }

    #[test]
    fn an_entry_of_another_manager_or_of_the_status_subresource_is_not_kpins() {
        let mut status = entry("kpin", &json!({"f:status": {"f:readyReplicas": {}}}));
        status["subresource"] = json!("status");
        let live = deployment(
            "web:1",
            &json!([entry("kpin", &kpin_fields()), status.clone()]),
        );
        let mut dry = live.clone();
        dry["status"]["readyReplicas"] = json!(7);
        dry["metadata"]["managedFields"][1]["fieldsV1"] = json!({"f:status": {}});
        assert!(!changes(&dry, &live, "kpin"));
    }

    #[test]
    fn an_empty_list_the_server_drops_leaves_nothing_owned_and_nothing_changed() {
        // `webhooks: []`: stored without the list and without a managedFields entry; the dry
        // run reports a higher generation.
        let live = json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "w", "resourceVersion": "3", "generation": 1}});
        let mut dry = live.clone();
        dry["metadata"]["generation"] = json!(2);
        assert!(!changes(&dry, &live, "kpin"));
    }

    #[test]
    fn a_write_only_field_is_compared_where_the_server_stores_it() {
        let secret = |data: &str| {
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "managedFields": [entry("kpin",
                    &json!({"f:stringData": {".": {}, "f:password": {}}}))]},
                "data": {"password": data, "other": "eA=="}})
        };
        assert!(!changes(&secret("b2xk"), &secret("b2xk"), "kpin"));
        assert!(changes(&secret("bmV3"), &secret("b2xk"), "kpin"));
        let mut other = secret("b2xk");
        other["data"]["other"] = json!("eQ==");
        assert!(!changes(&other, &secret("b2xk"), "kpin"));
    }

    #[test]
    fn list_items_are_found_by_their_key_whatever_the_order_and_defaults() {
        let fields = json!({"f:spec": {"f:ports": {
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}, "f:selector": {}}});
        let service = |ports: Value| {
            json!({"metadata": {"managedFields": [entry("kpin", &fields)]},
                "spec": {"ports": ports, "selector": {"app": "web"}}})
        };
        let live = service(json!([{"port": 443, "protocol": "TCP"},
            {"port": 80, "protocol": "TCP", "targetPort": 80}]));
        let dry = service(json!([{"port": 80, "protocol": "TCP", "targetPort": 8080},
            {"port": 443, "protocol": "TCP"}]));
        // targetPort is not kpin's (defaulted); port 443 is another manager's item.
        assert!(!changes(&dry, &live, "kpin"));
        let mut gone = live.clone();
        gone["spec"]["ports"] = json!([{"port": 443, "protocol": "TCP"}]);
        assert!(changes(&dry, &gone, "kpin"));
    }

    #[test]
    fn a_leaf_covers_the_whole_atomic_value_and_set_members_count() {
        let fields = json!({"f:spec": {"f:selector": {}, "f:finalizers": {"v:\"a\"": {}}}});
        let obj = |selector: Value, finalizers: Value| {
            json!({"metadata": {"managedFields": [entry("kpin", &fields)]},
                "spec": {"selector": selector, "finalizers": finalizers}})
        };
        let live = obj(json!({"app": "web"}), json!(["a", "b"]));
        assert!(!changes(
            &obj(json!({"app": "web"}), json!(["b", "a"])),
            &live,
            "kpin"
        ));
        assert!(changes(
            &obj(json!({"app": "web", "tier": "x"}), json!(["a"])),
            &live,
            "kpin"
        ));
        assert!(changes(
            &obj(json!({"app": "web"}), json!(["b"])),
            &live,
            "kpin"
        ));
    }
}
