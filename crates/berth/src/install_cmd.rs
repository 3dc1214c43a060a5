//! `berth install`: write this release onto a disk (the layout of crates/berth-install: GRUB
//! for BIOS and UEFI, slots A and B, a state partition formatted at the first boot), with a
//! cloud-config for the installed machine. RancherOS's `ros install -c FILE -d DEV` is
//! `berth install --cloud-config FILE --device DEV`.

use berth_install::disk::{self, GrubImages, Plan, Progress, Release};
use berth_install::layout::{self, MIB};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  sudo berth install --device /dev/sda --cloud-config cloud-config.yml
  sudo berth install -d /dev/vdb -c cloud-config.yml --no-reboot
  sudo berth install -d /dev/sda -c https://config.example.com/node1.yml

RancherOS's `ros install -c FILE -d DEV` is `berth install -c FILE -d DEV`.
Everything on the disk is lost. Boot the ISO to install: its medium holds the release.")]
pub struct InstallArgs {
    /// The disk to install on (a whole disk such as /dev/sda or /dev/vdb)
    #[arg(long, short = 'd')]
    device: PathBuf,
    /// The installed machine's cloud-config (user-data): a file or an http(s) URL, fetched and
    /// checked before anything is written
    #[arg(long, short = 'c', value_name = "FILE|URL")]
    cloud_config: Option<String>,
    /// Install over a disk that holds partitions or filesystems
    #[arg(long, short = 'f')]
    force: bool,
    /// Do not reboot when done
    #[arg(long)]
    no_reboot: bool,
    /// Where the running release's files are (the boot medium)
    #[arg(long, hide = true, default_value = "/run/berth/medium")]
    medium: PathBuf,
    /// GRUB's images for the disk (in the OS image)
    #[arg(long, hide = true, default_value = "/usr/share/berth/grub")]
    grub: PathBuf,
}

pub fn main(args: InstallArgs) -> i32 {
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth install: {e}");
            1
        }
    }
}

/// The release files on the ISO's medium.
fn release_on(medium: &Path) -> Result<Release, String> {
    let files = [
        ("boot/vmlinuz", "the kernel"),
        ("boot/initrd.img", "the initrd"),
        ("berth/os.img", "the OS image"),
        ("berth/images.img", "the system images"),
    ];
    if !medium.join("berth/os.img").is_file() {
        return Err(format!(
            "no boot medium at {}: this machine was not booted from the ISO (a kernel and \
             initrd loaded directly, as by PXE or QEMU -kernel, leave no kernel file to \
             install). Boot the ISO to install",
            medium.display()
        ));
    }
    for (file, what) in files {
        if !medium.join(file).is_file() {
            return Err(format!(
                "{what} ({}) is missing from the boot medium",
                medium.join(file).display()
            ));
        }
    }
    let version = std::fs::read_to_string(medium.join("berth/version"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|_| berth_boot::VERSION.to_string());
    Ok(Release {
        version,
        vmlinuz: medium.join("boot/vmlinuz"),
        initrd: medium.join("boot/initrd.img"),
        os_img: medium.join("berth/os.img"),
        images_img: medium.join("berth/images.img"),
    })
}

/// The whole disk (sysfs name) a device number belongs to.
fn disk_of(dev: u64) -> Option<String> {
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let path = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    if path.join("partition").exists() {
        path.parent().and_then(name)
    } else {
        name(&path)
    }
}

/// Why a disk must not be overwritten without --force: partitions or filesystems on it.
fn in_use(device: &Path, sys_name: Option<&str>) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(name) = sys_name {
        let dir = Path::new("/sys/class/block").join(name);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.path().join("partition").exists() {
                    found.push(format!("partition {}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    if let Some(fs) = berth_blockdev::probe(device) {
        found.push(format!("a {} filesystem", fs.fstype));
    }
    let mut head = [0u8; 1024];
    if std::fs::File::open(device)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
    {
        if &head[512..520] == b"EFI PART" {
            found.push("a GPT partition table".to_string());
        } else if head[510..512] == [0x55, 0xaa] {
            found.push("an MBR partition table".to_string());
        }
    }
    found.sort();
    found.dedup();
    found
}

fn run(args: &InstallArgs) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("writing a disk needs root: run `sudo berth install ...`".to_string());
    }
    let release = release_on(&args.medium)?;
    let device = &args.device;
    let meta = std::fs::metadata(device).map_err(|e| format!("{}: {e}", device.display()))?;
    let is_block = meta.file_type().is_block_device();
    if !is_block && !meta.is_file() {
        return Err(format!("{} is not a disk", device.display()));
    }
    let sys_name = if is_block { disk_of(meta.rdev()) } else { None };
    if is_block {
        let whole = sys_name.as_deref().unwrap_or_default();
        if Path::new("/sys/class/block")
            .join(whole)
            .join("partition")
            .exists()
            || device
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .as_deref()
                != Some(whole)
        {
            return Err(format!(
                "{} is a partition: give the whole disk (/dev/{whole})",
                device.display()
            ));
        }
        let medium_dev = std::fs::metadata(args.medium.join("berth/os.img"))
            .map(|m| m.dev())
            .ok();
        if medium_dev.and_then(disk_of).as_deref() == Some(whole) {
            return Err(format!(
                "{} holds the medium this machine booted from: install on another disk",
                device.display()
            ));
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(|e| format!("opening {}: {e}", device.display()))?;
    let size = file
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("sizing {}: {e}", device.display()))?;
    disk::check_size(size, layout::MIN_STATE_INSTALL).map_err(|e| format!("{}: {e}", device.display()))?;
    let holds = in_use(device, sys_name.as_deref());
    if !holds.is_empty() && !args.force {
        return Err(format!(
            "{} holds {}: nothing was written. Add --force to erase it",
            device.display(),
            holds.join(", ")
        ));
    }
    let user_data = match &args.cloud_config {
        Some(source) => Some(cloud_config(source)?),
        None => None,
    };
    let grub = GrubImages::load(&args.grub).map_err(|e| e.to_string())?;

    println!(
        "Installing Berth {} on {} ({} MiB): BIOS + UEFI boot, slot A, state partition of {} MiB",
        release.version,
        device.display(),
        size / MIB,
        layout::state_extent(size, 0).map(|(_, s)| s / MIB).unwrap_or(0)
    );
    let plan = Plan {
        disk_size: size,
        min_state: layout::MIN_STATE_INSTALL,
        slot_a: &release,
        grub: &grub,
        user_data: user_data.as_deref(),
    };
    let mut last_mib = 0;
    disk::write(&mut file, &plan, &mut |p| match p {
        Progress::Partition { name } => {
            last_mib = 0;
            println!("  {name}");
        }
        Progress::Written { name, bytes } => {
            if bytes / MIB >= last_mib + 16 {
                last_mib = bytes / MIB;
                println!("  {name}: {last_mib} MiB written");
            }
        }
    })
    .map_err(|e| format!("{}: {e}", device.display()))?;
    file.sync_all()
        .map_err(|e| format!("syncing {}: {e}", device.display()))?;
    drop(file);
    if is_block {
        // Let the running kernel see the new partitions (best effort: nothing here uses them).
        if let Ok(f) = std::fs::File::open(device) {
            let _ = berth_boot::installed::reread_partitions(&f);
        }
    }
    println!("Berth {} is installed on {}.", release.version, device.display());
    if args.no_reboot {
        println!(
            "Remove the ISO (or boot from {}) and power on again to start it.",
            device.display()
        );
        return Ok(());
    }
    println!("Rebooting. Remove the ISO if the firmware would boot it first.");
    let status = std::process::Command::new("reboot")
        .status()
        .map_err(|e| format!("running reboot: {e}"))?;
    if !status.success() {
        return Err("reboot failed: reboot by hand".to_string());
    }
    Ok(())
}

/// How long a cloud-config URL may take to answer.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Read (or download) and check the cloud-config: errors with file:line stop the install
/// before anything is written.
fn cloud_config(source: &str) -> Result<Vec<u8>, String> {
    if !crate::fetch::is_url(source) {
        let text =
            std::fs::read_to_string(source).map_err(|e| format!("{source}: {e}: nothing was written"))?;
        return checked_cloud_config(text, source);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the download: {e}"))?;
    let response = runtime
        .block_on(crate::fetch::client().get(source, &[], FETCH_TIMEOUT))
        .map_err(|e| format!("fetching the cloud-config: {e}: nothing was written"))?;
    if response.status != 200 {
        return Err(format!(
            "fetching the cloud-config: {} answered HTTP {}: nothing was written",
            response.url, response.status
        ));
    }
    let text = String::from_utf8(response.body)
        .map_err(|_| format!("{source}: not a text cloud-config: nothing was written"))?;
    checked_cloud_config(text, source)
}

/// Check a cloud-config's text (`source` names it in the messages).
fn checked_cloud_config(text: String, source: &str) -> Result<Vec<u8>, String> {
    if !text.starts_with("#cloud-config") {
        return Err(format!(
            "{source}: the installed machine's user-data must be a cloud-config (first line `#cloud-config`)"
        ));
    }
    let diagnostics = berth_config::validate_text(&text, source);
    for d in &diagnostics {
        eprintln!("{d}");
    }
    if berth_config::has_errors(&diagnostics) {
        return Err(format!("{source} has errors (above): nothing was written"));
    }
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ram_boot_is_told_to_boot_the_iso() {
        let dir = tempfile::tempdir().unwrap();
        let err = release_on(dir.path()).unwrap_err();
        assert!(
            err.contains("not booted from the ISO") && err.contains("Boot the ISO"),
            "{err}"
        );
        std::fs::create_dir_all(dir.path().join("berth")).unwrap();
        std::fs::write(dir.path().join("berth/os.img"), b"os").unwrap();
        let err = release_on(dir.path()).unwrap_err();
        assert!(
            err.contains("the kernel") && err.contains("boot/vmlinuz"),
            "{err}"
        );
    }

    #[test]
    fn a_cloud_config_with_errors_stops_the_install() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("cc.yml");
        let bad_str = bad.to_str().unwrap();
        std::fs::write(&bad, "#cloud-config\nberth:\n  ssh:\n    port: x\n").unwrap();
        assert!(cloud_config(bad_str).unwrap_err().contains("has errors"));
        std::fs::write(&bad, "#!/bin/sh\necho hi\n").unwrap();
        assert!(cloud_config(bad_str).unwrap_err().contains("#cloud-config"));
        std::fs::write(&bad, "#cloud-config\nhostname: node1\n").unwrap();
        assert!(cloud_config(bad_str).is_ok());
    }

    /// A cloud-config URL: served (the real client against a local server), not found, and
    /// nobody answering — each decided before anything would be written.
    #[test]
    fn a_cloud_config_url_is_fetched_and_checked_or_refused() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() <= 2 {
                        break;
                    }
                }
                let (status, body) = if request.contains("/node1.yml") {
                    ("200 OK", "#cloud-config\nhostname: node1\n")
                } else {
                    ("404 Not Found", "no")
                };
                let mut stream = stream;
                write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        let got = cloud_config(&format!("http://127.0.0.1:{port}/node1.yml")).unwrap();
        assert_eq!(got, b"#cloud-config\nhostname: node1\n");
        let err = cloud_config(&format!("http://127.0.0.1:{port}/missing.yml")).unwrap_err();
        assert!(
            err.contains("HTTP 404") && err.contains("nothing was written"),
            "{err}"
        );
        server.join().unwrap();
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let err = cloud_config(&format!("http://127.0.0.1:{closed_port}/x.yml")).unwrap_err();
        assert!(
            err.contains("fetching the cloud-config") && err.contains("nothing was written"),
            "{err}"
        );
    }

    #[test]
    fn a_disk_with_a_partition_table_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk");
        let mut bytes = vec![0u8; 4096];
        std::fs::write(&disk, &bytes).unwrap();
        assert!(in_use(&disk, None).is_empty());
        bytes[512..520].copy_from_slice(b"EFI PART");
        std::fs::write(&disk, &bytes).unwrap();
        assert_eq!(in_use(&disk, None), ["a GPT partition table"]);
    }
}
