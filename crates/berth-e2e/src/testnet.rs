//! A private Ethernet segment for several test machines: a network namespace the test
//! creates, a Linux bridge in it, one tap device per attached NIC, and optionally dnsmasq in
//! that namespace serving DHCP. Nothing is routed out of the namespace (it has no uplink and
//! no address outside it), so no packet a guest sends on the segment leaves this machine.
//!
//! QEMU itself runs in the default namespace, so that each machine keeps its first NIC on
//! user networking (`restrict=on`) with ssh forwarded to 127.0.0.1. QEMU creates the tap
//! there, down and without an address; [`adopt_tap`] moves it into the namespace and enslaves
//! it to the bridge before anything is sent (the move keeps QEMU's open file descriptor).
//!
//! The bridge forwards 802.1Q-tagged frames as they are, so VLANs on top of the segment work.
//! Needs root (`CAP_NET_ADMIN`), `/dev/net/tun`, `ip` (iproute2) and, for DHCP, `dnsmasq`
//! (Debian's `dnsmasq-base`). Dropping the [`TestNet`] (also while a test panics) stops
//! dnsmasq by its PID, deletes the namespace with its bridge, and removes its files.

use crate::machine::Machine;
use crate::qemu::Vm;
use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The bridge's name inside the namespace.
pub const BRIDGE: &str = "br0";

/// A NIC of a machine on a [`TestNet`]: QEMU's `-netdev tap` with this id, its tap device
/// (in the default namespace until [`adopt_tap`] moves it) and the guest's MAC address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapNic {
    /// QEMU's netdev id, which the monitor's `set_link` takes.
    pub id: String,
    pub ifname: String,
    pub mac: String,
    pub netns: String,
    pub bridge: String,
}

/// DHCP on the segment: dnsmasq in the namespace, listening on the bridge only, with no DNS
/// service of its own (`--port=0`) and no router option (the guests keep their default route
/// on the user network).
#[derive(Clone, Debug)]
pub struct Dhcp {
    /// The bridge's address and prefix (dnsmasq answers from it).
    pub server: (Ipv4Addr, u8),
    pub range: (Ipv4Addr, Ipv4Addr),
    /// Name servers the lease offers (they need not exist: tests look at resolv.conf).
    pub dns: Vec<Ipv4Addr>,
    /// The domain search list (option 119) and domain name (option 15, the first entry).
    pub search: Vec<String>,
    /// NTP servers the lease offers (option 42).
    pub ntp: Vec<Ipv4Addr>,
}

pub struct TestNet {
    pub netns: String,
    pub bridge: String,
    dir: PathBuf,
    tag: String,
    next_tap: AtomicUsize,
    dnsmasq: Option<Child>,
    /// chronyd serving time on the segment ([`TestNet::serve_ntp`]).
    chronyd: Option<Child>,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

/// Run `ip` with `args`; fail with its stderr.
fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2 is needed for the test network)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The namespace's name for a test: unique per test and process.
pub fn netns_name(test: &str, pid: u32) -> String {
    let test: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("berth-{test}-{pid}")
}

/// A tap device name, unique on this machine while it sits in the default namespace
/// (interface names have at most 15 bytes): `bt` + the PID in hex + `n` + a counter.
pub fn tap_name(pid: u32, index: usize) -> String {
    format!("bt{pid:x}n{index}")
}

/// dnsmasq's arguments for `dhcp` (without the program), writing its leases and log under
/// `dir`.
pub fn dnsmasq_args(dhcp: &Dhcp, bridge: &str, dir: &Path) -> Vec<String> {
    let (server, prefix) = dhcp.server;
    let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0));
    let mut args = vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".into(),
        // No DNS service: only DHCP.
        "--port=0".into(),
        format!("--interface={bridge}"),
        "--bind-interfaces".into(),
        "--except-interface=lo".into(),
        "--dhcp-authoritative".into(),
        format!("--listen-address={server}"),
        format!("--dhcp-range={},{},{mask},1h", dhcp.range.0, dhcp.range.1),
        // An empty router option: no default route through the segment.
        "--dhcp-option=option:router".into(),
        format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()),
        "--pid-file=".into(),
        "--user=root".into(),
        "--log-dhcp".into(),
        format!("--log-facility={}", dir.join("dnsmasq.log").display()),
    ];
    if !dhcp.dns.is_empty() {
        let list: Vec<String> = dhcp.dns.iter().map(ToString::to_string).collect();
        args.push(format!("--dhcp-option=option:dns-server,{}", list.join(",")));
    }
    if let Some(first) = dhcp.search.first() {
        args.push(format!("--dhcp-option=option:domain-name,{first}"));
        args.push(format!(
            "--dhcp-option=option:domain-search,{}",
            dhcp.search.join(",")
        ));
    }
    if !dhcp.ntp.is_empty() {
        let list: Vec<String> = dhcp.ntp.iter().map(ToString::to_string).collect();
        args.push(format!("--dhcp-option=option:ntp-server,{}", list.join(",")));
    }
    args
}

/// chronyd's configuration as a server on the segment: it serves this machine's clock
/// (`local`, never synchronised from anywhere: the namespace has no uplink), answers everyone
/// on the segment, and opens no command socket. It runs with `-x`, so it never sets the clock.
pub const CHRONYD_SERVER_CONF: &str = "\
# The test network's NTP server: this machine's clock, served on the segment.
local stratum 3
allow all
cmdport 0
bindcmdaddress /
pidfile /run/chrony/testnet.pid
";

/// Unpack the layers of the release's `berth/ntp` image (from the image build's
/// `work/images/manifest.json` under `berth_out`) into `root`: the same Debian chronyd that
/// Berth runs, usable with `chroot` on any host.
pub fn unpack_ntp_image(berth_out: &Path, root: &Path) -> Result<()> {
    let images = berth_out.join("work/images");
    let manifest = images.join("manifest.json");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {} (made by `cargo xtask build`)", manifest.display()))?;
    let entries: serde_json::Value = serde_json::from_str(&text)?;
    let entry = entries
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| {
            e["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t.as_str().is_some_and(|t| t.starts_with("berth/ntp:")))
        })
        .with_context(|| format!("no berth/ntp image in {}", manifest.display()))?;
    std::fs::create_dir_all(root)?;
    for layer in entry["Layers"].as_array().into_iter().flatten() {
        let layer = images.join(layer.as_str().context("a layer that is not a path")?);
        let file = std::fs::File::open(&layer).with_context(|| format!("opening {}", layer.display()))?;
        let mut archive = tar::Archive::new(file);
        archive.set_preserve_permissions(true);
        archive
            .unpack(root)
            .with_context(|| format!("unpacking {}", layer.display()))?;
    }
    for dir in ["run/chrony", "var/lib/chrony"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::write(root.join("etc/chrony/testnet.conf"), CHRONYD_SERVER_CONF)?;
    Ok(())
}

impl TestNet {
    /// A namespace named for `test` and this process, with the loopback up and an empty
    /// bridge; `dir` holds dnsmasq's files.
    pub fn new(test: &str, dir: &Path) -> Result<Self> {
        let netns = netns_name(test, std::process::id());
        // A namespace left by an earlier run of this PID (a killed test) is replaced.
        let _ = ip(&["netns", "del", &netns]);
        ip(&["netns", "add", &netns])?;
        std::fs::create_dir_all(dir)?;
        let net = TestNet {
            netns,
            bridge: BRIDGE.to_string(),
            dir: dir.to_path_buf(),
            tag: test.to_string(),
            next_tap: AtomicUsize::new(0),
            dnsmasq: None,
            chronyd: None,
            files: Vec::new(),
            dirs: Vec::new(),
        };
        // From here on the drop guard removes the namespace should a step fail.
        net.ip(&["link", "set", "lo", "up"])?;
        net.ip(&[
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        net.ip(&["link", "set", BRIDGE, "up"])?;
        Ok(net)
    }

    /// `ip -n NETNS args...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", self.netns.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, program]);
        cmd
    }

    /// Serve DHCP on the segment: the bridge gets `dhcp.server`'s address, dnsmasq starts in
    /// the namespace. Fails if dnsmasq is missing or exits at once.
    pub fn serve_dhcp(&mut self, dhcp: &Dhcp) -> Result<()> {
        let (server, prefix) = dhcp.server;
        self.ip(&["addr", "add", &format!("{server}/{prefix}"), "dev", &self.bridge])?;
        let log = self.dir.join("dnsmasq.log");
        self.files.push(self.dir.join("dnsmasq.leases"));
        let stderr = std::fs::File::create(self.dir.join("dnsmasq.stderr"))?;
        self.files.push(self.dir.join("dnsmasq.stderr"));
        let mut child = self
            .command("dnsmasq")
            .args(dnsmasq_args(dhcp, &self.bridge, &self.dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .context("starting dnsmasq (Debian's dnsmasq-base is needed for DHCP on the test network)")?;
        eprintln!(
            "[{}] dnsmasq pid {} (log: {})",
            self.tag,
            child.id(),
            log.display()
        );
        // It binds at once or fails at once.
        std::thread::sleep(Duration::from_millis(300));
        if let Some(status) = child.try_wait()? {
            bail!(
                "dnsmasq exited ({status}): {}",
                std::fs::read_to_string(self.dir.join("dnsmasq.stderr")).unwrap_or_default()
            );
        }
        self.dnsmasq = Some(child);
        Ok(())
    }

    /// Serve NTP on the segment from `address` (added to the bridge if it is not the DHCP
    /// server's): Debian's chronyd from the release's ntp image, unpacked under this test
    /// network's directory and run chrooted in the namespace. Fails if it exits at once.
    pub fn serve_ntp(&mut self, berth_out: &Path, address: (Ipv4Addr, u8)) -> Result<()> {
        let (ip, prefix) = address;
        let cidr = format!("{ip}/{prefix}");
        if !self
            .ip(&["-br", "addr", "show", "dev", &self.bridge])?
            .contains(&cidr)
        {
            self.ip(&["addr", "add", &cidr, "dev", &self.bridge])?;
        }
        let root = self.dir.join("ntp-root");
        self.dirs.push(root.clone());
        unpack_ntp_image(berth_out, &root)?;
        let log = self.dir.join("chronyd.log");
        self.files.push(log.clone());
        let out = std::fs::File::create(&log)?;
        let root_text = root.to_string_lossy().into_owned();
        let mut child = self
            .command("chroot")
            .args([
                root_text.as_str(),
                "/usr/sbin/chronyd",
                "-d",
                "-x",
                "-f",
                "/etc/chrony/testnet.conf",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .context("starting chronyd in the test network")?;
        eprintln!(
            "[{}] chronyd pid {} (log: {})",
            self.tag,
            child.id(),
            log.display()
        );
        std::thread::sleep(Duration::from_millis(500));
        if let Some(status) = child.try_wait()? {
            bail!(
                "chronyd exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        self.chronyd = Some(child);
        Ok(())
    }

    /// The leases dnsmasq has handed out (its lease file).
    pub fn leases(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.leases")).unwrap_or_default()
    }

    /// Give `vm` a NIC on this segment with MAC address `mac` (after its user-network NIC, so
    /// the guest sees it as the second one). Returns the NIC; [`Machine::start`] moves its
    /// tap into the namespace.
    pub fn attach(&self, vm: &mut Vm, mac: &str) -> TapNic {
        let index = self.next_tap.fetch_add(1, Ordering::Relaxed);
        let nic = TapNic {
            id: format!("seg{index}"),
            ifname: tap_name(std::process::id(), index),
            mac: mac.to_string(),
            netns: self.netns.clone(),
            bridge: self.bridge.clone(),
        };
        vm.taps.push(nic.clone());
        nic
    }

    /// Set the guest's link of `nic` up or down (QEMU's `set_link`, seen by the guest as
    /// carrier loss).
    pub fn set_link(&self, machine: &Machine, nic: &TapNic, up: bool) -> Result<()> {
        machine.set_link(&nic.id, up)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for mut child in [self.dnsmasq.take(), self.chronyd.take()].into_iter().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting the namespace removes the bridge and any tap still in it.
        if let Err(e) = ip(&["netns", "del", &self.netns]) {
            eprintln!("[{}] removing the test network: {e}", self.tag);
        }
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Move a tap QEMU has just created into its namespace and bridge and set it up. Waits for
/// the device (QEMU creates it while starting); fails if it does not appear within `timeout`.
pub fn adopt_tap(nic: &TapNic, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while ip(&["link", "show", "dev", &nic.ifname]).is_err() {
        if Instant::now() > deadline {
            bail!(
                "QEMU did not create the tap device {} within {}s",
                nic.ifname,
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ip(&["link", "set", "dev", &nic.ifname, "netns", &nic.netns])?;
    let n = nic.netns.as_str();
    ip(&["-n", n, "link", "set", "dev", &nic.ifname, "master", &nic.bridge])?;
    ip(&["-n", n, "link", "set", "dev", &nic.ifname, "up"])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limits() {
        // PIDs go up to 2^22.
        let tap = tap_name(4_194_304, 99);
        assert_eq!(tap, "bt400000n99");
        assert!(tap.len() <= 15);
        assert_eq!(netns_name("net vm/3", 42), "berth-netvm3-42");
    }

    #[test]
    fn dnsmasq_serves_only_dhcp_on_the_bridge() {
        let dhcp = Dhcp {
            server: (Ipv4Addr::new(198, 18, 0, 1), 15),
            range: (Ipv4Addr::new(198, 18, 0, 100), Ipv4Addr::new(198, 18, 0, 150)),
            dns: vec![Ipv4Addr::new(198, 18, 0, 53), Ipv4Addr::new(198, 18, 0, 54)],
            search: vec!["netvm.test".into(), "lab.test".into()],
            ntp: vec![Ipv4Addr::new(198, 18, 0, 1)],
        };
        let args = dnsmasq_args(&dhcp, "br0", Path::new("/tmp/x"));
        for want in [
            "--port=0",
            "--interface=br0",
            "--bind-interfaces",
            "--dhcp-range=198.18.0.100,198.18.0.150,255.254.0.0,1h",
            "--dhcp-option=option:router",
            "--dhcp-option=option:dns-server,198.18.0.53,198.18.0.54",
            "--dhcp-option=option:domain-name,netvm.test",
            "--dhcp-option=option:domain-search,netvm.test,lab.test",
            "--dhcp-option=option:ntp-server,198.18.0.1",
            "--dhcp-leasefile=/tmp/x/dnsmasq.leases",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing: {args:?}");
        }
    }

    /// The real thing, without QEMU: a namespace with a bridge and dnsmasq comes up, a tap
    /// created in the default namespace is adopted into it, and the drop guard removes all.
    /// Skipped (with a note) where the test cannot be root.
    #[test]
    fn namespace_bridge_dhcp_and_tap_come_and_go() {
        if !nix_is_root() || !Path::new("/dev/net/tun").exists() {
            eprintln!("skipped: needs root and /dev/net/tun");
            return;
        }
        let dir = tempfile_dir();
        let mut net = TestNet::new("unit", &dir).unwrap();
        let netns = net.netns.clone();
        assert!(ip(&["netns", "list"]).unwrap().contains(&netns));
        let have_dnsmasq = Command::new("dnsmasq").arg("--version").output().is_ok();
        if have_dnsmasq {
            net.serve_dhcp(&Dhcp {
                server: (Ipv4Addr::new(198, 18, 0, 1), 24),
                range: (Ipv4Addr::new(198, 18, 0, 100), Ipv4Addr::new(198, 18, 0, 150)),
                dns: vec![],
                search: vec![],
                ntp: vec![],
            })
            .unwrap();
        }
        // A persistent tap stands in for QEMU's.
        let mut vm = Vm::new(crate::qemu::Boot::Cdrom("/nonexistent".into()));
        let nic = net.attach(&mut vm, "52:54:00:00:00:01");
        ip(&["tuntap", "add", "dev", &nic.ifname, "mode", "tap"]).unwrap();
        adopt_tap(&nic, Duration::from_secs(5)).unwrap();
        assert!(
            ip(&["link", "show", "dev", &nic.ifname]).is_err(),
            "tap left in the default namespace"
        );
        let link = net.ip(&["-d", "link", "show", "dev", &nic.ifname]).unwrap();
        assert!(link.contains("master br0"), "{link}");
        // Nothing of the segment is in the default namespace.
        assert!(!ip(&["-o", "addr"]).unwrap().contains("198.18.0.1/"));
        drop(net);
        assert!(!ip(&["netns", "list"]).unwrap().contains(&netns));
        assert!(ip(&["link", "show", "dev", &nic.ifname]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn nix_is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-testnet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
