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
    berth_kmod::modprobe(&index, &mut berth_kmod::KernelModuleLoader, name, params(name))
        .map(|_| ())
        .map_err(|e| format!("cannot load the kernel module {name}: {e}"))
}

/// The parameters netconf loads a module with. `bonding` makes a `bond0` of its own when it
/// loads (`max_bonds` defaults to 1), with the default options (balance-rr): that link would
/// then exist when netconf creates the configured `bond0` with its mode, and the create would
/// fail. With `max_bonds=0` every bond is netconf's.
pub fn params(name: &str) -> &'static str {
    match name {
        "bonding" => "max_bonds=0",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bonding_makes_no_bond_of_its_own() {
        assert_eq!(super::params("bonding"), "max_bonds=0");
        assert_eq!(super::params("8021q"), "");
    }
}
