//! Stage 2, on the real root: the effective configuration, all kernel modules, hostname and
//! sysctls, then System Docker and the services, and PID 1's supervision loop.

use crate::background::Background;
use crate::{VERSION, oem, recovery, supervisor, system_docker, zram};
use berth_config::{ConfigPaths, KernelCmdline, Loaded, Severity};
use berth_runtime::{log, problems};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Set by stage 1 when it execs stage 2.
pub const STAGE_ENV: &str = "BERTH_INIT_STAGE";
/// The kernel runs this for request_module(): Berth's own modprobe.
const MODPROBE: &str = "/usr/sbin/modprobe";

pub fn run() -> ! {
    let result = std::panic::catch_unwind(|| {
        let cmdline = KernelCmdline::read().unwrap_or_else(|_| KernelCmdline::parse(""));
        // The kernel loads filesystem modules (the OEM partition's) through Berth's modprobe.
        let _ = std::fs::write("/proc/sys/kernel/modprobe", MODPROBE);
        let (oem, loaded) = mount_oem_and_load(&cmdline);
        log::init("init", loaded.config.berth.debug);
        berth_runtime::timeline::record_into(Path::new(berth_runtime::timeline::BOOT_TIMELINE));
        if let Err(e) = log::attach_file(Path::new("/var/log/boot/init.log")) {
            tracing::warn!("cannot write /var/log/boot/init.log: {e}");
        }
        tracing::info!("Berth {VERSION} init: stage 2 (real root)");
        match oem {
            Ok(Some(plan)) => tracing::info!(
                "OEM partition {} ({}) mounted read-only on {}",
                plan.device.path.display(),
                plan.fstype,
                oem::MOUNT_POINT
            ),
            Ok(None) => {}
            Err(e) => problems::report(Path::new("/"), &e),
        }
        report_config(&loaded);
        // Threads do not survive exec: with System Docker as PID 1, everything is done first.
        let exec = loaded.config.berth.system_docker.exec;
        let network_modules = prepare_system(&loaded, !exec);
        if exec {
            if let Ok(index) = berth_kmod::ModuleIndex::for_running_kernel(Path::new("/")) {
                berth_kmod::coldplug(&index, &mut berth_kmod::KernelModuleLoader, Path::new("/sys"));
            }
            exec_system_docker(&loaded)
        } else {
            supervisor::run(&loaded, network_modules)
        }
    });
    let reason = match result {
        Ok(never) => match never {},
        Err(_) => "init panicked in stage 2 (a bug: please report it with the log above)".to_string(),
    };
    recovery::enter(&reason)
}

/// Mount the OEM partition, then compute the configuration: its `oem-config.yml` is a layer.
/// Where to look comes from the layers that exist already (the built-in defaults, the state
/// partition's, the kernel command line); the configuration is read again only when an OEM
/// partition was mounted.
fn mount_oem_and_load(cmdline: &KernelCmdline) -> (Result<Option<oem::Plan>, String>, Loaded) {
    let early = berth_config::load(&ConfigPaths::system(), cmdline);
    let settings = &early.config.berth.oem;
    let oem = oem::mount(settings.dev.as_str(), &settings.fstype);
    let loaded = match oem {
        Ok(Some(_)) => berth_config::load(&ConfigPaths::system(), cmdline),
        _ => early,
    };
    (oem, loaded)
}

/// Log every configuration diagnostic; errors also go to the console banner.
fn report_config(loaded: &Loaded) {
    for d in &loaded.diagnostics {
        match d.severity {
            // Stage 1 reported the kernel command line's already.
            Severity::Error if d.source == berth_config::CMDLINE_SOURCE => {
                tracing::warn!("configuration: {d}")
            }
            Severity::Error => problems::report(Path::new("/"), &format!("configuration: {d}")),
            Severity::Warning => tracing::warn!("configuration: {d}"),
        }
    }
    if loaded.has_errors() {
        tracing::warn!("booting with the configuration layers that are valid; the others were skipped");
    }
}

/// Everything before System Docker starts. User Docker's network modules load in a thread
/// when `background` (System Docker does not use them); the returned handle says when they
/// are in.
fn prepare_system(loaded: &Loaded, background: bool) -> Background {
    let config = &loaded.config;
    // Containers may share mounts under /mnt and /media with the host (rshared volumes).
    if let Err(e) = nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SHARED,
        None::<&str>,
    ) {
        tracing::warn!("cannot make / a shared mount: {e}");
    }
    let index = load_modules(config);
    // Before the sysctls, so that `berth.sysctl` may set vm.swappiness otherwise.
    if let Some(index) = &index {
        start_zram(config, index);
    }
    let hostname = config.effective_hostname();
    if let Err(e) = nix::unistd::sethostname(hostname.as_str()) {
        tracing::warn!("cannot set the hostname to {}: {e}", hostname.as_str());
    }
    let _ = std::fs::write("/etc/hostname", format!("{}\n", hostname.as_str()));
    if let Err(e) = berth_runtime::hosts::write(Path::new("/etc/hosts"), hostname.as_str()) {
        tracing::warn!("cannot write /etc/hosts: {e}");
    }
    let waiting = apply_sysctls(Path::new("/proc/sys"), config);
    let network_modules = load_network_modules(index, waiting, background);
    for dir in ["/run/berth", "/run/user-docker", "/run/lock"] {
        let _ = std::fs::create_dir_all(dir);
    }
    if !Path::new("/run/berth/resolv.conf").exists() {
        let _ = std::fs::write("/run/berth/resolv.conf", "# the network service fills this in\n");
    }
    // The user engine's socket lives in a directory of its own (the docker service mounts only
    // that); the usual path points at it.
    let _ = std::os::unix::fs::symlink("user-docker/docker.sock", "/run/docker.sock");
    if let Err(e) = loopback_up() {
        tracing::warn!("cannot bring up lo: {e}");
    }
    // Let PID 1 hear Ctrl-Alt-Del as SIGINT and reboot cleanly.
    let _ = nix::sys::reboot::set_cad_enabled(false);
    raise_nofile_limit();
    network_modules
}

fn start_zram(config: &berth_config::Config, index: &berth_kmod::ModuleIndex) {
    match zram::setup(&config.berth.zram, index) {
        Ok(Some(bytes)) => tracing::info!(
            "zram: {} MiB of compressed swap on {} ({}% of the memory, berth.zram.size_percent)",
            bytes >> 20,
            zram::DEVICE,
            config.berth.zram.size_percent
        ),
        Ok(None) => {}
        Err(e) => problems::report(Path::new("/"), &format!("zram swap (berth.zram): {e}")),
    }
}

fn load_modules(config: &berth_config::Config) -> Option<berth_kmod::ModuleIndex> {
    let step = log::uptime();
    let index = match berth_kmod::ModuleIndex::for_running_kernel(Path::new("/")) {
        Ok(index) => index,
        Err(e) => {
            problems::report(Path::new("/"), &format!("kernel modules are unavailable: {e}"));
            return None;
        }
    };
    // System Docker's storage driver and the modules the configuration asks for (a data root
    // may need one): now, rather than on first use.
    let mut wanted: Vec<(String, String)> = vec![(ENGINE_MODULE.to_string(), String::new())];
    for module in &config.berth.modules {
        wanted.push((module.name().to_string(), module.params().join(" ")));
    }
    modprobe_all(&index, &wanted);
    tracing::info!(
        "modules: {} requested ({:.2}s)",
        wanted.len(),
        log::uptime() - step
    );
    Some(index)
}

/// Load each module, reporting the ones that fail.
fn modprobe_all(index: &berth_kmod::ModuleIndex, wanted: &[(String, String)]) {
    let mut loader = berth_kmod::KernelModuleLoader;
    for (name, params) in wanted {
        if let Err(e) = berth_kmod::modprobe(index, &mut loader, name, params) {
            problems::report(Path::new("/"), &format!("module {name}: {e}"));
        }
    }
}

/// System Docker's storage driver, loaded before it starts.
const ENGINE_MODULE: &str = "overlay";
/// Container networking, for User Docker only (System Docker has no bridge and no iptables).
/// Under emulation each module takes ~50 ms to load: the 13 these pull in cost System Docker's
/// start 0.6 s when they were loaded before it.
const NETWORK_MODULES: &[&str] = &["br_netfilter", "veth", "bridge", "nf_nat", "xt_conntrack"];
/// The most the service bring-up waits for the network modules (they take ~1 s).
const NETWORK_MODULES_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// User Docker's network modules (with the `berth.sysctl` settings that waited for them:
/// `net.bridge.*` exists once br_netfilter is in), loaded in a thread while System Docker
/// starts when `background`; the service bring-up (whose `docker` service is the first to use
/// them) starts once they are in ([`wait_for_network_modules`]).
fn load_network_modules(
    index: Option<berth_kmod::ModuleIndex>,
    sysctls: Vec<Sysctl>,
    background: bool,
) -> Background {
    const NAME: &str = "network modules";
    let Some(index) = index else {
        // No modules to load (already reported): say what does not exist.
        for setting in &sysctls {
            setting.write_late(Path::new("/proc/sys"));
        }
        return Background::done(NAME);
    };
    let work = move || {
        let step = log::uptime();
        let wanted: Vec<(String, String)> = NETWORK_MODULES
            .iter()
            .map(|m| (m.to_string(), String::new()))
            .collect();
        modprobe_all(&index, &wanted);
        tracing::info!(
            "network modules: {} requested ({:.2}s)",
            wanted.len(),
            log::uptime() - step
        );
        for setting in &sysctls {
            setting.write_late(Path::new("/proc/sys"));
        }
    };
    if !background {
        work();
        return Background::done(NAME);
    }
    Background::spawn(NAME, work)
}

/// Return once User Docker's network modules are in, at most [`NETWORK_MODULES_WAIT`]; at once
/// the second time (a bring-up started again does not wait for modules that hang).
pub fn wait_for_network_modules(modules: &mut Option<Background>) {
    if let Some(mut loading) = modules.take()
        && !loading.wait_at_most(NETWORK_MODULES_WAIT)
    {
        tracing::warn!(
            "the network modules are still loading after {}s; starting the services",
            NETWORK_MODULES_WAIT.as_secs()
        );
    }
}

fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket + SIOCGIFFLAGS/SIOCSIFFLAGS on a zeroed ifreq naming "lo".
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc == 0 { Ok(()) } else { Err(err) }
    }
}

fn raise_nofile_limit() {
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 1 << 20, 1 << 20);
}

/// Write `berth.sysctl` under `proc_sys`. Keys are [`berth_config::schema::values::SysctlKey`]s
/// (no `..`, no absolute path: they name files below `/proc/sys` only), and files are never
/// created: a setting the kernel does not have is a file that does not exist. Returns the
/// settings that do not exist yet.
pub fn apply_sysctls(proc_sys: &Path, config: &berth_config::Config) -> Vec<Sysctl> {
    let mut waiting = Vec::new();
    for (key, value) in &config.berth.sysctl {
        let setting = Sysctl {
            key: key.to_string(),
            path: key.relative_path(),
            value: value.to_string(),
        };
        if !setting.write(proc_sys) {
            waiting.push(setting);
        }
    }
    waiting
}

/// One `berth.sysctl` setting.
pub struct Sysctl {
    key: String,
    /// Below `/proc/sys`.
    path: std::path::PathBuf,
    value: String,
}

impl Sysctl {
    /// Write it; false when it does not exist (yet): interface settings wait for their driver
    /// (coldplug runs later), `net.bridge.*` for br_netfilter.
    fn write(&self, proc_sys: &Path) -> bool {
        let Sysctl { key, path, value } = self;
        let written = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(proc_sys.join(path))
            .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
        match written {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                problems::report(Path::new("/"), &format!("sysctl {key}={value}: {e}"));
                true
            }
        }
    }

    /// [`Sysctl::write`] once the network modules are in; what still does not exist is said
    /// (cloud-init applies every sysctl again once the network is up, and reports what fails
    /// then).
    fn write_late(&self, proc_sys: &Path) {
        if !self.write(proc_sys) {
            tracing::info!("sysctl {}: not there yet; cloud-init applies it later", self.key);
        }
    }
}

/// `berth.system_docker.exec=true`: System Docker becomes PID 1, as in the original
/// RancherOS. The service bring-up runs as its child, started first.
fn exec_system_docker(loaded: &Loaded) -> ! {
    tracing::info!("berth.system_docker.exec: System Docker replaces init as PID 1");
    if let Err(e) = supervisor::spawn_sysinit(false) {
        problems::report(Path::new("/"), &format!("cannot start the service bring-up: {e}"));
    }
    // System Docker's containerd starts first and stays this process's child across the
    // exec (dockerd, now PID 1, reaps it); dockerd is pointed at it.
    let pair = system_docker::engine_pair(&loaded.config.berth.system_docker, loaded.config.berth.debug);
    let prepare = |cmd: &mut std::process::Command| {
        cmd.env("PATH", system_docker::PATH);
        cmd.envs(system_docker::environment(&loaded.config.berth));
        berth_runtime::spawn::supervised(cmd);
        berth_runtime::spawn::output_to(cmd, Path::new(system_docker::LOG));
    };
    berth_runtime::timeline::record(berth_runtime::timeline::Event::SystemDockerStart);
    if let Err(e) = berth_services::engine_pair::start_containerd(
        &pair,
        &prepare,
        berth_services::engine_pair::CONTAINERD_WAIT,
    ) {
        recovery::enter(&format!("cannot start System Docker's containerd: {e}"));
    }
    let args = pair.dockerd_command_line();
    log::detach_file();
    berth_runtime::spawn::unblock_all_signals();
    let mut cmd = std::process::Command::new(&args[0]);
    cmd.args(&args[1..]).env("PATH", system_docker::PATH);
    cmd.envs(system_docker::environment(&loaded.config.berth));
    berth_runtime::spawn::output_to(&mut cmd, Path::new(system_docker::LOG));
    let err = cmd.exec();
    recovery::enter(&format!("cannot exec System Docker ({}): {err}", args[0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_config::{ConfigPaths, KernelCmdline};

    fn from_cmdline(line: &str) -> berth_config::Loaded {
        let root = tempfile::tempdir().unwrap();
        berth_config::load(&ConfigPaths::under(root.path()), &KernelCmdline::parse(line))
    }

    #[test]
    fn sysctl_keys_that_leave_proc_sys_are_refused_at_load() {
        for bad in ["/etc/x", "a/../../etc/x", "net..ipv4", "../x"] {
            let loaded = from_cmdline(&format!("berth.sysctl.{bad}=1 berth.sysctl.vm.swappiness=10"));
            assert!(
                loaded
                    .config
                    .berth
                    .sysctl
                    .keys()
                    .all(|k| k.as_str() == "vm.swappiness"),
                "{bad} was accepted: {:?}",
                loaded.config.berth.sysctl
            );
            let said = loaded
                .diagnostics
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            assert!(said.contains("is not a sysctl name"), "{bad}: {said}");
            // The good setting next to it is kept.
            assert_eq!(loaded.config.berth.sysctl.len(), 1, "{bad}");
        }
    }

    #[test]
    fn sysctls_write_existing_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let proc_sys = dir.path().join("proc/sys");
        std::fs::create_dir_all(proc_sys.join("net/ipv4")).unwrap();
        std::fs::write(proc_sys.join("net/ipv4/ip_forward"), "0").unwrap();
        let loaded = from_cmdline("berth.sysctl.net.ipv4.ip_forward=1 berth.sysctl.kernel.made_up=1");
        let waiting = apply_sysctls(&proc_sys, &loaded.config);
        assert_eq!(
            std::fs::read_to_string(proc_sys.join("net/ipv4/ip_forward")).unwrap(),
            "1"
        );
        assert!(!proc_sys.join("kernel").exists(), "a sysctl file was created");
        // The missing one is handed back, and written once its module made it exist.
        let keys: Vec<&str> = waiting.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["kernel.made_up"]);
        std::fs::create_dir_all(proc_sys.join("kernel")).unwrap();
        std::fs::write(proc_sys.join("kernel/made_up"), "0").unwrap();
        assert!(waiting[0].write(&proc_sys));
        assert_eq!(
            std::fs::read_to_string(proc_sys.join("kernel/made_up")).unwrap(),
            "1"
        );
    }
}
