//! PID 1's loop: start System Docker and the service bring-up, reap every zombie, restart
//! System Docker if it dies (then bring the services back), and run the ordered shutdown on
//! SIGTERM (reboot), SIGUSR2 (poweroff), SIGUSR1 (halt) or Ctrl-Alt-Del.

use crate::shutdown::{self, Action};
use crate::{problems, process, recovery, system_docker};
use berth_config::Loaded;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Restart delays for System Docker: doubling from 1 s, at most 30 s; reset after a minute up.
pub fn restart_delay(failures: u32) -> Duration {
    Duration::from_secs((1u64 << failures.min(5)).min(30))
}

const STABLE_AFTER: Duration = Duration::from_secs(60);

pub fn signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPWR,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// What a signal asks PID 1 to do.
pub fn action_for(signal: Signal) -> Option<Action> {
    match signal {
        Signal::SIGTERM | Signal::SIGINT => Some(Action::Reboot),
        Signal::SIGUSR2 | Signal::SIGPWR => Some(Action::PowerOff),
        Signal::SIGUSR1 => Some(Action::Halt),
        _ => None,
    }
}

pub fn spawn_system_docker(loaded: &Loaded) -> std::io::Result<Pid> {
    let args = system_docker::command_line(&loaded.config.berth.system_docker, loaded.config.berth.debug);
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]).env("PATH", system_docker::PATH);
    process::prepare(&mut cmd);
    process::output_to(&mut cmd, Path::new(system_docker::LOG));
    let child = cmd.spawn()?;
    tracing::info!("System Docker started (pid {})", child.id());
    Ok(Pid::from_raw(child.id() as i32))
}

/// `berth sysinit`: waits for System Docker, loads the system images, brings services up.
/// After System Docker restarted, one-shot services that already ran this boot are not run
/// again (`--after-engine-restart`).
pub fn spawn_sysinit(after_restart: bool) -> std::io::Result<Pid> {
    let mut cmd = Command::new("/usr/bin/berth");
    cmd.arg("sysinit");
    if after_restart {
        cmd.arg("--after-engine-restart");
    }
    process::prepare(&mut cmd);
    let child = cmd.spawn()?;
    Ok(Pid::from_raw(child.id() as i32))
}

struct Engine {
    pid: Option<Pid>,
    sysinit: Option<Pid>,
    /// System Docker restarted while sysinit still ran: run it again when it finishes.
    sysinit_again: bool,
    starts: u32,
    emergency: Option<Pid>,
    started: Instant,
    failures: u32,
    restart_at: Option<Instant>,
}

pub fn run(loaded: &Loaded) -> ! {
    let set = signals();
    if let Err(e) = set.thread_block() {
        tracing::error!("cannot block signals: {e}");
    }
    // After blocking: the thread inherits the mask, so signals still reach the signalfd.
    crate::stage2::start_coldplug();
    let sfd = match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::error!("cannot read signals (signalfd): {e}; polling instead");
            None
        }
    };
    let mut engine = Engine {
        pid: None,
        sysinit: None,
        sysinit_again: false,
        starts: 0,
        emergency: None,
        started: Instant::now(),
        failures: 0,
        restart_at: Some(Instant::now()),
    };
    let timeout = Duration::from_secs(loaded.config.berth.shutdown_timeout.into());
    loop {
        if let Some(at) = engine.restart_at
            && Instant::now() >= at
        {
            engine.restart_at = None;
            match spawn_system_docker(loaded) {
                Ok(pid) => {
                    engine.pid = Some(pid);
                    engine.started = Instant::now();
                    engine.starts += 1;
                    if engine.sysinit.is_some() {
                        engine.sysinit_again = true;
                    } else {
                        start_sysinit(&mut engine);
                    }
                }
                Err(e) => {
                    problems::report(Path::new("/"), &format!("cannot start System Docker: {e}"));
                    engine.failures += 1;
                    engine.restart_at = Some(Instant::now() + restart_delay(engine.failures));
                }
            }
        }
        let wait = engine
            .restart_at
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(5))
            .min(Duration::from_secs(5));
        let mut requested = None;
        if let Some(sfd) = &sfd {
            let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            let _ = poll(&mut fds, PollTimeout::from(ms));
            while let Ok(Some(info)) = sfd.read_signal() {
                if let Ok(signal) = Signal::try_from(info.ssi_signo as i32)
                    && let Some(action) = action_for(signal)
                {
                    requested = Some(action);
                }
            }
        } else {
            std::thread::sleep(wait);
        }
        reap(&mut engine);
        if let Some(action) = requested {
            shutdown::run(action, timeout, engine.pid)
        }
    }
}

fn start_sysinit(engine: &mut Engine) {
    match spawn_sysinit(engine.starts > 1) {
        Ok(pid) => engine.sysinit = Some(pid),
        Err(e) => problems::report(Path::new("/"), &format!("cannot start the service bring-up: {e}")),
    }
}

fn reap(engine: &mut Engine) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                let pid = status.pid();
                if pid.is_some() && pid == engine.sysinit {
                    engine.sysinit = None;
                    if std::mem::take(&mut engine.sysinit_again) {
                        start_sysinit(engine);
                        continue;
                    }
                    if !console_running() && engine.emergency.is_none() {
                        engine.emergency = recovery::emergency_shell(
                            "the console service is not running, so there is no login here; \
                             this is an emergency root shell on the system console",
                        );
                    }
                } else if pid.is_some() && pid == engine.emergency {
                    engine.emergency =
                        recovery::emergency_shell("the emergency shell exited; here is a new one");
                }
                if pid.is_some() && pid == engine.pid {
                    engine.pid = None;
                    if engine.started.elapsed() > STABLE_AFTER {
                        engine.failures = 0;
                    }
                    engine.failures += 1;
                    let delay = restart_delay(engine.failures);
                    problems::report(
                        Path::new("/"),
                        &format!(
                            "System Docker exited ({status:?}); restarting it in {}s (see {})",
                            delay.as_secs(),
                            system_docker::LOG
                        ),
                    );
                    engine.restart_at = Some(Instant::now() + delay);
                }
            }
        }
    }
}

/// Whether sysinit's last report has the console started.
fn console_running() -> bool {
    let Ok(bytes) = std::fs::read("/run/berth/sysinit.json") else {
        return false;
    };
    let Ok(report) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    report["services"].as_array().is_some_and(|services| {
        services.iter().any(|s| {
            s[0].as_str() == Some("console") && matches!(s[1].as_str(), Some("Started" | "AlreadyRunning"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays_double_and_cap() {
        let delays: Vec<u64> = (1..=8).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 30, 30, 30, 30]);
    }

    #[test]
    fn signals_map_to_power_actions() {
        assert_eq!(action_for(Signal::SIGTERM), Some(Action::Reboot));
        assert_eq!(action_for(Signal::SIGINT), Some(Action::Reboot));
        assert_eq!(action_for(Signal::SIGUSR2), Some(Action::PowerOff));
        assert_eq!(action_for(Signal::SIGUSR1), Some(Action::Halt));
        assert_eq!(action_for(Signal::SIGCHLD), None);
    }
}
