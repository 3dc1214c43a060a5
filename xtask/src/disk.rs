//! The installed-disk artifacts: GRUB's images for the layout of `berth-install` (made with
//! Debian's grub-mkimage, no grub-install, no loop device), and `berth.qcow2`, a disk image
//! with slot A holding this build and a small blank state partition that grows at first boot.

use anyhow::{Context, Result, bail};
use berth_install::disk::{self, GrubImages, Plan, Release};
use berth_install::{grub, layout};
use std::path::Path;
use std::process::Command;

/// Make `boot.img`, `core.img` (BIOS) and `BOOTX64.EFI` (UEFI) in `dir`.
pub fn make_grub(dir: &Path) -> Result<()> {
    crate::build::fresh_dir(dir)?;
    let mkimage = |format: &str, out: &str, extra: &[&str]| -> Result<()> {
        let output = Command::new("grub-mkimage")
            .args(["-O", format, "-p", grub::PREFIX, "-o"])
            .arg(dir.join(out))
            .args(grub::MODULES)
            .args(extra)
            .output()
            .context("running grub-mkimage (grub-common)")?;
        if !output.status.success() {
            bail!(
                "grub-mkimage -O {format} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    };
    mkimage("i386-pc", "core.img", grub::BIOS_MODULES)?;
    mkimage("x86_64-efi", "BOOTX64.EFI", grub::EFI_MODULES)?;
    std::fs::copy("/usr/lib/grub/i386-pc/boot.img", dir.join("boot.img"))
        .context("copying boot.img (grub-pc-bin)")?;
    // Fail at build time, not at install time, if core.img outgrows the BIOS partition.
    let images = GrubImages::load(dir)?;
    grub::bios_code(&images.boot_img, &images.core_img)?;
    Ok(())
}

/// The state partition of `berth.qcow2` before its first boot grows it.
const QCOW2_STATE: u64 = 16 * layout::MIB;

/// Write the layout into a raw file and convert it to qcow2 at `dest`.
pub fn build_qcow2(work: &Path, grub_dir: &Path, release: &Release, dest: &Path) -> Result<()> {
    let raw = work.join("berth-disk.raw");
    let size = layout::min_disk_size(QCOW2_STATE);
    let result = (|| -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&raw)?;
        file.set_len(size)?;
        let grub = GrubImages::load(grub_dir)?;
        let plan = Plan {
            disk_size: size,
            min_state: QCOW2_STATE,
            slot_a: release,
            grub: &grub,
            user_data: None,
        };
        disk::write(&mut file, &plan, &mut |_| {})?;
        file.sync_all()?;
        let tmp = dest.with_extension("qcow2.tmp");
        let output = Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&tmp)
            .output()
            .context("running qemu-img (qemu-utils)")?;
        if !output.status.success() {
            bail!(
                "qemu-img convert failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        std::fs::rename(&tmp, dest)?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&raw);
    result
}
