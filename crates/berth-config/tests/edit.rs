//! The editing API: get, set, merge, export, validate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_config::{ConfigError, ConfigPaths, KernelCmdline, export, get, load, merge, set, validate_text};
use serde_json::json;

fn machine() -> (tempfile::TempDir, ConfigPaths) {
    let root = tempfile::tempdir().unwrap();
    let paths = ConfigPaths::under(root.path());
    (root, paths)
}

fn loaded(paths: &ConfigPaths) -> berth_config::Loaded {
    load(paths, &KernelCmdline::default())
}

#[test]
fn get_reads_typed_values_and_dotted_keys() {
    let (_root, paths) = machine();
    set(&paths, "berth.sysctl.net.ipv4.ip_forward", "1").unwrap();
    set(&paths, "write_files", "[{path: /etc/a, content: x}]").unwrap();
    let l = loaded(&paths);
    assert_eq!(get(&l, "berth.ssh.port"), Some(json!(22)));
    assert_eq!(get(&l, "rancher.ssh.daemon"), Some(json!(true)));
    assert_eq!(get(&l, "berth.sysctl.net.ipv4.ip_forward"), Some(json!("1")));
    assert_eq!(get(&l, "write_files[0].path"), Some(json!("/etc/a")));
    assert_eq!(get(&l, "write_files.0.content"), Some(json!("x")));
    assert_eq!(get(&l, "berth.nope"), None);
    assert_eq!(get(&l, "hostname"), None);
    assert_eq!(get(&l, "berth.defaults.hostname"), Some(json!("berth")));
}

#[test]
fn set_types_validates_and_writes_atomically() {
    let (_root, paths) = machine();
    set(&paths, "cc.hostname", "node-7").unwrap();
    set(&paths, "berth.ssh.port", "2222").unwrap();
    set(&paths, "rancher.docker.registry_mirror", "https://mirror.example").unwrap();
    set(&paths, "berth.network.interfaces.eth0", "{dhcp: true}").unwrap();
    let l = loaded(&paths);
    assert_eq!(l.config.effective_hostname().as_str(), "node-7");
    assert_eq!(l.config.berth.ssh.port.get(), 2222);
    assert_eq!(
        l.config.berth.docker.registry_mirrors[0].as_str(),
        "https://mirror.example"
    );
    assert_eq!(l.config.berth.network.interfaces["eth0"].dhcp, Some(true));

    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(paths.local()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(paths.local()).unwrap();
    assert!(text.starts_with("#cloud-config\n"), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(&paths.conf_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["cloud-config.yml"]);

    // null removes the key again.
    set(&paths, "berth.ssh.port", "null").unwrap();
    assert_eq!(loaded(&paths).config.berth.ssh.port.get(), 22);
}

#[test]
fn set_refuses_bad_values_and_unknown_keys_without_writing() {
    let (_root, paths) = machine();
    set(&paths, "hostname", "good").unwrap();
    let before = std::fs::read_to_string(paths.local()).unwrap();

    let e = set(&paths, "berth.ssh.port", "x").unwrap_err();
    assert!(matches!(e, ConfigError::Rejected { .. }));
    assert_eq!(e.diagnostics()[0].message, "\"x\" is not a port number (1-65535)");
    assert_eq!(e.diagnostics()[0].key.as_deref(), Some("berth.ssh.port"));

    let e = set(&paths, "berth.ssh.prot", "22").unwrap_err();
    assert_eq!(
        e.to_string(),
        "berth.ssh.prot: unknown key, ignored (did you mean \"port\"?); nothing was written (`berth config export --full` lists the keys)"
    );
    let e = set(&paths, "rancher.console", "ubuntu").unwrap_err();
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e}");
    let e = set(&paths, "hostname", "[unclosed").unwrap_err();
    assert!(matches!(e, ConfigError::InvalidValue { .. }), "{e}");
    let e = set(&paths, "berth..x", "1").unwrap_err();
    assert!(matches!(e, ConfigError::InvalidKey { .. }), "{e}");
    let e = set(&paths, "hostname", "-bad-").unwrap_err();
    assert!(e.to_string().contains("is not a valid hostname"), "{e}");

    assert_eq!(std::fs::read_to_string(paths.local()).unwrap(), before);
}

#[test]
fn set_writes_settings_not_applied_yet_with_their_warning() {
    let (_root, paths) = machine();
    let warnings = set(&paths, "berth.state.fstype", "ext4").unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].key.as_deref(), Some("berth.state.fstype"));
    assert!(warnings[0].message.contains("not used yet"), "{warnings:#?}");
    assert_eq!(loaded(&paths).config.berth.state.fstype, "ext4");
    // Every such setting of the local file is reported again; TLS is applied: it says nothing.
    let warnings = set(&paths, "berth.docker.tls", "true").unwrap();
    let keys: Vec<_> = warnings.iter().filter_map(|w| w.key.as_deref()).collect();
    assert_eq!(keys, ["berth.state.fstype"]);
    // Static network settings are applied now: they say nothing.
    let warnings = set(&paths, "berth.network.interfaces.eth0", "{dhcp: true, mtu: 1400}").unwrap();
    assert_eq!(warnings.len(), 1, "only the one above again: {warnings:#?}");
    // A setting of that kind already in the file does not stop a neighbour from being set,
    // and a secret's warning names its key, never its value.
    let warnings = set(&paths, "berth.ssh.keys.ssh_host_ed25519_key", "secret-pem").unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.key.as_deref() == Some("berth.ssh.keys")),
        "{warnings:#?}"
    );
    assert!(warnings.iter().all(|w| !w.to_string().contains("secret-pem")));
    set(&paths, "berth.ssh", "{port: 2222}").unwrap();
    assert_eq!(loaded(&paths).config.berth.ssh.port.get(), 2222);
    // An unknown key beside them is still refused.
    let e = set(&paths, "berth.ssh.prot", "22").unwrap_err();
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e}");
}

#[test]
fn set_refuses_to_overwrite_a_broken_local_file() {
    let (_root, paths) = machine();
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(paths.local(), "hostname: [oops\n").unwrap();
    let e = set(&paths, "hostname", "x").unwrap_err();
    assert!(matches!(e, ConfigError::LocalFileInvalid { .. }), "{e}");
    assert!(e.to_string().contains("fix it or remove it"), "{e}");
}

#[test]
fn set_append_keeps_appending() {
    let (_root, paths) = machine();
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(
        paths.user_data(),
        "ssh_authorized_keys: ['ssh-ed25519 AAAAone 1']",
    )
    .unwrap();
    set(&paths, "ssh_authorized_keys+", "['ssh-ed25519 AAAAtwo 2']").unwrap();
    set(&paths, "ssh_authorized_keys+", "['ssh-ed25519 AAAAthree 3']").unwrap();
    assert_eq!(loaded(&paths).config.ssh_authorized_keys.len(), 3);
}

#[test]
fn merge_checks_in_context_and_reports_positions_in_the_input() {
    let (_root, paths) = machine();
    std::fs::create_dir_all(paths.defaults.parent().unwrap()).unwrap();
    std::fs::write(
        &paths.defaults,
        "berth: {services: {console: {image: berth/console}}}",
    )
    .unwrap();
    let warnings = merge(
        &paths,
        "#cloud-config\nrancher:\n  console: alpine\nberth:\n  services:\n    console:\n      labels: [io.berth.after=network]\n",
        "input.yml",
    )
    .unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0].to_string().split(": is").next(),
        Some("warning: input.yml:3:3: rancher.console")
    );
    assert_eq!(
        loaded(&paths).config.berth.services["console"].berth_label("after"),
        Some("network")
    );

    let e = merge(
        &paths,
        "berth:\n  services:\n    web: {privileged: true}\n",
        "in.yml",
    )
    .unwrap_err();
    assert_eq!(
        e.diagnostics()[0].to_string(),
        "error: in.yml:3:5: berth.services.web: missing required key \"image\""
    );
    let e = merge(&paths, "a: [1\n", "in.yml").unwrap_err();
    assert!(e.diagnostics()[0].line.is_some());
    assert!(e.diagnostics()[0].message.starts_with("invalid YAML: "));
}

#[test]
fn export_shows_changes_and_hides_secrets() {
    let (_root, paths) = machine();
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(
        paths.local(),
        r#"
hostname: h
users:
  - name: alice
    hashed_passwd: "$6$abc"
write_files:
  - path: /etc/key.pem
    content: "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"
berth:
  ssh:
    keys: {ssh_host_ed25519_key: secret}
  docker:
    tls: true
    server_key: secret
    server_cert: cert
  registry_auths:
    registry.example: {username: u, password: p}
  swarm:
    role: worker
    join: 198.18.0.10:2377
    token: SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx
  network:
    http_proxy: http://proxyuser:pr0xy-secret@proxy.example:3128/
    https_proxy: http://proxy.example:3129
"#,
    )
    .unwrap();
    let l = loaded(&paths);
    assert!(!l.has_errors(), "{:?}", l.diagnostics);
    let public = export(&l, false, false);
    assert_eq!(
        public,
        json!({
            "hostname": "h",
            "users": [{"name": "alice", "lock_passwd": true}],
            "write_files": [{"path": "/etc/key.pem"}],
            "berth": {
                "docker": {"tls": true, "server_cert": "cert"},
                "registry_auths": {"registry.example": {"username": "u"}},
                "swarm": {"role": "worker", "join": "198.18.0.10:2377"},
                "network": {
                    "http_proxy": "http://xxxxx:xxxxx@proxy.example:3128/",
                    "https_proxy": "http://proxy.example:3129"
                }
            }
        })
    );
    let private = export(&l, false, true);
    assert_eq!(private["berth"]["ssh"]["keys"]["ssh_host_ed25519_key"], "secret");
    assert_eq!(private["users"][0]["hashed_passwd"], "$6$abc");
    assert!(
        private["berth"]["swarm"]["token"]
            .as_str()
            .unwrap()
            .starts_with("SWMTKN-1-3pu6")
    );
    assert_eq!(
        private["berth"]["network"]["http_proxy"],
        "http://proxyuser:pr0xy-secret@proxy.example:3128/"
    );
    let full = export(&l, true, false);
    assert_eq!(full["berth"]["ssh"]["port"], 22);
    assert!(full["berth"]["ssh"].get("keys").is_none());
    assert!(full["berth"]["swarm"].get("token").is_none());
    assert!(!serde_json::to_string(&full).unwrap().contains("SWMTKN"));
}

#[test]
fn validate_text_reports_everything() {
    let d = validate_text("hostname: ok\nfoo: 1\n", "f.yml");
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].to_string(),
        "warning: f.yml:2:1: foo: unknown key, ignored (known keys here: hostname, ssh_authorized_keys, users, write_files, runcmd, bootcmd, mounts, timezone, berth)"
    );
    assert!(validate_text("", "empty.yml").is_empty());
    assert!(validate_text("#cloud-config\n", "empty.yml").is_empty());
}

#[test]
fn a_key_set_in_a_text_is_found_with_its_line_in_either_spelling() {
    let text = "#cloud-config\nhostname: a\nrancher:\n  docker:\n    engine: docker-1.10.3\n";
    assert_eq!(
        berth_config::scalar_at_key(text, "berth.docker.engine").as_deref(),
        Some("docker-1.10.3")
    );
    assert_eq!(berth_config::scalar_at_key(text, "berth.docker.tls"), None);
    assert_eq!(
        berth_config::scalar_at_key("berth: {}\n", "berth.docker.engine"),
        None
    );
    let d = berth_config::error_at_key(text, "user-data.yml", "berth.docker.engine", "not installed");
    assert_eq!(
        d.to_string(),
        "error: user-data.yml:5:5: berth.docker.engine: not installed"
    );
}
