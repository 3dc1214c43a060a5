//! `cargo xtask bench`: figures, never pass/fail. `boot` measures sizes, the time from QEMU's
//! start to System Docker, ssh and User Docker being ready, and idle memory, as medians of
//! several boots, next to the *floor*: the same kernel with an initramfs that only starts the
//! same dockerd, and a Debian trixie + systemd + docker.io reference (see `debian_ref`).
//! `config` measures `berth config get` and `validate`.

use crate::bench_chart::{self, SystemFigures};
use crate::{build, debian_ref, initramfs, layout, tree};
use anyhow::{Context, Result, bail};
use berth_e2e::machine::Machine;
use berth_e2e::qemu::{self, Boot, Vm};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(clap::Subcommand)]
pub enum BenchWhat {
    /// Boot time, sizes and idle memory against the floor
    Boot {
        /// Boots of each kind (the median is reported)
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Guest memory in MiB for the timed boots and the floor (the floor unpacks the whole
        /// engine into RAM, so it needs 1 GiB)
        #[arg(long, default_value_t = 1024)]
        memory: u32,
        /// Memory of the two boots whose idle memory is measured (kernel + initrd, from RAM
        /// and with a state disk)
        #[arg(long, default_value_t = 512)]
        small_memory: u32,
        /// Memory of one boot of the kernel and the full initrd, from RAM (0: skip)
        #[arg(long, default_value_t = 384)]
        low_memory: u32,
        /// Seconds to wait after User Docker is ready before reading idle memory
        #[arg(long, default_value_t = 60)]
        idle_after: u64,
    },
    /// Only build (or find cached) the Debian reference image the boot benchmark compares with
    DebianRef,
    /// Draw target/berth/bench/boot.svg again from the figures of the last run
    /// (target/berth/bench.json), without booting anything
    Chart,
    /// `berth config get` and `berth config validate` on a typical configuration
    Config {
        #[arg(long, default_value_t = 200)]
        runs: usize,
    },
}

pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchWhat::Boot {
            runs,
            memory,
            small_memory,
            low_memory,
            idle_after,
        } => boot(*runs, *memory, *small_memory, *low_memory, *idle_after),
        BenchWhat::Chart => redraw_chart(),
        BenchWhat::DebianRef => {
            crate::host::ensure(&[crate::host::Purpose::Build, crate::host::Purpose::Bench])?;
            if build::existing().is_none() {
                build::run(&build::BuildArgs::default())?;
            }
            let dir = layout::out_dir().join("bench");
            let (_, public) = qemu::ssh_key(&dir)?;
            let r = crate::debian_ref::ensure(&dir, &public)?;
            println!(
                "{} ({:.1} MiB on disk)",
                r.disk.display(),
                r.disk_bytes() as f64 / 1048576.0
            );
            Ok(())
        }
        BenchWhat::Config { runs } => config(*runs),
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Seconds from QEMU's start until the console shows `needle`, polling the log.
fn when_console(m: &Machine, needle: &str, limit: Duration) -> Option<f64> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if m.console().contains(needle) {
            return Some(m.started.elapsed().as_secs_f64());
        }
        if m.exited().ok().flatten().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

struct BerthRun {
    system_docker: Option<f64>,
    ssh: Option<f64>,
    user_docker: Option<f64>,
    idle_used_mib: Option<f64>,
    processes: Option<u32>,
    cloud_init_ms: Option<f64>,
    analyze: Option<Analysis>,
}

/// What to do on a booted machine besides timing it.
#[derive(Clone, Copy, Default)]
struct Extras {
    /// Seconds to wait after the engine is ready before reading idle memory and processes.
    idle: Option<u64>,
    /// Ask `berth analyze --format json` where the boot's time went.
    analyze: bool,
}

/// One boot stage or service as `berth analyze --format json` reports it (seconds since the
/// kernel started). Read here by field name; `berth analyze` is being written on another
/// branch, so the bench keeps its own copy of the shape until a shared type exists.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
struct Stage {
    name: String,
    kind: String,
    start: f64,
    ready: f64,
}

/// A stage as `berth analyze` has it: `ready` is null for a service that failed or was still
/// starting when it was asked.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct AnalyzedStage {
    name: String,
    kind: String,
    start: f64,
    ready: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct AnalyzeReport {
    stages: Vec<AnalyzedStage>,
    user_docker_ready: Option<f64>,
}

/// Where Berth's time goes: the longest stages, or why they are unknown.
#[derive(Debug, Clone, PartialEq)]
enum Analysis {
    Longest {
        stages: Vec<Stage>,
        user_docker_ready: Option<f64>,
    },
    Unavailable(String),
}

const LONGEST_STAGES: usize = 5;

impl Analysis {
    /// From `berth analyze --format json`'s exit status, stdout and stderr.
    fn from_output(success: bool, stdout: &str, stderr: &str) -> Self {
        if !success {
            let why = stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            return Self::Unavailable(format!(
                "`berth analyze --format json` failed on the machine (not in this image yet?): {}",
                why.trim()
            ));
        }
        match serde_json::from_str::<AnalyzeReport>(stdout) {
            Ok(report) => {
                // Only what finished has a length.
                let mut stages: Vec<Stage> = report
                    .stages
                    .into_iter()
                    .filter_map(|s| {
                        Some(Stage {
                            ready: s.ready?,
                            name: s.name,
                            kind: s.kind,
                            start: s.start,
                        })
                    })
                    .collect();
                stages.sort_by(|a, b| (b.ready - b.start).total_cmp(&(a.ready - a.start)));
                stages.truncate(LONGEST_STAGES);
                Self::Longest {
                    stages,
                    user_docker_ready: report.user_docker_ready,
                }
            }
            Err(e) => Self::Unavailable(format!(
                "`berth analyze --format json` printed what the bench cannot read: {e}"
            )),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Longest {
                stages,
                user_docker_ready,
            } => json!({
                "longest_stages": stages.iter().map(|s| json!({
                    "name": s.name, "kind": s.kind, "start": s.start, "ready": s.ready,
                    "seconds": secs(Some(s.ready - s.start)),
                })).collect::<Vec<_>>(),
                "user_docker_ready": user_docker_ready,
            }),
            Self::Unavailable(note) => json!({ "longest_stages": null, "note": note }),
        }
    }
}

/// MemTotal − MemAvailable in MiB from `/proc/meminfo`'s text.
fn used_mib(meminfo: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("MemTotal:")? - field("MemAvailable:")?) / 1024.0)
}

/// Counts the machine's processes (the console shares the host's PID namespace). Prints
/// `/proc/meminfo`, a separator line and the count.
const IDLE_PROBE: &str = "cat /proc/meminfo; echo ---; ls -d /proc/[0-9]* | wc -l";

/// (idle memory used MiB, processes) from [`IDLE_PROBE`]'s output.
fn idle_figures(out: &str) -> (Option<f64>, Option<u32>) {
    let (meminfo, count) = out.split_once("---").unwrap_or((out, ""));
    (used_mib(meminfo), count.trim().parse().ok())
}

enum Kind<'a> {
    /// Kernel + initrd, optionally with a state disk.
    Kernel(Option<&'a Path>),
}

#[allow(clippy::too_many_arguments)]
fn berth_boot(
    a: &build::Artifacts,
    dir: &Path,
    key: &Path,
    public: &str,
    memory: u32,
    kind: Kind<'_>,
    extras: Extras,
    name: &str,
) -> Result<BerthRun> {
    let mut vm = match kind {
        // The key goes on the kernel command line: no datasource is present, so the run also
        // shows what probing for absent datasources costs. rootfstype=ramfs as `cargo xtask
        // run` and the e2e tests boot (docs/quickstart.md): in the default tmpfs the kernel
        // cannot unpack the full initrd below about 400 MiB.
        Kind::Kernel(state) => {
            let mut vm = Vm::new(Boot::Kernel {
                vmlinuz: a.vmlinuz.clone(),
                initrd: a.initrd.clone(),
                append: format!(
                    "console=ttyS0,115200n8 panic=10 rootfstype=ramfs cc.ssh_authorized_keys=\"{public}\""
                ),
            });
            vm.disks.extend(state.map(Path::to_path_buf));
            vm
        }
    };
    vm.memory_mib = memory;
    let m = Machine::start(name, vm, dir, key)?;
    let limit = Duration::from_secs(300);
    let mut ssh = None;
    let mut system_docker = None;
    let deadline = Instant::now() + limit;
    // Poll the console and the ssh banner together.
    while Instant::now() < deadline && (ssh.is_none() || system_docker.is_none()) {
        let t = m.started.elapsed().as_secs_f64();
        if system_docker.is_none() && m.console().contains("System Docker is ready") {
            system_docker = Some(t);
        }
        if ssh.is_none() && m.ssh_banner() {
            ssh = Some(t);
        }
        if m.exited()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let user_docker = when_console(&m, "User Docker is ready", limit);
    let mut idle_used_mib = None;
    let mut processes = None;
    let mut cloud_init_ms = None;
    let mut analyze = None;
    if extras.analyze && user_docker.is_some() {
        m.wait_ssh(Duration::from_secs(120))?;
        let out = m.ssh("berth analyze --format json")?;
        analyze = Some(Analysis::from_output(
            out.status.success(),
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    if let (Some(wait), Some(ready)) = (extras.idle, user_docker) {
        (idle_used_mib, processes) = measure_idle(&m, wait, ready)?;
        let report = m.run("cat /run/berth/cloud-init.json").unwrap_or_default();
        cloud_init_ms = serde_json::from_str::<serde_json::Value>(&report)
            .ok()
            .and_then(|r| r["duration_ms"].as_f64());
    }
    finish(&m, name, user_docker.is_some())?;
    Ok(BerthRun {
        system_docker,
        ssh,
        user_docker,
        idle_used_mib,
        processes,
        cloud_init_ms,
        analyze,
    })
}

/// Idle memory used and processes, `wait` seconds after the engine was ready at `ready`.
fn measure_idle(m: &Machine, wait: u64, ready: f64) -> Result<(Option<f64>, Option<u32>)> {
    let since = m.started.elapsed().as_secs_f64() - ready;
    std::thread::sleep(Duration::from_secs_f64((wait as f64 - since).max(0.0)));
    m.wait_ssh(Duration::from_secs(120))?;
    Ok(idle_figures(&m.run(IDLE_PROBE)?))
}

/// Stop on a console showing a panic or oops; power a machine that came up off cleanly, so
/// that its disk (Berth's state disk, the Debian reference's root) is consistent next time.
fn finish(m: &Machine, name: &str, came_up: bool) -> Result<()> {
    let problems = berth_e2e::console_problems(&m.console());
    if !problems.is_empty() {
        bail!("boot {name} showed problems on the console: {problems:?}");
    }
    if came_up {
        let _ = m.ssh("sudo poweroff");
        let _ = m.wait_exit(Duration::from_secs(120));
    }
    Ok(())
}

/// The floor: kernel + a busybox initramfs that mounts what dockerd needs and starts it.
fn floor_initrd(a: &build::Artifacts, work: &Path) -> Result<PathBuf> {
    let root = work.join("floor-initramfs");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    let os_tree = work.join("os-tree");
    if !os_tree.join("usr/lib/berth/engine/bin/dockerd").exists() {
        bail!("{} is missing: run `cargo xtask build` first", os_tree.display());
    }
    tree::skeleton(&root)?;
    for dir in ["usr/lib/berth", "usr/lib/x86_64-linux-gnu", "usr/lib64"] {
        std::fs::create_dir_all(root.join(dir))?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(os_tree.join(dir).join("."))
            .arg(root.join(dir))
            .status()?;
        if !status.success() {
            bail!("copying {dir} for the floor initramfs failed");
        }
    }
    std::fs::copy(os_tree.join("usr/bin/busybox"), root.join("usr/bin/busybox")).context("busybox")?;
    std::fs::copy(os_tree.join("usr/bin/berth"), root.join("usr/bin/berth"))?;
    for applet in ["sh", "mount", "mkdir", "echo", "cat", "sleep"] {
        tree::symlink(&root, &format!("/usr/bin/{applet}"), "busybox")?;
    }
    tree::symlink(&root, "/usr/sbin/modprobe", "../bin/berth")?;
    let kernel = build::kernel_from_dir(&work.join("kernel"))?;
    crate::kernel::install_modules(&kernel, &root, &["overlay"])?;
    tree::write_file(
        &root,
        "/init",
        "#!/bin/sh\n\
         # Berth's boot benchmark floor: only what dockerd needs, then dockerd.\n\
         export PATH=/usr/lib/berth/engine/bin:/usr/sbin:/usr/bin\n\
         mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev\n\
         mount -t tmpfs tmpfs /run; mkdir -p /sys/fs/cgroup; mount -t cgroup2 cgroup2 /sys/fs/cgroup\n\
         /usr/sbin/modprobe overlay\n\
         DOCKER_RAMDISK=true dockerd --host unix:///run/docker.sock --bridge=none --iptables=false \\\n\
           --ip6tables=false --userland-proxy=false >/dev/null 2>&1 &\n\
         until docker -H unix:///run/docker.sock info >/dev/null 2>&1; do sleep 0.1; done\n\
         echo FLOOR-DOCKER-READY > /dev/console\n\
         # Idle figures after bench.idle=SECONDS (from the kernel command line), as Berth's.\n\
         IDLE=\n\
         for w in $(cat /proc/cmdline); do case $w in bench.idle=*) IDLE=${w#bench.idle=};; esac; done\n\
         if [ -n \"$IDLE\" ]; then\n\
           sleep $IDLE\n\
           while read k v u; do case $k in MemTotal:|MemAvailable:) echo \"FLOOR-MEM $k $v\";; esac; done < /proc/meminfo > /dev/console\n\
           set -- /proc/[0-9]*; echo \"FLOOR-PROCESSES $#\" > /dev/console\n\
         fi\n\
         exec sleep 100000\n",
        0o755,
    )?;
    let dest = work.join("floor-initrd.img");
    initramfs::write_compressed(&root, &[initramfs::CONSOLE], &dest)?;
    let _ = a;
    Ok(dest)
}

fn secs(t: Option<f64>) -> Option<f64> {
    t.map(|t| (t * 10.0).round() / 10.0)
}

/// (idle memory used MiB, processes) from the floor's console lines.
fn floor_idle(console: &str) -> (Option<f64>, Option<u32>) {
    let meminfo: String = console
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FLOOR-MEM "))
        .map(|l| format!("{l}\n"))
        .collect();
    let processes = console
        .lines()
        .find_map(|l| l.trim().strip_prefix("FLOOR-PROCESSES "))
        .and_then(|n| n.trim().parse().ok());
    (used_mib(&meminfo), processes)
}

struct FloorRun {
    docker: Option<f64>,
    idle_used_mib: Option<f64>,
    processes: Option<u32>,
}

fn floor_boot(
    a: &build::Artifacts,
    floor: &Path,
    dir: &Path,
    key: &Path,
    memory: u32,
    idle: Option<u64>,
    name: &str,
) -> Result<FloorRun> {
    let idle_arg = idle.map(|s| format!(" bench.idle={s}")).unwrap_or_default();
    let mut vm = Vm::new(Boot::Kernel {
        vmlinuz: a.vmlinuz.clone(),
        initrd: floor.to_path_buf(),
        append: format!("console=ttyS0,115200n8 panic=10 quiet{idle_arg}"),
    });
    vm.memory_mib = memory;
    let m = Machine::start(name, vm, dir, key)?;
    let docker = when_console(&m, "FLOOR-DOCKER-READY", Duration::from_secs(300));
    let (mut idle_used_mib, mut processes) = (None, None);
    if let (Some(wait), Some(_)) = (idle, docker) {
        when_console(&m, "FLOOR-PROCESSES", Duration::from_secs(wait + 60));
        (idle_used_mib, processes) = floor_idle(&m.console());
    }
    Ok(FloorRun {
        docker,
        idle_used_mib,
        processes,
    })
}

struct DebianRun {
    ssh: Option<f64>,
    docker: Option<f64>,
    idle_used_mib: Option<f64>,
    processes: Option<u32>,
}

/// One boot of the Debian reference: its kernel and initrd, root on the first virtio disk.
/// Engine ready is when `docker info` first answers, polled inside one ssh session.
fn debian_boot(
    r: &debian_ref::DebianRef,
    dir: &Path,
    key: &Path,
    memory: u32,
    idle: Option<u64>,
    name: &str,
) -> Result<DebianRun> {
    let mut vm = Vm::new(Boot::Kernel {
        vmlinuz: r.vmlinuz.clone(),
        initrd: r.initrd.clone(),
        append: "console=ttyS0,115200n8 panic=10 root=/dev/vda rw".into(),
    });
    vm.memory_mib = memory;
    vm.disks.push(r.disk.clone());
    let m = Machine::start(name, vm, dir, key)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut ssh = None;
    while Instant::now() < deadline && ssh.is_none() {
        if m.ssh_banner() {
            ssh = Some(m.started.elapsed().as_secs_f64());
        } else if m.exited()?.is_some() {
            break;
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut docker = None;
    while ssh.is_some() && Instant::now() < deadline && docker.is_none() {
        // Polled in the guest: one ssh login, not one per try.
        let out = m.ssh("timeout 300 sh -c 'until docker info >/dev/null 2>&1; do sleep 0.2; done'")?;
        if out.status.success() {
            docker = Some(m.started.elapsed().as_secs_f64());
        } else if m.exited()?.is_some() {
            break;
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let (mut idle_used_mib, mut processes) = (None, None);
    if let (Some(wait), Some(ready)) = (idle, docker) {
        (idle_used_mib, processes) = measure_idle(&m, wait, ready)?;
    }
    finish(&m, name, docker.is_some())?;
    Ok(DebianRun {
        ssh,
        docker,
        idle_used_mib,
        processes,
    })
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 100.0).round() / 100.0),
        _ => None,
    }
}

fn cell(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{v}{unit}")).unwrap_or_else(|| "-".into())
}

/// The table printed for people: one line per system.
fn table(systems: &[SystemFigures]) -> String {
    let mut out = format!(
        "{:<28} {:>7} {:>13} {:>10} {:>12} {:>10} {:>10}\n",
        "system", "memory", "engine ready", "ssh ready", "idle used", "processes", "image"
    );
    for s in systems {
        out.push_str(&format!(
            "{:<28} {:>7} {:>13} {:>10} {:>12} {:>10} {:>10}\n",
            s.name,
            format!("{} MiB", s.memory_mib),
            cell(s.engine_ready, " s"),
            cell(s.ssh_ready, " s"),
            cell(s.idle_memory_used_mib, " MiB"),
            s.processes.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            cell(s.image_mib, " MiB"),
        ));
    }
    out
}

fn chart_subtitle(date: &str, runs: usize, idle_after: u64) -> String {
    format!(
        "{} UTC · QEMU TCG (no KVM), 2 vCPUs, q35 · median of {runs} run(s) · idle memory {idle_after} s after engine ready",
        date.get(..16).unwrap_or(date).replace('T', " ")
    )
}

/// `cargo xtask bench chart`: the chart of the last run's `bench.json`.
fn redraw_chart() -> Result<()> {
    let path = layout::out_dir().join("bench.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run `cargo xtask bench boot` first)", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let systems: Vec<SystemFigures> = serde_json::from_value(json["systems"].clone())
        .with_context(|| format!("{} has no readable `systems`", path.display()))?;
    let subtitle = chart_subtitle(
        json["date"].as_str().unwrap_or_default(),
        json["runs"].as_u64().unwrap_or_default() as usize,
        json["idle_after_seconds"].as_u64().unwrap_or(60),
    );
    let chart = layout::out_dir().join("bench/boot.svg");
    if let Some(dir) = chart.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&chart, bench_chart::svg(&systems, &subtitle))?;
    println!("{}", chart.display());
    Ok(())
}

fn boot(runs: usize, memory: u32, small_memory: u32, low_memory: u32, idle_after: u64) -> Result<()> {
    crate::host::ensure(&[
        crate::host::Purpose::Build,
        crate::host::Purpose::Boot,
        crate::host::Purpose::Bench,
    ])?;
    let a = build::run(&build::BuildArgs::default())?;
    let work = layout::work_dir();
    let dir = layout::out_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let (key, public) = qemu::ssh_key(&dir)?;
    let floor = floor_initrd(&a, &work)?;
    let debian = debian_ref::ensure(&dir, &public)?;
    let last = runs.saturating_sub(1);
    let idle_on = |n: usize| (n == last).then_some(idle_after);

    // Timed boots from RAM (kernel + initrd, no disk); the last one also measures idle
    // memory and asks `berth analyze` where the time went.
    let mut berth = Vec::new();
    for n in 0..runs {
        let extras = Extras {
            idle: idle_on(n),
            analyze: n == last,
        };
        let r = berth_boot(
            &a,
            &dir,
            &key,
            &public,
            memory,
            Kind::Kernel(None),
            extras,
            &format!("berth-{memory}-{n}"),
        )?;
        eprintln!(
            "berth run {}: System Docker {:?}s, ssh {:?}s, User Docker {:?}s",
            n + 1,
            secs(r.system_docker),
            secs(r.ssh),
            secs(r.user_docker)
        );
        berth.push(r);
    }
    let floor_memory = memory.max(1024);
    let mut floor_runs = Vec::new();
    for n in 0..runs {
        let r = floor_boot(
            &a,
            &floor,
            &dir,
            &key,
            floor_memory,
            idle_on(n),
            &format!("floor-{n}"),
        )?;
        eprintln!("floor run {}: docker info {:?}s", n + 1, secs(r.docker));
        floor_runs.push(r);
    }
    let mut debian_runs = Vec::new();
    for n in 0..runs {
        let r = debian_boot(&debian, &dir, &key, memory, idle_on(n), &format!("debian-{n}"))?;
        eprintln!(
            "debian run {}: ssh {:?}s, docker info {:?}s",
            n + 1,
            secs(r.ssh),
            secs(r.docker)
        );
        debian_runs.push(r);
    }
    // An installed machine: a state disk that already holds the images (second boot).
    let disk = dir.join("state.img");
    let _ = std::fs::remove_file(&disk);
    qemu::make_ext4_disk(&disk, 4096, "BERTH_STATE")?;
    berth_boot(
        &a,
        &dir,
        &key,
        &public,
        memory,
        Kind::Kernel(Some(&disk)),
        Extras::default(),
        "state-first",
    )?;
    let installed = berth_boot(
        &a,
        &dir,
        &key,
        &public,
        memory,
        Kind::Kernel(Some(&disk)),
        Extras {
            idle: Some(idle_after),
            analyze: false,
        },
        "state-second",
    )?;
    eprintln!(
        "with a state disk (second boot): User Docker {:?}s",
        secs(installed.user_docker)
    );
    // The same installed machine at small memory: what it uses when idle, the initramfs's
    // images served from the state disk (their RAM freed).
    let small_state = berth_boot(
        &a,
        &dir,
        &key,
        &public,
        small_memory,
        Kind::Kernel(Some(&disk)),
        Extras {
            idle: Some(idle_after),
            analyze: false,
        },
        &format!("state-{small_memory}"),
    )?;
    let _ = std::fs::remove_file(&disk);
    eprintln!(
        "{small_memory} MiB with a state disk: User Docker {:?}s, idle {:?} MiB used",
        secs(small_state.user_docker),
        small_state.idle_used_mib.map(|m| m.round())
    );
    // Small memory: does it come up, and what does it use when idle?
    let small = berth_boot(
        &a,
        &dir,
        &key,
        &public,
        small_memory,
        Kind::Kernel(None),
        Extras {
            idle: Some(idle_after),
            analyze: false,
        },
        &format!("berth-{small_memory}"),
    )?;
    eprintln!(
        "{small_memory} MiB: User Docker {:?}s, idle {:?} MiB used",
        secs(small.user_docker),
        small.idle_used_mib.map(|m| m.round())
    );
    // Low memory: the full kernel + initrd, from RAM (the initramfs alone holds 125 MiB).
    let low = if low_memory > 0 {
        let r = berth_boot(
            &a,
            &dir,
            &key,
            &public,
            low_memory,
            Kind::Kernel(None),
            Extras::default(),
            &format!("berth-{low_memory}"),
        );
        let t = match r {
            Ok(r) => r.user_docker,
            Err(e) => {
                eprintln!("{low_memory} MiB from RAM: {e:#}");
                None
            }
        };
        eprintln!("{low_memory} MiB from RAM: User Docker {:?}s", secs(t));
        Some((low_memory, t))
    } else {
        None
    };

    let pick = |f: &dyn Fn(&BerthRun) -> Option<f64>| median(berth.iter().filter_map(f).collect());
    let user_docker = pick(&|r| r.user_docker);
    let floor_times: Vec<f64> = floor_runs.iter().filter_map(|r| r.docker).collect();
    let floor_median = median(floor_times.clone());
    let debian_times: Vec<f64> = debian_runs.iter().filter_map(|r| r.docker).collect();
    let debian_median = median(debian_times.clone());
    let debian_ssh = median(debian_runs.iter().filter_map(|r| r.ssh).collect());
    let mib = |b: u64| (b as f64 / 1048576.0 * 10.0).round() / 10.0;
    let berth_last = berth.last();
    let floor_last = floor_runs.last();
    let debian_last = debian_runs.last();
    let kernel_and_initrd = mib(size(&a.vmlinuz) + size(&a.initrd));
    let systems = vec![
        SystemFigures {
            name: "Berth from RAM".into(),
            memory_mib: memory,
            engine_ready: secs(user_docker),
            ssh_ready: secs(pick(&|r| r.ssh)),
            idle_memory_used_mib: berth_last.and_then(|r| r.idle_used_mib).map(f64::round),
            processes: berth_last.and_then(|r| r.processes),
            image_mib: Some(kernel_and_initrd),
        },
        SystemFigures {
            name: "Berth, state disk".into(),
            memory_mib: memory,
            engine_ready: secs(installed.user_docker),
            ssh_ready: secs(installed.ssh),
            idle_memory_used_mib: installed.idle_used_mib.map(f64::round),
            processes: installed.processes,
            image_mib: Some(kernel_and_initrd),
        },
        SystemFigures {
            name: "floor (one dockerd)".into(),
            memory_mib: floor_memory,
            engine_ready: secs(floor_median),
            ssh_ready: None,
            idle_memory_used_mib: floor_last.and_then(|r| r.idle_used_mib).map(f64::round),
            processes: floor_last.and_then(|r| r.processes),
            image_mib: Some(mib(size(&a.vmlinuz) + size(&floor))),
        },
        SystemFigures {
            name: "Debian + systemd".into(),
            memory_mib: memory,
            engine_ready: secs(debian_median),
            ssh_ready: secs(debian_ssh),
            idle_memory_used_mib: debian_last.and_then(|r| r.idle_used_mib).map(f64::round),
            processes: debian_last.and_then(|r| r.processes),
            image_mib: Some(mib(debian.disk_bytes())),
        },
        SystemFigures {
            name: "Berth from RAM".into(),
            memory_mib: small_memory,
            engine_ready: secs(small.user_docker),
            ssh_ready: secs(small.ssh),
            idle_memory_used_mib: small.idle_used_mib.map(f64::round),
            processes: small.processes,
            image_mib: Some(kernel_and_initrd),
        },
        SystemFigures {
            name: "Berth, state disk".into(),
            memory_mib: small_memory,
            engine_ready: secs(small_state.user_docker),
            ssh_ready: secs(small_state.ssh),
            idle_memory_used_mib: small_state.idle_used_mib.map(f64::round),
            processes: small_state.processes,
            image_mib: Some(kernel_and_initrd),
        },
    ];
    let date = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let chart = dir.join("boot.svg");
    std::fs::write(
        &chart,
        bench_chart::svg(&systems, &chart_subtitle(&date, runs, idle_after)),
    )?;
    let analysis = berth_last
        .and_then(|r| r.analyze.clone())
        .unwrap_or_else(|| Analysis::Unavailable("the last boot from RAM never reached User Docker".into()));
    let result = json!({
        "date": date,
        // The benchmark's machines never ask for KVM: figures stay comparable between hosts.
        "accelerator": "tcg",
        "runs": runs,
        "idle_after_seconds": idle_after,
        "sizes_mib": {
            "iso": mib(size(&a.iso)),
            "initrd": mib(size(&a.initrd)),
            "initrd_slim": mib(size(&a.slim_initrd)),
            "kernel": mib(size(&a.vmlinuz)),
            "os_image": mib(size(&a.os_img)),
            "system_images": mib(size(&a.images_img)),
            "debian_reference_disk": mib(debian.disk_bytes()),
        },
        "from_ram_seconds": {
            "memory_mib": memory,
            "system_docker_ready": secs(pick(&|r| r.system_docker)),
            "ssh_ready": secs(pick(&|r| r.ssh)),
            "user_docker_ready": secs(user_docker),
            "all_user_docker_ready": berth.iter().map(|r| secs(r.user_docker)).collect::<Vec<_>>(),
        },
        "floor_seconds": {
            "memory_mib": floor_memory,
            "docker_ready": secs(floor_median),
            "all": floor_times.iter().map(|t| secs(Some(*t))).collect::<Vec<_>>(),
        },
        "debian_seconds": {
            "memory_mib": memory,
            "docker_ready": secs(debian_median),
            "ssh_ready": secs(debian_ssh),
            "all": debian_times.iter().map(|t| secs(Some(*t))).collect::<Vec<_>>(),
        },
        "ratio_user_docker_to_floor": ratio(user_docker, floor_median),
        "ratio_user_docker_to_floor_with_state_disk": ratio(installed.user_docker, floor_median),
        "ratio_user_docker_to_debian": ratio(user_docker, debian_median),
        "ratio_user_docker_to_debian_with_state_disk": ratio(installed.user_docker, debian_median),
        "with_state_disk_seconds": {
            "system_docker_ready": secs(installed.system_docker),
            "ssh_ready": secs(installed.ssh),
            "user_docker_ready": secs(installed.user_docker),
        },
        "small_memory": {
            "memory_mib": small_memory,
            "user_docker_ready": secs(small.user_docker),
            "idle_memory_used_mib": small.idle_used_mib.map(|m| m.round()),
            "processes": small.processes,
            "cloud_init_without_datasource_ms": small.cloud_init_ms,
            "with_state_disk": {
                "user_docker_ready": secs(small_state.user_docker),
                "idle_memory_used_mib": small_state.idle_used_mib.map(|m| m.round()),
                "processes": small_state.processes,
            },
        },
        "low_memory": low.map(|(m, t)| json!({"memory_mib": m, "user_docker_ready": secs(t)})),
        "systems": systems,
        "where_berth_time_goes": analysis.to_json(),
        "chart": chart.display().to_string(),
    });
    let path = layout::out_dir().join("bench.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&result)?)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    println!();
    print!("{}", table(&systems));
    println!(
        "User Docker / floor: {} from RAM, {} with a state disk; / Debian: {} from RAM, {} with a state disk",
        cell(ratio(user_docker, floor_median), " x"),
        cell(ratio(installed.user_docker, floor_median), " x"),
        cell(ratio(user_docker, debian_median), " x"),
        cell(ratio(installed.user_docker, debian_median), " x"),
    );
    match &analysis {
        Analysis::Longest { stages, .. } => {
            println!("Where Berth's time goes (from RAM), the {LONGEST_STAGES} longest stages:");
            for s in stages {
                println!(
                    "  {:<24} {:<8} {:>6.1} s  ({:.1} → {:.1})",
                    s.name,
                    s.kind,
                    s.ready - s.start,
                    s.start,
                    s.ready
                );
            }
        }
        Analysis::Unavailable(note) => println!("Where Berth's time goes: not known. Note: {note}"),
    }
    println!("written to {} and {}", path.display(), chart.display());
    Ok(())
}

/// Time a command `runs` times; returns (median ms, p95 ms).
fn time_command(runs: usize, make: &dyn Fn() -> Command) -> Result<(f64, f64)> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let out = make().output()?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((
        times[times.len() / 2],
        times[(times.len() * 95 / 100).min(times.len() - 1)],
    ))
}

fn config(runs: usize) -> Result<()> {
    let berth = build::build_berth(layout::version())?;
    let root = tempfile_dir()?;
    let share = root.join("usr/share/berth");
    std::fs::create_dir_all(&share)?;
    std::fs::copy(layout::os_dir().join("defaults.yml"), share.join("defaults.yml"))?;
    let conf = root.join("var/lib/berth/conf");
    std::fs::create_dir_all(conf.join("cloud-config.d"))?;
    // A typical machine: user-data from a datasource, a drop-in, a local change.
    std::fs::write(
        conf.join("user-data.yml"),
        "#cloud-config\nhostname: web-1\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0l9Nqg2Y6f8Z1 ops@example\n\
         write_files:\n  - path: /etc/motd\n    content: hello\nruncmd:\n  - [sh, -c, 'echo up']\n\
         berth:\n  docker:\n    registry_mirrors: [\"https://mirror.example\"]\n  sysctl:\n    vm.max_map_count: 262144\n",
    )?;
    std::fs::write(
        conf.join("cloud-config.d/10-net.yml"),
        "berth:\n  network:\n    dns:\n      nameservers: [10.0.0.2]\n",
    )?;
    std::fs::write(conf.join("cloud-config.yml"), "berth:\n  ssh:\n    port: 2222\n")?;
    let cmd = |args: &[&str]| {
        let mut c = Command::new(&berth);
        c.args(args)
            .arg("--root")
            .arg(&root)
            .args(["--cmdline", "console=ttyS0 berth.debug=false"]);
        c
    };
    let (get_median, get_p95) = time_command(runs, &|| cmd(&["config", "get", "berth.ssh.port"]))?;
    let (val_median, val_p95) = time_command(runs, &|| cmd(&["config", "validate"]))?;
    let result = json!({
        "runs": runs,
        "config_get_ms": {"median": get_median, "p95": get_p95},
        "config_validate_ms": {"median": val_median, "p95": val_p95},
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    let path = layout::out_dir().join("bench-config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&result)?)?;
    println!("written to {}", path.display());
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = layout::out_dir()
        .join("bench")
        .join(format!("config-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyze_keeps_the_five_longest_stages_and_a_missing_command_is_a_note() {
        let json = r#"{"stages":[
            {"name":"kernel","kind":"stage","start":0.0,"ready":1.9},
            {"name":"stage1","kind":"stage","start":1.9,"ready":4.0},
            {"name":"system-docker","kind":"stage","start":4.0,"ready":10.5},
            {"name":"network","kind":"service","start":10.5,"ready":11.0},
            {"name":"udev","kind":"service","start":10.5,"ready":13.5},
            {"name":"console","kind":"service","start":10.6,"ready":18.6},
            {"name":"docker","kind":"service","start":10.6,"ready":21.3},
            {"name":"ntp","kind":"service","start":5.0,"ready":null}],
            "user_docker_ready":21.3}"#;
        let Analysis::Longest {
            stages,
            user_docker_ready,
        } = Analysis::from_output(true, json, "")
        else {
            panic!("not read");
        };
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["docker", "console", "system-docker", "udev", "stage1"]);
        assert_eq!(user_docker_ready, Some(21.3));
        let missing = Analysis::from_output(false, "", "\nberth: unrecognized subcommand 'analyze'\n");
        let Analysis::Unavailable(note) = &missing else {
            panic!("{missing:?}");
        };
        assert!(note.contains("unrecognized subcommand 'analyze'"), "{note}");
        assert!(missing.to_json()["longest_stages"].is_null());
        assert!(matches!(
            Analysis::from_output(true, "not json", ""),
            Analysis::Unavailable(_)
        ));
    }

    #[test]
    fn idle_figures_come_from_meminfo_and_the_process_count() {
        let out = "MemTotal:        1000000 kB\nMemFree:  1 kB\nMemAvailable:     795200 kB\n---\n  87\n";
        assert_eq!(idle_figures(out), (Some(200.0), Some(87)));
        let console = "[ 9.1] x\nFLOOR-DOCKER-READY\r\nFLOOR-MEM MemTotal: 1000000\r\nFLOOR-MEM MemAvailable: 897600\r\nFLOOR-PROCESSES 31\r\n";
        assert_eq!(floor_idle(console), (Some(100.0), Some(31)));
        assert_eq!(floor_idle("FLOOR-DOCKER-READY\n"), (None, None));
    }

    #[test]
    fn the_table_shows_every_system_and_ratios_need_both_figures() {
        let system = |name: &str, engine: Option<f64>| SystemFigures {
            name: name.into(),
            memory_mib: 1024,
            engine_ready: engine,
            ssh_ready: None,
            idle_memory_used_mib: Some(150.0),
            processes: Some(40),
            image_mib: Some(126.5),
        };
        let text = table(&[
            system("Berth from RAM", Some(22.4)),
            system("floor (one dockerd)", Some(9.3)),
            system("Debian + systemd", None),
        ]);
        assert_eq!(text.lines().count(), 4, "{text}");
        for needle in [
            "Berth from RAM",
            "22.4 s",
            "floor (one dockerd)",
            "Debian + systemd",
            "150 MiB",
            "126.5 MiB",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        assert_eq!(ratio(Some(22.4), Some(9.3)), Some(2.41));
        assert_eq!(ratio(Some(22.4), None), None);
    }
}
