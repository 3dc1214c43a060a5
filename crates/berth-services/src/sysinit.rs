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
/// How long the services labelled `io.berth.after-user-docker` wait for User Docker once the
/// other system services are up: an engine that is slow or broken does not keep the power
/// button, the system log and the clock away for long.
const LATE_WAIT: Duration = Duration::from_secs(60);

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
    /// How long the services after User Docker wait for it, once the others are up.
    pub late_wait: Duration,
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
            late_wait: LATE_WAIT,
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
    let points = labelled(system, "reloadconfig");
    if points.is_empty() {
        return BTreeSet::new();
    }
    // Everything downstream of a reload point waits for the new configuration.
    let downstream = graph.downstream(&points);
    system
        .keys()
        .filter(|n| !downstream.contains(*n))
        .cloned()
        .collect()
}

/// The services whose boolean label `io.berth.SUFFIX` is true, in declaration order.
fn labelled(system: &IndexMap<String, ServiceSpec>, suffix: &str) -> Vec<String> {
    system
        .iter()
        .filter(|(_, s)| graph::label_bool(s, suffix) == Some(true))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The system services that start once User Docker answers: those labelled
/// `io.berth.after-user-docker: "true"` and every system service that waits for one of them.
/// Nothing User Docker needs is among them: the `docker` service and what it waits for start
/// in their turn even when labelled (a label there is logged and ignored). Without User Docker
/// (no `docker` service, or it never answers) they start after the other system services.
pub fn after_user_docker(system: &IndexMap<String, ServiceSpec>) -> BTreeSet<String> {
    let graph = ServiceGraph::new(system);
    let labelled = labelled(system, "after-user-docker");
    if labelled.is_empty() {
        return BTreeSet::new();
    }
    let engine = vec![graph::USER_ENGINE_SERVICE.to_string()];
    let mut needed = graph.upstream(&engine);
    needed.insert(graph::USER_ENGINE_SERVICE.to_string());
    let mut late = graph.downstream(&labelled);
    late.extend(labelled);
    for name in late.intersection(&needed) {
        tracing::warn!(
            "{name}: io.berth.after-user-docker ignored: User Docker (the {} service) waits for it",
            graph::USER_ENGINE_SERVICE
        );
    }
    late.retain(|n| !needed.contains(n));
    late
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
    // `user_docker_ended` resolves when the task ends, whatever its outcome (or when it is
    // aborted): its sender is dropped then. The late services wait for it.
    let (ended, user_docker_ended) = tokio::sync::oneshot::channel::<()>();
    let user_docker = tokio::spawn(async move {
        let _ended = ended;
        let answered = client::wait_ready(&user_socket, user_wait).await;
        answered.map(|d| {
            let ready = uptime();
            timeline::record(timeline::Event::UserDockerReady);
            // Said the moment it answers (the benchmark times this line), not once the
            // system services that start after it are up.
            tracing::info!("User Docker is ready ({ready:.2}s since boot)");
            (d, ready)
        })
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
    // Services that User Docker does not need start once it answers, off its way.
    let late = after_user_docker(&system);
    let first = reload_phase(&system);
    if let Some(reload) = reload
        && first.iter().any(|n| !late.contains(n))
    {
        let phase: IndexMap<_, _> = system
            .iter()
            .filter(|(n, _)| first.contains(*n) && !late.contains(*n))
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
                "the configuration changed after the first phase ({}): reading it again",
                phase.keys().cloned().collect::<Vec<_>>().join(", ")
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
        done.extend(first.iter().filter(|n| !late.contains(*n)).cloned());
        results.extend(phase_results);
        current = Some(again);
    }
    let loaded = current.as_ref().unwrap_or(loaded);
    // `late` is computed again: the configuration may have changed at the reload.
    let late = after_user_docker(&system);
    let (rest, late): (IndexMap<_, _>, IndexMap<_, _>) = system
        .iter()
        .filter(|(n, _)| !done.contains(*n))
        .map(|(n, s)| (n.clone(), s.clone()))
        .partition(|(n, _)| !late.contains(n));
    results.extend(up::up_all_reporting(make(&docker, loaded, true), &rest, &done, &report_failure).await);
    let engine_started = results.iter().any(|(n, r, _)| {
        n == graph::USER_ENGINE_SERVICE && matches!(r, Ok(Outcome::Started | Outcome::AlreadyRunning))
    });
    record(&mut report, results);
    if !late.is_empty() {
        tracing::info!(
            "system services up in {:.1}s; after User Docker: {}",
            started.elapsed().as_secs_f64(),
            late.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    } else {
        tracing::info!("system services up in {:.1}s", started.elapsed().as_secs_f64());
    }
    let system_names: BTreeSet<String> = system.keys().cloned().collect();
    let before_late: BTreeSet<String> = system_names
        .iter()
        .filter(|n| !late.contains_key(*n))
        .cloned()
        .collect();
    // The late system services wait for User Docker, but not for ever; the user services
    // need it. Both start side by side once it answers.
    let late_services = async {
        if late.is_empty() {
            return Vec::new();
        }
        if engine_started
            && tokio::time::timeout(endpoints.late_wait, user_docker_ended)
                .await
                .is_err()
        {
            tracing::warn!(
                "User Docker has not answered {}s after the other system services: starting {} without it",
                endpoints.late_wait.as_secs(),
                late.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        let results =
            up::up_all_reporting(make(&docker, loaded, true), &late, &before_late, &report_failure).await;
        tracing::info!(
            "system services after User Docker up ({:.1}s since boot)",
            uptime()
        );
        results
    };
    let user_services = async {
        if !engine_started {
            user_docker.abort();
            if !user.is_empty() {
                problem("user services were not started: the docker service is not running");
            }
            return Vec::new();
        }
        match user_docker.await {
            Err(e) => {
                problem(&format!("waiting for User Docker failed: {e}"));
                Vec::new()
            }
            Ok(Err(e)) => {
                problem(&format!(
                    "User Docker did not start: {e}; see `sudo system-docker logs docker`"
                ));
                report.errors.push(e.to_string());
                Vec::new()
            }
            Ok(Ok((user_docker, ready))) => {
                report.user_docker_ready = Some(ready);
                if user.is_empty() {
                    return Vec::new();
                }
                let engine = make(&user_docker, loaded, false);
                up::up_all_reporting(engine, &user, &system_names, &report_failure).await
            }
        }
    };
    let (late_results, user_results) = tokio::join!(late_services, user_services);
    record(&mut report, late_results);
    record(&mut report, user_results);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::services;

    fn system_of(loaded: &Loaded) -> IndexMap<String, ServiceSpec> {
        services_of(loaded).0
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    /// The shipped services: the daemons User Docker does not need wait for it; the rest of
    /// the first phase (what cloud-init and User Docker need) starts at once.
    #[test]
    fn shipped_daemons_start_after_user_docker() {
        let system = system_of(&crate::shipped_defaults());
        let late = after_user_docker(&system);
        assert_eq!(names(&late), ["acpid", "ntp", "swarm", "syslog"]);
        let first = reload_phase(&system);
        for name in ["udev", "network", "docker", "cloud-init"] {
            assert!(first.contains(name) && !late.contains(name), "{name}");
        }
        assert!(!first.contains("console") && !late.contains("console"));
    }

    /// What waits for a late service is late too; the docker service, and what it waits for,
    /// never are.
    #[test]
    fn late_services_take_their_dependants_but_never_user_dockers_needs() {
        let s = services(
            "    docker: {image: d, labels: {io.berth.scope: system, io.berth.after: proxy}}\n\
             \x20   proxy: {image: p, labels: {io.berth.scope: system, io.berth.after-user-docker: 'true'}}\n\
             \x20   logs: {image: l, labels: {io.berth.scope: system, io.berth.after-user-docker: 'yes'}}\n\
             \x20   shipper: {image: s, labels: {io.berth.scope: system, io.berth.after: logs}}\n\
             \x20   tail: {image: t, labels: {io.berth.scope: system, io.berth.after: shipper}}\n\
             \x20   other: {image: o, labels: {io.berth.scope: system, io.berth.after-user-docker: 'false'}}\n",
        );
        assert_eq!(names(&after_user_docker(&s)), ["logs", "shipper", "tail"]);
        let none = services("    docker: {image: d, labels: {io.berth.scope: system}}\n");
        assert!(after_user_docker(&none).is_empty());
    }
}
