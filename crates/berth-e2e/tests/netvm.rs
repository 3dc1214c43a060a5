//! Several Berth machines on one private segment (issue #10): a network namespace with a
//! bridge and dnsmasq that this test creates ([`berth_e2e::testnet`]). A and B get static IPv4
//! and IPv6 addresses on their second NIC (matched by MAC address) and ping each other over
//! both families; C gets its address, name servers and search domain from dnsmasq's lease and
//! pings A. B's network comes from its seed's NoCloud `network-config` (version 2), not from
//! user-data. C boots with its clock an hour behind: its lease names an NTP server on the
//! segment (Debian's chronyd, run by the test), and the ntp service's chrony sets the clock
//! right from it. B has no state partition but `berth.state.autoformat` lists a disk holding
//! data (left alone) and a blank one (formatted, then mounted on /var). C boots the build's
//! `berth.qcow2`, enlarged: its state partition fills the disk. A's segment NIC has MTU 1400;
//! A's proxies reach User Docker, System Docker, the docker service's container environment
//! and the login environment. QEMU's `set_link` takes A's segment link down and up again.
//! A and B have VLAN 100 on their segment NIC and reach each other over it; C, untagged,
//! does not, even with an address in its subnet. A and B each bond two more NICs
//! (`active-backup`): a ping over the bond goes on when QEMU takes A's active slave's link
//! down. C's segment NIC is a port of a bridge, which takes the DHCP lease.
//!
//! Needs root, iproute2 and dnsmasq (see the README). The proxies are addresses on the test
//! segment that nothing listens on: no traffic is ever sent to them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_e2e::machine::Machine;
use berth_e2e::qemu::{self, Vm};
use berth_e2e::testnet::{Dhcp, TapNic, TestNet};
use common::{BOOT, check, env, poweroff};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const MAC_A: &str = "52:54:00:4e:00:0a";
const MAC_B: &str = "52:54:00:4e:00:0b";
const MAC_C: &str = "52:54:00:4e:00:0c";
/// The two NICs A and B each bond (`active-backup`) on the segment: (A's, B's).
const BOND_MACS: [(&str, &str); 2] = [
    ("52:54:00:4e:01:0a", "52:54:00:4e:01:0b"),
    ("52:54:00:4e:02:0a", "52:54:00:4e:02:0b"),
];
const HTTP_PROXY: &str = "http://198.18.0.99:3128";
const HTTPS_PROXY: &str = "http://198.18.0.99:3129";
const NO_PROXY: &str = "localhost,.netvm.test";
/// The size C's copy of berth.qcow2 is enlarged to.
const C_DISK: u64 = 2 << 30;

/// User-data for a machine with a static address on the segment: eth0 (user networking, ssh)
/// keeps DHCP, the NIC with `mac` gets the addresses.
fn static_network(mac: &str, v4: &str, v6: &str, extra: &str) -> String {
    format!(
        "rancher:
  network:
    interfaces:
      eth0:
        dhcp: true
      segment:
        match: mac={mac}
        address: {v4}/24
        addresses: [{v6}/64]
{extra}"
    )
}

/// The same as [`static_network`], as a NoCloud `network-config` (cloud-init's version 2),
/// with B's VLAN 100 on the segment NIC and its bond of two NICs (`active-backup`).
fn datasource_network(mac: &str, v4: &str, v6: &str) -> String {
    let [(_, slave1), (_, slave2)] = BOND_MACS;
    format!(
        "network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
    segment:
      match:
        macaddress: '{mac}'
      addresses: [{v4}/24, '{v6}/64']
    slave1:
      match: {{macaddress: '{slave1}'}}
    slave2:
      match: {{macaddress: '{slave2}'}}
  bonds:
    bond0:
      interfaces: [slave1, slave2]
      parameters: {{mode: active-backup, mii-monitor-interval: 100}}
      addresses: [198.18.2.11/24]
  vlans:
    vlan100:
      id: 100
      link: segment
      addresses: [198.18.100.11/24]
"
    )
}

/// What `/proc/net/bonding/bond0` says: the active slave's name, and each slave's name with
/// its own (permanent) MAC address.
fn bond_state(m: &Machine) -> (String, Vec<(String, String)>) {
    let text = check(m, "bond0", m.run("cat /proc/net/bonding/bond0"));
    let active = text
        .lines()
        .find_map(|l| l.strip_prefix("Currently Active Slave: "))
        .unwrap_or_else(|| panic!("[{}] no active slave: {text}", m.name))
        .trim()
        .to_string();
    let mut slaves = Vec::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("Slave Interface: ") {
            name = Some(n.trim().to_string());
        } else if let (Some(mac), Some(n)) = (line.strip_prefix("Permanent HW addr: "), &name) {
            slaves.push((n.clone(), mac.trim().to_string()));
        }
    }
    assert!(
        text.contains("Bonding Mode: fault-tolerance (active-backup)"),
        "{text}"
    );
    (active, slaves)
}

/// Run `cmd` until it succeeds (the segment may still be settling: DAD, carrier, ARP).
fn until_ok(m: &Machine, cmd: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = m.ssh(cmd).unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if Instant::now() > deadline {
            panic!(
                "[{}] `{cmd}` still fails after {}s:\n{}{}\n--- console tail ---\n{}",
                m.name,
                timeout.as_secs(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                berth_e2e::machine::tail(&m.console(), 20)
            );
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// The guest's interface that has MAC address `mac`, as `ip -j addr` shows it.
fn link_with_mac(m: &Machine, mac: &str) -> Value {
    let out = check(m, "ip addr", m.run("ip -j addr show"));
    let links: Vec<Value> = serde_json::from_str(&out).unwrap();
    links
        .into_iter()
        .find(|l| l["address"] == mac)
        .unwrap_or_else(|| panic!("[{}] no link has {mac}: {out}", m.name))
}

fn addresses(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// An hour before now, in UTC, as QEMU's `-rtc base=` takes it.
fn an_hour_ago() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", "-1 hour", "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn vm_three_machines_on_a_private_segment_static_dhcp_mtu_proxies() {
    let started = Instant::now();
    let env = env("netvm");
    let mut net = TestNet::new("netvm", &env.dir.join("net")).expect("test network");
    net.serve_dhcp(&Dhcp {
        server: (Ipv4Addr::new(198, 18, 0, 1), 24),
        range: (Ipv4Addr::new(198, 18, 0, 100), Ipv4Addr::new(198, 18, 0, 150)),
        dns: vec![Ipv4Addr::new(198, 18, 0, 53)],
        search: vec!["netvm.test".into()],
        ntp: vec![Ipv4Addr::new(198, 18, 0, 1)],
    })
    .expect("dnsmasq");
    net.serve_ntp(&env.artifacts.out, (Ipv4Addr::new(198, 18, 0, 1), 24))
        .expect("chronyd on the test network");

    let user_data = [
        (
            "a",
            static_network(
                MAC_A,
                "198.18.0.10",
                "fd42:4e::a",
                &format!(
                    "        mtu: 1400
        vlans: \"100:vlan100\"
      vlan100:
        address: 198.18.100.10/24
      slave1:
        match: mac={}
        bond: bond0
      slave2:
        match: mac={}
        bond: bond0
      bond0:
        address: 198.18.2.10/24
        bond_opts:
          mode: active-backup
          miimon: \"100\"
    https_proxy: {HTTPS_PROXY}
",
                    BOND_MACS[0].0, BOND_MACS[1].0
                ),
            ),
        ),
        // B: the same network from its seed's NoCloud network-config (version 2) instead,
        // used because its user-data configures no interface.
        ("b", String::new()),
        // C: DHCP only on the segment, so that resolv.conf comes from dnsmasq's lease alone,
        // taken by a bridge whose port is the segment NIC (RancherOS's `bridge: br0`);
        // eth0 is static at the address QEMU's user network forwards ssh to.
        (
            "c",
            format!(
                "rancher:
  network:
    interfaces:
      eth0:
        address: 10.0.2.15/24
        gateway: 10.0.2.2
      segment:
        match: mac={MAC_C}
        bridge: br0
      br0:
        bridge: true
        dhcp: true
"
            ),
        ),
    ];
    let junk = env.dir.join("b-junk.img");
    let junk_bytes: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&junk, &junk_bytes).unwrap();
    let blank = env.dir.join("b-blank.img");
    std::fs::File::create(&blank).unwrap().set_len(256 << 20).unwrap();
    let c_disk = env.dir.join("c-berth.img");
    common::run(std::process::Command::new("qemu-img").args([
        "convert",
        "-q",
        "-f",
        "qcow2",
        "-O",
        "raw",
        &env.artifacts.out.join("berth.qcow2").to_string_lossy(),
        &c_disk.to_string_lossy(),
    ]));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&c_disk)
        .unwrap()
        .set_len(C_DISK)
        .unwrap();
    let mut vms: Vec<(String, Vm, Vec<TapNic>)> = Vec::new();
    for ((name, extra), mac) in user_data.iter().zip([MAC_A, MAC_B, MAC_C]) {
        let seed = env.dir.join(format!("{name}-cidata.iso"));
        let network_config = (*name == "b").then(|| datasource_network(MAC_B, "198.18.0.11", "fd42:4e::b"));
        qemu::make_cidata_with_network(
            &env.dir.join(format!("{name}-cidata")),
            &env.user_data(&format!("netvm-{name}"), extra),
            &format!("instance-id: netvm-{name}\nlocal-hostname: netvm-{name}\n"),
            network_config.as_deref(),
            &seed,
        )
        .unwrap();
        // A's http_proxy and no_proxy come from the kernel command line, which init reads
        // before System Docker starts (user-data only reaches it at the next boot).
        let append = match *name {
            "a" => format!("berth.network.http_proxy={HTTP_PROXY} berth.network.no_proxy={NO_PROXY}"),
            // B: no state disk, but two listed for berth.state.autoformat: one holding data
            // (left alone), one blank (formatted and used).
            "b" => "berth.state.autoformat=[/dev/vda,/dev/vdb]".to_string(),
            _ => String::new(),
        };
        let mut vm = if *name == "c" {
            // C boots the build's berth.qcow2 (enlarged, as a cloud's disk would be) under
            // SeaBIOS: its state partition grows to fill the disk at this first boot.
            let mut vm = Vm::new(qemu::Boot::Installed(c_disk.clone()));
            vm.allow_reboot = false;
            vm
        } else {
            env.kernel_vm(&append)
        };
        if *name == "b" {
            vm.disks = vec![junk.clone(), blank.clone()];
        }
        vm.memory_mib = 640;
        vm.cpus = 1;
        vm.cidata = Some(seed);
        if *name == "c" {
            vm.rtc_base = Some(an_hour_ago());
        }
        let mut nics = vec![net.attach(&mut vm, mac)];
        // A and B: two more NICs on the segment, which they bond.
        for (for_a, for_b) in BOND_MACS {
            match *name {
                "a" => nics.push(net.attach(&mut vm, for_a)),
                "b" => nics.push(net.attach(&mut vm, for_b)),
                _ => {}
            }
        }
        vms.push((name.to_string(), vm, nics));
    }
    // The three boot at once.
    let machines: Vec<(Machine, Vec<TapNic>)> = std::thread::scope(|s| {
        let handles: Vec<_> = vms
            .into_iter()
            .map(|(name, vm, nic)| {
                let env = &env;
                s.spawn(move || {
                    let m = env.start(&name, vm);
                    check(&m, "ssh", m.wait_ssh(BOOT));
                    (m, nic)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!(
        "all three answer ssh after {:.0}s",
        started.elapsed().as_secs_f64()
    );
    let [(a, a_nics), (b, _), (c, _)] = <[_; 3]>::try_from(machines).ok().unwrap();
    let a_nic = &a_nics[0];

    // Static addresses of both families on the NIC chosen by MAC address; MTU 1400 on A's.
    let link_a = link_with_mac(&a, MAC_A);
    assert_eq!(link_a["mtu"], 1400, "{link_a}");
    let have = addresses(&link_a);
    for want in ["198.18.0.10/24", "fd42:4e::a/64"] {
        assert!(have.iter().any(|h| h == want), "A: {want} missing: {have:?}");
    }
    // berth.state.autoformat on B: the blank disk became the state partition, the other
    // listed disk, which held data, is byte for byte what it was.
    let state = check(
        &b,
        "autoformatted state",
        b.run("findmnt -n -o SOURCE,FSTYPE /var/lib/berth; grep -h autoformat /var/log/boot/init.log"),
    );
    assert!(
        state.starts_with("/dev/vdb") && state.contains(" ext4\n"),
        "{state}"
    );
    assert!(
        state.contains("/dev/vdb was blank: formatted ext4 BERTH_STATE"),
        "{state}"
    );
    assert!(
        std::fs::read(&junk).unwrap() == junk_bytes,
        "autoformat wrote to a disk holding data"
    );
    let link_b = link_with_mac(&b, MAC_B);
    assert_eq!(link_b["mtu"], 1500, "{link_b}");

    // A and B over both families (retried while DAD and ARP settle).
    until_ok(&a, "sudo ping -c 2 -W 3 198.18.0.11", Duration::from_secs(90));
    until_ok(&a, "sudo ping -6 -c 2 -W 3 fd42:4e::b", Duration::from_secs(90));
    until_ok(&b, "sudo ping -c 2 -W 3 198.18.0.10", Duration::from_secs(60));

    // VLAN 100 on the segment NIC: A's from `vlans: "100:vlan100"`, B's from its
    // network-config's `vlans`; each is a tagged link on that NIC, and they reach each other.
    for (m, mac) in [(&a, MAC_A), (&b, MAC_B)] {
        let parent = link_with_mac(m, mac)["ifname"].as_str().unwrap().to_string();
        let out = check(m, "vlan100", m.run("ip -j -d link show vlan100"));
        let vlan: Vec<Value> = serde_json::from_str(&out).unwrap();
        let info = &vlan[0]["linkinfo"];
        assert_eq!(
            (&info["info_kind"], &info["info_data"]["id"], &vlan[0]["link"]),
            (&"vlan".into(), &100.into(), &parent.clone().into()),
            "[{}] {out}",
            m.name
        );
    }
    until_ok(&a, "sudo ping -c 2 -W 3 198.18.100.11", Duration::from_secs(60));
    until_ok(&b, "sudo ping -c 2 -W 3 198.18.100.10", Duration::from_secs(30));

    // A bond of two NICs each (active-backup, miimon), in a subnet of its own. A ping runs
    // from A while QEMU takes the link of A's active slave down: the other slave takes over
    // and the ping goes on.
    until_ok(&a, "sudo ping -c 2 -W 3 198.18.2.11", Duration::from_secs(60));
    let (active, slaves) = bond_state(&a);
    assert_eq!(slaves.len(), 2, "{slaves:?}");
    let active_mac = &slaves.iter().find(|(n, _)| *n == active).unwrap().1;
    let other = slaves.iter().find(|(n, _)| *n != active).unwrap().0.clone();
    let active_nic = a_nics.iter().find(|n| &n.mac == active_mac).unwrap();
    check(
        &a,
        "a ping over the bond",
        a.run("sudo sh -c 'ping -n -c 40 -i 0.25 -W 1 198.18.2.11 > /run/bond-ping.log 2>&1 < /dev/null &'"),
    );
    std::thread::sleep(Duration::from_secs(2));
    net.set_link(&a, active_nic, false).unwrap();
    until_ok(
        &a,
        &format!("grep -x 'Currently Active Slave: {other}' /proc/net/bonding/bond0"),
        Duration::from_secs(15),
    );
    until_ok(&a, "sudo ping -c 2 -W 3 198.18.2.11", Duration::from_secs(30));
    let flow = until_ok(
        &a,
        "grep 'packets transmitted' /run/bond-ping.log",
        Duration::from_secs(30),
    );
    let received: u32 = flow
        .split(',')
        .find_map(|f| f.trim().strip_suffix(" received")?.parse().ok())
        .unwrap_or_else(|| panic!("no ping summary: {flow}"));
    // 40 echo requests over 10 s; the link goes down after 2 s: most answered, those after
    // the switch included.
    assert!(
        received >= 30,
        "the flow over the bond stopped at the failover: {flow}"
    );
    eprintln!("bond failover from {active} to {other}: {}", flow.trim());
    // The configuration applied again, live: each slave is still found by its own MAC
    // address (enslaved, both carry the bond's), and the bond keeps both.
    net.set_link(&a, active_nic, true).unwrap();
    let apply = a.ssh("sudo berth network apply").unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&apply.stdout),
        String::from_utf8_lossy(&apply.stderr)
    );
    assert!(
        apply.status.success() && !said.contains("no interface has"),
        "berth network apply on A: {said}"
    );
    let (_, again) = bond_state(&a);
    assert_eq!(again, slaves, "{said}");
    until_ok(&a, "sudo ping -c 2 -W 3 198.18.2.11", Duration::from_secs(30));

    // C: the segment NIC is a port of the bridge br0, which took an address from dnsmasq's
    // range, with name servers and search domain from the lease.
    let c_port = link_with_mac(&c, MAC_C);
    assert_eq!(c_port["master"], "br0", "{c_port}");
    assert!(
        addresses(&c_port).iter().all(|a| a.starts_with("fe80:")),
        "{c_port}"
    );
    let c_name = "br0";
    let c_addr = until_ok(
        &c,
        &format!("ip -4 -o addr show dev {c_name} | grep -o '198\\.18\\.0\\.1[0-5][0-9]/24'"),
        Duration::from_secs(120),
    );
    eprintln!("C ({c_name}) leased {}", c_addr.trim());
    let resolv = until_ok(
        &c,
        &format!(
            "grep -q 198.18.0.53 /etc/resolv.conf && cat /etc/resolv.conf || \
             {{ cat /etc/resolv.conf; sudo system-docker exec network dhcpcd -U {c_name}; false; }}"
        ),
        Duration::from_secs(60),
    );
    assert!(resolv.contains("nameserver 198.18.0.53\n"), "{resolv}");
    assert!(
        resolv
            .lines()
            .any(|l| l.starts_with("search ") && l.split_whitespace().any(|d| d == "netvm.test")),
        "{resolv}"
    );
    let c_ip = c_addr.trim().trim_end_matches("/24");
    assert!(
        net.leases().contains(&format!(" {c_ip} ")),
        "dnsmasq leases: {}",
        net.leases()
    );
    until_ok(&c, "sudo ping -c 2 -W 3 198.18.0.10", Duration::from_secs(60));
    // C has no VLAN: even with an address in VLAN 100's subnet on its untagged bridge, it
    // does not reach A's VLAN address (which B reaches above).
    check(
        &c,
        "an address in VLAN 100's subnet",
        c.run("sudo ip addr add 198.18.100.12/24 dev br0"),
    );
    let out = c.ssh("sudo ping -n -c 3 -W 2 198.18.100.10").unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && said.contains(" 0 received"),
        "C reached A's VLAN address untagged: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // C runs from berth.qcow2: slot A, the state partition (from 1090 MiB) grown to the end
    // of the enlarged disk, User Docker ready.
    let disk = until_ok(
        &c,
        "cat /proc/cmdline; findmnt -n -o SOURCE,FSTYPE /var/lib/berth; cat /sys/class/block/vda6/size; docker info --format '{{.ServerVersion}}'",
        Duration::from_secs(120),
    );
    assert!(
        disk.contains("berth.slot=A") && disk.contains("\n/dev/vda6") && disk.contains(" ext4\n"),
        "{disk}"
    );
    let sectors: u64 = disk
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no partition size in {disk}"));
    assert_eq!(sectors * 512, C_DISK - (1090 << 20) - (1 << 20), "{disk}");

    // C's clock: an hour behind at boot; chrony learns the segment's NTP server from the
    // lease, steps the clock by about an hour, and keeps it within seconds of this machine's.
    let sources = until_ok(
        &c,
        "sudo system-docker exec ntp chronyc -n sources | grep 198.18.0.1",
        Duration::from_secs(60),
    );
    eprintln!("C's chrony: {}", sources.trim());
    let step = until_ok(
        &c,
        "sudo system-docker logs ntp 2>&1 | grep -E 'stepped|wrong by'",
        Duration::from_secs(90),
    );
    let stepped: f64 = step
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .map(f64::abs)
        .fold(0.0, f64::max);
    assert!(stepped > 3000.0, "C's clock was not about an hour off: {step}");
    let guest: i64 = check(&c, "date", c.run("date +%s")).trim().parse().unwrap();
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (guest - host).abs() < 15,
        "C's clock is {}s off after chrony's step",
        guest - host
    );

    // Proxies: User Docker has all three (https_proxy from user-data restarted it), System
    // Docker those of the kernel command line, logins all three.
    let want_user = format!("{HTTP_PROXY}|{HTTPS_PROXY}|{NO_PROXY}");
    let user_docker = until_ok(
        &a,
        &format!(
            "docker info --format '{{{{.HTTPProxy}}}}|{{{{.HTTPSProxy}}}}|{{{{.NoProxy}}}}' | grep -Fx '{want_user}'"
        ),
        Duration::from_secs(120),
    );
    assert_eq!(user_docker.trim(), want_user);
    let system_docker = check(
        &a,
        "system-docker info",
        a.run("sudo system-docker info --format '{{.HTTPProxy}}|{{.NoProxy}}'"),
    );
    assert_eq!(system_docker.trim(), format!("{HTTP_PROXY}|{NO_PROXY}"));
    // The docker service's container carries all three, both spellings, in its Config.Env.
    let inspect = check(
        &a,
        "system-docker inspect docker",
        a.run("sudo system-docker inspect docker --format '{{json .Config.Env}}'"),
    );
    let container_env: Vec<String> = serde_json::from_str(inspect.trim()).unwrap();
    for (key, value) in [
        ("HTTP_PROXY", HTTP_PROXY),
        ("HTTPS_PROXY", HTTPS_PROXY),
        ("NO_PROXY", NO_PROXY),
    ] {
        for key in [key.to_string(), key.to_lowercase()] {
            let want = format!("{key}={value}");
            assert!(container_env.contains(&want), "{want} missing: {container_env:?}");
        }
    }
    let login = check(
        &a,
        "login environment",
        a.run("echo \"$http_proxy|$HTTPS_PROXY|$no_proxy\""),
    );
    assert_eq!(login.trim(), want_user);

    // QEMU's set_link: A's segment NIC loses its carrier and gets it back.
    let a_name = link_a["ifname"].as_str().unwrap().to_string();
    let carrier = format!("cat /sys/class/net/{a_name}/carrier");
    net.set_link(&a, a_nic, false).unwrap();
    until_ok(&a, &format!("test \"$({carrier})\" = 0"), Duration::from_secs(30));
    net.set_link(&a, a_nic, true).unwrap();
    until_ok(&a, &format!("test \"$({carrier})\" = 1"), Duration::from_secs(30));
    until_ok(&a, "sudo ping -c 2 -W 3 198.18.0.11", Duration::from_secs(60));

    std::thread::scope(|s| {
        for m in [&a, &b, &c] {
            s.spawn(move || poweroff(m));
        }
    });
    eprintln!("netvm took {:.0}s", started.elapsed().as_secs_f64());
    drop(net);
    for m in [&a, &b, &c] {
        let _ = std::fs::remove_file(m.dir.join(format!("{}-cidata.iso", m.name)));
    }
    let _ = std::fs::remove_file(&junk);
    let _ = std::fs::remove_file(&c_disk);
    let _ = std::fs::remove_file(&blank);
}
