//! cloud-init's `mounts:` (`[device, mountpoint, fstype, options, dump, pass]`): planned
//! here, resolved (`LABEL=`, `UUID=`, filesystem type) against the block devices, then
//! mounted by [`super::HostOps`] in the host's mount namespace so every container started
//! afterwards can see them. Swap entries become `swapon`.

use super::{HostContext, HostOps, HostPlan};
use crate::blockdev::{BlockDevice, find_by_label, find_by_uuid};
use crate::report::{CLOUD_INIT_SOURCE, Report};
use berth_config::schema::cloud::MountEntry;
use nix::mount::MsFlags;

/// What one `mounts:` entry asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountAction {
    Mount {
        /// `/dev/vdb1`, `LABEL=data`, `UUID=...`, a directory (bind), `tmpfs`.
        device: String,
        target: String,
        /// `None`: find it from the superblock.
        fstype: Option<String>,
        flags: MsFlags,
        data: String,
        /// `nofail`: a failure is a warning.
        nofail: bool,
    },
    Swap {
        device: String,
    },
    Skip {
        reason: String,
    },
}

/// A resolved request for the host: what `mount(2)` or `swapon(2)` gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountRequest {
    Mount {
        source: String,
        target: String,
        fstype: String,
        flags: MsFlags,
        data: String,
    },
    Swap {
        device: String,
    },
}

/// Parsed `mount -o` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Filesystem-specific options, passed to the filesystem as they are.
    pub data: Vec<String>,
    pub nofail: bool,
    pub noauto: bool,
}

/// Split `defaults,noatime,nofail,uid=1000` into `mount(2)` flags and filesystem data.
/// Options that only mean something to `mount(8)` or systemd (`_netdev`, `x-*`, `user`,
/// `auto`, `comment=`) are dropped.
pub fn parse_mount_options(text: &str) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        data: Vec::new(),
        nofail: false,
        noauto: false,
    };
    for opt in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let set = |o: &mut MountOptions, f: MsFlags| o.flags.insert(f);
        let clear = |o: &mut MountOptions, f: MsFlags| o.flags.remove(f);
        match opt {
            "defaults" | "auto" | "rw" | "async" | "user" | "nouser" | "users" | "owner" | "group"
            | "_netdev" | "nofail_if_missing" => {
                if opt == "rw" {
                    clear(&mut o, MsFlags::MS_RDONLY);
                }
                if opt == "async" {
                    clear(&mut o, MsFlags::MS_SYNCHRONOUS);
                }
            }
            "ro" => set(&mut o, MsFlags::MS_RDONLY),
            "nosuid" => set(&mut o, MsFlags::MS_NOSUID),
            "suid" => clear(&mut o, MsFlags::MS_NOSUID),
            "nodev" => set(&mut o, MsFlags::MS_NODEV),
            "dev" => clear(&mut o, MsFlags::MS_NODEV),
            "noexec" => set(&mut o, MsFlags::MS_NOEXEC),
            "exec" => clear(&mut o, MsFlags::MS_NOEXEC),
            "sync" => set(&mut o, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => set(&mut o, MsFlags::MS_DIRSYNC),
            "noatime" => set(&mut o, MsFlags::MS_NOATIME),
            "atime" => clear(&mut o, MsFlags::MS_NOATIME),
            "nodiratime" => set(&mut o, MsFlags::MS_NODIRATIME),
            "diratime" => clear(&mut o, MsFlags::MS_NODIRATIME),
            "relatime" => set(&mut o, MsFlags::MS_RELATIME),
            "norelatime" => clear(&mut o, MsFlags::MS_RELATIME),
            "strictatime" => set(&mut o, MsFlags::MS_STRICTATIME),
            "mand" => set(&mut o, MsFlags::MS_MANDLOCK),
            "nomand" => clear(&mut o, MsFlags::MS_MANDLOCK),
            "bind" => set(&mut o, MsFlags::MS_BIND),
            "rbind" => set(&mut o, MsFlags::MS_BIND | MsFlags::MS_REC),
            "nofail" => o.nofail = true,
            "noauto" => o.noauto = true,
            _ if opt.starts_with("x-") || opt.starts_with("comment=") => {}
            _ => o.data.push(opt.to_string()),
        }
    }
    o
}

/// Filesystems on block devices: a bare device name with one of these is `/dev/NAME`.
const BLOCK_FILESYSTEMS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "msdos", "exfat", "ntfs", "ntfs3", "iso9660", "udf",
    "squashfs", "f2fs", "erofs",
];

const NETWORK_FILESYSTEMS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "glusterfs",
    "ceph",
    "fuse.sshfs",
    "davfs",
];

pub(super) fn plan_mount(entry: &MountEntry) -> MountAction {
    let device = entry.device.trim().to_string();
    let fstype = entry
        .fstype
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "auto")
        .map(str::to_string);
    let mountpoint = entry.mountpoint.as_deref().map(str::trim);
    if is_cloud_init_alias(&device) {
        return MountAction::Skip {
            reason: format!(
                "{device:?} is a device name some clouds define for cloud-init; Berth needs the \
                 device itself (/dev/vdb, LABEL=..., UUID=...)"
            ),
        };
    }
    let is_swap =
        fstype.as_deref() == Some("swap") || matches!(mountpoint, None | Some("none") | Some("swap"));
    if is_swap {
        return MountAction::Swap {
            device: device_path(&device, None),
        };
    }
    if fstype
        .as_deref()
        .is_some_and(|t| NETWORK_FILESYSTEMS.contains(&t))
        || device.contains(":/")
        || device.starts_with("//")
    {
        return MountAction::Skip {
            reason: "network filesystems need mount helpers that Berth's cloud-init does not \
                     have; mount them from runcmd or a container"
                .to_string(),
        };
    }
    let options = parse_mount_options(entry.options.as_deref().unwrap_or("defaults"));
    if options.noauto {
        return MountAction::Skip {
            reason: "noauto: not mounted at boot".to_string(),
        };
    }
    let fstype = if options.flags.contains(MsFlags::MS_BIND) {
        Some("none".to_string())
    } else {
        fstype
    };
    MountAction::Mount {
        device: device_path(&device, fstype.as_deref()),
        target: mountpoint.unwrap_or_default().to_string(),
        fstype,
        flags: options.flags,
        data: options.data.join(","),
        nofail: options.nofail,
    }
}

/// `ephemeral0`, `swap`: names cloud-init maps from cloud meta-data.
fn is_cloud_init_alias(device: &str) -> bool {
    device == "swap"
        || device
            .strip_prefix("ephemeral")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A bare name (`sdb1`) is `/dev/sdb1` when it names a block device.
fn device_path(device: &str, fstype: Option<&str>) -> String {
    let bare = !device.contains('/') && !device.contains('=');
    let on_block_device = fstype.is_none_or(|t| BLOCK_FILESYSTEMS.contains(&t) || t == "swap");
    if bare && on_block_device {
        format!("/dev/{device}")
    } else {
        device.to_string()
    }
}

/// Resolve `LABEL=`/`UUID=` against the block devices (scanned when first needed).
fn resolve_device(
    device: &str,
    devices: &mut Option<Vec<BlockDevice>>,
    ctx: &HostContext,
) -> Result<String, String> {
    let (kind, value) = match device.split_once('=') {
        Some((k @ ("LABEL" | "UUID"), v)) => (k, v),
        Some((k @ ("PARTLABEL" | "PARTUUID"), _)) => {
            return Err(format!(
                "{k}= is not supported; use LABEL=, UUID= or the /dev path"
            ));
        }
        _ => return Ok(device.to_string()),
    };
    let devices = devices.get_or_insert_with(|| ctx.blocks.scan());
    let found = if kind == "LABEL" {
        find_by_label(devices, value)
    } else {
        find_by_uuid(devices, value)
    };
    found
        .map(|d| device_node_on_host(&d.node, ctx))
        .ok_or_else(|| format!("no block device has {device}"))
}

/// A device node found under the context root, as the host names it (`/dev/...`).
fn device_node_on_host(node: &std::path::Path, ctx: &HostContext) -> String {
    let relative = node.strip_prefix(&ctx.root).unwrap_or(node);
    format!("/{}", relative.display()).replace("//", "/")
}

/// The filesystem type of a device, from its superblock.
fn detect_fstype(source: &str, ctx: &HostContext) -> Result<String, String> {
    if !source.starts_with("/dev/") {
        return Err(format!(
            "the filesystem type of {source} is not given; write it as the third item"
        ));
    }
    berth_blockdev::probe(&crate::fsutil::under(&ctx.root, source))
        .map(|fs| fs.fstype.to_string())
        .ok_or_else(|| {
            format!(
                "cannot tell the filesystem type of {source} (not found, or unknown); write it \
                 as the third item"
            )
        })
}

pub(super) fn apply_mounts(plan: &HostPlan, ops: &dyn HostOps, ctx: &HostContext, report: &mut Report) {
    let mut devices = None;
    let mut requests = Vec::new();
    // (key, nofail) for each request
    let mut keys = Vec::new();
    for (key, action) in &plan.mounts {
        let request = match action {
            MountAction::Skip { reason } => {
                report.warning(CLOUD_INIT_SOURCE, key, format!("not mounted: {reason}"));
                report.skipped(key, reason.clone());
                continue;
            }
            MountAction::Swap { device } => {
                resolve_device(device, &mut devices, ctx).map(|device| MountRequest::Swap { device })
            }
            MountAction::Mount {
                device,
                target,
                fstype,
                flags,
                data,
                ..
            } => resolve_device(device, &mut devices, ctx).and_then(|source| {
                let fstype = match fstype {
                    Some(t) => t.clone(),
                    None => detect_fstype(&source, ctx)?,
                };
                Ok(MountRequest::Mount {
                    source,
                    target: target.clone(),
                    fstype,
                    flags: *flags,
                    data: data.clone(),
                })
            }),
        };
        let nofail = matches!(action, MountAction::Mount { nofail: true, .. });
        match request {
            Ok(request) => {
                requests.push(request);
                keys.push((key.clone(), nofail));
            }
            Err(e) => fail(report, key, nofail, e),
        }
    }
    if requests.is_empty() {
        return;
    }
    let results = ops.host_mounts(&requests);
    for (i, (key, nofail)) in keys.into_iter().enumerate() {
        match results.get(i) {
            Some(Ok(detail)) => report.done(&key, detail.clone()),
            Some(Err(e)) => fail(report, &key, nofail, e.clone()),
            None => fail(report, &key, nofail, "not attempted".to_string()),
        }
    }
}

fn fail(report: &mut Report, key: &str, nofail: bool, message: String) {
    if nofail {
        report.warning(CLOUD_INIT_SOURCE, key, format!("{message} (nofail)"));
        report.skipped(key, message);
    } else {
        report.failed(key, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(items: &[Option<&str>]) -> MountEntry {
        let mut it = items.iter().map(|i| i.map(str::to_string));
        MountEntry {
            device: it.next().flatten().unwrap(),
            mountpoint: it.next().flatten(),
            fstype: it.next().flatten(),
            options: it.next().flatten(),
            dump: None,
            pass: None,
        }
    }

    #[test]
    fn options() {
        let o = parse_mount_options(
            "defaults,noatime,nofail,x-systemd.requires=x,uid=1000,ro,comment=cloudconfig",
        );
        assert_eq!(o.flags, MsFlags::MS_NOATIME | MsFlags::MS_RDONLY);
        assert_eq!(o.data, ["uid=1000"]);
        assert!(o.nofail && !o.noauto);
        let o = parse_mount_options("ro,rw,rbind,noauto");
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert!(o.noauto);
    }

    #[test]
    fn plans() {
        let plan = |items: &[Option<&str>]| plan_mount(&entry(items));
        assert_eq!(
            plan(&[Some("sdb1"), Some("/data")]),
            MountAction::Mount {
                device: "/dev/sdb1".into(),
                target: "/data".into(),
                fstype: None,
                flags: MsFlags::empty(),
                data: String::new(),
                nofail: false
            }
        );
        assert!(matches!(
            plan(&[Some("LABEL=data"), Some("/data"), Some("ext4"), Some("defaults,nofail")]),
            MountAction::Mount { ref device, fstype: Some(ref t), nofail: true, .. } if device == "LABEL=data" && t == "ext4"
        ));
        assert!(matches!(
            plan(&[Some("tmpfs"), Some("/scratch"), Some("tmpfs"), Some("size=64m,mode=1777")]),
            MountAction::Mount { ref device, ref data, .. } if device == "tmpfs" && data == "size=64m,mode=1777"
        ));
        assert!(matches!(
            plan(&[Some("/var/data"), Some("/data"), Some("auto"), Some("bind")]),
            MountAction::Mount { fstype: Some(ref t), .. } if t == "none"
        ));
        assert_eq!(
            plan(&[Some("vdc"), Some("none"), Some("swap"), Some("sw")]),
            MountAction::Swap {
                device: "/dev/vdc".into()
            }
        );
        assert_eq!(
            plan(&[Some("/swapfile"), None]),
            MountAction::Swap {
                device: "/swapfile".into()
            }
        );
        for skipped in [
            plan(&[Some("ephemeral0"), Some("/mnt")]),
            plan(&[Some("server:/export"), Some("/mnt"), Some("nfs")]),
            plan(&[Some("//srv/share"), Some("/mnt"), Some("cifs")]),
            plan(&[Some("sdb"), Some("/mnt"), None, Some("noauto")]),
        ] {
            assert!(matches!(skipped, MountAction::Skip { .. }), "{skipped:?}");
        }
    }
}
