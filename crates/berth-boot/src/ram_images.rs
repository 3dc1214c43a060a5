//! A kernel + initrd boot (PXE, `cargo xtask run`) carries the OS image and the system images
//! in the initramfs, which is RAM that no one can reclaim: about 120 MiB for the whole uptime.
//! With a state partition they need not stay there. Stage 1 copies each image to
//! `/var/lib/berth/boot-images/` (once: a copy that is already there, byte for byte the same,
//! is used as it is), points the loop device that serves it at the copy (`LOOP_CHANGE_FD`,
//! which the kernel allows for a read-only loop device and a file of the same size), and
//! switch_root then deletes the initramfs, freeing its memory. A copy that differs (another
//! build, a damaged disk) is replaced; when the copy cannot be made (a full disk) the image
//! stays in RAM and the boot goes on.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the copies live, under the new root.
pub const DIR: &str = "var/lib/berth/boot-images";

const CHUNK: usize = 1 << 20;
/// Room a copy must leave free on the state partition, for the user's data.
const FREE_AFTER: u64 = 256 << 20;
/// linux/magic.h (nix names no RAMFS_MAGIC).
const RAMFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x8584_58f6);

/// What became of one image.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    /// The copy was made (first boot of this initrd on this state partition).
    Copied,
    /// The state partition already held the same bytes.
    AlreadyThere,
}

/// Whether `path` is a file held in RAM (ramfs or tmpfs: the initramfs), and `dir` is on a
/// disk filesystem (a state partition, not the tmpfs `/var` of a boot without one).
pub fn worth_moving(path: &Path, dir: &Path) -> bool {
    let in_ram = |p: &Path| {
        nix::sys::statfs::statfs(p)
            .map(|fs| {
                let t = fs.filesystem_type();
                t == nix::sys::statfs::TMPFS_MAGIC || t == RAMFS_MAGIC
            })
            .unwrap_or(true)
    };
    path.is_file() && in_ram(path) && !in_ram(dir)
}

/// Make `dest` hold the bytes of `src`: compare an existing `dest` (same size, same bytes) and
/// copy only when it differs, through a temporary file that is synced and renamed into place.
pub fn copy_once(src: &Path, dest: &Path) -> std::io::Result<Moved> {
    let size = std::fs::metadata(src)?.len();
    if std::fs::metadata(dest).is_ok_and(|m| m.len() == size) && same_bytes(src, dest)? {
        return Ok(Moved::AlreadyThere);
    }
    // Room is needed only for a new copy: one already there keeps serving on a full disk.
    let free = nix::sys::statvfs::statvfs(dest.parent().unwrap_or(dest))
        .map(|fs| fs.blocks_available().saturating_mul(fs.fragment_size()))
        .unwrap_or(0);
    let had = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    if free + had < size + FREE_AFTER {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "the state partition has {} MiB free, and a copy needs {} MiB plus {} MiB left over",
                free >> 20,
                size >> 20,
                FREE_AFTER >> 20
            ),
        ));
    }
    let tmp = dest.with_extension("img.partial");
    let _ = std::fs::remove_file(&tmp);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&tmp)?;
    let copied = std::io::copy(&mut File::open(src)?, &mut out).and_then(|n| out.sync_all().map(|()| n));
    let copied = match copied {
        Ok(n) => n,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if copied != size {
        let _ = std::fs::remove_file(&tmp);
        return Err(std::io::Error::other(format!("copied {copied} of {size} bytes")));
    }
    std::fs::rename(&tmp, dest)?;
    if let Some(dir) = dest.parent() {
        File::open(dir)?.sync_all()?;
    }
    drop_cache(&out);
    Ok(Moved::Copied)
}

/// Whether the files hold the same bytes. `copy` (on the state partition) is read with direct
/// I/O where the filesystem allows it: no page cache to fill and drop, and much faster in a VM.
fn same_bytes(ram: &Path, copy: &Path) -> std::io::Result<bool> {
    let mut fa = File::open(ram)?;
    let mut fb = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(copy)
        .or_else(|_| File::open(copy))?;
    let mut ba = vec![0u8; CHUNK];
    // O_DIRECT needs a buffer aligned to the logical block size: 4 KiB covers every disk.
    let mut backing = vec![0u8; CHUNK + 4096];
    let offset = backing.as_ptr().align_offset(4096);
    let bb = &mut backing[offset..offset + CHUNK];
    let same = loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, bb)?;
        if n != m || !equal(&ba[..n], &bb[..m]) {
            break false;
        }
        if n == 0 {
            break true;
        }
    };
    drop_cache(&fb);
    Ok(same)
}

/// `a == b` by machine words: the C library's memcmp (musl's) goes byte by byte, which costs
/// seconds for the OS image under emulation.
fn equal(a: &[u8], b: &[u8]) -> bool {
    const WORD: usize = std::mem::size_of::<u64>();
    if a.len() != b.len() {
        return false;
    }
    let (wa, ta) = a.split_at(a.len() - a.len() % WORD);
    let (wb, tb) = b.split_at(wa.len());
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; WORD]));
    wa.chunks_exact(WORD)
        .zip(wb.chunks_exact(WORD))
        .all(|(x, y)| word(x) == word(y))
        && ta == tb
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn drop_cache(file: &File) {
    // SAFETY: advice only; the descriptor is open.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// The block device a filesystem mounted on `mountpoint` comes from (`/dev/loopN`).
pub fn device_of(mountpoint: &Path) -> std::io::Result<PathBuf> {
    let dev = std::fs::metadata(mountpoint)?.dev();
    let sys = format!("/sys/dev/block/{}:{}/uevent", libc::major(dev), libc::minor(dev));
    let uevent = std::fs::read_to_string(&sys)?;
    uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map(|name| Path::new("/dev").join(name))
        .ok_or_else(|| std::io::Error::other(format!("{sys} names no device")))
}

/// Move one image served on `mountpoint` from RAM to `dir` (created 0700) under `name`.
pub fn move_image(image: &Path, mountpoint: &Path, dir: &Path, name: &str) -> Result<Moved, String> {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let device = device_of(mountpoint)
        .map_err(|e| format!("cannot find the device of {}: {e}", mountpoint.display()))?;
    let dest = dir.join(name);
    let moved = copy_once(image, &dest)
        .map_err(|e| format!("cannot copy {} to {}: {e}", image.display(), dest.display()))?;
    crate::loopdev::change_backing_file(&device, &dest)
        .map_err(|e| format!("cannot point {} at {}: {e}", device.display(), dest.display()))?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    fn write(path: &Path, bytes: &[u8]) {
        let mut f = File::create(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn a_copy_is_made_once_and_replaced_when_it_differs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("os.img");
        let dest = dir.path().join("copy.img");
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        write(&src, &data);
        assert_eq!(copy_once(&src, &dest).unwrap(), Moved::Copied);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(copy_once(&src, &dest).unwrap(), Moved::AlreadyThere);
        // One byte altered in the last chunk: the copy is made again.
        let mut altered = data.clone();
        *altered.last_mut().unwrap() ^= 1;
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        write(&dest, &altered);
        assert_eq!(copy_once(&src, &dest).unwrap(), Moved::Copied);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        // Another size (another build): replaced too; no partial file is left.
        write(&src, &data[..CHUNK]);
        assert_eq!(copy_once(&src, &dest).unwrap(), Moved::Copied);
        assert_eq!(std::fs::read(&dest).unwrap(), &data[..CHUNK]);
        assert!(!dest.with_extension("img.partial").exists());
    }

    #[test]
    fn equal_compares_every_byte() {
        let a: Vec<u8> = (0..1003).map(|i| (i % 7) as u8).collect();
        assert!(equal(&a, &a.clone()));
        for at in [0, 8, 999, 1002] {
            let mut b = a.clone();
            b[at] ^= 0x80;
            assert!(!equal(&a, &b), "a change at {at} was missed");
        }
        assert!(!equal(&a, &a[..1002]));
        assert!(equal(&[], &[]));
    }

    #[test]
    fn a_missing_source_is_an_error_and_leaves_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("copy.img");
        write(&dest, b"kept");
        assert!(copy_once(&dir.path().join("absent.img"), &dest).is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"kept");
    }

    /// The kernel side: a read-only loop device serving a file is pointed at its copy, and
    /// reads the copy's bytes from then on. Needs root and loop devices (as `cargo xtask test`
    /// runs).
    #[test]
    fn a_read_only_loop_device_switches_to_the_copy() {
        if !nix::unistd::geteuid().is_root() || !Path::new("/dev/loop-control").exists() {
            eprintln!("skipped: needs root and /dev/loop-control");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("ram.img");
        let data: Vec<u8> = (0..CHUNK).map(|i| (i % 253) as u8).collect();
        write(&src, &data);
        let device = crate::loopdev::attach(&src).unwrap();
        let copies = dir.path().join("copies");
        std::fs::create_dir(&copies).unwrap();
        let dest = copies.join("os.img");
        assert_eq!(copy_once(&src, &dest).unwrap(), Moved::Copied);
        crate::loopdev::change_backing_file(&device.path, &dest).unwrap();
        let name = device.path.file_name().unwrap().to_string_lossy().to_string();
        let backing = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).unwrap();
        assert_eq!(backing.trim(), dest.display().to_string());
        // The original can go; the device still reads the same bytes.
        std::fs::remove_file(&src).unwrap();
        let mut read = vec![0u8; CHUNK];
        read_full(&mut File::open(&device.path).unwrap(), &mut read).unwrap();
        assert_eq!(read, data);
        // A file of another size is refused by the kernel.
        let other = copies.join("other.img");
        write(&other, &data[..4096]);
        assert!(crate::loopdev::change_backing_file(&device.path, &other).is_err());
    }
}
