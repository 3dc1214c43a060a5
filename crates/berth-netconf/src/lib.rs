//! Network configuration for the `network` system service. It applies `berth.network` over
//! netlink (bonds, bridges and VLANs created, slaves and ports enslaved, MTU, link up, static
//! IPv4/IPv6 addresses, default and extra routes, `pre_up`/`post_up` hooks; interfaces matched
//! by name, glob or `mac=`), hands the interfaces that want DHCP (RancherOS's default: `eth*`
//! and `en*`) to Debian's dhcpcd in manager mode, and keeps `/run/berth/resolv.conf` (which
//! the host's `/etc/resolv.conf` points to) from `berth.network.dns` and the leases.
//! `berth network apply` re-applies a changed configuration without a reboot ([`reload`]) and
//! `berth network status` shows the result ([`status`]).
#![forbid(unsafe_code)]

pub mod command;
pub mod error;
pub mod hooks;
pub mod leases;
pub mod modules;
pub mod netlink;
pub mod plan;
pub mod reload;
pub mod status;

pub use error::NetconfError;
pub use plan::{Action, Link, LinkPlan, Plan, Problem, Step, VirtualKind, VirtualLink, plan};

use berth_config::Config;
use berth_config::schema::network::NetworkConfig;
use std::fmt::Write as _;
use std::path::Path;

pub const RESOLV_CONF: &str = "/run/berth/resolv.conf";
/// dhcpcd runs this on every lease event; it is `berth` under another name.
pub const HOOK: &str = "/usr/local/sbin/berth-dhcpcd-hook";

/// What [`configure`] did: the plan, and the steps that failed.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub errors: Vec<NetconfError>,
}

/// Apply `network` to the calling thread's network namespace: read the links, plan, run every
/// link's steps. Only a failure to talk to the kernel at all is an `Err`; a step that fails is
/// in [`Outcome::errors`] and the other steps and links still run.
pub fn configure(network: &NetworkConfig) -> Result<Outcome, NetconfError> {
    with_netlink(|handle| async move {
        let (plan, mut errors) = create_and_plan(&handle, network).await?;
        errors.extend(netlink::apply(&handle, &plan).await);
        Ok(Outcome { plan, errors })
    })
}

/// Run `work` with a netlink handle on a runtime of its own (netconf and the CLI are
/// synchronous programs).
pub(crate) fn with_netlink<T, Fut>(work: impl FnOnce(rtnetlink::Handle) -> Fut) -> Result<T, NetconfError>
where
    Fut: std::future::Future<Output = Result<T, NetconfError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NetconfError::Runtime)?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetconfError::Connect)?;
        let task = tokio::spawn(connection);
        let result = work(handle).await;
        task.abort();
        result
    })
}

/// Create the bonds, bridges and VLANs the configuration asks for (their modules first), in
/// rounds (a VLAN on a new bond waits for the bond), and plan against the links that result.
pub async fn create_and_plan(
    handle: &rtnetlink::Handle,
    network: &NetworkConfig,
) -> Result<(Plan, Vec<NetconfError>), NetconfError> {
    let mut errors = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    // Bonds and bridges, then VLANs on them: two rounds create everything; one more finds none.
    for _ in 0..3 {
        let links = netlink::links(handle).await?;
        let plan = plan(network, &links);
        let todo: Vec<&VirtualLink> = plan.create.iter().filter(|v| !failed.contains(&v.name)).collect();
        if todo.is_empty() {
            return Ok((plan, errors));
        }
        for link in todo {
            if let Err(message) = modules::ensure(link.kind.module()) {
                eprintln!("netconf: {message}");
            }
            if let Err(e) = netlink::create(handle, link, &links).await {
                failed.push(link.name.clone());
                errors.push(NetconfError::Step {
                    key: link.key.clone(),
                    link: link.name.clone(),
                    action: format!("create {link}"),
                    source: netlink::io_error(e),
                });
            }
        }
    }
    let links = netlink::links(handle).await?;
    Ok((plan(network, &links), errors))
}

/// dhcpcd's configuration.
pub fn dhcpcd_conf(config: &Config, plan: &Plan) -> String {
    let mut out = String::from("# Written by Berth's netconf from berth.network.\n");
    let _ = writeln!(out, "allowinterfaces {}", plan.dhcp_allow.join(" "));
    if !plan.dhcp_deny.is_empty() {
        // Statically configured: a glob in allowinterfaces must not hand them to DHCP too.
        let _ = writeln!(out, "denyinterfaces {}", plan.dhcp_deny.join(" "));
    }
    let _ = writeln!(out, "timeout {}", config.berth.network.dhcp_timeout);
    // No udevd runs yet: dhcpcd's udev plugin would wait for it forever ("no valid interfaces").
    out.push_str("nodev\n");
    out.push_str(
        "hostname\n\
         clientid\n\
         persistent\n\
         option rapid_commit\n\
         option domain_name_servers, domain_name, domain_search, host_name, ntp_servers\n\
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

/// `berth netconf`: apply the static configuration, write dhcpcd's, and run dhcpcd (which
/// stays the service's process). A bad interface is reported and the others still come up: the
/// service never exits for one of them (it would be restarted into the same error).
pub fn main(loaded: &berth_config::Loaded) -> i32 {
    use std::os::unix::process::CommandExt;
    let config = &loaded.config;
    let network = &config.berth.network;
    // One line per start, so a log that holds several runs (cloud-init restarts the service
    // when user-data changes berth.network) shows where each begins.
    eprintln!("netconf: applying berth.network");
    let plan = match configure(network) {
        Ok(outcome) => {
            for problem in &outcome.plan.problems {
                eprintln!("netconf: {problem}");
            }
            for error in &outcome.errors {
                eprintln!("netconf: {error}");
            }
            // The console banner and `berth status` show them, not only this service's log.
            record_boot_problems(Path::new("/"), &outcome.plan, &outcome.errors);
            for link in &outcome.plan.links {
                let mode = if link.dhcp { "DHCP" } else { "static" };
                eprintln!("netconf: {} ({mode}) from {}", link.link.name, link.key);
            }
            // What Berth added, so that `berth network apply` can take away what a later
            // configuration drops.
            let state = reload::applied(&outcome.plan, &outcome.errors);
            if let Err(e) = reload::write_state(Path::new(reload::STATE_FILE), &state) {
                eprintln!("netconf: writing {}: {e}", reload::STATE_FILE);
            }
            outcome.plan
        }
        Err(e) => {
            // Without netlink nothing static can be applied; DHCP may still work.
            eprintln!("netconf: {e}");
            plan(network, &[])
        }
    };
    if let Err(e) = std::fs::write("/etc/dhcpcd.conf", dhcpcd_conf(config, &plan)) {
        eprintln!("netconf: writing /etc/dhcpcd.conf: {e}");
        return 1;
    }
    let _ = std::fs::create_dir_all("/usr/local/sbin");
    let _ = std::fs::remove_file(HOOK);
    if let Err(e) = std::os::unix::fs::symlink("/usr/bin/berth", HOOK) {
        eprintln!("netconf: linking {HOOK}: {e}");
    }
    // Static DNS applies at once, without waiting for a lease; a machine without DHCP gets its
    // resolv.conf from the configuration alone.
    if static_resolv_conf(network, &plan)
        && let Err(e) = write_resolv_conf(Path::new(RESOLV_CONF), &resolv_conf(config, &[], &[]))
    {
        eprintln!("netconf: writing {RESOLV_CONF}: {e}");
    }
    if plan.dhcp_allow.is_empty() {
        eprintln!("netconf: no interface uses DHCP");
        // The service is `restart: always`: stay, as dhcpcd would, until stopped.
        loop {
            std::thread::park();
        }
    }
    eprintln!("netconf: DHCP on {}", plan.dhcp_allow.join(" "));
    let err = std::process::Command::new("/usr/sbin/dhcpcd")
        .args(["--nobackground", "--config", "/etc/dhcpcd.conf", "--script", HOOK])
        .exec();
    eprintln!("netconf: cannot run dhcpcd: {err}");
    1
}

/// Add what went wrong (a bond slave or VLAN parent missing, a link the kernel would not
/// create, a refused step) to the boot problems under `root` (`/run/berth/boot-problems`),
/// each once: the service runs again when cloud-init changes the configuration.
pub fn record_boot_problems(root: &Path, plan: &Plan, errors: &[NetconfError]) {
    let lines = plan
        .problems
        .iter()
        .map(ToString::to_string)
        .chain(errors.iter().map(ToString::to_string));
    for line in lines {
        berth_runtime::problems::report(root, &format!("network: {line}"));
    }
}

/// Whether netconf writes resolv.conf from the configuration at its start: when name servers
/// are configured (they win over any lease), or when no interface uses DHCP (no lease will).
pub fn static_resolv_conf(network: &NetworkConfig, plan: &Plan) -> bool {
    let dns = &network.dns;
    !dns.nameservers.is_empty() || (plan.dhcp_allow.is_empty() && !dns.search.is_empty())
}

/// The dhcpcd hook, run once per event and interface with the lease in the environment
/// (`reason`, `interface`, `new_domain_name_servers`, `new_domain_search`, ...): record or drop
/// that interface's lease, then write resolv.conf from all current leases (see [`leases`]).
pub fn hook_main(loaded: &berth_config::Loaded) -> i32 {
    let reason = std::env::var("reason").unwrap_or_default();
    let event = leases::lease_event(&reason);
    if event == leases::LeaseEvent::Ignore {
        return 0;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let dir = Path::new(status::LEASES_DIR);
    let changed = match (event, std::env::var("interface")) {
        (leases::LeaseEvent::Drop, Ok(interface)) => leases::drop(dir, &interface),
        _ => match status::lease_from_env(&|k| std::env::var(k).ok(), now) {
            Some(lease) => leases::record(dir, &lease),
            None => Ok(()),
        },
    };
    if let Err(e) = changed {
        eprintln!(
            "berth-dhcpcd-hook: {reason}: updating the leases in {}: {e}",
            dir.display()
        );
    }
    let (servers, search) = leases::merged_dns(&status::read_leases(dir), now);
    if servers.is_empty() && loaded.config.berth.network.dns.nameservers.is_empty() {
        // No lease offers a name server any more and none is configured: keep the last file
        // rather than leave the machine without one until the next lease.
        return 0;
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
    fn a_missing_bond_slave_becomes_a_boot_problem_once() {
        let network: NetworkConfig = serde_json::from_value(serde_json::json!({"interfaces": {
            "eth7": {"bond": "bond0"},
            "bond0": {"address": "10.0.0.1/24"},
        }}))
        .unwrap();
        let root = tempfile::tempdir().unwrap();
        // bond0 exists (netconf created it); its slave does not.
        let links = [Link {
            index: 3,
            name: "bond0".into(),
            ..Link::default()
        }];
        let plan = plan(&network, &links);
        record_boot_problems(root.path(), &plan, &[]);
        // The service starts again (cloud-init's restart): the line is not repeated.
        record_boot_problems(root.path(), &plan, &[]);
        assert_eq!(
            berth_runtime::problems::read(root.path()),
            ["network: berth.network.interfaces.eth7: the bond slave eth7 does not exist"]
        );
    }

    #[test]
    fn defaults_run_dhcp_on_ethernet() {
        let config = Config::default();
        let conf = dhcpcd_conf(&config, &plan(&config.berth.network, &[]));
        assert_eq!(
            conf.lines().take(3).collect::<Vec<_>>(),
            [
                "# Written by Berth's netconf from berth.network.",
                "allowinterfaces eth* en*",
                "timeout 10"
            ]
        );
        // The lease's NTP servers reach the ntp service through the hook's lease record.
        assert!(conf.contains(", ntp_servers\n"), "{conf}");
    }

    #[test]
    fn static_interfaces_are_kept_from_dhcp_globs() {
        let mut config = Config::default();
        config.berth.network = serde_json::from_value(serde_json::json!({"interfaces": {
            "eth*": {"dhcp": true},
            "eth1": {"address": "192.0.2.10/24"},
        }}))
        .unwrap();
        let links = [
            Link {
                index: 2,
                name: "eth0".into(),
                mac: None,
                ..Link::default()
            },
            Link {
                index: 3,
                name: "eth1".into(),
                mac: None,
                ..Link::default()
            },
        ];
        let conf = dhcpcd_conf(&config, &plan(&config.berth.network, &links));
        assert!(
            conf.contains("allowinterfaces eth*\ndenyinterfaces eth1\n"),
            "{conf}"
        );
    }

    #[test]
    fn static_only_machines_get_resolv_conf_from_the_config() {
        let static_only: NetworkConfig = serde_json::from_value(serde_json::json!({
            "interfaces": {"eth0": {"address": "192.0.2.10/24"}},
            "dns": {"search": ["example.com"]},
        }))
        .unwrap();
        let links = [Link {
            index: 2,
            name: "eth0".into(),
            mac: None,
            ..Link::default()
        }];
        assert!(static_resolv_conf(&static_only, &plan(&static_only, &links)));
        // With DHCP and only a search list, the lease's servers are awaited (no server-less file).
        let mut dhcp = static_only.clone();
        dhcp.interfaces.clear();
        assert!(!static_resolv_conf(&dhcp, &plan(&dhcp, &links)));
        dhcp.dns.nameservers = vec!["192.0.2.53".parse().unwrap()];
        assert!(static_resolv_conf(&dhcp, &plan(&dhcp, &links)));
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
