//! `berth service`: the services of the configuration (system ones in System Docker, user ones
//! in User Docker) as RancherOS's `ros service` showed them: list, state, logs, start and stop.
//! A service is named as in `berth.services`; its container has the same name.

use berth_config::{Loaded, ServiceSpec};
use berth_runtime::paths::{SYSTEM_DOCKER_SOCKET, USER_DOCKER_SOCKET};
use berth_services::catalog::CATALOG_DIR;
use berth_services::graph::{Scope, scope};
use bollard::Docker;
use bollard::query_parameters::{
    LogsOptions, RestartContainerOptions, StartContainerOptions, StopContainerOptions,
};
use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;
use serde::Serialize;
use std::time::Duration;

#[derive(Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Every service of the configuration: engine, state, health and restarts
    #[command(alias = "ls")]
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The containers of the services that exist, like `docker ps -a`
    Ps {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Turn on an optional service of the release (kept in the configuration) and start it
    #[command(
        after_help = "`berth service list` shows the optional services (enabled: no). \
                            RancherOS: `ros service enable NAME`."
    )]
    Enable {
        /// The optional service's name
        name: String,
    },
    /// Turn off an optional service (kept in the configuration): stop and remove its container
    Disable {
        /// The optional service's name
        name: String,
    },
    /// Create (from its current definition) and start a service
    Up {
        /// The service's name, as in `berth service list`
        name: String,
    },
    /// Start a service's existing container
    Start { name: String },
    /// Stop a service (it stays stopped until started, or until the next boot)
    Stop {
        name: String,
        /// Seconds to wait for the service to exit before killing it
        #[arg(short, long, default_value_t = 10)]
        time: i32,
    },
    /// Stop and start a service
    Restart {
        name: String,
        /// Seconds to wait for the service to exit before killing it
        #[arg(short, long, default_value_t = 10)]
        time: i32,
    },
    /// Print a service's output (stdout and stderr)
    Logs {
        name: String,
        /// Keep printing new output
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines
        #[arg(short = 'n', long, value_name = "N")]
        tail: Option<u64>,
        /// Prefix each line with its time
        #[arg(short = 't', long)]
        timestamps: bool,
    },
}

/// One service as `list` reports it (`--format json` prints these).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceState {
    pub name: String,
    /// `system` (System Docker) or `user` (User Docker).
    pub scope: &'static str,
    /// Whether it runs: every service of `berth.services`, and the optional services that
    /// are enabled.
    pub enabled: bool,
    /// An optional service of the release's catalogue (`berth service enable|disable`).
    pub optional: bool,
    /// Its `io.berth.description` label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub image: String,
    /// The container's state (`running`, `exited`, `created`, `restarting`, ...), or
    /// `not created`, or `unknown` when its engine cannot be asked.
    pub state: String,
    /// The healthcheck's verdict (`healthy`, `unhealthy`, `starting`), if it has one.
    pub health: Option<String>,
    /// How often the engine restarted it.
    pub restarts: i64,
    /// Its exit code, once it has exited.
    pub exit_code: Option<i64>,
    /// When it last started (RFC 3339), if it did.
    pub started_at: Option<String>,
    /// Crash-looping (`restarting`: the engine waits longer before each new start), failed
    /// its healthcheck, or a long-running service that exited with an error.
    pub failing: bool,
    /// Why its engine could not say, when `state` is `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn scope_name(spec: &ServiceSpec) -> &'static str {
    match scope(spec) {
        Scope::System => "system",
        Scope::User => "user",
    }
}

pub fn socket_of(spec: &ServiceSpec) -> &'static str {
    match scope(spec) {
        Scope::System => SYSTEM_DOCKER_SOCKET,
        Scope::User => USER_DOCKER_SOCKET,
    }
}

/// A client for one engine, with a message that says what to do when it cannot be reached.
pub fn engine(socket: &str) -> Result<Docker, String> {
    let denied = |what: &str| {
        if socket == SYSTEM_DOCKER_SOCKET && !nix::unistd::geteuid().is_root() {
            format!("{what}: System Docker's socket is root's only: run this with sudo")
        } else {
            what.to_string()
        }
    };
    if let Err(e) = std::fs::metadata(socket) {
        return Err(if e.kind() == std::io::ErrorKind::PermissionDenied {
            denied(&format!("cannot open {socket}"))
        } else {
            format!("{socket}: {e} (is the engine running?)")
        });
    }
    // The client connects lazily, and then only says "client error (Connect)": a socket this
    // user may not write to is told about here, with what to do.
    if nix::unistd::access(socket, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(denied(&format!("permission denied on {socket}")));
    }
    berth_services::client::connect(socket, Duration::from_secs(30)).map_err(|e| denied(&e.to_string()))
}

/// What an engine said about one container.
pub fn state_of(
    name: &str,
    spec: &ServiceSpec,
    found: Result<Option<bollard::models::ContainerInspectResponse>, String>,
) -> ServiceState {
    let mut out = ServiceState {
        name: name.to_string(),
        scope: scope_name(spec),
        enabled: true,
        optional: false,
        description: spec.berth_label("description").map(str::to_string),
        // Until a container shows what it runs, the definition's image, with the release's
        // version filled in as the service manager would.
        image: spec
            .image
            .to_string()
            .replace("${BERTH_VERSION}", berth_boot::VERSION),
        state: "not created".into(),
        health: None,
        restarts: 0,
        exit_code: None,
        started_at: None,
        failing: false,
        error: None,
    };
    match found {
        Err(e) => {
            out.state = "unknown".into();
            out.error = Some(e);
        }
        Ok(None) => {}
        Ok(Some(c)) => {
            if let Some(image) = c.config.and_then(|c| c.image) {
                out.image = image;
            }
            out.restarts = c.restart_count.unwrap_or(0);
            if let Some(s) = c.state {
                out.state = s
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".into());
                out.health = s
                    .health
                    .and_then(|h| h.status)
                    .map(|h| h.to_string())
                    .filter(|h| !h.is_empty() && h != "none");
                if out.state == "exited" {
                    out.exit_code = s.exit_code;
                }
                out.started_at = s.started_at.filter(|t| !t.starts_with("0001-"));
            }
        }
    }
    let crashed =
        out.state == "exited" && out.exit_code.unwrap_or(0) != 0 && berth_services::graph::detached(spec);
    // Between two crashes the engine says `restarting`; but a start can take longer than the
    // crash itself (seconds, on a slow machine), so a service restarted by its policy again
    // and again, and started again lately, is crash-looping too.
    let looping = out.restarts >= CRASH_LOOP_RESTARTS
        && out
            .started_at
            .as_deref()
            .and_then(seconds_since)
            .is_some_and(|s| s < CRASH_LOOP_WINDOW_SECS);
    out.failing =
        out.state == "restarting" || out.health.as_deref() == Some("unhealthy") || crashed || looping;
    out
}

/// Restarts by the engine's policy after which a service that started again within
/// [`CRASH_LOOP_WINDOW_SECS`] counts as crash-looping.
const CRASH_LOOP_RESTARTS: i64 = 3;
const CRASH_LOOP_WINDOW_SECS: f64 = 120.0;

/// Seconds from an RFC 3339 time (as the engine writes them) to now.
fn seconds_since(rfc3339: &str) -> Option<f64> {
    let then = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    Some((time::OffsetDateTime::now_utc() - then).as_seconds_f64())
}

/// The state of every service of the configuration, system ones first, each engine asked once
/// per container (an engine that cannot be reached makes its services `unknown`).
pub async fn states(loaded: &Loaded) -> Vec<ServiceState> {
    let mut system = Vec::new();
    let mut user = Vec::new();
    let mut engines: Vec<(&'static str, Result<Docker, String>)> = Vec::new();
    for (name, spec) in &loaded.config.berth.services {
        let socket = socket_of(spec);
        if !engines.iter().any(|(s, _)| *s == socket) {
            engines.push((socket, engine(socket)));
        }
        let found = match engines.iter().find(|(s, _)| *s == socket).map(|(_, e)| e) {
            Some(Ok(docker)) => match docker.inspect_container(name.as_str(), None).await {
                Ok(c) => Ok(Some(c)),
                Err(e) if berth_services::client::is_not_found(&e) => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            Some(Err(e)) => Err(e.clone()),
            None => Err("no engine".into()),
        };
        let state = state_of(name.as_str(), spec, found);
        if state.scope == "system" {
            system.push(state);
        } else {
            user.push(state);
        }
    }
    system.extend(user);
    // The optional services that are off, after the others.
    let (catalog, _) = berth_services::catalog::read(std::path::Path::new(CATALOG_DIR));
    let included = &loaded.config.berth.services_include;
    for state in system.iter_mut() {
        if catalog.iter().any(|e| e.name == state.name)
            && included.iter().any(|(n, on)| n.as_str() == state.name && *on)
        {
            state.optional = true;
        }
    }
    for entry in catalog {
        if !system.iter().any(|s| s.name == entry.name) {
            let mut state = state_of(&entry.name, &entry.spec, Ok(None));
            state.state = "disabled".into();
            state.enabled = false;
            state.optional = true;
            system.push(state);
        }
    }
    system
}

/// Text lines for `list`, aligned like `docker ps`.
pub fn table(states: &[ServiceState]) -> String {
    let rows: Vec<[String; 6]> = states
        .iter()
        .map(|s| {
            let mut state = match (s.state.as_str(), s.exit_code) {
                ("exited", Some(code)) => format!("exited ({code})"),
                (state, _) => state.to_string(),
            };
            if s.failing {
                state.push_str(", failing");
            }
            [
                s.name.clone(),
                s.scope.to_string(),
                state,
                s.health.clone().unwrap_or_else(|| "-".into()),
                s.restarts.to_string(),
                s.image.clone(),
            ]
        })
        .collect();
    let header = ["NAME", "SCOPE", "STATE", "HEALTH", "RESTARTS", "IMAGE"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The configuration with the enabled optional services among `berth.services`.
pub fn load_with_catalog() -> Loaded {
    berth_services::catalog::with_included(&crate::cli::load_config(), std::path::Path::new(CATALOG_DIR)).0
}

/// Bring `name` up in its engine from its current definition.
pub async fn up(loaded: &Loaded, name: &str, spec: &ServiceSpec) -> Result<(), String> {
    let docker = engine(socket_of(spec))?;
    let engine = berth_services::up::Engine {
        docker,
        env: std::sync::Arc::new(berth_services::spec::Environment::of(&loaded.config.berth)),
        system_scope: scope(spec) == Scope::System,
        prestart: std::sync::Arc::new(|_: &str| None),
        registry_auths: std::sync::Arc::new(loaded.config.berth.registry_auths.clone()),
        rerun_oneshots: true,
    };
    let outcome = berth_services::up::up_service(&engine, name, spec)
        .await
        .map_err(|e| e.to_string())?;
    println!("{name}: {outcome:?}");
    Ok(())
}

/// The optional service `name`, or an error that says which there are.
fn optional(loaded: &Loaded, name: &str) -> Result<berth_services::catalog::Entry, String> {
    if let Some((key, _)) = loaded
        .config
        .berth
        .services
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .filter(|_| {
            !loaded
                .config
                .berth
                .services_include
                .iter()
                .any(|(n, on)| n.as_str() == name && *on)
        })
    {
        return Err(format!(
            "{key} is defined under berth.services, so it always runs; remove it there \
             (`berth config set berth.services.{key} ''`) to stop running it"
        ));
    }
    let (entries, _) = berth_services::catalog::read(std::path::Path::new(CATALOG_DIR));
    let known: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    entries.into_iter().find(|e| e.name == name).ok_or_else(|| {
        format!(
            "the release has no optional service {name:?} (it has: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    })
}

/// Write `berth.services_include.NAME` to the local configuration.
fn include(name: &str, on: bool) -> Result<(), String> {
    let key = format!("berth.services_include.{name}");
    berth_config::set(
        &berth_config::ConfigPaths::system(),
        &key,
        if on { "true" } else { "false" },
    )
    .map_err(|e| format!("writing {key}: {e}"))?;
    Ok(())
}

/// The service called `name`, or an error that says where to look.
pub fn find<'a>(loaded: &'a Loaded, name: &str) -> Result<&'a ServiceSpec, String> {
    loaded
        .config
        .berth
        .services
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, s)| s)
        .ok_or_else(|| {
            format!("no service named {name:?} in berth.services; `berth service list` shows them")
        })
}

pub fn main(args: ServiceArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth service: {e}");
            return 1;
        }
    };
    let loaded = load_with_catalog();
    match runtime.block_on(run(args.command, &loaded)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth service: {e}");
            1
        }
    }
}

async fn run(command: ServiceCommand, loaded: &Loaded) -> Result<(), String> {
    match command {
        ServiceCommand::List { format } => {
            let states = states(loaded).await;
            print_states(&states, format)
        }
        ServiceCommand::Ps { format } => {
            let states: Vec<ServiceState> = states(loaded)
                .await
                .into_iter()
                .filter(|s| s.state != "not created")
                .collect();
            print_states(&states, format)
        }
        ServiceCommand::Up { name } => up(loaded, &name, find(loaded, &name)?).await,
        ServiceCommand::Enable { name } => {
            let entry = optional(loaded, &name)?;
            include(&name, true)?;
            eprintln!("{name} enabled (berth.services_include.{name}: true); starting it");
            up(loaded, &name, &entry.spec).await
        }
        ServiceCommand::Disable { name } => {
            let entry = optional(loaded, &name)?;
            include(&name, false)?;
            eprintln!("{name} disabled (berth.services_include.{name}: false)");
            let docker = engine(socket_of(&entry.spec))?;
            let grace = entry
                .spec
                .stop_grace_period
                .map_or(10, |t| i32::try_from(t.get().as_secs()).unwrap_or(i32::MAX));
            let stop = StopContainerOptions {
                t: Some(grace),
                ..Default::default()
            };
            match docker.stop_container(&name, Some(stop)).await {
                Ok(()) => {}
                Err(e) if berth_services::client::is_not_found(&e) => {}
                // 304: already stopped.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {}
                Err(e) => return Err(format!("stopping {name}: {e}")),
            }
            let options = bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            match docker.remove_container(&name, Some(options)).await {
                Ok(()) => println!("{name}: removed"),
                Err(e) if berth_services::client::is_not_found(&e) => {}
                Err(e) => return Err(format!("removing {name}'s container: {e}")),
            }
            Ok(())
        }
        ServiceCommand::Start { name } => {
            let docker = engine(socket_of(find(loaded, &name)?))?;
            docker
                .start_container(&name, None::<StartContainerOptions>)
                .await
                .map_err(|e| not_created(&name, e))?;
            println!("{name}");
            Ok(())
        }
        ServiceCommand::Stop { name, time } => {
            let docker = engine(socket_of(find(loaded, &name)?))?;
            let options = StopContainerOptions {
                t: Some(time),
                ..Default::default()
            };
            docker
                .stop_container(&name, Some(options))
                .await
                .map_err(|e| not_created(&name, e))?;
            println!("{name}");
            Ok(())
        }
        ServiceCommand::Restart { name, time } => {
            let docker = engine(socket_of(find(loaded, &name)?))?;
            let options = RestartContainerOptions {
                t: Some(time),
                ..Default::default()
            };
            docker
                .restart_container(&name, Some(options))
                .await
                .map_err(|e| not_created(&name, e))?;
            println!("{name}");
            Ok(())
        }
        ServiceCommand::Logs {
            name,
            follow,
            tail,
            timestamps,
        } => {
            let docker = engine(socket_of(find(loaded, &name)?))?;
            print_logs(&docker, &name, follow, tail, timestamps).await
        }
    }
}

fn not_created(name: &str, e: bollard::errors::Error) -> String {
    if berth_services::client::is_not_found(&e) {
        format!("service {name} has no container yet: `sudo berth service up {name}` creates it")
    } else {
        format!("{name}: {e}")
    }
}

fn print_states(states: &[ServiceState], format: Format) -> Result<(), String> {
    match format {
        Format::Json => {
            let text = serde_json::to_string_pretty(states).map_err(|e| e.to_string())?;
            println!("{text}");
        }
        Format::Text => print!("{}", table(states)),
    }
    Ok(())
}

/// A container's output, stdout to stdout and stderr to stderr, as `docker logs` prints it.
pub async fn print_logs(
    docker: &Docker,
    name: &str,
    follow: bool,
    tail: Option<u64>,
    timestamps: bool,
) -> Result<(), String> {
    use std::io::Write;
    let options = LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        timestamps,
        tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
        ..Default::default()
    };
    let mut stream = docker.logs(name, Some(options));
    while let Some(chunk) = stream.next().await {
        match chunk.map_err(|e| not_created(name, e))? {
            bollard::container::LogOutput::StdErr { message } => {
                let _ = std::io::stderr().write_all(&message);
            }
            other => {
                let _ = std::io::stdout().write_all(&other.into_bytes());
            }
        }
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerConfig, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, Health,
        HealthStatusEnum,
    };

    fn spec(yaml: &str) -> ServiceSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn a_missing_container_is_not_created_and_an_unreachable_engine_unknown() {
        let s = spec("image: berth/ntp:1\nlabels: {io.berth.scope: system}\n");
        let missing = state_of("ntp", &s, Ok(None));
        assert_eq!(
            (missing.scope, missing.state.as_str(), missing.image.as_str()),
            ("system", "not created", "berth/ntp:1")
        );
        let unknown = state_of("ntp", &s, Err("permission denied".into()));
        assert_eq!(unknown.state, "unknown");
        assert_eq!(unknown.error.as_deref(), Some("permission denied"));
        // A service without io.berth.scope runs in User Docker, as in RancherOS.
        assert_eq!(state_of("web", &spec("image: nginx\n"), Ok(None)).scope, "user");
    }

    #[test]
    fn an_inspected_container_gives_state_health_restarts_and_exit_code() {
        let s = spec("image: berth/x:${BERTH_VERSION}\nlabels: {io.berth.scope: system}\n");
        let c = ContainerInspectResponse {
            restart_count: Some(3),
            config: Some(ContainerConfig {
                image: Some("berth/x:0.1.0".into()),
                ..Default::default()
            }),
            state: Some(ContainerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(2),
                started_at: Some("2026-12-06T10:00:00Z".into()),
                health: Some(Health {
                    status: Some(HealthStatusEnum::UNHEALTHY),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let st = state_of("x", &s, Ok(Some(c)));
        assert_eq!(st.state, "exited");
        assert_eq!(st.exit_code, Some(2));
        assert_eq!(st.restarts, 3);
        assert_eq!(st.health.as_deref(), Some("unhealthy"));
        assert_eq!(st.image, "berth/x:0.1.0");
        assert!(st.failing, "exited with an error and unhealthy");
        let text = table(&[st]);
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("NAME"));
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "x",
                "system",
                "exited",
                "(2),",
                "failing",
                "unhealthy",
                "3",
                "berth/x:0.1.0"
            ]
        );
    }

    #[test]
    fn a_never_started_container_has_no_start_time() {
        let s = spec("image: a\n");
        let c = ContainerInspectResponse {
            state: Some(ContainerState {
                status: Some(ContainerStateStatusEnum::CREATED),
                started_at: Some("0001-01-01T00:00:00Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let st = state_of("a", &s, Ok(Some(c)));
        assert_eq!((st.state.as_str(), st.started_at), ("created", None));
    }

    #[test]
    fn a_restarting_service_is_failing_and_a_finished_oneshot_is_not() {
        let state = |yaml: &str, status, code| {
            let c = ContainerInspectResponse {
                state: Some(ContainerState {
                    status: Some(status),
                    exit_code: Some(code),
                    ..Default::default()
                }),
                ..Default::default()
            };
            state_of("s", &spec(yaml), Ok(Some(c)))
        };
        assert!(state("image: a\n", ContainerStateStatusEnum::RESTARTING, 1).failing);
        assert!(!state("image: a\n", ContainerStateStatusEnum::RUNNING, 0).failing);
        let oneshot = "image: a\nlabels: {io.berth.detach: 'false'}\n";
        assert!(!state(oneshot, ContainerStateStatusEnum::EXITED, 1).failing);
        assert!(state("image: a\n", ContainerStateStatusEnum::EXITED, 1).failing);
    }

    #[test]
    fn a_service_restarted_again_and_again_and_started_lately_is_failing() {
        let running = |restarts: i64, started: time::OffsetDateTime| {
            let c = ContainerInspectResponse {
                restart_count: Some(restarts),
                state: Some(ContainerState {
                    status: Some(ContainerStateStatusEnum::RUNNING),
                    started_at: started
                        .format(&time::format_description::well_known::Rfc3339)
                        .ok(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            state_of("s", &spec("image: a\n"), Ok(Some(c)))
        };
        let now = time::OffsetDateTime::now_utc();
        assert!(running(7, now - time::Duration::seconds(5)).failing);
        assert!(!running(1, now - time::Duration::seconds(5)).failing);
        assert!(
            !running(7, now - time::Duration::minutes(10)).failing,
            "it settled"
        );
    }
}
