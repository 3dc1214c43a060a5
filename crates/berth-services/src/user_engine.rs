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

/// dockerd's environment for User Docker: the proxies of `berth.network` (so pulls and
/// `docker info` use them), then `berth.docker.environment`, which wins over them.
pub fn dockerd_environment(config: &berth_config::BerthConfig) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = berth_config::proxy::environment(&config.network)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for (key, value) in &config.docker.environment {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env
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
    let environment = dockerd_environment(&loaded.config.berth);
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
    fn network_proxies_reach_the_engine_and_docker_environment_wins() {
        let mut config = berth_config::Config::default().berth;
        config.network.http_proxy = Some("http://127.0.0.1:3128".parse().unwrap());
        config.network.no_proxy = Some("localhost".into());
        config
            .docker
            .environment
            .insert("NO_PROXY".into(), "registry.local".into());
        let env = dockerd_environment(&config);
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTP_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("http_proxy"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("NO_PROXY"), Some("registry.local"));
        assert_eq!(get("no_proxy"), Some("localhost"));
        assert_eq!(env.iter().filter(|(k, _)| k == "NO_PROXY").count(), 1);
        assert!(dockerd_environment(&berth_config::Config::default().berth).is_empty());
    }

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
