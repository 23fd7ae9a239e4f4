//! The fake API server (support/fake_apiserver.rs) against recordings of a real kube-apiserver
//! (`../shared/apiserver-recordings`, see its README; `KPIN_RECORDINGS_DIR` overrides): every
//! recorded exchange is replayed, in order, against a fresh fake per scenario, and the answers
//! must agree in status, error reason and wording, shape (keys of bodies, metadata and list
//! items), identity (each `<uid-N>`/`<rv-N>` placeholder stands for one value of the fake and
//! back), labels, annotations, generation, managed fields, what dry runs store, and discovery
//! scopes. The recordings are refreshed against newer servers, so shapes and facts are compared,
//! not bytes. What the fake deliberately leaves out is in KNOWN_GAPS, printed on every run; a check
//! skipped because of a gap says which.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::fake_apiserver::{FakeApiServer, Options};

/// What the fake does not model, by name; checks skipped because of one name it.
const KNOWN_GAPS: &[(&str, &str)] = &[
    (
        "defaulting",
        "built-in specs are not defaulted (Deployment replicas and strategy, container \
         terminationMessagePath, Job parallelism, ...): spec keys only the recording has are noted, \
         not failed",
    ),
    (
        "controller-status",
        "what controllers write (status, their managedFields entries) is simulated, not \
         reproduced: status is not compared, entries of managers no request names are noted when \
         they differ",
    ),
    (
        "distribution-objects",
        "the recording cluster adds objects of its distribution to each namespace \
         (openshift-service-ca.crt); the fake models upstream's kube-root-ca.crt only",
    ),
    (
        "builtin-schemas",
        "built-in kinds are validated by their top-level and metadata fields only; their list-map \
         keys and atomic fields come from a table, not from the OpenAPI schema",
    ),
    (
        "openapi-index",
        "the fake's `/openapi/v3` index has a path per served group version whose `hash` is a \
         digest of its custom kinds' schemas (constant for built-in groups), not the server's \
         hash of the whole document: it changes when a CRD's schema does, as the real one does \
         (the real-cluster fall-back test changes a CRD's default and a server's version)",
    ),
    (
        "injected-faults",
        "a 429 with Retry-After and the 503 of an aggregated API whose backend is down \
         (`FakeApiServer::inject_fault`) are not in the recordings: they follow what the real \
         test cluster answers (a plain-text `service unavailable` for the 503), and the \
         real-cluster test of an unavailable APIService covers the same flow",
    ),
    (
        "discovery-document",
        "the fake serves the kinds kpin's tests use, not every built-in one (bindings, events, \
         leases, ...) nor the recording cluster's CRDs: resources both serve are compared",
    ),
];

/// Objects of the recording cluster's distribution (gap `distribution-objects`).
const DISTRIBUTION_OBJECTS: &[&str] = &["openshift-service-ca.crt"];

/// Phrases of a recorded message the fake's message must contain too.
const PHRASES: &[&str] = &[
    "field is immutable",
    "not declared in schema",
    "failed to create typed patch object",
    "not found",
    "Required value",
    "expected numeric",
];

struct Scenario {
    name: String,
    exchanges: Vec<Value>,
}

#[test]
fn the_fake_answers_like_the_recorded_real_api_server() {
    eprintln!("Known gaps of the fake API server:");
    for (name, why) in KNOWN_GAPS {
        eprintln!("  {name}: {why}");
    }
    let Some(scenarios) = recordings() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for s in &scenarios {
        let problems = replay(&rt, &client, s, &scenarios);
        if !problems.is_empty() {
            failures.push(format!("scenario {}:\n  {}", s.name, problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "the fake API server differs from the recorded real one:\n{}",
        failures.join("\n")
    );
}

/// The recorded scenarios; `None` (skipped) when they are absent, except on CI.
fn recordings() -> Option<Vec<Scenario>> {
    let dir = std::env::var_os("KPIN_RECORDINGS_DIR").map_or_else(
        || crate::support::repo_root().join("../shared/apiserver-recordings"),
        PathBuf::from,
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    if files.is_empty() {
        crate::support::skip(
            "conformance: the fake API server was not compared with a real one",
            &format!(
                "no recordings in {} (set KPIN_RECORDINGS_DIR)",
                dir.display()
            ),
        );
        return None;
    }
    files.sort();
    Some(
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
                let v: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("parsing {}: {e}", f.display()));
                Scenario {
                    name: v["scenario"].as_str().unwrap_or("?").to_owned(),
                    exchanges: v["exchanges"].as_array().cloned().unwrap_or_default(),
                }
            })
            .collect(),
    )
}

/// Replay one scenario against a fresh fake; returns what differs.
fn replay(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    s: &Scenario,
    all: &[Scenario],
) -> Vec<String> {
    let fake = FakeApiServer::start(Options {
        latency: Duration::ZERO,
        crd_establish_delay: Duration::from_millis(20),
        workloads_become_ready: true,
    });
    // Whether a controller acted between two requests is a matter of timing on a real server:
    // the fake's act before a write exactly where the recorded answer shows their work
    // (`controller_acted`), never between a write and the read after it.
    fake.set_controller_delay(Duration::from_secs(3600));
    fake.pause_controllers();
    // The namespace all recordings use existed before they were made.
    fake.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rec"}}));
    let mut notes = Vec::new();
    for (from, i, ex) in setup(s, all) {
        let (status, _, text) = send(rt, client, &fake.url(), &ex["request"]);
        notes.push(format!(
            "setup: replayed {from} #{i} ({}), which made an object this scenario uses but does \
             not create (the recording's namespace held it): {status}",
            ex["request"]["path"].as_str().unwrap_or("")
        ));
        assert!(
            status < 300,
            "setup from {from} #{i} failed: {status} {text}"
        );
    }
    let managers: BTreeSet<String> = s
        .exchanges
        .iter()
        .filter_map(|e| e["request"]["query"]["fieldManager"].as_str())
        .map(str::to_owned)
        .collect();
    let mut ids = Ids::default();
    let mut problems = Vec::new();
    for (i, ex) in s.exchanges.iter().enumerate() {
        let mut c = Check {
            managers: &managers,
            ids: &mut ids,
            problems: Vec::new(),
            notes: Vec::new(),
        };
        wait_until_established(&fake, &ex["response"]["body"], &mut c);
        let dry_run = ex["request"]["query"]["dryRun"] == "All"
            || ex["request"]["body"]["dryRun"] == json!(["All"]);
        // A write's answer shows whether the controllers had acted on the object before it; a
        // read right after a write never saw their work on the recordings.
        if ex["request"]["method"] != "GET" && !dry_run && controller_acted(&ex["response"]["body"])
        {
            fake.run_controllers();
        }
        let before = dry_run.then(|| fake.snapshot());
        let (status, content_type, text) = send(rt, client, &fake.url(), &ex["request"]);
        c.exchange(&ex["response"], status, &content_type, &text);
        if let Some(before) = before {
            let after = fake.snapshot();
            let changed: Vec<&String> = before
                .keys()
                .chain(after.keys())
                .filter(|k| before.get(*k) != after.get(*k))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if !changed.is_empty() {
                c.problems.push(format!(
                    "the dry run changed what the fake stores: {changed:?}"
                ));
            }
        }
        let what = ex["what"].as_str().unwrap_or("");
        problems.extend(c.problems.iter().map(|p| format!("#{i} ({what}): {p}")));
        notes.extend(c.notes.iter().map(|n| format!("#{i} ({what}): {n}")));
    }
    for n in notes {
        eprintln!("{}: {n}", s.name);
    }
    problems
}

/// Whether a recorded answer shows a workload controller's work on the object: the revision
/// annotation of a Deployment, or a status it wrote.
fn controller_acted(body: &Value) -> bool {
    body.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .is_some()
        || body
            .get("status")
            .and_then(Value::as_object)
            .is_some_and(|s| s.contains_key("observedGeneration") || s.contains_key("conditions"))
}

/// Exchanges of other scenarios that created objects this one uses without creating them.
fn setup<'a>(s: &Scenario, all: &'a [Scenario]) -> Vec<(&'a str, usize, &'a Value)> {
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for ex in &s.exchanges {
        let req = &ex["request"];
        let path = req["path"].as_str().unwrap_or("").to_owned();
        let code = ex["response"]["status"].as_u64().unwrap_or(0);
        if req["method"] == "POST" && code == 201 {
            let name = ex["response"]["body"]["metadata"]["name"]
                .as_str()
                .unwrap_or("");
            known.insert(format!("{path}/{name}"));
        }
        if !is_object_path(&path) || !known.insert(path.clone()) || code == 201 || code == 404 {
            continue;
        }
        let creation = all
            .iter()
            .filter(|o| o.name != s.name)
            .flat_map(|o| o.exchanges.iter().enumerate().map(move |(i, e)| (o, i, e)))
            .find(|(_, _, e)| {
                e["request"]["path"] == path.as_str() && e["response"]["status"] == 201
            });
        if let Some((o, i, e)) = creation {
            out.push((o.name.as_str(), i, e));
        }
    }
    out
}

/// `/api/v1/namespaces/x/configmaps/y`, `/apis/g/v/things/y`: a path that names one object.
fn is_object_path(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segs.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return false,
    };
    matches!(rest, ["namespaces", _, _, _] | [_, _])
}

/// Send a recorded request to the fake: (status, content type, body).
fn send(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    req: &Value,
) -> (u16, String, String) {
    let method = reqwest::Method::from_bytes(req["method"].as_str().unwrap_or("GET").as_bytes())
        .expect("method");
    let mut url = format!("{base}{}", req["path"].as_str().unwrap_or("/"));
    let pairs: Vec<(String, String)> = req["query"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    if !pairs.is_empty() {
        url.push('?');
        url.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish(),
        );
    }
    rt.block_on(async {
        let mut rb = client.request(method, url);
        if let Some(ct) = req["contentType"].as_str() {
            rb = rb.header("content-type", ct);
        }
        if let Some(accept) = req["accept"].as_str() {
            rb = rb.header("accept", accept);
        }
        match &req["body"] {
            Value::Null => {}
            Value::String(text) => rb = rb.body(text.clone()),
            // JSON is YAML too, so apply-patch+yaml bodies go as JSON.
            body => rb = rb.body(serde_json::to_vec(body).expect("body")),
        }
        let resp = rb.send().await.expect("request to the fake");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, ct, resp.text().await.expect("body"))
    })
}

/// When the recording shows a CRD Established, wait (a while) until the fake's is too: CRDs
/// become Established some time after they are created, on the real server as on the fake.
fn wait_until_established(fake: &FakeApiServer, body: &Value, c: &mut Check) {
    let objects: Vec<&Value> = match body.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![body],
    };
    for crd in objects.into_iter().filter(|o| is_established(o)) {
        let Some(name) = crd["metadata"]["name"].as_str() else {
            continue;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match fake.get(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                None,
                name,
            ) {
                Some(live) if is_established(&live) => break,
                None => break,
                Some(_) if Instant::now() > deadline => {
                    c.problems
                        .push(format!("CRD {name} not Established after 10 s"));
                    break;
                }
                Some(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

fn is_established(o: &Value) -> bool {
    o.pointer("/spec/names").is_some()
        && o.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
}

/// Placeholders (`<uid-3>`, `<rv-5>`) and the fake's values they stand for, one-to-one.
#[derive(Default)]
struct Ids {
    forward: BTreeMap<String, String>,
    back: BTreeMap<String, String>,
}

fn is_placeholder(s: &str) -> bool {
    s.starts_with('<') && s.ends_with('>')
}

impl Ids {
    /// Bind the recorded `rec` to the fake's `fake`; `Err` when the binding breaks.
    fn bind(&mut self, what: &str, rec: &Value, fake: &Value) -> Result<(), String> {
        let (Some(r), Some(f)) = (rec.as_str(), fake.as_str()) else {
            return if rec.is_null() == fake.is_null() {
                Ok(())
            } else {
                Err(format!("{what}: the fake has {fake}, the recording {rec}"))
            };
        };
        if !is_placeholder(r) {
            return if r == f {
                Ok(())
            } else {
                Err(format!("{what}: the fake has {f:?}, the recording {r:?}"))
            };
        }
        if let Some(seen) = self.forward.get(r)
            && seen != f
        {
            return Err(format!(
                "{what}: the recording's {r} stayed, the fake's moved ({seen} -> {f})"
            ));
        }
        if let Some(seen) = self.back.get(f)
            && seen != r
        {
            return Err(format!(
                "{what}: the recording moved ({seen} -> {r}), the fake's stayed {f}"
            ));
        }
        self.forward.insert(r.to_owned(), f.to_owned());
        self.back.insert(f.to_owned(), r.to_owned());
        Ok(())
    }
}

/// The checks of one exchange.
struct Check<'a> {
    managers: &'a BTreeSet<String>,
    ids: &'a mut Ids,
    problems: Vec<String>,
    /// Checks skipped because of a known gap.
    notes: Vec<String>,
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

impl Check<'_> {
    fn exchange(&mut self, rec: &Value, status: u16, content_type: &str, text: &str) {
        let rec_status = rec["status"].as_u64().unwrap_or(0);
        if u64::from(status) != rec_status {
            self.problems.push(format!(
                "status {status}, recorded {rec_status}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
        let rec_body = &rec["body"];
        if !rec_body.is_object() {
            // A plain-text answer, e.g. `404 page not found` for a kind nothing serves.
            let json = content_type.contains("json")
                || serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object());
            if json {
                self.problems.push(format!(
                    "recorded a plain-text body ({rec_body}), the fake answered JSON: {text}"
                ));
            }
            return;
        }
        let Ok(body) = serde_json::from_str::<Value>(text) else {
            self.problems
                .push(format!("the fake's body is not JSON: {text:.300}"));
            return;
        };
        self.same_keys("body", rec_body, &body);
        match rec_body["kind"].as_str() {
            Some("Status") => self.status(rec_body, &body),
            Some("APIGroupDiscoveryList") => self.aggregated_discovery(rec_body, &body),
            Some("APIResourceList") => self.resource_list(rec_body, &body),
            _ if rec_body.get("items").is_some() => self.list(rec_body, &body),
            _ if rec_body.pointer("/metadata/name").is_some() => {
                self.object("object", rec_body, &body);
            }
            _ => {}
        }
    }

    fn same_keys(&mut self, what: &str, rec: &Value, fake: &Value) {
        let (r, f) = (keys(rec), keys(fake));
        if r != f {
            self.problems.push(format!(
                "keys of {what}: the fake has {f:?}, the recording {r:?}"
            ));
        }
    }

    fn bind(&mut self, what: &str, rec: &Value, fake: &Value) {
        if let Err(e) = self.ids.bind(what, rec, fake) {
            self.problems.push(e);
        }
    }

    fn status(&mut self, rec: &Value, fake: &Value) {
        for field in ["status", "reason", "code"] {
            if rec.get(field) != fake.get(field) {
                self.problems.push(format!(
                    "Status {field}: the fake has {}, the recording {}",
                    fake.get(field).unwrap_or(&Value::Null),
                    rec.get(field).unwrap_or(&Value::Null)
                ));
            }
        }
        let rec_msg = rec["message"].as_str().unwrap_or("");
        let msg = fake["message"].as_str().unwrap_or("");
        let mut words: Vec<String> = PHRASES
            .iter()
            .filter(|p| rec_msg.contains(*p))
            .map(std::string::ToString::to_string)
            .collect();
        for cause in rec
            .pointer("/details/causes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(f) = cause["field"].as_str() {
                words.push(f.to_owned());
            }
        }
        let mut rest = rec_msg;
        while let Some(i) = rest.find("conflict with \"") {
            let after = &rest[i + "conflict with \"".len()..];
            let end = after.find('"').unwrap_or(after.len());
            words.push(format!("conflict with \"{}\"", &after[..end]));
            rest = &after[end..];
        }
        for w in words {
            if !msg.contains(&w) {
                self.problems.push(format!(
                    "message {msg:?} lacks {w:?} (recorded: {rec_msg:?})"
                ));
            }
        }
        let (rd, fd) = (&rec["details"], &fake["details"]);
        if rd.is_object() {
            self.same_keys("details", rd, fd);
            for k in ["name", "group", "kind"] {
                if rd.get(k) != fd.get(k) {
                    self.problems.push(format!(
                        "details.{k}: the fake has {}, the recording {}",
                        fd.get(k).unwrap_or(&Value::Null),
                        rd.get(k).unwrap_or(&Value::Null)
                    ));
                }
            }
            if rd.get("uid").is_some() {
                self.bind("details.uid", &rd["uid"], &fd["uid"]);
            }
            let causes = |d: &Value| -> Vec<(String, String)> {
                d["causes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        (
                            c["reason"].as_str().unwrap_or("").to_owned(),
                            c["field"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            };
            if causes(rd) != causes(fd) {
                self.problems.push(format!(
                    "details.causes (reason, field): the fake has {:?}, the recording {:?}",
                    causes(fd),
                    causes(rd)
                ));
            }
        }
    }

    fn list(&mut self, rec: &Value, fake: &Value) {
        self.same_keys("list metadata", &rec["metadata"], &fake["metadata"]);
        self.bind(
            "list metadata.resourceVersion",
            &rec["metadata"]["resourceVersion"],
            &fake["metadata"]["resourceVersion"],
        );
        let by_name = |v: &Value| -> BTreeMap<String, Value> {
            v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| {
                    (
                        i["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                        i.clone(),
                    )
                })
                .collect()
        };
        let (r, f) = (by_name(rec), by_name(fake));
        for (name, item) in &r {
            match f.get(name) {
                Some(fi) => {
                    let what = format!("item {name}");
                    self.same_keys(&what, item, fi);
                    self.object(&what, item, fi);
                }
                None if DISTRIBUTION_OBJECTS.contains(&name.as_str()) => self.notes.push(format!(
                    "gap distribution-objects: recorded item {name} not compared"
                )),
                None => self
                    .problems
                    .push(format!("the fake's list lacks the recorded item {name}")),
            }
        }
        for name in f.keys().filter(|n| !r.contains_key(*n)) {
            self.problems.push(format!(
                "the fake's list has {name}, the recording does not"
            ));
        }
    }

    /// An object (or list item): metadata, identity, labels, managed fields, facts of its kind.
    fn object(&mut self, what: &str, rec: &Value, fake: &Value) {
        let (rm, fm) = (&rec["metadata"], &fake["metadata"]);
        self.same_keys(&format!("{what} metadata"), rm, fm);
        self.bind(&format!("{what} metadata.uid"), &rm["uid"], &fm["uid"]);
        self.bind(
            &format!("{what} metadata.resourceVersion"),
            &rm["resourceVersion"],
            &fm["resourceVersion"],
        );
        for field in ["generation", "finalizers", "namespace"] {
            if rm.get(field) != fm.get(field) {
                self.problems.push(format!(
                    "{what} metadata.{field}: the fake has {}, the recording {}",
                    fm.get(field).unwrap_or(&Value::Null),
                    rm.get(field).unwrap_or(&Value::Null)
                ));
            }
        }
        for field in ["labels", "annotations"] {
            self.string_map(&format!("{what} metadata.{field}"), &rm[field], &fm[field]);
        }
        if rec.get("data").is_some() && keys(&rec["data"]) != keys(&fake["data"]) {
            self.problems.push(format!(
                "{what} data keys: the fake has {:?}, the recording {:?}",
                keys(&fake["data"]),
                keys(&rec["data"])
            ));
        }
        if rec["spec"].is_object() {
            let (rs, fs) = (keys(&rec["spec"]), keys(&fake["spec"]));
            let invented: Vec<&String> = fs.difference(&rs).collect();
            if !invented.is_empty() {
                self.problems.push(format!(
                    "{what} spec has fields the recording lacks: {invented:?}"
                ));
            }
            let defaulted: Vec<&String> = rs.difference(&fs).collect();
            if !defaulted.is_empty() {
                self.notes.push(format!(
                    "gap defaulting: {what} spec lacks the server-defaulted {defaulted:?}"
                ));
            }
        }
        self.containers(what, rec, fake);
        self.managed_fields(what, rm, fm);
    }

    /// Labels and annotations: equal, with placeholders standing for the fake's values.
    fn string_map(&mut self, what: &str, rec: &Value, fake: &Value) {
        if keys(rec) != keys(fake) {
            self.problems.push(format!(
                "{what}: the fake has {:?}, the recording {:?}",
                keys(fake),
                keys(rec)
            ));
            return;
        }
        for (k, v) in rec.as_object().into_iter().flatten() {
            self.bind(&format!("{what}[{k}]"), v, &fake[k]);
        }
    }

    /// The result of list-map merging: containers and their env items in the recorded order.
    fn containers(&mut self, what: &str, rec: &Value, fake: &Value) {
        let names = |v: &Value, pointer: &str| -> Vec<String> {
            v.pointer(pointer)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|i| i["name"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        let list = "/spec/template/spec/containers";
        if rec.pointer(list).is_none() {
            return;
        }
        if names(rec, list) != names(fake, list) {
            self.problems.push(format!(
                "{what} containers: the fake has {:?}, the recording {:?}",
                names(fake, list),
                names(rec, list)
            ));
            return;
        }
        for i in 0..names(rec, list).len() {
            let env = format!("{list}/{i}/env");
            if names(rec, &env) != names(fake, &env) {
                self.problems.push(format!(
                    "{what} env of container {i}: the fake has {:?}, the recording {:?}",
                    names(fake, &env),
                    names(rec, &env)
                ));
            }
        }
    }

    /// Entries of managers the requests name must be the recorded ones with the same FieldsV1
    /// (keyed list maps, `.` markers, atomic fields); controllers' entries are gap
    /// `controller-status`.
    fn managed_fields(&mut self, what: &str, rec: &Value, fake: &Value) {
        type Entries = BTreeMap<(String, String, String), Value>;
        let entries = |m: &Value| -> Entries {
            m["managedFields"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    (
                        (
                            e["manager"].as_str().unwrap_or("").to_owned(),
                            e["operation"].as_str().unwrap_or("").to_owned(),
                            e["subresource"].as_str().unwrap_or("").to_owned(),
                        ),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        };
        let (r, f) = (entries(rec), entries(fake));
        for (k, fields) in &r {
            let requested = self.managers.contains(&k.0);
            let differs = match f.get(k) {
                Some(ff) if ff == fields => continue,
                Some(ff) => format!("FieldsV1 {ff}, recorded {fields}"),
                None => "missing".to_owned(),
            };
            let entry = format!("{what} managedFields entry {}/{}", k.0, k.1);
            if requested {
                self.problems.push(format!("{entry}: {differs}"));
            } else {
                let short = if f.contains_key(k) {
                    "differs"
                } else {
                    "missing"
                };
                self.notes.push(format!(
                    "gap controller-status: {entry} {short}, not compared"
                ));
            }
        }
        for k in f.keys().filter(|k| !r.contains_key(*k)) {
            if self.managers.contains(&k.0) {
                self.problems.push(format!(
                    "{what} managedFields: the fake has an entry {}/{} the recording lacks",
                    k.0, k.1
                ));
            }
        }
    }

    /// Aggregated discovery: groups, versions, resources' scope and subresources.
    fn aggregated_discovery(&mut self, rec: &Value, fake: &Value) {
        let groups = |v: &Value| -> BTreeMap<String, Value> {
            v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| {
                    (
                        g["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                        g.clone(),
                    )
                })
                .collect()
        };
        let (rg, fg) = (groups(rec), groups(fake));
        let mut unserved = Vec::new();
        for (name, g) in &rg {
            let Some(f) = fg.get(name) else {
                unserved.push(format!("group {name:?}"));
                continue;
            };
            self.same_keys(&format!("group {name:?}"), g, f);
            self.same_keys(
                &format!("group {name:?} metadata"),
                &g["metadata"],
                &f["metadata"],
            );
            for v in g["versions"].as_array().into_iter().flatten() {
                let version = v["version"].as_str().unwrap_or("");
                let Some(fv) = f["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|x| x["version"] == version)
                else {
                    unserved.push(format!("{name}/{version}"));
                    continue;
                };
                for r in v["resources"].as_array().into_iter().flatten() {
                    let resource = r["resource"].as_str().unwrap_or("");
                    let Some(fr) = fv["resources"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|x| x["resource"] == resource)
                    else {
                        unserved.push(format!("{name}/{version} {resource}"));
                        continue;
                    };
                    if r["scope"] != fr["scope"] {
                        self.problems.push(format!(
                            "{resource}: scope {}, recorded {}",
                            fr["scope"], r["scope"]
                        ));
                    }
                    let subs = |x: &Value| -> BTreeSet<String> {
                        x["subresources"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|s| s["subresource"].as_str())
                            .map(str::to_owned)
                            .collect()
                    };
                    let missing: Vec<String> = subs(r).difference(&subs(fr)).cloned().collect();
                    if !missing.is_empty() {
                        self.problems.push(format!(
                            "{resource}: the fake lists no subresources {missing:?}"
                        ));
                    }
                }
            }
        }
        if !unserved.is_empty() {
            self.notes.push(format!(
                "gap discovery-document: {} recorded groups/versions/resources the fake does not serve: {}",
                unserved.len(),
                unserved.join(", ")
            ));
        }
    }

    /// A group version's resource list: scope of what both serve, and recorded subresources of
    /// resources the fake serves.
    fn resource_list(&mut self, rec: &Value, fake: &Value) {
        if rec["groupVersion"] != fake["groupVersion"] {
            self.problems.push(format!(
                "groupVersion {}, recorded {}",
                fake["groupVersion"], rec["groupVersion"]
            ));
        }
        let entries = |v: &Value| -> BTreeMap<String, Value> {
            v["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| (r["name"].as_str().unwrap_or("").to_owned(), r.clone()))
                .collect()
        };
        let (r, f) = (entries(rec), entries(fake));
        let mut unserved = Vec::new();
        for (name, entry) in &r {
            match f.get(name) {
                Some(fe) => {
                    if entry["namespaced"] != fe["namespaced"] {
                        self.problems.push(format!(
                            "{name}: namespaced {}, recorded {}",
                            fe["namespaced"], entry["namespaced"]
                        ));
                    }
                    if entry["kind"] != fe["kind"] {
                        self.problems.push(format!(
                            "{name}: kind {}, recorded {}",
                            fe["kind"], entry["kind"]
                        ));
                    }
                }
                None => match name.split_once('/') {
                    Some((parent, _)) if f.contains_key(parent) => self.problems.push(format!(
                        "the fake lists {parent} but not its subresource {name}"
                    )),
                    _ => unserved.push(name.clone()),
                },
            }
        }
        if !unserved.is_empty() {
            self.notes.push(format!(
                "gap discovery-document: recorded resources the fake does not serve: {}",
                unserved.join(", ")
            ));
        }
    }
}
