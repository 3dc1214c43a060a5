//! `berth`: one static binary for the whole OS. Dispatches on the name it was started under,
//! like busybox: `init` (PID 1), `modprobe`, `reboot`/`poweroff`/`halt`/`shutdown`,
//! `system-docker`, the dhcpcd hook, `ros` (RancherOS's spellings); under any other name it is the `berth` CLI.
#![forbid(unsafe_code)]

mod analyze_cmd;
mod cli;
mod config_cmd;
mod console_cmd;
mod engine_cmd;
mod fetch;
mod install_cmd;
mod os_cmd;
mod ros;
mod service_cmd;
mod status_cmd;
mod swarm_cmd;
mod tls_cmd;

use std::os::unix::process::CommandExt;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().map(String::as_str).unwrap_or("berth");
    let name = Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("berth");
    let rest = args.get(1..).unwrap_or_default();
    let code = match name {
        "init" => berth_boot::init_main(),
        "modprobe" => berth_kmod::modprobe_main(&args),
        "reboot" | "poweroff" | "halt" | "shutdown" => berth_boot::power::main(name, rest),
        "system-docker" => system_docker(rest),
        "ros" => ros::main(rest, &cli::has_command),
        "berth-dhcpcd-hook" => berth_netconf::hook_main(&cli::load_config()),
        _ => cli::main(&args),
    };
    std::process::exit(code);
}

/// `system-docker ...`: the docker CLI pointed at System Docker (root only, by the socket's mode).
fn system_docker(args: &[String]) -> i32 {
    let docker = ["/usr/lib/berth/engine/bin/docker", "/usr/bin/docker"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("docker");
    let err = std::process::Command::new(docker)
        .arg0("system-docker")
        .arg("--host")
        .arg(format!("unix://{}", berth_services::SYSTEM_SOCKET))
        .args(args)
        .exec();
    eprintln!("system-docker: cannot run {docker}: {err}");
    127
}
