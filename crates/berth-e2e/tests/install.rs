//! Install to disk (issue 8): `berth install` from the ISO onto a blank disk, then that disk
//! alone under SeaBIOS (the boot counter counts a try and init marks the slot good; the state
//! partition is made at the first boot and fills the disk; the install's cloud-config lets
//! us in); there, signed upgrades: a bundle with a flipped byte, one signed with another key,
//! one for another architecture, one not newer and a URL that does not answer are refused
//! with nothing written, then the next release's bundle (a second build, made with `cargo
//! xtask build --version`) goes into slot B, which boots that release, is confirmed, and keeps
//! a user container and its volume; `berth os rollback` brings slot A back with them. Then
//! under OVMF with slot B holding an altered OS image (one byte, caught by dm-verity): B is
//! given up, the machine comes up on A and says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_e2e::qemu::{Boot, Vm};
use berth_install::{GrubEnv, Slot, disk};
use common::{BOOT, check, env};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A disk holding the bundles: the next release's (a second build, made with `--version`),
/// this build's own (not newer), and bad variants of the next one: `flipped.upgrade` (one
/// byte changed, the original signature), `other.upgrade` (signed with another key),
/// `arm64.upgrade` (a newer bundle for aarch64, signed with the build's key).
fn bundle_disk(env: &common::Env, next: &Path) -> std::path::PathBuf {
    let dir = env.dir.join("bundles");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let own = env.artifacts.out.join(format!("berth-{VERSION}.upgrade"));
    for bundle in [own.as_path(), next] {
        let copy = dir.join(bundle.file_name().unwrap());
        std::fs::copy(bundle, &copy).unwrap();
        std::fs::copy(
            berth_upgrade::signature_path(bundle),
            berth_upgrade::signature_path(&copy),
        )
        .unwrap();
    }
    let bundle = next;
    let mut bytes = std::fs::read(bundle).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    std::fs::write(dir.join("flipped.upgrade"), &bytes).unwrap();
    drop(bytes);
    std::fs::copy(
        berth_upgrade::signature_path(bundle),
        dir.join("flipped.upgrade.minisig"),
    )
    .unwrap();
    let other = dir.join("other.upgrade");
    std::fs::hard_link(dir.join(bundle.file_name().unwrap()), &other).unwrap();
    let minisign::KeyPair { pk, sk } = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let sig = minisign::sign(
        Some(&pk),
        &sk,
        File::open(&other).unwrap(),
        Some("another key"),
        None,
    )
    .unwrap();
    std::fs::write(berth_upgrade::signature_path(&other), sig.to_string()).unwrap();
    // A bundle for another architecture, newer and signed with the build's own key: only its
    // architecture is wrong.
    // (Its release files are stand-ins: the architecture is refused before they are read.)
    let stand_in = dir.join("stand-in");
    std::fs::write(&stand_in, "an aarch64 file\n").unwrap();
    let files: Vec<(&str, &Path)> = berth_upgrade::RELEASE_FILES
        .iter()
        .map(|name| (*name, stand_in.as_path()))
        .collect();
    let arm = dir.join("arm64.upgrade");
    berth_upgrade::write(&arm, "99.0.0", "aarch64", &files).unwrap();
    std::fs::remove_file(&stand_in).unwrap();
    let key = std::env::var_os("BERTH_SIGNING_KEY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env.artifacts.out.join("keys/berth.key"));
    let sk = minisign::SecretKeyBox::from_string(&std::fs::read_to_string(&key).unwrap())
        .unwrap()
        .into_unencrypted_secret_key()
        .unwrap();
    let pk = minisign::PublicKey::from_secret_key(&sk).unwrap();
    let sig = minisign::sign(Some(&pk), &sk, File::open(&arm).unwrap(), Some("aarch64"), None).unwrap();
    std::fs::write(berth_upgrade::signature_path(&arm), sig.to_string()).unwrap();
    let disk = env.dir.join("bundles.img");
    berth_e2e::qemu::make_ext4_disk_from(&disk, 900, "BUNDLES", Some(&dir)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    disk
}

/// `sudo berth os list --format json` as (slot, state, booted, default) tuples and versions.
fn slots(m: &berth_e2e::machine::Machine) -> Vec<(String, String, bool, bool, Option<String>)> {
    let json = check(m, "berth os list", m.run("sudo berth os list --format json"));
    let list: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["slot"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
                s["booted"].as_bool().unwrap(),
                s["default"].as_bool().unwrap(),
                s["version"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn wait_marked_good(m: &berth_e2e::machine::Machine, slot: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = m
            .run("grep -h 'marked good' /var/log/boot/init.log || true")
            .unwrap_or_default();
        if log.contains(&format!("slot {slot} booted completely")) {
            return;
        }
        assert!(Instant::now() < deadline, "slot {slot} was not marked good");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The user container and its volume, as they must be after every reboot.
fn kept(m: &berth_e2e::machine::Machine, when: &str) {
    let out = check(
        m,
        when,
        m.run("for i in $(seq 60); do docker exec keeper cat /data/f 2>/dev/null && break; sleep 2; done"),
    );
    assert!(out.contains("kept-across-slots"), "{when}: {out}");
}

fn open(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).open(path).unwrap()
}

fn set_env(path: &Path, pairs: &[(&str, &str)]) {
    let mut file = open(path);
    let mut env = disk::read_grubenv(&mut file).unwrap();
    for (k, v) in pairs {
        env.set(k, v).unwrap();
    }
    disk::write_grubenv(&mut file, &env).unwrap();
    file.sync_all().unwrap();
}

/// Make B the next boot on trial, as an upgrade leaves it: three tries, A to fall back to.
fn arm_slot_b(path: &Path) {
    set_env(
        path,
        &[
            ("boot_slot", "B"),
            ("prev_slot", "A"),
            ("boot_ok", "0"),
            ("boot_tries", "3"),
        ],
    );
}

fn grubenv(path: &Path) -> GrubEnv {
    disk::read_grubenv(&mut open(path)).unwrap()
}

#[test]
fn vm_install_from_iso_then_boot_bios_and_uefi_with_an_altered_slot() {
    let started = Instant::now();
    let env = env("install");
    // The release to upgrade to: a second build, newer, signed with the same key.
    let next = berth_e2e::build_next(&env.artifacts.out).expect("building the next release");
    let next_version = berth_e2e::next_version();
    eprintln!(
        "next release {next_version} ready at {:.0}s",
        started.elapsed().as_secs_f64()
    );
    let target = env.dir.join("installed.img");
    File::create(&target).unwrap().set_len(3 * GIB).unwrap();

    // (1) The ISO with a blank disk: install with a cloud-config holding the test's key.
    let mut vm = Vm::new(Boot::Cdrom(env.artifacts.iso.clone()));
    vm.disks.push(target.clone());
    vm.cidata = Some(env.cidata(&env.user_data("berth-live", "")));
    let m = env.start("install-iso", vm);
    check(&m, "ssh on the ISO", m.wait_ssh(BOOT));
    let cloud_config = env.user_data("berth-installed", "");
    check(
        &m,
        "write the cloud-config",
        m.run(&format!("cat > /tmp/cc.yml <<'EOF'\n{cloud_config}EOF")),
    );
    // Bad input first: the ISO's own disk and a broken cloud-config are refused.
    let refused = m
        .run("sudo berth install --device /dev/sr0 --no-reboot 2>&1; echo rc=$?")
        .unwrap();
    assert!(refused.contains("rc=1"), "installing on the CD: {refused}");
    let bad = check(
        &m,
        "bad cloud-config",
        m.run(
            "printf '#cloud-config\\nberth:\\n  ssh:\\n    port: x\\n' > /tmp/bad.yml; \
               sudo berth install -d /dev/vda -c /tmp/bad.yml --no-reboot 2>&1; echo rc=$?",
        ),
    );
    assert!(bad.contains("/tmp/bad.yml:4") && bad.contains("rc=1"), "{bad}");
    let out = check(
        &m,
        "berth install",
        m.run("sudo berth install --device /dev/vda --cloud-config /tmp/cc.yml --no-reboot 2>&1"),
    );
    assert!(
        out.contains("BERTH_A") && out.contains("MiB written") && out.contains("is installed on /dev/vda"),
        "{out}"
    );
    // A second install without --force is refused: the disk holds partitions now.
    let again = m
        .run("sudo berth install -d /dev/vda --no-reboot 2>&1; echo rc=$?")
        .unwrap();
    assert!(again.contains("--force") && again.contains("rc=1"), "{again}");
    common::poweroff(&m);
    drop(m);
    eprintln!("install done at {:.0}s", started.elapsed().as_secs_f64());

    // The counter armed from the host: GRUB must take a try, init must confirm the boot.
    set_env(
        &target,
        &[("boot_slot", "A"), ("boot_ok", "0"), ("boot_tries", "3")],
    );

    // (2) The disk alone under SeaBIOS: no seed, so ssh works only with the install's key.
    let mut vm = Vm::new(Boot::Installed(target.clone()));
    vm.allow_reboot = true;
    vm.disks.push(bundle_disk(&env, &next));
    let m = env.start("installed-bios", vm);
    check(&m, "ssh on the installed disk (BIOS)", m.wait_ssh(BOOT));
    let host = check(&m, "hostname", m.run("hostname; cat /proc/cmdline"));
    assert!(
        host.contains("berth-installed") && host.contains("berth.slot=A"),
        "{host}"
    );
    let var = check(
        &m,
        "state",
        m.run("findmnt -n -o SOURCE,FSTYPE /var/lib/berth; cat /sys/class/block/vda6/size"),
    );
    assert!(var.contains("/dev/vda6") && var.contains("ext4"), "{var}");
    let sectors: u64 = var.lines().last().unwrap().trim().parse().unwrap();
    assert_eq!(
        sectors * 512,
        3 * GIB - 1090 * (1 << 20) - (1 << 20),
        "the state partition fills the disk"
    );
    let hello = check(
        &m,
        "a user container",
        m.run(&format!(
            "sudo system-docker save berth/base:{v} | docker load >/dev/null && docker run --rm berth/base:{v} busybox echo hello-from-disk",
            v = env!("CARGO_PKG_VERSION")
        )),
    );
    assert!(hello.contains("hello-from-disk"), "{hello}");
    // init marks the slot good once User Docker answers and no system service failed.
    wait_marked_good(&m, "A");
    let after = grubenv(&target);
    assert_eq!(after.get("boot_ok"), Some("1"), "{after:?}");
    assert_eq!(after.get("boot_tries"), Some("2"), "GRUB took one try: {after:?}");
    eprintln!("BIOS boot done at {:.0}s", started.elapsed().as_secs_f64());

    // Signed upgrades. A user container with a restart policy and a named volume first.
    check(
        &m,
        "the keeper container",
        m.run(&format!(
            "docker run -d --name keeper --restart always -v keep:/data berth/base:{VERSION} \
             sh -c 'echo kept-across-slots > /data/f; exec sleep 100000' >/dev/null"
        )),
    );
    kept(&m, "the keeper before the upgrade");
    let before = slots(&m);
    assert_eq!(
        before,
        [
            ("A".into(), "good".into(), true, true, Some(VERSION.into())),
            ("B".into(), "empty".into(), false, false, None),
        ]
    );
    check(&m, "mount the bundles", m.run("sudo mount -o ro /dev/vdb /mnt"));
    for (file, why) in [
        ("flipped.upgrade", "corrupt or was altered"),
        ("other.upgrade", "signed by another key"),
        (&format!("berth-{VERSION}.upgrade") as &str, "not newer"),
        ("missing.upgrade", "no such file"),
        (
            "arm64.upgrade",
            "the bundle is for aarch64, this machine runs x86_64: refused",
        ),
        // A URL nothing answers at (the connection is refused).
        ("http://127.0.0.1:9/berth.upgrade", "fetching the signature"),
    ] {
        let source = if file.starts_with("http://") {
            file.to_string()
        } else {
            format!("/mnt/{file}")
        };
        let out = m
            .run(&format!(
                "sudo berth os upgrade {source} --no-reboot 2>&1; echo rc=$?"
            ))
            .unwrap();
        assert!(out.contains(why) && out.contains("rc=1"), "{file}: {out}");
    }
    let unsigned = m
        .run("sudo cp /mnt/other.upgrade /var/lib/berth/unsigned.upgrade && sudo berth os upgrade /var/lib/berth/unsigned.upgrade --no-reboot 2>&1; echo rc=$?; sudo rm -f /var/lib/berth/unsigned.upgrade")
        .unwrap();
    assert!(
        unsigned.contains("unsigned bundle is refused") && unsigned.contains("rc=1"),
        "{unsigned}"
    );
    assert_eq!(slots(&m), before, "a refused bundle changed the slots");
    let out = check(
        &m,
        "berth os upgrade",
        m.run(&format!(
            "sudo berth os upgrade /mnt/berth-{next_version}.upgrade --no-reboot 2>&1"
        )),
    );
    assert!(
        out.contains("Slot B now holds") && out.contains("Writing BERTH_B"),
        "{out}"
    );
    let armed = slots(&m);
    assert_eq!(armed[1].1, "trying", "{armed:?}");
    assert!(armed[1].3 && !armed[0].3, "B must be the default: {armed:?}");
    common::reboot(&m);
    let cmdline = check(&m, "slot B", m.run("cat /proc/cmdline; berth version"));
    assert!(
        cmdline.contains("berth.slot=B")
            && cmdline.contains("Slot: B")
            && cmdline.contains(&format!("Berth {next_version}")),
        "{cmdline}"
    );
    kept(&m, "the keeper after the upgrade");
    wait_marked_good(&m, "B");
    let upgraded = slots(&m);
    assert_eq!(
        (
            upgraded[1].1.as_str(),
            upgraded[1].2,
            upgraded[1].3,
            upgraded[1].4.as_deref()
        ),
        ("good", true, true, Some(next_version.as_str())),
        "{upgraded:?}"
    );
    // Rollback, rebooting by itself.
    let mark = m.console().len();
    let said = m
        .ssh("sudo berth os rollback 2>&1")
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    check(
        &m,
        "reboot after rollback",
        m.wait_console("stage 1 (initramfs)", mark, BOOT),
    );
    check(&m, "ssh after rollback", m.wait_ssh(BOOT));
    let cmdline = check(&m, "slot A again", m.run("cat /proc/cmdline"));
    assert!(cmdline.contains("berth.slot=A"), "{said}\n{cmdline}");
    kept(&m, "the keeper after the rollback");
    let back = slots(&m);
    assert_eq!(
        (back[0].1.as_str(), back[0].2, back[0].3, back[1].1.as_str()),
        ("good", true, true, "good"),
        "{back:?}"
    );
    common::poweroff(&m);
    drop(m);
    eprintln!(
        "upgrade and rollback done at {:.0}s",
        started.elapsed().as_secs_f64()
    );

    // (5) Power cuts in the first boots of a new slot: B (the upgraded build) armed as an
    // upgrade leaves it; QEMU is killed three times once B's init runs, before B can be marked
    // good. Each boot costs one try; the fourth is A again, and says why.
    arm_slot_b(&target);
    for cut in 1..=3u32 {
        let mut vm = Vm::new(Boot::Installed(target.clone()));
        vm.allow_reboot = false;
        let mut m = env.start(&format!("power-cut-{cut}"), vm);
        check(
            &m,
            "slot B's init",
            m.wait_console("stage 1 (initramfs)", 0, BOOT),
        );
        m.kill();
        assert!(
            m.console().contains("berth.slot=B"),
            "boot {cut} was not slot B:\n{}",
            berth_e2e::machine::tail(&m.console(), 30)
        );
        let env_now = grubenv(&target);
        let left = (3 - cut).to_string();
        assert_eq!(
            (env_now.get("boot_slot"), env_now.get("boot_tries")),
            (Some("B"), Some(left.as_str())),
            "power cut {cut}: {env_now:?}"
        );
    }
    let m = env.start("after-power-cuts", Vm::new(Boot::Installed(target.clone())));
    check(&m, "ssh after three power cuts", m.wait_ssh(BOOT));
    assert!(
        m.console().contains("slot B did not confirm its boot"),
        "GRUB did not say it went back"
    );
    let back = check(
        &m,
        "slot A after the power cuts",
        m.run("cat /proc/cmdline; cat /run/berth/boot-problems"),
    );
    assert!(back.contains("berth.slot=A"), "{back}");
    assert!(back.contains("slot B failed to boot and was given up"), "{back}");
    let listed = slots(&m);
    assert_eq!(
        (listed[0].2, listed[0].3, listed[1].1.as_str()),
        (true, true, "failed"),
        "{listed:?}"
    );
    kept(&m, "the keeper after the power cuts");
    common::poweroff(&m);
    drop(m);
    eprintln!("power cuts done at {:.0}s", started.elapsed().as_secs_f64());

    // (3)+(4) Slot B = slot A with one byte of os.img flipped, armed as the next boot; under
    // OVMF. B's dm-verity must refuse it, and the machine come up on A.
    {
        let mut file = open(&target);
        disk::copy_slot(&mut file, Slot::A, Slot::B, &mut |name, bytes| {
            if name == "berth/os.img" {
                let at = bytes.len() / 2;
                bytes[at] ^= 0x01;
            }
        })
        .unwrap();
        file.sync_all().unwrap();
    }
    arm_slot_b(&target);
    let mut vm = Vm::new(Boot::Installed(target.clone()));
    vm.uefi = true;
    vm.allow_reboot = true;
    let m = env.start("installed-uefi", vm);
    check(
        &m,
        "slot B refused",
        m.wait_console("slot B cannot be used", 0, BOOT),
    );
    check(&m, "ssh on slot A (UEFI)", m.wait_ssh(BOOT));
    let slot = check(
        &m,
        "slot",
        m.run("cat /proc/cmdline; cat /run/berth/boot-problems; grep -h 'slot B' /var/log/boot/init.log"),
    );
    assert!(slot.contains("berth.slot=A"), "{slot}");
    assert!(slot.contains("slot B failed to boot and was given up"), "{slot}");
    common::poweroff(&m);
    drop(m);
    let after = grubenv(&target);
    assert_eq!(after.get("boot_slot"), Some("A"), "{after:?}");
    assert_eq!(after.get("rolled_back"), Some("B"), "{after:?}");
    let _ = std::fs::remove_file(&target);
    eprintln!("install e2e done in {:.0}s", started.elapsed().as_secs_f64());
}
