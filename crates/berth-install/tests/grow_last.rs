//! `berth.resize_device`'s partition step on a regular file: a GPT disk image made with the
//! `gpt` crate, enlarged as `qemu-img resize` or a bigger cloud disk would, then grown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_install::disk::{LastPartition, grow_last_partition};
use std::fs::{File, OpenOptions};
use std::path::Path;

const MIB: u64 = 1 << 20;

fn open(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(path).unwrap()
}

/// A 64 MiB image with two partitions, the second (`data`) ending 8 MiB before the disk does.
fn disk_with_two_partitions(path: &Path) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap();
    file.set_len(64 * MIB).unwrap();
    let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(64 * MIB / 512 - 1).unwrap());
    let mut file = file;
    mbr.overwrite_lba0(&mut file).unwrap();
    let mut table = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(&mut file, None)
        .unwrap();
    table
        .add_partition("boot", 8 * MIB, gpt::partition_types::LINUX_FS, 0, None)
        .unwrap();
    table
        .add_partition("data", 40 * MIB, gpt::partition_types::LINUX_FS, 0, None)
        .unwrap();
    table.write().unwrap();
}

fn partitions(path: &Path) -> Vec<(String, u64, u64)> {
    // Both headers must be valid: the backup moved to the new end of the disk.
    let table = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .only_valid_headers(true)
        .open(path)
        .unwrap();
    table
        .partitions()
        .values()
        .map(|p| (p.name.clone(), p.first_lba, p.last_lba))
        .collect()
}

#[test]
fn the_last_partition_grows_to_the_end_of_an_enlarged_disk_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    disk_with_two_partitions(&path);
    let before = partitions(&path);

    // The image grows to 128 MiB (the old backup GPT is now in the middle of it).
    open(&path).set_len(128 * MIB).unwrap();
    let grown = grow_last_partition(&mut open(&path)).unwrap();
    let after = partitions(&path);
    assert_eq!(after[0], before[0], "the first partition moved");
    assert_eq!(after[1].0, "data");
    assert_eq!(after[1].1, before[1].1, "the last partition's start moved");
    // It ends at the last usable sector: before the backup entries (32 sectors) and header.
    let last_sector = 128 * MIB / 512 - 1;
    assert_eq!(after[1].2, last_sector - 33);
    assert_eq!(
        grown,
        LastPartition {
            number: 2,
            start: after[1].1 * 512,
            size: (after[1].2 + 1 - after[1].1) * 512,
            grown: true,
        }
    );

    // Again: already at the end, nothing written.
    let bytes = std::fs::read(&path).unwrap();
    let again = grow_last_partition(&mut open(&path)).unwrap();
    assert_eq!(
        again,
        LastPartition {
            grown: false,
            ..grown
        }
    );
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "a disk already grown was written"
    );
}

#[test]
fn a_disk_without_gpt_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blank.img");
    File::create(&path).unwrap().set_len(8 * MIB).unwrap();
    let err = grow_last_partition(&mut open(&path)).unwrap_err().to_string();
    assert!(err.contains("no GPT partition table"), "{err}");
}
