//! Writing the installed layout onto a disk or an image file, and growing its state partition.

use crate::fat;
use crate::grubenv::GrubEnv;
use crate::layout::{self, MIB, PartitionKind, SECTOR, Slot};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A disk or image file: anything the layout can be written to.
pub trait Disk: Read + Write + Seek + std::fmt::Debug {}
impl<T: Read + Write + Seek + std::fmt::Debug> Disk for T {}

/// One release's files, as they go into a slot.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    pub os_img: PathBuf,
    pub images_img: PathBuf,
}

/// File names inside a slot partition (stage 1 finds `berth/os.img` there).
pub const SLOT_FILES: [&str; 4] = ["vmlinuz", "initrd", "berth/os.img", "berth/images.img"];
pub const SLOT_VERSION: &str = "berth/version";
/// The user-data `berth install --cloud-config` leaves for the first boot, on BERTH_BOOT.
pub const USER_DATA: &str = "berth/user-data";
pub const GRUB_CFG: &str = "grub/grub.cfg";
pub const GRUBENV: &str = "grub/grubenv";
pub const EFI_LOADER: &str = "EFI/BOOT/BOOTX64.EFI";

/// GRUB's images for the disk, as xtask makes them (`boot.img`, `core.img`, `BOOTX64.EFI`).
#[derive(Debug, Clone)]
pub struct GrubImages {
    pub boot_img: Vec<u8>,
    pub core_img: Vec<u8>,
    pub efi: Vec<u8>,
}

pub const GRUB_FILES: [&str; 3] = ["boot.img", "core.img", "BOOTX64.EFI"];

impl GrubImages {
    pub fn load(dir: &Path) -> Result<Self, InstallError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| InstallError::Io {
                what: format!("reading GRUB's {}", path.display()),
                source,
            })
        };
        Ok(Self {
            boot_img: read(GRUB_FILES[0])?,
            core_img: read(GRUB_FILES[1])?,
            efi: read(GRUB_FILES[2])?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "the disk is too small: {size} MiB, Berth needs at least {need} MiB \
         (boot partitions, two 512 MiB slots and {state} MiB of state); nothing was written"
    )]
    TooSmall { size: u64, need: u64, state: u64 },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the partition table: {0}")]
    Gpt(String),
    #[error(transparent)]
    Bios(#[from] crate::grub::BiosCodeError),
    #[error(transparent)]
    GrubEnv(#[from] crate::grubenv::GrubEnvError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
    let what = what.into();
    move |source| InstallError::Io { what, source }
}

/// What to write.
pub struct Plan<'a> {
    /// The disk's size in bytes.
    pub disk_size: u64,
    /// The smallest state partition accepted.
    pub min_state: u64,
    pub slot_a: &'a Release,
    pub grub: &'a GrubImages,
    /// User-data for the first boot (already validated by the caller).
    pub user_data: Option<&'a [u8]>,
}

/// Progress reports while writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Starting a partition.
    Partition { name: &'static str },
    /// Bytes written into a partition so far.
    Written { name: &'static str, bytes: u64 },
}

/// Check the plan against the disk size before anything is written.
pub fn check_size(disk_size: u64, min_state: u64) -> Result<(u64, u64), InstallError> {
    layout::state_extent(disk_size, min_state).ok_or(InstallError::TooSmall {
        size: disk_size / MIB,
        need: layout::min_disk_size(min_state).div_ceil(MIB),
        state: min_state / MIB,
    })
}

/// Write the whole layout onto `disk`. The old partition table is wiped first and the new
/// one written last, so a failure in between leaves a disk with no partition table rather
/// than one that half boots; on error the start of the disk is wiped again.
pub fn write<D: Disk>(
    disk: &mut D,
    plan: &Plan<'_>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), InstallError> {
    let (state_start, state_size) = check_size(plan.disk_size, plan.min_state)?;
    let (mbr_code, core) = crate::grub::bios_code(&plan.grub.boot_img, &plan.grub.core_img)?;
    wipe_tables(disk, plan.disk_size)?;
    let result = write_contents(disk, plan, &core, state_start, progress)
        .and_then(|()| write_gpt(disk, plan.disk_size, &mbr_code, state_start, state_size));
    if result.is_err() {
        let _ = wipe_tables(disk, plan.disk_size);
    }
    result
}

/// Zero the first 34 and the last 33 sectors: the protective MBR and both GPT copies.
fn wipe_tables<D: Disk>(disk: &mut D, disk_size: u64) -> Result<(), InstallError> {
    let zeros = vec![0u8; 34 * SECTOR as usize];
    disk.seek(SeekFrom::Start(0))
        .map_err(io("wiping the partition table"))?;
    disk.write_all(&zeros).map_err(io("wiping the partition table"))?;
    disk.seek(SeekFrom::Start(disk_size - 33 * SECTOR))
        .map_err(io("wiping the backup partition table"))?;
    disk.write_all(&zeros[..33 * SECTOR as usize])
        .map_err(io("wiping the backup partition table"))?;
    disk.flush().map_err(io("wiping the partition table"))
}

fn write_contents<D: Disk>(
    disk: &mut D,
    plan: &Plan<'_>,
    core: &[u8],
    state_start: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), InstallError> {
    // BIOS boot partition: core.img.
    progress(Progress::Partition {
        name: layout::BIOS.name,
    });
    disk.seek(SeekFrom::Start(layout::BIOS.start))
        .map_err(io("writing GRUB's core.img"))?;
    disk.write_all(core).map_err(io("writing GRUB's core.img"))?;

    // ESP: the removable-media path every UEFI firmware looks at.
    progress(Progress::Partition {
        name: layout::EFI.name,
    });
    fat_partition(disk, layout::EFI, 4096, &mut |fs| {
        fat::put(fs, EFI_LOADER, &mut &plan.grub.efi[..], &mut |_| {})
            .map(drop)
            .map_err(io(format!("writing {EFI_LOADER}")))
    })?;

    // GRUB's partition: the menu, the counter and the first boot's user-data.
    progress(Progress::Partition {
        name: layout::BOOT.name,
    });
    let cfg = crate::grub::grub_cfg();
    let env = GrubEnv::installed().to_block()?;
    fat_partition(disk, layout::BOOT, 4096, &mut |fs| {
        fat::put(fs, GRUB_CFG, &mut cfg.as_bytes(), &mut |_| {}).map_err(io("writing grub.cfg"))?;
        fat::put(fs, GRUBENV, &mut &env[..], &mut |_| {}).map_err(io("writing grubenv"))?;
        if let Some(data) = plan.user_data {
            fat::put(fs, USER_DATA, &mut &data[..], &mut |_| {}).map_err(io("writing the user-data"))?;
        }
        Ok(())
    })?;

    // Slot A: this release. Slot B: empty until an upgrade.
    write_slot(disk, Slot::A, Some(plan.slot_a), progress)?;
    write_slot(disk, Slot::B, None, progress)?;

    // The state partition stays blank (no filesystem signature): the first boot formats it.
    progress(Progress::Partition {
        name: layout::STATE_NAME,
    });
    disk.seek(SeekFrom::Start(state_start))
        .map_err(io("clearing the state partition"))?;
    disk.write_all(&vec![0u8; MIB as usize])
        .map_err(io("clearing the state partition"))?;
    disk.flush().map_err(io("flushing the disk"))
}

type FatFs<'a, D> = fatfs::FileSystem<fat::Slice<'a, D>>;

fn fat_partition<D: Disk>(
    disk: &mut D,
    part: layout::PartitionSpec,
    cluster: u32,
    fill: &mut dyn FnMut(&FatFs<'_, D>) -> Result<(), InstallError>,
) -> Result<(), InstallError> {
    fat::format(disk, part.start, part.size, part.name, cluster)
        .map_err(io(format!("formatting {}", part.name)))?;
    let fs = fat::open(disk, part.start, part.size).map_err(io(format!("opening {}", part.name)))?;
    fill(&fs)?;
    fs.unmount().map_err(io(format!("closing {}", part.name)))
}

/// Format a slot and put `release` into it (or leave it empty).
pub fn write_slot<D: Disk>(
    disk: &mut D,
    slot: Slot,
    release: Option<&Release>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), InstallError> {
    let part = layout::slot(slot);
    progress(Progress::Partition { name: part.name });
    fat_partition(disk, part, 32 * 1024, &mut |fs| {
        let Some(release) = release else { return Ok(()) };
        let mut done = 0u64;
        let sources = [
            &release.vmlinuz,
            &release.initrd,
            &release.os_img,
            &release.images_img,
        ];
        for (name, from) in SLOT_FILES.iter().zip(sources) {
            let mut file = File::open(from).map_err(io(format!("reading {}", from.display())))?;
            let before = done;
            let n = fat::put(fs, name, &mut file, &mut |n| {
                progress(Progress::Written {
                    name: part.name,
                    bytes: before + n,
                })
            })
            .map_err(io(format!("writing {name} into {}", part.name)))?;
            done += n;
        }
        fat::put(
            fs,
            SLOT_VERSION,
            &mut format!("{}\n", release.version).as_bytes(),
            &mut |_| {},
        )
        .map_err(io("writing the version"))?;
        Ok(())
    })
}

/// The GPT (primary and backup) and the protective MBR carrying GRUB's boot code.
fn write_gpt<D: Disk>(
    disk: &mut D,
    disk_size: u64,
    mbr_code: &[u8; crate::grub::MBR_CODE],
    state_start: u64,
    state_size: u64,
) -> Result<(), InstallError> {
    let gpt_err = |e: gpt::GptError| InstallError::Gpt(e.to_string());
    let mut parts = BTreeMap::new();
    for p in layout::FIXED {
        let kind = match p.kind {
            PartitionKind::BiosBoot => gpt::partition_types::BIOS,
            PartitionKind::Esp => gpt::partition_types::EFI,
            PartitionKind::Data => gpt::partition_types::LINUX_FS,
        };
        parts.insert(p.number, partition(kind, p.name, p.start, p.size));
    }
    parts.insert(
        layout::STATE_NUMBER,
        partition(
            gpt::partition_types::LINUX_FS,
            layout::STATE_NAME,
            state_start,
            state_size,
        ),
    );
    let mut table = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .change_partition_count(true)
        .create_from_device(&mut *disk, None)
        .map_err(gpt_err)?;
    table.update_partitions(parts).map_err(gpt_err)?;
    table.write_inplace().map_err(gpt_err)?;
    drop(table);
    let sectors = u32::try_from(disk_size / SECTOR - 1).unwrap_or(u32::MAX);
    let mut mbr = gpt::mbr::ProtectiveMBR::with_lb_size(sectors);
    mbr.set_bootcode(*mbr_code);
    mbr.overwrite_lba0(&mut *disk)
        .map_err(|e| InstallError::Gpt(e.to_string()))?;
    disk.flush().map_err(io("flushing the disk"))
}

fn partition(
    kind: gpt::partition_types::Type,
    name: &str,
    start: u64,
    size: u64,
) -> gpt::partition::Partition {
    gpt::partition::Partition {
        part_type_guid: kind,
        part_guid: uuid::Uuid::new_v4(),
        first_lba: start / SECTOR,
        last_lba: (start + size) / SECTOR - 1,
        flags: 0,
        name: name.to_string(),
    }
}

/// Grow the state partition (the last one, `BERTH_STATE`) to the end of the disk, moving the
/// backup GPT there (a disk image enlarged with `qemu-img resize`, or a bigger disk). Returns
/// the new size in bytes when it grew, `None` when it already filled the disk.
pub fn grow_state<D: Disk>(disk: &mut D) -> Result<Option<u64>, InstallError> {
    let gpt_err = |e: gpt::GptError| InstallError::Gpt(e.to_string());
    let disk_size = disk.seek(SeekFrom::End(0)).map_err(io("sizing the disk"))?;
    let mut table = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .only_valid_headers(false)
        .open_from_device(&mut *disk)
        .map_err(gpt_err)?;
    let mut parts = table.partitions().clone();
    let Some(state) = parts
        .get_mut(&layout::STATE_NUMBER)
        .filter(|p| p.name == layout::STATE_NAME)
    else {
        return Err(InstallError::Gpt(format!(
            "partition {} is not {}: not a disk Berth installed",
            layout::STATE_NUMBER,
            layout::STATE_NAME
        )));
    };
    let Some((_, size)) = layout::state_extent(disk_size, 0) else {
        return Ok(None);
    };
    let last = (state.first_lba * SECTOR + size) / SECTOR - 1;
    if last <= state.last_lba {
        return Ok(None);
    }
    state.last_lba = last;
    table.update_partitions(parts).map_err(gpt_err)?;
    table.write_inplace().map_err(gpt_err)?;
    disk.flush().map_err(io("flushing the disk"))?;
    Ok(Some(size))
}

/// The partition that ends last on a disk, as [`grow_last_partition`] left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastPartition {
    /// Its number in the partition table (`3` for `/dev/sda3`).
    pub number: u32,
    /// Where it starts, in bytes.
    pub start: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it was grown now.
    pub grown: bool,
}

/// Grow the partition that ends last on a GPT disk to the disk's last usable sector, moving
/// the backup GPT to the end of the disk (what `growpart` does, for `berth.resize_device`).
/// Nothing is written when it already ends there.
pub fn grow_last_partition<D: Disk>(disk: &mut D) -> Result<LastPartition, InstallError> {
    let gpt_err = |e: gpt::GptError| InstallError::Gpt(e.to_string());
    disk.seek(SeekFrom::End(0)).map_err(io("sizing the disk"))?;
    let mut table = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .only_valid_headers(false)
        .open_from_device(&mut *disk)
        .map_err(|e| {
            InstallError::Gpt(format!(
                "no GPT partition table ({e}); only GPT disks can be grown"
            ))
        })?;
    let mut parts = table.partitions().clone();
    let Some((&number, _)) = parts
        .iter()
        .filter(|(_, p)| p.is_used())
        .max_by_key(|(_, p)| p.last_lba)
    else {
        return Err(InstallError::Gpt("the disk has no partitions".to_string()));
    };
    // The headers as they would be on this disk's size: their last usable sector is the end.
    table.update_partitions(parts.clone()).map_err(gpt_err)?;
    let last_usable = table.header().last_usable;
    let Some(part) = parts.get_mut(&number) else {
        return Err(InstallError::Gpt(format!("partition {number} vanished")));
    };
    let grown = part.last_lba < last_usable;
    if grown {
        part.last_lba = last_usable;
        let part = part.clone();
        parts.insert(number, part);
        table.update_partitions(parts.clone()).map_err(gpt_err)?;
        table.write_inplace().map_err(gpt_err)?;
        disk.flush().map_err(io("flushing the disk"))?;
    }
    let part = parts
        .get(&number)
        .ok_or_else(|| InstallError::Gpt(format!("partition {number} vanished")))?;
    Ok(LastPartition {
        number,
        start: part.first_lba * SECTOR,
        size: (part.last_lba + 1 - part.first_lba) * SECTOR,
        grown,
    })
}

/// The release files of `slot` read back (for tests and `berth install`'s checks).
pub fn read_slot_file<D: Disk>(disk: &mut D, slot: Slot, name: &str) -> Result<Vec<u8>, InstallError> {
    let part = layout::slot(slot);
    let fs = fat::open(disk, part.start, part.size).map_err(io(format!("opening {}", part.name)))?;
    fat::get(&fs, name).map_err(io(format!("reading {name} from {}", part.name)))
}

/// Copy slot `from` into slot `to` file by file, passing each file through `edit`.
pub fn copy_slot<D: Disk>(
    disk: &mut D,
    from: Slot,
    to: Slot,
    edit: &mut dyn FnMut(&str, &mut Vec<u8>),
) -> Result<(), InstallError> {
    let mut files = Vec::new();
    for name in SLOT_FILES.iter().chain([&SLOT_VERSION]) {
        let mut bytes = read_slot_file(disk, from, name)?;
        edit(name, &mut bytes);
        files.push((*name, bytes));
    }
    let part = layout::slot(to);
    fat::format(disk, part.start, part.size, part.name, 32 * 1024)
        .map_err(io(format!("formatting {}", part.name)))?;
    let fs = fat::open(disk, part.start, part.size).map_err(io(format!("opening {}", part.name)))?;
    for (name, bytes) in files {
        fat::put(&fs, name, &mut &bytes[..], &mut |_| {}).map_err(io(format!("writing {name}")))?;
    }
    fs.unmount().map_err(io(format!("closing {}", part.name)))
}

/// Read the grubenv from BERTH_BOOT.
pub fn read_grubenv<D: Disk>(disk: &mut D) -> Result<GrubEnv, InstallError> {
    let fs = fat::open(disk, layout::BOOT.start, layout::BOOT.size).map_err(io("opening BERTH_BOOT"))?;
    let bytes = fat::get(&fs, GRUBENV).map_err(io("reading grubenv"))?;
    Ok(GrubEnv::parse(&bytes, "BERTH_BOOT:/grub/grubenv")?)
}

/// Rewrite the grubenv on BERTH_BOOT in place (same size, same clusters).
pub fn write_grubenv<D: Disk>(disk: &mut D, env: &GrubEnv) -> Result<(), InstallError> {
    let block = env.to_block()?;
    let fs = fat::open(disk, layout::BOOT.start, layout::BOOT.size).map_err(io("opening BERTH_BOOT"))?;
    {
        let mut file = fs.root_dir().open_file(GRUBENV).map_err(io("opening grubenv"))?;
        file.write_all(&block).map_err(io("writing grubenv"))?;
        file.flush().map_err(io("writing grubenv"))?;
    }
    fs.unmount().map_err(io("closing BERTH_BOOT"))
}
