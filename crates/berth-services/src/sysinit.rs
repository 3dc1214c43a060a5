//! `berth sysinit`: started by PID 1 whenever System Docker (re)starts. Waits for System
//! Docker, loads the missing system images, brings the system services up, then waits for
//! User Docker and brings the user services up there.

use crate::graph::{self, Scope};
use crate::spec::Environment;
use crate::up::{self, Engine, Outcome, Prestart};
use crate::{IMAGES_DIR, Sockets, client, images};
use berth_config::Loaded;
use indexmap::IndexMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SYSTEM_DOCKER_WAIT: Duration = Duration::from_secs(120);
const USER_DOCKER_WAIT: Duration = Duration::from_secs(180);

fn uptime() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// A summary for the status file and the tests.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub system_docker_ready: Option<f64>,
    pub images_loaded: Vec<String>,
    pub services: Vec<(String, String)>,
    pub user_docker_ready: Option<f64>,
    pub errors: Vec<String>,
}

/// Where sysinit finds the engines and the bundled images, and how long it waits for each
/// engine. `Endpoints::default()` is a running Berth's.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub sockets: Sockets,
    /// The unpacked docker-archive of the system images (unmounted once they are loaded).
    pub images_dir: PathBuf,
    pub system_docker_wait: Duration,
    pub user_docker_wait: Duration,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            sockets: Sockets::default(),
            images_dir: PathBuf::from(IMAGES_DIR),
            system_docker_wait: SYSTEM_DOCKER_WAIT,
            user_docker_wait: USER_DOCKER_WAIT,
        }
    }
}

/// Bring the system up on a running Berth (see [`run_with`]).
pub async fn run(loaded: &Loaded, prestart: Arc<Prestart>, problem: &dyn Fn(&str)) -> Report {
    run_with(&Endpoints::default(), loaded, prestart, problem).await
}

/// Load the missing system images into System Docker, bring the system services up there,
/// then the user services in User Docker once the `docker` service answers.
pub async fn run_with(
    endpoints: &Endpoints,
    loaded: &Loaded,
    prestart: Arc<Prestart>,
    problem: &dyn Fn(&str),
) -> Report {
    let mut report = Report::default();
    let started = Instant::now();
    let docker = match client::wait_ready(&endpoints.sockets.system, endpoints.system_docker_wait).await {
        Ok(d) => d,
        Err(e) => {
            problem(&format!("System Docker is not answering: {e}"));
            report.errors.push(e.to_string());
            return report;
        }
    };
    let ready = uptime();
    report.system_docker_ready = Some(ready);
    tracing::info!("System Docker is ready ({ready:.2}s since boot)");

    let images_dir = endpoints.images_dir.as_path();
    if images_dir.join("manifest.json").exists() {
        let step = Instant::now();
        match images::ensure(&docker, images_dir).await {
            Ok(loaded_tags) if loaded_tags.is_empty() => tracing::info!("system images: all present"),
            Ok(loaded_tags) => {
                tracing::info!(
                    "system images loaded: {} ({:.1}s)",
                    loaded_tags.join(", "),
                    step.elapsed().as_secs_f64()
                );
                report.images_loaded = loaded_tags;
            }
            Err(e) => {
                problem(&e.to_string());
                report.errors.push(e.to_string());
            }
        }
        // Unmounting frees the images' memory when they came in the initramfs.
        let _ = nix::mount::umount2(images_dir, nix::mount::MntFlags::MNT_DETACH);
    }

    let env = Arc::new(Environment::new(&loaded.config.berth.environment));
    let services: IndexMap<String, berth_config::ServiceSpec> = loaded
        .config
        .berth
        .services
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
        .collect();
    let (system, user): (IndexMap<_, _>, IndexMap<_, _>) = services
        .into_iter()
        .partition(|(_, s)| graph::scope(s) == Scope::System);

    let engine = Arc::new(Engine {
        docker,
        env: env.clone(),
        system_scope: true,
        prestart: prestart.clone(),
    });
    let results = up::up_all(engine, &system).await;
    let engine_started = results.iter().any(|(n, r, _)| {
        n == graph::USER_ENGINE_SERVICE && matches!(r, Ok(Outcome::Started | Outcome::AlreadyRunning))
    });
    record(&mut report, results, problem);
    tracing::info!("system services up in {:.1}s", started.elapsed().as_secs_f64());

    if engine_started {
        match client::wait_ready(&endpoints.sockets.user, endpoints.user_docker_wait).await {
            Ok(user_docker) => {
                let ready = uptime();
                report.user_docker_ready = Some(ready);
                tracing::info!("User Docker is ready ({ready:.2}s since boot)");
                if !user.is_empty() {
                    let engine = Arc::new(Engine {
                        docker: user_docker,
                        env,
                        system_scope: false,
                        prestart,
                    });
                    let results = up::up_all(engine, &user).await;
                    record(&mut report, results, problem);
                }
            }
            Err(e) => {
                problem(&format!(
                    "User Docker did not start: {e}; see /var/log/docker.log"
                ));
                report.errors.push(e.to_string());
            }
        }
    } else if !user.is_empty() {
        problem("user services were not started: the docker service is not running");
    }
    report
}

fn record(report: &mut Report, results: up::Results, problem: &dyn Fn(&str)) {
    for (name, result, _) in results {
        match result {
            Ok(outcome) => report.services.push((name, format!("{outcome:?}"))),
            Err(e) => {
                problem(&e.to_string());
                report.errors.push(e.to_string());
                report.services.push((name, "failed".to_string()));
            }
        }
    }
}
