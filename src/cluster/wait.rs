//! Readiness after apply: workloads rolled out, Jobs complete, CRDs established, APIServices
//! available. The rules are a data table keyed by kind; everything else is ready when applied.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use super::discovery::Resolved;
use super::report::NotReady;
use super::{Cluster, api_for, get};
use crate::object::ObjectRef;

/// How readiness of a kind is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// observedGeneration caught up and all replicas updated and available.
    Rollout,
    /// Like `Rollout`, for DaemonSets' differently named counters.
    DaemonSetRollout,
    /// A condition of this type is `True`.
    Condition(&'static str),
    /// A Job's `Complete` condition (a `Failed` condition is reported as such).
    JobComplete,
}

/// (group, kind, rule). Kinds not listed are ready once applied.
pub const RULES: &[(&str, &str, Rule)] = &[
    ("apps", "Deployment", Rule::Rollout),
    ("apps", "StatefulSet", Rule::Rollout),
    ("apps", "DaemonSet", Rule::DaemonSetRollout),
    ("batch", "Job", Rule::JobComplete),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        Rule::Condition("Established"),
    ),
    (
        "apiregistration.k8s.io",
        "APIService",
        Rule::Condition("Available"),
    ),
];

pub fn rule_for(group: &str, kind: &str) -> Option<Rule> {
    RULES
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, r)| *r)
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn condition(v: &Value, kind: &str) -> Option<String> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| c["status"].as_str().unwrap_or("").to_owned())
}

/// Where a workload kind keeps its rollout counters.
struct Counters {
    /// How many are wanted, and the default when the field is absent.
    want: (&'static str, i64),
    updated: &'static str,
    available: &'static str,
    /// What is counted, for the message.
    unit: &'static str,
}

const REPLICAS: Counters = Counters {
    want: ("/spec/replicas", 1),
    updated: "/status/updatedReplicas",
    available: "/status/availableReplicas",
    unit: "replicas",
};

const DAEMON_PODS: Counters = Counters {
    want: ("/status/desiredNumberScheduled", 0),
    updated: "/status/updatedNumberScheduled",
    available: "/status/numberAvailable",
    unit: "pods",
};

/// Rolled out: the controller saw the latest generation and every wanted copy is updated and
/// available.
fn rolled_out(live: &Value, c: &Counters) -> Result<(), String> {
    let generation = int(live, "/metadata/generation");
    let observed = int(live, "/status/observedGeneration");
    let want = live
        .pointer(c.want.0)
        .and_then(Value::as_i64)
        .unwrap_or(c.want.1);
    let updated = int(live, c.updated);
    let available = int(live, c.available);
    let unit = c.unit;
    if observed < generation {
        Err(format!(
            "generation {generation} not observed yet (observed {observed})"
        ))
    } else if updated < want || available < want {
        Err(format!(
            "{updated}/{want} {unit} updated, {available}/{want} available"
        ))
    } else {
        Ok(())
    }
}

/// `Ok(())` when ready, else why not.
pub fn ready(rule: Rule, live: &Value) -> Result<(), String> {
    match rule {
        Rule::Rollout => rolled_out(live, &REPLICAS),
        Rule::DaemonSetRollout => rolled_out(live, &DAEMON_PODS),
        Rule::JobComplete => match (condition(live, "Complete"), condition(live, "Failed")) {
            (Some(s), _) if s == "True" => Ok(()),
            (_, Some(s)) if s == "True" => Err("job failed".into()),
            _ => Err("job not complete".into()),
        },
        Rule::Condition(kind) => match condition(live, kind) {
            Some(s) if s == "True" => Ok(()),
            _ => Err(format!("condition {kind} is not True")),
        },
    }
}

/// An object to wait for.
#[derive(Debug, Clone)]
pub struct Watched {
    pub object: ObjectRef,
    pub resolved: Resolved,
    pub rule: Rule,
}

/// Poll until every object is ready or `timeout` passes; returns those still not ready.
pub async fn wait_ready(
    cluster: &Cluster,
    objects: &[Watched],
    timeout: Duration,
    poll: Duration,
) -> Result<Vec<NotReady>> {
    let deadline = Instant::now() + timeout;
    // Start fast (CRDs are usually established within a second) and back off to `poll`.
    let mut interval = poll.min(Duration::from_millis(25));
    let mut pending: Vec<(&Watched, String)> = objects
        .iter()
        .map(|w| (w, "not checked".to_owned()))
        .collect();
    loop {
        let checks = futures::future::join_all(pending.iter().map(|(w, _)| async move {
            let api = api_for(cluster, &w.resolved, w.object.namespace.as_deref());
            match get(&api, &w.object.name).await {
                Ok(Some(live)) => ready(w.rule, &live),
                Ok(None) => Err("not found".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        }))
        .await;
        pending = pending
            .into_iter()
            .zip(checks)
            .filter_map(|((w, _), r)| r.err().map(|why| (w, why)))
            .collect();
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        if Instant::now() + interval > deadline {
            let mut out: Vec<NotReady> = pending
                .into_iter()
                .map(|(w, reason)| NotReady {
                    object: w.object.clone(),
                    reason,
                })
                .collect();
            out.sort_by(|a, b| a.object.cmp(&b.object));
            return Ok(out);
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rollout_needs_observed_generation_and_available_replicas() {
        let d = |obs: i64, avail: i64| {
            json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
                   "status": {"observedGeneration": obs, "updatedReplicas": 2, "availableReplicas": avail}})
        };
        assert!(
            ready(Rule::Rollout, &d(1, 2))
                .unwrap_err()
                .contains("not observed")
        );
        assert!(
            ready(Rule::Rollout, &d(2, 1))
                .unwrap_err()
                .contains("1/2 available")
        );
        assert!(ready(Rule::Rollout, &d(2, 2)).is_ok());
        let crd = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert!(ready(Rule::Condition("Established"), &crd).is_ok());
        let job = |t: &str| json!({"status": {"conditions": [{"type": t, "status": "True"}]}});
        assert!(ready(Rule::JobComplete, &job("Complete")).is_ok());
        assert_eq!(
            ready(Rule::JobComplete, &job("Failed")).unwrap_err(),
            "job failed"
        );
        let ds = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert!(
            ready(Rule::DaemonSetRollout, &ds)
                .unwrap_err()
                .contains("2/3 available")
        );
        assert_eq!(
            rule_for("apiregistration.k8s.io", "APIService"),
            Some(Rule::Condition("Available"))
        );
        assert_eq!(rule_for("apps", "Deployment"), Some(Rule::Rollout));
        assert_eq!(rule_for("", "ConfigMap"), None);
    }
}
