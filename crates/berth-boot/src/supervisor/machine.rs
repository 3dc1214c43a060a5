//! PID 1's decisions, as a pure state machine: events in (a child exited, a power request,
//! sysinit's report, the clock), actions out (start System Docker, start the service
//! bring-up, open an emergency shell, shut down). It never touches a process or a file, so
//! every transition is unit-tested; the loop in [`super`] turns the actions into syscalls and
//! what happens into events.

use crate::shutdown::Action as PowerAction;
use berth_runtime::SysinitReport;
use std::time::{Duration, Instant};

/// A process PID 1 starts and watches. Process IDs are plain numbers here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Child {
    SystemDocker,
    Sysinit,
    Emergency,
}

/// How a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(String),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "killed by {s}"),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Stage 2 is done: start supervising.
    Boot,
    /// An action's process started.
    Spawned { child: Child, pid: i32 },
    /// An action's process could not be started.
    SpawnFailed { child: Child, error: String },
    /// A process PID 1 reaped (any: orphans are reaped too).
    Exited { pid: i32, exit: Exit },
    /// sysinit's report, read after it exited (`None`: missing or unreadable, with why).
    Report(Result<SysinitReport, String>),
    /// Someone asked for a reboot, a poweroff or a halt.
    Power(PowerAction),
    /// Time passed (deadlines are checked on every event; this one carries nothing else).
    Tick,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    StartSystemDocker,
    /// Start `berth sysinit`; after a System Docker restart, one-shot services that already
    /// ran this boot are not run again.
    StartSysinit {
        after_engine_restart: bool,
    },
    /// Read sysinit's report and give it back as [`Event::Report`].
    ReadReport,
    /// A root shell on the system console, saying why.
    EmergencyShell {
        reason: String,
    },
    /// Record a boot problem (log + console banner).
    Problem(String),
    /// The boot is complete and healthy (User Docker answered, no system service failed):
    /// confirm the booted slot of an installed disk to the boot counter. Given once per boot.
    BootComplete,
    /// The boot did not get healthy within `Limits::health_timeout`: a slot on trial is
    /// rebooted (GRUB counts the try). Given once per boot.
    HealthExpired,
    /// The ordered shutdown (never returns).
    Shutdown {
        action: PowerAction,
        system_docker: Option<i32>,
        /// `berth sysinit`, if it is still bringing services up: it is stopped first, so that
        /// no service starts while the others stop.
        bringup: Option<i32>,
    },
}

/// Restart delays for System Docker: doubling from 2 s, at most 30 s.
pub fn restart_delay(failures: u32) -> Duration {
    Duration::from_secs((1u64 << failures.min(5)).min(30))
}

/// The limits PID 1 works with.
#[derive(Clone, Debug)]
pub struct Limits {
    /// System Docker up this long counts as a success: the failure count starts again.
    pub stable_after: Duration,
    /// After this many failures in a row, open an emergency shell (and keep retrying).
    pub failures_before_emergency: u32,
    /// If no console is running this long after boot, open an emergency shell.
    pub console_deadline: Duration,
    /// A boot not healthy this long after it started is [`Action::HealthExpired`]
    /// (`berth.upgrade.health_timeout`).
    pub health_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stable_after: Duration::from_secs(60),
            failures_before_emergency: 5,
            console_deadline: Duration::from_secs(600),
            health_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Engine {
    /// Not running; start it at this time (`None`: waiting for the spawn to report).
    Down {
        start_at: Option<Instant>,
    },
    Starting,
    Up {
        pid: i32,
        since: Instant,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Bringup {
    Idle,
    Starting,
    Running {
        pid: i32,
    },
    /// It exited; its report is being read.
    Reading,
}

/// PID 1's state.
#[derive(Clone, Debug)]
pub struct Supervisor {
    limits: Limits,
    booted: Instant,
    engine: Engine,
    /// System Docker starts so far (a restart makes sysinit skip what already ran).
    engine_starts: u32,
    /// Failures in a row (System Docker exits before it was stable, or cannot start).
    failures: u32,
    last_failure: Option<String>,
    bringup: Bringup,
    /// System Docker restarted while sysinit ran: run sysinit again once it is done.
    bringup_again: bool,
    /// The console service was running at the last report.
    console_up: bool,
    /// [`Action::BootComplete`] was given.
    boot_complete: bool,
    /// [`Action::HealthExpired`] was given.
    health_expired: bool,
    /// The boot was said not to be confirmed (a system service failed).
    unhealthy_said: bool,
    emergency: Option<EmergencyShell>,
    shutting_down: bool,
}

#[derive(Clone, Debug)]
struct EmergencyShell {
    /// `None` while it is being started or could not be.
    pid: Option<i32>,
    reason: String,
}

impl Supervisor {
    pub fn new(limits: Limits, now: Instant) -> Self {
        Supervisor {
            limits,
            booted: now,
            engine: Engine::Down { start_at: None },
            engine_starts: 0,
            failures: 0,
            last_failure: None,
            bringup: Bringup::Idle,
            bringup_again: false,
            console_up: false,
            boot_complete: false,
            health_expired: false,
            unhealthy_said: false,
            emergency: None,
            shutting_down: false,
        }
    }

    /// System Docker's process, when it runs.
    pub fn system_docker(&self) -> Option<i32> {
        match self.engine {
            Engine::Up { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Whether an emergency shell is open (or being opened).
    pub fn emergency_open(&self) -> bool {
        self.emergency.is_some()
    }

    /// When the loop must wake up even if nothing happens.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut at = Vec::new();
        if let Engine::Down { start_at: Some(t) } = self.engine {
            at.push(t);
        }
        if !self.console_up && self.emergency.is_none() {
            at.push(self.booted + self.limits.console_deadline);
        }
        if !self.boot_complete && !self.health_expired {
            at.push(self.booted + self.limits.health_timeout);
        }
        at.into_iter().min()
    }

    /// Take one event; return what to do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.shutting_down {
            // Shutdown owns the machine now; the loop does not come back here.
            return out;
        }
        match event {
            Event::Boot => {
                self.booted = now;
                self.engine = Engine::Down { start_at: Some(now) };
            }
            Event::Spawned { child, pid } => self.spawned(now, child, pid, &mut out),
            Event::SpawnFailed { child, error } => self.spawn_failed(now, child, error, &mut out),
            Event::Exited { pid, exit } => self.exited(now, pid, exit, &mut out),
            Event::Report(report) => self.report(report, &mut out),
            Event::Power(action) => {
                self.shutting_down = true;
                out.push(Action::Shutdown {
                    action,
                    system_docker: self.system_docker(),
                    bringup: match self.bringup {
                        Bringup::Running { pid } => Some(pid),
                        _ => None,
                    },
                });
                return out;
            }
            Event::Tick => {}
        }
        self.deadlines(now, &mut out);
        out
    }

    fn deadlines(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let Engine::Down { start_at: Some(t) } = self.engine
            && now >= t
        {
            self.engine = Engine::Starting;
            out.push(Action::StartSystemDocker);
        }
        if !self.console_up && self.emergency.is_none() && now >= self.booted + self.limits.console_deadline {
            let reason = format!(
                "no console after {}s of boot ({})",
                self.limits.console_deadline.as_secs(),
                self.why_no_console()
            );
            self.open_emergency(reason, out);
        }
        if !self.boot_complete && !self.health_expired && now >= self.booted + self.limits.health_timeout {
            self.health_expired = true;
            out.push(Action::HealthExpired);
        }
    }

    fn why_no_console(&self) -> String {
        match (&self.engine, &self.last_failure) {
            (Engine::Up { .. }, _) if self.bringup != Bringup::Idle => {
                "the service bring-up is still running".to_string()
            }
            (Engine::Up { .. }, _) => "System Docker runs, but the console service does not".to_string(),
            (_, Some(last)) => format!("System Docker is not running: {last}"),
            (_, None) => "System Docker is not running".to_string(),
        }
    }

    fn open_emergency(&mut self, reason: String, out: &mut Vec<Action>) {
        self.emergency = Some(EmergencyShell {
            pid: None,
            reason: reason.clone(),
        });
        out.push(Action::EmergencyShell { reason });
    }

    fn spawned(&mut self, now: Instant, child: Child, pid: i32, out: &mut Vec<Action>) {
        match child {
            Child::SystemDocker => {
                self.engine = Engine::Up { pid, since: now };
                self.engine_starts += 1;
                match self.bringup {
                    Bringup::Idle => self.start_bringup(out),
                    // Still bringing up against the engine that died: run it again after.
                    _ => self.bringup_again = true,
                }
            }
            Child::Sysinit => self.bringup = Bringup::Running { pid },
            Child::Emergency => {
                if let Some(shell) = &mut self.emergency {
                    shell.pid = Some(pid);
                }
            }
        }
    }

    fn start_bringup(&mut self, out: &mut Vec<Action>) {
        self.bringup = Bringup::Starting;
        out.push(Action::StartSysinit {
            after_engine_restart: self.engine_starts > 1,
        });
    }

    fn spawn_failed(&mut self, now: Instant, child: Child, error: String, out: &mut Vec<Action>) {
        match child {
            Child::SystemDocker => {
                let why = format!("cannot start System Docker: {error}");
                out.push(Action::Problem(why.clone()));
                self.engine_failed(now, why, out);
            }
            Child::Sysinit => {
                self.bringup = Bringup::Idle;
                self.bringup_again = false;
                let why = format!("cannot start the service bring-up (berth sysinit): {error}");
                out.push(Action::Problem(why.clone()));
                if !self.console_up && self.emergency.is_none() {
                    self.open_emergency(why, out);
                }
            }
            Child::Emergency => {
                // Nothing more to try: the reason stays recorded; do not loop on it.
                if let Some(shell) = &mut self.emergency {
                    shell.pid = None;
                }
                out.push(Action::Problem(format!(
                    "cannot start an emergency shell: {error}"
                )));
            }
        }
    }

    fn engine_failed(&mut self, now: Instant, why: String, out: &mut Vec<Action>) {
        self.failures += 1;
        self.last_failure = Some(why.clone());
        let delay = restart_delay(self.failures);
        self.engine = Engine::Down {
            start_at: Some(now + delay),
        };
        if self.failures >= self.limits.failures_before_emergency && self.emergency.is_none() {
            self.open_emergency(
                format!(
                    "System Docker failed {} times in a row (last: {why}); \
                     see /var/log/system-docker.log. It is retried every {}s meanwhile",
                    self.failures,
                    restart_delay(self.failures).as_secs()
                ),
                out,
            );
        }
    }

    fn exited(&mut self, now: Instant, pid: i32, exit: Exit, out: &mut Vec<Action>) {
        if let Engine::Up { pid: p, since } = self.engine
            && p == pid
        {
            if now.duration_since(since) >= self.limits.stable_after {
                self.failures = 0;
            }
            let delay = restart_delay(self.failures + 1);
            let why = format!("System Docker exited ({exit})");
            out.push(Action::Problem(format!(
                "{why}; restarting it in {}s (see /var/log/system-docker.log)",
                delay.as_secs()
            )));
            self.engine_failed(now, why, out);
            return;
        }
        if let Bringup::Running { pid: p } = self.bringup
            && p == pid
        {
            self.bringup = Bringup::Reading;
            out.push(Action::ReadReport);
            return;
        }
        if let Some(shell) = &self.emergency
            && shell.pid == Some(pid)
        {
            // Whoever exits the emergency shell gets a new one: the reason still holds.
            let reason = shell.reason.clone();
            out.push(Action::EmergencyShell {
                reason: format!("the emergency shell exited; a new one ({reason})"),
            });
            if let Some(shell) = &mut self.emergency {
                shell.pid = None;
            }
        }
        // Anything else is an orphan PID 1 reaped: nothing to decide.
    }

    fn report(&mut self, report: Result<SysinitReport, String>, out: &mut Vec<Action>) {
        self.bringup = Bringup::Idle;
        if std::mem::take(&mut self.bringup_again) && self.system_docker().is_some() {
            self.start_bringup(out);
            return;
        }
        let why = match report {
            Ok(report) => {
                let failed: Vec<&str> = report
                    .services
                    .iter()
                    .filter(|s| matches!(s.outcome, berth_runtime::ServiceOutcome::Failed { .. }))
                    .map(|s| s.name.as_str())
                    .collect();
                if report.user_docker_ready.is_some() && !self.boot_complete && !self.health_expired {
                    if failed.is_empty() {
                        self.boot_complete = true;
                        out.push(Action::BootComplete);
                    } else if !std::mem::replace(&mut self.unhealthy_said, true) {
                        out.push(Action::Problem(format!(
                            "this boot is not confirmed to the boot counter: system service(s) {} failed",
                            failed.join(", ")
                        )));
                    }
                }
                self.console_up = report.is_running("console");
                if self.console_up {
                    return;
                }
                match report.service("console") {
                    Some(berth_runtime::ServiceOutcome::Failed { error }) => {
                        format!("the console service failed: {error}")
                    }
                    Some(_) => "the console service is not running".to_string(),
                    None if report.system_docker_ready.is_none() => {
                        "System Docker did not answer the service bring-up".to_string()
                    }
                    None => "the console service was not started".to_string(),
                }
            }
            Err(e) => format!("the service bring-up left no report ({e})"),
        };
        if self.emergency.is_none() && self.system_docker().is_some() {
            self.open_emergency(
                format!(
                    "{why}, so there is no login here; this is an emergency root shell on the system console"
                ),
                out,
            );
        }
    }
}

#[cfg(test)]
mod tests;
