//! `reboot`, `poweroff`, `halt` and `shutdown`. When Berth's init is PID 1 they signal it, as
//! busybox does (SIGTERM, SIGUSR2, SIGUSR1) and init runs the ordered shutdown. When System
//! Docker is PID 1 (`berth.system_docker.exec`) the same sequence runs in a one-shot system
//! container in the host PID namespace: a process in the console cannot stop the console.

use crate::shutdown::{self, Action};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::Duration;

pub struct PowerRequest {
    pub action: Action,
    /// Skip the ordered shutdown: sync and reboot(2) at once.
    pub force: bool,
}

/// Parse the arguments of `reboot`/`poweroff`/`halt`/`shutdown` as invoked under `name`.
pub fn parse(name: &str, args: &[String]) -> Result<PowerRequest, String> {
    let mut action = match name {
        "reboot" => Action::Reboot,
        "poweroff" => Action::PowerOff,
        "halt" => Action::Halt,
        "shutdown" => Action::PowerOff,
        other => return Err(format!("{other}: not a power command")),
    };
    let mut force = false;
    for arg in args {
        match arg.as_str() {
            "-f" | "--force" => force = true,
            "-r" | "--reboot" => action = Action::Reboot,
            "-h" | "-P" | "--poweroff" => action = Action::PowerOff,
            "-H" | "--halt" => action = Action::Halt,
            "-p" if name == "halt" => action = Action::PowerOff,
            "now" | "+0" | "-n" | "--no-wall" | "-d" | "--no-wtmp" => {}
            "--help" => return Err(usage(name)),
            other => return Err(format!("{name}: unsupported argument {other}\n{}", usage(name))),
        }
    }
    Ok(PowerRequest { action, force })
}

pub fn usage(name: &str) -> String {
    format!(
        "Usage: {name} [-f] [-r|-h|-P|-H] [now]\n\
         Stops user containers, then system services (the console last), syncs and {what}.\n\
         \n  -f, --force     skip the ordered shutdown: sync and {what} at once\n\
         \x20 -r              reboot\n  -h, -P          power off\n  -H              halt\n",
        what = match name {
            "reboot" => "reboots",
            "halt" => "halts",
            _ => "powers off",
        }
    )
}

fn pid1_is_berth_init() -> bool {
    std::fs::read("/proc/1/cmdline")
        .ok()
        .and_then(|c| c.split(|&b| b == 0).next().map(|a| a.to_vec()))
        .is_some_and(|argv0| argv0 == b"init" || argv0 == b"/init")
}

/// The `reboot`/`poweroff`/`halt`/`shutdown` commands. Returns the exit code.
pub fn main(name: &str, args: &[String]) -> i32 {
    let request = match parse(name, args) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("{msg}");
            return if args.iter().any(|a| a == "--help") { 0 } else { 2 };
        }
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("{name}: must be run as root (try: sudo {name})");
        return 1;
    }
    if request.force {
        nix::unistd::sync();
        let _ = nix::sys::reboot::reboot(match request.action {
            Action::Reboot => nix::sys::reboot::RebootMode::RB_AUTOBOOT,
            Action::PowerOff => nix::sys::reboot::RebootMode::RB_POWER_OFF,
            Action::Halt => nix::sys::reboot::RebootMode::RB_HALT_SYSTEM,
        });
        eprintln!("{name}: reboot(2) failed (is this a privileged container in the host PID namespace?)");
        return 1;
    }
    if pid1_is_berth_init() {
        let signal = match request.action {
            Action::Reboot => Signal::SIGTERM,
            Action::PowerOff => Signal::SIGUSR2,
            Action::Halt => Signal::SIGUSR1,
        };
        return match kill(Pid::from_raw(1), signal) {
            Ok(()) => {
                println!("{name}: the system is going down");
                0
            }
            Err(e) => {
                eprintln!("{name}: cannot signal init: {e}");
                1
            }
        };
    }
    // System Docker is PID 1: run the sequence in a helper container.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: {e}");
            return 1;
        }
    };
    match runtime.block_on(berth_services::power::start_helper(request.action.name())) {
        Ok(()) => {
            println!("{name}: the system is going down");
            0
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            1
        }
    }
}

/// Inside the helper container (`berth shutdown-helper ACTION`): stop everything but
/// ourselves, then finish in the host's mount namespace.
pub fn helper_main(action: &str, timeout: Duration) -> i32 {
    let Some(action) = Action::parse(action) else {
        eprintln!("shutdown-helper: unknown action {action}");
        return 2;
    };
    berth_runtime::log::init("shutdown", false);
    shutdown::arm_watchdog(action, timeout);
    let me = std::env::var("HOSTNAME").ok();
    shutdown::stop_containers(
        timeout.saturating_sub(Duration::from_secs(5)),
        Some(berth_services::power::HELPER_NAME),
    );
    let _ = me;
    // Enter the host's mount namespace (we share its PID namespace) to flush /var.
    if let Ok(ns) = std::fs::File::open("/proc/1/ns/mnt") {
        let _ = nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS);
    }
    shutdown::finish(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_and_flags() {
        let r = parse("reboot", &[]).unwrap();
        assert_eq!((r.action, r.force), (Action::Reboot, false));
        let r = parse("poweroff", &args(&["-f"])).unwrap();
        assert_eq!((r.action, r.force), (Action::PowerOff, true));
        assert_eq!(
            parse("shutdown", &args(&["-r", "now"])).unwrap().action,
            Action::Reboot
        );
        assert_eq!(
            parse("shutdown", &args(&["-h", "now"])).unwrap().action,
            Action::PowerOff
        );
        assert_eq!(parse("halt", &args(&["-p"])).unwrap().action, Action::PowerOff);
        assert_eq!(parse("halt", &[]).unwrap().action, Action::Halt);
        assert!(parse("reboot", &args(&["+5"])).is_err());
    }
}
