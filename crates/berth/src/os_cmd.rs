//! `berth os`: the release slots of an installed disk. `list` shows both slots (version, booted,
//! default, good / trying / failed), `upgrade` writes a signed bundle into the slot not booted
//! and arms GRUB's boot counter, `rollback` makes the other slot the default again.
//! RancherOS's `ros os upgrade` / `ros os list` are `berth os upgrade` / `berth os list`.

use berth_install::disk::{self, Progress, Release};
use berth_install::grubenv::{self, GrubEnv};
use berth_install::layout::{self, MIB, Slot};
use berth_upgrade::{BundleError, Verified};
use clap::Subcommand;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where bundles fetched from a URL and the files of one being installed are kept (the state
/// partition on an installed disk).
const WORK_DIR: &str = "/var/lib/berth/upgrade";
/// The tries a new slot gets to pass its first boot's health checks.
const TRIES: &str = "3";
/// The largest bundle fetched from a URL.
const MAX_BUNDLE: u64 = 2 << 30;

#[derive(Subcommand, Debug)]
pub enum OsCommand {
    /// Both slots: version, which is booted, which boots next, good / trying / failed
    #[command(visible_alias = "ls")]
    List {
        /// Output format: table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Install a signed upgrade bundle into the other slot and boot it
    #[command(after_help = "\
The bundle's signature (FILE.minisig, or URL.minisig) is checked against this release's key
before anything is written. The new release boots next; it must pass its health checks
(System Docker, every system service, User Docker ready) within berth.upgrade.health_timeout,
or after 3 tries GRUB boots this release again.

Examples:
  sudo berth os upgrade /home/berth/berth-0.2.0.upgrade
  sudo berth os upgrade https://releases.example.com/berth-0.2.0.upgrade --no-reboot")]
    Upgrade {
        /// The bundle: a file, or an http(s) URL
        source: String,
        /// Do not reboot when done (the new release boots at the next reboot)
        #[arg(long)]
        no_reboot: bool,
        /// Install a bundle that is not newer than the running release
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Boot the other slot's release again (it must have booted well before)
    Rollback {
        /// Do not reboot now
        #[arg(long)]
        no_reboot: bool,
    },
}

pub fn main(command: OsCommand) -> i32 {
    let result = match command {
        OsCommand::List { format } => list(&format),
        OsCommand::Upgrade {
            source,
            no_reboot,
            force,
        } => upgrade(&source, no_reboot, force),
        OsCommand::Rollback { no_reboot } => rollback(no_reboot),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth os: {e}");
            1
        }
    }
}

/// A slot as `berth os list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotStatus {
    pub slot: String,
    /// The release in it; `None` when the slot is empty.
    pub version: Option<String>,
    pub booted: bool,
    /// GRUB boots it next.
    pub default: bool,
    /// `good`, `trying` (booting it is being tried), `failed` (given up), or `empty`.
    pub state: String,
}

/// The slots' states from the grubenv, what each slot holds and which one is booted.
pub fn slot_statuses(env: &GrubEnv, versions: [Option<String>; 2], booted: Slot) -> Vec<SlotStatus> {
    [Slot::A, Slot::B]
        .into_iter()
        .zip(versions)
        .map(|(slot, version)| {
            let name = slot.as_str();
            let default = env.get(grubenv::BOOT_SLOT) == Some(name);
            let state = if version.is_none() {
                "empty"
            } else if env.get(grubenv::ROLLED_BACK) == Some(name) {
                "failed"
            } else if default && env.get(grubenv::BOOT_OK) != Some("1") {
                "trying"
            } else {
                "good"
            };
            SlotStatus {
                slot: name.to_string(),
                version,
                booted: slot == booted,
                default,
                state: state.to_string(),
            }
        })
        .collect()
}

/// The installed disk this machine booted from: its device and booted slot.
struct Installed {
    disk: PathBuf,
    booted: Slot,
}

fn installed() -> Result<Installed, String> {
    let cmdline =
        berth_config::KernelCmdline::read().map_err(|e| format!("reading the kernel command line: {e}"))?;
    let booted = berth_boot::slot::booted(&cmdline).ok_or_else(|| {
        "this machine runs from a live medium, not from an installed disk: install it first \
         (sudo berth install --device DEV, see docs/install.md)"
            .to_string()
    })?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err("reading and writing the boot slots needs root: run it with sudo".to_string());
    }
    let part = berth_boot::slot::partition_named(layout::BOOT.name)
        .ok_or_else(|| "no partition named BERTH_BOOT: this is not an installed Berth disk".to_string())?;
    let name = part
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let disk = berth_blockdev::parent_disk(Path::new("/sys"), &name)
        .ok_or_else(|| format!("cannot find the disk that holds {}", part.display()))?;
    Ok(Installed { disk, booted })
}

/// Open the whole disk. The kernel caches each block device apart: the whole disk, and each
/// partition that init mounts to write the grubenv. So what was cached through the whole disk
/// is dropped first (init may have written through a partition since).
fn open_disk(path: &Path, write: bool) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    drop_cache(&file);
    Ok(file)
}

fn drop_cache(file: &std::fs::File) {
    let _ = nix::fcntl::posix_fadvise(file, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED);
}

/// After writing through the whole disk: drop what the partitions' devices cached, so init
/// (mounting BERTH_BOOT) and a later boot read what was written.
fn drop_partition_caches(slot: Slot) {
    for name in [layout::BOOT.name, layout::slot(slot).name] {
        if let Some(device) = berth_boot::slot::partition_named(name)
            && let Ok(file) = std::fs::File::open(&device)
        {
            drop_cache(&file);
        }
    }
}

fn slot_version(disk: &mut std::fs::File, slot: Slot) -> Option<String> {
    disk::read_slot_file(disk, slot, disk::SLOT_VERSION)
        .ok()
        .map(|v| String::from_utf8_lossy(&v).trim().to_string())
        .filter(|v| !v.is_empty())
}

fn statuses(machine: &Installed) -> Result<(GrubEnv, Vec<SlotStatus>), String> {
    let mut disk = open_disk(&machine.disk, false)?;
    let env = disk::read_grubenv(&mut disk).map_err(|e| e.to_string())?;
    let versions = [slot_version(&mut disk, Slot::A), slot_version(&mut disk, Slot::B)];
    Ok((env.clone(), slot_statuses(&env, versions, machine.booted)))
}

fn list(format: &str) -> Result<(), String> {
    let machine = installed()?;
    let (env, slots) = statuses(&machine)?;
    if format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&slots).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "{:<6}{:<14}{:<9}{:<8}DEFAULT",
        "SLOT", "VERSION", "STATE", "BOOTED"
    );
    for s in &slots {
        println!(
            "{:<6}{:<14}{:<9}{:<8}{}",
            s.slot,
            s.version.as_deref().unwrap_or("-"),
            s.state,
            if s.booted { "yes" } else { "" },
            if s.default { "yes" } else { "" }
        );
    }
    if let Some(note) = berth_boot::slot::rollback_note(&env, machine.booted) {
        println!("\n{note}");
    }
    Ok(())
}

fn reboot() -> Result<(), String> {
    println!("Rebooting.");
    let _ = std::io::stdout().flush();
    match berth_boot::power::main("reboot", &[]) {
        0 => Ok(()),
        rc => Err(format!(
            "reboot failed ({rc}): reboot by hand to boot the new slot"
        )),
    }
}

/// The bundle and its signature on this machine: a file as given, or a URL downloaded into
/// the work directory (the state partition).
fn fetch(source: &str) -> Result<(PathBuf, PathBuf), String> {
    if !crate::fetch::is_url(source) {
        let bundle = PathBuf::from(source);
        if !bundle.is_file() {
            return Err(format!("{source}: no such file"));
        }
        let sig = berth_upgrade::signature_path(&bundle);
        return Ok((bundle, sig));
    }
    let dir = Path::new(WORK_DIR);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let bundle = dir.join("download.upgrade");
    let sig = berth_upgrade::signature_path(&bundle);
    crate::fetch::download_signed(source, &bundle, &sig, MAX_BUNDLE, "bundle")?;
    Ok((bundle, sig))
}

fn verify(bundle: &Path, sig: &Path, force: bool) -> Result<Verified, String> {
    let key_path = Path::new(berth_upgrade::KEY_PATH);
    let key = berth_upgrade::load_key(key_path).map_err(|e| e.to_string())?;
    eprintln!("Verifying {} ...", bundle.display());
    let verified = berth_upgrade::verify(bundle, sig, &key).map_err(|e| e.to_string())?;
    verified
        .check_applicable(berth_boot::VERSION, force)
        .map_err(|e: BundleError| e.to_string())?;
    eprintln!("{}: signed with this release's key", verified.manifest);
    Ok(verified)
}

fn upgrade(source: &str, no_reboot: bool, force: bool) -> Result<(), String> {
    let machine = installed()?;
    let (env, slots) = statuses(&machine)?;
    if env.get(grubenv::BOOT_SLOT) == Some(machine.booted.as_str()) && env.get(grubenv::BOOT_OK) != Some("1")
    {
        return Err(format!(
            "slot {} is still being tried (its health checks have not passed): upgrade once it is marked good",
            machine.booted
        ));
    }
    let (bundle, sig) = fetch(source)?;
    let verified = verify(&bundle, &sig, force)?;
    let target = machine.booted.other();
    if let Some(old) = slots
        .iter()
        .find(|s| s.slot == target.as_str())
        .and_then(|s| s.version.clone())
    {
        eprintln!("Slot {target} held Berth {old}: it is replaced.");
    }

    // The files go through the state partition: extract (each checked against the signed
    // manifest), then write the slot. Nothing is written into the slot before that.
    let staging = Path::new(WORK_DIR).join(format!("staging-{}", verified.manifest.version));
    let _ = std::fs::remove_dir_all(&staging);
    let result = stage_and_write(&verified, &staging, &machine, target);
    let _ = std::fs::remove_dir_all(&staging);
    if source.starts_with("http") {
        let _ = std::fs::remove_file(&bundle);
        let _ = std::fs::remove_file(&sig);
    }
    result?;

    // Armed: GRUB counts tries until the new slot's first boot is confirmed healthy.
    set_next_boot(&machine, target, false)?;
    println!(
        "Slot {target} now holds Berth {} and boots next; if its first boot does not pass its health \
         checks in {TRIES} tries, slot {} (Berth {}) boots again.",
        verified.manifest.version,
        machine.booted,
        berth_boot::VERSION
    );
    if no_reboot {
        println!("Reboot to use it (sudo reboot).");
        return Ok(());
    }
    reboot()
}

fn stage_and_write(
    verified: &Verified,
    staging: &Path,
    machine: &Installed,
    target: Slot,
) -> Result<(), String> {
    std::fs::create_dir_all(staging.join("berth")).map_err(|e| format!("{}: {e}", staging.display()))?;
    verified
        .extract(|entry, reader| {
            let dest = staging.join(&entry.path);
            let mut file = std::fs::File::create(&dest)?;
            std::io::copy(reader, &mut file)?;
            file.sync_all()
        })
        .map_err(|e| e.to_string())?;
    let release = Release {
        version: verified.manifest.version.clone(),
        vmlinuz: staging.join("vmlinuz"),
        initrd: staging.join("initrd"),
        os_img: staging.join("berth/os.img"),
        images_img: staging.join("berth/images.img"),
    };
    let total: u64 = verified.manifest.files.iter().map(|f| f.size).sum();
    let mut disk = open_disk(&machine.disk, true)?;
    let mut last = 0;
    let result = disk::write_slot(&mut disk, target, Some(&release), &mut |p| {
        if let Progress::Written { name, bytes } = p
            && (bytes / (32 * MIB) != last / (32 * MIB) || bytes == total)
        {
            eprintln!("Writing {name}: {} of {} MiB", bytes / MIB, total / MIB);
            last = bytes;
        }
    });
    if let Err(e) = result {
        // A slot half written must not look like a release: leave it empty.
        let _ = disk::write_slot(&mut disk, target, None, &mut |_| {});
        return Err(format!(
            "writing slot {target}: {e}; the slot was left empty, the running release is unchanged"
        ));
    }
    Ok(())
}

/// Make `slot` the one GRUB boots next: on trial (`good == false`: 3 counted tries) or as a
/// slot known good; the running slot becomes the one to go back to.
fn set_next_boot(machine: &Installed, slot: Slot, good: bool) -> Result<(), String> {
    let mut disk = open_disk(&machine.disk, true)?;
    let mut next = disk::read_grubenv(&mut disk).map_err(|e| e.to_string())?;
    for (k, v) in [
        (grubenv::BOOT_SLOT, slot.as_str()),
        (grubenv::PREV_SLOT, machine.booted.as_str()),
        (grubenv::BOOT_OK, if good { "1" } else { "0" }),
        (grubenv::BOOT_TRIES, if good { "0" } else { TRIES }),
    ] {
        next.set(k, v).map_err(|e| e.to_string())?;
    }
    next.remove(grubenv::ROLLED_BACK);
    disk::write_grubenv(&mut disk, &next).map_err(|e| e.to_string())?;
    disk.sync_all()
        .map_err(|e| format!("writing {}: {e}", machine.disk.display()))?;
    drop(disk);
    drop_partition_caches(slot);
    Ok(())
}

fn rollback(no_reboot: bool) -> Result<(), String> {
    let machine = installed()?;
    let (_, slots) = statuses(&machine)?;
    let other = machine.booted.other();
    let status = slots
        .iter()
        .find(|s| s.slot == other.as_str())
        .ok_or("no such slot")?;
    match status.state.as_str() {
        "empty" => return Err(format!("slot {other} holds no release: nothing to roll back to")),
        "failed" => {
            return Err(format!(
                "slot {other} failed to boot before (Berth {}): it is not rolled back to",
                status.version.as_deref().unwrap_or("?")
            ));
        }
        _ => {}
    }
    // A slot that booted well before is not counted again.
    set_next_boot(&machine, other, true)?;
    println!(
        "Slot {other} (Berth {}) boots next.",
        status.version.as_deref().unwrap_or("?")
    );
    if no_reboot {
        return Ok(());
    }
    reboot()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> GrubEnv {
        let mut env = GrubEnv::new();
        for (k, v) in pairs {
            env.set(k, v).unwrap();
        }
        env
    }

    fn states(s: &[SlotStatus]) -> Vec<(&str, &str, bool, bool)> {
        s.iter()
            .map(|s| (s.slot.as_str(), s.state.as_str(), s.booted, s.default))
            .collect()
    }

    #[test]
    fn slot_states_follow_the_boot_counter() {
        let v = |s: &str| Some(s.to_string());
        // Just installed: A good and booted, B empty.
        let e = env(&[("boot_slot", "A"), ("boot_ok", "1")]);
        assert_eq!(
            states(&slot_statuses(&e, [v("0.1.0"), None], Slot::A)),
            [("A", "good", true, true), ("B", "empty", false, false)]
        );
        // After an upgrade to B, before its health checks passed.
        let e = env(&[
            ("boot_slot", "B"),
            ("prev_slot", "A"),
            ("boot_ok", "0"),
            ("boot_tries", "2"),
        ]);
        assert_eq!(
            states(&slot_statuses(&e, [v("0.1.0"), v("0.2.0")], Slot::B)),
            [("A", "good", false, false), ("B", "trying", true, true)]
        );
        // B given up: A again.
        let e = env(&[("boot_slot", "A"), ("boot_ok", "1"), ("rolled_back", "B")]);
        assert_eq!(
            states(&slot_statuses(&e, [v("0.1.0"), v("0.2.0")], Slot::A)),
            [("A", "good", true, true), ("B", "failed", false, false)]
        );
        let json = serde_json::to_value(slot_statuses(&e, [v("0.1.0"), None], Slot::A)).unwrap();
        assert_eq!(json[0]["version"], "0.1.0");
        assert_eq!(json[1]["version"], serde_json::Value::Null);
        assert_eq!(json[1]["state"], "empty");
    }
}
