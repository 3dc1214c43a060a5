//! A small HTTP/1.1 client for the network datasources: GET with redirects and PUT (the
//! EC2 session token), a time limit per request, a size limit per body, and https through
//! rustls with a pure-Rust crypto provider and the system's trusted certificates
//! (`/etc/ssl/certs/ca-certificates.crt`). Errors say whether retrying can help.

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

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

/// Where a URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    /// Without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, FetchError> {
        let bad = |why: &str| FetchError::Permanent(format!("{url:?} is not a usable URL: {why}"));
        let uri: Uri = url.trim().parse().map_err(|_| bad("it cannot be parsed"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("only http:// and https:// are supported")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_string());
        Ok(Target {
            https,
            host,
            port,
            path,
        })
    }

    /// Whether the host is this machine (no network needed to reach it).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.https { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.https { "https" } else { "http" },
            self.host_header(),
            self.path
        )
    }

    /// The target a `Location` header points to, from this one.
    fn redirect(&self, location: &str) -> Result<Target, FetchError> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Target::parse(location);
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let dir = self
                .path
                .split('?')
                .next()
                .and_then(|p| p.rsplit_once('/'))
                .map(|(d, _)| d)
                .unwrap_or("");
            format!("{dir}/{location}")
        };
        Ok(Target { path, ..self.clone() })
    }
}

/// The client. Cheap to share; the TLS configuration is built on first https use.
pub struct HttpClient {
    ca_file: PathBuf,
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl HttpClient {
    /// `ca_file`: the PEM bundle of trusted certificates for https.
    pub fn new(ca_file: impl Into<PathBuf>) -> Self {
        HttpClient {
            ca_file: ca_file.into(),
            tls: OnceLock::new(),
        }
    }

    /// GET `url`, following up to five redirects. Any status is a response.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response, FetchError> {
        let mut target = Target::parse(url)?;
        for _ in 0..=MAX_REDIRECTS {
            let (response, location) = self.request(Method::GET, &target, headers, timeout).await?;
            match (response.status, location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    let next = target.redirect(&location)?;
                    if target.https && !next.https {
                        return Err(FetchError::Permanent(format!(
                            "{} redirects from https to http ({}); refused",
                            target.url(),
                            next.url()
                        )));
                    }
                    target = next;
                }
                _ => return Ok(response),
            }
        }
        Err(FetchError::Permanent(format!(
            "{url}: more than {MAX_REDIRECTS} redirects"
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
        Ok(self.request(Method::PUT, &target, headers, timeout).await?.0)
    }

    async fn request(
        &self,
        method: Method,
        target: &Target,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(Response, Option<String>), FetchError> {
        let url = target.url();
        match tokio::time::timeout(timeout, self.exchange(method, target, headers)).await {
            Ok(Ok((status, body, location))) => Ok((Response { status, body, url }, location)),
            Ok(Err(FetchError::Transient(m))) => Err(FetchError::Transient(format!("{url}: {m}"))),
            Ok(Err(FetchError::Permanent(m))) => Err(FetchError::Permanent(format!("{url}: {m}"))),
            Err(_) => Err(FetchError::Transient(format!(
                "{url}: no answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        target: &Target,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>, Option<String>), FetchError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(target.path.as_str())
            .header(hyper::header::HOST, target.host_header())
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header(hyper::header::CONNECTION, "close");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Permanent(format!("cannot build the request: {e}")))?;
        let tcp = connect(&target.host, target.port).await?;
        if target.https {
            let config = self.tls_config().map_err(FetchError::Permanent)?;
            let name = rustls_pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| FetchError::Permanent(format!("bad server name: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    let message = format!("TLS handshake failed: {e}");
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        FetchError::Permanent(message)
                    } else {
                        FetchError::Transient(message)
                    }
                })?;
            send(tls, request).await
        } else {
            send(tcp, request).await
        }
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.tls.get_or_init(|| tls_config(&self.ca_file)).clone()
    }
}

async fn connect(host: &str, port: u16) -> Result<tokio::net::TcpStream, FetchError> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| FetchError::Transient(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(FetchError::Transient(last))
}

async fn send<IO>(
    io: IO,
    request: Request<Empty<Bytes>>,
) -> Result<(u16, Vec<u8>, Option<String>), FetchError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let transient = |e: hyper::Error| FetchError::Transient(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(transient)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.map_err(transient)?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                FetchError::Permanent(format!(
                    "the answer is larger than {} MiB",
                    MAX_BODY / 1024 / 1024
                ))
            } else {
                FetchError::Transient(format!("reading the answer: {e}"))
            }
        })?
        .to_bytes();
    Ok((status, body.to_vec(), location))
}

/// Whether this CPU can run the pure-Rust crypto provider (graviola asserts on these).
fn cpu_supports_tls() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("adx")
            && std::arch::is_x86_feature_detected!("avx")
            && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("sha2")
            && std::arch::is_aarch64_feature_detected!("pmull")
            && std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn tls_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    if !cpu_supports_tls() {
        return Err(
            "https is not available on this CPU (Berth's TLS needs AES-NI, PCLMULQDQ, AVX2, \
             BMI1/2 and ADX); use an http:// URL"
                .to_string(),
        );
    }
    let certs = CertificateDer::pem_file_iter(ca_file).map_err(|e| {
        format!(
            "cannot read the trusted certificates {}: {e} (is ca-certificates installed?)",
            ca_file.display()
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs.filter_map(Result::ok));
    if added == 0 {
        return Err(format!(
            "no trusted certificate in {}; https cannot be verified",
            ca_file.display()
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls_graviola::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testserver::{Reply, TestServer};

    #[test]
    fn targets() {
        let t = Target::parse("http://169.254.169.254/latest/user-data").unwrap();
        assert_eq!(
            (t.https, t.host.as_str(), t.port, t.path.as_str()),
            (false, "169.254.169.254", 80, "/latest/user-data")
        );
        let t = Target::parse("https://[::1]:8443/a?b=c").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8443, "/a?b=c")
        );
        assert!(t.is_loopback());
        assert_eq!(t.url(), "https://[::1]:8443/a?b=c");
        assert_eq!(Target::parse("http://h").unwrap().path, "/");
        for bad in ["ftp://x/y", "http://", "not a url", "/relative"] {
            assert!(
                matches!(Target::parse(bad), Err(FetchError::Permanent(_))),
                "{bad}"
            );
        }
        let t = Target::parse("http://h:81/dir/file?x").unwrap();
        assert_eq!(t.redirect("/abs").unwrap().path, "/abs");
        assert_eq!(t.redirect("rel").unwrap().path, "/dir/rel");
        assert_eq!(t.redirect("https://o/p").unwrap().host, "o");
    }

    #[tokio::test]
    async fn get_follows_redirects_and_reports_status() {
        let server = TestServer::start(|req| match req.path.as_str() {
            "/start" => Reply::redirect("/next"),
            "/next" => Reply::redirect("final"),
            "/final" => Reply::ok(b"#cloud-config\n".to_vec()),
            "/loop" => Reply::redirect("/loop"),
            _ => Reply::status(404),
        })
        .await;
        let client = HttpClient::new("/nonexistent");
        let t = Duration::from_secs(5);
        let r = client.get(&server.url("/start"), &[], t).await.unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, b"#cloud-config\n".as_slice())
        );
        assert!(r.url.ends_with("/final"));
        let r = client.get(&server.url("/missing"), &[], t).await.unwrap();
        assert_eq!(r.status, 404);
        assert!(matches!(
            client.get(&server.url("/loop"), &[], t).await,
            Err(FetchError::Permanent(_))
        ));
        let requests = server.requests();
        assert!(
            requests[0]
                .headers
                .iter()
                .any(|(k, v)| k == "user-agent" && v.starts_with("berth-cloud-init"))
        );
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        // A port nothing listens on: bind, note the port, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = HttpClient::new("/nonexistent");
        let err = client
            .get(&format!("http://127.0.0.1:{port}/x"), &[], Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Transient(_)), "{err:?}");
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let server = TestServer::start(|_| Reply::ok(b"late".to_vec()).delayed(Duration::from_secs(3))).await;
        let client = HttpClient::new("/nonexistent");
        let started = std::time::Instant::now();
        let err = client
            .get(&server.url("/"), &[], Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::Transient(ref m) if m.contains("no answer")),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    /// A CA and a certificate for `localhost` made by the openssl tool (`None` when it is
    /// not installed): (ca.pem, cert.pem, key.pem).
    fn openssl_certificates(dir: &std::path::Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
        let run = |args: &[&str]| {
            std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .map(|o| assert!(o.status.success(), "openssl {args:?}: {o:?}"))
                .is_ok()
        };
        let ok = run(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ]) && run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Berth test CA",
            "-days",
            "2",
            "-out",
            "ca.pem",
        ]) && run(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ec.key",
        ]) && run(&["pkcs8", "-topk8", "-nocrypt", "-in", "ec.key", "-out", "key.pem"])
            && run(&[
                "req",
                "-new",
                "-key",
                "key.pem",
                "-subj",
                "/CN=localhost",
                "-out",
                "req.csr",
            ])
            && {
                std::fs::write(
                    dir.join("ext.cnf"),
                    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
                )
                .unwrap();
                run(&[
                    "x509",
                    "-req",
                    "-in",
                    "req.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    "ext.cnf",
                    "-out",
                    "cert.pem",
                ])
            };
        if !ok {
            eprintln!("skipped: openssl is not installed");
            return None;
        }
        Some((dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem")))
    }

    #[tokio::test]
    async fn https_with_a_trusted_certificate() {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        if !cpu_supports_tls() {
            eprintln!("skipped: this CPU cannot run the TLS provider");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let Some((ca, cert, key)) = openssl_certificates(dir.path()) else {
            return;
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&key).unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls_graviola::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let body = "#cloud-config\nhostname: tls\n";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                tls.write_all(reply.as_bytes()).await.unwrap();
                tls.shutdown().await.unwrap();
            }
        });
        let t = Duration::from_secs(5);
        let r = HttpClient::new(&ca)
            .get(&format!("https://localhost:{port}/user-data"), &[], t)
            .await
            .unwrap();
        assert_eq!(r.body, b"#cloud-config\nhostname: tls\n");
        // Trusting nothing that signed it: a permanent error.
        let err = HttpClient::new(&cert)
            .get(&format!("https://127.0.0.1:{port}/user-data"), &[], t)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::Permanent(ref m) if m.contains("certificate")),
            "{err:?}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn https_without_trusted_certificates_is_a_clear_error() {
        let client = HttpClient::new("/nonexistent/ca.crt");
        // Nothing listens on this port either; the TLS setup fails before connecting
        // would matter, but connecting comes first, so use a live server.
        let server = TestServer::start(|_| Reply::ok(Vec::new())).await;
        let url = server.url("/").replace("http://", "https://");
        let err = client.get(&url, &[], Duration::from_secs(2)).await.unwrap_err();
        match err {
            FetchError::Permanent(m) => {
                assert!(
                    m.contains("trusted certificates") || m.contains("not available on this CPU"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
