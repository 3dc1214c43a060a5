//! The system services of issue 11 (items 1-4) in one machine with a state disk, booted twice:
//! udev (a disk hot-added from QEMU's monitor gets its /dev/disk/by-label link), syslog
//! (`logger` reaches /var/log/syslog on the state disk and stays there), ntp (chrony's
//! servers from berth.ntp.servers and from `write_files` with `container: ntp`; no NTP traffic
//! leaves: the servers are 127.0.0.x) and acpid (QEMU's `system_powerdown` runs the ordered
//! poweroff: a user container's SIGTERM handler writes its marker, QEMU exits by itself).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_e2e::machine::Machine;
use berth_e2e::qemu;
use common::{BOOT, check, env, poweroff};
use std::time::{Duration, Instant};

/// Run `cmd` until its output satisfies `done`, at most `timeout`; returns the last output and
/// how long it took.
fn poll(
    m: &Machine,
    what: &str,
    cmd: &str,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let out = m
            .ssh(cmd)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if done(&out) {
            return (out, start.elapsed());
        }
        if start.elapsed() > timeout {
            panic!(
                "{what}: not after {}s; last output:\n{out}\n--- console tail ---\n{}",
                timeout.as_secs(),
                berth_e2e::machine::tail(&m.console(), 40)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn vm_system_services_udev_syslog_ntp_acpid() {
    let env = env("services");
    let base = format!("berth/base:{}", env!("CARGO_PKG_VERSION"));
    let state = env.ext4_disk("state.img", 1024, "BERTH_STATE");
    let hot = env.ext4_disk("hot.img", 16, "BERTHHOT");
    let user_data = env.user_data(
        "berth-services",
        "berth:\n  ntp:\n    servers: [127.0.0.1]\n\
         write_files:\n  - path: /etc/chrony/sources.d/extra.sources\n    container: ntp\n    \
         content: |\n      server 127.0.0.2 iburst\n\
         runcmd:\n  - logger -t runcmdtest first-boot\n",
    );
    let cidata = env.cidata(&user_data);
    let machine_vm = || {
        let mut vm = env.kernel_vm("");
        vm.disks.push(state.clone());
        vm.cidata = Some(cidata.clone());
        vm
    };
    let started = Instant::now();
    let m = env.start("services", machine_vm());
    check(&m, "boot to ssh", m.wait_ssh(BOOT));

    // The four new services run next to the others.
    let (services, _) = poll(
        &m,
        "system services running",
        "sudo system-docker ps --format '{{.Names}}'",
        Duration::from_secs(120),
        |out| {
            ["udev", "ntp", "syslog", "acpid", "network", "console", "docker"]
                .iter()
                .all(|want| out.lines().any(|l| l == *want))
        },
    );
    eprintln!(
        "system services: {}",
        services.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    // ntp has the clock capability only; syslog only CAP_SYSLOG on top of the defaults.
    let privileges = check(
        &m,
        "ntp and syslog privileges",
        m.run(
            "sudo system-docker inspect -f '{{.Name}} {{.HostConfig.Privileged}} {{.HostConfig.CapAdd}}' ntp syslog",
        ),
    );
    assert!(privileges.contains("/ntp false [SYS_TIME]"), "{privileges}");
    assert!(privileges.contains("/syslog false [SYSLOG]"), "{privileges}");

    // udev: a disk hot-added from the monitor appears under /dev/disk/by-label in the console.
    let added = check(
        &m,
        "drive_add",
        m.monitor(&format!(
            "drive_add 0 if=none,id=hot0,format=raw,file={}",
            hot.display()
        )),
    );
    assert!(!added.contains("rror"), "drive_add: {added}");
    let added = check(
        &m,
        "device_add",
        m.monitor(&format!(
            "device_add virtio-blk-pci,drive=hot0,id=hotdisk,bus={}",
            qemu::HOTPLUG_PORT
        )),
    );
    assert!(!added.contains("rror"), "device_add: {added}");
    let (link, took) = poll(
        &m,
        "/dev/disk/by-label/BERTHHOT in the console",
        "readlink -f /dev/disk/by-label/BERTHHOT",
        Duration::from_secs(30),
        |out| out.trim().starts_with("/dev/vd"),
    );
    eprintln!("hot-added disk: {} after {:.1}s", link.trim(), took.as_secs_f32());

    // syslog: logger reaches /var/log/syslog, on the state disk; kernel messages too.
    let var_log = check(
        &m,
        "/var/log mount",
        m.run("findmnt -n -o SOURCE --target /var/log"),
    );
    assert!(
        var_log.contains("/dev/vda"),
        "/var/log is not on the state disk: {var_log}"
    );
    check(&m, "logger", m.run("logger -t bartest hello-from-the-console"));
    poll(
        &m,
        "logger's line in /var/log/syslog",
        "sudo grep bartest /var/log/syslog",
        Duration::from_secs(20),
        |out| out.contains("bartest: hello-from-the-console"),
    );
    // runcmd ran once User Docker answered; its logger line is kept although the syslog
    // service starts only then too (runcmd waits for /dev/log).
    poll(
        &m,
        "runcmd's logger line in /var/log/syslog",
        "sudo grep runcmdtest /var/log/syslog",
        Duration::from_secs(60),
        |out| out.contains("runcmdtest: first-boot"),
    );
    let kernel = check(
        &m,
        "kernel lines",
        m.run("sudo grep -c ' kernel: ' /var/log/syslog || true"),
    );
    assert!(
        kernel.trim().parse::<u32>().unwrap_or(0) > 0,
        "no kernel message in /var/log/syslog"
    );

    // ntp: chrony's servers: berth.ntp.servers, and the file write_files put in its container.
    let sources = check(
        &m,
        "chrony configuration",
        m.run("sudo system-docker exec ntp cat /etc/chrony/sources.d/berth.sources /etc/chrony/sources.d/extra.sources"),
    );
    assert!(sources.contains("server 127.0.0.1 iburst"), "{sources}");
    assert!(sources.contains("server 127.0.0.2 iburst"), "{sources}");
    assert!(!sources.contains("pool.ntp.org"), "{sources}");
    let chronyc = check(
        &m,
        "chronyc",
        m.run("sudo system-docker exec ntp chronyc -n sources && sudo system-docker exec ntp chronyc -n tracking"),
    );
    assert!(
        chronyc.contains("127.0.0.1") && chronyc.contains("127.0.0.2") && chronyc.contains("Reference ID"),
        "{chronyc}"
    );

    // open-vm-tools from the catalogue: enabled, its image runs; QEMU is no VMware machine, so
    // it says so, stops, and is shown failing while every other service stays up. Disabled,
    // it is gone.
    check(
        &m,
        "enable open-vm-tools",
        m.run("sudo berth service enable open-vm-tools"),
    );
    let (list, _) = poll(
        &m,
        "open-vm-tools failing",
        "sudo berth service list --format json",
        Duration::from_secs(120),
        |out| {
            serde_json::from_str::<serde_json::Value>(out).is_ok_and(|v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s["name"] == "open-vm-tools" && s["enabled"] == true && s["failing"] == true)
            })
        },
    );
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    for name in ["udev", "ntp", "syslog", "acpid", "network", "console", "docker"] {
        let service = list
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        assert_eq!(service["state"], "running", "{service}");
    }
    let said = check(
        &m,
        "open-vm-tools log",
        m.run("sudo berth service logs --tail 3 open-vm-tools 2>&1"),
    );
    assert!(said.contains("not a VMware virtual machine"), "{said}");
    check(
        &m,
        "disable open-vm-tools",
        m.run("sudo berth service disable open-vm-tools"),
    );
    let gone = m
        .run("sudo system-docker inspect open-vm-tools >/dev/null 2>&1 && echo present || echo gone")
        .unwrap();
    assert_eq!(gone.trim(), "gone");

    // acpid: a user container whose SIGTERM handler writes a marker on the state disk.
    check(
        &m,
        "user container with a SIGTERM handler",
        m.run(&format!(
            "sudo system-docker save {base} | docker load >/dev/null && \
             docker run -d --name term --stop-timeout 30 -v marker:/m {base} \
             sh -c 'trap \"echo graceful > /m/marker; sync; exit 0\" TERM; while :; do sleep 1; done' >/dev/null"
        )),
    );
    poll(
        &m,
        "the user container running",
        "docker ps --format '{{.Names}}'",
        Duration::from_secs(30),
        |out| out.lines().any(|l| l == "term"),
    );
    let powerdown = check(&m, "system_powerdown", m.monitor("system_powerdown"));
    assert!(!powerdown.contains("rror"), "system_powerdown: {powerdown}");
    let status = check(
        &m,
        "poweroff from the power button",
        m.wait_exit(Duration::from_secs(180)),
    );
    assert!(status.success(), "QEMU exited with {status}");
    check(&m, "console scan", m.assert_clean_console());
    drop(m);
    // It was init's ordered poweroff (its log of that boot is on the state disk): nothing but
    // acpid turns the ACPI power button into one.
    let init_log = std::process::Command::new("debugfs")
        .args(["-R", "cat /log/boot/init.log"])
        .arg(&state)
        .output()
        .expect("debugfs");
    let init_log = String::from_utf8_lossy(&init_log.stdout);
    assert!(
        init_log.contains("poweroff: stopping containers"),
        "init did not run the ordered poweroff:\n{init_log}"
    );

    // Next boot: the marker and the syslog line are on the state disk.
    let m = env.start("services-again", machine_vm());
    check(&m, "second boot to ssh", m.wait_ssh(BOOT));
    let marker = check(
        &m,
        "marker after the power button",
        m.run(&format!("docker run --rm -v marker:/m {base} cat /m/marker")),
    );
    assert_eq!(
        marker.trim(),
        "graceful",
        "the user container was not stopped gracefully"
    );
    let kept = check(
        &m,
        "syslog after reboot",
        m.run("sudo sh -c 'cat /var/log/syslog.1 /var/log/syslog 2>/dev/null' | grep bartest"),
    );
    assert!(kept.contains("bartest: hello-from-the-console"), "{kept}");
    poweroff(&m);
    eprintln!("services e2e: {:.0}s", started.elapsed().as_secs_f32());
}
