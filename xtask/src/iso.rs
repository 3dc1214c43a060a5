//! The hybrid ISO: GRUB for BIOS and UEFI (grub-mkrescue), bootable as a CD and as a disk.
//! It carries the kernel, the slim initrd and the OS image as a file, which init finds on the
//! medium, so the OS image is read from the CD rather than copied into RAM.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// The ISO's volume label (init looks for `/berth/os.img` on any medium, label or not).
pub const VOLUME_ID: &str = "BERTH";

/// Kernel parameters of every ISO entry.
const COMMON_APPEND: &str = "console=tty1 console=ttyS0,115200n8 panic=10";

pub fn grub_cfg(version: &str) -> String {
    format!(
        r#"# Berth {version}
set timeout=3
set default=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial

menuentry "Berth {version} (console logs in automatically)" {{
    linux /boot/vmlinuz {COMMON_APPEND} berth.autologin=tty1 berth.autologin=ttyS0
    initrd /boot/initrd.img
}}
menuentry "Berth {version}" {{
    linux /boot/vmlinuz {COMMON_APPEND}
    initrd /boot/initrd.img
}}
menuentry "Berth {version} (debug logging)" {{
    linux /boot/vmlinuz {COMMON_APPEND} berth.debug berth.autologin=tty1 berth.autologin=ttyS0
    initrd /boot/initrd.img
}}
"#
    )
}

/// Build `dest` from the kernel, the slim initrd and the OS image.
pub fn build(
    staging: &Path,
    vmlinuz: &Path,
    slim_initrd: &Path,
    os_img: &Path,
    images_img: &Path,
    version: &str,
    dest: &Path,
) -> Result<()> {
    if staging.exists() {
        std::fs::remove_dir_all(staging)?;
    }
    std::fs::create_dir_all(staging.join("boot/grub"))?;
    std::fs::create_dir_all(staging.join("berth"))?;
    // Hard links keep the staging tree free (same filesystem); fall back to copies.
    for (from, to) in [
        (vmlinuz, "boot/vmlinuz"),
        (slim_initrd, "boot/initrd.img"),
        (os_img, "berth/os.img"),
        (images_img, "berth/images.img"),
    ] {
        let to = staging.join(to);
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    std::fs::write(staging.join("boot/grub/grub.cfg"), grub_cfg(version))?;
    std::fs::write(staging.join("berth/version"), format!("{version}\n"))?;
    let output = Command::new("grub-mkrescue")
        .arg("--output")
        .arg(dest)
        .arg("--compress=xz")
        .arg(staging)
        .arg("--")
        .args(["-volid", VOLUME_ID])
        .output()
        .context("running grub-mkrescue")?;
    if !output.status.success() {
        bail!(
            "grub-mkrescue failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
