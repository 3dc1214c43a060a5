//! What the engine tests share: a private engine per test, test images, configuration read
//! the way Berth reads it, and a few questions to the engine.

pub mod archive;
pub mod dockerd;

pub use dockerd::Dockerd;

use berth_config::{Loaded, ServiceSpec};
use berth_services::spec::Environment;
use berth_services::up::{Engine, Prestart};
use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use futures_util::StreamExt;
use indexmap::IndexMap;
use std::path::Path;
use std::sync::Arc;

/// The busybox image every test engine gets (loaded through `images::ensure`).
pub const BUSYBOX: &str = "berth-test/busybox:1";

/// A configuration loaded from `yaml` (a whole `berth:` document) as Berth loads its layers.
pub fn loaded(yaml: &str) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("defaults.yml"), yaml).unwrap();
    let paths = berth_config::ConfigPaths {
        defaults: dir.path().join("defaults.yml"),
        oem_dir: dir.path().join("oem"),
        conf_dir: dir.path().join("conf"),
    };
    let loaded = berth_config::load(&paths, &berth_config::KernelCmdline::parse(""));
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    loaded
}

/// The services of `loaded`, keyed by name.
pub fn services_of(loaded: &Loaded) -> IndexMap<String, ServiceSpec> {
    loaded
        .config
        .berth
        .services
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
        .collect()
}

/// Services from the body of `berth.services` (indented by four spaces).
pub fn services(yaml: &str) -> IndexMap<String, ServiceSpec> {
    services_of(&loaded(&format!("berth:\n  services:\n{yaml}")))
}

pub fn no_prestart() -> Arc<Prestart> {
    Arc::new(|_: &str| None)
}

/// An `up::Engine` on `docker` with `berth.environment` from `loaded`.
pub fn engine(docker: &Docker, loaded: &Loaded, system_scope: bool, prestart: Arc<Prestart>) -> Arc<Engine> {
    Arc::new(Engine {
        docker: docker.clone(),
        env: Arc::new(Environment::new(&loaded.config.berth.environment)),
        system_scope,
        prestart,
        rerun_oneshots: true,
        registry_auths: Arc::new(loaded.config.berth.registry_auths.clone()),
    })
}

/// Run a test body on a runtime of its own (the engine guard is dropped outside it).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Load the busybox test image into `docker` from an archive written under `dir`.
pub async fn load_busybox(docker: &Docker, dir: &Path) {
    archive::write(dir, &[archive::Image::busybox(BUSYBOX)]);
    let loaded = berth_services::images::ensure(docker, dir).await.unwrap();
    assert_eq!(loaded, [BUSYBOX]);
}

/// A started engine with the busybox image.
pub async fn engine_with_busybox(dockerd: &Dockerd) -> Docker {
    let docker = dockerd.client();
    load_busybox(&docker, &dockerd.scratch("busybox-archive")).await;
    docker
}

pub async fn inspect(docker: &Docker, name: &str) -> ContainerInspectResponse {
    docker
        .inspect_container(name, None)
        .await
        .unwrap_or_else(|e| panic!("inspecting container {name}: {e}"))
}

pub async fn container_id(docker: &Docker, name: &str) -> String {
    inspect(docker, name).await.id.unwrap()
}

pub async fn is_running(docker: &Docker, name: &str) -> bool {
    inspect(docker, name)
        .await
        .state
        .and_then(|s| s.running)
        .unwrap_or(false)
}

/// When the container last started and finished, in seconds (engine clock).
pub async fn run_times(docker: &Docker, name: &str) -> (f64, Option<f64>) {
    let state = inspect(docker, name).await.state.unwrap();
    let started = rfc3339_seconds(state.started_at.as_deref().unwrap())
        .unwrap_or_else(|| panic!("{name} has not started"));
    let finished = state.finished_at.as_deref().and_then(rfc3339_seconds);
    (started, finished)
}

/// What the container wrote to stdout and stderr.
pub async fn logs(docker: &Docker, name: &str) -> String {
    let mut stream = docker.logs(
        name,
        Some(bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut out = String::new();
    while let Some(item) = stream.next().await {
        out.push_str(&item.unwrap().to_string());
    }
    out
}

/// Seconds since the epoch of Docker's `2006-01-02T15:04:05.999999999Z` (UTC); `None` for
/// Go's zero time (`0001-01-01T00:00:00Z`, "never").
pub fn rfc3339_seconds(text: &str) -> Option<f64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    if y < 1970 {
        return None;
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let frac: f64 = format!("0.{frac}").parse().ok()?;
    Some((days * 86400 + h * 3600 + min * 60 + s) as f64 + frac)
}

#[test]
fn docker_times_parse() {
    assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(rfc3339_seconds("2026-11-26T07:07:29.5Z"), Some(1795676849.5));
    assert_eq!(rfc3339_seconds("0001-01-01T00:00:00Z"), None);
}
