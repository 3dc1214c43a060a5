//! Entry points of the system services that are Debian daemons (`ntp`: chrony, `syslog`:
//! rsyslog): each writes the daemon's configuration from `berth.ntp` / `berth.syslog`, then
//! `exec`s the daemon so that it receives the container's stop signal itself. The files are
//! rendered by pure functions (unit-tested); the entry points only write them and exec.

use berth_config::Loaded;
use berth_config::schema::ntp::NtpConfig;
use berth_config::schema::syslog::{SyslogConfig, SyslogProtocol};
use berth_config::schema::values::Host;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// chrony reads `*.sources` files from this directory (`sourcedir` in the image's chrony.conf).
pub const CHRONY_SOURCES: &str = "/etc/chrony/sources.d/berth.sources";
/// The servers DHCP leases offered, in the same `sourcedir`; rewritten when the leases change.
pub const CHRONY_DHCP_SOURCES: &str = "/etc/chrony/sources.d/dhcp.sources";
/// How often the ntp service looks at the leases for changed NTP servers (milliseconds).
const LEASE_POLL_MS: u16 = 5000;
/// rsyslog includes `/etc/rsyslog.d/*.conf` (the image's rsyslog.conf).
pub const RSYSLOG_REMOTE: &str = "/etc/rsyslog.d/berth-remote.conf";
/// The directory holding rsyslog's local socket, shared with the containers that log.
pub const LOG_SOCKET_DIR: &str = "/run/berth/log";
/// rsyslog's local socket (`SysSock.Name` in the image's rsyslog.conf); `/dev/log` links here.
pub const LOG_SOCKET: &str = berth_runtime::paths::SYSLOG_SOCKET;

/// `berth.ntp.servers` as chrony `server` lines.
pub fn chrony_sources(ntp: &NtpConfig) -> String {
    let mut out = String::from("# Written by `berth ntp` from berth.ntp.servers at every start.\n");
    for server in &ntp.servers {
        let host = match server.host() {
            Host::Name(name) => name.as_str().to_string(),
            Host::Address(ip) => ip.to_string(),
        };
        match server.port() {
            Some(port) => out.push_str(&format!("server {host} port {port} iburst\n")),
            None => out.push_str(&format!("server {host} iburst\n")),
        }
    }
    out
}

/// The part of a lease record (`/run/berth/leases/<interface>.json`, written by netconf's
/// dhcpcd hook) the ntp service reads.
#[derive(serde::Deserialize)]
struct LeaseNtp {
    #[serde(default)]
    ntp_servers: Vec<String>,
}

/// The NTP servers the DHCP leases in `dir` offer: interfaces in name order, each server once.
/// Only IP addresses are kept (option 42 carries addresses), so a lease cannot put a chrony
/// directive into the configuration.
pub fn dhcp_ntp_servers(dir: &Path) -> Vec<IpAddr> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut servers = Vec::new();
    for path in files {
        let Some(lease) = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<LeaseNtp>(&bytes).ok())
        else {
            continue;
        };
        for ip in lease.ntp_servers.iter().filter_map(|s| s.parse::<IpAddr>().ok()) {
            if !servers.contains(&ip) {
                servers.push(ip);
            }
        }
    }
    servers
}

/// The DHCP-offered servers as chrony `server` lines.
pub fn chrony_dhcp_sources(servers: &[IpAddr]) -> String {
    let mut out = String::from("# Written by `berth ntp` from the NTP servers of the DHCP leases.\n");
    for ip in servers {
        out.push_str(&format!("server {ip} iburst\n"));
    }
    out
}

/// `berth.syslog.remote` as an rsyslog forwarding action (an empty file without a remote).
/// Messages wait in a bounded in-memory queue while the receiver is away, so a dead TCP
/// receiver neither blocks local logging nor grows memory without end.
pub fn rsyslog_remote(syslog: &SyslogConfig) -> String {
    let mut out = String::from("# Written by `berth syslog` from berth.syslog.remote at every start.\n");
    if let Some(remote) = &syslog.remote {
        let protocol = match remote.protocol {
            SyslogProtocol::Udp => "udp",
            SyslogProtocol::Tcp => "tcp",
        };
        out.push_str(&format!(
            "*.* action(type=\"omfwd\" target=\"{}\" port=\"{}\" protocol=\"{protocol}\"\n\
             \x20          queue.type=\"LinkedList\" queue.size=\"10000\" queue.discardMark=\"9000\"\n\
             \x20          action.resumeRetryCount=\"-1\")\n",
            remote.host, remote.port
        ));
    }
    out
}

fn write(path: &str, text: &str) -> Result<(), String> {
    berth_config::write_atomically(Path::new(path), text.as_bytes(), 0o644)
        .map_err(|e| format!("cannot write {path}: {e}"))
}

fn exec(program: &str, args: &[&str]) -> i32 {
    let err = Command::new(program).args(args).exec();
    eprintln!("cannot run {program}: {err}");
    127
}

/// `berth ntp`: chrony's sources from the configuration and the DHCP leases, then chronyd
/// in the foreground. With `berth.ntp.dhcp` (the default) this process stays chronyd's
/// parent: it passes the stop signal on, and when a lease brings other NTP servers it
/// rewrites their file and has chronyd reload its sources.
pub fn ntp_main(loaded: &Loaded) -> i32 {
    let ntp = &loaded.config.berth.ntp;
    let sources = chrony_sources(ntp);
    if let Err(e) = write(CHRONY_SOURCES, &sources) {
        eprintln!("ntp: {e}");
        return 1;
    }
    eprintln!(
        "ntp: servers {}",
        sources.lines().skip(1).collect::<Vec<_>>().join("; ")
    );
    let leases = Path::new(berth_runtime::paths::LEASES_DIR);
    let offered = if ntp.dhcp {
        dhcp_ntp_servers(leases)
    } else {
        Vec::new()
    };
    if let Err(e) = write_dhcp_sources(&offered) {
        eprintln!("ntp: {e}");
        return 1;
    }
    // -d: foreground, log to stderr (`system-docker logs ntp`); -u: drop to _chrony, keeping
    // only CAP_SYS_TIME (and what binding needs).
    let chronyd = [
        "/usr/sbin/chronyd",
        "-d",
        "-u",
        "_chrony",
        "-f",
        "/etc/chrony/chrony.conf",
    ];
    if !ntp.dhcp {
        return exec(chronyd[0], &chronyd[1..]);
    }
    supervise_chronyd(&chronyd, leases, offered)
}

fn write_dhcp_sources(servers: &[IpAddr]) -> Result<(), String> {
    write(CHRONY_DHCP_SOURCES, &chrony_dhcp_sources(servers))?;
    if !servers.is_empty() {
        let shown: Vec<String> = servers.iter().map(IpAddr::to_string).collect();
        eprintln!("ntp: servers from DHCP {}", shown.join(", "));
    }
    Ok(())
}

/// Run chronyd until it ends (its exit code is ours); SIGTERM/SIGINT are passed on, and the
/// leases are looked at every few seconds.
fn supervise_chronyd(argv: &[&str], leases: &Path, mut offered: Vec<IpAddr>) -> i32 {
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("ntp: cannot block signals: {e}");
    }
    let sfd = match SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(sfd) => sfd,
        Err(e) => {
            eprintln!("ntp: cannot read signals ({e}); DHCP servers are not followed");
            let _ = signals.thread_unblock();
            return exec(argv[0], &argv[1..]);
        }
    };
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]);
    berth_runtime::spawn::supervised(&mut cmd);
    let chronyd = match cmd.spawn() {
        Ok(child) => Pid::from_raw(child.id() as i32),
        Err(e) => {
            eprintln!("cannot run {}: {e}", argv[0]);
            return 127;
        }
    };
    loop {
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(LEASE_POLL_MS)).unwrap_or(0);
        if ready > 0 {
            while let Ok(Some(info)) = sfd.read_signal() {
                if matches!(
                    Signal::try_from(info.ssi_signo as i32),
                    Ok(Signal::SIGTERM | Signal::SIGINT)
                ) {
                    let _ = kill(chronyd, Signal::SIGTERM);
                }
            }
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == chronyd => return code,
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == chronyd => {
                    return 128 + signal as i32;
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let now = dhcp_ntp_servers(leases);
        if now != offered {
            if let Err(e) = write_dhcp_sources(&now) {
                eprintln!("ntp: {e}");
                continue;
            }
            offered = now;
            match Command::new("/usr/bin/chronyc")
                .args(["reload", "sources"])
                .output()
            {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "ntp: chronyc reload sources: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(e) => eprintln!("ntp: cannot run chronyc: {e}"),
            }
        }
    }
}

/// Make `/dev/log` a link to rsyslog's socket in its shared directory: the link survives
/// rsyslog restarts (the socket is created again in the same directory), where a bind mount of
/// the socket file itself would keep pointing at the old one.
fn link_dev_log(dev_log: &Path, target: &str) -> std::io::Result<()> {
    match std::fs::read_link(dev_log) {
        Ok(current) if current == Path::new(target) => return Ok(()),
        Ok(_) => std::fs::remove_file(dev_log)?,
        // Not a link (a socket left by another syslog daemon): replace it.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => std::fs::remove_file(dev_log)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(target, dev_log)
}

/// `berth syslog`: the forwarding file, the socket directory and `/dev/log`, then rsyslogd in
/// the foreground.
pub fn syslog_main(loaded: &Loaded) -> i32 {
    if let Err(e) = write(RSYSLOG_REMOTE, &rsyslog_remote(&loaded.config.berth.syslog)) {
        eprintln!("syslog: {e}");
        return 1;
    }
    if let Some(remote) = &loaded.config.berth.syslog.remote {
        eprintln!("syslog: forwarding to {remote}");
    }
    if let Err(e) = std::fs::create_dir_all(LOG_SOCKET_DIR) {
        eprintln!("syslog: cannot create {LOG_SOCKET_DIR}: {e}");
        return 1;
    }
    if let Err(e) = link_dev_log(Path::new("/dev/log"), LOG_SOCKET) {
        eprintln!("syslog: cannot link /dev/log to {LOG_SOCKET}: {e}");
    }
    // -n: foreground; -iNONE: no pid file.
    exec("/usr/sbin/rsyslogd", &["-n", "-iNONE"])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use berth_config::schema::ntp::NtpServer;

    #[test]
    fn chrony_gets_one_server_line_per_configured_server() {
        let ntp = NtpConfig {
            servers: ["127.0.0.1", "time.example.org:1123", "[2001:db8::1]:123"]
                .iter()
                .map(|s| s.parse::<NtpServer>().unwrap())
                .collect(),
            dhcp: true,
        };
        let text = chrony_sources(&ntp);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "server 127.0.0.1 iburst",
                "server time.example.org port 1123 iburst",
                "server 2001:db8::1 port 123 iburst"
            ]
        );
        assert!(chrony_sources(&NtpConfig::default()).contains("server 0.debian.pool.ntp.org iburst"));
    }

    #[test]
    fn dhcp_servers_come_from_the_lease_records_as_addresses_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(dhcp_ntp_servers(&dir.path().join("missing")).is_empty());
        std::fs::write(
            dir.path().join("eth1.json"),
            r#"{"interface":"eth1","ntp_servers":["192.0.2.2","192.0.2.1"],"obtained":1}"#,
        )
        .unwrap();
        // A lease record from before NTP servers were recorded, a directive smuggled in as a
        // server, a duplicate, an IPv6 address, and a file that is not a lease.
        std::fs::write(
            dir.path().join("eth0.json"),
            r#"{"interface":"eth0","ntp_servers":["192.0.2.1","x iburst\nallow all","2001:db8::7"]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("eth2.json"), r#"{"interface":"eth2"}"#).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "192.0.2.9").unwrap();
        let servers = dhcp_ntp_servers(dir.path());
        let shown: Vec<String> = servers.iter().map(IpAddr::to_string).collect();
        assert_eq!(shown, ["192.0.2.1", "2001:db8::7", "192.0.2.2"]);
        assert_eq!(
            chrony_dhcp_sources(&servers).lines().skip(1).collect::<Vec<_>>(),
            [
                "server 192.0.2.1 iburst",
                "server 2001:db8::7 iburst",
                "server 192.0.2.2 iburst"
            ]
        );
    }

    #[test]
    fn rsyslog_forwards_only_when_a_remote_is_set() {
        assert!(!rsyslog_remote(&SyslogConfig::default()).contains("omfwd"));
        let syslog = SyslogConfig {
            remote: Some("tcp://[2001:db8::1]:601".parse().unwrap()),
        };
        let text = rsyslog_remote(&syslog);
        assert!(
            text.contains("target=\"2001:db8::1\" port=\"601\" protocol=\"tcp\""),
            "{text}"
        );
        assert!(text.contains("queue.size=\"10000\""), "{text}");
    }

    #[test]
    fn dev_log_becomes_a_link_and_stays_one() {
        let dir = tempfile::tempdir().unwrap();
        let dev_log = dir.path().join("log");
        // A socket file left behind by another daemon: replaced by the link.
        std::fs::write(&dev_log, b"").unwrap();
        link_dev_log(&dev_log, LOG_SOCKET).unwrap();
        assert_eq!(std::fs::read_link(&dev_log).unwrap(), Path::new(LOG_SOCKET));
        // A second start finds it in place.
        link_dev_log(&dev_log, LOG_SOCKET).unwrap();
        assert_eq!(std::fs::read_link(&dev_log).unwrap(), Path::new(LOG_SOCKET));
        // A link elsewhere is corrected.
        std::fs::remove_file(&dev_log).unwrap();
        std::os::unix::fs::symlink("/elsewhere", &dev_log).unwrap();
        link_dev_log(&dev_log, LOG_SOCKET).unwrap();
        assert_eq!(std::fs::read_link(&dev_log).unwrap(), Path::new(LOG_SOCKET));
    }
}
