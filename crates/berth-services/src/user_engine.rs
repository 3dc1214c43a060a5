//! `berth user-docker`: the `docker` system service's entry point. Turns `berth.docker` into
//! dockerd's command line and execs the release's engine (mounted from the OS image).

use berth_config::schema::berth::DockerConfig;

pub const ENGINE_BIN: &str = "/usr/lib/berth/engine/bin";
pub const SOCKET_DIR: &str = "/run/user-docker";

/// dockerd's command line for User Docker (program first).
pub fn command_line(config: &DockerConfig, debug: bool) -> Vec<String> {
    let mut args = vec![
        format!("{ENGINE_BIN}/dockerd"),
        format!("--host=unix://{SOCKET_DIR}/docker.sock"),
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

/// Exec dockerd; returns only on failure (with the exit code to use).
pub fn main(loaded: &berth_config::Loaded) -> i32 {
    use std::os::unix::process::CommandExt;
    let config = &loaded.config.berth.docker;
    let args = command_line(config, loaded.config.berth.debug);
    if let Err(e) = std::fs::create_dir_all(SOCKET_DIR) {
        eprintln!("user-docker: cannot create {SOCKET_DIR}: {e}");
        return 1;
    }
    let _ = std::fs::remove_file(format!("{SOCKET_DIR}/docker.sock"));
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 1 << 20, 1 << 20);
    let mut cmd = std::process::Command::new(&args[0]);
    cmd.args(&args[1..]).env(
        "PATH",
        format!("{ENGINE_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    for (k, v) in &config.environment {
        cmd.env(k, v);
    }
    eprintln!("user-docker: {}", args.join(" "));
    let err = cmd.exec();
    eprintln!("user-docker: cannot run {}: {err}", args[0]);
    127
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_flags() {
        let mut config = berth_config::Config::default().berth.docker;
        config.insecure_registries = vec!["registry.local:5000".into()];
        config.extra_args = vec!["--max-concurrent-uploads=2".into()];
        let args = command_line(&config, false);
        assert_eq!(args[0], "/usr/lib/berth/engine/bin/dockerd");
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
