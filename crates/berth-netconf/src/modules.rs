//! The kernel modules behind bonds (`bonding`), VLANs (`8021q`) and bridges (`bridge`),
//! loaded before the first such link is created. The network container mounts the host's
//! `/usr/lib/modules`, and berth-kmod loads them with `finit_module` (the container is
//! privileged), so no `modprobe` binary is needed. The kernel would also ask the host's
//! `/sbin/modprobe` (Berth's) by itself; loading first makes a missing module a clear error.

use std::path::Path;

/// Load `name` unless the kernel has it already (loaded or built in).
pub fn ensure(name: &str) -> Result<(), String> {
    if Path::new("/sys/module").join(name).exists() {
        return Ok(());
    }
    // `/lib/modules`, or `/usr/lib/modules` in a container image without the /lib link.
    let index = berth_kmod::ModuleIndex::for_running_kernel(Path::new("/"))
        .or_else(|_| berth_kmod::ModuleIndex::for_running_kernel(Path::new("/usr")))
        .map_err(|e| format!("cannot read the kernel's module index: {e}"))?;
    berth_kmod::modprobe(&index, &mut berth_kmod::KernelModuleLoader, name, "")
        .map(|_| ())
        .map_err(|e| format!("cannot load the kernel module {name}: {e}"))
}
