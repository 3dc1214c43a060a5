//! The first boot of an installed disk: its `BERTH_STATE` partition is blank (berth install
//! and berth.qcow2 leave it so). Stage 1 grows it to the end of the disk — which may have been
//! enlarged since, as `qemu-img resize` does — tells the kernel its new size, and formats it
//! ext4 with the OS image's mkfs.ext4. Only a partition whose first MiB is all zeros is ever
//! formatted, so no filesystem can be lost to it; and only on a disk booted by slot.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How much of the partition must be zeros for it to count as blank.
const BLANK_CHECK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FirstBootError {
    #[error("{what} {device}: {source}")]
    Io {
        what: &'static str,
        device: String,
        #[source]
        source: std::io::Error,
    },
    #[error("growing the state partition on {device}: {source}")]
    Grow {
        device: String,
        #[source]
        source: berth_install::InstallError,
    },
    #[error("telling the kernel the state partition's new size ({device}): {errno}")]
    Resize {
        device: String,
        errno: nix::errno::Errno,
    },
    #[error("mkfs.ext4 {device} failed: {output}")]
    Mkfs { device: String, output: String },
}

/// Whether the first MiB of `device` is all zeros.
pub fn is_blank(device: &Path) -> std::io::Result<bool> {
    let mut buf = vec![0u8; BLANK_CHECK];
    let mut file = File::open(device)?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(buf[..filled].iter().all(|b| *b == 0))
}

/// What the first boot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub device: PathBuf,
    /// The new size in bytes, when the partition grew.
    pub grown_to: Option<u64>,
}

/// Find the blank `BERTH_STATE` partition, grow it and format it. `Ok(None)` when there is
/// none or it is not blank (the usual case: every boot but the first).
pub fn prepare_state(newroot: &Path) -> Result<Option<Prepared>, FirstBootError> {
    let sysfs = Path::new("/sys");
    let Some(part) = berth_blockdev::list(sysfs).into_iter().find(|d| {
        d.partition
            && berth_blockdev::partition_entry(sysfs, &d.name).name.as_deref()
                == Some(berth_install::layout::STATE_NAME)
    }) else {
        return Ok(None);
    };
    let device = part.path.clone();
    let io = |what, source| FirstBootError::Io {
        what,
        device: device.display().to_string(),
        source,
    };
    if !is_blank(&device).map_err(|e| io("reading", e))? {
        return Ok(None);
    }
    let number = berth_blockdev::partition_entry(sysfs, &part.name)
        .number
        .unwrap_or(0);
    let mut grown_to = None;
    if let Some(disk) = berth_blockdev::parent_disk(sysfs, &part.name) {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&disk)
            .map_err(|e| io("opening the disk of", e))?;
        grown_to = berth_install::disk::grow_state(&mut file).map_err(|source| FirstBootError::Grow {
            device: disk.display().to_string(),
            source,
        })?;
        if let Some(size) = grown_to {
            let _ = file.sync_all();
            resize_partition(&file, number, berth_install::layout::STATE_START, size).map_err(|errno| {
                FirstBootError::Resize {
                    device: device.display().to_string(),
                    errno,
                }
            })?;
        }
    }
    mkfs_ext4(newroot, &device, berth_install::layout::STATE_NAME)?;
    Ok(Some(Prepared { device, grown_to }))
}

/// Run the OS image's mkfs.ext4 through its own dynamic loader (the initramfs has none),
/// labelling the filesystem `label`.
pub fn mkfs_ext4(newroot: &Path, device: &Path, label: &str) -> Result<(), FirstBootError> {
    let libs = newroot.join("usr/lib/x86_64-linux-gnu");
    let mut cmd = Command::new(libs.join("ld-linux-x86-64.so.2"));
    cmd.arg("--library-path")
        .arg(&libs)
        .arg(newroot.join("usr/sbin/mke2fs"));
    mke2fs(cmd, device, label)
}

/// `mke2fs` (the given command) making the state filesystem on `device`.
fn mke2fs(mut cmd: Command, device: &Path, label: &str) -> Result<(), FirstBootError> {
    let output = cmd
        .args(["-q", "-F", "-t", "ext4", "-L", label])
        .arg(device)
        // No /etc/mke2fs.conf here: a config path that does not exist makes mke2fs use its
        // built-in defaults (ext4 with a journal); an empty file would give a bare ext2.
        .env("MKE2FS_CONFIG", "/nonexistent/mke2fs.conf")
        .output()
        .map_err(|source| FirstBootError::Io {
            what: "running mkfs.ext4 for",
            device: device.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(FirstBootError::Mkfs {
            device: device.display().to_string(),
            output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// `struct blkpg_partition` of linux/blkpg.h.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

/// `struct blkpg_ioctl_arg` of linux/blkpg.h.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

const BLKPG_RESIZE_PARTITION: libc::c_int = 3;
nix::ioctl_write_ptr_bad!(blkpg, 0x1269, BlkpgIoctlArg);

/// Tell the kernel partition `number` of the disk open as `disk` now spans `len` bytes from
/// `start` (BLKPG_RESIZE_PARTITION: works while other partitions of the disk are mounted,
/// where re-reading the whole table would be refused).
pub(crate) fn resize_partition(
    disk: &File,
    number: u32,
    start: u64,
    len: u64,
) -> Result<(), nix::errno::Errno> {
    let mut part = BlkpgPartition {
        start: i64::try_from(start).map_err(|_| nix::errno::Errno::EOVERFLOW)?,
        length: i64::try_from(len).map_err(|_| nix::errno::Errno::EOVERFLOW)?,
        pno: i32::try_from(number).map_err(|_| nix::errno::Errno::EINVAL)?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&raw mut part).cast(),
    };
    // SAFETY: `arg` and the `part` it points to are valid, properly laid out (repr(C), as in
    // linux/blkpg.h) and live for the whole call; the kernel only reads them.
    unsafe { blkpg(disk.as_raw_fd(), &arg) }.map(drop)
}

nix::ioctl_none!(blkrrpart, 0x12, 95);

/// Ask the kernel to read a disk's partition table again (after `berth install`).
pub fn reread_partitions(disk: &File) -> nix::Result<()> {
    // SAFETY: BLKRRPART takes no argument; the descriptor stays open for the whole call.
    unsafe { blkrrpart(disk.as_raw_fd()) }.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without /etc/mke2fs.conf (as in the initramfs) the result is still a real ext4.
    #[test]
    fn the_state_filesystem_is_ext4_without_a_config_file() {
        if Command::new("mke2fs").arg("-V").output().is_err() {
            eprintln!("mke2fs is not installed (e2fsprogs): skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::fs::File::create(&path).unwrap().set_len(64 << 20).unwrap();
        mke2fs(Command::new("mke2fs"), &path, "BERTH_STATE").unwrap();
        let fs = berth_blockdev::probe(&path).unwrap();
        assert_eq!(fs.fstype, "ext4");
        assert_eq!(fs.label.as_deref(), Some("BERTH_STATE"));
    }

    #[test]
    fn only_zeros_are_blank() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        std::fs::write(&path, vec![0u8; 2 << 20]).unwrap();
        assert!(is_blank(&path).unwrap());
        let mut bytes = vec![0u8; 2 << 20];
        bytes[1080] = 0x53; // where ext4's magic sits
        std::fs::write(&path, bytes).unwrap();
        assert!(!is_blank(&path).unwrap());
    }
}
