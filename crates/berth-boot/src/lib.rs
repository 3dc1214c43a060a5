//! Berth's PID 1. Stage 1 runs from the initramfs: pseudo filesystems, cgroup v2, the kernel
//! command line, early modules, the OS image, the real root (tmpfs + squashfs `/usr` + the
//! state partition on `/var`), switch_root. Stage 2 runs from the real root: all modules,
//! hostname, System Docker, the service bring-up (`berth sysinit`, a child), then supervision:
//! reaping, restarting System Docker, and the ordered shutdown. PID 1 never panics: a failure
//! that stops boot ends in a recovery shell on the console that says why.

pub mod background;
pub mod coldplug;
pub mod installed;
pub mod loopdev;
pub mod medium;
pub mod mounts;
pub mod oem;
pub mod power;
pub mod ram_images;
pub mod recovery;
pub mod resize_device;
pub mod root;
pub mod shutdown;
pub mod slot;
pub mod stage1;
pub mod stage2;
pub mod state;
pub mod supervisor;
pub mod system_docker;
pub mod verity;
pub mod zram;

use std::path::PathBuf;
use std::time::Duration;

pub const VERSION: &str = berth_runtime::VERSION;

/// Why boot could not go on.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot mount {source_name} on {} ({fstype}): {errno}", target.display())]
    Mount {
        source_name: String,
        target: PathBuf,
        fstype: String,
        errno: nix::errno::Errno,
    },
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error(
        "the OS image (berth/os.img) is neither in the initramfs nor on any boot medium{}{}; \
         boot with Berth's full initrd.img or attach the Berth ISO of this build",
        if *scanned { " that was scanned" } else { "" },
        if refused.is_empty() { String::new() } else { format!(" (refused: {})", refused.join("; ")) }
    )]
    NoOsImage {
        waited: Duration,
        scanned: bool,
        /// Media holding an OS image of another build, each with the reason.
        refused: Vec<String>,
    },
    #[error("the state partition is required (berth.state.required) but {0}")]
    StateRequired(String),
    #[error("{0}")]
    Other(String),
}

/// `init`: PID 1's entry point. Never returns.
pub fn init_main() -> ! {
    if nix::unistd::getpid().as_raw() != 1 {
        eprintln!("init: Berth's init must run as PID 1 (it is started by the kernel)");
        std::process::exit(1);
    }
    if std::env::var_os(stage2::STAGE_ENV).is_some() {
        stage2::run()
    } else {
        stage1::run()
    }
}
