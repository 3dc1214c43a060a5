//! HTTP(S) for the network datasources, through `reqwest` (hyper + rustls with the `ring`
//! provider, which runs on every x86-64 and arm64 CPU): GET with redirects and PUT (the EC2
//! session token), a time limit per request, a size limit per body. URLs are parsed and
//! redirects resolved by the `url` crate (RFC 3986). Custom headers (the IMDSv2 token) are
//! sent only to the origin they were meant for: a redirect to another scheme, host or port
//! drops them. https trusts [`TrustAnchors`]. Errors say whether retrying can help.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A response body larger than this is refused.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_REDIRECTS: usize = 5;
const USER_AGENT: &str = concat!("berth-cloud-init/", env!("CARGO_PKG_VERSION"));

/// Why a request did not produce a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The network or the server may not be ready yet: retry.
    Transient(String),
    /// Retrying will not help (bad URL, certificate, too large).
    Permanent(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Transient(m) | FetchError::Permanent(m) => f.write_str(m),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: String,
}

/// An `http://` or `https://` URL with a host: what the datasources may fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target(url::Url);

impl Target {
    pub fn parse(text: &str) -> Result<Target, FetchError> {
        let bad = |why: &str| {
            let shown = berth_config::shown_url(text);
            FetchError::Permanent(format!("{shown:?} is not a usable URL: {why}"))
        };
        let url = url::Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
        Target::from_url(url).map_err(|why| bad(&why))
    }

    fn from_url(url: url::Url) -> Result<Target, String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err("only http:// and https:// are supported".to_string());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("it has no host".to_string());
        }
        Ok(Target(url))
    }

    /// The URL itself (messages show [`Target`]'s `Display`, which hides secrets).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// Whether the host is this machine (no network needed to reach it).
    pub fn is_loopback(&self) -> bool {
        match self.0.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        }
    }

    /// The target a `Location` header points to, resolved against this one (RFC 3986:
    /// `//host/path` is another host, `../` climbs, `?q` keeps the path).
    pub fn redirect(&self, location: &str) -> Result<Target, FetchError> {
        let refused = |why: String| {
            FetchError::Permanent(format!(
                "{self} redirects to {}: {why}",
                berth_config::shown_url(location)
            ))
        };
        let next = self.0.join(location).map_err(|e| refused(e.to_string()))?;
        let next = Target::from_url(next).map_err(refused)?;
        if self.is_https() && !next.is_https() {
            return Err(refused("from https to http; refused".to_string()));
        }
        Ok(next)
    }

    /// Whether `other` is the same origin (scheme, host, port): where credentials may go.
    fn same_origin(&self, other: &Target) -> bool {
        self.0.origin() == other.0.origin()
    }
}

/// As messages and logs show it: without a user, password or query, which may be secrets
/// ([`berth_config::shown_url`]). Requests use the URL itself.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&berth_config::shown_url(self.0.as_str()))
    }
}

/// The certificates https trusts: the system's bundle (Debian's `ca-certificates`) plus the
/// PEM files (`*.pem`, `*.crt`) in a few directories where a user or vendor adds their own
/// certificate authorities.
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    pub bundle: PathBuf,
    pub extra_dirs: Vec<PathBuf>,
}

/// Where user-supplied certificate authorities live, on the state partition.
pub const USER_CA_DIR: &str = "var/lib/berth/ca-certificates";
/// The OEM partition's certificate authorities (it is mounted on `/run/berth/oem`).
pub const OEM_CA_DIR: &str = "run/berth/oem/ca-certificates";

impl TrustAnchors {
    /// The machine under `root`: `/etc/ssl/certs/ca-certificates.crt`,
    /// `/var/lib/berth/ca-certificates/` and the OEM partition's `ca-certificates/`.
    pub fn under(root: &Path) -> Self {
        TrustAnchors {
            bundle: root.join("etc/ssl/certs/ca-certificates.crt"),
            extra_dirs: vec![root.join(USER_CA_DIR), root.join(OEM_CA_DIR)],
        }
    }

    /// Only the certificates in `bundle`.
    #[cfg(test)]
    pub fn bundle(bundle: impl Into<PathBuf>) -> Self {
        TrustAnchors {
            bundle: bundle.into(),
            extra_dirs: Vec::new(),
        }
    }

    /// Read them all. A missing bundle or directory is fine as long as something is
    /// trusted; a file in a directory that holds no certificate is an error naming it.
    fn load(&self) -> Result<rustls::RootCertStore, String> {
        let mut roots = rustls::RootCertStore::empty();
        let mut sources = Vec::new();
        match read_certificates(&self.bundle) {
            Ok(certs) => {
                roots.add_parsable_certificates(certs);
                sources.push(self.bundle.clone());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "cannot read the trusted certificates {}: {e}",
                    self.bundle.display()
                ));
            }
        }
        for dir in &self.extra_dirs {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
                Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
            };
            files.retain(|f| f.extension().is_some_and(|x| x == "pem" || x == "crt"));
            files.sort();
            for file in files {
                let certs = read_certificates(&file).map_err(|e| format!("{}: {e}", file.display()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "{}: no usable PEM certificate (BEGIN CERTIFICATE) in it; fix or remove it",
                        file.display()
                    ));
                }
                sources.push(file);
            }
        }
        if roots.is_empty() {
            return Err(format!(
                "no trusted certificate: {} is missing and no *.pem in {}; https cannot be verified",
                self.bundle.display(),
                self.extra_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        tracing::debug!("https trusts {} certificates from {sources:?}", roots.len());
        Ok(roots)
    }
}

fn read_certificates(path: &Path) -> std::io::Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let bytes = std::fs::read(path)?;
    Ok(CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect())
}

/// The HTTP clients: one that trusts [`TrustAnchors`], and one for plain http that works
/// even when nothing is trusted.
struct Clients {
    plain: reqwest::Client,
    https: Result<reqwest::Client, String>,
}

/// The proxies fetches go through (`berth.network.http_proxy`, `https_proxy`, `no_proxy`).
/// Link-local addresses (the EC2 metadata endpoint) are always reached directly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxies {
    pub http: Option<String>,
    pub https: Option<String>,
    /// Comma-separated hosts, domains (`.example.com`), addresses and CIDRs.
    pub no_proxy: Option<String>,
}

/// Always direct: a proxy cannot reach this machine's link-local metadata services.
const ALWAYS_DIRECT: &str = "169.254.0.0/16,fe80::/10";

impl Proxies {
    pub fn from_config(network: &berth_config::schema::network::NetworkConfig) -> Self {
        Proxies {
            http: network.http_proxy.as_ref().map(|u| u.as_str().to_string()),
            https: network.https_proxy.as_ref().map(|u| u.as_str().to_string()),
            no_proxy: network.no_proxy.clone(),
        }
    }

    fn apply(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        let exempt = match self.no_proxy.as_deref().map(str::trim) {
            Some(list) if !list.is_empty() => format!("{list},{ALWAYS_DIRECT}"),
            _ => ALWAYS_DIRECT.to_string(),
        };
        let mut builder = builder.no_proxy();
        for (url, https, key) in [
            (&self.http, false, "http_proxy"),
            (&self.https, true, "https_proxy"),
        ] {
            if let Some(url) = url {
                let proxy = if https {
                    reqwest::Proxy::https(url.as_str())
                } else {
                    reqwest::Proxy::http(url.as_str())
                };
                // The URL may hold a password: the message names the key, not the value.
                let proxy = proxy
                    .map_err(|_| format!("berth.network.{key} is not a usable proxy URL"))?
                    .no_proxy(reqwest::NoProxy::from_string(&exempt));
                builder = builder.proxy(proxy);
            }
        }
        Ok(builder)
    }
}

/// The client. Cheap to share; the clients are built on first use.
pub struct HttpClient {
    trust: TrustAnchors,
    proxies: Proxies,
    clients: OnceLock<Result<Clients, String>>,
}

impl HttpClient {
    pub fn new(trust: TrustAnchors) -> Self {
        HttpClient {
            trust,
            proxies: Proxies::default(),
            clients: OnceLock::new(),
        }
    }

    /// Fetch through these proxies (none by default; the process environment is ignored).
    pub fn with_proxies(mut self, proxies: Proxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// GET `url`, following up to five redirects. Any status is a response. `headers` go
    /// only to `url`'s origin: a redirect elsewhere drops them.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response, FetchError> {
        let first = Target::parse(url)?;
        let mut target = first.clone();
        let mut headers = header_map(headers)?;
        for _ in 0..=MAX_REDIRECTS {
            let (response, location) = self
                .request(reqwest::Method::GET, &target, &headers, timeout)
                .await?;
            match (response.status, location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    let next = target.redirect(&location)?;
                    if !headers.is_empty() && !next.same_origin(&target) {
                        tracing::debug!("{target} redirects to {next}: its headers are not sent there");
                        headers.clear();
                    }
                    target = next;
                }
                _ => return Ok(response),
            }
        }
        Err(FetchError::Permanent(format!(
            "{first}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// GET `url` into the file `dest` (created or truncated), following up to five redirects:
    /// for answers too large for memory (upgrade bundles, images). Only 200 is a success; an
    /// answer over `max` bytes is refused. `idle` bounds each wait for the server (the answer's
    /// headers, every chunk), not the whole transfer. `progress(done, total)` runs after each
    /// chunk. On an error `dest` is removed.
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        max: u64,
        idle: Duration,
        progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
    ) -> Result<u64, FetchError> {
        let result = self.download_inner(url, dest, max, idle, progress).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    async fn download_inner(
        &self,
        url: &str,
        dest: &Path,
        max: u64,
        idle: Duration,
        progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
    ) -> Result<u64, FetchError> {
        use tokio::io::AsyncWriteExt as _;
        let first = Target::parse(url)?;
        let mut target = first.clone();
        for _ in 0..=MAX_REDIRECTS {
            let shown = target.to_string();
            let stalled = || FetchError::Transient(format!("{shown}: no answer within {} s", idle.as_secs()));
            let with_url = |e: FetchError| match e {
                FetchError::Transient(m) => FetchError::Transient(format!("{shown}: {m}")),
                FetchError::Permanent(m) => FetchError::Permanent(format!("{shown}: {m}")),
            };
            let client = self.client_for(&target).map_err(with_url)?;
            let mut response = tokio::time::timeout(idle, client.get(target.0.clone()).send())
                .await
                .map_err(|_| stalled())?
                .map_err(|e| with_url(classify(e)))?;
            let status = response.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        FetchError::Permanent(format!("{shown}: HTTP {status} without a Location"))
                    })?;
                target = target.redirect(location)?;
                continue;
            }
            if status != 200 {
                return Err(FetchError::Permanent(format!("{shown}: HTTP {status}")));
            }
            let total = response.content_length();
            let too_large =
                || FetchError::Permanent(format!("{shown}: the answer is larger than {} MiB", max >> 20));
            if total.is_some_and(|n| n > max) {
                return Err(too_large());
            }
            let local = |e: std::io::Error| FetchError::Permanent(format!("{}: {e}", dest.display()));
            let mut file = tokio::fs::File::create(dest).await.map_err(local)?;
            let mut done = 0u64;
            loop {
                let chunk = tokio::time::timeout(idle, response.chunk())
                    .await
                    .map_err(|_| stalled())?
                    .map_err(|e| with_url(classify(e)))?;
                let Some(chunk) = chunk else { break };
                done += chunk.len() as u64;
                if done > max {
                    return Err(too_large());
                }
                file.write_all(&chunk).await.map_err(local)?;
                progress(done, total);
            }
            file.sync_all().await.map_err(local)?;
            if total.is_some_and(|n| n != done) {
                return Err(FetchError::Transient(format!(
                    "{shown}: the answer ended after {done} of {} bytes",
                    total.unwrap_or_default()
                )));
            }
            return Ok(done);
        }
        Err(FetchError::Permanent(format!(
            "{first}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// PUT with an empty body (no redirects).
    pub async fn put(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response, FetchError> {
        let target = Target::parse(url)?;
        let headers = header_map(headers)?;
        Ok(self
            .request(reqwest::Method::PUT, &target, &headers, timeout)
            .await?
            .0)
    }

    async fn request(
        &self,
        method: reqwest::Method,
        target: &Target,
        headers: &HeaderMap,
        timeout: Duration,
    ) -> Result<(Response, Option<String>), FetchError> {
        let url = target.to_string();
        let with_url = |e: FetchError| match e {
            FetchError::Transient(m) => FetchError::Transient(format!("{url}: {m}")),
            FetchError::Permanent(m) => FetchError::Permanent(format!("{url}: {m}")),
        };
        let client = self.client_for(target).map_err(with_url)?;
        let exchange = async {
            let response = client
                .request(method, target.0.clone())
                .headers(headers.clone())
                .send()
                .await
                .map_err(classify)?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = read_limited(response).await?;
            Ok((status, body, location))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((status, body, location))) => Ok((Response { status, body, url }, location)),
            Ok(Err(e)) => Err(with_url(e)),
            Err(_) => Err(FetchError::Transient(format!(
                "{url}: no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    fn client_for(&self, target: &Target) -> Result<&reqwest::Client, FetchError> {
        let clients = self
            .clients
            .get_or_init(|| build_clients(&self.trust, &self.proxies))
            .as_ref()
            .map_err(|e| FetchError::Permanent(e.clone()))?;
        if target.is_https() {
            clients
                .https
                .as_ref()
                .map_err(|e| FetchError::Permanent(e.clone()))
        } else {
            Ok(&clients.plain)
        }
    }
}

fn header_map(headers: &[(&str, &str)]) -> Result<HeaderMap, FetchError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = |e: String| FetchError::Permanent(format!("bad request header {name}: {e}"));
        let name = HeaderName::try_from(*name).map_err(|e| bad(e.to_string()))?;
        let mut value = HeaderValue::try_from(*value).map_err(|e| bad(e.to_string()))?;
        // Kept out of debug output.
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn build_clients(trust: &TrustAnchors, proxies: &Proxies) -> Result<Clients, String> {
    let client = |tls: rustls::ClientConfig| {
        let builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(USER_AGENT)
            // Redirects are followed by `HttpClient::get`, which decides about headers.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0);
        proxies
            .apply(builder)?
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))
    };
    let plain = client(tls_config(rustls::RootCertStore::empty())?)?;
    let https = trust.load().and_then(tls_config).and_then(client);
    Ok(Clients { plain, https })
}

/// The error and its causes, `: `-separated (reqwest's own message alone says little).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = e.source();
    }
    message
}

/// A failed exchange: certificate and protocol problems are permanent, the rest (refused,
/// reset, unreachable) may be a network still coming up.
fn classify(error: reqwest::Error) -> FetchError {
    // The URL is already at the front of every message.
    let error = error.without_url();
    let message = error_chain(&error);
    if is_tls_failure(&error) {
        return FetchError::Permanent(format!("TLS: {message}"));
    }
    if error.is_builder() {
        FetchError::Permanent(message)
    } else if error.is_connect() {
        FetchError::Transient(format!("cannot connect: {message}"))
    } else {
        FetchError::Transient(message)
    }
}

/// Whether a TLS problem (a certificate, a protocol error) is in the error's chain. An
/// `io::Error` hides the error it wraps from `source()`, so it is opened explicitly.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    if error.is::<rustls::Error>() {
        return true;
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && (io.kind() == std::io::ErrorKind::InvalidData
            || io.get_ref().is_some_and(|inner| is_tls_failure(inner)))
    {
        return true;
    }
    error.source().is_some_and(is_tls_failure)
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    let too_large = || {
        FetchError::Permanent(format!(
            "the answer is larger than {} MiB",
            MAX_BODY / 1024 / 1024
        ))
    };
    if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::Transient(format!("reading the answer: {}", error_chain(&e))))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
