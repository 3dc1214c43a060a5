//! QEMU command lines for Berth: kernel + initrd, the ISO as a CD, or a disk, under BIOS or
//! UEFI; user networking with `restrict=on` and ssh forwarded to 127.0.0.1 only.

use crate::testnet::TapNic;
use anyhow::{Context, Result, bail};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Debug)]
pub enum Boot {
    /// `-kernel`/`-initrd` with this command line.
    Kernel {
        vmlinuz: PathBuf,
        initrd: PathBuf,
        append: String,
    },
    /// The ISO as a CD-ROM.
    Cdrom(PathBuf),
    /// The ISO (or a disk image) as the first hard disk.
    Disk(PathBuf),
    /// An installed disk (raw) as the first hard disk, written to: what the machine changes
    /// (boot counter, state partition) stays for the next boot and for the test to read.
    Installed(PathBuf),
}

#[derive(Clone, Debug)]
pub enum Serial {
    /// The terminal, with QEMU's monitor multiplexed (Ctrl-A X quits).
    Stdio,
    /// A unix socket to type into, with everything the guest prints also logged to a file.
    Socket { socket: PathBuf, log: PathBuf },
}

/// The PCIe root port a machine with a monitor has for hotplug: `device_add ...,bus=hotplug0`.
pub const HOTPLUG_PORT: &str = "hotplug0";

#[derive(Clone, Debug)]
pub struct Vm {
    pub boot: Boot,
    pub memory_mib: u32,
    pub cpus: u32,
    pub uefi: bool,
    /// Extra raw disks (virtio), in order: vda, vdb, ...
    pub disks: Vec<PathBuf>,
    /// Extra raw disks on the machine's AHCI controller (sda, sdb, ...): Linux names them
    /// before the CD (sr0) and the virtio disks.
    pub ahci_disks: Vec<PathBuf>,
    /// A NoCloud seed image (read-only virtio disk).
    pub cidata: Option<PathBuf>,
    pub ssh_port: Option<u16>,
    pub serial: Serial,
    pub kvm: bool,
    /// Leave QEMU running on guest reboot (false: exit, as tests of poweroff want).
    pub allow_reboot: bool,
    /// The user network's address range (QEMU's default is 10.0.2.0/24).
    pub net: Option<String>,
    /// `guestfwd` rules: guest connections to an address go to a command's stdin/stdout.
    pub guest_forwards: Vec<String>,
    /// NICs on test networks (after the user-network NIC), see [`crate::testnet`].
    pub taps: Vec<TapNic>,
    /// QEMU's human monitor on this unix socket (with a [`Serial::Socket`] console), for
    /// `Machine::monitor`: hotplug, `system_powerdown`, `set_link`. The machine then also has
    /// an empty PCIe root port, [`HOTPLUG_PORT`], to `device_add` into (q35's root bus takes
    /// none).
    pub monitor: Option<PathBuf>,
    /// A virtio-serial channel named `org.qemu.guest_agent.0` (what libvirt gives a guest for
    /// its agent), served on this unix socket.
    pub guest_agent: Option<PathBuf>,
    /// The real-time clock's start (QEMU's `-rtc base=`, e.g. `2026-01-01T10:00:00`, UTC):
    /// a machine that boots with its clock off.
    pub rtc_base: Option<String>,
}

impl Vm {
    pub fn new(boot: Boot) -> Self {
        Self {
            boot,
            memory_mib: 1024,
            cpus: 2,
            uefi: false,
            disks: Vec::new(),
            ahci_disks: Vec::new(),
            cidata: None,
            ssh_port: None,
            serial: Serial::Stdio,
            kvm: false,
            allow_reboot: true,
            net: None,
            guest_forwards: Vec::new(),
            taps: Vec::new(),
            monitor: None,
            guest_agent: None,
            rtc_base: None,
        }
    }

    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-machine".into(),
            "q35".into(),
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
            "-nodefaults".into(),
            "-display".into(),
            "none".into(),
            "-device".into(),
            "virtio-rng-pci".into(),
        ];
        if let Some(base) = &self.rtc_base {
            a.extend(["-rtc".into(), format!("base={base}")]);
        }
        if self.kvm {
            a.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]);
        } else {
            a.extend(["-accel".into(), "tcg".into()]);
        }
        match &self.serial {
            Serial::Stdio => a.extend(["-serial".into(), "mon:stdio".into()]),
            Serial::Socket { socket, log } => a.extend([
                "-chardev".into(),
                format!(
                    "socket,id=ser0,path={},server=on,wait=off,logfile={},logappend=on",
                    socket.display(),
                    log.display()
                ),
                "-serial".into(),
                "chardev:ser0".into(),
            ]),
        }
        match (&self.serial, &self.monitor) {
            (Serial::Socket { .. }, Some(path)) => a.extend([
                "-chardev".into(),
                format!("socket,id=mon0,path={},server=on,wait=off", path.display()),
                "-mon".into(),
                "chardev=mon0,mode=readline".into(),
            ]),
            (Serial::Socket { .. }, None) => a.extend(["-monitor".into(), "none".into()]),
            (Serial::Stdio, _) => {}
        }
        if self.monitor.is_some() {
            a.extend([
                "-device".into(),
                format!("pcie-root-port,id={HOTPLUG_PORT},chassis=8"),
            ]);
        }
        if self.uefi {
            a.extend(["-bios".into(), ovmf().display().to_string()]);
        }
        if !self.allow_reboot {
            a.push("-no-reboot".into());
        }
        match &self.boot {
            Boot::Kernel {
                vmlinuz,
                initrd,
                append,
            } => {
                a.extend([
                    "-kernel".into(),
                    vmlinuz.display().to_string(),
                    "-initrd".into(),
                    initrd.display().to_string(),
                    "-append".into(),
                    append.clone(),
                ]);
            }
            Boot::Cdrom(iso) => {
                a.extend([
                    "-drive".into(),
                    format!("file={},media=cdrom,readonly=on,if=none,id=cd0", iso.display()),
                    "-device".into(),
                    "ide-cd,drive=cd0,bootindex=0".into(),
                ]);
            }
            Boot::Disk(image) => {
                a.extend([
                    "-drive".into(),
                    format!("file={},format=raw,if=none,id=boot0,snapshot=on", image.display()),
                    "-device".into(),
                    "virtio-blk-pci,drive=boot0,bootindex=0".into(),
                ]);
            }
            Boot::Installed(image) => {
                a.extend([
                    "-drive".into(),
                    format!(
                        "file={},format=raw,if=none,id=boot0,cache=unsafe",
                        image.display()
                    ),
                    "-device".into(),
                    "virtio-blk-pci,drive=boot0,bootindex=0".into(),
                ]);
            }
        }
        for (i, disk) in self.disks.iter().enumerate() {
            a.extend([
                "-drive".into(),
                format!(
                    "file={},format=raw,if=none,id=disk{i},cache=unsafe",
                    disk.display()
                ),
                "-device".into(),
                format!("virtio-blk-pci,drive=disk{i}"),
            ]);
        }
        for (i, disk) in self.ahci_disks.iter().enumerate() {
            a.extend([
                "-drive".into(),
                format!(
                    "file={},format=raw,if=none,id=ahci{i},cache=unsafe",
                    disk.display()
                ),
                "-device".into(),
                // Port 0 holds the CD when there is one; these take ports 2 and up.
                format!("ide-hd,drive=ahci{i},bus=ide.{}", i + 2),
            ]);
        }
        if let Some(path) = &self.guest_agent {
            a.extend([
                "-device".into(),
                "virtio-serial-pci,id=vser0".into(),
                "-chardev".into(),
                format!("socket,id=qga0,path={},server=on,wait=off", path.display()),
                "-device".into(),
                "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0".into(),
            ]);
        }
        if let Some(seed) = &self.cidata {
            a.extend([
                "-drive".into(),
                format!("file={},format=raw,if=none,id=seed,readonly=on", seed.display()),
                "-device".into(),
                "virtio-blk-pci,drive=seed".into(),
            ]);
        }
        let mut netdev = "user,id=n0,restrict=on".to_string();
        if let Some(net) = &self.net {
            netdev.push_str(&format!(",net={net}"));
        }
        for rule in &self.guest_forwards {
            netdev.push_str(&format!(",guestfwd={rule}"));
        }
        if let Some(port) = self.ssh_port {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{port}-:22"));
        }
        a.extend([
            "-netdev".into(),
            netdev,
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
        ]);
        for tap in &self.taps {
            a.extend([
                "-netdev".into(),
                format!("tap,id={},ifname={},script=no,downscript=no", tap.id, tap.ifname),
                "-device".into(),
                format!("virtio-net-pci,netdev={},mac={}", tap.id, tap.mac),
            ]);
        }
        a
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(self.args());
        cmd
    }
}

pub fn ovmf() -> PathBuf {
    ["/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/usr/share/ovmf/OVMF.fd"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Whether to use KVM: only when asked (`BERTH_KVM=1`) and `/dev/kvm` exists. Without it
/// QEMU emulates (TCG). There is no automatic probe: on some hosts KVM starts and then fails
/// in the guest (nested virtualisation), which only a full boot would show.
pub fn use_kvm() -> bool {
    std::env::var("BERTH_KVM").as_deref() == Ok("1") && Path::new("/dev/kvm").exists()
}

/// A NoCloud seed (ISO 9660 labelled `cidata`) holding `user-data` and `meta-data`.
pub fn make_cidata(dir: &Path, user_data: &str, meta_data: &str, dest: &Path) -> Result<()> {
    make_cidata_with_network(dir, user_data, meta_data, None, dest)
}

/// A NoCloud seed that also holds a `network-config` (cloud-init's version 1 or 2).
pub fn make_cidata_with_network(
    dir: &Path,
    user_data: &str,
    meta_data: &str,
    network_config: Option<&str>,
    dest: &Path,
) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("user-data"), user_data)?;
    std::fs::write(dir.join("meta-data"), meta_data)?;
    let mut files = vec![dir.join("user-data"), dir.join("meta-data")];
    if let Some(text) = network_config {
        std::fs::write(dir.join("network-config"), text)?;
        files.push(dir.join("network-config"));
    }
    let out = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-r", "-o"])
        .arg(dest)
        .args(&files)
        .output()
        .context("running xorriso for the cidata seed")?;
    if !out.status.success() {
        bail!("xorriso: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A throwaway ssh key pair in `dir` (created once); returns (private key path, public key).
pub fn ssh_key(dir: &Path) -> Result<(PathBuf, String)> {
    std::fs::create_dir_all(dir)?;
    // Test binaries run side by side (`cargo xtask test` runs two at a time): the first one
    // makes the key while the others wait on this lock, so none reads a half-made key.
    let lock = std::fs::File::create(dir.join("id_ed25519.lock"))?;
    lock.lock().context("locking the ssh key")?;
    let key = dir.join("id_ed25519");
    if !key.exists() {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "berth-dev", "-f"])
            .arg(&key)
            .output()
            .context("running ssh-keygen")?;
        if !out.status.success() {
            bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    Ok((key, public.trim().to_string()))
}

/// A raw disk image holding an empty ext4 filesystem labelled `label`.
pub fn make_ext4_disk(path: &Path, size_mib: u64, label: &str) -> Result<()> {
    make_ext4_disk_from(path, size_mib, label, None)
}

/// A raw disk image holding an ext4 filesystem labelled `label`, with the files of `content`.
pub fn make_ext4_disk_from(path: &Path, size_mib: u64, label: &str, content: Option<&Path>) -> Result<()> {
    let file = std::fs::File::create(path)?;
    file.set_len(size_mib << 20)?;
    drop(file);
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", label]);
    if let Some(dir) = content {
        mkfs.arg("-d").arg(dir);
    }
    let out = mkfs.arg(path).output().context("running mkfs.ext4")?;
    if !out.status.success() {
        bail!("mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_network_nics_follow_the_user_nic_and_the_monitor_is_a_socket() {
        let mut vm = Vm::new(Boot::Cdrom("/x.iso".into()));
        vm.serial = Serial::Socket {
            socket: "/t/ser.sock".into(),
            log: "/t/ser.log".into(),
        };
        vm.monitor = Some("/t/mon.sock".into());
        vm.taps.push(TapNic {
            id: "seg0".into(),
            ifname: "bt1n0".into(),
            mac: "52:54:00:00:00:0a".into(),
            netns: "ns".into(),
            bridge: "br0".into(),
        });
        let args = vm.args().join(" ");
        assert!(
            args.contains(
                "-chardev socket,id=mon0,path=/t/mon.sock,server=on,wait=off -mon chardev=mon0,mode=readline"
            ),
            "{args}"
        );
        assert!(!args.contains("-monitor none"), "{args}");
        let user = args.find("virtio-net-pci,netdev=n0").unwrap();
        let tap = args
            .find("-netdev tap,id=seg0,ifname=bt1n0,script=no,downscript=no -device virtio-net-pci,netdev=seg0,mac=52:54:00:00:00:0a")
            .unwrap();
        assert!(user < tap, "{args}");
        vm.monitor = None;
        assert!(vm.args().join(" ").contains("-monitor none"));
    }
}
