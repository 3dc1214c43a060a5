//! The installed disk's partitions, at fixed offsets (1 MiB aligned, 512-byte sectors):
//!
//! | # | name (GPT) | size | content |
//! |---|---|---|---|
//! | 1 | `BIOS` | 1 MiB | GRUB's core.img for BIOS (type EF02) |
//! | 2 | `EFI` | 32 MiB | FAT, `EFI/BOOT/BOOTX64.EFI` |
//! | 3 | `BERTH_BOOT` | 32 MiB | FAT, `grub/grub.cfg`, `grub/grubenv`, `berth/user-data` |
//! | 4 | `BERTH_A` | 512 MiB | FAT, one release |
//! | 5 | `BERTH_B` | 512 MiB | FAT, one release (or empty) |
//! | 6 | `BERTH_STATE` | the rest | blank until the first boot makes it ext4 |
//!
//! GRUB's images carry the prefix `(,gpt3)/grub`, and grub.cfg names the slots `gpt4`/`gpt5`:
//! the numbers are part of the layout and never change.

pub const SECTOR: u64 = 512;
pub const MIB: u64 = 1 << 20;

/// One partition of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionSpec {
    /// GPT partition number (1-based).
    pub number: u32,
    /// GPT partition name; for the FAT partitions also the volume label.
    pub name: &'static str,
    pub kind: PartitionKind,
    pub start: u64,
    /// Bytes; for the state partition the minimum.
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKind {
    BiosBoot,
    Esp,
    Data,
}

pub const BIOS: PartitionSpec = PartitionSpec {
    number: 1,
    name: "BIOS",
    kind: PartitionKind::BiosBoot,
    start: MIB,
    size: MIB,
};
pub const EFI: PartitionSpec = PartitionSpec {
    number: 2,
    name: "EFI",
    kind: PartitionKind::Esp,
    start: 2 * MIB,
    size: 32 * MIB,
};
pub const BOOT: PartitionSpec = PartitionSpec {
    number: 3,
    name: "BERTH_BOOT",
    kind: PartitionKind::Data,
    start: 34 * MIB,
    size: 32 * MIB,
};
pub const SLOT_A: PartitionSpec = PartitionSpec {
    number: 4,
    name: "BERTH_A",
    kind: PartitionKind::Data,
    start: 66 * MIB,
    size: 512 * MIB,
};
pub const SLOT_B: PartitionSpec = PartitionSpec {
    number: 5,
    name: "BERTH_B",
    kind: PartitionKind::Data,
    start: 578 * MIB,
    size: 512 * MIB,
};
pub const STATE_START: u64 = 1090 * MIB;
/// The GPT's backup copy at the end of the disk; the state partition stops 1 MiB before the
/// end, which keeps it aligned and clear of it.
pub const END_RESERVE: u64 = MIB;

/// The smallest state partition `berth install` accepts (the disk image for VMs starts
/// smaller and grows at its first boot).
pub const MIN_STATE_INSTALL: u64 = 512 * MIB;

pub const FIXED: [PartitionSpec; 5] = [BIOS, EFI, BOOT, SLOT_A, SLOT_B];
pub const STATE_NAME: &str = "BERTH_STATE";
pub const STATE_NUMBER: u32 = 6;

/// The slot partition of `slot` (`A` or `B`).
pub fn slot(slot: Slot) -> PartitionSpec {
    match slot {
        Slot::A => SLOT_A,
        Slot::B => SLOT_B,
    }
}

/// One of the two release slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "A" => Some(Slot::A),
            "B" => Some(Slot::B),
            _ => None,
        }
    }
    pub fn other(self) -> Self {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }
    /// The GPT partition name of the slot (`BERTH_A`).
    pub fn partition_name(self) -> &'static str {
        slot(self).name
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state partition's extent on a disk of `disk_size` bytes, or `None` when the disk has
/// no room for `min_state` bytes of it.
pub fn state_extent(disk_size: u64, min_state: u64) -> Option<(u64, u64)> {
    let end = (disk_size.checked_sub(END_RESERVE)? / MIB) * MIB;
    let size = end.checked_sub(STATE_START)?;
    (size >= min_state).then_some((STATE_START, size))
}

/// The smallest disk with `min_state` bytes of state.
pub fn min_disk_size(min_state: u64) -> u64 {
    STATE_START + min_state + END_RESERVE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_aligned_ordered_and_do_not_overlap() {
        let mut end = MIB;
        for p in FIXED {
            assert_eq!(p.start % MIB, 0, "{}", p.name);
            assert_eq!(p.start, end, "{} follows the previous partition", p.name);
            end = p.start + p.size;
        }
        assert_eq!(end, STATE_START);
        // GRUB's images and grub.cfg rely on these numbers.
        assert_eq!((BOOT.number, SLOT_A.number, SLOT_B.number), (3, 4, 5));
    }

    #[test]
    fn the_state_partition_takes_the_rest() {
        let disk = 3 << 30;
        let (start, size) = state_extent(disk, MIN_STATE_INSTALL).unwrap();
        assert_eq!(start, STATE_START);
        assert_eq!(start + size, disk - END_RESERVE);
        assert!(state_extent(min_disk_size(MIN_STATE_INSTALL) - 1, MIN_STATE_INSTALL).is_none());
        assert!(state_extent(min_disk_size(MIN_STATE_INSTALL), MIN_STATE_INSTALL).is_some());
        assert!(state_extent(100 * MIB, 0).is_none());
    }
}
