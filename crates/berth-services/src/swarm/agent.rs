//! The `swarm` service's loop: wait for User Docker, act on [`plan::decide`], write the
//! report, look again. It never fails the boot: errors are reported and retried with
//! [`plan::Backoff`]. The join token is never logged or reported.

use super::plan::{self, Backoff, EngineState, Step};
use super::token_server::{self, TOKEN_PORT, TokenServer};
use super::{SwarmReport, SwarmState};
use berth_config::schema::swarm::{AdvertiseAddr, SwarmConfig, SwarmToken};
use bollard::Docker;
use bollard::models::{LocalNodeState, SwarmInitRequest, SwarmJoinRequest};
use bollard::query_parameters::{LeaveSwarmOptions, UpdateNodeOptions};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a node in the swarm looks again (a removed node rejoins within this).
pub const WATCH: Duration = Duration::from_secs(15);
/// Where the swarm's management traffic is served on a manager.
pub const LISTEN_ADDR: &str = "0.0.0.0:2377";

/// Fetches `token_url` (the caller's HTTP client, with the machine's proxies and CAs).
pub type FetchToken = dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Sync;

/// What the loop needs from outside: the configuration (read again at every round, so that
/// `berth swarm leave` stops it), the token fetcher, how to ask a manager whether this node
/// is still in the swarm (the same kind of HTTP GET, with a short timeout) and where to report.
pub struct Agent<'a> {
    pub socket: &'a str,
    pub reload: &'a (dyn Fn() -> SwarmConfig + Sync),
    pub fetch_token: &'a FetchToken,
    pub ask_manager: &'a FetchToken,
    pub report: &'a Path,
}

impl Agent<'_> {
    /// Run until the configuration no longer asks for a swarm. Returns the exit code (0).
    pub async fn run(&self) -> i32 {
        let mut backoff = Backoff::new();
        let mut last: Option<SwarmReport> = None;
        let mut failed = false;
        // The join token last used (from any source), masked in every error.
        let mut used: Option<SwarmToken> = None;
        let mut server: Option<TokenServer> = None;
        loop {
            let config = (self.reload)();
            if !config.active() {
                let why = if config.role.is_none() {
                    "berth.swarm.role is not set"
                } else {
                    "berth.swarm.enabled is false (`berth swarm leave`)"
                };
                tracing::info!("swarm: {why}: nothing to do");
                self.write(&SwarmReport::default());
                return 0;
            }
            let role = config.role.map(|r| r.to_string());
            let outcome = match crate::client::wait_ready(self.socket, Duration::from_secs(600)).await {
                Ok(docker) => {
                    let outcome = round(&docker, &config, self, failed, &mut used).await;
                    let active = outcome.as_ref().is_ok_and(|r| r.state == SwarmState::Active);
                    server = if config.serve_token && active {
                        serve_token(&docker, server.take()).await
                    } else {
                        None
                    };
                    outcome
                }
                Err(e) => Err(e.to_string()),
            };
            failed = outcome.is_err();
            let (report, wait) = match outcome {
                Ok(mut report) => {
                    report.role = role;
                    let wait = if report.state == SwarmState::Active {
                        backoff.reset();
                        WATCH
                    } else {
                        backoff.next_wait()
                    };
                    (report, wait)
                }
                Err(error) => {
                    let error = hide_token(&error, &config, used.as_ref());
                    let wait = backoff.next_wait();
                    tracing::warn!("swarm: {error}; trying again in {}s", wait.as_secs());
                    let report = SwarmReport {
                        state: SwarmState::Error,
                        role,
                        managers: config.join.iter().map(ToString::to_string).collect(),
                        error: Some(error),
                        ..SwarmReport::default()
                    };
                    (report, wait)
                }
            };
            let changed = last.as_ref().is_none_or(|l| {
                (l.state, &l.node_id, &l.error, &l.managers)
                    != (report.state, &report.node_id, &report.error, &report.managers)
            });
            if changed && report.state != SwarmState::Error {
                tracing::info!("swarm: {}", report.summary());
            }
            self.write(&report);
            last = Some(report);
            tokio::time::sleep(wait).await;
        }
    }

    fn write(&self, report: &SwarmReport) {
        let mut report = report.clone();
        report.updated = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        if let Err(e) = report.write(self.report) {
            tracing::warn!("swarm: cannot write {}: {e}", self.report.display());
        }
    }
}

/// The engine's membership as [`plan`] sees it; `failing`: the agent's last attempt failed
/// or the engine reports an error.
fn engine_state(state: Option<LocalNodeState>, failing: bool) -> EngineState {
    match state {
        Some(LocalNodeState::ACTIVE) => EngineState::Active,
        Some(LocalNodeState::PENDING) if failing => EngineState::PendingFailed,
        Some(LocalNodeState::PENDING) => EngineState::Pending,
        Some(LocalNodeState::ERROR) => EngineState::Error,
        Some(LocalNodeState::LOCKED) => EngineState::Locked,
        _ => EngineState::Inactive,
    }
}

/// The worker token server of a manager with `serve_token`: kept while it listens on the
/// engine's advertise address, started (again) when that changes; `None` when this node is
/// not a manager or the server cannot start (logged).
async fn serve_token(docker: &Docker, current: Option<TokenServer>) -> Option<TokenServer> {
    let swarm = match docker.info().await {
        Ok(info) => info.swarm.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("swarm: docker info: {e}");
            return current;
        }
    };
    if !swarm.control_available.unwrap_or(false) {
        if current.is_some() {
            tracing::info!("swarm: no longer a manager: the worker token is not served any more");
        }
        return None;
    }
    let Some(ip) = swarm.node_addr.and_then(|a| a.parse::<IpAddr>().ok()) else {
        tracing::warn!("swarm: the engine reports no advertise address: the worker token is not served");
        return current;
    };
    let addr = SocketAddr::new(ip, TOKEN_PORT);
    if let Some(server) = current
        && server.addr == addr
    {
        return Some(server);
    }
    let subnet = match token_server::subnet_of(ip) {
        Ok(subnet) => subnet,
        Err(e) => {
            tracing::warn!("swarm: not serving the worker token: {e}");
            return None;
        }
    };
    match token_server::start(addr, subnet, EngineFacts(docker.clone())).await {
        Ok(server) => {
            tracing::info!(
                "swarm: serving the worker token at http://{addr}{} to {subnet}",
                berth_config::schema::swarm::TOKEN_PATH
            );
            Some(server)
        }
        Err(e) => {
            tracing::warn!("swarm: cannot serve the worker token on {addr}: {e}");
            None
        }
    }
}

/// What the token server answers from: this manager's engine.
struct EngineFacts(Docker);

impl token_server::SwarmFacts for EngineFacts {
    /// Only the worker token, read at every request (a rotated token is served at once).
    async fn worker_token(&self) -> Result<String, String> {
        let swarm = self.0.inspect_swarm().await.map_err(|e| e.to_string())?;
        swarm
            .join_tokens
            .and_then(|t| t.worker)
            .ok_or_else(|| "the engine returned no worker token".to_string())
    }

    async fn has_node(&self, id: &str) -> Result<bool, String> {
        match self.0.inspect_node(id).await {
            // The engine also finds nodes by name or id prefix: only this very id counts.
            Ok(node) => Ok(node.id.as_deref() == Some(id)),
            Err(e) if crate::client::is_not_found(&e) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// One look at the engine and the step it calls for.
/// `failed`: the previous round ended in an error; `used`: set to the join token used.
async fn round(
    docker: &Docker,
    config: &SwarmConfig,
    agent: &Agent<'_>,
    failed: bool,
    used: &mut Option<SwarmToken>,
) -> Result<SwarmReport, String> {
    let info = docker.info().await.map_err(|e| format!("docker info: {e}"))?;
    let swarm = info.swarm.unwrap_or_default();
    let failing = failed || swarm.error.as_deref().is_some_and(|e| !e.is_empty());
    let mut step = plan::decide(engine_state(swarm.local_node_state, failing), config);
    let is_manager = swarm.control_available.unwrap_or(false);
    let node_id = swarm.node_id.as_deref().filter(|id| !id.is_empty());
    if let (true, Some(manager), Some(id)) = (
        plan::asks_membership(&step, is_manager, config),
        &config.join,
        node_id,
    ) {
        let url = manager.membership_url(id);
        let answer = (agent.ask_manager)(url).await;
        if let Err(e) = &answer {
            tracing::debug!("swarm: {manager} did not say whether node {id} is in the swarm: {e}");
        }
        let membership = plan::Membership::from_answer(answer.as_deref().ok());
        step = plan::after_asking(step, membership);
        if step == Step::LeaveThenJoin {
            tracing::info!(
                "swarm: the manager {manager} says node {id} is not in the swarm (removed with \
                 `docker node rm`): leaving the dead membership to join again"
            );
        }
    } else if step == Step::LeaveThenJoin {
        tracing::info!(
            "swarm: the engine's membership or join failed ({}): leaving it to start again",
            swarm.error.as_deref().unwrap_or("no detail")
        );
    }
    if step == Step::LeaveThenJoin {
        leave(docker, true).await?;
        step = plan::after_leave(config);
    }
    match step {
        Step::Disabled => return Ok(SwarmReport::default()),
        Step::Wait => {
            return Ok(SwarmReport {
                state: SwarmState::Joining,
                managers: config.join.iter().map(ToString::to_string).collect(),
                error: swarm.error.filter(|e| !e.is_empty()),
                ..SwarmReport::default()
            });
        }
        Step::Init => {
            tracing::info!(
                "swarm: creating the swarm (advertising {})",
                config
                    .advertise_addr
                    .as_ref()
                    .map_or("the engine's choice".to_string(), ToString::to_string)
            );
            let request = SwarmInitRequest {
                listen_addr: Some(LISTEN_ADDR.to_string()),
                advertise_addr: config.advertise_addr.as_ref().map(AdvertiseAddr::to_string),
                ..Default::default()
            };
            docker
                .init_swarm(request)
                .await
                .map_err(|e| format!("creating the swarm: {e}"))?;
        }
        Step::Join => {
            let Some(manager) = &config.join else {
                return Err("berth.swarm.join is not set: no manager to join".to_string());
            };
            let token = join_token(config, agent.fetch_token).await?;
            *used = Some(token.clone());
            tracing::info!(
                "swarm: joining {manager} as a {}",
                config.role.map_or("node", |r| r.as_str())
            );
            let request = SwarmJoinRequest {
                listen_addr: Some(LISTEN_ADDR.to_string()),
                advertise_addr: config.advertise_addr.as_ref().map(AdvertiseAddr::to_string),
                remote_addrs: Some(vec![manager.to_string()]),
                join_token: Some(token.reveal().to_string()),
                ..Default::default()
            };
            docker
                .join_swarm(request)
                .await
                .map_err(|e| format!("joining {manager}: {e}"))?;
        }
        Step::Member | Step::LeaveThenJoin => {}
    }
    member_report(docker, config).await
}

/// The report of a node in the swarm; applies the configured labels on the way.
async fn member_report(docker: &Docker, config: &SwarmConfig) -> Result<SwarmReport, String> {
    let info = docker.info().await.map_err(|e| format!("docker info: {e}"))?;
    let swarm = info.swarm.unwrap_or_default();
    if engine_state(swarm.local_node_state, false) != EngineState::Active {
        return Ok(SwarmReport {
            state: SwarmState::Joining,
            managers: config.join.iter().map(ToString::to_string).collect(),
            ..SwarmReport::default()
        });
    }
    let node_id = swarm.node_id.unwrap_or_default();
    let is_manager = swarm.control_available.unwrap_or(false);
    let mut managers: Vec<String> = swarm
        .remote_managers
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.addr)
        .collect();
    managers.sort();
    let mut error = None;
    if let Some(role) = config.role
        && !plan::role_matches(role, is_manager)
    {
        error = Some(format!(
            "configured as a {role} but the swarm has this node as a {}: change it on a manager \
             (docker node promote|demote {node_id})",
            if is_manager { "manager" } else { "worker" }
        ));
    }
    if !config.labels.is_empty() && is_manager {
        apply_labels(docker, &node_id, config).await?;
    } else if !config.labels.is_empty() && error.is_none() {
        // A worker cannot change its own node: a manager applies labels (docs/fleet.md).
        error = Some(
            "berth.swarm.labels are applied on managers only: set them from a manager \
                      with `docker node update --label-add`"
                .to_string(),
        );
    }
    Ok(SwarmReport {
        state: SwarmState::Active,
        node_id: Some(node_id),
        role: None,
        managers,
        error,
        updated: 0,
    })
}

async fn apply_labels(docker: &Docker, node_id: &str, config: &SwarmConfig) -> Result<(), String> {
    let node = docker
        .inspect_node(node_id)
        .await
        .map_err(|e| format!("inspecting node {node_id}: {e}"))?;
    let mut spec = node.spec.unwrap_or_default();
    let current = spec.labels.clone().unwrap_or_default();
    let Some(labels) = plan::labels_update(&current, &config.labels) else {
        return Ok(());
    };
    let version = node.version.and_then(|v| v.index).unwrap_or_default();
    tracing::info!(
        "swarm: node labels {}",
        config
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    spec.labels = Some(labels);
    docker
        .update_node(
            node_id,
            spec,
            UpdateNodeOptions {
                version: i64::try_from(version).unwrap_or_default(),
            },
        )
        .await
        .map_err(|e| format!("labelling node {node_id}: {e}"))
}

/// Leave the swarm (`force`: also the last manager, or a failed membership).
pub async fn leave(docker: &Docker, force: bool) -> Result<(), String> {
    docker
        .leave_swarm(Some(LeaveSwarmOptions { force }))
        .await
        .map_err(|e| format!("leaving the swarm: {e}"))
}

/// The join token from its configured source.
async fn join_token(config: &SwarmConfig, fetch: &FetchToken) -> Result<SwarmToken, String> {
    if let Some(token) = &config.token {
        return Ok(token.clone());
    }
    if let Some(path) = &config.token_file {
        let text = std::fs::read_to_string(path.as_path())
            .map_err(|e| format!("reading the join token from {path}: {e}"))?;
        return text.parse().map_err(|e| format!("{path}: {e}"));
    }
    if let Some(url) = &config.token_url {
        let shown = url.shown();
        let text = fetch(url.to_string())
            .await
            .map_err(|e| format!("fetching the join token from {shown}: {e}"))?;
        return text.parse().map_err(|e| format!("{shown}: {e}"));
    }
    Err("no join token: set berth.swarm.token, token_file or token_url".to_string())
}

/// An engine's error message with the join token masked: the inline one and the one last used
/// (read from `token_file` or `token_url`). The engine does not echo it today; this keeps it so.
fn hide_token(message: &str, config: &SwarmConfig, used: Option<&SwarmToken>) -> String {
    config
        .token
        .iter()
        .chain(used)
        .fold(message.to_string(), |m, token| {
            m.replace(token.reveal(), "<token>")
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const TOKEN: &str =
        "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx";

    fn no_fetch() -> &'static FetchToken {
        &|_url| Box::pin(async { Err("no network in this test".to_string()) })
    }

    #[test]
    fn the_token_comes_from_a_file_checked_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        let config = SwarmConfig {
            token_file: Some(path.to_str().unwrap().parse().unwrap()),
            ..SwarmConfig::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let token = rt.block_on(join_token(&config, no_fetch())).unwrap();
        assert_eq!(token.reveal(), TOKEN);
        std::fs::write(&path, "SWMTKN-1-secret with spaces").unwrap();
        let err = rt.block_on(join_token(&config, no_fetch())).unwrap_err();
        assert!(
            err.contains("not a swarm join token") && !err.contains("secret"),
            "{err}"
        );
        let missing = SwarmConfig {
            token_file: Some("/nonexistent/token".parse().unwrap()),
            ..SwarmConfig::default()
        };
        let err = rt.block_on(join_token(&missing, no_fetch())).unwrap_err();
        assert!(err.contains("/nonexistent/token"), "{err}");
    }

    #[test]
    fn errors_never_carry_the_token() {
        let config = SwarmConfig {
            token: Some(TOKEN.parse().unwrap()),
            ..SwarmConfig::default()
        };
        let shown = hide_token(&format!("join failed: bad token {TOKEN}"), &config, None);
        assert_eq!(shown, "join failed: bad token <token>");
        // A token read from token_file or token_url is masked too.
        let from_file = SwarmConfig {
            token_file: Some("/var/lib/berth/token".parse().unwrap()),
            ..SwarmConfig::default()
        };
        let used: SwarmToken = TOKEN.parse().unwrap();
        let shown = hide_token(&format!("rejected {TOKEN}"), &from_file, Some(&used));
        assert_eq!(shown, "rejected <token>");
    }

    #[test]
    fn engine_states_map_to_the_plan() {
        use LocalNodeState as L;
        assert_eq!(engine_state(None, false), EngineState::Inactive);
        assert_eq!(engine_state(Some(L::EMPTY), false), EngineState::Inactive);
        assert_eq!(engine_state(Some(L::INACTIVE), true), EngineState::Inactive);
        assert_eq!(engine_state(Some(L::ACTIVE), true), EngineState::Active);
        assert_eq!(engine_state(Some(L::ERROR), false), EngineState::Error);
        assert_eq!(engine_state(Some(L::PENDING), false), EngineState::Pending);
        // A refused join leaves the engine pending: the agent starts over with its token.
        assert_eq!(engine_state(Some(L::PENDING), true), EngineState::PendingFailed);
    }
}
