//! Connecting like kubectl: kubeconfig from `--kubeconfig` or `KUBECONFIG` (or ~/.kube/config),
//! `--context` or the environment's context, in-cluster config as the fallback; exec credential
//! plugins work because kube runs them. `--request-timeout` bounds each request, and a server
//! that cannot be reached (refused, silent, TLS, certificates) is described in plain words.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use kube::client::retry::RetryPolicy;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::ClusterError;
use super::admission::Refusal;
use super::discovery::RestMapper;
use crate::error::HintExt;

/// Where to connect, as the user asked for it.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`; else `KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// The selected environment and the context it names in kpin.yaml, if any.
    pub environment: Option<(String, Option<String>)>,
    /// `--request-timeout`: how long one request may take; `None` waits without limit, like
    /// kubectl's default `0`.
    pub request_timeout: Option<Duration>,
}

/// The cluster kpin talks to, printed before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// The kubeconfig context, `None` for in-cluster config.
    pub context: Option<String>,
    pub server: String,
    /// The namespace for namespaced objects that name none.
    pub default_namespace: String,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.context {
            Some(c) => write!(f, "context {c} ({})", self.server),
            None => write!(f, "in-cluster ({})", self.server),
        }
    }
}

impl Destination {
    /// How kpin found the server, for messages: `context prod` or `in-cluster config`.
    pub fn via(&self) -> String {
        match &self.context {
            Some(c) => format!("context {c}"),
            None => "in-cluster config".to_owned(),
        }
    }
}

/// A connected cluster: the kube client and the lazily filled RESTMapper.
pub struct Cluster {
    pub client: kube::Client,
    pub target: Destination,
    pub mapper: RestMapper,
    /// `--request-timeout`, for messages about requests that took too long.
    pub request_timeout: Option<Duration>,
    /// Requests sent so far, retries included.
    requests: Arc<AtomicU64>,
}

/// Retries of a request the server answered 429, 503 or 504 (its `Retry-After` honoured), with
/// exponential backoff between these delays: about a second in all.
const RETRIES: u32 = 3;
const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);
/// Requests waiting for the client at once (kube's own buffer holds as many).
const BUFFERED_REQUESTS: usize = 1024;

impl Cluster {
    /// How many requests were sent to the API server so far, retries included: what a run
    /// costs, independent of how fast the machine is.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `err` as a plain sentence naming the server and the context when a request never
    /// reached the API server (refused, timed out, TLS, certificates); otherwise `err` as is.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        let causes: Vec<&(dyn std::error::Error + 'static)> = err.chain().collect();
        match Unreachable::of(&causes, self.request_timeout) {
            Some(problem) => {
                let hint = problem.hint();
                anyhow::Error::new(ClusterError::Unreachable {
                    server: self.target.server.clone(),
                    via: self.target.via(),
                    problem,
                })
                .hint(hint)
            }
            None => explain_refusal(err),
        }
    }
}

/// `err` with a refusal of admission in its chain (a webhook that cannot be called, a
/// namespace being deleted) said in kpin's words, with the way out; otherwise `err` as is.
fn explain_refusal(err: anyhow::Error) -> anyhow::Error {
    let Some(refusal) = crate::error::find_cause::<kube::Error>(&err).and_then(Refusal::of) else {
        return err;
    };
    let outer: Vec<String> = err
        .chain()
        .take_while(|c| c.downcast_ref::<kube::Error>().is_none())
        .map(ToString::to_string)
        .collect();
    let mut explained = anyhow::anyhow!(refusal.message());
    for message in outer.into_iter().rev() {
        explained = explained.context(message);
    }
    explained.hint(refusal.hint())
}

/// Why a request did not reach the API server, in the user's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    Refused,
    /// No answer within `--request-timeout` (`limit`), or within the connection timeout.
    TimedOut {
        limit: Option<Duration>,
    },
    /// TLS to a port that does not speak it (an http:// port).
    NotTls,
    Handshake(String),
    /// The server's certificate was refused; the text completes "its certificate ...".
    ServerCertificate(CertificateProblem),
    /// Any other failure to connect (DNS, routing, a proxy), with the innermost cause.
    Network(String),
}

/// What is wrong with a certificate, as far as a user can act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateProblem {
    UnknownIssuer,
    /// A CA certificate where a server or client certificate belongs (often self-signed).
    CaAsLeaf,
    WrongName,
    Expired,
    /// X.509 version 1: no extensions, which webpki (rustls) refuses.
    Version1,
    Other(String),
}

impl fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateProblem::UnknownIssuer => {
                f.write_str("is not signed by a certificate authority the kubeconfig trusts")
            }
            CertificateProblem::CaAsLeaf => f.write_str(
                "is a CA certificate, not one issued to a server or a user (a self-signed certificate?)",
            ),
            CertificateProblem::WrongName => f.write_str("is not issued for this host name"),
            CertificateProblem::Expired => f.write_str("has expired or is not valid yet"),
            CertificateProblem::Version1 => f.write_str(
                "is an X.509 version 1 certificate, which kpin's TLS library (rustls) does not accept",
            ),
            CertificateProblem::Other(why) => write!(f, "was refused: {why}"),
        }
    }
}

impl CertificateProblem {
    fn of(err: &rustls::CertificateError) -> CertificateProblem {
        use rustls::CertificateError as E;
        match err {
            E::UnknownIssuer => CertificateProblem::UnknownIssuer,
            E::NotValidForName | E::NotValidForNameContext { .. } => CertificateProblem::WrongName,
            E::Expired
            | E::ExpiredContext { .. }
            | E::NotValidYet
            | E::NotValidYetContext { .. } => CertificateProblem::Expired,
            E::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::UnsupportedCertVersion) => CertificateProblem::Version1,
                Some(webpki::Error::CaUsedAsEndEntity) => CertificateProblem::CaAsLeaf,
                Some(webpki::Error::UnknownIssuer) => CertificateProblem::UnknownIssuer,
                Some(webpki::Error::CertNotValidForName(_)) => CertificateProblem::WrongName,
                Some(webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. }) => {
                    CertificateProblem::Expired
                }
                _ => CertificateProblem::Other(other.to_string()),
            },
            other => CertificateProblem::Other(other.to_string()),
        }
    }

    /// The certificate problem anywhere in a chain of causes.
    fn find(causes: &[&(dyn std::error::Error + 'static)]) -> Option<CertificateProblem> {
        causes.iter().find_map(|e| match rustls_error(*e) {
            Some(rustls::Error::InvalidCertificate(c)) => Some(CertificateProblem::of(c)),
            _ => None,
        })
    }
}

/// An error and its sources, outermost first.
pub(crate) fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source()).collect()
}

/// The rustls error `err` is, or wraps in (layers of) I/O errors, whose `source()` skips
/// the error they wrap.
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = err;
    loop {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        current = current.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreachable::Refused => f.write_str("the connection was refused"),
            Unreachable::TimedOut { limit: Some(limit) } => write!(
                f,
                "no answer within {} (--request-timeout)",
                format_duration(*limit)
            ),
            Unreachable::TimedOut { limit: None } => {
                f.write_str("no answer: the connection timed out")
            }
            Unreachable::NotTls => {
                f.write_str("the server does not answer with TLS there (an http:// port?)")
            }
            Unreachable::Handshake(why) => write!(f, "the TLS handshake failed: {why}"),
            Unreachable::ServerCertificate(problem) => write!(f, "its certificate {problem}"),
            Unreachable::Network(why) => f.write_str(why),
        }
    }
}

impl Unreachable {
    /// Classify a chain of causes (outermost first); `None` when the server did answer or the
    /// failure is not about reaching it.
    pub fn of(
        causes: &[&(dyn std::error::Error + 'static)],
        limit: Option<Duration>,
    ) -> Option<Unreachable> {
        // Only errors of the transport: an API status (403, 404...) is the server's answer.
        let transport = causes.iter().any(|e| {
            matches!(
                e.downcast_ref::<kube::Error>(),
                Some(kube::Error::Service(_) | kube::Error::HyperError(_))
            )
        });
        if !transport {
            return None;
        }
        if let Some(problem) = CertificateProblem::find(causes) {
            return Some(Unreachable::ServerCertificate(problem));
        }
        for e in causes {
            if e.is::<tower::timeout::error::Elapsed>() {
                return Some(Unreachable::TimedOut { limit });
            }
            if e.is::<tokio::time::error::Elapsed>() {
                return Some(Unreachable::TimedOut { limit: None });
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return Some(Unreachable::Refused),
                    std::io::ErrorKind::TimedOut => {
                        return Some(Unreachable::TimedOut { limit });
                    }
                    _ => {}
                }
            }
            match rustls_error(*e) {
                Some(rustls::Error::InvalidMessage(_)) => {
                    return Some(Unreachable::NotTls);
                }
                Some(other) => return Some(Unreachable::Handshake(other.to_string())),
                None => {}
            }
        }
        let innermost = causes.last().map(ToString::to_string).unwrap_or_default();
        Some(Unreachable::Network(innermost))
    }

    pub fn hint(&self) -> String {
        match self {
            Unreachable::Refused => "is the API server running, and are the address and port of `server:` in the kubeconfig right? (`kubectl cluster-info` tries the same)".to_owned(),
            Unreachable::TimedOut { .. } => "the server took the connection but sent nothing back: check the address, a VPN, proxy or firewall in between, and the API server's health; --request-timeout sets how long each request may take (kubectl's format: 10s, 2m; 0 waits without limit)".to_owned(),
            Unreachable::NotTls => "use the scheme and port the API server serves HTTPS on in `server:` of the kubeconfig".to_owned(),
            Unreachable::Handshake(_) => "check `server:` in the kubeconfig; a proxy in between may break TLS".to_owned(),
            Unreachable::ServerCertificate(CertificateProblem::WrongName) => "`tls-server-name` in the kubeconfig's cluster names the host the certificate was issued for".to_owned(),
            Unreachable::ServerCertificate(_) => "give the cluster the CA that signed the API server's certificate (`certificate-authority` or `certificate-authority-data` in the kubeconfig); `insecure-skip-tls-verify: true` turns the check off, for throwaway clusters only".to_owned(),
            Unreachable::Network(_) => "check the server address in the kubeconfig and the network (DNS, proxy, VPN)".to_owned(),
        }
    }
}

/// A duration the way kubectl's flags write it: `500ms`, `5s`, `2m0s`.
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// Decide the context without touching the network: `--context` wins, but it must agree with
/// the environment's context, so `--env prod` can never reach another cluster by accident.
pub fn choose_context(opts: &ConnectOptions) -> Result<Option<String>, ClusterError> {
    let env_context = opts
        .environment
        .as_ref()
        .and_then(|(e, c)| c.as_ref().map(|c| (e, c)));
    match (&opts.context, env_context) {
        (Some(given), Some((env, wanted))) if given != wanted => {
            Err(ClusterError::ContextMismatch {
                env: env.clone(),
                wanted: wanted.clone(),
                given: given.clone(),
            })
        }
        (Some(given), _) => Ok(Some(given.clone())),
        (None, Some((_, wanted))) => Ok(Some(wanted.clone())),
        (None, None) => Ok(None),
    }
}

fn read_kubeconfig(path: Option<&Path>) -> Result<Option<Kubeconfig>> {
    if let Some(path) = path {
        return Kubeconfig::read_from(path)
            .map(Some)
            .with_context(|| format!("reading kubeconfig {}", path.display()));
    }
    let from_env = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"));
    if from_env.is_none() && !home.as_ref().is_some_and(|h| h.is_file()) {
        return Ok(None);
    }
    Kubeconfig::read()
        .map(Some)
        .context("reading kubeconfig from KUBECONFIG or ~/.kube/config")
}

/// Build the client for `opts`. Makes no request: the first request is the caller's.
pub async fn connect(opts: &ConnectOptions) -> Result<Cluster> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let context = choose_context(opts)?;
    let mut user_name = String::new();
    let (config, context) = if let Some(kubeconfig) = read_kubeconfig(opts.kubeconfig.as_deref())? {
        let name = context
            .clone()
            .or_else(|| kubeconfig.current_context.clone())
            .ok_or(ClusterError::NoContext)?;
        if !kubeconfig.contexts.iter().any(|c| c.name == name) {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(ClusterError::UnknownContext {
                name,
                known: known.join(", "),
            }
            .into());
        }
        let user = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone());
        user_name = user.unwrap_or_default();
        let options = KubeConfigOptions {
            context: Some(name.clone()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .with_context(|| format!("loading kubeconfig context {name}"))?;
        (config, Some(name))
    } else {
        if let Some(name) = context {
            return Err(ClusterError::UnknownContext {
                name,
                known: "(no kubeconfig found)".into(),
            }
            .into());
        }
        let config = kube::Config::incluster()
            .map_err(|e| anyhow::anyhow!(e))
            .context(
                "no kubeconfig found (KUBECONFIG, ~/.kube/config) and not running in a cluster",
            )?;
        (config, None)
    };
    let target = Destination {
        context,
        server: config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned(),
        default_namespace: config.default_namespace.clone(),
    };
    let requests = Arc::new(AtomicU64::new(0));
    let client = build_client(config, opts, &target, &user_name, &requests)?;
    Ok(Cluster {
        mapper: RestMapper::new(client.clone()),
        client,
        target,
        request_timeout: opts.request_timeout,
        requests,
    })
}

/// The client for `config`: kpin's user agent, bounded retries, and `--request-timeout` on every
/// request, read and write.
fn build_client(
    mut config: kube::Config,
    opts: &ConnectOptions,
    target: &Destination,
    user_name: &str,
    requests: &Arc<AtomicU64>,
) -> Result<kube::Client> {
    // kube retries a 429, 503 or 504 fifteen times, backing off up to 1000 s: many minutes of
    // silence when an APIService is down (its group answers 503). kpin retries briefly (below)
    // and then reports which group it is.
    config.default_retry = false;
    // Server logs and audit records name kpin, as they name kubectl.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("kpin/", env!("CARGO_PKG_VERSION"))),
    ));
    if let Some(limit) = opts.request_timeout {
        // The layer below bounds each request until its response starts; these bound every
        // read and write, so a body that stalls halfway is caught too.
        config.connect_timeout = Some(config.connect_timeout.map_or(limit, |c| c.min(limit)));
        config.read_timeout = Some(limit);
        config.write_timeout = Some(limit);
        config.reset_reader_on_write = true;
    }
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|err| {
        match CertificateProblem::find(&causes(&err)) {
            Some(problem) => anyhow::Error::new(ClusterError::ClientCertificate {
                user: user_name.to_owned(),
                via: target.via(),
                problem: problem.clone(),
            })
            .hint(match problem {
                CertificateProblem::Version1 => "issue the client certificate again as X.509 v3 (any extension makes it v3, e.g. `openssl x509 -req ... -extfile <(echo extendedKeyUsage=clientAuth)`); kubeadm, cloud providers and cert-manager issue v3 certificates",
                _ => "check client-certificate(-data) and client-key(-data) of the user in the kubeconfig",
            }),
            None => anyhow::Error::new(err).context("building the Kubernetes client"),
        }
    })?;
    let retry = tower::retry::RetryLayer::new(
        RetryPolicy::new(RETRY_MIN_DELAY, RETRY_MAX_DELAY, RETRIES, true)
            .context("building the retry policy")?,
    );
    // The retry layer clones the service it wraps: a buffer makes it cloneable.
    let buffer = tower::buffer::BufferLayer::new(BUFFERED_REQUESTS);
    // Innermost: every attempt the retry layer makes is counted.
    let counter = Arc::clone(requests);
    let count = tower::util::MapRequestLayer::new(move |request| {
        counter.fetch_add(1, Ordering::Relaxed);
        request
    });
    let builder = builder.with_layer(&count);
    let client = match opts.request_timeout {
        Some(limit) => builder
            .with_layer(&tower::timeout::TimeoutLayer::new(limit))
            .with_layer(&buffer)
            .with_layer(&retry)
            .build(),
        None => builder.with_layer(&buffer).with_layer(&retry).build(),
    };
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(context: Option<&str>, env_context: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: None,
            context: context.map(str::to_owned),
            environment: Some(("prod".into(), env_context.map(str::to_owned))),
            request_timeout: None,
        }
    }

    fn classify(err: &kube::Error) -> Option<Unreachable> {
        Unreachable::of(&causes(err), Some(Duration::from_secs(5)))
    }

    #[test]
    fn transport_failures_are_classified_and_server_answers_are_not() {
        let io = |kind| kube::Error::Service(Box::new(std::io::Error::from(kind)));
        assert_eq!(
            classify(&io(std::io::ErrorKind::ConnectionRefused)),
            Some(Unreachable::Refused)
        );
        assert_eq!(
            classify(&io(std::io::ErrorKind::TimedOut)),
            Some(Unreachable::TimedOut {
                limit: Some(Duration::from_secs(5))
            })
        );
        let tls = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert_eq!(
            classify(&kube::Error::Service(Box::new(tls))),
            Some(Unreachable::ServerCertificate(
                CertificateProblem::UnknownIssuer
            ))
        );
        let answer = kube::core::Status::failure("forbidden", "Forbidden").with_code(403);
        assert_eq!(classify(&kube::Error::Api(Box::new(answer))), None);
    }

    #[test]
    fn durations_are_shown_like_kubectl_flags() {
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m0s");
    }

    #[test]
    fn environment_context_is_the_default_and_cannot_be_overridden() {
        assert_eq!(
            choose_context(&opts(None, Some("prod-eu")))
                .ok()
                .flatten()
                .as_deref(),
            Some("prod-eu")
        );
        assert_eq!(
            choose_context(&opts(Some("prod-eu"), Some("prod-eu")))
                .ok()
                .flatten()
                .as_deref(),
            Some("prod-eu")
        );
        assert_eq!(
            choose_context(&opts(Some("dev"), None))
                .ok()
                .flatten()
                .as_deref(),
            Some("dev")
        );
        let err = choose_context(&opts(Some("dev"), Some("prod-eu"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("environment prod uses context prod-eu"),
            "{err}"
        );
    }
}
