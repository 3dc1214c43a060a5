//! RancherOS compatibility: a layer's `rancher:` key is mapped onto `berth:`.
//!
//! Every RancherOS key is either mapped (same name, or renamed) or reported as a warning
//! with its full path and the reason; nothing is dropped silently. The table is documented
//! in `docs/rancheros.md`. An explicit `berth:` key in the same layer wins over the mapping.

use crate::diagnostic::Finding;
use crate::merge::{Markers, merge};
use crate::node::{Kind, Node};

/// A value conversion: the Berth key (dotted, under `berth`) and the converted value, or
/// `None` to drop it (having reported why).
type Conversion = fn(Node, &str, &mut Vec<Finding>) -> Option<(&'static str, Node)>;

/// How one RancherOS key becomes Berth configuration.
enum Rule {
    /// The same key under `berth:` (`rancher.a.b` → `berth.a.b`), value unchanged.
    Same,
    /// Another key under `berth:` (dotted path from `berth`), value unchanged.
    To(&'static str),
    /// A map whose keys have rules of their own.
    Map(&'static [(&'static str, Rule)]),
    /// A conversion of the value.
    Convert(Conversion),
    /// Not supported: a warning with this reason.
    Unsupported(&'static str),
}

use Rule::{Convert, Map, Same, To, Unsupported};

const ENGINE_CHOSEN: &str = "Berth's engine comes with the release";
const NOT_AN_ENGINE_OPTION: &str = "Berth sets this engine option itself";
const NO_WIRELESS: &str = "Berth has no Wi-Fi or mobile modem support (no wpa_supplicant or ModemManager): use a wired or virtual network interface";
const SYSTEM_DOCKER_PULLS: &str = "System Docker's registry options are not settings of their own: pass --registry-mirror=URL or --insecure-registry=HOST in berth.system_docker.extra_args";

const DOCKER_OPTS: &[(&str, Rule)] = &[
    ("storage_driver", Same),
    ("registry_mirror", Convert(registry_mirror)),
    ("insecure_registry", To("docker.insecure_registries")),
    ("log_driver", Same),
    ("log_opts", Same),
    ("extra_args", Same),
    ("environment", Same),
    ("tls", Same),
    ("debug", Same),
    ("bip", Same),
    ("ca_cert", Same),
    ("ca_key", Same),
    ("server_cert", Same),
    ("server_key", Same),
    ("tls_args", Convert(tls_args)),
    ("engine", Convert(docker_engine)),
    (
        "host",
        Unsupported(
            "Berth sets the user engine's socket, data root and other daemon paths itself (it listens on /var/run/docker.sock)",
        ),
    ),
    ("group", Unsupported(NOT_AN_ENGINE_OPTION)),
    (
        "graph",
        Unsupported("the user engine's data root is /var/lib/user-docker (on the state partition)"),
    ),
    (
        "data_root",
        Unsupported("the user engine's data root is /var/lib/user-docker (on the state partition)"),
    ),
    ("exec_root", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("pid_file", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("config_file", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("containerd", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("restart", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("bridge", Unsupported("use extra_args: [--bridge=...]")),
    ("live_restore", Unsupported("use extra_args: [--live-restore]")),
    ("userland_proxy", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("selinux_enabled", Unsupported("Berth has no SELinux policy")),
    ("storage_context", Unsupported(NOT_AN_ENGINE_OPTION)),
    (
        "userns_enabled",
        Unsupported("use extra_args: [--userns-remap=...]"),
    ),
];

const SYSTEM_DOCKER_OPTS: &[(&str, Rule)] = &[
    ("exec", Same),
    ("storage_driver", Same),
    ("live_restore", Same),
    ("log_opts", Same),
    ("extra_args", Same),
    ("debug", Same),
    ("engine", Unsupported(ENGINE_CHOSEN)),
    ("bip", Unsupported("System Docker runs with --bridge=none")),
    ("bridge", Unsupported("System Docker runs with --bridge=none")),
    (
        "graph",
        Unsupported("System Docker's data root is /var/lib/system-docker"),
    ),
    (
        "data_root",
        Unsupported("System Docker's data root is /var/lib/system-docker"),
    ),
    (
        "host",
        Unsupported("System Docker listens on /run/system-docker.sock"),
    ),
    ("group", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("exec_root", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("pid_file", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("config_file", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("containerd", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("restart", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("userland_proxy", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("selinux_enabled", Unsupported("Berth has no SELinux policy")),
    ("log_driver", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("environment", Unsupported(NOT_AN_ENGINE_OPTION)),
    ("registry_mirror", Unsupported(SYSTEM_DOCKER_PULLS)),
    ("insecure_registry", Unsupported(SYSTEM_DOCKER_PULLS)),
    (
        "tls",
        Unsupported("System Docker is only reachable on its local socket"),
    ),
];

const STATE_OPTS: &[(&str, Rule)] = &[
    ("dev", Same),
    ("wait", Convert(state_wait)),
    ("required", Same),
    ("autoformat", Same),
    ("fstype", Same),
    ("oem_dev", To("oem.dev")),
    ("oem_fstype", To("oem.fstype")),
    (
        "directory",
        Unsupported("the state partition is always mounted whole at /var"),
    ),
    (
        "mdadm_scan",
        Unsupported(
            "Berth has no software RAID tools: put the state partition on one disk (or on a RAID volume the controller or hypervisor provides)",
        ),
    ),
    (
        "lvm_scan",
        Unsupported("Berth has no LVM tools: put the state partition on a plain partition (berth.state.dev)"),
    ),
    (
        "cryptsetup",
        Unsupported(
            "Berth has no disk encryption tools: encrypt the disk in the hypervisor or storage layer",
        ),
    ),
    ("rngd", Unsupported("the kernel's own entropy is enough")),
    ("script", Unsupported("use bootcmd (it runs at every boot)")),
    (
        "boot_dev",
        Unsupported("Berth has no separate boot partition setting"),
    ),
    (
        "boot_fstype",
        Unsupported("Berth has no separate boot partition setting"),
    ),
    (
        "formatzero",
        Unsupported(
            "Berth's berth.state.autoformat (kernel command line) formats only a blank device, always: the behaviour formatzero asked for",
        ),
    ),
];

const NETWORK_OPTS: &[(&str, Rule)] = &[
    ("interfaces", Convert(interfaces)),
    ("dns", Same),
    ("dhcp_timeout", Same),
    ("http_proxy", Same),
    ("https_proxy", Same),
    ("no_proxy", Same),
    ("pre_cmds", Unsupported("use bootcmd (it runs at every boot)")),
    (
        "post_cmds",
        Unsupported("use bootcmd (every boot) or runcmd (the first boot of an instance)"),
    ),
    ("wifi_networks", Unsupported(NO_WIRELESS)),
    ("modem_networks", Unsupported(NO_WIRELESS)),
];

const INTERFACE_KEYS: &[&str] = &[
    "match",
    "dhcp",
    "address",
    "addresses",
    "gateway",
    "gateway_ipv6",
    "mtu",
    "routes",
    "bond",
    "bond_opts",
    "vlans",
    "bridge",
    "pre_up",
    "post_up",
];

const SSH_OPTS: &[(&str, Rule)] = &[
    ("daemon", Same),
    ("port", Same),
    ("listen_address", Same),
    ("keys", Same),
];

const DEFAULTS_OPTS: &[(&str, Rule)] = &[
    ("hostname", Same),
    ("docker", Unsupported(ENGINE_CHOSEN)),
    (
        "network",
        Unsupported("set berth.network.dns to choose name servers"),
    ),
    (
        "system_docker_logs",
        Unsupported("System Docker logs to /var/log/system-docker.log"),
    ),
];

const CLOUD_INIT_OPTS: &[(&str, Rule)] = &[("datasources", Convert(datasources))];

const RANCHER: &[(&str, Rule)] = &[
    ("environment", Same),
    ("services", Same),
    ("sysctl", Same),
    ("modules", Same),
    ("debug", Same),
    ("autologin", Same),
    ("shutdown_timeout", Same),
    ("registry_auths", Same),
    ("ssh", Map(SSH_OPTS)),
    ("state", Map(STATE_OPTS)),
    ("network", Map(NETWORK_OPTS)),
    ("docker", Map(DOCKER_OPTS)),
    ("system_docker", Map(SYSTEM_DOCKER_OPTS)),
    ("cloud_init", Map(CLOUD_INIT_OPTS)),
    ("defaults", Map(DEFAULTS_OPTS)),
    (
        "bootstrap_docker",
        Unsupported("Berth starts System Docker directly, without a bootstrap engine"),
    ),
    ("console", Convert(console)),
    (
        "force_console_rebuild",
        Unsupported("`sudo berth console switch NAME` recreates the console"),
    ),
    (
        "upgrade",
        Unsupported(
            "Berth has no release channel: upgrade with a signed bundle, `sudo berth os upgrade FILE|URL`",
        ),
    ),
    (
        "repositories",
        Unsupported("Berth has no service repositories: define services under berth.services"),
    ),
    ("services_include", Same),
    (
        "bootstrap",
        Unsupported("Berth has no bootstrap services: use bootcmd"),
    ),
    (
        "cloud_init_services",
        Unsupported("cloud-init is a built-in system service"),
    ),
    (
        "hypervisor_service",
        Unsupported(
            "Berth starts no hypervisor agent by itself: `sudo berth service enable qemu-guest-agent` for QEMU/KVM",
        ),
    ),
    ("rm_usr", Unsupported("/usr is always the read-only OS image")),
    ("no_sharedroot", Unsupported("Berth's root is never shared")),
    (
        "recovery",
        Unsupported("Berth opens the recovery console by itself when boot fails"),
    ),
    (
        "preload_wait",
        Unsupported("Berth preloads no images at boot: load them with `docker load -i FILE` in runcmd"),
    ),
    ("disable", Convert(disable)),
    (
        "log",
        Unsupported("service logs are kept by System Docker: `sudo system-docker logs SERVICE`"),
    ),
    (
        "http_load_retries",
        Unsupported(
            "Berth has no such setting: datasources retry on their own schedule, and a missing service image is pulled once per boot",
        ),
    ),
    ("resize_device", Same),
    (
        "restart_services",
        Unsupported(
            "Berth restarts no services by a list: `sudo berth service restart NAME` (in runcmd if needed)",
        ),
    ),
    (
        "password",
        Unsupported("Berth has no password login: use ssh_authorized_keys"),
    ),
    (
        "registry_domain",
        Unsupported("images are named in full in berth.services"),
    ),
];

/// Map a layer's `rancher:` key onto `berth:`. The layer must be a map (others are left alone).
pub(crate) fn map_rancher(layer: &mut Node, findings: &mut Vec<Finding>) {
    let Some(top) = layer.as_map_mut() else {
        return;
    };
    let Some(rancher) = top.shift_remove("rancher") else {
        return;
    };
    let rancher_loc = rancher.report_loc();
    let mut mapped = Node::empty_map(rancher.loc);
    mapped.key_loc = rancher.key_loc;
    match rancher.kind {
        Kind::Map(entries) => {
            for (key, value) in entries {
                apply_rule(RANCHER, &key, value, "rancher", "", &mut mapped, findings);
            }
        }
        Kind::Null => {}
        _ => {
            findings.push(Finding::error(
                rancher_loc,
                "rancher",
                format!(
                    "expected a map of RancherOS settings, got {}",
                    rancher.kind_name()
                ),
            ));
            return;
        }
    }
    // A RancherOS configuration names the `rancher` user (runcmd, write_files owners, ssh):
    // it becomes a second name of the login account.
    insert_at(
        &mut mapped,
        "compat.rancher_user",
        Node::new(Kind::Bool(true), rancher_loc),
    );
    // An explicit berth: in the same layer wins over the mapped keys.
    let mut berth = mapped;
    if let Some(explicit) = top.shift_remove("berth") {
        let mut ignored = Vec::new();
        merge(&mut berth, explicit, Markers::Keep, "berth", &mut ignored);
    }
    top.insert("berth".to_string(), berth);
}

fn apply_rule(
    table: &'static [(&'static str, Rule)],
    key: &str,
    value: Node,
    rancher_prefix: &str,
    berth_prefix: &str,
    mapped: &mut Node,
    findings: &mut Vec<Finding>,
) {
    let rancher_path = format!("{rancher_prefix}.{key}");
    let same_path = if berth_prefix.is_empty() {
        key.to_string()
    } else {
        format!("{berth_prefix}.{key}")
    };
    // `key+` appends: map it like `key`, and keep the marker on the Berth key.
    let (lookup, marker) = match crate::merge::append_base(key) {
        Some(base) => (base, "+"),
        None => (key, ""),
    };
    let Some((_, rule)) = table.iter().find(|(k, _)| *k == lookup) else {
        findings.push(Finding::warning(
            value.report_loc(),
            rancher_path,
            "is not a RancherOS setting Berth knows; ignored",
        ));
        return;
    };
    match rule {
        Same => insert_at(mapped, &same_path, value),
        To(target) => insert_at(mapped, &format!("{target}{marker}"), value),
        Map(sub) => match value.kind {
            Kind::Map(entries) => {
                let prefix = if berth_prefix.is_empty() {
                    lookup.to_string()
                } else {
                    format!("{berth_prefix}.{lookup}")
                };
                if entries.is_empty() {
                    insert_at(mapped, &prefix, Node::empty_map(value.loc));
                }
                for (k, v) in entries {
                    apply_rule(sub, &k, v, &rancher_path, &prefix, mapped, findings);
                }
            }
            // Not a map: let the schema report the wrong type under the Berth key.
            _ => insert_at(mapped, &same_path, value),
        },
        Convert(convert) => {
            if let Some((target, converted)) = convert(value, &rancher_path, findings) {
                insert_at(mapped, &format!("{target}{marker}"), converted);
            }
        }
        Unsupported(reason) => findings.push(Finding::warning(
            value.report_loc(),
            rancher_path,
            format!("is a RancherOS setting Berth does not support; ignored ({reason})"),
        )),
    }
}

/// Put `value` at the dotted `path` under `root`, creating maps on the way. Segments are
/// split on `.`, so only Berth schema keys (which have no dots) may be used here.
fn insert_at(root: &mut Node, path: &str, value: Node) {
    let mut node = root;
    let mut segments = path.split('.').peekable();
    while let Some(seg) = segments.next() {
        if node.as_map().is_none() {
            *node = Node::empty_map(value.loc);
        }
        let Some(map) = node.as_map_mut() else {
            return;
        };
        if segments.peek().is_none() {
            match map.get_mut(seg) {
                Some(existing) => {
                    let mut ignored = Vec::new();
                    merge(existing, value, Markers::Keep, path, &mut ignored);
                }
                None => {
                    map.insert(seg.to_string(), value);
                }
            }
            return;
        }
        let loc = value.key_loc;
        node = map.entry(seg.to_string()).or_insert_with(|| {
            let mut m = Node::empty_map(loc);
            m.key_loc = loc;
            m
        });
    }
}

/// `registry_mirror: "https://a,https://b"` → `registry_mirrors: [...]`.
fn registry_mirror(value: Node, _path: &str, _f: &mut Vec<Finding>) -> Option<(&'static str, Node)> {
    let loc = value.loc;
    let key_loc = value.key_loc;
    let node = match value.kind {
        Kind::Str(s) => {
            let items = s
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(|m| Node::str(m, loc))
                .collect();
            Node::new(Kind::Seq(items), loc)
        }
        kind => Node::new(kind, loc),
    };
    Some(("docker.registry_mirrors", Node { key_loc, ..node }))
}

/// `rancher.docker.tls_args`: RancherOS's own (`--tlsverify`, `--tlscacert`/`--tlscert`/
/// `--tlskey` files, `-H=0.0.0.0:2376`) are what `berth.docker.tls` does with Berth's
/// certificates, so they are dropped quietly; any other argument is reported.
fn tls_args(value: Node, path: &str, findings: &mut Vec<Finding>) -> Option<(&'static str, Node)> {
    let same_as_berth = |arg: &str| {
        let arg = arg.trim();
        let listen = arg
            .strip_prefix("-H=")
            .or_else(|| arg.strip_prefix("--host="))
            .or_else(|| arg.strip_prefix("-H "))
            .map(|h| h.trim_start_matches("tcp://"));
        arg == "--tlsverify"
            || ["--tlscacert", "--tlscert", "--tlskey"]
                .iter()
                .any(|flag| arg.strip_prefix(flag).is_some_and(|r| r.starts_with(['=', ' '])))
            || listen == Some("0.0.0.0:2376")
    };
    let items: Vec<(String, &Node)> = match &value.kind {
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{path}[{i}]"), item))
            .collect(),
        _ => vec![(path.to_string(), &value)],
    };
    for (item_path, item) in items {
        if !item.as_str().is_some_and(same_as_berth) {
            findings.push(Finding::warning(
                item.report_loc(),
                item_path,
                "Berth serves TLS on tcp://0.0.0.0:2376 with --tlsverify and its own certificates \
                 (berth.docker.tls, ca_cert, server_cert, server_key); this argument is not used \
                 (other dockerd flags go in berth.docker.extra_args)",
            ));
        }
    }
    None
}

/// `rancher.docker.engine`: an engine name (`docker-20.10.24`) is `berth.docker.engine`; a
/// URL of a RancherOS engine service file has no Berth meaning and is reported.
fn docker_engine(value: Node, path: &str, findings: &mut Vec<Finding>) -> Option<(&'static str, Node)> {
    let url = value
        .as_str()
        .is_some_and(|s| s.contains("://") || s.starts_with('/'));
    if url {
        findings.push(Finding::warning(
            value.report_loc(),
            path,
            "is a RancherOS engine service file, which Berth does not run; ignored (Berth switches \
             to signed engine files: `sudo berth engine switch docker-V|FILE|URL`, then \
             `berth.docker.engine: docker-V`)",
        ));
        return None;
    }
    Some(("docker.engine", value))
}

/// RancherOS `state.wait` is a boolean ("wait for the device"); Berth's is seconds.
fn state_wait(value: Node, _path: &str, _f: &mut Vec<Finding>) -> Option<(&'static str, Node)> {
    let wait = match &value.kind {
        Kind::Bool(true) => Some(10),
        Kind::Bool(false) => Some(0),
        Kind::Str(s) => crate::parse_bool(s).map(|wait| if wait { 10 } else { 0 }),
        _ => None,
    };
    let node = match wait {
        Some(secs) => Node {
            kind: Kind::UInt(secs),
            ..value
        },
        None => value,
    };
    Some(("state.wait", node))
}

/// `rancher.console`: Berth has RancherOS's `default` and `debian` consoles; the others
/// (ubuntu, centos, alpine, ...) are reported and the console stays as it is.
fn console(value: Node, path: &str, findings: &mut Vec<Finding>) -> Option<(&'static str, Node)> {
    match value.as_str() {
        Some("default" | "debian") => Some(("console", value)),
        other => {
            findings.push(Finding::warning(
                value.report_loc(),
                path,
                format!(
                    "is a RancherOS console Berth does not have ({}); ignored (Berth's consoles: default, debian)",
                    other.unwrap_or(value.kind_name())
                ),
            ));
            None
        }
    }
}

/// Interfaces keep the keys Berth's network model has; the others are reported.
fn interfaces(value: Node, path: &str, findings: &mut Vec<Finding>) -> Option<(&'static str, Node)> {
    let mut value = value;
    if let Kind::Map(ifaces) = &mut value.kind {
        for (name, iface) in ifaces.iter_mut() {
            if let Kind::Map(fields) = &mut iface.kind {
                fields.retain(|key, field| {
                    let known = INTERFACE_KEYS.contains(&key.as_str());
                    if !known {
                        findings.push(Finding::warning(
                            field.report_loc(),
                            format!("{path}.{name}.{key}"),
                            format!(
                                "is a RancherOS setting Berth does not support; ignored ({})",
                                interface_alternative(key)
                            ),
                        ));
                    }
                    known
                });
            }
        }
    }
    Some(("network.interfaces", value))
}

/// What to use instead of a RancherOS interface setting Berth does not have.
fn interface_alternative(key: &str) -> &'static str {
    match key {
        "wifi_network" => NO_WIRELESS,
        "dhcp_args" => "Berth runs dhcpcd with its own arguments: set dhcp_timeout under berth.network",
        "ipv4ll" => "Berth configures no link-local IPv4 addresses: give an address or use DHCP",
        _ => {
            "Berth's interfaces take match, dhcp, address(es), gateway(s), mtu, routes, bond, bond_opts, vlans, bridge, pre_up and post_up (docs/network.md)"
        }
    }
}

/// `rancher.disable: [password, autologin]`: Berth has no password login, so `password` is
/// already so; `autologin` turns automatic login off (`berth.autologin: []`). Other items
/// are reported.
fn disable(value: Node, path: &str, findings: &mut Vec<Finding>) -> Option<(&'static str, Node)> {
    let items: Vec<Node> = match value.kind {
        Kind::Seq(items) => items,
        Kind::Str(_) => vec![value.clone()],
        _ => {
            findings.push(Finding::warning(
                value.report_loc(),
                path,
                format!(
                    "expected a list (password, autologin), got {}; ignored",
                    value.kind_name()
                ),
            ));
            return None;
        }
    };
    let mut autologin_off = false;
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some("password") => {}
            Some("autologin") => autologin_off = true,
            _ => findings.push(Finding::warning(
                item.report_loc(),
                format!("{path}[{i}]"),
                "is not something Berth can disable; ignored (Berth disables password and autologin)",
            )),
        }
    }
    autologin_off.then(|| ("autologin", Node::new(Kind::Seq(Vec::new()), value.loc)))
}

/// RancherOS datasource names onto Berth's; the ones Berth has no code for are reported.
fn datasources(value: Node, path: &str, findings: &mut Vec<Finding>) -> Option<(&'static str, Node)> {
    let loc = value.loc;
    let key_loc = value.key_loc;
    let items = match value.kind {
        Kind::Seq(items) => items,
        Kind::Str(_) => vec![Node {
            key_loc: loc,
            ..value
        }],
        kind => {
            return Some(("cloud_init.datasources", Node { kind, loc, key_loc }));
        }
    };
    let mut mapped = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let Some(text) = item.as_str() else {
            mapped.push(item);
            continue;
        };
        let (kind, arg) = text.split_once(':').unwrap_or((text, ""));
        let name = match kind {
            "configdrive" => Some("configdrive".to_string()),
            "ec2" => Some("ec2".to_string()),
            "cmdline" | "nocloud" => Some(kind.to_string()),
            "url" | "file" => Some(text.to_string()),
            "*" => {
                mapped.push(Node::str("configdrive", item.loc));
                Some("ec2".to_string())
            }
            _ => None,
        };
        match name {
            Some(name) => {
                if kind == "configdrive" && !arg.is_empty() && arg != "/media/config-2" {
                    findings.push(Finding::warning(
                        item.loc,
                        format!("{path}[{i}]"),
                        format!("Berth finds the config drive by its label; the path {arg:?} is ignored"),
                    ));
                }
                mapped.push(Node::str(name, item.loc));
            }
            None => findings.push(Finding::warning(
                item.loc,
                format!("{path}[{i}]"),
                format!(
                    "the RancherOS datasource {text:?} is not supported by Berth; skipped \
                     (Berth has nocloud, configdrive, cmdline, ec2, url: and file:)"
                ),
            )),
        }
    }
    Some((
        "cloud_init.datasources",
        Node {
            kind: Kind::Seq(mapped),
            loc,
            key_loc,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> (serde_json::Value, Vec<String>) {
        let (mut node, _) = crate::yaml::parse_yaml(text, 1).unwrap();
        let mut findings = Vec::new();
        let had_rancher = node.as_map().is_some_and(|m| m.contains_key("rancher"));
        map_rancher(&mut node, &mut findings);
        let msgs = findings
            .iter()
            .map(|f| format!("{}: {}", f.key, f.message))
            .collect();
        let mut tree = node.to_json();
        // Every layer with `rancher:` names the rancher account (checked here once for all,
        // then left out of each test's expected tree).
        let compat = tree
            .get_mut("berth")
            .and_then(|b| b.as_object_mut())
            .and_then(|b| b.remove("compat"));
        if had_rancher {
            assert_eq!(compat, Some(serde_json::json!({"rancher_user": true})), "{tree}");
        }
        (tree, msgs)
    }

    #[test]
    fn maps_supported_keys() {
        let (tree, warnings) = map(
            "rancher:\n  docker:\n    registry_mirror: https://m1,https://m2\n    insecure_registry: [r:5000]\n  state:\n    wait: true\n    oem_dev: LABEL=X\n  sysctl:\n    vm.max_map_count: 262144\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            tree,
            serde_json::json!({"berth": {
                "docker": {"registry_mirrors": ["https://m1", "https://m2"], "insecure_registries": ["r:5000"]},
                "state": {"wait": 10},
                "oem": {"dev": "LABEL=X"},
                "sysctl": {"vm.max_map_count": 262144}
            }})
        );
    }

    #[test]
    fn the_user_engine_choice_maps_to_berth_docker_engine() {
        let (tree, warnings) = map("rancher:\n  docker:\n    engine: docker-20.10.24\n");
        assert_eq!(
            tree,
            serde_json::json!({"berth": {"docker": {"engine": "docker-20.10.24"}}})
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn reports_unsupported_keys_with_full_path() {
        let (tree, warnings) = map(
            "rancher:\n  console: ubuntu\n  docker:\n    selinux_enabled: true\n  network:\n    interfaces:\n      eth0:\n        dhcp: true\n        dhcp_args: -MA4\n  frobnicate: 1\n",
        );
        assert_eq!(
            tree,
            serde_json::json!({"berth": {"network": {"interfaces": {"eth0": {"dhcp": true}}}}})
        );
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(
            warnings[0].starts_with("rancher.console: is a RancherOS console Berth does not have (ubuntu)")
        );
        assert!(warnings[1].starts_with("rancher.docker.selinux_enabled: "));
        assert!(warnings[2].starts_with("rancher.network.interfaces.eth0.dhcp_args: "));
        assert!(warnings[3].starts_with("rancher.frobnicate: is not a RancherOS setting"));
    }

    #[test]
    fn disable_password_and_autologin_is_berths_default() {
        let (tree, warnings) = map("rancher:\n  disable:\n  - password\n  - autologin\n");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(tree, serde_json::json!({"berth": {"autologin": []}}));
        let (tree, warnings) = map("rancher:\n  disable: [password, ssh]\n");
        assert_eq!(tree, serde_json::json!({"berth": {}}));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("rancher.disable[1]: "), "{warnings:?}");
    }

    /// Every setting Berth does not support says what to use instead: none is just "not
    /// supported yet".
    #[test]
    fn every_unsupported_key_names_an_alternative() {
        fn walk(table: &[(&str, Rule)], path: &str, out: &mut Vec<String>) {
            for (key, rule) in table {
                match rule {
                    Unsupported(reason) if reason.len() < 25 || reason.contains("not supported yet") => {
                        out.push(format!("{path}.{key}: {reason}"));
                    }
                    Map(sub) => walk(sub, &format!("{path}.{key}"), out),
                    _ => {}
                }
            }
        }
        let mut vague = Vec::new();
        walk(RANCHER, "rancher", &mut vague);
        for key in ["wifi_network", "dhcp_args", "ipv4ll", "anything"] {
            if interface_alternative(key).contains("not supported yet") {
                vague.push(key.to_string());
            }
        }
        assert!(vague.is_empty(), "{vague:#?}");
    }

    #[test]
    fn resize_device_is_mapped() {
        let (tree, warnings) = map("rancher:\n  resize_device: /dev/sda\n");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(tree, serde_json::json!({"berth": {"resize_device": "/dev/sda"}}));
    }

    #[test]
    fn the_debian_console_is_accepted() {
        let (tree, warnings) = map("rancher:\n  console: debian\n");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(tree, serde_json::json!({"berth": {"console": "debian"}}));
        let (tree, warnings) = map("rancher:\n  console: default\n");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(tree, serde_json::json!({"berth": {"console": "default"}}));
    }

    #[test]
    fn ranchers_own_tls_args_are_what_tls_does_and_others_are_reported() {
        let (tree, warnings) = map(
            "rancher:\n  docker:\n    tls: true\n    tls_args: [--tlsverify, --tlscacert=/etc/docker/tls/ca.pem, --tlscert=/etc/docker/tls/server-cert.pem, --tlskey=/etc/docker/tls/server-key.pem, -H=0.0.0.0:2376]\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(tree, serde_json::json!({"berth": {"docker": {"tls": true}}}));
        let (_, warnings) = map("rancher:\n  docker:\n    tls_args: [--tlsverify, -H=127.0.0.1:2377]\n");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("rancher.docker.tls_args[1]: Berth serves TLS on tcp://0.0.0.0:2376"),
            "{warnings:?}"
        );
    }

    #[test]
    fn explicit_berth_wins() {
        let (tree, _) = map("rancher:\n  debug: true\n  modules: [a]\nberth:\n  debug: false\n");
        assert_eq!(
            tree,
            serde_json::json!({"berth": {"debug": false, "modules": ["a"]}})
        );
    }

    #[test]
    fn datasources_are_translated() {
        let (tree, warnings) = map(
            "rancher:\n  cloud_init:\n    datasources: [configdrive:/media/config-2, digitalocean, 'url:http://x/y', ec2]\n",
        );
        assert_eq!(
            tree["berth"]["cloud_init"]["datasources"],
            serde_json::json!(["configdrive", "url:http://x/y", "ec2"])
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("rancher.cloud_init.datasources[1]: "));
    }
}
