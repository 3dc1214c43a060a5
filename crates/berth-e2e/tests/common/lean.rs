//! Helpers of the lean end-to-end tests (lean.rs, lean_384.rs): a docker-archive of
//! incompressible bytes to load, and the guest's memory, as MemTotal − MemAvailable.

use super::check;
use berth_e2e::machine::Machine;
use sha2::Digest;
use std::io::Write;
use std::path::Path;

/// A docker-archive (the `docker save` layout: manifest.json, the image config, one layer
/// tar) holding the host's static busybox and `data_mib` MiB of incompressible bytes, tagged
/// `tag`. Written straight to `dest`, padded to a whole number of 512-byte sectors so that
/// it can be attached as a raw disk and read back with `cat /dev/vdX | docker load`.
/// Returns the md5 of the data file as busybox prints it.
pub fn docker_archive(dest: &Path, tag: &str, data_mib: usize) -> String {
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
pub fn wait_user_docker(m: &Machine) {
    check(
        m,
        "User Docker ready",
        m.run("for i in $(seq 300); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1"),
    );
}

/// MemTotal − MemAvailable in MiB, the process count, and the top resident processes.
pub fn memory(m: &Machine) -> (u64, usize, String) {
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
pub fn assert_no_oom(m: &Machine) {
    let oom = check(
        m,
        "kernel log",
        m.run("sudo dmesg | grep -i -E 'out of memory|oom-kill|oom_reaper|invoked oom-killer' || true"),
    );
    assert!(oom.trim().is_empty(), "the OOM killer ran:\n{oom}");
}
