//! `berth sysinit`: started by PID 1 whenever System Docker (re)starts. Waits for System
//! Docker, checks that the system images are there (never loading them), brings the system services up, then waits for
//! User Docker and brings the user services up there.

use crate::graph::{self, Scope, ServiceGraph};
use crate::spec::Environment;
use crate::up::{self, Engine, Outcome, Prestart};
use crate::{IMAGES_DIR, Sockets, client, image_store};
use berth_config::{Loaded, ServiceSpec};
use indexmap::IndexMap;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SYSTEM_DOCKER_WAIT: Duration = Duration::from_secs(120);
/// Counted from System Docker ready: it covers the system services before the docker service.
const USER_DOCKER_WAIT: Duration = Duration::from_secs(300);

use berth_runtime::{timeline, uptime};

/// What sysinit did: written to [`berth_runtime::paths::SYSINIT_REPORT`] for PID 1 and the CLI.
pub type Report = berth_runtime::SysinitReport;

/// Where sysinit finds the engines and the bundled images, and how long it waits for each
/// engine. `Endpoints::default()` is a running Berth's.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub sockets: Sockets,
    /// Run one-shot services again (false after a System Docker restart in the same boot).
    pub rerun_oneshots: bool,
    /// The read-only image store (mounted by init; its index names the system images).
    pub images_dir: PathBuf,
    /// The release's optional services ([`crate::catalog`]).
    pub catalog_dir: PathBuf,
    pub system_docker_wait: Duration,
    pub user_docker_wait: Duration,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            sockets: Sockets::default(),
            rerun_oneshots: true,
            images_dir: PathBuf::from(IMAGES_DIR),
            catalog_dir: PathBuf::from(crate::catalog::CATALOG_DIR),
            system_docker_wait: SYSTEM_DOCKER_WAIT,
            user_docker_wait: USER_DOCKER_WAIT,
        }
    }
}

/// Reads the configuration again (after cloud-init saved new user-data).
pub type Reload<'a> = &'a (dyn Fn() -> Loaded + Sync);

/// Bring the system up on a running Berth (see [`run_with`]).
pub async fn run(
    loaded: &Loaded,
    rerun_oneshots: bool,
    reload: Reload<'_>,
    prestart: Arc<Prestart>,
    problem: &(dyn Fn(&str) + Sync),
) -> Report {
    let endpoints = Endpoints {
        rerun_oneshots,
        ..Endpoints::default()
    };
    run_with(&endpoints, loaded, Some(reload), prestart, problem).await
}

fn services_of(loaded: &Loaded) -> (IndexMap<String, ServiceSpec>, IndexMap<String, ServiceSpec>) {
    let cloud_init_timeout = format!("{}s", loaded.config.berth.cloud_init.timeout);
    loaded
        .config
        .berth
        .services
        .iter()
        .map(|(k, v)| {
            let mut spec = v.clone();
            // cloud-init's deadline is a setting of its own (berth.cloud_init.timeout), unless
            // its definition names one.
            if k.as_str() == CLOUD_INIT_SERVICE && spec.berth_label("timeout").is_none() {
                spec.labels
                    .insert("io.berth.timeout".to_string(), cloud_init_timeout.clone());
            }
            (k.as_str().to_string(), spec)
        })
        .partition(|(_, s)| graph::scope(s) == Scope::System)
}

/// The service that runs cloud-init (its deadline is `berth.cloud_init.timeout`).
pub const CLOUD_INIT_SERVICE: &str = "cloud-init";

/// The first phase: every service that does not wait, directly or not, for a service marked
/// `reloadconfig` (cloud-init). They start at once; after the reload point has run, the
/// configuration is read again and the services after it start from the new one. A service
/// of the first phase that reads configuration names those keys in `io.berth.restart-on-change`
/// and is restarted when they changed.
pub fn reload_phase(system: &IndexMap<String, ServiceSpec>) -> BTreeSet<String> {
    let graph = ServiceGraph::new(system);
    let points: BTreeSet<String> = system
        .iter()
        .filter(|(_, s)| graph::label_bool(s, "reloadconfig") == Some(true))
        .map(|(n, _)| n.clone())
        .collect();
    if points.is_empty() {
        return BTreeSet::new();
    }
    // Everything downstream of a reload point waits for the new configuration.
    let mut downstream: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = points.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        for dependant in graph.dependants(&name) {
            if downstream.insert(dependant.clone()) {
                todo.push(dependant);
            }
        }
    }
    system
        .keys()
        .filter(|n| !downstream.contains(*n))
        .cloned()
        .collect()
}

/// Check the system images in System Docker, bring the system services up there,
/// then the user services in User Docker once the `docker` service answers.
pub async fn run_with(
    endpoints: &Endpoints,
    loaded: &Loaded,
    reload: Option<Reload<'_>>,
    prestart: Arc<Prestart>,
    problem: &(dyn Fn(&str) + Sync),
) -> Report {
    let mut report = Report::default();
    let started = Instant::now();
    // The optional services the configuration includes become services like the others.
    let with_catalog = |l: &Loaded| {
        let (l, problems) = crate::catalog::with_included(l, &endpoints.catalog_dir);
        for p in problems {
            problem(&p);
        }
        l
    };
    let loaded = with_catalog(loaded);
    let report_failure = |e: &up::UpError| problem(&e.to_string());
    let docker = match client::wait_ready(&endpoints.sockets.system, endpoints.system_docker_wait).await {
        Ok(d) => d,
        Err(e) => {
            problem(&format!("System Docker is not answering: {e}"));
            report.errors.push(e.to_string());
            return report;
        }
    };
    let ready = uptime();
    timeline::record(timeline::Event::SystemDockerReady);
    report.system_docker_ready = Some(ready);
    tracing::info!("System Docker is ready ({ready:.2}s since boot)");
    // User Docker answers as soon as the docker service is up, often long before the last
    // system service (the console) is: its time is taken then, not when the bring-up ends.
    let user_socket = endpoints.sockets.user.clone();
    let user_wait = endpoints.user_docker_wait;
    let user_docker = tokio::spawn(async move {
        let answered = client::wait_ready(&user_socket, user_wait).await;
        if answered.is_ok() {
            timeline::record(timeline::Event::UserDockerReady);
        }
        answered.map(|d| (d, uptime()))
    });
    let loaded = &crate::console_choice::fall_back_if_missing(&docker, loaded, problem).await;

    // The system images are in System Docker from the start (its data root was assembled
    // from the read-only image store before it started): name any that are not.
    let images_dir = endpoints.images_dir.clone();
    check_images(&docker, &images_dir, loaded, problem, &mut report).await;
    let (mut system, mut user) = services_of(loaded);
    let make = |docker: &bollard::Docker, l: &Loaded, system_scope: bool| {
        Arc::new(Engine {
            docker: docker.clone(),
            env: Arc::new(Environment::of(&l.config.berth)),
            system_scope,
            prestart: prestart.clone(),
            rerun_oneshots: endpoints.rerun_oneshots,
            registry_auths: Arc::new(l.config.berth.registry_auths.clone()),
        })
    };
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut results = Vec::new();
    let mut current: Option<Loaded> = None;
    let first = reload_phase(&system);
    if let Some(reload) = reload
        && !first.is_empty()
    {
        let phase: IndexMap<_, _> = system
            .iter()
            .filter(|(n, _)| first.contains(*n))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        let phase_results = up::up_all_reporting(
            make(&docker, loaded, true),
            &phase,
            &BTreeSet::new(),
            &report_failure,
        )
        .await;
        let again =
            crate::console_choice::fall_back_if_missing(&docker, with_catalog(&reload()), problem).await;
        if again.tree != loaded.tree {
            tracing::info!(
                "the configuration changed ({}): reading it again",
                first.iter().cloned().collect::<Vec<_>>().join(", ")
            );
            // Long-running services of the first phase read the configuration when they
            // start (netconf): restart those whose configuration changed. A service names
            // the keys it reads in `io.berth.restart-on-change` (any change, without it).
            // It is stopped and brought up from its new definition, so that a container
            // whose definition follows the configuration (the docker service's proxy
            // environment) is made again rather than restarted as it was.
            let refreshed = make(&docker, &again, true);
            let (new_system, new_user) = services_of(&again);
            for (name, result, _) in &phase_results {
                let Some(spec) = phase.get(name) else { continue };
                let changed = match spec.berth_label("restart-on-change") {
                    Some(keys) => keys
                        .split(',')
                        .map(str::trim)
                        .any(|k| berth_config::get(loaded, k) != berth_config::get(&again, k)),
                    None => true,
                };
                if graph::detached(spec)
                    && changed
                    && matches!(result, Ok(Outcome::Started | Outcome::AlreadyRunning))
                {
                    let _ = docker.stop_container(name, None).await;
                    let spec = new_system.get(name).unwrap_or(spec);
                    match up::up_service(&refreshed, name, spec).await {
                        Ok(_) => tracing::info!("{name}: restarted for the new configuration"),
                        Err(e) => problem(&format!("{name}: restarting for the new configuration: {e}")),
                    }
                }
            }
            // Files from the new configuration reach the containers already running.
            for (name, result, _) in &phase_results {
                if matches!(result, Ok(Outcome::Started | Outcome::AlreadyRunning))
                    && let Err(e) = up::upload_files(&refreshed, name).await
                {
                    problem(&e.to_string());
                }
            }
            (system, user) = (new_system, new_user);
        }
        done.extend(first.iter().cloned());
        results.extend(phase_results);
        current = Some(again);
    }
    let loaded = current.as_ref().unwrap_or(loaded);
    let rest: IndexMap<_, _> = system
        .iter()
        .filter(|(n, _)| !done.contains(*n))
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect();
    results.extend(up::up_all_reporting(make(&docker, loaded, true), &rest, &done, &report_failure).await);
    let engine_started = results.iter().any(|(n, r, _)| {
        n == graph::USER_ENGINE_SERVICE && matches!(r, Ok(Outcome::Started | Outcome::AlreadyRunning))
    });
    record(&mut report, results);
    tracing::info!("system services up in {:.1}s", started.elapsed().as_secs_f64());
    let system_names: BTreeSet<String> = system.keys().cloned().collect();

    if engine_started {
        let answered = match user_docker.await {
            Ok(answered) => answered,
            Err(e) => {
                problem(&format!("waiting for User Docker failed: {e}"));
                return report;
            }
        };
        match answered {
            Ok((user_docker, ready)) => {
                report.user_docker_ready = Some(ready);
                tracing::info!("User Docker is ready ({ready:.2}s since boot)");
                if !user.is_empty() {
                    let engine = make(&user_docker, loaded, false);
                    let results = up::up_all_reporting(engine, &user, &system_names, &report_failure).await;
                    record(&mut report, results);
                }
            }
            Err(e) => {
                problem(&format!(
                    "User Docker did not start: {e}; see `sudo system-docker logs docker`"
                ));
                report.errors.push(e.to_string());
            }
        }
    } else {
        user_docker.abort();
        if !user.is_empty() {
            problem("user services were not started: the docker service is not running");
        }
    }
    report
}

/// Name the system images System Docker lacks: those of the store's index, or without a
/// usable store, those the system services use.
async fn check_images(
    docker: &bollard::Docker,
    store: &std::path::Path,
    loaded: &Loaded,
    problem: &(dyn Fn(&str) + Sync),
    report: &mut Report,
) {
    let (wanted, why) = match image_store::read_index(store) {
        Ok(index) => (
            index
                .into_iter()
                .map(|i| (i.repo_tag, Some(i.id)))
                .collect::<Vec<_>>(),
            format!("they are not in the image store {}", store.display()),
        ),
        Err(e) => (
            image_order(loaded).into_iter().map(|t| (t, None)).collect(),
            format!("the image store is missing or damaged ({e})"),
        ),
    };
    let mut missing = Vec::new();
    for (tag, id) in wanted {
        let present = match docker.inspect_image(&tag).await {
            Ok(image) => id.is_none() || image.id == id,
            Err(_) => false,
        };
        if !present && !missing.contains(&tag) {
            missing.push(tag);
        }
    }
    if missing.is_empty() {
        tracing::info!("system images: all present (read-only store, nothing loaded)");
        return;
    }
    let message = format!(
        "System Docker lacks these system images: {}; {why}. See /var/log/boot/ and \
         docs/troubleshooting.md (\"System Docker lacks these system images\")",
        missing.join(", ")
    );
    problem(&message);
    report.errors.push(message);
}

/// The images of the system services, in start order.
fn image_order(loaded: &Loaded) -> Vec<String> {
    let (system, _) = services_of(loaded);
    let env = Environment::of(&loaded.config.berth);
    let graph = ServiceGraph::new(&system);
    let names = graph.start_order().unwrap_or_else(|_| graph.order.clone());
    names
        .iter()
        .filter_map(|n| system.get(n))
        .filter_map(|s| crate::spec::container_body("order", s, &env, true).ok())
        .filter_map(|(body, _)| body.image)
        .collect()
}

/// Put the results in the report (failures were reported as problems when they happened).
fn record(report: &mut Report, results: up::Results) {
    for (name, result, seconds) in results {
        let outcome = match result {
            Ok(outcome) => outcome.into(),
            Err(e) => {
                report.errors.push(e.to_string());
                berth_runtime::ServiceOutcome::Failed { error: e.to_string() }
            }
        };
        report.services.push(berth_runtime::ServiceRecord {
            name,
            outcome,
            seconds,
        });
    }
}
