//! Developer tasks for Berth (the cargo-xtask pattern): build the bootable image from pinned
//! Debian packages, boot it in QEMU, run every test tier, and run the benchmarks.
//!
//! `cargo xtask build` writes `target/berth/{vmlinuz,initrd.img,berth.iso,manifest.json}`;
//! `cargo xtask run` boots it with ssh forwarded to 127.0.0.1; `cargo xtask test` runs the
//! unit, integration and end-to-end tiers; `cargo xtask bench boot` measures boot time, size
//! and memory against a floor (the same kernel with an initramfs that only starts dockerd);
//! `cargo xtask fuzz` feeds the parsers of untrusted input adversarial inputs.

mod apt;
mod bench;
mod bench_chart;
mod build;
mod deb;
mod debian_ref;
mod disk;
mod docker_archive;
mod e2e;
mod engines;
mod fuzz;
mod host;
mod image_store;
mod initramfs;
mod iso;
mod kernel;
mod layout;
mod optional_image;
mod recipe;
mod run;
mod signing;
mod test;
mod toolchain;
mod tree;
mod ui;
mod verity;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, boot, test and benchmark Berth",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the image: target/berth/{vmlinuz,initrd.img,berth.iso,manifest.json}
    Build(build::BuildArgs),
    /// Build if needed, then boot Berth in QEMU with the serial console on this terminal
    Run(run::RunArgs),
    /// Run the whole test suite: unit, integration (real dockerd) and end-to-end (QEMU)
    Test(test::TestArgs),
    /// Run benchmarks and print their figures
    Bench(bench::BenchArgs),
    /// Fuzz the parsers of untrusted input (all targets, or one); --list names them
    Fuzz(fuzz::FuzzArgs),
    /// Install the host packages and toolchain target the other commands need
    Setup,
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Build(args) => build::run(&args).map(|_| ()),
        Command::Run(args) => run::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::Setup => host::ensure(host::Purpose::all()),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
