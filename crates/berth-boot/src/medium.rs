//! Finding the OS image. The full initrd carries `/berth/os.img` and `/berth/images.img`; the
//! ISO's slim initrd does not, so init looks for them on the boot medium: every block device
//! with a filesystem it can read (ISO 9660, FAT, ext4) is mounted read-only and checked.
//!
//! The slim initrd carries the SHA-256 of its own build's images (`berth/medium.sha256`, in
//! `sha256sum` format). A medium is used only when its images match: an OS image of another
//! build, or one altered on the medium, is refused and the search goes on.

use crate::{BootError, mounts};
use berth_runtime::problems;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const OS_IMAGE: &str = "berth/os.img";
pub const IMAGES_IMAGE: &str = "berth/images.img";
/// The digests of this build's images, in the slim initrd (`<hex>  os.img` lines).
pub const EXPECTED_DIGESTS: &str = "berth/medium.sha256";

/// The images a medium must hold, by file name under `berth/`, with their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected(BTreeMap<String, String>);

impl Expected {
    /// Parse `sha256sum` output: `<64 hex digits>  <name>` per line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut digests = BTreeMap::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let (hex, name) = line
                .split_once("  ")
                .ok_or_else(|| format!("line {}: expected `<sha256>  <file>`", n + 1))?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("line {}: `{hex}` is not a SHA-256 digest", n + 1));
            }
            digests.insert(name.trim().to_string(), hex.to_ascii_lowercase());
        }
        if !digests.contains_key("os.img") {
            return Err("no digest for os.img".to_string());
        }
        Ok(Self(digests))
    }

    /// Check one image in `dir` (a medium's `berth/`): it must be listed, be there and hash
    /// to its digest.
    pub fn verify(&self, dir: &Path, name: &str) -> Result<(), String> {
        let want = self
            .0
            .get(name)
            .ok_or_else(|| format!("{name}: this initrd carries no digest for it"))?;
        let got = sha256_file(&dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        if &got != want {
            return Err(format!(
                "{name} is not this build's (sha256 {}…, expected {}…)",
                &got[..12],
                &want[..12]
            ));
        }
        Ok(())
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

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
    let expected = read_expected(initramfs_root)?;
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
    let expected = read_expected(initramfs_root)?;
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

/// The digests the slim initrd carries. Without them no medium can be trusted.
fn read_expected(initramfs_root: &Path) -> Result<Expected, BootError> {
    let path = initramfs_root.join(EXPECTED_DIGESTS);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BootError::Io(format!("reading {} from the initramfs", path.display()), e))?;
    Expected::parse(&text).map_err(|e| {
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
    expected: &Expected,
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
    if let Err(why) = expected.verify(dir, "os.img") {
        let _ = umount2(mount_dir, MntFlags::MNT_DETACH);
        return Ok(Probe::Refused(why));
    }
    tracing::info!(
        "found the OS image on {} ({fstype}), verified in {:.1}s",
        device.display(),
        started.elapsed().as_secs_f64()
    );
    // System images that are not this build's are not used (they would run as privileged
    // system containers); the OS image still boots, so the console can say what happened.
    let images = mount_dir.join(IMAGES_IMAGE);
    let images = images.is_file().then_some(images).filter(|_| {
        expected
            .verify(dir, "images.img")
            .map_err(|why| {
                problems::report(
                    Path::new("/"),
                    &format!(
                        "the system images on {} were refused: {why}; they are not used",
                        device.display()
                    ),
                );
            })
            .is_ok()
    });
    Ok(Probe::Found(Box::new(Medium {
        os_image: os,
        images_image: images,
        device: Some(device.to_path_buf()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn only_the_images_of_this_build_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("os.img"), b"the os image").unwrap();
        std::fs::write(dir.path().join("images.img"), b"the system images").unwrap();
        let text = format!(
            "{}  os.img\n{}  images.img\n",
            digest(b"the os image"),
            digest(b"the system images")
        );
        let expected = Expected::parse(&text).unwrap();
        expected.verify(dir.path(), "os.img").unwrap();
        expected.verify(dir.path(), "images.img").unwrap();

        // One byte changed, an image missing, a file without a digest: refused, named.
        std::fs::write(dir.path().join("images.img"), b"the system imageS").unwrap();
        let err = expected.verify(dir.path(), "images.img").unwrap_err();
        assert!(err.starts_with("images.img is not this build's"), "{err}");
        std::fs::write(dir.path().join("os.img"), b"another os image").unwrap();
        let err = expected.verify(dir.path(), "os.img").unwrap_err();
        assert!(err.starts_with("os.img is not this build's"), "{err}");
        std::fs::remove_file(dir.path().join("images.img")).unwrap();
        let err = expected.verify(dir.path(), "images.img").unwrap_err();
        assert!(err.starts_with("images.img: "), "{err}");
        let err = expected.verify(dir.path(), "other.img").unwrap_err();
        assert!(err.contains("no digest"), "{err}");
    }

    #[test]
    fn a_broken_digest_file_is_an_error_not_an_open_door() {
        assert!(Expected::parse("").unwrap_err().contains("os.img"));
        assert!(
            Expected::parse("abc  os.img")
                .unwrap_err()
                .contains("not a SHA-256")
        );
        assert!(Expected::parse("nonsense").unwrap_err().contains("line 1"));
        let only_images = format!("{}  images.img", digest(b"x"));
        assert!(Expected::parse(&only_images).unwrap_err().contains("os.img"));
    }
}
