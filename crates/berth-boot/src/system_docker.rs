//! System Docker: the engine that runs every system service, on its own socket and data root,
//! with no bridge and no iptables (services use the host network).

use berth_config::schema::berth::SystemDockerConfig;
use std::path::Path;

pub const SOCKET: &str = "/run/system-docker.sock";
pub const DATA_ROOT: &str = "/var/lib/system-docker";
pub const EXEC_ROOT: &str = "/run/system-docker";
pub const PIDFILE: &str = "/run/system-docker.pid";
pub const LOG: &str = "/var/log/system-docker.log";
/// The release's engine, shared by System Docker, User Docker and the console's CLI.
pub const ENGINE_BIN: &str = "/usr/lib/berth/engine/bin";
pub const PATH: &str = "/usr/lib/berth/engine/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The dockerd command line for System Docker (program first).
pub fn command_line(config: &SystemDockerConfig, debug: bool) -> Vec<String> {
    let mut args: Vec<String> = vec![
        format!("{ENGINE_BIN}/dockerd"),
        format!("--host=unix://{SOCKET}"),
        format!("--data-root={DATA_ROOT}"),
        format!("--exec-root={EXEC_ROOT}"),
        format!("--pidfile={PIDFILE}"),
        // The socket stays root's: the docker group is for User Docker only.
        "--group=root".into(),
        "--bridge=none".into(),
        "--iptables=false".into(),
        "--ip6tables=false".into(),
        "--ip-masq=false".into(),
        "--userland-proxy=false".into(),
        // System containers live under their own cgroup, apart from users' /docker.
        "--cgroup-parent=/system-docker".into(),
        format!("--storage-driver={}", config.storage_driver),
    ];
    if config.live_restore {
        // System services keep running while System Docker restarts.
        args.push("--live-restore".into());
    }
    for (key, value) in &config.log_opts {
        args.push(format!("--log-opt={key}={value}"));
    }
    if config.debug || debug {
        args.push("--debug".into());
    }
    args.extend(config.extra_args.iter().cloned());
    args
}

pub fn socket_ready() -> bool {
    std::os::unix::net::UnixStream::connect(Path::new(SOCKET)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_an_isolated_engine() {
        let config = berth_config::Config::default().berth.system_docker;
        let args = command_line(&config, false);
        for want in [
            "--host=unix:///run/system-docker.sock",
            "--data-root=/var/lib/system-docker",
            "--bridge=none",
            "--iptables=false",
            "--group=root",
            "--live-restore",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing from {args:?}");
        }
        assert!(!args.iter().any(|a| a == "--debug"));
        assert_eq!(args[0], "/usr/lib/berth/engine/bin/dockerd");
    }

    #[test]
    fn debug_and_extra_args_are_appended() {
        let mut config = berth_config::Config::default().berth.system_docker;
        config.extra_args = vec!["--max-concurrent-downloads=1".into()];
        config.live_restore = false;
        let args = command_line(&config, true);
        assert!(args.iter().any(|a| a == "--debug"));
        assert!(!args.iter().any(|a| a == "--live-restore"));
        assert_eq!(
            args.last().map(String::as_str),
            Some("--max-concurrent-downloads=1")
        );
    }
}
