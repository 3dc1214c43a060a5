//! Kernel modules for Berth, without kmod or any C.
//!
//! PID 1 uses this crate for coldplug (load the drivers of the hardware present at boot),
//! and the `berth` binary installed as `/sbin/modprobe` uses [`modprobe_main`], which is what
//! the kernel runs for `request_module()` (`/sbin/modprobe -q -- fs-vfat`). Names and
//! aliases resolve through the index `depmod` wrote in `/lib/modules/<release>`
//! ([`ModuleIndex`]) into a [`LoadPlan`] (pure), which a [`ModuleLoader`] executes
//! (`finit_module` with in-kernel decompression of `.ko.xz`).
#![forbid(unsafe_code)]

mod alias_table;
mod cli;
mod coldplug;
mod config;
mod error;
mod fake_loader;
mod fnmatch;
mod index;
mod index_files;
mod kernel_loader;
mod loader;
mod modprobe;
mod name;
mod plan;

/// The errno type of [`KmodError::Insert`] and [`FakeModuleLoader::fail_insert`].
pub use nix::errno::Errno;

pub use cli::{modprobe_main, modprobe_main_with};
pub use coldplug::{ColdplugFailure, ColdplugReport, coldplug};
pub use config::{CONFIG_DIRS, ModprobeConfig};
pub use error::KmodError;
pub use fake_loader::FakeModuleLoader;
pub use fnmatch::Glob;
pub use index::{ModuleIndex, Resolution, ResolvedVia, kernel_release};
pub use index_files::{
    AliasLine, BuiltinModinfo, DepLine, Parsed, Softdeps, parse_builtin_modinfo, parse_modules_alias,
    parse_modules_builtin, parse_modules_dep, parse_modules_softdep,
};
pub use kernel_loader::{KernelModuleLoader, PROC_MODULES, parse_proc_modules};
pub use loader::ModuleLoader;
pub use modprobe::{
    ProbeOptions, execute_plan, modprobe, modprobe_remove, modprobe_remove_with, modprobe_with,
    resolve_for_probe,
};
pub use name::{module_name_from_path, normalize_alias, normalize_name};
pub use plan::{LoadPlan, LoadStep, StepRole};
