//! Starting processes from PID 1: the child gets a clean signal mask (PID 1 blocks the
//! signals it reads from a signalfd, and a mask survives exec), its own session, and its
//! output where PID 1 says.

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Prepare `cmd` to run as a child of PID 1.
pub fn prepare(cmd: &mut Command) {
    // SAFETY: only async-signal-safe calls (sigprocmask, setsid) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let _ = nix::unistd::setsid();
            Ok(())
        });
    }
}

/// Send the child's output to `log` (appending), or to the console if it cannot be opened.
pub fn output_to(cmd: &mut Command, log: &Path) {
    let open = || std::fs::OpenOptions::new().create(true).append(true).open(log);
    match (open(), open()) {
        (Ok(out), Ok(err)) => {
            cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
        }
        _ => {
            tracing::warn!("cannot open {}; output goes to the console", log.display());
        }
    }
    cmd.stdin(Stdio::null());
}

/// Reset the signal mask of this process (before exec'ing something else as PID 1).
pub fn unblock_all_signals() {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
