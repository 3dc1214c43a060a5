//! The driver: feed a target adversarial inputs for a while, keep what breaks it.

use crate::mutate::{big, mutate, random_bytes};
use crate::{Finding, Target, corpus_dir, input_name, inputs_in, regressions_dir, run_one};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long and from where.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Wall-clock time for this target (the most it gets when `runs` is given).
    pub time: Duration,
    /// Stop after this many inputs: with a seed, the same inputs on every machine.
    pub runs: Option<u64>,
    /// The run's seed: the same seed, target and corpus give the same inputs.
    pub seed: u64,
}

/// What a run did.
#[derive(Debug)]
pub struct Figures {
    pub target: &'static str,
    pub executions: u64,
    pub seconds: f64,
    pub largest_input: usize,
    /// The CPU time of the slowest input, and its size.
    pub slowest: (Duration, usize),
    /// What broke, and where the input was written.
    pub finding: Option<(Finding, PathBuf)>,
}

/// The seed of one target within a run: runs of different targets differ, and `--seed`
/// replays each exactly.
fn target_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Keep `input` as a regression of `target`: `fuzz/tests/fuzz-regressions/<target>/<hash>`.
pub fn keep(target: &str, input: &[u8]) -> std::io::Result<PathBuf> {
    let dir = regressions_dir(target);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(input_name(input));
    std::fs::write(&path, input)?;
    Ok(path)
}

/// Run `target` for `options.time`: the corpus and kept regressions first, then random,
/// generated, mutated and enlarged inputs. Stops at the first finding, which is kept.
pub fn fuzz(target: &Target, options: Options) -> Figures {
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(target_seed(options.seed, target.name));
    let mut pool: Vec<Vec<u8>> = inputs_in(&corpus_dir(target.name))
        .into_iter()
        .chain(inputs_in(&regressions_dir(target.name)))
        .map(|(_, bytes)| bytes)
        .collect();
    let mut figures = Figures {
        target: target.name,
        executions: 0,
        seconds: 0.0,
        largest_input: 0,
        slowest: (Duration::ZERO, 0),
        finding: None,
    };
    let mut replay = pool.clone().into_iter();
    let watchdog = Watchdog::start();
    while started.elapsed() < options.time && options.runs.is_none_or(|n| figures.executions < n) {
        let input = match replay.next() {
            Some(known) => known,
            None => match rng.u8(..100) {
                0..10 => random_bytes(&mut rng),
                10..40 => (target.generate)(&mut rng),
                40..97 if !pool.is_empty() => {
                    let base = pool[rng.usize(..pool.len())].clone();
                    mutate(&mut rng, &base, target.dictionary, &pool)
                }
                _ => {
                    let base = if pool.is_empty() || rng.bool() {
                        (target.generate)(&mut rng)
                    } else {
                        pool[rng.usize(..pool.len())].clone()
                    };
                    big(&mut rng, &base)
                }
            },
        };
        figures.executions += 1;
        figures.largest_input = figures.largest_input.max(input.len());
        watchdog.arm(target.name, &input);
        let result = run_one(target, &input);
        watchdog.disarm();
        match result {
            Ok(cpu) => {
                if cpu > figures.slowest.0 {
                    figures.slowest = (cpu, input.len());
                }
                // Generated inputs become mutation material (bounded, cheap ones only).
                if pool.len() < 512 && input.len() < 16 * 1024 && rng.u8(..8) == 0 {
                    pool.push(input);
                }
            }
            Err(finding) => {
                let kept = keep(target.name, &input)
                    .unwrap_or_else(|e| PathBuf::from(format!("(could not write the input: {e})")));
                figures.finding = Some((finding, kept));
                break;
            }
        }
    }
    figures.seconds = started.elapsed().as_secs_f64();
    figures
}

/// An input that hangs never returns to [`run_one`]'s CPU-time check: a thread watches the
/// running input and, past [`HANG_LIMIT`] plus the input's CPU limit, keeps it as a
/// regression and ends the process.
pub const HANG_LIMIT: Duration = Duration::from_secs(20);

/// The target and input running, and since when.
type Running = std::sync::Arc<std::sync::Mutex<Option<(&'static str, Vec<u8>, Instant)>>>;

struct Watchdog {
    running: Running,
}

impl Watchdog {
    fn start() -> Self {
        let running: Running = Default::default();
        let watched = std::sync::Arc::downgrade(&running);
        std::thread::spawn(move || {
            while let Some(running) = watched.upgrade() {
                if let Ok(guard) = running.lock()
                    && let Some((target, input, since)) = guard.as_ref()
                    && since.elapsed() > HANG_LIMIT + crate::cpu_limit(input.len())
                {
                    let kept = keep(target, input)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|e| format!("(could not write the input: {e})"));
                    println!(
                        "{target:<18} FOUND a hang: one input of {} bytes ran for {:.0?}\n  input kept in {kept}",
                        input.len(),
                        since.elapsed()
                    );
                    std::process::exit(1);
                }
                drop(running);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Watchdog { running }
    }

    fn arm(&self, target: &'static str, input: &[u8]) {
        if let Ok(mut guard) = self.running.lock() {
            *guard = Some((target, input.to_vec(), Instant::now()));
        }
    }

    fn disarm(&self) {
        if let Ok(mut guard) = self.running.lock() {
            *guard = None;
        }
    }
}
