//! The recovery shell: when boot cannot go on, PID 1 says why on the console and keeps a root
//! shell (busybox) running there, reaping whatever it starts.

use crate::log;
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
            crate::process::unblock_all_signals();
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
/// log in there (the console service failed). Returns the shell's PID.
pub fn emergency_shell(reason: &str) -> Option<nix::unistd::Pid> {
    tracing::error!("{reason}");
    log::raw(&format!(
        "\n=== Berth: {reason}. Problems: see /run/berth/boot-problems and /var/log/boot/. ===\n"
    ));
    let _ = std::fs::create_dir_all(APPLETS_DIR);
    let _ = Command::new(BUSYBOX)
        .args(["--install", "-s", APPLETS_DIR])
        .status();
    match shell_command().spawn() {
        Ok(child) => Some(nix::unistd::Pid::from_raw(child.id() as i32)),
        Err(e) => {
            log::raw(&format!("cannot start an emergency shell: {e}\n"));
            None
        }
    }
}

/// Print why, then keep a shell on the console forever.
pub fn enter(reason: &str) -> ! {
    tracing::error!("boot failed: {reason}");
    log::raw(&banner(reason));
    let _ = std::fs::create_dir_all(APPLETS_DIR);
    if Path::new(BUSYBOX).exists() {
        let _ = Command::new(BUSYBOX)
            .args(["--install", "-s", APPLETS_DIR])
            .status();
    }
    loop {
        if Path::new(BUSYBOX).exists() {
            let mut cmd = shell_command();
            cmd.env("PS1", "(berth recovery) # ");
            match cmd.spawn() {
                Ok(mut child) => {
                    // Reap everything while the shell runs (we are PID 1).
                    loop {
                        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                            Ok(nix::sys::wait::WaitStatus::StillAlive) => {}
                            Ok(_) => continue,
                            Err(_) => {}
                        }
                        if let Ok(Some(_)) = child.try_wait() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    log::raw("recovery shell exited; starting a new one\n");
                }
                Err(e) => {
                    log::raw(&format!("cannot start the recovery shell: {e}\n"));
                    std::thread::sleep(Duration::from_secs(10));
                }
            }
        } else {
            log::raw("no shell is available for recovery; the machine stays here\n");
            loop {
                let _ = waitpid(None, None);
                std::thread::sleep(Duration::from_secs(60));
            }
        }
    }
}
