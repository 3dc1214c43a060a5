//! User Docker over TCP with TLS, as RancherOS's `ros tls gen` and `rancher.docker.tls` had it.
//! `berth tls gen` and the `docker` service's start make a CA, a server certificate and a client
//! certificate on the state disk ([`ensure`]); the service turns them into dockerd's
//! `--tlsverify` flags ([`dockerd_args`]); the console copies the client's files to the login
//! user's `~/.docker/`.
#![forbid(unsafe_code)]

mod generate;
mod store;

pub use generate::{Bundle, generate, subject_alt_names};
pub use store::{CertStore, Outcome, ServerFiles};

use std::path::PathBuf;

/// Where the certificates live: on the state partition, root's only.
pub const TLS_DIR: &str = "/var/lib/berth/tls";
/// The TCP address User Docker listens on with TLS (RancherOS's and docker's TLS port).
pub const TCP_LISTEN: &str = "tcp://0.0.0.0:2376";

/// The files of a certificate store, by role. The client's names are the ones the docker CLI
/// looks for in `~/.docker/`.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const SERVER_CERT: &str = "server-cert.pem";
pub const SERVER_KEY: &str = "server-key.pem";
pub const CLIENT_CERT: &str = "cert.pem";
pub const CLIENT_KEY: &str = "key.pem";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot make the TLS certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("{}: {what}", path.display())]
    Invalid { path: PathBuf, what: String },
    #[error(
        "{}: the certificates are incomplete ({} missing): no new CA is made over them, which \
         would lock out every client holding the old one; put the files back, or make a new set \
         with `sudo berth tls gen --force`",
        dir.display(),
        missing.join(", ")
    )]
    Incomplete { dir: PathBuf, missing: Vec<String> },
    #[error("{0}")]
    Config(String),
}

/// dockerd's flags to serve its API on [`TCP_LISTEN`] to clients holding a certificate of the CA.
pub fn dockerd_args(files: &ServerFiles) -> Vec<String> {
    vec![
        "--tlsverify".to_string(),
        format!("--tlscacert={}", files.ca.display()),
        format!("--tlscert={}", files.cert.display()),
        format!("--tlskey={}", files.key.display()),
        format!("--host={TCP_LISTEN}"),
    ]
}

/// The machine's IP addresses (every interface's), for the server certificate's names.
pub fn local_addresses() -> Vec<std::net::IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| std::net::IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
        })
        .collect()
}

/// The server certificate's names on this machine: `hosts`, the hostname, 127.0.0.1 and the
/// addresses it has now.
pub fn names_here(hosts: &[String]) -> Vec<String> {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    subject_alt_names(hosts, &hostname, &local_addresses())
}
