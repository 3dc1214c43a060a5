//! `shutdown::stop_all_in`: the `docker` service (User Docker, which stops its containers),
//! then containers of a User Docker that outlived it, the other system services, and the
//! console last; the helper is left running. (Here User Docker is a separate engine, so its
//! containers are stopped through its API after the `docker` service.)

use crate::support::{
    BUSYBOX, Dockerd, block_on, engine, engine_with_busybox, is_running, loaded, no_prestart, run_times,
    services_of,
};
use berth_services::Sockets;
use berth_services::shutdown::stop_all_in;
use berth_services::up;
use std::time::{Duration, Instant};

/// Services that stop at once on SIGTERM.
fn sleepers(names: &[&str], scope: &str) -> String {
    let mut yaml = String::from("berth:\n  services:\n");
    for name in names {
        yaml.push_str(&format!(
            "    {name}:\n\
             \x20     image: {BUSYBOX}\n\
             \x20     command: [/bin/sh, -c, \"trap 'exit 0' TERM; sleep 1000 & wait\"]\n\
             \x20     labels: {{io.berth.scope: {scope}}}\n"
        ));
    }
    yaml
}

async fn bring_up(docker: &bollard::Docker, yaml: &str, system_scope: bool) {
    let config = loaded(yaml);
    for (name, result, _) in up::up_all(
        engine(docker, &config, system_scope, no_prestart()),
        &services_of(&config),
    )
    .await
    {
        assert_eq!(result.unwrap(), up::Outcome::Started, "{name}");
    }
}

/// The sockets of `system` alone: User Docker's is a path nothing listens on.
fn without_user_engine(system: &Dockerd) -> Sockets {
    Sockets {
        system: system.socket(),
        user: system
            .scratch("no-user-engine")
            .join("docker.sock")
            .display()
            .to_string(),
    }
}

fn position(report: &[String], line: &str) -> usize {
    report
        .iter()
        // "stopped NAME (1.2s)": the time is the stop's own.
        .position(|l| {
            l == line
                || l.strip_prefix(line)
                    .is_some_and(|t| t.starts_with(" (") && t.ends_with("s)"))
        })
        .unwrap_or_else(|| panic!("{line:?} not in the report {report:#?}"))
}

#[test]
fn containers_stop_in_order_user_engine_services_console() {
    let system_engine = Dockerd::start();
    let user_engine = Dockerd::start();
    block_on(async {
        let system = engine_with_busybox(&system_engine).await;
        let user = engine_with_busybox(&user_engine).await;
        bring_up(
            &system,
            &sleepers(
                &["console", "network", "docker", "ntp", "berth-shutdown"],
                "system",
            ),
            true,
        )
        .await;
        bring_up(&user, &sleepers(&["web", "db"], "user"), false).await;

        let sockets = Sockets {
            system: system_engine.socket(),
            user: user_engine.socket(),
        };
        let report = stop_all_in(&sockets, Duration::from_secs(60), Some("berth-shutdown")).await;

        for name in ["console", "network", "docker", "ntp"] {
            assert!(!is_running(&system, name).await, "{name} still runs: {report:#?}");
        }
        for name in ["web", "db"] {
            assert!(!is_running(&user, name).await, "{name} still runs: {report:#?}");
        }
        assert!(
            is_running(&system, "berth-shutdown").await,
            "the helper was stopped"
        );

        // The report, in the order things happened.
        let engine = position(
            &report,
            "stopping User Docker, which stops its 2 running containers",
        );
        let docker = position(&report, "stopped docker");
        let users = position(&report, "stopping 2 user containers");
        let web = position(&report, "stopped web");
        let db = position(&report, "stopped db");
        let network = position(&report, "stopped network");
        let ntp = position(&report, "stopped ntp");
        let console = position(&report, "stopped console");
        assert!(engine < docker && docker < users, "{report:#?}");
        assert!(
            users < web.min(db) && web.max(db) < network.min(ntp),
            "{report:#?}"
        );
        assert!(network.max(ntp) < console, "{report:#?}");
        assert!(
            !report.iter().any(|l| l.contains("berth-shutdown")),
            "{report:#?}"
        );
        // Nothing started during the stop: each container is stopped once.
        assert!(
            !report
                .iter()
                .any(|l| l.contains("started while the others stopped")),
            "{report:#?}"
        );

        // The engines' clocks agree: each set had stopped before the next was asked to.
        let finished = |docker: bollard::Docker, name: &'static str| async move {
            run_times(&docker, name).await.1.unwrap()
        };
        let users_done = finished(user.clone(), "web")
            .await
            .max(finished(user.clone(), "db").await);
        let docker_done = finished(system.clone(), "docker").await;
        let network_done = finished(system.clone(), "network").await;
        let ntp_done = finished(system.clone(), "ntp").await;
        let console_done = finished(system.clone(), "console").await;
        assert!(docker_done <= users_done);
        assert!(users_done <= network_done.min(ntp_done));
        assert!(network_done.max(ntp_done) <= console_done);
    });
}

#[test]
fn a_live_restore_user_engine_has_its_containers_stopped_first() {
    let system_engine = Dockerd::start();
    let user_engine = Dockerd::start_with(&["--live-restore"]);
    block_on(async {
        let system = engine_with_busybox(&system_engine).await;
        let user = engine_with_busybox(&user_engine).await;
        bring_up(&system, &sleepers(&["docker", "console"], "system"), true).await;
        bring_up(&user, &sleepers(&["web"], "user"), false).await;
        let sockets = Sockets {
            system: system_engine.socket(),
            user: user_engine.socket(),
        };
        let report = stop_all_in(&sockets, Duration::from_secs(60), None).await;
        assert!(!is_running(&user, "web").await, "{report:#?}");
        let first = report
            .iter()
            .position(|l| l.contains("live-restore") && l.contains("stopping its 1 running containers first"))
            .unwrap_or_else(|| panic!("the live-restore stop is not reported: {report:#?}"));
        let web = position(&report, "stopped web");
        let docker = position(&report, "stopped docker");
        assert!(first < web && web < docker, "{report:#?}");
        // Stopped with SIGTERM (the container traps it and exits 0), not killed.
        let exit = user
            .inspect_container("web", None)
            .await
            .unwrap()
            .state
            .unwrap()
            .exit_code;
        assert_eq!(exit, Some(0), "{report:#?}");
    });
}

/// A system container that starts while the others stop (its start was under way when the
/// running ones were listed) is stopped too, through the API: left to System Docker's own
/// stop, its restart policy would start it at the next boot.
#[test]
fn a_container_started_during_the_stop_is_stopped_too() {
    let system_engine = Dockerd::start();
    let signs = system_engine.scratch("signs");
    std::fs::create_dir_all(&signs).unwrap();
    // `slow` notes that its stop began, then holds it for its grace period.
    let yaml = format!(
        "berth:\n  services:\n\
         \x20   slow:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, \"trap 'touch /signs/stopping' TERM; while true; do sleep 1; done\"]\n\
         \x20     stop_grace_period: 4s\n\
         \x20     volumes: ['{}:/signs']\n\
         \x20     labels: {{io.berth.scope: system}}\n",
        signs.display()
    );
    block_on(async {
        let system = engine_with_busybox(&system_engine).await;
        bring_up(&system, &yaml, true).await;
        system
            .create_container(
                Some(bollard::query_parameters::CreateContainerOptions {
                    name: Some("latecomer".into()),
                    ..Default::default()
                }),
                bollard::models::ContainerCreateBody {
                    image: Some(BUSYBOX.to_string()),
                    cmd: Some(vec!["/bin/sleep".into(), "1000".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let sockets = without_user_engine(&system_engine);
        let start_late = {
            let system = system.clone();
            let sign = signs.join("stopping");
            async move {
                // Once slow's stop began, the running containers were listed.
                let deadline = Instant::now() + Duration::from_secs(30);
                while !sign.exists() {
                    assert!(Instant::now() < deadline, "slow was never told to stop");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                system
                    .start_container(
                        "latecomer",
                        None::<bollard::query_parameters::StartContainerOptions>,
                    )
                    .await
                    .unwrap();
            }
        };
        let (report, ()) = tokio::join!(stop_all_in(&sockets, Duration::from_secs(60), None), start_late);
        position(&report, "stopped slow");
        position(
            &report,
            "1 system containers started while the others stopped: stopping them",
        );
        position(&report, "stopped latecomer");
        assert!(!is_running(&system, "latecomer").await, "{report:#?}");
    });
}

#[test]
fn stop_grace_period_is_honoured_and_a_missing_user_engine_is_skipped() {
    let system_engine = Dockerd::start();
    // PID 1 of the container ignores SIGTERM: only SIGKILL, after the grace period, stops it.
    let yaml = format!(
        "berth:\n  services:\n\
         \x20   stubborn:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sleep, '1000']\n\
         \x20     stop_grace_period: 2s\n\
         \x20     labels: {{io.berth.scope: system}}\n"
    );
    block_on(async {
        let system = engine_with_busybox(&system_engine).await;
        bring_up(&system, &yaml, true).await;
        let sockets = without_user_engine(&system_engine);
        let started = Instant::now();
        let report = stop_all_in(&sockets, Duration::from_secs(60), None).await;
        let took = started.elapsed();
        assert_eq!(report.len(), 1, "{report:#?}");
        position(&report, "stopped stubborn");
        assert!(!is_running(&system, "stubborn").await);
        // Without the grace period the engine's default of 10 s applies: anything less shows
        // the 2 s were used, without betting on how busy the machine is.
        assert!(
            took < Duration::from_secs(10),
            "stopping took {took:?}: the service's stop_grace_period (2s) was not used"
        );
    });
}

#[test]
fn an_unreachable_system_docker_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // No socket at all, and the socket a crashed System Docker left behind.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    for system in [dir.path().join("system-docker.sock"), stale] {
        let sockets = Sockets {
            system: system.display().to_string(),
            user: dir.path().join("docker.sock").display().to_string(),
        };
        let report = block_on(stop_all_in(&sockets, Duration::from_secs(10), None));
        assert_eq!(report.len(), 1, "{}: {report:#?}", system.display());
        assert!(
            report[0].contains("System Docker is not reachable"),
            "{}: {report:#?}",
            system.display()
        );
    }
}
