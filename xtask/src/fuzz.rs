//! `cargo xtask fuzz [TARGET] [--time S] [--seed N] [--list]`: run the `berth-fuzz` targets
//! with its stable-toolchain driver (cargo-fuzz would need nightly, which CI must not need).
//! A breaking input is kept under `fuzz/tests/fuzz-regressions/<target>/` and fails
//! `cargo test -p berth-fuzz` until it is fixed.

use crate::layout;
use anyhow::{Context, Result, bail};
use std::process::Command;

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// The target to fuzz (every target when not given)
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
    /// Seconds per target
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub time: f64,
    /// Replay the run with this seed (every run prints its seed)
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// List the targets
    #[arg(long)]
    pub list: bool,
}

/// `cargo run -p berth-fuzz -- ARGS` in the workspace.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(layout::workspace())
        .args(["run", "--quiet", "-p", "berth-fuzz", "--"])
        .args(args);
    cmd
}

pub fn run(args: &FuzzArgs) -> Result<()> {
    let time = args.time.to_string();
    let seed = args.seed.map(|s| s.to_string());
    let mut argv: Vec<&str> = Vec::new();
    if args.list {
        argv.push("--list");
    } else {
        argv.extend(["--time", &time]);
        if let Some(seed) = &seed {
            argv.extend(["--seed", seed]);
        }
        if let Some(target) = &args.target {
            argv.push(target);
        }
    }
    let status = command(&argv)
        .status()
        .context("running the fuzz driver (cargo run -p berth-fuzz)")?;
    if !status.success() {
        bail!("fuzzing found a problem (see above) or could not run");
    }
    Ok(())
}
