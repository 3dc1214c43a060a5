//! `berth engine`: the engines User Docker can run (`list`) and switching to another one
//! (`switch NAME|FILE|URL`), and, for the `docker` service, mounting the chosen engine before
//! User Docker starts. An engine file is verified against the release's key before it is
//! installed on the state partition, and again each time it is mounted. See docs/engines.md.

use berth_config::EngineName;
use berth_runtime::paths::{SYSTEM_DOCKER_SOCKET, USER_DOCKER_SOCKET};
use berth_services::engine_choice::{self, ENGINE_DIR, ENGINES_DIR, EngineChoice};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest engine file fetched from a URL.
const MAX_ENGINE: u64 = 1 << 30;

#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    #[command(subcommand)]
    command: EngineCommand,
}

#[derive(Subcommand, Debug)]
enum EngineCommand {
    /// The engines User Docker can run: this release's and those installed on the state disk
    #[command(visible_alias = "ls")]
    List {
        /// Output format: table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Switch User Docker to another engine, now and at every boot (needs sudo)
    #[command(after_help = "\
NAME is an engine of `berth engine list` (docker-V); FILE or URL is a signed engine file
(docker-V.engine), whose signature FILE.minisig / URL.minisig must verify against this
release's key: it is then installed on the state disk (/var/lib/berth/engines). The choice is
saved as berth.docker.engine and User Docker restarts on the engine. Containers, images and
volumes stay; an engine older than the data's (a lower major version) gets a data root of
its own, and switching back finds the newer data untouched. System Docker keeps the release's.

Examples:
  sudo berth engine switch /home/berth/docker-20.10.24.engine
  sudo berth engine switch docker-26.1.5")]
    Switch {
        /// docker-V, an engine file, or an http(s) URL of one
        engine: String,
    },
}

pub fn main(args: EngineArgs) -> i32 {
    let result = match args.command {
        EngineCommand::List { format } => list(&format),
        EngineCommand::Switch { engine } => switch(&engine),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth engine: {e}");
            1
        }
    }
}

fn release_engine() -> Result<EngineName, String> {
    engine_choice::engine_info(Path::new(ENGINE_DIR))
        .map(|info| info.name)
        .ok_or_else(|| format!("{ENGINE_DIR} does not say which engine it holds (no engine.json)"))
}

fn list(format: &str) -> Result<(), String> {
    let release = release_engine()?;
    // What the docker service recorded as it started: the engine running now, and the
    // installed engines for a user who cannot read /var/lib/berth.
    let record: Option<engine_choice::UserEngineRecord> =
        std::fs::read(berth_runtime::paths::USER_DOCKER_ENGINE)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
    let dir = Path::new(ENGINES_DIR);
    let installed = match (std::fs::read_dir(dir), &record) {
        (Err(e), Some(record)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            record.installed.clone()
        }
        _ => engine_choice::installed(dir),
    };
    let chosen = match record {
        Some(record) => Some(record.running),
        None => crate::cli::load_config().config.berth.docker.engine,
    };
    let entries = engine_choice::catalogue(&release, &installed, chosen.as_ref());
    if format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!("{:<8} {:<24} SOURCE", "CURRENT", "NAME");
    for e in &entries {
        let source = match e.source {
            "release" => "this release (OS image)".to_string(),
            _ => format!("installed ({ENGINES_DIR})"),
        };
        println!(
            "{:<8} {:<24} {source}",
            if e.current { "*" } else { "" },
            e.name.as_str()
        );
    }
    Ok(())
}

/// Removes the files of an engine being installed unless it was kept.
struct Incoming {
    file: PathBuf,
    signature: PathBuf,
    keep: bool,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.file);
            let _ = std::fs::remove_file(&self.signature);
        }
    }
}

fn switch(source: &str) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("switching the engine needs root: run `sudo berth engine switch ...`".into());
    }
    let persistent = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|t| crate::status_cmd::state_disk(&t))
        .is_some_and(|d| d.persistent);
    if !persistent {
        return Err(format!(
            "this machine has no state disk (it runs from RAM): an engine is installed in \
             {ENGINES_DIR} on the state partition; boot with one (docs/install.md)"
        ));
    }
    let release = release_engine()?;
    let dir = Path::new(ENGINES_DIR);
    let name = match source.parse::<EngineName>() {
        Ok(name) if !Path::new(source).exists() => {
            let installed = engine_choice::installed(dir);
            if name != release && !installed.contains(&name) {
                let known: Vec<&str> = std::iter::once(release.as_str())
                    .chain(installed.iter().map(EngineName::as_str))
                    .collect();
                return Err(format!(
                    "{name} is not an engine of this machine ({}): give the engine file \
                     ({}) or its URL to install it",
                    known.join(", "),
                    name.file_name()
                ));
            }
            name
        }
        _ => install(source, dir)?,
    };
    let chosen = if name == release { "null" } else { name.as_str() };
    berth_config::set(
        &berth_config::ConfigPaths::system(),
        "berth.docker.engine",
        chosen,
    )
    .map_err(|e| format!("saving berth.docker.engine: {e}"))?;
    eprintln!(
        "Saved berth.docker.engine: {}",
        if name == release {
            format!("(unset: the release's {release})")
        } else {
            name.to_string()
        }
    );
    restart_user_docker(&name)
}

/// Verify the engine file `source` (a path or URL) and install it in `dir`; returns its name.
fn install(source: &str, dir: &Path) -> Result<EngineName, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(format!(".incoming-{}.engine", std::process::id()));
    let mut incoming = Incoming {
        signature: berth_upgrade::signature_path(&file),
        file,
        keep: false,
    };
    if crate::fetch::is_url(source) {
        crate::fetch::download_signed(source, &incoming.file, &incoming.signature, MAX_ENGINE, "engine")?;
    } else {
        let path = Path::new(source);
        if !path.is_file() {
            return Err(format!(
                "{source}: no such file, and not an engine name (docker-V, see `berth engine list`)"
            ));
        }
        let signature = berth_upgrade::signature_path(path);
        if !signature.is_file() {
            return Err(format!(
                "{source}: no signature next to it ({}): an unsigned engine is refused",
                signature.display()
            ));
        }
        // The copies are what is verified and installed: nothing can change them in between.
        eprintln!("Copying {source} to {}", dir.display());
        std::fs::copy(path, &incoming.file).map_err(|e| format!("copying {source}: {e}"))?;
        std::fs::copy(&signature, &incoming.signature)
            .map_err(|e| format!("copying {}: {e}", signature.display()))?;
    }
    eprintln!("Verifying {source} against this release's key ...");
    let key = berth_upgrade::load_key(Path::new(berth_upgrade::KEY_PATH)).map_err(|e| e.to_string())?;
    berth_upgrade::engine::verify(&incoming.file, &incoming.signature, &key).map_err(|e| {
        e.to_string()
            .replace(&incoming.file.display().to_string(), source)
    })?;
    let info = read_engine_info(&incoming.file).map_err(|e| format!("{source}: {e}"))?;
    let dest = dir.join(info.name.file_name());
    std::fs::rename(&incoming.file, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    std::fs::rename(&incoming.signature, berth_upgrade::signature_path(&dest))
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    incoming.keep = true;
    eprintln!(
        "Installed {} ({}) as {}",
        info.name,
        info.packages
            .iter()
            .map(|(p, v)| format!("{p} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        dest.display()
    );
    Ok(info.name)
}

/// Mount a verified engine file at a scratch point, check it holds an engine, read its name.
fn read_engine_info(file: &Path) -> Result<berth_config::schema::engine::EngineInfo, String> {
    let point = PathBuf::from(format!("/run/berth/engine-check-{}", std::process::id()));
    std::fs::create_dir_all(&point).map_err(|e| format!("{}: {e}", point.display()))?;
    let mounted = mount_squashfs(file, &point);
    let info = mounted.and_then(|()| {
        let info = engine_choice::engine_info_file(&point)
            .ok_or_else(|| "no engine.json in it: not an engine file".to_string())?;
        if !point.join("bin/dockerd").is_file() || !point.join("bin/containerd").is_file() {
            return Err("it has no bin/dockerd or bin/containerd: not an engine".into());
        }
        Ok(info)
    });
    let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&point);
    info
}

fn mount_squashfs(file: &Path, point: &Path) -> Result<(), String> {
    let device = berth_boot::loopdev::attach(file).map_err(|e| e.to_string())?;
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some(&device.path),
        point,
        Some("squashfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        None::<&str>,
    )
    .map_err(|e| format!("cannot mount it ({}): {e}", device.path.display()))
}

/// The host's path of a data root User Docker reports (its container mounts them elsewhere).
fn host_data_root(in_container: &str) -> String {
    let mapped = [
        (
            berth_services::user_engine::OLDER_ROOTS,
            "/var/lib/user-docker-older",
        ),
        (berth_services::user_engine::DATA_ROOT, "/var/lib/user-docker"),
    ];
    for (inside, host) in mapped {
        if let Some(rest) = in_container.strip_prefix(inside) {
            return format!("{host}{rest}");
        }
    }
    in_container.to_string()
}

fn restart_user_docker(name: &EngineName) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        eprintln!(
            "Restarting User Docker on {name} (its containers stop and restart by their restart policy) ..."
        );
        let system = crate::service_cmd::engine(SYSTEM_DOCKER_SOCKET)?;
        // Without a time, the engine gives the container its own stop time: the `docker`
        // service's stop_grace_period (40 s by default), as the user configured it. The
        // request lasts that long, and the start after it.
        let stop_seconds = system
            .inspect_container("docker", None)
            .await
            .ok()
            .and_then(|c| c.config)
            .and_then(|c| c.stop_timeout)
            .unwrap_or(10);
        let system = system.with_timeout(Duration::from_secs(stop_seconds.clamp(0, 3600) as u64 + 120));
        system
            .restart_container(
                "docker",
                None::<bollard::query_parameters::RestartContainerOptions>,
            )
            .await
            .map_err(|e| format!("restarting the docker service: {e}"))?;
        let user = berth_services::client::wait_ready(USER_DOCKER_SOCKET, Duration::from_secs(180))
            .await
            .map_err(|e| e.to_string())?;
        let version = user.version().await.map_err(|e| e.to_string())?;
        let info = user.info().await.map_err(|e| e.to_string())?;
        let running = version.version.unwrap_or_default();
        let root = host_data_root(&info.docker_root_dir.unwrap_or_default());
        // Docker's version is Debian's (`20.10.24+dfsg1`).
        if EngineName::from_package_version(&running).ok().as_ref() != Some(name) {
            return Err(format!(
                "User Docker runs Docker {running}, not {name}: the engine could not be used \
                 (`berth status` says why)"
            ));
        }
        println!("User Docker runs {name} (Docker {running}), its data in {root}");
        if root.starts_with("/var/lib/user-docker-older") {
            println!(
                "This engine is older than the one that last used /var/lib/user-docker: it runs on \
                 a data root of its own, without those containers, images and volumes, which stay \
                 untouched; switching back to the newer engine finds them again"
            );
        }
        Ok(())
    })
}

/// The `docker` service's entry point: mount the chosen engine over the release's (in this
/// container only), then run User Docker. An engine that is missing or fails its checks is a
/// boot problem, and the release's engine runs.
pub fn user_docker_main() -> i32 {
    let loaded = crate::cli::load_config();
    let mut switched_from = None;
    if let Ok(release) = release_engine() {
        let chosen = loaded.config.berth.docker.engine.as_ref();
        let problem = match engine_choice::resolve(chosen, &release, Path::new(ENGINES_DIR)) {
            Ok(EngineChoice::Release) => None,
            Ok(EngineChoice::Installed { name, file }) => match mount_engine(&file) {
                Ok(()) => {
                    eprintln!("user-docker: running {name} from {}", file.display());
                    switched_from = Some(release.to_string());
                    None
                }
                Err(e) => Some(format!(
                    "User Docker runs this release's engine, {release}: the chosen engine {name} \
                     cannot be used: {e}"
                )),
            },
            Err(e) => Some(e),
        };
        if let Some(problem) = problem {
            berth_runtime::problems::report(Path::new("/"), &problem);
        }
        let record = engine_choice::UserEngineRecord {
            running: engine_choice::engine_info(Path::new(ENGINE_DIR)).map_or(release, |i| i.name),
            installed: engine_choice::installed(Path::new(ENGINES_DIR)),
        };
        let path = berth_runtime::paths::USER_DOCKER_ENGINE;
        let written = serde_json::to_vec(&record)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(path, bytes));
        if let Err(e) = written {
            eprintln!("user-docker: cannot write {path}: {e}");
        }
    }
    berth_services::user_engine::main(&loaded, switched_from.as_deref())
}

/// Verify an installed engine file again and mount it over [`ENGINE_DIR`].
fn mount_engine(file: &Path) -> Result<(), String> {
    let key = berth_upgrade::load_key(Path::new(berth_upgrade::KEY_PATH)).map_err(|e| e.to_string())?;
    berth_upgrade::engine::verify(file, &berth_upgrade::signature_path(file), &key)
        .map_err(|e| e.to_string())?;
    mount_squashfs(file, Path::new(ENGINE_DIR))?;
    if !Path::new(ENGINE_DIR).join("bin/dockerd").is_file() {
        let _ = nix::mount::umount2(ENGINE_DIR, nix::mount::MntFlags::MNT_DETACH);
        return Err(format!("{}: no bin/dockerd in it", file.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_roots_are_shown_as_the_host_has_them() {
        assert_eq!(host_data_root("/var/lib/docker"), "/var/lib/user-docker");
        assert_eq!(
            host_data_root("/var/lib/docker-older/20"),
            "/var/lib/user-docker-older/20"
        );
        assert_eq!(host_data_root("/elsewhere"), "/elsewhere");
    }
}
