//! Bringing services up in one engine: create (or keep, when its definition is unchanged),
//! start, and for `detach: "false"` services wait for them to exit. Independent services
//! start concurrently; a service starts once everything it waits for has finished, even if
//! that failed, so that a broken service never keeps the console from coming up.

use crate::client::is_not_found;
use crate::graph::{self, ServiceGraph};
use crate::spec::{self, Environment};
use berth_config::ServiceSpec;
use berth_runtime::timeline;
use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use indexmap::IndexMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Created only (`createonly`).
    Created,
    /// Started (new or existing container).
    Started,
    /// Already running with the same definition.
    AlreadyRunning,
    /// A `detach: "false"` service that ran and exited with this code.
    Exited(i64),
}

impl From<Outcome> for berth_runtime::ServiceOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Created => Self::Created,
            Outcome::Started => Self::Started,
            Outcome::AlreadyRunning => Self::AlreadyRunning,
            Outcome::Exited(code) => Self::Exited { code },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(
        "service {service}: image {image} is not in the engine ({message}); is it a system image of this Berth version?"
    )]
    MissingImage {
        service: String,
        image: String,
        message: String,
    },
    #[error("service {service}: {action}: {message}")]
    Engine {
        service: String,
        action: &'static str,
        message: String,
    },
    #[error("service {service} exited with code {code}; see `system-docker logs {service}`")]
    Failed { service: String, code: i64 },
    #[error(
        "service {service} did not finish within {}s (its io.berth.timeout) and was stopped; \
         the services after it start anyway. See `system-docker logs {service}`",
        after.as_secs()
    )]
    TimedOut {
        service: String,
        after: std::time::Duration,
    },
    #[error(
        "service {service} is not healthy: {why}; the services after it start anyway. \
         See `berth service logs {service}` and `system-docker inspect {service}`"
    )]
    Unhealthy { service: String, why: String },
    #[error("service {service}: {label} {value:?} is not a duration (like 300s or 5m)")]
    BadLabel {
        service: String,
        label: &'static str,
        value: String,
    },
}

/// How long a one-shot service may run (`io.berth.timeout`), if it says.
pub fn deadline(name: &str, service: &ServiceSpec) -> Result<Option<std::time::Duration>, UpError> {
    let Some(value) = service.berth_label("timeout") else {
        return Ok(None);
    };
    value
        .parse::<berth_config::schema::values::TimeSpan>()
        .map(|t| Some(t.get()))
        .map_err(|_| UpError::BadLabel {
            service: name.to_string(),
            label: "io.berth.timeout",
            value: value.to_string(),
        })
}

/// How long the services after `service` wait for its healthcheck to pass, if it has one: its
/// `io.berth.timeout`, else what the check's own settings allow (the start period, then
/// `retries + 1` rounds of interval and timeout, with the engine's defaults of 30s, 30s and
/// 3), at most five minutes.
pub fn health_limit(name: &str, service: &ServiceSpec) -> Result<Option<std::time::Duration>, UpError> {
    use std::time::Duration;
    let Some(hc) = service.healthcheck.as_ref().filter(|hc| hc.enabled()) else {
        return Ok(None);
    };
    if let Some(limit) = deadline(name, service)? {
        return Ok(Some(limit));
    }
    let or = |t: Option<berth_config::schema::values::TimeSpan>, default: u64| {
        t.map_or(Duration::from_secs(default), |t| t.get())
    };
    let round = or(hc.interval, 30) + or(hc.timeout, 30);
    let limit = or(hc.start_period, 0) + round * (hc.retries.unwrap_or(3) + 1);
    Ok(Some(limit.min(Duration::from_secs(300))))
}

/// Wait until the engine calls `name` healthy. A container without a healthcheck (the image
/// has none) is ready at once; one that turns unhealthy, stops, or stays unproven past
/// `limit` is an error.
pub async fn wait_healthy(docker: &Docker, name: &str, limit: std::time::Duration) -> Result<(), UpError> {
    use bollard::models::HealthStatusEnum;
    let started = Instant::now();
    let unhealthy = |why: String| UpError::Unhealthy {
        service: name.to_string(),
        why,
    };
    loop {
        let state = docker
            .inspect_container(name, None)
            .await
            .map_err(|e| unhealthy(e.to_string()))?
            .state
            .unwrap_or_default();
        let Some(health) = state.health else {
            return Ok(());
        };
        let last = || {
            health
                .log
                .as_ref()
                .and_then(|l| l.last())
                .and_then(|r| r.output.clone())
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .map_or_else(String::new, |o| format!(" (last check said: {o})"))
        };
        match health.status {
            Some(HealthStatusEnum::HEALTHY) => return Ok(()),
            Some(HealthStatusEnum::UNHEALTHY) => {
                return Err(unhealthy(format!("its healthcheck failed{}", last())));
            }
            _ => {}
        }
        if state.running != Some(true) {
            return Err(unhealthy(format!(
                "it stopped (exit code {}) before its healthcheck passed",
                state.exit_code.unwrap_or_default()
            )));
        }
        if started.elapsed() >= limit {
            return Err(unhealthy(format!(
                "its healthcheck did not pass within {}s{}",
                limit.as_secs(),
                last()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Files to put into a container before it starts (a tar), such as cloud-config `write_files`
/// entries with `container: NAME`. They are written whenever the container is about to be
/// started, into a new container or a kept one, so that they follow this boot's configuration.
pub type Prestart = dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync;

pub struct Engine {
    pub docker: Docker,
    pub env: Arc<Environment>,
    pub system_scope: bool,
    pub prestart: Arc<Prestart>,
    /// Run `detach: "false"` services again even if they already ran with this definition
    /// (false after a System Docker restart: cloud-init must not run twice in one boot).
    pub rerun_oneshots: bool,
    /// `berth.registry_auths`: credentials for pulling a service's image.
    pub registry_auths: Arc<IndexMap<String, berth_config::schema::berth::RegistryAuth>>,
}

/// Bring one service up.
pub async fn up_service(engine: &Engine, name: &str, service: &ServiceSpec) -> Result<Outcome, UpError> {
    let docker = &engine.docker;
    let engine_err = |action: &'static str, e: bollard::errors::Error| UpError::Engine {
        service: name.to_string(),
        action,
        message: e.to_string(),
    };
    let (mut body, _) = spec::container_body(name, service, &engine.env, engine.system_scope)?;
    let limit = deadline(name, service)?;
    let image = body.image.clone().unwrap_or_default();
    let image_id = match docker.inspect_image(&image).await {
        Ok(i) => i.id.unwrap_or_default(),
        // Berth's own images come with the release and are never fetched from a registry,
        // where anyone could publish an image by that name.
        Err(e) if is_not_found(&e) && !image.starts_with("berth/") => {
            match pull(docker, &image, &engine.registry_auths).await {
                Ok(id) => id,
                Err(pull_error) => {
                    return Err(UpError::MissingImage {
                        service: name.to_string(),
                        image,
                        message: format!("{e}; pulling it failed: {pull_error}"),
                    });
                }
            }
        }
        Err(e) => {
            return Err(UpError::MissingImage {
                service: name.to_string(),
                image,
                message: e.to_string(),
            });
        }
    };
    // The hash covers the definition and the image it resolves to today.
    let labels = body.labels.get_or_insert_with(Default::default);
    labels.insert("io.berth.image-id".to_string(), image_id);
    let hash = spec::hash_of(&body);
    if let Some(labels) = body.labels.as_mut() {
        labels.insert(spec::LABEL_HASH.to_string(), hash.clone());
    }
    match docker.inspect_container(name, None).await {
        Ok(existing) => {
            let same = existing
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(spec::LABEL_HASH))
                .is_some_and(|h| *h == hash);
            if !same {
                tracing::info!("{name}: definition changed, recreating the container");
                docker
                    .remove_container(
                        name,
                        Some(RemoveContainerOptions {
                            force: true,
                            ..Default::default()
                        }),
                    )
                    .await
                    .map_err(|e| engine_err("removing the old container", e))?;
                create(engine, name, body).await?;
            } else if graph::detached(service)
                && existing.state.as_ref().and_then(|s| s.running).unwrap_or(false)
            {
                if let Some(limit) = health_limit(name, service)? {
                    wait_healthy(docker, name, limit).await?;
                }
                return Ok(Outcome::AlreadyRunning);
            } else if !engine.rerun_oneshots
                && !graph::detached(service)
                && existing.state.as_ref().is_some_and(|s| {
                    s.running != Some(true)
                        && s.exit_code == Some(0)
                        && s.finished_at.as_deref().is_some_and(|f| !f.starts_with("0001"))
                })
            {
                // It ran to completion earlier in this boot; System Docker only restarted.
                return Ok(Outcome::Exited(0));
            }
        }
        Err(e) if is_not_found(&e) => {
            create(engine, name, body).await?;
        }
        Err(e) => return Err(engine_err("inspecting the container", e)),
    }
    // Not only into new containers: a kept one would otherwise hold the files of the boot
    // that created it.
    upload_files(engine, name).await?;
    if graph::create_only(service) {
        return Ok(Outcome::Created);
    }
    if let Err(e) = docker.start_container(name, None).await {
        // 304: already started (a restart policy won the race).
        if !matches!(
            e,
            bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }
        ) {
            return Err(engine_err("starting", e));
        }
    }
    timeline::record(timeline::Event::ServiceStarted {
        name: name.to_string(),
    });
    if graph::detached(service) {
        // Readiness: the services after it wait for its healthcheck, not only its start.
        if let Some(limit) = health_limit(name, service)? {
            wait_healthy(docker, name, limit).await?;
        }
        return Ok(Outcome::Started);
    }
    let mut wait = docker.wait_container(
        name,
        Some(WaitContainerOptions {
            condition: "not-running".to_string(),
        }),
    );
    let waited = match limit {
        None => wait.next().await,
        Some(limit) => match tokio::time::timeout(limit, wait.next()).await {
            Ok(done) => done,
            Err(_) => {
                // A hung one-shot must not hold the boot (the console waits for cloud-init).
                let _ = docker.kill_container(name, None).await;
                return Err(UpError::TimedOut {
                    service: name.to_string(),
                    after: limit,
                });
            }
        },
    };
    let code = match waited {
        Some(Ok(r)) => r.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        Some(Err(e)) => return Err(engine_err("waiting for it to finish", e)),
        None => 0,
    };
    if code != 0 {
        return Err(UpError::Failed {
            service: name.to_string(),
            code,
        });
    }
    Ok(Outcome::Exited(code))
}

/// Write the `Prestart` files of `name` into its container (created or running).
pub async fn upload_files(engine: &Engine, name: &str) -> Result<(), UpError> {
    let Some(tar) = (engine.prestart)(name) else {
        return Ok(());
    };
    engine
        .docker
        .upload_to_container(
            name,
            Some(UploadToContainerOptions {
                path: "/".to_string(),
                ..Default::default()
            }),
            bollard::body_full(tar.into()),
        )
        .await
        .map_err(|e| UpError::Engine {
            service: name.to_string(),
            action: "writing files into the container",
            message: e.to_string(),
        })
}

/// Pull a missing image (services may name registry images); returns its ID. Tried three
/// times: the network may still be coming up when a service starts.
async fn pull(
    docker: &Docker,
    image: &str,
    auths: &IndexMap<String, berth_config::schema::berth::RegistryAuth>,
) -> Result<String, String> {
    // `repo@sha256:...` pulls by digest; `repo:tag`, or `repo` for latest.
    let (repo, tag) = if image.contains('@') {
        (image.to_string(), None)
    } else {
        match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((r, t)) => (r.to_string(), Some(t.to_string())),
            None => (image.to_string(), Some("latest".to_string())),
        }
    };
    let mut last = String::new();
    for attempt in 1..=3u64 {
        tracing::info!("pulling {image} (attempt {attempt})");
        let options = bollard::query_parameters::CreateImageOptions {
            from_image: Some(repo.clone()),
            tag: tag.clone(),
            ..Default::default()
        };
        let credentials = crate::registry_auth::credentials_for(image, auths);
        let mut stream = docker.create_image(Some(options), None, credentials);
        let mut failed = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(message) = info.error_detail.and_then(|d| d.message) {
                        failed = Some(message);
                    }
                }
                Err(e) => failed = Some(e.to_string()),
            }
        }
        match failed {
            None => {
                return docker
                    .inspect_image(image)
                    .await
                    .map(|i| i.id.unwrap_or_default())
                    .map_err(|e| e.to_string());
            }
            Some(e) => last = e,
        }
        tokio::time::sleep(std::time::Duration::from_secs(2 * attempt)).await;
    }
    Err(last)
}

async fn create(
    engine: &Engine,
    name: &str,
    body: bollard::models::ContainerCreateBody,
) -> Result<(), UpError> {
    engine
        .docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.to_string()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map(|_| ())
        .map_err(|e| UpError::Engine {
            service: name.to_string(),
            action: "creating the container",
            message: e.to_string(),
        })
}

/// What happened to each service.
pub type Results = Vec<(String, Result<Outcome, UpError>, f64)>;

/// Bring `services` up in `engine`, in dependency order, as concurrently as the order allows.
pub async fn up_all(engine: Arc<Engine>, services: &IndexMap<String, ServiceSpec>) -> Results {
    up_all_after(engine, services, &std::collections::BTreeSet::new()).await
}

/// [`up_all`], where the services named in `done` (brought up before, or in the other
/// engine) count as finished dependencies.
pub async fn up_all_after(
    engine: Arc<Engine>,
    services: &IndexMap<String, ServiceSpec>,
    done: &std::collections::BTreeSet<String>,
) -> Results {
    up_all_reporting(engine, services, done, &|_| {}).await
}

/// [`up_all_after`], telling `on_failure` about each service that fails the moment it does
/// (the console's banner must not miss a failure that ends before the bring-up does).
pub async fn up_all_reporting(
    engine: Arc<Engine>,
    services: &IndexMap<String, ServiceSpec>,
    done: &std::collections::BTreeSet<String>,
    on_failure: &(dyn Fn(&UpError) + Sync),
) -> Results {
    let mut graph = ServiceGraph::new(services);
    graph.unknown.retain(|(_, to)| !done.contains(to));
    for (from, to) in &graph.unknown {
        tracing::warn!("service {from} waits for {to}, which is not defined; ignoring that");
    }
    if let Err(cycle) = graph.start_order() {
        tracing::error!("{cycle}; one of them will start without waiting for the others");
    }
    let mut pending: BTreeMap<String, BTreeSet<String>> = graph
        .deps
        .iter()
        .map(|(n, d)| {
            (
                n.clone(),
                d.iter().filter(|x| services.contains_key(*x)).cloned().collect(),
            )
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    let mut results = Vec::new();
    loop {
        let ready: Vec<String> = graph
            .order
            .iter()
            .filter(|n| pending.get(*n).is_some_and(|d| d.is_empty()))
            .cloned()
            .collect();
        for name in ready {
            pending.remove(&name);
            let Some(spec) = services.get(&name).cloned() else {
                continue;
            };
            let engine = engine.clone();
            tasks.spawn(async move {
                let started = Instant::now();
                tracing::info!("starting {name}");
                timeline::record(timeline::Event::ServiceStart { name: name.clone() });
                let result = up_service(&engine, &name, &spec).await;
                timeline::record(match result {
                    Ok(_) => timeline::Event::ServiceReady { name: name.clone() },
                    Err(_) => timeline::Event::ServiceFailed { name: name.clone() },
                });
                (name, result, started.elapsed().as_secs_f64())
            });
        }
        let Some(joined) = tasks.join_next().await else {
            if !pending.is_empty() {
                // Only a cycle leaves services waiting with nothing running: start one of
                // its services anyway; the others, and what waits for them, follow in order.
                match cycle_member(&pending, &graph.order) {
                    Some(name) => {
                        tracing::warn!("starting {name} despite the dependency cycle");
                        if let Some(deps) = pending.get_mut(&name) {
                            deps.clear();
                        }
                    }
                    None => pending.values_mut().for_each(BTreeSet::clear),
                }
                continue;
            }
            break;
        };
        let Ok((name, result, secs)) = joined else {
            continue;
        };
        match &result {
            Ok(outcome) => tracing::info!("{name}: {outcome:?} ({secs:.2}s)"),
            Err(e) => {
                tracing::error!("{e}");
                on_failure(e);
            }
        }
        for deps in pending.values_mut() {
            deps.remove(&name);
        }
        results.push((name, result, secs));
    }
    results
}

/// A service on a cycle of `pending` (each waiting for another that has not finished),
/// found by following waits from the first stuck service in declaration order.
fn cycle_member(pending: &BTreeMap<String, BTreeSet<String>>, order: &[String]) -> Option<String> {
    let mut current = order.iter().find(|n| pending.contains_key(*n))?.clone();
    let mut seen = BTreeSet::new();
    while seen.insert(current.clone()) {
        current = pending
            .get(&current)?
            .iter()
            .find(|d| pending.contains_key(*d))?
            .clone();
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(edges: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        edges
            .iter()
            .map(|(n, deps)| (n.to_string(), deps.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn the_cycle_is_broken_at_one_of_its_own_services() {
        let order: Vec<String> = ["c", "a", "b", "d"].map(String::from).to_vec();
        // c waits for a; a and b wait for each other; d waits for c.
        let stuck = pending(&[("c", &["a"]), ("a", &["b"]), ("b", &["a"]), ("d", &["c"])]);
        assert_eq!(cycle_member(&stuck, &order).as_deref(), Some("a"));
        let self_loop = pending(&[("d", &["d"])]);
        assert_eq!(cycle_member(&self_loop, &order).as_deref(), Some("d"));
        // Waiting for something that is neither pending nor finished: no cycle to name.
        let orphan = pending(&[("c", &["gone"])]);
        assert_eq!(cycle_member(&orphan, &order), None);
    }
}
