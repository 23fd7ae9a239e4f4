//! kpin.yaml's versions edited in place through `yaml::edit` (lossless, any style, checked by
//! reading the file back), with the errors users see.

use std::path::Path;

use super::Manifest;
use crate::error::HintExt;
use crate::yaml::edit::{EditError, remove_scalar, set_scalar, upsert_scalar};
use anyhow::Result;

/// Set `packages.<package>.version` in kpin.yaml text to `version`; see `set_scalar`.
pub fn set_package_version(text: &str, package: &str, version: &str) -> Result<String, EditError> {
    set_scalar(text, &["packages", package, "version"], version)
}

/// Set `packages.<package>.environments.<env>.version` to `version` (adding what is missing),
/// or remove it with `None` (and the mappings it leaves empty, up to the package).
pub fn set_env_version(
    text: &str,
    package: &str,
    env: &str,
    version: Option<&str>,
) -> Result<String, EditError> {
    let path = ["packages", package, "environments", env, "version"];
    match version {
        Some(v) => upsert_scalar(text, &path, v),
        None => remove_scalar(text, &path, 2),
    }
}

/// `set_env_version` with the error mapped for users: names the file and gives a hint.
pub fn edit_env_version(
    text: &str,
    manifest_path: &Path,
    package: &str,
    env: &str,
    version: Option<&str>,
) -> Result<String> {
    set_env_version(text, package, env, version)
        .map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "{}: cannot {} the version of `{package}` in environment {env} in place",
                manifest_path.display(),
                if version.is_some() { "set" } else { "remove" }
            ))
        })
        .hint(
            "kpin edits block and flow style alike; write the value as a plain or quoted scalar on one line, or edit it by hand",
        )
}

/// kpin.yaml `text` with `environments.<env>.installed: false` of `package` removed (the
/// package is installed there now), and the mappings that leaves empty.
pub fn install_in(text: &str, manifest_path: &Path, package: &str, env: &str) -> Result<String> {
    remove_scalar(
        text,
        &["packages", package, "environments", env, "installed"],
        2,
    )
    .map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "{}: cannot remove `installed: false` of `{package}` in environment {env} in place",
            manifest_path.display()
        ))
    })
    .hint("remove it by hand, then run the command again")
}

/// kpin.yaml `text` with the versions of `package` in their canonical form, and what changed
/// for the report: when every environment runs one version, it becomes the package's
/// `version`; an environment's own version equal to the package's is removed (it follows the
/// package again).
pub fn normalise_versions(
    text: &str,
    manifest_path: &Path,
    package: &str,
) -> Result<(String, Vec<String>)> {
    let manifest = Manifest::parse(text, manifest_path)?;
    let Some(p) = manifest.packages.get(package) else {
        return Ok((text.to_owned(), Vec::new()));
    };
    let mut text = text.to_owned();
    let mut notes = Vec::new();
    let mut version = p.version.raw.clone();
    // Environments the package is not installed in render nothing: their version is moot.
    let used: std::collections::BTreeSet<&str> = manifest
        .renders_of(p)
        .flatten()
        .map(|e| p.version_in(Some(e)).raw.as_str())
        .collect();
    let collapsed = match used.into_iter().collect::<Vec<_>>().as_slice() {
        [only] if *only != version => Some((*only).to_owned()),
        _ => None,
    };
    if let Some(only) = &collapsed {
        text = edit_manifest_version(&text, manifest_path, package, only)?;
        notes.push(format!(
            "every environment runs {only} now: it becomes the package's version ({version} before), and the environments' own versions go"
        ));
        version.clone_from(only);
    }
    for (env, v) in &p.env_versions {
        if v.raw == version {
            text = edit_env_version(&text, manifest_path, package, env, None)?;
            if collapsed.is_none() {
                notes.push(format!(
                    "{env} follows the package's version {version} again: environments.{env}.version removed"
                ));
            }
        }
    }
    Ok((text, notes))
}

/// `set_package_version` with the error mapped for users: names the file and gives a hint.
pub fn edit_manifest_version(
    text: &str,
    manifest_path: &Path,
    package: &str,
    version: &str,
) -> Result<String> {
    match set_package_version(text, package, version) {
        Ok(t) => Ok(t),
        Err(e) => {
            let err = anyhow::Error::new(e).context(format!(
                "{}: cannot update the version of `{package}` in place",
                manifest_path.display()
            ));
            Err(err).hint(format!(
                "write the package's `version:` as a plain or quoted scalar on one line (e.g. `version: \"{version}\"`), or edit it by hand"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::MANIFEST_FILE;
    use crate::yaml;
    use serde_json::Value;

    const MANIFEST: &str = "\
# Our pinned packages.
environments:
  dev: {}

packages:
  # The ingress controller; see the runbook before upgrading.
  ingress-nginx:
    # pinned until the new admission webhook is tested
    version: 1.9.4   # keep in sync with the dashboard
    url: https://example.com/controller-v{version}/deploy.yaml
    versions:
      github: kubernetes/ingress-nginx
      version: nested-not-this-one
  \"metrics\":
    overlays: [overlays/m.yaml]
    version: 'v0.7.2'
    url: https://example.com/v{version}/components.yaml
  float:
    version: \"1.10\"
    url: https://example.com/{version}/a.yaml
";

    #[test]
    fn edits_only_the_version_value_keeping_comments() {
        let out = set_package_version(MANIFEST, "ingress-nginx", "1.10.6").unwrap();
        assert_eq!(
            out,
            MANIFEST.replace("version: 1.9.4   #", "version: 1.10.6   #")
        );
        let out = set_package_version(MANIFEST, "metrics", "v0.8.1").unwrap();
        assert_eq!(out, MANIFEST.replace("'v0.7.2'", "'v0.8.1'"));
        let out = set_package_version(MANIFEST, "float", "1.11").unwrap();
        assert_eq!(out, MANIFEST.replace("\"1.10\"", "\"1.11\""));
    }

    #[test]
    fn plain_values_that_would_read_as_numbers_get_quoted() {
        let text = "packages:\n  a:\n    version: 1.9.4\n    url: https://x/{version}\n";
        assert_eq!(
            set_package_version(text, "a", "1.10").unwrap(),
            "packages:\n  a:\n    version: \"1.10\"\n    url: https://x/{version}\n"
        );
        assert_eq!(
            set_package_version(text, "a", "2.0.0").unwrap(),
            "packages:\n  a:\n    version: 2.0.0\n    url: https://x/{version}\n"
        );
    }

    #[test]
    fn crlf_and_odd_indentation_survive() {
        let text = "packages:\r\n    a:\r\n          url: https://x\r\n          version: \"1.0.0\"\r\n    b:\r\n          version: 1.0.0\r\n";
        let out = set_package_version(text, "b", "1.1.0").unwrap();
        assert_eq!(
            out,
            text.replace("version: 1.0.0\r\n", "version: 1.1.0\r\n")
        );
        let out = set_package_version(text, "a", "2.0.0").unwrap();
        assert_eq!(out, text.replace("\"1.0.0\"", "\"2.0.0\""));
    }

    #[test]
    fn same_named_package_in_another_block_is_not_touched() {
        let text = "environments:\n  a:\n    version: 9\npackages:\n  a:\n    version: 1.0.0\n";
        let out = set_package_version(text, "a", "1.1.0").unwrap();
        assert_eq!(
            out,
            "environments:\n  a:\n    version: 9\npackages:\n  a:\n    version: 1.1.0\n"
        );
    }

    #[test]
    fn flow_style_is_edited_in_place_like_block_style() {
        let flow = "packages:\n  a: {version: 1.0.0, url: 'https://x'}   # a\n";
        assert_eq!(
            set_package_version(flow, "a", "2.0.0").unwrap(),
            flow.replace("1.0.0", "2.0.0")
        );
        assert_eq!(
            set_package_version(flow, "a", "2.0").unwrap(),
            flow.replace("1.0.0", "\"2.0\"")
        );
        let issue = "packages:\n  ingress-nginx:\n    version: 1.9.4\n    environments: {qa: {version: 1.9.4}, prod: {version: 1.9.4}}\n";
        assert_eq!(
            set_env_version(issue, "ingress-nginx", "qa", Some("1.10.0")).unwrap(),
            issue.replacen("{qa: {version: 1.9.4}", "{qa: {version: 1.10.0}", 1)
        );
        // A new key goes inside the braces, in flow style.
        let out = set_env_version(issue, "ingress-nginx", "dev", Some("1.11.0")).unwrap();
        assert_eq!(
            out,
            issue.replace(
                "prod: {version: 1.9.4}}",
                "prod: {version: 1.9.4}, dev: {version: 1.11.0}}"
            )
        );
    }

    #[test]
    fn what_is_not_a_one_line_scalar_is_refused() {
        let missing = "packages:\n  a:\n    url: https://x\n";
        let err = set_package_version(missing, "a", "2").unwrap_err();
        assert_eq!(err.to_string(), "no `packages.a.version` in the file");
        let err = set_package_version(missing, "b", "2").unwrap_err();
        assert_eq!(err.to_string(), "no `packages.b` in the file");
        for refused in [
            "packages:\n  a:\n    version: |\n      1.0.0\n",
            "packages:\n  a:\n    version: !!str 1.0.0\n",
            "packages:\n  a: [1]\n",
        ] {
            assert!(
                matches!(
                    set_package_version(refused, "a", "2"),
                    Err(EditError::ComplexValue(_))
                ),
                "{refused}"
            );
        }
        // An anchored value is edited only when no alias reads it.
        let anchored = "packages:\n  a:\n    version: &v 1.0.0\n";
        assert_eq!(
            set_package_version(anchored, "a", "2.0.0").unwrap(),
            anchored.replace("1.0.0", "2.0.0")
        );
        let aliased = "packages:\n  a:\n    version: &v 1.0.0\n  b:\n    version: *v\n";
        assert!(matches!(
            set_package_version(aliased, "a", "2.0.0"),
            Err(EditError::NotRoundTrip(_))
        ));
        let block = "packages:\n  a:\n    version: |\n      1.0.0\n";
        let err = edit_manifest_version(block, Path::new("kpin.yaml"), "a", "2.0.0").unwrap_err();
        let text = crate::error::format_error(&err);
        assert!(
            text.contains("kpin.yaml: cannot update the version of `a` in place"),
            "{text}"
        );
        assert!(
            text.contains("hint: write the package's `version:` as a plain or quoted scalar"),
            "{text}"
        );
    }

    #[test]
    fn nested_pins_are_edited_by_key_path() {
        let text = "packages:\n  a:\n    version: 1.0.0\n    sha256:\n      # per file\n      crds.yaml: \"00\"\n      deploy.yaml: ab12 # pinned\n";
        let out = set_scalar(text, &["packages", "a", "sha256", "deploy.yaml"], "1234").unwrap();
        assert_eq!(out, text.replace("ab12 #", "\"1234\" #"));
        let single = "packages:\n  a:\n    sha256: ab\n    version: 1.0.0\n";
        let out = set_scalar(single, &["packages", "a", "sha256"], "cd").unwrap();
        assert_eq!(out, "packages:\n  a:\n    sha256: cd\n    version: 1.0.0\n");
    }

    const ENVS: &str = "\
environments:
  dev: {}
  qa: {}
  prod: {}
packages:
  web:
    version: 1.9.4 # everyone
    url: https://x/{version}/a.yaml
  app:
    version: 1.0.0
    url: https://x/{version}/a.yaml
    environments:
      # dev is special
      dev:
        overlays: [o.yaml]
      qa: {}   # nothing yet
";

    #[test]
    fn an_environment_version_is_added_where_its_mapping_is() {
        // No `environments:` under the package yet: the whole path is added at its end.
        let out = set_env_version(ENVS, "web", "dev", Some("1.10.6")).unwrap();
        assert_eq!(
            out,
            ENVS.replace(
                "    url: https://x/{version}/a.yaml\n  app:",
                "    url: https://x/{version}/a.yaml\n    environments:\n      dev:\n        version: 1.10.6\n  app:"
            )
        );
        // Below an existing block mapping, and into an empty `{}` one (its comment kept).
        let out = set_env_version(ENVS, "app", "dev", Some("1.10")).unwrap();
        assert!(
            out.contains("        overlays: [o.yaml]\n        version: \"1.10\"\n      qa: {}"),
            "{out}"
        );
        let out = set_env_version(ENVS, "app", "qa", Some("2.0.0")).unwrap();
        assert!(
            out.contains("      qa: {version: 2.0.0}   # nothing yet\n"),
            "{out}"
        );
        // A missing environment mapping is added after the others.
        let out = set_env_version(ENVS, "app", "prod", Some("2.0.0")).unwrap();
        assert!(
            out.ends_with("      qa: {}   # nothing yet\n      prod:\n        version: 2.0.0\n"),
            "{out}"
        );
        // And an existing value is edited like any scalar.
        let again = set_env_version(&out, "app", "prod", Some("2.1.0")).unwrap();
        assert_eq!(again, out.replace("version: 2.0.0", "version: 2.1.0"));
    }

    #[test]
    fn removing_an_environment_version_removes_what_it_leaves_empty() {
        for (package, env) in [("web", "dev"), ("app", "dev"), ("app", "prod")] {
            let added = set_env_version(ENVS, package, env, Some("3.0.0")).unwrap();
            let removed = set_env_version(&added, package, env, None).unwrap();
            assert_eq!(removed, ENVS, "{package} {env}");
        }
        // `qa: {}` held nothing before either: the mapping goes with the version.
        let added = set_env_version(ENVS, "app", "qa", Some("3.0.0")).unwrap();
        let removed = set_env_version(&added, "app", "qa", None).unwrap();
        assert_eq!(removed, ENVS.replace("      qa: {}   # nothing yet\n", ""));
        // In flow style too: the emptied mappings go, the rest stays as written.
        let flow = "packages:\n  a:\n    version: 1.0.0\n    environments: {dev: {version: 2.0.0}, qa: {overlays: [q.yaml]}}\n";
        assert_eq!(
            set_env_version(flow, "a", "dev", None).unwrap(),
            flow.replace("{dev: {version: 2.0.0}, qa", "{qa")
        );
        let anchored = "packages:\n  a:\n    environments:\n      dev: {version: *v}\nx: &v 1\n";
        let err = edit_env_version(anchored, Path::new("kpin.yaml"), "a", "dev", Some("3.0.0"))
            .unwrap_err();
        let text = crate::error::format_error(&err);
        assert!(
            text.contains("cannot set the version of `a` in environment dev in place"),
            "{text}"
        );
        assert!(
            text.contains("hint: kpin edits block and flow style alike"),
            "{text}"
        );
    }

    #[test]
    fn normalising_collapses_one_version_everywhere_into_the_package_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kpin.yaml");
        let mut text = ENVS.to_owned();
        for env in ["dev", "qa"] {
            text = set_env_version(&text, "web", env, Some("1.10.6")).unwrap();
        }
        // dev and qa ahead, prod behind: nothing to tidy.
        let (same, notes) = normalise_versions(&text, &path, "web").unwrap();
        assert_eq!((same.as_str(), notes.len()), (text.as_str(), 0));
        // prod too: the package's version moves, the environments' own versions go.
        text = set_env_version(&text, "web", "prod", Some("1.10.6")).unwrap();
        let (out, notes) = normalise_versions(&text, &path, "web").unwrap();
        assert_eq!(out, ENVS.replace("1.9.4 # everyone", "1.10.6 # everyone"));
        assert!(
            notes[0].starts_with("every environment runs 1.10.6 now"),
            "{notes:?}"
        );
        // An environment back on the package's version follows it again.
        let back = set_env_version(ENVS, "web", "dev", Some("1.9.4")).unwrap();
        let (out, notes) = normalise_versions(&back, &path, "web").unwrap();
        assert_eq!(out, ENVS);
        assert_eq!(
            notes,
            ["dev follows the package's version 1.9.4 again: environments.dev.version removed"]
        );
    }

    proptest::proptest! {
        /// Any version text lands in the file as exactly that string, and no other line moves.
        #[test]
        fn any_version_text_is_written_faithfully(version in "[0-9A-Za-z][0-9A-Za-z._+-]{0,24}") {
            let out = set_package_version(MANIFEST, "ingress-nginx", &version).unwrap();
            let doc: Value = yaml::from_str(&out, Path::new(MANIFEST_FILE)).unwrap();
            proptest::prop_assert_eq!(doc["packages"]["ingress-nginx"]["version"].as_str(), Some(version.as_str()));
            let changed: Vec<(&str, &str)> = MANIFEST.lines().zip(out.lines()).filter(|(a, b)| a != b).collect();
            proptest::prop_assert_eq!(changed.len(), usize::from(version != "1.9.4"));
            proptest::prop_assert_eq!(MANIFEST.lines().count(), out.lines().count());
        }
    }

    #[test]
    fn escaped_quotes_are_handled() {
        let text = "packages:\n  a:\n    version: 'it''s' # odd\n";
        assert_eq!(
            set_package_version(text, "a", "x").unwrap(),
            "packages:\n  a:\n    version: 'x' # odd\n"
        );
    }
}
