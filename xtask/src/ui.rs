//! Progress output: numbered steps with their duration, plain lines that read well both on a
//! terminal and in a CI log.

use std::time::Instant;

pub struct Steps {
    total: usize,
    current: usize,
}

impl Steps {
    pub fn new(total: usize) -> Self {
        Self { total, current: 0 }
    }

    /// Start the next step; the returned guard prints its duration when finished.
    pub fn step(&mut self, what: &str) -> Step {
        self.current += 1;
        eprintln!("[{}/{}] {what}", self.current, self.total);
        Step {
            what: what.to_string(),
            started: Instant::now(),
            note: None,
        }
    }
}

pub struct Step {
    what: String,
    started: Instant,
    note: Option<String>,
}

impl Step {
    /// A detail printed with the step's completion line ("cached", "42 MiB", ...).
    pub fn note(&mut self, note: impl Into<String>) {
        self.note = Some(note.into());
    }

    pub fn done(self) {}
}

impl Drop for Step {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        match &self.note {
            Some(note) => eprintln!("      {} — {note} ({secs:.1}s)", self.what),
            None => eprintln!("      {} ({secs:.1}s)", self.what),
        }
    }
}

/// A progress line for long loops, at most every `every` items.
pub fn progress(label: &str, done: usize, total: usize, every: usize) {
    if total > 0 && (done.is_multiple_of(every.max(1)) || done == total) {
        eprintln!("      {label}: {done}/{total}");
    }
}

pub fn human_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
