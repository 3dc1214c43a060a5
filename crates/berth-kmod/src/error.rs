//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

/// Everything that can go wrong finding, loading or removing a kernel module. Each variant
/// names the file or module involved; the message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    /// The module index for this kernel was never generated (Debian's kernel package leaves
    /// that to `depmod` at install time).
    #[error(
        "{path} is missing: the module index for this kernel was not generated; \
         run `depmod` for this kernel release when building the image"
    )]
    IndexMissing { path: PathBuf },

    /// An index file exists but cannot be read.
    #[error("cannot read module index {path}: {source}")]
    ReadIndex {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A modprobe.d configuration file or directory exists but cannot be read.
    #[error("cannot read modprobe configuration {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// `uname(2)` failed, so the running kernel's module directory is unknown.
    #[error("cannot determine the running kernel release (uname): {source}; pass the release explicitly")]
    KernelRelease {
        #[source]
        source: Errno,
    },

    /// No module, alias or builtin matches the name.
    #[error("Module {name} not found in directory {}", dir.display())]
    ModuleNotFound { name: String, dir: PathBuf },

    /// The name is an alias whose every module is blacklisted in modprobe.d.
    #[error(
        "Module {name} is blacklisted ({}): remove the `blacklist` line from modprobe.d \
         or load the module by its own name",
        modules.join(", ")
    )]
    Blacklisted { name: String, modules: Vec<String> },

    /// The module file listed in modules.dep cannot be opened.
    #[error("could not open {} for module '{module}': {source}; the modules tree does not match modules.dep, run depmod", path.display())]
    OpenModule {
        module: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Module parameters cannot be passed to the kernel.
    #[error("parameters for module '{module}' contain a NUL byte: {params:?}")]
    InvalidParams { module: String, params: String },

    /// `finit_module(2)` refused the module.
    #[error("could not insert '{module}' ({}): {} ({})", path.display(), errno.desc(), insert_hint(*errno))]
    Insert {
        module: String,
        path: PathBuf,
        errno: Errno,
    },

    /// `delete_module(2)` refused to remove the module.
    #[error("could not remove '{module}': {} ({})", errno.desc(), remove_hint(*errno))]
    Remove { module: String, errno: Errno },

    /// Asked to remove a module that is not loaded.
    #[error("Module {module} is not in kernel.")]
    NotLoaded { module: String },

    /// Asked to remove a module that is built into the kernel.
    #[error("Module {module} is builtin: it cannot be removed.")]
    Builtin { module: String },

    /// `--first-time` and the module is already loaded.
    #[error("Module {module} already in kernel.")]
    AlreadyLoaded { module: String },

    /// `/proc/modules` cannot be read.
    #[error("cannot read the loaded modules from {path}: {source}; is /proc mounted?")]
    ReadLoaded {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A directory or `modalias` file under sysfs cannot be read during coldplug.
    #[error("cannot read {path}: {source}; is /sys mounted?")]
    ReadSysfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl KmodError {
    /// The driver loaded but found no hardware it supports (`ENODEV`): normal when an alias
    /// matches several drivers (cpufreq, crypto), not a failure.
    pub fn is_no_device(&self) -> bool {
        matches!(
            self,
            KmodError::Insert {
                errno: Errno::ENODEV,
                ..
            }
        )
    }
}

/// What an `finit_module(2)` errno usually means, and where to look.
pub(crate) fn insert_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EPERM => {
            "needs CAP_SYS_MODULE; module loading may also be disabled in /proc/sys/kernel/modules_disabled"
        }
        Errno::ENOEXEC => {
            "invalid module format: the file was built for another kernel release, or is corrupt"
        }
        Errno::ENOENT => "unknown symbol in module, or unknown parameter; see dmesg",
        Errno::EINVAL => "invalid parameters or module; see dmesg",
        Errno::ENODEV => "no such device: the driver found no hardware it supports",
        Errno::ENOKEY | Errno::EKEYREJECTED => "module signature rejected and the kernel enforces signatures",
        Errno::EOPNOTSUPP => "the kernel cannot decompress modules itself (CONFIG_MODULE_DECOMPRESS is off)",
        Errno::ENOSYS => "the kernel has no module support",
        Errno::EBUSY => "the module is busy being loaded or removed; retry",
        _ => "see dmesg for the kernel's reason",
    }
}

/// What a `delete_module(2)` errno usually means.
pub(crate) fn remove_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EWOULDBLOCK | Errno::EBUSY => "the module is in use; stop its users first",
        Errno::ENOENT => "the module is not loaded",
        Errno::EPERM => "needs CAP_SYS_MODULE, or the module cannot be unloaded",
        _ => "see dmesg for the kernel's reason",
    }
}
