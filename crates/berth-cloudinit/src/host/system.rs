//! The real [`HostOps`]: `sethostname(2)` (cloud-init shares the host's UTS namespace),
//! Berth's module loader (in process: the cloud-init container has the kernel's modules
//! mounted but no `modprobe` program), and mounts made from a thread that has entered the host's mount
//! namespace (`/proc/1/ns/mnt`; cloud-init shares the host's PID namespace).

use super::{HostOps, MountRequest};
use berth_config::schema::values::ModuleSpec;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct SystemHost {
    /// The root whose `lib/modules/<release>` holds the running kernel's modules.
    pub modules_root: PathBuf,
    /// The mount namespace to mount in.
    pub host_mount_ns: PathBuf,
}

impl Default for SystemHost {
    fn default() -> Self {
        SystemHost {
            modules_root: PathBuf::from("/"),
            host_mount_ns: PathBuf::from("/proc/1/ns/mnt"),
        }
    }
}

impl HostOps for SystemHost {
    fn set_hostname(&self, name: &str) -> Result<(), String> {
        nix::unistd::sethostname(name).map_err(|e| e.desc().to_string())
    }

    fn load_module(&self, module: &ModuleSpec) -> Result<(), String> {
        let index = berth_kmod::ModuleIndex::for_running_kernel(&self.modules_root)
            .map_err(|e| format!("cannot load {module}: the kernel's modules are unavailable ({e})"))?;
        berth_kmod::modprobe(
            &index,
            &mut berth_kmod::KernelModuleLoader,
            module.name(),
            &module.params().join(" "),
        )
        .map(|_| ())
        .map_err(|e| format!("modprobe {module}: {e}"))
    }

    fn host_mounts(&self, requests: &[MountRequest]) -> Vec<Result<String, String>> {
        if std::process::id() == 1 && Path::new("/.dockerenv").exists() {
            // /proc/1 is this process: its mounts would vanish with the container.
            let e = "cloud-init runs as PID 1 of its container, so it cannot reach the host's \
                     mount namespace; the cloud-init service needs pid: host";
            return requests.iter().map(|_| Err(e.to_string())).collect();
        }
        let requests = requests.to_vec();
        let count = requests.len();
        let ns = self.host_mount_ns.clone();
        let worker = std::thread::Builder::new().name("host-mounts".to_string()).spawn(
            move || -> Vec<Result<String, String>> {
                if let Err(e) = enter_mount_namespace(&ns) {
                    return requests.iter().map(|_| Err(e.clone())).collect();
                }
                requests.iter().map(apply).collect()
            },
        );
        match worker.map(|handle| handle.join()) {
            Ok(Ok(results)) => results,
            _ => (0..count)
                .map(|_| Err("the mount thread failed".to_string()))
                .collect(),
        }
    }
}

/// Make this thread's mount namespace the one at `ns` (the thread stops sharing its
/// filesystem attributes first, as `setns(CLONE_NEWNS)` requires).
fn enter_mount_namespace(ns: &Path) -> Result<(), String> {
    use nix::sched::{CloneFlags, setns, unshare};
    let cannot = |e: nix::Error| {
        format!(
            "cannot enter the host's mount namespace ({}): {} (is cloud-init privileged, with pid=host?)",
            ns.display(),
            e.desc()
        )
    };
    let file = std::fs::File::open(ns).map_err(|e| format!("{}: {e}", ns.display()))?;
    unshare(CloneFlags::CLONE_FS).map_err(cannot)?;
    setns(&file, CloneFlags::CLONE_NEWNS).map_err(cannot)?;
    nix::unistd::chdir("/").map_err(cannot)
}

fn apply(request: &MountRequest) -> Result<String, String> {
    match request {
        MountRequest::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => {
            if is_mounted(target) {
                return Ok(format!("{target} is already mounted"));
            }
            std::fs::create_dir_all(target)
                .map_err(|e| format!("cannot create the mount point {target}: {e}"))?;
            let data = (!data.is_empty()).then_some(data.as_str());
            nix::mount::mount(
                Some(source.as_str()),
                target.as_str(),
                Some(fstype.as_str()),
                *flags,
                data,
            )
            .map_err(|e| format!("cannot mount {source} ({fstype}) on {target}: {}", e.desc()))?;
            Ok(format!("mounted {source} ({fstype}) on {target}"))
        }
        MountRequest::Swap { device } => {
            let path =
                std::ffi::CString::new(device.as_str()).map_err(|_| format!("{device:?} is not a path"))?;
            // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
            let rc = unsafe { libc::swapon(path.as_ptr(), 0) };
            if rc == 0 {
                return Ok(format!("swap on {device}"));
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EBUSY) {
                Ok(format!("swap on {device} was already active"))
            } else {
                Err(format!("cannot swapon {device}: {err}"))
            }
        }
    }
}

/// Whether something is mounted at `target` in this thread's mount namespace.
fn is_mounted(target: &str) -> bool {
    let trimmed = target.trim_end_matches('/');
    let target = if trimmed.is_empty() { "/" } else { trimmed };
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .map(|info| {
            berth_runtime::mountinfo::mount_points(&info)
                .iter()
                .any(|mp| mp == target)
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert!(is_mounted("/"));
    }

    #[test]
    fn missing_namespace_fails_every_request() {
        let host = SystemHost {
            modules_root: PathBuf::from("/nonexistent"),
            host_mount_ns: PathBuf::from("/nonexistent/ns"),
        };
        let results = host.host_mounts(&[
            MountRequest::Swap {
                device: "/dev/x".into(),
            },
            MountRequest::Swap {
                device: "/dev/y".into(),
            },
        ]);
        assert_eq!(results.len(), 2);
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().unwrap_err().contains("/nonexistent/ns"))
        );
        let module: ModuleSpec = "dummy numdummies=0".parse().unwrap();
        let err = host.load_module(&module).unwrap_err();
        assert!(
            err.contains("cannot load dummy numdummies=0: the kernel's modules are unavailable"),
            "{err}"
        );
    }
}
