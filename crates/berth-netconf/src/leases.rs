//! The DHCP leases of all interfaces together: dhcpcd runs its hook once per event and
//! interface; each run records or drops that interface's lease in `/run/berth/leases/`, and
//! resolv.conf is written from every lease still current (plus the configured DNS, which wins),
//! so that one NIC's event never takes away another's name servers.

use crate::status::Lease;
use std::path::Path;

/// What a dhcpcd hook event (`$reason`) means for the interface's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseEvent {
    /// A lease was obtained or renewed: record it.
    Record,
    /// The lease is gone (expired, refused, released, link lost, dhcpcd stopping): drop it.
    Drop,
    /// Nothing about IPv4 leases (IPv6 events, carrier up, tests, ...).
    Ignore,
}

pub fn lease_event(reason: &str) -> LeaseEvent {
    match reason {
        "BOUND" | "RENEW" | "REBIND" | "REBOOT" | "STATIC" | "INFORM" => LeaseEvent::Record,
        "EXPIRE" | "NAK" | "RELEASE" | "STOP" | "NOCARRIER" | "DEPARTED" | "FAIL" => LeaseEvent::Drop,
        _ => LeaseEvent::Ignore,
    }
}

/// Record `lease` as `<interface>.json` in `dir`, atomically (a reader sees the old record or
/// the new one, never half of one).
pub fn record(dir: &Path, lease: &Lease) -> std::io::Result<()> {
    // Made here, not by the writer (which makes it private): `berth network status` reads it.
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec(lease).map_err(std::io::Error::other)?;
    berth_config::write_atomically(&dir.join(format!("{}.json", lease.interface)), &json, 0o644)
}

/// Forget `interface`'s lease (no error when there was none).
pub fn drop(dir: &Path, interface: &str) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(format!("{interface}.json"))) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The name servers and search domains of every lease still valid at `now` (seconds since
/// the epoch), in interface name order, each once.
pub fn merged_dns(leases: &[Lease], now: u64) -> (Vec<String>, Vec<String>) {
    let mut leases: Vec<&Lease> = leases
        .iter()
        .filter(|l| l.lease_seconds.is_none_or(|s| l.obtained.saturating_add(s) > now))
        .collect();
    leases.sort_by(|a, b| a.interface.cmp(&b.interface));
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    for lease in leases {
        for s in &lease.nameservers {
            if !servers.contains(s) {
                servers.push(s.clone());
            }
        }
        for d in &lease.search {
            if !search.contains(d) {
                search.push(d.clone());
            }
        }
    }
    (servers, search)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::read_leases;

    fn lease(interface: &str, servers: &[&str], search: &[&str], obtained: u64) -> Lease {
        Lease {
            interface: interface.into(),
            nameservers: servers.iter().map(|s| s.to_string()).collect(),
            search: search.iter().map(|s| s.to_string()).collect(),
            lease_seconds: Some(600),
            obtained,
            ..Lease::default()
        }
    }

    #[test]
    fn two_leases_merge_and_the_one_left_keeps_its_servers() {
        let dir = tempfile::tempdir().unwrap();
        record(
            dir.path(),
            &lease("eth1", &["192.0.2.53", "10.0.0.53"], &["b.test"], 1000),
        )
        .unwrap();
        record(dir.path(), &lease("eth0", &["10.0.0.53"], &["a.test"], 1000)).unwrap();
        // A whole record that a writer killed before its rename left behind is not a lease.
        let orphan = serde_json::to_vec(&lease("eth0", &["203.0.113.9"], &[], 1000)).unwrap();
        std::fs::write(dir.path().join(".eth0.json.tmp.4242"), orphan).unwrap();
        let both = merged_dns(&read_leases(dir.path()), 1100);
        assert_eq!(both.0, ["10.0.0.53", "192.0.2.53"]);
        assert_eq!(both.1, ["a.test", "b.test"]);

        // eth0's lease expires (dhcpcd's EXPIRE): eth1's servers stay.
        assert_eq!(lease_event("EXPIRE"), LeaseEvent::Drop);
        drop(dir.path(), "eth0").unwrap();
        let left = merged_dns(&read_leases(dir.path()), 1100);
        assert_eq!(
            left,
            (
                vec!["192.0.2.53".to_string(), "10.0.0.53".to_string()],
                vec!["b.test".to_string()]
            )
        );
        // An IPv6 event on eth1 changes nothing; dropping an unknown lease is no error.
        assert_eq!(lease_event("BOUND6"), LeaseEvent::Ignore);
        drop(dir.path(), "eth7").unwrap();
    }

    #[test]
    fn a_lease_past_its_time_no_longer_counts() {
        let leases = [
            lease("eth0", &["10.0.0.53"], &[], 1000),
            lease("eth1", &["192.0.2.53"], &[], 2000),
        ];
        assert_eq!(merged_dns(&leases, 1700).0, ["192.0.2.53"]);
        assert_eq!(merged_dns(&leases, 1500).0, ["10.0.0.53", "192.0.2.53"]);
    }
}
