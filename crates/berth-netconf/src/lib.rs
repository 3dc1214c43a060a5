//! Network configuration for the `network` system service. This first version hands the
//! matching interfaces (RancherOS's default: `eth*` with DHCP) to Debian's dhcpcd in manager
//! mode and keeps `/run/berth/resolv.conf` (which the host's `/etc/resolv.conf` points to) from
//! the leases and `berth.network.dns`. Static addresses, bonds, bridges and VLANs over netlink
//! are the network issue's work.
#![forbid(unsafe_code)]

use berth_config::Config;
use std::fmt::Write as _;
use std::path::Path;

pub const RESOLV_CONF: &str = "/run/berth/resolv.conf";
/// dhcpcd runs this on every lease event; it is `berth` under another name.
pub const HOOK: &str = "/usr/local/sbin/berth-dhcpcd-hook";

/// Interface patterns to run DHCP on (names or globs), from `berth.network.interfaces`.
pub fn dhcp_patterns(config: &Config) -> Vec<String> {
    let interfaces = &config.berth.network.interfaces;
    if interfaces.is_empty() {
        return vec!["eth*".to_string(), "en*".to_string()];
    }
    interfaces
        .iter()
        .filter(|(_, i)| i.dhcp.unwrap_or(i.address.is_none() && i.addresses.is_empty()))
        .map(|(name, i)| i.match_.clone().unwrap_or_else(|| name.clone()))
        .filter(|p| !p.starts_with("mac="))
        .collect()
}

/// dhcpcd's configuration.
pub fn dhcpcd_conf(config: &Config) -> String {
    let mut out = String::from("# Written by Berth's netconf from berth.network.\n");
    let patterns = dhcp_patterns(config);
    let _ = writeln!(out, "allowinterfaces {}", patterns.join(" "));
    let _ = writeln!(out, "timeout {}", config.berth.network.dhcp_timeout);
    // No udevd runs yet: dhcpcd's udev plugin would wait for it forever ("no valid interfaces").
    out.push_str("nodev\n");
    out.push_str(
        "hostname\n\
         clientid\n\
         persistent\n\
         option rapid_commit\n\
         option domain_name_servers, domain_name, domain_search, host_name\n\
         option classless_static_routes\n\
         option interface_mtu\n\
         require dhcp_server_identifier\n\
         slaac private\n\
         noipv4ll\n",
    );
    out
}

/// resolv.conf from the configured DNS (which wins) and what the lease offered.
pub fn resolv_conf(config: &Config, lease_servers: &[String], lease_search: &[String]) -> String {
    let dns = &config.berth.network.dns;
    let servers: Vec<String> = if dns.nameservers.is_empty() {
        lease_servers.to_vec()
    } else {
        dns.nameservers.iter().map(|s| s.to_string()).collect()
    };
    let search: Vec<String> = if dns.search.is_empty() {
        lease_search.to_vec()
    } else {
        dns.search.clone()
    };
    let mut out = String::from("# Written by Berth's netconf (berth.network.dns, then DHCP).\n");
    if !search.is_empty() {
        let _ = writeln!(out, "search {}", search.join(" "));
    }
    for s in servers {
        let _ = writeln!(out, "nameserver {s}");
    }
    out
}

/// Replace the contents of resolv.conf in place: containers bind-mount this file, and a bind
/// mount keeps the inode it was made with, so a rename would leave them the old contents.
pub fn write_resolv_conf(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// `berth netconf`: write the configuration and run dhcpcd (which stays the service's process).
pub fn main(loaded: &berth_config::Loaded) -> i32 {
    use std::os::unix::process::CommandExt;
    let config = &loaded.config;
    if let Err(e) = std::fs::write("/etc/dhcpcd.conf", dhcpcd_conf(config)) {
        eprintln!("netconf: writing /etc/dhcpcd.conf: {e}");
        return 1;
    }
    let _ = std::fs::create_dir_all("/usr/local/sbin");
    let _ = std::fs::remove_file(HOOK);
    if let Err(e) = std::os::unix::fs::symlink("/usr/bin/berth", HOOK) {
        eprintln!("netconf: linking {HOOK}: {e}");
    }
    // Static DNS applies at once, without waiting for a lease.
    if !config.berth.network.dns.nameservers.is_empty() {
        let _ = write_resolv_conf(Path::new(RESOLV_CONF), &resolv_conf(config, &[], &[]));
    }
    eprintln!("netconf: DHCP on {}", dhcp_patterns(config).join(" "));
    let err = std::process::Command::new("/usr/sbin/dhcpcd")
        .args(["--nobackground", "--config", "/etc/dhcpcd.conf", "--script", HOOK])
        .exec();
    eprintln!("netconf: cannot run dhcpcd: {err}");
    1
}

/// The dhcpcd hook: dhcpcd passes the lease in the environment (`reason`,
/// `new_domain_name_servers`, `new_domain_search`, `new_domain_name`).
pub fn hook_main(loaded: &berth_config::Loaded) -> i32 {
    let reason = std::env::var("reason").unwrap_or_default();
    if !matches!(
        reason.as_str(),
        "BOUND" | "RENEW" | "REBIND" | "REBOOT" | "STATIC" | "INFORM"
    ) {
        return 0;
    }
    let words = |var: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let servers = words("new_domain_name_servers");
    let mut search = words("new_domain_search");
    if search.is_empty() {
        search = words("new_domain_name");
    }
    let text = resolv_conf(&loaded.config, &servers, &search);
    match write_resolv_conf(Path::new(RESOLV_CONF), &text) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth-dhcpcd-hook: writing {RESOLV_CONF}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_keeps_its_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        write_resolv_conf(&path, "nameserver 10.0.2.3\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        write_resolv_conf(&path, "nameserver 192.0.2.1\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "nameserver 192.0.2.1\n");
    }

    #[test]
    fn defaults_run_dhcp_on_ethernet() {
        let config = Config::default();
        assert_eq!(dhcp_patterns(&config), ["eth*", "en*"]);
        let conf = dhcpcd_conf(&config);
        assert!(conf.contains("allowinterfaces eth* en*\n"), "{conf}");
        assert!(conf.contains("timeout 10\n"), "{conf}");
    }

    #[test]
    fn configured_dns_wins_over_the_lease() {
        let mut config = Config::default();
        assert_eq!(
            resolv_conf(&config, &["10.0.2.3".into()], &["lan".into()]),
            "# Written by Berth's netconf (berth.network.dns, then DHCP).\nsearch lan\nnameserver 10.0.2.3\n"
        );
        config.berth.network.dns.nameservers = vec!["192.0.2.53".parse().unwrap()];
        let text = resolv_conf(&config, &["10.0.2.3".into()], &[]);
        assert!(
            text.contains("nameserver 192.0.2.53\n") && !text.contains("10.0.2.3"),
            "{text}"
        );
    }
}
