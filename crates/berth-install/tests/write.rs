//! The layout written into a sparse image file, then read back with the `gpt` crate and fatfs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_install::disk::{self, GrubImages, Plan, Progress, Release};
use berth_install::layout::{self, MIB};
use berth_install::{GrubEnv, Slot};
use std::fs::{File, OpenOptions};
use std::path::Path;

fn release(dir: &Path) -> Release {
    for (name, content) in [
        ("vmlinuz", "kernel"),
        ("initrd", "initrd"),
        ("os.img", "os"),
        ("images.img", "images"),
    ] {
        std::fs::write(dir.join(name), content.repeat(1000)).unwrap();
    }
    Release {
        version: "1.2.3".into(),
        vmlinuz: dir.join("vmlinuz"),
        initrd: dir.join("initrd"),
        os_img: dir.join("os.img"),
        images_img: dir.join("images.img"),
    }
}

fn grub() -> GrubImages {
    let mut core = vec![0u8; 40 * 1024];
    core[0x1fe..0x200].copy_from_slice(&0x820u16.to_le_bytes());
    GrubImages {
        boot_img: vec![0xfa; 512],
        core_img: core,
        efi: b"MZ efi".to_vec(),
    }
}

fn image(dir: &Path, size: u64) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("disk.img"))
        .unwrap();
    file.set_len(size).unwrap();
    file
}

/// Write the layout without user-data, ignoring progress.
fn install(
    file: &mut File,
    size: u64,
    min_state: u64,
    release: &Release,
    grub: &GrubImages,
) -> Result<(), disk::InstallError> {
    let plan = Plan {
        disk_size: size,
        min_state,
        slot_a: release,
        grub,
        user_data: None,
    };
    disk::write(file, &plan, &mut |_| {})
}

#[test]
fn an_installed_disk_reads_back_and_its_state_grows() {
    let dir = tempfile::tempdir().unwrap();
    let release = release(dir.path());
    let grub = grub();
    let size = layout::min_disk_size(16 * MIB);
    let mut file = image(dir.path(), size);
    let mut seen = Vec::new();
    let plan = Plan {
        disk_size: size,
        min_state: 16 * MIB,
        slot_a: &release,
        grub: &grub,
        user_data: Some(b"#cloud-config\n"),
    };
    disk::write(&mut file, &plan, &mut |p| seen.push(p)).unwrap();
    assert!(seen.contains(&Progress::Partition { name: "BERTH_A" }));
    assert!(seen.contains(&Progress::Written {
        name: "BERTH_A",
        bytes: 6000 + 6000 + 2000 + 6000
    }));

    let table = gpt::GptConfig::new().open(dir.path().join("disk.img")).unwrap();
    let names: Vec<_> = table
        .partitions()
        .values()
        .map(|p| (p.name.clone(), p.first_lba * 512))
        .collect();
    assert_eq!(
        names,
        [
            ("BIOS", MIB),
            ("EFI", 2 * MIB),
            ("BERTH_BOOT", 34 * MIB),
            ("BERTH_A", 66 * MIB),
            ("BERTH_B", 578 * MIB),
            ("BERTH_STATE", 1090 * MIB)
        ]
        .map(|(n, s)| (n.to_string(), s))
    );
    assert_eq!(table.partitions()[&1].part_type_guid, gpt::partition_types::BIOS);
    assert_eq!(
        table.partitions()[&6]
            .bytes_len(gpt::disk::LogicalBlockSize::Lb512)
            .unwrap(),
        16 * MIB
    );
    drop(table);

    assert_eq!(
        disk::read_slot_file(&mut file, Slot::A, "berth/os.img").unwrap(),
        "os".repeat(1000).as_bytes()
    );
    assert_eq!(
        disk::read_slot_file(&mut file, Slot::A, "berth/version").unwrap(),
        b"1.2.3\n"
    );
    assert_eq!(disk::read_grubenv(&mut file).unwrap(), GrubEnv::installed());

    // The boot code: GRUB's MBR code with the protective partition table after it.
    let bytes = std::fs::read(dir.path().join("disk.img")).unwrap();
    assert_eq!(bytes[0], 0xfa);
    assert_eq!(bytes[0x1c2], 0xee, "protective MBR partition type");
    assert_eq!(&bytes[0x1fe..0x200], &[0x55, 0xaa]);
    assert_eq!(
        u64::from_le_bytes(
            bytes[MIB as usize + 0x1f4..MIB as usize + 0x1fc]
                .try_into()
                .unwrap()
        ),
        2049
    );
    drop(bytes);

    // Enlarged like `qemu-img resize`: the state partition takes the new room, once.
    file.set_len(size + 100 * MIB).unwrap();
    assert_eq!(disk::grow_state(&mut file).unwrap(), Some(116 * MIB));
    assert_eq!(disk::grow_state(&mut file).unwrap(), None);
    let table = gpt::GptConfig::new().open(dir.path().join("disk.img")).unwrap();
    assert!(
        table.backup_header().is_ok(),
        "backup header moved to the new end"
    );
    assert_eq!(
        table.partitions()[&6]
            .bytes_len(gpt::disk::LogicalBlockSize::Lb512)
            .unwrap(),
        116 * MIB
    );
}

#[test]
fn a_slot_copied_with_a_byte_flipped_differs_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let release = release(dir.path());
    let grub = grub();
    let size = layout::min_disk_size(MIB);
    let mut file = image(dir.path(), size);
    install(&mut file, size, MIB, &release, &grub).unwrap();
    disk::copy_slot(&mut file, Slot::A, Slot::B, &mut |name, bytes| {
        if name == "berth/os.img" {
            bytes[10] ^= 1;
        }
    })
    .unwrap();
    let b = disk::read_slot_file(&mut file, Slot::B, "berth/os.img").unwrap();
    let a = disk::read_slot_file(&mut file, Slot::A, "berth/os.img").unwrap();
    assert_eq!(a.len(), b.len());
    assert_eq!(a.iter().zip(&b).filter(|(x, y)| x != y).count(), 1);
    let mut env = disk::read_grubenv(&mut file).unwrap();
    env.set("boot_slot", "B").unwrap();
    disk::write_grubenv(&mut file, &env).unwrap();
    assert_eq!(disk::read_grubenv(&mut file).unwrap().get("boot_slot"), Some("B"));
}

#[test]
fn too_small_or_failing_writes_leave_no_partition_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut release = release(dir.path());
    let grub = grub();
    let size = layout::min_disk_size(layout::MIN_STATE_INSTALL) - MIB;
    let mut file = image(dir.path(), size);
    std::fs::write(dir.path().join("marker"), b"").unwrap();
    let err = install(&mut file, size, layout::MIN_STATE_INSTALL, &release, &grub)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("too small") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("disk.img")).unwrap().len(),
        size
    );

    // A release file that cannot be read half way: the disk has no partition table after.
    let size = layout::min_disk_size(MIB);
    let mut file = image(dir.path(), size);
    install(&mut file, size, MIB, &release, &grub).unwrap();
    release.images_img = dir.path().join("missing.img");
    let err = install(&mut file, size, MIB, &release, &grub)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.img"), "{err}");
    assert!(gpt::GptConfig::new().open(dir.path().join("disk.img")).is_err());
}
