//! Settings the schema accepts but Berth does not act on yet. A layer that sets one gets a
//! warning with the key path and position, so nothing is dropped silently (RancherOS users'
//! oldest complaint); the value is kept, and applies once Berth grows the feature.

use crate::diagnostic::Finding;
use crate::node::{Kind, Node};

/// Key patterns (`*` matches any one map key) and why each is not applied.
const NOT_APPLIED: &[(&str, &str)] = &[
    (
        "berth.state.fstype",
        "the state partition's filesystem is detected; this setting is not used yet",
    ),
    (
        "berth.docker.ca_key",
        "User Docker needs the CA's certificate, not its key: the key is not used (give \
         ca_cert, server_cert and server_key, or let Berth make them)",
    ),
    (
        "berth.ssh.keys",
        "host keys are generated and kept in /var/lib/berth/ssh/ on the state disk; \
         supplying them is not supported yet",
    ),
];

/// Whether a value says something beyond the defaults (the defaults layer sets some of these
/// keys to their empty values).
fn is_set(key: &str, node: &Node) -> bool {
    match &node.kind {
        Kind::Null => false,
        Kind::Bool(b) => *b,
        Kind::Str(s) => !(s.is_empty() || (key == "fstype" && s == "auto")),
        Kind::Seq(items) => !items.is_empty(),
        Kind::Map(map) => !map.is_empty(),
        _ => true,
    }
}

/// Warnings for the not-yet-applied settings a layer's tree sets. (Every interface setting
/// of `berth.network` is applied by netconf; RancherOS keys Berth has no model for, such as
/// `dhcp_args` or `wifi_network`, are reported where RancherOS keys are mapped.)
pub(crate) fn findings(layer: &Node) -> Vec<Finding> {
    report(layer, NOT_APPLIED)
}

/// Settings init reads in stage 1, before the state partition (where every configuration
/// file but the kernel command line lives) is mounted.
const STAGE1_ONLY: &[(&str, &str)] = &[(
    "berth.state.autoformat",
    "init reads it before the state partition is mounted, from the kernel command line only: \
     put berth.state.autoformat=[/dev/sda,/dev/vda] on the kernel command line",
)];

/// Warnings for stage-1 settings written in a layer that stage 1 does not read (every layer
/// but the built-in defaults and the kernel command line).
pub(crate) fn stage1_findings(layer: &Node) -> Vec<Finding> {
    report(layer, STAGE1_ONLY)
}

fn report(layer: &Node, table: &[(&str, &str)]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (pattern, why) in table {
        let segments: Vec<&str> = pattern.split('.').collect();
        visit(layer, &segments, String::new(), &mut |path, node| {
            let key = path.rsplit('.').next().unwrap_or_default();
            if is_set(key, node) {
                out.push(Finding::warning(node.report_loc(), path, *why));
            }
        });
    }
    out
}

fn visit(node: &Node, segments: &[&str], path: String, found: &mut dyn FnMut(String, &Node)) {
    let Some((first, rest)) = segments.split_first() else {
        found(path, node);
        return;
    };
    let Some(map) = node.as_map() else { return };
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    if *first == "*" {
        for (key, child) in map {
            visit(child, rest, join(key), found);
        }
    } else if let Some(child) = map.get(*first) {
        visit(child, rest, join(first), found);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Severity, validate_text};

    fn warnings(text: &str) -> Vec<String> {
        validate_text(text, "test.yml")
            .into_iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn static_network_settings_are_applied_so_not_reported() {
        let got = warnings(
            "#cloud-config\nberth:\n  network:\n    interfaces:\n      eth0:\n        address: 192.0.2.10/24\n        addresses: [fd00::10/64]\n        gateway: 192.0.2.1\n        gateway_ipv6: fd00::1\n        mtu: 1400\n      \"mac=52:54:00:12:34:56\":\n        dhcp: true\n      uplink:\n        match: mac=52:54:00:12:34:57\n",
        );
        assert_eq!(got, Vec::<String>::new());
    }

    #[test]
    fn a_gateway_of_the_wrong_family_is_reported_where_it_is_written() {
        let got = warnings(
            "berth:\n  network:\n    interfaces:\n      eth0:\n        gateway: fd00::1\n        gateway_ipv6: 192.0.2.1\n",
        );
        assert_eq!(
            got,
            [
                "warning: test.yml:5:9: berth.network.interfaces.eth0.gateway: fd00::1 is an IPv6 \
                 address: it is not used; write it as `gateway_ipv6`",
                "warning: test.yml:6:9: berth.network.interfaces.eth0.gateway_ipv6: 192.0.2.1 is an \
                 IPv4 address: it is not used; write it as `gateway`",
            ]
        );
    }

    #[test]
    fn rancher_keys_are_reported_under_their_berth_path() {
        let got = warnings(
            "#cloud-config\nrancher:\n  network:\n    interfaces:\n      \"mac=52:54:00:12:34:56\":\n        dhcp: true\n        wifi_network: home\n  ssh:\n    keys:\n      ssh_host_rsa_key: x\n",
        );
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got.iter()
                .any(|w| w.contains("rancher.network.interfaces.mac=52:54:00:12:34:56.wifi_network")),
            "Wi-Fi stays unsupported: {got:#?}"
        );
        assert!(got.iter().any(|w| w.contains("berth.ssh.keys")), "{got:#?}");
        // The key's value is a secret: the warning names the key, never the value.
        assert!(got.iter().all(|w| !w.contains(": x")), "{got:#?}");
    }

    #[test]
    fn partition_references_and_tls_certificates_are_accepted() {
        // PARTLABEL= and PARTUUID= are resolved by berth-blockdev from the partition table;
        // berth.docker.tls and its certificates are applied by the docker service.
        let got = warnings(
            "berth:\n  state:\n    dev: PARTLABEL=state\n  oem:\n    dev: PARTUUID=0b1c-01\n  docker:\n    tls: true\n    server_key: KEY\n  registry_auths:\n    r.example: {auth: dTpw}\n",
        );
        assert_eq!(got, Vec::<String>::new());
        // A CA key is not needed and not used: said, without its value.
        let got = warnings("berth:\n  docker:\n    ca_key: SECRET-KEY\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].contains("berth.docker.ca_key: User Docker needs the CA's certificate"),
            "{got:#?}"
        );
        assert!(!got[0].contains("SECRET-KEY"), "{got:#?}");
    }

    #[test]
    fn autoformat_outside_the_kernel_command_line_is_reported() {
        let got = warnings("berth:\n  state:\n    autoformat: [/dev/sda]\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].contains("test.yml:3:5: berth.state.autoformat") && got[0].contains("kernel command line"),
            "{got:#?}"
        );
    }

    #[test]
    fn defaults_and_plain_dhcp_say_nothing() {
        let defaults =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../os/defaults.yml")).unwrap();
        assert_eq!(warnings(&defaults), Vec::<String>::new());
        let dhcp = "berth:\n  network:\n    interfaces:\n      eth0: {dhcp: true}\n  state:\n    fstype: auto\n    autoformat: []\n";
        assert_eq!(warnings(dhcp), Vec::<String>::new());
    }
}
