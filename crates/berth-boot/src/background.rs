//! Work that init runs in a thread while it goes on, and waits for later: the disk drivers in
//! stage 1 (the state partition search watches them appear), User Docker's network modules in
//! stage 2 (System Docker starts meanwhile); and coldplug under supervision, which nothing
//! waits for.
//!
//! The thread starts with every signal blocked but the faults' own (SIGSEGV, SIGBUS, SIGFPE,
//! SIGILL). PID 1's signals must reach the supervisor's
//! signalfd, which reads only signals that every thread blocks: a process-directed signal
//! (SIGCHLD, SIGTERM) goes to a thread that does not block it, and would be lost there.

use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

type Work = Box<dyn FnOnce() + Send>;

/// The signals a background thread blocks: all but those a fault of the thread itself raises
/// (a blocked SIGSEGV from a stack overflow would end PID 1 without Rust's message).
fn thread_mask() -> nix::sys::signal::SigSet {
    use nix::sys::signal::Signal;
    let mut mask = nix::sys::signal::SigSet::all();
    for fault in [Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGFPE, Signal::SIGILL] {
        mask.remove(fault);
    }
    mask
}

/// One piece of work in a thread of its own.
pub struct Background {
    name: &'static str,
    /// Closed (or sent on) when the work ends; `None` once waited for.
    ended: Option<Receiver<()>>,
    finished: Arc<OnceLock<Instant>>,
}

impl Background {
    /// Run `work` in a thread named `name`. If no thread can be made, it runs here and now:
    /// it is never skipped.
    pub fn spawn(name: &'static str, work: impl FnOnce() + Send + 'static) -> Self {
        let finished = Arc::new(OnceLock::new());
        let (done, ended) = channel();
        let slot: Arc<Mutex<Option<Work>>> = Arc::new(Mutex::new(Some(Box::new(work))));
        let spawned = {
            let (slot, finished) = (slot.clone(), finished.clone());
            let blocked = thread_mask().thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
            let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
                let work = slot.lock().ok().and_then(|mut w| w.take());
                if let Some(work) = work {
                    work();
                }
                let _ = finished.set(Instant::now());
                let _ = done.send(());
            });
            if let Ok(previous) = blocked {
                let _ = previous.thread_set_mask();
            }
            spawned
        };
        if let Err(e) = spawned {
            tracing::warn!("cannot start a thread for the {name}: {e}; doing it now");
            let work = slot.lock().ok().and_then(|mut w| w.take());
            if let Some(work) = work {
                work();
            }
            return Self::done(name);
        }
        Background {
            name,
            ended: Some(ended),
            finished,
        }
    }

    /// Nothing to do: finished now.
    pub fn done(name: &'static str) -> Self {
        let finished = OnceLock::new();
        let _ = finished.set(Instant::now());
        Background {
            name,
            ended: None,
            finished: Arc::new(finished),
        }
    }

    /// When the work ended, if it has.
    pub fn finished_at(&self) -> Option<Instant> {
        self.finished.get().copied()
    }

    /// Return once the work has ended.
    pub fn wait(&mut self) {
        if let Some(ended) = self.ended.take() {
            let _ = ended.recv();
            self.ended_now();
        }
    }

    /// Return once the work has ended or `limit` has passed, whichever is first; whether it
    /// ended. Once it has, at once.
    pub fn wait_at_most(&mut self, limit: Duration) -> bool {
        let Some(ended) = self.ended.take() else {
            return true;
        };
        match ended.recv_timeout(limit) {
            Err(RecvTimeoutError::Timeout) => {
                self.ended = Some(ended);
                false
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                self.ended_now();
                true
            }
        }
    }

    /// After the work ended: a thread that ended without saying so panicked.
    fn ended_now(&self) {
        if self.finished.set(Instant::now()).is_ok() {
            tracing::warn!(
                "the {} failed (a bug: please report it with the log above)",
                self.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_work_and_says_when_it_ended() {
        let (go, wait_for_go) = channel::<()>();
        let mut work = Background::spawn("test work", move || {
            let _ = wait_for_go.recv();
        });
        assert_eq!(work.finished_at(), None);
        assert!(!work.wait_at_most(Duration::from_millis(200)));
        assert_eq!(work.finished_at(), None);
        go.send(()).unwrap();
        assert!(work.wait_at_most(Duration::from_secs(30)));
        let at = work.finished_at().expect("finished");
        work.wait();
        assert!(work.wait_at_most(Duration::ZERO));
        assert_eq!(work.finished_at(), Some(at));
        assert!(Background::done("nothing").finished_at().is_some());
    }

    #[test]
    fn the_thread_blocks_every_signal_and_a_panic_still_ends_the_wait() {
        let (tx, rx) = channel();
        let mut work = Background::spawn("test work", move || {
            let mask = nix::sys::signal::SigSet::thread_get_mask().unwrap();
            tx.send(
                mask.contains(nix::sys::signal::Signal::SIGCHLD)
                    && mask.contains(nix::sys::signal::Signal::SIGTERM)
                    && !mask.contains(nix::sys::signal::Signal::SIGSEGV),
            )
            .unwrap();
            panic!("on purpose");
        });
        work.wait();
        assert!(rx.recv().unwrap(), "signals were not blocked in the thread");
        assert!(work.finished_at().is_some());
        // The caller's own mask is as it was.
        let mine = nix::sys::signal::SigSet::thread_get_mask().unwrap();
        assert!(!mine.contains(nix::sys::signal::Signal::SIGTERM));
    }
}
