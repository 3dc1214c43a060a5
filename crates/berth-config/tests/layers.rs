//! Merge order across every layer, the append syntax, and "never brick": a broken layer is
//! skipped with its error while every other layer still applies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_config::{ConfigPaths, KernelCmdline, LayerKind, LayerStatus, Loaded, Severity, load};
use std::path::Path;

struct Machine {
    _root: tempfile::TempDir,
    paths: ConfigPaths,
}

impl Machine {
    fn new() -> Machine {
        let root = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::under(root.path());
        Machine { _root: root, paths }
    }

    fn write(&self, path: &Path, text: &str) -> &Self {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn defaults(&self, t: &str) -> &Self {
        self.write(&self.paths.defaults.clone(), t)
    }
    fn oem(&self, t: &str) -> &Self {
        self.write(&self.paths.oem_file(), t)
    }
    fn conf_d(&self, name: &str, t: &str) -> &Self {
        self.write(&self.paths.conf_d().join(name), t)
    }
    fn user_data(&self, t: &str) -> &Self {
        self.write(&self.paths.user_data(), t)
    }
    fn local(&self, t: &str) -> &Self {
        self.write(&self.paths.local(), t)
    }
    fn load(&self, cmdline: &str) -> Loaded {
        load(&self.paths, &KernelCmdline::parse(cmdline))
    }
}

fn status(loaded: &Loaded, kind: LayerKind) -> Vec<LayerStatus> {
    loaded
        .layers
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.status)
        .collect()
}

#[test]
fn nothing_at_all_gives_the_schema_defaults() {
    let m = Machine::new();
    let loaded = m.load("");
    assert_eq!(loaded.config, berth_config::Config::default());
    assert!(loaded.diagnostics.is_empty());
    assert!(loaded.layers.iter().all(|l| l.status == LayerStatus::Absent));
}

#[test]
fn each_layer_overrides_the_one_below() {
    let m = Machine::new();
    m.defaults("berth: {shutdown_timeout: 101, debug: false, environment: {A: defaults, B: defaults, C: defaults, D: defaults, E: defaults, F: defaults}}")
        .oem("berth: {shutdown_timeout: 102, environment: {B: oem, C: oem, D: oem, E: oem, F: oem}}")
        .conf_d("10-first.yml", "berth: {shutdown_timeout: 103, environment: {C: confd10, D: confd10, E: confd10, F: confd10}}")
        .conf_d("20-second.yml", "berth: {shutdown_timeout: 104, environment: {D: confd20, E: confd20, F: confd20}}")
        .conf_d(".hidden.yml", "berth: {shutdown_timeout: 199}")
        .conf_d("30-not-yaml.txt", "berth: {shutdown_timeout: 198}")
        .user_data("berth: {shutdown_timeout: 105, environment: {E: userdata, F: userdata}}")
        .local("berth: {shutdown_timeout: 106, environment: {F: local}}");
    let loaded = m.load("");
    let env = &loaded.config.berth.environment;
    assert_eq!(loaded.config.berth.shutdown_timeout, 106);
    assert_eq!(
        [&env["A"], &env["B"], &env["C"], &env["D"], &env["E"], &env["F"]],
        ["defaults", "oem", "confd10", "confd20", "userdata", "local"]
    );
    let loaded = m.load("berth.shutdown_timeout=107 berth.environment.F=cmdline");
    assert_eq!(loaded.config.berth.shutdown_timeout, 107);
    assert_eq!(loaded.config.berth.environment["F"], "cmdline");
    assert_eq!(
        status(&loaded, LayerKind::ConfD),
        [LayerStatus::Applied, LayerStatus::Applied]
    );
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
}

#[test]
fn lists_replace_and_plus_appends() {
    let m = Machine::new();
    m.defaults("berth: {modules: [a]}\nssh_authorized_keys: ['ssh-ed25519 AAAAdefault d']")
        .conf_d("10.yml", "berth: {modules: [b]}")
        .user_data("ssh_authorized_keys+: ['ssh-ed25519 AAAAuserdata u']\nberth: {modules+: [c]}")
        .local("ssh_authorized_keys+: ['ssh-ed25519 AAAAlocal l']");
    let loaded = m.load("berth.modules+=[d,e]");
    let keys: Vec<&str> = loaded
        .config
        .ssh_authorized_keys
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "ssh-ed25519 AAAAdefault d",
            "ssh-ed25519 AAAAuserdata u",
            "ssh-ed25519 AAAAlocal l"
        ]
    );
    let modules: Vec<String> = loaded
        .config
        .berth
        .modules
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(modules, ["b", "c", "d", "e"]);
    // Appending onto the schema's own default list.
    let loaded = m.load("berth.cloud_init.datasources+=ec2");
    let ds: Vec<String> = loaded
        .config
        .berth
        .cloud_init
        .datasources
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(ds, ["nocloud", "configdrive", "ec2"]);
}

#[test]
fn an_empty_value_resets_to_the_lower_layers() {
    let m = Machine::new();
    m.defaults("berth:\n  services:\n    ntp: {image: berth/ntp}\n    udev: {image: berth/udev}\n  shutdown_timeout: 30\n")
        .local("berth:\n  services:\n    ntp:\n  shutdown_timeout:\n");
    let loaded = m.load("");
    assert!(!loaded.config.berth.services.contains_key("ntp"));
    assert!(loaded.config.berth.services.contains_key("udev"));
    assert_eq!(
        loaded.config.berth.shutdown_timeout, 60,
        "back to the schema default"
    );
}

#[test]
fn a_partial_service_override_merges_with_the_default() {
    let m = Machine::new();
    m.defaults("berth:\n  services:\n    console:\n      image: berth/console\n      privileged: true\n")
        .local("berth:\n  services:\n    console:\n      environment: {TERM: linux}\n");
    let loaded = m.load("");
    let console = &loaded.config.berth.services["console"];
    assert_eq!(console.image.as_str(), "berth/console");
    assert!(console.privileged);
    assert_eq!(console.environment["TERM"].as_deref(), Some("linux"));
    assert!(!loaded.has_errors());
}

#[test]
fn a_broken_layer_is_skipped_and_the_rest_applies() {
    let m = Machine::new();
    m.defaults("berth: {defaults: {hostname: builtin}}")
        .conf_d("10-keys.yml", "ssh_authorized_keys: ['ssh-ed25519 AAAAkeep me']")
        .conf_d("20-bad-yaml.yml", "hostname: [unclosed\nberth: {debug: true}\n")
        .user_data("#cloud-config\nhostname: from-user-data\nberth:\n  ssh:\n    port: x\n")
        .local("berth: {autologin: [ttyS0]}");
    let loaded = m.load("console=ttyS0");
    assert_eq!(loaded.config.effective_hostname().as_str(), "builtin");
    assert_eq!(
        loaded.config.ssh_authorized_keys.len(),
        1,
        "keys from a valid layer still work"
    );
    assert!(!loaded.config.berth.debug);
    assert_eq!(loaded.config.berth.ssh.port.get(), 22);
    assert_eq!(loaded.config.berth.autologin[0].as_str(), "ttyS0");
    assert_eq!(
        status(&loaded, LayerKind::ConfD),
        [LayerStatus::Applied, LayerStatus::Skipped]
    );
    assert_eq!(status(&loaded, LayerKind::UserData), [LayerStatus::Skipped]);
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let file = Path::new(&d.source)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            format!(
                "{file}:{}:{}: {}: {}",
                d.line.unwrap(),
                d.column.unwrap(),
                d.key.clone().unwrap_or_default(),
                d.message
            )
        })
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("20-bad-yaml.yml:2:"), "{}", errors[0]);
    assert_eq!(
        errors[1],
        "user-data.yml:5:5: berth.ssh.port: \"x\" is not a port number (1-65535)"
    );
}

#[test]
fn broken_defaults_fall_back_to_the_schema() {
    let m = Machine::new();
    m.defaults("berth: {shutdown_timeout: soon}")
        .local("hostname: ok");
    let loaded = m.load("");
    assert_eq!(loaded.config.berth.shutdown_timeout, 60);
    assert_eq!(loaded.config.hostname.as_ref().unwrap().as_str(), "ok");
    assert!(loaded.has_errors());
}

#[test]
fn unreadable_and_binary_files_are_skipped() {
    let m = Machine::new();
    std::fs::create_dir_all(&m.paths.conf_dir).unwrap();
    std::fs::write(m.paths.user_data(), [0x1f, 0x8b, 0x08, 0x00]).unwrap();
    std::fs::write(m.paths.local(), [0xff, 0xfe, 0x00]).unwrap();
    std::fs::create_dir_all(m.paths.conf_d().join("dir.yml")).unwrap();
    let loaded = m.load("");
    let messages: Vec<&str> = loaded.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "the file is gzip-compressed; decompress it first; this layer is skipped",
            "the file is not UTF-8 text; this layer is skipped"
        ]
    );
}

#[test]
fn the_kernel_command_line_is_the_top_layer() {
    let m = Machine::new();
    m.local("hostname: local\nberth: {autologin: [tty1]}");
    let loaded = m.load(
        "quiet cc.hostname=fromcmdline rancher.autologin=ttyS0 rancher.autologin=ttyS1 rancher.console=x berth.ssh.daemon=no",
    );
    assert_eq!(loaded.config.hostname.as_ref().unwrap().as_str(), "fromcmdline");
    let ttys: Vec<&str> = loaded.config.berth.autologin.iter().map(|t| t.as_str()).collect();
    assert_eq!(ttys, ["ttyS0", "ttyS1"]);
    assert!(!loaded.config.berth.ssh.daemon);
    let warning = &loaded.diagnostics[0];
    assert_eq!(warning.source, "kernel command line");
    assert_eq!(warning.key.as_deref(), Some("rancher.console"));
}

#[test]
fn a_bad_cmdline_value_is_dropped_and_the_good_ones_apply() {
    let m = Machine::new();
    m.local("hostname: local");
    let loaded = m.load("berth.ssh.port=99999 berth.debug");
    assert_eq!(loaded.config.hostname.as_ref().unwrap().as_str(), "local");
    assert!(
        loaded.config.berth.debug,
        "the good parameter was dropped with the bad one"
    );
    assert_eq!(loaded.config.berth.ssh.port.get(), 22);
    assert_eq!(
        loaded.diagnostics[0].to_string(),
        "error: kernel command line: berth.ssh.port: 99999 is not a port number (1-65535)"
    );
}

#[test]
fn typical_config_loads_fast() {
    let m = Machine::new();
    let fixture = |n: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(n),
        )
        .unwrap()
    };
    m.defaults(&fixture("berth-native.yml"))
        .conf_d("10.yml", &fixture("rancheros-services.yml"))
        .user_data(&fixture("cloud-init-ubuntu-style.yml"))
        .local(&fixture("rancheros-docker-engine.yml"));
    // This thread's CPU time, not wall time: other processes on a busy machine take the
    // wall clock, not this thread's CPU.
    let cpu = || {
        use nix::time::{ClockId, clock_gettime};
        std::time::Duration::from(clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap())
    };
    let start = cpu();
    let runs = 20;
    for _ in 0..runs {
        std::hint::black_box(m.load("console=ttyS0 berth.debug"));
    }
    let each = (cpu() - start) / runs;
    eprintln!("one load of four layers and a command line: {each:?} of CPU time");
    // Generous bound for unoptimized test builds.
    assert!(each.as_millis() < 50, "one load took {each:?} of CPU time");
}

#[test]
fn a_bad_kernel_parameter_drops_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let paths = berth_config::ConfigPaths::under(dir.path());
    let cmdline = berth_config::KernelCmdline::parse(
        "console=ttyS0 berth.autologin=ttyS0 berth.ssh.port=notaport berth.state.dev=LABEL=DATA",
    );
    let loaded = berth_config::load(&paths, &cmdline);
    let autologin: Vec<&str> = loaded.config.berth.autologin.iter().map(|t| t.as_str()).collect();
    assert_eq!(autologin, ["ttyS0"], "{:?}", loaded.diagnostics);
    assert_eq!(loaded.config.berth.state.dev.as_str(), "LABEL=DATA");
    assert_eq!(loaded.config.berth.ssh.port.get(), 22);
    assert!(
        loaded
            .diagnostics
            .iter()
            .any(|d| d.key.as_deref() == Some("berth.ssh.port")),
        "the bad value is not reported: {:?}",
        loaded.diagnostics
    );
}

#[test]
fn a_bad_first_kernel_parameter_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let paths = berth_config::ConfigPaths::under(dir.path());
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(
        paths.local(),
        "berth:\n  ssh:\n    port: 2222\n  modules: [nbd]\n",
    )
    .unwrap();
    for line in [
        "berth.debug=maybe berth.autologin=ttyS0",
        "berth.autologin=ttyS0 berth.ssh.daemon=maybe",
    ] {
        let loaded = berth_config::load(&paths, &berth_config::KernelCmdline::parse(line));
        assert_eq!(
            loaded.config.berth.ssh.port.get(),
            2222,
            "{line}: {:?}",
            loaded.diagnostics
        );
        let modules: Vec<&str> = loaded.config.berth.modules.iter().map(|m| m.name()).collect();
        assert_eq!(modules, ["nbd"], "{line}");
        let autologin: Vec<&str> = loaded.config.berth.autologin.iter().map(|t| t.as_str()).collect();
        assert_eq!(autologin, ["ttyS0"], "{line}");
        assert!(
            loaded
                .diagnostics
                .iter()
                .any(|d| d.severity == berth_config::Severity::Error),
            "{line}"
        );
    }
}

/// Stage 1 (which reads the raw kernel command line) and the configuration read booleans the
/// same way: `1` and `y` are true in both, `0` and `n` false.
#[test]
fn one_reading_of_yes_and_no_everywhere() {
    let m = Machine::new();
    for (word, want) in [
        ("1", true),
        ("y", true),
        ("yes", true),
        ("On", true),
        ("0", false),
        ("n", false),
        ("off", false),
    ] {
        let loaded = m.load(&format!("berth.debug={word}"));
        assert!(loaded.diagnostics.is_empty(), "{word}: {:?}", loaded.diagnostics);
        assert_eq!(loaded.config.berth.debug, want, "berth.debug={word}");
        assert_eq!(berth_config::parse_bool(word), Some(want), "{word}");
    }
    assert_eq!(berth_config::parse_bool("maybe"), None);
}

/// The datasource's network configuration (cloud-init's translation of `network-config` or
/// `network_data.json`) is used only when no layer configures an interface; the user's DNS
/// settings win over its own.
#[test]
fn datasource_network_only_when_the_user_configures_no_interface() {
    let m = Machine::new();
    m.write(
        &m.paths.datasource_network(),
        "# from the seed\n{\"berth\": {\"network\": {\"interfaces\": {\"eth0\": {\"address\": \"192.0.2.10/24\"}},\n  \"dns\": {\"nameservers\": [\"192.0.2.53\"], \"search\": [\"seed.test\"]}}}}\n",
    );
    m.user_data("berth: {network: {dns: {search: [user.test]}}}");
    let loaded = m.load("");
    let net = &loaded.config.berth.network;
    assert_eq!(
        status(&loaded, LayerKind::DatasourceNetwork),
        [LayerStatus::Applied]
    );
    assert_eq!(
        net.interfaces["eth0"].address.as_ref().unwrap().to_string(),
        "192.0.2.10/24"
    );
    assert_eq!(net.dns.nameservers[0].to_string(), "192.0.2.53");
    assert_eq!(net.dns.search, ["user.test"]);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);

    // An interface of the user's own: the datasource's whole network configuration steps aside.
    m.local("rancher: {network: {interfaces: {eth1: {dhcp: true}}}}");
    let loaded = m.load("");
    let net = &loaded.config.berth.network;
    assert_eq!(
        status(&loaded, LayerKind::DatasourceNetwork),
        [LayerStatus::Overridden]
    );
    assert_eq!(net.interfaces.keys().collect::<Vec<_>>(), ["eth1"]);
    assert!(net.dns.nameservers.is_empty());

    // A bad value in it is reported with its file:line:key, and the layer is skipped.
    std::fs::remove_file(m.paths.local()).unwrap();
    m.write(
        &m.paths.datasource_network(),
        "{\"berth\": {\"network\": {\"interfaces\": {\"eth0\": {\n  \"address\": \"192.0.2.10\"}}}}}\n",
    );
    let loaded = m.load("");
    assert_eq!(
        status(&loaded, LayerKind::DatasourceNetwork),
        [LayerStatus::Skipped]
    );
    let d = &loaded.diagnostics[0];
    assert!(
        d.to_string().contains("datasource-network.yml:2")
            && d.to_string().contains("berth.network.interfaces.eth0.address"),
        "{d}"
    );
}
