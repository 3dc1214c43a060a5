//! The console container: `berth console-init` prepares it (engine and power commands, ssh host
//! keys kept on the state partition, sshd's configuration, the login user's keys, the login
//! banner) and then becomes `respawn`, keeping a getty on each console and sshd running.
#![forbid(unsafe_code)]

pub mod docker_client;
pub mod host_keys;
pub mod respawn;

pub use host_keys::{HOST_KEY_TYPES, HostKeyAction, LATE_HOST_KEY_TYPES, ensure_host_keys};

use berth_config::{Config, KernelCmdline};
use respawn::Entry;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The login user.
pub const USER: &str = "berth";
/// Host keys live here, on the state partition when there is one.
pub const HOST_KEY_DIR: &str = "/var/lib/berth/ssh";
const ENGINE_BIN: &str = "/usr/lib/berth/engine/bin";
const SSHD_CONFIG: &str = "/etc/ssh/sshd_config";

/// A console the kernel writes to, and whether a getty on it logs in automatically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Getty {
    pub tty: String,
    pub baud: Option<String>,
    pub autologin: bool,
}

/// Gettys from the kernel's `console=` parameters (the VGA console when there are none), with
/// automatic login where `berth.autologin` names the tty.
pub fn gettys(cmdline: &KernelCmdline, autologin: &[String]) -> Vec<Getty> {
    let mut out: Vec<Getty> = Vec::new();
    let consoles = cmdline.get_all("console");
    let consoles: Vec<&str> = if consoles.is_empty() {
        vec!["tty1"]
    } else {
        consoles
    };
    for console in consoles {
        let (tty, opts) = console.split_once(',').unwrap_or((console, ""));
        let tty = if tty == "tty0" { "tty1" } else { tty };
        if tty.is_empty() || out.iter().any(|g| g.tty == tty) {
            continue;
        }
        let baud: String = opts.chars().take_while(char::is_ascii_digit).collect();
        out.push(Getty {
            tty: tty.to_string(),
            baud: (!baud.is_empty()).then_some(baud),
            autologin: autologin.iter().any(|a| a == tty),
        });
    }
    out
}

impl Getty {
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec!["/sbin/agetty".to_string(), "--noclear".to_string()];
        if self.autologin {
            argv.push("--autologin".into());
            argv.push(USER.into());
        }
        if self.tty.starts_with("tty") && self.tty[3..].chars().all(|c| c.is_ascii_digit()) {
            argv.push(self.tty.clone());
            argv.push("linux".into());
        } else {
            argv.push("--keep-baud".into());
            argv.push(
                self.baud
                    .as_ref()
                    .map(|b| format!("{b},115200,38400,9600"))
                    .unwrap_or_else(|| "115200,38400,9600".into()),
            );
            argv.push(self.tty.clone());
            argv.push("vt220".into());
        }
        argv
    }
}

/// sshd's configuration from `berth.ssh`: keys only, no root login, the host keys `key_types`
/// of `key_dir` (on the state partition).
pub fn sshd_config(config: &Config, key_dir: &Path, key_types: &[&str]) -> String {
    let ssh = &config.berth.ssh;
    let mut out = String::from(
        "# Written by Berth's console-init from berth.ssh at every console start;\n\
         # change berth.ssh (berth config set) rather than this file.\n",
    );
    let _ = writeln!(out, "Port {}", ssh.port);
    if let Some(addr) = &ssh.listen_address {
        let _ = writeln!(out, "ListenAddress {addr}");
    }
    for t in key_types {
        let _ = writeln!(out, "HostKey {}/ssh_host_{t}_key", key_dir.display());
    }
    out.push_str(
        "PermitRootLogin no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitEmptyPasswords no\n\
         PubkeyAuthentication yes\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         UsePAM yes\n\
         UseDNS no\n\
         ClientAliveInterval 180\n\
         X11Forwarding no\n\
         PrintMotd yes\n\
         AcceptEnv LANG LC_*\n\
         PidFile /run/sshd.pid\n\
         Subsystem sftp /usr/lib/openssh/sftp-server\n",
    );
    out
}

/// The login banner (agetty expands `\n` to the hostname, `\l` to the tty, `\4` to the IPv4
/// address), with the boot's problems so that they are seen at the first login, and notes
/// such as running from RAM.
pub fn issue(version: &str, problems: &[String], notes: &[String]) -> String {
    let mut out = format!("\nBerth {version} \\n \\l  (IPv4: \\4)\n\n");
    for n in notes {
        let _ = writeln!(out, "Note: {n}");
    }
    if !notes.is_empty() {
        out.push('\n');
    }
    if !problems.is_empty() {
        out.push_str("Problems found during boot (details in /var/log/boot/):\n");
        for p in problems {
            let _ = writeln!(out, "  ! {p}");
        }
        out.push('\n');
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("ssh-keygen failed for the {0} host key: {1}")]
    Keygen(String, String),
}

/// Links that make the engine's CLI and Berth's commands available in the console.
pub fn command_links() -> Vec<(PathBuf, PathBuf)> {
    let berth = PathBuf::from("/usr/bin/berth");
    let mut links = vec![
        (
            PathBuf::from("/usr/local/bin/docker"),
            PathBuf::from(format!("{ENGINE_BIN}/docker")),
        ),
        (PathBuf::from("/usr/local/bin/system-docker"), berth.clone()),
    ];
    for name in ["reboot", "poweroff", "halt", "shutdown", "modprobe"] {
        links.push((PathBuf::from(format!("/usr/local/sbin/{name}")), berth.clone()));
    }
    links
}

/// Whether the state directory lives in RAM (tmpfs) rather than on a state partition.
fn running_from_ram() -> bool {
    nix::sys::statfs::statfs("/var/lib/berth")
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

/// The message of the day: the banner's problems and notes, without agetty's escapes.
pub fn motd(problems: &[String], notes: &[String]) -> String {
    let text = issue("", problems, notes);
    text.lines().skip(2).collect::<Vec<_>>().join("\n") + "\n"
}

use berth_runtime::paths::{SYSLOG_SOCKET, USER_DOCKER_SOCKET};

fn wait_for_socket(path: &Path, seconds: u64) -> bool {
    for _ in 0..seconds * 5 {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

/// Whether a datagram socket (rsyslog's) takes messages, within `seconds`.
fn wait_for_syslog(path: &Path, seconds: u64) -> bool {
    for _ in 0..seconds * 5 {
        if let Ok(socket) = std::os::unix::net::UnixDatagram::unbound()
            && socket.connect(path).is_ok()
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

/// The login user's home lives on the state partition (or in RAM): create it when missing.
fn ensure_home(user: &str) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
        return;
    };
    let Some(fields) = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[0] == user)
    else {
        return;
    };
    let home = Path::new(fields[5]);
    if home.exists() {
        return;
    }
    if std::fs::create_dir_all(home).is_ok() {
        let _ = std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o750));
        let uid = fields[2].parse::<u32>().ok().map(nix::unistd::Uid::from_raw);
        let gid = fields[3].parse::<u32>().ok().map(nix::unistd::Gid::from_raw);
        let _ = nix::unistd::chown(home, uid, gid);
        for skel in ["/etc/skel/.bashrc", "/etc/skel/.profile"] {
            let src = Path::new(skel);
            if let Some(name) = src.file_name() {
                let dst = home.join(name);
                if std::fs::copy(src, &dst).is_ok() {
                    let _ = nix::unistd::chown(&dst, uid, gid);
                }
            }
        }
    }
}

fn log_report(report: &berth_cloudinit::Report) {
    if let Ok(json) = serde_json::to_string(report) {
        eprintln!("console-init: {json}");
    }
}

/// `berth console-init`: prepare the console, then become respawn. Returns an exit code.
pub fn console_init(
    loaded: &berth_config::Loaded,
    cmdline: &KernelCmdline,
    problems: &[String],
    version: &str,
) -> i32 {
    // Before any thread starts, so that each inherits the mask (respawn::block_signals).
    respawn::block_signals();
    let config = &loaded.config;
    for (link, target) in command_links() {
        if let Some(parent) = link.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink(&target, &link) {
            eprintln!("console-init: linking {}: {e}", link.display());
        }
    }
    let _ = std::fs::create_dir_all("/run/sshd");
    let mut notes = Vec::new();
    // A slow key type that is missing is made beside the rest of the preparation, at the
    // lowest CPU priority (LATE_HOST_KEY_TYPES); sshd starts once it is there.
    let key_dir = Path::new(HOST_KEY_DIR);
    let (now, late): (Vec<&str>, Vec<&str>) = HOST_KEY_TYPES
        .iter()
        .partition(|t| !(LATE_HOST_KEY_TYPES.contains(t) && host_keys::missing(key_dir, t)));
    let late_keys = (!late.is_empty())
        .then(|| std::thread::spawn(move || host_keys::ensure_host_keys_of(key_dir, &late, true)));
    report_host_keys(host_keys::ensure_host_keys_of(key_dir, &now, false), &mut notes);
    // Logins (ssh and the consoles, through pam_env) get the proxies of berth.network.
    if let Err(e) = std::fs::write(
        "/etc/environment",
        berth_config::proxy::etc_environment(&config.berth.network),
    ) {
        eprintln!("console-init: writing /etc/environment: {e}");
    }
    ensure_home(USER);
    // cloud-init may have changed the hostname after this container's /etc/hosts was made.
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "berth".into());
    // Docker bind-mounts the container's /etc/hosts: it is rewritten in place, not renamed over.
    let _ = std::fs::write("/etc/hosts", berth_runtime::hosts::render(&hostname));
    // Users, ssh keys and write_files before anyone can log in; runcmd and scripts beside
    // the gettys and sshd, since they may take long.
    let ctx = berth_cloudinit::ConsoleContext::new("/", USER);
    let prepared = berth_cloudinit::prepare_console(config, &ctx);
    log_report(&prepared);
    let mut problems = problems.to_vec();
    for problem in docker_client::prepare(&config.berth, USER) {
        berth_runtime::problems::report(Path::new("/"), &problem);
        problems.push(problem);
    }
    problems.extend(
        prepared
            .failures()
            .map(|(item, detail)| format!("console: {item}: {detail}")),
    );
    let commands_config = config.clone();
    std::thread::spawn(move || {
        // runcmd usually drives docker: give User Docker the time to come up first.
        if !commands_config.runcmd.is_empty() && !wait_for_socket(Path::new(USER_DOCKER_SOCKET), 180) {
            eprintln!("console-init: User Docker is not answering; running runcmd anyway");
        }
        // The syslog service starts once User Docker answers (io.berth.after-user-docker):
        // give it the moment to make /dev/log, so that runcmd's `logger` lines are kept.
        if !commands_config.runcmd.is_empty()
            && commands_config
                .berth
                .services
                .keys()
                .any(|k| k.as_str() == "syslog")
            && !wait_for_syslog(Path::new(SYSLOG_SOCKET), 60)
        {
            eprintln!("console-init: the syslog service has no socket yet; running runcmd anyway");
        }
        let ctx = berth_cloudinit::ConsoleContext::new("/", USER);
        log_report(&berth_cloudinit::run_console_commands(&commands_config, &ctx));
    });
    if let Some(tz) = &config.timezone {
        let zone = Path::new("/usr/share/zoneinfo").join(tz.as_str());
        if zone.exists() {
            let _ = std::fs::remove_file("/etc/localtime");
            let _ = std::os::unix::fs::symlink(&zone, "/etc/localtime");
        } else {
            notes.push(timezone_note(
                tz.as_str(),
                Path::new("/usr/share/zoneinfo").is_dir(),
            ));
        }
    }
    if running_from_ram() {
        notes.push(
            "no state partition: running from RAM, nothing is kept across reboots \
             (label an ext4 disk BERTH_STATE to keep data)"
                .to_string(),
        );
    }
    let _ = std::fs::write("/etc/issue", issue(version, &problems, &notes));
    let _ = std::fs::write("/etc/motd", motd(&problems, &notes));
    let autologin: Vec<String> = config
        .berth
        .autologin
        .iter()
        .map(|t| t.as_str().to_string())
        .collect();
    let mut entries: Vec<Entry> = gettys(cmdline, &autologin)
        .into_iter()
        .filter(|g| Path::new("/dev").join(&g.tty).exists())
        .map(|g| Entry {
            name: format!("getty {}", g.tty),
            argv: g.argv(),
        })
        .collect();
    if let Some(late_keys) = late_keys {
        match late_keys.join() {
            Ok(result) => report_host_keys(result, &mut Vec::new()),
            Err(_) => eprintln!("console-init: generating the ssh host keys failed"),
        }
    }
    // The keys that exist: one that could not be made (reported above) is not served.
    let key_types: Vec<&str> = HOST_KEY_TYPES
        .iter()
        .copied()
        .filter(|t| !host_keys::missing(key_dir, t))
        .collect();
    write_sshd_config(config, &key_types);
    if config.berth.ssh.daemon {
        entries.push(Entry {
            name: "sshd".into(),
            argv: vec!["/usr/sbin/sshd".into(), "-D".into(), "-e".into()],
        });
    }
    eprintln!(
        "console-init: ready; supervising {}",
        entries
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    respawn::run(entries)
}

/// Log what was done to the host keys; a key that was replaced is also a note on the banner.
fn report_host_keys(result: Result<Vec<HostKeyAction>, ConsoleError>, notes: &mut Vec<String>) {
    match result {
        Ok(actions) => {
            for action in actions {
                eprintln!("console-init: {}", action.describe());
                if matches!(action, HostKeyAction::Replaced { .. }) {
                    notes.push(action.describe());
                }
            }
        }
        Err(e) => eprintln!("console-init: {e}"),
    }
}

/// `/etc/ssh/sshd_config` serving the host keys `key_types`, replaced whole (sshd may be
/// reading it).
fn write_sshd_config(config: &Config, key_types: &[&str]) {
    let text = sshd_config(config, Path::new(HOST_KEY_DIR), key_types);
    if let Err(e) = berth_config::write_atomically(Path::new(SSHD_CONFIG), text.as_bytes(), 0o644) {
        eprintln!("console-init: writing {SSHD_CONFIG}: {e}");
    }
}

/// Why `timezone: TZ` is not applied: the slim console has no time zone database.
fn timezone_note(tz: &str, have_database: bool) -> String {
    if have_database {
        format!("timezone {tz}: not in the time zone database (/usr/share/zoneinfo); the clock stays UTC")
    } else {
        format!(
            "timezone {tz}: the default console has no time zone database (tzdata); the clock \
             stays UTC here. The debian console has it: `sudo berth console switch debian`"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// runcmd waits for rsyslog's datagram socket: a socket that takes messages is found; a
    /// path with nothing bound on it is not.
    #[test]
    fn the_syslog_socket_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        assert!(!wait_for_syslog(&path, 1));
        let _bound = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        assert!(wait_for_syslog(&path, 1));
    }

    #[test]
    fn gettys_follow_the_kernel_consoles() {
        let cmdline = KernelCmdline::parse("console=tty1 console=ttyS0,115200n8 berth.autologin=ttyS0");
        let g = gettys(&cmdline, &["ttyS0".to_string()]);
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0],
            Getty {
                tty: "tty1".into(),
                baud: None,
                autologin: false
            }
        );
        assert_eq!(
            g[1],
            Getty {
                tty: "ttyS0".into(),
                baud: Some("115200".into()),
                autologin: true
            }
        );
        assert_eq!(
            g[1].argv(),
            [
                "/sbin/agetty",
                "--noclear",
                "--autologin",
                "berth",
                "--keep-baud",
                "115200,115200,38400,9600",
                "ttyS0",
                "vt220"
            ]
        );
        assert_eq!(g[0].argv(), ["/sbin/agetty", "--noclear", "tty1", "linux"]);
        let none = gettys(&KernelCmdline::parse("quiet"), &[]);
        assert_eq!(
            none,
            [Getty {
                tty: "tty1".into(),
                baud: None,
                autologin: false
            }]
        );
    }

    #[test]
    fn sshd_config_is_key_only() {
        let config = Config::default();
        insta::assert_snapshot!(sshd_config(&config, Path::new(HOST_KEY_DIR), HOST_KEY_TYPES));
        // A key type that could not be made is not served.
        let early = sshd_config(&config, Path::new(HOST_KEY_DIR), &["ed25519", "ecdsa"]);
        assert!(
            early.contains("ssh_host_ecdsa_key") && !early.contains("rsa"),
            "{early}"
        );
    }

    #[test]
    fn issue_lists_boot_problems() {
        let text = issue(
            "1.2.3",
            &["configuration: error: user-data.yml:3:1: bad".to_string()],
            &["running from RAM".to_string()],
        );
        assert!(text.contains("Berth 1.2.3"));
        assert!(text.contains("  ! configuration: error: user-data.yml:3:1: bad"));
        assert!(text.contains("Note: running from RAM"));
        assert!(!issue("1", &[], &[]).contains("Problems"));
        let motd = motd(&["x".to_string()], &[]);
        assert!(motd.contains("  ! x") && !motd.contains("\\l"), "{motd}");
    }

    #[test]
    fn a_timezone_without_a_database_says_where_it_is() {
        let note = timezone_note("Europe/Paris", false);
        assert!(
            note.contains("Europe/Paris") && note.contains("tzdata") && note.contains("switch debian"),
            "{note}"
        );
        assert!(timezone_note("Mars/Base", true).contains("not in the time zone database"));
    }
}
