//! `respawn`: keeps a set of commands running (the gettys and sshd of the console). Each runs in
//! its own session; one that exits is started again, after a pause if it keeps failing fast.
//! SIGTERM stops them all and then respawn itself, so `system-docker stop console` is clean.

use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::{SfdFlags, SigSet, SignalFd};
use nix::unistd::Pid;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// More than this many starts within `FAST_WINDOW` means the command is failing.
const FAST_STARTS: usize = 5;
const FAST_WINDOW: Duration = Duration::from_secs(10);
const PAUSE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub argv: Vec<String>,
}

/// Whether a command that started at these times should pause before the next start.
pub fn should_pause(starts: &[Instant], now: Instant) -> bool {
    starts
        .iter()
        .filter(|t| now.duration_since(**t) < FAST_WINDOW)
        .count()
        >= FAST_STARTS
}

/// The signals that stop respawn.
fn stop_signals() -> SigSet {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals
}

/// Block the signals that stop respawn in the calling thread, and so in every thread it
/// starts afterwards. Call it before starting any thread: respawn reads them from a
/// signalfd, which only sees a signal that no thread of the process takes (one that a thread
/// leaves unblocked ends the process at once, without stopping the commands). Commands start
/// with an empty mask (Rust's `Command` resets it).
pub fn block_signals() {
    if stop_signals().thread_block().is_err() {
        eprintln!("respawn: cannot block signals");
    }
}

/// Run `entries` until SIGTERM or SIGINT. Returns the exit code.
pub fn run(entries: Vec<Entry>) -> i32 {
    let signals = stop_signals();
    block_signals();
    let stopping = Arc::new(AtomicBool::new(false));
    let children: Arc<Mutex<Vec<i32>>> = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for entry in entries {
        let stopping = stopping.clone();
        let children = children.clone();
        threads.push(std::thread::spawn(move || supervise(entry, &stopping, &children)));
    }
    match SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC) {
        Ok(sfd) => {
            let _ = sfd.read_signal();
        }
        Err(_) => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    stopping.store(true, Ordering::SeqCst);
    if let Ok(pids) = children.lock() {
        for pid in pids.iter() {
            // Each child leads its own session and process group.
            let _ = kill(Pid::from_raw(-pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    0
}

fn supervise(entry: Entry, stopping: &AtomicBool, children: &Mutex<Vec<i32>>) {
    let mut starts: Vec<Instant> = Vec::new();
    while !stopping.load(Ordering::SeqCst) {
        let now = Instant::now();
        if should_pause(&starts, now) {
            eprintln!(
                "respawn: {} keeps exiting; waiting {}s",
                entry.name,
                PAUSE.as_secs()
            );
            std::thread::sleep(PAUSE);
            starts.clear();
        }
        starts.push(Instant::now());
        starts.retain(|t| t.elapsed() < FAST_WINDOW * 2);
        let Some((program, args)) = entry.argv.split_first() else {
            return;
        };
        let mut cmd = Command::new(program);
        cmd.args(args);
        match berth_runtime::spawn::supervised(&mut cmd).spawn() {
            Ok(mut child) => {
                let pid = child.id() as i32;
                if let Ok(mut list) = children.lock() {
                    list.push(pid);
                }
                let status = child.wait();
                if let Ok(mut list) = children.lock() {
                    list.retain(|p| *p != pid);
                }
                if !stopping.load(Ordering::SeqCst) {
                    eprintln!("respawn: {} exited ({status:?}); starting it again", entry.name);
                }
            }
            Err(e) => {
                eprintln!("respawn: cannot start {}: {e}", entry.name);
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_failures_pause() {
        let now = Instant::now();
        let recent: Vec<Instant> = (0..5).map(|i| now - Duration::from_millis(100 * i)).collect();
        assert!(should_pause(&recent, now));
        let slow: Vec<Instant> = (0..5).map(|i| now - Duration::from_secs(5 * i)).collect();
        assert!(!should_pause(&slow, now));
        assert!(!should_pause(&recent[..2], now));
    }
}
