//! The real root: a tmpfs holding `/etc` and the mount points, the OS image on `/usr`, the
//! state partition (or RAM) on `/var`. Then switch_root onto it, freeing the initramfs.

use crate::mounts::{self, MountSpec};
use crate::{BootError, loopdev};
use nix::mount::{MsFlags, mount};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Directories of the new root (relative), with their modes.
const ROOT_DIRS: &[(&str, u32)] = &[
    ("etc", 0o755),
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("run", 0o755),
    ("tmp", 0o1777),
    ("var", 0o755),
    ("root", 0o700),
    ("home", 0o755),
    ("opt", 0o755),
    ("mnt", 0o755),
    ("media", 0o755),
    ("srv", 0o755),
];

/// Directories under `/var`, which is persistent when a state partition is mounted.
pub const VAR_DIRS: &[(&str, u32)] = &[
    ("var/lib/system-docker", 0o710),
    ("var/lib/user-docker", 0o710),
    ("var/lib/berth/conf/cloud-config.d", 0o700),
    ("var/log/boot", 0o755),
    ("var/home", 0o755),
    ("var/opt", 0o755),
    ("var/tmp", 0o1777),
    ("var/cache", 0o755),
    ("var/mnt", 0o755),
];

/// Mount the tmpfs root at `newroot` and the OS image (squashfs) on its `/usr`.
pub fn mount_root(newroot: &Path, os_image: &Path) -> Result<(), BootError> {
    mounts::apply(&MountSpec::new(
        "rootfs",
        newroot,
        "tmpfs",
        MsFlags::MS_NOSUID,
        "mode=0755",
    ))?;
    let usr = newroot.join("usr");
    mounts::create_dir(&usr, 0o755)?;
    mount_image(os_image, &usr)
}

/// Mount a squashfs image read-only: a verity device as it is, an image file through a loop
/// device.
pub fn mount_image(image: &Path, target: &Path) -> Result<(), BootError> {
    if crate::verity::is_block_device(image) {
        return mount_squashfs(image, target);
    }
    let device = loopdev::attach(image)?;
    mount_squashfs(&device.path, target)
}

pub fn mount_squashfs(device: &Path, target: &Path) -> Result<(), BootError> {
    mounts::create_dir(target, 0o755)?;
    mount(
        Some(device),
        target,
        Some("squashfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|errno| BootError::Mount {
        source_name: device.display().to_string(),
        target: target.to_path_buf(),
        fstype: "squashfs".into(),
        errno,
    })
}

/// Create the root's directories, `/etc` from the OS image's defaults, the `/var` layout and
/// the persistent `/home` and `/opt`.
pub fn populate(newroot: &Path) -> Result<(), BootError> {
    for (dir, mode) in ROOT_DIRS.iter().chain(VAR_DIRS) {
        let path = newroot.join(dir);
        mounts::create_dir(&path, *mode)?;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode));
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("var/run", "/run"),
        ("var/lock", "/run/lock"),
        ("etc/mtab", "/proc/self/mounts"),
    ] {
        symlink_fresh(target, &newroot.join(link))?;
    }
    copy_tree(&newroot.join("usr/share/berth/etc"), &newroot.join("etc"))?;
    // The network service writes resolv.conf under /run; engines follow the link.
    symlink_fresh("/run/berth/resolv.conf", &newroot.join("etc/resolv.conf"))?;
    mounts::apply(&MountSpec::bind(newroot.join("var/home"), newroot.join("home")))?;
    mounts::apply(&MountSpec::bind(newroot.join("var/opt"), newroot.join("opt")))?;
    Ok(())
}

fn symlink_fresh(target: &str, link: &Path) -> Result<(), BootError> {
    if let Ok(meta) = link.symlink_metadata() {
        if meta.file_type().is_symlink()
            && std::fs::read_link(link).ok().as_deref() == Some(Path::new(target))
        {
            return Ok(());
        }
        if meta.is_dir() {
            std::fs::remove_dir_all(link)
        } else {
            std::fs::remove_file(link)
        }
        .map_err(|e| BootError::Io(format!("replacing {}", link.display()), e))?;
    }
    std::os::unix::fs::symlink(target, link)
        .map_err(|e| BootError::Io(format!("linking {}", link.display()), e))
}

/// Copy files and symlinks from `from` into `to` (the `/etc` defaults).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), BootError> {
    let entries =
        std::fs::read_dir(from).map_err(|e| BootError::Io(format!("reading {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BootError::Io(format!("reading {}", from.display()), e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = src
            .symlink_metadata()
            .map_err(|e| BootError::Io(format!("reading {}", src.display()), e))?;
        let io = |e| BootError::Io(format!("copying {} to {}", src.display(), dst.display()), e);
        if meta.is_dir() {
            mounts::create_dir(&dst, meta.mode() & 0o7777)?;
            copy_tree(&src, &dst)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).map_err(io)?;
            let _ = std::fs::remove_file(&dst);
            std::os::unix::fs::symlink(target, &dst).map_err(io)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io)?;
        }
    }
    Ok(())
}

/// Move the pseudo filesystems into `newroot`, delete the initramfs, and make `newroot` the
/// root (the classic switch_root: pivot_root cannot leave the initramfs).
pub fn switch_root(newroot: &Path) -> Result<(), BootError> {
    for dir in ["dev", "proc", "sys", "run"] {
        let from = Path::new("/").join(dir);
        let to = newroot.join(dir);
        mount(Some(&from), &to, None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(|errno| {
            BootError::Mount {
                source_name: from.display().to_string(),
                target: to.clone(),
                fstype: "move".into(),
                errno,
            }
        })?;
    }
    free_initramfs(newroot);
    std::env::set_current_dir(newroot).map_err(|e| BootError::Io("entering the new root".into(), e))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(|errno| {
        BootError::Mount {
            source_name: newroot.display().to_string(),
            target: PathBuf::from("/"),
            fstype: "move".into(),
            errno,
        }
    })?;
    nix::unistd::chroot(".").map_err(|e| BootError::Io("chroot into the new root".into(), e.into()))?;
    std::env::set_current_dir("/").map_err(|e| BootError::Io("entering /".into(), e))?;
    Ok(())
}

/// Delete everything on the initramfs (the rootfs device), never crossing into a mount.
fn free_initramfs(newroot: &Path) {
    let Ok(root_dev) = std::fs::metadata("/").map(|m| m.dev()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir("/") else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == newroot {
            continue;
        }
        remove_on_device(&path, root_dev);
    }
}

fn remove_on_device(path: &Path, dev: u64) {
    let Ok(meta) = path.symlink_metadata() else {
        return;
    };
    if meta.dev() != dev {
        return;
    }
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                remove_on_device(&entry.path(), dev);
            }
        }
        let _ = std::fs::remove_dir(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_defaults_are_copied_with_links() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::write(from.path().join("hosts"), "127.0.0.1 localhost\n").unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", from.path().join("os-release")).unwrap();
        std::fs::create_dir(from.path().join("ssl")).unwrap();
        std::fs::write(from.path().join("ssl/x"), "x").unwrap();
        copy_tree(from.path(), to.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.path().join("hosts")).unwrap(),
            "127.0.0.1 localhost\n"
        );
        assert_eq!(
            std::fs::read_link(to.path().join("os-release")).unwrap(),
            Path::new("../usr/lib/os-release")
        );
        assert!(to.path().join("ssl/x").is_file());
    }

    #[test]
    fn var_layout_holds_every_persistent_directory() {
        let dirs: Vec<&str> = VAR_DIRS.iter().map(|(d, _)| *d).collect();
        for want in [
            "var/lib/system-docker",
            "var/lib/user-docker",
            "var/lib/berth/conf/cloud-config.d",
            "var/home",
        ] {
            assert!(dirs.contains(&want), "{want}");
        }
    }

    #[test]
    fn removal_stays_on_one_device() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), "x").unwrap();
        remove_on_device(&dir.path().join("a"), u64::MAX);
        assert!(
            dir.path().join("a/b/f").exists(),
            "a different device must be left alone"
        );
        let dev = std::fs::metadata(dir.path()).unwrap().dev();
        remove_on_device(&dir.path().join("a"), dev);
        assert!(!dir.path().join("a").exists());
    }
}
