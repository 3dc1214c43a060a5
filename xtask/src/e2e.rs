//! The end-to-end step of `cargo xtask test`. Every file of `crates/berth-e2e/tests/` is a
//! test binary. The files that boot several machines at once ([`SOLO`]) run alone; the
//! others run `jobs` at a time. On two cores each file then takes 1.5–2.1 times as long as
//! alone (an emulated machine keeps most of both cores busy, but not all the time: it waits
//! on ssh, on timers, on the disk), so a pair ends some 10–15% before the two in a row. Inside
//! a binary the tests run one at a time, as they share one machine between their checks.
//!
//! Each binary writes to its own log, `target/berth/e2e/logs/NAME.log`; a failure prints its
//! log whole. How long each binary took is kept in `target/berth/e2e/durations.json` and
//! orders the next run: the longest start first, so the two lanes end together.

use crate::layout;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Test files that boot several machines at once: they take both cores and their checks
/// time a cluster's reactions, so nothing runs beside them.
const SOLO: &[&str] = &["netvm", "swarm"];

/// Seconds each file took on the reference machine: the order of a first run, before
/// `durations.json` exists. A file missing here counts as short.
const TYPICAL: &[(&str, f64)] = &[
    ("install", 470.0),
    ("swarm", 412.0),
    ("cloud_init", 267.0),
    ("boot", 260.0),
    ("netvm", 248.0),
    ("hardening", 121.0),
    ("services", 117.0),
    ("console", 116.0),
    ("lean", 330.0),
    ("lean_384", 200.0),
    ("security", 103.0),
    ("media", 98.0),
    ("network", 60.0),
    ("bad_input", 53.0),
    ("https_datasource", 45.0),
];

/// One test binary of berth-e2e.
#[derive(Debug, Clone, PartialEq)]
struct Binary {
    /// The test file's name, or `NAME (unit)` for the library's and programs' own tests.
    name: String,
    path: PathBuf,
}

struct Outcome {
    name: String,
    passed: bool,
    seconds: f64,
}

/// Build the test binaries, run them (`jobs` at a time, [`SOLO`] ones alone) and say which
/// failed. `out` is the build's output directory (the tests' `BERTH_OUT`).
pub fn run(cargo: Command, out: &Path, filter: Option<&str>, jobs: usize) -> Result<()> {
    let binaries = build(cargo)?;
    let dir = out.join("e2e");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let record = dir.join("durations.json");
    let mut durations = read_durations(&record);
    let expected = binaries.len();
    let (solo, paired) = plan(binaries, &durations);
    let runner = Runner {
        out,
        logs: &logs,
        filter,
        print: Mutex::new(()),
    };
    let mut outcomes = Vec::new();
    for binary in &solo {
        outcomes.push(runner.run_one(binary)?);
    }
    let queue = Mutex::new(VecDeque::from(paired));
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
                    let Some(binary) = next else { break };
                    let outcome = runner.run_one(&binary);
                    results
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(outcome);
                }
            });
        }
    });
    for outcome in results.into_inner().unwrap_or_else(PoisonError::into_inner) {
        outcomes.push(outcome?);
    }
    if outcomes.len() != expected {
        bail!(
            "only {} of the {expected} end-to-end test binaries ran",
            outcomes.len()
        );
    }
    for o in outcomes.iter().filter(|o| o.passed && filter.is_none()) {
        durations.insert(o.name.clone(), o.seconds);
    }
    if let Ok(json) = serde_json::to_string_pretty(&durations) {
        let _ = std::fs::write(&record, json);
    }
    outcomes.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    eprintln!("    end-to-end files, longest first:");
    for o in &outcomes {
        eprintln!(
            "      {:<28} {:>5.0}s  {}",
            o.name,
            o.seconds,
            if o.passed { "passed" } else { "FAILED" }
        );
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "end-to-end tests failed: {} (their logs are printed above and kept in {})",
            failed.join(", "),
            logs.display()
        );
    }
    Ok(())
}

/// `cargo test -p berth-e2e --no-run`, and the test binaries it reports.
fn build(mut cargo: Command) -> Result<Vec<Binary>> {
    cargo
        .args([
            "test",
            "-p",
            "berth-e2e",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped());
    let mut child = cargo
        .spawn()
        .context("running cargo test --no-run for berth-e2e")?;
    let stdout = child.stdout.take().context("cargo's output")?;
    let mut binaries = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(binary) = binary_of(&line.context("reading cargo's output")?) {
            binaries.push(binary);
        }
    }
    if !child.wait()?.success() {
        bail!("building the end-to-end tests failed (cargo's messages are above)");
    }
    if binaries.is_empty() {
        bail!("cargo built no test binary for berth-e2e");
    }
    Ok(binaries)
}

/// The test binary a line of cargo's JSON messages announces, if it announces one.
fn binary_of(line: &str) -> Option<Binary> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
        return None;
    }
    let path = PathBuf::from(message["executable"].as_str()?);
    let target = &message["target"];
    let name = target["name"].as_str()?;
    let is_test_file = target["kind"].as_array()?.iter().any(|k| k == "test");
    let name = if is_test_file {
        name.to_string()
    } else {
        format!("{name} (unit)")
    };
    Some(Binary { name, path })
}

/// The binaries to run alone, then the others; each list longest first.
fn plan(binaries: Vec<Binary>, durations: &BTreeMap<String, f64>) -> (Vec<Binary>, Vec<Binary>) {
    let weight = |b: &Binary| {
        durations
            .get(&b.name)
            .copied()
            .or_else(|| TYPICAL.iter().find(|(n, _)| *n == b.name).map(|(_, s)| *s))
            .unwrap_or(1.0)
    };
    let (mut solo, mut paired): (Vec<Binary>, Vec<Binary>) = binaries
        .into_iter()
        .partition(|b| SOLO.contains(&b.name.as_str()));
    solo.sort_by(|a, b| weight(b).total_cmp(&weight(a)));
    paired.sort_by(|a, b| weight(b).total_cmp(&weight(a)));
    (solo, paired)
}

fn read_durations(path: &Path) -> BTreeMap<String, f64> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

struct Runner<'a> {
    out: &'a Path,
    logs: &'a Path,
    filter: Option<&'a str>,
    /// One binary's lines at a time on the terminal.
    print: Mutex<()>,
}

impl Runner<'_> {
    fn say(&self, text: &str) {
        let _turn = self.print.lock();
        eprintln!("{text}");
    }

    fn run_one(&self, binary: &Binary) -> Result<Outcome> {
        let file_name: String = binary
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let log_path = self.logs.join(format!("{file_name}.log"));
        let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(&binary.path);
        // As cargo runs a test: from its package's directory.
        cmd.current_dir(layout::workspace().join("crates/berth-e2e"))
            .env("BERTH_OUT", self.out)
            .arg("--test-threads=1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(f) = self.filter {
            cmd.arg(f);
        }
        self.say(&format!("    {} started", binary.name));
        let started = Instant::now();
        let status = cmd
            .status()
            .with_context(|| format!("running {}", binary.path.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        let passed = status.success();
        if passed {
            self.say(&format!("    {}: passed in {seconds:.0}s", binary.name));
        } else {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            self.say(&format!(
                "    {}: FAILED in {seconds:.0}s ({status}); its log, {}:\n{text}",
                binary.name,
                log_path.display()
            ));
        }
        Ok(Outcome {
            name: binary.name.clone(),
            passed,
            seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(name: &str) -> Binary {
        Binary {
            name: name.into(),
            path: PathBuf::from(format!("/t/{name}")),
        }
    }

    #[test]
    fn cargo_messages_name_the_test_binaries() {
        let test = r#"{"reason":"compiler-artifact","profile":{"test":true},"target":{"name":"boot","kind":["test"]},"executable":"/w/target/debug/deps/boot-1a"}"#;
        assert_eq!(
            binary_of(test),
            Some(Binary {
                name: "boot".into(),
                path: "/w/target/debug/deps/boot-1a".into()
            })
        );
        let unit = r#"{"reason":"compiler-artifact","profile":{"test":true},"target":{"name":"berth_e2e","kind":["lib"]},"executable":"/w/e-2"}"#;
        assert_eq!(binary_of(unit).map(|b| b.name), Some("berth_e2e (unit)".into()));
        // A library built for the tests, not a test binary; and other messages.
        let lib = r#"{"reason":"compiler-artifact","profile":{"test":false},"target":{"name":"berth_e2e","kind":["lib"]},"executable":null}"#;
        assert_eq!(binary_of(lib), None);
        assert_eq!(binary_of(r#"{"reason":"build-finished","success":true}"#), None);
        assert_eq!(binary_of("Compiling x"), None);
    }

    #[test]
    fn multi_machine_files_run_alone_and_the_longest_start_first() {
        let mut recorded = BTreeMap::new();
        recorded.insert("media".to_string(), 900.0);
        let (solo, paired) = plan(
            vec![
                bin("network"),
                bin("swarm"),
                bin("x (unit)"),
                bin("media"),
                bin("install"),
                bin("netvm"),
            ],
            &recorded,
        );
        let names = |v: &[Binary]| v.iter().map(|b| b.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&solo), ["swarm", "netvm"]);
        // A recorded duration wins over the typical one; an unknown binary comes last.
        assert_eq!(names(&paired), ["media", "install", "network", "x (unit)"]);
    }
}
