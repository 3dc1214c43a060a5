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
        self.inside(|| berth_netconf::configure(network).unwrap())
    }

    /// Run `f` on a thread inside this namespace.
    fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).unwrap();
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// Whether this kernel can make links of `kind` (this build machine's kernel has no
    /// bonding or 8021q; the image's kernel has both, and the e2e test uses them there).
    fn supports(&self, kind: &str) -> bool {
        let ok = Command::new("ip")
            .args(["-n", &self.name, "link", "add", "probe0", "type", kind])
            .output()
            .unwrap()
            .status
            .success();
        if ok {
            self.ip(&["link", "del", "probe0"]);
        } else {
            eprintln!("SKIPPED: this kernel cannot make {kind} links");
        }
        ok
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
        self.json(&["-d", "link", "show", "dev", link]).remove(0)
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

fn master(link: &Value) -> Option<String> {
    link["master"].as_str().map(str::to_string)
}

#[test]
fn a_bridge_from_its_port_gets_the_static_address_and_extra_routes() {
    let ns = Netns::new("bridge");
    ns.veth("eth0", "52:54:00:00:04:01");
    ns.veth("eth1", "52:54:00:00:04:02");
    let config = network(json!({"interfaces": {
        "eth0": {"bridge": "br0"},
        "br0": {"bridge": "true", "mtu": 1400, "address": "192.0.2.40/24", "gateway": "192.0.2.1",
                "routes": [{"to": "10.40.0.0/16", "via": "192.0.2.2", "metric": 7},
                           {"to": "fd00:40::/48", "via": "fd00:4::2"}],
                "addresses": ["fd00:4::40/64"]},
        "eth1": {"bridge": "br9"},
    }}));
    let outcome = ns.configure(&config);
    assert!(
        outcome.errors.is_empty() && outcome.plan.problems.is_empty(),
        "{outcome:?}"
    );
    assert_eq!(ns.link("br0")["linkinfo"]["info_kind"], "bridge");
    assert_eq!(master(&ns.link("eth0")).as_deref(), Some("br0"));
    // A bridge named only by its port is made too, and brought up.
    assert_eq!(master(&ns.link("eth1")).as_deref(), Some("br9"));
    assert!(is_up(&ns.link("br9")));
    assert!(ns.addresses("eth0").is_empty());
    assert_eq!(ns.addresses("br0"), ["192.0.2.40/24", "fd00:4::40/64"]);
    assert_eq!(ns.link("br0")["mtu"], 1400);
    let routes = ns.json(&["route", "show", "10.40.0.0/16"]);
    assert_eq!(routes[0]["gateway"], "192.0.2.2");
    assert_eq!(routes[0]["dev"], "br0");
    assert_eq!(routes[0]["metric"], 7);
    let routes = ns.json(&["-6", "route", "show", "fd00:40::/48"]);
    assert_eq!(routes[0]["gateway"], "fd00:4::2");
    assert_eq!(outcome.plan.dhcp_deny, ["eth0", "eth1", "br0", "br9"]);
    // Running again (a service restart) changes nothing and fails nothing.
    let again = ns.configure(&config);
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    assert_eq!(master(&ns.link("eth0")).as_deref(), Some("br0"));
}

#[test]
fn hooks_run_in_order_and_a_failing_one_is_reported_and_the_rest_still_run() {
    let ns = Netns::new("hooks");
    ns.veth("eth0", "52:54:00:00:05:01");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let log = log.display();
    let config = network(json!({"interfaces": {"eth0": {
        "address": "192.0.2.50/24",
        // pre_up sees the link still down; post_up sees its address.
        "pre_up": [format!("ip -br link show dev $IFACE | grep -q DOWN && echo pre $IFACE >> {log}"), "exit 4".to_string()],
        "post_up": [format!("ip -br addr show dev $IFACE | grep -q 192.0.2.50 && echo post >> {log}")],
    }}}));
    let outcome = ns.configure(&config);
    let errors: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "berth.network.interfaces.eth0.pre_up[1]: eth0: cannot run \"exit 4\": the command exited with status 4"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "pre eth0\npost\n"
    );
    assert_eq!(ns.addresses("eth0"), ["192.0.2.50/24"]);
}

#[test]
fn vlans_on_a_parent_by_list_and_by_name() {
    let ns = Netns::new("vlan");
    if !ns.supports("vlan") {
        return;
    }
    ns.veth("eth0", "52:54:00:00:06:01");
    let config = network(json!({"interfaces": {
        "eth0": {"vlans": "100,200:storage"},
        "eth0.100": {"address": "192.0.2.60/24"},
        "storage": {"address": "198.51.100.60/24", "mtu": 1400},
        "eth9.5": {"address": "203.0.113.60/24"},
    }}));
    let outcome = ns.configure(&config);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let problems: Vec<String> = outcome.plan.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "berth.network.interfaces.\"eth9.5\": the VLAN eth9.5 cannot be made: its parent eth9 does not exist"
        ]
    );
    let vlan = ns.link("eth0.100");
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 100);
    assert_eq!(ns.addresses("eth0.100"), ["192.0.2.60/24"]);
    assert_eq!(ns.link("storage")["linkinfo"]["info_data"]["id"], 200);
    assert_eq!(ns.addresses("storage"), ["198.51.100.60/24"]);
    assert!(is_up(&ns.link("eth0")));
}

#[test]
fn a_bond_of_two_slaves_in_active_backup() {
    let ns = Netns::new("bond");
    if !ns.supports("bond") {
        return;
    }
    ns.veth("eth0", "52:54:00:00:07:01");
    ns.veth("eth1", "52:54:00:00:07:02");
    let config = network(json!({"interfaces": {
        "eth0": {"bond": "bond0"},
        "mac=52:54:00:00:07:02": {"bond": "bond0"},
        "eth7": {"bond": "bond0"},
        "bond0": {"address": "192.0.2.70/24",
                  "bond_opts": {"mode": "active-backup", "miimon": "100", "primary": "eth1"}},
    }}));
    let outcome = ns.configure(&config);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let problems: Vec<String> = outcome.plan.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        ["berth.network.interfaces.eth7: the bond slave eth7 does not exist"]
    );
    let bond = ns.link("bond0");
    assert_eq!(bond["linkinfo"]["info_data"]["mode"], "active-backup");
    assert_eq!(bond["linkinfo"]["info_data"]["miimon"], 100);
    assert_eq!(master(&ns.link("eth0")).as_deref(), Some("bond0"));
    assert_eq!(master(&ns.link("eth1")).as_deref(), Some("bond0"));
    assert_eq!(ns.addresses("bond0"), ["192.0.2.70/24"]);
}

#[test]
fn apply_adds_and_removes_what_berth_added_and_a_broken_change_keeps_the_way_in() {
    let ns = Netns::new("reload");
    ns.veth("eth0", "52:54:00:00:08:01");
    ns.veth("eth1", "52:54:00:00:08:02");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let reload =
        |config: &NetworkConfig| ns.inside(|| berth_netconf::reload::reload(config, &state).unwrap());
    let first = network(json!({"interfaces": {
        "eth0": {"address": "192.0.2.80/24", "gateway": "192.0.2.1"},
        "eth1": {"address": "198.51.100.80/24", "routes": [{"to": "10.80.0.0/16", "via": "198.51.100.1"}]},
    }}));
    let report = reload(&first);
    assert!(report.ok(), "{report:?}");
    assert!(
        report
            .changes
            .contains(&"eth0: added the address 192.0.2.80/24".to_string()),
        "{report:?}"
    );
    // An address the administrator added by hand is not Berth's: a reload leaves it.
    ns.ip(&["addr", "add", "203.0.113.9/24", "dev", "eth1"]);

    // An entry that matches nothing is reported, and is no failure of the apply.
    let second = network(json!({"interfaces": {
        "eth0": {"address": "192.0.2.80/24", "addresses": ["192.0.2.81/24"], "gateway": "192.0.2.1"},
        "eth1": {"address": "198.51.100.81/24"},
        "spare": {"match": "mac=52:54:00:00:08:99", "address": "203.0.113.99/24"},
    }}));
    let report = reload(&second);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(
        report.changes,
        [
            "eth1: removed the route 10.80.0.0/16 via 198.51.100.1",
            "eth1: removed the address 198.51.100.80/24",
            "eth0: added the address 192.0.2.81/24",
            "eth1: added the address 198.51.100.81/24",
        ]
    );
    assert_eq!(ns.addresses("eth0"), ["192.0.2.80/24", "192.0.2.81/24"]);
    let mut eth1 = ns.addresses("eth1");
    eth1.sort();
    assert_eq!(eth1, ["198.51.100.81/24", "203.0.113.9/24"]);
    assert!(ns.json(&["route", "show", "10.80.0.0/16"]).is_empty());

    // Broken: the kernel refuses a multicast address. eth0 carries the default route, so it
    // keeps everything it had, and the report says why.
    let broken = network(json!({"interfaces": {
        "eth0": {"addresses": ["ff02::1234/64"], "gateway": "192.0.2.1"},
        "eth1": {"address": "198.51.100.81/24"},
    }}));
    let report = reload(&broken);
    assert!(!report.ok());
    assert_eq!(report.kept.len(), 1, "{report:?}");
    assert!(
        report.kept[0].starts_with("eth0 carries the default route and kept its previous configuration, because: berth.network.interfaces.eth0.addresses[0]: eth0: cannot add the address ff02::1234/64"),
        "{report:?}"
    );
    assert_eq!(ns.addresses("eth0"), ["192.0.2.80/24", "192.0.2.81/24"]);
    assert_eq!(
        ns.default_route("-4"),
        [("192.0.2.1".to_string(), "eth0".to_string())]
    );

    // Fixed again: what the broken run kept is cleaned up now.
    let report = reload(&second);
    assert!(report.ok(), "{report:?}");
    assert_eq!(ns.addresses("eth0"), ["192.0.2.80/24", "192.0.2.81/24"]);

    // Status sees the links, their masters and the routes; DNS and leases from the root.
    std::fs::create_dir_all(dir.path().join("run/berth/leases")).unwrap();
    std::fs::write(
        dir.path().join("run/berth/resolv.conf"),
        "nameserver 192.0.2.53\n",
    )
    .unwrap();
    let status = ns.inside(|| berth_netconf::status::read(dir.path()).unwrap());
    let eth0 = status.links.iter().find(|l| l.name == "eth0").unwrap();
    assert_eq!(eth0.mac.as_deref(), Some("52:54:00:00:08:01"));
    assert_eq!(eth0.mtu, Some(1500));
    assert!(eth0.addresses.contains(&"192.0.2.81/24".to_string()), "{eth0:?}");
    assert!(
        status.routes.iter().any(|r| r.to == "default"
            && r.via.as_deref() == Some("192.0.2.1")
            && r.dev.as_deref() == Some("eth0")),
        "{:?}",
        status.routes
    );
    assert_eq!(status.dns.nameservers, ["192.0.2.53"]);
    let table = berth_netconf::status::render(&status);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("eth0 ") && l.contains("192.0.2.80/24 192.0.2.81/24")),
        "{table}"
    );
}
