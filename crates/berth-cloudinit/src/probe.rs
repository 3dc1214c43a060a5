//! What filesystem a block device (or image file) holds, read from its superblock.
//!
//! Cloud-init finds the NoCloud (`cidata`) and config-drive (`config-2`) volumes by their
//! label, and init finds the state partition the same way, so this reads the few bytes each
//! filesystem keeps its identity in: ext2/3/4, vfat (FAT12/16/32), iso9660 (the primary volume
//! descriptor), squashfs, xfs, btrfs, and swap areas. Nothing is mounted and nothing is written; reading
//! the first 68 KiB (and, for FAT, the start of the root directory) is enough.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The bytes read from the start of a device: enough for the btrfs superblock at 64 KiB.
const HEAD_LEN: usize = 0x10000 + 0x1000;

/// A filesystem type, as the kernel names it for `mount(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Ext2,
    Ext3,
    Ext4,
    Vfat,
    Iso9660,
    Squashfs,
    Xfs,
    Btrfs,
    /// A swap area (`mkswap`); `swapon(2)`, not `mount(2)`.
    Swap,
}

impl FsType {
    /// The name `mount(2)` takes (`ext4`, `vfat`, `iso9660`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
            FsType::Vfat => "vfat",
            FsType::Iso9660 => "iso9660",
            FsType::Squashfs => "squashfs",
            FsType::Xfs => "xfs",
            FsType::Btrfs => "btrfs",
            FsType::Swap => "swap",
        }
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a device holds: its filesystem type, label and UUID (as `blkid` spells them).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FsInfo {
    pub fstype: FsType,
    /// The volume label, trailing padding removed; `None` when the filesystem has none.
    pub label: Option<String>,
    /// The UUID in `blkid`'s spelling: `8-4-4-4-12` hex for ext/xfs/btrfs, `XXXX-XXXX` for
    /// FAT, the creation time `YYYY-MM-DD-HH-MM-SS-cc` for iso9660.
    pub uuid: Option<String>,
}

impl FsInfo {
    /// Whether the label is `label`, ignoring ASCII case (`cidata` and `CIDATA` are one).
    pub fn label_is(&self, label: &str) -> bool {
        self.label
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case(label))
    }
}

/// Probe a block device or an image file. `None` when it cannot be read or holds none of
/// the filesystems this module knows.
pub fn probe(path: impl AsRef<Path>) -> Option<FsInfo> {
    let mut file = std::fs::File::open(path.as_ref()).ok()?;
    probe_reader(&mut file)
}

/// Probe whatever `reader` reads from, starting at offset 0.
pub fn probe_reader<R: Read + Seek>(reader: &mut R) -> Option<FsInfo> {
    reader.seek(SeekFrom::Start(0)).ok()?;
    let head = read_up_to(reader, HEAD_LEN)?;
    squashfs(&head)
        .or_else(|| xfs(&head))
        .or_else(|| btrfs(&head))
        .or_else(|| swap(&head))
        .or_else(|| ext(&head))
        .or_else(|| iso9660(&head))
        .or_else(|| vfat(&head, reader))
}

/// Read up to `len` bytes (fewer when the device is smaller); `None` on a read error.
fn read_up_to<R: Read>(reader: &mut R, len: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    reader.take(len as u64).read_to_end(&mut buf).ok()?;
    Some(buf)
}

fn bytes(buf: &[u8], offset: usize, len: usize) -> Option<&[u8]> {
    buf.get(offset..offset.checked_add(len)?)
}

fn le16(buf: &[u8], offset: usize) -> Option<u16> {
    bytes(buf, offset, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn le32(buf: &[u8], offset: usize) -> Option<u32> {
    bytes(buf, offset, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Text padded with NULs (and, for FAT and ISO, spaces): `None` when nothing is left.
fn padded_text(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]);
    let text = text.trim_end_matches([' ', '\0']);
    (!text.is_empty()).then(|| text.to_string())
}

/// 16 bytes as `8-4-4-4-12` lower-case hex; `None` when all zero.
fn uuid_text(raw: &[u8]) -> Option<String> {
    if raw.len() != 16 || raw.iter().all(|&b| b == 0) {
        return None;
    }
    let h = hex::encode(raw);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn squashfs(head: &[u8]) -> Option<FsInfo> {
    (bytes(head, 0, 4)? == b"hsqs").then_some(FsInfo {
        fstype: FsType::Squashfs,
        label: None,
        uuid: None,
    })
}

fn xfs(head: &[u8]) -> Option<FsInfo> {
    if bytes(head, 0, 4)? != b"XFSB" {
        return None;
    }
    Some(FsInfo {
        fstype: FsType::Xfs,
        uuid: uuid_text(bytes(head, 32, 16)?),
        label: padded_text(bytes(head, 108, 12)?),
    })
}

fn btrfs(head: &[u8]) -> Option<FsInfo> {
    const SB: usize = 0x10000;
    if bytes(head, SB + 0x40, 8)? != b"_BHRfS_M" {
        return None;
    }
    Some(FsInfo {
        fstype: FsType::Btrfs,
        uuid: uuid_text(bytes(head, SB + 0x20, 16)?),
        label: padded_text(bytes(head, SB + 0x12b, 256)?),
    })
}

/// A Linux swap area: `SWAPSPACE2` at the end of the first page (page sizes 4 to 64 KiB),
/// the label and UUID in the version-1 header at 1 KiB.
fn swap(head: &[u8]) -> Option<FsInfo> {
    let magic_at_page_end = [4096usize, 8192, 16384, 65536]
        .iter()
        .any(|page| bytes(head, page - 10, 10) == Some(b"SWAPSPACE2".as_slice()));
    if !magic_at_page_end {
        return None;
    }
    Some(FsInfo {
        fstype: FsType::Swap,
        uuid: uuid_text(bytes(head, 1036, 16)?),
        label: padded_text(bytes(head, 1052, 16)?),
    })
}

fn ext(head: &[u8]) -> Option<FsInfo> {
    const SB: usize = 1024;
    const EXT2_MAGIC: u16 = 0xEF53;
    const COMPAT_HAS_JOURNAL: u32 = 0x4;
    // What ext3 understands; anything beyond is ext4 (as blkid decides).
    const EXT3_INCOMPAT: u32 = 0x2 | 0x4 | 0x10;
    const EXT3_RO_COMPAT: u32 = 0x1 | 0x2 | 0x4;
    if le16(head, SB + 56)? != EXT2_MAGIC {
        return None;
    }
    // s_log_block_size: block sizes of 1 KiB to 64 KiB only.
    if le32(head, SB + 24)? > 6 {
        return None;
    }
    let compat = le32(head, SB + 92)?;
    let incompat = le32(head, SB + 96)?;
    let ro_compat = le32(head, SB + 100)?;
    let fstype = if incompat & !EXT3_INCOMPAT != 0 || ro_compat & !EXT3_RO_COMPAT != 0 {
        FsType::Ext4
    } else if compat & COMPAT_HAS_JOURNAL != 0 {
        FsType::Ext3
    } else {
        FsType::Ext2
    };
    Some(FsInfo {
        fstype,
        uuid: uuid_text(bytes(head, SB + 104, 16)?),
        label: padded_text(bytes(head, SB + 120, 16)?),
    })
}

fn iso9660(head: &[u8]) -> Option<FsInfo> {
    const SECTOR: usize = 2048;
    // Volume descriptors start at sector 16; the primary one (type 1) is usually first.
    for sector in 16..(head.len() / SECTOR) {
        let vd = bytes(head, sector * SECTOR, SECTOR)?;
        if &vd[1..6] != b"CD001" {
            return None;
        }
        match vd[0] {
            1 => {
                return Some(FsInfo {
                    fstype: FsType::Iso9660,
                    label: padded_text(&vd[40..72]),
                    uuid: iso_uuid(&vd[813..830]),
                });
            }
            255 => return None,
            _ => continue,
        }
    }
    None
}

/// blkid's iso9660 "UUID": the volume creation time, `YYYY-MM-DD-HH-MM-SS-cc`.
fn iso_uuid(date: &[u8]) -> Option<String> {
    let digits = &date[..16];
    if !digits.iter().all(u8::is_ascii_digit) || digits.iter().all(|&b| b == b'0') {
        return None;
    }
    let d = std::str::from_utf8(digits).ok()?;
    Some(format!(
        "{}-{}-{}-{}-{}-{}-{}",
        &d[0..4],
        &d[4..6],
        &d[6..8],
        &d[8..10],
        &d[10..12],
        &d[12..14],
        &d[14..16]
    ))
}

/// FAT12/16/32, recognised by a plausible BIOS parameter block whose media byte is repeated
/// at the start of the first FAT (or which names itself FAT).
fn vfat<R: Read + Seek>(head: &[u8], reader: &mut R) -> Option<FsInfo> {
    let jump = bytes(head, 0, 3)?;
    if !(jump[0] == 0xEB && jump[2] == 0x90 || jump[0] == 0xE9) {
        return None;
    }
    let bytes_per_sector = le16(head, 11)? as u64;
    let sectors_per_cluster = *head.get(13)? as u64;
    let reserved = le16(head, 14)? as u64;
    let fats = *head.get(16)? as u64;
    let root_entries = le16(head, 17)? as u64;
    let total16 = le16(head, 19)? as u64;
    let media = *head.get(21)?;
    let fat_size16 = le16(head, 22)? as u64;
    let total32 = le32(head, 32)? as u64;
    let plausible = matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        && sectors_per_cluster.is_power_of_two()
        && reserved >= 1
        && (1..=2).contains(&fats)
        && (media == 0xF0 || media >= 0xF8)
        && (total16 != 0 || total32 != 0);
    if !plausible {
        return None;
    }
    let fat32 = fat_size16 == 0;
    let (fat_size, ext_bpb) = if fat32 {
        (le32(head, 36)? as u64, 64)
    } else {
        (fat_size16, 36)
    };
    let names_fat = bytes(head, if fat32 { 82 } else { 54 }, 3)? == b"FAT";
    let fat_start = (reserved * bytes_per_sector) as usize;
    let media_in_fat = head.get(fat_start).is_some_and(|&b| b == media);
    if fat_size == 0 || !(names_fat || media_in_fat) {
        return None;
    }
    let mut label = None;
    let mut uuid = None;
    if *head.get(ext_bpb + 2)? == 0x29 {
        let id = le32(head, ext_bpb + 3)?;
        uuid = Some(format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF));
        label = padded_text(bytes(head, ext_bpb + 7, 11)?).filter(|l| l != "NO NAME");
    }
    // The root directory's volume-label entry is what `fatlabel` and blkid read first.
    let root_dir_sector = if fat32 {
        let first_data = reserved + fats * fat_size;
        let root_cluster = le32(head, 44)? as u64;
        root_cluster
            .checked_sub(2)
            .map(|c| first_data + c * sectors_per_cluster)
    } else {
        Some(reserved + fats * fat_size)
    };
    let root_len = if fat32 {
        sectors_per_cluster * bytes_per_sector
    } else {
        root_entries * 32
    }
    .min(64 * 1024) as usize;
    if let Some(sector) = root_dir_sector
        && let Some(offset) = sector.checked_mul(bytes_per_sector)
        && reader.seek(SeekFrom::Start(offset)).is_ok()
        && let Some(dir) = read_up_to(reader, root_len)
        && let Some(dir_label) = fat_dir_label(&dir)
    {
        label = Some(dir_label);
    }
    Some(FsInfo {
        fstype: FsType::Vfat,
        label,
        uuid,
    })
}

/// The volume-label entry of a FAT directory (attribute 0x08, not a long-name entry).
fn fat_dir_label(dir: &[u8]) -> Option<String> {
    for entry in dir.chunks_exact(32) {
        match entry[0] {
            0x00 => return None,
            0xE5 => continue,
            _ => {}
        }
        let attr = entry[11];
        if attr & 0x0F == 0x0F {
            continue;
        }
        if attr & 0x08 != 0 {
            return padded_text(&entry[..11]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::path::PathBuf;
    use std::process::Command;

    /// Run a filesystem tool; `false` (and a note) when it is not installed, so the test
    /// can skip.
    fn tool(program: &str, args: &[&str]) -> bool {
        let candidates = [
            PathBuf::from(program),
            PathBuf::from("/usr/sbin").join(program),
            PathBuf::from("/sbin").join(program),
        ];
        for candidate in candidates {
            match Command::new(&candidate).args(args).output() {
                Ok(out) if out.status.success() => return true,
                Ok(out) => panic!(
                    "{program} {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(_) => continue,
            }
        }
        eprintln!("skipped: {program} is not installed");
        false
    }

    fn blank_image(dir: &Path, name: &str, mib: u64) -> PathBuf {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(mib * 1024 * 1024).unwrap();
        path
    }

    #[test]
    fn vfat_fat12_fat16_fat32_labels() {
        let dir = tempfile::tempdir().unwrap();
        for (bits, mib, label) in [("12", 2, "cidata"), ("16", 20, "CIDATA"), ("32", 40, "config-2")] {
            let img = blank_image(dir.path(), &format!("fat{bits}.img"), mib);
            let img_s = img.to_str().unwrap();
            if !tool("mkfs.vfat", &["-F", bits, "-n", label, "-i", "1234ABCD", img_s]) {
                return;
            }
            let info = probe(&img).unwrap();
            assert_eq!(info.fstype, FsType::Vfat, "FAT{bits}");
            assert!(info.label_is(label), "FAT{bits}: {info:?}");
            assert_eq!(info.uuid.as_deref(), Some("1234-ABCD"));
        }
    }

    #[test]
    fn vfat_without_label() {
        let dir = tempfile::tempdir().unwrap();
        let img = blank_image(dir.path(), "nolabel.img", 2);
        if !tool("mkfs.vfat", &[img.to_str().unwrap()]) {
            return;
        }
        let info = probe(&img).unwrap();
        assert_eq!(info.fstype, FsType::Vfat);
        assert_eq!(info.label, None);
    }

    #[test]
    fn ext2_ext3_ext4() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = "0b7c8f5e-1d2a-4c3b-9e8f-123456789abc";
        for (mkfs, fstype) in [
            ("mkfs.ext2", FsType::Ext2),
            ("mkfs.ext3", FsType::Ext3),
            ("mkfs.ext4", FsType::Ext4),
        ] {
            let img = blank_image(dir.path(), &format!("{mkfs}.img"), 8);
            if !tool(
                mkfs,
                &["-q", "-F", "-L", "BERTH_STATE", "-U", uuid, img.to_str().unwrap()],
            ) {
                return;
            }
            let info = probe(&img).unwrap();
            assert_eq!(info.fstype, fstype);
            assert_eq!(info.label.as_deref(), Some("BERTH_STATE"));
            assert_eq!(info.uuid.as_deref(), Some(uuid));
        }
    }

    #[test]
    fn iso9660_volume_id() {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        std::fs::create_dir(&content).unwrap();
        std::fs::write(content.join("user-data"), "#cloud-config\n").unwrap();
        let img = dir.path().join("seed.iso");
        if !tool(
            "xorriso",
            &[
                "-as",
                "mkisofs",
                "-quiet",
                "-V",
                "cidata",
                "-J",
                "-R",
                "-o",
                img.to_str().unwrap(),
                content.to_str().unwrap(),
            ],
        ) {
            return;
        }
        let info = probe(&img).unwrap();
        assert_eq!(info.fstype, FsType::Iso9660);
        assert!(info.label_is("cidata"), "{info:?}");
        let uuid = info.uuid.unwrap();
        assert_eq!(uuid.len(), "YYYY-MM-DD-HH-MM-SS-cc".len(), "{uuid}");
    }

    #[test]
    fn squashfs_magic() {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        std::fs::create_dir(&content).unwrap();
        std::fs::write(content.join("f"), "x").unwrap();
        let img = dir.path().join("os.img");
        if !tool(
            "mksquashfs",
            &[
                content.to_str().unwrap(),
                img.to_str().unwrap(),
                "-quiet",
                "-noappend",
                "-no-progress",
            ],
        ) {
            return;
        }
        assert_eq!(
            probe(&img),
            Some(FsInfo {
                fstype: FsType::Squashfs,
                label: None,
                uuid: None
            })
        );
    }

    #[test]
    fn swap_area() {
        let dir = tempfile::tempdir().unwrap();
        let img = blank_image(dir.path(), "swap.img", 4);
        let uuid = "4041d739-2b55-42be-9403-f40e50d1f0df";
        if !tool("mkswap", &["-L", "SWAPX", "-U", uuid, img.to_str().unwrap()]) {
            return;
        }
        let info = probe(&img).unwrap();
        assert_eq!(info.fstype, FsType::Swap);
        assert_eq!(info.label.as_deref(), Some("SWAPX"));
        assert_eq!(info.uuid.as_deref(), Some(uuid));
    }

    #[test]
    fn xfs_and_btrfs_when_the_tools_exist() {
        let dir = tempfile::tempdir().unwrap();
        let img = blank_image(dir.path(), "xfs.img", 300);
        if tool("mkfs.xfs", &["-q", "-L", "xlabel", img.to_str().unwrap()]) {
            let info = probe(&img).unwrap();
            assert_eq!(info.fstype, FsType::Xfs);
            assert_eq!(info.label.as_deref(), Some("xlabel"));
            assert!(info.uuid.is_some());
        }
        let img = blank_image(dir.path(), "btrfs.img", 128);
        if tool("mkfs.btrfs", &["-q", "-L", "blabel", img.to_str().unwrap()]) {
            let info = probe(&img).unwrap();
            assert_eq!(info.fstype, FsType::Btrfs);
            assert_eq!(info.label.as_deref(), Some("blabel"));
        }
    }

    /// Hand-made superblocks, so these checks run even without the tools.
    #[test]
    fn synthetic_superblocks() {
        let mut xfs_img = vec![0u8; 4096];
        xfs_img[..4].copy_from_slice(b"XFSB");
        xfs_img[32..48].copy_from_slice(&[0x11; 16]);
        xfs_img[108..113].copy_from_slice(b"state");
        let info = probe_reader(&mut Cursor::new(xfs_img)).unwrap();
        assert_eq!(info.fstype, FsType::Xfs);
        assert_eq!(info.label.as_deref(), Some("state"));
        assert_eq!(info.uuid.as_deref(), Some("11111111-1111-1111-1111-111111111111"));

        let mut btrfs_img = vec![0u8; HEAD_LEN];
        btrfs_img[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        btrfs_img[0x1012b..0x10130].copy_from_slice(b"bvol1");
        let info = probe_reader(&mut Cursor::new(btrfs_img)).unwrap();
        assert_eq!(info.fstype, FsType::Btrfs);
        assert_eq!(info.label.as_deref(), Some("bvol1"));
        assert_eq!(info.uuid, None);
    }

    #[test]
    fn unknown_and_short_inputs() {
        assert_eq!(probe_reader(&mut Cursor::new(Vec::new())), None);
        assert_eq!(probe_reader(&mut Cursor::new(vec![0u8; 100])), None);
        assert_eq!(probe_reader(&mut Cursor::new(vec![0xFFu8; HEAD_LEN])), None);
        assert_eq!(probe("/nonexistent/device"), None);
        // An MBR with a boot signature is not a FAT filesystem.
        let mut mbr = vec![0u8; 4096];
        mbr[0] = 0xEB;
        mbr[2] = 0x90;
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        assert_eq!(probe_reader(&mut Cursor::new(mbr)), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..70000)) {
            let _ = probe_reader(&mut Cursor::new(data));
        }

        #[test]
        fn never_panics_on_fat_like_headers(
            header in proptest::collection::vec(proptest::num::u8::ANY, 90),
            tail in 0usize..70000,
        ) {
            let mut data = header;
            data[0] = 0xEB;
            data[2] = 0x90;
            data.resize(90 + tail, 0);
            let _ = probe_reader(&mut Cursor::new(data));
        }
    }
}
