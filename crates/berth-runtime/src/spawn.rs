//! Starting a child from one of Berth's supervisors (PID 1, the console's respawner): the
//! child gets a clean signal mask (supervisors block the signals they read from a signalfd,
//! and a mask survives exec) and a session of its own.

use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Prepare `cmd` to run as a supervised child.
pub fn supervised(cmd: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe calls (sigprocmask, setsid) run between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let _ = nix::unistd::setsid();
            Ok(())
        });
    }
    cmd
}

/// Send the child's output to `log` (appending), or leave it on the supervisor's own output
/// (the console) if the file cannot be opened. Stdin is closed.
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

/// Reset this process's signal mask (before exec'ing something else in its place).
pub fn unblock_all_signals() {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Set a process's OOM score adjustment (-1000 never killed .. 1000 killed first).
pub fn set_oom_score_adj(pid: u32, score: i16) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/oom_score_adj"), score.to_string())
}
