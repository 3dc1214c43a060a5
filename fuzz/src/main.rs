//! `berth-fuzz`: run the fuzz targets on the stable toolchain (`cargo xtask fuzz` calls it).

use anyhow::{Context as _, Result, bail};
use berth_fuzz::driver::{Options, fuzz};
use berth_fuzz::{find, quiet_panics, run_one, targets};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Feed Berth's parsers adversarial inputs; a crash is kept under
/// fuzz/tests/fuzz-regressions/<target>/ and fails `cargo test -p berth-fuzz` until fixed.
#[derive(Parser)]
#[command(name = "berth-fuzz")]
struct Args {
    /// The target to run (all when not given; see --list)
    target: Option<String>,
    /// Seconds per target
    #[arg(long, default_value_t = 10.0)]
    time: f64,
    /// At most this many inputs per target (then --time is only a cap): with --seed, every
    /// machine runs exactly the same inputs, as a test suite should
    #[arg(long)]
    runs: Option<u64>,
    /// Seed of the run (printed by every run; give it again to replay the same inputs)
    #[arg(long)]
    seed: Option<u64>,
    /// List the targets and exit
    #[arg(long)]
    list: bool,
    /// Run the target on these files only (a kept regression, say) and print what happens
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "target")]
    replay: Vec<PathBuf>,
}

fn main() {
    if let Err(e) = run(&Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    if args.list {
        for t in targets() {
            println!("{:<18} {}", t.name, t.about);
        }
        return Ok(());
    }
    let chosen = match &args.target {
        Some(name) => vec![find(name).with_context(|| {
            let names: Vec<&str> = targets().iter().map(|t| t.name).collect();
            format!("no fuzz target {name:?}; the targets are: {}", names.join(", "))
        })?],
        None => targets(),
    };
    quiet_panics();
    if !args.replay.is_empty() {
        let mut failed = 0;
        for (target, file) in chosen
            .iter()
            .flat_map(|t| args.replay.iter().map(move |f| (t, f)))
        {
            let input = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            match run_one(target, &input) {
                Ok(cpu) => println!("{}: {}: ok in {cpu:?} of CPU time", target.name, file.display()),
                Err(finding) => {
                    failed += 1;
                    println!("{}: {}: {finding}", target.name, file.display());
                }
            }
        }
        if failed > 0 {
            bail!("{failed} input(s) failed");
        }
        return Ok(());
    }
    if !(args.time.is_finite() && args.time > 0.0) {
        bail!("--time must be a positive number of seconds, not {}", args.time);
    }
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    println!(
        "seed {seed} (replay with --seed {seed}), {} s per target",
        args.time
    );
    let options = Options {
        time: Duration::from_secs_f64(args.time),
        runs: args.runs,
        seed,
    };
    let mut found = 0;
    for target in &chosen {
        let f = fuzz(target, options);
        println!(
            "{:<18} {:>8} executions in {:>5.1} s ({:>7.0}/s), largest input {} bytes, slowest {:.1?} for {} bytes",
            f.target,
            f.executions,
            f.seconds,
            f.executions as f64 / f.seconds.max(1e-9),
            f.largest_input,
            f.slowest.0,
            f.slowest.1,
        );
        if let Some((finding, kept)) = f.finding {
            found += 1;
            println!("  FOUND {finding}\n  input kept in {}", kept.display());
        }
    }
    if found > 0 {
        bail!(
            "{found} target(s) broke (seed {seed}); the inputs are kept under fuzz/tests/fuzz-regressions/ \
             and `cargo test -p berth-fuzz` replays them"
        );
    }
    Ok(())
}
