//! The A/B slots of an installed disk. GRUB boots a slot with `berth.slot=A|B` and counts
//! tries in `grub/grubenv` on the `BERTH_BOOT` partition (crates/berth-install). Here:
//! - stage 1 uses only the booted slot's partition as the boot medium;
//! - a slot whose images do not match the initrd's digests (altered on disk) is given up: the
//!   grubenv is set so the next boot takes the other slot, and the machine reboots, unless
//!   the other slot has failed already (then the emergency console says so);
//! - once the boot is complete (User Docker ready) PID 1 marks the slot good.
//!
//! The decisions are pure functions of the grubenv; the few side effects (mounting
//! `BERTH_BOOT`, the in-place write) are below them.

use berth_install::grubenv::{self, GrubEnv};
use berth_install::layout::Slot;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::path::{Path, PathBuf};

/// The kernel parameter GRUB sets on an installed disk.
pub const CMDLINE_KEY: &str = "berth.slot";
/// Where `BERTH_BOOT` is mounted while the grubenv is read or written.
const BOOT_MOUNT: &str = "/run/berth/boot-partition";
/// The grubenv inside `BERTH_BOOT`.
const GRUBENV: &str = "grub/grubenv";

/// What to do when the booted slot's images were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnAltered {
    /// Write this grubenv and reboot: the next boot takes the other slot.
    SwitchTo { slot: Slot, env: GrubEnv },
    /// The other slot failed already (or is the one booted): nothing left to fall back to.
    NoFallback { why: String },
}

/// Decide for a booted slot whose images are not this build's.
pub fn on_altered(env: &GrubEnv, booted: Slot) -> OnAltered {
    let other = booted.other();
    if env.get(grubenv::ROLLED_BACK) == Some(other.as_str()) {
        return OnAltered::NoFallback {
            why: format!("slot {other} failed before (rolled_back={other} in grubenv)"),
        };
    }
    let mut env = env.clone();
    let set = |env: &mut GrubEnv, k: &str, v: &str| {
        // Keys and values here are fixed, valid names.
        let _ = env.set(k, v);
    };
    set(&mut env, grubenv::BOOT_SLOT, other.as_str());
    set(&mut env, grubenv::PREV_SLOT, booted.as_str());
    set(&mut env, grubenv::BOOT_OK, "1");
    set(&mut env, grubenv::BOOT_TRIES, "0");
    set(&mut env, grubenv::ROLLED_BACK, booted.as_str());
    OnAltered::SwitchTo { slot: other, env }
}

/// The grubenv after a complete boot of `booted`, or `None` when nothing is to be written:
/// the slot is marked good only when it is the slot GRUB meant to boot (a fallback boot of
/// the other slot confirms nothing) and is not marked already.
pub fn mark_good(env: &GrubEnv, booted: Slot) -> Option<GrubEnv> {
    if env.get(grubenv::BOOT_SLOT) != Some(booted.as_str()) || env.get(grubenv::BOOT_OK) == Some("1") {
        return None;
    }
    let mut env = env.clone();
    let _ = env.set(grubenv::BOOT_OK, "1");
    Some(env)
}

/// The booted slot, from the kernel command line.
pub fn booted(cmdline: &berth_config::KernelCmdline) -> Option<Slot> {
    cmdline.get(CMDLINE_KEY).and_then(Slot::parse)
}

/// The block device of the GPT partition named `name` (`BERTH_A`, `BERTH_BOOT`).
pub fn partition_named(name: &str) -> Option<PathBuf> {
    berth_blockdev::list(Path::new("/sys"))
        .into_iter()
        .filter(|d| d.partition)
        .find(|d| {
            berth_blockdev::partition_entry(Path::new("/sys"), &d.name)
                .name
                .as_deref()
                == Some(name)
        })
        .map(|d| d.path)
}

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("no partition named BERTH_BOOT: this is not an installed Berth disk")]
    NoBootPartition,
    #[error("cannot mount BERTH_BOOT ({device}): {errno}")]
    Mount {
        device: String,
        errno: nix::errno::Errno,
    },
    #[error(transparent)]
    GrubEnv(#[from] grubenv::GrubEnvError),
}

/// Run `f` with `BERTH_BOOT` mounted (read-only with `MS_RDONLY`), then unmount it.
fn with_boot_partition<T>(
    flags: MsFlags,
    f: impl FnOnce(&Path) -> Result<T, SlotError>,
) -> Result<T, SlotError> {
    let device = partition_named(berth_install::layout::BOOT.name).ok_or(SlotError::NoBootPartition)?;
    let dir = Path::new(BOOT_MOUNT);
    let _ = std::fs::create_dir_all(dir);
    mount(
        Some(&device),
        dir,
        Some("vfat"),
        flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|errno| SlotError::Mount {
        device: device.display().to_string(),
        errno,
    })?;
    let result = f(dir);
    let _ = umount2(dir, MntFlags::empty());
    result
}

/// Run `f` on the grubenv with `BERTH_BOOT` mounted read-write; write back what it returns.
pub fn update_grubenv(f: impl FnOnce(&GrubEnv) -> Option<GrubEnv>) -> Result<Option<GrubEnv>, SlotError> {
    with_boot_partition(MsFlags::empty(), |dir| {
        let path = dir.join(GRUBENV);
        let env = GrubEnv::read(&path)?;
        Ok(match f(&env) {
            Some(new) => {
                new.write_in_place(&path)?;
                Some(new)
            }
            None => None,
        })
    })
}

/// PID 1, when the boot is complete: mark the booted slot good (nothing on a live boot).
pub fn confirm_boot() {
    let Ok(cmdline) = berth_config::KernelCmdline::read() else {
        return;
    };
    let Some(slot) = booted(&cmdline) else {
        return;
    };
    match update_grubenv(|env| mark_good(env, slot)) {
        Ok(Some(_)) => tracing::info!("slot {slot} booted completely: marked good in the boot counter"),
        Ok(None) => tracing::debug!("slot {slot}: the boot counter needs no change"),
        Err(e) => berth_runtime::problems::report(
            Path::new("/"),
            &format!(
                "slot {slot} booted but could not be marked good: {e}; the boot counter will go back to the other slot"
            ),
        ),
    }
}

/// PID 1, when the boot did not get healthy in time: a slot on trial (GRUB's `boot_slot`, not
/// yet good) is rebooted, which costs it one try; `true` when a reboot is wanted. A live boot,
/// or a slot already good, only says so.
pub fn health_expired() -> bool {
    let Ok(cmdline) = berth_config::KernelCmdline::read() else {
        return false;
    };
    let Some(slot) = booted(&cmdline) else {
        return false;
    };
    let trial = match read_grubenv() {
        Ok(env) => {
            env.get(grubenv::BOOT_SLOT) == Some(slot.as_str()) && env.get(grubenv::BOOT_OK) != Some("1")
        }
        Err(e) => {
            tracing::warn!("cannot read the boot counter: {e}");
            false
        }
    };
    let message = if trial {
        format!(
            "slot {slot} did not pass its health checks (System Docker, every system service, User Docker) \
             within berth.upgrade.health_timeout: rebooting; GRUB counts the try and goes back to the \
             other slot after the last one"
        )
    } else {
        format!("the boot did not pass its health checks within berth.upgrade.health_timeout (slot {slot})")
    };
    berth_runtime::problems::report(Path::new("/"), &message);
    trial
}

/// What the grubenv says about an earlier fall back, for the console and the boot log.
pub fn rollback_note(env: &GrubEnv, booted: Slot) -> Option<String> {
    let failed = env.get(grubenv::ROLLED_BACK).and_then(Slot::parse)?;
    (failed != booted).then(|| {
        format!(
            "slot {failed} failed to boot and was given up: this is slot {booted} \
             (rolled_back={failed} in the boot counter)"
        )
    })
}

/// Read the grubenv (mounting `BERTH_BOOT` for the time it takes).
pub fn read_grubenv() -> Result<GrubEnv, SlotError> {
    let mut seen = None;
    update_grubenv(|env| {
        seen = Some(env.clone());
        None
    })?;
    Ok(seen.unwrap_or_default())
}

/// Read a file of `BERTH_BOOT` (the user-data `berth install` left), `None` if absent.
pub fn read_boot_file(name: &str) -> Result<Option<Vec<u8>>, SlotError> {
    with_boot_partition(MsFlags::MS_RDONLY, |dir| Ok(std::fs::read(dir.join(name)).ok()))
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

    #[test]
    fn an_altered_slot_hands_over_to_the_other_once() {
        let trying_b = env(&[
            ("boot_slot", "B"),
            ("prev_slot", "A"),
            ("boot_ok", "0"),
            ("boot_tries", "2"),
        ]);
        let OnAltered::SwitchTo { slot, env: next } = on_altered(&trying_b, Slot::B) else {
            panic!("expected a switch")
        };
        assert_eq!(slot, Slot::A);
        assert_eq!(next.get("boot_slot"), Some("A"));
        assert_eq!(next.get("boot_ok"), Some("1"));
        assert_eq!(next.get("rolled_back"), Some("B"));
        // A then altered too: B failed already, so no loop between two bad slots.
        assert!(matches!(on_altered(&next, Slot::A), OnAltered::NoFallback { .. }));
    }

    #[test]
    fn only_the_intended_slot_is_marked_good_and_only_once() {
        let trying_b = env(&[("boot_slot", "B"), ("boot_ok", "0"), ("boot_tries", "2")]);
        let marked = mark_good(&trying_b, Slot::B).unwrap();
        assert_eq!(marked.get("boot_ok"), Some("1"));
        assert_eq!(marked.get("boot_tries"), Some("2"));
        assert_eq!(mark_good(&marked, Slot::B), None);
        // GRUB fell back to A in the same boot: B is not confirmed by A's success.
        assert_eq!(mark_good(&trying_b, Slot::A), None);
    }

    #[test]
    fn a_rollback_is_told_on_the_slot_that_took_over() {
        let env = env(&[("boot_slot", "A"), ("boot_ok", "1"), ("rolled_back", "B")]);
        let note = rollback_note(&env, Slot::A).unwrap();
        assert!(
            note.contains("slot B failed to boot") && note.contains("this is slot A"),
            "{note}"
        );
        assert_eq!(rollback_note(&env, Slot::B), None);
        assert_eq!(rollback_note(&GrubEnv::installed(), Slot::A), None);
    }
}
