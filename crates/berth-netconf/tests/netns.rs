//! netconf against the real kernel: each test makes its own network namespace with veth pairs,
//! applies a configuration inside it (on a thread moved there with setns) and reads the result
//! back with `ip -j`. Needs root; never touches the host's own namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use berth_config::schema::network::NetworkConfig;
use serde_json::{Value, json};
use std::process::Command;

/// A network namespace that is deleted when dropped, also when the test fails.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("berth-test-{}-{tag}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status().unwrap();
        assert!(status.success(), "ip netns add {name} (these tests need root)");
        Netns { name }
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.ip(&full)).unwrap()
    }

    /// A veth pair `name` (which netconf configures) and `name-p`, its peer, up so that `name`
    /// has a carrier.
    fn veth(&self, name: &str, mac: &str) {
        let peer = format!("{name}-p");
        self.ip(&[
            "link", "add", name, "address", mac, "type", "veth", "peer", "name", &peer,
        ]);
        self.ip(&["link", "set", &peer, "up"]);
    }

    /// Run netconf's `configure` in this namespace.
    fn configure(&self, network: &NetworkConfig) -> berth_netconf::Outcome {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).unwrap();
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                berth_netconf::configure(network).unwrap()
            })
            .join()
            .unwrap()
        })
    }

    fn addresses(&self, link: &str) -> Vec<String> {
        let links = self.json(&["addr", "show", "dev", link]);
        links[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["scope"] == "global")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect()
    }

    fn link(&self, link: &str) -> Value {
        self.json(&["link", "show", "dev", link]).remove(0)
    }

    fn default_route(&self, family: &str) -> Vec<(String, String)> {
        self.json(&[family, "route", "show", "default"])
            .iter()
            .map(|r| {
                (
                    r["gateway"].as_str().unwrap().to_string(),
                    r["dev"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn network(value: Value) -> NetworkConfig {
    serde_json::from_value(value).unwrap()
}

fn is_up(link: &Value) -> bool {
    link["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

#[test]
fn static_addresses_routes_and_mtu_of_both_families() {
    let ns = Netns::new("static");
    ns.veth("eth0", "52:54:00:00:01:01");
    let config = network(json!({"interfaces": {"eth0": {
        "mtu": 1400,
        "address": "192.0.2.10/24",
        "addresses": ["198.51.100.10/24", "fd00:b::10/64"],
        "gateway": "192.0.2.1",
        "gateway_ipv6": "fd00:b::1",
    }}}));
    let outcome = ns.configure(&config);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.plan.dhcp_deny, ["eth0"]);
    let link = ns.link("eth0");
    assert_eq!(link["mtu"], 1400);
    assert!(is_up(&link), "{link}");
    assert_eq!(
        ns.addresses("eth0"),
        ["192.0.2.10/24", "198.51.100.10/24", "fd00:b::10/64"]
    );
    assert_eq!(
        ns.default_route("-4"),
        [("192.0.2.1".to_string(), "eth0".to_string())]
    );
    assert_eq!(
        ns.default_route("-6"),
        [("fd00:b::1".to_string(), "eth0".to_string())]
    );

    // The service restarts when its configuration changes: running again is not an error.
    let again = ns.configure(&config);
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    assert_eq!(ns.addresses("eth0").len(), 3);
}

#[test]
fn mac_match_picks_the_right_one_of_two_nics() {
    let ns = Netns::new("mac");
    ns.veth("eth0", "52:54:00:00:02:01");
    ns.veth("eth1", "52:54:00:00:02:02");
    let config = network(json!({"interfaces": {
        "uplink": {"match": "mac=52:54:00:00:02:02", "address": "192.0.2.20/24"},
    }}));
    let outcome = ns.configure(&config);
    assert!(
        outcome.errors.is_empty() && outcome.plan.problems.is_empty(),
        "{outcome:?}"
    );
    assert_eq!(ns.addresses("eth1"), ["192.0.2.20/24"]);
    assert!(ns.addresses("eth0").is_empty());
    assert!(is_up(&ns.link("eth1")) && !is_up(&ns.link("eth0")));
}

#[test]
fn a_bad_interface_leaves_the_others_configured() {
    let ns = Netns::new("bad");
    ns.veth("eth0", "52:54:00:00:03:01");
    ns.veth("eth1", "52:54:00:00:03:02");
    // A macvlan cannot have a larger MTU than the link under it (1500): the kernel refuses 9000.
    ns.ip(&[
        "link", "add", "link", "eth1-p", "name", "eth2", "type", "macvlan", "mode", "bridge",
    ]);
    let config = network(json!({"interfaces": {
        // A multicast address is valid CIDR but no interface may have it: the kernel refuses.
        "eth0": {"addresses": ["ff02::1234/64", "192.0.2.30/24"]},
        "eth1": {"address": "198.51.100.30/24", "gateway": "198.51.100.1"},
        "mac=52:54:00:00:03:99": {"address": "203.0.113.1/24"},
        "eth2": {"mtu": 9000, "address": "203.0.113.2/24"},
    }}));
    let outcome = ns.configure(&config);
    let errors: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "berth.network.interfaces.eth0.addresses[0]: eth0: cannot add the address ff02::1234/64: \
             Invalid argument (os error 22)",
            "berth.network.interfaces.eth2.mtu: eth2: cannot set the MTU to 9000: Invalid argument (os error 22)",
        ]
    );
    let problems: Vec<String> = outcome.plan.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "berth.network.interfaces.mac=52:54:00:00:03:99: no interface has the MAC address 52:54:00:00:03:99"
        ]
    );
    // The step after the failed one, and the other interface, still happened.
    assert_eq!(ns.addresses("eth0"), ["192.0.2.30/24"]);
    assert_eq!(ns.addresses("eth1"), ["198.51.100.30/24"]);
    assert_eq!(ns.addresses("eth2"), ["203.0.113.2/24"]);
    assert!(is_up(&ns.link("eth2")));
    assert_eq!(
        ns.default_route("-4"),
        [("198.51.100.1".to_string(), "eth1".to_string())]
    );
}
