//! The consoles (issue #7 item 2): the slim default console has the tools the boot path and
//! the user need and not the rest; `berth console switch debian` loads the optional debian
//! console from its archive (on a second disk) and replaces the console at once, apt-get runs
//! there, the debian console and what was written into it survive a reboot on a state disk,
//! and `berth console switch default` brings the slim one back. One machine for all of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_e2e::machine::Machine;
use common::{BOOT, check, env, poweroff, reboot};
use std::time::{Duration, Instant};

/// Run `cmd` over ssh until it succeeds (the console is being replaced meanwhile).
fn until_ok(m: &Machine, cmd: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(out) = m.ssh(cmd)
            && out.status.success()
        {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "`{cmd}` still fails after {}s\n--- console tail ---\n{}",
            timeout.as_secs(),
            berth_e2e::machine::tail(&m.console(), 30)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}

fn consoles(m: &Machine) -> serde_json::Value {
    let text = check(m, "console list", m.run("sudo berth console list --format json"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("berth console list: {e}: {text}"))
}

fn current(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|c| c["current"] == true)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn vm_console_slim_then_debian_across_a_reboot_then_default() {
    let env = env("console");
    let archive = env.artifacts.out.join("console-debian.tar.zst");
    assert!(
        archive.is_file(),
        "{} is missing: run `cargo xtask build`",
        archive.display()
    );
    let state = env.ext4_disk("state.img", 2048, "BERTH_STATE");
    // The archive on a disk of its own, as a user would bring it on a stick.
    let content = env.dir.join("consoles");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::hard_link(&archive, content.join("console-debian.tar.zst"))
        .or_else(|_| std::fs::copy(&archive, content.join("console-debian.tar.zst")).map(|_| ()))
        .unwrap();
    let size_mib = std::fs::metadata(&archive).unwrap().len() / (1 << 20) + 32;
    let consoles_disk = env.dir.join("consoles.img");
    berth_e2e::qemu::make_ext4_disk_from(&consoles_disk, size_mib, "CONSOLES", Some(&content)).unwrap();
    std::fs::remove_dir_all(&content).unwrap();

    let mut vm = env.kernel_vm("");
    vm.disks.push(state.clone());
    vm.disks.push(consoles_disk.clone());
    vm.cidata = Some(env.cidata(&env.user_data("berth-console", "")));
    let m = env.start("console", vm);
    check(&m, "ssh", m.wait_ssh(BOOT));

    // The slim console: what the boot path and the user need, not the full userland.
    check(
        &m,
        "slim console tools",
        m.run(
            "for t in bash sudo logger ip ps mount docker berth ssh-keygen; do command -v $t >/dev/null || { echo missing $t; exit 1; }; done; \
             test -x /usr/sbin/agetty && test -x /usr/sbin/sshd",
        ),
    );
    let absent = check(
        &m,
        "slim console lacks",
        m.run(
            "for t in vim apt-get dpkg curl less; do command -v $t >/dev/null && echo has $t; done; \
             test -e /usr/sbin/mkfs.ext4 && echo has mkfs.ext4; true",
        ),
    );
    assert_eq!(absent.trim(), "", "the slim console has: {absent}");
    let list = consoles(&m);
    assert_eq!(current(&list), ["default"], "{list}");
    assert_eq!(list[1]["name"], "debian");
    assert_eq!(list[1]["available"], false, "{list}");

    // Without the archive the switch says what to give, and nothing changes.
    let refused = check(
        &m,
        "switch without archive",
        m.ssh("sudo berth console switch debian"),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--from FILE"),
        "{refused:?}"
    );

    // Switch: load from the second disk, replace the console at once.
    check(
        &m,
        "mount the archive disk",
        m.run("sudo mkdir -p /mnt/consoles && sudo mount -o ro LABEL=CONSOLES /mnt/consoles"),
    );
    let started = Instant::now();
    let switched = check(
        &m,
        "switch to debian",
        m.ssh("sudo berth console switch debian --from /mnt/consoles/console-debian.tar.zst"),
    );
    assert!(
        switched.status.success() || switched.status.code() == Some(255),
        "switch failed: {switched:?}"
    );
    let version = until_ok(&m, "apt-get --version", Duration::from_secs(240));
    assert!(version.starts_with("apt "), "{version}");
    eprintln!(
        "debian console up {:.0}s after the switch",
        started.elapsed().as_secs_f64()
    );
    let list = consoles(&m);
    assert_eq!(current(&list), ["debian"], "{list}");
    assert_eq!(list[1]["configured"], true, "{list}");
    // dpkg's database is real: apt's own package is installed, and dpkg knows its files.
    let dpkg = check(
        &m,
        "dpkg",
        m.run("dpkg-query -W -f '${Status}' apt && dpkg -S /usr/bin/apt-get"),
    );
    assert!(
        dpkg.starts_with("install ok installed") && dpkg.contains("apt: /usr/bin/apt-get"),
        "{dpkg}"
    );
    check(
        &m,
        "full userland",
        m.run("command -v vim && command -v curl && test -x /usr/sbin/mkfs.ext4"),
    );
    // Something written into the console's own filesystem, as apt-get install would.
    check(
        &m,
        "write into /usr",
        m.run("sudo touch /usr/local/bin/kept-by-the-console"),
    );

    // The choice and the container (with its writes) survive a reboot on the state disk.
    reboot(&m);
    until_ok(&m, "apt-get --version", Duration::from_secs(120));
    check(
        &m,
        "written file kept",
        m.run("test -e /usr/local/bin/kept-by-the-console"),
    );
    let problems = check(
        &m,
        "boot problems",
        m.run("cat /run/berth/boot-problems 2>/dev/null; true"),
    );
    assert!(!problems.contains("berth.console"), "{problems}");

    // And back to the slim console.
    let _ = m.ssh("sudo berth console switch default");
    until_ok(
        &m,
        "! command -v apt-get && command -v logger",
        Duration::from_secs(180),
    );
    let list = consoles(&m);
    assert_eq!(current(&list), ["default"], "{list}");
    assert_eq!(list[0]["configured"], true, "{list}");
    check(&m, "sync", m.run("sync"));
    poweroff(&m);
    for disk in [state, consoles_disk] {
        let _ = std::fs::remove_file(disk);
    }
}
