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
            let mut cmd = Command::new(BUSYBOX);
            cmd.args(["sh", "-l"])
                .env("PATH", format!("{APPLETS_DIR}:/usr/sbin:/usr/bin:/sbin:/bin"))
                .env("HOME", "/")
                .env("PS1", "(berth recovery) # ")
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
