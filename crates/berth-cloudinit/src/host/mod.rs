//! The host-level items of the configuration, applied by `berth cloud-init` at every boot:
//! kernel modules, sysctl, the host name, the time zone, `bootcmd`, and `mounts`.
//!
//! [`plan_host`] decides (pure, tested without privileges); [`apply_host`] does, through
//! [`HostOps`] for what touches the host itself (host name, modules, mounts in the host's
//! mount namespace) and through files under a root for the rest. Each item's failure is
//! reported and the next item goes on.

mod mounts;
mod system;

pub use mounts::{MountAction, MountRequest, parse_mount_options};
pub use system::SystemHost;
/// For the fuzz targets: how mount points are read back from mountinfo.
#[doc(hidden)]
pub use system::unescape_mountinfo;

use crate::blockdev::BlockScan;
use crate::commands::{Program, run_logged};
use crate::metadata::MetaData;
use crate::report::Report;
use berth_config::Config;
use berth_config::schema::forms::Command;
use berth_config::schema::values::{Hostname, ModuleSpec, Timezone};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one `bootcmd` item may run.
pub const BOOTCMD_TIMEOUT: Duration = Duration::from_secs(120);

/// What the host items will do.
#[derive(Clone, Debug, PartialEq)]
pub struct HostPlan {
    pub hostname: Hostname,
    /// `hostname`, `meta-data`, or `berth.defaults.hostname`.
    pub hostname_from: &'static str,
    pub modules: Vec<ModuleSpec>,
    pub sysctl: Vec<SysctlWrite>,
    pub timezone: Option<Timezone>,
    pub bootcmd: Vec<Command>,
    /// `(key, action)`: `("mounts[0]", ...)`.
    pub mounts: Vec<(String, MountAction)>,
}

/// One sysctl: `net.ipv4.ip_forward` → `proc/sys/net/ipv4/ip_forward`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysctlWrite {
    pub key: String,
    /// Relative to `/proc/sys`, or why the key cannot be one.
    pub path: Result<PathBuf, String>,
    pub value: String,
}

/// Decide what to do. The meta-data host name applies only when `hostname` is not set.
pub fn plan_host(config: &Config, meta: Option<&MetaData>) -> HostPlan {
    let (hostname, hostname_from) = match (&config.hostname, meta.and_then(|m| m.local_hostname.as_ref())) {
        (Some(h), _) => (h.clone(), "hostname"),
        (None, Some(h)) => (short_name(h), "meta-data"),
        (None, None) => (config.berth.defaults.hostname.clone(), "berth.defaults.hostname"),
    };
    HostPlan {
        hostname,
        hostname_from,
        modules: config.berth.modules.clone(),
        sysctl: config
            .berth
            .sysctl
            .iter()
            .map(|(key, value)| SysctlWrite {
                key: key.to_string(),
                path: Ok(key.relative_path()),
                value: value.as_str().to_string(),
            })
            .collect(),
        timezone: config.timezone.clone(),
        bootcmd: config.bootcmd.clone(),
        mounts: config
            .mounts
            .iter()
            .enumerate()
            .map(|(i, entry)| (format!("mounts[{i}]"), mounts::plan_mount(entry)))
            .collect(),
    }
}

/// The first label of a meta-data host name (`ip-10-0-0-1.ec2.internal` is `ip-10-0-0-1`),
/// as cloud-init sets it; a name the user writes in `hostname` is used as written.
fn short_name(name: &Hostname) -> Hostname {
    name.as_str()
        .split('.')
        .next()
        .and_then(|label| label.parse().ok())
        .unwrap_or_else(|| name.clone())
}

/// `net.ipv4.ip_forward` or `net/ipv4/conf/eth0.100/forwarding` (slashes when a part has
/// dots) as a path under `/proc/sys` (the check is [`berth_config::schema::values::SysctlKey`]'s,
/// shared with PID 1).
pub fn sysctl_path(key: &str) -> Result<PathBuf, String> {
    key.parse::<berth_config::schema::values::SysctlKey>()
        .map(|k| k.relative_path())
}

/// What touches the host itself. The real one is [`SystemHost`].
pub trait HostOps {
    /// `sethostname(2)` in the host's UTS namespace.
    fn set_hostname(&self, name: &str) -> Result<(), String>;
    /// `modprobe NAME PARAMS...`.
    fn load_module(&self, module: &ModuleSpec) -> Result<(), String>;
    /// Mounts and swaps in the host's mount namespace, in order; one result each (`Ok` with
    /// what happened).
    fn host_mounts(&self, requests: &[MountRequest]) -> Vec<Result<String, String>>;
}

/// Where the host items write, and how they find devices.
#[derive(Clone, Debug)]
pub struct HostContext {
    /// `/` on a running system: `proc/sys`, `run/berth/hostname`,
    /// `var/lib/berth/conf/timezone`, `var/log/boot/bootcmd.log` are under it.
    pub root: PathBuf,
    pub blocks: BlockScan,
    pub instance_id: Option<String>,
    pub bootcmd_timeout: Duration,
}

impl HostContext {
    pub fn under(root: &Path) -> Self {
        HostContext {
            root: root.to_path_buf(),
            blocks: BlockScan::under(root),
            instance_id: None,
            bootcmd_timeout: BOOTCMD_TIMEOUT,
        }
    }
}

/// Apply the plan: modules, sysctl, host name, time zone, bootcmd, mounts, in that order
/// (modules first, so their sysctls exist; bootcmd before mounts, as in cloud-init, so it
/// can prepare disks).
pub fn apply_host(plan: &HostPlan, ops: &dyn HostOps, ctx: &HostContext, report: &mut Report) {
    for (i, module) in plan.modules.iter().enumerate() {
        let item = format!("berth.modules[{i}]");
        match ops.load_module(module) {
            Ok(()) => report.done(&item, format!("loaded {module}")),
            Err(e) => report.failed(&item, e),
        }
    }
    apply_sysctl(plan, ctx, report);
    apply_hostname(plan, ops, ctx, report);
    apply_timezone(plan, ctx, report);
    let log = ctx.root.join("var/log/boot/bootcmd.log");
    let env: Vec<(&str, &str)> = ctx
        .instance_id
        .as_deref()
        .map(|id| vec![("INSTANCE_ID", id)])
        .unwrap_or_default();
    for (i, command) in plan.bootcmd.iter().enumerate() {
        let item = format!("bootcmd[{i}]");
        match run_logged(&Program::Item(command), &log, &env, ctx.bootcmd_timeout) {
            Ok(()) => report.done(&item, format!("ran {}", Program::Item(command).display())),
            Err(e) => report.failed(&item, e),
        }
    }
    mounts::apply_mounts(plan, ops, ctx, report);
}

fn apply_sysctl(plan: &HostPlan, ctx: &HostContext, report: &mut Report) {
    for write in &plan.sysctl {
        let item = format!("berth.sysctl.{}", write.key);
        let path = match &write.path {
            Ok(p) => ctx.root.join("proc/sys").join(p),
            Err(e) => {
                report.failed(&item, e.clone());
                continue;
            }
        };
        // Never create: a missing file is a sysctl the kernel does not have.
        let result = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, write.value.as_bytes()));
        match result {
            Ok(()) => report.done(&item, format!("= {}", write.value)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => report.failed(
                &item,
                format!(
                    "the kernel has no such setting ({}); is its module loaded (berth.modules)?",
                    path.display()
                ),
            ),
            Err(e) => report.failed(&item, format!("cannot write {}: {e}", path.display())),
        }
    }
}

fn apply_hostname(plan: &HostPlan, ops: &dyn HostOps, ctx: &HostContext, report: &mut Report) {
    let name = plan.hostname.as_str();
    let mut ok = true;
    if let Err(e) = ops.set_hostname(name) {
        report.failed("hostname", format!("cannot set the host name to {name}: {e}"));
        ok = false;
    }
    let file = ctx.root.join("run/berth/hostname");
    if let Err(e) = crate::fsutil::write_file(&file, format!("{name}\n").as_bytes(), 0o644, 0o755) {
        report.failed("hostname", e.to_string());
        ok = false;
    }
    if ok {
        report.done("hostname", format!("{name} (from {})", plan.hostname_from));
    }
}

fn apply_timezone(plan: &HostPlan, ctx: &HostContext, report: &mut Report) {
    let file = ctx.root.join("var/lib/berth/conf/timezone");
    let Some(tz) = &plan.timezone else {
        if let Err(e) = crate::fsutil::remove_file(&file) {
            report.failed("timezone", e.to_string());
        }
        return;
    };
    let zoneinfo = ctx.root.join("usr/share/zoneinfo");
    if zoneinfo.is_dir() && !zoneinfo.join(tz.as_str()).is_file() {
        report.warning(
            crate::report::CLOUD_INIT_SOURCE,
            "timezone",
            format!("{tz} is not in the time zone database ({})", zoneinfo.display()),
        );
    }
    match crate::fsutil::write_file(&file, format!("{tz}\n").as_bytes(), 0o644, 0o755) {
        Ok(()) => report.done("timezone", tz.to_string()),
        Err(e) => report.failed("timezone", e.to_string()),
    }
}

#[cfg(test)]
mod tests;
