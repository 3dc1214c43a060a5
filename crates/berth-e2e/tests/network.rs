//! Networking in the booted image (issue #10): the network service applies addresses of both
//! families, the default route, the MTU and DNS from the cloud-config over netlink, picks the
//! NIC by MAC address, runs no DHCP on it, and reports a `mac=` that matches nothing without
//! giving up on the rest. On the same NIC it makes VLANs (the `8021q` module loaded on demand),
//! a bond of one of them (`bonding`, active-backup), a bridge with another as its port
//! (`bridge`), an extra route and a post_up hook. Then, without a reboot: `berth network
//! status --format json`, and `berth config set` + `sudo berth network apply` adding an
//! address, refusing a broken change while keeping the management link's configuration, and
//! removing an address Berth added. The seed's NoCloud network-config is translated but steps
//! aside for the user-data's interfaces; the unmatched `mac=` is in `berth status`'s problems.
//! (The harness gives a VM one NIC; the multi-VM test network tests VLANs and bonds between
//! machines.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use common::{BOOT, check, env, poweroff};
use serde_json::Value;

/// QEMU gives the first NIC this MAC address; its user network is 10.0.2.0/24, router .2,
/// DNS .3, and it forwards ssh to 10.0.2.15, which is the address configured here.
const USER_DATA: &str = "\
rancher:
  network:
    interfaces:
      uplink:
        match: mac=52:54:00:12:34:56
        address: 10.0.2.15/24
        addresses: [fd00:b::15/64]
        gateway: 10.0.2.2
        gateway_ipv6: fd00:b::1
        mtu: 1400
        vlans: 100,200,300
      eth0.100:
        address: 172.16.100.10/24
        routes:
          - {to: 10.99.0.0/16, via: 172.16.100.1, metric: 10}
      eth0.200:
        bond: bond0
      bond0:
        address: 172.16.200.10/24
        mtu: 1400
        bond_opts:
          mode: active-backup
          miimon: \"100\"
      eth0.300:
        bridge: br0
      br0:
        bridge: true
        address: 172.16.30.10/24
        post_up:
          - echo $IFACE is up > /run/berth/e2e-post-up
      spare:
        match: mac=52:54:00:ab:cd:ef
        address: 192.0.2.15/24
    dns:
      nameservers: [10.0.2.3]
      search: [berth.test]
";

/// A datasource network configuration that would give eth0 another address.
const NETWORK_CONFIG: &str = "\
version: 2
ethernets:
  eth0:
    addresses: [10.0.2.99/24]
    gateway4: 10.0.2.2
";

fn json(m: &berth_e2e::machine::Machine, cmd: &str) -> Vec<Value> {
    let out = check(m, cmd, m.run(cmd));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{cmd}: {e}: {out}"))
}

#[test]
fn vm_static_network_mac_match_mtu_dns_and_no_dhcp() {
    let env = env("network");
    let mut vm = env.kernel_vm("");
    // The seed also carries a NoCloud network-config: the user-data configures interfaces,
    // so it is translated and saved but not used (the user's configuration wins).
    let seed = env.dir.join("cidata.iso");
    berth_e2e::qemu::make_cidata_with_network(
        &env.dir.join("cidata"),
        &env.user_data("berth-static", USER_DATA),
        "instance-id: network\nlocal-hostname: berth-e2e\n",
        Some(NETWORK_CONFIG),
        &seed,
    )
    .unwrap();
    vm.cidata = Some(seed);
    let m = env.start("network", vm);
    check(&m, "ssh to the static address", m.wait_ssh(BOOT));

    let link = json(&m, "ip -j link show eth0").remove(0);
    assert_eq!(link["mtu"], 1400, "{link}");
    let addrs = json(&m, "ip -j addr show eth0").remove(0);
    let have: Vec<String> = addrs["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    for want in ["10.0.2.15/24", "fd00:b::15/64"] {
        assert!(have.iter().any(|h| h == want), "{want} missing: {have:?}");
    }
    let v4 = json(&m, "ip -j route show default");
    assert_eq!(
        (v4.len(), &v4[0]["gateway"], &v4[0]["dev"]),
        (1, &"10.0.2.2".into(), &"eth0".into()),
        "{v4:?}"
    );
    let v6 = json(&m, "ip -j -6 route show default");
    assert!(
        v6.iter()
            .any(|r| r["gateway"] == "fd00:b::1" && r["dev"] == "eth0"),
        "{v6:?}"
    );

    let resolv = check(&m, "resolv.conf", m.run("cat /etc/resolv.conf"));
    assert!(
        resolv.contains("search berth.test\n") && resolv.contains("nameserver 10.0.2.3\n"),
        "{resolv}"
    );

    let log = check(&m, "network log", m.run("sudo system-docker logs network 2>&1"));
    // The first run has only the defaults (DHCP on eth*); cloud-init then restarts the service
    // with the user-data. Its last run is what counts.
    let last_run = log
        .rsplit("netconf: applying berth.network")
        .next()
        .unwrap_or_default();
    assert!(
        log.contains("netconf: applying berth.network"),
        "no start line: {log}"
    );
    assert!(
        last_run.contains("netconf: eth0 (static) from berth.network.interfaces.uplink"),
        "{log}"
    );
    assert!(
        last_run.contains(
            "netconf: berth.network.interfaces.spare.match: no interface has the MAC address 52:54:00:ab:cd:ef"
        ),
        "{log}"
    );
    assert!(last_run.contains("netconf: no interface uses DHCP"), "{log}");
    assert!(!last_run.contains("DHCP on"), "dhcpcd ran: {log}");
    // The service stays up (restart: always would otherwise loop).
    let state = check(
        &m,
        "network state",
        m.run("sudo system-docker inspect -f '{{.State.Status}} {{.RestartCount}}' network"),
    );
    assert_eq!(state.trim(), "running 0");

    // The seed's network-config was translated into its layer, which steps aside.
    let layer = check(
        &m,
        "datasource network layer",
        m.run("sudo cat /var/lib/berth/conf/datasource-network.yml"),
    );
    assert!(layer.contains("\"10.0.2.99/24\""), "{layer}");
    assert!(!have.iter().any(|h| h == "10.0.2.99/24"), "{have:?}");

    // The interface problem reaches the boot problems: `berth status` lists it.
    let status = check(&m, "berth status", m.run("sudo berth status --format json"));
    let status: Value = serde_json::from_str(&status).unwrap_or_else(|e| panic!("{e}: {status}"));
    assert!(
        status["problems"].as_array().unwrap().iter().any(|p| p
            == "network: berth.network.interfaces.spare.match: no interface has the MAC address 52:54:00:ab:cd:ef"),
        "{status}"
    );

    virtual_links_bond_bridge_route_and_hook(&m, last_run);
    status_and_live_reload(&m);
    poweroff(&m);
}

fn link(m: &berth_e2e::machine::Machine, name: &str) -> Value {
    json(m, &format!("ip -j -d addr show dev {name}")).remove(0)
}

fn addresses(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn virtual_links_bond_bridge_route_and_hook(m: &berth_e2e::machine::Machine, log: &str) {
    let vlan = link(m, "eth0.100");
    assert_eq!(vlan["linkinfo"]["info_kind"], "vlan", "{vlan}");
    assert_eq!(vlan["linkinfo"]["info_data"]["id"], 100, "{vlan}");
    assert_eq!(addresses(&vlan), ["172.16.100.10/24"]);
    let route = json(m, "ip -j route show 10.99.0.0/16");
    assert_eq!(
        (&route[0]["gateway"], &route[0]["dev"], &route[0]["metric"]),
        (&"172.16.100.1".into(), &"eth0.100".into(), &10.into()),
        "{route:?}"
    );
    let bond = link(m, "bond0");
    assert_eq!(bond["linkinfo"]["info_data"]["mode"], "active-backup", "{bond}");
    assert_eq!(bond["linkinfo"]["info_data"]["miimon"], 100, "{bond}");
    assert_eq!(addresses(&bond), ["172.16.200.10/24"]);
    assert_eq!(link(m, "eth0.200")["master"], "bond0", "{log}");
    let bridge = link(m, "br0");
    assert_eq!(bridge["linkinfo"]["info_kind"], "bridge", "{bridge}");
    assert_eq!(addresses(&bridge), ["172.16.30.10/24"]);
    assert_eq!(link(m, "eth0.300")["master"], "br0", "{log}");
    let hook = check(m, "post_up hook", m.run("cat /run/berth/e2e-post-up"));
    assert_eq!(hook, "br0 is up\n");
    let modules = check(m, "modules", m.run("cat /proc/modules"));
    for module in ["8021q ", "bonding ", "bridge "] {
        assert!(modules.contains(module), "{module}not loaded: {modules}");
    }
}

fn status_and_live_reload(m: &berth_e2e::machine::Machine) {
    let out = check(m, "status", m.run("berth network status --format json"));
    let status: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let links = status["links"].as_array().unwrap();
    let by_name = |n: &str| {
        links
            .iter()
            .find(|l| l["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {out}"))
    };
    assert_eq!(by_name("eth0")["mac"], "52:54:00:12:34:56");
    assert_eq!(by_name("eth0")["mtu"], 1400);
    assert_eq!(by_name("eth0.200")["master"], "bond0");
    assert_eq!(by_name("br0")["kind"], "bridge");
    assert!(
        status["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["to"] == "default" && r["via"] == "10.0.2.2" && r["dev"] == "eth0"),
        "{out}"
    );
    assert_eq!(status["dns"]["nameservers"], serde_json::json!(["10.0.2.3"]));
    let table = check(m, "status table", m.run("berth network status"));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("eth0 ") && l.contains("10.0.2.15/24")),
        "{table}"
    );
    // Changing the network needs root, and says so.
    let denied = check(m, "apply as a user", m.ssh("berth network apply"));
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("sudo berth network apply"));

    check(
        m,
        "config set",
        m.run(
            "sudo berth config set berth.network.interfaces.uplink.addresses '[fd00:b::15/64, 10.0.2.16/24]'",
        ),
    );
    let out = check(m, "apply", m.run("sudo berth network apply"));
    assert!(out.contains("eth0: added the address 10.0.2.16/24"), "{out}");
    assert!(addresses(&link(m, "eth0")).contains(&"10.0.2.16/24".to_string()));

    // A change the kernel refuses (a multicast address) that also drops 10.0.2.16: eth0 has
    // the default route, so it keeps what it had, and the command says why and fails.
    check(
        m,
        "broken config set",
        m.run("sudo berth config set berth.network.interfaces.uplink.addresses '[fd00:b::15/64, ff02::1234/64]'"),
    );
    let broken = check(m, "broken apply", m.ssh("sudo berth network apply"));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(!broken.status.success(), "{stderr}");
    assert!(
        stderr.contains("kept: eth0 carries the default route and kept its previous configuration")
            && stderr.contains("cannot add the address ff02::1234/64"),
        "{stderr}"
    );
    let eth0 = addresses(&link(m, "eth0"));
    assert!(
        eth0.contains(&"10.0.2.15/24".to_string()) && eth0.contains(&"10.0.2.16/24".to_string()),
        "{eth0:?}"
    );

    // Fixed: the address Berth added and the configuration dropped goes.
    check(
        m,
        "fixed config set",
        m.run("sudo berth config set berth.network.interfaces.uplink.addresses '[fd00:b::15/64]'"),
    );
    let out = check(m, "fixed apply", m.run("sudo berth network apply"));
    assert!(out.contains("eth0: removed the address 10.0.2.16/24"), "{out}");
    let eth0 = addresses(&link(m, "eth0"));
    assert!(!eth0.contains(&"10.0.2.16/24".to_string()), "{eth0:?}");
    check(m, "still reachable", m.run("true"));
}
