//! `cargo xtask test`: every tier in one command. Unit and integration tests (the latter
//! start their own dockerd), then the image build, then the end-to-end tests that boot it in
//! QEMU, two test files at a time (see `e2e.rs`).

use crate::{build, host, layout};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip the end-to-end tier (no image build, no QEMU)
    #[arg(long, conflicts_with = "only_e2e")]
    pub no_e2e: bool,
    /// Run only the end-to-end tier (builds the image if needed)
    #[arg(long)]
    pub only_e2e: bool,
    /// End-to-end test files run side by side (those that boot several machines at once
    /// always run alone); 1 runs them one after another
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub e2e_jobs: usize,
    /// Only run tests whose name contains this (passed to cargo test)
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
}

/// The seed of the fuzz step of `cargo xtask test`.
const CI_FUZZ_SEED: &str = "1";

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(layout::workspace());
    cmd
}

fn step(what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("==> {what}");
    let started = Instant::now();
    let status = cmd.status().with_context(|| format!("running {what}"))?;
    eprintln!(
        "    {what}: {} in {:.0}s",
        if status.success() { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("{what} failed");
    }
    Ok(())
}

pub fn run(args: &TestArgs) -> Result<()> {
    let started = Instant::now();
    host::ensure(host::Purpose::all())?;
    if !args.only_e2e {
        let mut cmd = cargo();
        cmd.args([
            "test",
            "--workspace",
            "--exclude",
            "berth-e2e",
            "--exclude",
            "xtask",
        ]);
        if let Some(f) = &args.filter {
            cmd.arg(f);
        }
        step("unit and integration tests", &mut cmd)?;
        if args.filter.is_none() {
            // A fixed seed and a fixed number of inputs: every run of the suite, on any
            // machine, tries exactly the same inputs (30 s per target is only a cap for a very
            // slow machine); `cargo xtask fuzz` explores with fresh seeds and no such limit.
            step(
                "fuzz targets, 2000 inputs each",
                &mut crate::fuzz::command(&["--runs", "2000", "--time", "30", "--seed", CI_FUZZ_SEED]),
            )?;
        }
        let mut cmd = cargo();
        cmd.args(["test", "-p", "xtask"]);
        step("image builder tests", &mut cmd)?;
    }
    if !args.no_e2e {
        let artifacts = build::run(&build::BuildArgs::default())?;
        let out = artifacts
            .vmlinuz
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(layout::out_dir);
        // The upgrade test's second, newer release (cached like any build; the test itself
        // builds it when run alone).
        build::run(&build::BuildArgs {
            version: Some(berth_e2e::next_version()),
            out: Some(berth_e2e::next_out(&out)),
            ..Default::default()
        })?;
        // Where the machines record a known fault of QEMU's emulation they went on from.
        let faults = out.join("e2e/emulator-faults.log");
        let _ = std::fs::remove_file(&faults);
        eprintln!("==> end-to-end tests (QEMU), {} at a time", args.e2e_jobs);
        let started = Instant::now();
        let result = crate::e2e::run(cargo(), &out, args.filter.as_deref(), args.e2e_jobs);
        eprintln!(
            "    end-to-end tests (QEMU): {} in {:.0}s",
            if result.is_ok() { "passed" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        if let Ok(said) = std::fs::read_to_string(&faults) {
            eprintln!("Known faults of QEMU's software emulation met (not failures):\n{said}");
        }
        result?;
    }
    eprintln!("All tests passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}
