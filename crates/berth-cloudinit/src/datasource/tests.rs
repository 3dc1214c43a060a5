//! Datasource probing against fake block devices (real vfat images, a fake mount) and HTTP
//! servers on 127.0.0.1. No traffic leaves the host.

use super::*;
use crate::blockdev::tests::{fake_device, mkfs_vfat};
use crate::testserver::{Reply, TestServer};
use crate::volume::tests::FakeMounter;
use std::sync::atomic::{AtomicUsize, Ordering};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ1 alice@laptop";

fn env(root: &Path, cmdline: &str) -> ProbeEnv {
    let mut env = ProbeEnv::under(root, KernelCmdline::parse(cmdline));
    env.scratch = root.join("scratch");
    env.budget = Duration::from_secs(5);
    env
}

/// A volume labelled `label` under `root` whose "mounted" content is `seed`.
fn labelled_volume(root: &Path, name: &str, label: &str, seed: &Path) -> Option<FakeMounter> {
    let node = fake_device(root, name, 4096);
    mkfs_vfat(&node, label).then(|| FakeMounter::with(&node, seed))
}

fn nocloud_seed(root: &Path) -> PathBuf {
    let seed = root.join("seed-nocloud");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("user-data"), "#cloud-config\nhostname: from-nocloud\n").unwrap();
    std::fs::write(
        seed.join("meta-data"),
        format!("instance-id: iid-nocloud-1\nlocal-hostname: seedhost\npublic-keys: [\"{KEY}\"]\n"),
    )
    .unwrap();
    std::fs::write(seed.join("network-config"), "version: 2\nethernets: {}\n").unwrap();
    seed
}

fn status_of(outcome: &ProbeOutcome, datasource: &str) -> ProbeStatus {
    outcome
        .records
        .iter()
        .find(|r| r.datasource == datasource)
        .unwrap_or_else(|| panic!("no record for {datasource}: {:?}", outcome.records))
        .status
}

#[tokio::test]
async fn nocloud_volume_is_found_and_configdrive_is_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let seed = nocloud_seed(root);
    let Some(mounter) = labelled_volume(root, "sr0", "CIDATA", &seed) else {
        return;
    };
    let mut env = env(root, "");
    env.mounter = Arc::new(mounter);
    let outcome = probe_datasources(&[Datasource::NoCloud, Datasource::ConfigDrive], env).await;
    let found = outcome.found.as_ref().unwrap();
    assert_eq!(found.datasource, "nocloud");
    assert!(
        found.origin.contains("sr0 (vfat, label CIDATA)"),
        "{}",
        found.origin
    );
    assert_eq!(
        found.user_data.as_deref(),
        Some(b"#cloud-config\nhostname: from-nocloud\n".as_slice())
    );
    assert_eq!(found.meta_data.instance_id.as_deref(), Some("iid-nocloud-1"));
    assert_eq!(found.meta_data.public_keys.len(), 1);
    assert_eq!(found.network_config.as_ref().unwrap().file_name, "network-config");
    assert_eq!(status_of(&outcome, "nocloud"), ProbeStatus::Found);
    // Found at the first try: no back-off was waited (counted, not timed, so load cannot
    // make it fail).
    assert_eq!(outcome.records[0].attempts, 1, "{}", outcome.records[0]);
    // config-drive finished (absent) or was cancelled when nocloud answered first
    assert!(matches!(
        status_of(&outcome, "configdrive"),
        ProbeStatus::Absent | ProbeStatus::Cancelled
    ));
}

#[tokio::test]
async fn configdrive_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let seed = root.join("seed-cd");
    std::fs::create_dir_all(seed.join("openstack/latest")).unwrap();
    std::fs::write(seed.join("openstack/latest/user_data"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(
        seed.join("openstack/latest/meta_data.json"),
        format!(r#"{{"uuid": "6f1c", "hostname": "vm-1", "public_keys": {{"k": "{KEY}"}}}}"#),
    )
    .unwrap();
    std::fs::write(seed.join("openstack/latest/network_data.json"), "{}").unwrap();
    let Some(mounter) = labelled_volume(root, "vdb", "config-2", &seed) else {
        return;
    };
    let mut env = env(root, "");
    env.mounter = Arc::new(mounter);
    let outcome = probe_datasources(&[Datasource::ConfigDrive], env).await;
    let found = outcome.found.unwrap();
    assert_eq!(found.datasource, "configdrive");
    assert_eq!(
        found.user_data.as_deref(),
        Some(b"#!/bin/sh\necho hi\n".as_slice())
    );
    assert_eq!(found.meta_data.instance_id.as_deref(), Some("6f1c"));
    assert_eq!(found.meta_data.local_hostname.unwrap().as_str(), "vm-1");
    assert_eq!(found.network_config.unwrap().file_name, "network_data.json");
}

#[tokio::test]
async fn absent_sources_cost_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_device(root, "vda", 64);
    let outcome = probe_datasources(
        &[
            Datasource::NoCloud,
            Datasource::ConfigDrive,
            Datasource::Cmdline,
            Datasource::File("/nope/user-data".into()),
        ],
        env(root, "console=ttyS0"),
    )
    .await;
    assert!(outcome.found.is_none());
    // Costing nothing means one try each and no back-off: counted, not timed.
    for r in &outcome.records {
        assert_eq!(r.status, ProbeStatus::Absent, "{r}");
        assert_eq!(r.attempts, 1);
    }
    assert_eq!(
        outcome.records[2].detail,
        "no cloud-config-url= on the kernel command line"
    );
}

/// A fake EC2 metadata service. With `v2`, GETs need the token from the PUT.
async fn ec2_server(v2: bool, user_data: Option<&'static str>) -> TestServer {
    TestServer::start(move |req| {
        if req.path == "/latest/api/token" {
            return if v2
                && req.method == "PUT"
                && req.header("x-aws-ec2-metadata-token-ttl-seconds").is_some()
            {
                Reply::ok("TOKEN123")
            } else {
                Reply::status(405)
            };
        }
        if v2 && req.header("x-aws-ec2-metadata-token") != Some("TOKEN123") {
            return Reply::status(401);
        }
        match req.path.as_str() {
            "/latest/meta-data/instance-id" => Reply::ok("i-0abc"),
            "/latest/meta-data/local-hostname" => Reply::ok("ip-10-1-2-3.ec2.internal"),
            "/latest/meta-data/public-keys/" => Reply::ok("0=my-key"),
            "/latest/meta-data/public-keys/0/openssh-key" => Reply::ok(format!("{KEY}\n")),
            "/latest/user-data" => match user_data {
                Some(u) => Reply::ok(u),
                None => Reply::status(404),
            },
            _ => Reply::status(404),
        }
    })
    .await
}

#[tokio::test]
async fn ec2_with_imdsv2_token() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ec2_server(true, Some("#cloud-config\nhostname: ec2\n")).await;
    let mut env = env(tmp.path(), "");
    env.ec2_endpoint = server.url("");
    let outcome = probe_datasources(&[Datasource::Ec2], env).await;
    let found = outcome.found.unwrap();
    assert_eq!(
        found.user_data.as_deref(),
        Some(b"#cloud-config\nhostname: ec2\n".as_slice())
    );
    assert_eq!(found.meta_data.instance_id.as_deref(), Some("i-0abc"));
    assert_eq!(
        found.meta_data.local_hostname.unwrap().as_str(),
        "ip-10-1-2-3.ec2.internal"
    );
    assert_eq!(found.meta_data.public_keys[0].as_str(), KEY);
    let raw: serde_json::Value = serde_json::from_slice(&found.meta_data_raw.unwrap()).unwrap();
    assert_eq!(raw["imds"], "v2");
    let requests = server.requests();
    assert_eq!(requests[0].method, "PUT");
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.header("x-aws-ec2-metadata-token") == Some("TOKEN123"))
    );
}

#[tokio::test]
async fn ec2_imdsv1_without_user_data() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ec2_server(false, None).await;
    let mut env = env(tmp.path(), "");
    env.ec2_endpoint = server.url("/");
    let outcome = probe_datasources(&[Datasource::Ec2], env).await;
    let found = outcome.found.unwrap();
    assert_eq!(found.user_data, None);
    assert_eq!(found.meta_data.instance_id.as_deref(), Some("i-0abc"));
}

#[tokio::test]
async fn ec2_endpoint_that_is_not_ec2_fails_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(|_| Reply::status(404)).await;
    let mut env = env(tmp.path(), "");
    env.ec2_endpoint = server.url("");
    let outcome = probe_datasources(&[Datasource::Ec2], env).await;
    assert!(outcome.found.is_none());
    assert_eq!(outcome.records[0].status, ProbeStatus::Failed);
    assert!(outcome.records[0].detail.contains("not an EC2 metadata service"));
}

#[tokio::test]
async fn cmdline_url_with_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let server = TestServer::start(move |req| {
        if req.path != "/cc.yml" {
            return Reply::status(404);
        }
        // Busy twice, then the config.
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::status(503)
        } else {
            Reply::ok("#cloud-config\nhostname: from-url\n")
        }
    })
    .await;
    let cmdline = format!("quiet cloud-config-url={}", server.url("/cc.yml"));
    let outcome = probe_datasources(&[Datasource::Cmdline], env(tmp.path(), &cmdline)).await;
    let found = outcome.found.unwrap();
    assert_eq!(found.datasource, "cmdline");
    assert!(found.origin.ends_with("/cc.yml"));
    assert_eq!(outcome.records[0].attempts, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn plain_http_url_is_used_with_a_warning_and_https_without() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(|_| Reply::ok("#cloud-config\n")).await;
    let ds = Datasource::Url(server.url("/cc.yml"));
    let found = probe_datasources(&[ds], env(tmp.path(), "")).await.found.unwrap();
    assert_eq!(found.user_data.as_deref(), Some(b"#cloud-config\n".as_slice()));
    assert_eq!(found.warnings.len(), 1, "{:?}", found.warnings);
    assert!(
        found.warnings[0].contains("plain http://") && found.warnings[0].contains("/cc.yml"),
        "{:?}",
        found.warnings
    );

    // https with the CA in /var/lib/berth/ca-certificates under the root: no warning.
    let pki = crate::testserver::TestPki::new("Berth test CA", &["127.0.0.1"]);
    let tls = TestServer::start_tls(&pki, |_| Reply::ok("#cloud-config\n")).await;
    let ca_dir = tmp.path().join(crate::http::USER_CA_DIR);
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::write(ca_dir.join("site.pem"), &pki.ca_pem).unwrap();
    let cmdline = format!("cloud-config-url={}", tls.url("/cc.yml"));
    let found = probe_datasources(&[Datasource::Cmdline], env(tmp.path(), &cmdline))
        .await
        .found
        .unwrap();
    assert_eq!(found.user_data.as_deref(), Some(b"#cloud-config\n".as_slice()));
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
}

#[tokio::test]
async fn https_url_signed_by_an_unknown_ca_fails_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = crate::testserver::TestPki::new("Nobody trusts me", &["127.0.0.1"]);
    let tls = TestServer::start_tls(&pki, |_| Reply::ok("#cloud-config\n")).await;
    let bundle = tmp.path().join("etc/ssl/certs/ca-certificates.crt");
    std::fs::create_dir_all(bundle.parent().unwrap()).unwrap();
    let trusted = crate::testserver::TestPki::new("A trusted CA", &["127.0.0.1"]);
    std::fs::write(&bundle, &trusted.ca_pem).unwrap();
    let outcome = probe_datasources(&[Datasource::Url(tls.url("/cc.yml"))], env(tmp.path(), "")).await;
    let record = &outcome.records[0];
    assert_eq!(
        (record.status, record.attempts),
        (ProbeStatus::Failed, 1),
        "{record}"
    );
    assert!(record.detail.contains("UnknownIssuer"), "{record}");
}

#[tokio::test]
async fn url_not_found_fails_without_retrying() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(|_| Reply::status(404)).await;
    let ds = Datasource::Url(server.url("/missing"));
    let outcome = probe_datasources(&[ds], env(tmp.path(), "")).await;
    assert_eq!(outcome.records[0].status, ProbeStatus::Failed);
    assert_eq!(outcome.records[0].attempts, 1);
    assert!(outcome.records[0].detail.ends_with("HTTP 404"));
}

#[tokio::test]
async fn unreachable_url_gives_up_within_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    // A port bound but not listening refuses connections, and stays ours for the whole
    // test: a port found free and released could be taken by anything running beside us.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = refusing.local_addr().unwrap().port();
    let mut env = env(tmp.path(), "");
    env.budget = Duration::from_millis(800);
    let started = std::time::Instant::now();
    let outcome = probe_datasources(&[Datasource::Url(format!("http://127.0.0.1:{port}/x"))], env).await;
    // Never gives up before the budget is spent (a lower bound holds however loaded the
    // machine is; an upper bound on wall time would not).
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    let record = &outcome.records[0];
    assert_eq!(record.status, ProbeStatus::TimedOut);
    assert!(record.detail.starts_with("gave up after 0.8 s"), "{record}");
    // Back-off of 100, 200, 400 ms: at most four tries fit in 800 ms, whatever the load.
    assert!((1..=4).contains(&record.attempts), "{record}");
    assert!(record.detail.contains("cannot connect"), "{record}");
    drop(refusing);
}

#[tokio::test]
async fn remote_url_waits_for_a_default_route() {
    // No /proc/net/route under the test root: no default route, so nothing is sent.
    let tmp = tempfile::tempdir().unwrap();
    let mut env = env(tmp.path(), "");
    env.budget = Duration::from_millis(300);
    let outcome = probe_datasources(
        &[
            Datasource::Url("http://192.0.2.1/user-data".into()),
            Datasource::Ec2,
        ],
        env,
    )
    .await;
    for record in &outcome.records {
        assert_eq!(record.status, ProbeStatus::TimedOut, "{record}");
        assert!(record.detail.contains("waiting for a default route"), "{record}");
    }
}

#[tokio::test]
async fn file_and_seed_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("srv")).unwrap();
    std::fs::write(root.join("srv/ud"), "#cloud-config\n").unwrap();
    let outcome = probe_datasources(&[Datasource::File("/srv/ud".into())], env(root, "")).await;
    let found = outcome.found.unwrap();
    assert_eq!(
        (found.datasource.as_str(), found.origin.as_str()),
        ("file:/srv/ud", "/srv/ud")
    );
    assert_eq!(found.user_data.as_deref(), Some(b"#cloud-config\n".as_slice()));

    let seed = nocloud_seed(root);
    let seed_path = format!("/{}", seed.strip_prefix(root).unwrap().display());
    let outcome = probe_datasources(&[Datasource::File(seed_path)], env(root, "")).await;
    let found = outcome.found.unwrap();
    assert_eq!(found.meta_data.instance_id.as_deref(), Some("iid-nocloud-1"));
    assert!(found.network_config.is_some());
}

#[tokio::test]
async fn the_first_to_answer_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // The URL never answers within the budget, so the file always answers first (a server
    // that is merely slow would race the file read on a loaded machine). Had probing waited
    // for every source, the URL would be timed out rather than cancelled.
    let silent = TestServer::start(|_| Reply::ok("#cloud-config\n").delayed(Duration::from_secs(3600))).await;
    std::fs::write(root.join("ud"), "#cloud-config\nhostname: fast\n").unwrap();
    let outcome = probe_datasources(
        &[Datasource::Url(silent.url("/")), Datasource::File("/ud".into())],
        env(root, ""),
    )
    .await;
    assert_eq!(outcome.found.unwrap().datasource, "file:/ud");
    assert_eq!(outcome.records[0].status, ProbeStatus::Cancelled);
    assert_eq!(outcome.records[1].status, ProbeStatus::Found);
}

#[test]
fn datasource_lists() {
    let (list, warnings) =
        parse_datasource_list("nocloud, configdrive:/media/config-2 ec2:root url:http://x/y,file:/a gce *");
    let names: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        ["nocloud", "configdrive", "ec2", "url:http://x/y", "file:/a"]
    );
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("\"gce\""), "{warnings:?}");

    let cmdline = KernelCmdline::parse("cloud-config-url=http://10.0.2.2:8000/cc");
    let list = effective_datasources(&[Datasource::NoCloud], &cmdline);
    assert_eq!(list, [Datasource::NoCloud, Datasource::Cmdline]);
    let list = effective_datasources(&[Datasource::NoCloud], &KernelCmdline::parse("quiet"));
    assert_eq!(list, [Datasource::NoCloud]);
}
