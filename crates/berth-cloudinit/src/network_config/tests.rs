//! Fixtures in the shape cloud-init's and OpenStack's documentation describe (written here).

use super::*;
use berth_config::schema::network::NetworkConfig;

fn run(name: &str, text: &str) -> Translated {
    translate(name, &format!("/seed/{name}"), text.as_bytes()).unwrap()
}

/// The translation must be a valid `berth.network`.
fn network(t: &Translated) -> NetworkConfig {
    let layer = t.to_layer("test");
    let doc: Value = serde_saphyr::from_str(&layer).unwrap();
    serde_json::from_value(doc["berth"]["network"].clone()).unwrap_or_else(|e| panic!("{e}: {layer}"))
}

#[test]
fn v1_physical_static_dhcp_nameservers_and_routes() {
    let t = run(
        "network-config",
        "network:
  version: 1
  config:
    - type: physical
      name: eth0
      mac_address: '52:54:00:12:34:AA'
      mtu: 1400
      subnets:
        - type: static
          address: 192.0.2.10
          netmask: 255.255.255.0
          gateway: 192.0.2.1
          dns_nameservers: [192.0.2.53]
          dns_search: [example.com]
          routes:
            - {network: 10.1.0.0, netmask: 255.255.0.0, gateway: 192.0.2.2, metric: 5}
        - type: static6
          address: 2001:db8::10/64
        - type: ipv6_dhcpv6-stateless
          wakeonlan: true
    - type: physical
      name: eth1
      subnets:
        - type: dhcp
    - type: physical
      name: eth2
    - type: nameserver
      address: 198.51.100.53
      search: [example.org]
    - type: route
      destination: 10.2.0.0/16
      gateway: 192.0.2.3
    - type: infiniband
      name: ib0
",
    );
    let eth0 = &t.interfaces["eth0"];
    assert_eq!(eth0["match"], "mac=52:54:00:12:34:aa");
    assert_eq!(eth0["address"], "192.0.2.10/24");
    assert_eq!(eth0["addresses"], json!(["2001:db8::10/64"]));
    assert_eq!(eth0["gateway"], "192.0.2.1");
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["dhcp"], true);
    assert_eq!(
        eth0["routes"],
        json!([{"to": "10.1.0.0/16", "via": "192.0.2.2", "metric": 5}, {"to": "10.2.0.0/16", "via": "192.0.2.3"}])
    );
    assert_eq!(t.interfaces["eth1"]["dhcp"], true);
    // Listed without subnets: brought up, no DHCP (berth.network's default would be DHCP).
    assert_eq!(t.interfaces["eth2"]["dhcp"], false);
    assert_eq!(t.nameservers, ["192.0.2.53", "198.51.100.53"]);
    assert_eq!(t.search, ["example.com", "example.org"]);
    assert_eq!(
        t.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "network.config[0].subnets[2].wakeonlan: not supported by berth.network; ignored",
            "network.config[5].type: \"infiniband\" is not supported by berth.network; ignored",
        ]
    );
    let net = network(&t);
    assert_eq!(net.interfaces.len(), 3);
}

#[test]
fn v1_bond_vlan_bridge() {
    let t = run(
        "network-config",
        "version: 1
config:
  - {type: physical, name: eth0, mac_address: '52:54:00:00:00:01'}
  - {type: physical, name: eth1, mac_address: '52:54:00:00:00:02'}
  - {type: physical, name: eth2}
  - type: bond
    name: bond0
    bond_interfaces: [eth0, eth1]
    params: {bond-mode: active-backup, bond-miimon: 100, bond-xmit-hash-policy: layer3+4, bond-num-grat-arp: 3}
    subnets: [{type: static, address: 10.0.0.10/24, gateway: 10.0.0.1}]
  - {type: vlan, name: bond0.100, vlan_link: bond0, vlan_id: 100, subnets: [{type: static, address: 10.100.0.10/24}]}
  - type: bridge
    name: br0
    bridge_interfaces: [eth2]
    params: {bridge_stp: 'off'}
    subnets: [{type: dhcp4}]
",
    );
    assert_eq!(t.interfaces["eth0"]["bond"], "bond0");
    assert_eq!(t.interfaces["eth1"]["bond"], "bond0");
    assert_eq!(
        t.interfaces["bond0"]["bond_opts"],
        json!({"mode": "active-backup", "miimon": "100", "xmit_hash_policy": "layer3+4"})
    );
    assert_eq!(t.interfaces["bond0"]["vlans"], json!(["100:bond0.100"]));
    assert_eq!(t.interfaces["bond0.100"]["address"], "10.100.0.10/24");
    assert_eq!(t.interfaces["eth2"]["bridge"], "br0");
    assert_eq!(
        (&t.interfaces["br0"]["bridge"], &t.interfaces["br0"]["dhcp"]),
        (&json!(true), &json!(true))
    );
    assert!(
        t.interfaces["eth0"].get("dhcp").is_none(),
        "a slave gets no DHCP setting"
    );
    assert_eq!(
        t.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "config[3].params.bond-num-grat-arp: not a bond option Berth sets; ignored",
            "config[5].params.bridge_stp: bridge parameters are not supported by berth.network; ignored",
        ]
    );
    network(&t);
}

#[test]
fn v2_ethernets_bonds_vlans_bridges() {
    let t = run(
        "network-config",
        "version: 2
ethernets:
  mgmt:
    match: {macaddress: '52:54:00:12:34:56'}
    dhcp4: true
  id0:
    match: {macaddress: '52:54:00:4e:00:0b', driver: virtio_net}
    addresses: [198.18.0.11/24, 'fd42:4e::b/64']
    gateway4: 198.18.0.1
    gateway6: fd42:4e::1
    mtu: 1400
    nameservers: {addresses: [198.18.0.53], search: [netvm.test]}
    routes:
      - {to: 10.9.0.0/16, via: 198.18.0.2, metric: 7}
      - {to: 10.8.0.0/16, via: 198.18.0.2, table: 100}
  lan:
    match: {name: 'enp*'}
  s1: {match: {macaddress: '52:54:00:00:00:01'}}
  s2: {match: {macaddress: '52:54:00:00:00:02'}}
bonds:
  bond0:
    interfaces: [s1, s2]
    parameters: {mode: 802.3ad, mii-monitor-interval: 100, lacp-rate: fast, primary: s1, gratuitous-arp: 2}
    dhcp4: true
vlans:
  vlan100: {id: 100, link: id0, addresses: [10.100.0.11/24]}
bridges:
  br0:
    interfaces: [lan]
    dhcp4: true
    parameters: {stp: false}
",
    );
    assert_eq!(t.interfaces["mgmt"]["match"], "mac=52:54:00:12:34:56");
    assert_eq!(t.interfaces["mgmt"]["dhcp"], true);
    let id0 = &t.interfaces["id0"];
    assert_eq!(id0["match"], "mac=52:54:00:4e:00:0b");
    assert_eq!(
        (&id0["address"], &id0["addresses"]),
        (&json!("198.18.0.11/24"), &json!(["fd42:4e::b/64"]))
    );
    assert_eq!(
        (&id0["gateway"], &id0["gateway_ipv6"], &id0["mtu"]),
        (&json!("198.18.0.1"), &json!("fd42:4e::1"), &json!(1400))
    );
    assert_eq!(id0["vlans"], json!(["100:vlan100"]));
    assert_eq!(t.interfaces["vlan100"]["address"], "10.100.0.11/24");
    assert_eq!(t.interfaces["lan"]["match"], "enp*");
    assert_eq!(t.interfaces["lan"]["bridge"], "br0");
    assert_eq!(t.interfaces["s1"]["bond"], "bond0");
    assert_eq!(
        t.interfaces["bond0"]["bond_opts"],
        json!({"mode": "802.3ad", "miimon": "100", "lacp_rate": "fast", "primary": "s1"})
    );
    assert_eq!(t.nameservers, ["198.18.0.53"]);
    assert_eq!(t.search, ["netvm.test"]);
    assert_eq!(
        t.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "ethernets.id0.match.driver: not supported by berth.network; ignored",
            "ethernets.id0.routes[1].table: not supported by berth.network; ignored",
            "bonds.bond0.parameters.gratuitous-arp: not a bond option Berth sets; ignored",
            "bridges.br0.parameters.stp: bridge parameters are not supported by berth.network; ignored",
        ]
    );
    network(&t);
}

#[test]
fn openstack_network_data() {
    let t = run(
        "network_data.json",
        r#"{
  "links": [
    {"id": "tap0", "type": "phy", "ethernet_mac_address": "FA:16:3E:00:00:01", "mtu": 1450, "vif_id": "x"},
    {"id": "tap1", "type": "ovs", "ethernet_mac_address": "fa:16:3e:00:00:02"},
    {"id": "tap2", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:03"},
    {"id": "bond0", "type": "bond", "bond_links": ["tap1", "tap2"], "bond_mode": "802.3ad", "bond_miimon": 100, "bond_xmit_hash_policy": "layer3+4"},
    {"id": "vlan101", "type": "vlan", "vlan_link": "bond0", "vlan_id": 101, "vlan_mac_address": "fa:16:3e:00:00:04"}
  ],
  "networks": [
    {"id": "n0", "type": "ipv4", "link": "tap0", "ip_address": "10.0.0.5", "netmask": "255.255.255.0",
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                {"network": "10.20.0.0", "netmask": "255.255.0.0", "gateway": "10.0.0.2"}],
     "services": [{"type": "dns", "address": "10.0.0.53"}]},
    {"id": "n1", "type": "ipv6", "link": "tap0", "ip_address": "2001:db8::5", "netmask": "ffff:ffff:ffff:ffff::",
     "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8::1"}]},
    {"id": "n2", "type": "ipv4_dhcp", "link": "vlan101"},
    {"id": "n3", "type": "ipv4", "link": "nowhere", "ip_address": "10.9.9.9", "netmask": "255.255.255.0"}
  ],
  "services": [{"type": "dns", "address": "8.8.8.8"}, {"type": "ntp", "address": "10.0.0.123"}]
}"#,
    );
    let tap0 = &t.interfaces["tap0"];
    assert_eq!(tap0["match"], "mac=fa:16:3e:00:00:01");
    assert_eq!(tap0["mtu"], 1450);
    assert_eq!(
        (&tap0["address"], &tap0["addresses"]),
        (&json!("10.0.0.5/24"), &json!(["2001:db8::5/64"]))
    );
    assert_eq!(
        (&tap0["gateway"], &tap0["gateway_ipv6"]),
        (&json!("10.0.0.1"), &json!("2001:db8::1"))
    );
    assert_eq!(tap0["routes"], json!([{"to": "10.20.0.0/16", "via": "10.0.0.2"}]));
    assert_eq!(t.interfaces["tap1"]["bond"], "bond0");
    assert_eq!(
        t.interfaces["bond0"]["bond_opts"],
        json!({"mode": "802.3ad", "miimon": "100", "xmit_hash_policy": "layer3+4"})
    );
    assert_eq!(t.interfaces["bond0"]["vlans"], json!(["101:vlan101"]));
    assert_eq!(t.interfaces["bond0"]["dhcp"], false);
    assert_eq!(t.interfaces["vlan101"]["dhcp"], true);
    assert_eq!(t.nameservers, ["10.0.0.53", "8.8.8.8"]);
    assert_eq!(
        t.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["networks[3].link: no link has the id \"nowhere\"; ignored"]
    );
    network(&t);
}

#[test]
fn unreadable_files_say_which_and_why() {
    let e = translate("network-config", "/seed/network-config", b"version: 3\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/seed/network-config: version: 3 is not a network-config version Berth reads (1 or 2)"
    );
    let e = translate("network_data.json", "/seed/network_data.json", b"{").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/seed/network_data.json: not valid JSON"),
        "{e}"
    );
    let e = translate(
        "network-config",
        "/seed/network-config",
        b"version: 2\nethernets: [1]\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("/seed/network-config: not valid YAML"),
        "{e}"
    );
}

#[test]
fn netmasks() {
    assert_eq!(prefix_len("255.255.255.0"), Ok(24));
    assert_eq!(prefix_len("ffff:ffff:ffff:ffff::"), Ok(64));
    assert_eq!(prefix_len("0.0.0.0"), Ok(0));
    assert!(prefix_len("255.0.255.0").is_err());
    assert!(contains("10.0.0.5/24", "10.0.0.1".parse().unwrap()));
    assert!(!contains("10.0.0.5/24", "10.0.1.1".parse().unwrap()));
}

proptest::proptest! {
    /// Untrusted input: any bytes give a translation or an error, never a panic.
    #[test]
    fn any_input_is_translated_or_refused(
        text in "(version: [12]\n)?(network:\n  )?[a-z0-9:{}\\[\\],./ \n'\"-]{0,200}",
        json in proptest::bool::ANY,
    ) {
        let name = if json { "network_data.json" } else { "network-config" };
        if let Ok(t) = translate(name, "/seed/x", text.as_bytes()) {
            let _ = t.to_layer("x");
        }
    }
}
