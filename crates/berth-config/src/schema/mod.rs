//! The configuration schema: the standard cloud-config keys Berth applies, and `berth:`.
//!
//! Every struct has sane defaults (`Config::default()` is a bootable configuration) and
//! every value that can be invalid is a validated type from [`values`].

pub mod account;
pub mod berth;
pub mod cloud;
pub mod engine;
pub mod forms;
pub mod network;
pub mod ntp;
pub mod service;
pub mod swarm;
pub mod syslog;
pub mod values;

use berth::BerthConfig;
use cloud::{MountEntry, UserSpec, WriteFile};
use forms::Command;
use serde::{Deserialize, Serialize};
use values::{Hostname, SshPublicKey, Timezone};

/// The whole effective configuration.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Hostname>,
    /// Keys for the `berth` login user.
    pub ssh_authorized_keys: Vec<SshPublicKey>,
    pub users: Vec<UserSpec>,
    pub write_files: Vec<WriteFile>,
    /// Run once per instance, after the system services are up.
    pub runcmd: Vec<Command>,
    /// Run at every boot, early.
    pub bootcmd: Vec<Command>,
    pub mounts: Vec<MountEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Timezone>,
    pub berth: BerthConfig,
}

impl Config {
    /// `hostname`, else `berth.defaults.hostname`.
    pub fn effective_hostname(&self) -> &Hostname {
        self.hostname.as_ref().unwrap_or(&self.berth.defaults.hostname)
    }

    /// The shortest `berth.shutdown_timeout` that leaves the containers time to stop: the
    /// `docker` service's `stop_grace_period` (the user's containers stop within it) plus 20 s
    /// for the system services, System Docker and the unmounts.
    pub fn shutdown_timeout_floor(&self) -> std::time::Duration {
        let grace = self
            .berth
            .services
            .iter()
            .find(|(name, _)| name.as_str() == "docker")
            .and_then(|(_, spec)| spec.stop_grace_period)
            .map(|t| t.get())
            .unwrap_or(std::time::Duration::from_secs(10));
        grace + std::time::Duration::from_secs(20)
    }

    /// `berth.shutdown_timeout`, raised to [`Config::shutdown_timeout_floor`] when shorter: a
    /// shutdown that forces the reboot before anything stopped loses data.
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.berth.shutdown_timeout.into()).max(self.shutdown_timeout_floor())
    }

    /// Settings that are valid but will not be used as written: `(key path, message)` pairs.
    pub(crate) fn semantic_warnings(&self) -> Vec<(String, String)> {
        let mut warnings = Vec::new();
        let floor = self.shutdown_timeout_floor();
        if u64::from(self.berth.shutdown_timeout) < floor.as_secs() {
            warnings.push((
                "berth.shutdown_timeout".to_string(),
                format!(
                    "{}s leaves the containers no time to stop: {}s is used (the docker service's \
                     stop_grace_period + 20s)",
                    self.berth.shutdown_timeout,
                    floor.as_secs()
                ),
            ));
        }
        for (i, user) in self.users.iter().enumerate() {
            for (key, value) in [("passwd", &user.passwd), ("hashed_passwd", &user.hashed_passwd)] {
                if value.as_deref() == Some("") {
                    warnings.push((
                        format!("users[{i}].{key}"),
                        "an empty password is no password: login and su refuse it; the account \
                         logs in with ssh keys only"
                            .to_string(),
                    ));
                }
            }
        }
        warnings.extend(self.berth.network.warnings());
        warnings
    }

    /// Checks that span several values, or decode content: `(key path, message)` pairs.
    pub(crate) fn semantic_errors(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.berth.zram.size_percent > berth::ZramConfig::MAX_PERCENT {
            errors.push((
                "berth.zram.size_percent".to_string(),
                format!(
                    "{}% is more than {}% of the memory: the compressed pages would crowd out \
                     the memory they save (0 turns zram off)",
                    self.berth.zram.size_percent,
                    berth::ZramConfig::MAX_PERCENT
                ),
            ));
        }
        for (i, file) in self.write_files.iter().enumerate() {
            if file.encoding != cloud::Encoding::Text
                && let Err(e) = file.decoded_content()
            {
                errors.push((format!("write_files[{i}].content"), e));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            if !seen.insert(user.name.as_str()) {
                errors.push((
                    format!("users[{i}].name"),
                    format!("the user {:?} is listed twice", user.name.as_str()),
                ));
            }
        }
        errors.extend(self.berth.network.errors());
        errors.extend(self.berth.swarm.errors());
        errors
    }
}
