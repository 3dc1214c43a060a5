//! OpenStack's `network_data.json`: `links` (physical, bond, VLAN), `networks` (addresses or
//! DHCP on a link) and `services` (DNS).

use super::{Translated, bond_option, cidr, route_to, text};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NetworkData {
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    networks: Vec<Network>,
    #[serde(default)]
    services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Link {
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    ethernet_mac_address: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    bond_links: Vec<String>,
    #[serde(default)]
    vlan_link: Option<String>,
    #[serde(default)]
    vlan_id: Option<u64>,
    /// `bond_mode`, `bond_miimon`, `bond_xmit_hash_policy`, `vif_id`, ...
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Network {
    #[serde(default)]
    link: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    ip_address: Option<String>,
    #[serde(default)]
    netmask: Option<String>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Route {
    network: String,
    #[serde(default)]
    netmask: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Service {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    address: Option<String>,
}

/// OpenStack's informational link fields, not configuration.
const INFORMATIONAL: &[&str] = &["vif_id", "vlan_mac_address", "network_id", "name"];

pub(crate) fn translate(data: &NetworkData) -> Translated {
    let mut out = Translated::default();
    for (i, link) in data.links.iter().enumerate() {
        let at = format!("links[{i}]");
        let entry = out.entry(&link.id);
        if let Some(mtu) = link.mtu {
            entry.insert("mtu".into(), Value::from(mtu));
        }
        match link.kind.as_str() {
            "bond" => {
                for slave in &link.bond_links {
                    out.entry(slave)
                        .insert("bond".into(), Value::String(link.id.clone()));
                }
                let mut opts = Map::new();
                for (key, value) in &link.other {
                    if !key.starts_with("bond_") {
                        continue;
                    }
                    match bond_option(key) {
                        Some(opt) => {
                            opts.insert(opt.into(), Value::String(text(value)));
                        }
                        None => out.warn(&format!("{at}.{key}"), "not a bond option Berth sets; ignored"),
                    }
                }
                if !opts.is_empty() {
                    out.entry(&link.id)
                        .insert("bond_opts".into(), Value::Object(opts));
                }
            }
            "vlan" => match (&link.vlan_link, link.vlan_id) {
                (Some(parent), Some(id)) => out.add_vlan(parent, id, &link.id),
                _ => out.warn(&at, "a VLAN link needs vlan_link and vlan_id; ignored"),
            },
            // phy, ovs, bridge, tap, vif, hw_veb, ...: the guest sees a NIC.
            _ => {
                if let Some(mac) = &link.ethernet_mac_address {
                    out.entry(&link.id).insert(
                        "match".into(),
                        Value::String(format!("mac={}", mac.to_ascii_lowercase())),
                    );
                } else {
                    out.warn(
                        &format!("{at}.ethernet_mac_address"),
                        "missing: the link's id is used as its name",
                    );
                }
            }
        }
        for key in link.other.keys() {
            if !key.starts_with("bond_") && !INFORMATIONAL.contains(&key.as_str()) {
                out.warn(&format!("{at}.{key}"), "not supported by berth.network; ignored");
            }
        }
    }
    for (i, network) in data.networks.iter().enumerate() {
        let at = format!("networks[{i}]");
        if !out.interfaces.contains_key(&network.link) {
            out.warn(
                &format!("{at}.link"),
                format!("no link has the id {:?}; ignored", network.link),
            );
            continue;
        }
        let key = network.link.clone();
        match network.kind.as_str() {
            "ipv4" | "ipv6" => match network
                .ip_address
                .as_deref()
                .map(|a| cidr(a, network.netmask.as_deref()))
            {
                Some(Ok(address)) => out.add_address(&key, address),
                Some(Err(e)) => out.warn(&format!("{at}.ip_address"), format!("{e}; ignored")),
                None => out.warn(&format!("{at}.ip_address"), "missing; ignored"),
            },
            "ipv4_dhcp" | "ipv6_dhcp" | "ipv6_slaac" | "ipv6_dhcpv6-stateless" | "ipv6_dhcpv6-stateful" => {
                out.set_dhcp(&key, true)
            }
            other => out.warn(
                &format!("{at}.type"),
                format!("{other:?} is not supported by berth.network; ignored"),
            ),
        }
        for (j, route) in network.routes.iter().enumerate() {
            let at = format!("{at}.routes[{j}]");
            match route_to(&route.network, route.netmask.as_deref()) {
                Ok(to) if to == "default" => match &route.gateway {
                    Some(gw) => out.set_gateway(&key, gw, &at),
                    None => out.warn(&at, "a default route needs a gateway; ignored"),
                },
                Ok(to) => out.add_route(&key, to, route.gateway.clone(), None),
                Err(e) => out.warn(&at, format!("{e}; ignored")),
            }
        }
        let servers: Vec<String> = dns_servers(&network.services);
        out.add_nameservers(&servers);
    }
    let servers = dns_servers(&data.services);
    out.add_nameservers(&servers);
    out.finish()
}

fn dns_servers(services: &[Service]) -> Vec<String> {
    services
        .iter()
        .filter(|s| s.kind == "dns")
        .filter_map(|s| s.address.clone())
        .collect()
}
