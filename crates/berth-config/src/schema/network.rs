//! `berth.network`: interfaces (static addresses, gateways, extra routes, MTU, DHCP, bonds,
//! VLANs, bridges, hooks), DNS and the DHCP timeout, as netconf applies them. RancherOS's
//! spellings are kept: `bond_opts` values are text, `vlans` is `"100,200:name"` or a list,
//! `bridge` is `true` on the bridge's own entry or the bridge's name on a port.

use super::forms::{comma_list, string_map};
use super::values::{Cidr, HttpUrl, IpAddress, Mtu, parse_bool, shown, text_value};
use indexmap::IndexMap;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct NetworkConfig {
    /// Keyed by interface name (`eth0`), glob (`eth*`) or `mac=aa:bb:...`.
    pub interfaces: IndexMap<String, InterfaceConfig>,
    pub dns: DnsConfig,
    /// Seconds to wait for a DHCP lease.
    pub dhcp_timeout: u32,
    /// Proxies for System Docker, User Docker, the console and cloud-init (see `crate::proxy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_proxy: Option<HttpUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<HttpUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            interfaces: IndexMap::new(),
            dns: DnsConfig::default(),
            dhcp_timeout: 10,
            http_proxy: None,
            https_proxy: None,
            no_proxy: None,
        }
    }
}

/// `berth.network.interfaces.NAME` as a key path (quoted when the name has a dot, as
/// `eth0.100` does).
pub fn interface_key(name: &str) -> String {
    if name.contains('.') || name.contains(' ') {
        format!("berth.network.interfaces.\"{name}\"")
    } else {
        format!("berth.network.interfaces.{name}")
    }
}

impl NetworkConfig {
    /// Values that are valid but will not be used as written: `(key path, message)` pairs.
    pub(crate) fn warnings(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, interface) in &self.interfaces {
            for (field, gateway, wants_v6) in [
                ("gateway", interface.gateway, false),
                ("gateway_ipv6", interface.gateway_ipv6, true),
            ] {
                if let Some(gateway) = gateway
                    && gateway.0.is_ipv6() != wants_v6
                {
                    let (is, use_) = if wants_v6 {
                        ("an IPv4", "gateway")
                    } else {
                        ("an IPv6", "gateway_ipv6")
                    };
                    out.push((
                        format!("berth.network.interfaces.{name}.{field}"),
                        format!("{gateway} is {is} address: it is not used; write it as `{use_}`"),
                    ));
                }
            }
        }
        out
    }

    /// Mistakes that span values: bond options, addresses that overlap between interfaces, a
    /// route whose router is of the other family, a port given to two masters.
    pub(crate) fn errors(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        // (key, address, interface entry) of every static address, in the order written.
        let mut seen: Vec<(String, Cidr, &str)> = Vec::new();
        for (name, interface) in &self.interfaces {
            let key = interface_key(name);
            if let Err((option, message)) = interface.bond_options() {
                out.push((format!("{key}.bond_opts.{option}"), message));
            }
            if interface.bond.is_some() && matches!(interface.bridge, BridgeRole::Port(_)) {
                out.push((
                    format!("{key}.bridge"),
                    "an interface has one master: it is a bond slave (`bond`) and a bridge port \
                     (`bridge`); put the bond into the bridge instead"
                        .to_string(),
                ));
            }
            let addresses = interface
                .address
                .iter()
                .map(|a| (format!("{key}.address"), *a))
                .chain(
                    interface
                        .addresses
                        .iter()
                        .enumerate()
                        .map(|(i, a)| (format!("{key}.addresses[{i}]"), *a)),
                );
            for (address_key, address) in addresses {
                for (other_key, other, other_name) in &seen {
                    if other.address() == address.address() {
                        out.push((
                            address_key.clone(),
                            format!("{} is already configured at {other_key}", address.address()),
                        ));
                        break;
                    }
                    if *other_name != name.as_str() && overlaps(other, &address) {
                        out.push((
                            address_key.clone(),
                            format!(
                                "{address} overlaps {other} of {other_key}: two interfaces on one \
                                 subnet make the route to it ambiguous"
                            ),
                        ));
                        break;
                    }
                }
                seen.push((address_key, address, name.as_str()));
            }
            for (i, route) in interface.routes.iter().enumerate() {
                if let (Some(via), Some(family_v6)) = (route.via, route.to.is_ipv6())
                    && via.0.is_ipv6() != family_v6
                {
                    out.push((
                        format!("{key}.routes[{i}].via"),
                        format!(
                            "{via} and the destination {} are of different address families",
                            route.to
                        ),
                    ));
                }
            }
        }
        out
    }
}

/// Whether two prefixes share addresses (the shorter prefix contains the other's network).
fn overlaps(a: &Cidr, b: &Cidr) -> bool {
    let prefix = a.prefix_len().min(b.prefix_len());
    match (a.address(), b.address()) {
        (IpAddr::V4(x), IpAddr::V4(y)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(x) & mask == u32::from(y) & mask
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(x) & mask == u128::from(y) & mask
        }
        _ => false,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct InterfaceConfig {
    /// Overrides the key as the match (name, glob or `mac=`).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Cidr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Cidr>,
    /// The IPv4 default route's router, through this interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddress>,
    /// The IPv6 default route's router, through this interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_ipv6: Option<IpAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<Mtu>,
    /// Routes other than the default one, through this interface.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
    /// Make this interface a slave of the bond of this name (created when missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bond: Option<LinkName>,
    /// On the bond's own entry: its options as RancherOS wrote them (`mode`, `miimon`, ...).
    #[serde(deserialize_with = "string_map", skip_serializing_if = "IndexMap::is_empty")]
    pub bond_opts: IndexMap<String, String>,
    /// VLANs on top of this interface: `"100,200:storage"` or `[100, "200:storage"]`.
    #[serde(deserialize_with = "comma_list", skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<VlanSpec>,
    /// `true` on a bridge's own entry; a bridge's name on its ports.
    #[serde(skip_serializing_if = "BridgeRole::is_none")]
    pub bridge: BridgeRole,
    /// Commands (`sh -c`) run before the interface is brought up.
    #[serde(deserialize_with = "commands", skip_serializing_if = "Vec::is_empty")]
    pub pre_up: Vec<String>,
    /// Commands (`sh -c`) run after the interface is configured.
    #[serde(deserialize_with = "commands", skip_serializing_if = "Vec::is_empty")]
    pub post_up: Vec<String>,
}

impl InterfaceConfig {
    /// `bond_opts`, typed; the error names the option.
    pub fn bond_options(&self) -> Result<Vec<BondOption>, (String, String)> {
        // The mode first: the kernel takes it only while the bond has no slaves.
        let mut options = Vec::new();
        for (key, value) in &self.bond_opts {
            let option = BondOption::parse(key, value).map_err(|m| (key.clone(), m))?;
            if matches!(option, BondOption::Mode(_)) {
                options.insert(0, option);
            } else {
                options.push(option);
            }
        }
        Ok(options)
    }

    /// Whether this interface is a slave or port of another link (it then gets no address
    /// and no DHCP of its own).
    pub fn is_port(&self) -> bool {
        self.bond.is_some() || matches!(self.bridge, BridgeRole::Port(_))
    }
}

/// A kernel interface name: 1-15 bytes, no `/`, no white space, not `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkName(String);

impl LinkName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LinkName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.len() > 15 || s == "." || s == ".." {
            return Err(format!(
                "{} is not an interface name (1 to 15 characters)",
                shown(s)
            ));
        }
        if s.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{} is not an interface name (no `/`, `:` or spaces)",
                shown(s)
            ));
        }
        Ok(LinkName(s.to_string()))
    }
}

impl fmt::Display for LinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(LinkName, "an interface name");

/// One VLAN of a `vlans` list: its ID (1-4094) and its interface's name, `PARENT.ID` unless
/// written as `ID:NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanSpec {
    pub id: u16,
    pub name: Option<LinkName>,
}

impl VlanSpec {
    /// The VLAN interface's name on `parent`.
    pub fn link_name(&self, parent: &str) -> String {
        match &self.name {
            Some(name) => name.to_string(),
            None => format!("{parent}.{}", self.id),
        }
    }
}

/// A VLAN ID, 1-4094.
pub fn parse_vlan_id(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(id) if (1..=4094).contains(&id) => Ok(id),
        _ => Err(format!("{} is not a VLAN ID (1-4094)", shown(s))),
    }
}

impl FromStr for VlanSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, name) = match s.split_once(':') {
            Some((id, name)) => (id, Some(name.parse()?)),
            None => (s, None),
        };
        Ok(VlanSpec {
            id: parse_vlan_id(id)?,
            name,
        })
    }
}

impl fmt::Display for VlanSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}:{name}", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

impl<'de> Deserialize<'de> for VlanSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl Visitor<'_> for SpecVisitor {
            type Value = VlanSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a VLAN ID, or ID:NAME")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<VlanSpec, E> {
                n.to_string().parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<VlanSpec, E> {
                n.to_string().parse().map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<VlanSpec, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

impl Serialize for VlanSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An interface's part in a bridge: none, the bridge itself, or a port of the named bridge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BridgeRole {
    #[default]
    None,
    Bridge,
    Port(LinkName),
}

impl BridgeRole {
    pub fn is_none(&self) -> bool {
        *self == BridgeRole::None
    }
}

impl FromStr for BridgeRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match parse_bool(s) {
            Some(true) => Ok(BridgeRole::Bridge),
            Some(false) => Ok(BridgeRole::None),
            None => s
                .parse()
                .map(BridgeRole::Port)
                .map_err(|e| format!("{e}; `bridge` is `true` on the bridge's entry, or the bridge's name")),
        }
    }
}

impl<'de> Deserialize<'de> for BridgeRole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RoleVisitor;
        impl Visitor<'_> for RoleVisitor {
            type Value = BridgeRole;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, or a bridge's name")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<BridgeRole, E> {
                Ok(if b { BridgeRole::Bridge } else { BridgeRole::None })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<BridgeRole, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(RoleVisitor)
    }
}

impl Serialize for BridgeRole {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            BridgeRole::None => serializer.serialize_bool(false),
            BridgeRole::Bridge => serializer.serialize_bool(true),
            BridgeRole::Port(name) => serializer.collect_str(name),
        }
    }
}

/// `pre_up`/`post_up`: one command or a list of them (each a `sh -c` line).
fn commands<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Commands;
    impl<'de> Visitor<'de> for Commands {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a command, or a list of commands")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<String>, E> {
            Ok(vec![s.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Commands)
}

/// A route's destination: `default` or a network (no host bits set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    Default,
    Network(Cidr),
}

impl RouteTarget {
    /// The family, when the destination says it (`default` takes the router's).
    pub fn is_ipv6(&self) -> Option<bool> {
        match self {
            RouteTarget::Default => None,
            RouteTarget::Network(c) => Some(c.address().is_ipv6()),
        }
    }
}

impl FromStr for RouteTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "default" {
            return Ok(RouteTarget::Default);
        }
        let cidr: Cidr = s.parse()?;
        let host_bits = match cidr.address() {
            IpAddr::V4(a) => {
                u32::from(a)
                    & !u32::MAX
                        .checked_shl(32 - u32::from(cidr.prefix_len()))
                        .unwrap_or(0)
                    != 0
            }
            IpAddr::V6(a) => {
                u128::from(a)
                    & !u128::MAX
                        .checked_shl(128 - u32::from(cidr.prefix_len()))
                        .unwrap_or(0)
                    != 0
            }
        };
        if host_bits {
            return Err(format!(
                "{} has host bits set: a route's destination is a network, like 10.1.0.0/16",
                shown(s)
            ));
        }
        Ok(RouteTarget::Network(cidr))
    }
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteTarget::Default => f.write_str("default"),
            RouteTarget::Network(c) => write!(f, "{c}"),
        }
    }
}

text_value!(RouteTarget, "`default` or a network with its prefix length");

/// One extra route: `{to: 10.1.0.0/16, via: 10.0.0.2, metric: 100}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct RouteConfig {
    pub to: RouteTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// A bond option as the kernel's bonding driver names it, with its value decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BondOption {
    /// 0 balance-rr, 1 active-backup, 2 balance-xor, 3 broadcast, 4 802.3ad, 5 balance-tlb,
    /// 6 balance-alb.
    Mode(u8),
    Miimon(u32),
    Updelay(u32),
    Downdelay(u32),
    ArpInterval(u32),
    ArpIpTarget(Vec<Ipv4Addr>),
    MinLinks(u32),
    Primary(LinkName),
    /// 0 slow, 1 fast.
    LacpRate(u8),
    /// 0 layer2, 1 layer3+4, 2 layer2+3, 3 encap2+3, 4 encap3+4, 5 vlan+srcmac.
    XmitHashPolicy(u8),
    /// 0 stable, 1 bandwidth, 2 count.
    AdSelect(u8),
    /// 0 none, 1 active, 2 follow.
    FailOverMac(u8),
    UseCarrier(bool),
}

const BOND_OPTIONS: &str = "mode, miimon, updelay, downdelay, arp_interval, arp_ip_target, \
                            min_links, primary, lacp_rate, xmit_hash_policy, ad_select, \
                            fail_over_mac, use_carrier";

/// A word of `names` (by name or position), as the bonding driver's sysfs files take it.
fn named(key: &str, value: &str, names: &[&str]) -> Result<u8, String> {
    let word = value.trim().to_ascii_lowercase();
    let word = word.split_whitespace().next().unwrap_or_default();
    names
        .iter()
        .position(|n| *n == word)
        .or_else(|| word.parse::<usize>().ok().filter(|i| *i < names.len()))
        .and_then(|i| u8::try_from(i).ok())
        .ok_or_else(|| {
            format!(
                "{} is not a {key}: use one of {} (or its number)",
                shown(value),
                names.join(", ")
            )
        })
}

impl BondOption {
    pub fn parse(key: &str, value: &str) -> Result<BondOption, String> {
        let number = || {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{} is not a whole number", shown(value)))
        };
        Ok(match key {
            "mode" => BondOption::Mode(named(
                "bond mode",
                value,
                &[
                    "balance-rr",
                    "active-backup",
                    "balance-xor",
                    "broadcast",
                    "802.3ad",
                    "balance-tlb",
                    "balance-alb",
                ],
            )?),
            "miimon" => BondOption::Miimon(number()?),
            "updelay" => BondOption::Updelay(number()?),
            "downdelay" => BondOption::Downdelay(number()?),
            "arp_interval" => BondOption::ArpInterval(number()?),
            "min_links" => BondOption::MinLinks(number()?),
            "arp_ip_target" => BondOption::ArpIpTarget(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(|w| {
                        w.parse()
                            .map_err(|_| format!("{} is not an IPv4 address", shown(w)))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            "primary" => BondOption::Primary(value.parse()?),
            "lacp_rate" => BondOption::LacpRate(named("LACP rate", value, &["slow", "fast"])?),
            "xmit_hash_policy" => BondOption::XmitHashPolicy(named(
                "transmit hash policy",
                value,
                &[
                    "layer2",
                    "layer3+4",
                    "layer2+3",
                    "encap2+3",
                    "encap3+4",
                    "vlan+srcmac",
                ],
            )?),
            "ad_select" => BondOption::AdSelect(named(
                "802.3ad selection",
                value,
                &["stable", "bandwidth", "count"],
            )?),
            "fail_over_mac" => BondOption::FailOverMac(named(
                "fail_over_mac policy",
                value,
                &["none", "active", "follow"],
            )?),
            "use_carrier" => BondOption::UseCarrier(
                parse_bool(value).ok_or_else(|| format!("{} is not a yes/no value", shown(value)))?,
            ),
            other => {
                return Err(format!(
                    "{} is not a bond option Berth knows; it knows {BOND_OPTIONS}",
                    shown(other)
                ));
            }
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct DnsConfig {
    pub nameservers: Vec<IpAddress>,
    pub search: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlans_bridges_and_bond_options_read_as_rancheros_wrote_them() {
        let i: InterfaceConfig = serde_json::from_value(serde_json::json!({
            "vlans": "100,200:storage", "bridge": "true",
            "bond_opts": {"mode": "active-backup", "miimon": "100", "primary": "eth1"},
            "pre_up": "echo hi", "routes": [{"to": "10.1.0.0/16", "via": "10.0.0.2", "metric": 5}],
        }))
        .unwrap();
        assert_eq!(
            i.vlans.iter().map(|v| v.link_name("eth0")).collect::<Vec<_>>(),
            ["eth0.100", "storage"]
        );
        assert_eq!(i.bridge, BridgeRole::Bridge);
        assert_eq!(i.pre_up, ["echo hi"]);
        assert_eq!(
            i.bond_options().unwrap(),
            [
                BondOption::Mode(1),
                BondOption::Miimon(100),
                BondOption::Primary("eth1".parse().unwrap())
            ]
        );
        let port: InterfaceConfig =
            serde_json::from_value(serde_json::json!({"bridge": "br0", "vlans": [100]})).unwrap();
        assert_eq!(port.bridge, BridgeRole::Port("br0".parse().unwrap()));
        assert_eq!(port.vlans[0].id, 100);
        assert_eq!(BondOption::parse("mode", "4"), Ok(BondOption::Mode(4)));
        assert_eq!(BondOption::parse("mode", "802.3ad"), Ok(BondOption::Mode(4)));
        assert!(BondOption::parse("mode", "7").is_err());
        assert!(BondOption::parse("frobs", "1").unwrap_err().contains("frobs"));
        assert!("4095".parse::<VlanSpec>().is_err());
        assert!(
            "10.1.0.1/16"
                .parse::<RouteTarget>()
                .unwrap_err()
                .contains("host bits")
        );
    }

    #[test]
    fn overlapping_addresses_between_interfaces_are_errors() {
        let n: NetworkConfig = serde_json::from_value(serde_json::json!({"interfaces": {
            "eth0": {"address": "192.0.2.10/24", "addresses": ["192.0.2.11/24"]},
            "eth1": {"addresses": ["192.0.2.99/25", "fd00::1/64"]},
            "eth2": {"address": "192.0.2.10/32"},
        }}))
        .unwrap();
        let errors = n.errors();
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "berth.network.interfaces.eth1.addresses[0]",
                "berth.network.interfaces.eth2.address"
            ],
            "{errors:?}"
        );
        assert!(
            errors[1]
                .1
                .contains("already configured at berth.network.interfaces.eth0.address")
        );
    }
}
