//! `berth status` (the machine at a glance) and `berth logs` (boot logs, syslog and a
//! service's output in one place).

use crate::service_cmd::{self, Format, ServiceState};
use berth_runtime::paths::{BOOT_LOG_DIR, SYSINIT_REPORT, SYSTEM_DOCKER_SOCKET, USER_DOCKER_SOCKET};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  berth logs               the system log (or the boot logs without one)\n  \
                        berth logs --boot        this boot's logs from /var/log/boot\n  \
                        sudo berth logs -f network   a service's output, followed"
)]
pub struct LogsArgs {
    /// A service of `berth service list`: print its output
    service: Option<String>,
    /// Print the boot logs (/var/log/boot/*.log)
    #[arg(long, conflicts_with = "service")]
    boot: bool,
    /// Keep printing new output
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines (of each file)
    #[arg(short = 'n', long, value_name = "N")]
    tail: Option<u64>,
}

/// The system log that the syslog service writes.
pub const SYSLOG: &str = "/var/log/syslog";

#[derive(Debug, Serialize)]
pub struct Engine {
    pub name: &'static str,
    pub socket: &'static str,
    pub version: Option<String>,
    pub running: Option<i64>,
    pub containers: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct StateDisk {
    /// The device (e.g. `/dev/vdb`), or `tmpfs` when the machine keeps nothing.
    pub device: String,
    pub fstype: String,
    pub persistent: bool,
    pub size_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: u64,
    /// MemTotal − MemAvailable.
    pub used_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub version: String,
    pub kernel: String,
    pub uptime_seconds: Option<f64>,
    /// Seconds after boot at which each engine first answered (from this boot's sysinit).
    pub system_docker_ready: Option<f64>,
    pub user_docker_ready: Option<f64>,
    pub engines: Vec<Engine>,
    pub services: Vec<ServiceState>,
    pub state_disk: Option<StateDisk>,
    pub memory: Option<Memory>,
    /// What the `swarm` service last reported (none when it has not written a report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm: Option<berth_services::swarm::SwarmReport>,
    /// This boot's errors and warnings (as the login banner shows them).
    pub problems: Vec<String>,
}

/// The state partition as a mountinfo text shows it: the mount at `/var` (the host's view) or
/// at `/var/lib/berth` (a container's bind of it).
pub fn state_disk(mountinfo: &str) -> Option<StateDisk> {
    let mut best: Option<(usize, StateDisk)> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = left.split(' ').nth(4) else {
            continue;
        };
        let point = berth_runtime::mountinfo::unescape(point);
        let rank = match point.as_str() {
            "/var/lib/berth" => 2,
            "/var" => 1,
            _ => continue,
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default().to_string();
        let source = berth_runtime::mountinfo::unescape(right.next().unwrap_or_default());
        let persistent = !matches!(fstype.as_str(), "tmpfs" | "ramfs" | "overlay");
        let disk = StateDisk {
            device: if persistent { source } else { fstype.clone() },
            fstype,
            persistent,
            size_bytes: None,
            used_bytes: None,
        };
        // The last mount on a point is the one in effect.
        if best.as_ref().is_none_or(|(r, _)| rank >= *r) {
            best = Some((rank, disk));
        }
    }
    best.map(|(_, d)| d)
}

/// MemTotal and MemAvailable of a `/proc/meminfo` text.
pub fn memory(meminfo: &str) -> Option<Memory> {
    let total = berth_runtime::meminfo::bytes(meminfo, "MemTotal")?;
    let available = berth_runtime::meminfo::bytes(meminfo, "MemAvailable")?;
    Some(Memory {
        total_bytes: total,
        available_bytes: available,
        used_bytes: total.saturating_sub(available),
    })
}

async fn engine(name: &'static str, socket: &'static str) -> Engine {
    let mut out = Engine {
        name,
        socket,
        version: None,
        running: None,
        containers: None,
        error: None,
    };
    match service_cmd::engine(socket) {
        Err(e) => out.error = Some(e),
        Ok(docker) => match docker.info().await {
            Ok(info) => {
                out.version = info.server_version;
                out.running = info.containers_running;
                out.containers = info.containers;
            }
            Err(e) => out.error = Some(e.to_string()),
        },
    }
    out
}

async fn gather() -> Status {
    let loaded = service_cmd::load_with_catalog();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let report: Option<serde_json::Value> = std::fs::read(SYSINIT_REPORT)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let ready = |key: &str| report.as_ref().and_then(|r| r[key].as_f64());
    let mut state_disk = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|t| state_disk(&t));
    if let Some(disk) = state_disk.as_mut() {
        for dir in ["/var/lib/berth", "/var"] {
            if let Ok(st) = nix::sys::statvfs::statvfs(dir) {
                let block = st.fragment_size();
                disk.size_bytes = Some(st.blocks() * block);
                disk.used_bytes = Some((st.blocks() - st.blocks_free()) * block);
                break;
            }
        }
    }
    let mut problems = berth_runtime::problems::read(Path::new("/"));
    problems.extend(crate::cli::cloud_init_problems());
    problems.dedup();
    Status {
        version: berth_boot::VERSION.to_string(),
        kernel,
        uptime_seconds: std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse().ok()),
        system_docker_ready: ready("system_docker_ready"),
        user_docker_ready: ready("user_docker_ready"),
        engines: vec![
            engine("System Docker", SYSTEM_DOCKER_SOCKET).await,
            engine("User Docker", USER_DOCKER_SOCKET).await,
        ],
        services: service_cmd::states(&loaded).await,
        state_disk,
        memory: std::fs::read_to_string(berth_runtime::meminfo::PATH)
            .ok()
            .and_then(|t| memory(&t)),
        swarm: berth_services::swarm::SwarmReport::read(Path::new(berth_services::swarm::REPORT)),
        problems,
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

/// The human screen of `berth status`.
pub fn render(s: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Berth {} (kernel {})", s.version, s.kernel);
    if let Some(up) = s.uptime_seconds {
        let up = up as u64;
        let _ = writeln!(
            out,
            "Up:            {}h {:02}m {:02}s",
            up / 3600,
            up / 60 % 60,
            up % 60
        );
    }
    let secs = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}s"));
    let _ = writeln!(
        out,
        "Boot:          System Docker ready at {}, User Docker ready at {}",
        secs(s.system_docker_ready),
        secs(s.user_docker_ready)
    );
    for e in &s.engines {
        let what = match (&e.error, &e.version) {
            (Some(err), _) => format!("not reachable: {err}"),
            (None, v) => format!(
                "{}, {} of {} containers running",
                v.as_deref().unwrap_or("?"),
                e.running.unwrap_or(0),
                e.containers.unwrap_or(0)
            ),
        };
        let _ = writeln!(out, "{:<15}{what}", format!("{}:", e.name));
    }
    if let Some(swarm) = &s.swarm {
        let _ = writeln!(out, "Swarm:         {}", swarm.summary());
    }
    match &s.state_disk {
        Some(d) if d.persistent => {
            let usage = match (d.used_bytes, d.size_bytes) {
                (Some(u), Some(t)) => format!(", {} of {} used", mib(u), mib(t)),
                _ => String::new(),
            };
            let _ = writeln!(out, "State disk:    {} ({}){usage}", d.device, d.fstype);
        }
        _ => {
            let _ = writeln!(out, "State disk:    none (state in RAM, lost at shutdown)");
        }
    }
    if let Some(m) = &s.memory {
        let _ = writeln!(
            out,
            "Memory:        {} used of {} ({} available)",
            mib(m.used_bytes),
            mib(m.total_bytes),
            mib(m.available_bytes)
        );
    }
    let _ = writeln!(out, "\nServices:");
    for line in service_cmd::table(&s.services).lines() {
        let _ = writeln!(out, "  {line}");
    }
    if s.problems.is_empty() {
        let _ = writeln!(out, "\nNo errors or warnings this boot.");
    } else {
        let _ = writeln!(out, "\nThis boot's errors and warnings:");
        for p in &s.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

pub fn status_main(args: StatusArgs) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth status: {e}");
            return 1;
        }
    };
    let status = rt.block_on(gather());
    match args.format {
        Format::Json => match serde_json::to_string_pretty(&status) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("berth status: {e}");
                return 1;
            }
        },
        Format::Text => print!("{}", render(&status)),
    }
    0
}

/// The boot logs, in name order.
pub fn boot_logs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log") && p.is_file())
        .collect();
    files.sort();
    files
}

/// The last `n` lines of a text (all of it without `n`).
pub fn last_lines(text: &str, n: Option<u64>) -> &str {
    let Some(n) = n else { return text };
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut count = 0;
    for (i, b) in body.bytes().enumerate().rev() {
        if b == b'\n' {
            count += 1;
            if count == n {
                return &text[i + 1..];
            }
        }
    }
    if n == 0 { "" } else { text }
}

fn print_files(files: &[PathBuf], tail: Option<u64>, follow: bool) -> i32 {
    if files.is_empty() {
        eprintln!("berth logs: no log files in {BOOT_LOG_DIR}");
        return 1;
    }
    if follow {
        use std::os::unix::process::CommandExt;
        let err = std::process::Command::new("tail")
            .arg("-F")
            .arg(format!("--lines={}", tail.unwrap_or(10)))
            .args(files)
            .exec();
        eprintln!("berth logs: cannot run tail: {err}");
        return 1;
    }
    let mut status = 0;
    for (i, file) in files.iter().enumerate() {
        match std::fs::read(file) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                if files.len() > 1 {
                    if i > 0 {
                        println!();
                    }
                    println!("==> {} <==", file.display());
                }
                print!("{}", last_lines(&text, tail));
            }
            Err(e) => {
                eprintln!("berth logs: {}: {e}", file.display());
                status = 1;
            }
        }
    }
    status
}

pub fn logs_main(args: LogsArgs) -> i32 {
    if let Some(name) = args.service {
        let loaded = service_cmd::load_with_catalog();
        let socket = match service_cmd::find(&loaded, &name) {
            Ok(spec) => service_cmd::socket_of(spec),
            Err(e) => {
                eprintln!("berth logs: {e}");
                return 1;
            }
        };
        let result = runtime().and_then(|rt| {
            rt.block_on(async {
                let docker = service_cmd::engine(socket)?;
                service_cmd::print_logs(&docker, &name, args.follow, args.tail, false).await
            })
        });
        return match result {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth logs: {e}");
                1
            }
        };
    }
    if !args.boot && Path::new(SYSLOG).is_file() {
        return print_files(&[PathBuf::from(SYSLOG)], args.tail, args.follow);
    }
    print_files(&boot_logs(Path::new(BOOT_LOG_DIR)), args.tail, args.follow)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: &str = "\
22 1 0:20 / / rw - rootfs rootfs rw
30 22 0:25 / /var rw,relatime - tmpfs tmpfs rw,mode=755
";

    #[test]
    fn the_state_disk_is_the_mount_at_var_or_its_bind_at_var_lib_berth() {
        let ram = state_disk(RAM).unwrap();
        assert_eq!((ram.device.as_str(), ram.persistent), ("tmpfs", false));
        let host = format!("{RAM}41 30 254:16 / /var rw,relatime - ext4 /dev/vdb rw\n");
        let disk = state_disk(&host).unwrap();
        assert_eq!(
            (disk.device.as_str(), disk.fstype.as_str(), disk.persistent),
            ("/dev/vdb", "ext4", true)
        );
        // In the console: its own /var is the container's, the bind of /var/lib/berth tells.
        let console = "\
500 400 0:60 / / rw - overlay overlay rw,lowerdir=/x
510 500 0:61 / /var rw - tmpfs tmpfs rw
520 510 254:16 /lib/berth /var/lib/berth rw - ext4 /dev/vdb rw
";
        assert_eq!(state_disk(console).unwrap().device, "/dev/vdb");
        assert_eq!(state_disk("1 0 0:1 / / rw - rootfs rootfs rw\n"), None);
    }

    #[test]
    fn memory_used_is_total_minus_available() {
        let m = memory("MemTotal:  524288 kB\nMemFree: 1 kB\nMemAvailable:  262144 kB\n").unwrap();
        assert_eq!(m.used_bytes, 256 << 20);
        assert_eq!(memory("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", Some(2)), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", Some(2)), "b\nc");
        assert_eq!(last_lines("a\nb\n", Some(5)), "a\nb\n");
        assert_eq!(last_lines("a\nb\n", Some(0)), "");
        assert_eq!(last_lines("a\nb\n", None), "a\nb\n");
    }

    #[test]
    fn boot_logs_are_the_log_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["sysinit.log", "init.log", "notes.txt"] {
            std::fs::write(dir.path().join(f), "x\n").unwrap();
        }
        let names: Vec<String> = boot_logs(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["init.log", "sysinit.log"]);
    }

    #[test]
    fn the_status_screen_names_engines_disk_memory_services_and_problems() {
        let status = Status {
            version: "0.1.0".into(),
            kernel: "6.12".into(),
            uptime_seconds: Some(3725.0),
            system_docker_ready: Some(2.5),
            user_docker_ready: None,
            engines: vec![Engine {
                name: "User Docker",
                socket: USER_DOCKER_SOCKET,
                version: None,
                running: None,
                containers: None,
                error: Some("refused".into()),
            }],
            services: Vec::new(),
            state_disk: None,
            memory: memory("MemTotal: 1048576 kB\nMemAvailable: 524288 kB\n"),
            swarm: Some(berth_services::swarm::SwarmReport {
                state: berth_services::swarm::SwarmState::Error,
                role: Some("worker".into()),
                managers: vec!["198.18.0.10:2377".into()],
                error: Some("joining 198.18.0.10:2377: invalid join token".into()),
                ..Default::default()
            }),
            problems: vec!["cloud-init: x".into()],
        };
        let text = render(&status);
        for want in [
            "Up:            1h 02m 05s",
            "System Docker ready at 2.5s, User Docker ready at -",
            "User Docker:   not reachable: refused",
            "State disk:    none",
            "Memory:        512 MiB used of 1024 MiB",
            "Swarm:         error, worker, managers 198.18.0.10:2377: joining 198.18.0.10:2377: invalid join token",
            "  cloud-init: x",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
    }
}
