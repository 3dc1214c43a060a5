//! Compressed swap in RAM (`berth.zram`): `/dev/zram0`, sized in percent of the memory the
//! kernel manages, made a swap device and turned on by init before System Docker starts.
//!
//! Under memory pressure the kernel then compresses idle anonymous memory (the engines' Go
//! heaps, the daemons') instead of running the OOM killer: what a small machine needs when a
//! user loads a big image into the tmpfs `/var` of a boot from RAM.

use berth_config::schema::berth::ZramConfig;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const DEVICE: &str = "/dev/zram0";
const SYSFS: &str = "/sys/block/zram0";
/// Swap priority: above any swap on a disk that a user adds, so RAM is used first.
const PRIORITY: libc::c_int = 100;
/// With swap in RAM, swapping idle anonymous pages is cheaper than dropping the file pages
/// (the engines' code) that are read again at once; `berth.sysctl` may set it otherwise.
const SWAPPINESS: &str = "100";
/// The largest device: zram keeps a table entry (16 bytes) per page of its size whether used
/// or not, 32 MiB at this size (Fedora's zram-generator caps its default at 8 GiB too).
const MAX_BYTES: u64 = 8 << 30;
/// swapon(2)'s flags (linux/swap.h; the libc crate does not have them): use the priority in
/// the low bits.
const SWAP_FLAG_PREFER: libc::c_int = 0x8000;
const SWAP_FLAG_PRIO_MASK: libc::c_int = 0x7fff;
/// Where the kernel's swap signature ends: `SWAPSPACE2` fills the last 10 bytes of page 0.
const MAGIC: &[u8; 10] = b"SWAPSPACE2";

/// Set up and turn on the zram swap `config` asks for: its size in bytes, or `Ok(None)` when
/// it is off or already on (a second stage 2 in the same boot).
pub fn setup(config: &ZramConfig, index: &berth_kmod::ModuleIndex) -> Result<Option<u64>, String> {
    use berth_runtime::meminfo;
    if config.size_percent == 0 {
        return Ok(None);
    }
    let text = std::fs::read_to_string(meminfo::PATH).map_err(|e| format!("{}: {e}", meminfo::PATH))?;
    let mem_total = meminfo::bytes(&text, "MemTotal").ok_or("/proc/meminfo has no MemTotal")?;
    let page = page_size();
    let bytes = size_bytes(mem_total, config.size_percent, page);
    if bytes < 16 * page {
        return Err(format!("{bytes} bytes is too small for a swap device"));
    }
    berth_kmod::modprobe(index, &mut berth_kmod::KernelModuleLoader, "zram", "")
        .map_err(|e| format!("module zram: {e}"))?;
    let disksize = Path::new(SYSFS).join("disksize");
    let current = std::fs::read_to_string(&disksize).map_err(|e| format!("{}: {e}", disksize.display()))?;
    if current.trim() != "0" {
        return Ok(None);
    }
    std::fs::write(&disksize, bytes.to_string()).map_err(|e| format!("{}: {e}", disksize.display()))?;
    let header = swap_header(page, bytes, &uuid());
    std::fs::OpenOptions::new()
        .write(true)
        .open(DEVICE)
        .and_then(|mut f| f.write_all(&header))
        .map_err(|e| format!("writing the swap signature on {DEVICE}: {e}"))?;
    swapon(Path::new(DEVICE))?;
    if let Err(e) = std::fs::write("/proc/sys/vm/swappiness", SWAPPINESS) {
        tracing::warn!("cannot set vm.swappiness: {e}");
    }
    Ok(Some(bytes))
}

fn swapon(device: &Path) -> Result<(), String> {
    let path = std::ffi::CString::new(device.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    let flags = SWAP_FLAG_PREFER | (PRIORITY & SWAP_FLAG_PRIO_MASK);
    // SAFETY: swapon(2) with a NUL-terminated path that outlives the call.
    if unsafe { libc::swapon(path.as_ptr(), flags) } != 0 {
        return Err(format!(
            "swapon {}: {}",
            device.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096)
}

/// `percent` of `mem_total`, at most [`MAX_BYTES`], rounded down to whole pages.
fn size_bytes(mem_total: u64, percent: u32, page: u64) -> u64 {
    let bytes = u128::from(mem_total) * u128::from(percent) / 100;
    u64::try_from(bytes).unwrap_or(u64::MAX).min(MAX_BYTES) / page * page
}

/// A random UUID for the swap signature, from the kernel (zeros if it cannot say).
fn uuid() -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        && let Ok(bytes) = hex::decode(text.trim().replace('-', ""))
        && bytes.len() == 16
    {
        out.copy_from_slice(&bytes);
    }
    out
}

/// Page 0 of a swap device of `bytes` (version 1, no bad pages, no label): what mkswap(8)
/// writes, and all swapon(2) reads.
fn swap_header(page: u64, bytes: u64, uuid: &[u8; 16]) -> Vec<u8> {
    let page = page as usize;
    let mut header = vec![0u8; page];
    let last_page = u32::try_from(bytes / page as u64 - 1).unwrap_or(u32::MAX);
    // struct swap_header_v1_2 starts after the 1024 bytes left for boot blocks.
    header[1024..1028].copy_from_slice(&1u32.to_le_bytes());
    header[1028..1032].copy_from_slice(&last_page.to_le_bytes());
    header[1032..1036].copy_from_slice(&0u32.to_le_bytes());
    header[1036..1052].copy_from_slice(uuid);
    header[page - MAGIC.len()..].copy_from_slice(MAGIC);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_a_percentage_of_the_memory_in_whole_pages() {
        assert_eq!(size_bytes(487_145_472, 50, 4096), 243_572_736 / 4096 * 4096);
        assert_eq!(size_bytes(1 << 30, 100, 4096), 1 << 30);
        assert_eq!(size_bytes(1 << 30, 0, 4096), 0);
        assert_eq!(size_bytes(10_000, 50, 4096), 4096);
        // A big machine: 8 GiB, not 150% of 64 GiB.
        assert_eq!(size_bytes(64 << 30, 150, 4096), 8 << 30);
    }

    /// util-linux's blkid, which reads swap signatures as swapon(2) does, recognises the
    /// header as a version-1 swap area of the right size with our UUID.
    #[test]
    fn blkid_reads_the_swap_signature() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("swap");
        let bytes = 64 * 4096;
        let uuid: [u8; 16] = *b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x23\x45\x67\x89\xab\xcd\xef";
        let mut data = swap_header(4096, bytes, &uuid);
        data.resize(bytes as usize, 0);
        std::fs::write(&file, &data).unwrap();
        let out = std::process::Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(&file)
            .output()
            .expect("blkid (util-linux) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("TYPE=swap"), "{text}");
        assert!(text.contains("VERSION=1"), "{text}");
        assert!(
            text.contains("UUID=12345678-9abc-def0-0123-456789abcdef"),
            "{text}"
        );
        // A header with the magic one byte off is not a swap area.
        let mut bad = data.clone();
        bad[4096 - 10] = b'X';
        std::fs::write(&file, &bad).unwrap();
        let out = std::process::Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains("TYPE=swap"));
    }
}
