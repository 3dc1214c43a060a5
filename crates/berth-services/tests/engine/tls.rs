//! `berth.docker.tls` against a real dockerd: the flags User Docker gets, with certificates
//! from `berth tls gen`'s store, make the engine answer a client holding the CA's client
//! certificate on TCP, and refuse one without a certificate or with another CA's.

use crate::support::Dockerd;
use berth_tls::CertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `GET /_ping` over TLS, presenting `client` (certificate, key) when given. The answer, or
/// the error that ended the exchange.
fn ping(port: u16, ca: &Path, client: Option<(&Path, &Path)>) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(cert).unwrap()],
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    tls.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    Ok(answer)
}

#[test]
fn tls_flags_serve_certified_clients_only() {
    let certs = tempfile::tempdir().unwrap();
    let store = CertStore::new(certs.path().join("tls"));
    store.ensure(&berth_tls::names_here(&[]), false).unwrap();
    let files = store.checked_server_files().unwrap();
    // User Docker's TLS flags, listening on a free loopback port instead of 0.0.0.0:2376.
    let port = free_port();
    let listen = format!("--host=tcp://127.0.0.1:{port}");
    let mut flags: Vec<String> = berth_tls::dockerd_args(&files)
        .into_iter()
        .filter(|f| !f.starts_with("--host="))
        .collect();
    assert_eq!(flags.len(), 4, "{flags:?}");
    flags.push(listen);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _engine = Dockerd::start_with(&flags);

    let dir = store.dir();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let answer = ping(port, &files.ca, Some((&cert, &key))).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200") && answer.ends_with("OK"),
        "{answer}"
    );

    let refused = ping(port, &files.ca, None);
    assert!(
        refused.is_err(),
        "answered a client without a certificate: {refused:?}"
    );

    let other = CertStore::new(certs.path().join("other"));
    other.ensure(&["elsewhere".into()], false).unwrap();
    let (other_cert, other_key) = (other.dir().join("cert.pem"), other.dir().join("key.pem"));
    let refused = ping(port, &files.ca, Some((&other_cert, &other_key)));
    assert!(refused.is_err(), "answered another CA's client: {refused:?}");
}
