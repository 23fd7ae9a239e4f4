//! Migration from client-side `kubectl apply`, as kubectl's `csaupgrade` does it: the fields
//! owned by kubectl's client-side managers (operation `Update`) move to kpin's `Apply` entry, so
//! a field later dropped upstream is really removed instead of lingering with its old owner.

use serde_json::{Map, Value, json};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Managers that client-side `kubectl apply` (and `kubectl create`) record, from kubectl's
/// csaupgrade.
const CLIENT_SIDE_MANAGERS: &[&str] = &["kubectl-client-side-apply", "before-first-apply"];

/// Whether `live` was applied client-side and still has fields owned by those managers.
pub fn needs_migration(live: &Value) -> bool {
    let annotated = live
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(LAST_APPLIED));
    annotated && entries(live).iter().any(is_client_side)
}

fn entries(live: &Value) -> Vec<Value> {
    live.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn is_client_side(entry: &Value) -> bool {
    entry["operation"] == "Update"
        && entry["manager"]
            .as_str()
            .is_some_and(|m| CLIENT_SIDE_MANAGERS.contains(&m))
}

/// Union of two FieldsV1 trees.
fn union(into: &mut Value, other: &Value) {
    match (into, other) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) => union(existing, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot @ Value::Null, v) => *slot = v.clone(),
        _ => {}
    }
}

/// The managedFields after migration: client-side entries folded into `manager`'s Apply entry.
/// `None` when there is nothing to move.
pub fn migrated_managed_fields(live: &Value, manager: &str) -> Option<Vec<Value>> {
    let all = entries(live);
    if !all.iter().any(is_client_side) {
        return None;
    }
    let api_version = live["apiVersion"].clone();
    let mut fields = Value::Object(Map::new());
    let mut time = Value::Null;
    for e in all
        .iter()
        .filter(|e| is_client_side(e) || (e["manager"] == manager && e["operation"] == "Apply"))
    {
        union(&mut fields, &e["fieldsV1"]);
        if time.is_null() {
            time = e["time"].clone();
        }
    }
    let mut out: Vec<Value> = all
        .into_iter()
        .filter(|e| !is_client_side(e) && (e["manager"] != manager || e["operation"] != "Apply"))
        .collect();
    let mut entry = json!({"manager": manager, "operation": "Apply", "apiVersion": api_version,
                           "fieldsType": "FieldsV1", "fieldsV1": fields});
    if !time.is_null() {
        entry["time"] = time;
    }
    out.push(entry);
    Some(out)
}

/// The merge patch that installs the migrated managedFields, guarded by the live
/// resourceVersion so a concurrent writer makes it fail instead of being overwritten.
pub fn migration_patch(live: &Value, manager: &str) -> Option<Value> {
    let managed = migrated_managed_fields(live, manager)?;
    let rv = live
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    Some(json!({"metadata": {"resourceVersion": rv, "managedFields": managed}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "resourceVersion": "7",
            "annotations": {LAST_APPLIED: "{}"},
            "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "time": "t1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:old": {}, "f:kept": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": "t2",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:ctl": {}}}}}
            ]}})
    }

    #[test]
    fn client_side_fields_move_to_the_apply_manager_and_others_stay() {
        assert!(needs_migration(&live()));
        let m = migrated_managed_fields(&live(), "kpin").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0]["manager"], "kube-controller-manager");
        assert_eq!(m[1]["manager"], "kpin");
        assert_eq!(m[1]["operation"], "Apply");
        assert_eq!(
            m[1]["fieldsV1"],
            json!({"f:data": {"f:old": {}, "f:kept": {}}})
        );
        let patch = migration_patch(&live(), "kpin").unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn objects_without_the_annotation_or_client_side_managers_are_left_alone() {
        let mut l = live();
        l["metadata"]["annotations"] = json!({});
        assert!(!needs_migration(&l));
        let mut l = live();
        l["metadata"]["managedFields"][0]["operation"] = json!("Apply");
        assert!(!needs_migration(&l));
        assert!(migrated_managed_fields(&l, "kpin").is_none());
    }
}
