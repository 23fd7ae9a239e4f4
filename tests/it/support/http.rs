//! A loopback HTTP(S) server for tests and benchmarks: serves files, mimics the GitHub releases
//! API, counts requests and injects faults (status codes, truncated bodies, delays, rate limits).
//!
//! Deliberately a tiny hand-written HTTP/1.1 responder: faults such as a body shorter than its
//! `Content-Length` are impossible to produce through a well-behaved server framework.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Something to do instead of (or before) serving a route normally.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a short text body.
    Status(u16),
    /// Announce the full `Content-Length`, send half the body, close the connection.
    Truncate,
    /// Wait this long before answering.
    Delay(Duration),
    /// 403 with `x-ratelimit-remaining: 0`, like GitHub's API.
    RateLimit,
    /// 429 with `Retry-After: <secs>`.
    TooManyRequests(u64),
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Default)]
struct Route {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    /// Faults used once each, in order, before the route serves normally.
    once: VecDeque<Fault>,
    /// A fault applied to every request.
    always: Option<Fault>,
    /// Serve only to `Accept: application/octet-stream` (GitHub asset API), else 415.
    octet_stream_only: bool,
}

#[derive(Default)]
struct State {
    routes: BTreeMap<String, Route>,
    log: Vec<Request>,
    latency: Duration,
}

pub struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// PEM of the CA that signed the HTTPS certificate (HTTPS servers only).
    ca: Option<(tempfile::TempDir, PathBuf)>,
    next_asset_id: Mutex<u64>,
    /// Releases published with `github_release`, by repository, newest first.
    releases: Mutex<std::collections::BTreeMap<String, Vec<serde_json::Value>>>,
}

impl Server {
    /// A plain HTTP server on 127.0.0.1 (allowed without `--allow-http`: loopback).
    pub fn http() -> Server {
        Server::start(None)
    }

    /// An HTTPS server with a certificate from a fresh test CA; pass `ca_path()` to `--ca-cert`.
    pub fn https() -> Server {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kpin test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("leaf params");
        let leaf = leaf_params
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");

        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("TLS config");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).expect("writing CA");
        let mut server = Server::start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))));
        server.ca = Some((dir, ca_path));
        server
    }

    fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = shared.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    serve(stream, state).await;
                                }
                            }
                            None => serve(stream, state).await,
                        }
                    });
                }
            });
        });
        let addr = rx.recv().expect("server address");
        Server {
            addr,
            state,
            ca: None,
            next_asset_id: Mutex::new(1),
            releases: Mutex::default(),
        }
    }

    /// `scheme://127.0.0.1:port`.
    pub fn base(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The CA certificate file of an HTTPS server.
    pub fn ca_path(&self) -> PathBuf {
        self.ca
            .as_ref()
            .map(|(_, p)| p.clone())
            .expect("an HTTPS server")
    }

    /// Serve `body` at `path`.
    pub fn file(&self, path: &str, body: impl Into<Vec<u8>>) -> &Self {
        self.route(path, |r| r.body = body.into());
        self
    }

    /// Apply `fault` to the next request of `path` only (faults queue up in order).
    pub fn fail_next(&self, path: &str, fault: Fault) -> &Self {
        self.route(path, |r| r.once.push_back(fault));
        self
    }

    /// Apply `fault` to every request of `path`.
    pub fn fail_always(&self, path: &str, fault: Fault) -> &Self {
        self.route(path, |r| r.always = Some(fault));
        self
    }

    /// Added delay before every response (for benchmarks).
    #[allow(dead_code, reason = "only benches/sync.rs adds latency")]
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// A release `tag` of `repo` with these assets, under the API base `api_url()`.
    ///
    /// The release is at `/api/repos/{repo}/releases/tags/{tag}`; assets download from the
    /// asset API (`Accept: application/octet-stream`) and from a browser URL.
    pub fn github_release(&self, repo: &str, tag: &str, assets: &[(&str, &[u8])]) -> &Self {
        let mut listed = Vec::new();
        for (name, body) in assets {
            let id = {
                let mut next = self.next_asset_id.lock().unwrap();
                *next += 1;
                *next
            };
            let api_path = format!("/api/repos/{repo}/releases/assets/{id}");
            let browser_path = format!("/gh/{repo}/releases/download/{tag}/{name}");
            self.route(&api_path, |r| {
                r.body = body.to_vec();
                r.octet_stream_only = true;
            });
            self.file(&browser_path, body.to_vec());
            listed.push(serde_json::json!({
                "name": name,
                "url": self.url(&api_path),
                "browser_download_url": self.url(&browser_path),
                "size": body.len(),
            }));
        }
        let release = serde_json::json!({ "tag_name": tag, "name": tag, "draft": false, "prerelease": false, "assets": listed });
        self.file(
            &format!("/api/repos/{repo}/releases/tags/{tag}"),
            release.to_string(),
        );
        self.releases
            .lock()
            .unwrap()
            .entry(repo.to_owned())
            .or_default()
            .insert(0, release);
        self
    }

    /// `GET /api/repos/{repo}/releases?per_page=100` (one page) listing every release
    /// `github_release` published for `repo`, newest (last published) first, with assets.
    pub fn github_release_listing(&self, repo: &str) -> &Self {
        let releases = self
            .releases
            .lock()
            .unwrap()
            .get(repo)
            .cloned()
            .unwrap_or_default();
        self.file(
            &format!("/api/repos/{repo}/releases?per_page=100"),
            serde_json::Value::Array(releases).to_string(),
        )
    }

    /// `GET /api/repos/{repo}/releases?per_page=100`, split into pages of `per_page` linked with
    /// `Link: <...>; rel="next"` like GitHub does.
    pub fn github_release_list(&self, repo: &str, tags: &[&str], per_page: usize) -> &Self {
        let pages: Vec<&[&str]> = tags.chunks(per_page.max(1)).collect();
        let page_path = |n: usize| {
            if n == 1 {
                format!("/api/repos/{repo}/releases?per_page=100")
            } else {
                format!("/api/repos/{repo}/releases?per_page=100&page={n}")
            }
        };
        for (i, page) in pages.iter().enumerate() {
            let n = i + 1;
            let body: Vec<_> = page
                .iter()
                .map(|t| serde_json::json!({ "tag_name": t, "prerelease": t.contains("-rc"), "draft": false, "assets": [] }))
                .collect();
            let next = (n < pages.len()).then(|| page_path(n + 1));
            let link = next.map(|p| {
                format!(
                    "<{}>; rel=\"next\", <{}>; rel=\"last\"",
                    self.url(&p),
                    self.url(&page_path(pages.len()))
                )
            });
            self.route(&page_path(n), |r| {
                r.body = serde_json::Value::Array(body.clone())
                    .to_string()
                    .into_bytes();
                if let Some(link) = &link {
                    r.headers.push(("link".to_owned(), link.clone()));
                }
            });
        }
        self
    }

    /// `GET /api/repos/{repo}/tags?per_page=100` (one page), for projects that tag without
    /// publishing releases.
    pub fn github_tag_list(&self, repo: &str, tags: &[&str]) -> &Self {
        let body: Vec<_> = tags
            .iter()
            .map(|t| serde_json::json!({ "name": t }))
            .collect();
        self.file(
            &format!("/api/repos/{repo}/tags?per_page=100"),
            serde_json::Value::Array(body).to_string(),
        )
    }

    /// The GitHub API base URL to put in `github.api_url`.
    pub fn api_url(&self) -> String {
        self.url("/api")
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().log.len()
    }

    /// How many requests asked for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    fn route(&self, path: &str, edit: impl FnOnce(&mut Route)) {
        let mut state = self.state.lock().unwrap();
        edit(state.routes.entry(path.to_owned()).or_default());
    }
}

/// Answer one request on `stream`, then close it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: Arc<Mutex<State>>) {
    let Some(request) = read_head(&mut stream).await else {
        return;
    };
    let (fault, route, latency) = {
        let mut s = state.lock().unwrap();
        s.log.push(request.clone());
        let latency = s.latency;
        match s.routes.get_mut(&request.path) {
            Some(r) => {
                let fault = r.once.pop_front().or_else(|| r.always.clone());
                (
                    fault,
                    Some((r.body.clone(), r.headers.clone(), r.octet_stream_only)),
                    latency,
                )
            }
            None => (None, None, latency),
        }
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some((body, headers, octet_only)) = route else {
        respond(&mut stream, 404, &[], b"not found\n").await;
        return;
    };
    match fault {
        Some(Fault::Status(code)) => {
            respond(
                &mut stream,
                code,
                &[],
                format!("status {code}\n").as_bytes(),
            )
            .await;
        }
        Some(Fault::RateLimit) => {
            let headers = [
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000000"),
            ];
            respond(
                &mut stream,
                403,
                &headers,
                b"{\"message\":\"API rate limit exceeded\"}",
            )
            .await;
        }
        Some(Fault::TooManyRequests(secs)) => {
            respond(
                &mut stream,
                429,
                &[("retry-after", &secs.to_string())],
                b"slow down\n",
            )
            .await;
        }
        Some(Fault::Truncate) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body[..body.len() / 2]).await;
            let _ = stream.flush().await;
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            send_route(&mut stream, &request, &body, &headers, octet_only).await;
        }
        None => send_route(&mut stream, &request, &body, &headers, octet_only).await,
    }
}

async fn send_route<S: AsyncWrite + Unpin>(
    stream: &mut S,
    request: &Request,
    body: &[u8],
    headers: &[(String, String)],
    octet_only: bool,
) {
    if octet_only
        && request.headers.get("accept").map(String::as_str) != Some("application/octet-stream")
    {
        respond(
            stream,
            415,
            &[],
            b"asset API needs Accept: application/octet-stream\n",
        )
        .await;
        return;
    }
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    respond(stream, 200, &headers, body).await;
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut head = format!(
        "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// Read the request line and headers (requests here never have bodies).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Request { path, headers })
}
