//! PID 1's loop: a thin layer around the [`machine::Supervisor`] state machine. It turns
//! signals (SIGCHLD, the power requests), reaped children and the clock into events, and the
//! machine's actions into processes: System Docker, `berth sysinit`, emergency shells, the
//! ordered shutdown. It also keeps the logs that grow while the machine runs in bounds.

pub mod machine;

use crate::shutdown::{self, Action as PowerAction};
use crate::{coldplug, recovery, system_docker};
use berth_config::Loaded;
use berth_runtime::{SysinitReport, log, paths, problems, spawn};
use machine::{Action, Child, Event, Exit, Limits, Supervisor};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// System Docker is the last process the kernel's OOM killer should pick: every system
/// service depends on it.
pub const SYSTEM_DOCKER_OOM_SCORE_ADJ: i16 = -900;
/// How often the logs that grow while the machine runs are checked.
const LOG_CHECK_EVERY: Duration = Duration::from_secs(60);

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

/// What a signal asks PID 1 to do (busybox's convention; SIGINT is Ctrl-Alt-Del).
pub fn action_for(signal: Signal) -> Option<PowerAction> {
    match signal {
        Signal::SIGTERM | Signal::SIGINT => Some(PowerAction::Reboot),
        Signal::SIGUSR2 | Signal::SIGPWR => Some(PowerAction::PowerOff),
        Signal::SIGUSR1 => Some(PowerAction::Halt),
        _ => None,
    }
}

pub fn spawn_system_docker(loaded: &Loaded) -> std::io::Result<u32> {
    let args = system_docker::command_line(&loaded.config.berth.system_docker, loaded.config.berth.debug);
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]).env("PATH", system_docker::PATH);
    cmd.envs(system_docker::environment(&loaded.config.berth));
    spawn::supervised(&mut cmd);
    spawn::output_to(&mut cmd, Path::new(system_docker::LOG));
    berth_runtime::timeline::record(berth_runtime::timeline::Event::SystemDockerStart);
    let child = cmd.spawn()?;
    if let Err(e) = spawn::set_oom_score_adj(child.id(), SYSTEM_DOCKER_OOM_SCORE_ADJ) {
        tracing::warn!("cannot protect System Docker from the OOM killer: {e}");
    }
    tracing::info!("System Docker started (pid {})", child.id());
    Ok(child.id())
}

/// `berth sysinit`: waits for System Docker, brings the services up, writes its report.
pub fn spawn_sysinit(after_restart: bool) -> std::io::Result<u32> {
    let mut cmd = Command::new("/usr/bin/berth");
    cmd.arg("sysinit");
    if after_restart {
        cmd.arg("--after-engine-restart");
    }
    spawn::supervised(&mut cmd);
    Ok(cmd.spawn()?.id())
}

/// Supervise until a power request; never returns.
pub fn run(loaded: &Loaded, network_modules: crate::background::Background) -> ! {
    let mut network_modules = Some(network_modules);
    let set = signals();
    if let Err(e) = set.thread_block() {
        tracing::error!("cannot block signals: {e}");
    }
    // After blocking: the thread inherits the mask, so signals still reach the signalfd.
    coldplug::start_in_background();
    let sfd = match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::error!("cannot read signals (signalfd): {e}; polling instead");
            None
        }
    };
    let timeout = shutdown::effective_timeout(loaded);
    let limits = Limits {
        // At least a minute: a smaller value would reboot every trial boot under emulation.
        health_timeout: Duration::from_secs(u64::from(loaded.config.berth.upgrade.health_timeout).max(60)),
        ..Limits::default()
    };
    let mut sup = Supervisor::new(limits, Instant::now());
    let mut queue = VecDeque::from([Event::Boot]);
    let mut logs_checked = Instant::now();
    loop {
        while let Some(event) = queue.pop_front() {
            let results: Vec<Event> = sup
                .handle(Instant::now(), event)
                .into_iter()
                .filter_map(|action| {
                    // The bring-up starts User Docker, which needs them; it waits for System
                    // Docker first anyway, so this costs nothing.
                    if matches!(action, Action::StartSysinit { .. }) {
                        crate::stage2::wait_for_network_modules(&mut network_modules);
                    }
                    perform(action, loaded, timeout)
                })
                .collect();
            // What an action gave back is handled before anything that happened meanwhile.
            for result in results.into_iter().rev() {
                queue.push_front(result);
            }
        }
        let wait = sup
            .next_deadline()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(LOG_CHECK_EVERY)
            .min(LOG_CHECK_EVERY);
        match &sfd {
            Some(sfd) => {
                let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                let _ = poll(&mut fds, PollTimeout::from(ms));
                while let Ok(Some(info)) = sfd.read_signal() {
                    if let Ok(signal) = Signal::try_from(info.ssi_signo as i32)
                        && let Some(action) = action_for(signal)
                    {
                        queue.push_back(Event::Power(action));
                    }
                }
            }
            None => std::thread::sleep(wait.min(Duration::from_secs(1))),
        }
        queue.extend(reap());
        queue.push_back(Event::Tick);
        if logs_checked.elapsed() >= LOG_CHECK_EVERY {
            logs_checked = Instant::now();
            keep_logs_in_bounds();
        }
    }
}

/// Carry out one action; some give an event back (a process started, a report read).
fn perform(action: Action, loaded: &Loaded, timeout: Duration) -> Option<Event> {
    match action {
        Action::StartSystemDocker => Some(match spawn_system_docker(loaded) {
            Ok(pid) => Event::Spawned {
                child: Child::SystemDocker,
                pid: pid as i32,
            },
            Err(error) => Event::SpawnFailed {
                child: Child::SystemDocker,
                error: error.to_string(),
            },
        }),
        Action::StartSysinit { after_engine_restart } => Some(match spawn_sysinit(after_engine_restart) {
            Ok(pid) => Event::Spawned {
                child: Child::Sysinit,
                pid: pid as i32,
            },
            Err(error) => Event::SpawnFailed {
                child: Child::Sysinit,
                error: error.to_string(),
            },
        }),
        Action::ReadReport => Some(Event::Report(
            SysinitReport::read(Path::new(paths::SYSINIT_REPORT)).map_err(|e| e.to_string()),
        )),
        Action::EmergencyShell { reason } => Some(match recovery::emergency_shell(&reason) {
            Ok(pid) => Event::Spawned {
                child: Child::Emergency,
                pid,
            },
            Err(error) => Event::SpawnFailed {
                child: Child::Emergency,
                error: error.to_string(),
            },
        }),
        Action::Problem(message) => {
            problems::report(Path::new("/"), &message);
            None
        }
        Action::BootComplete => {
            crate::slot::confirm_boot();
            None
        }
        Action::HealthExpired => crate::slot::health_expired().then_some(Event::Power(PowerAction::Reboot)),
        Action::Shutdown {
            action,
            system_docker,
            bringup,
        } => shutdown::run(
            action,
            timeout,
            system_docker.map(nix::unistd::Pid::from_raw),
            bringup.map(nix::unistd::Pid::from_raw),
        ),
    }
}

/// Every child that ended since the last call (PID 1 reaps orphans too).
fn reap() -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => events.push(Event::Exited {
                pid: pid.as_raw(),
                exit: Exit::Code(code),
            }),
            Ok(WaitStatus::Signaled(pid, signal, _)) => events.push(Event::Exited {
                pid: pid.as_raw(),
                exit: Exit::Signal(signal.as_str().to_string()),
            }),
            Ok(WaitStatus::StillAlive) | Err(_) => return events,
            Ok(_) => {}
        }
    }
}

/// System Docker's log and PID 1's own boot log grow as long as the machine runs: keep each
/// under [`log::ROTATE_AT`] (one older copy kept).
fn keep_logs_in_bounds() {
    match log::rotate_by_truncation(Path::new(system_docker::LOG), log::ROTATE_AT) {
        Ok(true) => tracing::info!("{} rotated", system_docker::LOG),
        Ok(false) => {}
        Err(e) => tracing::warn!("cannot rotate {}: {e}", system_docker::LOG),
    }
    match log::rotate_attached(log::ROTATE_AT) {
        Ok(true) => tracing::info!("boot log rotated"),
        Ok(false) => {}
        Err(e) => tracing::warn!("cannot rotate the boot log: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_power_actions() {
        assert_eq!(action_for(Signal::SIGTERM), Some(PowerAction::Reboot));
        assert_eq!(action_for(Signal::SIGINT), Some(PowerAction::Reboot));
        assert_eq!(action_for(Signal::SIGUSR2), Some(PowerAction::PowerOff));
        assert_eq!(action_for(Signal::SIGPWR), Some(PowerAction::PowerOff));
        assert_eq!(action_for(Signal::SIGUSR1), Some(PowerAction::Halt));
        assert_eq!(action_for(Signal::SIGCHLD), None);
        for s in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGPWR,
        ] {
            assert!(signals().contains(s), "{s} is not read by PID 1");
        }
    }
}
