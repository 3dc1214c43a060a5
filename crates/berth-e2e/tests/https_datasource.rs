//! Issue #9, item 7 in the booted image: an `https://` `cloud-config-url` is fetched and
//! applied on QEMU's default CPU (no AVX2/ADX), trusting a certificate authority the test
//! made and gave to the machine on its OEM partition (`ca-certificates/*.pem`); a second URL
//! whose certificate comes from an unknown authority is refused, and the boot log says why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use common::{BOOT, check, env, metadata_forward, poweroff, vfat_with};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};

/// A new certificate authority (its PEM) and a server certificate it signed for `ip`,
/// written to `dir` as `NAME.crt` and `NAME.key`.
fn authority_and_server(dir: &Path, name: &str, ip: &str) -> (String, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("Berth e2e {name} CA"));
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![ip.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca_pem, cert_path, key_path)
}

#[test]
fn vm_https_cloud_config_url_with_a_private_ca() {
    let env = env("https-ds");
    let root = env.dir.join("http");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("user-data"),
        env.user_data(
            "https-host",
            "write_files:\n  - path: /etc/berth-e2e/https\n    content: from-https\n",
        ),
    )
    .unwrap();
    let (ca_pem, cert, key) = authority_and_server(&env.dir, "trusted", "10.0.2.100");
    let (_, rogue_cert, rogue_key) = authority_and_server(&env.dir, "unknown", "10.0.2.101");
    let oem = vfat_with(
        &env.dir,
        "oem.img",
        "BERTH_OEM",
        &[("ca-certificates/e2e-ca.pem", &ca_pem)],
    );

    let mut vm = env.kernel_vm(
        "cloud-config-url=https://10.0.2.100/user-data \
         berth.cloud_init.datasources=[url:https://10.0.2.101/user-data]",
    );
    vm.disks.push(oem);
    // The good server answers only once the rogue one saw its handshake refused, so both
    // outcomes are on the boot log whatever the timing.
    vm.guest_forwards.push(metadata_forward(
        "10.0.2.100",
        443,
        &format!("--tls {} {} --after handshake", cert.display(), key.display()),
        &root,
    ));
    vm.guest_forwards.push(metadata_forward(
        "10.0.2.101",
        443,
        &format!("--tls {} {}", rogue_cert.display(), rogue_key.display()),
        &root,
    ));
    let m = env.start("https", vm);
    check(&m, "boot to ssh (key from the https URL)", m.wait_ssh(BOOT));
    assert_eq!(check(&m, "hostname", m.run("hostname")).trim(), "https-host");
    assert_eq!(
        check(&m, "write_files", m.run("cat /etc/berth-e2e/https")).trim(),
        "from-https"
    );
    let log = check(
        &m,
        "cloud-init log",
        m.run("sudo cat /var/log/boot/cloud-init.log"),
    );
    assert!(
        log.contains("datasource cmdline: found") && log.contains("https://10.0.2.100/user-data"),
        "the https cloud-config-url was not what answered:\n{log}"
    );
    let refused = log
        .lines()
        .find(|l| l.contains("datasource url:https://10.0.2.101/user-data: failed"))
        .unwrap_or_else(|| panic!("no refusal of the unknown CA's URL on the boot log:\n{log}"));
    assert!(
        refused.contains("invalid peer certificate: UnknownIssuer"),
        "the refusal does not say why: {refused}"
    );
    assert!(
        !log.contains("plain http://"),
        "an https datasource was warned about as http:\n{log}"
    );
    let requests = std::fs::read_to_string(env.dir.join("requests.log")).unwrap_or_default();
    assert!(
        requests.contains("GET /user-data") && requests.contains("TLS handshake failed"),
        "{requests}"
    );
    poweroff(&m);
}
