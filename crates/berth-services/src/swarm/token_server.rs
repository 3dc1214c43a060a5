//! A manager's worker join token for its peers (`berth.swarm.serve_token`, off by default):
//! plain HTTP/1 on the swarm advertise address only, port [`TOKEN_PORT`], `GET`
//! [`TOKEN_PATH`], answered only to clients whose source address is inside that address's
//! subnet (read from the interface). Others get 403 and a log line that names them, never the
//! token. The manager token is never served: the token source only reads the worker's.
//!
//! The same server answers `GET /nodes/NODE_ID` ([`MEMBER_PATH`]) with `member` or
//! `not-member`, nothing else about the node: a worker removed with `docker node rm --force`
//! while it runs asks there, because its own engine keeps reporting `active`.
//!
//! The trust model (docs/fleet.md): anyone who can reach the manager from its subnet can join
//! as a worker. That is why it is off by default and limited to the subnet.

pub use berth_config::schema::swarm::TOKEN_PORT;
use berth_config::schema::swarm::{MEMBER, MEMBER_PATH, NOT_MEMBER, TOKEN_PATH};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Connections served at once (the rest wait in the kernel's backlog).
const CONNECTIONS: usize = 16;
/// A client that has not sent its request headers by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a request gets, from who asks and what for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// 200 with the worker token.
    Token,
    /// 200 with [`MEMBER`] or [`NOT_MEMBER`]: whether this node id is in the swarm.
    Membership(&'a str),
    /// 403: the client is outside the subnet.
    Forbidden,
    /// 404: another path.
    NotFound,
    /// 405: not a GET (or HEAD).
    MethodNotAllowed,
}

/// Decide a request: the subnet first, so that a client outside it learns nothing.
pub fn answer<'a>(peer: IpAddr, subnet: &IpNet, method: &Method, path: &'a str) -> Answer<'a> {
    let node = path.strip_prefix(MEMBER_PATH).filter(|id| is_node_id(id));
    if !subnet.contains(&peer.to_canonical()) {
        Answer::Forbidden
    } else if path != TOKEN_PATH && node.is_none() {
        Answer::NotFound
    } else if method != Method::GET && method != Method::HEAD {
        Answer::MethodNotAllowed
    } else {
        node.map_or(Answer::Token, Answer::Membership)
    }
}

/// A swarm node id as the engine makes them (25 lowercase letters and digits); a little
/// looser, but never anything that could carry a path or a query to the engine.
fn is_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The subnet of `addr` among the machine's interface addresses: `(address, netmask)` pairs.
pub fn subnet_in(addr: IpAddr, interfaces: impl IntoIterator<Item = (IpAddr, IpAddr)>) -> Option<IpNet> {
    interfaces
        .into_iter()
        .find(|(a, _)| *a == addr)
        .and_then(|(a, mask)| IpNet::with_netmask(a, mask).ok())
        .map(|net| net.trunc())
}

/// The subnet of `addr`, read from this machine's interfaces.
pub fn subnet_of(addr: IpAddr) -> Result<IpNet, String> {
    let interfaces =
        nix::ifaddrs::getifaddrs().map_err(|e| format!("reading the interfaces' addresses: {e}"))?;
    let pairs = interfaces.filter_map(|i| {
        let (a, m) = (i.address?, i.netmask?);
        if let (Some(a), Some(m)) = (a.as_sockaddr_in(), m.as_sockaddr_in()) {
            return Some((IpAddr::V4(a.ip()), IpAddr::V4(m.ip())));
        }
        let (a, m) = (a.as_sockaddr_in6()?, m.as_sockaddr_in6()?);
        Some((IpAddr::V6(a.ip()), IpAddr::V6(m.ip())))
    });
    subnet_in(addr, pairs).ok_or_else(|| format!("no interface has the address {addr}"))
}

/// A running server; dropping it stops it.
pub struct TokenServer {
    pub addr: SocketAddr,
    pub subnet: IpNet,
    task: JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the server answers from: the engine of the manager it runs on.
pub trait SwarmFacts: Send + Sync + 'static {
    /// The worker join token (asked at every request: a rotated token is served at once).
    fn worker_token(&self) -> impl Future<Output = Result<String, String>> + Send;
    /// Whether the swarm has the node `id` (`Ok(false)`: the engine does not know it).
    fn has_node(&self, id: &str) -> impl Future<Output = Result<bool, String>> + Send;
}

/// Listen on `addr` and answer clients inside `subnet` from `facts`.
pub async fn start<F: SwarmFacts>(addr: SocketAddr, subnet: IpNet, facts: F) -> std::io::Result<TokenServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let facts = Arc::new(facts);
    let slots = Arc::new(Semaphore::new(CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("swarm: token server: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let facts = facts.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| respond(request, peer.ip(), subnet, facts.clone()));
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!("swarm: token server: {peer}: {e}");
                }
                drop(slot);
            });
        }
    });
    Ok(TokenServer { addr, subnet, task })
}

async fn respond<F: SwarmFacts>(
    request: Request<Incoming>,
    peer: IpAddr,
    subnet: IpNet,
    facts: Arc<F>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match answer(peer, &subnet, request.method(), request.uri().path()) {
        Answer::Forbidden => {
            tracing::warn!("swarm: refused the worker token to {peer}: outside {subnet}");
            (
                StatusCode::FORBIDDEN,
                format!("refused: {peer} is outside {subnet}\n"),
            )
        }
        Answer::NotFound => (
            StatusCode::NOT_FOUND,
            format!("not found: the worker token is at {TOKEN_PATH}\n"),
        ),
        Answer::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_string()),
        Answer::Membership(id) => match facts.has_node(id).await {
            Ok(true) => (StatusCode::OK, format!("{MEMBER}\n")),
            Ok(false) => {
                tracing::info!("swarm: told {peer} that node {id} is not in the swarm");
                (StatusCode::OK, format!("{NOT_MEMBER}\n"))
            }
            Err(e) => {
                tracing::warn!("swarm: cannot tell {peer} whether node {id} is in the swarm: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the swarm's nodes are not available\n".to_string(),
                )
            }
        },
        Answer::Token => match facts.worker_token().await {
            Ok(token) => {
                tracing::info!("swarm: served the worker token to {peer}");
                (StatusCode::OK, format!("{token}\n"))
            }
            Err(e) => {
                tracing::warn!("swarm: no worker token to serve to {peer}: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the worker token is not available yet\n".to_string(),
                )
            }
        },
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TOKEN: &str =
        "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx";

    #[test]
    fn only_the_subnet_gets_the_token_and_only_at_its_path() {
        let subnet: IpNet = "198.18.5.0/24".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (peer, method, path, want) in [
            ("198.18.5.11", Method::GET, TOKEN_PATH, Answer::Token),
            ("198.18.5.11", Method::HEAD, TOKEN_PATH, Answer::Token),
            ("::ffff:198.18.5.12", Method::GET, TOKEN_PATH, Answer::Token),
            ("198.18.6.11", Method::GET, TOKEN_PATH, Answer::Forbidden),
            ("10.0.2.2", Method::GET, TOKEN_PATH, Answer::Forbidden),
            // Outside: refused before anything else is said.
            ("10.0.2.2", Method::POST, "/manager-token", Answer::Forbidden),
            ("198.18.5.11", Method::GET, "/manager-token", Answer::NotFound),
            ("198.18.5.11", Method::POST, TOKEN_PATH, Answer::MethodNotAllowed),
            // Whether a node is in the swarm: to the subnet, for a well-formed id only.
            (
                "198.18.5.11",
                Method::GET,
                "/nodes/x0b4v4ap9d1m8uxtb8c2wzv4e",
                Answer::Membership("x0b4v4ap9d1m8uxtb8c2wzv4e"),
            ),
            (
                "10.0.2.2",
                Method::GET,
                "/nodes/x0b4v4ap9d1m8uxtb8c2wzv4e",
                Answer::Forbidden,
            ),
            ("198.18.5.11", Method::GET, "/nodes/", Answer::NotFound),
            ("198.18.5.11", Method::GET, "/nodes/../swarm", Answer::NotFound),
            ("198.18.5.11", Method::GET, "/nodes/a/b", Answer::NotFound),
            (
                "198.18.5.11",
                Method::DELETE,
                "/nodes/abc",
                Answer::MethodNotAllowed,
            ),
        ] {
            assert_eq!(
                answer(ip(peer), &subnet, &method, path),
                want,
                "{peer} {method} {path}"
            );
        }
    }

    #[test]
    fn the_subnet_is_the_advertise_addresss_own() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let interfaces = [
            (ip("10.0.2.15"), ip("255.255.255.0")),
            (ip("198.18.5.10"), ip("255.255.240.0")),
            (ip("2001:db8::5"), ip("ffff:ffff:ffff:ffff::")),
        ];
        assert_eq!(
            subnet_in(ip("198.18.5.10"), interfaces),
            Some("198.18.0.0/20".parse().unwrap())
        );
        assert_eq!(
            subnet_in(ip("2001:db8::5"), interfaces),
            Some("2001:db8::/64".parse().unwrap())
        );
        assert_eq!(subnet_in(ip("198.18.5.11"), interfaces), None);
        // The loopback address is on every machine: the real reading finds it.
        assert_eq!(
            subnet_of(ip("127.0.0.1")).unwrap(),
            "127.0.0.0/8".parse::<IpNet>().unwrap()
        );
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: manager\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    /// A swarm of one known node, `abc`.
    #[derive(Clone, Copy)]
    struct OneNode;

    impl SwarmFacts for OneNode {
        async fn worker_token(&self) -> Result<String, String> {
            Ok(TOKEN.to_string())
        }
        async fn has_node(&self, id: &str) -> Result<bool, String> {
            Ok(id == "abc")
        }
    }

    #[test]
    fn a_real_server_serves_its_subnet_and_refuses_the_rest() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let source = OneNode;
            let inside = start(
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.0/8".parse().unwrap(),
                source,
            )
            .await
            .unwrap();
            let answer = get(inside.addr, TOKEN_PATH).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with(&format!("\r\n\r\n{TOKEN}\n")), "{answer}");
            let answer = get(inside.addr, "/manager-token").await;
            assert!(
                answer.starts_with("HTTP/1.1 404") && !answer.contains(TOKEN),
                "{answer}"
            );
            // Membership: yes or no, and nothing more.
            let answer = get(inside.addr, "/nodes/abc").await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with("\r\n\r\nmember\n"), "{answer}");
            let answer = get(inside.addr, "/nodes/removed0").await;
            assert!(answer.ends_with("\r\n\r\nnot-member\n"), "{answer}");

            // The same machine's client, but the server's subnet is another one: 403.
            let outside = start(
                "127.0.0.1:0".parse().unwrap(),
                "198.18.5.0/24".parse().unwrap(),
                source,
            )
            .await
            .unwrap();
            let answer = get(outside.addr, TOKEN_PATH).await;
            assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
            assert!(!answer.contains("SWMTKN"), "{answer}");
            let answer = get(outside.addr, "/nodes/abc").await;
            assert!(
                answer.starts_with("HTTP/1.1 403") && !answer.contains("member"),
                "{answer}"
            );

            // Stopped when dropped.
            let addr = inside.addr;
            drop(inside);
            tokio::task::yield_now().await;
            assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        });
    }
}
