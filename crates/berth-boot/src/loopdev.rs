//! Loop devices: attach an image file (the OS image, the system images) read-only, with
//! autoclear so the device disappears when its filesystem is unmounted.

use crate::BootError;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CHANGE_FD: libc::c_ulong = 0x4C06;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device. With autoclear, the kernel detaches it at the last close: keep
/// this open until something else (a mount) holds the device.
pub struct LoopDevice {
    pub path: PathBuf,
    _open: std::fs::File,
}

/// Attach `file` to a free loop device, read-only with autoclear.
pub fn attach(file: &Path) -> Result<LoopDevice, BootError> {
    let io = |what: &str, e: std::io::Error| BootError::Io(format!("{what} for {}", file.display()), e);
    let backing = OpenOptions::new()
        .read(true)
        .open(file)
        .map_err(|e| io("opening", e))?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| io("opening /dev/loop-control (is the loop module loaded?)", e))?;
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(io("finding a free loop device", std::io::Error::last_os_error()));
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let device = match OpenOptions::new().read(true).open(&path) {
            Ok(d) => d,
            Err(e) => return Err(io(&format!("opening {}", path.display()), e)),
        };
        let mut name = [0u8; 64];
        let bytes = file.as_os_str().as_encoded_bytes();
        let len = bytes.len().min(63);
        name[..len].copy_from_slice(&bytes[..len]);
        let config = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                lo_file_name: name,
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: `config` is a valid, fully initialised struct loop_config.
        let rc = unsafe {
            libc::ioctl(
                device.as_raw_fd(),
                LOOP_CONFIGURE as _,
                &config as *const LoopConfig,
            )
        };
        if rc == 0 {
            return Ok(LoopDevice { path, _open: device });
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) {
            return Err(io(&format!("configuring {}", path.display()), err));
        }
        // Another process took this device between GET_FREE and CONFIGURE: try the next.
    }
    Err(BootError::Io(
        format!("no free loop device for {}", file.display()),
        std::io::Error::from_raw_os_error(libc::EBUSY),
    ))
}

/// Point the read-only loop device `device` at `file` (the same bytes as its current one).
pub fn change_backing_file(device: &Path, file: &Path) -> std::io::Result<()> {
    let loop_dev = File::open(device)?;
    let backing = File::open(file)?;
    // SAFETY: LOOP_CHANGE_FD takes a file descriptor as its argument; both are open.
    let rc = unsafe {
        libc::ioctl(
            loop_dev.as_raw_fd(),
            LOOP_CHANGE_FD as _,
            backing.as_raw_fd() as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_config_has_the_kernel_layout() {
        // linux/loop.h: loop_info64 is 232 bytes, loop_config 304.
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
