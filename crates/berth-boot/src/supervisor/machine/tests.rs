//! Every transition of PID 1's state machine, driven by events with a fake clock.

use super::*;
use berth_runtime::{ServiceOutcome, ServiceRecord};

const SD: i32 = 100;
const SYSINIT: i32 = 200;

struct Run {
    sup: Supervisor,
    now: Instant,
}

impl Run {
    fn new() -> Self {
        let now = Instant::now();
        let mut run = Run {
            sup: Supervisor::new(Limits::default(), now),
            now,
        };
        assert_eq!(run.send(Event::Boot), [Action::StartSystemDocker]);
        run
    }

    fn send(&mut self, event: Event) -> Vec<Action> {
        self.sup.handle(self.now, event)
    }

    fn advance(&mut self, by: Duration) -> Vec<Action> {
        self.now += by;
        self.send(Event::Tick)
    }

    /// Boot to a running System Docker and a running sysinit.
    fn booted() -> Self {
        let mut run = Run::new();
        let actions = run.send(Event::Spawned {
            child: Child::SystemDocker,
            pid: SD,
        });
        assert_eq!(
            actions,
            [Action::StartSysinit {
                after_engine_restart: false
            }]
        );
        assert!(
            run.send(Event::Spawned {
                child: Child::Sysinit,
                pid: SYSINIT
            })
            .is_empty()
        );
        run
    }

    fn sysinit_exits_with(&mut self, report: Result<SysinitReport, String>) -> Vec<Action> {
        assert_eq!(
            self.send(Event::Exited {
                pid: SYSINIT,
                exit: Exit::Code(0)
            }),
            [Action::ReadReport]
        );
        self.send(Event::Report(report))
    }
}

fn report_with(console: ServiceOutcome) -> SysinitReport {
    SysinitReport {
        system_docker_ready: Some(5.0),
        services: vec![ServiceRecord {
            name: "console".into(),
            outcome: console,
            seconds: 1.0,
        }],
        ..Default::default()
    }
}

fn emergency_reason(actions: &[Action]) -> Option<&str> {
    actions.iter().find_map(|a| match a {
        Action::EmergencyShell { reason } => Some(reason.as_str()),
        _ => None,
    })
}

#[test]
fn a_good_boot_starts_the_engine_then_the_bringup_and_nothing_else() {
    let mut run = Run::booted();
    assert!(
        run.sysinit_exits_with(Ok(report_with(ServiceOutcome::Started)))
            .is_empty()
    );
    // Long after: no console deadline fires once the console runs; User Docker never
    // answered, so the health deadline does, once.
    assert_eq!(run.advance(Duration::from_secs(3600)), [Action::HealthExpired]);
    assert_eq!(run.sup.next_deadline(), None);
    assert_eq!(run.sup.system_docker(), Some(SD));
}

#[test]
fn system_docker_crashes_back_off_doubling_up_to_thirty_seconds() {
    let mut run = Run::booted();
    let _ = run.sysinit_exits_with(Ok(report_with(ServiceOutcome::Started)));
    let mut delays = Vec::new();
    let mut engine = SD;
    for _ in 0..4 {
        let actions = run.send(Event::Exited {
            pid: engine,
            exit: Exit::Code(1),
        });
        assert!(
            matches!(&actions[0], Action::Problem(p) if p.contains("System Docker exited (exit status 1)")),
            "{actions:?}"
        );
        assert_eq!(run.sup.system_docker(), None);
        let wait = run.sup.next_deadline().unwrap() - run.now;
        delays.push(wait.as_secs());
        // Nothing before the deadline, a start at it.
        assert!(run.advance(wait - Duration::from_millis(1)).is_empty());
        assert_eq!(run.advance(Duration::from_millis(1)), [Action::StartSystemDocker]);
        engine += 1;
        let restarted = run.send(Event::Spawned {
            child: Child::SystemDocker,
            pid: engine,
        });
        // The bring-up runs again, without repeating one-shot services.
        assert_eq!(
            restarted,
            [Action::StartSysinit {
                after_engine_restart: true
            }]
        );
        let _ = run.send(Event::Spawned {
            child: Child::Sysinit,
            pid: SYSINIT,
        });
        let _ = run.sysinit_exits_with(Ok(report_with(ServiceOutcome::AlreadyRunning)));
        assert_eq!(run.sup.system_docker(), Some(engine));
    }
    assert_eq!(delays, [2, 4, 8, 16]);
    assert_eq!(restart_delay(5).as_secs(), 30);
    assert_eq!(restart_delay(40).as_secs(), 30);
}

#[test]
fn a_stable_engine_resets_the_failure_count() {
    let mut run = Run::booted();
    let _ = run.sysinit_exits_with(Ok(report_with(ServiceOutcome::Started)));
    run.sup.failures = 3;
    run.now += Duration::from_secs(61);
    let _ = run.send(Event::Exited {
        pid: SD,
        exit: Exit::Signal("SIGKILL".into()),
    });
    assert_eq!(run.sup.failures, 1);
    assert_eq!((run.sup.next_deadline().unwrap() - run.now).as_secs(), 2);
}

#[test]
fn an_engine_that_never_stays_up_opens_an_emergency_shell_and_keeps_retrying() {
    let mut run = Run::new();
    let mut opened = None;
    for n in 1..=6 {
        let _ = run.send(Event::Spawned {
            child: Child::SystemDocker,
            pid: SD + n,
        });
        let _ = run.send(Event::Spawned {
            child: Child::Sysinit,
            pid: SYSINIT,
        });
        let actions = run.send(Event::Exited {
            pid: SD + n,
            exit: Exit::Code(1),
        });
        if let Some(reason) = emergency_reason(&actions) {
            assert!(opened.is_none(), "a second emergency shell at failure {n}");
            opened = Some((n, reason.to_string()));
        }
        // sysinit gives up on the dead engine; no second shell for that.
        let after = run.sysinit_exits_with(Ok(SysinitReport::default()));
        assert!(emergency_reason(&after).is_none(), "{after:?}");
        let wait = run.sup.next_deadline().unwrap() - run.now;
        assert_eq!(run.advance(wait), [Action::StartSystemDocker]);
    }
    let (n, reason) = opened.expect("no emergency shell");
    assert_eq!(n, 5);
    assert!(
        reason.contains("failed 5 times")
            && reason.contains("exit status 1")
            && reason.contains("system-docker.log"),
        "{reason}"
    );
}

#[test]
fn an_engine_binary_that_cannot_be_started_is_retried_then_an_emergency_shell_opens() {
    let mut run = Run::new();
    for n in 1..=5 {
        let actions = run.send(Event::SpawnFailed {
            child: Child::SystemDocker,
            error: "No such file or directory (os error 2)".into(),
        });
        assert!(
            matches!(&actions[0], Action::Problem(p) if p.contains("cannot start System Docker")),
            "{actions:?}"
        );
        assert_eq!(
            emergency_reason(&actions).is_some(),
            n == 5,
            "failure {n}: {actions:?}"
        );
        let wait = run.sup.next_deadline().unwrap() - run.now;
        assert_eq!(run.advance(wait), [Action::StartSystemDocker]);
    }
}

#[test]
fn sysinit_that_cannot_start_or_leaves_no_console_opens_an_emergency_shell() {
    let mut run = Run::new();
    let _ = run.send(Event::Spawned {
        child: Child::SystemDocker,
        pid: SD,
    });
    let actions = run.send(Event::SpawnFailed {
        child: Child::Sysinit,
        error: "exec format error".into(),
    });
    assert!(emergency_reason(&actions).unwrap().contains("berth sysinit"));

    let mut run = Run::booted();
    let actions = run.sysinit_exits_with(Ok(report_with(ServiceOutcome::Failed {
        error: "image berth/console:1 is not in the engine".into(),
    })));
    let reason = emergency_reason(&actions).unwrap();
    assert!(
        reason.contains("console service failed: image berth/console"),
        "{reason}"
    );

    let mut run = Run::booted();
    let actions = run.sysinit_exits_with(Err("cannot read /run/berth/sysinit.json".into()));
    assert!(emergency_reason(&actions).unwrap().contains("left no report"));

    let mut run = Run::booted();
    let actions = run.sysinit_exits_with(Ok(SysinitReport::default()));
    assert!(emergency_reason(&actions).unwrap().contains("did not answer"));
}

#[test]
fn the_emergency_shell_comes_back_when_it_exits() {
    let mut run = Run::booted();
    let _ = run.sysinit_exits_with(Ok(report_with(ServiceOutcome::Exited { code: 1 })));
    assert!(run.sup.emergency_open());
    let _ = run.send(Event::Spawned {
        child: Child::Emergency,
        pid: 300,
    });
    let again = run.send(Event::Exited {
        pid: 300,
        exit: Exit::Code(0),
    });
    assert!(
        emergency_reason(&again)
            .unwrap()
            .contains("console service is not running")
    );
    // An unrelated orphan is only reaped.
    assert!(
        run.send(Event::Exited {
            pid: 4242,
            exit: Exit::Code(0)
        })
        .is_empty()
    );
}

#[test]
fn no_console_by_the_deadline_opens_an_emergency_shell_once() {
    let mut run = Run::booted();
    // sysinit hangs: nothing happens until the deadline.
    let deadline = run.sup.next_deadline().unwrap();
    assert_eq!(deadline - run.now, Limits::default().health_timeout);
    assert_eq!(run.advance(Duration::from_secs(599)), [Action::HealthExpired]);
    let actions = run.advance(Duration::from_secs(1));
    let reason = emergency_reason(&actions).unwrap();
    assert!(
        reason.contains("no console after 600s") && reason.contains("still running"),
        "{reason}"
    );
    assert!(run.advance(Duration::from_secs(600)).is_empty());
}

#[test]
fn an_engine_restart_during_the_bringup_runs_it_again_afterwards() {
    let mut run = Run::booted();
    let _ = run.send(Event::Exited {
        pid: SD,
        exit: Exit::Code(2),
    });
    let _ = run.advance(Duration::from_secs(2));
    // The old sysinit still runs: no second one at the same time.
    assert!(
        run.send(Event::Spawned {
            child: Child::SystemDocker,
            pid: SD + 1
        })
        .is_empty()
    );
    let after = run.sysinit_exits_with(Ok(SysinitReport::default()));
    assert_eq!(
        after,
        [Action::StartSysinit {
            after_engine_restart: true
        }]
    );
}

#[test]
fn a_power_request_shuts_down_at_any_point_and_ends_the_machine() {
    // 0: nothing started; 1: System Docker up; 2: sysinit bringing services up (it is
    // stopped first); 3: sysinit done.
    for stage in 0..4 {
        let mut run = Run::new();
        if stage >= 1 {
            let _ = run.send(Event::Spawned {
                child: Child::SystemDocker,
                pid: SD,
            });
        }
        if stage >= 2 {
            let _ = run.send(Event::Spawned {
                child: Child::Sysinit,
                pid: SYSINIT,
            });
        }
        if stage >= 3 {
            let _ = run.sysinit_exits_with(Ok(report_with(ServiceOutcome::Started)));
        }
        let actions = run.send(Event::Power(PowerAction::PowerOff));
        assert_eq!(
            actions,
            [Action::Shutdown {
                action: PowerAction::PowerOff,
                system_docker: (stage >= 1).then_some(SD),
                bringup: (stage == 2).then_some(SYSINIT),
            }]
        );
        // Nothing else is decided after that, not even a System Docker restart.
        assert!(
            run.send(Event::Exited {
                pid: SD,
                exit: Exit::Code(0)
            })
            .is_empty()
        );
        assert!(run.advance(Duration::from_secs(3600)).is_empty());
        assert!(run.send(Event::Power(PowerAction::Reboot)).is_empty());
    }
}

#[test]
fn the_boot_is_complete_once_user_docker_answers_and_said_once() {
    let mut run = Run::booted();
    let without = run.sysinit_exits_with(Ok(report_with(ServiceOutcome::Started)));
    assert!(!without.contains(&Action::BootComplete), "{without:?}");
    let mut ready = report_with(ServiceOutcome::Started);
    ready.user_docker_ready = Some(20.0);
    let _ = run.send(Event::Spawned {
        child: Child::Sysinit,
        pid: SYSINIT,
    });
    let first = run.sysinit_exits_with(Ok(ready.clone()));
    assert!(first.contains(&Action::BootComplete), "{first:?}");
    let _ = run.send(Event::Spawned {
        child: Child::Sysinit,
        pid: SYSINIT,
    });
    let again = run.sysinit_exits_with(Ok(ready));
    assert!(!again.contains(&Action::BootComplete), "{again:?}");
}

#[test]
fn a_failed_system_service_keeps_the_boot_unconfirmed_and_the_health_deadline_fires_once() {
    let mut run = Run::booted();
    let mut report = report_with(ServiceOutcome::Started);
    report.user_docker_ready = Some(20.0);
    report.services.push(ServiceRecord {
        name: "ntp".into(),
        outcome: ServiceOutcome::Failed {
            error: "no image".into(),
        },
        seconds: 1.0,
    });
    let actions = run.sysinit_exits_with(Ok(report));
    assert!(!actions.contains(&Action::BootComplete), "{actions:?}");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Problem(m) if m.contains("ntp failed"))),
        "{actions:?}"
    );
    let health = Limits::default().health_timeout;
    assert!(
        !run.advance(health - Duration::from_secs(1))
            .contains(&Action::HealthExpired)
    );
    assert!(
        run.advance(Duration::from_secs(1))
            .contains(&Action::HealthExpired)
    );
    assert!(!run.advance(health).contains(&Action::HealthExpired), "said once");
}

#[test]
fn a_healthy_boot_is_confirmed_and_never_expires() {
    let mut run = Run::booted();
    let mut report = report_with(ServiceOutcome::Started);
    report.user_docker_ready = Some(20.0);
    assert!(run.sysinit_exits_with(Ok(report)).contains(&Action::BootComplete));
    let health = Limits::default().health_timeout;
    assert!(!run.advance(health * 2).contains(&Action::HealthExpired));
}
