//! `berth user-docker`: the `docker` system service's entry point. Turns `berth.docker` into
//! dockerd's command line and execs the release's engine (mounted from the OS image).

use crate::engine_pair::{self, EnginePair};
use berth_config::schema::berth::DockerConfig;

pub const ENGINE_BIN: &str = "/usr/lib/berth/engine/bin";
use berth_runtime::paths::USER_DOCKER_SOCKET;
/// The directory of User Docker's socket (the `docker` service mounts it, not the socket).
pub const SOCKET_DIR: &str = "/run/user-docker";

/// User Docker as an engine unit: its own containerd, then dockerd pointed at it.
pub fn engine_pair(config: &DockerConfig, debug: bool) -> EnginePair {
    EnginePair {
        bin_dir: ENGINE_BIN.into(),
        containerd_root: "/var/lib/docker/containerd/daemon".into(),
        containerd_run: "/run/docker/containerd".into(),
        dockerd_args: dockerd_flags(config, debug),
        debug: config.debug || debug,
    }
}

/// dockerd's flags for User Docker.
pub fn dockerd_flags(config: &DockerConfig, debug: bool) -> Vec<String> {
    let mut args = vec![
        format!("--host=unix://{USER_DOCKER_SOCKET}"),
        "--group=docker".into(),
        "--data-root=/var/lib/docker".into(),
        "--exec-root=/run/docker".into(),
        "--pidfile=/run/docker.pid".into(),
        format!("--storage-driver={}", config.storage_driver),
        format!("--log-driver={}", config.log_driver),
    ];
    for (k, v) in &config.log_opts {
        args.push(format!("--log-opt={k}={v}"));
    }
    for mirror in &config.registry_mirrors {
        args.push(format!("--registry-mirror={mirror}"));
    }
    for registry in &config.insecure_registries {
        args.push(format!("--insecure-registry={registry}"));
    }
    if let Some(bip) = &config.bip {
        args.push(format!("--bip={bip}"));
    }
    if config.debug || debug {
        args.push("--debug".into());
    }
    args.extend(config.extra_args.iter().cloned());
    args
}

/// Run User Docker (containerd, then dockerd) until it stops; returns the exit code.
pub fn main(loaded: &berth_config::Loaded) -> i32 {
    let config = &loaded.config.berth.docker;
    let pair = engine_pair(config, loaded.config.berth.debug);
    if let Err(e) = std::fs::create_dir_all(SOCKET_DIR) {
        eprintln!("user-docker: cannot create {SOCKET_DIR}: {e}");
        return 1;
    }
    let _ = std::fs::remove_file(USER_DOCKER_SOCKET);
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 1 << 20, 1 << 20);
    let path = format!("{ENGINE_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let environment = config.environment.clone();
    eprintln!("user-docker: {}", pair.dockerd_command_line().join(" "));
    engine_pair::run(&pair, &move |cmd| {
        cmd.env("PATH", &path);
        for (k, v) in &environment {
            cmd.env(k, v);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_flags() {
        let mut config = berth_config::Config::default().berth.docker;
        config.insecure_registries = vec!["registry.local:5000".into()];
        config.extra_args = vec!["--max-concurrent-uploads=2".into()];
        let args = engine_pair(&config, false).dockerd_command_line();
        assert_eq!(args[0], "/usr/lib/berth/engine/bin/dockerd");
        assert_eq!(args[1], "--containerd=/run/docker/containerd/containerd.sock");
        for want in [
            "--host=unix:///run/user-docker/docker.sock",
            "--group=docker",
            "--data-root=/var/lib/docker",
            "--storage-driver=overlay2",
            "--insecure-registry=registry.local:5000",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing: {args:?}");
        }
        assert_eq!(
            args.last().map(String::as_str),
            Some("--max-concurrent-uploads=2")
        );
    }
}
