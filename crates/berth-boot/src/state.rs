//! The state partition: the persistent `/var`. Found by label (`BERTH_STATE`, or RancherOS's
//! `RANCHER_STATE`), UUID or path; a device with the wrong filesystem is reported and left
//! untouched, and the machine runs from RAM rather than risk the data on it.

use crate::background::Background;
use berth_blockdev::{BlockDevice, DeviceSpec, FsInfo};
use std::path::Path;
use std::time::{Duration, Instant};

/// Filesystems Berth mounts as its state partition.
pub const SUPPORTED: &[&str] = &["ext4", "ext3", "ext2", "xfs", "btrfs"];

/// What the search decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateDecision {
    /// Mount this device with this filesystem.
    Mount {
        device: BlockDevice,
        fstype: &'static str,
    },
    /// Found, but with a filesystem Berth will not mount as state.
    WrongFilesystem {
        device: BlockDevice,
        found: Option<String>,
    },
    /// More than one device matched: none is used.
    Ambiguous { devices: Vec<BlockDevice> },
    /// Nothing matched.
    Absent,
}

/// The references to look for: the configured one, and RancherOS's label as an alias of ours.
pub fn candidates(configured: &str) -> Vec<DeviceSpec> {
    with_rancher_alias(configured, "STATE")
}

/// `configured`, and when it is Berth's default label `BERTH_<KIND>`, RancherOS's
/// `RANCHER_<KIND>` after it: disks prepared for RancherOS keep working.
pub fn with_rancher_alias(configured: &str, kind: &str) -> Vec<DeviceSpec> {
    let mut specs = Vec::new();
    if let Some(spec) = DeviceSpec::parse(configured) {
        specs.push(spec);
    }
    if configured == format!("LABEL=BERTH_{kind}") {
        specs.push(DeviceSpec::Label(format!("RANCHER_{kind}")));
    }
    specs
}

/// Decide from the devices present (pure: the probe is supplied). Several devices matching
/// (two disks labelled `BERTH_STATE`, or one `BERTH_STATE` and one `RANCHER_STATE`) is
/// ambiguous: neither is used, since a disk slipped in by anyone would otherwise win by name.
pub fn decide(
    specs: &[DeviceSpec],
    devices: &[BlockDevice],
    probe: &dyn Fn(&BlockDevice) -> Option<FsInfo>,
) -> StateDecision {
    let mut matches: Vec<berth_blockdev::Found> = Vec::new();
    for spec in specs {
        for found in berth_blockdev::resolve_all_with(spec, devices, probe) {
            if !matches.iter().any(|m| m.device.path == found.device.path) {
                matches.push(found);
            }
        }
    }
    if matches.len() > 1 {
        return StateDecision::Ambiguous {
            devices: matches.into_iter().map(|m| m.device).collect(),
        };
    }
    let Some(found) = matches.pop() else {
        return StateDecision::Absent;
    };
    match found.fs {
        Some(fs) if SUPPORTED.contains(&fs.fstype) => StateDecision::Mount {
            device: found.device,
            fstype: fs.fstype,
        },
        other => StateDecision::WrongFilesystem {
            device: found.device,
            found: other.map(|f| f.fstype.to_string()),
        },
    }
}

/// Stop waiting once the set of block devices has not changed for this long: the drivers have
/// found what there is, and a machine without a state disk boots without delay.
pub const SETTLED: Duration = Duration::from_secs(1);
/// ... and once the drivers finished loading this long ago. The kernel returns from loading a
/// module after the probes it started (SCSI scans, ATA ports), but a few drivers find disks
/// later still (Xen and Hyper-V ask their host).
pub const AFTER_DRIVERS: Duration = Duration::from_millis(500);

/// Look for the state partition, waiting up to `wait` for slow devices to appear. Unless the
/// state partition is `required`, stop earlier once the devices have settled (no change for
/// [`SETTLED`], the `drivers` loaded [`AFTER_DRIVERS`] ago): a machine without a state disk
/// must not wait for one at every boot.
pub fn find(configured: &str, wait: Duration, required: bool, drivers: &Background) -> StateDecision {
    let specs = candidates(configured);
    if specs.is_empty() {
        return StateDecision::Absent;
    }
    let started = Instant::now();
    let mut last_names: Vec<String> = Vec::new();
    let mut last_change = Instant::now();
    loop {
        let devices = berth_blockdev::list(Path::new("/sys"));
        let names: Vec<String> = devices.iter().map(|d| d.name.clone()).collect();
        if names != last_names {
            last_names = names;
            last_change = Instant::now();
        }
        let decision = decide(&specs, &devices, &|d: &BlockDevice| {
            berth_blockdev::probe(&d.path)
        });
        let settled = last_change.elapsed() >= SETTLED
            && drivers
                .finished_at()
                .is_some_and(|at| at.elapsed() >= AFTER_DRIVERS);
        let done = match decision {
            // A second disk with the same label may still be appearing: decide on a settled set.
            StateDecision::Mount { .. } | StateDecision::Ambiguous { .. } => settled,
            StateDecision::WrongFilesystem { .. } => true,
            StateDecision::Absent => settled && !required,
        };
        if done || started.elapsed() >= wait {
            return decision;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The label a device formatted for `configured` must carry to be found by it: `X` for
/// `LABEL=X`, else Berth's own.
pub fn autoformat_label(configured: &str) -> String {
    match DeviceSpec::parse(configured) {
        Some(DeviceSpec::Label(label)) => label,
        _ => "BERTH_STATE".to_string(),
    }
}

/// `berth.state.autoformat`: the first listed device that is present and blank (`blank`:
/// its first MiB is zeros, so no partition table and no filesystem) — or why none is.
/// Formatting is only ever considered when no state partition was found.
pub fn autoformat_target(
    listed: &[String],
    devices: &[BlockDevice],
    blank: &dyn Fn(&Path) -> bool,
) -> Result<BlockDevice, String> {
    let mut seen = Vec::new();
    for entry in listed {
        let Some(spec) = DeviceSpec::parse(entry) else {
            seen.push(format!("{entry}: not a device reference"));
            continue;
        };
        let found = berth_blockdev::resolve_all_with(&spec, devices, &|_| None);
        match found.as_slice() {
            [] => seen.push(format!("{entry}: absent")),
            [one] if blank(&one.device.path) => return Ok(one.device.clone()),
            [one] => seen.push(format!("{}: not blank, left alone", one.device.path.display())),
            _ => seen.push(format!("{entry}: matches several devices, left alone")),
        }
    }
    Err(seen.join("; "))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A whole disk named `name` (the OEM tests share it).
    pub(crate) fn dev(name: &str) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            path: PathBuf::from(format!("/dev/{name}")),
            partition: false,
            size: 1 << 30,
            removable: false,
        }
    }

    fn fs(fstype: &'static str, label: &str) -> Option<FsInfo> {
        Some(FsInfo {
            fstype,
            label: Some(label.into()),
            uuid: None,
        })
    }

    #[test]
    fn the_search_waits_for_the_drivers() {
        let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
        let mut drivers = Background::spawn("test drivers", move || {
            let _ = wait_for_go.recv();
        });
        assert_eq!(drivers.finished_at(), None);
        // No such disk on this machine: while the drivers load, the search does not give up
        // early (only its `wait` ends it).
        let label = "LABEL=BERTH_NO_SUCH_STATE_DISK";
        let started = Instant::now();
        assert_eq!(
            find(label, Duration::from_millis(1500), false, &drivers),
            StateDecision::Absent
        );
        assert!(started.elapsed() >= Duration::from_millis(1500));
        go.send(()).unwrap();
        drivers.wait();
        let loaded = drivers.finished_at().expect("loaded after wait()");
        // Once they are loaded, it settles long before its wait.
        let started = Instant::now();
        assert_eq!(
            find(label, Duration::from_secs(30), false, &drivers),
            StateDecision::Absent
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(loaded.elapsed() >= AFTER_DRIVERS);
    }

    #[test]
    fn decisions() {
        let devices = [dev("sr0"), dev("vda"), dev("vdb")];
        type Probe = Box<dyn Fn(&BlockDevice) -> Option<FsInfo>>;
        let cases: Vec<(&str, Probe, StateDecision)> = vec![
            (
                "ext4 labelled BERTH_STATE is mounted",
                Box::new(|d: &BlockDevice| {
                    if d.name == "vdb" {
                        fs("ext4", "BERTH_STATE")
                    } else {
                        None
                    }
                }),
                StateDecision::Mount {
                    device: dev("vdb"),
                    fstype: "ext4",
                },
            ),
            (
                "RancherOS's label is accepted",
                Box::new(|d: &BlockDevice| {
                    if d.name == "vda" {
                        fs("ext4", "RANCHER_STATE")
                    } else {
                        None
                    }
                }),
                StateDecision::Mount {
                    device: dev("vda"),
                    fstype: "ext4",
                },
            ),
            (
                "a vfat disk labelled BERTH_STATE is refused, not formatted",
                Box::new(|d: &BlockDevice| {
                    if d.name == "vda" {
                        fs("vfat", "BERTH_STATE")
                    } else {
                        None
                    }
                }),
                StateDecision::WrongFilesystem {
                    device: dev("vda"),
                    found: Some("vfat".into()),
                },
            ),
            (
                "no disk: RAM",
                Box::new(|_: &BlockDevice| None),
                StateDecision::Absent,
            ),
            (
                "two disks labelled BERTH_STATE: neither is used",
                Box::new(|d: &BlockDevice| (d.name != "sr0").then(|| fs("ext4", "BERTH_STATE")).flatten()),
                StateDecision::Ambiguous {
                    devices: vec![dev("vda"), dev("vdb")],
                },
            ),
            (
                "BERTH_STATE and RANCHER_STATE: neither is used",
                Box::new(|d: &BlockDevice| match d.name.as_str() {
                    "vda" => fs("ext4", "RANCHER_STATE"),
                    "vdb" => fs("xfs", "BERTH_STATE"),
                    _ => None,
                }),
                StateDecision::Ambiguous {
                    devices: vec![dev("vdb"), dev("vda")],
                },
            ),
        ];
        let specs = candidates("LABEL=BERTH_STATE");
        for (name, probe, want) in cases {
            assert_eq!(decide(&specs, &devices, &*probe), want, "{name}");
        }
    }

    #[test]
    fn a_path_with_no_filesystem_is_the_wrong_filesystem() {
        let specs = candidates("/dev/vdb");
        let decision = decide(&specs, &[dev("vdb")], &|_| None);
        assert_eq!(
            decision,
            StateDecision::WrongFilesystem {
                device: dev("vdb"),
                found: None
            }
        );
    }

    #[test]
    fn autoformat_takes_the_first_blank_listed_device_only() {
        let devices = vec![dev("vda"), dev("vdb"), dev("vdc")];
        let blank = |p: &Path| p != Path::new("/dev/vda");
        let listed = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // vda holds something: skipped; vdb is blank: chosen, vdc never looked at.
        let got = autoformat_target(
            &listed(&["/dev/sda", "/dev/vda", "/dev/vdb", "/dev/vdc"]),
            &devices,
            &blank,
        );
        assert_eq!(got.unwrap().path, PathBuf::from("/dev/vdb"));
        // Nothing blank: the reason names each device.
        let err = autoformat_target(&listed(&["/dev/sda", "/dev/vda"]), &devices, &blank).unwrap_err();
        assert_eq!(err, "/dev/sda: absent; /dev/vda: not blank, left alone");
        assert_eq!(autoformat_label("LABEL=RANCHER_STATE"), "RANCHER_STATE");
        assert_eq!(autoformat_label("/dev/vdb"), "BERTH_STATE");
    }
}
