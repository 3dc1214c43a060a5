//! GRUB on the installed disk: the one grub.cfg both firmwares read (A/B with the grubenv
//! counter), and the BIOS boot code — Debian's `boot.img` in the MBR and `core.img` in the
//! BIOS boot partition, with the two sector numbers `grub-bios-setup` would patch set for the
//! fixed layout (no loop device, no grub-install).

use crate::layout::{self, SECTOR, Slot};

/// Kernel parameters of every installed boot (as the ISO's, plus the installed disk's).
pub const KERNEL_ARGS: &str =
    "console=tty1 console=ttyS0,115200n8 panic=10 berth.state.dev=PARTLABEL=BERTH_STATE";

/// The A/B boot menu. GRUB has no arithmetic, so the try counter is an if-chain; it is saved
/// before the kernel starts, so a crash, hang or power cut costs one try. At 0 tries the other
/// slot becomes the default again and `rolled_back` names the slot that failed. Entry 0 is the
/// default slot, entry 1 the other, and `fallback` boots the other in the same boot when GRUB
/// cannot load the first's kernel.
pub fn grub_cfg() -> String {
    let slot_entry = |slot: Slot, label: &str| {
        let part = layout::slot(slot).number;
        format!(
            "  menuentry \"Berth, slot {slot}{label}\" --id slot-{slot} {{\n    \
             linux (${{berth_disk}},gpt{part})/vmlinuz {KERNEL_ARGS} berth.slot={slot}\n    \
             initrd (${{berth_disk}},gpt{part})/initrd\n  }}\n"
        )
    };
    format!(
        r#"# Berth's boot menu, for BIOS and UEFI (written by berth install; rewritten on upgrade).
set timeout=2
if [ "$grub_platform" = pc ]; then
  serial --unit=0 --speed=115200
  terminal_input console serial
  terminal_output console serial
fi
# The disk GRUB was loaded from: $root is (<disk>,gpt3), set from the image's prefix.
regexp --set=1:berth_disk '^([^,]*),' "$root"

load_env
if [ "$boot_slot" != B ]; then set boot_slot=A; fi
if [ "$boot_ok" != 1 ]; then
  if [ "$boot_tries" = 3 ]; then set boot_tries=2
  elif [ "$boot_tries" = 2 ]; then set boot_tries=1
  elif [ "$boot_tries" = 1 ]; then set boot_tries=0
  else
    echo "Berth: slot $boot_slot did not confirm its boot; going back to the other slot"
    set rolled_back=$boot_slot
    if [ "$boot_slot" = A ]; then set boot_slot=B; else set boot_slot=A; fi
    set boot_ok=1
    save_env rolled_back boot_slot boot_ok
  fi
  save_env boot_tries
fi

set default=0
set fallback=1
if [ "$boot_slot" = B ]; then
{b_first}{a_second}else
{a_first}{b_second}fi
"#,
        b_first = slot_entry(Slot::B, ""),
        a_second = slot_entry(Slot::A, " (fallback)"),
        a_first = slot_entry(Slot::A, ""),
        b_second = slot_entry(Slot::B, " (fallback)"),
    )
}

/// Modules built into both GRUB images: everything grub.cfg uses, so nothing is loaded from
/// disk at boot.
pub const MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "fat",
    "ext2",
    "normal",
    "linux",
    "configfile",
    "loadenv",
    "test",
    "regexp",
    "echo",
    "serial",
    "terminal",
    "search",
    "gzio",
    "ls",
    "cat",
    "halt",
    "reboot",
];
/// Extra modules of the BIOS image (disk access through the BIOS).
pub const BIOS_MODULES: &[&str] = &["biosdisk"];
/// Extra modules of the UEFI image: the firmware's framebuffer, handed to the kernel so a
/// machine with a screen shows the console (without them GRUB boots "in blind mode").
pub const EFI_MODULES: &[&str] = &["efi_gop", "efi_uga", "video"];
/// The prefix both images carry: partition 3 of the disk GRUB was loaded from.
pub const PREFIX: &str = "(,gpt3)/grub";

#[derive(Debug, thiserror::Error)]
pub enum BiosCodeError {
    #[error("boot.img is {0} bytes, not 512")]
    BootImgSize(usize),
    #[error(
        "core.img is {0} bytes: it must be more than one sector and fit in the BIOS boot partition ({1} bytes)"
    )]
    CoreImgSize(usize, u64),
    #[error(
        "core.img does not start with GRUB's diskboot sector (its block list holds {0:#x}, not the segment 0x820)"
    )]
    NotCoreImg(u16),
}

/// Offsets inside GRUB 2's i386-pc images (grub-core/boot/i386/pc/boot.S and diskboot.S;
/// `grub-bios-setup` writes the same fields):
/// - `boot.img` + 0x5c: the LBA of core.img's first sector (u64, little-endian);
/// - `boot.img` + 0x64: the boot drive, 0xff = the drive the BIOS booted from;
/// - `boot.img` + 0x66: a 2-byte jump that trusts the BIOS's drive number only for floppies;
///   replaced by two NOPs for a hard disk, as grub-bios-setup does;
/// - `core.img` + 0x1f4: the first block list entry of diskboot: the LBA of the rest of
///   core.img (u64), + 0x1fc its length in sectors (u16), + 0x1fe the load segment (0x820).
pub const KERNEL_SECTOR: usize = 0x5c;
pub const BOOT_DRIVE: usize = 0x64;
pub const DRIVE_CHECK: usize = 0x66;
pub const BLOCKLIST_START: usize = 0x1f4;
pub const BLOCKLIST_LEN: usize = 0x1fc;
pub const BLOCKLIST_SEGMENT: usize = 0x1fe;
/// The part of the MBR boot code may use: the partition table and signature follow.
pub const MBR_CODE: usize = 440;

/// The BIOS boot code for the fixed layout: the 440 bytes of MBR code, and core.img patched
/// to load itself from the BIOS boot partition.
pub fn bios_code(boot_img: &[u8], core_img: &[u8]) -> Result<([u8; MBR_CODE], Vec<u8>), BiosCodeError> {
    if boot_img.len() != SECTOR as usize {
        return Err(BiosCodeError::BootImgSize(boot_img.len()));
    }
    let sectors = core_img.len().div_ceil(SECTOR as usize);
    if sectors < 2 || (sectors as u64) * SECTOR > layout::BIOS.size {
        return Err(BiosCodeError::CoreImgSize(core_img.len(), layout::BIOS.size));
    }
    let segment = u16::from_le_bytes([core_img[BLOCKLIST_SEGMENT], core_img[BLOCKLIST_SEGMENT + 1]]);
    if segment != 0x820 {
        return Err(BiosCodeError::NotCoreImg(segment));
    }
    let first = layout::BIOS.start / SECTOR;
    let mut mbr = [0u8; MBR_CODE];
    mbr.copy_from_slice(&boot_img[..MBR_CODE]);
    mbr[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&first.to_le_bytes());
    mbr[BOOT_DRIVE] = 0xff;
    mbr[DRIVE_CHECK] = 0x90;
    mbr[DRIVE_CHECK + 1] = 0x90;

    let mut core = core_img.to_vec();
    core.resize(sectors * SECTOR as usize, 0);
    core[BLOCKLIST_START..BLOCKLIST_START + 8].copy_from_slice(&(first + 1).to_le_bytes());
    let rest = u16::try_from(sectors - 1)
        .map_err(|_| BiosCodeError::CoreImgSize(core_img.len(), layout::BIOS.size))?;
    core[BLOCKLIST_LEN..BLOCKLIST_LEN + 2].copy_from_slice(&rest.to_le_bytes());
    Ok((mbr, core))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_images() -> (Vec<u8>, Vec<u8>) {
        let boot = vec![0xabu8; 512];
        let mut core = vec![0u8; 3 * 512 + 100];
        core[BLOCKLIST_SEGMENT..BLOCKLIST_SEGMENT + 2].copy_from_slice(&0x820u16.to_le_bytes());
        (boot, core)
    }

    #[test]
    fn the_sector_numbers_point_into_the_bios_partition() {
        let (boot, core) = fake_images();
        let (mbr, core) = bios_code(&boot, &core).unwrap();
        // BIOS boot partition at 1 MiB = LBA 2048: core.img's first sector there, the rest
        // (3 more sectors) right after it.
        assert_eq!(u64::from_le_bytes(mbr[0x5c..0x64].try_into().unwrap()), 2048);
        assert_eq!(mbr[0x64], 0xff);
        assert_eq!(&mbr[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(u64::from_le_bytes(core[0x1f4..0x1fc].try_into().unwrap()), 2049);
        assert_eq!(u16::from_le_bytes(core[0x1fc..0x1fe].try_into().unwrap()), 3);
        assert_eq!(core.len(), 4 * 512);
    }

    #[test]
    fn debian_images_have_the_fields_where_we_patch_them() {
        let dir = std::path::Path::new("/usr/lib/grub/i386-pc");
        let (Ok(boot), Ok(diskboot)) = (
            std::fs::read(dir.join("boot.img")),
            std::fs::read(dir.join("diskboot.img")),
        ) else {
            eprintln!("grub-pc-bin is not installed: skipped");
            return;
        };
        // The defaults grub-bios-setup overwrites: kernel sector 1, boot drive 0xff, a short
        // jump at the drive check; diskboot's block list starts at LBA 2, segment 0x820.
        assert_eq!(u64::from_le_bytes(boot[0x5c..0x64].try_into().unwrap()), 1);
        assert_eq!(boot[0x64], 0xff);
        assert_eq!(boot[0x66], 0xeb);
        assert_eq!(u64::from_le_bytes(diskboot[0x1f4..0x1fc].try_into().unwrap()), 2);
        assert_eq!(
            u16::from_le_bytes(diskboot[0x1fe..0x200].try_into().unwrap()),
            0x820
        );
    }

    #[test]
    fn bad_images_are_refused() {
        let (boot, core) = fake_images();
        assert!(matches!(
            bios_code(&boot[..100], &core),
            Err(BiosCodeError::BootImgSize(100))
        ));
        assert!(matches!(
            bios_code(&boot, &core[..512]),
            Err(BiosCodeError::CoreImgSize(..))
        ));
        assert!(matches!(
            bios_code(&boot, &vec![0; 1024]),
            Err(BiosCodeError::NotCoreImg(0))
        ));
    }

    #[test]
    fn grub_cfg_boots_both_slots_and_counts() {
        let cfg = grub_cfg();
        assert!(cfg.contains("linux (${berth_disk},gpt4)/vmlinuz"));
        assert!(cfg.contains("initrd (${berth_disk},gpt5)/initrd"));
        assert!(cfg.contains("berth.slot=A") && cfg.contains("berth.slot=B"));
        assert!(cfg.contains("save_env boot_tries") && cfg.contains("set fallback=1"));
    }
}
