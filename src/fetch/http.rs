//! The HTTP client every network access goes through: scheme policy, extra CAs, timeouts,
//! retries with backoff, size limits, truncation checks and sha256 while streaming.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, HeaderMap, RETRY_AFTER, USER_AGENT};
use reqwest::{Response, StatusCode};
use url::Url;

use crate::digest::Hasher;
use crate::error::HintExt;

/// Longest wait honoured from a `Retry-After` header; a server asking for more is an error.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Network settings shared by every command that fetches (sync, render, outdated, upgrade).
#[derive(Debug, Clone)]
pub struct NetOptions {
    /// Allow `http://` to hosts other than loopback.
    pub allow_http: bool,
    /// Extra PEM CA bundles to trust besides the system roots.
    pub ca_certs: Vec<PathBuf>,
    /// Time without progress (connect, headers, or between body chunks) before giving up.
    pub timeout: Duration,
    /// Attempts per request on connection errors, timeouts, 429 and 5xx (at least 1).
    pub attempts: u32,
    /// First backoff delay; doubled on each retry.
    pub backoff: Duration,
    /// Largest body accepted, in bytes.
    pub max_size: u64,
    /// Bearer token for GitHub API and asset requests (never sent elsewhere).
    pub github_token: Option<String>,
}

impl Default for NetOptions {
    fn default() -> NetOptions {
        NetOptions {
            allow_http: false,
            ca_certs: Vec::new(),
            timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Duration::from_millis(250),
            max_size: 64 * 1024 * 1024,
            github_token: None,
        }
    }
}

impl NetOptions {
    /// Add what the environment configures: `GITHUB_TOKEN` and `SSL_CERT_FILE`.
    pub fn with_env(mut self) -> NetOptions {
        if let Some(token) = std::env::var("GITHUB_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
        {
            self.github_token = Some(token.trim().to_owned());
        }
        if let Some(file) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
            self.ca_certs.push(PathBuf::from(file));
        }
        self
    }
}

/// Which credentials and content type a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// A plain download: no credentials.
    None,
    /// A GitHub REST API call (JSON).
    GithubApi,
    /// A GitHub release asset through the API (raw bytes).
    GithubAsset,
    /// An OCI registry blob or listing: stored registry credentials, or a token the registry
    /// hands out, when it challenges.
    Registry,
    /// An OCI registry manifest (`Accept:` an OCI image manifest), authorized like `Registry`.
    RegistryManifest,
}

/// Failures callers (and tests) can tell apart. Transport errors are wrapped with context.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with an error status (retried for 429 and 5xx).
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    /// GitHub answered 403 or 429 with no requests left in the rate limit; not retried.
    #[error("GET {url}: GitHub API rate limit exceeded{}", reset.map(|r| format!(" (resets at unix time {r})")).unwrap_or_default())]
    RateLimited { url: String, reset: Option<u64> },
    /// The body is larger than `--max-size`, by its `Content-Length` or as it streams in.
    #[error("GET {url}: the file is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// The body ended before the length `Content-Length` announced (retried).
    #[error("GET {url}: body truncated after {received} of {expected} bytes")]
    Truncated {
        url: String,
        received: u64,
        expected: u64,
    },
    /// No response, or no bytes of the body, within `--timeout` (retried).
    #[error("GET {url}: no progress for {secs}s")]
    Timeout { url: String, secs: u64 },
    /// The request failed below HTTP: DNS, connection, TLS or proxy (retried).
    #[error("GET {url}: {message}")]
    Transport { url: String, message: String },
    /// A plain `http://` URL to a host that is not loopback, without `--allow-http`.
    #[error("{url}: plain http is only allowed for loopback hosts")]
    InsecureUrl { url: String },
}

impl FetchError {
    /// Worth another attempt: the server or the network may do better next time.
    fn retryable(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status == 429 || *status >= 500,
            FetchError::Truncated { .. }
            | FetchError::Timeout { .. }
            | FetchError::Transport { .. } => true,
            FetchError::RateLimited { .. }
            | FetchError::TooLarge { .. }
            | FetchError::InsecureUrl { .. } => false,
        }
    }

    fn hinted(self) -> anyhow::Error {
        match self.hint() {
            Some(h) => anyhow::Error::new(self).hint(h),
            None => anyhow::Error::new(self),
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            FetchError::Status { status: 404, .. } => {
                Some("check the version, the URL template and the asset names in kpin.yaml")
            }
            FetchError::Status {
                status: 401 | 403, ..
            } => Some(
                "set GITHUB_TOKEN (or fix its permissions) for private or rate-limited repositories",
            ),
            FetchError::RateLimited { .. } => {
                Some("set GITHUB_TOKEN to raise the limit, or wait for the reset")
            }
            FetchError::TooLarge { .. } => {
                Some("raise the limit with --max-size MIB if the file is expected to be this large")
            }
            FetchError::Timeout { .. } => Some("raise --timeout for slow mirrors"),
            FetchError::Transport { .. } => Some(
                "check the host in kpin.yaml and the network; proxies come from HTTPS_PROXY, extra CAs from --ca-cert",
            ),
            FetchError::InsecureUrl { .. } => {
                Some("use https, or pass --allow-http if you trust the network")
            }
            _ => None,
        }
    }
}

/// A transient failure that persisted through every attempt.
#[derive(Debug, thiserror::Error)]
#[error("{source} (gave up after {attempts} attempts)")]
pub struct GaveUp {
    pub attempts: u32,
    #[source]
    pub source: FetchError,
}

/// A downloaded body: its temp file (not yet persisted), sha256 and size.
pub struct Download {
    pub file: tempfile::NamedTempFile,
    pub sha256: String,
    pub size: u64,
}

/// HTTP client with kpin's policies. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    options: NetOptions,
    /// `Authorization` values registries accepted, by host: a chart's manifest and blob are
    /// fetched with one challenge.
    registry_auth: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
}

impl Client {
    pub fn new(options: NetOptions) -> Result<Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = Vec::new();
        for path in &options.ca_certs {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading CA certificate {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{}: not a PEM certificate bundle", path.display()))?;
            if certs.is_empty() {
                anyhow::bail!("{}: no PEM certificate found", path.display());
            }
            roots.extend(certs);
        }
        let allow_http = options.allow_http;
        let http = reqwest::Client::builder()
            .connect_timeout(options.timeout)
            .read_timeout(options.timeout)
            .tls_certs_merge(roots)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    attempt.error("too many redirects")
                } else if scheme_allowed(attempt.url(), allow_http) {
                    attempt.follow()
                } else {
                    attempt.error("redirect to plain http refused")
                }
            }))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            options,
            registry_auth: std::sync::Arc::default(),
        })
    }

    pub fn options(&self) -> &NetOptions {
        &self.options
    }

    /// Refuse plain http to non-loopback hosts unless `--allow-http`.
    pub fn check_url(&self, url: &Url) -> Result<()> {
        if scheme_allowed(url, self.options.allow_http) {
            Ok(())
        } else {
            Err(FetchError::InsecureUrl {
                url: url.to_string(),
            }
            .hinted())
        }
    }

    /// GET a JSON document (GitHub API). Returns the value and the response headers.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
        auth: Auth,
    ) -> Result<(T, HeaderMap)> {
        let (bytes, headers) = self.get_bytes(url, auth).await?;
        let value = serde_json::from_slice(&bytes)
            .with_context(|| format!("GET {url}: unexpected JSON"))?;
        Ok((value, headers))
    }

    /// GET a small document (an index, a manifest) into memory, with the response headers.
    pub async fn get_bytes(&self, url: &Url, auth: Auth) -> Result<(Vec<u8>, HeaderMap)> {
        self.with_retries(|| async move {
            let response = self.request(url, auth).await?;
            let headers = response.headers().clone();
            let mut body = Vec::new();
            self.stream_body(url, response, |chunk| {
                body.extend_from_slice(chunk);
                Ok(())
            })
            .await?;
            Ok((body, headers))
        })
        .await
    }

    /// Stream `url` into a temp file in `temp_dir`, hashing as it goes. `progress` gets byte counts.
    pub async fn download(
        &self,
        url: &Url,
        auth: Auth,
        temp_dir: &std::path::Path,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Download> {
        std::fs::create_dir_all(temp_dir)
            .with_context(|| format!("creating {}", temp_dir.display()))?;
        self.with_retries(|| async move {
            let mut file = tempfile::Builder::new()
                .prefix(".kpin-download-")
                .tempfile_in(temp_dir)
                .map_err(|e| {
                    Attempt::Fatal(
                        anyhow::Error::new(e)
                            .context(format!("creating a temp file in {}", temp_dir.display())),
                    )
                })?;
            let response = self.request(url, auth).await?;
            let mut hasher = Hasher::default();
            let size = self
                .stream_body(url, response, |chunk| {
                    hasher.update(chunk);
                    progress(chunk.len() as u64);
                    file.write_all(chunk).map_err(|e| {
                        Attempt::Fatal(
                            anyhow::Error::new(e)
                                .context(format!("writing {}", temp_dir.display())),
                        )
                    })
                })
                .await?;
            // No fsync: the cache re-hashes entries before use, so a torn write is caught.
            Ok(Download {
                file,
                sha256: hasher.finish_hex(),
                size,
            })
        })
        .await
    }

    /// Send one GET and turn non-success statuses into `FetchError`s.
    async fn request(&self, url: &Url, auth: Auth) -> Result<Response, Attempt> {
        self.check_url(url).map_err(Attempt::Fatal)?;
        let mut response = self.send(url, auth).await?;
        if response.status() == StatusCode::UNAUTHORIZED
            && matches!(auth, Auth::Registry | Auth::RegistryManifest)
        {
            self.authorize_registry(url, &response)
                .await
                .map_err(Attempt::Fatal)?;
            response = self.send(url, auth).await?;
        }
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers();
        let remaining = header_str(headers, "x-ratelimit-remaining");
        if matches!(
            status,
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        ) && remaining == Some("0")
        {
            let reset = header_str(headers, "x-ratelimit-reset").and_then(|r| r.parse().ok());
            return Err(Attempt::Fatal(
                FetchError::RateLimited {
                    url: url.to_string(),
                    reset,
                }
                .hinted(),
            ));
        }
        let error = FetchError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        };
        if error.retryable() {
            let wait = header_str(headers, RETRY_AFTER.as_str())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Err(Attempt::Retry(error, wait))
        } else {
            Err(Attempt::Fatal(error.hinted()))
        }
    }

    /// Send one GET with the headers `auth` asks for.
    async fn send(&self, url: &Url, auth: Auth) -> Result<Response, Attempt> {
        let mut req = self
            .http
            .get(url.clone())
            .header(USER_AGENT, concat!("kpin/", env!("CARGO_PKG_VERSION")));
        req = match auth {
            Auth::None | Auth::Registry => req,
            Auth::GithubApi => req.header(ACCEPT, "application/vnd.github+json"),
            Auth::GithubAsset => req.header(ACCEPT, "application/octet-stream"),
            Auth::RegistryManifest => req.header(ACCEPT, super::chart::oci::MANIFEST_ACCEPT),
        };
        match auth {
            Auth::GithubApi | Auth::GithubAsset => {
                if let Some(token) = &self.options.github_token {
                    req = req.header(AUTHORIZATION, format!("Bearer {token}"));
                }
            }
            Auth::Registry | Auth::RegistryManifest => {
                let stored = self
                    .registry_auth
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&host_of(url)).cloned());
                if let Some(value) = stored {
                    req = req.header(AUTHORIZATION, value);
                }
            }
            Auth::None => {}
        }
        req.send()
            .await
            .map_err(|e| Attempt::Retry(self.transport_error(url, &e), None))
    }

    /// Answer a registry's 401 challenge: stored credentials for a Basic one; for a Bearer one,
    /// a token from its realm (asked with the credentials when there are any). The value is
    /// kept for the host's later requests.
    async fn authorize_registry(&self, url: &Url, response: &Response) -> Result<()> {
        use super::chart::oci::{Challenge, credentials};
        let host = host_of(url);
        let header = header_str(response.headers(), "www-authenticate").unwrap_or_default();
        let creds = credentials(&host)?;
        let login_hint = format!(
            "log in with `helm registry login {host}` (kpin reads the credentials helm and docker store), or point KPIN_REGISTRY_CONFIG at a config.json with `auths`"
        );
        let value = match Challenge::parse(header) {
            Some(Challenge::Basic) => match &creds {
                Some(c) => c.basic_header(),
                None => {
                    return Err(anyhow::anyhow!(
                        "GET {url}: the registry {host} asks for credentials, and none are stored for it"
                    ))
                    .hint(login_hint);
                }
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut token_url = Url::parse(&realm)
                    .with_context(|| format!("GET {url}: bad token realm {realm}"))?;
                {
                    let mut q = token_url.query_pairs_mut();
                    if let Some(s) = &service {
                        q.append_pair("service", s);
                    }
                    if let Some(s) = &scope {
                        q.append_pair("scope", s);
                    }
                }
                self.check_url(&token_url)?;
                let mut req = self.http.get(token_url.clone());
                if let Some(c) = &creds {
                    req = req.header(AUTHORIZATION, c.basic_header());
                }
                let answer = req
                    .send()
                    .await
                    .with_context(|| format!("GET {token_url}: asking for a registry token"))?;
                if !answer.status().is_success() {
                    return Err(anyhow::anyhow!(
                        "GET {token_url}: HTTP {} when asking for a registry token",
                        answer.status().as_u16()
                    ))
                    .hint(login_hint);
                }
                let body = answer
                    .bytes()
                    .await
                    .with_context(|| format!("GET {token_url}: reading the token answer"))?;
                let token: Token = serde_json::from_slice(&body)
                    .with_context(|| format!("GET {token_url}: unexpected token answer"))?;
                let token = token
                    .token
                    .or(token.access_token)
                    .ok_or_else(|| anyhow::anyhow!("GET {token_url}: the answer holds no token"))?;
                format!("Bearer {token}")
            }
            None => {
                return Err(anyhow::anyhow!(
                    "GET {url}: HTTP 401 without a challenge kpin understands"
                ))
                .hint(login_hint);
            }
        };
        if let Ok(mut stored) = self.registry_auth.lock() {
            stored.insert(host, value);
        }
        Ok(())
    }

    /// Feed the body to `sink` chunk by chunk; enforce the size limit and `Content-Length`.
    async fn stream_body(
        &self,
        url: &Url,
        mut response: Response,
        mut sink: impl FnMut(&[u8]) -> Result<(), Attempt>,
    ) -> Result<u64, Attempt> {
        let limit = self.options.max_size;
        let expected = header_str(response.headers(), CONTENT_LENGTH.as_str())
            .and_then(|v| v.parse::<u64>().ok());
        if expected.is_some_and(|len| len > limit) {
            return Err(Attempt::Fatal(
                FetchError::TooLarge {
                    url: url.to_string(),
                    limit,
                }
                .hinted(),
            ));
        }
        let mut received = 0u64;
        loop {
            let chunk = match tokio::time::timeout(self.options.timeout, response.chunk()).await {
                Err(_) => return Err(Attempt::Retry(self.timeout_error(url), None)),
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    let error = match expected {
                        Some(expected) if received < expected => FetchError::Truncated {
                            url: url.to_string(),
                            received,
                            expected,
                        },
                        _ => self.transport_error(url, &e),
                    };
                    return Err(Attempt::Retry(error, None));
                }
            };
            received += chunk.len() as u64;
            if received > limit {
                return Err(Attempt::Fatal(
                    FetchError::TooLarge {
                        url: url.to_string(),
                        limit,
                    }
                    .hinted(),
                ));
            }
            sink(&chunk)?;
        }
        match expected {
            Some(expected) if received != expected => Err(Attempt::Retry(
                FetchError::Truncated {
                    url: url.to_string(),
                    received,
                    expected,
                },
                None,
            )),
            _ => Ok(received),
        }
    }

    /// Run `attempt` until it succeeds, fails fatally, or the attempts are used up, sleeping
    /// with exponential backoff (or the server's `Retry-After`) in between.
    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let attempts = self.options.attempts.max(1);
        let mut delay = self.options.backoff;
        for n in 1..=attempts {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(Attempt::Fatal(error)) => return Err(error),
                Err(Attempt::Retry(error, _)) if n == attempts && attempts > 1 => {
                    let hint = error.hint();
                    let error = anyhow::Error::new(GaveUp {
                        attempts,
                        source: error,
                    });
                    return Err(match hint {
                        Some(h) => error.hint(h),
                        None => error,
                    });
                }
                Err(Attempt::Retry(error, _)) if n == attempts => return Err(error.hinted()),
                Err(Attempt::Retry(_, retry_after)) => {
                    let wait = match retry_after {
                        Some(wait) if wait <= MAX_RETRY_AFTER => wait,
                        _ => delay,
                    };
                    tokio::time::sleep(wait).await;
                    delay = delay.saturating_mul(2);
                }
            }
        }
        unreachable!("the loop returns on the last attempt")
    }

    fn transport_error(&self, url: &Url, error: &reqwest::Error) -> FetchError {
        if error.is_timeout() {
            return self.timeout_error(url);
        }
        // reqwest's own message is terse ("error sending request"); the useful part is below it.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = cause.source();
        }
        message = message.replace(&format!(" for url ({url})"), "");
        FetchError::Transport {
            url: url.to_string(),
            message,
        }
    }

    fn timeout_error(&self, url: &Url) -> FetchError {
        FetchError::Timeout {
            url: url.to_string(),
            secs: self.options.timeout.as_secs(),
        }
    }
}

/// The outcome of one failed attempt.
enum Attempt {
    /// Try again (after `Retry-After` when the server gave one).
    Retry(FetchError, Option<Duration>),
    /// Give up now.
    Fatal(anyhow::Error),
}

impl From<std::io::Error> for Attempt {
    fn from(e: std::io::Error) -> Attempt {
        Attempt::Fatal(e.into())
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// https and file always; http only to loopback hosts unless explicitly allowed.
fn scheme_allowed(url: &Url, allow_http: bool) -> bool {
    match url.scheme() {
        "https" | "file" => true,
        "http" => allow_http || is_loopback(url),
        _ => false,
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A registry token service's answer.
#[derive(serde::Deserialize)]
struct Token {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// `host[:port]` of a URL: what registry credentials are stored under.
fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(scheme_allowed(&u("http://127.0.0.1:8080/a"), false));
        assert!(scheme_allowed(&u("http://localhost/a"), false));
        assert!(scheme_allowed(&u("http://[::1]/a"), false));
        assert!(!scheme_allowed(&u("http://example.com/a"), false));
        assert!(scheme_allowed(&u("http://example.com/a"), true));
        assert!(scheme_allowed(&u("https://example.com/a"), false));
        assert!(!scheme_allowed(&u("ftp://example.com/a"), true));
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let status = |s| FetchError::Status {
            url: "u".into(),
            status: s,
        };
        assert!(status(500).retryable());
        assert!(status(429).retryable());
        assert!(!status(404).retryable());
        assert!(
            !FetchError::TooLarge {
                url: "u".into(),
                limit: 1
            }
            .retryable()
        );
    }
}
