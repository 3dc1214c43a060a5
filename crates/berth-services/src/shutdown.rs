//! The container part of the shutdown: user containers first (through User Docker), then the
//! user engine, the other system services, and the console last. User containers are stopped
//! by their engine as it shuts down, or one by one through its API first when the engine would
//! leave them running (live-restore).

use crate::{Sockets, client, graph};
use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, StopContainerOptions};
use std::time::Duration;

async fn running(docker: &Docker) -> Vec<(String, String)> {
    match docker
        .list_containers(Some(ListContainersOptions::default()))
        .await
    {
        Ok(list) => list
            .into_iter()
            .filter_map(|c| {
                let id = c.id?;
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
                Some((id, name))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// How long an engine may take to answer a ping during the shutdown.
const PING_LIMIT: Duration = Duration::from_secs(10);

/// Whether the engine answers. The clients' request timeout is the whole shutdown's limit,
/// since a stop request lasts as long as the container's grace period; a ping should not.
async fn answers(docker: &Docker) -> Result<(), String> {
    match tokio::time::timeout(PING_LIMIT, docker.ping()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", PING_LIMIT.as_secs())),
    }
}

/// Whether the engine keeps its containers running when it stops (`--live-restore`).
async fn live_restore(docker: &Docker) -> bool {
    match tokio::time::timeout(PING_LIMIT, docker.info()).await {
        Ok(Ok(info)) => info.live_restore_enabled.unwrap_or(false),
        _ => false,
    }
}

async fn stop_set(docker: &Docker, set: &[(String, String)], report: &mut Vec<String>) {
    let stops = set.iter().map(|(id, name)| {
        let docker = docker.clone();
        async move {
            // No `t`: each container gets its own grace period between the stop signal and
            // SIGKILL (a service's `stop_grace_period`, else the engine's 10 seconds).
            let options = StopContainerOptions::default();
            let started = std::time::Instant::now();
            let result = docker.stop_container(id, Some(options)).await;
            (name.clone(), result, started.elapsed())
        }
    });
    // Each stop's own time: a service slow to stop is what makes a shutdown slow.
    for (name, result, took) in futures_util::future::join_all(stops).await {
        match result {
            Ok(()) => report.push(format!("stopped {name} ({:.1}s)", took.as_secs_f64())),
            Err(e) => report.push(format!("stopping {name}: {e}")),
        }
    }
}

/// Stop everything, leaving `keep` (the helper running this in exec mode) alone.
pub async fn stop_all(limit: Duration, keep: Option<&str>) -> Vec<String> {
    stop_all_in(&Sockets::default(), limit, keep).await
}

/// [`stop_all`] for the engines on `sockets`.
pub async fn stop_all_in(sockets: &Sockets, limit: Duration, keep: Option<&str>) -> Vec<String> {
    let mut report = Vec::new();
    let work = async {
        let user = match client::connect(&sockets.user, limit) {
            Ok(user) if std::path::Path::new(&sockets.user).exists() && answers(&user).await.is_ok() => {
                Some(user)
            }
            _ => None,
        };
        // Connecting alone does not reach the engine: ask it, so that a dead System Docker
        // (a stale socket) is reported rather than taken for one without containers.
        let system = match client::connect(&sockets.system, limit) {
            Ok(system) => match answers(&system).await {
                Ok(()) => Some(system),
                Err(e) => {
                    report.push(format!(
                        "System Docker is not reachable at {}: {e}; skipping system services",
                        sockets.system
                    ));
                    None
                }
            },
            Err(e) => {
                report.push(format!(
                    "System Docker is not reachable ({e}): skipping system services"
                ));
                None
            }
        };
        let all: Vec<(String, String)> = match &system {
            Some(system) => running(system)
                .await
                .into_iter()
                .filter(|(_, n)| Some(n.as_str()) != keep)
                .collect(),
            None => Vec::new(),
        };
        let (engine, rest): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|(_, n)| n == graph::USER_ENGINE_SERVICE);
        let (console, others): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(_, n)| n == "console");
        // 0. A user engine with live-restore (`berth.docker.extra_args`) leaves its
        // containers running when it stops; they would only meet the final SIGKILL. Stop
        // them through its API first, each with its own grace period.
        if let Some(user) = &user
            && live_restore(user).await
        {
            let containers = running(user).await;
            if !containers.is_empty() {
                report.push(format!(
                    "User Docker runs with live-restore, which leaves containers running when it \
                     stops: stopping its {} running containers first",
                    containers.len()
                ));
                stop_set(user, &containers, &mut report).await;
            }
        }
        // 1. The user engine: dockerd stops its own containers as it shuts down. Stopped that
        // way (not one by one through the API, which marks them stopped by hand), containers
        // with `--restart unless-stopped` or `always` come back at the next boot.
        if let (Some(system), false) = (&system, engine.is_empty()) {
            if let Some(user) = &user {
                let n = running(user).await.len();
                report.push(format!(
                    "stopping User Docker, which stops its {n} running containers"
                ));
            }
            stop_set(system, &engine, &mut report).await;
        }
        // 2. A User Docker that outlived that (not run by the docker service): its containers.
        if let Some(user) = &user
            && answers(user).await.is_ok()
        {
            let containers = running(user).await;
            if !containers.is_empty() {
                report.push(format!("stopping {} user containers", containers.len()));
                stop_set(user, &containers, &mut report).await;
            }
        }
        // 3. The other system services, then the console.
        if let Some(system) = &system {
            for set in [&others, &console] {
                if !set.is_empty() {
                    stop_set(system, set, &mut report).await;
                }
            }
            let stopped: Vec<&String> = [&engine, &others, &console]
                .into_iter()
                .flatten()
                .map(|(id, _)| id)
                .collect();
            // 4. One whose start was under way when the list was made (System Docker's own
            // stop would not count as a stop by hand, and its restart policy would start it
            // at the next boot, outside the services' order).
            // The engine's list may still show one it just stopped for a moment: the ones
            // stopped above are not counted again.
            let late: Vec<_> = running(system)
                .await
                .into_iter()
                .filter(|(id, n)| Some(n.as_str()) != keep && !stopped.contains(&id))
                .collect();
            if !late.is_empty() {
                report.push(format!(
                    "{} system containers started while the others stopped: stopping them",
                    late.len()
                ));
                stop_set(system, &late, &mut report).await;
            }
        }
    };
    if tokio::time::timeout(limit, work).await.is_err() {
        report.push(format!("containers did not stop within {}s", limit.as_secs()));
    }
    report
}
