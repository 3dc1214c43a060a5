//! Reading a few files from a datasource volume: mount it read-only on a temporary
//! directory, copy the files, unmount. The mount is behind [`Mounter`] so the logic is
//! tested without privileges; the real one is [`SystemMounter`] (`mount(2)`, the kernel
//! loads `vfat`/`isofs` through Berth's `modprobe`).

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A datasource file larger than this is refused.
pub const MAX_FILE: usize = 16 * 1024 * 1024;

/// Mounting and unmounting a volume read-only.
pub trait Mounter: Send + Sync {
    fn mount_readonly(&self, device: &Path, fstype: &str, target: &Path) -> Result<()>;
    fn unmount(&self, target: &Path) -> Result<()>;
}

/// `mount(2)` and `umount2(2)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemMounter;

impl Mounter for SystemMounter {
    fn mount_readonly(&self, device: &Path, fstype: &str, target: &Path) -> Result<()> {
        use nix::mount::{MsFlags, mount};
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some(device), target, Some(fstype), flags, None::<&str>).map_err(|errno| Error::Mount {
            device: device.display().to_string(),
            target: target.to_path_buf(),
            source: std::io::Error::from(errno),
        })
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        use nix::mount::{MntFlags, umount2};
        umount2(target, MntFlags::MNT_DETACH).map_err(|errno| Error::io(target, std::io::Error::from(errno)))
    }
}

/// Mount `device` read-only, read the `wanted` files (relative paths; missing ones are left
/// out), unmount. `scratch` is a directory for the temporary mount point.
pub fn read_files(
    mounter: &dyn Mounter,
    device: &Path,
    fstype: &str,
    scratch: &Path,
    wanted: &[&str],
) -> Result<BTreeMap<String, Vec<u8>>> {
    let target = mount_point(scratch, device);
    crate::fsutil::ensure_dir(&target, 0o700)?;
    let result = mounter.mount_readonly(device, fstype, &target).and_then(|()| {
        let files = read_from_dir(&target, wanted);
        if let Err(e) = mounter.unmount(&target) {
            tracing::warn!("{e}");
        }
        files
    });
    let _ = std::fs::remove_dir(&target);
    result
}

/// Read the `wanted` files under `dir` (missing ones are left out).
pub fn read_from_dir(dir: &Path, wanted: &[&str]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for name in wanted {
        let path = dir.join(name);
        if path.is_dir() {
            continue;
        }
        if let Some(bytes) = crate::fsutil::read_limited(&path, MAX_FILE)? {
            files.insert((*name).to_string(), bytes);
        }
    }
    Ok(files)
}

fn mount_point(scratch: &Path, device: &Path) -> PathBuf {
    let name = device
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "volume".to_string());
    scratch.join(format!("berth-cloud-init-{}-{name}", std::process::id()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// "Mounts" a device by copying a prepared directory onto the mount point.
    #[derive(Default)]
    pub(crate) struct FakeMounter {
        pub contents: Mutex<BTreeMap<PathBuf, PathBuf>>,
        pub calls: Mutex<Vec<String>>,
    }

    impl FakeMounter {
        pub(crate) fn with(device: &Path, dir: &Path) -> Self {
            let m = FakeMounter::default();
            m.contents
                .lock()
                .unwrap()
                .insert(device.to_path_buf(), dir.to_path_buf());
            m
        }
    }

    fn copy_tree(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let dest = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(&dest).unwrap();
                copy_tree(&entry.path(), &dest);
            } else {
                std::fs::copy(entry.path(), dest).unwrap();
            }
        }
    }

    impl Mounter for FakeMounter {
        fn mount_readonly(&self, device: &Path, fstype: &str, target: &Path) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("mount {} {fstype}", device.display()));
            let contents = self.contents.lock().unwrap();
            let Some(dir) = contents.get(device) else {
                return Err(Error::Mount {
                    device: device.display().to_string(),
                    target: target.to_path_buf(),
                    source: std::io::Error::other("no such device"),
                });
            };
            copy_tree(dir, target);
            Ok(())
        }

        fn unmount(&self, target: &Path) -> Result<()> {
            self.calls.lock().unwrap().push("unmount".to_string());
            for entry in std::fs::read_dir(target).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    std::fs::remove_dir_all(path).unwrap();
                } else {
                    std::fs::remove_file(path).unwrap();
                }
            }
            Ok(())
        }
    }

    #[test]
    fn reads_present_files_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let seed = tmp.path().join("seed");
        std::fs::create_dir_all(seed.join("openstack/latest")).unwrap();
        std::fs::write(seed.join("user-data"), "#cloud-config\n").unwrap();
        std::fs::write(seed.join("openstack/latest/meta_data.json"), "{}").unwrap();
        let device = tmp.path().join("sr0");
        let mounter = FakeMounter::with(&device, &seed);
        let scratch = tmp.path().join("scratch");
        let files = read_files(
            &mounter,
            &device,
            "iso9660",
            &scratch,
            &["user-data", "meta-data", "openstack/latest/meta_data.json"],
        )
        .unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["openstack/latest/meta_data.json", "user-data"]
        );
        assert_eq!(
            *mounter.calls.lock().unwrap(),
            [
                format!("mount {} iso9660", device.display()),
                "unmount".to_string()
            ]
        );
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    }

    #[test]
    fn mount_failure_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let mounter = FakeMounter::default();
        let err = read_files(&mounter, Path::new("/dev/nope"), "vfat", tmp.path(), &["x"]).unwrap_err();
        assert!(err.to_string().contains("cannot mount /dev/nope"), "{err}");
    }
}
