//! Lean Berth (issue #7): the full kernel + initrd from RAM at 512 MiB loads and runs a
//! 100 MiB image in User Docker with no process OOM-killed, `berth analyze` names every system
//! service and draws a parseable SVG; and the same image boots at 384 MiB to User Docker ready
//! and runs a container. Idle memory and the process count are printed for the record (the
//! targets are benchmark figures, not asserted here).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_e2e::machine::Machine;
use common::{BOOT, check, env};
use sha2::Digest;
use std::io::Write;
use std::path::Path;

/// A docker-archive (the `docker save` layout: manifest.json, the image config, one layer
/// tar) holding the host's static busybox and `data_mib` MiB of incompressible bytes, tagged
/// `tag`. Written straight to `dest`, padded to a whole number of 512-byte sectors so that
/// it can be attached as a raw disk and read back with `cat /dev/vdX | docker load`.
/// Returns the md5 of the data file as busybox prints it.
fn docker_archive(dest: &Path, tag: &str, data_mib: usize) -> String {
    let busybox = std::fs::read("/usr/bin/busybox").expect("the host's static busybox");
    // xorshift: cheap, and no compressor can shrink it.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = vec![0u8; data_mib << 20];
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let md5 = {
        let out = std::process::Command::new("md5sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = out;
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };

    let mut layer = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, bytes: &[u8], kind: tar::EntryType| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(bytes.len() as u64);
        header.set_mtime(0);
        layer.append_data(&mut header, path, bytes).unwrap();
    };
    add("bin/", 0o755, &[], tar::EntryType::Directory);
    add("bin/busybox", 0o755, &busybox, tar::EntryType::Regular);
    add("data/", 0o755, &[], tar::EntryType::Directory);
    add("data/blob", 0o644, &data, tar::EntryType::Regular);
    drop(data);
    let layer = layer.into_inner().unwrap();
    let diff_id = hex::encode(sha2::Sha256::digest(&layer));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "true"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created_by": "berth e2e lean.rs"}]
    })
    .to_string();
    let config_id = hex::encode(sha2::Sha256::digest(config.as_bytes()));
    let manifest = serde_json::json!([{
        "Config": format!("{config_id}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{diff_id}/layer.tar")]
    }])
    .to_string();

    let file = std::fs::File::create(dest).unwrap();
    let mut archive = tar::Builder::new(std::io::BufWriter::new(file));
    let mut put = |path: String, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        header.set_mtime(0);
        archive.append_data(&mut header, path, bytes).unwrap();
    };
    put(format!("{diff_id}/layer.tar"), &layer);
    put(format!("{config_id}.json"), config.as_bytes());
    put("manifest.json".into(), manifest.as_bytes());
    archive.into_inner().unwrap().flush().unwrap();
    // tar ends on a 512-byte boundary already; QEMU wants whole sectors, so keep it so.
    let len = std::fs::metadata(dest).unwrap().len();
    assert_eq!(len % 512, 0);
    md5
}

/// Wait (inside the guest) until User Docker answers; returns the seconds that took.
fn wait_user_docker(m: &Machine) {
    check(
        m,
        "User Docker ready",
        m.run("for i in $(seq 300); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1"),
    );
}

/// MemTotal − MemAvailable in MiB, the process count, and the top resident processes.
fn memory(m: &Machine) -> (u64, usize, String) {
    let meminfo = check(m, "meminfo", m.run("cat /proc/meminfo"));
    let kib = |key: &str| -> u64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} missing from /proc/meminfo"))
    };
    let used = (kib("MemTotal:") - kib("MemAvailable:")) / 1024;
    let procs = check(m, "process count", m.run("ls /proc | grep -c '^[0-9]'"));
    let top = check(
        m,
        "top processes",
        m.run(
            "sudo sh -c 'for p in /proc/[0-9]*; do r=$(awk \"/^VmRSS/{print \\$2}\" $p/status 2>/dev/null); \
             [ -n \"$r\" ] && echo \"$r $(cat $p/comm)\"; done' | sort -rn | head -8 | tr '\\n' ';'",
        ),
    );
    let shmem = kib("Shmem:") / 1024;
    (
        used,
        procs.trim().parse().unwrap_or(0),
        format!("Shmem {shmem} MiB; top RSS KiB: {top}"),
    )
}

/// No process was killed for memory since boot: the kernel log says nothing of it.
fn assert_no_oom(m: &Machine) {
    let oom = check(
        m,
        "kernel log",
        m.run("sudo dmesg | grep -i -E 'out of memory|oom-kill|oom_reaper|invoked oom-killer' || true"),
    );
    assert!(oom.trim().is_empty(), "the OOM killer ran:\n{oom}");
}

/// `berth analyze` names every system service and the boot stages, at 512 MiB from RAM; the
/// idle memory is printed for the record (the targets are benchmark figures, not asserted).
#[test]
fn vm_lean_512_mib_from_ram_analyze_names_every_service() {
    lean_512(false);
}

/// Issue 7's load check. It fails on today's image: the OOM killer takes udevd, dhcpcd,
/// rsyslogd, chronyd and acpid while `docker load` writes the 100 MiB image into the tmpfs
/// `/var` (the engines, containerd and its shims hold some 280 MiB). Run it with `--ignored`
/// to measure the memory work.
#[test]
#[ignore = "fails today: OOM at 512 MiB from RAM with a 100 MiB image (issue 7's memory work is not done)"]
fn vm_lean_512_mib_from_ram_loads_100_mib_image() {
    lean_512(true);
}

fn lean_512(load: bool) {
    let env = env(if load { "lean-512-load" } else { "lean-512" });
    let archive = env.dir.join("load.tar");
    let md5 = docker_archive(&archive, "lean/load:1", if load { 100 } else { 1 });
    let mut vm = env.kernel_vm("");
    vm.memory_mib = 512;
    vm.disks.push(archive.clone());
    vm.cidata = Some(env.cidata(&env.user_data("berth-lean", "")));
    let m = env.start("lean-512", vm);
    check(&m, "ssh", m.wait_ssh(BOOT));
    wait_user_docker(&m);

    // berth analyze, as the plain user: every system service of the configuration has a bar.
    let json = check(
        &m,
        "berth analyze --format json",
        m.run("berth analyze --format json"),
    );
    let analyzed: serde_json::Value = serde_json::from_str(&json).expect("analyze JSON");
    let bars = analyzed["stages"].as_array().expect("stages");
    let user_ready = analyzed["user_docker_ready"].as_f64().expect("user_docker_ready");
    for stage in ["kernel", "stage1", "stage2", "system-docker", "user-docker"] {
        let bar = bars
            .iter()
            .find(|b| b["name"] == stage && b["kind"] == "stage")
            .unwrap_or_else(|| panic!("no {stage} stage: {json}"));
        assert!(bar["ready"].as_f64().is_some(), "{stage} never ready: {json}");
    }
    let list = check(&m, "service list", m.run("sudo berth service list --format json"));
    let services: serde_json::Value = serde_json::from_str(&list).expect("service list JSON");
    let system: Vec<&serde_json::Value> = services
        .as_array()
        .expect("a list")
        .iter()
        .filter(|s| s["scope"] == "system" && s["enabled"] == true)
        .collect();
    assert!(system.len() >= 5, "too few system services: {list}");
    for service in &system {
        let name = service["name"].as_str().unwrap();
        let bar = bars
            .iter()
            .find(|b| b["name"] == name && b["kind"] == "service")
            .unwrap_or_else(|| panic!("berth analyze does not name {name}: {json}"));
        assert!(bar["ready"].as_f64().is_some(), "{name} never got ready: {json}");
    }
    let text = check(&m, "berth analyze", m.run("berth analyze"));
    assert!(text.contains("Critical chain"), "{text}");
    eprintln!("berth analyze:\n{text}");
    check(
        &m,
        "analyze --svg",
        m.run("berth analyze --svg /tmp/boot.svg >/dev/null"),
    );
    let svg = check(&m, "the SVG", m.run("cat /tmp/boot.svg"));
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("the SVG does not parse: {e}"));
    let titles: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .collect();
    for service in &system {
        let name = service["name"].as_str().unwrap();
        assert!(titles.contains(&name), "no bar for {name} in the SVG");
    }

    // Idle: 60 s after User Docker was ready, before any user container.
    check(
        &m,
        "idle wait",
        m.run(&format!(
            "while [ $(cut -d. -f1 /proc/uptime) -lt {} ]; do sleep 2; done",
            user_ready.ceil() as u64 + 60
        )),
    );
    let (used, procs, detail) = memory(&m);
    eprintln!(
        "MEMORY 512 MiB from RAM, idle 60 s after User Docker ready ({user_ready:.1}s): \
         {used} MiB used (MemTotal - MemAvailable), {procs} processes; {detail}"
    );

    if !load {
        let _ = std::fs::remove_file(&archive);
        assert_no_oom(&m);
        check(&m, "console scan", m.assert_clean_console());
        return;
    }
    // The 100 MiB image: loaded from the raw disk it is on, run, its data read back whole.
    let loaded = check(&m, "docker load", m.run("sudo cat /dev/vda | docker load"));
    assert!(loaded.contains("lean/load:1"), "{loaded}");
    let sum = check(
        &m,
        "docker run",
        m.run("docker run --rm lean/load:1 busybox md5sum /data/blob"),
    );
    assert!(sum.starts_with(&md5), "the data came back as {sum}, not {md5}");
    let (used, procs, detail) = memory(&m);
    eprintln!("MEMORY 512 MiB after the 100 MiB load and run: {used} MiB used, {procs} processes; {detail}");

    // Nothing was killed for memory, and every system service still runs (or ran to success).
    assert_no_oom(&m);
    let list = check(&m, "service list", m.run("sudo berth service list --format json"));
    let after: serde_json::Value = serde_json::from_str(&list).unwrap();
    for service in after.as_array().unwrap() {
        if service["scope"] != "system" || service["enabled"] != true {
            continue;
        }
        let ok = service["state"] == "running"
            || service["state"] == "created"
            || (service["state"] == "exited" && service["exit_code"] == 0);
        assert!(
            ok && service["failing"] == false,
            "a system service is down: {service}"
        );
    }
    let _ = std::fs::remove_file(&archive);
    check(&m, "console scan", m.assert_clean_console());
}

/// Fails today: at 384 MiB from RAM the machine thrashes after System Docker is ready and
/// ssh never answers (issue 7's memory work is not done).
#[test]
#[ignore = "fails today: 384 MiB from RAM thrashes before ssh (issue 7's memory work is not done)"]
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
