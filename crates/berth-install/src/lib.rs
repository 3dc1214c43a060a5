//! Installing Berth on a disk: the GPT layout (BIOS boot, ESP, GRUB, slots A and B, state),
//! GRUB's boot code and menu, the FAT filesystems of the boot partitions and slots, and the
//! grubenv boot counter. Pure Rust on a regular file or a block device alike: `cargo xtask
//! build` makes `berth.qcow2` with it, `berth install` writes a real disk with it, and stage 1
//! of the boot uses its grubenv and layout to pick, check and confirm a slot.

pub mod disk;
pub mod fat;
pub mod grub;
pub mod grubenv;
pub mod layout;

pub use disk::{GrubImages, InstallError, Plan, Progress, Release};
pub use grubenv::GrubEnv;
pub use layout::Slot;
