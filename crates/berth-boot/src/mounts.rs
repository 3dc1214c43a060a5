//! Mounts as data: the plan of what PID 1 mounts, and the small executor that applies it.

use crate::BootError;
use nix::mount::{MsFlags, mount};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    pub source: String,
    pub target: PathBuf,
    pub fstype: Option<String>,
    pub flags: MsFlags,
    pub data: Option<String>,
    /// Directory mode to create the target with.
    pub mode: u32,
}

impl MountSpec {
    pub fn new(source: &str, target: impl Into<PathBuf>, fstype: &str, flags: MsFlags, data: &str) -> Self {
        Self {
            source: source.to_string(),
            target: target.into(),
            fstype: (!fstype.is_empty()).then(|| fstype.to_string()),
            flags,
            data: (!data.is_empty()).then(|| data.to_string()),
            mode: 0o755,
        }
    }

    pub fn bind(source: impl AsRef<Path>, target: impl Into<PathBuf>) -> Self {
        Self {
            source: source.as_ref().display().to_string(),
            target: target.into(),
            fstype: None,
            flags: MsFlags::MS_BIND | MsFlags::MS_REC,
            data: None,
            mode: 0o755,
        }
    }
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// The kernel's pseudo filesystems, under `root` ("/" in the initramfs).
pub fn pseudo_filesystems(root: &Path) -> Vec<MountSpec> {
    vec![
        MountSpec::new("proc", root.join("proc"), "proc", NOSUID_NODEV_NOEXEC, ""),
        MountSpec::new("sysfs", root.join("sys"), "sysfs", NOSUID_NODEV_NOEXEC, ""),
        MountSpec::new(
            "devtmpfs",
            root.join("dev"),
            "devtmpfs",
            MsFlags::MS_NOSUID,
            "mode=0755",
        ),
        MountSpec::new(
            "devpts",
            root.join("dev/pts"),
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "gid=5,mode=0620,ptmxmode=0666",
        ),
        MountSpec::new(
            "tmpfs",
            root.join("dev/shm"),
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=1777",
        ),
        MountSpec::new(
            "tmpfs",
            root.join("run"),
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            "mode=0755",
        ),
        MountSpec::new(
            "cgroup2",
            root.join("sys/fs/cgroup"),
            "cgroup2",
            NOSUID_NODEV_NOEXEC,
            "nsdelegate",
        ),
        MountSpec::new(
            "mqueue",
            root.join("dev/mqueue"),
            "mqueue",
            NOSUID_NODEV_NOEXEC,
            "",
        ),
    ]
}

/// Whether something is mounted exactly at `path` (from /proc/self/mountinfo).
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape(mp) == want)
}

/// A mountinfo field with its octal escapes undone (public for the fuzz targets).
#[doc(hidden)]
pub fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Mount one spec, creating its target; an already mounted target is left as it is.
pub fn apply(spec: &MountSpec) -> Result<(), BootError> {
    if is_mountpoint(&spec.target) {
        return Ok(());
    }
    create_dir(&spec.target, spec.mode)?;
    mount(
        Some(spec.source.as_str()),
        &spec.target,
        spec.fstype.as_deref(),
        spec.flags,
        spec.data.as_deref(),
    )
    .map_err(|errno| BootError::Mount {
        source_name: spec.source.clone(),
        target: spec.target.clone(),
        fstype: spec.fstype.clone().unwrap_or_else(|| "bind".into()),
        errno,
    })
}

pub fn apply_all(specs: &[MountSpec]) -> Result<(), BootError> {
    specs.iter().try_for_each(apply)
}

pub fn create_dir(path: &Path, mode: u32) -> Result<(), BootError> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| BootError::Io(format!("creating {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_filesystems_mount_parents_first() {
        let plan = pseudo_filesystems(Path::new("/"));
        let pos = |t: &str| plan.iter().position(|m| m.target == Path::new(t)).unwrap();
        assert!(pos("/dev") < pos("/dev/pts"));
        assert!(pos("/dev") < pos("/dev/shm"));
        assert!(pos("/sys") < pos("/sys/fs/cgroup"));
        assert_eq!(plan[pos("/sys/fs/cgroup")].fstype.as_deref(), Some("cgroup2"));
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape("/run/my\\040disk"), "/run/my disk");
    }
}
