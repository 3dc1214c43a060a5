//! `berth console`: the consoles a release offers (the slim `default` one of its image store,
//! the optional `debian` one shipped as a separate artifact) and switching between them
//! (RancherOS's `ros console list|switch`).
//!
//! A switch loads the debian console's image into System Docker when it lacks it (from
//! `--from FILE`, else from the boot medium's `berth/` directory), writes `berth.console`
//! to the local configuration, and has System Docker replace the console container at once.
//! The command runs inside the console being replaced, so the replacement is done by a
//! short-lived helper container of System Docker (`console-switch`): the session that asked
//! ends when the old console goes, and the new console's ssh answers a few seconds later.

use berth_config::{ConfigPaths, ConsoleKind, Loaded};
use berth_runtime::paths::SYSTEM_DOCKER_SOCKET;
use berth_services::console_choice::{self, SERVICE};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, ImportImageOptions, RemoveContainerOptions};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};

/// How long loading a console's archive may take.
const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// The helper container that replaces the console (kept after it ran, for
/// `sudo system-docker logs console-switch`; the next switch removes it).
const SWITCH_CONTAINER: &str = "console-switch";
/// Where stage 1 mounts the boot medium; an optional console found in its `berth/` directory
/// is loaded from there.
const MEDIUM_DIR: &str = "/run/berth/medium/berth";

#[derive(Args)]
pub struct ConsoleArgs {
    #[command(subcommand)]
    command: ConsoleCommand,
}

#[derive(Subcommand)]
enum ConsoleCommand {
    /// The consoles: which one runs, which is configured, which System Docker has
    #[command(alias = "ls")]
    List {
        /// Output format
        #[arg(long, value_parser = ["text", "json"], default_value = "text")]
        format: String,
    },
    /// Run another console now and at every boot (needs sudo; this session ends)
    #[command(after_help = "The debian console is not part of the release's image store: \
                            give its artifact (console-debian.tar.zst, built next to the ISO) \
                            with --from unless the boot medium holds it in berth/. Without a \
                            state disk it is gone after a reboot (the default console runs then).")]
    Switch {
        /// default or debian
        name: ConsoleKind,
        /// The console's image archive (console-debian.tar.zst) when System Docker lacks it:
        /// a file, or an http(s) URL (fetched through the configured proxies)
        #[arg(long, value_name = "FILE|URL")]
        from: Option<String>,
    },
    /// Replace the console container from the configuration (run by `switch` in a helper
    /// container of System Docker)
    #[command(hide = true)]
    Replace,
}

/// One console as `berth console list` shows it.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct ConsoleRow {
    pub name: &'static str,
    pub image: String,
    /// The console container runs this console's image (unknown without System Docker).
    pub current: Option<bool>,
    /// `berth.console` names it.
    pub configured: bool,
    /// System Docker has its image (unknown without System Docker).
    pub available: Option<bool>,
    /// Its archive is on the boot medium, ready to load.
    pub on_medium: bool,
}

/// What System Docker said, when it could be asked.
pub struct EngineFacts {
    /// The image the console container was created from.
    pub console_image: Option<String>,
    /// The console images it has, by tag.
    pub present: Vec<String>,
}

/// The rows of `berth console list` from the configuration and what System Docker has.
pub fn rows(
    configured: ConsoleKind,
    engine: Option<&EngineFacts>,
    medium: &Path,
    version: &str,
) -> Vec<ConsoleRow> {
    ConsoleKind::ALL
        .into_iter()
        .map(|kind| {
            let image = console_choice::image_tag(kind, version);
            ConsoleRow {
                name: kind.as_str(),
                current: engine.map(|e| e.console_image.as_deref() == Some(image.as_str())),
                configured: kind == configured,
                available: engine.map(|e| e.present.contains(&image)),
                on_medium: kind != ConsoleKind::Default && medium.join(archive_name(kind)).is_file(),
                image,
            }
        })
        .collect()
}

fn archive_name(kind: ConsoleKind) -> String {
    format!("console-{}.tar.zst", kind.as_str())
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

pub fn table(rows: &[ConsoleRow]) -> String {
    let mut out = format!(
        "{:<9} {:<8} {:<11} {:<10} {}\n",
        "NAME", "CURRENT", "CONFIGURED", "AVAILABLE", "IMAGE"
    );
    for r in rows {
        let available = match (r.available, r.on_medium) {
            (Some(true), _) => "yes",
            (_, true) => "on medium",
            (v, false) => yes_no(v),
        };
        out.push_str(&format!(
            "{:<9} {:<8} {:<11} {:<10} {}\n",
            r.name,
            yes_no(r.current),
            if r.configured { "yes" } else { "no" },
            available,
            r.image
        ));
    }
    out
}

pub fn main(args: ConsoleArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth console: {e}");
            return 1;
        }
    };
    let loaded = crate::cli::load_config();
    let result = match args.command {
        ConsoleCommand::List { format } => runtime.block_on(list(&loaded, &format)),
        ConsoleCommand::Switch { name, from } => runtime.block_on(switch(&loaded, name, from.as_deref())),
        ConsoleCommand::Replace => runtime.block_on(replace()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth console: {e}");
            1
        }
    }
}

async fn engine_facts(docker: &Docker) -> EngineFacts {
    let console_image = docker
        .inspect_container(SERVICE, None)
        .await
        .ok()
        .and_then(|c| c.config)
        .and_then(|c| c.image);
    let mut present = Vec::new();
    for kind in ConsoleKind::ALL {
        let tag = console_choice::image_tag(kind, berth_boot::VERSION);
        if docker.inspect_image(&tag).await.is_ok() {
            present.push(tag);
        }
    }
    EngineFacts {
        console_image,
        present,
    }
}

async fn list(loaded: &Loaded, format: &str) -> Result<(), String> {
    let facts = match crate::service_cmd::engine(SYSTEM_DOCKER_SOCKET) {
        Ok(docker) => Some(engine_facts(&docker).await),
        Err(e) => {
            eprintln!("berth console: {e}; what runs and what System Docker has is unknown (?)");
            None
        }
    };
    let rows = rows(
        loaded.config.berth.console,
        facts.as_ref(),
        Path::new(MEDIUM_DIR),
        berth_boot::VERSION,
    );
    if format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

/// Where the archive of `kind` comes from: `--from`, else the boot medium.
pub fn archive_source(kind: ConsoleKind, from: Option<&Path>, medium: &Path) -> Result<PathBuf, String> {
    if let Some(path) = from {
        return Ok(path.to_path_buf());
    }
    let on_medium = medium.join(archive_name(kind));
    if on_medium.is_file() {
        return Ok(on_medium);
    }
    Err(format!(
        "System Docker has no image {} and the boot medium has no berth/{}: give the archive \
         built next to the ISO (target/berth/{}) with --from FILE (or --from URL)",
        console_choice::image_tag(kind, berth_boot::VERSION),
        archive_name(kind),
        archive_name(kind),
    ))
}

/// `docker load` of `archive` (a docker-archive, compressed or not) into System Docker.
async fn load(docker: &Docker, archive: &Path) -> Result<(), String> {
    let mut file =
        std::fs::File::open(archive).map_err(|e| format!("cannot read {}: {e}", archive.display()))?;
    eprintln!("loading {} into System Docker...", archive.display());
    let chunks = futures_util::stream::poll_fn(move |_| {
        let mut buf = vec![0u8; 1 << 20];
        std::task::Poll::Ready(match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(Ok::<_, std::io::Error>(bytes::Bytes::from(buf)))
            }
            Err(e) => Some(Err(e)),
        })
    });
    // Unpacking some 100 MB of layers takes minutes under emulation: more than the client's
    // usual request timeout.
    let docker = docker.clone().with_timeout(LOAD_TIMEOUT);
    let mut progress = docker.import_image_stream(
        ImportImageOptions {
            quiet: true,
            ..Default::default()
        },
        chunks,
        None,
    );
    while let Some(item) = progress.next().await {
        let info = item.map_err(|e| format!("loading {}: {e}", archive.display()))?;
        if let Some(stream) = info.stream.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            eprintln!("{stream}");
        }
    }
    Ok(())
}

async fn switch(loaded: &Loaded, kind: ConsoleKind, from: Option<&str>) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(format!(
            "switching the console needs root: run `sudo berth console switch {}`",
            kind.as_str()
        ));
    }
    let docker = crate::service_cmd::engine(SYSTEM_DOCKER_SOCKET)?;
    let tag = console_choice::image_tag(kind, berth_boot::VERSION);
    if docker.inspect_image(&tag).await.is_err() || from.is_some() {
        let mut downloaded = None;
        let from = match from {
            Some(url) if crate::fetch::is_url(url) => {
                let dest = Path::new("/var/lib/berth").join(format!("{}.download", archive_name(kind)));
                let fetched = crate::fetch::download(&crate::fetch::client(), url, &dest, 4 << 30).await;
                fetched.map_err(|e| format!("fetching the console image: {e}"))?;
                downloaded = Some(dest.clone());
                Some(dest)
            }
            other => other.map(PathBuf::from),
        };
        let archive = archive_source(kind, from.as_deref(), Path::new(MEDIUM_DIR))?;
        let loaded_image = load(&docker, &archive).await;
        if let Some(file) = downloaded {
            let _ = std::fs::remove_file(file);
        }
        loaded_image?;
        if docker.inspect_image(&tag).await.is_err() {
            return Err(format!(
                "{} loaded, but it does not hold {tag} (an archive of another release?)",
                archive.display()
            ));
        }
    }
    berth_config::set(&ConfigPaths::system(), "berth.console", kind.as_str())
        .map_err(|e| format!("writing berth.console: {e}"))?;
    let mut wanted =
        berth_services::catalog::with_included(loaded, Path::new(berth_services::catalog::CATALOG_DIR)).0;
    console_choice::set(&mut wanted, kind);
    if console_choice::current(&wanted) != Some(kind) {
        return Err(format!(
            "berth.console is now {}, but berth.services.console names an image of its own, so \
             it stays as it is",
            kind.as_str()
        ));
    }
    let facts = engine_facts(&docker).await;
    if facts.console_image.as_deref() == Some(tag.as_str()) {
        println!(
            "the {} console runs already (berth.console: {})",
            kind.as_str(),
            kind.as_str()
        );
        return Ok(());
    }
    start_replacement(&docker).await?;
    println!(
        "berth.console: {} saved. System Docker now replaces the console container: this \
         session ends with it; log in again in a few seconds.",
        kind.as_str()
    );
    Ok(())
}

/// A helper container of System Docker that runs `berth console replace` (the command
/// itself runs in the console it replaces, and would die half-way).
async fn start_replacement(docker: &Docker) -> Result<(), String> {
    let _ = docker
        .remove_container(
            SWITCH_CONTAINER,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
    let base = format!("berth/base:{}", berth_boot::VERSION);
    let binds = [
        "/usr/bin/berth:/usr/bin/berth:ro",
        "/usr/share/berth:/usr/share/berth:ro",
        "/var/lib/berth:/var/lib/berth:ro",
        "/run:/run",
    ];
    let body = ContainerCreateBody {
        image: Some(base),
        cmd: Some(vec!["/usr/bin/berth".into(), "console".into(), "replace".into()]),
        labels: Some(
            [("io.berth.scope".to_string(), "system".to_string())]
                .into_iter()
                .collect(),
        ),
        host_config: Some(HostConfig {
            binds: Some(binds.iter().map(|b| b.to_string()).collect()),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(SWITCH_CONTAINER.to_string()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(|e| format!("creating the {SWITCH_CONTAINER} helper: {e}"))?;
    docker
        .start_container(SWITCH_CONTAINER, None)
        .await
        .map_err(|e| format!("starting the {SWITCH_CONTAINER} helper: {e}"))
}

/// In the helper: bring the console up from the configuration, as sysinit does at boot (same
/// definition, same hash: the next boot keeps this container).
async fn replace() -> Result<(), String> {
    let loaded = crate::service_cmd::load_with_catalog();
    let docker = crate::service_cmd::engine(SYSTEM_DOCKER_SOCKET)?;
    let loaded =
        console_choice::fall_back_if_missing(&docker, loaded, &|p| eprintln!("berth console: {p}")).await;
    let spec = crate::service_cmd::find(&loaded, SERVICE)?;
    crate::service_cmd::up(&loaded, SERVICE, spec).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn rows_say_what_runs_what_is_configured_and_what_is_there() {
        let medium = tempfile::tempdir().unwrap();
        let facts = EngineFacts {
            console_image: Some("berth/console:1.0".into()),
            present: vec!["berth/console:1.0".into()],
        };
        let rows = rows(ConsoleKind::Debian, Some(&facts), medium.path(), "1.0");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                rows[0].name,
                rows[0].current,
                rows[0].configured,
                rows[0].available
            ),
            ("default", Some(true), false, Some(true))
        );
        assert_eq!(
            (
                rows[1].name,
                rows[1].current,
                rows[1].configured,
                rows[1].available
            ),
            ("debian", Some(false), true, Some(false))
        );
        assert_eq!(rows[1].image, "berth/console-debian:1.0");
        assert!(!rows[1].on_medium);
        std::fs::write(medium.path().join("console-debian.tar.zst"), b"x").unwrap();
        let rows = rows_without_engine(medium.path());
        assert!(rows[1].on_medium);
        assert_eq!(rows[1].current, None);
        let text = table(&rows);
        assert!(text.lines().nth(2).unwrap().contains("on medium"), "{text}");
    }

    fn rows_without_engine(medium: &Path) -> Vec<ConsoleRow> {
        rows(ConsoleKind::Default, None, medium, "1.0")
    }

    #[test]
    fn the_archive_comes_from_the_option_then_the_medium_else_the_error_says_what_to_give() {
        let medium = tempfile::tempdir().unwrap();
        let given = Path::new("/tmp/c.tar.zst");
        assert_eq!(
            archive_source(ConsoleKind::Debian, Some(given), medium.path()).unwrap(),
            given
        );
        let err = archive_source(ConsoleKind::Debian, None, medium.path()).unwrap_err();
        assert!(
            err.contains("--from FILE") && err.contains("console-debian.tar.zst"),
            "{err}"
        );
        std::fs::write(medium.path().join("console-debian.tar.zst"), b"x").unwrap();
        assert_eq!(
            archive_source(ConsoleKind::Debian, None, medium.path()).unwrap(),
            medium.path().join("console-debian.tar.zst")
        );
    }
}
