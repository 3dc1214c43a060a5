//! Coldplug over a fake sysfs tree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_kmod::{FakeModuleLoader, KmodError, ModuleLoader, coldplug};
use common::{Tree, write};
use nix::errno::Errno;

fn fake_sysfs() -> tempfile::TempDir {
    let sys = tempfile::tempdir().expect("tempdir");
    let d = sys.path();
    let nvme = "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02\n";
    write(&d.join("pci0000:00/0000:00:03.0/modalias"), nvme);
    write(&d.join("pci0000:00/0000:00:05.0/modalias"), nvme);
    write(
        &d.join("pci0000:00/0000:00:04.0/virtio0/modalias"),
        "virtio:d00000001v00001AF4\n",
    );
    write(&d.join("platform/pcspkr/modalias"), "platform:pcspkr\n");
    write(&d.join("platform/serial8250/modalias"), "platform:serial8250\n");
    write(
        &d.join("pci0000:00/usb1/1-1/1-1:1.0/modalias"),
        "usb:v0403p6001d0400dc00dsc00dp00icFFiscFFipFFin00\n",
    );
    write(&d.join("platform/empty/modalias"), "\n");
    write(&d.join("platform/pcspkr/uevent"), "MODALIAS=platform:pcspkr\n");
    // sysfs is full of links back up the tree: they must not be followed.
    std::os::unix::fs::symlink("../..", d.join("pci0000:00/0000:00:03.0/subsystem")).expect("symlink");
    sys
}

#[test]
fn loads_drivers_and_reports_the_rest() {
    let tree = Tree::new();
    let index = tree.index_with("blacklist pcspkr\n");
    let sys = fake_sysfs();
    let mut loader = FakeModuleLoader::with_loaded(["nvme_post"]);
    loader.fail_insert("usbserial", Errno::ENOEXEC);

    let report = coldplug(&index, &mut loader, sys.path());

    assert_eq!(report.modaliases, 5);
    assert_eq!(
        report.loaded,
        [
            // sorted by modalias: pci (nvme), platform, usb, virtio
            "nvme_core",
            "crc32c_generic",
            "crc32c_intel",
            "nvme",
            "failover",
            "net_failover",
            "virtio_net",
        ]
    );
    assert_eq!(report.blacklisted, ["pcspkr"]);
    assert_eq!(report.unmatched, 2, "serial8250 and pcspkr");
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let failure = &report.failures[0];
    assert_eq!(failure.device, sys.path().join("pci0000:00/usb1/1-1/1-1:1.0"));
    assert!(matches!(
        failure.error,
        KmodError::Insert { ref module, .. } if module == "usbserial"
    ));
    assert!(!loader.is_loaded("ftdi_sio"));
}

#[test]
fn missing_sysfs_is_empty() {
    let tree = Tree::new();
    let mut loader = FakeModuleLoader::new();
    let report = coldplug(&tree.index(), &mut loader, Path::new("/nonexistent/sys/devices"));
    assert_eq!(report.modaliases, 0);
    assert!(report.failures.is_empty());
}

/// A kernel where loading virtio_pci makes a virtio device appear, as a bus driver does.
struct BusKernel {
    inner: FakeModuleLoader,
    sysfs: PathBuf,
}

impl ModuleLoader for BusKernel {
    fn loaded(&self) -> Result<HashSet<String>, KmodError> {
        self.inner.loaded()
    }

    fn insert(&mut self, path: &Path, params: &str) -> Result<(), KmodError> {
        self.inner.insert(path, params)?;
        if path.ends_with("virtio_pci.ko.xz") {
            write(
                &self.sysfs.join("pci0000:00/0000:00:04.0/virtio0/modalias"),
                "virtio:d00000001v00001AF4\n",
            );
        }
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<(), KmodError> {
        self.inner.remove(name)
    }
}

#[test]
fn rescans_for_devices_that_drivers_create() {
    let tree = Tree::new();
    let sys = tempfile::tempdir().expect("tempdir");
    write(
        &sys.path().join("pci0000:00/0000:00:04.0/modalias"),
        "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n",
    );
    let mut kernel = BusKernel {
        inner: FakeModuleLoader::new(),
        sysfs: sys.path().to_owned(),
    };
    let report = coldplug(&tree.index(), &mut kernel, sys.path());
    assert_eq!(
        report.loaded,
        ["virtio_pci", "failover", "net_failover", "virtio_net"]
    );
    assert_eq!(report.modaliases, 2);
}
