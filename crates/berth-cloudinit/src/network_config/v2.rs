//! cloud-init's network configuration version 2 (netplan's format): `ethernets`, `bonds`,
//! `bridges` and `vlans`, each a map of IDs.

use super::{Translated, bond_option, route_to, text, unknown_keys};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
pub(crate) struct Doc {
    #[serde(default)]
    ethernets: IndexMap<String, Device>,
    #[serde(default)]
    bonds: IndexMap<String, Device>,
    #[serde(default)]
    bridges: IndexMap<String, Device>,
    #[serde(default)]
    vlans: IndexMap<String, Device>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Device {
    #[serde(rename = "match", default)]
    match_: Option<Match>,
    #[serde(default)]
    set_name: Option<String>,
    #[serde(default)]
    dhcp4: Option<bool>,
    #[serde(default)]
    dhcp6: Option<bool>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    gateway4: Option<String>,
    #[serde(default)]
    gateway6: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    nameservers: Nameservers,
    #[serde(default)]
    routes: Vec<Route>,
    // bonds, bridges
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    // vlans
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    link: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Match {
    #[serde(default)]
    macaddress: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Nameservers {
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    search: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Route {
    to: String,
    #[serde(default)]
    via: Option<String>,
    #[serde(default)]
    metric: Option<u32>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

pub(crate) fn translate(doc: Doc) -> Translated {
    let mut out = Translated::default();
    let extra: Map<String, Value> = doc
        .other
        .iter()
        .filter(|(k, _)| !["version", "renderer"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for key in extra.keys() {
        out.warn(key, "not supported by berth.network; ignored");
    }
    // An ethernet's ID is a label; its entry is keyed by `set-name` (or the ID) and matches
    // the link as `match` says. Bonds, bridges and VLANs are keyed by their IDs (their names).
    let mut keys: IndexMap<String, String> = IndexMap::new();
    for (id, dev) in &doc.ethernets {
        let key = dev.set_name.clone().unwrap_or_else(|| id.clone());
        keys.insert(id.clone(), key.clone());
        let at = format!("ethernets.{id}");
        let entry = out.entry(&key);
        if let Some(m) = &dev.match_ {
            match (&m.macaddress, &m.name) {
                (Some(mac), _) => {
                    entry.insert(
                        "match".into(),
                        Value::String(format!("mac={}", mac.to_ascii_lowercase())),
                    );
                }
                (None, Some(name)) => {
                    entry.insert("match".into(), Value::String(name.clone()));
                }
                (None, None) => {}
            }
            if m.macaddress.is_some() && m.name.is_some() {
                out.warn(
                    &format!("{at}.match.name"),
                    "Berth matches by one of name and MAC address: the MAC address is used",
                );
            }
            unknown_keys(&mut out, &format!("{at}.match"), &m.other);
        }
        if dev.set_name.is_some() {
            out.warn(
                &format!("{at}.set-name"),
                "Berth does not rename links: the name is the entry's key only",
            );
        }
        device_into(&mut out, &key, &at, dev);
    }
    let key_of =
        |keys: &IndexMap<String, String>, id: &str| keys.get(id).cloned().unwrap_or_else(|| id.to_string());
    for (name, dev) in &doc.bonds {
        let at = format!("bonds.{name}");
        keys.insert(name.clone(), name.clone());
        for slave in &dev.interfaces {
            let slave = key_of(&keys, slave);
            out.entry(&slave)
                .insert("bond".into(), Value::String(name.clone()));
        }
        let mut opts = Map::new();
        for (param, value) in &dev.parameters {
            match bond_option(param) {
                Some(opt) => {
                    let value = match (opt, value) {
                        ("primary", Value::String(id)) => Value::String(key_of(&keys, id)),
                        _ => Value::String(text(value)),
                    };
                    opts.insert(opt.into(), value);
                }
                None => out.warn(
                    &format!("{at}.parameters.{param}"),
                    "not a bond option Berth sets; ignored",
                ),
            }
        }
        if !opts.is_empty() {
            out.entry(name).insert("bond_opts".into(), Value::Object(opts));
        }
        device_into(&mut out, name, &at, dev);
    }
    for (name, dev) in &doc.bridges {
        let at = format!("bridges.{name}");
        keys.insert(name.clone(), name.clone());
        out.entry(name).insert("bridge".into(), Value::Bool(true));
        for port in &dev.interfaces {
            let port = key_of(&keys, port);
            out.entry(&port)
                .insert("bridge".into(), Value::String(name.clone()));
        }
        for param in dev.parameters.keys() {
            out.warn(
                &format!("{at}.parameters.{param}"),
                "bridge parameters are not supported by berth.network; ignored",
            );
        }
        device_into(&mut out, name, &at, dev);
    }
    for (name, dev) in &doc.vlans {
        let at = format!("vlans.{name}");
        match (&dev.link, dev.id) {
            (Some(link), Some(id)) => {
                let parent = key_of(&keys, link);
                out.add_vlan(&parent, id, name);
                out.entry(name);
                device_into(&mut out, name, &at, dev);
            }
            _ => out.warn(&at, "a VLAN needs link and id; ignored"),
        }
    }
    out.finish()
}

/// What every kind of device has: DHCP, addresses, gateways, MTU, name servers, routes.
fn device_into(out: &mut Translated, key: &str, at: &str, dev: &Device) {
    if dev.dhcp4 == Some(true) || dev.dhcp6 == Some(true) {
        out.set_dhcp(key, true);
    } else if dev.addresses.is_empty() && (dev.dhcp4.is_some() || dev.dhcp6.is_some()) {
        out.set_dhcp(key, false);
    }
    for (i, address) in dev.addresses.iter().enumerate() {
        if address.contains('/') {
            out.add_address(key, address.clone());
        } else {
            out.warn(
                &format!("{at}.addresses[{i}]"),
                format!("{address} has no prefix length; ignored"),
            );
        }
    }
    if let Some(mtu) = dev.mtu {
        out.entry(key).insert("mtu".into(), Value::from(mtu));
    }
    if let Some(gw) = &dev.gateway4 {
        out.set_gateway(key, gw, &format!("{at}.gateway4"));
    }
    if let Some(gw) = &dev.gateway6 {
        out.set_gateway(key, gw, &format!("{at}.gateway6"));
    }
    out.add_nameservers(&dev.nameservers.addresses);
    out.add_search(&dev.nameservers.search);
    for (i, route) in dev.routes.iter().enumerate() {
        let at = format!("{at}.routes[{i}]");
        match route_to(&route.to, None) {
            Ok(to) if to == "default" => match &route.via {
                Some(via) => out.set_gateway(key, via, &at),
                None => out.warn(&at, "a default route needs via; ignored"),
            },
            Ok(to) => out.add_route(key, to, route.via.clone(), route.metric),
            Err(e) => out.warn(&format!("{at}.to"), format!("{e}; ignored")),
        }
        unknown_keys(out, &at, &route.other);
    }
    unknown_keys(out, at, &dev.other);
}
