//! `berth network status`: what the kernel has (links with their state, MAC, MTU, master and
//! addresses; the main routing table), what resolv.conf says, and the DHCP leases dhcpcd's
//! hook recorded. One [`NetworkStatus`] for both the table people read and `--format json`.

use crate::error::NetconfError;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, RouteMessageBuilder};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// Where dhcpcd's hook records each interface's lease, one JSON file per interface.
pub use berth_runtime::paths::LEASES_DIR;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkStatus {
    pub links: Vec<LinkStatus>,
    pub routes: Vec<RouteStatus>,
    pub dns: DnsStatus,
    pub leases: Vec<Lease>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub name: String,
    pub index: u32,
    /// The kernel's operational state: `UP`, `DOWN`, `LOWERLAYERDOWN`, `UNKNOWN`, ...
    pub state: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    /// `bond`, `bridge`, `vlan`, `veth`, ... for virtual links.
    pub kind: Option<String>,
    /// The bond or bridge it is a slave or port of.
    pub master: Option<String>,
    /// `192.0.2.10/24`, `fd00::10/64`, link-local ones included.
    pub addresses: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// `default` or a network.
    pub to: String,
    pub via: Option<String>,
    pub dev: Option<String>,
    pub metric: Option<u32>,
    /// Who added it: `boot`, `static`, `dhcp`, `kernel`, `ra`, ...
    pub protocol: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsStatus {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
}

/// A DHCP lease, as dhcpcd passed it to its hook.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub interface: String,
    pub address: Option<String>,
    pub routers: Vec<String>,
    pub nameservers: Vec<String>,
    /// NTP servers the lease offered (option 42); the ntp service adds them to chrony's.
    #[serde(default)]
    pub ntp_servers: Vec<String>,
    /// The search domains it offered (option 119, else the domain name, option 15).
    #[serde(default)]
    pub search: Vec<String>,
    /// Seconds the lease is valid for, from when it was obtained.
    pub lease_seconds: Option<u64>,
    /// When the hook saw it, seconds since the epoch.
    pub obtained: u64,
}

pub(crate) fn mac_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Read the status of the calling thread's network namespace; `root` is where resolv.conf and
/// the leases are read (`/` on a machine).
pub fn read(root: &Path) -> Result<NetworkStatus, NetconfError> {
    let mut status = crate::with_netlink(|handle| async move { kernel_status(&handle).await })?;
    let resolv =
        std::fs::read_to_string(root.join(crate::RESOLV_CONF.trim_start_matches('/'))).unwrap_or_default();
    status.dns = parse_resolv_conf(&resolv);
    status.leases = read_leases(&root.join(LEASES_DIR.trim_start_matches('/')));
    Ok(status)
}

async fn kernel_status(handle: &Handle) -> Result<NetworkStatus, NetconfError> {
    let list = |e| NetconfError::ListLinks(e);
    let mut status = NetworkStatus::default();
    let mut masters: Vec<(usize, u32)> = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(message) = stream.try_next().await.map_err(list)? {
        let mut link = LinkStatus {
            index: message.header.index,
            state: "UNKNOWN".to_string(),
            ..LinkStatus::default()
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(bytes) if bytes.len() == 6 => link.mac = Some(mac_text(bytes)),
                LinkAttribute::Mtu(mtu) => link.mtu = Some(*mtu),
                LinkAttribute::OperState(state) => link.state = state.to_string().to_uppercase(),
                LinkAttribute::Controller(index) => masters.push((status.links.len(), *index)),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        status.links.push(link);
    }
    for (at, index) in masters {
        let name = status
            .links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.clone());
        if let Some(link) = status.links.get_mut(at) {
            link.master = name;
        }
    }
    let mut addresses = handle.address().get().execute();
    while let Some(message) = addresses.try_next().await.map_err(list)? {
        let address = message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let (Some(ip), Some(link)) = (
            address,
            status.links.iter_mut().find(|l| l.index == message.header.index),
        ) {
            link.addresses.push(format!("{ip}/{}", message.header.prefix_len));
        }
    }
    let name_of =
        |index: u32, links: &[LinkStatus]| links.iter().find(|l| l.index == index).map(|l| l.name.clone());
    let v4 = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    let v6 = handle
        .route()
        .get(RouteMessageBuilder::<Ipv6Addr>::new().build())
        .execute();
    for mut stream in [v4.boxed(), v6.boxed()] {
        while let Some(message) = stream.try_next().await.map_err(list)? {
            let mut table = u32::from(message.header.table);
            let mut route = RouteStatus {
                protocol: message.header.protocol.to_string(),
                ..RouteStatus::default()
            };
            let mut destination = None;
            for attribute in &message.attributes {
                match attribute {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(a) => destination = address_text(a),
                    RouteAttribute::Gateway(a) => route.via = address_text(a),
                    RouteAttribute::Oif(index) => route.dev = name_of(*index, &status.links),
                    RouteAttribute::Priority(metric) => route.metric = Some(*metric),
                    _ => {}
                }
            }
            // The main table only: the local table is the kernel's own bookkeeping.
            if table != 254 {
                continue;
            }
            route.to = match destination {
                Some(d) => format!("{d}/{}", message.header.destination_prefix_length),
                None => "default".to_string(),
            };
            status.routes.push(route);
        }
    }
    Ok(status)
}

use futures_util::StreamExt as _;

fn address_text(address: &RouteAddress) -> Option<String> {
    match address {
        RouteAddress::Inet(a) => Some(a.to_string()),
        RouteAddress::Inet6(a) => Some(a.to_string()),
        _ => None,
    }
}

/// `nameserver` and `search` lines of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> DnsStatus {
    let mut dns = DnsStatus::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.nameservers.extend(words.next().map(str::to_string)),
            Some("search") => dns.search.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    dns
}

/// The leases recorded in `dir` (`<interface>.json`; not a temporary file that a writer killed
/// before its rename left behind).
pub(crate) fn read_leases(dir: &Path) -> Vec<Lease> {
    let mut leases: Vec<Lease> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.starts_with('.')
        })
        .filter_map(|entry| std::fs::read(entry.path()).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    leases.sort_by(|a: &Lease, b: &Lease| a.interface.cmp(&b.interface));
    leases
}

/// The lease dhcpcd describes in its hook's environment (`interface`, `new_ip_address`,
/// `new_subnet_cidr`, `new_routers`, `new_domain_name_servers`, `new_ntp_servers`,
/// `new_dhcp_lease_time`).
pub fn lease_from_env(var: &dyn Fn(&str) -> Option<String>, now: u64) -> Option<Lease> {
    let interface = var("interface")?;
    let words = |name: &str| -> Vec<String> {
        var(name)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let address = var("new_ip_address").map(|ip| match var("new_subnet_cidr") {
        Some(cidr) => format!("{ip}/{cidr}"),
        None => ip,
    });
    Some(Lease {
        interface,
        address,
        routers: words("new_routers"),
        nameservers: words("new_domain_name_servers"),
        ntp_servers: words("new_ntp_servers"),
        search: match words("new_domain_search") {
            search if search.is_empty() => words("new_domain_name"),
            search => search,
        },
        lease_seconds: var("new_dhcp_lease_time").and_then(|t| t.parse().ok()),
        obtained: now,
    })
}

/// The table people read, like `ip -br`: one line per link, then routes, DNS and leases.
pub fn render(status: &NetworkStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<14} {:<17} {:<6} {:<10} ADDRESSES",
        "LINK", "STATE", "MAC", "MTU", "MASTER"
    );
    for link in &status.links {
        let line = format!(
            "{:<16} {:<14} {:<17} {:<6} {:<10} {}",
            link.name,
            link.state,
            link.mac.as_deref().unwrap_or("-"),
            link.mtu.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            link.master.as_deref().unwrap_or("-"),
            link.addresses.join(" ")
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out.push_str("\nROUTES\n");
    for route in &status.routes {
        let mut line = route.to.clone();
        if let Some(via) = &route.via {
            let _ = write!(line, " via {via}");
        }
        if let Some(dev) = &route.dev {
            let _ = write!(line, " dev {dev}");
        }
        if let Some(metric) = route.metric {
            let _ = write!(line, " metric {metric}");
        }
        let _ = writeln!(out, "{line} proto {}", route.protocol);
    }
    out.push_str("\nDNS\n");
    for server in &status.dns.nameservers {
        let _ = writeln!(out, "nameserver {server}");
    }
    if !status.dns.search.is_empty() {
        let _ = writeln!(out, "search {}", status.dns.search.join(" "));
    }
    if !status.leases.is_empty() {
        out.push_str("\nDHCP LEASES\n");
        for lease in &status.leases {
            let _ = writeln!(
                out,
                "{} {} routers {} nameservers {} lease {}",
                lease.interface,
                lease.address.as_deref().unwrap_or("-"),
                if lease.routers.is_empty() {
                    "-".to_string()
                } else {
                    lease.routers.join(",")
                },
                if lease.nameservers.is_empty() {
                    "-".to_string()
                } else {
                    lease.nameservers.join(",")
                },
                lease
                    .lease_seconds
                    .map(|s| format!("{s}s"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_and_lease_environment_are_read() {
        let dns =
            parse_resolv_conf("# x\nsearch a.example b.example\nnameserver 10.0.2.3\nnameserver fd00::3\n");
        assert_eq!(dns.nameservers, ["10.0.2.3", "fd00::3"]);
        assert_eq!(dns.search, ["a.example", "b.example"]);
        let env = |k: &str| -> Option<String> {
            match k {
                "interface" => Some("eth0".into()),
                "new_ip_address" => Some("10.0.2.15".into()),
                "new_subnet_cidr" => Some("24".into()),
                "new_routers" => Some("10.0.2.2".into()),
                "new_dhcp_lease_time" => Some("86400".into()),
                "new_ntp_servers" => Some("192.0.2.123 192.0.2.124".into()),
                _ => None,
            }
        };
        let lease = lease_from_env(&env, 7).unwrap();
        assert_eq!(lease.address.as_deref(), Some("10.0.2.15/24"));
        assert_eq!(lease.routers, ["10.0.2.2"]);
        assert_eq!(lease.lease_seconds, Some(86400));
        assert_eq!(lease.ntp_servers, ["192.0.2.123", "192.0.2.124"]);
        assert!(
            render(&NetworkStatus {
                leases: vec![lease],
                ..Default::default()
            })
            .contains("eth0 10.0.2.15/24 routers 10.0.2.2 nameservers - lease 86400s")
        );
    }
}
