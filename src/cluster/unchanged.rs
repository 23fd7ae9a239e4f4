//! Knowing that applying an object changes nothing without asking the server: the fingerprint
//! of an applied object, recorded in its package's ApplySet parent, and the rule comparing it.
//! Apply, diff and status all ask [`Shortcut::recorded`] first and fall back to a dry run
//! compared by [`super::owned::changes`] whenever it says no.
//!
//! A fingerprint digests, for one object: its identity and uid; the body kpin sends, byte for
//! byte; kpin's part of the live object ([`owned::feed_owned`]: its `Apply`
//! entry in managedFields and the values under the fields that entry lists); and what the
//! server's answer depends on besides: its `/version` (binary and emulated version) and the
//! hash the server publishes for the OpenAPI schema of the object's group version (a CRD's
//! schema, defaults included, is part of it). kpin records the fingerprint of every object
//! whose apply it saw through (written, or found unchanged by a dry run), computed from the
//! object as the server returned it.
//!
//! Why a match proves the apply would change nothing: the server's result of an apply depends
//! on the body, on the fields the manager owned before (what it gives up is removed), on the
//! live values under them, and on the schema and server that merge and default. A match says
//! all of these are as they were right after kpin's apply of this very body, which left the
//! object as the apply makes it. Anything another writer did to kpin's part shows in it: a
//! changed value moves ownership to that writer (an update) or is refused (a conflict), and a
//! removed field or a forced apply takes the field out of kpin's entry. What others own
//! (status, a controller's annotation, an autoscaler's replicas) is not kpin's to report and
//! does not enter the fingerprint. A deleted object is missing from the LIST; a re-created one
//! has another uid.
//!
//! What is never fingerprinted, so always goes through the dry run: Secrets that carry data
//! (the parent is a ConfigMap, readable by more people than Secrets; a digest of a Secret's
//! values would let them test guesses), objects being deleted, Jobs the cluster deletes once
//! finished (`ttlSecondsAfterFinished`), and everything when the server does not publish its
//! OpenAPI v3 index (then nothing tells a schema change).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::owned;
use super::{Cluster, applyset::Fingerprints};
use crate::digest::Hasher;
use crate::kinds;
use crate::object::Object;

/// Hex digits of sha256 kept per fingerprint: 96 bits, so that thousands of them fit a
/// ConfigMap and a chance match stays out of reach.
const FINGERPRINT_HEX: usize = 24;

/// What a fingerprint depends on beyond the object: the server and the schemas it serves.
#[derive(Debug, Clone)]
pub(crate) struct ServerContext {
    /// sha256 of `/version` (binary version, emulated version, build).
    version: String,
    /// OpenAPI v3 schema hash per group-version path (`api/v1`, `apis/apps/v1`).
    schemas: HashMap<String, String>,
}

impl ServerContext {
    /// Read `/version` and the OpenAPI v3 index: two small requests per run. `None` when the
    /// server answers neither (then nothing is fingerprinted).
    pub(crate) async fn read(cluster: &Cluster) -> Option<ServerContext> {
        let get = |path: &'static str| async move {
            let request = http::Request::get(path).body(Vec::new()).ok()?;
            cluster.client.request::<Value>(request).await.ok()
        };
        let (version, index) = futures::join!(get("/version"), get("/openapi/v3"));
        Some(ServerContext::from_answers(&version?, &index?))
    }

    fn from_answers(version: &Value, index: &Value) -> ServerContext {
        let mut hasher = Hasher::default();
        hasher.json(version);
        let schemas = index
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(path, entry)| {
                let url = entry.get("serverRelativeURL")?.as_str()?;
                let hash = url.split_once("hash=")?.1;
                Some((path.clone(), hash.to_owned()))
            })
            .collect();
        ServerContext {
            version: hasher.finish_hex(),
            schemas,
        }
    }

    /// The schema hash of an apiVersion's group version.
    fn schema_of(&self, api_version: &str) -> Option<&str> {
        let path = if api_version.contains('/') {
            format!("apis/{api_version}")
        } else {
            format!("api/{api_version}")
        };
        self.schemas.get(&path).map(String::as_str)
    }
}

/// The shortcut for one run: the server context and the field manager kpin applies as.
pub(crate) struct Shortcut {
    context: Option<ServerContext>,
    manager: String,
}

/// How long [`Shortcut::refresh`] waits for the server to publish the schemas of new CRDs.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
const PUBLISH_POLL: Duration = Duration::from_millis(100);

impl Shortcut {
    pub(crate) async fn read(cluster: &Cluster, manager: &str) -> Shortcut {
        Shortcut {
            context: ServerContext::read(cluster).await,
            manager: manager.to_owned(),
        }
    }

    /// Read the server context again after this run wrote CRDs, waiting a little for the
    /// schemas of `api_versions` to be published (the server does so shortly after a CRD is
    /// established). A schema still missing leaves its objects unfingerprinted, and a hash
    /// not yet updated makes the next run fall back once: neither can make a change look
    /// unchanged.
    pub(crate) async fn refresh(&mut self, cluster: &Cluster, api_versions: &BTreeSet<String>) {
        let deadline = Instant::now() + PUBLISH_TIMEOUT;
        loop {
            self.context = ServerContext::read(cluster).await;
            let published = self
                .context
                .as_ref()
                .is_some_and(|c| api_versions.iter().all(|v| c.schema_of(v).is_some()));
            if published || self.context.is_none() || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(PUBLISH_POLL).await;
        }
    }

    /// Whether applying `object` (as it will be sent) to `live` provably changes nothing: its
    /// fingerprint, returned, is one the package's parent recorded.
    pub(crate) fn recorded(
        &self,
        recorded: &Fingerprints,
        object: &Object,
        live: &Value,
    ) -> Option<String> {
        if recorded.is_empty() {
            return None;
        }
        self.fingerprint(object, live)
            .filter(|f| recorded.contains(f))
    }

    /// The fingerprint of `object` (as sent) applied and now live as `live`; `None` for what is
    /// never fingerprinted (see the module's documentation).
    pub(crate) fn fingerprint(&self, object: &Object, live: &Value) -> Option<String> {
        let context = self.context.as_ref()?;
        let schema = context.schema_of(object.api_version())?;
        if live.pointer("/metadata/deletionTimestamp").is_some()
            || carries_secret_data(object)
            || deleted_once_finished(object)
        {
            return None;
        }
        let mut hasher = Hasher::default();
        hasher.json_string(&object.reference().to_string());
        hasher.json_string(object.api_version());
        hasher.json_as_is(live.pointer("/metadata/uid").unwrap_or(&Value::Null));
        // As sent: serde_json writes the request body the same way.
        hasher.json_as_is(&object.0);
        owned::feed_owned(live, &self.manager, &mut hasher);
        hasher.json_string(&context.version);
        hasher.json_string(schema);
        let mut hex = hasher.finish_hex();
        hex.truncate(FINGERPRINT_HEX);
        Some(hex)
    }
}

/// A Secret whose body holds values (`data` or `stringData`).
fn carries_secret_data(object: &Object) -> bool {
    (object.group(), object.kind()) == kinds::SECRET_KIND
        && ["data", "stringData"].iter().any(|field| {
            object
                .0
                .get(*field)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        })
}

/// A Job the cluster deletes once it finished (`ttlSecondsAfterFinished`): it will not be there
/// to compare, and recording it would rewrite the parent on every apply that runs it again.
fn deleted_once_finished(object: &Object) -> bool {
    (object.group(), object.kind()) == ("batch", "Job")
        && object.0.pointer("/spec/ttlSecondsAfterFinished").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shortcut() -> Shortcut {
        let index = json!({"paths": {
            "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=AAA"},
            "apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=BBB"}}});
        Shortcut {
            context: Some(ServerContext::from_answers(
                &json!({"gitVersion": "v1.36.3"}),
                &index,
            )),
            manager: "kpin".into(),
        }
    }

    fn config_map(value: &str) -> Object {
        Object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n"}, "data": {"k": value}}))
    }

    fn live(value: &str, owned: &Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "uid": "u1", "resourceVersion": "7",
                "managedFields": [{"manager": "kpin", "operation": "Apply", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": owned}]},
            "data": {"k": value, "other": "x"}})
    }

    fn owns_k() -> Value {
        json!({"f:data": {"f:k": {}}})
    }

    #[test]
    fn the_same_body_over_the_same_owned_part_matches_whatever_else_moved() {
        let s = shortcut();
        let recorded: Fingerprints = s
            .fingerprint(&config_map("1"), &live("1", &owns_k()))
            .into_iter()
            .collect();
        let mut later = live("1", &owns_k());
        later["data"]["other"] = json!("changed by someone else");
        later["metadata"]["resourceVersion"] = json!("9");
        assert!(s.recorded(&recorded, &config_map("1"), &later).is_some());
    }

    #[test]
    fn a_new_body_an_edited_value_a_lost_field_or_a_new_uid_do_not_match() {
        let s = shortcut();
        let recorded: Fingerprints = s
            .fingerprint(&config_map("1"), &live("1", &owns_k()))
            .into_iter()
            .collect();
        assert!(
            s.recorded(&recorded, &config_map("2"), &live("1", &owns_k()))
                .is_none()
        );
        assert!(
            s.recorded(&recorded, &config_map("1"), &live("2", &owns_k()))
                .is_none()
        );
        assert!(
            s.recorded(
                &recorded,
                &config_map("1"),
                &live("1", &json!({"f:data": {}}))
            )
            .is_none()
        );
        let mut recreated = live("1", &owns_k());
        recreated["metadata"]["uid"] = json!("u2");
        assert!(
            s.recorded(&recorded, &config_map("1"), &recreated)
                .is_none()
        );
        assert!(
            s.recorded(
                &Fingerprints::default(),
                &config_map("1"),
                &live("1", &owns_k())
            )
            .is_none()
        );
    }

    #[test]
    fn another_server_or_schema_does_not_match() {
        let s = shortcut();
        let recorded: Fingerprints = s
            .fingerprint(&config_map("1"), &live("1", &owns_k()))
            .into_iter()
            .collect();
        let mut upgraded = shortcut();
        upgraded.context = Some(ServerContext::from_answers(
            &json!({"gitVersion": "v1.37.0"}),
            &json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=AAA"}}}),
        ));
        assert!(
            upgraded
                .recorded(&recorded, &config_map("1"), &live("1", &owns_k()))
                .is_none()
        );
        let mut reschema = shortcut();
        reschema.context = Some(ServerContext::from_answers(
            &json!({"gitVersion": "v1.36.3"}),
            &json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=CCC"}}}),
        ));
        assert!(
            reschema
                .recorded(&recorded, &config_map("1"), &live("1", &owns_k()))
                .is_none()
        );
    }

    #[test]
    fn secrets_with_values_jobs_deleted_once_done_objects_being_deleted_and_unknown_schemas_are_never_fingerprinted()
     {
        let s = shortcut();
        let secret = Object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n"}, "stringData": {"password": "x"}}));
        assert_eq!(s.fingerprint(&secret, &live("1", &owns_k())), None);
        let empty = Object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "n"}, "type": "Opaque"}));
        assert!(s.fingerprint(&empty, &live("1", &owns_k())).is_some());
        let job = Object(json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "n"}, "spec": {"ttlSecondsAfterFinished": 0}}));
        let mut index = shortcut();
        index.context = Some(ServerContext::from_answers(
            &json!({}),
            &json!({"paths": {"apis/batch/v1": {"serverRelativeURL": "/x?hash=D"}}}),
        ));
        assert_eq!(index.fingerprint(&job, &live("1", &owns_k())), None);
        let mut deleting = live("1", &owns_k());
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-05T00:00:00Z");
        assert_eq!(s.fingerprint(&config_map("1"), &deleting), None);
        let widget = Object(json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "n"}}));
        assert_eq!(s.fingerprint(&widget, &live("1", &owns_k())), None);
        let blind = Shortcut {
            context: None,
            manager: "kpin".into(),
        };
        assert_eq!(
            blind.fingerprint(&config_map("1"), &live("1", &owns_k())),
            None
        );
    }
}
