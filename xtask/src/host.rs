//! The host tools each command needs, installed with apt when we are root, or named precisely
//! when we are not.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// What the caller is about to do; each purpose needs its own set of host tools.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Build,
    Boot,
    Test,
    /// `cargo xtask bench boot`: also builds the Debian reference image.
    Bench,
}

impl Purpose {
    pub fn all() -> &'static [Purpose] {
        &[Purpose::Build, Purpose::Boot, Purpose::Test]
    }
}

/// (program looked up on PATH or an absolute path, Debian package providing it, purpose)
const TOOLS: &[(&str, &str, Purpose)] = &[
    ("apt-get", "apt", Purpose::Build),
    ("dpkg-deb", "dpkg", Purpose::Build),
    ("mksquashfs", "squashfs-tools", Purpose::Build),
    ("depmod", "kmod", Purpose::Build),
    ("xz", "xz-utils", Purpose::Build),
    ("xorriso", "xorriso", Purpose::Build),
    ("mformat", "mtools", Purpose::Build),
    // dm-verity hash trees of the images on a medium (xtask/src/verity.rs).
    ("veritysetup", "cryptsetup-bin", Purpose::Build),
    // A private dockerd loads the system images to write the read-only image store.
    ("dockerd", "docker.io", Purpose::Build),
    ("docker", "docker.io", Purpose::Build),
    ("grub-mkrescue", "grub-common", Purpose::Build),
    // Installed disks (xtask/src/disk.rs): GRUB images for the layout, and berth.qcow2.
    ("grub-mkimage", "grub-common", Purpose::Build),
    ("/usr/lib/grub/i386-pc/boot.img", "grub-pc-bin", Purpose::Build),
    ("qemu-img", "qemu-utils", Purpose::Build),
    // ring (rustls' crypto) has C and assembly that cc builds with musl-gcc for the musl target.
    ("musl-gcc", "musl-tools", Purpose::Build),
    ("/usr/lib/grub/i386-pc/cdboot.img", "grub-pc-bin", Purpose::Build),
    (
        "/usr/lib/grub/x86_64-efi/linux.mod",
        "grub-efi-amd64-bin",
        Purpose::Build,
    ),
    ("qemu-system-x86_64", "qemu-system-x86", Purpose::Boot),
    ("/usr/share/ovmf/OVMF.fd", "ovmf", Purpose::Boot),
    ("ssh", "openssh-client", Purpose::Boot),
    ("ssh-keygen", "openssh-client", Purpose::Boot),
    ("mkfs.ext4", "e2fsprogs", Purpose::Test),
    ("mkfs.vfat", "dosfstools", Purpose::Test),
    ("dockerd", "docker.io", Purpose::Test),
    // The multi-machine tests' private network (crates/berth-e2e/src/testnet.rs): a network
    // namespace with a bridge (iproute2) and DHCP from dnsmasq inside it.
    ("ip", "iproute2", Purpose::Test),
    ("dnsmasq", "dnsmasq-base", Purpose::Test),
    // The engine integration tests put a static busybox in their images.
    ("/usr/share/doc/busybox-static", "busybox-static", Purpose::Test),
    // The boot benchmark's Debian reference: a trixie root made by mmdebstrap, put on ext4.
    ("mmdebstrap", "mmdebstrap", Purpose::Bench),
    ("mkfs.ext4", "e2fsprogs", Purpose::Bench),
];

fn present(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// QEMU from Debian 12 (7.2) hits a TCG flake with the trixie kernel; backports has 10.x.
fn qemu_needs_backports() -> bool {
    let Ok(out) = Command::new("sh")
        .args(["-c", ". /etc/os-release && echo $VERSION_CODENAME"])
        .output()
    else {
        return false;
    };
    String::from_utf8_lossy(&out.stdout).trim() == "bookworm"
}

/// Make sure the tools for `purposes` are installed; install the missing ones with apt as root.
pub fn ensure(purposes: &[Purpose]) -> Result<()> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _, purpose)| purposes.contains(purpose) && !present(tool))
        .map(|(_, package, _)| *package)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    ensure_musl_target()?;
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing host packages: {}. Install them with:\n  sudo apt-get install --no-install-recommends {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("Installing host packages: {}", missing.join(" "));
    let mut backports = Vec::new();
    if missing.contains(&"qemu-system-x86") && qemu_needs_backports() {
        add_backports()?;
        backports.push("qemu-system-x86");
        if missing.contains(&"ovmf") {
            backports.push("ovmf");
        }
    }
    apt(&["update", "-qq"])?;
    let plain: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| !backports.contains(p))
        .collect();
    if !plain.is_empty() {
        let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
        args.extend(plain.iter().copied());
        apt(&args)?;
    }
    if !backports.is_empty() {
        let mut args = vec![
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "-t",
            "bookworm-backports",
        ];
        args.extend(backports.iter().copied());
        apt(&args)?;
    }
    Ok(())
}

fn apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn add_backports() -> Result<()> {
    let path = Path::new("/etc/apt/sources.list.d/bookworm-backports.sources");
    if path.exists() {
        return Ok(());
    }
    eprintln!(
        "Adding bookworm-backports to apt's sources for QEMU 10 ({})",
        path.display()
    );
    std::fs::write(
        path,
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    )
    .with_context(|| format!("writing {}", path.display()))
}

/// The static `berth` binary is built for musl when rustup can install the target.
fn ensure_musl_target() -> Result<()> {
    if crate::toolchain::musl_available() {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", crate::toolchain::MUSL_TARGET])
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        _ => {
            eprintln!(
                "note: could not install the {} target; Berth will be linked statically against glibc",
                crate::toolchain::MUSL_TARGET
            );
            Ok(())
        }
    }
}
