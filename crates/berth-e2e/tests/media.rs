//! The hybrid ISO: as a CD under BIOS (with a NoCloud seed, checked over ssh) and as a disk
//! under UEFI (no seed: the default entry logs the serial console in). Under BIOS a disk
//! holding another build's OS image is scanned first: the slim initrd must refuse it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_e2e::qemu::{Boot, Vm, make_ext4_disk_from};
use common::{BOOT, check, env, poweroff};
use std::time::Duration;

#[test]
fn vm_iso_as_cdrom_bios() {
    let env = env("iso-cdrom-bios");
    let mut vm = Vm::new(Boot::Cdrom(env.artifacts.iso.clone()));
    vm.cidata = Some(env.cidata(&env.user_data("berth-iso", "")));
    // /dev/sda (named before /dev/sr0) carries an OS image that is not this build's.
    let foreign = env.dir.join("foreign");
    std::fs::create_dir_all(foreign.join("berth")).unwrap();
    std::fs::write(foreign.join("berth/os.img"), b"hsqs: not this build's image").unwrap();
    let disk = env.dir.join("foreign.img");
    make_ext4_disk_from(&disk, 8, "FOREIGN", Some(&foreign)).unwrap();
    vm.ahci_disks.push(disk);
    let m = env.start("iso-bios", vm);
    check(
        &m,
        "GRUB menu",
        m.wait_console("Berth", 0, Duration::from_secs(120)),
    );
    check(&m, "boot to ssh", m.wait_ssh(BOOT));
    let log = check(&m, "init log", m.run("cat /var/log/boot/init.log"));
    assert!(
        log.contains("found the OS image on /dev/sr0"),
        "the OS image did not come from the CD:\n{log}"
    );
    let problems = check(&m, "boot problems", m.run("cat /run/berth/boot-problems"));
    assert!(
        problems.contains("the OS image on /dev/sda was refused: os.img is not this build's"),
        "the foreign OS image was not refused, or not said so:\n{problems}"
    );
    let pid1 = check(&m, "pid 1", m.run("tr '\\0' ' ' < /proc/1/cmdline"));
    assert!(pid1.starts_with("init"), "{pid1}");
    let cmdline = check(&m, "kernel command line", m.run("cat /proc/cmdline"));
    assert!(
        cmdline.contains("berth.autologin=ttyS0"),
        "the default entry autologs in: {cmdline}"
    );
    poweroff(&m);
}

#[test]
fn vm_iso_as_disk_uefi() {
    let env = env("iso-disk-uefi");
    let mut vm = Vm::new(Boot::Disk(env.artifacts.iso.clone()));
    vm.uefi = true;
    let m = env.start("iso-uefi", vm);
    let login = check(
        &m,
        "automatic login on the serial console",
        m.wait_console("login: berth (automatic login)", 0, BOOT),
    );
    // Give the shell a moment, then type into it.
    let prompt = check(
        &m,
        "shell prompt",
        m.wait_console("$ ", login, Duration::from_secs(60)),
    );
    check(
        &m,
        "type",
        m.type_line("echo UEFI-$((40+2)) $(cat /sys/firmware/efi/fw_platform_size)"),
    );
    check(
        &m,
        "shell answers",
        m.wait_console("UEFI-42 64", prompt, Duration::from_secs(60)),
    );
    check(&m, "type poweroff", m.type_line("sudo poweroff"));
    let status = check(&m, "poweroff", m.wait_exit(Duration::from_secs(180)));
    assert!(status.success());
    check(&m, "console scan", m.assert_clean_console());
}
