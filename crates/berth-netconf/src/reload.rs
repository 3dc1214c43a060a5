//! `berth network apply`: apply a changed `berth.network` without a reboot. netconf records
//! in [`STATE_FILE`] the addresses and routes it added; a reload applies the new plan (which
//! adds what is new), then removes what Berth added before and the configuration no longer
//! has. When a step fails on the link that carries the default route, that link keeps what
//! it had, so a bad change never takes the machine off the network.

use crate::error::NetconfError;
use crate::plan::{Action, Plan, Problem, Route};
use crate::{create_and_plan, netlink};
use berth_config::schema::network::NetworkConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const STATE_FILE: &str = "/run/berth/netconf-state.json";

/// What netconf added, per link name. Written by netconf at each start and by each reload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedState {
    pub links: BTreeMap<String, AppliedLink>,
    /// The interfaces (names or globs) dhcpcd was told to run on.
    pub dhcp: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedLink {
    /// `192.0.2.10/24`
    pub addresses: Vec<String>,
    pub routes: Vec<Route>,
}

impl AppliedLink {
    fn has_default_route(&self) -> bool {
        self.routes.iter().any(|r| r.to == "default")
    }
}

/// What the steps of `plan` that did not fail added.
pub fn applied(plan: &Plan, errors: &[NetconfError]) -> AppliedState {
    let failed: BTreeSet<&str> = errors.iter().filter_map(NetconfError::key).collect();
    let mut state = AppliedState {
        dhcp: plan.dhcp_allow.clone(),
        ..AppliedState::default()
    };
    for link in &plan.links {
        let mut applied = AppliedLink::default();
        for step in link.steps.iter().filter(|s| !failed.contains(s.key.as_str())) {
            match &step.action {
                Action::AddAddress(cidr) => applied.addresses.push(cidr.to_string()),
                Action::DefaultRoute(gateway) => applied.routes.push(netlink::default_route(*gateway)),
                Action::AddRoute(route) => applied.routes.push(route.clone()),
                _ => {}
            }
        }
        if !applied.addresses.is_empty() || !applied.routes.is_empty() {
            state.links.insert(link.link.name.clone(), applied);
        }
    }
    state
}

/// The recorded state; none (a first run, or an unreadable file) is an empty one.
pub fn read_state(path: &Path) -> AppliedState {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Write the state atomically (temp file, fsync, rename).
pub fn write_state(path: &Path, state: &AppliedState) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// `eth0: added the address 192.0.2.11/24`, one line per change.
    pub changes: Vec<String>,
    pub problems: Vec<Problem>,
    pub errors: Vec<NetconfError>,
    /// Links that kept their previous configuration, and why.
    pub kept: Vec<String>,
    /// The DHCP interfaces changed: dhcpcd reads them when the network service restarts.
    pub dhcp_changed: bool,
}

impl ReloadReport {
    /// No step failed. (Problems, such as an entry that matches no link, are reported but
    /// are the configuration's state, not a failure of this apply.)
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Apply `network` to the calling thread's network namespace, against the state recorded at
/// `state_path`, and record the new one.
pub fn reload(network: &NetworkConfig, state_path: &Path) -> Result<ReloadReport, NetconfError> {
    crate::with_netlink(|handle| async move { reload_with(&handle, network, state_path).await })
}

async fn reload_with(
    handle: &rtnetlink::Handle,
    network: &NetworkConfig,
    state_path: &Path,
) -> Result<ReloadReport, NetconfError> {
    let old = read_state(state_path);
    let (plan, mut errors) = create_and_plan(handle, network).await?;
    errors.extend(netlink::apply(handle, &plan).await);
    let new = applied(&plan, &errors);
    let mut report = ReloadReport {
        dhcp_changed: old.dhcp != new.dhcp,
        problems: plan.problems.clone(),
        ..ReloadReport::default()
    };
    let mut recorded = new.clone();
    let links = netlink::links(handle).await?;
    let empty = AppliedLink::default();
    for (name, before) in &old.links {
        let after = new.links.get(name).unwrap_or(&empty);
        let failures: Vec<String> = errors
            .iter()
            .filter(|e| e.link() == Some(name.as_str()))
            .map(ToString::to_string)
            .collect();
        if before.has_default_route() && !failures.is_empty() {
            // Keep the way in: nothing is removed from this link, and what it had stays
            // recorded, so the next good reload cleans up.
            let mut kept = after.clone();
            for a in &before.addresses {
                if !kept.addresses.contains(a) {
                    kept.addresses.push(a.clone());
                }
            }
            for r in &before.routes {
                if !kept.routes.contains(r) {
                    kept.routes.push(r.clone());
                }
            }
            recorded.links.insert(name.clone(), kept);
            report.kept.push(format!(
                "{name} carries the default route and kept its previous configuration, because: {}",
                failures.join("; ")
            ));
            continue;
        }
        let Some(link) = links.iter().find(|l| &l.name == name) else {
            continue;
        };
        for route in before.routes.iter().filter(|r| !after.routes.contains(r)) {
            match netlink::del_route(handle, link.index, route).await {
                Ok(()) => report.changes.push(format!("{name}: removed the route {route}")),
                Err(e) if gone(&e) => report.changes.push(format!("{name}: removed the route {route}")),
                Err(source) => errors.push(NetconfError::Step {
                    key: format!("{}.routes", berth_config::schema::network::interface_key(name)),
                    link: name.clone(),
                    action: format!("remove the route {route}"),
                    source,
                }),
            }
        }
        for address in before.addresses.iter().filter(|a| !after.addresses.contains(a)) {
            let Ok(cidr) = address.parse::<berth_config::schema::values::Cidr>() else {
                continue;
            };
            match netlink::del_address(handle, link.index, cidr.address(), cidr.prefix_len()).await {
                Ok(()) => report
                    .changes
                    .push(format!("{name}: removed the address {address}")),
                Err(source) => errors.push(NetconfError::Step {
                    key: berth_config::schema::network::interface_key(name),
                    link: name.clone(),
                    action: format!("remove the address {address}"),
                    source,
                }),
            }
        }
    }
    // Removing a primary address takes the kernel's secondary addresses of its subnet with it
    // (unless promote_secondaries is set): add the configured ones again where any went.
    let mut readded = BTreeSet::new();
    for change in &report.changes {
        if let Some((name, _)) = change.split_once(": removed the address ")
            && readded.insert(name.to_string())
            && let Some(link) = plan.links.iter().find(|l| l.link.name == name)
        {
            for e in netlink::apply_link(handle, link).await {
                if !errors.iter().any(|x| x.key() == e.key()) {
                    errors.push(e);
                }
            }
        }
    }
    for (name, after) in &new.links {
        let before = old.links.get(name).unwrap_or(&empty);
        for a in after.addresses.iter().filter(|a| !before.addresses.contains(a)) {
            report.changes.push(format!("{name}: added the address {a}"));
        }
        for r in after.routes.iter().filter(|r| !before.routes.contains(r)) {
            report.changes.push(format!("{name}: added the route {r}"));
        }
    }
    report.errors = errors;
    if let Err(e) = write_state(state_path, &recorded) {
        eprintln!("netconf: writing {}: {e}", state_path.display());
    }
    Ok(report)
}

/// A route already removed (the kernel drops routes with their address or link).
fn gone(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(3) | Some(2))
}
