//! Coldplug: load the drivers for the hardware present at boot, before any uevent
//! listener runs. Walk `/sys/devices` for `modalias` files and probe each alias as
//! `modprobe -b` would (blacklist applied); repeat while loading drivers makes new devices
//! appear (a bus driver exposing its children), a few rounds at most.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::KmodError;
use crate::index::ModuleIndex;
use crate::loader::ModuleLoader;
use crate::modprobe::execute_plan;

/// Rescans after the first pass; enough for bus → device → function chains.
const MAX_ROUNDS: usize = 3;
/// Deeper than this, a sysfs walk is in a loop.
const MAX_DEPTH: usize = 48;

/// A device whose driver could not be loaded, or a part of sysfs that could not be read.
#[derive(Debug)]
pub struct ColdplugFailure {
    /// The device directory (or the unreadable path).
    pub device: PathBuf,
    /// Its `modalias`, if it was read.
    pub modalias: Option<String>,
    /// What went wrong.
    pub error: KmodError,
}

/// What coldplug did. It never stops at a failure.
#[derive(Debug, Default)]
pub struct ColdplugReport {
    /// Distinct modaliases found.
    pub modaliases: usize,
    /// Modules inserted, in order.
    pub loaded: Vec<String>,
    /// Modaliases whose modules are built in or already loaded.
    pub already_present: usize,
    /// Modaliases no module claims (the usual case for many devices).
    pub unmatched: usize,
    /// Modules skipped because modprobe.d blacklists them.
    pub blacklisted: Vec<String>,
    /// What failed.
    pub failures: Vec<ColdplugFailure>,
}

/// Load every module matching a device `modalias` under `sysfs` (normally `/sys/devices`).
pub fn coldplug(index: &ModuleIndex, loader: &mut dyn ModuleLoader, sysfs: &Path) -> ColdplugReport {
    let mut report = ColdplugReport::default();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for round in 0..MAX_ROUNDS {
        let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
        walk(sysfs, 0, &mut found, &mut report.failures);
        found.retain(|alias, _| !seen.contains(alias));
        if found.is_empty() {
            break;
        }
        tracing::debug!(round, new = found.len(), "coldplug pass");
        let mut loaded = match loader.loaded() {
            Ok(loaded) => loaded,
            Err(error) => {
                report.failures.push(ColdplugFailure {
                    device: sysfs.to_owned(),
                    modalias: None,
                    error,
                });
                return report;
            }
        };
        let before = report.loaded.len();
        for (modalias, device) in found {
            seen.insert(modalias.clone());
            probe_device(index, loader, &modalias, &device, &mut loaded, &mut report);
        }
        if report.loaded.len() == before {
            break;
        }
    }
    report.modaliases = seen.len();
    report
}

fn probe_device(
    index: &ModuleIndex,
    loader: &mut dyn ModuleLoader,
    modalias: &str,
    device: &Path,
    loaded: &mut std::collections::HashSet<String>,
    report: &mut ColdplugReport,
) {
    let resolution = index.lookup(modalias);
    for module in resolution.blacklisted {
        if !report.blacklisted.contains(&module) {
            report.blacklisted.push(module);
        }
    }
    if resolution.modules.is_empty() {
        report.unmatched += 1;
        return;
    }
    let before = report.loaded.len();
    for module in resolution.modules {
        let result = index
            .load_plan(&module)
            .and_then(|plan| execute_plan(&plan, loader, loaded, &mut report.loaded));
        if let Err(error) = result {
            if error.is_no_device() {
                tracing::debug!(device = %device.display(), modalias, module = %module, "no hardware for this driver");
                continue;
            }
            tracing::warn!(device = %device.display(), modalias, error = %error, "coldplug failed");
            report.failures.push(ColdplugFailure {
                device: device.to_owned(),
                modalias: Some(modalias.to_owned()),
                error,
            });
        }
    }
    if report.loaded.len() == before {
        report.already_present += 1;
    }
}

/// Collect `modalias` contents under `dir` without following symlinks (sysfs is full of
/// them, and they loop).
fn walk(
    dir: &Path,
    depth: usize,
    found: &mut BTreeMap<String, PathBuf>,
    failures: &mut Vec<ColdplugFailure>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(source) => {
            failures.push(ColdplugFailure {
                device: dir.to_owned(),
                modalias: None,
                error: KmodError::ReadSysfs {
                    path: dir.to_owned(),
                    source,
                },
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&entry.path(), depth + 1, found, failures);
        } else if kind.is_file() && entry.file_name() == "modalias" {
            let path = entry.path();
            match fs::read(&path) {
                Ok(data) => {
                    let alias = String::from_utf8_lossy(&data).trim().to_owned();
                    if !alias.is_empty() {
                        found.entry(alias).or_insert_with(|| dir.to_owned());
                    }
                }
                // Some devices refuse reads of their modalias; nothing to load for them.
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "unreadable modalias")
                }
            }
        }
    }
}
