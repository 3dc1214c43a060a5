//! Static networking in the booted image (issue #10): the network service applies addresses of
//! both families, the default route, the MTU and DNS from the cloud-config over netlink, picks
//! the NIC by MAC address, runs no DHCP on it, and reports a `mac=` that matches nothing
//! without giving up on the rest.
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
      spare:
        match: mac=52:54:00:ab:cd:ef
        address: 192.0.2.15/24
    dns:
      nameservers: [10.0.2.3]
      search: [berth.test]
";

fn json(m: &berth_e2e::machine::Machine, cmd: &str) -> Vec<Value> {
    let out = check(m, cmd, m.run(cmd));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{cmd}: {e}: {out}"))
}

#[test]
fn vm_static_network_mac_match_mtu_dns_and_no_dhcp() {
    let env = env("network");
    let mut vm = env.kernel_vm("");
    vm.cidata = Some(env.cidata(&env.user_data("berth-static", USER_DATA)));
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

    poweroff(&m);
}
