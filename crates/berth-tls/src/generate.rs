//! The certificates themselves: a CA, a server certificate for the machine's names and
//! addresses, and a client certificate, each with its own ECDSA P-256 key.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// A CA with the server and client certificates it signed, in PEM.
pub struct Bundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

/// How long the certificates are valid: ten years, as RancherOS's were. They start a day
/// early, so a machine whose clock is not yet set at boot still accepts them.
const VALID_DAYS: i64 = 3650;

fn validity(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(VALID_DAYS);
}

/// The server certificate's names: the `-H` hosts first, then the hostname, `localhost`,
/// 127.0.0.1 and the machine's addresses; each once, link-local IPv6 left out (it needs a zone).
pub fn subject_alt_names(hosts: &[String], hostname: &str, addresses: &[IpAddr]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: String| {
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    };
    for host in hosts {
        add(host.trim().to_string());
    }
    add(hostname.trim().to_string());
    add("localhost".to_string());
    add("127.0.0.1".to_string());
    for address in addresses {
        let link_local = matches!(address, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
        if !link_local {
            add(address.to_string());
        }
    }
    out
}

/// Make a new CA, a server certificate for `server_names` and a client certificate.
pub fn generate(server_names: &[String]) -> Result<Bundle, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Berth User Docker CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(server_names.to_vec())?;
    server.distinguished_name = rcgen::DistinguishedName::new();
    let common_name = server_names.first().map(String::as_str).unwrap_or("localhost");
    server.distinguished_name.push(DnType::CommonName, common_name);
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    validity(&mut server);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client.distinguished_name = rcgen::DistinguishedName::new();
    client.distinguished_name.push(DnType::CommonName, "client");
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.use_authority_key_identifier_extension = true;
    validity(&mut client);
    let client_cert = client.signed_by(&client_key, &issuer)?;

    Ok(Bundle {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::server::WebPkiClientVerifier;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn roots(ca: &str) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(ca)).unwrap();
        Arc::new(roots)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn server_accepted(bundle: &Bundle, ca: &str, name: &str) -> bool {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .unwrap();
        verifier
            .verify_server_cert(
                &der(&bundle.server_cert),
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    fn client_accepted(cert: &str, ca: &str) -> bool {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .unwrap();
        verifier
            .verify_client_cert(&der(cert), &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn the_chain_verifies_for_every_name_and_only_those() {
        let names = subject_alt_names(
            &["docker.example".into()],
            "berth",
            &["10.0.2.15".parse().unwrap()],
        );
        let bundle = generate(&names).unwrap();
        for name in ["docker.example", "berth", "localhost", "127.0.0.1", "10.0.2.15"] {
            assert!(server_accepted(&bundle, &bundle.ca_cert, name), "{name}");
        }
        assert!(!server_accepted(&bundle, &bundle.ca_cert, "10.0.2.16"));
        assert!(!server_accepted(&bundle, &bundle.ca_cert, "other.example"));
        assert!(client_accepted(&bundle.client_cert, &bundle.ca_cert));
        // Another CA's certificates are refused both ways.
        let other = generate(&names).unwrap();
        assert!(!server_accepted(&bundle, &other.ca_cert, "berth"));
        assert!(!client_accepted(&other.client_cert, &bundle.ca_cert));
        // The server's certificate is not a client's.
        assert!(!client_accepted(&bundle.server_cert, &bundle.ca_cert));
        for key in [&bundle.ca_key, &bundle.server_key, &bundle.client_key] {
            assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        }
    }

    #[test]
    fn names_are_listed_once_and_link_local_is_left_out() {
        let names = subject_alt_names(
            &["127.0.0.1".into(), " h1 ".into()],
            "berth",
            &[
                "127.0.0.1".parse().unwrap(),
                "fe80::1".parse().unwrap(),
                "fd00::5".parse().unwrap(),
            ],
        );
        assert_eq!(names, ["127.0.0.1", "h1", "berth", "localhost", "fd00::5"]);
    }
}
