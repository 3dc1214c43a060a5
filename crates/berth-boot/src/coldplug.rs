//! Coldplug: load the drivers of the hardware present, in a thread of PID 1, while System
//! Docker starts.
//!
//! This is a one-shot walk of `/sys`; PID 1 never listens to uevents. Hotplug is the `udev`
//! system service's job: it starts right after System Docker and replays every device's "add"
//! event (`udevadm trigger`). When both ask for the same module, the kernel answers the second
//! request with `EEXIST`, which the loader counts as success, so the overlap is harmless.

use berth_runtime::log;
use std::path::Path;

/// Drivers for the hardware present, in the background: System Docker does not need them,
/// and the network service, the first that does, starts seconds later.
pub fn start_in_background() {
    // Nothing waits for it: the handle is dropped.
    crate::background::Background::spawn("coldplug", || {
        let step = log::uptime();
        let Ok(index) = berth_kmod::ModuleIndex::for_running_kernel(Path::new("/")) else {
            return;
        };
        let report = berth_kmod::coldplug(&index, &mut berth_kmod::KernelModuleLoader, Path::new("/sys"));
        tracing::info!(
            "coldplug: {} modules for {} devices ({:.2}s)",
            report.loaded.len(),
            report.modaliases,
            log::uptime() - step
        );
    });
}
