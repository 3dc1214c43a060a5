//! Finding the OS image. The full initrd carries `/berth/os.img` and `/berth/images.img`; the
//! ISO's slim initrd does not, so init looks for them on the boot medium: every block device
//! with a filesystem it can read (ISO 9660, FAT, ext4) is mounted read-only and checked.

use crate::{BootError, mounts};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const OS_IMAGE: &str = "berth/os.img";
pub const IMAGES_IMAGE: &str = "berth/images.img";

/// Where the OS image was found.
#[derive(Debug, Clone)]
pub struct Medium {
    /// `/berth/os.img` in the initramfs, or on the mounted medium.
    pub os_image: PathBuf,
    /// The system images, if present next to the OS image.
    pub images_image: Option<PathBuf>,
    /// The device mounted to reach them (none when they are in the initramfs).
    pub device: Option<PathBuf>,
}

/// Look in the initramfs first, then on block devices for up to `wait`.
pub fn find(initramfs_root: &Path, mount_dir: &Path, wait: Duration) -> Result<Medium, BootError> {
    let os = initramfs_root.join(OS_IMAGE);
    if os.is_file() {
        let images = initramfs_root.join(IMAGES_IMAGE);
        return Ok(Medium {
            os_image: os,
            images_image: images.is_file().then_some(images),
            device: None,
        });
    }
    let started = Instant::now();
    let mut tried_any = false;
    loop {
        for device in berth_blockdev::list(Path::new("/sys")) {
            let Some(fs) = berth_blockdev::probe(&device.path) else {
                continue;
            };
            if !matches!(fs.fstype, "iso9660" | "vfat" | "ext4" | "ext3" | "ext2") {
                continue;
            }
            tried_any = true;
            if let Some(found) = try_device(&device.path, fs.fstype, mount_dir)? {
                return Ok(found);
            }
        }
        if started.elapsed() >= wait {
            return Err(BootError::NoOsImage {
                waited: wait,
                scanned: tried_any,
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn try_device(device: &Path, fstype: &str, mount_dir: &Path) -> Result<Option<Medium>, BootError> {
    mounts::create_dir(mount_dir, 0o755)?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if mount(Some(device), mount_dir, Some(fstype), flags, None::<&str>).is_err() {
        return Ok(None);
    }
    let os = mount_dir.join(OS_IMAGE);
    if os.is_file() {
        tracing::info!("found the OS image on {} ({fstype})", device.display());
        let images = mount_dir.join(IMAGES_IMAGE);
        return Ok(Some(Medium {
            os_image: os,
            images_image: images.is_file().then_some(images),
            device: Some(device.to_path_buf()),
        }));
    }
    let _ = umount2(mount_dir, MntFlags::MNT_DETACH);
    Ok(None)
}
