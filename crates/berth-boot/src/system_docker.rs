//! System Docker: the engine that runs every system service, on its own socket and data root,
//! with no bridge and no iptables (services use the host network).

use berth_config::schema::berth::SystemDockerConfig;
use berth_services::engine_pair::EnginePair;
use std::path::Path;

pub const SOCKET: &str = berth_runtime::paths::SYSTEM_DOCKER_SOCKET;
pub const DATA_ROOT: &str = "/var/lib/system-docker";
pub const EXEC_ROOT: &str = "/run/system-docker";
pub const PIDFILE: &str = "/run/system-docker.pid";
pub const LOG: &str = "/var/log/system-docker.log";
/// The release's engine, shared by System Docker, User Docker and the console's CLI.
pub const ENGINE_BIN: &str = "/usr/lib/berth/engine/bin";
pub const PATH: &str = "/usr/lib/berth/engine/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// System Docker as an engine unit: its own containerd, then dockerd pointed at it.
pub fn engine_pair(config: &SystemDockerConfig, debug: bool) -> EnginePair {
    EnginePair {
        bin_dir: ENGINE_BIN.into(),
        containerd_root: Path::new(DATA_ROOT).join("containerd/daemon"),
        containerd_run: Path::new(EXEC_ROOT).join("containerd"),
        dockerd_args: dockerd_flags(config, debug),
        debug: config.debug || debug,
        // The boot's first engine: it pages the programs in for User Docker too.
        prefetch: true,
    }
}

/// PID 1's child for System Docker: `berth engine-unit`, which runs the unit (program first).
pub fn command_line(config: &SystemDockerConfig, debug: bool) -> Vec<String> {
    let pair = engine_pair(config, debug);
    let mut args = vec![
        "/usr/bin/berth".to_string(),
        "engine-unit".into(),
        format!("--bin-dir={}", pair.bin_dir.display()),
        format!("--containerd-root={}", pair.containerd_root.display()),
        format!("--containerd-run={}", pair.containerd_run.display()),
    ];
    if pair.debug {
        args.push("--debug".into());
    }
    if pair.prefetch {
        args.push("--prefetch".into());
    }
    args.push("--".into());
    args.extend(pair.dockerd_args);
    args
}

/// dockerd's flags for System Docker.
pub fn dockerd_flags(config: &SystemDockerConfig, debug: bool) -> Vec<String> {
    let mut args: Vec<String> = vec![
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

/// System Docker's environment besides `PATH`: the proxies of `berth.network` (for image
/// pulls; `system-docker info` shows them). Read by init in stage 2, so a change applies at
/// the next boot.
pub fn environment(config: &berth_config::BerthConfig) -> Vec<(&'static str, String)> {
    berth_config::proxy::environment(&config.network)
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
        let args = dockerd_flags(&config, false);
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
        // PID 1 runs the engine unit; dockerd gets the flags after `--`.
        let unit = command_line(&config, false);
        assert_eq!(&unit[..2], ["/usr/bin/berth", "engine-unit"]);
        assert!(unit.iter().any(|a| a == "--prefetch"), "{unit:?}");
        let flags = unit.iter().position(|a| a == "--").unwrap();
        assert_eq!(unit[flags + 1..], args[..]);
    }

    #[test]
    fn network_proxies_are_in_the_environment() {
        let mut config = berth_config::Config::default().berth;
        assert!(environment(&config).is_empty());
        config.network.https_proxy = Some("http://127.0.0.1:3128".parse().unwrap());
        let env = environment(&config);
        assert!(env.contains(&("HTTPS_PROXY", "http://127.0.0.1:3128".to_string())));
        assert!(env.contains(&("https_proxy", "http://127.0.0.1:3128".to_string())));
    }

    #[test]
    fn debug_and_extra_args_are_appended() {
        let mut config = berth_config::Config::default().berth.system_docker;
        config.extra_args = vec!["--max-concurrent-downloads=1".into()];
        config.live_restore = false;
        let args = dockerd_flags(&config, true);
        assert!(args.iter().any(|a| a == "--debug"));
        assert!(!args.iter().any(|a| a == "--live-restore"));
        assert_eq!(
            args.last().map(String::as_str),
            Some("--max-concurrent-downloads=1")
        );
    }
}
