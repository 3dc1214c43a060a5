//! The configuration schema: the standard cloud-config keys Berth applies, and `berth:`.
//!
//! Every struct has sane defaults (`Config::default()` is a bootable configuration) and
//! every value that can be invalid is a validated type from [`values`].

pub mod berth;
pub mod cloud;
pub mod forms;
pub mod network;
pub mod service;
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

    /// Checks that span several values, or decode content: `(key path, message)` pairs.
    pub(crate) fn semantic_errors(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
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
        errors
    }
}
