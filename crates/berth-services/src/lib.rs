//! Berth's service manager. `berth sysinit` (started by PID 1 once System Docker runs) checks
//! that System Docker holds the system images of the read-only store, then brings the services declared under
//! `berth.services` up in dependency order: system services in System Docker, user services in
//! User Docker once the `docker` service answers. It also holds the container side of the
//! shutdown and the `docker` service's entry point (`berth user-docker`).
#![forbid(unsafe_code)]

pub mod catalog;
pub mod client;
pub mod console_choice;
pub mod daemons;
pub mod engine_choice;
pub mod engine_pair;
pub mod graph;
pub mod image_store;
pub mod images;
pub mod power;
pub mod registry_auth;
pub mod shutdown;
pub mod spec;
pub mod swarm;
pub mod sysinit;
pub mod up;
pub mod user_engine;

/// The shipped `os/defaults.yml`, loaded alone (no OEM or user configuration), for tests of
/// what the release defines.
#[cfg(test)]
pub(crate) fn shipped_defaults() -> berth_config::Loaded {
    #![allow(clippy::unwrap_used)] // test code
    let dir = tempfile::tempdir().unwrap();
    let paths = berth_config::ConfigPaths {
        defaults: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../os/defaults.yml"),
        oem_dir: dir.path().join("oem"),
        conf_dir: dir.path().join("conf"),
    };
    let loaded = berth_config::load(&paths, &berth_config::KernelCmdline::parse(""));
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded
}

pub const VERSION: &str = berth_runtime::VERSION;
/// System Docker's socket.
pub const SYSTEM_SOCKET: &str = berth_runtime::paths::SYSTEM_DOCKER_SOCKET;
/// User Docker's socket (the `docker` service mounts only this directory).
pub const USER_SOCKET: &str = berth_runtime::paths::USER_DOCKER_SOCKET;
/// Where init mounts the read-only system image store.
pub const IMAGES_DIR: &str = "/run/berth/images";

/// Where the two engines answer: [`SYSTEM_SOCKET`] and [`USER_SOCKET`] on a running Berth
/// (`Sockets::default()`); other paths in tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sockets {
    /// System Docker's socket.
    pub system: String,
    /// User Docker's socket.
    pub user: String,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            system: SYSTEM_SOCKET.to_string(),
            user: USER_SOCKET.to_string(),
        }
    }
}
