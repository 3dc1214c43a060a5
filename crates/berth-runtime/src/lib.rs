//! What Berth's processes share at run time: the boot log (`/var/log/boot/`), the boot
//! problems shown on the console banner, the typed reports one process writes and another
//! reads (sysinit → PID 1 and the CLI), the paths of the engines' sockets and of the run
//! files, and how a supervisor starts a child. PID 1, sysinit, cloud-init, the console and
//! the CLI all link this crate; none of them links another's.

pub mod hosts;
pub mod log;
pub mod meminfo;
pub mod mountinfo;
pub mod paths;
pub mod problems;
pub mod report;
pub mod spawn;
pub mod timeline;

pub use log::uptime;

/// This build's Berth version: the workspace version, or the one `cargo xtask build --version V`
/// gave (through `BERTH_RELEASE_VERSION` at compile time) so a test can build a newer release.
pub const VERSION: &str = match option_env!("BERTH_RELEASE_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};
pub use report::{ServiceOutcome, ServiceRecord, SysinitReport};
