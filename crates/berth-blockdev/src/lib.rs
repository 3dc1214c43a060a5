//! Block devices for Berth's early boot: list the kernel's block devices from sysfs, read a
//! filesystem's type, label and UUID from its superblock, and resolve `LABEL=`, `UUID=` and
//! `/dev/...` references. PID 1 uses it to find the state partition and the boot medium
//! before udev (a later system container) exists, so it reads the on-disk formats directly:
//! the ext2/3/4 superblock, the FAT boot sector, the ISO 9660 primary volume descriptor and
//! the magic numbers of squashfs, XFS, btrfs and swap.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A filesystem found on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsInfo {
    /// `ext4`, `ext3`, `ext2`, `vfat`, `iso9660`, `squashfs`, `xfs`, `btrfs`, `swap`.
    pub fstype: &'static str,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

/// A block device the kernel knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name (`vda1`, `sr0`).
    pub name: String,
    /// `/dev/<name>`.
    pub path: PathBuf,
    /// Whether this is a partition of another device.
    pub partition: bool,
    /// Size in bytes.
    pub size: u64,
    pub removable: bool,
}

/// Bytes read from the start of a device: enough for every probe below.
const PROBE_LEN: usize = 0x10200;

/// Read the filesystem type, label and UUID of a device or image file.
pub fn probe(path: &Path) -> Option<FsInfo> {
    let mut file = File::open(path).ok()?;
    let mut buf = vec![0u8; PROBE_LEN];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    buf.truncate(filled);
    let _ = file.seek(SeekFrom::Start(0));
    probe_bytes(&buf)
}

/// Probe a buffer holding the start of a device (at least 64 KiB + 512 bytes for btrfs).
pub fn probe_bytes(buf: &[u8]) -> Option<FsInfo> {
    probe_squashfs(buf)
        .or_else(|| probe_ext(buf))
        .or_else(|| probe_iso9660(buf))
        .or_else(|| probe_xfs(buf))
        .or_else(|| probe_btrfs(buf))
        .or_else(|| probe_swap(buf))
        .or_else(|| probe_fat(buf))
}

fn slice(buf: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    buf.get(at..at.checked_add(len)?)
}

fn le16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(slice(buf, at, 2)?.try_into().ok()?))
}

fn le32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(slice(buf, at, 4)?.try_into().ok()?))
}

/// A label stored as a fixed-size, NUL- or space-padded field.
fn label_text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]).trim_end().to_string();
    (!text.is_empty()).then_some(text)
}

fn uuid_text(b: &[u8]) -> Option<String> {
    if b.len() != 16 || b.iter().all(|&x| x == 0) {
        return None;
    }
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    ))
}

fn probe_ext(buf: &[u8]) -> Option<FsInfo> {
    const SB: usize = 1024;
    if le16(buf, SB + 56)? != 0xEF53 {
        return None;
    }
    let compat = le32(buf, SB + 92)?;
    let incompat = le32(buf, SB + 96)?;
    let ro_compat = le32(buf, SB + 100)?;
    const HAS_JOURNAL: u32 = 0x4;
    const INCOMPAT_EXT4: u32 = 0x40 | 0x80 | 0x200; // extents, 64bit, flex_bg
    const RO_COMPAT_EXT4: u32 = 0x8 | 0x20 | 0x40; // huge_file, dir_nlink, extra_isize
    let fstype = if incompat & INCOMPAT_EXT4 != 0 || ro_compat & RO_COMPAT_EXT4 != 0 {
        "ext4"
    } else if compat & HAS_JOURNAL != 0 {
        "ext3"
    } else {
        "ext2"
    };
    Some(FsInfo {
        fstype,
        label: label_text(slice(buf, SB + 120, 16)?),
        uuid: uuid_text(slice(buf, SB + 104, 16)?),
    })
}

/// The size in bytes of the ext2/3/4 filesystem on a device or image file (its block count
/// times its block size, from the superblock), or `None` when it holds none.
pub fn ext_size(path: &Path) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    let mut buf = vec![0u8; 2048];
    file.read_exact(&mut buf).ok()?;
    ext_size_bytes(&buf)
}

fn ext_size_bytes(buf: &[u8]) -> Option<u64> {
    const SB: usize = 1024;
    const INCOMPAT_64BIT: u32 = 0x80;
    if le16(buf, SB + 56)? != 0xEF53 {
        return None;
    }
    let lo = u64::from(le32(buf, SB + 4)?);
    let hi = if le32(buf, SB + 96)? & INCOMPAT_64BIT != 0 {
        u64::from(le32(buf, SB + 0x150)?)
    } else {
        0
    };
    let block_size = 1024u64.checked_shl(le32(buf, SB + 24)?)?;
    ((hi << 32) | lo).checked_mul(block_size)
}

fn probe_iso9660(buf: &[u8]) -> Option<FsInfo> {
    const PVD: usize = 16 * 2048;
    if slice(buf, PVD + 1, 5)? != b"CD001" || buf.get(PVD)? != &1 {
        return None;
    }
    // The volume creation date is what blkid reports as the ISO's "UUID".
    let date = slice(buf, PVD + 813, 16)?;
    let uuid = date.iter().all(u8::is_ascii_digit).then(|| {
        let d = String::from_utf8_lossy(date);
        format!(
            "{}-{}-{}-{}-{}-{}-{}",
            &d[0..4],
            &d[4..6],
            &d[6..8],
            &d[8..10],
            &d[10..12],
            &d[12..14],
            &d[14..16]
        )
    });
    Some(FsInfo {
        fstype: "iso9660",
        label: label_text(slice(buf, PVD + 40, 32)?),
        uuid,
    })
}

fn probe_fat(buf: &[u8]) -> Option<FsInfo> {
    if slice(buf, 510, 2)? != [0x55, 0xAA] {
        return None;
    }
    let bytes_per_sector = le16(buf, 11)?;
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096) || *buf.get(13)? == 0 {
        return None;
    }
    let (label_at, serial_at) = if slice(buf, 82, 5)? == b"FAT32" {
        (71, 67)
    } else if slice(buf, 54, 3)? == b"FAT" {
        (43, 39)
    } else {
        return None;
    };
    let label = label_text(slice(buf, label_at, 11)?).filter(|l| l != "NO NAME");
    let serial = le32(buf, serial_at)?;
    Some(FsInfo {
        fstype: "vfat",
        label,
        uuid: Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF)),
    })
}

fn probe_squashfs(buf: &[u8]) -> Option<FsInfo> {
    (slice(buf, 0, 4)? == b"hsqs").then_some(FsInfo {
        fstype: "squashfs",
        label: None,
        uuid: None,
    })
}

fn probe_xfs(buf: &[u8]) -> Option<FsInfo> {
    (slice(buf, 0, 4)? == b"XFSB").then(|| FsInfo {
        fstype: "xfs",
        label: slice(buf, 108, 12).and_then(label_text),
        uuid: slice(buf, 32, 16).and_then(uuid_text),
    })
}

fn probe_btrfs(buf: &[u8]) -> Option<FsInfo> {
    const SB: usize = 0x10000;
    (slice(buf, SB + 0x40, 8)? == b"_BHRfS_M").then(|| FsInfo {
        fstype: "btrfs",
        label: slice(buf, SB + 0x12b, 256).and_then(label_text),
        uuid: slice(buf, SB + 0x20, 16).and_then(uuid_text),
    })
}

fn probe_swap(buf: &[u8]) -> Option<FsInfo> {
    (slice(buf, 4096 - 10, 10)? == b"SWAPSPACE2").then(|| FsInfo {
        fstype: "swap",
        label: slice(buf, 1024 + 28, 16).and_then(label_text),
        uuid: slice(buf, 1024 + 12, 16).and_then(uuid_text),
    })
}

/// Every block device in `sysfs` (normally `/sys`), except loop, ram and zram devices.
pub fn list(sysfs: &Path) -> Vec<BlockDevice> {
    let Ok(entries) = std::fs::read_dir(sysfs.join("class/block")) else {
        return Vec::new();
    };
    let mut devices: Vec<BlockDevice> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if ["loop", "ram", "zram", "dm-", "nbd"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                return None;
            }
            let dir = e.path();
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
            let size = read("size")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 512;
            Some(BlockDevice {
                path: PathBuf::from("/dev").join(&name),
                partition: dir.join("partition").exists(),
                removable: read("removable").is_some_and(|s| s.trim() == "1"),
                size,
                name,
            })
        })
        .collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    devices
}

/// What the partition table says about a partition (from the kernel's uevent in sysfs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionEntry {
    /// The GPT partition name (`PARTNAME`).
    pub name: Option<String>,
    /// The partition's unique GUID (`PARTUUID`), lower case.
    pub uuid: Option<String>,
    /// The partition number (`PARTN`).
    pub number: Option<u32>,
}

/// Parse a block device's `uevent` file.
pub fn parse_uevent(text: &str) -> PartitionEntry {
    let mut entry = PartitionEntry::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("PARTNAME", v)) => entry.name = Some(v.to_string()),
            Some(("PARTUUID", v)) => entry.uuid = Some(v.to_ascii_lowercase()),
            Some(("PARTN", v)) => entry.number = v.trim().parse().ok(),
            _ => {}
        }
    }
    entry
}

/// The partition table's entry for the block device `name` (empty for a whole disk).
pub fn partition_entry(sysfs: &Path, name: &str) -> PartitionEntry {
    std::fs::read_to_string(sysfs.join("class/block").join(name).join("uevent"))
        .map(|t| parse_uevent(&t))
        .unwrap_or_default()
}

/// The whole disk a partition belongs to (`vda` for `vda6`), from sysfs.
pub fn parent_disk(sysfs: &Path, name: &str) -> Option<PathBuf> {
    let link = std::fs::canonicalize(sysfs.join("class/block").join(name)).ok()?;
    let parent = link.parent()?.file_name()?.to_string_lossy().into_owned();
    Some(PathBuf::from("/dev").join(parent))
}

/// How a device is named in configuration: `LABEL=x`, `UUID=x` or a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Label(String),
    Uuid(String),
    /// A GPT partition's name (`PARTLABEL=`), as the kernel reports it in sysfs.
    PartLabel(String),
    /// A GPT partition's unique GUID (`PARTUUID=`).
    PartUuid(String),
    Path(PathBuf),
}

impl DeviceSpec {
    /// Parse `LABEL=x`, `UUID=x`, `PARTLABEL=x`, `PARTUUID=x` or `/dev/...`; anything else
    /// is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some(name) = s.strip_prefix("PARTLABEL=") {
            (!name.is_empty()).then(|| DeviceSpec::PartLabel(name.to_string()))
        } else if let Some(uuid) = s.strip_prefix("PARTUUID=") {
            (!uuid.is_empty()).then(|| DeviceSpec::PartUuid(uuid.to_ascii_lowercase()))
        } else if let Some(label) = s.strip_prefix("LABEL=") {
            (!label.is_empty()).then(|| DeviceSpec::Label(label.to_string()))
        } else if let Some(uuid) = s.strip_prefix("UUID=") {
            (!uuid.is_empty()).then(|| DeviceSpec::Uuid(uuid.to_ascii_lowercase()))
        } else if s.starts_with('/') {
            Some(DeviceSpec::Path(PathBuf::from(s)))
        } else {
            None
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Label(l) => write!(f, "LABEL={l}"),
            DeviceSpec::Uuid(u) => write!(f, "UUID={u}"),
            DeviceSpec::PartLabel(l) => write!(f, "PARTLABEL={l}"),
            DeviceSpec::PartUuid(u) => write!(f, "PARTUUID={u}"),
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A device that matched a [`DeviceSpec`], with what its superblock says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub device: BlockDevice,
    pub fs: Option<FsInfo>,
}

/// Find the device for `spec` among `devices` (probing each one's superblock).
pub fn resolve(spec: &DeviceSpec, devices: &[BlockDevice]) -> Option<Found> {
    resolve_with(spec, devices, &|d: &BlockDevice| probe(&d.path))
}

/// [`resolve`] with the probe supplied (tests use images instead of devices).
pub fn resolve_with(
    spec: &DeviceSpec,
    devices: &[BlockDevice],
    probe: &dyn Fn(&BlockDevice) -> Option<FsInfo>,
) -> Option<Found> {
    resolve_all_with(spec, devices, probe).into_iter().next()
}

/// Every device that matches `spec`, in the order of `devices`. A label or UUID that more
/// than one device carries is ambiguous: callers that trust what they mount refuse it.
pub fn resolve_all_with(
    spec: &DeviceSpec,
    devices: &[BlockDevice],
    probe: &dyn Fn(&BlockDevice) -> Option<FsInfo>,
) -> Vec<Found> {
    let mut found = Vec::new();
    for device in devices {
        if let DeviceSpec::Path(p) = spec {
            if *p == device.path {
                found.push(Found {
                    device: device.clone(),
                    fs: probe(device),
                });
            }
            continue;
        }
        if let DeviceSpec::PartLabel(_) | DeviceSpec::PartUuid(_) = spec {
            // The partition table names the device, whatever (if anything) is on it.
            let part = partition_entry(Path::new("/sys"), &device.name);
            let hit = match spec {
                DeviceSpec::PartLabel(l) => part.name.as_deref() == Some(l.as_str()),
                DeviceSpec::PartUuid(u) => part.uuid.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u)),
                _ => false,
            };
            if hit {
                found.push(Found {
                    device: device.clone(),
                    fs: probe(device),
                });
            }
            continue;
        }
        let Some(fs) = probe(device) else { continue };
        let hit = match spec {
            DeviceSpec::Label(l) => fs.label.as_deref() == Some(l.as_str()),
            DeviceSpec::Uuid(u) => fs.uuid.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u)),
            DeviceSpec::PartLabel(_) | DeviceSpec::PartUuid(_) | DeviceSpec::Path(_) => false,
        };
        if hit {
            found.push(Found {
                device: device.clone(),
                fs: Some(fs),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn tool(name: &str) -> bool {
        Command::new("sh")
            .args([
                "-c",
                &format!("command -v {name} || test -x /sbin/{name} || test -x /usr/sbin/{name}"),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn image(size_mib: u64) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(size_mib << 20).unwrap();
        f
    }

    #[test]
    fn partition_references_parse_and_uevents_name_partitions() {
        assert_eq!(
            DeviceSpec::parse("PARTLABEL=BERTH_STATE"),
            Some(DeviceSpec::PartLabel("BERTH_STATE".into()))
        );
        assert_eq!(
            DeviceSpec::parse("PARTUUID=ABC-1"),
            Some(DeviceSpec::PartUuid("abc-1".into()))
        );
        assert_eq!(DeviceSpec::parse("PARTLABEL="), None);
        assert_eq!(DeviceSpec::PartLabel("X".into()).to_string(), "PARTLABEL=X");
        let entry = parse_uevent(
            "MAJOR=253\nMINOR=6\nDEVNAME=vda6\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=6\nPARTNAME=BERTH_STATE\nPARTUUID=AB-CD\n",
        );
        assert_eq!(entry.name.as_deref(), Some("BERTH_STATE"));
        assert_eq!(entry.uuid.as_deref(), Some("ab-cd"));
        assert_eq!(entry.number, Some(6));
        assert_eq!(parse_uevent("DEVTYPE=disk\n"), PartitionEntry::default());
    }

    #[test]
    fn ext4_label_and_uuid() {
        if !tool("mkfs.ext4") {
            eprintln!("skipped: mkfs.ext4 missing");
            return;
        }
        let img = image(16);
        let ok = Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                "BERTH_STATE",
                "-U",
                "6a2d4c51-8d0e-4b1c-9f2a-1b2c3d4e5f60",
            ])
            .arg(img.path())
            .status()
            .unwrap();
        assert!(ok.success());
        let fs = probe(img.path()).unwrap();
        assert_eq!(fs.fstype, "ext4");
        assert_eq!(fs.label.as_deref(), Some("BERTH_STATE"));
        assert_eq!(fs.uuid.as_deref(), Some("6a2d4c51-8d0e-4b1c-9f2a-1b2c3d4e5f60"));
    }

    #[test]
    fn vfat_label() {
        if !tool("mkfs.vfat") {
            eprintln!("skipped: mkfs.vfat missing");
            return;
        }
        for (size, fat) in [(16, "16"), (64, "32")] {
            let img = image(size);
            let ok = Command::new("mkfs.vfat")
                .args(["-F", fat, "-n", "CIDATA", "-i", "1234ABCD"])
                .arg(img.path())
                .output()
                .unwrap();
            assert!(ok.status.success(), "{ok:?}");
            let fs = probe(img.path()).unwrap();
            assert_eq!(fs.fstype, "vfat");
            assert_eq!(fs.label.as_deref(), Some("CIDATA"), "FAT{fat}");
            assert_eq!(fs.uuid.as_deref(), Some("1234-ABCD"));
        }
    }

    #[test]
    fn iso9660_volume_id() {
        if !tool("xorriso") {
            eprintln!("skipped: xorriso missing");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("user-data"), "#cloud-config\n").unwrap();
        let iso = dir.path().join("seed.iso");
        let ok = Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-r", "-o"])
            .arg(&iso)
            .arg(dir.path().join("user-data"))
            .output()
            .unwrap();
        assert!(ok.status.success(), "{ok:?}");
        let fs = probe(&iso).unwrap();
        assert_eq!(fs.fstype, "iso9660");
        assert_eq!(fs.label.as_deref(), Some("cidata"));
    }

    #[test]
    fn blank_and_short_inputs_are_nothing() {
        assert_eq!(probe_bytes(&[0u8; PROBE_LEN]), None);
        assert_eq!(probe_bytes(&[]), None);
        assert_eq!(probe_bytes(b"hsq"), None);
    }

    #[test]
    fn squashfs_and_swap_magic() {
        let mut buf = vec![0u8; PROBE_LEN];
        buf[..4].copy_from_slice(b"hsqs");
        assert_eq!(probe_bytes(&buf).unwrap().fstype, "squashfs");
        let mut buf = vec![0u8; PROBE_LEN];
        buf[4086..4096].copy_from_slice(b"SWAPSPACE2");
        buf[1024 + 28..1024 + 32].copy_from_slice(b"swp1");
        let fs = probe_bytes(&buf).unwrap();
        assert_eq!((fs.fstype, fs.label.as_deref()), ("swap", Some("swp1")));
    }

    #[test]
    fn device_specs() {
        assert_eq!(
            DeviceSpec::parse("LABEL=BERTH_STATE"),
            Some(DeviceSpec::Label("BERTH_STATE".into()))
        );
        assert_eq!(
            DeviceSpec::parse("UUID=ABC"),
            Some(DeviceSpec::Uuid("abc".into()))
        );
        assert_eq!(
            DeviceSpec::parse("/dev/vda1"),
            Some(DeviceSpec::Path("/dev/vda1".into()))
        );
        assert_eq!(DeviceSpec::parse("LABEL="), None);
        assert_eq!(DeviceSpec::parse("vda"), None);
    }

    #[test]
    fn resolve_by_label_skips_other_devices() {
        let dev = |n: &str| BlockDevice {
            name: n.into(),
            path: PathBuf::from(format!("/dev/{n}")),
            partition: false,
            size: 0,
            removable: false,
        };
        let devices = [dev("sr0"), dev("vda"), dev("vdb")];
        let probe = |d: &BlockDevice| match d.name.as_str() {
            "vda" => Some(FsInfo {
                fstype: "vfat",
                label: Some("cidata".into()),
                uuid: None,
            }),
            "vdb" => Some(FsInfo {
                fstype: "ext4",
                label: Some("BERTH_STATE".into()),
                uuid: Some("u-1".into()),
            }),
            _ => None,
        };
        let found = resolve_with(&DeviceSpec::Label("BERTH_STATE".into()), &devices, &probe).unwrap();
        assert_eq!(found.device.name, "vdb");
        let found = resolve_with(&DeviceSpec::Uuid("U-1".into()), &devices, &probe).unwrap();
        assert_eq!(found.device.name, "vdb");
        assert!(resolve_with(&DeviceSpec::Label("RANCHER_STATE".into()), &devices, &probe).is_none());
        let found = resolve_with(&DeviceSpec::Path("/dev/sr0".into()), &devices, &probe).unwrap();
        assert_eq!((found.device.name.as_str(), found.fs), ("sr0", None));
    }

    proptest::proptest! {
        #[test]
        fn probing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..70000)) {
            let _ = probe_bytes(&bytes);
        }
    }
}
