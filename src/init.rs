//! `kpin init`: the text of a new, commented kpin.yaml, and the .gitignore line for kpin's
//! temporary files.

use std::fmt::Write as _;

/// What `kpin init` writes into kpin.yaml.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Environments (clusters), in promotion order.
    pub environments: Vec<String>,
    /// Write `promotion:` in the order of `environments`.
    pub promotion: bool,
    /// The clusters' Kubernetes minor version, e.g. `1.31` (default: the newest kpin knows).
    pub kubernetes_version: Option<String>,
}

/// Temporary files kpin leaves only when killed (the transaction journal, staged vendor
/// directories, temp files before their rename) all start with `.kpin-`; the next kpin
/// command cleans them up, and until then git should not offer them for a commit.
pub const GITIGNORE_LINE: &str = ".kpin-*";

/// A commented kpin.yaml for `options`, with no packages yet (`kpin add` adds them).
pub fn manifest_text(options: &InitOptions) -> String {
    let mut text = String::from(
        "# kpin.yaml: the third-party Kubernetes packages this repository pins.\n\
         # `kpin add` adds one and syncs it; `kpin render --env ENV` prints what would be applied.\n\
         # `kpin schema` prints every field; kpin.lock and vendor/ are written by kpin: commit them.\n",
    );
    let version = options
        .kubernetes_version
        .clone()
        .unwrap_or_else(|| crate::validate::default_version().to_string());
    let _ = write!(
        text,
        "\n# The clusters' Kubernetes minor version: renders are validated against its APIs and\n\
         # retired APIs (an environment can name its own while its cluster is upgraded).\n\
         kubernetesVersion: \"{version}\"\n"
    );
    if options.environments.is_empty() {
        text.push_str(
            "\n# Environments (clusters), each with the kubeconfig context `kpin apply --env` must use:\n\
             # environments:\n#   dev: {context: dev-admin}\n",
        );
    } else {
        text.push_str("\n# Environments (clusters); `context:` is the kubeconfig context `kpin apply --env` must use.\nenvironments:\n");
        for env in &options.environments {
            let _ = writeln!(text, "  {env}: {{}}   # context: {env}-admin");
        }
        if options.promotion {
            let _ = write!(
                text,
                "\n# The order versions travel: `kpin promote PKG --to {}` gives it the version {} runs.\npromotion: [{}]\n",
                options.environments.last().map_or("", String::as_str),
                options
                    .environments
                    .iter()
                    .rev()
                    .nth(1)
                    .map_or("the environment before", String::as_str),
                options.environments.join(", ")
            );
        }
    }
    text.push_str(
        "\n# Packages, by name (`kpin add NAME --github OWNER/REPO --asset FILE` writes one), e.g.:\n\
         # packages:\n\
         #   ingress-nginx:\n\
         #     version: 1.12.1\n\
         #     github: {repo: kubernetes/ingress-nginx, tag: \"controller-v{version}\", assets: [deploy.yaml]}\n\
         #     namespace: ingress\n",
    );
    text
}

/// The `.gitignore` text with `GITIGNORE_LINE` added, or `None` when it is there already.
pub fn gitignore_with_line(existing: Option<&str>) -> Option<String> {
    let existing = existing.unwrap_or_default();
    if existing.lines().any(|l| l.trim() == GITIGNORE_LINE) {
        return None;
    }
    let mut text = existing.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(
        "# kpin's temporary files (left only when a kpin is killed; the next one cleans up)\n",
    );
    text.push_str(GITIGNORE_LINE);
    text.push('\n');
    Some(text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::manifest::Manifest;

    #[test]
    fn every_form_reads_as_a_manifest_with_no_packages() {
        let full = InitOptions {
            environments: vec!["dev".into(), "qa".into(), "prod".into()],
            promotion: true,
            kubernetes_version: Some("1.31".into()),
        };
        for options in [InitOptions::default(), full] {
            let text = manifest_text(&options);
            let manifest = Manifest::parse(&text, Path::new("/p/kpin.yaml")).unwrap();
            assert!(manifest.packages.is_empty());
            assert_eq!(manifest.environments.len(), options.environments.len());
        }
    }

    #[test]
    fn the_gitignore_line_is_added_once() {
        let added = gitignore_with_line(Some("target/")).unwrap();
        assert_eq!(
            added,
            "target/\n# kpin's temporary files (left only when a kpin is killed; the next one cleans up)\n.kpin-*\n"
        );
        assert_eq!(gitignore_with_line(Some(&added)), None);
        assert!(gitignore_with_line(None).unwrap().ends_with(".kpin-*\n"));
    }
}
