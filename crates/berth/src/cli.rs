//! The `berth` command line.

use berth_config::{ConfigPaths, KernelCmdline, Loaded};
use clap::{Parser, Subcommand};
use std::path::Path;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Control a Berth machine: its configuration and its system services",
    long_about = "Berth runs every system service as a container of System Docker and your \
                  containers in User Docker.\n\n  docker         talks to User Docker (your containers)\n  \
                  sudo system-docker   talks to System Docker (the OS's services)\n  \
                  berth          this command: configuration and version"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read and change the configuration (cloud-config layers, kernel command line)
    Config(crate::config_cmd::ConfigArgs),
    /// Print the versions of Berth, its kernel and its engine
    Version {
        /// Output format
        #[arg(long, value_parser = ["text", "json"], default_value = "text")]
        format: String,
    },
    /// Bring the services up (started by init; not for interactive use)
    #[command(hide = true)]
    Sysinit {
        /// System Docker restarted: do not run one-shot services again
        #[arg(long)]
        after_engine_restart: bool,
    },
    /// Prepare the console container and supervise its gettys and sshd
    #[command(hide = true, name = "console-init")]
    ConsoleInit,
    /// The docker service's entry point: run User Docker
    #[command(hide = true, name = "user-docker")]
    UserDocker,
    /// Run an engine as one unit: its containerd, then dockerd pointed at it (PID 1 runs
    /// System Docker this way)
    #[command(hide = true)]
    Engine {
        /// Where containerd, dockerd and the shims are
        #[arg(long)]
        bin_dir: std::path::PathBuf,
        /// containerd's persistent root
        #[arg(long)]
        containerd_root: std::path::PathBuf,
        /// containerd's state, configuration and socket
        #[arg(long)]
        containerd_run: std::path::PathBuf,
        /// containerd logs at debug level
        #[arg(long)]
        debug: bool,
        /// dockerd's flags
        #[arg(last = true)]
        dockerd_args: Vec<String>,
    },
    /// The network service's entry point
    #[command(hide = true)]
    Netconf,
    /// The ntp service's entry point: chrony's servers from berth.ntp, then chronyd
    #[command(hide = true)]
    Ntp,
    /// The syslog service's entry point: forwarding from berth.syslog, /dev/log, then rsyslogd
    #[command(hide = true)]
    Syslog,
    /// The cloud-init service's entry point
    #[command(hide = true, name = "cloud-init")]
    CloudInit {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Runs the ordered shutdown when System Docker is PID 1
    #[command(hide = true, name = "shutdown-helper")]
    ShutdownHelper { action: String },
}

pub fn load_config() -> Loaded {
    let cmdline = KernelCmdline::read().unwrap_or_else(|_| KernelCmdline::parse(""));
    berth_config::load(&ConfigPaths::system(), &cmdline)
}

pub fn main(args: &[String]) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Command::Config(args) => crate::config_cmd::main(args),
        Command::Version { format } => version(&format),
        Command::Sysinit { after_engine_restart } => sysinit(after_engine_restart),
        Command::ConsoleInit => {
            let cmdline = KernelCmdline::read().unwrap_or_else(|_| KernelCmdline::parse(""));
            let loaded = berth_config::load(&ConfigPaths::system(), &cmdline);
            let mut problems = berth_runtime::problems::read(Path::new("/"));
            problems.extend(cloud_init_problems());
            problems.dedup();
            berth_console::console_init(&loaded, &cmdline, &problems, berth_boot::VERSION)
        }
        Command::UserDocker => berth_services::user_engine::main(&load_config()),
        Command::Engine {
            bin_dir,
            containerd_root,
            containerd_run,
            debug,
            dockerd_args,
        } => {
            let pair = berth_services::engine_pair::EnginePair {
                bin_dir,
                containerd_root,
                containerd_run,
                dockerd_args,
                debug,
            };
            berth_services::engine_pair::run(&pair, &|_| {})
        }
        Command::Netconf => berth_netconf::main(&load_config()),
        Command::Ntp => berth_services::daemons::ntp_main(&load_config()),
        Command::Syslog => berth_services::daemons::syslog_main(&load_config()),
        Command::CloudInit { args } => berth_cloudinit::main_cloud_init(&args),
        Command::ShutdownHelper { action } => {
            let loaded = load_config();
            let timeout = berth_boot::shutdown::effective_timeout(&loaded);
            berth_boot::power::helper_main(&action, timeout)
        }
    }
}

/// What this boot's cloud-init run found wrong, for the login banner.
fn cloud_init_problems() -> Vec<String> {
    let Ok(bytes) = std::fs::read("/run/berth/cloud-init.json") else {
        return vec!["cloud-init did not run (see `sudo system-docker logs cloud-init`)".into()];
    };
    let Ok(report) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if report.get("datasource").is_none() {
        let tried: Vec<&str> = report["probes"]
            .as_array()
            .map(|p| p.iter().filter_map(|x| x["datasource"].as_str()).collect())
            .unwrap_or_default();
        out.push(if report["offline"].get("saved_from").is_some() {
            format!(
                "cloud-init: no datasource answered ({}); using the configuration saved earlier",
                tried.join(", ")
            )
        } else {
            format!(
                "cloud-init: no datasource answered ({}); no user-data applied",
                tried.join(", ")
            )
        });
    }
    for d in report["diagnostics"].as_array().into_iter().flatten() {
        if d["severity"].as_str() == Some("error") {
            let mut place = d["source"].as_str().unwrap_or_default().to_string();
            for field in ["line", "column"] {
                if let Some(n) = d[field].as_u64() {
                    place.push_str(&format!(":{n}"));
                }
            }
            let key = d["key"].as_str().map(|k| format!("{k}: ")).unwrap_or_default();
            out.push(format!(
                "cloud-init: {place}: {key}{}",
                d["message"].as_str().unwrap_or_default()
            ));
        }
    }
    for item in report["items"].as_array().into_iter().flatten() {
        if item["status"].as_str() == Some("failed") {
            out.push(format!(
                "cloud-init: {}: {}",
                item["item"].as_str().unwrap_or_default(),
                item["detail"].as_str().unwrap_or_default()
            ));
        }
    }
    out
}

fn release() -> serde_json::Value {
    std::fs::read("/usr/share/berth/release.json")
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({}))
}

fn version(format: &str) -> i32 {
    let release = release();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    if format == "json" {
        let out = serde_json::json!({
            "version": berth_boot::VERSION,
            "kernel": kernel,
            "engine": release.get("engine").cloned().unwrap_or_default(),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return 0;
    }
    println!("Berth {}", berth_boot::VERSION);
    if !kernel.is_empty() {
        println!("Kernel: {kernel}");
    }
    if let Some(engine) = release.get("engine").and_then(|e| e.as_object()) {
        for (package, version) in engine {
            println!("{package}: {}", version.as_str().unwrap_or_default());
        }
    }
    0
}

fn sysinit(after_engine_restart: bool) -> i32 {
    let loaded = load_config();
    berth_runtime::log::init("sysinit", loaded.config.berth.debug);
    if let Err(e) = berth_runtime::log::attach_file(Path::new("/var/log/boot/sysinit.log")) {
        tracing::warn!("cannot write /var/log/boot/sysinit.log: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("sysinit: {e}");
            return 1;
        }
    };
    // write_files entries with `container: NAME` go into that container before it starts (the
    // console writes its own). The configuration is read again after cloud-init has run, so
    // the files follow the newest one.
    let current = Arc::new(std::sync::RwLock::new(Arc::new(loaded.config.clone())));
    let for_files = current.clone();
    let prestart: Arc<berth_services::up::Prestart> = Arc::new(move |name: &str| {
        if name == "console" {
            return None;
        }
        let config = for_files.read().ok()?.clone();
        let files = berth_cloudinit::files_for_container(&config, name);
        if files.is_empty() {
            return None;
        }
        match berth_cloudinit::write_files_tar(&files) {
            Ok(tar) => Some(tar),
            Err(e) => {
                berth_runtime::problems::report(Path::new("/"), &format!("write_files for {name}: {e}"));
                None
            }
        }
    });
    let reload = move || {
        let again = load_config();
        if let Ok(mut slot) = current.write() {
            *slot = Arc::new(again.config.clone());
        }
        again
    };
    let report = runtime.block_on(berth_services::sysinit::run(
        &loaded,
        !after_engine_restart,
        &reload,
        prestart,
        &|problem| berth_runtime::problems::report(Path::new("/"), problem),
    ));
    if let Err(e) = report.write(Path::new(berth_runtime::paths::SYSINIT_REPORT)) {
        tracing::error!("cannot write {}: {e}", berth_runtime::paths::SYSINIT_REPORT);
    }
    if report.errors.is_empty() { 0 } else { 1 }
}
