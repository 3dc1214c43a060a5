//! The ordered shutdown: user containers, then system services (the console last), then
//! System Docker, then every remaining process; sync, unmount, `reboot(2)`. A watchdog forces
//! the reboot if any step hangs past `berth.shutdown_timeout`.

use berth_runtime::log;
use nix::sys::reboot::{RebootMode, reboot};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Reboot,
    PowerOff,
    Halt,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reboot" => Some(Action::Reboot),
            "poweroff" => Some(Action::PowerOff),
            "halt" => Some(Action::Halt),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Reboot => "reboot",
            Action::PowerOff => "poweroff",
            Action::Halt => "halt",
        }
    }

    fn mode(self) -> RebootMode {
        match self {
            Action::Reboot => RebootMode::RB_AUTOBOOT,
            Action::PowerOff => RebootMode::RB_POWER_OFF,
            Action::Halt => RebootMode::RB_HALT_SYSTEM,
        }
    }
}

/// `berth.shutdown_timeout`, never shorter than the containers need to stop (see
/// [`berth_config::Config::shutdown_timeout`]); a shorter setting is reported.
pub fn effective_timeout(loaded: &berth_config::Loaded) -> Duration {
    let config = &loaded.config;
    let timeout = config.shutdown_timeout();
    if u64::from(config.berth.shutdown_timeout) < timeout.as_secs() {
        tracing::warn!(
            "berth.shutdown_timeout is {}s: {}s is used, so that the containers can stop",
            config.berth.shutdown_timeout,
            timeout.as_secs()
        );
    }
    timeout
}

/// Start the watchdog: after `timeout`, make `/var` read-only (so the state partition's
/// journal is clean), sync, and reboot whatever is still running.
pub fn arm_watchdog(action: Action, timeout: Duration) {
    let _ = std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || {
            std::thread::sleep(timeout);
            tracing::error!(
                "shutdown did not finish within {}s: forcing {}",
                timeout.as_secs(),
                action.name()
            );
            log::detach_file();
            nix::unistd::sync();
            remount_var_read_only();
            nix::unistd::sync();
            let _ = reboot(action.mode());
        });
}

/// Stop writes to the state partition: a remount fails while files are open for writing, so
/// the emergency remount (as SysRq-u does) is tried after the polite one.
fn remount_var_read_only() {
    use nix::mount::{MsFlags, mount};
    let remount = |extra: MsFlags| {
        mount(
            None::<&str>,
            "/var",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | extra,
            None::<&str>,
        )
    };
    if remount(MsFlags::empty()).is_err() && std::fs::write("/proc/sysrq-trigger", "u").is_err() {
        tracing::warn!("/var could not be made read-only");
    }
}

/// Stop every container through the engines' APIs (user containers first, console last).
pub fn stop_containers(timeout: Duration, keep: Option<&str>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot stop containers (no async runtime: {e})");
            return;
        }
    };
    let report = runtime.block_on(berth_services::shutdown::stop_all(timeout, keep));
    for line in report {
        tracing::info!("{line}");
    }
}

/// PID 1's shutdown. Never returns.
pub fn run(action: Action, timeout: Duration, system_docker: Option<Pid>, bringup: Option<Pid>) -> ! {
    let started = Instant::now();
    tracing::info!("{}: stopping containers, then System Docker", action.name());
    arm_watchdog(action, timeout);
    // A service the bring-up started after the containers were listed would be left to
    // System Docker's own stop, which does not count as a stop by hand: with its restart
    // policy, the engine would start it at the next boot, before and outside the services'
    // order.
    if let Some(pid) = bringup {
        tracing::info!("stopping the service bring-up (berth sysinit) first");
        let _ = kill(pid, Signal::SIGTERM);
        if !wait_for(pid, Duration::from_secs(5)) {
            let _ = kill(pid, Signal::SIGKILL);
            wait_for(pid, Duration::from_secs(2));
        }
    }
    // Leave a margin for the steps after the containers.
    stop_containers(
        timeout
            .saturating_sub(Duration::from_secs(10))
            .max(Duration::from_secs(5)),
        None,
    );
    if let Some(pid) = system_docker {
        let _ = kill(pid, Signal::SIGTERM);
        if !wait_for(pid, Duration::from_secs(10)) {
            tracing::warn!("System Docker did not stop in 10s: killing it");
            let _ = kill(pid, Signal::SIGKILL);
            wait_for(pid, Duration::from_secs(2));
        }
    }
    kill_everything();
    tracing::info!("services stopped in {:.1}s", started.elapsed().as_secs_f64());
    finish(action)
}

/// Wait (reaping) until `pid` exits or `limit` passes; true if it exited.
fn wait_for(pid: Pid, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(100)),
            Ok(status) if status.pid() == Some(pid) => return true,
            Ok(_) => {}
            Err(_) => return true,
        }
    }
    false
}

/// SIGTERM every process, give them two seconds, then SIGKILL the rest.
fn kill_everything() {
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(_) => return, // no children left
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(50)),
            Ok(_) => {}
        }
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Mount points, deepest first, from /proc/self/mountinfo.
fn mount_points() -> Vec<String> {
    let mut points = berth_runtime::mountinfo::current();
    points.reverse();
    points
}

/// Sync, unmount what can be unmounted, make `/var` read-only, and reboot/power off/halt.
pub fn finish(action: Action) -> ! {
    log::detach_file();
    nix::unistd::sync();
    for point in mount_points() {
        if matches!(point.as_str(), "/" | "/proc" | "/sys" | "/dev" | "/usr") {
            continue;
        }
        let _ = nix::mount::umount2(point.as_str(), nix::mount::MntFlags::empty());
    }
    // If /var is still busy, at least stop writes to it so the journal is clean.
    remount_var_read_only();
    nix::unistd::sync();
    tracing::info!("{}", action.name());
    let err = reboot(action.mode());
    tracing::error!("reboot(2) failed: {err:?}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        for a in [Action::Reboot, Action::PowerOff, Action::Halt] {
            assert_eq!(Action::parse(a.name()), Some(a));
        }
        assert_eq!(Action::parse("kexec"), None);
    }
}
