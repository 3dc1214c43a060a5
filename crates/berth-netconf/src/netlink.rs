//! Carrying a [`Plan`] out over rtnetlink: list the links, create the bonds, bridges and
//! VLANs, then run each link's steps in order. A step that fails is reported with its
//! configuration key and the next one still runs, so one bad interface never keeps the others
//! down.

use crate::error::NetconfError;
use crate::plan::{Action, Link, LinkPlan, Plan, Route, VirtualKind, VirtualLink};
use berth_config::schema::network::BondOption;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoBond, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::{Handle, LinkBond, LinkBridge, LinkUnspec, LinkVlan, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What netconf needs of one link. Its MAC address is the NIC's own (`IFLA_PERM_ADDRESS`)
/// when the kernel reports one: a bond gives its slaves its own address, and a `mac=` match
/// must still find each slave by the address it was made with when the plan is made again.
fn link_of(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        ..Link::default()
    };
    let mut permanent = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                link.mac = Some(crate::status::mac_text(bytes));
            }
            LinkAttribute::PermAddress(bytes) if bytes.len() == 6 && bytes.iter().any(|b| *b != 0) => {
                permanent = Some(crate::status::mac_text(bytes));
            }
            LinkAttribute::Controller(index) => link.master = Some(*index),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    if permanent.is_some() {
        link.mac = permanent;
    }
    link
}

/// The links of the calling thread's network namespace.
pub async fn links(handle: &Handle) -> Result<Vec<Link>, NetconfError> {
    let mut out = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(message) = stream.try_next().await.map_err(NetconfError::ListLinks)? {
        let link = link_of(&message);
        if !link.name.is_empty() {
            out.push(link);
        }
    }
    Ok(out)
}

pub(crate) fn io_error(e: rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => std::io::Error::other(other.to_string()),
    }
}

/// Create a bond, bridge or VLAN. A bond gets its options now, while it has no slaves.
pub async fn create(handle: &Handle, link: &VirtualLink, links: &[Link]) -> Result<(), rtnetlink::Error> {
    match handle.link().add(message(link, links)).execute().await {
        // A bond that appeared meanwhile with the driver's defaults (the kernel loaded
        // `bonding` by itself, which makes a bond0): it has no slaves yet, so it takes the
        // configured options now.
        Err(rtnetlink::Error::NetlinkError(e))
            if matches!(link.kind, VirtualKind::Bond(_)) && e.raw_code() == -EEXIST =>
        {
            let current = self::links(handle)
                .await
                .map_err(|_| rtnetlink::Error::RequestFailed)?;
            let Some(existing) = current.iter().find(|l| l.name == link.name) else {
                return Err(rtnetlink::Error::NetlinkError(e));
            };
            let mut message = message(link, links);
            message.header.index = existing.index;
            handle.link().change(message).execute().await
        }
        other => other,
    }
}

/// Linux's EEXIST.
const EEXIST: i32 = 17;

fn message(link: &VirtualLink, links: &[Link]) -> rtnetlink::packet_route::link::LinkMessage {
    match &link.kind {
        VirtualKind::Bridge => LinkBridge::new(&link.name).build(),
        VirtualKind::Vlan { parent, id, .. } => LinkVlan::new(&link.name, *parent, *id).build(),
        VirtualKind::Bond(options) => {
            let mut builder = LinkBond::new(&link.name);
            for option in options {
                let info = match option {
                    BondOption::Mode(m) => InfoBond::Mode((*m).into()),
                    BondOption::Miimon(v) => InfoBond::MiiMon(*v),
                    BondOption::Updelay(v) => InfoBond::UpDelay(*v),
                    BondOption::Downdelay(v) => InfoBond::DownDelay(*v),
                    BondOption::ArpInterval(v) => InfoBond::ArpInterval(*v),
                    BondOption::ArpIpTarget(v) => InfoBond::ArpIpTarget(v.clone()),
                    BondOption::MinLinks(v) => InfoBond::MinLinks(*v),
                    // The kernel takes the primary's index; one that is not there yet is
                    // reported by the plan (its slave entry is missing).
                    BondOption::Primary(name) => match links.iter().find(|l| l.name == name.as_str()) {
                        Some(l) => InfoBond::Primary(l.index),
                        None => continue,
                    },
                    BondOption::LacpRate(v) => InfoBond::AdLacpRate((*v).into()),
                    BondOption::XmitHashPolicy(v) => InfoBond::XmitHashPolicy((*v).into()),
                    BondOption::AdSelect(v) => InfoBond::AdSelect((*v).into()),
                    BondOption::FailOverMac(v) => InfoBond::FailOverMac((*v).into()),
                    BondOption::UseCarrier(v) => InfoBond::UseCarrier(*v),
                };
                builder = builder.append_info_data(info);
            }
            builder.build()
        }
    }
}

fn route_message(index: u32, route: &Route) -> Option<RouteMessage> {
    let (destination, prefix) = route.destination()?;
    let message = match (destination, route.via) {
        (IpAddr::V4(to), via) => {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(to, prefix)
                .output_interface(index);
            if let Some(IpAddr::V4(via)) = via {
                b = b.gateway(via);
            }
            if let Some(metric) = route.metric {
                b = b.priority(metric);
            }
            b.build()
        }
        (IpAddr::V6(to), via) => {
            let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(to, prefix)
                .output_interface(index);
            if let Some(IpAddr::V6(via)) = via {
                b = b.gateway(via);
            }
            if let Some(metric) = route.metric {
                b = b.priority(metric);
            }
            b.build()
        }
    };
    Some(message)
}

/// The route a default gateway makes, as a [`Route`].
pub fn default_route(gateway: IpAddr) -> Route {
    Route {
        to: "default".to_string(),
        via: Some(gateway),
        metric: None,
    }
}

async fn run(handle: &Handle, link: &Link, action: &Action) -> Result<(), std::io::Error> {
    let index = link.index;
    let result = match action {
        Action::Hook(command) => return crate::hooks::run(&link.name, command),
        Action::SetMtu(mtu) => {
            let message = LinkUnspec::new_with_index(index).mtu(u32::from(*mtu)).build();
            handle.link().set(message).execute().await
        }
        Action::Down => {
            let message = LinkUnspec::new_with_index(index).down().build();
            handle.link().set(message).execute().await
        }
        Action::SetMaster { index: master, .. } => {
            let message = LinkUnspec::new_with_index(index).controller(*master).build();
            handle.link().set(message).execute().await
        }
        Action::Up => {
            let message = LinkUnspec::new_with_index(index).up().build();
            handle.link().set(message).execute().await
        }
        // `replace`: running again (a restart of the service) is not an error.
        Action::AddAddress(cidr) => {
            handle
                .address()
                .add(index, cidr.address(), cidr.prefix_len())
                .replace()
                .execute()
                .await
        }
        Action::DefaultRoute(gateway) => add_route(handle, index, &default_route(*gateway)).await,
        Action::AddRoute(route) => add_route(handle, index, route).await,
    };
    result.map_err(io_error)
}

async fn add_route(handle: &Handle, index: u32, route: &Route) -> Result<(), rtnetlink::Error> {
    match route_message(index, route) {
        Some(message) => handle.route().add(message).replace().execute().await,
        None => Err(rtnetlink::Error::RequestFailed),
    }
}

/// Remove a route netconf added earlier.
pub async fn del_route(handle: &Handle, index: u32, route: &Route) -> Result<(), std::io::Error> {
    match route_message(index, route) {
        Some(message) => handle.route().del(message).execute().await.map_err(io_error),
        None => Err(std::io::Error::other(format!("{route} is not a route"))),
    }
}

/// Remove an address from a link, if it has it.
pub async fn del_address(
    handle: &Handle,
    index: u32,
    address: IpAddr,
    prefix: u8,
) -> Result<(), std::io::Error> {
    let mut stream = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(address)
        .execute();
    let mut found: Option<AddressMessage> = None;
    while let Some(message) = stream.try_next().await.map_err(io_error)? {
        if message.header.prefix_len == prefix
            && message
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Address(a) if *a == address))
        {
            found = Some(message);
        }
    }
    match found {
        Some(message) => handle.address().del(message).execute().await.map_err(io_error),
        None => Ok(()),
    }
}

/// Run one link's steps; the failures, each naming its key.
pub async fn apply_link(handle: &Handle, link: &LinkPlan) -> Vec<NetconfError> {
    let mut errors = Vec::new();
    for step in &link.steps {
        if let Err(source) = run(handle, &link.link, &step.action).await {
            errors.push(NetconfError::Step {
                key: step.key.clone(),
                link: link.link.name.clone(),
                action: step.action.to_string(),
                source,
            });
        }
    }
    errors
}

/// Run the whole plan, link by link in its order.
pub async fn apply(handle: &Handle, plan: &Plan) -> Vec<NetconfError> {
    let mut errors = Vec::new();
    for link in &plan.links {
        errors.extend(apply_link(handle, link).await);
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = 3;
        message.attributes = attributes;
        message
    }

    /// A bond slave carries the bond's address; its own stays its MAC for `mac=` matches.
    /// A link without a permanent address (a bond, a VLAN: the kernel reports none, or
    /// zeros) keeps its current one.
    #[test]
    fn a_link_is_known_by_its_permanent_address() {
        let slave = link_of(&message(vec![
            LinkAttribute::IfName("eth3".into()),
            LinkAttribute::Address(vec![0x52, 0x54, 0, 0x4e, 1, 0x0a]),
            LinkAttribute::PermAddress(vec![0x52, 0x54, 0, 0x4e, 2, 0x0a]),
            LinkAttribute::Controller(7),
        ]));
        assert_eq!(
            (
                slave.index,
                slave.name.as_str(),
                slave.mac.as_deref(),
                slave.master
            ),
            (3, "eth3", Some("52:54:00:4e:02:0a"), Some(7))
        );
        for attributes in [
            vec![LinkAttribute::Address(vec![0x52, 0x54, 0, 0x4e, 1, 0x0a])],
            vec![
                LinkAttribute::Address(vec![0x52, 0x54, 0, 0x4e, 1, 0x0a]),
                LinkAttribute::PermAddress(vec![0; 6]),
            ],
        ] {
            let bond = link_of(&message(attributes));
            assert_eq!(bond.mac.as_deref(), Some("52:54:00:4e:01:0a"));
        }
    }
}
