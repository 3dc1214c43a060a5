//! Lean Berth (issue #7): the full kernel + initrd boots at 384 MiB from RAM to User Docker
//! ready and runs a container, with no process OOM-killed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use common::lean::{assert_no_oom, docker_archive, memory, wait_user_docker};
use common::{BOOT, check, env};

/// The full kernel + initrd at 384 MiB from RAM: the kernel unpacks the 125 MiB initramfs,
/// the machine reaches User Docker ready and runs a container (without the zram swap it
/// thrashed after System Docker was ready and ssh never answered).
#[test]
fn vm_lean_384_mib_boots_to_user_docker_and_runs_a_container() {
    let env = env("lean-384");
    let archive = env.dir.join("tiny.tar");
    let _ = docker_archive(&archive, "lean/tiny:1", 1);
    let mut vm = env.kernel_vm("");
    vm.memory_mib = 384;
    vm.disks.push(archive.clone());
    vm.cidata = Some(env.cidata(&env.user_data("berth-lean-384", "")));
    let m = env.start("lean-384", vm);
    check(&m, "ssh at 384 MiB", m.wait_ssh(BOOT));
    wait_user_docker(&m);
    let (used, procs, detail) = memory(&m);
    eprintln!("MEMORY 384 MiB from RAM at User Docker ready: {used} MiB used, {procs} processes; {detail}");
    check(&m, "docker load", m.run("sudo cat /dev/vda | docker load"));
    let out = check(
        &m,
        "docker run",
        m.run("docker run --rm lean/tiny:1 busybox echo ran-at-384"),
    );
    assert!(out.contains("ran-at-384"), "{out}");
    assert_no_oom(&m);
    check(&m, "console scan", m.assert_clean_console());
}
