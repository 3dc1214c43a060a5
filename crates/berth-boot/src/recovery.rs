//! The recovery shell: when boot cannot go on, PID 1 says why on the console and keeps a root
//! shell (busybox) running there, reaping whatever it starts.

use berth_runtime::log;
use nix::sys::wait::{WaitPidFlag, waitpid};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BUSYBOX: &str = "/usr/bin/busybox";
const APPLETS_DIR: &str = "/run/berth/recovery-bin";

pub fn banner(reason: &str) -> String {
    format!(
        "\n\
         ======================================================================\n\
         Berth could not finish booting:\n  {reason}\n\n\
         This is a recovery shell on the console. The boot log is in\n\
         /var/log/boot/init.log (or printed above). Fix the cause (kernel\n\
         parameters, the state disk, the boot medium), then run `reboot -f`.\n\
         ======================================================================\n"
    )
}

fn shell_command() -> Command {
    let mut cmd = Command::new(BUSYBOX);
    cmd.args(["sh", "-l"])
        .env("PATH", format!("{APPLETS_DIR}:/usr/sbin:/usr/bin:/sbin:/bin"))
        .env("HOME", "/")
        .env("PS1", "(berth emergency) # ")
        .env("TERM", "linux");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            berth_runtime::spawn::unblock_all_signals();
            let _ = nix::unistd::setsid();
            if let Ok(tty) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/console")
            {
                let fd = tty.as_raw_fd();
                libc::ioctl(fd, libc::TIOCSCTTY as _, 1);
                libc::dup2(fd, 0);
                libc::dup2(fd, 1);
                libc::dup2(fd, 2);
            }
            Ok(())
        });
    }
    cmd
}

/// While PID 1 keeps supervising: a root shell on the console when nothing else lets anyone
/// log in there. Returns the shell's process ID.
pub fn emergency_shell(reason: &str) -> std::io::Result<i32> {
    tracing::error!("{reason}");
    log::raw(&format!(
        "\n=== Berth: {reason}. Problems: see /run/berth/boot-problems and /var/log/boot/. ===\n"
    ));
    install_applets();
    let child = shell_command().spawn().inspect_err(|e| {
        log::raw(&format!("cannot start an emergency shell: {e}\n"));
    })?;
    Ok(child.id() as i32)
}

fn install_applets() {
    let _ = std::fs::create_dir_all(APPLETS_DIR);
    if Path::new(BUSYBOX).exists() {
        let _ = Command::new(BUSYBOX)
            .args(["--install", "-s", APPLETS_DIR])
            .status();
    }
}

/// Reap every child until `shell` exits (we are PID 1: orphans are ours too). `wait` is
/// `waitpid(-1)`: the shell's own exit is seen there, never by a later `try_wait`.
fn reap_until_exit(shell: i32, mut wait: impl FnMut() -> Reaped) {
    loop {
        match wait() {
            Reaped::Exited(pid) if pid == shell => return,
            Reaped::Exited(_) => {}
            // No child at all: the shell is gone too.
            Reaped::NoChildren => return,
            Reaped::Nothing => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reaped {
    Exited(i32),
    Nothing,
    NoChildren,
}

fn wait_any() -> Reaped {
    match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        Ok(nix::sys::wait::WaitStatus::StillAlive) => Reaped::Nothing,
        Ok(status) => status
            .pid()
            .map_or(Reaped::Nothing, |p| Reaped::Exited(p.as_raw())),
        Err(nix::errno::Errno::ECHILD) => Reaped::NoChildren,
        Err(_) => Reaped::Nothing,
    }
}

/// Print why, then keep a shell on the console forever: when it exits, a new one starts.
pub fn enter(reason: &str) -> ! {
    tracing::error!("boot failed: {reason}");
    log::raw(&banner(reason));
    install_applets();
    loop {
        if !Path::new(BUSYBOX).exists() {
            log::raw("no shell is available for recovery; the machine stays here\n");
            loop {
                let _ = waitpid(None, None);
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        let mut cmd = shell_command();
        cmd.env("PS1", "(berth recovery) # ");
        match cmd.spawn() {
            Ok(child) => {
                reap_until_exit(child.id() as i32, wait_any);
                log::raw("recovery shell exited; starting a new one\n");
            }
            Err(e) => {
                log::raw(&format!("cannot start the recovery shell: {e}\n"));
                std::thread::sleep(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_is_seen_exiting_among_other_children() {
        // Orphans exit first, then the shell: the loop ends at the shell, not before, and
        // does not spin after it (the old loop reaped the shell, then waited forever for a
        // `try_wait` that could only fail).
        let mut script = vec![
            Reaped::Exited(7),
            Reaped::Nothing,
            Reaped::Exited(42),
            Reaped::Exited(8),
        ]
        .into_iter();
        let mut calls = 0;
        reap_until_exit(42, || {
            calls += 1;
            script.next().unwrap_or(Reaped::NoChildren)
        });
        assert_eq!(calls, 3);
        // The shell already reaped elsewhere: no children left ends the wait too.
        let mut calls = 0;
        reap_until_exit(42, || {
            calls += 1;
            Reaped::NoChildren
        });
        assert_eq!(calls, 1);
    }

    #[test]
    fn the_banner_says_why_and_what_to_do() {
        let text = banner("the state partition is required");
        assert!(text.contains("the state partition is required") && text.contains("reboot -f"));
    }
}
