//! The `berth:` key: everything about the OS itself.

use super::forms::string_map;
use super::network::NetworkConfig;
use super::ntp::NtpConfig;
use super::service::ServiceSpec;
use super::swarm::SwarmConfig;
use super::syslog::SyslogConfig;
use super::values::{
    Cidr, Datasource, DeviceRef, Hostname, HttpUrl, IpAddress, ModuleSpec, Port, ServiceName, SysctlKey,
    SysctlValue, TtyName,
};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct BerthConfig {
    pub defaults: Defaults,
    pub debug: bool,
    /// Terminals with automatic login (`ttyS0`, `tty1`).
    pub autologin: Vec<TtyName>,
    /// Which console runs: the slim `default` or the optional `debian` one (written by
    /// `berth console switch`; RancherOS's `rancher.console`).
    pub console: ConsoleKind,
    /// Variables interpolated into service definitions (`${NAME}`).
    #[serde(deserialize_with = "string_map")]
    pub environment: IndexMap<String, String>,
    /// Seconds PID 1 waits for an orderly shutdown before forcing the reboot.
    pub shutdown_timeout: u32,
    /// Compressed swap in RAM (`/dev/zram0`), set up by init.
    pub zram: ZramConfig,
    pub state: StateConfig,
    pub oem: OemConfig,
    pub system_docker: SystemDockerConfig,
    pub docker: DockerConfig,
    pub services: IndexMap<ServiceName, ServiceSpec>,
    /// Optional services of the release's catalogue (`/usr/share/berth/services/NAME.yml`)
    /// to run (`true`) or not (`false`): what `berth service enable|disable` writes.
    /// RancherOS's `rancher.services_include`.
    pub services_include: IndexMap<ServiceName, bool>,
    /// Kernel modules to load: `"name"` or `"name param=value"`.
    pub modules: Vec<ModuleSpec>,
    /// `net.ipv4.ip_forward: 1`; booleans are written as 1/0.
    pub sysctl: IndexMap<SysctlKey, SysctlValue>,
    pub ssh: SshConfig,
    pub cloud_init: CloudInitConfig,
    pub network: NetworkConfig,
    /// The `ntp` service's time servers.
    pub ntp: NtpConfig,
    /// The `syslog` service's forwarding.
    pub syslog: SyslogConfig,
    /// Docker Swarm membership of the user engine (the `swarm` service). The token is private.
    pub swarm: SwarmConfig,
    /// Credentials for image pulls, by registry. Private.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub registry_auths: IndexMap<String, RegistryAuth>,
    /// Upgrades of an installed disk (`berth os upgrade`).
    pub upgrade: UpgradeConfig,
    /// Compatibility with RancherOS configurations.
    pub compat: CompatConfig,
    /// A disk whose last partition (and its ext4 filesystem) grows to the disk's end at boot:
    /// `/dev/sda` (RancherOS's `rancher.resize_device`). Done once; a no-op when it is there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize_device: Option<DeviceRef>,
    /// The slot (`A` or `B`) of an installed disk that GRUB booted: set by GRUB on the kernel
    /// command line (`berth.slot=A`), read by init (crates/berth-boot/src/slot.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

impl Default for BerthConfig {
    fn default() -> Self {
        BerthConfig {
            defaults: Defaults::default(),
            debug: false,
            autologin: Vec::new(),
            console: ConsoleKind::Default,
            environment: IndexMap::new(),
            shutdown_timeout: 60,
            zram: ZramConfig::default(),
            upgrade: UpgradeConfig::default(),
            compat: CompatConfig::default(),
            state: StateConfig::default(),
            oem: OemConfig::default(),
            system_docker: SystemDockerConfig::default(),
            docker: DockerConfig::default(),
            services: IndexMap::new(),
            services_include: IndexMap::new(),
            modules: Vec::new(),
            sysctl: IndexMap::new(),
            ssh: SshConfig::default(),
            cloud_init: CloudInitConfig::default(),
            network: NetworkConfig::default(),
            ntp: NtpConfig::default(),
            syslog: SyslogConfig::default(),
            swarm: SwarmConfig::default(),
            registry_auths: IndexMap::new(),
            resize_device: None,
            slot: None,
        }
    }
}

/// The consoles a release offers (`berth console list`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleKind {
    /// The slim console of the release's image store.
    #[default]
    Default,
    /// The full Debian userland with apt-get, loaded from a separate artifact.
    Debian,
}

impl ConsoleKind {
    pub const ALL: [ConsoleKind; 2] = [ConsoleKind::Default, ConsoleKind::Debian];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleKind::Default => "default",
            ConsoleKind::Debian => "debian",
        }
    }

    /// The image of the `console` service for this console (`${BERTH_VERSION}` not expanded).
    pub fn image(self) -> &'static str {
        match self {
            ConsoleKind::Default => "berth/console:${BERTH_VERSION}",
            ConsoleKind::Debian => "berth/console-debian:${BERTH_VERSION}",
        }
    }
}

impl std::str::FromStr for ConsoleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ConsoleKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("no console named {s:?}: the consoles are default and debian"))
    }
}

/// Fallbacks used when nothing else sets a value.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Defaults {
    /// The hostname when `hostname` is not set.
    pub hostname: Hostname,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            hostname: Hostname::from_static("berth"),
        }
    }
}

/// Compressed swap in RAM: under memory pressure the kernel compresses idle anonymous memory
/// (the engines' heaps, the daemons') into `/dev/zram0` instead of running the OOM killer.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ZramConfig {
    /// The swap device's size, in percent of the memory the kernel manages (what it could hold
    /// uncompressed), at most 8 GiB; `0` turns it off. At most [`ZramConfig::MAX_PERCENT`].
    pub size_percent: u32,
}

impl ZramConfig {
    pub const MAX_PERCENT: u32 = 150;
}

impl Default for ZramConfig {
    fn default() -> Self {
        ZramConfig { size_percent: 100 }
    }
}

/// The persistent state partition.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct StateConfig {
    pub dev: DeviceRef,
    /// Seconds to wait for the device to appear.
    pub wait: u32,
    /// Refuse to boot (recovery console) rather than run from RAM without it.
    pub required: bool,
    /// Blank disks that may be formatted as the state partition when none is found.
    pub autoformat: Vec<DeviceRef>,
    pub fstype: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dev: DeviceRef::from_static("LABEL=BERTH_STATE"),
            wait: 10,
            required: false,
            autoformat: Vec::new(),
            fstype: "auto".to_string(),
        }
    }
}

/// The OEM partition (an extra configuration layer supplied by the hardware vendor).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct OemConfig {
    pub dev: DeviceRef,
    pub fstype: String,
}

impl Default for OemConfig {
    fn default() -> Self {
        OemConfig {
            dev: DeviceRef::from_static("LABEL=BERTH_OEM"),
            fstype: "auto".to_string(),
        }
    }
}

/// The engine that runs system services.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SystemDockerConfig {
    /// Run System Docker as PID 1 instead of under Berth's init.
    pub exec: bool,
    pub storage_driver: String,
    pub live_restore: bool,
    #[serde(deserialize_with = "string_map")]
    pub log_opts: IndexMap<String, String>,
    pub extra_args: Vec<String>,
    pub debug: bool,
}

impl Default for SystemDockerConfig {
    fn default() -> Self {
        SystemDockerConfig {
            exec: false,
            storage_driver: "overlay2".to_string(),
            live_restore: true,
            log_opts: IndexMap::from([
                ("max-size".to_string(), "25m".to_string()),
                ("max-file".to_string(), "2".to_string()),
            ]),
            extra_args: Vec::new(),
            debug: false,
        }
    }
}

/// The user's engine (the `docker` system service).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct DockerConfig {
    pub storage_driver: String,
    pub registry_mirrors: Vec<HttpUrl>,
    /// `host:port` or CIDR of registries reached without TLS verification.
    pub insecure_registries: Vec<String>,
    pub log_driver: String,
    #[serde(deserialize_with = "string_map")]
    pub log_opts: IndexMap<String, String>,
    pub extra_args: Vec<String>,
    /// Environment of the dockerd process (proxies, say).
    #[serde(deserialize_with = "string_map")]
    pub environment: IndexMap<String, String>,
    /// Listen on TCP 2376 with TLS, using the certificates below.
    pub tls: bool,
    pub debug: bool,
    /// The bridge network's address (`--bip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bip: Option<Cidr>,
    /// PEM certificates and keys for `tls`. The keys are private.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_key: Option<String>,
    /// The engine User Docker runs (`docker-20.10.24`), when not the release's own; set by
    /// `berth engine switch`. An engine that is not installed: the release's runs instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<super::engine::EngineName>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            storage_driver: "overlay2".to_string(),
            registry_mirrors: Vec::new(),
            insecure_registries: Vec::new(),
            log_driver: "json-file".to_string(),
            log_opts: IndexMap::new(),
            extra_args: Vec::new(),
            environment: IndexMap::new(),
            tls: false,
            debug: false,
            bip: None,
            ca_cert: None,
            ca_key: None,
            server_cert: None,
            server_key: None,
            engine: None,
        }
    }
}

/// The ssh daemon in the console.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SshConfig {
    pub daemon: bool,
    pub port: Port,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_address: Option<IpAddress>,
    /// Host keys, persisted here so the machine keeps its identity (file name → PEM). Private.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub keys: IndexMap<String, String>,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            daemon: true,
            port: Port::SSH,
            listen_address: None,
            keys: IndexMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct CloudInitConfig {
    /// Probed in parallel; the first that answers wins.
    pub datasources: Vec<Datasource>,
    /// Seconds the whole cloud-init run may take; then it is stopped and the boot goes on
    /// (the console starts regardless).
    pub timeout: u32,
}

impl Default for CloudInitConfig {
    fn default() -> Self {
        CloudInitConfig {
            datasources: vec![Datasource::NoCloud, Datasource::ConfigDrive],
            timeout: 300,
        }
    }
}

/// Registry credentials, as in docker's `config.json`. Private.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct RegistryAuth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// base64 of `username:password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identitytoken: Option<String>,
}

/// `berth.upgrade`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct UpgradeConfig {
    /// Seconds a newly upgraded slot's first boot has to pass its health checks (System
    /// Docker, every system service, User Docker ready) before init reboots it, which costs
    /// one of its tries.
    pub health_timeout: u32,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        UpgradeConfig { health_timeout: 300 }
    }
}

/// `berth.compat`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct CompatConfig {
    /// `rancher` is a second login name of the `berth` account (same uid, home
    /// `/home/rancher` a link to `/home/berth`, same groups, keys and sudo). Set by any layer
    /// that uses RancherOS's `rancher:` key.
    pub rancher_user: bool,
}
