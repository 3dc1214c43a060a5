//! Where the running system keeps its sockets and run files. One definition each: the
//! engines, PID 1, sysinit, the console and the CLI all use these.

/// System Docker's API socket (root only).
pub const SYSTEM_DOCKER_SOCKET: &str = "/run/system-docker.sock";
/// User Docker's API socket, in a directory of its own that the `docker` service mounts.
pub const USER_DOCKER_SOCKET: &str = "/run/user-docker/docker.sock";
/// rsyslog's local socket (the `syslog` service); `/dev/log` links to it.
pub const SYSLOG_SOCKET: &str = "/run/berth/log/log";
/// What sysinit brought up, written when it finishes ([`crate::SysinitReport`]).
pub const SYSINIT_REPORT: &str = "/run/berth/sysinit.json";
/// What cloud-init did this boot.
pub const CLOUD_INIT_REPORT: &str = "/run/berth/cloud-init.json";
/// The engine User Docker runs and the installed ones (JSON, `UserEngineRecord`), written by
/// the `docker` service as it starts, for `berth engine list` run without sudo.
pub const USER_DOCKER_ENGINE: &str = "/run/berth/user-docker-engine";
/// The problems found during boot, one per line (the console banner lists them).
pub const BOOT_PROBLEMS: &str = "/run/berth/boot-problems";
/// The boot logs, on the state partition when there is one.
pub const BOOT_LOG_DIR: &str = "/var/log/boot";
/// The DHCP leases netconf's dhcpcd hook records, one `<interface>.json` each
/// (`berth network status` and the ntp service read them).
pub const LEASES_DIR: &str = "/run/berth/leases";
