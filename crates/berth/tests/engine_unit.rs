//! `berth engine-unit`: containerd, then dockerd pointed at it, as one unit; run with this host's
//! real Debian engine (docker.io) on private paths. The unit must answer as an engine, stop
//! both daemons on SIGTERM, and end (stopping containerd) when dockerd dies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn find(program: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} is not installed: these tests need Debian's docker.io (`cargo xtask setup`)")
        })
}

struct Unit {
    dir: tempfile::TempDir,
    child: Child,
}

impl Unit {
    fn start() -> Unit {
        let dir = tempfile::Builder::new()
            .prefix("berth-unit.")
            .tempdir_in("/tmp")
            .unwrap();
        let t = dir.path();
        let bin = t.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for program in ["containerd", "dockerd"] {
            std::os::unix::fs::symlink(find(program), bin.join(program)).unwrap();
        }
        let log = std::fs::File::create(t.join("unit.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("engine-unit")
            .arg(format!("--bin-dir={}", bin.display()))
            .arg(format!(
                "--containerd-root={}",
                t.join("data/containerd/daemon").display()
            ))
            .arg(format!(
                "--containerd-run={}",
                t.join("exec/containerd").display()
            ))
            .arg("--")
            .arg(format!("--host=unix://{}", t.join("docker.sock").display()))
            .arg(format!("--data-root={}", t.join("data").display()))
            .arg(format!("--exec-root={}", t.join("exec").display()))
            .arg(format!("--pidfile={}", t.join("dockerd.pid").display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
            ])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let unit = Unit { dir, child };
        let started = Instant::now();
        while !unit.pings() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the engine unit did not answer:\n{}",
                unit.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        unit
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("unit.log")).unwrap_or_default()
    }

    fn pings(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(self.dir.path().join("docker.sock")) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET /_ping HTTP/1.0\r\n\r\n");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
    }

    /// Processes whose command line names this unit's directory (containerd, dockerd).
    fn daemons(&self) -> Vec<String> {
        let needle = self.dir.path().display().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter(|e| e.file_name().to_string_lossy() != self.child.id().to_string())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&needle) && !c.contains(" engine-unit "))
            .collect()
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < limit, "the unit did not end:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigterm_stops_dockerd_then_containerd_and_the_unit_ends_cleanly() {
    let mut unit = Unit::start();
    let running = unit.daemons();
    assert!(
        running
            .iter()
            .any(|c| c.contains("containerd") && c.contains("--config"))
            && running
                .iter()
                .any(|c| c.contains("dockerd") && c.contains("--containerd=")),
        "containerd and dockerd should both run: {running:#?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(unit.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = unit.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}:\n{}", unit.log());
    assert!(unit.daemons().is_empty(), "left running: {:#?}", unit.daemons());
}

#[test]
fn the_unit_ends_when_dockerd_dies_and_takes_containerd_with_it() {
    let mut unit = Unit::start();
    let pid: i32 = std::fs::read_to_string(unit.dir.path().join("dockerd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let status = unit.wait_exit(Duration::from_secs(30));
    assert!(
        !status.success(),
        "a killed dockerd must end the unit with a failure"
    );
    assert!(unit.daemons().is_empty(), "left running: {:#?}", unit.daemons());
}
