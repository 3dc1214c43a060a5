//! The block devices of the machine and the filesystems on them, from one pass over
//! `/sys/class/block` (devices listed and superblocks read by `berth-blockdev`, the code
//! init uses to find the state partition).
//!
//! A scan takes milliseconds, so a datasource volume that is not there is known absent
//! at once. Devices without media (an empty CD drive: size 0), RAM disks, unattached
//! loop devices and floppies (whose probing can hang for seconds) are skipped.

pub use berth_blockdev::FsInfo;
use std::path::{Path, PathBuf};

/// A device and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// The kernel's name: `sr0`, `vda1`.
    pub name: String,
    /// The device node: `/dev/sr0`.
    pub node: PathBuf,
    pub fs: FsInfo,
}

/// Where to look: `/sys` and `/dev`, or the same under a test root.
#[derive(Clone, Debug)]
pub struct BlockScan {
    pub sysfs: PathBuf,
    pub dev_dir: PathBuf,
}

impl Default for BlockScan {
    fn default() -> Self {
        BlockScan::system()
    }
}

impl BlockScan {
    pub fn system() -> Self {
        BlockScan::under(Path::new("/"))
    }

    pub fn under(root: &Path) -> Self {
        BlockScan {
            sysfs: root.join("sys"),
            dev_dir: root.join("dev"),
        }
    }

    /// Every device with a filesystem `berth-blockdev` recognises, sorted by name.
    pub fn scan(&self) -> Vec<BlockDevice> {
        berth_blockdev::list(&self.sysfs)
            .into_iter()
            .filter(|d| d.size > 0 && !skipped(&d.name))
            .filter_map(|d| {
                // `cciss!c0d0` is /dev/cciss/c0d0
                let node = self.dev_dir.join(d.name.replace('!', "/"));
                let fs = berth_blockdev::probe(&node)?;
                tracing::debug!("{}: {fs:?}", node.display());
                Some(BlockDevice {
                    name: d.name,
                    node,
                    fs,
                })
            })
            .collect()
    }
}

fn skipped(name: &str) -> bool {
    ["ram", "zram", "fd"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The first device whose label is `label`, ASCII case ignored (`cidata` and `CIDATA` are
/// one: FAT tools upper-case labels).
pub fn find_by_label<'a>(devices: &'a [BlockDevice], label: &str) -> Option<&'a BlockDevice> {
    devices.iter().find(|d| {
        d.fs.label
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case(label))
    })
}

/// The device with this UUID (case ignored).
pub fn find_by_uuid<'a>(devices: &'a [BlockDevice], uuid: &str) -> Option<&'a BlockDevice> {
    devices
        .iter()
        .find(|d| d.fs.uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(uuid)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// A fake `/sys/class/block` + `/dev` under `root`, with an image file as the device
    /// node. Returns the node path.
    pub(crate) fn fake_device(root: &Path, name: &str, sectors: u64) -> PathBuf {
        let sys = root.join("sys/class/block").join(name);
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::write(sys.join("size"), format!("{sectors}\n")).unwrap();
        let dev = root.join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        let node = dev.join(name);
        let file = std::fs::File::create(&node).unwrap();
        file.set_len(sectors * 512).unwrap();
        node
    }

    /// `mkfs.vfat -n LABEL` on a fake device; `false` when mkfs.vfat is missing.
    pub(crate) fn mkfs_vfat(node: &Path, label: &str) -> bool {
        for program in ["mkfs.vfat", "/usr/sbin/mkfs.vfat", "/sbin/mkfs.vfat"] {
            if let Ok(out) = Command::new(program)
                .args(["-n", label, node.to_str().unwrap()])
                .output()
            {
                assert!(out.status.success(), "{out:?}");
                return true;
            }
        }
        eprintln!("skipped: mkfs.vfat is not installed");
        false
    }

    #[test]
    fn finds_labelled_volumes_and_skips_the_rest() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let sda1 = fake_device(root, "sda1", 4096);
        let sr0 = fake_device(root, "sr0", 4096);
        fake_device(root, "sr1", 0); // empty drive
        fake_device(root, "vdb", 64); // no filesystem
        let ram0 = fake_device(root, "ram0", 4096);
        if !(mkfs_vfat(&sda1, "data") && mkfs_vfat(&sr0, "cidata") && mkfs_vfat(&ram0, "cidata")) {
            return;
        }
        let devices = BlockScan::under(root).scan();
        let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sda1", "sr0"]);
        assert_eq!(devices[1].fs.fstype, "vfat");
        let cidata = find_by_label(&devices, "CIDATA").unwrap();
        assert_eq!(cidata.node, sr0);
        assert!(find_by_label(&devices, "config-2").is_none());
        let uuid = devices[0].fs.uuid.clone().unwrap();
        assert_eq!(find_by_uuid(&devices, &uuid.to_lowercase()).unwrap().name, "sda1");
    }

    #[test]
    fn no_sysfs_means_no_devices() {
        let root = tempfile::tempdir().unwrap();
        assert!(BlockScan::under(root.path()).scan().is_empty());
    }

    #[test]
    fn skipped_names() {
        assert!(skipped("ram0") && skipped("zram12") && skipped("fd0"));
        assert!(!skipped("fd") && !skipped("sda") && !skipped("ramdisk-x"));
    }
}
