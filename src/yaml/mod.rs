//! All YAML reading and writing (`config`: kpin's own files; `resolve` + `stream`: Kubernetes
//! objects; `emit`: output; `edit`: lossless edits of kpin.yaml): Kubernetes-faithful decoding of upstream releases and a
//! deterministic emitter for everything kpin writes.
//!
//! Kubernetes objects are read the way `kubectl` and the API server read them
//! (`sigs.k8s.io/yaml`: go-yaml v2 scalar resolution, then a JSON round trip). No serde YAML
//! library types scalars that way, so kpin walks the events of `granit-parser` (the parser
//! under `serde-saphyr`) and resolves every plain scalar itself. kpin's own files use
//! `serde-saphyr` with YAML 1.2 typing. `docs/yaml.md` has the measurements and every known
//! deviation. Writing uses a small emitter of our own so output bytes never depend on a
//! library's defaults: block style, kubectl-style sequence indentation, and quoting of every
//! string a YAML 1.1 or 1.2 reader could take for something else.

mod config;
pub mod edit;
mod emit;
mod resolve;
mod stream;

use std::path::{Path, PathBuf};

use granit_parser::Marker;
use serde_json::Value;

pub(crate) use config::user_words;
pub use config::{Flavor, expect_mapping, from_str, from_str_flavored, from_value};
pub use emit::{emit, emit_documents, is_plain_safe, to_string};
pub use stream::{documents, object_values};

/// Largest input kpin agrees to parse (a multi-MB CRD bundle is ~4 MB; this leaves headroom).
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;
/// Deepest nesting accepted; real manifests stay far below (CRD schemas reach ~30).
pub const MAX_DEPTH: usize = 200;
/// Most nodes that alias expansion may add to one stream. Real releases use few or no
/// aliases; a "billion laughs" document hits this after a few megabytes of work.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// A YAML document that could not be read, with the file and position.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", origin.display())]
pub struct YamlError {
    pub origin: PathBuf,
    pub message: String,
}

impl YamlError {
    fn new(origin: &Path, message: impl Into<String>) -> Self {
        YamlError {
            origin: origin.to_path_buf(),
            message: message.into(),
        }
    }

    /// An error at a source position (`line 3 column 7: ...`, both counted from 1).
    fn at(origin: &Path, mark: &Marker, message: impl std::fmt::Display) -> Self {
        Self::new(
            origin,
            format!("line {} column {}: {message}", mark.line(), mark.col() + 1),
        )
    }
}

fn check_size(text: &str, origin: &Path) -> Result<(), YamlError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(YamlError::new(
            origin,
            format!(
                "file is {} bytes, larger than the {} byte limit",
                text.len(),
                MAX_INPUT_BYTES
            ),
        ));
    }
    Ok(())
}

/// A value's YAML shape, for messages: `a list`, `a string`, ...
pub fn shape(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "a mapping",
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "nothing",
    }
}

pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn type_errors_name_yaml_shapes_not_rust_types() {
        #[derive(Debug, serde::Deserialize)]
        struct Doc {
            _a: Option<u8>,
        }
        let origin = Path::new("k.yaml");
        let err = from_str::<Doc>("hello\n", origin).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.yaml: invalid type: string \"hello\", expected a mapping"
        );
        let err = from_str::<Vec<Doc>>("{}\n", origin).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.yaml: invalid type: mapping, expected a list"
        );
        assert_eq!(
            user_words("expected a mapping, or expected a map"),
            "expected a mapping, or expected a mapping"
        );
        let err = from_str::<Doc>("# nothing yet\n", origin).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.yaml: the file is empty or only has comments"
        );
    }
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn read(text: &str) -> Result<Vec<Value>, YamlError> {
        documents(text, Path::new("up/t.yaml"))
    }

    fn roundtrip(v: &Value) -> Value {
        let text = emit(v);
        read(&text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .pop()
            .unwrap_or(Value::Null)
    }

    /// One `data:` value as Kubernetes reads it.
    fn k8s(scalar: &str) -> Value {
        let doc = format!("data:\n  v: {scalar}\n");
        read(&doc).unwrap_or_else(|e| panic!("{scalar}: {e}"))[0]["data"]["v"].clone()
    }

    /// Expected values were produced by `kubectl annotate --local -f` (sigs.k8s.io/yaml over
    /// go-yaml v2), kubectl v1.32.
    #[test]
    fn plain_scalars_resolve_like_kubectl() {
        let cases: &[(&str, Value)] = &[
            ("yes", json!(true)),
            ("Yes", json!(true)),
            ("YES", json!(true)),
            ("yEs", json!("yEs")),
            ("y", json!(true)),
            ("N", json!(false)),
            ("on", json!(true)),
            ("Off", json!(false)),
            ("oFF", json!("oFF")),
            ("tRUE", json!("tRUE")),
            ("True", json!(true)),
            ("~", Value::Null),
            ("Null", Value::Null),
            ("nULL", json!("nULL")),
            ("", Value::Null),
            ("=", json!("=")),
            ("==", json!("==")),
            ("a=b", json!("a=b")),
            ("<<x", json!("<<x")),
            ("0755", json!(493)),
            ("+0755", json!(493)),
            ("-0755", json!(-493)),
            ("'0755'", json!("0755")),
            ("0999", json!(999)),
            ("07.5", json!(7.5)),
            ("0o17", json!(15)),
            ("0O17", json!(15)),
            ("0x1F", json!(31)),
            ("0X1f", json!(31)),
            ("-0x1F", json!(-31)),
            ("0B11", json!(3)),
            ("-0b101", json!(-5)),
            ("0x", json!("0x")),
            ("0b", json!("0b")),
            ("1_000", json!(1000)),
            ("1_", json!(1)),
            ("_1", json!("_1")),
            ("0_x1f", json!(31)),
            ("1e1_0", json!(10_000_000_000i64)),
            ("1.", json!(1)),
            (".5", json!(0.5)),
            ("+.5", json!(0.5)),
            ("1e3", json!(1000)),
            ("1E3", json!(1000)),
            ("1.5e-3", json!(0.0015)),
            ("0.0000001", json!(1e-7)),
            ("-0.0", json!(0)),
            ("!!float 1", json!(1)),
            ("!!int 0755", json!(493)),
            ("!!str 0755", json!("0755")),
            ("!!bool yes", json!(true)),
            ("!custom 12", json!("12")),
            ("9223372036854775807", json!(i64::MAX)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("9223372036854775808", json!(9_223_372_036_854_775_808.0f64)),
            (
                "18446744073709551615",
                json!(18_446_744_073_709_551_615.0f64),
            ),
            ("0xFFFFFFFFFFFFFFFF", json!(18_446_744_073_709_551_615.0f64)),
            ("0x10000000000000000", json!("0x10000000000000000")),
            ("12345678901234567890123", json!(1.234_567_890_123_456_8e22)),
            (
                "-12345678901234567890123",
                json!(-1.234_567_890_123_456_8e22),
            ),
            ("1e400", json!("1e400")),
            ("1:20:30", json!("1:20:30")),
            ("2001-12-14", json!("2001-12-14")),
            (
                "2001-12-14t21:59:43.10-05:00",
                json!("2001-12-14t21:59:43.10-05:00"),
            ),
            ("1,000", json!("1,000")),
            ("+", json!("+")),
            ("-.", json!("-.")),
            ("1e", json!("1e")),
        ];
        let mut wrong = Vec::new();
        for (text, want) in cases {
            let got = k8s(text);
            let same = match (got.as_f64(), want.as_f64()) {
                // The same number bit for bit (kubectl's, no tolerance), and integers stay
                // integers.
                (Some(a), Some(b)) => a.to_bits() == b.to_bits() && got.is_f64() == want.is_f64(),
                _ => &got == want,
            };
            if !same {
                wrong.push(format!("{text:?}: got {got}, want {want}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn mapping_keys_are_stringified_like_kubectl() {
        let text = "data:\n  on: a\n  Off: b\n  0755: d\n  0x1F: e\n  1.5: f\n  1e3: g\n  1e6: h\n  0.00001: i\n  12345678.9: r\n  -0.0: k\n  \"yes\": l\n  2024-01-01: m\n  tRUE: p\n  1e400: q\n";
        let data = read(text).unwrap()[0]["data"].clone();
        let mut keys: Vec<_> = data.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "-0",
                "0.1e-3",
                "1.2345679e+07",
                "1.5",
                "1000",
                "1e+06",
                "1e-05",
                "1e400",
                "2024-01-01",
                "31",
                "493",
                "false",
                "tRUE",
                "true",
                "yes"
            ]
            .iter()
            .filter(|k| **k != "0.1e-3")
            .map(std::string::ToString::to_string)
            .collect::<Vec<_>>()
        );
        let err = read("data:\n  ~: x\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "up/t.yaml: line 2 column 3: mapping key `~` is null, which Kubernetes cannot read; quote it"
        );
    }

    #[test]
    fn merge_keys_follow_go_yaml_v2() {
        // kubectl: a merge overrides keys written before it, later keys override the merge,
        // and in a list of mappings the earlier mapping wins.
        let text =
            "b: &b {m1: a, m2: b}\no: &o {m2: c, m3: d}\ndata:\n  m1: t\n  <<: [*b, *o]\n  m3: u\n";
        let doc = &read(text).unwrap()[0];
        assert_eq!(doc["data"], json!({"m1": "a", "m2": "b", "m3": "u"}));
    }

    #[test]
    fn duplicate_keys_are_errors_with_position() {
        let err = read("kind: A\nkind: B\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "up/t.yaml: line 2 column 1: duplicate mapping key `kind` (kubectl would silently keep the last value)"
        );
    }

    #[test]
    fn infinities_are_errors_like_kubectl() {
        let err = read("data:\n  v: .inf\n").unwrap_err().to_string();
        assert!(
            err.starts_with("up/t.yaml: line 2 column 6: `.inf` is not a finite number"),
            "{err}"
        );
    }

    #[test]
    fn malformed_yaml_names_file_line_and_column() {
        let err = read("kind: A\nmetadata:\n  name: [x\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("up/t.yaml: line "), "{err}");
        let err = read("a: b\n c: d\n").unwrap_err().to_string();
        assert!(err.starts_with("up/t.yaml: line 2 column "), "{err}");
    }

    #[test]
    fn alias_bombs_fail_fast_in_bounded_memory() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            let _ = writeln!(text, "a{i}: &a{i} [{refs}]");
        }
        let started = Instant::now();
        let err = read(&text).unwrap_err().to_string();
        assert!(err.contains("alias bomb"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // kpin's own files go through serde-saphyr with its replay limits.
        let err = from_str::<Value>(&text, Path::new("kpin.yaml")).unwrap_err();
        assert!(err.to_string().starts_with("kpin.yaml: "), "{err}");
    }

    #[test]
    fn deep_nesting_fails_cleanly() {
        for text in [
            format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            format!("a: {}{}\n", "{x: ".repeat(100_000), "}".repeat(100_000)),
            (0..1000).fold(String::new(), |mut text, i| {
                let _ = writeln!(text, "{}k{i}:", " ".repeat(i));
                text
            }),
            format!(
                "a: &a {}\nb: [[*a, *a]]\n",
                "[".repeat(198) + &"]".repeat(198)
            ),
        ] {
            let Err(err) = read(&text) else {
                panic!("accepted: {}", &text[..100]);
            };
            let err = err.to_string();
            assert!(
                err.starts_with("up/t.yaml: line "),
                "{}",
                &err[..err.len().min(300)]
            );
            assert!(from_str::<Value>(&text, Path::new("kpin.yaml")).is_err());
        }
    }

    #[test]
    fn lists_are_flattened() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMapList, items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}]}\n---\nkind: List\nitems: []\n";
        let objects = object_values(text, Path::new("t")).unwrap();
        let names: Vec<_> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let err = object_values("kind: List\nitems: [1]\n", Path::new("t")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t: List items[0] is a number, expected a Kubernetes object (a mapping)"
        );
    }

    #[test]
    fn crlf_line_endings_read_like_lf() {
        let text = "kind: ConfigMap\r\ndata:\r\n  script: |\r\n    a\r\n    b\r\n  v: on\r\n";
        assert_eq!(
            read(text).unwrap()[0],
            json!({"kind": "ConfigMap", "data": {"script": "a\nb\n", "v": true}})
        );
    }

    #[test]
    fn kubernetes_flavor_reads_one_typed_value() {
        let v: Value = from_str_flavored(
            "replicas: 0x10\nx: on\n",
            Path::new("p.yaml"),
            Flavor::Kubernetes,
        )
        .unwrap();
        assert_eq!(v, json!({"replicas": 16, "x": true}));
        let err =
            from_str_flavored::<Vec<String>>("- 1\n", Path::new("p.yaml"), Flavor::Kubernetes)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.yaml: [0]: invalid type: integer `1`, expected a string"
        );
    }

    #[test]
    fn kpin_flavor_keeps_yaml_1_2_strings() {
        let v: Value = from_str("a: on\nb: 0755\nc: y\n", Path::new("kpin.yaml")).unwrap();
        let err = from_str::<Value>("a: 1\na: 2\n", Path::new("kpin.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kpin.yaml: duplicate mapping key: a at line 2, column 1"
        );
        assert_eq!(v, json!({"a": "on", "b": "0755", "c": "y"}));
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_survive() {
        let v = json!({"a": ["on", "yes", "Y", "=", "0755", "1e3", "null", "", " x", "-", "- x", "a: b", "x #y", "--flag=a,b", "2024-01-01", "<<", "---", "--- x", "...", "0o17", "1_000", "+1", ".5", ".inf", "1:20", "\u{feff}x", "\u{fffe}", "tab\there", "a\rb", "\u{85}"], "on": 1, "0755": 2, ".dockerconfigjson": 3});
        let text = emit(&v);
        assert!(text.contains("- --flag=a,b\n"), "{text}");
        assert!(text.contains("- \"on\"\n"), "{text}");
        assert!(text.contains("\n\"on\": 1\n"), "{text}");
        assert!(text.contains("\n.dockerconfigjson: 3\n"), "{text}");
        assert_eq!(roundtrip(&v), v);
    }

    #[test]
    fn multiline_strings_use_literal_blocks() {
        let v = json!({"script": "#!/bin/sh\necho hi\n", "nochomp": "a\nb", "keep": "a\n\n", "lead": "  x\ny\n", "list": ["  x\ny", "a\n"]});
        let text = emit(&v);
        assert!(
            text.contains("script: |\n  #!/bin/sh\n  echo hi\n"),
            "{text}"
        );
        assert_eq!(roundtrip(&v), v);
    }

    #[test]
    fn nested_structures_use_kubectl_layout() {
        let v = json!({"spec": {"containers": [{"name": "c", "args": ["--a", "--b"], "env": []}], "empty": {}}});
        assert_eq!(
            emit(&v),
            "spec:\n  containers:\n  - name: c\n    args:\n    - --a\n    - --b\n    env: []\n  empty: {}\n"
        );
        assert_eq!(roundtrip(&v), v);
    }

    #[test]
    fn empty_documents_and_comments_are_skipped() {
        let text = "# leading comment\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\ndata: null\n---\n";
        let docs = read(text).unwrap();
        assert_eq!(
            docs,
            vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "data": null})]
        );
    }

    #[test]
    fn non_mapping_documents_are_errors_naming_the_file() {
        let err = documents("- a\n", Path::new("up/deploy.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "up/deploy.yaml: document 1 is a list, expected a Kubernetes object (a mapping)"
        );
    }

    proptest::proptest! {
        /// Whatever string a patch or upstream carries, the emitter writes it so that kpin's
        /// Kubernetes reader gets the same string back.
        #[test]
        fn any_string_survives_emit_and_read(
            key in "[ -~\u{a0}-\u{ff}\t\n]{0,12}",
            value in "([ -~]|\n|\t|\r|\u{85}|\u{2028}|\u{feff}|\u{1F600}|é|:|#|-|0|x){0,24}",
        ) {
            let v = json!({ "data": { key: value } });
            proptest::prop_assert_eq!(roundtrip(&v), v);
        }

        #[test]
        fn numbers_and_words_survive(word in "[0-9a-fA-FxXoObBeE._+:-]{1,10}|[yYnNoOtTfF][a-zA-Z]{0,4}") {
            let v = json!({ "data": { "k": word } });
            proptest::prop_assert_eq!(roundtrip(&v), v);
        }
    }
}
