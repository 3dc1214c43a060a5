//! `berth.resize_device` (RancherOS's `rancher.resize_device`): at boot, the last partition
//! of the named disk grows to the end of the disk and its ext2/3/4 filesystem grows online to
//! fill it (resize2fs, from e2fsprogs in the OS image). Run by sysinit on the host, with the
//! state disk's layers and again once cloud-init has applied the user-data, so the first boot
//! of a machine already has it. A disk and filesystem that already reach the end are left
//! alone without running anything. Errors name the key and the device; the boot goes on.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The configuration key, as problems name it.
pub const KEY: &str = "berth.resize_device";

#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    #[error("{KEY}: {device}: no such disk")]
    NoDevice { device: String },
    #[error("{KEY}: {device} is a partition: name its whole disk (e.g. {disk})")]
    Partition { device: String, disk: String },
    #[error("{KEY}: {device}: {what}: {source}")]
    Io {
        device: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{KEY}: {device}: {source}")]
    Table {
        device: String,
        #[source]
        source: berth_install::InstallError,
    },
    #[error("{KEY}: telling the kernel the new size of partition {number} of {device}: {errno}")]
    Kernel {
        device: String,
        number: u32,
        errno: nix::errno::Errno,
    },
    #[error("{KEY}: {device}: the kernel shows no partition {number}")]
    NoPartition { device: String, number: u32 },
    #[error("{KEY}: {partition} holds {found}, not ext4: only ext2/3/4 filesystems are grown")]
    NotExt { partition: String, found: String },
    #[error("{KEY}: resize2fs {partition} failed: {output}")]
    Resize2fs { partition: String, output: String },
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resized {
    pub partition: PathBuf,
    /// The partition's new size in bytes, when it grew.
    pub partition_grown_to: Option<u64>,
    /// The filesystem's new size in bytes, when it grew.
    pub filesystem_grown_to: Option<u64>,
}

/// Grow the last partition of `device` and its filesystem (`sysfs` is `/sys`).
pub fn resize(device: &str, sysfs: &Path, resize2fs: Command) -> Result<Resized, ResizeError> {
    let devices = berth_blockdev::list(sysfs);
    let found = berth_blockdev::DeviceSpec::parse(device)
        .and_then(|spec| berth_blockdev::resolve(&spec, &devices))
        .ok_or_else(|| ResizeError::NoDevice {
            device: device.to_string(),
        })?
        .device;
    if found.partition {
        return Err(ResizeError::Partition {
            device: device.to_string(),
            disk: berth_blockdev::parent_disk(sysfs, &found.name)
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "/dev/sda".to_string()),
        });
    }
    let disk_name = found.path.display().to_string();
    let mut disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&found.path)
        .map_err(|source| ResizeError::Io {
            device: disk_name.clone(),
            what: "opening",
            source,
        })?;
    let last = berth_install::disk::grow_last_partition(&mut disk).map_err(|source| ResizeError::Table {
        device: disk_name.clone(),
        source,
    })?;
    if last.grown {
        let _ = disk.sync_all();
        crate::installed::resize_partition(&disk, last.number, last.start, last.size).map_err(|errno| {
            ResizeError::Kernel {
                device: disk_name.clone(),
                number: last.number,
                errno,
            }
        })?;
    }
    let partition = devices
        .iter()
        .find(|d| {
            d.partition
                && berth_blockdev::partition_entry(sysfs, &d.name).number == Some(last.number)
                && berth_blockdev::parent_disk(sysfs, &d.name).as_deref() == Some(found.path.as_path())
        })
        .map(|d| d.path.clone())
        .ok_or_else(|| ResizeError::NoPartition {
            device: disk_name.clone(),
            number: last.number,
        })?;
    let filesystem_grown_to = grow_filesystem(resize2fs, &partition, last.size)?;
    Ok(Resized {
        partition,
        partition_grown_to: last.grown.then_some(last.size),
        filesystem_grown_to,
    })
}

/// Grow the ext2/3/4 filesystem on `partition` (mounted or not) to `size` bytes with the given
/// resize2fs command, unless it already fills it (within one 4 KiB block). Returns its new size.
pub fn grow_filesystem(
    mut resize2fs: Command,
    partition: &Path,
    size: u64,
) -> Result<Option<u64>, ResizeError> {
    let shown = partition.display().to_string();
    let Some(current) = berth_blockdev::ext_size(partition) else {
        let found = berth_blockdev::probe(partition)
            .map(|fs| fs.fstype.to_string())
            .unwrap_or_else(|| "no filesystem Berth knows".to_string());
        return Err(ResizeError::NotExt {
            partition: shown,
            found,
        });
    };
    if current + 4096 > size {
        return Ok(None);
    }
    let output = resize2fs
        .arg(partition)
        .output()
        .map_err(|source| ResizeError::Io {
            device: shown.clone(),
            what: "running resize2fs for",
            source,
        })?;
    if !output.status.success() {
        return Err(ResizeError::Resize2fs {
            partition: shown,
            output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(berth_blockdev::ext_size(partition))
}

/// The OS image's resize2fs (on the host, after the switch to the real root).
pub fn host_resize2fs() -> Command {
    Command::new("/usr/sbin/resize2fs")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have(tool: &str) -> bool {
        Command::new(tool).arg("-V").output().is_ok()
    }

    fn mkfs(path: &Path, mib: u64, fstype: &str) {
        std::fs::File::create(path).unwrap().set_len(mib << 20).unwrap();
        let out = Command::new("mke2fs")
            .args(["-q", "-F", "-t", fstype])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    /// The filesystem step on a plain ext4 image (resize2fs cannot work inside a partition of
    /// a file, and this host has no loop devices): it grows to the new size, then is left alone.
    #[test]
    fn an_ext4_image_grows_to_its_new_size_once() {
        if !have("mke2fs") || !have("resize2fs") {
            eprintln!("e2fsprogs is not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        mkfs(&img, 32, "ext4");
        assert_eq!(berth_blockdev::ext_size(&img), Some(32 << 20));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&img)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let grown = grow_filesystem(Command::new("resize2fs"), &img, 64 << 20).unwrap();
        assert_eq!(grown, Some(64 << 20));
        assert_eq!(berth_blockdev::ext_size(&img), Some(64 << 20));
        // Already the partition's size: resize2fs does not run (a command that fails proves it).
        let again = grow_filesystem(Command::new("false"), &img, 64 << 20).unwrap();
        assert_eq!(again, None);
        let fsck = Command::new("e2fsck")
            .args(["-f", "-n"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(fsck.status.success(), "{fsck:?}");
    }

    #[test]
    fn other_filesystems_and_unknown_disks_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("zeros.img");
        std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
        let err = grow_filesystem(Command::new("false"), &img, 2 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("berth.resize_device: "), "{err}");
        assert!(err.contains("not ext4"), "{err}");

        let sysfs = dir.path().join("sys");
        std::fs::create_dir_all(sysfs.join("class/block")).unwrap();
        let err = resize("/dev/sdz", &sysfs, Command::new("false"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "berth.resize_device: /dev/sdz: no such disk");
    }
}
