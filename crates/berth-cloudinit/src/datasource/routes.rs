//! Whether the machine has a default route yet (DHCP may still be running when cloud-init
//! starts), from `/proc/net/route` and `/proc/net/ipv6_route`.

use std::path::{Path, PathBuf};

/// The kernel's routing tables as `/proc/net` shows them.
#[derive(Clone, Debug)]
pub struct RouteTable {
    pub proc_net: PathBuf,
}

impl RouteTable {
    pub fn under(root: &Path) -> Self {
        RouteTable {
            proc_net: root.join("proc/net"),
        }
    }

    /// Whether an IPv4 or IPv6 default route is up on an interface other than `lo`.
    pub fn has_default_route(&self) -> bool {
        let read = |name: &str| std::fs::read_to_string(self.proc_net.join(name)).unwrap_or_default();
        has_ipv4_default(&read("route")) || has_ipv6_default(&read("ipv6_route"))
    }
}

const RTF_UP: u32 = 0x1;
const RTF_REJECT: u32 = 0x200;

/// `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`, hex fields.
pub(crate) fn has_ipv4_default(table: &str) -> bool {
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 8
            && f[0] != "lo"
            && f[1] == "00000000"
            && f[7] == "00000000"
            && u32::from_str_radix(f[3], 16).is_ok_and(|flags| flags & RTF_UP != 0)
    })
}

/// `dest dest_len src src_len next_hop metric refcnt use flags iface`, hex fields.
pub(crate) fn has_ipv6_default(table: &str) -> bool {
    table.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 10
            && f[9] != "lo"
            && f[0].len() == 32
            && f[0].bytes().all(|b| b == b'0')
            && f[1] == "00"
            && u32::from_str_radix(f[8], 16).is_ok_and(|flags| flags & RTF_UP != 0 && flags & RTF_REJECT == 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    #[test]
    fn ipv4() {
        let with = format!(
            "{HEADER}eth0\t00000000\t0102000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\neth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"
        );
        assert!(has_ipv4_default(&with));
        let without = format!("{HEADER}eth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n");
        assert!(!has_ipv4_default(&without));
        assert!(!has_ipv4_default(HEADER));
        assert!(!has_ipv4_default(""));
    }

    #[test]
    fn ipv6() {
        let zero = "00000000000000000000000000000000";
        let unreachable_on_lo =
            format!("{zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200       lo\n");
        assert!(!has_ipv6_default(&unreachable_on_lo));
        let real = format!(
            "{zero} 00 {zero} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n"
        );
        assert!(has_ipv6_default(&real));
    }

    #[test]
    fn from_files() {
        let dir = tempfile::tempdir().unwrap();
        let table = RouteTable::under(dir.path());
        assert!(!table.has_default_route());
        std::fs::create_dir_all(dir.path().join("proc/net")).unwrap();
        std::fs::write(
            dir.path().join("proc/net/route"),
            format!("{HEADER}eth0\t00000000\t0102000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"),
        )
        .unwrap();
        assert!(table.has_default_route());
    }
}
