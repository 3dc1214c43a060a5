//! Hardening of the boot path (issue #9): attached media that cannot take over, kernel
//! parameters that cannot write outside /proc/sys, a cloud-init that hangs, a shutdown
//! timeout of 0, the OOM killer's order, and shells that always come back when boot fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use common::{BOOT, check, env};
use std::time::Duration;

fn digest(path: &std::path::Path) -> String {
    use std::io::Read;
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        std::hash::Hash::hash(&buf[..n], &mut hasher);
    }
    format!("{:x}", std::hash::Hasher::finish(&hasher))
}

/// One machine, many bad inputs at once: two disks labelled BERTH_STATE, sysctl keys that
/// name files outside /proc/sys, user-data whose bootcmd hangs, berth.shutdown_timeout=0.
/// It must boot from RAM to a console with ssh, say what it refused, keep the disks untouched,
/// and power off cleanly.
#[test]
fn vm_hardening_attached_media_sysctl_hung_cloud_init_shutdown_timeout() {
    let env = env("hardening");
    let a = env.ext4_disk("state-a.img", 64, "BERTH_STATE");
    let b = env.ext4_disk("state-b.img", 64, "BERTH_STATE");
    let before = (digest(&a), digest(&b));
    let mut vm = env.kernel_vm(
        "berth.sysctl./etc/planted=1 berth.sysctl.kernel/../../../etc/planted-too=1 \
         berth.cloud_init.timeout=25 berth.shutdown_timeout=0",
    );
    vm.disks.push(a.clone());
    vm.disks.push(b.clone());
    vm.cidata = Some(env.cidata(&env.user_data("berth-hardened", "bootcmd:\n  - [sleep, '100000']\n")));
    let m = env.start("hardening", vm);
    check(&m, "ssh although cloud-init hangs", m.wait_ssh(BOOT));

    // Two BERTH_STATE disks: neither is used; /var is in RAM.
    let var = check(
        &m,
        "findmnt /var",
        m.run("findmnt -n -o SOURCE,FSTYPE /var || echo root-tmpfs"),
    );
    assert!(!var.contains("/dev/vd"), "/var is on a disk: {var}");
    let problems = check(&m, "boot problems", m.run("cat /run/berth/boot-problems"));
    assert!(
        problems.contains("2 devices match LABEL=BERTH_STATE") && problems.contains("uses none"),
        "the ambiguous state disks are not reported: {problems}"
    );
    // System Docker came up once: under load it used to exit while containerd was slow.
    assert!(
        !problems.contains("System Docker exited"),
        "System Docker was restarted during boot: {problems}"
    );
    // The sysctl keys are refused by name, and nothing was written outside /proc/sys.
    let planted = check(
        &m,
        "planted files",
        m.run("ls /etc/planted /etc/planted-too 2>&1 | wc -l; ls /etc/planted* 2>/dev/null | wc -l"),
    );
    assert_eq!(
        planted.split_whitespace().last(),
        Some("0"),
        "a sysctl wrote into /etc: {planted}"
    );
    let log = check(&m, "init log", m.run("cat /var/log/boot/init.log"));
    assert!(
        log.contains("is not a sysctl name"),
        "the bad sysctl keys are not reported"
    );
    assert!(
        log.contains("berth.shutdown_timeout") && log.contains("60s is used"),
        "the short shutdown timeout is not reported"
    );
    // cloud-init hung in bootcmd: stopped at its deadline, reported, the console started.
    assert!(
        problems.contains("cloud-init did not finish within 25s"),
        "the hung cloud-init is not reported: {problems}"
    );
    let state = check(
        &m,
        "cloud-init state",
        m.run("sudo system-docker inspect cloud-init --format '{{.State.Running}} {{.State.ExitCode}}'"),
    );
    assert!(state.starts_with("false"), "cloud-init still runs: {state}");
    // The user-data it saved before it hung still applies (the hostname, the key we use).
    assert_eq!(check(&m, "hostname", m.run("hostname")).trim(), "berth-hardened");

    // The OOM killer takes user containers before the engines and the way in.
    let scores = check(
        &m,
        "oom scores",
        m.run(
            "cat /proc/$(cat /run/system-docker.pid)/oom_score_adj; \
             cat /proc/$(sudo system-docker inspect console --format '{{.State.Pid}}')/oom_score_adj; \
             cat /proc/$(pgrep -o -x sshd)/oom_score_adj; \
             cat /proc/$(pgrep -f -o 'dockerd --containerd=/run/docker/')/oom_score_adj",
        ),
    );
    let scores: Vec<i32> = scores.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    assert_eq!(scores.len(), 4, "{scores:?}");
    assert_eq!(scores[0], -900, "System Docker");
    // The console's first process (it keeps the gettys and sshd running, which inherit it).
    assert_eq!(scores[1], -800, "the console");
    // sshd lowers its own to -1000 (and gives sessions back the console's).
    assert!(scores[2] <= -800, "sshd: {}", scores[2]);
    assert!(scores[3] <= -500, "User Docker: {}", scores[3]);

    // berth.shutdown_timeout=0 is raised: the poweroff stops everything and is not forced.
    let _ = m.ssh("sudo poweroff");
    let status = check(&m, "poweroff", m.wait_exit(Duration::from_secs(180)));
    assert!(status.success(), "QEMU exited with {status}");
    let console = m.console();
    assert!(
        !console.contains("shutdown did not finish"),
        "the shutdown watchdog fired at once"
    );
    assert!(
        console.contains("stopped console"),
        "the console service was not stopped in order"
    );
    check(&m, "console scan", m.assert_clean_console());
    assert_eq!(
        (digest(&a), digest(&b)),
        before,
        "a BERTH_STATE disk was written to"
    );
}

/// When boot cannot go on, a shell is always there: the recovery shell of stage 1 comes back
/// after `exit`, and a System Docker that never starts ends in an emergency shell that says why.
#[test]
fn vm_hardening_recovery_and_emergency_shells_come_back() {
    let env = env("shells");
    // Stage 1 stops: the state partition is required and there is none.
    let m = env.start(
        "recovery",
        env.kernel_vm("berth.state.required=true berth.state.wait=3"),
    );
    let prompt = check(
        &m,
        "recovery shell",
        m.wait_console("(berth recovery) #", 0, BOOT),
    );
    check(&m, "type exit", m.type_line("exit"));
    let again = check(
        &m,
        "a new recovery shell",
        m.wait_console(
            "recovery shell exited; starting a new one",
            prompt,
            Duration::from_secs(60),
        ),
    );
    check(
        &m,
        "prompt",
        m.wait_console("(berth recovery) #", again, Duration::from_secs(30)),
    );
    check(&m, "type", m.type_line("echo ALIVE-$((3+4))"));
    check(
        &m,
        "it answers",
        m.wait_console("ALIVE-7", again, Duration::from_secs(30)),
    );
    drop(m);

    // System Docker exits at once at every start (a flag dockerd does not know).
    let m = env.start(
        "emergency",
        env.kernel_vm("berth.system_docker.extra_args=[--no-such-flag]"),
    );
    let opened = check(
        &m,
        "emergency shell",
        m.wait_console("System Docker failed 5 times in a row", 0, BOOT),
    );
    let console = m.console();
    assert!(
        console[opened..].contains("system-docker.log"),
        "the emergency shell does not say where to look"
    );
    let prompt = check(
        &m,
        "prompt",
        m.wait_console("(berth emergency) #", opened, Duration::from_secs(30)),
    );
    check(
        &m,
        "type",
        m.type_line("grep -c 'no-such-flag' /var/log/system-docker.log; exit"),
    );
    let again = check(
        &m,
        "a new emergency shell",
        m.wait_console("the emergency shell exited", prompt, Duration::from_secs(60)),
    );
    check(
        &m,
        "prompt again",
        m.wait_console("(berth emergency) #", again, Duration::from_secs(30)),
    );
    check(&m, "type", m.type_line("echo ALIVE-$((4+5))"));
    check(
        &m,
        "it answers",
        m.wait_console("ALIVE-9", again, Duration::from_secs(30)),
    );
}
