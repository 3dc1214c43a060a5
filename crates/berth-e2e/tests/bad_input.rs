//! Bad input never bricks the machine: each problem is reported on the console and in
//! /var/log/boot/, and the serial console still logs in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_e2e::qemu::{Boot, Vm};
use common::{BOOT, check, env};
use std::process::Command;
use std::time::Duration;

/// No NoCloud seed, an unknown kernel parameter, and a disk labelled BERTH_STATE that holds
/// FAT instead of ext4 (which must be left untouched).
#[test]
fn vm_no_seed_unknown_parameter_wrong_state_filesystem() {
    let env = env("bad-input");
    let disk = env.dir.join("vfat-state.img");
    std::fs::File::create(&disk).unwrap().set_len(64 << 20).unwrap();
    let out = Command::new("mkfs.vfat")
        .args(["-n", "BERTH_STATE"])
        .arg(&disk)
        .output()
        .unwrap();
    assert!(out.status.success(), "mkfs.vfat: {out:?}");
    let before = std::fs::read(&disk).unwrap();
    let mut vm = env.kernel_vm("berth.no_such_setting=1");
    vm.disks.push(disk.clone());
    let m = env.start("bad-input", vm);

    let login = check(
        &m,
        "autologin",
        m.wait_console("login: berth (automatic login)", 0, BOOT),
    );
    let console = m.console();
    assert!(
        console.contains("holds vfat") && console.contains("left untouched"),
        "the wrong state filesystem is not reported on the console"
    );
    assert!(
        console.contains("no_such_setting"),
        "the unknown parameter is not reported on the console"
    );
    // The banner before the login lists the problems.
    assert!(
        console.contains("Problems found during boot"),
        "no problem banner"
    );
    assert!(
        console.contains("cloud-init: no datasource answered"),
        "the missing seed is not reported"
    );

    let prompt = check(
        &m,
        "shell prompt",
        m.wait_console("$ ", login, Duration::from_secs(60)),
    );
    // The answer is marked with computed text, so the echo of the typed line cannot match it.
    check(
        &m,
        "type",
        m.type_line(
            "echo ANS$((1+1)) $(grep -c -e 'holds vfat' -e no_such_setting /var/log/boot/init.log) \
             $(grep -c 'no datasource' /var/log/boot/cloud-init.log) END$((2+2))",
        ),
    );
    let end = check(
        &m,
        "shell answers",
        m.wait_console("END4", prompt, Duration::from_secs(60)),
    );
    let text = m.console()[prompt..end].to_string();
    let answer: Vec<u32> = text
        .rsplit("ANS2")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let count = |i: usize| answer.get(i).copied().unwrap_or(0);
    assert!(count(0) >= 2, "not in /var/log/boot/init.log: {text:?}");
    assert!(count(1) >= 1, "not in /var/log/boot/cloud-init.log: {text:?}");

    check(&m, "type poweroff", m.type_line("sudo poweroff"));
    let status = check(&m, "poweroff", m.wait_exit(Duration::from_secs(180)));
    assert!(status.success());
    assert_eq!(
        std::fs::read(&disk).unwrap(),
        before,
        "the FAT disk was written to"
    );
    check(&m, "console scan", m.assert_clean_console());
}

/// System images that cannot be loaded: reported, and an emergency shell on the console.
#[test]
fn vm_system_images_fail_to_load() {
    let env = env("bad-images");
    // A boot medium with the real OS image and an image store whose layers are gone: the slim
    // initrd boots the OS image (its digest matches) but refuses the store (its digest does
    // not), System Docker starts without the system images, they are named, and the emergency
    // console opens.
    let medium = env.dir.join("medium");
    std::fs::create_dir_all(medium.join("berth")).unwrap();
    std::fs::copy(&env.artifacts.os_img, medium.join("berth/os.img")).unwrap();
    let broken = env.dir.join("broken-images");
    std::fs::create_dir_all(&broken).unwrap();
    let real = Command::new("unsquashfs")
        .args(["-no-progress", "-d"])
        .arg(env.dir.join("real-images"))
        .arg(&env.artifacts.images_img)
        .arg("images.json")
        .output()
        .unwrap();
    assert!(real.status.success(), "unsquashfs: {real:?}");
    std::fs::copy(
        env.dir.join("real-images/images.json"),
        broken.join("images.json"),
    )
    .unwrap();
    let mk = Command::new("mksquashfs")
        .arg(&broken)
        .arg(medium.join("berth/images.img"))
        .args(["-quiet", "-no-progress", "-noappend", "-all-root"])
        .output()
        .unwrap();
    assert!(mk.status.success(), "mksquashfs: {mk:?}");
    let iso = env.dir.join("medium.iso");
    let x = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "BERTH", "-r", "-o"])
        .arg(&iso)
        .arg(&medium)
        .output()
        .unwrap();
    assert!(x.status.success(), "xorriso: {x:?}");

    let mut vm = Vm::new(Boot::Kernel {
        vmlinuz: env.artifacts.vmlinuz.clone(),
        initrd: env.artifacts.slim_initrd.clone(),
        append: "console=ttyS0,115200n8 panic=10".into(),
    });
    vm.disks.push(iso);
    let m = env.start("bad-images", vm);
    let shell = check(
        &m,
        "emergency shell",
        m.wait_console("emergency root shell", 0, BOOT),
    );
    let console = m.console();
    assert!(
        console.contains("the system images on /dev/vda were refused: images.img is not this build's"),
        "the refused system images are not reported on the console"
    );
    let _ = check(&m, "prompt", m.wait_console("# ", shell, Duration::from_secs(30)));
    check(
        &m,
        "type",
        m.type_line(
            "grep -q 'were refused' /run/berth/boot-problems && echo REFUSED-$((1+1)); \
             grep -q 'lacks these system images' /var/log/boot/sysinit.log && echo NAMED-$((2+2)); \
             echo ALIVE-$((2+3))",
        ),
    );
    check(
        &m,
        "emergency shell answers",
        m.wait_console("ALIVE-5", shell, Duration::from_secs(60)),
    );
    // The images System Docker lacks are named on the console and in /var/log/boot/.
    let console = m.console();
    let named = console
        .lines()
        .find(|l| l.contains("System Docker lacks these system images:"))
        .unwrap_or_else(|| panic!("the missing system images are not named on the console"));
    for image in ["berth/console:", "berth/docker:", "berth/network:"] {
        assert!(named.contains(image), "{image} not named: {named}");
    }
    assert!(
        console[shell..].contains("REFUSED-2"),
        "the refused store is not in /run/berth/boot-problems"
    );
    assert!(
        console[shell..].contains("NAMED-4"),
        "the missing images are not named in /var/log/boot/sysinit.log"
    );
    check(&m, "type poweroff", m.type_line("poweroff -f"));
    let _ = m.wait_exit(Duration::from_secs(60));
}
