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
    /// List, start, stop and read the logs of the services (`ros service`)
    Service(crate::service_cmd::ServiceArgs),
    /// The machine at a glance: version, engines, services, state disk, memory, boot problems
    Status(crate::status_cmd::StatusArgs),
    /// Boot logs, the system log, or a service's output
    Logs(crate::status_cmd::LogsArgs),
    /// Where the boot's time went: each stage and service, longest first; --svg draws it
    Analyze(crate::analyze_cmd::AnalyzeArgs),
    /// List the consoles (default, debian) and switch between them (`ros console`)
    Console(crate::console_cmd::ConsoleArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "Example:\n  berth completion bash > /etc/bash_completion.d/berth")]
    Completion { shell: clap_complete::Shell },
    /// Show the network (links, addresses, routes, DNS, leases) or apply its configuration
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// Install this release on a disk, for BIOS and UEFI (`ros install`); see docs/install.md
    Install(crate::install_cmd::InstallArgs),
    /// The release slots of an installed disk: list, signed upgrade, rollback (`ros os`)
    Os {
        #[command(subcommand)]
        command: crate::os_cmd::OsCommand,
    },
    /// Certificates for User Docker's TLS on TCP 2376 (`ros tls`)
    Tls(crate::tls_cmd::TlsArgs),
    /// Docker Swarm: this node's membership, join tokens, leaving (see docs/fleet.md)
    Swarm {
        #[command(subcommand)]
        command: crate::swarm_cmd::SwarmCommand,
    },
    /// User Docker's engines: list them, switch to another (`ros engine`); see docs/engines.md
    Engine(crate::engine_cmd::EngineArgs),
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
    #[command(hide = true, name = "engine-unit")]
    EngineUnit {
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
        /// Read the engine's programs into the page cache while containerd starts
        #[arg(long)]
        prefetch: bool,
        /// dockerd's flags
        #[arg(last = true)]
        dockerd_args: Vec<String>,
    },
    /// The network service's entry point
    #[command(hide = true)]
    Netconf,
    /// The swarm service's entry point: init or join the swarm of berth.swarm, keep it joined
    #[command(hide = true, name = "swarm-agent")]
    SwarmAgent,
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

#[derive(Subcommand)]
enum NetworkCommand {
    /// Links (state, MAC, MTU, master, addresses), routes, DNS and DHCP leases
    Status {
        /// Output format
        #[arg(long, value_parser = ["text", "json"], default_value = "text")]
        format: String,
    },
    /// Apply berth.network now, without a reboot, and print what changed (needs sudo)
    Apply,
}

fn network(command: NetworkCommand) -> i32 {
    match command {
        NetworkCommand::Status { format } => berth_netconf::command::status_main(&format),
        NetworkCommand::Apply => {
            if !nix::unistd::geteuid().is_root() {
                eprintln!(
                    "berth network apply: changing the network needs root: run `sudo berth network apply`"
                );
                return 1;
            }
            berth_netconf::command::apply_main(&load_config())
        }
    }
}

pub fn load_config() -> Loaded {
    let cmdline = KernelCmdline::read().unwrap_or_else(|_| KernelCmdline::parse(""));
    berth_config::load(&ConfigPaths::system(), &cmdline)
}

/// Whether `berth` has the command `path` (e.g. `["engine", "list"]`), hidden ones included.
pub fn has_command(path: &[&str]) -> bool {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    for name in path {
        match cmd.find_subcommand(name) {
            Some(sub) => cmd = sub.clone(),
            None => return false,
        }
    }
    true
}

/// Parse `args` as a `berth` command line without running it (the `ros` translation's test).
#[cfg(test)]
pub fn parses(args: &[String]) -> Result<(), String> {
    Cli::try_parse_from(args).map(drop).map_err(|e| e.to_string())
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
        Command::Service(args) => crate::service_cmd::main(args),
        Command::Status(args) => crate::status_cmd::status_main(args),
        Command::Logs(args) => crate::status_cmd::logs_main(args),
        Command::Analyze(args) => crate::analyze_cmd::main(args),
        Command::Console(args) => crate::console_cmd::main(args),
        Command::Completion { shell } => {
            completion(shell, &mut std::io::stdout());
            0
        }
        Command::Network { command } => network(command),
        Command::Install(args) => crate::install_cmd::main(args),
        Command::Os { command } => crate::os_cmd::main(command),
        Command::Tls(args) => crate::tls_cmd::main(args),
        Command::Swarm { command } => crate::swarm_cmd::main(command),
        Command::SwarmAgent => crate::swarm_cmd::agent_main(),
        Command::Version { format } => version(&format),
        Command::Sysinit { after_engine_restart } => sysinit(after_engine_restart),
        Command::ConsoleInit => {
            let cmdline = KernelCmdline::read().unwrap_or_else(|_| KernelCmdline::parse(""));
            let loaded = berth_config::load(&ConfigPaths::system(), &cmdline);
            let mut problems = berth_runtime::problems::read(Path::new("/"));
            problems.extend(cloud_init_problems());
            problems.dedup();
            install_completion(Path::new("/"));
            berth_console::console_init(&loaded, &cmdline, &problems, berth_boot::VERSION)
        }
        Command::UserDocker => crate::engine_cmd::user_docker_main(),
        Command::Engine(args) => crate::engine_cmd::main(args),
        Command::EngineUnit {
            bin_dir,
            containerd_root,
            containerd_run,
            debug,
            prefetch,
            dockerd_args,
        } => {
            let pair = berth_services::engine_pair::EnginePair {
                bin_dir,
                containerd_root,
                containerd_run,
                dockerd_args,
                debug,
                prefetch,
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

/// Write the completion script of `berth` for `shell`.
pub fn completion(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    // The entry points of init and the services are hidden from --help; keep them out of
    // completion too (clap_complete would offer them).
    let full = Cli::command();
    let mut visible = clap::Command::new("berth")
        .version(berth_boot::VERSION)
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    clap_complete::generate(shell, &mut visible, "berth", out);
}

/// Where bash looks for `berth`'s completion (bash-completion loads it on first use).
const BASH_COMPLETION: &str = "usr/share/bash-completion/completions/berth";
/// Loads it in login shells when bash-completion is not installed.
const COMPLETION_PROFILE: &str = "etc/profile.d/berth-completion.sh";

/// Put `berth`'s bash completion in the console under `root`, so tab works out of the box.
pub fn install_completion(root: &Path) {
    let mut script = Vec::new();
    completion(clap_complete::Shell::Bash, &mut script);
    let profile = format!(
        "# Written by Berth's console: tab completion for the berth command.\n\
         if [ -n \"${{BASH_VERSION-}}\" ] && ! complete -p berth >/dev/null 2>&1; then\n  \
         . /{BASH_COMPLETION}\nfi\n"
    );
    for (path, text) in [
        (BASH_COMPLETION, script),
        (COMPLETION_PROFILE, profile.into_bytes()),
    ] {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("console-init: writing {}: {e}", path.display());
        }
    }
}

/// What this boot's cloud-init run found wrong, for the login banner.
pub(crate) fn cloud_init_problems() -> Vec<String> {
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
    // The slot GRUB booted on an installed disk (none on a live boot).
    let slot = KernelCmdline::read()
        .ok()
        .and_then(|cmdline| berth_boot::slot::booted(&cmdline));
    if format == "json" {
        let out = serde_json::json!({
            "version": berth_boot::VERSION,
            "kernel": kernel,
            "engine": release.get("engine").cloned().unwrap_or_default(),
            "slot": slot.map(|s| s.as_str()),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return 0;
    }
    println!("Berth {}", berth_boot::VERSION);
    if let Some(slot) = slot {
        println!("Slot: {slot} (installed disk; `berth os list` shows both)");
    }
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
    berth_runtime::timeline::record_into(Path::new(berth_runtime::timeline::BOOT_TIMELINE));
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
    resize_device(&loaded.config);
    let reload = move || {
        let again = load_config();
        // The user-data cloud-init just applied may name it (the first boot of a machine).
        resize_device(&again.config);
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

/// `berth.resize_device`: grow the disk's last partition and its filesystem (a no-op once
/// done); a failure is a boot problem that names the key, and the boot goes on.
fn resize_device(config: &berth_config::Config) {
    let Some(device) = &config.berth.resize_device else {
        return;
    };
    let resize2fs = berth_boot::resize_device::host_resize2fs();
    match berth_boot::resize_device::resize(device.as_str(), Path::new("/sys"), resize2fs) {
        Ok(done) => {
            if let Some(size) = done.filesystem_grown_to.or(done.partition_grown_to) {
                tracing::info!(
                    "{}: {} grown to {} MiB",
                    berth_boot::resize_device::KEY,
                    done.partition.display(),
                    size >> 20
                );
            }
        }
        Err(e) => berth_runtime::problems::report(Path::new("/"), &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The completion script bash loads knows every visible subcommand, and the profile
    /// snippet that loads it is valid sh that sources exactly that file.
    #[test]
    fn bash_completion_is_installed_for_every_subcommand() {
        let root = tempfile::tempdir().unwrap();
        install_completion(root.path());
        let script = std::fs::read_to_string(root.path().join(BASH_COMPLETION)).unwrap();
        for sub in ["config", "service", "status", "logs", "completion", "version"] {
            assert!(script.contains(sub), "{sub} missing from the completion script");
        }
        assert!(!script.contains("sysinit"), "hidden commands are not offered");
        let profile = root.path().join(COMPLETION_PROFILE);
        let text = std::fs::read_to_string(&profile).unwrap();
        assert!(text.contains(&format!(". /{BASH_COMPLETION}")), "{text}");
        let check = std::process::Command::new("sh")
            .arg("-n")
            .arg(&profile)
            .status()
            .unwrap();
        assert!(check.success(), "{text}");
    }
}
