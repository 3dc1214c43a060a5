//! Entry points of the system services that are Debian daemons (`ntp`: chrony, `syslog`:
//! rsyslog): each writes the daemon's configuration from `berth.ntp` / `berth.syslog`, then
//! `exec`s the daemon so that it receives the container's stop signal itself. The files are
//! rendered by pure functions (unit-tested); the entry points only write them and exec.

use berth_config::Loaded;
use berth_config::schema::ntp::{NtpConfig, NtpHost};
use berth_config::schema::syslog::{SyslogConfig, SyslogProtocol};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// chrony reads `*.sources` files from this directory (`sourcedir` in the image's chrony.conf).
pub const CHRONY_SOURCES: &str = "/etc/chrony/sources.d/berth.sources";
/// rsyslog includes `/etc/rsyslog.d/*.conf` (the image's rsyslog.conf).
pub const RSYSLOG_REMOTE: &str = "/etc/rsyslog.d/berth-remote.conf";
/// The directory holding rsyslog's local socket, shared with the containers that log.
pub const LOG_SOCKET_DIR: &str = "/run/berth/log";
/// rsyslog's local socket (`SysSock.Name` in the image's rsyslog.conf); `/dev/log` links here.
pub const LOG_SOCKET: &str = "/run/berth/log/log";

/// `berth.ntp.servers` as chrony `server` lines.
pub fn chrony_sources(ntp: &NtpConfig) -> String {
    let mut out = String::from("# Written by `berth ntp` from berth.ntp.servers at every start.\n");
    for server in &ntp.servers {
        let host = match &server.host {
            NtpHost::Name(name) => name.as_str().to_string(),
            NtpHost::Address(ip) => ip.to_string(),
        };
        match server.port {
            Some(port) => out.push_str(&format!("server {host} port {port} iburst\n")),
            None => out.push_str(&format!("server {host} iburst\n")),
        }
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

/// `berth ntp`: chrony's sources from the configuration, then chronyd in the foreground.
pub fn ntp_main(loaded: &Loaded) -> i32 {
    let sources = chrony_sources(&loaded.config.berth.ntp);
    if let Err(e) = write(CHRONY_SOURCES, &sources) {
        eprintln!("ntp: {e}");
        return 1;
    }
    eprintln!(
        "ntp: servers {}",
        sources.lines().skip(1).collect::<Vec<_>>().join("; ")
    );
    // -d: foreground, log to stderr (`system-docker logs ntp`); -u: drop to _chrony, keeping
    // only CAP_SYS_TIME (and what binding needs).
    exec(
        "/usr/sbin/chronyd",
        &["-d", "-u", "_chrony", "-f", "/etc/chrony/chrony.conf"],
    )
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
