//! A datasource's network configuration — NoCloud `network-config` (cloud-init's version 1
//! and version 2 formats) or the OpenStack config drive's `network_data.json` — translated
//! into `berth.network`.
//!
//! cloud-init saves the translation as a configuration layer
//! (`/var/lib/berth/conf/datasource-network.yml`, see [`berth_config::ConfigPaths`]), which
//! the configuration loader uses only when no other layer configures an interface: the
//! user's own `berth.network.interfaces` always win. What has no `berth.network` equivalent
//! is left out with a warning naming the file and the key.

mod openstack;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use std::net::IpAddr;

/// The translation: `berth.network`'s `interfaces` and `dns`, and what was left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translated {
    /// Interface entries by key, in the order the source lists them.
    pub interfaces: IndexMap<String, Map<String, Value>>,
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    /// What was left out, and why.
    pub warnings: Vec<Untranslated>,
}

/// A key of the source file that has no `berth.network` equivalent (or a bad value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Untranslated {
    /// Where in the file: `ethernets.eth0.wakeonlan`, `config[2].subnets[0].type`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Untranslated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a file cannot be translated at all.
#[derive(Debug, thiserror::Error)]
pub enum NetworkConfigError {
    #[error("{file}: not valid {format}: {message}")]
    Syntax {
        file: String,
        format: &'static str,
        message: String,
    },
    #[error("{file}: version: {version} is not a network-config version Berth reads (1 or 2)")]
    Version { file: String, version: String },
}

/// Translate `bytes`, delivered as `file_name` (`network-config` or `network_data.json`).
/// `file` names it in messages (the path it is saved under).
pub fn translate(file_name: &str, file: &str, bytes: &[u8]) -> Result<Translated, NetworkConfigError> {
    let out = if file_name == "network_data.json" {
        let data: openstack::NetworkData =
            serde_json::from_slice(bytes).map_err(|e| NetworkConfigError::Syntax {
                file: file.to_string(),
                format: "JSON (OpenStack network_data.json)",
                message: e.to_string(),
            })?;
        openstack::translate(&data)
    } else {
        let text = String::from_utf8_lossy(bytes);
        let syntax = |message: String| NetworkConfigError::Syntax {
            file: file.to_string(),
            format: "YAML (cloud-init network-config)",
            message,
        };
        let mut doc: Value = serde_saphyr::from_str(&text).map_err(|e| syntax(e.to_string()))?;
        // Both `network: {version: ...}` and the bare `version: ...` are in use.
        let prefix = match doc.get_mut("network") {
            Some(inner) if inner.get("version").is_some() => {
                doc = inner.take();
                "network."
            }
            _ => "",
        };
        let version = doc.get("version").cloned().unwrap_or(Value::Null);
        let mut out = match version
            .as_u64()
            .or_else(|| version.as_str().and_then(|v| v.parse().ok()))
        {
            Some(1) => v1::translate(serde_json::from_value(doc).map_err(|e| syntax(e.to_string()))?),
            Some(2) => v2::translate(serde_json::from_value(doc).map_err(|e| syntax(e.to_string()))?),
            _ => {
                return Err(NetworkConfigError::Version {
                    file: file.to_string(),
                    version: version.to_string(),
                });
            }
        };
        for w in &mut out.warnings {
            w.key.insert_str(0, prefix);
        }
        out
    };
    Ok(out)
}

impl Translated {
    /// The configuration layer: `berth.network.interfaces` and `.dns`, as YAML (JSON is
    /// YAML, so `berth config validate` reports file:line:key in it).
    pub fn to_layer(&self, origin: &str) -> String {
        let mut dns = Map::new();
        if !self.nameservers.is_empty() {
            dns.insert("nameservers".into(), json!(self.nameservers));
        }
        if !self.search.is_empty() {
            dns.insert("search".into(), json!(self.search));
        }
        let mut network = Map::new();
        network.insert("interfaces".into(), json!(self.interfaces));
        if !dns.is_empty() {
            network.insert("dns".into(), Value::Object(dns));
        }
        let layer = json!({"berth": {"network": network}});
        let body = serde_json::to_string_pretty(&layer).unwrap_or_default();
        format!(
            "# Written by cloud-init from {origin}. Used only when no other configuration layer\n\
             # configures berth.network.interfaces (docs/network.md).\n{body}\n"
        )
    }

    /// The entry for `key`, made when missing.
    pub(crate) fn entry(&mut self, key: &str) -> &mut Map<String, Value> {
        self.interfaces.entry(key.to_string()).or_default()
    }

    pub(crate) fn warn(&mut self, key: &str, message: impl std::fmt::Display) {
        self.warnings.push(Untranslated {
            key: key.to_string(),
            message: message.to_string(),
        });
    }

    pub(crate) fn add_nameservers<'a>(&mut self, servers: impl IntoIterator<Item = &'a String>) {
        for s in servers {
            if !self.nameservers.contains(s) {
                self.nameservers.push(s.clone());
            }
        }
    }

    pub(crate) fn add_search<'a>(&mut self, domains: impl IntoIterator<Item = &'a String>) {
        for d in domains {
            if !self.search.contains(d) {
                self.search.push(d.clone());
            }
        }
    }

    /// Add a static address (CIDR) to `key`: the first is `address`, the others `addresses`.
    pub(crate) fn add_address(&mut self, key: &str, cidr: String) {
        let entry = self.entry(key);
        if !entry.contains_key("address") {
            entry.insert("address".into(), Value::String(cidr));
        } else if let Some(Value::Array(list)) = entry.get_mut("addresses") {
            list.push(Value::String(cidr));
        } else {
            entry.insert("addresses".into(), json!([cidr]));
        }
    }

    /// Set the default gateway of `key` for its family; a second one for the same family is
    /// reported (a machine has one default route per family).
    pub(crate) fn set_gateway(&mut self, key: &str, gateway: &str, where_: &str) {
        let field = match gateway.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => "gateway",
            Ok(IpAddr::V6(_)) => "gateway_ipv6",
            Err(_) => {
                self.warn(where_, format!("{gateway:?} is not an IP address; ignored"));
                return;
            }
        };
        let taken = self
            .interfaces
            .iter()
            .find(|(_, e)| e.contains_key(field))
            .map(|(k, _)| k.clone());
        match taken {
            Some(other) if other != key || self.entry(key)[field] != gateway => self.warn(
                where_,
                format!("a second default route ({gateway}); {other} already has one; ignored"),
            ),
            Some(_) => {}
            None => {
                self.entry(key)
                    .insert(field.into(), Value::String(gateway.to_string()));
            }
        }
    }

    pub(crate) fn add_route(&mut self, key: &str, to: String, via: Option<String>, metric: Option<u32>) {
        let mut route = Map::new();
        route.insert("to".into(), Value::String(to));
        if let Some(via) = via {
            route.insert("via".into(), Value::String(via));
        }
        if let Some(metric) = metric {
            route.insert("metric".into(), json!(metric));
        }
        let entry = self.entry(key);
        match entry.get_mut("routes") {
            Some(Value::Array(list)) => list.push(Value::Object(route)),
            _ => {
                entry.insert("routes".into(), json!([route]));
            }
        }
    }

    /// Add VLAN `id` named `name` on the entry `parent`.
    pub(crate) fn add_vlan(&mut self, parent: &str, id: u64, name: &str) {
        let spec = Value::String(format!("{id}:{name}"));
        let entry = self.entry(parent);
        match entry.get_mut("vlans") {
            Some(Value::Array(list)) => list.push(spec),
            _ => {
                entry.insert("vlans".into(), json!([spec]));
            }
        }
    }

    /// A DHCP setting of `key`; `true` wins over `false`.
    pub(crate) fn set_dhcp(&mut self, key: &str, on: bool) {
        let entry = self.entry(key);
        if on || !entry.contains_key("dhcp") {
            entry.insert("dhcp".into(), Value::Bool(on));
        }
    }

    /// Entries without addresses or DHCP that are no bond slave or bridge port get
    /// `dhcp: false` (in `berth.network` an entry without addresses defaults to DHCP; in
    /// these formats it is just brought up).
    pub(crate) fn finish(mut self) -> Self {
        for entry in self.interfaces.values_mut() {
            let configured = ["dhcp", "address", "bond"].iter().any(|k| entry.contains_key(*k))
                || entry.get("bridge").is_some_and(|b| b.is_string());
            if !configured {
                entry.insert("dhcp".into(), Value::Bool(false));
            }
        }
        self
    }
}

/// `address` with the prefix length taken from `netmask` (dotted IPv4, an IPv6 mask, or a
/// number), unless `address` already has one.
pub(crate) fn cidr(address: &str, netmask: Option<&str>) -> Result<String, String> {
    if address.contains('/') {
        return Ok(address.to_string());
    }
    let ip: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    let Some(mask) = netmask.map(str::trim).filter(|m| !m.is_empty()) else {
        return Err(format!("{address} has no prefix length and no netmask"));
    };
    Ok(format!("{ip}/{}", prefix_len(mask)?))
}

/// The prefix length of a netmask: `24`, `255.255.255.0` or `ffff:ffff:ffff:ffff::`.
pub(crate) fn prefix_len(mask: &str) -> Result<u32, String> {
    if let Ok(n) = mask.parse::<u32>() {
        return Ok(n);
    }
    let bits: u128 = match mask.parse::<IpAddr>() {
        Ok(IpAddr::V4(m)) => u128::from(u32::from(m)) << 96,
        Ok(IpAddr::V6(m)) => u128::from(m),
        Err(_) => return Err(format!("{mask:?} is not a netmask")),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return Err(format!("{mask} is not a contiguous netmask"));
    }
    Ok(ones)
}

/// A route destination as `berth.network` writes it: `default`, or a network with its prefix.
pub(crate) fn route_to(network: &str, netmask: Option<&str>) -> Result<String, String> {
    if network == "default" {
        return Ok(network.to_string());
    }
    let to = cidr(network, netmask)?;
    if to == "0.0.0.0/0" || to == "::/0" {
        return Ok("default".to_string());
    }
    Ok(to)
}

/// A value that is a string or a list of strings (`dns_nameservers: 1.1.1.1`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => s.split_whitespace().map(str::to_string).collect(),
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A value as text: `100` and `"100"` alike (bond parameters are written both ways).
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// The `bond_opts` key for a cloud-init (v1 `bond-xmit-hash-policy`, v2
/// `transmit-hash-policy`) or OpenStack (`bond_miimon`) bond parameter, if Berth has one.
pub(crate) fn bond_option(name: &str) -> Option<&'static str> {
    let name = name
        .trim_start_matches("bond-")
        .trim_start_matches("bond_")
        .replace('_', "-");
    Some(match name.as_str() {
        "mode" => "mode",
        "miimon" | "mii-monitor-interval" => "miimon",
        "updelay" | "up-delay" => "updelay",
        "downdelay" | "down-delay" => "downdelay",
        "arp-interval" => "arp_interval",
        "arp-ip-target" | "arp-ip-targets" => "arp_ip_target",
        "min-links" => "min_links",
        "primary" => "primary",
        "lacp-rate" => "lacp_rate",
        "xmit-hash-policy" | "transmit-hash-policy" => "xmit_hash_policy",
        "ad-select" => "ad_select",
        "fail-over-mac" | "fail-over-mac-policy" => "fail_over_mac",
        "use-carrier" => "use_carrier",
        _ => return None,
    })
}

/// Keys of `extra` (fields the serde types do not know) as warnings under `at`.
pub(crate) fn unknown_keys(out: &mut Translated, at: &str, extra: &Map<String, Value>) {
    for key in extra.keys() {
        out.warn(&format!("{at}.{key}"), "not supported by berth.network; ignored");
    }
}

/// Whether the network of `cidr` (`192.0.2.10/24`) holds `ip`.
pub(crate) fn contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((address, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(address), Ok(len)) = (address.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    let (a, b, width) = match (address, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - len.min(width);
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}
