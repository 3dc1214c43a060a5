//! `berth swarm status|token|leave` and the `swarm` service's entry point (`berth
//! swarm-agent`). The logic is in `berth_services::swarm`.

use berth_config::ConfigPaths;
use berth_runtime::paths::{SYSTEM_DOCKER_SOCKET, USER_DOCKER_SOCKET};
use berth_services::swarm::{REPORT, SwarmReport, SwarmState, agent};
use clap::{Subcommand, ValueEnum};
use std::path::Path;
use std::time::Duration;

/// The system service that runs the agent.
const SERVICE: &str = "swarm";
/// The agent's log in the boot logs.
const LOG: &str = "/var/log/boot/swarm.log";

#[derive(Subcommand)]
pub enum SwarmCommand {
    /// This node's swarm membership: state, node id, role, managers, last error
    Status {
        #[arg(long, value_enum, default_value_t = crate::service_cmd::Format::Text)]
        format: crate::service_cmd::Format,
    },
    /// Print the token another machine joins with (on a manager; needs sudo)
    #[command(
        after_help = "Example, on the first manager:\n  sudo berth swarm token worker > token\n\
                            then give it to the next machine as berth.swarm.token or token_file"
    )]
    Token {
        #[arg(value_enum)]
        role: TokenRole,
    },
    /// Leave the swarm and keep this machine out of it (berth.swarm.enabled: false); needs sudo
    Leave {
        /// Leave even as the last manager (the swarm is lost), or with the managers unreachable
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TokenRole {
    Worker,
    Manager,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

pub fn main(command: SwarmCommand) -> i32 {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            match command {
                SwarmCommand::Status { format } => status(format),
                SwarmCommand::Token { role } => token(role).await,
                SwarmCommand::Leave { force } => leave(force).await,
            }
        })
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth swarm: {e}");
            1
        }
    }
}

fn status(format: crate::service_cmd::Format) -> Result<(), String> {
    let report = SwarmReport::read(Path::new(REPORT)).unwrap_or_default();
    match format {
        crate::service_cmd::Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
            );
        }
        crate::service_cmd::Format::Text => {
            let dash = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".to_string());
            println!("State:     {}", report.state.as_str());
            println!("Role:      {}", dash(report.role.as_ref()));
            println!("Node ID:   {}", dash(report.node_id.as_ref()));
            println!(
                "Managers:  {}",
                if report.managers.is_empty() {
                    "-".to_string()
                } else {
                    report.managers.join(" ")
                }
            );
            if let Some(error) = &report.error {
                println!("Error:     {error}");
            }
            if report.state == SwarmState::Disabled {
                println!("(berth.swarm.role is not set, or the machine left: see docs/fleet.md)");
            }
        }
    }
    if report.state == SwarmState::Error {
        return Err("the last attempt failed (see Error above and /var/log/boot/swarm.log)".to_string());
    }
    Ok(())
}

fn require_root(what: &str) -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(format!("{what} needs root: run it with sudo"))
    }
}

async fn token(role: TokenRole) -> Result<(), String> {
    require_root("printing a join token")?;
    let docker = crate::service_cmd::engine(USER_DOCKER_SOCKET)?;
    let swarm = docker
        .inspect_swarm()
        .await
        .map_err(|e| format!("this node is not a swarm manager ({e}); run it on a manager"))?;
    let tokens = swarm.join_tokens.unwrap_or_default();
    let token = match role {
        TokenRole::Worker => tokens.worker,
        TokenRole::Manager => tokens.manager,
    };
    let token = token.ok_or("the engine returned no token")?;
    println!("{token}");
    Ok(())
}

async fn leave(force: bool) -> Result<(), String> {
    require_root("leaving the swarm")?;
    // The agent stops first, so that it does not rejoin between the leave and the new setting.
    let system = crate::service_cmd::engine(SYSTEM_DOCKER_SOCKET)?;
    let stop = bollard::query_parameters::StopContainerOptions {
        t: Some(10),
        ..Default::default()
    };
    match system.stop_container(SERVICE, Some(stop)).await {
        Ok(()) => {}
        Err(e) if berth_services::client::is_not_found(&e) => {}
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => {}
        Err(e) => return Err(format!("stopping the {SERVICE} service: {e}")),
    }
    let user = crate::service_cmd::engine(USER_DOCKER_SOCKET)?;
    if let Err(e) = agent::leave(&user, force).await {
        let _ = system.start_container(SERVICE, None).await;
        return Err(if force {
            e
        } else {
            format!("{e} (the last manager leaves with --force, which ends the swarm)")
        });
    }
    berth_config::set(&ConfigPaths::system(), "berth.swarm.enabled", "false")
        .map_err(|e| format!("left the swarm, but keeping it out failed: {e}"))?;
    if let Err(e) = SwarmReport::default().write(Path::new(REPORT)) {
        eprintln!("berth swarm: cannot write {REPORT}: {e}");
    }
    println!(
        "Left the swarm. berth.swarm.enabled is now false, so the machine stays out after a reboot \
         (`sudo berth config set berth.swarm.enabled true` lets it join again)."
    );
    Ok(())
}

/// The `swarm` service's entry point.
pub fn agent_main() -> i32 {
    let loaded = crate::cli::load_config();
    berth_runtime::log::init("swarm", loaded.config.berth.debug);
    if let Err(e) = berth_runtime::log::attach_file(Path::new(LOG)) {
        tracing::warn!("cannot write {LOG}: {e}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("swarm: {e}");
            return 1;
        }
    };
    let reload = || crate::cli::load_config().config.berth.swarm;
    let fetch: &agent::FetchToken = &|url: String| Box::pin(get_text(url, Duration::from_secs(30)));
    // A manager that does not answer at once is away (rebooting, cut off): ask again later.
    let ask: &agent::FetchToken = &|url: String| Box::pin(get_text(url, Duration::from_secs(5)));
    let agent = agent::Agent {
        socket: USER_DOCKER_SOCKET,
        reload: &reload,
        fetch_token: fetch,
        ask_manager: ask,
        report: Path::new(REPORT),
    };
    rt.block_on(agent.run())
}

/// The body of a 200 answer to a GET of `url`, with the machine's proxies and CAs.
async fn get_text(url: String, timeout: Duration) -> Result<String, String> {
    let client = crate::fetch::client();
    let response = client.get(&url, &[], timeout).await.map_err(|e| e.to_string())?;
    if response.status != 200 {
        return Err(format!("HTTP {}", response.status));
    }
    String::from_utf8(response.body).map_err(|_| "the answer is not text".to_string())
}
