//! dm-verity: the kernel checks every block of the OS image and the system images, each time it
//! reads one from the boot medium, against a SHA-256 hash tree whose root hash the slim initrd
//! carries (`berth/verity.json`). The build appends the tree to each image (`veritysetup
//! format --no-superblock`, the tree right after the data, 4 KiB blocks), so one file holds
//! both and a slot, the ISO or an upgrade bundle moves them together. A block altered on the
//! medium, now or after the boot, reads as an I/O error, never as other data.
//!
//! The device-mapper ioctls are made here (`linux/dm-ioctl.h`, interface 4): the `devicemapper`
//! crate needs libdevmapper and bindgen at build time, which a static musl PID 1 cannot link.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The verity parameters of this build's images, in the slim initrd.
pub const PARAMS: &str = "berth/verity.json";
/// Data and hash block size, in bytes.
pub const BLOCK: u64 = 4096;
/// The kernel modules the verity target needs (their dependencies come with them).
pub const MODULES: &[&str] = &["dm-verity"];

/// One image: `data_blocks` blocks of squashfs, then its hash tree from block `data_blocks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub data_blocks: u64,
    /// SHA-256 root hash of the tree, hex.
    pub root_hash: String,
    /// The salt hashed before each block, hex.
    pub salt: String,
}

/// The images of one build, by file name under `berth/` (`os.img`, `images.img`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(pub BTreeMap<String, Image>);

impl Params {
    /// Parse `berth/verity.json`; `os.img` must be there and every field well formed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let params: Params = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !params.0.contains_key("os.img") {
            return Err("no entry for os.img".to_string());
        }
        for (name, image) in &params.0 {
            let hex_ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_ok(&image.root_hash, 64) {
                return Err(format!("{name}: root_hash is not a SHA-256 digest"));
            }
            if image.salt.len() % 2 != 0 || image.salt.len() > 512 || !hex_ok(&image.salt, image.salt.len()) {
                return Err(format!("{name}: salt is not hex"));
            }
            if image.data_blocks == 0 {
                return Err(format!("{name}: data_blocks is 0"));
            }
        }
        Ok(params)
    }

    pub fn get(&self, name: &str) -> Option<&Image> {
        self.0.get(name)
    }
}

impl Image {
    /// The verity target's line (`Documentation/admin-guide/device-mapper/verity.rst`): format
    /// 1, data and hash on the same device, the tree right after the data.
    pub fn table(&self, device: &Path) -> String {
        let dev = device.display();
        format!(
            "1 {dev} {dev} {BLOCK} {BLOCK} {n} {n} sha256 {} {}",
            self.root_hash,
            if self.salt.is_empty() { "-" } else { &self.salt },
            n = self.data_blocks,
        )
    }

    /// Length of the data in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.data_blocks * (BLOCK / 512)
    }
}

// linux/dm-ioctl.h
const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
const DM_READONLY_FLAG: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; DM_NAME_LEN],
    uuid: [u8; DM_UUID_LEN],
    data: [u8; 7],
}

#[repr(C)]
struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; 16],
}

const HEADER: usize = std::mem::size_of::<DmIoctl>();
const SPEC: usize = std::mem::size_of::<DmTargetSpec>();

/// `_IOWR(0xfd, nr, struct dm_ioctl)`.
const fn dm_request(nr: u32) -> libc::c_ulong {
    ((3u32 << 30) | ((HEADER as u32) << 16) | (0xfd << 8) | nr) as libc::c_ulong
}
const DM_DEV_CREATE: libc::c_ulong = dm_request(3);
const DM_DEV_REMOVE: libc::c_ulong = dm_request(4);
const DM_DEV_SUSPEND: libc::c_ulong = dm_request(6);
const DM_TABLE_LOAD: libc::c_ulong = dm_request(9);

/// A device-mapper request: the header, then (for a table) one target and its parameters.
/// Kept as u64 words so the header is aligned as the kernel expects.
struct Request(Vec<u64>);

impl Request {
    fn new(name: &str, flags: u32, target: Option<(u64, &str, &str)>) -> Result<Self, String> {
        if name.len() >= DM_NAME_LEN {
            return Err(format!("device-mapper name {name} is too long"));
        }
        let params_len = target.map(|(_, _, p)| p.len() + 1).unwrap_or(0);
        let size = (HEADER + SPEC + params_len).next_multiple_of(8);
        let mut header = DmIoctl {
            version: [4, 0, 0],
            data_size: size as u32,
            data_start: HEADER as u32,
            target_count: u32::from(target.is_some()),
            open_count: 0,
            flags,
            event_nr: 0,
            padding: 0,
            dev: 0,
            name: [0; DM_NAME_LEN],
            uuid: [0; DM_UUID_LEN],
            data: [0; 7],
        };
        header.name[..name.len()].copy_from_slice(name.as_bytes());
        let mut words = vec![0u64; size / 8];
        // SAFETY: `words` holds `size` >= HEADER + SPEC bytes, aligned to 8 like both structs.
        let bytes = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), size) };
        // SAFETY: DmIoctl is plain old data of HEADER bytes.
        bytes[..HEADER].copy_from_slice(unsafe {
            std::slice::from_raw_parts((&header as *const DmIoctl).cast::<u8>(), HEADER)
        });
        if let Some((sectors, kind, params)) = target {
            let mut spec = DmTargetSpec {
                sector_start: 0,
                length: sectors,
                status: 0,
                next: (size - HEADER) as u32,
                target_type: [0; 16],
            };
            spec.target_type[..kind.len()].copy_from_slice(kind.as_bytes());
            // SAFETY: DmTargetSpec is plain old data of SPEC bytes.
            bytes[HEADER..HEADER + SPEC].copy_from_slice(unsafe {
                std::slice::from_raw_parts((&spec as *const DmTargetSpec).cast::<u8>(), SPEC)
            });
            bytes[HEADER + SPEC..HEADER + SPEC + params.len()].copy_from_slice(params.as_bytes());
        }
        Ok(Self(words))
    }

    fn send(&mut self, control: &std::fs::File, request: libc::c_ulong) -> std::io::Result<DmIoctl> {
        // SAFETY: the buffer starts with a struct dm_ioctl whose data_size is the buffer's size.
        let rc = unsafe { libc::ioctl(control.as_raw_fd(), request as _, self.0.as_mut_ptr()) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel wrote back a struct dm_ioctl at the start of the buffer.
        Ok(unsafe { std::ptr::read(self.0.as_ptr().cast::<DmIoctl>()) })
    }
}

fn control() -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/mapper/control")
}

/// A verity device over `device` (the loop device of an image file), named `name`, read-only.
/// Returns its node, `/dev/mapper/<name>`.
pub fn open(name: &str, device: &Path, image: &Image) -> Result<PathBuf, String> {
    let control = control().map_err(|e| {
        format!("opening /dev/mapper/control: {e} (is the kernel's dm-verity module loaded?)")
    })?;
    let created = Request::new(name, DM_READONLY_FLAG, None)?
        .send(&control, DM_DEV_CREATE)
        .map_err(|e| format!("creating the device-mapper device {name}: {e}"))?;
    let table = image.table(device);
    let loaded = Request::new(name, DM_READONLY_FLAG, Some((image.sectors(), "verity", &table)))?
        .send(&control, DM_TABLE_LOAD)
        .and_then(|_| {
            Request::new(name, 0, None)
                .map_err(std::io::Error::other)?
                .send(&control, DM_DEV_SUSPEND)
        });
    if let Err(e) = loaded {
        let _ = remove(name);
        return Err(format!(
            "the verity table for {} was refused: {e} (the kernel log says why)",
            device.display()
        ));
    }
    // The kernel's dev_t encoding (huge_encode_dev).
    let major = ((created.dev >> 8) & 0xfff) as u32;
    let minor = ((created.dev & 0xff) | ((created.dev >> 12) & 0xfff00)) as u32;
    let node = PathBuf::from("/dev/mapper").join(name);
    let made = std::fs::create_dir_all("/dev/mapper").and_then(|()| {
        let _ = std::fs::remove_file(&node);
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(major.into(), minor.into()),
        )
        .map_err(std::io::Error::from)
    });
    if let Err(e) = made {
        let _ = remove(name);
        return Err(format!("making {}: {e}", node.display()));
    }
    Ok(node)
}

/// Load [`MODULES`] from the initramfs (only a boot from a medium needs them).
pub fn load_modules() {
    let index = match berth_kmod::ModuleIndex::for_running_kernel(Path::new("/")) {
        Ok(index) => index,
        Err(e) => {
            tracing::warn!("no kernel modules for dm-verity: {e}");
            return;
        }
    };
    for name in MODULES {
        if let Err(e) = berth_kmod::modprobe(&index, &mut berth_kmod::KernelModuleLoader, name, "") {
            tracing::warn!("cannot load {name}: {e}");
        }
    }
}

/// Remove the device-mapper device `name` (after a refused image; nothing may hold it open).
pub fn remove(name: &str) -> Result<(), String> {
    let control = control().map_err(|e| format!("opening /dev/mapper/control: {e}"))?;
    Request::new(name, 0, None)?
        .send(&control, DM_DEV_REMOVE)
        .map_err(|e| format!("removing the device-mapper device {name}: {e}"))?;
    let _ = std::fs::remove_file(Path::new("/dev/mapper").join(name));
    Ok(())
}

/// Read all of `device` once: through verity, every block is checked against the tree, so an
/// image altered anywhere is found now, at boot, and not when a file in it is first read. The
/// blocks read stay in the page cache for the mount that follows.
pub fn read_all(device: &Path) -> Result<Duration, String> {
    let started = Instant::now();
    let mut file = std::fs::File::open(device).map_err(|e| format!("opening {}: {e}", device.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(started.elapsed()),
            Ok(n) => offset += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "reading byte {offset} failed ({e}): that block does not match the hash tree \
                     (the image was altered) or the medium cannot be read; `dmesg` says which"
                ));
            }
        }
    }
}

/// Whether `path` is a block device (a verity device) rather than an image file.
pub fn is_block_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        Image {
            data_blocks: 22000,
            root_hash: "ab".repeat(32),
            salt: "cd".repeat(32),
        }
    }

    #[test]
    fn structs_and_requests_have_the_kernel_layout() {
        // linux/dm-ioctl.h: struct dm_ioctl is 312 bytes, dm_target_spec 40; the request
        // numbers as the kernel headers define them (also in linux-raw-sys).
        assert_eq!(HEADER, 312);
        assert_eq!(SPEC, 40);
        assert_eq!(DM_DEV_CREATE, 3241737475);
        assert_eq!(DM_DEV_REMOVE, 3241737476);
        assert_eq!(DM_DEV_SUSPEND, 3241737478);
        assert_eq!(DM_TABLE_LOAD, 3241737481);

        let table = image().table(Path::new("/dev/loop3"));
        let request = Request::new(
            "berth-os",
            DM_READONLY_FLAG,
            Some((image().sectors(), "verity", &table)),
        )
        .unwrap();
        let bytes: Vec<u8> = request.0.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let data_size = u32::from_ne_bytes(bytes[12..16].try_into().unwrap()) as usize;
        assert_eq!(data_size, bytes.len());
        assert_eq!(
            u32::from_ne_bytes(bytes[16..20].try_into().unwrap()),
            312,
            "data_start"
        );
        assert_eq!(
            u32::from_ne_bytes(bytes[20..24].try_into().unwrap()),
            1,
            "target_count"
        );
        assert_eq!(&bytes[48..56], b"berth-os");
        assert_eq!(
            u64::from_ne_bytes(bytes[320..328].try_into().unwrap()),
            22000 * 8,
            "length"
        );
        assert_eq!(&bytes[336..342], b"verity");
        let params = &bytes[352..352 + table.len() + 1];
        assert_eq!(&params[..table.len()], table.as_bytes());
        assert_eq!(params[table.len()], 0, "the parameters end with NUL");
    }

    #[test]
    fn the_table_names_the_tree_after_the_data() {
        assert_eq!(
            image().table(Path::new("/dev/loop3")),
            format!(
                "1 /dev/loop3 /dev/loop3 4096 4096 22000 22000 sha256 {} {}",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
    }

    #[test]
    fn params_are_checked_before_they_are_trusted() {
        let good = serde_json::to_string(&Params(BTreeMap::from([("os.img".to_string(), image())]))).unwrap();
        assert_eq!(Params::parse(&good).unwrap().get("os.img"), Some(&image()));
        let no_os = good.replace("os.img", "images.img");
        assert!(Params::parse(&no_os).unwrap_err().contains("os.img"));
        let short = good.replace(&"ab".repeat(32), "abc");
        assert!(Params::parse(&short).unwrap_err().contains("root_hash"));
        let salt = good.replace(&"cd".repeat(32), "xyz");
        assert!(Params::parse(&salt).unwrap_err().contains("salt"));
        assert!(Params::parse("{").is_err());
        assert!(
            Params::parse(&good.replace("salt", "pepper")).is_err(),
            "unknown fields are refused"
        );
    }
}
