//! Command-line interface definition (clap). Parsing only: `commands` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kpin::cluster::apply::FIELD_MANAGER;
use kpin::cluster::prune::PruneOptions;
use kpin::kinds;
use kpin::validate::KubeVersion;

const AFTER_HELP: &str = "\
Exit status:
  0  success, nothing to report
  1  drift: lockfile out of date (--locked), verification problems, diff with changes,
     outdated packages, apply or wait failure
  2  error: bad input, network, I/O or cluster errors, refused upgrade

Files:
  kpin.yaml   the manifest (searched upward from the current directory; see `kpin schema`)
  kpin.lock   the lockfile next to it (commit it)
  vendor/     the vendored releases (commit it)";

/// Heading that keeps the flags every command accepts apart from the command's own in `--help`.
const GLOBAL: &str = "Global options";

/// Pin, vendor, patch, lock and apply third-party Kubernetes YAML releases, without Helm.
#[derive(Debug, Parser)]
#[command(name = "kpin", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Path to kpin.yaml [default: ./kpin.yaml, searched upward]
    #[arg(long, global = true, value_name = "PATH", env = "KPIN_MANIFEST", help_heading = GLOBAL)]
    pub manifest: Option<PathBuf>,

    /// More output: where each file came from (vendor/, cache, URL)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet", help_heading = GLOBAL)]
    pub verbose: u8,

    /// Only errors and data
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,

    /// When to use colors
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, help_heading = GLOBAL)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a project: a commented kpin.yaml (and the .gitignore line kpin needs)
    #[command(
        long_about = "Write a commented kpin.yaml in the current directory (or at --manifest), \
with the environments and promotion order asked for and a `kubernetesVersion`, and add the \
line for kpin's temporary files to .gitignore. An existing kpin.yaml is never overwritten.",
        after_help = "Exit status: 0 written, 2 kpin.yaml exists already or any other error."
    )]
    Init(InitArgs),
    /// Add a package to kpin.yaml and sync it, in one step
    #[command(
        long_about = "Add a package to kpin.yaml and sync it: kpin.yaml, kpin.lock and \
vendor/ change together, or not at all. The entry is added at the end of `packages:` in the \
file's own style; the rest of the file stays byte for byte as it was.\n\n\
With --github, the repository's releases are listed: the newest is pinned unless --version \
names one, the tag template is inferred from the tags (`controller-v{version}` when they carry \
a prefix), and without --asset the release's YAML assets are listed.",
        after_help = "Exit status: 0 added (or shown with --dry-run), 2 the name is taken, the \
source cannot be resolved, or any other error."
    )]
    Add(AddArgs),
    /// Fetch pinned releases into vendor/ and update kpin.lock
    #[command(
        long_about = "Fetch every package's pinned release files, verify their sha256, \
store them under vendor/<package>/<version>/ and update kpin.lock.\n\n\
A second sync downloads nothing: files come from vendor/ or the local cache. \
In CI use `kpin sync --locked`, which fails (exit 1) instead of changing kpin.lock."
    )]
    Sync(SyncArgs),
    /// Check offline that kpin.yaml, kpin.lock, vendor/ and overlays agree
    Verify(VerifyArgs),
    /// Print the rendered objects (upstream plus overlays) as YAML
    Render(RenderArgs),
    /// Show what apply would change in the cluster, or what changed since a git revision
    Diff(DiffArgs),
    /// Server-side apply rendered packages to the cluster
    Apply(ApplyArgs),
    /// List newer upstream versions
    #[command(after_help = "Exit status: 0 up to date, 1 something is outdated, 2 error.")]
    Outdated(OutdatedArgs),
    /// Move a package to a newer version and show what changes
    #[command(
        long_about = "Move a package to a newer version and show what changes: the upstream \
change per object, the overlays that no longer match, and the rendered diff. Then kpin.yaml \
(only the version line), kpin.lock and vendor/ are updated together, or not at all.",
        after_help = "Exit status: 0 upgraded (or reported with --dry-run), 2 refused because \
overlays no longer match (see --allow-broken-overlays) or any other error."
    )]
    Upgrade(UpgradeArgs),
    /// Give an environment the version the environment before it runs (`promotion:` order)
    #[command(
        long_about = "Give an environment the version that the environment before it in \
kpin.yaml's `promotion:` order runs (`--to prod` takes qa's version), with the same report as an \
upgrade: upstream changes, overlays that no longer match, and the environment's rendered diff. \
kpin.yaml (the environment's version), kpin.lock and vendor/ change together, or not at all.\n\n\
When the environment before runs the target's version already but an earlier one runs another, \
the promotion would skip environments: refused unless --allow-skip. Promotions to an older \
version are refused; `kpin upgrade PKG --env ENV --to V` rolls back on purpose.",
        after_help = "Exit status: 0 promoted (or nothing to promote, or reported with \
--dry-run), 2 refused (a skipped environment, a downgrade, overlays that no longer match) or \
any other error."
    )]
    Promote(PromoteArgs),
    /// Show which version runs in which environment, and whether it matches kpin.lock
    #[command(
        long_about = "Connect to every environment's cluster (its `context:` in kpin.yaml) and \
print a matrix of package x environment: the version the package's ApplySet parent records as \
deployed, whether that is what kpin.lock records for the environment, and drift (fields kpin \
applied that changed in the cluster since, from a server-side dry run). An unreachable cluster \
is reported in its column; the others are still checked.",
        after_help = "Exit status: 0 every package of every environment matches kpin.lock \
without drift, 1 something differs (another version or render, drift, not deployed), 2 an \
environment could not be checked (unreachable cluster, credentials) or any other error."
    )]
    Status(StatusArgs),
    /// Print the JSON Schema of kpin.yaml or of overlay files
    Schema(SchemaArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

/// How `kpin sync` may use the lockfile and the network.
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Fail (exit 1) if kpin.lock is missing or would change; never rewrite it
    #[arg(long)]
    pub locked: bool,
    /// Never use the network: work from vendor/ and the cache only
    #[arg(long)]
    pub offline: bool,
}

/// For commands that read vendor/ (render, diff, apply): they never fetch.
#[derive(Debug, Clone, Args)]
pub struct LockedArg {
    /// Refuse to run (exit 1) unless kpin.yaml, kpin.lock, vendor/ and overlays agree (CI mode)
    #[arg(long)]
    pub locked: bool,
}

/// Network settings for fetching releases.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Allow plain http:// URLs to hosts other than loopback
    #[arg(long)]
    pub allow_http: bool,
    /// Extra CA certificate (PEM) to trust, e.g. for a corporate mirror; SSL_CERT_FILE also works
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Seconds before a request without progress is abandoned
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Retries per file after a connection error, 429 or 5xx, with exponential backoff
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Packages fetched at the same time (release files are small: latency, not bandwidth, dominates)
    #[arg(long, short = 'j', value_name = "N", default_value_t = 32)]
    pub jobs: usize,
    /// Largest release file accepted, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub max_size: u64,
    /// Cache directory [default: $XDG_CACHE_HOME/kpin]
    #[arg(long, value_name = "DIR", env = "KPIN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Vendor a chart whose `helm template` output differs from run to run (its first render)
    #[arg(long)]
    pub allow_nondeterministic: bool,
}

impl NetArgs {
    /// The library's network options: these flags plus `GITHUB_TOKEN` and `SSL_CERT_FILE`.
    pub fn to_options(&self) -> kpin::fetch::NetOptions {
        kpin::fetch::NetOptions {
            allow_http: self.allow_http,
            ca_certs: self.ca_cert.clone(),
            timeout: std::time::Duration::from_secs(self.timeout.max(1)),
            attempts: self.retries.saturating_add(1),
            max_size: self.max_size.saturating_mul(1024 * 1024),
            ..kpin::fetch::NetOptions::default()
        }
        .with_env()
    }

    pub fn render_options(&self) -> kpin::fetch::source::RenderOptions {
        kpin::fetch::source::RenderOptions {
            allow_nondeterministic: self.allow_nondeterministic,
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Environments (clusters), in promotion order, e.g. `dev,qa,prod`
    #[arg(long = "env", value_name = "ENV", value_delimiter = ',')]
    pub environments: Vec<String>,
    /// Write `promotion:` in the order of --env
    #[arg(long, requires = "environments")]
    pub promotion: bool,
    /// The clusters' Kubernetes minor version, e.g. 1.31 [default: the newest kpin knows]
    #[arg(long, value_name = "X.Y", value_parser = kube_version)]
    pub kubernetes_version: Option<KubeVersion>,
}

#[derive(Debug, Args)]
#[command(
    group = clap::ArgGroup::new("source").required(true).args(["github", "url", "chart"]),
    // `--version` pins the package here, as in `cargo add` (`kpin --version` still prints kpin's).
    disable_version_flag = true
)]
pub struct AddArgs {
    /// The package's name (its directory under vendor/)
    pub name: String,
    /// A GitHub (Enterprise) repository whose release assets are the package, `OWNER/REPO`
    #[arg(long, value_name = "OWNER/REPO")]
    pub github: Option<String>,
    /// The release asset to vendor, e.g. `deploy.yaml` [default: list the release's YAML assets]
    #[arg(long, value_name = "NAME", requires = "github")]
    pub asset: Option<String>,
    /// The tag template, e.g. `controller-v{version}` [default: inferred from the tags]
    #[arg(long, value_name = "TEMPLATE", requires = "github")]
    pub tag: Option<String>,
    /// The GitHub API base URL (GitHub Enterprise) [default: https://api.github.com]
    #[arg(long, value_name = "URL", requires = "github")]
    pub api_url: Option<String>,
    /// A URL template of one release file, containing `{version}`
    #[arg(long, value_name = "TEMPLATE")]
    pub url: Option<String>,
    /// A Helm chart's repository: `https://HOST/PATH` (its index.yaml), `oci://HOST/PATH`, or a
    /// directory of the project; the chart is rendered at sync time
    #[arg(long, value_name = "REPOSITORY")]
    pub chart: Option<String>,
    /// The chart's name in the repository [default: the package name]
    #[arg(long, value_name = "NAME", requires = "chart")]
    pub chart_name: Option<String>,
    /// The version to pin [default with --github and --chart: the newest release]
    #[arg(
        long = "version",
        id = "pin",
        value_name = "VERSION",
        required_unless_present_any = ["github", "chart"]
    )]
    pub pin: Option<String>,
    /// Move every object of the package into this namespace (a chart's release namespace)
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Start in these environments only (the others get `installed: false` until
    /// `kpin promote` brings the package there)
    #[arg(long = "env", value_name = "ENV", value_delimiter = ',')]
    pub environments: Vec<String>,
    /// Print the change to kpin.yaml; write and fetch nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Output format
    #[arg(long, short, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
    #[command(flatten)]
    pub validate: ValidateArgs,
}

/// Offline validation of rendered objects (API schemas, CRDs, retired API versions).
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Validate rendered objects against the Kubernetes API schemas and the packages' CRDs
    /// (default in verify, diff and apply)
    #[arg(long, overrides_with = "no_validate")]
    pub validate: bool,
    /// Skip validation
    #[arg(long, overrides_with = "validate")]
    pub no_validate: bool,
    /// Kubernetes minor version to validate against, e.g. 1.33 [default: kubernetesVersion
    /// of the environment or kpin.yaml]; implies --validate
    #[arg(long, value_name = "X.Y", value_parser = kube_version)]
    pub kubernetes_version: Option<KubeVersion>,
}

impl ValidateArgs {
    /// Whether to validate, given the command's default.
    pub fn enabled(&self, default: bool) -> bool {
        !self.no_validate && (self.validate || self.kubernetes_version.is_some() || default)
    }
}

/// A version kpin has API schemas for.
fn kube_version(text: &str) -> Result<KubeVersion, String> {
    let version = KubeVersion::parse(text)?;
    let known = kpin::validate::supported_versions();
    if known.contains(&version) {
        Ok(version)
    } else {
        let list: Vec<String> = known.iter().map(ToString::to_string).collect();
        Err(format!(
            "kpin has no API schemas for Kubernetes {version}; it has {}",
            list.join(", ")
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Packages to render [default: all]
    pub packages: Vec<String>,
    /// Environment whose overlays to add
    #[arg(long, short)]
    pub env: Option<String>,
    /// Write one file per object into DIR (a plain directory Argo CD or Flux can consume)
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Show, per object, which overlay changed which fields
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub validate: ValidateArgs,
    #[command(flatten)]
    pub lock: LockedArg,
}

/// Connection to a cluster, like kubectl.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// kubeconfig file [default: $KUBECONFIG or ~/.kube/config; in-cluster config when absent]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context [default: the environment's `context`, else the current context]
    #[arg(long)]
    pub context: Option<String>,
    /// How long one request to the API server may take before kpin gives up, as kubectl
    /// takes it: 10s, 2m, 1h; a plain number is seconds; 0 waits without limit
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = request_timeout)]
    pub request_timeout: std::time::Duration,
}

impl ClusterArgs {
    /// `--request-timeout`, `None` for no limit.
    pub fn request_timeout(&self) -> Option<std::time::Duration> {
        (!self.request_timeout.is_zero()).then_some(self.request_timeout)
    }
}

/// A `--request-timeout` value in kubectl's format: a plain number of seconds, or Go's
/// duration syntax (`1m30s`, `500ms`, `1.5h`; units ns, us, µs, ms, s, m, h).
fn request_timeout(text: &str) -> Result<std::time::Duration, String> {
    const UNITS: [(&str, f64); 7] = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let bad = || {
        format!(
            "`{text}` is not a duration (examples: 0, 30s, 2m, 1h30m; a plain number is seconds)"
        )
    };
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut rest = text;
    let mut total = 0.0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = UNITS
            .iter()
            .find(|(unit, _)| *unit == &rest[..unit_len])
            .map(|(_, f)| *f)
            .ok_or_else(bad)?;
        total += number * factor;
        rest = &rest[unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Packages to diff [default: all]
    pub packages: Vec<String>,
    /// Environment whose overlays and kubeconfig context to use
    #[arg(long, short)]
    pub env: Option<String>,
    /// Compare with the render at this git revision instead of the cluster (no cluster needed)
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
    /// Show Secret values instead of masking them
    #[arg(long)]
    pub show_secrets: bool,
    /// Field manager used for the server-side dry run
    #[arg(long, value_name = "NAME", default_value = FIELD_MANAGER)]
    pub field_manager: String,
    #[command(flatten)]
    pub prune: PruneArgs,
    #[command(flatten)]
    pub validate: ValidateArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub lock: LockedArg,
}

/// The limits of `--prune`, which `kpin diff` follows when it lists what prune would delete.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Let --prune delete objects of these kinds, whose deletion cascades:
    /// CustomResourceDefinition (every custom resource of its kind goes too), Namespace
    /// (everything in it goes too)
    #[arg(long, value_name = "KIND", value_delimiter = ',', value_parser = cascading_kind)]
    pub prune_allow: Vec<String>,
    /// Let --prune delete more than half of a package's objects in the cluster (when more
    /// than 5)
    #[arg(long)]
    pub allow_mass_prune: bool,
}

impl PruneArgs {
    pub fn options(&self) -> PruneOptions {
        PruneOptions {
            allow_kinds: self.prune_allow.iter().cloned().collect(),
            allow_mass: self.allow_mass_prune,
            // `--allow-empty` is apply's alone: `kpin diff` warns about an empty package.
            allow_empty: false,
        }
    }
}

/// A kind `--prune-allow` accepts: one of the cascading kinds.
fn cascading_kind(text: &str) -> Result<String, String> {
    let known: Vec<&str> = kinds::CASCADING_KINDS.iter().map(|c| c.kind).collect();
    known
        .iter()
        .find(|k| **k == text)
        .map(|k| (*k).to_owned())
        .ok_or_else(|| format!("expected one of: {}", known.join(", ")))
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // flags of a command line
pub struct ApplyArgs {
    /// Packages to apply [default: all]
    pub packages: Vec<String>,
    /// Environment whose overlays and kubeconfig context to use
    #[arg(long, short)]
    pub env: Option<String>,
    /// Server-side dry run (dryRun=All): report, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Delete objects kpin applied before that are no longer rendered
    #[arg(long)]
    pub prune: bool,
    /// Allow --prune to delete everything when a package renders no objects
    #[arg(long, requires = "prune")]
    pub allow_empty: bool,
    #[command(flatten)]
    pub prune_limits: PruneArgs,
    /// Take ownership of fields another field manager owns
    #[arg(long)]
    pub force_conflicts: bool,
    /// Delete and re-create objects whose immutable fields changed
    #[arg(long)]
    pub recreate: bool,
    /// Wait until workloads are rolled out, Jobs complete, CRDs established and APIServices
    /// available (`--wait=false` to skip)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Seconds to wait for readiness
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// Field manager name for server-side apply
    #[arg(long, value_name = "NAME", default_value = FIELD_MANAGER)]
    pub field_manager: String,
    /// Objects applied at the same time within a stage
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
    /// Output format of the final report
    #[arg(long, short, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
    #[command(flatten)]
    pub validate: ValidateArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub lock: LockedArg,
}

#[derive(Debug, Args)]
pub struct OutdatedArgs {
    /// Packages to check [default: all]
    pub packages: Vec<String>,
    /// Include prereleases
    #[arg(long)]
    pub prereleases: bool,
    /// Output format: a table, or JSON for scripts
    #[arg(long, short, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["package", "all"]))]
pub struct UpgradeArgs {
    /// Package to upgrade
    pub package: Option<String>,
    /// Upgrade only this environment's version (`environments.<env>.version`); the other
    /// environments keep theirs
    #[arg(long, short)]
    pub env: Option<String>,
    /// Target version [default: newest within the package's constraint]
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Upgrade every package to the newest version within its constraint
    #[arg(long, conflicts_with = "to")]
    pub all: bool,
    /// Write the upgrade even when overlays no longer match
    #[arg(long)]
    pub allow_broken_overlays: bool,
    /// Report only; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the report (markdown: a pull-request comment body)
    #[arg(long, short, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["package", "all"]))]
#[allow(clippy::struct_excessive_bools)] // flags of a command line
pub struct PromoteArgs {
    /// Package to promote
    pub package: Option<String>,
    /// Promote every package whose version differs from the environment before
    #[arg(long)]
    pub all: bool,
    /// The environment that receives the version
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Take the version of an earlier environment when the one right before has nothing new
    #[arg(long)]
    pub allow_skip: bool,
    /// Write the promotion even when overlays no longer match
    #[arg(long)]
    pub allow_broken_overlays: bool,
    /// Report only; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the report (markdown: a pull-request comment body)
    #[arg(long, short, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Packages to show [default: all]
    pub packages: Vec<String>,
    /// Environments to check [default: all, in promotion order]
    #[arg(long, short, value_name = "ENV", value_delimiter = ',')]
    pub env: Vec<String>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
    /// kubeconfig file [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// How long one request to an API server may take (as `apply --request-timeout`); an
    /// environment whose server does not answer in time is reported unreachable
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = request_timeout)]
    pub request_timeout: std::time::Duration,
    /// Field manager of the dry run that measures drift
    #[arg(long, value_name = "NAME", default_value = FIELD_MANAGER)]
    pub field_manager: String,
    #[command(flatten)]
    pub lock: LockedArg,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file's schema
    #[arg(value_enum, default_value_t = SchemaKind::Manifest)]
    pub kind: SchemaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// kpin.yaml
    Manifest,
    /// files in overlays/
    Overlay,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to write the script for, e.g. `kpin completions bash > /etc/bash_completion.d/kpin`
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn request_timeouts_read_like_kubectl() {
        use std::time::Duration;
        assert_eq!(request_timeout("0"), Ok(Duration::ZERO));
        assert_eq!(request_timeout("5"), Ok(Duration::from_secs(5)));
        assert_eq!(request_timeout("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(request_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(request_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(request_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(request_timeout("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "5x", "-1s", "1m2"] {
            assert!(request_timeout(bad).is_err(), "{bad}");
        }
    }
}
