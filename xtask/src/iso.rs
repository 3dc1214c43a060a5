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

/// The GRUB modules the ISO carries (with what they depend on), for BIOS and UEFI alike: what
/// `grub_cfg` uses, the CD and disk partition maps, and the video drivers a screen needs.
/// grub-mkrescue copies all ~280 modules of each platform, a font and the locales otherwise:
/// ~5.4 MB of the ISO that nothing here reads.
pub const ISO_GRUB_MODULES: &str =
    "linux normal iso9660 part_msdos part_gpt fat serial terminal echo test all_video video gzio xzio";

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
        .arg(format!("--install-modules={ISO_GRUB_MODULES}"))
        .args(["--fonts=", "--locales=", "--themes="])
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
