//! The boot benchmark's Debian reference: Debian trixie + systemd + docker.io + openssh-server
//! on an ext4 disk, made by mmdebstrap from the same archive and suite as Berth's image, with
//! the same kernel package and engine versions. Its initramfs is made by initramfs-tools inside
//! the root; the benchmark boots that kernel and initrd with `-kernel`/`-initrd` and
//! `root=/dev/vda`, with the same QEMU settings as Berth. Cached in `target/berth/bench/`,
//! rebuilt only when an input changes.

use crate::{apt, layout};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the recipe below changes in a way its inputs do not show.
const RECIPE_REVISION: &str = "1";
/// The disk's size; the file is sparse, only the root's blocks take space.
const DISK_MIB: u64 = 3072;

/// The versions Berth ships, read from the build's manifest: the reference installs the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    /// `linux-image-<release>=<version>`
    pub kernel: String,
    /// The kernel release (`/boot/vmlinuz-<release>`).
    pub kernel_release: String,
    /// `docker.io=<v>`, `docker-cli=<v>`, `containerd=<v>`, `runc=<v>`
    pub engine: Vec<String>,
}

impl Pins {
    pub fn from_manifest(manifest: &serde_json::Value) -> Result<Self> {
        let field = |path: &[&str]| -> Result<String> {
            let mut v = manifest;
            for p in path {
                v = &v[*p];
            }
            v.as_str()
                .map(str::to_string)
                .with_context(|| format!("manifest.json has no {}", path.join(".")))
        };
        let kernel = format!(
            "{}={}",
            field(&["kernel", "package"])?,
            field(&["kernel", "version"])?
        );
        let kernel_release = field(&["kernel", "release"])?;
        // docker.io only recommends the CLI (docker-cli); `docker info` needs it.
        let engine = ["docker.io", "docker-cli", "containerd", "runc"]
            .iter()
            .map(|p| Ok(format!("{p}={}", field(&["engine", p])?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            kernel,
            kernel_release,
            engine,
        })
    }

    /// Everything apt installs on top of mmdebstrap's minbase: systemd as init, udev, the
    /// engine, sshd, initramfs-tools and the kernel; sudo so the login user can power off
    /// cleanly (Berth's login user has passwordless sudo too).
    pub fn packages(&self) -> Vec<String> {
        let mut p: Vec<String> = [
            "systemd-sysv",
            "udev",
            "openssh-server",
            "initramfs-tools",
            "sudo",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        p.extend(self.engine.iter().cloned());
        p.push(self.kernel.clone());
        p
    }
}

/// The script mmdebstrap runs on the finished root (`$1`): the login user with the bench's
/// key, key-only sshd, DHCP by systemd-networkd, the root filesystem in fstab.
pub fn customize_script(public_key: &str) -> String {
    format!(
        r#"set -eu
root="$1"
echo debian-ref > "$root/etc/hostname"
echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' > "$root/etc/fstab"
chroot "$root" useradd --create-home --shell /bin/bash --groups docker berth
mkdir -p "$root/home/berth/.ssh"
echo '{public_key}' > "$root/home/berth/.ssh/authorized_keys"
chroot "$root" chown -R berth:berth /home/berth/.ssh
chmod 700 "$root/home/berth/.ssh"
chmod 600 "$root/home/berth/.ssh/authorized_keys"
echo 'berth ALL=(ALL) NOPASSWD: ALL' > "$root/etc/sudoers.d/berth"
chmod 440 "$root/etc/sudoers.d/berth"
mkdir -p "$root/etc/ssh/sshd_config.d"
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' \
  > "$root/etc/ssh/sshd_config.d/10-key-only.conf"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' > "$root/etc/systemd/network/10-dhcp.network"
chroot "$root" systemctl enable systemd-networkd.service ssh.service docker.service
test -f "$root/boot/initrd.img-$2"
test -x "$root/usr/bin/docker"
"#
    )
}

/// The reference's files: its disk and the kernel and initrd taken out of its `/boot`.
pub struct DebianRef {
    pub disk: PathBuf,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
}

impl DebianRef {
    pub fn at(dir: &Path) -> Self {
        Self {
            disk: dir.join("debian-ref.img"),
            vmlinuz: dir.join("debian-ref.vmlinuz"),
            initrd: dir.join("debian-ref.initrd.img"),
        }
    }

    /// Bytes the disk image takes on the host's disk (it is sparse).
    pub fn disk_bytes(&self) -> u64 {
        std::fs::metadata(&self.disk)
            .map(|m| m.blocks() * 512)
            .unwrap_or(0)
    }
}

fn fingerprint(pins: &Pins, script: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        RECIPE_REVISION,
        &pins.packages().join(" "),
        &pins.kernel_release,
        script,
        &apt::sources_list(),
        &DISK_MIB.to_string(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Build the reference in `dir` unless the cached one was made from the same inputs.
pub fn ensure(dir: &Path, public_key: &str) -> Result<DebianRef> {
    let manifest_path = layout::out_dir().join("manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?,
    )
    .with_context(|| format!("parsing {}", manifest_path.display()))?;
    let pins = Pins::from_manifest(&manifest).with_context(|| format!("in {}", manifest_path.display()))?;
    let script = customize_script(public_key);
    let print = fingerprint(&pins, &script);
    let out = DebianRef::at(dir);
    let stamp = dir.join("debian-ref.stamp");
    let fresh = std::fs::read_to_string(&stamp).ok().as_deref() == Some(print.as_str())
        && [&out.disk, &out.vmlinuz, &out.initrd].iter().all(|p| p.exists());
    if fresh {
        return Ok(out);
    }
    if !crate::host::is_root() {
        bail!(
            "building the Debian reference needs root (mmdebstrap --mode=root, mkfs.ext4 -d); run the bench as root"
        );
    }
    let _ = std::fs::remove_file(&stamp);
    eprintln!(
        "Building the Debian reference ({}, {}) with mmdebstrap",
        pins.kernel,
        pins.engine.join(", ")
    );
    let root = dir.join("debian-ref-root");
    // mmdebstrap mounts /proc, /sys and /dev/pts inside the root while it works: never
    // delete a root that another build is still using.
    let busy = mounts_under(&std::fs::read_to_string("/proc/self/mounts")?, &root);
    if !busy.is_empty() {
        bail!(
            "{} is in use (mounted: {}): another build of the Debian reference is running; wait for it",
            root.display(),
            busy.join(", ")
        );
    }
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    let script_path = dir.join("debian-ref-customize.sh");
    std::fs::write(&script_path, &script)?;
    let sources = dir.join("debian-ref.list");
    std::fs::write(&sources, apt::sources_list())?;
    let status = Command::new("mmdebstrap")
        .args(["--mode=root", "--variant=minbase", "--quiet"])
        .arg("--aptopt=APT::Install-Recommends \"false\"")
        .arg(format!("--include={}", pins.packages().join(",")))
        .arg(format!(
            "--customize-hook=sh {} \"$1\" {}",
            script_path.display(),
            pins.kernel_release
        ))
        .arg(apt::SUITE)
        .arg(&root)
        .arg(&sources)
        .status()
        .context("running mmdebstrap")?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&root);
        bail!(
            "mmdebstrap failed ({status}) building the Debian reference in {}",
            root.display()
        );
    }
    let boot = root.join("boot");
    std::fs::copy(
        boot.join(format!("vmlinuz-{}", pins.kernel_release)),
        &out.vmlinuz,
    )
    .context("copying the reference's kernel")?;
    std::fs::copy(
        boot.join(format!("initrd.img-{}", pins.kernel_release)),
        &out.initrd,
    )
    .context("copying the reference's initrd")?;
    let _ = std::fs::remove_file(&out.disk);
    berth_e2e::qemu::make_ext4_disk_from(&out.disk, DISK_MIB, "debian-ref", Some(&root))
        .context("writing the reference's ext4 disk")?;
    std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    std::fs::write(&stamp, print)?;
    Ok(out)
}

/// Mount points in `mounts` (`/proc/self/mounts`' text) at or below `dir`.
fn mounts_under(mounts: &str, dir: &Path) -> Vec<String> {
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        // The kernel writes a space in a path as \040.
        .map(|m| m.replace("\\040", " "))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_with_mounts_under_it_is_busy() {
        let mounts = "proc /proc proc rw 0 0\n\
                      sys /t/bench/debian-ref-root/sys sysfs ro 0 0\n\
                      none /t/bench/debian-ref-root-old/dev/pts devpts rw 0 0\n";
        let root = Path::new("/t/bench/debian-ref-root");
        assert_eq!(mounts_under(mounts, root), vec!["/t/bench/debian-ref-root/sys"]);
        assert!(mounts_under("proc /proc proc rw 0 0\n", root).is_empty());
    }

    #[test]
    fn pins_come_from_the_manifest_and_a_missing_field_is_named() {
        let manifest = serde_json::json!({
            "kernel": {"package": "linux-image-6.12.1-cloud-amd64", "release": "6.12.1-cloud-amd64", "version": "6.12.1-1"},
            "engine": {"docker.io": "26.1.5", "docker-cli": "26.1.5", "containerd": "1.7.24", "runc": "1.1.15"},
        });
        let pins = Pins::from_manifest(&manifest).unwrap();
        assert_eq!(pins.kernel, "linux-image-6.12.1-cloud-amd64=6.12.1-1");
        assert!(pins.packages().contains(&"docker.io=26.1.5".to_string()));
        assert!(pins.packages().contains(&"docker-cli=26.1.5".to_string()));
        assert!(pins.packages().contains(&"openssh-server".to_string()));
        let broken = serde_json::json!({"kernel": {"package": "x"}});
        let err = format!("{:#}", Pins::from_manifest(&broken).unwrap_err());
        assert!(err.contains("kernel.version"), "{err}");
    }

    #[test]
    fn the_key_and_the_recipe_change_the_fingerprint() {
        let pins = Pins {
            kernel: "linux-image-x=1".into(),
            kernel_release: "x".into(),
            engine: vec!["docker.io=1".into()],
        };
        let a = fingerprint(&pins, &customize_script("ssh-ed25519 AAAA a"));
        assert_eq!(a, fingerprint(&pins, &customize_script("ssh-ed25519 AAAA a")));
        assert_ne!(a, fingerprint(&pins, &customize_script("ssh-ed25519 BBBB b")));
        let script = customize_script("ssh-ed25519 AAAA a");
        assert!(script.contains("PasswordAuthentication no"));
    }
}
