//! From nothing to a pinned package: `kpin init` writes kpin.yaml, `kpin add` resolves a source
//! (a GitHub repository's releases, served on loopback the way the GitHub API answers, or a URL
//! template) and syncs it in the transaction `sync` uses, keeping the file as it was written.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::http::Server;
use crate::support::{Project, Run};

#[track_caller]
fn expect(run: Run, code: i32) -> Run {
    assert_eq!(run.code, code, "{}", run.transcript());
    run
}

fn deploy(version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ingress-nginx}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ingress-nginx-controller, namespace: ingress-nginx}}\ndata: {{version: \"{version}\"}}\n"
    )
}

/// A repository that releases its controller (`controller-v…`, with `deploy.yaml`) and its
/// chart (`helm-chart-…`) side by side, as ingress-nginx does.
fn ingress_repository() -> Server {
    let server = Server::http();
    let repo = "example/ingress-nginx";
    server
        .github_release(
            repo,
            "helm-chart-4.11.5",
            &[("ingress-nginx-4.11.5.tgz", b"chart")],
        )
        .github_release(
            repo,
            "controller-v1.11.5",
            &[("deploy.yaml", deploy("1.11.5").as_bytes())],
        )
        .github_release(
            repo,
            "helm-chart-4.12.1",
            &[("ingress-nginx-4.12.1.tgz", b"chart")],
        )
        .github_release(
            repo,
            "controller-v1.12.1",
            &[
                ("deploy.yaml", deploy("1.12.1").as_bytes()),
                ("cloud.yaml", deploy("1.12.1").as_bytes()),
            ],
        )
        .github_release_listing(repo);
    server
}

/// Every file of the project but the cache, with its bytes.
fn files(p: &Project) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(p.path(), p.path(), &mut out);
    out
}

#[test]
fn a_new_directory_goes_from_init_through_add_to_render_with_no_file_written_by_hand() {
    let server = ingress_repository();
    let api = server.api_url();
    let p = Project::new();

    let init = expect(
        p.run(&[
            "init",
            "--env",
            "dev,qa,prod",
            "--promotion",
            "--kubernetes-version",
            "1.31",
        ]),
        0,
    );
    insta::assert_snapshot!("init_manifest", p.read("kpin.yaml"));
    assert!(
        init.stderr.contains("Created [PROJECT]/kpin.yaml"),
        "{}",
        init.transcript()
    );
    assert_eq!(
        p.read(".gitignore"),
        "# kpin's temporary files (left only when a kpin is killed; the next one cleans up)\n.kpin-*\n"
    );
    let again = expect(p.run(&["init"]), 2);
    insta::assert_snapshot!("init_refuses_to_overwrite", again.stderr);

    // No asset named: the newest controller release's YAML assets are listed.
    let add = [
        "add",
        "ingress-nginx",
        "--github",
        "example/ingress-nginx",
        "--api-url",
        &api,
    ];
    let listed = expect(p.run(&add), 2);
    insta::assert_snapshot!("add_lists_the_assets", listed.stderr);

    let with_asset: Vec<&str> = add
        .iter()
        .copied()
        .chain(["--asset", "deploy.yaml", "--namespace", "ingress"])
        .collect();
    let run = expect(p.run(&with_asset), 0);
    insta::assert_snapshot!(
        "add_github_release",
        run.stderr.replace(&server.base(), "[SERVER]")
    );
    insta::assert_snapshot!(
        "add_github_release_manifest",
        p.read("kpin.yaml").replace(&server.base(), "[SERVER]")
    );
    assert_eq!(
        p.read("vendor/ingress-nginx/1.12.1/deploy.yaml"),
        deploy("1.12.1")
    );
    expect(p.run(&["verify"]), 0);
    let render = expect(p.run(&["render", "--env", "prod"]), 0);
    assert!(
        render.stdout.contains("namespace: ingress\n")
            && !render.stdout.contains("namespace: ingress-nginx"),
        "{}",
        render.stdout
    );

    // The name is taken now.
    let before = files(&p);
    let taken = expect(p.run(&with_asset), 2);
    insta::assert_snapshot!("add_name_taken", taken.stderr);
    assert_eq!(files(&p), before);
}

const ADDON: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: addon, namespace: addon}\ndata: {a: b}\n";

/// A synced project with `manifest` (its `web` package from a local mirror), and a server
/// publishing `addon` 2.1.0 (a ConfigMap) at `[server]/addon/{version}/install.yaml`.
fn with_addon_server(manifest: &str) -> (Server, Project) {
    let server = Server::http();
    server.file("/addon/2.1.0/install.yaml", ADDON);
    let p = Project::new();
    p.write("kpin.yaml", manifest)
        .write("mirror/web/1.0.0/web.yaml", &deploy("1.0.0"));
    expect(p.run(&["sync"]), 0);
    (server, p)
}

/// `kpin add addon --url [server]/addon/{version}/install.yaml --version 2.1.0`, then `extra`.
fn add_addon(server: &Server, p: &Project, extra: &[&str]) -> Run {
    let template = format!("{}/addon/{{version}}/install.yaml", server.base());
    let mut args = vec!["add", "addon", "--url", &template, "--version", "2.1.0"];
    args.extend(extra);
    p.run(&args)
}

const HAND_WRITTEN: &str = "\
# Our packages.   (a comment kpin must keep)
kubernetesVersion: '1.31'
environments: {dev: {}, prod: {}}

packages:
  web: {version: 1.0.0, path: 'mirror/web/{version}'}   # ours

# end of file
";

#[test]
fn add_keeps_the_file_as_written_shows_a_dry_run_and_fails_whole() {
    let (server, p) = with_addon_server(HAND_WRITTEN);

    let before = files(&p);
    let preview = expect(add_addon(&server, &p, &["--dry-run"]), 0);
    insta::assert_snapshot!(
        "add_dry_run",
        preview.stdout.replace(&server.base(), "[SERVER]")
    );
    assert_eq!(files(&p), before, "a dry run writes nothing");

    // A source that fails to download changes nothing at all.
    let missing = format!("{}/gone/{{version}}/install.yaml", server.base());
    let failed = expect(
        p.run(&["add", "gone", "--url", &missing, "--version", "1.0.0"]),
        2,
    );
    assert!(failed.stderr.contains("404"), "{}", failed.transcript());
    assert_eq!(files(&p), before, "a failed add writes nothing");

    expect(add_addon(&server, &p, &[]), 0);
    let written = p.read("kpin.yaml").replace(&server.base(), "[SERVER]");
    let entry = "  addon:\n    version: 2.1.0\n    url: [SERVER]/addon/{version}/install.yaml\n";
    assert_eq!(
        written,
        HAND_WRITTEN.replace("   # ours\n", &format!("   # ours\n{entry}"))
    );
    assert_eq!(p.read("vendor/addon/2.1.0/install.yaml"), ADDON);
    expect(p.run(&["verify"]), 0);

    // A URL without {version} is refused before anything is fetched.
    let fixed = format!("{}/addon/2.1.0/install.yaml", server.base());
    let refused = expect(
        p.run(&["add", "fixed", "--url", &fixed, "--version", "2.1.0"]),
        2,
    );
    assert!(
        refused.stderr.contains("does not contain `{version}`"),
        "{}",
        refused.stderr
    );
}

const THREE_ENVIRONMENTS: &str = "\
environments: {dev: {}, qa: {}, prod: {}}
promotion: [dev, qa, prod]
packages:
  web: {version: 1.0.0, path: 'mirror/web/{version}'}
";

fn objects_of(render: &Run, name: &str) -> usize {
    render.stdout.matches(&format!("name: {name}\n")).count()
}

#[test]
fn a_package_added_to_one_environment_reaches_the_others_by_promotion() {
    let (server, p) = with_addon_server(THREE_ENVIRONMENTS);
    expect(add_addon(&server, &p, &["--env", "dev"]), 0);
    let added = p.read("kpin.yaml").replace(&server.base(), "[SERVER]");
    assert_eq!(
        added,
        format!(
            "{THREE_ENVIRONMENTS}  addon:\n    version: 2.1.0\n    url: [SERVER]/addon/{{version}}/install.yaml\n    environments:\n      prod: {{installed: false}}\n      qa: {{installed: false}}\n"
        )
    );
    // dev renders it, qa and prod do not; the lock records dev's render only.
    assert_eq!(
        objects_of(&expect(p.run(&["render", "--env", "dev"]), 0), "addon"),
        1
    );
    assert_eq!(
        objects_of(&expect(p.run(&["render", "--env", "qa"]), 0), "addon"),
        0
    );
    let lock = p.read("kpin.lock");
    let addon = &lock[lock.find("  addon:").unwrap()..lock.find("  web:").unwrap()];
    assert!(
        addon.contains("      dev: 2.1.0\n") && !addon.contains("qa:"),
        "{addon}"
    );
    expect(p.run(&["verify"]), 0);
    let named = expect(p.run(&["render", "addon", "--env", "qa"]), 2);
    insta::assert_snapshot!("add_not_installed_in_qa", named.stderr);

    // prod cannot skip qa; qa takes it from dev, then prod from qa.
    let skip = expect(p.run(&["promote", "addon", "--to", "prod"]), 2);
    assert!(
        skip.stderr
            .contains("addon is not installed in qa, the environment before prod"),
        "{}",
        skip.stderr
    );
    let promoted = expect(p.run(&["promote", "addon", "--to", "qa"]), 0);
    assert!(
        promoted
            .stderr
            .contains("Promoting addon (not installed) -> 2.1.0 in qa (from dev)"),
        "{}",
        promoted.transcript()
    );
    assert_eq!(
        p.read("kpin.yaml").replace(&server.base(), "[SERVER]"),
        added.replace("      qa: {installed: false}\n", "")
    );
    assert_eq!(
        objects_of(&expect(p.run(&["render", "--env", "qa"]), 0), "addon"),
        1
    );
    expect(p.run(&["verify"]), 0);
    expect(p.run(&["promote", "addon", "--to", "prod"]), 0);
    assert_eq!(
        p.read("kpin.yaml").replace(&server.base(), "[SERVER]"),
        format!(
            "{THREE_ENVIRONMENTS}  addon:\n    version: 2.1.0\n    url: [SERVER]/addon/{{version}}/install.yaml\n"
        )
    );
    expect(p.run(&["verify"]), 0);
}
