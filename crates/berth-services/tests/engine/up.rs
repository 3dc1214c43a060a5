//! `up::up_all` against a real engine: ordering and concurrency, `detach: "false"`,
//! `createonly`, keeping and recreating containers, missing images, the `Prestart` files,
//! interpolation and restart policies.

use crate::support::archive::{self, Image};
use crate::support::{
    BUSYBOX, Dockerd, block_on, container_id, engine, engine_with_busybox, inspect, is_running, loaded, logs,
    no_prestart, run_times, services, services_of,
};
use berth_services::up::{self, Outcome, Prestart, Results, UpError};
use bollard::models::RestartPolicyNameEnum;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A shell command for a service that runs until it is stopped (and stops at SIGTERM).
const SLEEPER: &str = r#"[/bin/sh, -c, "trap 'exit 0' TERM; sleep 1000 & wait"]"#;

fn by_name(results: Results) -> BTreeMap<String, Result<Outcome, UpError>> {
    let mut map = BTreeMap::new();
    for (name, result, _) in results {
        assert!(map.insert(name.clone(), result).is_none(), "{name} came up twice");
    }
    map
}

fn ok(results: &BTreeMap<String, Result<Outcome, UpError>>, name: &str) -> Outcome {
    match results.get(name) {
        Some(Ok(outcome)) => outcome.clone(),
        Some(Err(e)) => panic!("{name} failed: {e}"),
        None => panic!("{name} has no result: {results:?}"),
    }
}

/// `up_all` on `docker` (user scope) with no `berth.environment`.
async fn up(docker: &bollard::Docker, yaml: &str) -> BTreeMap<String, Result<Outcome, UpError>> {
    let config = loaded(&format!("berth:\n  services:\n{yaml}"));
    let engine = engine(docker, &config, false, no_prestart());
    by_name(up::up_all(engine, &services_of(&config)).await)
}

#[test]
fn services_start_in_dependency_order_and_independent_ones_together() {
    let dockerd = Dockerd::start();
    let shared = dockerd.scratch("shared");
    let v = format!("[{}:/shared]", shared.display());
    // Declared in reverse: the labels alone decide the order.
    let yaml = format!(
        "    app:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, \"test -f /shared/prepared || exit 1; echo app >> /shared/log; trap 'exit 0' TERM; sleep 1000 & wait\"]\n\
         \x20     volumes: {v}\n\
         \x20     labels: {{io.berth.after: 'slow-a, slow-b'}}\n\
         \x20   slow-a:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, \"echo slow-a >> /shared/log; test -f /shared/prepared && sleep 3\"]\n\
         \x20     volumes: {v}\n\
         \x20     labels: {{io.berth.after: prepare, io.berth.detach: 'false'}}\n\
         \x20   slow-b:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, \"echo slow-b >> /shared/log; test -f /shared/prepared && sleep 3\"]\n\
         \x20     volumes: {v}\n\
         \x20     labels: {{io.rancher.os.after: prepare, io.rancher.os.detach: 'false'}}\n\
         \x20   prepare:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, \"echo prepare >> /shared/log; sleep 1; touch /shared/prepared\"]\n\
         \x20     volumes: {v}\n\
         \x20     labels: {{io.berth.detach: 'false'}}\n\
         \x20   early:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, \"echo early >> /shared/log; trap 'exit 0' TERM; sleep 1000 & wait\"]\n\
         \x20     volumes: {v}\n\
         \x20     labels: {{io.berth.before: prepare}}\n"
    );
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let results = up(&docker, &yaml).await;
        assert_eq!(ok(&results, "early"), Outcome::Started);
        assert_eq!(ok(&results, "prepare"), Outcome::Exited(0));
        assert_eq!(ok(&results, "slow-a"), Outcome::Exited(0));
        assert_eq!(ok(&results, "slow-b"), Outcome::Exited(0));
        assert_eq!(ok(&results, "app"), Outcome::Started);
        assert!(is_running(&docker, "app").await);

        // What the services saw, in the order they saw it.
        let log = std::fs::read_to_string(shared.join("log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 5, "{log}");
        assert_eq!(lines[..2], ["early", "prepare"], "{log}");
        let mut middle = lines[2..4].to_vec();
        middle.sort();
        assert_eq!(middle, ["slow-a", "slow-b"], "{log}");
        assert_eq!(lines[4], "app", "{log}");

        // The engine's own clock: `before` and `after` are kept, a `detach: "false"` service
        // has exited before its dependants start, and slow-a and slow-b ran at the same time.
        let (early, _) = run_times(&docker, "early").await;
        let (prepare_start, prepare_end) = run_times(&docker, "prepare").await;
        let (a_start, a_end) = run_times(&docker, "slow-a").await;
        let (b_start, b_end) = run_times(&docker, "slow-b").await;
        let (app, _) = run_times(&docker, "app").await;
        let (prepare_end, a_end, b_end) = (prepare_end.unwrap(), a_end.unwrap(), b_end.unwrap());
        assert!(early <= prepare_start);
        assert!(prepare_end <= a_start && prepare_end <= b_start);
        assert!(
            a_start.max(b_start) < a_end.min(b_end),
            "slow-a ran {a_start}..{a_end}, slow-b {b_start}..{b_end}: not concurrently"
        );
        assert!(app >= a_end.max(b_end));
    });
}

#[test]
fn a_failed_dependency_is_reported_and_its_dependants_still_start() {
    let dockerd = Dockerd::start();
    let yaml = format!(
        "    setup:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, 'echo broken; exit 3']\n\
         \x20     labels: {{io.berth.detach: 'false'}}\n\
         \x20   console:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.after: setup}}\n"
    );
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let results = up(&docker, &yaml).await;
        match &results["setup"] {
            Err(UpError::Failed { service, code }) => {
                assert_eq!((service.as_str(), *code), ("setup", 3));
            }
            other => panic!("setup: {other:?}"),
        }
        let message = results["setup"].as_ref().unwrap_err().to_string();
        assert!(message.contains("exited with code 3"), "{message}");
        assert_eq!(ok(&results, "console"), Outcome::Started);
        assert!(is_running(&docker, "console").await);
        let (console_start, _) = run_times(&docker, "console").await;
        let (_, setup_end) = run_times(&docker, "setup").await;
        assert!(console_start >= setup_end.unwrap());
    });
}

#[test]
fn createonly_services_are_created_and_not_started() {
    let dockerd = Dockerd::start();
    // RancherOS's pattern: a data container that others take their volumes from.
    let yaml = format!(
        "    all-volumes:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, 'exit 7']\n\
         \x20     volumes: [/data]\n\
         \x20     labels: {{io.berth.createonly: 'true'}}\n\
         \x20   user:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, 'test -d /data && touch /data/seen']\n\
         \x20     volumes_from: [all-volumes]\n\
         \x20     labels: {{io.berth.after: all-volumes, io.berth.detach: 'false'}}\n"
    );
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        for round in 0..2 {
            let results = up(&docker, &yaml).await;
            assert_eq!(ok(&results, "all-volumes"), Outcome::Created, "round {round}");
            assert_eq!(ok(&results, "user"), Outcome::Exited(0), "round {round}");
            let state = inspect(&docker, "all-volumes").await.state.unwrap();
            assert_eq!(
                state.status,
                Some(bollard::models::ContainerStateStatusEnum::CREATED),
                "round {round}: all-volumes was started"
            );
        }
    });
}

#[test]
fn an_unchanged_definition_keeps_its_container_and_a_changed_one_is_recreated() {
    let dockerd = Dockerd::start();
    let web = |seconds: u32| {
        format!(
            "    web:\n\
             \x20     image: {BUSYBOX}\n\
             \x20     command: [/bin/sh, -c, \"trap 'exit 0' TERM; sleep {seconds} & wait\"]\n\
             \x20   job:\n\
             \x20     image: {BUSYBOX}\n\
             \x20     command: [/bin/sh, -c, 'echo ran >> /tmp/runs; cat /tmp/runs | wc -l']\n\
             \x20     labels: {{io.berth.detach: 'false'}}\n"
        )
    };
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let results = up(&docker, &web(1000)).await;
        assert_eq!(ok(&results, "web"), Outcome::Started);
        assert_eq!(ok(&results, "job"), Outcome::Exited(0));
        let first = container_id(&docker, "web").await;
        let job = container_id(&docker, "job").await;

        // Same definition, running: left alone.
        let results = up(&docker, &web(1000)).await;
        assert_eq!(ok(&results, "web"), Outcome::AlreadyRunning);
        assert_eq!(container_id(&docker, "web").await, first);
        // A run-once service with the same definition runs again in the same container (its
        // file system, here /tmp/runs, is kept).
        assert_eq!(ok(&results, "job"), Outcome::Exited(0));
        assert_eq!(container_id(&docker, "job").await, job);
        assert_eq!(
            logs(&docker, "job").await.lines().last().map(str::trim),
            Some("2")
        );

        // Same definition, stopped: started again, same container.
        docker.stop_container("web", None).await.unwrap();
        let results = up(&docker, &web(1000)).await;
        assert_eq!(ok(&results, "web"), Outcome::Started);
        assert_eq!(container_id(&docker, "web").await, first);
        assert!(is_running(&docker, "web").await);

        // Changed definition: a new container replaces the old one.
        let results = up(&docker, &web(2000)).await;
        assert_eq!(ok(&results, "web"), Outcome::Started);
        let second = container_id(&docker, "web").await;
        assert_ne!(second, first);
        assert!(docker.inspect_container(&first, None).await.is_err());
        assert!(is_running(&docker, "web").await);

        // Same definition, but its tag now names another image (a new OS version's): recreated.
        let dir = dockerd.scratch("newer-busybox");
        let mut newer = Image::busybox(BUSYBOX);
        newer.label = "newer".into();
        archive::write(&dir, &[newer]);
        assert_eq!(
            berth_services::images::ensure(&docker, &dir).await.unwrap(),
            [BUSYBOX]
        );
        let results = up(&docker, &web(2000)).await;
        assert_eq!(ok(&results, "web"), Outcome::Started);
        let third = container_id(&docker, "web").await;
        assert_ne!(third, second);
        let image = inspect(&docker, "web").await.image.unwrap();
        assert_eq!(Some(image), docker.inspect_image(BUSYBOX).await.unwrap().id);
    });
}

#[test]
fn a_missing_image_is_reported_and_dependants_still_start() {
    let dockerd = Dockerd::start();
    let yaml = format!(
        "    ghost:\n\
         \x20     image: berth-test/ghost:1\n\
         \x20     command: {SLEEPER}\n\
         \x20   console:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.after: ghost}}\n"
    );
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let results = up(&docker, &yaml).await;
        match &results["ghost"] {
            Err(UpError::MissingImage { service, image, .. }) => {
                assert_eq!(
                    (service.as_str(), image.as_str()),
                    ("ghost", "berth-test/ghost:1")
                );
            }
            other => panic!("ghost: {other:?}"),
        }
        assert!(docker.inspect_container("ghost", None).await.is_err());
        assert_eq!(ok(&results, "console"), Outcome::Started);
        assert!(is_running(&docker, "console").await);
    });
}

#[test]
fn prestart_files_are_in_the_container_before_it_starts() {
    let dockerd = Dockerd::start();
    // Like cloud-config write_files for a container: the files of the configuration read at
    // this boot, numbered here so that each run's can be told apart.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let prestart: Arc<Prestart> = Arc::new(move |name: &str| {
        if name != "greeter" {
            return None;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Some(archive::file_layer(&[(
            "etc/greeting/hello.txt",
            &format!("hello #{n}\n"),
        )]))
    });
    let yaml = |extra: &str| {
        format!(
            "berth:\n  services:\n\
             \x20   greeter:\n\
             \x20     image: {BUSYBOX}\n\
             \x20     command: [/bin/sh, -c, 'cat /etc/greeting/hello.txt{extra}']\n\
             \x20     labels: {{io.berth.detach: 'false'}}\n\
             \x20   other:\n\
             \x20     image: {BUSYBOX}\n\
             \x20     command: [/bin/sh, -c, 'test ! -e /etc/greeting']\n\
             \x20     labels: {{io.berth.detach: 'false'}}\n"
        )
    };
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let run = |text: String| {
            let docker = docker.clone();
            let prestart = prestart.clone();
            async move {
                let config = loaded(&text);
                let engine = engine(&docker, &config, true, prestart);
                by_name(up::up_all(engine, &services_of(&config)).await)
            }
        };
        let results = run(yaml("")).await;
        assert_eq!(ok(&results, "greeter"), Outcome::Exited(0));
        assert_eq!(ok(&results, "other"), Outcome::Exited(0));
        assert_eq!(logs(&docker, "greeter").await, "hello #1\n");
        let first = container_id(&docker, "greeter").await;

        // The next boot keeps the container (same definition) but its files are this boot's:
        // a changed write_files entry must not leave last boot's content in place.
        let results = run(yaml("")).await;
        assert_eq!(ok(&results, "greeter"), Outcome::Exited(0));
        assert_eq!(container_id(&docker, "greeter").await, first);
        assert_eq!(logs(&docker, "greeter").await, "hello #1\nhello #2\n");

        // A recreated container gets them too.
        let results = run(yaml(" /etc/greeting/hello.txt")).await;
        assert_eq!(ok(&results, "greeter"), Outcome::Exited(0));
        assert_ne!(container_id(&docker, "greeter").await, first);
        assert_eq!(logs(&docker, "greeter").await, "hello #3\nhello #3\n");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn berth_version_and_environment_reach_the_container() {
    let dockerd = Dockerd::start();
    let config = loaded(
        "berth:\n\
         \x20 environment:\n\
         \x20   REPO: berth-test\n\
         \x20   GREETING: hello world\n\
         \x20   TOKEN: global\n\
         \x20   envtest/TOKEN: for-envtest\n\
         \x20 services:\n\
         \x20   envtest:\n\
         \x20     image: ${REPO}/busybox:1\n\
         \x20     command: [/bin/sh, -c, 'echo \"$VERSION\"; echo \"$GREETING\"; echo \"$TOKEN\"; echo \"$TAGGED\"; echo \"$${UNSET-no UNSET}\"']\n\
         \x20     environment:\n\
         \x20       - VERSION=${BERTH_VERSION}\n\
         \x20       - GREETING\n\
         \x20       - TOKEN\n\
         \x20       - UNSET\n\
         \x20       - TAGGED=${REPO}:${BERTH_VERSION}\n\
         \x20     labels: {io.berth.detach: 'false', io.berth.test.version: '${BERTH_VERSION}'}\n",
    );
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let engine = engine(&docker, &config, true, no_prestart());
        let results = by_name(up::up_all(engine, &services_of(&config)).await);
        assert_eq!(ok(&results, "envtest"), Outcome::Exited(0));
        let version = berth_services::VERSION;
        assert_eq!(
            logs(&docker, "envtest").await,
            format!("{version}\nhello world\nfor-envtest\nberth-test:{version}\nno UNSET\n")
        );
        let config = inspect(&docker, "envtest").await.config.unwrap();
        assert_eq!(config.image.as_deref(), Some(BUSYBOX));
        let env = config.env.unwrap();
        for want in [
            format!("VERSION={version}"),
            "GREETING=hello world".into(),
            "TOKEN=for-envtest".into(),
        ] {
            assert!(env.contains(&want), "{want} not in {env:?}");
        }
        assert!(!env.iter().any(|e| e.starts_with("UNSET")), "{env:?}");
        assert_eq!(config.labels.unwrap()["io.berth.test.version"], version);
    });
}

#[test]
fn restart_policies_map_to_the_engine() {
    let dockerd = Dockerd::start();
    let service = |name: &str, restart: &str| {
        format!(
            "    {name}:\n\
             \x20     image: {BUSYBOX}\n\
             \x20     command: {SLEEPER}\n\
             \x20     restart: {restart}\n"
        )
    };
    let system = [
        service("sys-always", "always"),
        service("sys-unless", "unless-stopped"),
        service("sys-on-failure", "on-failure:3"),
        service("sys-no", "'no'"),
        format!("    sys-none:\n      image: {BUSYBOX}\n      command: {SLEEPER}\n"),
    ]
    .concat();
    let user = service("user-always", "always");
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let system = services(&system);
        let user = services(&user);
        let config = loaded("berth: {}\n");
        for (name, result, _) in up::up_all(engine(&docker, &config, true, no_prestart()), &system).await {
            assert_eq!(result.unwrap(), Outcome::Started, "{name}");
        }
        for (name, result, _) in up::up_all(engine(&docker, &config, false, no_prestart()), &user).await {
            assert_eq!(result.unwrap(), Outcome::Started, "{name}");
        }
        let policy = |name: &'static str| {
            let docker = docker.clone();
            async move {
                let p = inspect(&docker, name).await.host_config.unwrap().restart_policy;
                p.map(|p| (p.name.unwrap(), p.maximum_retry_count.unwrap_or(0)))
            }
        };
        use RestartPolicyNameEnum::*;
        // System Docker must not start system services by itself, out of order, at boot.
        assert_eq!(policy("sys-always").await, Some((UNLESS_STOPPED, 0)));
        assert_eq!(policy("sys-unless").await, Some((UNLESS_STOPPED, 0)));
        assert_eq!(policy("sys-on-failure").await, Some((ON_FAILURE, 3)));
        assert_eq!(policy("sys-no").await, Some((NO, 0)));
        assert!(matches!(policy("sys-none").await, None | Some((NO | EMPTY, 0))));
        assert_eq!(policy("user-always").await, Some((ALWAYS, 0)));
    });
}

#[test]
fn a_dependency_cycle_is_broken_once_and_the_rest_keeps_its_order() {
    let dockerd = Dockerd::start();
    // ring-a and ring-b wait for each other; ring-c only waits for ring-a.
    let yaml = format!(
        "    ring-c:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.after: ring-a}}\n\
         \x20   ring-a:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, 'sleep 1']\n\
         \x20     labels: {{io.berth.after: ring-b, io.berth.detach: 'false'}}\n\
         \x20   ring-b:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.after: 'ring-a, udev'}}\n"
    );
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let results = up(&docker, &yaml).await;
        assert_eq!(ok(&results, "ring-a"), Outcome::Exited(0));
        for name in ["ring-b", "ring-c"] {
            assert_eq!(ok(&results, name), Outcome::Started, "{name}");
            assert!(is_running(&docker, name).await, "{name}");
        }
        // The cycle is broken at one service; whatever waits for it still does.
        let (_, a_end) = run_times(&docker, "ring-a").await;
        let a_end = a_end.unwrap();
        for name in ["ring-b", "ring-c"] {
            let (start, _) = run_times(&docker, name).await;
            assert!(
                start >= a_end,
                "{name} started at {start}, before ring-a finished at {a_end}"
            );
        }
    });
}

#[test]
fn a_run_once_service_found_running_is_waited_for() {
    let dockerd = Dockerd::start();
    let yaml = format!(
        "    job:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, 'echo run; sleep 2']\n\
         \x20     labels: {{io.berth.detach: 'false'}}\n"
    );
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        // sysinit runs again (System Docker restarted) while the first run still waits.
        let first = tokio::spawn({
            let docker = docker.clone();
            let yaml = yaml.clone();
            async move { up(&docker, &yaml).await }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while docker.inspect_container("job", None).await.is_err() || !is_running(&docker, "job").await {
            assert!(std::time::Instant::now() < deadline, "job never ran");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let id = container_id(&docker, "job").await;
        let second = up(&docker, &yaml).await;
        assert_eq!(ok(&second, "job"), Outcome::Exited(0));
        assert_eq!(ok(&first.await.unwrap(), "job"), Outcome::Exited(0));
        assert_eq!(container_id(&docker, "job").await, id);
        // Waited for, not started a second time.
        assert_eq!(logs(&docker, "job").await, "run\n");
    });
}

/// A one-shot that hangs past its `io.berth.timeout` is stopped and reported, and what waits
/// for it starts anyway (cloud-init hanging must not keep the console from starting).
#[test]
fn a_hung_oneshot_is_stopped_at_its_deadline_and_its_dependants_start() {
    let dockerd = Dockerd::start();
    let yaml = format!(
        "    hangs:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [sleep, '600']\n\
         \x20     labels: {{io.berth.detach: 'false', io.berth.timeout: 3s}}\n\
         \x20   after-it:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.after: hangs}}\n"
    );
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let started = std::time::Instant::now();
        let results = up(&docker, &yaml).await;
        let took = started.elapsed();
        match results.get("hangs") {
            Some(Err(e @ UpError::TimedOut { .. })) => {
                let text = e.to_string();
                assert!(text.contains("within 3s") && text.contains("hangs"), "{text}");
            }
            other => panic!("the hung one-shot was not timed out: {other:?}"),
        }
        assert!(
            !is_running(&docker, "hangs").await,
            "the hung container was left running"
        );
        assert_eq!(ok(&results, "after-it"), Outcome::Started);
        assert!(took < std::time::Duration::from_secs(300), "waited {took:?}");

        // A deadline that is not a duration is an error naming the label, not a hang. The
        // configuration check refuses it (berth_config::label_problem): the spec is made here.
        let bad = format!(
            "berth:\n  services:\n    bad:\n\
             \x20     image: {BUSYBOX}\n\
             \x20     command: ['true']\n\
             \x20     labels: {{io.berth.detach: 'false'}}\n"
        );
        let config = loaded(&bad);
        let mut specs = services_of(&config);
        specs["bad"]
            .labels
            .insert("io.berth.timeout".into(), "soon".into());
        let engine = engine(&docker, &config, false, no_prestart());
        let results = by_name(up::up_all(engine, &specs).await);
        match results.get("bad") {
            Some(Err(e)) => assert!(e.to_string().contains("io.berth.timeout"), "{e}"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn dependants_wait_for_a_healthy_service_and_an_unhealthy_one_is_reported() {
    let dockerd = Dockerd::start();
    let shared = dockerd.scratch("health");
    let v = format!("[{}:/shared]", shared.display());
    // `db` becomes ready 3 s after it starts; `app` records whether it was when it started.
    // `broken` never passes its check; `after-broken` still starts once that is known.
    let yaml = format!(
        "    db:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, \"sleep 3; touch /shared/ready; trap 'exit 0' TERM; sleep 1000 & wait\"]\n\
         \x20     volumes: {v}\n\
         \x20     healthcheck:\n\
         \x20       test: test -f /shared/ready\n\
         \x20       interval: 500ms\n\
         \x20       retries: 20\n\
         \x20   app:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: [/bin/sh, -c, \"if test -f /shared/ready; then echo ready; else echo early; fi > /shared/app\"]\n\
         \x20     volumes: {v}\n\
         \x20     labels: {{io.berth.after: db, io.berth.detach: 'false'}}\n\
         \x20   broken:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     healthcheck:\n\
         \x20       test: [CMD, /bin/sh, -c, 'echo no database; exit 1']\n\
         \x20       interval: 300ms\n\
         \x20       retries: 2\n\
         \x20   after-broken:\n\
         \x20     image: {BUSYBOX}\n\
         \x20     command: {SLEEPER}\n\
         \x20     labels: {{io.berth.after: broken}}\n"
    );
    block_on(async {
        let docker = engine_with_busybox(&dockerd).await;
        let results = up(&docker, &yaml).await;
        assert_eq!(ok(&results, "db"), Outcome::Started);
        assert_eq!(ok(&results, "app"), Outcome::Exited(0));
        let seen = std::fs::read_to_string(shared.join("app")).unwrap();
        assert_eq!(seen.trim(), "ready", "app started before db was healthy");

        let message = results["broken"].as_ref().unwrap_err().to_string();
        assert!(
            message.contains("broken is not healthy") && message.contains("no database"),
            "{message}"
        );
        assert_eq!(ok(&results, "after-broken"), Outcome::Started);
        let health = inspect(&docker, "broken").await.state.unwrap().health.unwrap();
        assert_eq!(health.status, Some(bollard::models::HealthStatusEnum::UNHEALTHY));
    });
}
