//! cloud-init's network configuration version 1: a list of `physical`, `bond`, `vlan`,
//! `bridge`, `nameserver` and `route` items, addresses in `subnets`.

use super::{OneOrMany, Translated, bond_option, cidr, route_to, text, unknown_keys};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
pub(crate) struct Doc {
    #[serde(default)]
    config: Vec<Item>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Item {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    mac_address: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    subnets: Vec<Subnet>,
    #[serde(default)]
    bond_interfaces: Vec<String>,
    #[serde(default)]
    bridge_interfaces: Vec<String>,
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    vlan_link: Option<String>,
    #[serde(default)]
    vlan_id: Option<u64>,
    // `nameserver`
    #[serde(default)]
    address: OneOrMany,
    #[serde(default)]
    search: OneOrMany,
    /// A `route` item's fields (taken before `other` sees them).
    #[serde(flatten)]
    route: Route,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Subnet {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    netmask: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    dns_nameservers: OneOrMany,
    #[serde(default)]
    dns_search: OneOrMany,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Route {
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    netmask: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    metric: Option<u32>,
}

pub(crate) fn translate(doc: Doc) -> Translated {
    let mut out = Translated::default();
    // Global routes are placed on the interface whose subnet holds their gateway: after all.
    let mut routes = Vec::new();
    for (i, item) in doc.config.iter().enumerate() {
        let at = format!("config[{i}]");
        match item.kind.as_str() {
            "nameserver" => {
                out.add_nameservers(&item.address.to_vec());
                out.add_search(&item.search.to_vec());
                continue;
            }
            "route" => {
                routes.push((at, item));
                continue;
            }
            "physical" | "bond" | "vlan" | "bridge" => {}
            other => {
                out.warn(
                    &format!("{at}.type"),
                    format!("{other:?} is not supported by berth.network; ignored"),
                );
                continue;
            }
        }
        let Some(name) = item.name.clone() else {
            out.warn(&format!("{at}.name"), "missing; the item is ignored");
            continue;
        };
        let entry = out.entry(&name);
        if let (Some(mac), "physical") = (&item.mac_address, item.kind.as_str()) {
            entry.insert(
                "match".into(),
                Value::String(format!("mac={}", mac.to_ascii_lowercase())),
            );
        }
        if let Some(mtu) = item.mtu {
            entry.insert("mtu".into(), Value::from(mtu));
        }
        match item.kind.as_str() {
            "bond" => {
                for slave in &item.bond_interfaces {
                    out.entry(slave)
                        .insert("bond".into(), Value::String(name.clone()));
                }
                let mut opts = Map::new();
                for (key, value) in &item.params {
                    match bond_option(key) {
                        Some(opt) => {
                            opts.insert(opt.into(), Value::String(text(value)));
                        }
                        None => out.warn(
                            &format!("{at}.params.{key}"),
                            "not a bond option Berth sets; ignored",
                        ),
                    }
                }
                if !opts.is_empty() {
                    out.entry(&name).insert("bond_opts".into(), Value::Object(opts));
                }
            }
            "bridge" => {
                out.entry(&name).insert("bridge".into(), Value::Bool(true));
                for port in &item.bridge_interfaces {
                    out.entry(port)
                        .insert("bridge".into(), Value::String(name.clone()));
                }
                for key in item.params.keys() {
                    out.warn(
                        &format!("{at}.params.{key}"),
                        "bridge parameters are not supported by berth.network; ignored",
                    );
                }
            }
            "vlan" => match (&item.vlan_link, item.vlan_id) {
                (Some(link), Some(id)) => out.add_vlan(link, id, &name),
                _ => out.warn(&at, "a vlan needs vlan_link and vlan_id; ignored"),
            },
            _ => {}
        }
        for (j, subnet) in item.subnets.iter().enumerate() {
            subnet_into(&mut out, &name, &format!("{at}.subnets[{j}]"), subnet);
        }
        let known_elsewhere = ["id"];
        let extra: Map<String, Value> = item
            .other
            .iter()
            .filter(|(k, _)| !known_elsewhere.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        unknown_keys(&mut out, &at, &extra);
    }
    for (at, item) in routes {
        let item = &item.route;
        let Some(destination) = item.destination.as_deref().or(item.network.as_deref()) else {
            out.warn(&at, "a route needs a destination; ignored");
            continue;
        };
        let Some(gateway) = item.gateway.clone() else {
            out.warn(
                &at,
                "a route without a gateway has no interface to go on; ignored",
            );
            continue;
        };
        match (
            route_to(destination, item.netmask.as_deref()),
            interface_for(&out, &gateway),
        ) {
            (Err(e), _) => out.warn(&format!("{at}.destination"), e),
            (_, None) => out.warn(
                &format!("{at}.gateway"),
                format!("no interface has a subnet that holds {gateway}; ignored"),
            ),
            (Ok(to), Some(key)) if to == "default" => out.set_gateway(&key, &gateway, &at),
            (Ok(to), Some(key)) => out.add_route(&key, to, Some(gateway), item.metric),
        }
    }
    out.finish()
}

fn subnet_into(out: &mut Translated, name: &str, at: &str, subnet: &Subnet) {
    match subnet.kind.as_str() {
        "dhcp" | "dhcp4" | "dhcp6" | "ipv6_dhcpv6-stateful" | "ipv6_dhcpv6-stateless" | "ipv6_slaac" => {
            out.set_dhcp(name, true);
        }
        "static" | "static6" => match subnet
            .address
            .as_deref()
            .map(|a| cidr(a, subnet.netmask.as_deref()))
        {
            Some(Ok(address)) => out.add_address(name, address),
            Some(Err(e)) => out.warn(&format!("{at}.address"), format!("{e}; ignored")),
            None => out.warn(
                &format!("{at}.address"),
                "a static subnet needs an address; ignored",
            ),
        },
        "manual" => {}
        other => out.warn(
            &format!("{at}.type"),
            format!("{other:?} is not supported by berth.network; ignored"),
        ),
    }
    if let Some(gateway) = &subnet.gateway {
        out.set_gateway(name, gateway, &format!("{at}.gateway"));
    }
    out.add_nameservers(&subnet.dns_nameservers.to_vec());
    out.add_search(&subnet.dns_search.to_vec());
    for (k, route) in subnet.routes.iter().enumerate() {
        let at = format!("{at}.routes[{k}]");
        let Some(destination) = route.destination.as_deref().or(route.network.as_deref()) else {
            out.warn(&at, "a route needs a network or destination; ignored");
            continue;
        };
        match route_to(destination, route.netmask.as_deref()) {
            Ok(to) if to == "default" => match &route.gateway {
                Some(gw) => out.set_gateway(name, gw, &at),
                None => out.warn(&at, "a default route needs a gateway; ignored"),
            },
            Ok(to) => out.add_route(name, to, route.gateway.clone(), route.metric),
            Err(e) => out.warn(&at, format!("{e}; ignored")),
        }
    }
    unknown_keys(out, at, &subnet.other);
}

/// The interface with a static address whose network holds `gateway`.
fn interface_for(out: &Translated, gateway: &str) -> Option<String> {
    let gateway: std::net::IpAddr = gateway.parse().ok()?;
    out.interfaces.iter().find_map(|(key, entry)| {
        let mut cidrs: Vec<&str> = entry.get("address").and_then(Value::as_str).into_iter().collect();
        if let Some(Value::Array(list)) = entry.get("addresses") {
            cidrs.extend(list.iter().filter_map(Value::as_str));
        }
        cidrs
            .iter()
            .any(|c| super::contains(c, gateway))
            .then(|| key.clone())
    })
}
