//! Stage 1, in the initramfs: find the OS image, build the real root, switch to it and exec
//! stage 2 from the OS image.

use crate::mounts::{self, MountSpec};
use crate::state::StateDecision;
use crate::{BootError, VERSION, installed, medium, recovery, root, slot, stage2};
use berth_config::{ConfigPaths, KernelCmdline};
use berth_runtime::{log, problems, timeline};
use berth_services::image_store;
use nix::mount::MsFlags;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const NEWROOT: &str = "/newroot";
/// How long to wait for a boot medium holding the OS image (CD drives are slow to appear).
const MEDIUM_WAIT: Duration = Duration::from_secs(30);
/// Modules stage 1 needs whatever the hardware: the OS image's filesystem and loop devices.
const EARLY_MODULES: &[&str] = &["loop", "squashfs"];
/// And to find the OS image on a medium: a CD's filesystem; the slots of an installed disk
/// are FAT. Not loaded when the initramfs holds the OS image (under emulation each module
/// takes ~80 ms to load; stage 2 loads them on first use through the kernel's modprobe).
const MEDIUM_MODULES: &[&str] = &["isofs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8"];

pub fn run() -> ! {
    let result = std::panic::catch_unwind(|| {
        if let Err(e) = mounts::apply_all(&mounts::pseudo_filesystems(Path::new("/"))) {
            // Without /proc and /dev nothing else works; say so and keep a shell.
            log::init("init", false);
            recovery::enter(&e.to_string());
        }
        let cmdline = KernelCmdline::read().unwrap_or_else(|_| KernelCmdline::parse(""));
        let debug = ["berth.debug", "rancher.debug"]
            .iter()
            .filter_map(|k| cmdline.get(k))
            .any(|v| v.is_empty() || berth_config::parse_bool(v) == Some(true));
        log::init("init", debug);
        boot(&cmdline)
    });
    let reason = match result {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(())) => "stage 2 could not be started".to_string(),
        Err(_) => "init panicked in stage 1 (a bug: please report it with the log above)".to_string(),
    };
    recovery::enter(&reason)
}

fn boot(cmdline: &KernelCmdline) -> Result<(), BootError> {
    let started = log::uptime();
    // /run moves to the real root at switch_root: stage 2 and sysinit append after these.
    timeline::record_into(Path::new(timeline::BOOT_TIMELINE));
    timeline::record(timeline::Event::Stage1Start);
    tracing::info!("Berth {VERSION} init: stage 1 (initramfs) at {started:.2}s after kernel start");
    check_unpacked_whole(Path::new("/"));
    // An installed disk: GRUB names the slot, and only that slot's partition is the medium.
    let booted_slot = slot::booted(cmdline);
    let on_medium = booted_slot.is_some() || !Path::new("/").join(medium::OS_IMAGE).is_file();
    let mut drivers = load_early_modules(on_medium);
    if on_medium {
        // The medium is one of the devices they find.
        drivers.wait();
    }

    let step = log::uptime();
    let mount_dir = Path::new("/run/berth/medium");
    let found = match booted_slot {
        None => medium::find(Path::new("/"), mount_dir, MEDIUM_WAIT)?,
        Some(booted) => {
            match medium::find_slot(Path::new("/"), mount_dir, booted.partition_name(), MEDIUM_WAIT)? {
                medium::SlotMedium::Found(found) => *found,
                medium::SlotMedium::Altered(why) => return give_up_slot(booted, &why),
            }
        }
    };
    let rollback_note = booted_slot.and_then(|booted| {
        slot::read_grubenv()
            .map_err(|e| tracing::warn!("cannot read the boot counter: {e}"))
            .ok()
            .and_then(|env| slot::rollback_note(&env, booted))
    });
    tracing::info!(
        "OS image: {} ({:.2}s)",
        found.os_image.display(),
        log::uptime() - step
    );
    let newroot = Path::new(NEWROOT);
    root::mount_root(newroot, &found.os_image)?;

    // The state settings come from the built-in defaults and the kernel command line: the
    // other layers live on the state partition itself.
    let paths = ConfigPaths {
        defaults: newroot.join("usr/share/berth/defaults.yml"),
        oem_dir: PathBuf::from("/nonexistent"),
        conf_dir: PathBuf::from("/nonexistent"),
    };
    let loaded = berth_config::load(&paths, cmdline);
    for d in loaded
        .diagnostics
        .iter()
        .filter(|d| d.source == berth_config::CMDLINE_SOURCE)
    {
        problems::report(Path::new("/"), &d.to_string());
    }
    let state = &loaded.config.berth.state;
    // The first boot of an installed disk: its blank state partition is grown and formatted.
    let first_boot = match booted_slot.map(|_| installed::prepare_state(newroot)) {
        Some(Ok(Some(prepared))) => {
            tracing::info!(
                "first boot of this disk: {} {}formatted ext4 BERTH_STATE",
                prepared.device.display(),
                prepared
                    .grown_to
                    .map(|s| format!("grown to {} MiB and ", s >> 20))
                    .unwrap_or_default()
            );
            true
        }
        Some(Err(e)) => {
            problems::report(
                Path::new("/"),
                &format!("the state partition could not be prepared: {e}"),
            );
            false
        }
        Some(Ok(None)) | None => false,
    };
    if !state.autoformat.is_empty() {
        // Only a device that is there can be found blank.
        drivers.wait();
    }
    autoformat(newroot, state, &drivers);
    let mounted = mount_state(newroot, state.dev.as_str(), state.wait, state.required, &drivers);
    // The modules are read from the initramfs, which switch_root deletes.
    drivers.wait();
    mounted?;
    root::populate(newroot)?;
    if first_boot {
        keep_install_user_data(newroot);
    }

    match &found.images_image {
        Some(images) => use_image_store(newroot, images),
        // The medium check said why (refused or absent); sysinit names the missing images.
        None => tracing::warn!("no system image store: System Docker starts without the system images"),
    }
    move_ram_images(newroot, &found);
    let rotated = log::rotate_boot_logs(&newroot.join("var/log"), log::ROTATE_AT);
    if let Err(e) = log::attach_file(&newroot.join("var/log/boot/init.log")) {
        tracing::warn!("cannot write the boot log: {e}");
    }
    for file in rotated {
        let file = file.strip_prefix(newroot).unwrap_or(&file);
        tracing::info!(
            "/{} was over {} MiB: kept as {}.1",
            file.display(),
            log::ROTATE_AT >> 20,
            file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        );
    }
    if let Some(note) = &rollback_note {
        problems::report(Path::new("/"), note);
    }
    tracing::info!(
        "stage 1 done in {:.2}s; switching to the real root",
        log::uptime() - started
    );
    timeline::record(timeline::Event::Stage1Done);
    root::switch_root(newroot)?;
    log::detach_file();
    exec_stage2()
}

/// The booted slot's images are not this build's (altered on disk): set the boot counter to
/// the other slot and reboot, unless the other slot failed already.
fn give_up_slot(booted: berth_install::Slot, why: &str) -> Result<(), BootError> {
    let problem = format!("slot {booted} cannot be used: {why}");
    let mut next = None;
    let mut no_fallback = None;
    let updated = slot::update_grubenv(|env| match slot::on_altered(env, booted) {
        slot::OnAltered::SwitchTo { slot, env } => {
            next = Some(slot);
            Some(env)
        }
        slot::OnAltered::NoFallback { why } => {
            no_fallback = Some(why);
            None
        }
    });
    match (updated, next) {
        (Ok(_), Some(other)) => {
            tracing::error!(
                "{problem}. The boot counter now says slot {other} (rolled_back={booted}); rebooting into it"
            );
            nix::unistd::sync();
            std::thread::sleep(Duration::from_secs(1));
            let err = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
            Err(BootError::Other(format!(
                "{problem}; rebooting into slot {other} failed: {err:?}"
            )))
        }
        (Ok(_), None) => Err(BootError::Other(format!(
            "{problem}, and {}: there is no slot left to boot",
            no_fallback.unwrap_or_default()
        ))),
        (Err(e), _) => Err(BootError::Other(format!(
            "{problem}; the boot counter could not be set to the other slot: {e}"
        ))),
    }
}

/// Where the cloud-config given to `berth install` becomes a configuration layer.
const INSTALL_USER_DATA: &str = "var/lib/berth/conf/cloud-config.d/berth-install.yml";

/// At the first boot, keep the user-data `berth install` left on BERTH_BOOT as a
/// configuration layer on the new state partition.
fn keep_install_user_data(newroot: &Path) {
    let dest = newroot.join(INSTALL_USER_DATA);
    match slot::read_boot_file(berth_install::disk::USER_DATA) {
        Ok(Some(bytes)) => {
            let written = dest
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&dest, bytes));
            match written {
                Ok(()) => tracing::info!("the install's cloud-config is now /{INSTALL_USER_DATA}"),
                Err(e) => problems::report(
                    Path::new("/"),
                    &format!("the install's cloud-config could not be kept in /{INSTALL_USER_DATA}: {e}"),
                ),
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot read the install's cloud-config: {e}"),
    }
}

/// Mount the read-only image store and assemble System Docker's data root from it, before
/// System Docker starts: its images are there at once, their layers read in place from the
/// store (mounted under /run so it moves with /run and stays for the whole boot). A broken
/// store is reported, not fatal: System Docker starts without the images it lacks, and
/// sysinit names them.
fn use_image_store(newroot: &Path, images: &Path) {
    let step = log::uptime();
    let store = Path::new(berth_services::IMAGES_DIR);
    let data_root = newroot.join(crate::system_docker::DATA_ROOT.trim_start_matches('/'));
    let result = root::mount_image(images, store)
        .map_err(|e| e.to_string())
        .and_then(|()| image_store::assemble(store, &data_root).map_err(|e| e.to_string()));
    match result {
        Ok(plan) if plan.is_current() => tracing::info!(
            "system images: the read-only store {} is in use ({:.2}s)",
            plan.release,
            log::uptime() - step
        ),
        Ok(plan) => tracing::info!(
            "system images: System Docker's data root now uses the read-only store {}{} ({:.2}s)",
            plan.release,
            plan.previous
                .map(|p| format!(", replacing {p}"))
                .unwrap_or_default(),
            log::uptime() - step
        ),
        Err(e) => problems::report(
            Path::new("/"),
            &format!(
                "the system image store ({}) cannot be used: {e}",
                images.display()
            ),
        ),
    }
}

/// A kernel + initrd boot with a state partition: the images the initramfs holds in RAM are
/// served from copies on the state partition from now on, and switch_root frees them.
fn move_ram_images(newroot: &Path, found: &medium::Medium) {
    let step = log::uptime();
    let var = newroot.join("var");
    let dir = newroot.join(crate::ram_images::DIR);
    let mut images = vec![(found.os_image.as_path(), newroot.join("usr"), "os.img")];
    if let Some(store) = &found.images_image {
        images.push((
            store.as_path(),
            Path::new(berth_services::IMAGES_DIR).to_path_buf(),
            "images.img",
        ));
    }
    let (mut moved, mut freed) = (Vec::new(), 0u64);
    for (image, mountpoint, name) in images {
        if !crate::ram_images::worth_moving(image, &var) {
            continue;
        }
        let size = std::fs::metadata(image).map(|m| m.len()).unwrap_or(0);
        match crate::ram_images::move_image(image, &mountpoint, &dir, name) {
            Ok(how) => {
                moved.push(format!(
                    "{name} ({})",
                    match how {
                        crate::ram_images::Moved::Copied => "copied",
                        crate::ram_images::Moved::AlreadyThere => "already there",
                    }
                ));
                freed += size;
            }
            Err(e) => tracing::warn!("{name} stays in RAM: {e}"),
        }
    }
    if !moved.is_empty() {
        tracing::info!(
            "images out of RAM: {} served from /{} on the state partition; {} MiB of the \
             initramfs freed at switch_root ({:.2}s)",
            moved.join(", "),
            crate::ram_images::DIR,
            freed >> 20,
            log::uptime() - step
        );
    }
}

/// The kernel unpacks the initramfs into a tmpfs capped at half of the memory it counts then
/// (the initrd itself not included): on a small machine the full initrd does not fit, the
/// kernel only logs "Initramfs unpacking failed" and the last files (the image store) are cut
/// short. A tmpfs root with no room left is that case: say what to do.
fn check_unpacked_whole(root: &Path) {
    if let Ok(fs) = nix::sys::statfs::statfs(root)
        && let Some(problem) = unpack_problem(
            fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC,
            fs.blocks_available().saturating_mul(fs.block_size() as u64),
        )
    {
        problems::report(Path::new("/"), &problem);
    }
}

/// Why the initramfs is probably incomplete, from the root's filesystem and its free bytes.
fn unpack_problem(tmpfs: bool, available: u64) -> Option<String> {
    (tmpfs && available < 1 << 20).then(|| {
        "the initramfs did not fit in the kernel's first root filesystem (a tmpfs capped at half \
         the memory): its last files are cut short. Add rootfstype=ramfs to the kernel command \
         line, or give the machine more memory"
            .to_string()
    })
}

/// The drivers of the hardware present (coldplug), loading in a thread while stage 1 goes on
/// (the state partition search watches the devices appear meanwhile), then
/// [`EARLY_MODULES`], with [`MEDIUM_MODULES`] when the OS image is to be found `on_medium`.
/// Under emulation coldplug takes ~1 s (AHCI and SCSI probe their ports before the module
/// load returns).
fn load_early_modules(on_medium: bool) -> crate::background::Background {
    let step = log::uptime();
    let index = match berth_kmod::ModuleIndex::for_running_kernel(Path::new("/")) {
        Ok(index) => std::sync::Arc::new(index),
        Err(e) => {
            tracing::warn!("no kernel modules in the initramfs: {e}");
            return crate::background::Background::done("early drivers");
        }
    };
    let drivers = {
        let index = index.clone();
        crate::background::Background::spawn("early drivers", move || {
            let report = berth_kmod::coldplug(&index, &mut berth_kmod::KernelModuleLoader, Path::new("/sys"));
            for failure in &report.failures {
                tracing::debug!(
                    "coldplug: {}: {:?}: {}",
                    failure.device.display(),
                    failure.modalias,
                    failure.error
                );
            }
            tracing::info!(
                "early drivers: {} loaded for {} devices ({:.2}s)",
                report.loaded.len(),
                report.modaliases,
                log::uptime() - step
            );
        })
    };
    let mut loader = berth_kmod::KernelModuleLoader;
    let medium_modules = if on_medium { MEDIUM_MODULES } else { &[] };
    for name in EARLY_MODULES.iter().chain(medium_modules) {
        if let Err(e) = berth_kmod::modprobe(&index, &mut loader, name, "") {
            tracing::warn!("cannot load {name}: {e}");
        }
    }
    drivers
}

/// `berth.state.autoformat`: when no state partition is found, format the first listed
/// device that is blank (first MiB all zeros: no partition table, no filesystem) as ext4 with
/// the label `berth.state.dev` looks for. A device holding anything is never touched.
fn autoformat(
    newroot: &Path,
    state: &berth_config::schema::berth::StateConfig,
    drivers: &crate::background::Background,
) {
    if state.autoformat.is_empty() {
        return;
    }
    let dev = state.dev.as_str();
    match crate::state::find(dev, Duration::from_secs(state.wait.into()), false, drivers) {
        StateDecision::Absent | StateDecision::WrongFilesystem { found: None, .. } => {}
        _ => return,
    }
    let listed: Vec<String> = state.autoformat.iter().map(|d| d.to_string()).collect();
    let devices = berth_blockdev::list(Path::new("/sys"));
    let blank = |path: &Path| installed::is_blank(path).unwrap_or(false);
    match crate::state::autoformat_target(&listed, &devices, &blank) {
        Ok(device) => {
            let label = crate::state::autoformat_label(dev);
            match installed::mkfs_ext4(newroot, &device.path, &label) {
                Ok(()) => tracing::info!(
                    "berth.state.autoformat: {} was blank: formatted ext4 {label}",
                    device.path.display()
                ),
                Err(e) => problems::report(Path::new("/"), &format!("berth.state.autoformat: {e}")),
            }
        }
        Err(why) => problems::report(
            Path::new("/"),
            &format!(
                "berth.state.autoformat: no state partition was found and no listed device can be \
                 formatted ({why}); running from RAM"
            ),
        ),
    }
}

/// Mount the state partition on `<newroot>/var`, or decide to run from RAM.
fn mount_state(
    newroot: &Path,
    dev: &str,
    wait: u32,
    required: bool,
    drivers: &crate::background::Background,
) -> Result<(), BootError> {
    let step = log::uptime();
    let target = newroot.join("var");
    match crate::state::find(dev, Duration::from_secs(wait.into()), required, drivers) {
        StateDecision::Mount { device, fstype } => {
            // The initramfs carries ext4 only (built in); XFS and btrfs come from the OS image.
            load_from(newroot, fstype);
            let spec = MountSpec::new(
                &device.path.display().to_string(),
                &target,
                fstype,
                MsFlags::MS_NOATIME,
                "",
            );
            match mounts::apply(&spec) {
                Ok(()) => {
                    tracing::info!(
                        "state partition {} ({fstype}) mounted on /var ({:.2}s)",
                        device.path.display(),
                        log::uptime() - step
                    );
                    Ok(())
                }
                Err(e) => ram_or_fail(
                    &format!("the state partition could not be mounted: {e}"),
                    required,
                ),
            }
        }
        StateDecision::WrongFilesystem { device, found } => ram_or_fail(
            &format!(
                "{} matches {dev} but holds {}, not a filesystem Berth keeps state on ({}); \
                 it was left untouched",
                device.path.display(),
                found.as_deref().unwrap_or("no recognisable filesystem"),
                crate::state::SUPPORTED.join(", ")
            ),
            required,
        ),
        StateDecision::Ambiguous { devices } => ram_or_fail(
            &format!(
                "{} devices match {dev} ({}): Berth uses none of them, so that an attached disk \
                 cannot take the place of the real one. Keep one, or name it by UUID \
                 (berth.state.dev=UUID=...)",
                devices.len(),
                devices
                    .iter()
                    .map(|d| d.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            required,
        ),
        StateDecision::Absent => {
            if required {
                return Err(BootError::StateRequired(format!("no device matches {dev}")));
            }
            tracing::warn!(
                "no state partition ({dev}): running from RAM, nothing is kept across reboots. \
                 Format a disk with `mkfs.ext4 -L BERTH_STATE` to keep data."
            );
            Ok(())
        }
    }
}

/// Load a module from the OS image's full module tree (mounted at `<newroot>/usr`).
fn load_from(newroot: &Path, module: &str) {
    let Ok(release) = berth_kmod::kernel_release() else {
        return;
    };
    let dir = newroot.join("usr/lib/modules").join(release);
    match berth_kmod::ModuleIndex::load(&dir) {
        Ok(index) if !index.is_builtin(module) => {
            if let Err(e) = berth_kmod::modprobe(&index, &mut berth_kmod::KernelModuleLoader, module, "") {
                tracing::warn!("cannot load {module}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("no module index in the OS image: {e}"),
    }
}

fn ram_or_fail(problem: &str, required: bool) -> Result<(), BootError> {
    if required {
        return Err(BootError::StateRequired(problem.to_string()));
    }
    problems::report(
        Path::new("/"),
        &format!("{problem}. Running from RAM: nothing is kept across reboots."),
    );
    Ok(())
}

fn exec_stage2() -> Result<(), BootError> {
    let err = std::process::Command::new("/usr/bin/berth")
        .arg0("init")
        .env(stage2::STAGE_ENV, "2")
        .exec();
    Err(BootError::Io("starting stage 2 (/usr/bin/berth)".into(), err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_tmpfs_root_means_a_cut_initramfs() {
        let said = unpack_problem(true, 4096).unwrap();
        assert!(said.contains("rootfstype=ramfs"), "{said}");
        // Room left, or ramfs (which reports no free space at all): nothing to say.
        assert_eq!(unpack_problem(true, 64 << 20), None);
        assert_eq!(unpack_problem(false, 0), None);
    }
}
