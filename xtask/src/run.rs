//! `cargo xtask run`: build if needed, then boot Berth in QEMU with the serial console on
//! this terminal and ssh forwarded to 127.0.0.1, with a throwaway key that works at once.

use crate::{build, layout};
use anyhow::{Context, Result, bail};
use berth_e2e::qemu::{self, Boot, Serial, Vm};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Memory in MiB
    #[arg(long, short = 'm', default_value_t = 1024)]
    pub memory: u32,
    /// Virtual CPUs
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Attach this raw disk image (repeatable); see --state for a ready-made state disk
    #[arg(long = "disk", value_name = "FILE")]
    pub disks: Vec<PathBuf>,
    /// Keep data across boots on this disk image, created as an ext4 BERTH_STATE disk if missing
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Use this file as the NoCloud user-data (the throwaway ssh key still goes in meta-data)
    #[arg(long, value_name = "FILE")]
    pub cloud_config: Option<PathBuf>,
    /// Boot without a NoCloud seed at all
    #[arg(long, conflicts_with = "cloud_config")]
    pub no_cidata: bool,
    /// Extra kernel parameters (kernel + initrd boots)
    #[arg(long, value_name = "PARAMS", default_value = "")]
    pub append: String,
    /// Boot the ISO as a CD instead of the kernel and initrd
    #[arg(long)]
    pub iso: bool,
    /// Boot with UEFI firmware (OVMF) instead of BIOS
    #[arg(long)]
    pub uefi: bool,
    /// Host port for ssh (default: a free one)
    #[arg(long)]
    pub ssh_port: Option<u16>,
    /// Use the last build without rebuilding
    #[arg(long)]
    pub no_build: bool,
}

/// The kernel command line of a development boot. `rootfstype=ramfs`: the kernel unpacks the
/// full initrd into a tmpfs capped at half of the RAM it counts then (the initrd itself not
/// included), which cuts the image store short below ~400 MiB; ramfs has no cap.
pub fn default_append(extra: &str) -> String {
    format!("console=ttyS0,115200n8 panic=10 rootfstype=ramfs berth.autologin=ttyS0 {extra}")
        .trim()
        .to_string()
}

pub fn run(args: &RunArgs) -> Result<()> {
    crate::host::ensure(&[crate::host::Purpose::Boot])?;
    let artifacts = if args.no_build {
        build::existing().context("no previous build: run without --no-build")?
    } else {
        build::run(&build::BuildArgs::default())?
    };
    let dir = layout::out_dir().join("run");
    let (key, public) = qemu::ssh_key(&dir)?;
    let boot = if args.iso {
        Boot::Cdrom(artifacts.iso.clone())
    } else {
        Boot::Kernel {
            vmlinuz: artifacts.vmlinuz.clone(),
            initrd: artifacts.initrd.clone(),
            append: default_append(&args.append),
        }
    };
    let mut vm = Vm::new(boot);
    vm.memory_mib = args.memory;
    vm.cpus = args.cpus;
    vm.uefi = args.uefi;
    vm.kvm = qemu::use_kvm();
    vm.serial = Serial::Stdio;
    vm.disks = args.disks.clone();
    if let Some(state) = &args.state {
        if !state.exists() {
            eprintln!(
                "Creating state disk {} (4 GiB, ext4, BERTH_STATE)",
                state.display()
            );
            qemu::make_ext4_disk(state, 4096, "BERTH_STATE")?;
        }
        vm.disks.push(state.clone());
    }
    if !args.no_cidata {
        let user_data = match &args.cloud_config {
            Some(path) => {
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
            }
            None => format!("#cloud-config\nhostname: berth-dev\nssh_authorized_keys:\n  - {public}\n"),
        };
        let meta_data = format!(
            "instance-id: berth-run-{}\nlocal-hostname: berth-dev\npublic-keys:\n  - {public}\n",
            std::process::id()
        );
        let seed = dir.join("cidata.iso");
        qemu::make_cidata(&dir.join("cidata"), &user_data, &meta_data, &seed)?;
        vm.cidata = Some(seed);
    }
    let port = match args.ssh_port {
        Some(p) => p,
        None => qemu::free_port()?,
    };
    vm.ssh_port = Some(port);
    eprintln!(
        "Booting Berth ({}, {} MiB, {}). Serial console below; Ctrl-A X quits QEMU.\n\
         ssh: ssh -i {} -p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null berth@127.0.0.1\n",
        if args.iso { "ISO" } else { "kernel + initrd" },
        args.memory,
        if vm.kvm { "KVM" } else { "TCG, no KVM" },
        key.display()
    );
    let status = vm.command().status().context("running qemu-system-x86_64")?;
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}
