//! `berth user-docker`: the `docker` system service's entry point. Turns `berth.docker` into
//! dockerd's command line and execs the release's engine (mounted from the OS image).

use crate::engine_pair::{self, EnginePair};
use berth_config::schema::berth::DockerConfig;
use berth_tls::{CertStore, ServerFiles};

pub const ENGINE_BIN: &str = "/usr/lib/berth/engine/bin";
use berth_runtime::paths::USER_DOCKER_SOCKET;
/// The directory of User Docker's socket (the `docker` service mounts it, not the socket).
pub const SOCKET_DIR: &str = "/run/user-docker";

/// Where the certificates given in `berth.docker` (`ca_cert`, `server_cert`, `server_key`) are
/// written for dockerd: the service's own `/run` (a tmpfs), never the state disk.
pub const CONFIG_TLS_DIR: &str = "/run/berth-docker-tls";

/// User Docker's data (the host's `/var/lib/user-docker`, mounted here).
pub const DATA_ROOT: &str = "/var/lib/docker";
/// Data roots of older engines (the host's `/var/lib/user-docker-older`): `<major>/` each.
pub const OLDER_ROOTS: &str = "/var/lib/docker-older";
/// In the data root: the engine version that last ran on it.
const ENGINE_STAMP: &str = "berth-engine-version";

/// The major version of a Docker version or Debian package version (`26.1.5+dfsg1-9` → 26).
fn major(version: &str) -> Option<u32> {
    let digits: String = version.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Where User Docker keeps its data, and why when it is not the usual place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataRoot {
    pub path: std::path::PathBuf,
    /// Set when the data in [`DATA_ROOT`] was written by a newer engine than this one.
    pub older_engine: Option<String>,
}

/// Choose the data root for an engine of version `running`, given the version that last ran
/// on [`DATA_ROOT`] (`recorded`). dockerd upgrades its data in place, but an older engine
/// (a rollback to an older release) must not open what a newer major version wrote: it gets
/// a data root of its own, and the newer engine's data stays untouched until it runs again.
pub fn choose_data_root(recorded: Option<&str>, running: &str) -> DataRoot {
    choose_data_root_for(
        recorded,
        running,
        "Boot the release with the newer engine again to get them back (sudo berth os rollback)",
    )
}

/// [`choose_data_root`], with `way_back` telling how to get the newer engine's data back.
pub fn choose_data_root_for(recorded: Option<&str>, running: &str, way_back: &str) -> DataRoot {
    match (recorded.and_then(major), major(running)) {
        (Some(last), Some(this)) if this < last => DataRoot {
            path: std::path::Path::new(OLDER_ROOTS).join(this.to_string()),
            older_engine: Some(format!(
                "User Docker's data ({DATA_ROOT}) was last used by Docker {}, newer than this \
                 engine, Docker {}: it is left untouched and this engine runs on its own data \
                 ({OLDER_ROOTS}/{this}), without those containers, images and volumes. {way_back}",
                recorded.unwrap_or_default().trim(),
                running.trim()
            )),
        },
        _ => DataRoot {
            path: DATA_ROOT.into(),
            older_engine: None,
        },
    }
}

/// The docker.io package version of the engine in [`crate::engine_choice::ENGINE_DIR`] (the
/// release's, or the installed engine mounted there).
fn running_engine_version() -> Option<String> {
    let info = crate::engine_choice::engine_info(std::path::Path::new(crate::engine_choice::ENGINE_DIR))?;
    info.packages.get("docker.io").cloned()
}

/// Pick the data root for the engine about to run, record the engine on the data it will use,
/// and say when it is a separate root: a boot problem for the release's engine (a rollback),
/// a note in the log for an engine chosen with `berth engine switch` (`switched_from` names
/// the release's engine, the way back).
fn data_root_for_this_engine(switched_from: Option<&str>) -> DataRoot {
    let Some(running) = running_engine_version() else {
        return choose_data_root(None, "");
    };
    let stamp = std::path::Path::new(DATA_ROOT).join(ENGINE_STAMP);
    let recorded = std::fs::read_to_string(&stamp).ok();
    let root = match switched_from {
        None => choose_data_root(recorded.as_deref(), &running),
        Some(release) => choose_data_root_for(
            recorded.as_deref(),
            &running,
            &format!("`sudo berth engine switch {release}` gets them back"),
        ),
    };
    match (&root.older_engine, switched_from) {
        (Some(why), None) => berth_runtime::problems::report(std::path::Path::new("/"), why),
        (Some(why), Some(_)) => eprintln!("user-docker: {why}"),
        (None, _) => {}
    }
    let record = root.path.join(ENGINE_STAMP);
    let written = std::fs::create_dir_all(&root.path).and_then(|()| std::fs::write(&record, &running));
    if let Err(e) = written {
        eprintln!(
            "user-docker: cannot record the engine version in {}: {e}",
            record.display()
        );
    }
    root
}

/// User Docker as an engine unit: its own containerd, then dockerd pointed at it; with `tls`,
/// it also serves its API on TCP with client verification.
pub fn engine_pair(config: &DockerConfig, debug: bool, tls: Option<&ServerFiles>) -> EnginePair {
    engine_pair_at(config, debug, tls, std::path::Path::new(DATA_ROOT))
}

/// [`engine_pair`] with its data in `data_root`.
pub fn engine_pair_at(
    config: &DockerConfig,
    debug: bool,
    tls: Option<&ServerFiles>,
    data_root: &std::path::Path,
) -> EnginePair {
    let mut dockerd_args = dockerd_flags(config, debug);
    if data_root != std::path::Path::new(DATA_ROOT) {
        for arg in dockerd_args.iter_mut() {
            if arg.starts_with("--data-root=") {
                *arg = format!("--data-root={}", data_root.display());
            }
        }
    }
    if let Some(files) = tls {
        // Before extra_args, which keep the last word.
        let at = dockerd_args.len() - config.extra_args.len();
        dockerd_args.splice(at..at, berth_tls::dockerd_args(files));
    }
    EnginePair {
        bin_dir: ENGINE_BIN.into(),
        containerd_root: data_root.join("containerd/daemon"),
        containerd_run: "/run/docker/containerd".into(),
        dockerd_args,
        debug: config.debug || debug,
        // System Docker, the boot's first engine, read the same programs in already.
        prefetch: false,
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

/// The certificates User Docker serves TLS with, when `berth.docker.tls` is on: those given in
/// the configuration (written to `given`), else the store's (`generated`), made when missing.
pub fn tls_files(
    config: &DockerConfig,
    given: &CertStore,
    generated: &CertStore,
) -> Result<Option<ServerFiles>, berth_tls::Error> {
    if !config.tls {
        return Ok(None);
    }
    let pems = [&config.ca_cert, &config.server_cert, &config.server_key];
    match pems {
        [Some(ca), Some(cert), Some(key)] => {
            given.write_server_files(ca, cert, key)?;
            given.checked_server_files().map(Some)
        }
        [None, None, None] => {
            generated.ensure(&berth_tls::names_here(&[]), false)?;
            generated.checked_server_files().map(Some)
        }
        _ => Err(berth_tls::Error::Config(
            "berth.docker.ca_cert, server_cert and server_key go together: give all three, \
             or none to use the certificates of `berth tls gen`"
                .into(),
        )),
    }
}

/// [`tls_files`], or, when they cannot be had, none: the engine still starts on its Unix
/// socket (the user keeps a working docker) and the error is a boot problem under `root`.
pub fn tls_or_report(
    config: &DockerConfig,
    given: &CertStore,
    generated: &CertStore,
    root: &std::path::Path,
) -> Option<ServerFiles> {
    tls_files(config, given, generated).unwrap_or_else(|e| {
        berth_runtime::problems::report(root, &format!("User Docker listens without TCP/TLS: {e}"));
        None
    })
}

/// Run User Docker (containerd, then dockerd) until it stops; returns the exit code.
/// `switched_from`: an installed engine is mounted over the release's, whose name this is.
pub fn main(loaded: &berth_config::Loaded, switched_from: Option<&str>) -> i32 {
    let config = &loaded.config.berth.docker;
    let given = CertStore::new(CONFIG_TLS_DIR);
    let generated = CertStore::new(berth_tls::TLS_DIR);
    let tls = tls_or_report(config, &given, &generated, std::path::Path::new("/"));
    let root = data_root_for_this_engine(switched_from);
    let pair = engine_pair_at(config, loaded.config.berth.debug, tls.as_ref(), &root.path);
    if let Err(e) = std::fs::create_dir_all(SOCKET_DIR) {
        eprintln!("user-docker: cannot create {SOCKET_DIR}: {e}");
        return 1;
    }
    let _ = std::fs::remove_file(USER_DOCKER_SOCKET);
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 1 << 20, 1 << 20);
    let path = format!("{ENGINE_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut environment = dockerd_environment(&loaded.config.berth);
    // An engine file's own libraries (bookworm's dockerd needs libdevmapper).
    let engine_lib = std::path::Path::new(ENGINE_BIN).with_file_name("lib");
    if engine_lib.is_dir() {
        environment.push(("LD_LIBRARY_PATH".into(), engine_lib.display().to_string()));
    }
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
    fn an_older_engine_gets_a_data_root_of_its_own() {
        let main = DataRoot {
            path: DATA_ROOT.into(),
            older_engine: None,
        };
        // First start, same engine, an upgrade (dockerd migrates in place), unknown versions.
        assert_eq!(choose_data_root(None, "26.1.5+dfsg1-9"), main);
        assert_eq!(choose_data_root(Some("26.1.5+dfsg1-9\n"), "26.1.5+dfsg1-9"), main);
        assert_eq!(choose_data_root(Some("20.10.24+dfsg1-1"), "26.1.5+dfsg1-9"), main);
        assert_eq!(choose_data_root(Some("26.0.0"), "26.1.5"), main);
        assert_eq!(choose_data_root(Some("garbage"), "26.1.5"), main);
        // A rollback to an older major: its own root, and a message saying why and what to do.
        let older = choose_data_root(Some("28.0.1+dfsg1-1"), "26.1.5+dfsg1-9");
        assert_eq!(older.path, std::path::PathBuf::from("/var/lib/docker-older/26"));
        let why = older.older_engine.unwrap();
        assert!(
            why.contains("Docker 28.0.1") && why.contains("berth os rollback"),
            "{why}"
        );
        let pair = engine_pair_at(&DockerConfig::default(), false, None, &older.path);
        assert!(
            pair.dockerd_args
                .contains(&"--data-root=/var/lib/docker-older/26".to_string())
        );
        assert_eq!(
            pair.containerd_root,
            std::path::PathBuf::from("/var/lib/docker-older/26/containerd/daemon")
        );
    }

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
        let args = engine_pair(&config, false, None).dockerd_command_line();
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
        assert!(!args.iter().any(|a| a.contains("tls") || a.contains("tcp://")));
    }

    #[test]
    fn tls_adds_the_verified_tcp_listener_before_extra_args() {
        let mut config = berth_config::Config::default().berth.docker;
        config.extra_args = vec!["--host=tcp://127.0.0.1:2375".into()];
        let files = CertStore::new("/t").server_files();
        let args = engine_pair(&config, false, Some(&files)).dockerd_command_line();
        let at = |want: &str| args.iter().position(|a| a == want);
        let unix = at("--host=unix:///run/user-docker/docker.sock").unwrap();
        let tcp = at("--host=tcp://0.0.0.0:2376").unwrap();
        assert!(unix < tcp && tcp < at("--host=tcp://127.0.0.1:2375").unwrap());
        for want in [
            "--tlsverify",
            "--tlscacert=/t/ca.pem",
            "--tlscert=/t/server-cert.pem",
            "--tlskey=/t/server-key.pem",
        ] {
            assert!(at(want).is_some(), "{want} missing: {args:?}");
        }
    }

    #[test]
    fn tls_with_certificates_gone_stays_on_the_socket_and_says_which() {
        let tmp = tempfile::tempdir().unwrap();
        let given = CertStore::new(tmp.path().join("given"));
        let generated = CertStore::new(tmp.path().join("generated"));
        let mut config = berth_config::Config::default().berth.docker;
        config.tls = true;
        let root = tmp.path().join("root");
        assert!(tls_or_report(&config, &given, &generated, &root).is_some());
        let ca = std::fs::read(generated.dir().join(berth_tls::CA_CERT)).unwrap();
        // The server's files moved away: no TCP listener, no new CA, and the reason reported.
        for f in [berth_tls::SERVER_CERT, berth_tls::SERVER_KEY] {
            std::fs::rename(generated.dir().join(f), tmp.path().join(f)).unwrap();
        }
        assert_eq!(tls_or_report(&config, &given, &generated, &root), None);
        assert_eq!(
            std::fs::read(generated.dir().join(berth_tls::CA_CERT)).unwrap(),
            ca
        );
        let problems = berth_runtime::problems::read(&root);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("User Docker listens without TCP/TLS: ")
                && problems[0].contains("(server-cert.pem, server-key.pem missing)"),
            "{problems:?}"
        );
    }

    #[test]
    fn tls_uses_given_certificates_or_makes_them_and_says_what_is_wrong() {
        let tmp = tempfile::tempdir().unwrap();
        let given = CertStore::new(tmp.path().join("given"));
        let generated = CertStore::new(tmp.path().join("generated"));
        let mut config = berth_config::Config::default().berth.docker;
        assert_eq!(tls_files(&config, &given, &generated).unwrap(), None);

        config.tls = true;
        let files = tls_files(&config, &given, &generated).unwrap().unwrap();
        assert!(files.key.starts_with(generated.dir()) && files.key.is_file());
        assert!(!given.dir().exists());

        let bundle = berth_tls::generate(&["berth".into()]).unwrap();
        config.ca_cert = Some(bundle.ca_cert.clone());
        let e = tls_files(&config, &given, &generated).unwrap_err().to_string();
        assert!(e.contains("go together"), "{e}");
        config.server_cert = Some(bundle.server_cert.clone());
        config.server_key = Some(bundle.server_key.clone());
        let files = tls_files(&config, &given, &generated).unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&files.key).unwrap(), bundle.server_key);

        // A certificate that is not one: an error naming the file, not a dockerd that fails.
        config.server_cert = Some("not a certificate".into());
        let e = tls_files(&config, &given, &generated).unwrap_err().to_string();
        assert!(
            e.contains("server-cert.pem: does not hold a PEM CERTIFICATE"),
            "{e}"
        );
        // Started anyway, without TCP, and said on the banner and in `berth status`.
        let root = tmp.path().join("root");
        assert_eq!(tls_or_report(&config, &given, &generated, &root), None);
        let problems = berth_runtime::problems::read(&root);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("User Docker listens without TCP/TLS: ")
                && problems[0].contains("server-cert.pem"),
            "{problems:?}"
        );
    }
}
