//! Deciding what to do: which configured interface each link gets, which bonds, bridges and
//! VLANs must be created, and the ordered steps (hooks, MTU, enslaving, link up, addresses,
//! routes) for each link. Pure data, no system access: the executor in [`crate::netlink`]
//! carries the plan out, and `--dry-run` could print it.

use berth_config::schema::network::{
    BondOption, BridgeRole, InterfaceConfig, NetworkConfig, RouteTarget, interface_key,
};
use berth_config::schema::values::Cidr;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use wildmatch::WildMatch;

/// A network link as the kernel reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`, lower case; `None` for links without one.
    pub mac: Option<String>,
    /// The kernel's link kind for virtual links: `bond`, `bridge`, `vlan`, `veth`, ...
    pub kind: Option<String>,
    /// The index of the bond or bridge this link is a slave or port of.
    pub master: Option<u32>,
}

/// One change to one link, with the configuration key it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// `berth.network.interfaces.eth1.addresses[0]`: where a failure is reported.
    pub key: String,
    pub action: Action,
}

/// An extra route: where to, through which router, at which metric.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    /// `default`, or a network such as `10.1.0.0/16`.
    pub to: String,
    pub via: Option<IpAddr>,
    pub metric: Option<u32>,
}

impl Route {
    /// The destination as address and prefix length (`default` is `0.0.0.0/0` or `::/0`,
    /// of the router's family).
    pub fn destination(&self) -> Option<(IpAddr, u8)> {
        if self.to == "default" {
            return match self.via {
                Some(IpAddr::V6(_)) => Some((IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0)),
                _ => Some((IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)),
            };
        }
        let cidr: Cidr = self.to.parse().ok()?;
        Some((cidr.address(), cidr.prefix_len()))
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to)?;
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        if let Some(metric) = self.metric {
            write!(f, " metric {metric}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A `pre_up` or `post_up` command, run with `sh -c` and `IFACE` set to the link's name.
    Hook(String),
    SetMtu(u16),
    /// Down before enslaving: the bonding driver refuses a slave that is up.
    Down,
    /// Make the link a slave (bond) or port (bridge) of `name`.
    SetMaster {
        name: String,
        index: u32,
    },
    Up,
    AddAddress(Cidr),
    /// A default route of the gateway's family through this link.
    DefaultRoute(IpAddr),
    /// An extra route (`routes:`) through this link.
    AddRoute(Route),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Hook(command) => write!(f, "run {command:?}"),
            Action::SetMtu(mtu) => write!(f, "set the MTU to {mtu}"),
            Action::Down => write!(f, "set the link down"),
            Action::SetMaster { name, .. } => write!(f, "make it a port of {name}"),
            Action::Up => write!(f, "bring the link up"),
            Action::AddAddress(cidr) => write!(f, "add the address {cidr}"),
            Action::DefaultRoute(gw) => write!(f, "add a default route via {gw}"),
            Action::AddRoute(route) => write!(f, "add the route {route}"),
        }
    }
}

/// A link netconf creates: a bond, a bridge or a VLAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualLink {
    pub name: String,
    /// The configuration key that asks for it, where a failure is reported.
    pub key: String,
    pub kind: VirtualKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VirtualKind {
    /// Options in the order they are set (the mode first).
    Bond(Vec<BondOption>),
    Bridge,
    Vlan {
        parent: u32,
        parent_name: String,
        id: u16,
    },
}

impl VirtualKind {
    /// The kernel module that provides this kind of link.
    pub fn module(&self) -> &'static str {
        match self {
            VirtualKind::Bond(_) => "bonding",
            VirtualKind::Bridge => "bridge",
            VirtualKind::Vlan { .. } => "8021q",
        }
    }
}

impl fmt::Display for VirtualLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            VirtualKind::Bond(_) => write!(f, "the bond {}", self.name),
            VirtualKind::Bridge => write!(f, "the bridge {}", self.name),
            VirtualKind::Vlan { parent_name, id, .. } => {
                write!(f, "the VLAN {} (ID {id} on {parent_name})", self.name)
            }
        }
    }
}

/// The steps for one link, in the order they run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPlan {
    pub link: Link,
    /// The configuration key that matched it: `berth.network.interfaces.NAME`.
    pub key: String,
    pub dhcp: bool,
    pub steps: Vec<Step>,
}

/// A configured interface that cannot be applied, named by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Bonds, bridges and VLANs to create before the links are configured (those whose parent
    /// exists; a VLAN on a bond still to be created comes in the next round).
    pub create: Vec<VirtualLink>,
    /// Links in the order they are configured: plain links, then bonds, VLANs, bridges.
    pub links: Vec<LinkPlan>,
    pub problems: Vec<Problem>,
    /// Interface names or globs dhcpcd may run on.
    pub dhcp_allow: Vec<String>,
    /// Links that have static configuration and no `dhcp: true`: dhcpcd must leave them alone
    /// even when a glob in `dhcp_allow` matches them.
    pub dhcp_deny: Vec<String>,
}

fn key_of(name: &str) -> String {
    interface_key(name)
}

/// What an interface entry matches: its `match`, else its key.
fn pattern(name: &str, interface: &InterfaceConfig) -> String {
    interface.match_.clone().unwrap_or_else(|| name.to_string())
}

fn mac_of(pattern: &str) -> Option<String> {
    pattern
        .strip_prefix("mac=")
        .map(|m| m.trim().to_ascii_lowercase())
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Whether dhcpcd runs on an interface: `dhcp`, else when it has no static address. A bond
/// slave or bridge port never does: its master carries the addresses.
pub fn wants_dhcp(interface: &InterfaceConfig) -> bool {
    if interface.is_port() {
        return false;
    }
    interface
        .dhcp
        .unwrap_or(interface.address.is_none() && interface.addresses.is_empty())
}

/// The entry for a link: an exact name first, then a `mac=` match, then the first glob that
/// matches (in the order the configuration lists them).
fn entry_for<'a>(network: &'a NetworkConfig, link: &Link) -> Option<(&'a String, &'a InterfaceConfig)> {
    let entries = || network.interfaces.iter();
    entries()
        .find(|(n, i)| pattern(n, i) == link.name)
        .or_else(|| {
            entries().find(|(n, i)| {
                mac_of(&pattern(n, i)).is_some_and(|m| link.mac.as_deref() == Some(m.as_str()))
            })
        })
        .or_else(|| {
            entries().find(|(n, i)| {
                let p = pattern(n, i);
                is_glob(&p) && link.name != "lo" && WildMatch::new(&p).matches(&link.name)
            })
        })
}

/// Configure order: plain links first, then what is built on them.
fn rank(kind: Option<&VirtualRole>) -> u8 {
    match kind {
        None => 0,
        Some(VirtualRole::Bond) => 1,
        Some(VirtualRole::Vlan) => 2,
        Some(VirtualRole::Bridge) => 3,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VirtualRole {
    Bond,
    Bridge,
    Vlan,
}

/// The bonds, bridges and VLANs the configuration asks for, by name: (role, key, kind when
/// it can be created now).
fn wanted_virtual(
    network: &NetworkConfig,
    links: &[Link],
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, (VirtualRole, String, Option<VirtualKind>)> {
    let mut out = BTreeMap::new();
    let by_name = |name: &str| links.iter().find(|l| l.name == name);
    // Bonds and bridges named by their slaves and ports, or by their own entry.
    for link in links {
        let Some((name, interface)) = entry_for(network, link) else {
            continue;
        };
        if let Some(bond) = &interface.bond {
            out.entry(bond.to_string()).or_insert((
                VirtualRole::Bond,
                format!("{}.bond", key_of(name)),
                None,
            ));
        }
        if let BridgeRole::Port(bridge) = &interface.bridge {
            out.entry(bridge.to_string()).or_insert((
                VirtualRole::Bridge,
                format!("{}.bridge", key_of(name)),
                None,
            ));
        }
    }
    for (name, interface) in &network.interfaces {
        let p = pattern(name, interface);
        if is_glob(&p) || mac_of(&p).is_some() {
            continue;
        }
        if !interface.bond_opts.is_empty() {
            out.insert(p.clone(), (VirtualRole::Bond, key_of(name), None));
        } else if interface.bridge == BridgeRole::Bridge {
            out.insert(p.clone(), (VirtualRole::Bridge, key_of(name), None));
        }
    }
    for (name, (role, key, kind)) in out.iter_mut() {
        // The bond's own entry gives its options.
        *kind = Some(match role {
            VirtualRole::Bond => {
                let own = network.interfaces.iter().find(|(n, i)| pattern(n, i) == *name);
                match own.map(|(_, i)| i.bond_options()) {
                    Some(Err((option, message))) => {
                        problems.push(Problem {
                            key: format!("{key}.bond_opts.{option}"),
                            message,
                        });
                        VirtualKind::Bond(Vec::new())
                    }
                    Some(Ok(options)) => VirtualKind::Bond(options),
                    None => VirtualKind::Bond(Vec::new()),
                }
            }
            _ => VirtualKind::Bridge,
        });
    }
    // VLANs: `vlans` on a parent's entry, and entries named PARENT.ID.
    let mut vlans: Vec<(String, String, String, u16)> = Vec::new();
    for link in links {
        if let Some((name, interface)) = entry_for(network, link) {
            for (i, vlan) in interface.vlans.iter().enumerate() {
                vlans.push((
                    vlan.link_name(&link.name),
                    format!("{}.vlans[{i}]", key_of(name)),
                    link.name.clone(),
                    vlan.id,
                ));
            }
        }
    }
    for (name, interface) in &network.interfaces {
        let p = pattern(name, interface);
        if is_glob(&p) || mac_of(&p).is_some() || by_name(&p).is_some() {
            continue;
        }
        if let Some((parent, id)) = p.rsplit_once('.')
            && let Ok(id) = berth_config::schema::network::parse_vlan_id(id)
        {
            vlans.push((p.clone(), key_of(name), parent.to_string(), id));
        }
    }
    for (name, key, parent, id) in vlans {
        let kind = match by_name(&parent) {
            Some(link) => Some(VirtualKind::Vlan {
                parent: link.index,
                parent_name: parent.clone(),
                id,
            }),
            // A VLAN on a bond or bridge that is created first: next round.
            None if out.contains_key(&parent) => None,
            None => {
                problems.push(Problem {
                    key: key.clone(),
                    message: format!("the VLAN {name} cannot be made: its parent {parent} does not exist"),
                });
                continue;
            }
        };
        out.entry(name).or_insert((VirtualRole::Vlan, key, kind));
    }
    out
}

/// The plan for `network` on a machine with `links`.
pub fn plan(network: &NetworkConfig, links: &[Link]) -> Plan {
    let mut plan = Plan::default();
    if network.interfaces.is_empty() {
        // RancherOS's default, unchanged: DHCP on every Ethernet interface, nothing else.
        plan.dhcp_allow = vec!["eth*".to_string(), "en*".to_string()];
        return plan;
    }
    let virtual_links = wanted_virtual(network, links, &mut plan.problems);
    for (name, (_, key, kind)) in &virtual_links {
        if let Some(kind) = kind
            && !links.iter().any(|l| &l.name == name)
        {
            plan.create.push(VirtualLink {
                name: name.clone(),
                key: key.clone(),
                kind: kind.clone(),
            });
        }
    }
    let role_of = |name: &str| virtual_links.get(name).map(|(role, _, _)| *role);
    let mut sorted: Vec<&Link> = links.iter().collect();
    sorted.sort_by(|a, b| {
        (rank(role_of(&a.name).as_ref()), &a.name).cmp(&(rank(role_of(&b.name).as_ref()), &b.name))
    });
    let unconfigured = InterfaceConfig::default();
    let mut gateway_owner: [Option<String>; 2] = [None, None];
    for link in sorted {
        let (key, interface) = match entry_for(network, link) {
            Some((name, interface)) => (key_of(name), interface),
            // A bond, bridge or VLAN with no entry of its own (named by its slaves or ports):
            // brought up, nothing more.
            None => match virtual_links.get(&link.name) {
                Some((_, key, _)) => (key.clone(), &unconfigured),
                None => continue,
            },
        };
        let configured = entry_for(network, link).is_some();
        let dhcp = configured && wants_dhcp(interface);
        let mut steps = Vec::new();
        for (i, command) in interface.pre_up.iter().enumerate() {
            steps.push(Step {
                key: format!("{key}.pre_up[{i}]"),
                action: Action::Hook(command.clone()),
            });
        }
        if let Some(mtu) = interface.mtu {
            steps.push(Step {
                key: format!("{key}.mtu"),
                action: Action::SetMtu(mtu.get()),
            });
        }
        let master = interface
            .bond
            .as_ref()
            .map(|b| (b.to_string(), "bond"))
            .or(match &interface.bridge {
                BridgeRole::Port(b) => Some((b.to_string(), "bridge")),
                _ => None,
            });
        if let Some((master, field)) = master {
            match links.iter().find(|l| l.name == master) {
                // Already its port (a second run): leave the link as it is.
                Some(m) if link.master == Some(m.index) => {}
                Some(m) => {
                    if field == "bond" {
                        steps.push(Step {
                            key: format!("{key}.bond"),
                            action: Action::Down,
                        });
                    }
                    steps.push(Step {
                        key: format!("{key}.{field}"),
                        action: Action::SetMaster {
                            name: master.clone(),
                            index: m.index,
                        },
                    });
                }
                // Still to be created (this is the round that creates it), or its creation
                // failed, which is reported as such.
                None if virtual_links.contains_key(&master) => {}
                None => plan.problems.push(Problem {
                    key: format!("{key}.{field}"),
                    message: format!("{master} does not exist, so {} is not made its port", link.name),
                }),
            }
        }
        steps.push(Step {
            key: key.clone(),
            action: Action::Up,
        });
        if let Some(address) = interface.address {
            steps.push(Step {
                key: format!("{key}.address"),
                action: Action::AddAddress(address),
            });
        }
        for (i, address) in interface.addresses.iter().enumerate() {
            steps.push(Step {
                key: format!("{key}.addresses[{i}]"),
                action: Action::AddAddress(*address),
            });
        }
        for (field, gateway, v6) in [
            ("gateway", interface.gateway, false),
            ("gateway_ipv6", interface.gateway_ipv6, true),
        ] {
            let Some(gateway) = gateway else { continue };
            let gateway_key = format!("{key}.{field}");
            // The key says the family (validation warns about a mismatch): never guess.
            if gateway.0.is_ipv6() != v6 {
                plan.problems.push(Problem {
                    key: gateway_key,
                    message: format!("{gateway} is of the wrong address family for {field}; not used"),
                });
                continue;
            }
            let family = usize::from(v6);
            match &gateway_owner[family] {
                Some(owner) => plan.problems.push(Problem {
                    key: gateway_key,
                    message: format!(
                        "{} already has the default route ({owner}); a machine has one default \
                         route per address family, so this gateway is not used on {}",
                        link_of(&plan, owner).unwrap_or_default(),
                        link.name
                    ),
                }),
                None => {
                    gateway_owner[family] = Some(gateway_key.clone());
                    steps.push(Step {
                        key: gateway_key,
                        action: Action::DefaultRoute(gateway.0),
                    });
                }
            }
        }
        for (i, route) in interface.routes.iter().enumerate() {
            steps.push(Step {
                key: format!("{key}.routes[{i}]"),
                action: Action::AddRoute(Route {
                    to: match route.to {
                        RouteTarget::Default => "default".to_string(),
                        RouteTarget::Network(c) => c.to_string(),
                    },
                    via: route.via.map(|v| v.0),
                    metric: route.metric,
                }),
            });
        }
        for (i, command) in interface.post_up.iter().enumerate() {
            steps.push(Step {
                key: format!("{key}.post_up[{i}]"),
                action: Action::Hook(command.clone()),
            });
        }
        if !dhcp {
            plan.dhcp_deny.push(link.name.clone());
        }
        plan.links.push(LinkPlan {
            link: link.clone(),
            key,
            dhcp,
            steps,
        });
    }
    for (name, interface) in &network.interfaces {
        let p = pattern(name, interface);
        let matched: Vec<&LinkPlan> = plan.links.iter().filter(|l| l.key == key_of(name)).collect();
        let where_ = if interface.match_.is_some() {
            format!("{}.match", key_of(name))
        } else {
            key_of(name)
        };
        if let Some(mac) = mac_of(&p) {
            if matched.is_empty() {
                plan.problems.push(Problem {
                    key: where_,
                    message: format!("no interface has the MAC address {mac}"),
                });
            } else if wants_dhcp(interface) {
                plan.dhcp_allow
                    .extend(matched.iter().map(|l| l.link.name.clone()));
            }
            continue;
        }
        // A bond, bridge or VLAN still to be created is not missing.
        if !is_glob(&p) && matched.is_empty() && !virtual_links.contains_key(&p) {
            let message = if interface.bond.is_some() {
                format!("the bond slave {p} does not exist")
            } else {
                format!("no interface is named {p}")
            };
            if !plan.problems.iter().any(|x| x.key == where_) {
                plan.problems.push(Problem { key: where_, message });
            }
        }
        if wants_dhcp(interface) {
            plan.dhcp_allow.push(p);
        }
    }
    plan
}

fn link_of(plan: &Plan, step_key: &str) -> Option<String> {
    plan.links
        .iter()
        .find(|l| l.steps.iter().any(|s| s.key == step_key))
        .map(|l| l.link.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(json: serde_json::Value) -> NetworkConfig {
        serde_json::from_value(json).unwrap()
    }

    fn link(index: u32, name: &str, mac: &str) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some(mac.into()),
            ..Link::default()
        }
    }

    fn machine() -> Vec<Link> {
        vec![
            link(3, "eth1", "52:54:00:00:00:02"),
            Link {
                index: 1,
                name: "lo".into(),
                ..Link::default()
            },
            link(2, "eth0", "52:54:00:00:00:01"),
        ]
    }

    fn actions(plan: &LinkPlan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| format!("{} <- {}", s.action, s.key))
            .collect()
    }

    #[test]
    fn no_interfaces_keeps_dhcp_on_ethernet_and_touches_nothing() {
        let plan = plan(&NetworkConfig::default(), &machine());
        assert_eq!(plan.dhcp_allow, ["eth*", "en*"]);
        assert!(plan.links.is_empty() && plan.dhcp_deny.is_empty() && plan.problems.is_empty());
    }

    #[test]
    fn static_interface_gets_ordered_steps_and_no_dhcp() {
        let net = network(serde_json::json!({"interfaces": {
            "eth0": {"dhcp": true},
            "eth1": {"mtu": 1400, "address": "192.0.2.10/24", "addresses": ["fd00::10/64"],
                     "gateway": "192.0.2.1", "gateway_ipv6": "fd00::1"}
        }}));
        let plan = plan(&net, &machine());
        assert_eq!(plan.links.len(), 2);
        assert_eq!(plan.links[0].link.name, "eth0");
        assert_eq!(
            actions(&plan.links[0]),
            ["bring the link up <- berth.network.interfaces.eth0"]
        );
        let k = "berth.network.interfaces.eth1";
        assert_eq!(
            actions(&plan.links[1]),
            [
                format!("set the MTU to 1400 <- {k}.mtu"),
                format!("bring the link up <- {k}"),
                format!("add the address 192.0.2.10/24 <- {k}.address"),
                format!("add the address fd00::10/64 <- {k}.addresses[0]"),
                format!("add a default route via 192.0.2.1 <- {k}.gateway"),
                format!("add a default route via fd00::1 <- {k}.gateway_ipv6"),
            ]
        );
        assert_eq!(plan.dhcp_allow, ["eth0"]);
        assert_eq!(plan.dhcp_deny, ["eth1"]);
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    }

    #[test]
    fn exact_name_beats_mac_beats_glob() {
        let net = network(serde_json::json!({"interfaces": {
            "eth*": {"dhcp": true},
            "byname": {"match": "eth0", "address": "192.0.2.1/24"},
            "mac=52:54:00:00:00:01": {"address": "192.0.2.2/24"},
            "nic": {"match": "MAC=52:54:00:00:00:02"},
        }}));
        let plan = plan(&net, &machine());
        let keys: Vec<_> = plan
            .links
            .iter()
            .map(|l| (l.link.name.as_str(), l.key.as_str()))
            .collect();
        // "MAC=" is not "mac=": eth1 falls through to the glob.
        assert_eq!(
            keys,
            [
                ("eth0", "berth.network.interfaces.byname"),
                ("eth1", "berth.network.interfaces.eth*")
            ]
        );
        assert_eq!(plan.dhcp_deny, ["eth0"]);
        assert!(plan.dhcp_allow.contains(&"eth*".to_string()));
    }

    #[test]
    fn mac_match_picks_its_nic_and_dhcp_gets_its_name() {
        let net = network(serde_json::json!({"interfaces": {
            "uplink": {"match": "mac=52:54:00:00:00:02", "dhcp": true, "mtu": 1400},
        }}));
        let plan = plan(&net, &machine());
        assert_eq!(plan.links.len(), 1);
        assert_eq!(plan.links[0].link.name, "eth1");
        assert_eq!(plan.dhcp_allow, ["eth1"]);
        assert!(plan.dhcp_deny.is_empty());
    }

    #[test]
    fn unmatched_names_and_macs_are_problems_naming_the_key() {
        let net = network(serde_json::json!({"interfaces": {
            "mac=52:54:00:aa:bb:cc": {"address": "192.0.2.2/24"},
            "x": {"match": "eth9"},
            "en*": {"dhcp": true},
            "eth0": {"address": "192.0.2.3/24"},
        }}));
        let plan = plan(&net, &machine());
        let problems: Vec<String> = plan.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "berth.network.interfaces.mac=52:54:00:aa:bb:cc: no interface has the MAC address 52:54:00:aa:bb:cc",
                "berth.network.interfaces.x.match: no interface is named eth9",
            ]
        );
        assert_eq!(plan.links.len(), 1, "the good interface is still planned");
    }

    #[test]
    fn a_second_default_route_of_a_family_is_reported_not_fought_over() {
        let net = network(serde_json::json!({"interfaces": {
            "eth0": {"address": "192.0.2.10/24", "gateway": "192.0.2.1"},
            "eth1": {"address": "198.51.100.10/24", "gateway": "198.51.100.1", "gateway_ipv6": "fd00::1"},
        }}));
        let plan = plan(&net, &machine());
        assert_eq!(plan.problems.len(), 1, "{:?}", plan.problems);
        assert_eq!(plan.problems[0].key, "berth.network.interfaces.eth1.gateway");
        assert!(
            plan.problems[0]
                .message
                .starts_with("eth0 already has the default route")
        );
        assert!(actions(&plan.links[1]).iter().any(|a| a.contains("via fd00::1")));
        assert!(
            !actions(&plan.links[1])
                .iter()
                .any(|a| a.contains("198.51.100.1 "))
        );
    }

    #[test]
    fn a_gateway_of_the_wrong_family_is_not_used() {
        let net = network(serde_json::json!({"interfaces": {
            "eth0": {"address": "192.0.2.10/24", "gateway": "fd00::1", "gateway_ipv6": "192.0.2.1"},
        }}));
        let plan = plan(&net, &machine());
        let problems: Vec<_> = plan.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            problems,
            [
                "berth.network.interfaces.eth0.gateway",
                "berth.network.interfaces.eth0.gateway_ipv6"
            ]
        );
        assert!(
            !actions(&plan.links[0])
                .iter()
                .any(|a| a.contains("default route"))
        );
    }

    #[test]
    fn globs_never_take_the_loopback() {
        let net = network(serde_json::json!({"interfaces": {"*": {"mtu": 1400}}}));
        let names: Vec<_> = plan(&net, &machine())
            .links
            .into_iter()
            .map(|l| l.link.name)
            .collect();
        assert_eq!(names, ["eth0", "eth1"]);
    }

    fn virtual_link(index: u32, name: &str, kind: &str) -> Link {
        Link {
            index,
            name: name.into(),
            kind: Some(kind.into()),
            ..Link::default()
        }
    }

    #[test]
    fn bonds_are_created_with_their_options_and_slaves_enslaved_before_the_bond_is_configured() {
        let net = network(serde_json::json!({"interfaces": {
            "eth*": {"dhcp": true},
            "mac=52:54:00:00:00:01": {"bond": "bond0"},
            "eth1": {"bond": "bond0"},
            "bond0": {"address": "10.0.0.10/24", "gateway": "10.0.0.1",
                      "bond_opts": {"miimon": "100", "mode": "active-backup", "primary": "eth0"},
                      "vlans": "100,200:storage"},
        }}));
        let first = plan(&net, &machine());
        assert_eq!(
            first.create,
            [VirtualLink {
                name: "bond0".into(),
                key: "berth.network.interfaces.bond0".into(),
                kind: VirtualKind::Bond(vec![
                    BondOption::Mode(1),
                    BondOption::Miimon(100),
                    BondOption::Primary("eth0".parse().unwrap())
                ]),
            }]
        );
        assert!(first.problems.is_empty(), "{:?}", first.problems);
        // Once the bond exists, its VLANs can be made; the slaves are taken down and enslaved.
        let mut links = machine();
        links.push(virtual_link(4, "bond0", "bond"));
        let second = plan(&net, &links);
        let vlans: Vec<String> = second.create.iter().map(ToString::to_string).collect();
        assert_eq!(
            vlans,
            [
                "the VLAN bond0.100 (ID 100 on bond0)",
                "the VLAN storage (ID 200 on bond0)"
            ]
        );
        let order: Vec<&str> = second.links.iter().map(|l| l.link.name.as_str()).collect();
        assert_eq!(order, ["eth0", "eth1", "bond0"]);
        assert_eq!(
            actions(&second.links[1]),
            [
                "set the link down <- berth.network.interfaces.eth1.bond",
                "make it a port of bond0 <- berth.network.interfaces.eth1.bond",
                "bring the link up <- berth.network.interfaces.eth1",
            ]
        );
        // Slaves never get DHCP, even under a DHCP glob.
        assert_eq!(second.dhcp_deny, ["eth0", "eth1", "bond0"]);
        // A second run leaves enslaved links alone.
        for l in links.iter_mut().filter(|l| l.name.starts_with("eth")) {
            l.master = Some(4);
        }
        links.push(virtual_link(5, "bond0.100", "vlan"));
        links.push(virtual_link(6, "storage", "vlan"));
        let third = plan(&net, &links);
        assert!(third.create.is_empty());
        assert_eq!(
            actions(&third.links[0]),
            ["bring the link up <- berth.network.interfaces.mac=52:54:00:00:00:01"]
        );
        let order: Vec<&str> = third.links.iter().map(|l| l.link.name.as_str()).collect();
        assert_eq!(order, ["eth0", "eth1", "bond0", "bond0.100", "storage"]);
    }

    #[test]
    fn vlans_by_name_and_by_list_and_a_missing_parent_names_its_key() {
        let net = network(serde_json::json!({"interfaces": {
            "eth0": {"vlans": ["10"]},
            "eth1.20": {"address": "192.0.2.20/24"},
            "eth9.30": {"address": "192.0.2.30/24"},
        }}));
        let plan = plan(&net, &machine());
        let created: Vec<String> = plan.create.iter().map(ToString::to_string).collect();
        assert_eq!(
            created,
            [
                "the VLAN eth0.10 (ID 10 on eth0)",
                "the VLAN eth1.20 (ID 20 on eth1)"
            ]
        );
        let problems: Vec<String> = plan.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "berth.network.interfaces.\"eth9.30\": the VLAN eth9.30 cannot be made: its parent eth9 does not exist"
            ]
        );
    }

    #[test]
    fn bridges_from_their_ports_or_their_own_entry_and_routes_and_hooks_in_order() {
        let net = network(serde_json::json!({"interfaces": {
            "eth0": {"bridge": "br0", "pre_up": "echo pre"},
            "br0": {"bridge": true, "dhcp": true,
                    "routes": [{"to": "10.9.0.0/16", "via": "10.0.0.2", "metric": 50}],
                    "post_up": ["echo one", "echo two"]},
            "eth1": {"bond": "bond7"},
        }}));
        let first = plan(&net, &machine());
        let created: Vec<String> = first.create.iter().map(ToString::to_string).collect();
        assert_eq!(created, ["the bond bond7", "the bridge br0"]);
        let mut links = machine();
        links.push(virtual_link(4, "br0", "bridge"));
        let second = plan(&net, &links);
        assert_eq!(
            actions(&second.links[0]),
            [
                "run \"echo pre\" <- berth.network.interfaces.eth0.pre_up[0]",
                "make it a port of br0 <- berth.network.interfaces.eth0.bridge",
                "bring the link up <- berth.network.interfaces.eth0",
            ]
        );
        // bond7 is not there yet: it is still to be created (a failure to create it is the
        // executor's error), and eth1 waits for it rather than being reported.
        assert_eq!(second.create.len(), 1);
        assert!(second.problems.is_empty(), "{:?}", second.problems);
        assert_eq!(
            actions(&second.links[1]),
            ["bring the link up <- berth.network.interfaces.eth1"]
        );
        let br0 = second.links.iter().find(|l| l.link.name == "br0").unwrap();
        assert!(br0.dhcp);
        assert_eq!(
            actions(br0),
            [
                "bring the link up <- berth.network.interfaces.br0",
                "add the route 10.9.0.0/16 via 10.0.0.2 metric 50 <- berth.network.interfaces.br0.routes[0]",
                "run \"echo one\" <- berth.network.interfaces.br0.post_up[0]",
                "run \"echo two\" <- berth.network.interfaces.br0.post_up[1]",
            ]
        );
        assert!(second.dhcp_allow.contains(&"br0".to_string()));
    }

    #[test]
    fn a_missing_bond_slave_is_named() {
        let net = network(serde_json::json!({"interfaces": {
            "eth7": {"bond": "bond0"},
            "bond0": {"bond_opts": {"mode": "802.3ad"}, "address": "10.0.0.1/24"},
        }}));
        let problems: Vec<String> = plan(&net, &machine())
            .problems
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            ["berth.network.interfaces.eth7: the bond slave eth7 does not exist"]
        );
    }
}
