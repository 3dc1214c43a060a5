//! Finding the OS image. The full initrd carries `/berth/os.img` and `/berth/images.img`; the
//! ISO's slim initrd does not, so init looks for them on the boot medium: every block device
//! with a filesystem it can read (ISO 9660, FAT, ext4) is mounted read-only and checked.
//!
//! The slim initrd carries the dm-verity root hashes of its own build's images
//! (`berth/verity.json`, see [`crate::verity`]). A medium is used only through verity devices
//! over its images, read whole once at boot: an OS image of another build, or one altered on
//! the medium, is refused and the search goes on; a block altered later reads as an I/O error.

use crate::{BootError, loopdev, mounts, verity};
use berth_runtime::problems;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const OS_IMAGE: &str = "berth/os.img";
pub const IMAGES_IMAGE: &str = "berth/images.img";

/// The verity device of each image, by file name under `berth/`.
fn mapper_name(name: &str) -> &'static str {
    if name == "os.img" {
        "berth-os"
    } else {
        "berth-images"
    }
}

/// Open `dir/name` through a verity device with this build's parameters and read it whole.
/// Returns the device, or why the image is refused (the device is then removed).
fn verify(params: &verity::Params, dir: &Path, name: &str) -> Result<PathBuf, String> {
    let image = params
        .get(name)
        .ok_or_else(|| format!("{name}: this initrd carries no verity root hash for it"))?;
    let path = dir.join(name);
    let len = std::fs::metadata(&path)
        .map_err(|e| format!("{name}: {e}"))?
        .len();
    if len <= image.data_blocks * verity::BLOCK {
        return Err(format!(
            "{name} is not this build's ({len} bytes, this build's holds {} and its hash tree)",
            image.data_blocks * verity::BLOCK
        ));
    }
    let backing = loopdev::attach(&path).map_err(|e| e.to_string())?;
    let mapper = mapper_name(name);
    let device = verity::open(mapper, &backing.path, image).map_err(|e| format!("{name}: {e}"))?;
    // The verity device holds the loop device now; autoclear frees it with the verity device.
    drop(backing);
    match verity::read_all(&device) {
        Ok(took) => {
            tracing::info!(
                "{name}: every block matches this build's root hash ({:.1}s)",
                took.as_secs_f64()
            );
            Ok(device)
        }
        Err(why) => {
            if let Err(e) = verity::remove(mapper) {
                tracing::warn!("{e}");
            }
            Err(format!("{name} is not this build's: {why}"))
        }
    }
}

/// Where the OS image was found.
#[derive(Debug, Clone)]
pub struct Medium {
    /// `/berth/os.img` in the initramfs (a file), or the verity device of the one on the
    /// mounted medium (`/dev/mapper/berth-os`).
    pub os_image: PathBuf,
    /// The system images, if present next to the OS image (a file or a verity device, as
    /// `os_image`).
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
    let expected = read_params(initramfs_root)?;
    let started = Instant::now();
    let mut tried_any = false;
    let mut refused: BTreeMap<PathBuf, String> = BTreeMap::new();
    loop {
        for device in berth_blockdev::list(Path::new("/sys")) {
            let Some(fs) = berth_blockdev::probe(&device.path) else {
                continue;
            };
            if !matches!(fs.fstype, "iso9660" | "vfat" | "ext4" | "ext3" | "ext2") {
                continue;
            }
            tried_any = true;
            if refused.contains_key(&device.path) {
                continue;
            }
            match try_device(&device.path, fs.fstype, mount_dir, &expected)? {
                Probe::Found(found) => return Ok(*found),
                Probe::Refused(why) => {
                    let message = format!(
                        "the OS image on {} was refused: {why}; it is not used",
                        device.path.display()
                    );
                    problems::report(Path::new("/"), &message);
                    refused.insert(device.path.clone(), why);
                }
                Probe::Absent => {}
            }
        }
        if started.elapsed() >= wait {
            return Err(BootError::NoOsImage {
                waited: wait,
                scanned: tried_any,
                refused: refused
                    .iter()
                    .map(|(d, why)| format!("{}: {why}", d.display()))
                    .collect(),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What the booted slot of an installed disk holds.
pub enum SlotMedium {
    /// This build's images: boot from them.
    Found(Box<Medium>),
    /// The OS image is not this build's (altered on disk): the slot must not be used.
    Altered(String),
}

/// The medium of an installed disk's booted slot: only the partition named `partition`
/// (`BERTH_A`), waiting up to `wait` for it to appear. Its OS image is checked against the
/// initrd's digests like any medium's.
pub fn find_slot(
    initramfs_root: &Path,
    mount_dir: &Path,
    partition: &str,
    wait: Duration,
) -> Result<SlotMedium, BootError> {
    let expected = read_params(initramfs_root)?;
    let started = Instant::now();
    loop {
        if let Some(device) = crate::slot::partition_named(partition) {
            let fstype = berth_blockdev::probe(&device).map(|f| f.fstype).unwrap_or("vfat");
            return match try_device(&device, fstype, mount_dir, &expected)? {
                Probe::Found(found) => Ok(SlotMedium::Found(found)),
                Probe::Refused(why) => Ok(SlotMedium::Altered(why)),
                Probe::Absent => Ok(SlotMedium::Altered(format!(
                    "{} ({}) holds no readable berth/os.img",
                    partition,
                    device.display()
                ))),
            };
        }
        if started.elapsed() >= wait {
            return Err(BootError::Other(format!(
                "berth.slot names partition {partition}, but no disk has a partition of that name \
                 (waited {}s)",
                wait.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The verity parameters the slim initrd carries. Without them no medium can be trusted.
fn read_params(initramfs_root: &Path) -> Result<verity::Params, BootError> {
    verity::load_modules();
    let path = initramfs_root.join(verity::PARAMS);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BootError::Io(format!("reading {} from the initramfs", path.display()), e))?;
    verity::Params::parse(&text).map_err(|e| {
        BootError::Other(format!(
            "{} in the initramfs is broken ({e}); rebuild the initrd with `cargo xtask build`",
            path.display()
        ))
    })
}

enum Probe {
    Found(Box<Medium>),
    Refused(String),
    Absent,
}

fn try_device(
    device: &Path,
    fstype: &str,
    mount_dir: &Path,
    expected: &verity::Params,
) -> Result<Probe, BootError> {
    mounts::create_dir(mount_dir, 0o755)?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if mount(Some(device), mount_dir, Some(fstype), flags, None::<&str>).is_err() {
        return Ok(Probe::Absent);
    }
    let os = mount_dir.join(OS_IMAGE);
    if !os.is_file() {
        let _ = umount2(mount_dir, MntFlags::MNT_DETACH);
        return Ok(Probe::Absent);
    }
    let started = Instant::now();
    let dir = os.parent().unwrap_or(mount_dir);
    let os = match verify(expected, dir, "os.img") {
        Ok(device) => device,
        Err(why) => {
            let _ = umount2(mount_dir, MntFlags::MNT_DETACH);
            return Ok(Probe::Refused(why));
        }
    };
    tracing::info!(
        "found the OS image on {} ({fstype}), verified in {:.1}s",
        device.display(),
        started.elapsed().as_secs_f64()
    );
    // System images that are not this build's are not used (they would run as privileged
    // system containers); the OS image still boots, so the console can say what happened.
    let images = mount_dir
        .join(IMAGES_IMAGE)
        .is_file()
        .then(|| verify(expected, dir, "images.img"))
        .and_then(|verified| {
            verified
                .map_err(|why| {
                    problems::report(
                        Path::new("/"),
                        &format!(
                            "the system images on {} were refused: {why}; they are not used",
                            device.display()
                        ),
                    );
                })
                .ok()
        });
    Ok(Probe::Found(Box::new(Medium {
        os_image: os,
        images_image: images,
        device: Some(device.to_path_buf()),
    })))
}
