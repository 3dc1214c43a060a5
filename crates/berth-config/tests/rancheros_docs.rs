//! The RancherOS documentation's own configuration examples (tests/fixtures/rancheros/, each
//! naming its source page on its first line), loaded as a machine's user-data: none has an
//! error, and each warning is one of the features Berth documents as unsupported
//! (docs/rancheros.md), listed below with the reason. A warning not listed fails, and so does
//! a listed one that no longer appears, so the list stays true.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_config::{ConfigPaths, KernelCmdline, Severity, load};
use std::collections::BTreeSet;
use std::path::Path;

/// Whether an allowed warning must appear.
#[derive(PartialEq)]
enum Expect {
    /// Berth documents the feature as unsupported (docs/rancheros.md): the warning stays.
    Unsupported,
}

use Expect::Unsupported;

const REPOSITORIES: &str = "no service repositories: services are defined under berth.services";
const CHANNEL: &str = "no release channel: upgrades are signed bundles (`berth os upgrade FILE|URL`)";
const WIRELESS: &str = "no Wi-Fi or mobile modem support in Berth";

/// (fixture, key warned about (a prefix), why Berth does not have it, expectation).
const ALLOWED: &[(&str, &str, &str, Expect)] = &[
    (
        "05-airgap-configuration.yml",
        "rancher.repositories",
        REPOSITORIES,
        Unsupported,
    ),
    (
        "05-airgap-configuration.yml",
        "rancher.upgrade",
        CHANNEL,
        Unsupported,
    ),
    (
        "06-airgap-configuration-2.yml",
        "rancher.repositories",
        REPOSITORIES,
        Unsupported,
    ),
    (
        "06-airgap-configuration-2.yml",
        "rancher.upgrade",
        CHANNEL,
        Unsupported,
    ),
    ("52-upgrading.yml", "rancher.upgrade", CHANNEL, Unsupported),
    (
        "11-docker-4.yml",
        "rancher.defaults.system_docker_logs",
        "System Docker's log is always /var/log/system-docker.log",
        Unsupported,
    ),
    (
        "12-docker-5.yml",
        "rancher.bootstrap_docker",
        "Berth starts System Docker directly, without a bootstrap engine",
        Unsupported,
    ),
    (
        "12-docker-5.yml",
        "rancher.system_docker.registry_mirror",
        "set through berth.system_docker.extra_args (the warning says how)",
        Unsupported,
    ),
    (
        "25-switching-docker-versions-2.yml",
        "rancher.docker.engine",
        "a RancherOS engine service file URL: Berth switches to signed engine files",
        Unsupported,
    ),
    (
        "31-image-preloading.yml",
        "rancher.preload_wait",
        "Berth preloads no images at boot (docker load in runcmd)",
        Unsupported,
    ),
    ("35-raspberry-pi.yml", "rancher.network", WIRELESS, Unsupported),
    ("43-interfaces-7.yml", "rancher.network", WIRELESS, Unsupported),
    ("44-interfaces-8.yml", "rancher.network", WIRELESS, Unsupported),
    (
        "45-interfaces-9.yml",
        "rancher.network.modem_networks",
        WIRELESS,
        Unsupported,
    ),
    (
        "42-interfaces-6.yml",
        "rancher.network.pre_cmds",
        "commands of the network service: bootcmd instead",
        Unsupported,
    ),
    (
        "42-interfaces-6.yml",
        "rancher.network.post_cmds",
        "commands of the network service: bootcmd or runcmd instead",
        Unsupported,
    ),
    (
        "49-state-partition-2.yml",
        "berth.state.autoformat",
        "read from the kernel command line only: stage 1 runs before the user-data",
        Unsupported,
    ),
];

fn fixtures() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rancheros");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The findings of `text` as a machine's saved user-data: (severity is error, key, line).
fn findings(text: &str) -> Vec<(bool, String, String)> {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(paths.user_data(), text).unwrap();
    let loaded = load(&paths, &KernelCmdline::default());
    loaded
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.severity == Severity::Error,
                d.key.clone().unwrap_or_default(),
                d.to_string(),
            )
        })
        .collect()
}

#[test]
fn the_rancheros_documentation_examples_validate() {
    let all = fixtures();
    assert!(all.len() >= 40, "only {} examples", all.len());
    let mut used = BTreeSet::new();
    let mut unexpected = Vec::new();
    for (name, text) in &all {
        assert!(
            text.starts_with("# Source: RancherOS documentation, "),
            "{name}: the first line names the source page"
        );
        for (error, key, shown) in findings(text) {
            let allowed = ALLOWED
                .iter()
                .position(|(file, k, _, _)| file == name && key.starts_with(k));
            match allowed {
                Some(i) if !error => {
                    used.insert(i);
                }
                _ => unexpected.push(format!("{name}: {shown}")),
            }
        }
    }
    assert!(unexpected.is_empty(), "not allowed:\n{}", unexpected.join("\n"));
    let stale: Vec<_> = ALLOWED
        .iter()
        .enumerate()
        .filter(|(i, a)| a.3 == Unsupported && !used.contains(i))
        .map(|(_, a)| format!("{} {}: {}", a.0, a.1, a.2))
        .collect();
    assert!(
        stale.is_empty(),
        "allowed but no longer warned:\n{}",
        stale.join("\n")
    );
}
