//! Real-world cloud-configs, several written for RancherOS: each loads without errors, and
//! what Berth makes of it (effective changes and warnings) is pinned by a snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_config::{ConfigPaths, KernelCmdline, LayerStatus, export, load, validate_text};
use std::path::Path;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Load a fixture as the saved user-data of a machine; return the report to snapshot.
fn report(name: &str) -> String {
    let text = fixture(name);
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(paths.user_data(), &text).unwrap();
    let loaded = load(&paths, &KernelCmdline::default());
    let user_data = loaded
        .layers
        .iter()
        .find(|l| l.source.ends_with("user-data.yml"))
        .unwrap();
    assert_eq!(
        user_data.status,
        LayerStatus::Applied,
        "{:#?}",
        loaded.diagnostics
    );
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);

    // The same text checked on its own gives the same findings.
    let alone = validate_text(&text, "x.yml");
    assert_eq!(alone.len(), loaded.diagnostics.len());

    let prefix = root.path().display().to_string();
    let warnings: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| d.to_string().replace(&prefix, "ROOT"))
        .collect();
    let changes = serde_saphyr::to_string(&export(&loaded, false, false)).unwrap();
    format!(
        "# diagnostics\n{}\n\n# export (secrets removed)\n{changes}",
        warnings.join("\n")
    )
}

#[test]
fn rancheros_docs_static_network() {
    insta::assert_snapshot!(report("rancheros-docs-static-network.yml"));
}

#[test]
fn rancheros_docker_engine() {
    insta::assert_snapshot!(report("rancheros-docker-engine.yml"));
}

#[test]
fn rancheros_services() {
    insta::assert_snapshot!(report("rancheros-services.yml"));
}

#[test]
fn rancheros_bonded_network() {
    insta::assert_snapshot!(report("rancheros-bonded-network.yml"));
}

#[test]
fn cloud_init_ubuntu_style() {
    insta::assert_snapshot!(report("cloud-init-ubuntu-style.yml"));
}

#[test]
fn berth_native() {
    insta::assert_snapshot!(report("berth-native.yml"));
}

#[test]
fn typed_values_from_fixtures() {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(paths.user_data(), fixture("cloud-init-ubuntu-style.yml")).unwrap();
    let config = load(&paths, &KernelCmdline::default()).config;
    assert_eq!(config.effective_hostname().as_str(), "web-01");
    assert_eq!(config.users[0].name.as_str(), "default");
    let groups: Vec<&str> = config.users[1].groups.iter().map(|g| g.as_str()).collect();
    assert_eq!(groups, ["docker", "adm"]);
    assert_eq!(config.users[1].sudo, ["ALL=(ALL) NOPASSWD:ALL"]);
    assert_eq!(
        config.write_files[0].decoded_content().unwrap(),
        b"net.ipv4.ip_forward = 1\n"
    );
    assert_eq!(
        config.write_files[1].decoded_content().unwrap(),
        b"hello from b64\n"
    );
    assert_eq!(config.write_files[1].mode().bits(), 0o600);
    assert_eq!(config.write_files[2].mode().bits(), 0o644);
    assert_eq!(config.mounts[1].mountpoint.as_deref(), Some("none"));

    std::fs::write(paths.user_data(), fixture("berth-native.yml")).unwrap();
    let config = load(&paths, &KernelCmdline::default()).config;
    let svc = &config.berth.services["node-exporter"];
    assert_eq!(
        svc.command.as_ref().unwrap().argv(),
        [
            "--path.rootfs=/host",
            "--collector.textfile.directory=/var/lib/x y"
        ]
    );
    assert_eq!(svc.net.as_deref(), Some("host"));
    assert_eq!(svc.environment["PASSTHROUGH"], None);
    assert_eq!(svc.berth_label("after"), Some("docker"));
    assert_eq!(svc.stop_grace_period.unwrap().get().as_secs(), 90);
    assert_eq!(config.berth.sysctl["net.ipv4.ip_forward"].as_str(), "1");

    std::fs::write(paths.user_data(), fixture("rancheros-services.yml")).unwrap();
    let config = load(&paths, &KernelCmdline::default()).config;
    let svc = &config.berth.services["nginxapp"];
    assert_eq!(svc.berth_label("scope"), Some("system"));
    assert_eq!(config.berth.state.wait, 10);
    assert_eq!(config.berth.modules[1].params(), ["mode=4", "miimon=100"]);
}
