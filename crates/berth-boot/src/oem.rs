//! The OEM partition: configuration a hardware or cloud vendor ships on a partition of its own
//! (label `BERTH_OEM`, or RancherOS's `RANCHER_OEM`; `berth.oem.dev` names another). Stage 2
//! mounts it read-only on `/run/berth/oem` before it computes the configuration, so its
//! `oem-config.yml` is the layer just above the built-in defaults, at boot and for the CLI.
//! No OEM partition costs next to nothing; one that cannot be mounted is reported and boot
//! goes on. `berth.oem.dev=none` turns the layer off: whoever can attach a disk labelled
//! `BERTH_OEM` can otherwise add configuration (services, commands, keys) to the machine.

use berth_blockdev::{BlockDevice, FsInfo};
use nix::mount::MsFlags;
use std::path::Path;

/// Where the partition is mounted (the config loader's `ConfigPaths::system().oem_dir`).
pub const MOUNT_POINT: &str = "/run/berth/oem";

/// What to mount: the first device that matches, with the filesystem type to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub device: BlockDevice,
    pub fstype: String,
}

/// Pick the device (pure: devices and probe supplied). `fstype` is `berth.oem.fstype`: `auto`
/// takes what the superblock says. A matching device without a recognisable filesystem under
/// `auto` is an error that names it.
pub fn plan(
    dev: &str,
    fstype: &str,
    devices: &[BlockDevice],
    probe: &dyn Fn(&BlockDevice) -> Option<FsInfo>,
) -> Result<Option<Plan>, String> {
    if matches!(dev.trim(), "" | "none") {
        return Ok(None);
    }
    let specs = crate::state::with_rancher_alias(dev, "OEM");
    if specs.is_empty() {
        return Err(format!(
            "berth.oem.dev {dev:?} names no device Berth can find: use LABEL=, UUID=, PARTLABEL=, PARTUUID= or a /dev \
             path (or none to use no OEM partition)"
        ));
    }
    let mut matches: Vec<berth_blockdev::Found> = Vec::new();
    for spec in &specs {
        for found in berth_blockdev::resolve_all_with(spec, devices, probe) {
            if !matches.iter().any(|m| m.device.path == found.device.path) {
                matches.push(found);
            }
        }
    }
    if matches.len() > 1 {
        return Err(format!(
            "{} devices match the OEM partition's {dev} ({}): none is used, so that an attached \
             disk cannot add configuration in the real one's place",
            matches.len(),
            matches
                .iter()
                .map(|m| m.device.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let Some(found) = matches.pop() else {
        return Ok(None);
    };
    let fstype = match (fstype, &found.fs) {
        ("auto" | "", Some(fs)) => fs.fstype.to_string(),
        ("auto" | "", None) => {
            return Err(format!(
                "the OEM partition {} ({dev}) holds no filesystem Berth recognises; \
                 set berth.oem.fstype to mount it anyway",
                found.device.path.display()
            ));
        }
        (given, _) => given.to_string(),
    };
    Ok(Some(Plan {
        device: found.device,
        fstype,
    }))
}

/// Mount the OEM partition named by `dev` read-only on [`MOUNT_POINT`]. `Ok(None)`: there is
/// none. The kernel loads the filesystem's module through Berth's modprobe.
pub fn mount(dev: &str, fstype: &str) -> Result<Option<Plan>, String> {
    let devices = berth_blockdev::list(Path::new("/sys"));
    let Some(plan) = plan(dev, fstype, &devices, &|d: &BlockDevice| {
        berth_blockdev::probe(&d.path)
    })?
    else {
        return Ok(None);
    };
    let spec = crate::mounts::MountSpec::new(
        &plan.device.path.display().to_string(),
        MOUNT_POINT,
        &plan.fstype,
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        "",
    );
    crate::mounts::apply(&spec).map_err(|e| format!("the OEM partition was not mounted: {e}"))?;
    Ok(Some(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::dev;

    fn labelled(fstype: &'static str, label: &'static str) -> impl Fn(&BlockDevice) -> Option<FsInfo> {
        move |d: &BlockDevice| {
            (d.name == "vdb").then(|| FsInfo {
                fstype,
                label: Some(label.into()),
                uuid: None,
            })
        }
    }

    #[test]
    fn berth_and_rancher_labels_are_found_with_their_filesystem() {
        let devices = [dev("vda"), dev("vdb")];
        for label in ["BERTH_OEM", "RANCHER_OEM"] {
            let got = plan("LABEL=BERTH_OEM", "auto", &devices, &labelled("vfat", label)).unwrap();
            assert_eq!(
                got,
                Some(Plan {
                    device: dev("vdb"),
                    fstype: "vfat".into()
                }),
                "{label}"
            );
        }
    }

    #[test]
    fn two_oem_partitions_are_refused_both() {
        let devices = [dev("vda"), dev("vdb")];
        let both = |d: &BlockDevice| {
            Some(FsInfo {
                fstype: "vfat",
                label: Some(
                    if d.name == "vda" {
                        "BERTH_OEM"
                    } else {
                        "RANCHER_OEM"
                    }
                    .into(),
                ),
                uuid: None,
            })
        };
        let err = plan("LABEL=BERTH_OEM", "auto", &devices, &both).unwrap_err();
        assert!(
            err.contains("/dev/vda") && err.contains("/dev/vdb") && err.contains("none is used"),
            "{err}"
        );
    }

    #[test]
    fn the_rancher_alias_applies_only_to_the_default_label() {
        let devices = [dev("vdb")];
        let got = plan("LABEL=VENDOR", "auto", &devices, &labelled("ext4", "RANCHER_OEM")).unwrap();
        assert_eq!(got, None);
    }

    #[test]
    fn a_configured_fstype_wins_and_a_bare_device_needs_one() {
        let devices = [dev("vdb")];
        let got = plan("/dev/vdb", "ext2", &devices, &|_| None).unwrap();
        assert_eq!(got.map(|p| p.fstype), Some("ext2".into()));
        let err = plan("/dev/vdb", "auto", &devices, &|_| None).unwrap_err();
        assert!(
            err.contains("/dev/vdb") && err.contains("berth.oem.fstype"),
            "{err}"
        );
    }

    #[test]
    fn no_device_no_plan() {
        assert_eq!(
            plan("LABEL=BERTH_OEM", "auto", &[dev("vda")], &|_| None).unwrap(),
            None
        );
    }

    #[test]
    fn none_turns_it_off_and_an_unusable_reference_is_an_error() {
        let devices = [dev("vdb")];
        let probe = labelled("vfat", "BERTH_OEM");
        assert_eq!(plan("none", "auto", &devices, &probe).unwrap(), None);
        assert_eq!(plan("", "auto", &devices, &probe).unwrap(), None);
        let err = plan("ID=oem", "auto", &devices, &probe).unwrap_err();
        assert!(err.contains("ID=oem") && err.contains("LABEL="), "{err}");
    }
}
