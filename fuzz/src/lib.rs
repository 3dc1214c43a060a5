//! Fuzz targets for every Berth parser that reads untrusted input, and a driver that runs
//! them on the stable toolchain.
//!
//! A [`Target`] calls the real parser on one input and checks properties beyond "does not
//! panic": round trips give back what went in, budgets hold, and no input takes more CPU
//! time than its size allows ([`cpu_limit`]). The driver (`cargo xtask fuzz`) feeds each
//! target random bytes, mutations of the seed corpus in `fuzz/corpus/<target>/` and
//! structure-aware inputs; an input that breaks a property is written to
//! `fuzz/tests/fuzz-regressions/<target>/<hash>`, and `cargo test -p berth-fuzz` replays
//! every such file, so a crash found is a failing test until it is fixed.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod driver;
pub mod mutate;
pub mod targets;

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

/// One parser under test.
pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    /// Check one input: `Err` names the property that broke. Panics are caught by [`run_one`].
    pub check: fn(&[u8]) -> Result<(), String>,
    /// A structure-aware input (YAML, MIME, command lines ...) for this parser.
    pub generate: fn(&mut fastrand::Rng) -> Vec<u8>,
    /// Tokens that matter to the parser, spliced in by the mutator.
    pub dictionary: &'static [&'static str],
}

/// Every target, in the order `--list` prints them.
pub fn targets() -> Vec<Target> {
    targets::all()
}

/// The target called `name`.
pub fn find(name: &str) -> Option<Target> {
    targets().into_iter().find(|t| t.name == name)
}

/// What one input did wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The parser panicked (message and location).
    Panic(String),
    /// A property check failed.
    Property(String),
    /// The input took more CPU time than its size allows.
    TooSlow { cpu: Duration, limit: Duration },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Panic(m) => write!(f, "panic: {m}"),
            Finding::Property(m) => write!(f, "property broken: {m}"),
            Finding::TooSlow { cpu, limit } => {
                write!(
                    f,
                    "too slow: {cpu:?} of CPU time, the limit for its size is {limit:?}"
                )
            }
        }
    }
}

/// The CPU time an input of `len` bytes may take: generous (debug builds, a busy machine),
/// but linear in the size, so a parser that goes quadratic on a large input is caught.
pub fn cpu_limit(len: usize) -> Duration {
    Duration::from_secs(1) + Duration::from_micros(10) * u32::try_from(len).unwrap_or(u32::MAX)
}

/// The CPU time this thread has used (wall time would make the limit depend on the load).
fn thread_cpu_time() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replace the panic hook with one that records the message and location for
/// [`run_one`] instead of printing it (the driver runs millions of inputs).
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{location}")));
    }));
}

/// Run `target` on `input`: its CPU time, or what went wrong.
pub fn run_one(target: &Target, input: &[u8]) -> Result<Duration, Finding> {
    let started = thread_cpu_time();
    let result = std::panic::catch_unwind(|| (target.check)(input));
    let cpu = thread_cpu_time().saturating_sub(started);
    match result {
        Err(payload) => {
            let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
            let message = recorded
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string());
            Err(Finding::Panic(message))
        }
        Ok(Err(property)) => Err(Finding::Property(property)),
        Ok(Ok(())) if cpu > cpu_limit(input.len()) => Err(Finding::TooSlow {
            cpu,
            limit: cpu_limit(input.len()),
        }),
        Ok(Ok(())) => Ok(cpu),
    }
}

/// `fuzz/` in the source tree.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The seed corpus of `target`: real samples of what it parses.
pub fn corpus_dir(target: &str) -> PathBuf {
    crate_dir().join("corpus").join(target)
}

/// Where inputs that broke `target` are kept.
pub fn regressions_dir(target: &str) -> PathBuf {
    crate_dir().join("tests/fuzz-regressions").join(target)
}

/// The files in `dir`, sorted by name (none when it does not exist). Files whose name
/// starts with `.` or ends in `.md` are notes, not inputs.
pub fn inputs_in(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && !n.ends_with(".md"))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|bytes| (p, bytes)))
        .collect()
}

/// The name a found input is kept under: its SHA-256, shortened.
pub fn input_name(input: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(input);
    hex::encode(&digest[..8])
}

/// Split `input` at NUL bytes into `n` parts (missing parts are empty): how the targets
/// that read several files take them from one input.
pub(crate) fn split_parts(input: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = input.splitn(n, |&b| b == 0).collect();
    parts.resize(n, &[]);
    parts
}

/// Lossy UTF-8, as the parsers that take `&str` get it from files.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
