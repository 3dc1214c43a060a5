//! cloud-init for Berth: datasources, user-data, and applying cloud-config.
//!
//! Three callers, all inside the one static `berth` binary:
//!
//! 1. **`berth cloud-init`** ([`main_cloud_init`]), a one-shot system container that runs
//!    once per boot after the network service started: it probes the datasources of
//!    `berth.cloud_init.datasources` in parallel ([`datasource`]), saves what the first to
//!    answer delivered under `/var/lib/berth/` so later boots work offline ([`save`]; the
//!    cloud-config becomes the `user-data.yml` configuration layer only once berth-config
//!    has validated it), applies the host items of the effective configuration ([`host`]:
//!    modules, sysctl, hostname, timezone, bootcmd, mounts), and writes a report to
//!    `/run/berth/cloud-init.json` ([`report`]) for the console's login banner.
//! 2. **The console phase** ([`apply_console`]), called by `berth console-init`: users,
//!    ssh keys, `write_files` for the console, and `runcmd` and scripts once per instance.
//! 3. **The service manager** ([`files_for_container`], [`write_files_tar`]): `write_files`
//!    with `container:`, uploaded into that container before it starts.
//!
//! Nothing here stops the boot: every failure becomes a report entry naming its source
//! (file, line, column) and key, and the next item goes on. Block devices are found with
//! `berth-blockdev`, the same superblock probe init uses.

mod beneath;
pub mod blockdev;
mod cli;
mod commands;
pub mod console;
mod container_files;
pub mod datasource;
mod error;
mod fsutil;
pub mod home_files;
pub mod host;
pub mod http;
pub mod metadata;
pub mod network_config;
pub mod report;
pub mod save;
#[cfg(test)]
mod testserver;
mod time;
pub mod userdata;
pub mod volume;

pub use cli::main_cloud_init;
pub use console::{ConsoleContext, apply_console, prepare_console, run_console_commands};
pub use container_files::{files_for_container, write_files_tar};
pub use error::{Error, Result};
pub use report::Report;
