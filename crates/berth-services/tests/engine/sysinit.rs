//! `sysinit::run_with`: the system images are checked (never loaded) in System Docker, the
//! system services come up there, and the user services in User Docker once the `docker`
//! service runs.

use crate::support::{BUSYBOX, Dockerd, block_on, engine_with_busybox, is_running, loaded, no_prestart};
use berth_runtime::ServiceOutcome;
use berth_services::Sockets;
use berth_services::sysinit::{Endpoints, Report, run_with};
use std::sync::Mutex;
use std::time::Duration;

const SLEEPER: &str = r#"[/bin/sh, -c, "trap 'exit 0' TERM; sleep 1000 & wait"]"#;

fn config(docker_image: &str) -> berth_config::Loaded {
    loaded(&format!(
        "berth:\n  services:\n\
         \x20   network:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, 'exit 0']\n\
         \x20     labels: {{io.berth.scope: system, io.berth.detach: 'false'}}\n\
         \x20   docker:\n\
         \x20     image: {docker_image}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.scope: system, io.berth.after: network}}\n\
         \x20   console:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.scope: system, io.berth.after: network}}\n\
         \x20   late:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.scope: system, io.berth.after-user-docker: 'true'}}\n\
         \x20   web:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n"
    ))
}

async fn sysinit(endpoints: &Endpoints, loaded: &berth_config::Loaded) -> (Report, Vec<String>) {
    let problems = Mutex::new(Vec::new());
    let report = run_with(endpoints, loaded, None, no_prestart(), &|p| {
        problems.lock().unwrap().push(p.to_string())
    })
    .await;
    (report, problems.into_inner().unwrap())
}

/// System Docker's endpoints with no image store, and a User Docker socket nothing answers on.
fn without_user_docker(
    system_engine: &Dockerd,
    user_docker_wait: Duration,
    late_wait: Duration,
) -> Endpoints {
    Endpoints {
        sockets: Sockets {
            system: system_engine.socket(),
            user: system_engine
                .scratch("user")
                .join("docker.sock")
                .display()
                .to_string(),
        },
        images_dir: system_engine.scratch("no-store"),
        catalog_dir: std::path::PathBuf::from("/nonexistent"),
        system_docker_wait: Duration::from_secs(30),
        user_docker_wait,
        late_wait,
        rerun_oneshots: true,
    }
}

fn status<'a>(report: &'a Report, service: &str) -> &'a ServiceOutcome {
    report
        .service(service)
        .unwrap_or_else(|| panic!("{service} is not in {report:#?}"))
}

#[test]
fn system_services_then_user_services_in_their_engines() {
    let system_engine = Dockerd::start();
    let user_engine = Dockerd::start();
    // The store's index names the image System Docker already holds.
    let images = system_engine.scratch("store");
    let endpoints = Endpoints {
        sockets: Sockets {
            system: system_engine.socket(),
            user: user_engine.socket(),
        },
        images_dir: images.clone(),
        catalog_dir: std::path::PathBuf::from("/nonexistent"),
        system_docker_wait: Duration::from_secs(30),
        user_docker_wait: Duration::from_secs(30),
        late_wait: Duration::from_secs(60),
        rerun_oneshots: true,
    };
    let loaded = config(BUSYBOX);
    block_on(async {
        // Both engines hold busybox already: System Docker from its store, User Docker as
        // the user's own image.
        let user = engine_with_busybox(&user_engine).await;
        let system = engine_with_busybox(&system_engine).await;
        let id = system.inspect_image(BUSYBOX).await.unwrap().id.unwrap();
        std::fs::write(
            images.join("images.json"),
            format!(r#"[{{"repo_tag":"{BUSYBOX}","id":"{id}"}}]"#),
        )
        .unwrap();

        let (report, problems) = sysinit(&endpoints, &loaded).await;
        assert!(report.errors.is_empty(), "{report:#?}");
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(report.system_docker_ready.is_some() && report.user_docker_ready.is_some());
        assert!(report.images_loaded.is_empty(), "{report:#?}");
        assert_eq!(status(&report, "network"), &ServiceOutcome::Exited { code: 0 });
        assert_eq!(status(&report, "docker"), &ServiceOutcome::Started);
        assert_eq!(status(&report, "console"), &ServiceOutcome::Started);
        assert_eq!(status(&report, "web"), &ServiceOutcome::Started);
        // The late service came after the others of System Docker, beside the user's.
        assert_eq!(status(&report, "late"), &ServiceOutcome::Started);
        let position = |name: &str| report.services.iter().position(|s| s.name == name).unwrap();
        assert!(position("late") > position("console"), "{report:#?}");
        for name in ["docker", "console", "late"] {
            assert!(is_running(&system, name).await, "{name}");
        }
        assert!(is_running(&user, "web").await);
        assert!(
            system.inspect_container("web", None).await.is_err(),
            "web ran in System Docker"
        );
        assert!(
            user.inspect_container("console", None).await.is_err(),
            "console ran in User Docker"
        );

        // Run again (System Docker restarted): everything already running.
        let (again, problems) = sysinit(&endpoints, &loaded).await;
        assert!(again.errors.is_empty() && problems.is_empty(), "{again:#?}");
        assert!(again.images_loaded.is_empty(), "{again:#?}");
        assert_eq!(status(&again, "network"), &ServiceOutcome::Exited { code: 0 });
        for name in ["docker", "console", "late", "web"] {
            assert_eq!(status(&again, name), &ServiceOutcome::AlreadyRunning, "{name}");
        }
    });
}

#[test]
fn without_the_docker_service_user_services_wait_and_problems_are_told() {
    let system_engine = Dockerd::start();
    // No image store at all: the services' images are checked instead.
    let endpoints = without_user_docker(&system_engine, Duration::from_secs(30), Duration::from_secs(60));
    // The docker service's image is not there: it is named, the service fails, the console
    // still comes up, the user services are not started, and each problem is told.
    let loaded = config("berth-test/no-engine:1");
    block_on(async {
        engine_with_busybox(&system_engine).await;
        let (report, problems) = sysinit(&endpoints, &loaded).await;
        assert!(matches!(status(&report, "docker"), ServiceOutcome::Failed { .. }));
        assert_eq!(status(&report, "console"), &ServiceOutcome::Started);
        // Without User Docker, the late service starts after the others all the same.
        assert_eq!(status(&report, "late"), &ServiceOutcome::Started);
        assert!(report.service("web").is_none(), "{report:#?}");
        assert!(report.user_docker_ready.is_none());
        assert_eq!(report.errors.len(), 2, "{report:#?}");
        assert!(
            report.errors[0].starts_with(
                "System Docker lacks these system images: berth-test/no-engine:1; the image store is missing or damaged"
            ),
            "{report:#?}"
        );
        assert!(report.errors[1].contains("berth-test/no-engine:1"), "{report:#?}");
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert_eq!(problems[..2], report.errors[..]);
        assert!(
            problems[2].contains("user services were not started"),
            "{problems:#?}"
        );
    });
}

#[test]
fn an_absent_system_docker_is_a_reported_error() {
    let dir = tempfile::tempdir().unwrap();
    let endpoints = Endpoints {
        sockets: Sockets {
            system: dir.path().join("system-docker.sock").display().to_string(),
            user: dir.path().join("docker.sock").display().to_string(),
        },
        images_dir: dir.path().join("images"),
        catalog_dir: dir.path().join("services"),
        system_docker_wait: Duration::from_millis(500),
        user_docker_wait: Duration::from_millis(500),
        late_wait: Duration::from_secs(60),
        rerun_oneshots: true,
    };
    let (report, problems) = block_on(sysinit(&endpoints, &config(BUSYBOX)));
    assert!(report.system_docker_ready.is_none());
    assert!(report.services.is_empty());
    assert_eq!(report.errors.len(), 1);
    assert!(
        problems[0].contains("System Docker is not answering"),
        "{problems:#?}"
    );
}

#[test]
fn included_optional_services_come_up_and_unknown_ones_are_told() {
    let system_engine = Dockerd::start();
    let user_engine = Dockerd::start();
    // System Docker holds busybox already (as it holds the system images from its store).
    let images = system_engine.scratch("store");
    let catalog = system_engine.scratch("services");
    std::fs::write(
        catalog.join("extra.yml"),
        format!(
            "image: {BUSYBOX}\ncommand: {SLEEPER}\nlabels: {{io.berth.scope: system, io.berth.description: x}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        catalog.join("off.yml"),
        format!("image: {BUSYBOX}\ncommand: {SLEEPER}\nlabels: {{io.berth.scope: system}}\n"),
    )
    .unwrap();
    let endpoints = Endpoints {
        sockets: Sockets {
            system: system_engine.socket(),
            user: user_engine.socket(),
        },
        images_dir: images,
        catalog_dir: catalog,
        system_docker_wait: Duration::from_secs(30),
        user_docker_wait: Duration::from_secs(1),
        late_wait: Duration::from_secs(60),
        rerun_oneshots: true,
    };
    let loaded = loaded(&format!(
        "berth:\n  services_include: {{extra: true, off: false, nosuch: true}}\n  services:\n\
         \x20   console:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.scope: system}}\n"
    ));
    block_on(async {
        engine_with_busybox(&system_engine).await;
        let (report, problems) = sysinit(&endpoints, &loaded).await;
        assert_eq!(status(&report, "extra"), &ServiceOutcome::Started);
        assert_eq!(status(&report, "console"), &ServiceOutcome::Started);
        assert!(report.service("off").is_none(), "{report:#?}");
        let system = system_engine.client();
        assert!(is_running(&system, "extra").await);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("berth.services_include.nosuch:") && p.contains("extra, off")),
            "{problems:#?}"
        );
    });
}

/// User Docker's time is taken when it answers, not when the last system service is up: a
/// one-shot after the docker service that runs 3 s does not push it back.
#[test]
fn user_docker_ready_is_timed_when_it_answers_not_after_the_last_system_service() {
    let system_engine = Dockerd::start();
    let user_engine = Dockerd::start();
    let images = system_engine.scratch("store");
    let endpoints = Endpoints {
        sockets: Sockets {
            system: system_engine.socket(),
            user: user_engine.socket(),
        },
        images_dir: images.clone(),
        catalog_dir: std::path::PathBuf::from("/nonexistent"),
        system_docker_wait: Duration::from_secs(30),
        user_docker_wait: Duration::from_secs(30),
        late_wait: Duration::from_secs(60),
        rerun_oneshots: true,
    };
    let loaded = loaded(&format!(
        "berth:\n  services:\n\
         \x20   docker:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.scope: system}}\n\
         \x20   slow:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sleep, '3']\n\
         \x20     labels: {{io.berth.scope: system, io.berth.detach: 'false', io.berth.after: docker}}\n"
    ));
    block_on(async {
        let system = engine_with_busybox(&system_engine).await;
        let id = system.inspect_image(BUSYBOX).await.unwrap().id.unwrap();
        std::fs::write(
            images.join("images.json"),
            format!(r#"[{{"repo_tag":"{BUSYBOX}","id":"{id}"}}]"#),
        )
        .unwrap();
        let (report, problems) = sysinit(&endpoints, &loaded).await;
        let done = berth_runtime::uptime();
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(status(&report, "slow"), &ServiceOutcome::Exited { code: 0 });
        let ready = report.user_docker_ready.expect("User Docker answered");
        assert!(
            done - ready >= 2.5,
            "User Docker's time ({ready:.2}s) was taken after the 3 s one-shot (done at {done:.2}s)"
        );
    });
}

/// The docker service runs but its User Docker never answers: the late services start
/// `late_wait` after the others are up, not when the wait for User Docker ends.
#[test]
fn late_services_do_not_wait_for_ever_for_a_silent_user_docker() {
    let system_engine = Dockerd::start();
    let endpoints = without_user_docker(&system_engine, Duration::from_secs(20), Duration::from_secs(1));
    // The docker service is a sleeper: it starts, and no engine ever answers on the socket.
    let loaded = config(BUSYBOX);
    block_on(async {
        let system = engine_with_busybox(&system_engine).await;
        let started = std::time::Instant::now();
        let watch = async {
            loop {
                let running = system
                    .inspect_container("late", None)
                    .await
                    .ok()
                    .and_then(|c| c.state)
                    .and_then(|s| s.running);
                if running == Some(true) {
                    return Some(started.elapsed());
                }
                if started.elapsed() > Duration::from_secs(60) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let ((report, problems), late_at) = tokio::join!(sysinit(&endpoints, &loaded), watch);
        let done = started.elapsed();
        let late_at = late_at.expect("the late service never ran");
        assert!(
            late_at + Duration::from_secs(5) < done,
            "the late service ran at {late_at:?}, the bring-up ended at {done:?}"
        );
        assert_eq!(status(&report, "late"), &ServiceOutcome::Started);
        assert!(report.user_docker_ready.is_none());
        assert!(
            problems.iter().any(|p| p.contains("User Docker did not start")),
            "{problems:#?}"
        );
    });
}
