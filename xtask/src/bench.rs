//! `cargo xtask bench`: figures, never pass/fail. `boot` measures sizes, the time from QEMU's
//! start to System Docker, ssh and User Docker being ready, and idle memory, as medians of
//! several boots, next to the *floor*: the same kernel with an initramfs that only starts the
//! same dockerd. `config` measures `berth config get` and `validate`.

use crate::{build, initramfs, layout, tree};
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
        /// Memory of the boot whose idle memory is measured (kernel + initrd)
        #[arg(long, default_value_t = 512)]
        small_memory: u32,
        /// Memory of one boot from the ISO (0: skip)
        #[arg(long, default_value_t = 384)]
        low_memory: u32,
        /// Seconds to wait after User Docker is ready before reading idle memory
        #[arg(long, default_value_t = 60)]
        idle_after: u64,
    },
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
    cloud_init_ms: Option<f64>,
}

enum Kind<'a> {
    /// Kernel + initrd, optionally with a state disk.
    Kernel(Option<&'a Path>),
    /// The ISO as a CD (its OS image stays on the CD).
    Iso,
}

#[allow(clippy::too_many_arguments)]
fn berth_boot(
    a: &build::Artifacts,
    dir: &Path,
    key: &Path,
    public: &str,
    memory: u32,
    kind: Kind<'_>,
    idle: Option<u64>,
    name: &str,
) -> Result<BerthRun> {
    let mut vm = match kind {
        // The key goes on the kernel command line: no datasource is present, so the run also
        // shows what probing for absent datasources costs.
        Kind::Kernel(state) => {
            let mut vm = Vm::new(Boot::Kernel {
                vmlinuz: a.vmlinuz.clone(),
                initrd: a.initrd.clone(),
                append: format!("console=ttyS0,115200n8 panic=10 cc.ssh_authorized_keys=\"{public}\""),
            });
            vm.disks.extend(state.map(Path::to_path_buf));
            vm
        }
        // The ISO's default entry has no place for a key: give it through NoCloud.
        Kind::Iso => {
            let mut vm = Vm::new(Boot::Cdrom(a.iso.clone()));
            let seed = dir.join(format!("{name}-cidata.iso"));
            qemu::make_cidata(
                &dir.join(format!("{name}-cidata")),
                &format!("#cloud-config\nssh_authorized_keys:\n  - {public}\n"),
                "instance-id: bench\n",
                &seed,
            )?;
            vm.cidata = Some(seed);
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
    let mut cloud_init_ms = None;
    if let (Some(wait), Some(_)) = (idle, user_docker) {
        std::thread::sleep(Duration::from_secs(wait));
        m.wait_ssh(Duration::from_secs(120))?;
        let meminfo = m.run("cat /proc/meminfo")?;
        let field = |name: &str| -> Option<f64> {
            meminfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        };
        if let (Some(total), Some(avail)) = (field("MemTotal:"), field("MemAvailable:")) {
            idle_used_mib = Some((total - avail) / 1024.0);
        }
        let report = m.run("cat /run/berth/cloud-init.json").unwrap_or_default();
        cloud_init_ms = serde_json::from_str::<serde_json::Value>(&report)
            .ok()
            .and_then(|r| r["duration_ms"].as_f64());
    }
    let problems = berth_e2e::console_problems(&m.console());
    if !problems.is_empty() {
        bail!("boot {name} showed problems on the console: {problems:?}");
    }
    if user_docker.is_some() {
        // A clean poweroff: a state disk must be consistent for the next boot.
        let _ = m.ssh("sudo poweroff");
        let _ = m.wait_exit(Duration::from_secs(120));
    }
    Ok(BerthRun {
        system_docker,
        ssh,
        user_docker,
        idle_used_mib,
        cloud_init_ms,
    })
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

fn boot(runs: usize, memory: u32, small_memory: u32, low_memory: u32, idle_after: u64) -> Result<()> {
    crate::host::ensure(&[crate::host::Purpose::Build, crate::host::Purpose::Boot])?;
    let a = build::run(&build::BuildArgs::default())?;
    let work = layout::work_dir();
    let dir = layout::out_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let (key, public) = qemu::ssh_key(&dir)?;
    let floor = floor_initrd(&a, &work)?;

    // Timed boots from RAM (kernel + initrd, no disk: the images load at every boot).
    let mut berth = Vec::new();
    for n in 0..runs {
        let r = berth_boot(
            &a,
            &dir,
            &key,
            &public,
            memory,
            Kind::Kernel(None),
            None,
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
    let mut floor_times = Vec::new();
    for n in 0..runs {
        let mut vm = Vm::new(Boot::Kernel {
            vmlinuz: a.vmlinuz.clone(),
            initrd: floor.clone(),
            append: "console=ttyS0,115200n8 panic=10 quiet".into(),
        });
        vm.memory_mib = memory.max(1024);
        let m = Machine::start(&format!("floor-{n}"), vm, &dir, &key)?;
        let t = when_console(&m, "FLOOR-DOCKER-READY", Duration::from_secs(300));
        eprintln!("floor run {}: docker info {:?}s", n + 1, secs(t));
        floor_times.extend(t);
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
        None,
        "state-first",
    )?;
    let installed = berth_boot(
        &a,
        &dir,
        &key,
        &public,
        memory,
        Kind::Kernel(Some(&disk)),
        None,
        "state-second",
    )?;
    eprintln!(
        "with a state disk (second boot): User Docker {:?}s",
        secs(installed.user_docker)
    );
    // Small memory: does it come up, and what does it use when idle?
    let small = berth_boot(
        &a,
        &dir,
        &key,
        &public,
        small_memory,
        Kind::Kernel(None),
        Some(idle_after),
        &format!("berth-{small_memory}"),
    )?;
    eprintln!(
        "{small_memory} MiB: User Docker {:?}s, idle {:?} MiB used",
        secs(small.user_docker),
        small.idle_used_mib.map(|m| m.round())
    );
    let low = if low_memory > 0 {
        let r = berth_boot(
            &a,
            &dir,
            &key,
            &public,
            low_memory,
            Kind::Iso,
            None,
            &format!("iso-{low_memory}"),
        );
        let t = match r {
            Ok(r) => r.user_docker,
            Err(e) => {
                eprintln!("{low_memory} MiB from the ISO: {e:#}");
                None
            }
        };
        eprintln!("{low_memory} MiB from the ISO: User Docker {:?}s", secs(t));
        Some((low_memory, t))
    } else {
        None
    };

    let pick = |f: &dyn Fn(&BerthRun) -> Option<f64>| median(berth.iter().filter_map(f).collect());
    let user_docker = pick(&|r| r.user_docker);
    let floor_median = median(floor_times.clone());
    let ratio = match (user_docker, floor_median) {
        (Some(b), Some(f)) if f > 0.0 => Some((b / f * 100.0).round() / 100.0),
        _ => None,
    };
    let mib = |b: u64| (b as f64 / 1048576.0 * 10.0).round() / 10.0;
    let result = json!({
        "date": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?,
        // The benchmark's machines never ask for KVM: figures stay comparable between hosts.
        "accelerator": "tcg",
        "runs": runs,
        "sizes_mib": {
            "iso": mib(size(&a.iso)),
            "initrd": mib(size(&a.initrd)),
            "initrd_slim": mib(size(&a.slim_initrd)),
            "kernel": mib(size(&a.vmlinuz)),
            "os_image": mib(size(&a.os_img)),
            "system_images": mib(size(&a.images_img)),
        },
        "from_ram_seconds": {
            "memory_mib": memory,
            "system_docker_ready": secs(pick(&|r| r.system_docker)),
            "ssh_ready": secs(pick(&|r| r.ssh)),
            "user_docker_ready": secs(user_docker),
            "all_user_docker_ready": berth.iter().map(|r| secs(r.user_docker)).collect::<Vec<_>>(),
        },
        "floor_seconds": {
            "memory_mib": memory.max(1024),
            "docker_ready": secs(floor_median),
            "all": floor_times.iter().map(|t| secs(Some(*t))).collect::<Vec<_>>(),
        },
        "ratio_user_docker_to_floor": ratio,
        "with_state_disk_seconds": {
            "system_docker_ready": secs(installed.system_docker),
            "ssh_ready": secs(installed.ssh),
            "user_docker_ready": secs(installed.user_docker),
        },
        "small_memory": {
            "memory_mib": small_memory,
            "user_docker_ready": secs(small.user_docker),
            "idle_memory_used_mib": small.idle_used_mib.map(|m| m.round()),
            "cloud_init_without_datasource_ms": small.cloud_init_ms,
        },
        "low_memory_iso": low.map(|(m, t)| json!({"memory_mib": m, "user_docker_ready": secs(t)})),
    });
    let path = layout::out_dir().join("bench.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&result)?)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    println!("written to {}", path.display());
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
