//! Deciding what to do: which configured interface each link gets, and the ordered steps
//! (MTU, link up, addresses, default routes) for it. Pure data, no system access: the
//! executor in [`crate::netlink`] carries the plan out, and `--dry-run` could print it.

use berth_config::schema::network::{InterfaceConfig, NetworkConfig};
use berth_config::schema::values::Cidr;
use std::fmt;
use std::net::IpAddr;
use wildmatch::WildMatch;

/// A network link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`, lower case; `None` for links without one.
    pub mac: Option<String>,
}

/// One change to one link, with the configuration key it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// `berth.network.interfaces.eth1.addresses[0]`: where a failure is reported.
    pub key: String,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SetMtu(u16),
    Up,
    AddAddress(Cidr),
    /// A default route of the gateway's family through this link.
    DefaultRoute(IpAddr),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::SetMtu(mtu) => write!(f, "set the MTU to {mtu}"),
            Action::Up => write!(f, "bring the link up"),
            Action::AddAddress(cidr) => write!(f, "add the address {cidr}"),
            Action::DefaultRoute(gw) => write!(f, "add a default route via {gw}"),
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
    /// Links in name order.
    pub links: Vec<LinkPlan>,
    pub problems: Vec<Problem>,
    /// Interface names or globs dhcpcd may run on.
    pub dhcp_allow: Vec<String>,
    /// Links that have static configuration and no `dhcp: true`: dhcpcd must leave them alone
    /// even when a glob in `dhcp_allow` matches them.
    pub dhcp_deny: Vec<String>,
}

const PREFIX: &str = "berth.network.interfaces";

fn key_of(name: &str) -> String {
    if name.contains('.') || name.contains(' ') {
        format!("{PREFIX}.\"{name}\"")
    } else {
        format!("{PREFIX}.{name}")
    }
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

/// Whether dhcpcd runs on an interface: `dhcp`, else when it has no static address.
pub fn wants_dhcp(interface: &InterfaceConfig) -> bool {
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

/// The plan for `network` on a machine with `links`.
pub fn plan(network: &NetworkConfig, links: &[Link]) -> Plan {
    let mut plan = Plan::default();
    if network.interfaces.is_empty() {
        // RancherOS's default, unchanged: DHCP on every Ethernet interface, nothing else.
        plan.dhcp_allow = vec!["eth*".to_string(), "en*".to_string()];
        return plan;
    }
    let mut sorted: Vec<&Link> = links.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut gateway_owner: [Option<String>; 2] = [None, None];
    for link in sorted {
        let Some((name, interface)) = entry_for(network, link) else {
            continue;
        };
        let key = key_of(name);
        let dhcp = wants_dhcp(interface);
        let mut steps = Vec::new();
        if let Some(mtu) = interface.mtu {
            steps.push(Step {
                key: format!("{key}.mtu"),
                action: Action::SetMtu(mtu.get()),
            });
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
        if !is_glob(&p) && matched.is_empty() {
            plan.problems.push(Problem {
                key: where_,
                message: format!("no interface is named {p}"),
            });
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
        }
    }

    fn machine() -> Vec<Link> {
        vec![
            link(3, "eth1", "52:54:00:00:00:02"),
            Link {
                index: 1,
                name: "lo".into(),
                mac: None,
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
}
