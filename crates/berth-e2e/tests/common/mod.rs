//! Shared set-up for the end-to-end tests: artifacts, a throwaway ssh key, NoCloud seeds,
//! disks, and the kernel command line.
#![allow(dead_code)]

pub mod lean;

use berth_e2e::Artifacts;
use berth_e2e::machine::Machine;
use berth_e2e::qemu::{self, Boot, Vm};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Boot to ssh under emulation, with margin for a busy CI machine.
pub const BOOT: Duration = Duration::from_secs(420);

pub struct Env {
    pub artifacts: Artifacts,
    pub dir: PathBuf,
    pub key: PathBuf,
    pub public_key: String,
}

pub fn env(test: &str) -> Env {
    let artifacts = Artifacts::from_env().expect("artifacts");
    let dir = artifacts.out.join("e2e").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test directory");
    let (key, public_key) = qemu::ssh_key(&artifacts.out.join("e2e")).expect("ssh key");
    Env {
        artifacts,
        dir,
        key,
        public_key,
    }
}

impl Env {
    /// A NoCloud seed with this user-data; meta-data names the instance.
    pub fn cidata(&self, user_data: &str) -> PathBuf {
        let seed = self.dir.join("cidata.iso");
        let meta = format!(
            "instance-id: {}\nlocal-hostname: berth-e2e\n",
            self.dir.file_name().and_then(|n| n.to_str()).unwrap_or("e2e")
        );
        qemu::make_cidata(&self.dir.join("cidata"), user_data, &meta, &seed).expect("cidata");
        seed
    }

    /// The usual user-data: hostname and the test's key.
    pub fn user_data(&self, hostname: &str, extra: &str) -> String {
        format!(
            "#cloud-config\nhostname: {hostname}\nssh_authorized_keys:\n  - {}\n{extra}",
            self.public_key
        )
    }

    pub fn kernel_vm(&self, append: &str) -> Vm {
        let mut vm = Vm::new(Boot::Kernel {
            vmlinuz: self.artifacts.vmlinuz.clone(),
            initrd: self.artifacts.initrd.clone(),
            // rootfstype=ramfs, as docs/quickstart.md says for kernel + initrd boots: the
            // default tmpfs root is capped at half the RAM and cuts the full initrd short.
            append: format!(
                "console=ttyS0,115200n8 panic=10 rootfstype=ramfs berth.autologin=ttyS0 {append}"
            )
            .trim()
            .to_string(),
        });
        vm.memory_mib = 1024;
        vm
    }

    pub fn ext4_disk(&self, name: &str, size_mib: u64, label: &str) -> PathBuf {
        let path = self.dir.join(name);
        qemu::make_ext4_disk(&path, size_mib, label).expect("ext4 disk");
        path
    }

    pub fn start(&self, name: &str, vm: Vm) -> Machine {
        Machine::start(name, vm, &self.dir, &self.key).expect("QEMU")
    }
}

/// Fail with the console's tail when a step fails.
pub fn check<T>(m: &Machine, what: &str, r: anyhow::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!(
            "{what}: {e:#}\n--- console tail ---\n{}",
            berth_e2e::machine::tail(&m.console(), 40)
        ),
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// `sudo reboot` over ssh; waits for the next boot's stage 1 and for ssh to answer again.
#[allow(dead_code)] // not every test binary reboots
pub fn reboot(m: &Machine) {
    let mark = m.console().len();
    let _ = m.ssh("sudo reboot");
    check(
        m,
        "boot after reboot",
        m.wait_console("stage 1 (initramfs)", mark, BOOT),
    );
    check(m, "ssh after reboot", m.wait_ssh(BOOT));
}

/// `sudo poweroff` over ssh: QEMU must exit successfully and the console log be clean.
#[allow(dead_code)] // not every test binary powers off over ssh
pub fn poweroff(m: &Machine) {
    let _ = m.ssh("sudo poweroff");
    let status = check(m, "poweroff", m.wait_exit(Duration::from_secs(180)));
    assert!(status.success(), "QEMU exited with {status}");
    check(m, "console scan", m.assert_clean_console());
}

/// Run a disk tool; fail with its stderr.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("running a disk tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A FAT disk labelled `label` holding `files`.
pub fn vfat_with(dir: &Path, name: &str, label: &str, files: &[(&str, &str)]) -> PathBuf {
    let img = dir.join(name);
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    run(Command::new("mkfs.vfat").args(["-n", label]).arg(&img));
    for (path, content) in files {
        let mut parent = String::new();
        for part in Path::new(path).parent().unwrap().components() {
            parent.push('/');
            parent.push_str(&part.as_os_str().to_string_lossy());
            let _ = Command::new("mmd")
                .arg("-i")
                .arg(&img)
                .arg(format!("::{parent}"))
                .output();
        }
        let local = dir.join(format!("{name}.tmp"));
        std::fs::write(&local, content).unwrap();
        run(Command::new("mcopy")
            .arg("-o")
            .arg("-i")
            .arg(&img)
            .arg(&local)
            .arg(format!("::/{path}")));
    }
    img
}

/// QEMU starts the test metadata server for each connection the guest makes to `ip:port`,
/// serving `root` over http.
pub fn http_forward(ip: &str, port: u16, root: &Path) -> String {
    metadata_forward(ip, port, "", root)
}

/// The same with `args` for `metadata-httpd` (`--tls CERT KEY`, `--after TEXT`; no commas).
pub fn metadata_forward(ip: &str, port: u16, args: &str, root: &Path) -> String {
    format!(
        "tcp:{ip}:{port}-cmd:{} {args} {}",
        env!("CARGO_BIN_EXE_metadata-httpd"),
        root.display()
    )
}
