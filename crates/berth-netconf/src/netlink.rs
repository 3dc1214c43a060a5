//! Carrying a [`Plan`] out over rtnetlink: list the links, then run each link's steps in order.
//! A step that fails is reported with its configuration key and the next one still runs, so
//! one bad interface never keeps the others down.

use crate::error::NetconfError;
use crate::plan::{Action, Link, LinkPlan, Plan};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use std::net::IpAddr;

/// The links of the calling thread's network namespace.
pub async fn links(handle: &Handle) -> Result<Vec<Link>, NetconfError> {
    let mut out = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(message) = stream.try_next().await.map_err(NetconfError::ListLinks)? {
        let mut name = None;
        let mut mac = None;
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                    mac = Some(
                        bytes
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<Vec<_>>()
                            .join(":"),
                    );
                }
                _ => {}
            }
        }
        if let Some(name) = name {
            out.push(Link {
                index: message.header.index,
                name,
                mac,
            });
        }
    }
    Ok(out)
}

fn io_error(e: rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => std::io::Error::other(other.to_string()),
    }
}

async fn run(handle: &Handle, index: u32, action: &Action) -> Result<(), rtnetlink::Error> {
    match action {
        Action::SetMtu(mtu) => {
            let message = LinkUnspec::new_with_index(index).mtu(u32::from(*mtu)).build();
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
        Action::DefaultRoute(IpAddr::V4(gateway)) => {
            let route = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .gateway(*gateway)
                .output_interface(index)
                .build();
            handle.route().add(route).replace().execute().await
        }
        Action::DefaultRoute(IpAddr::V6(gateway)) => {
            let route = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .gateway(*gateway)
                .output_interface(index)
                .build();
            handle.route().add(route).replace().execute().await
        }
    }
}

/// Run one link's steps; the failures, each naming its key.
pub async fn apply_link(handle: &Handle, link: &LinkPlan) -> Vec<NetconfError> {
    let mut errors = Vec::new();
    for step in &link.steps {
        if let Err(e) = run(handle, link.link.index, &step.action).await {
            errors.push(NetconfError::Step {
                key: step.key.clone(),
                link: link.link.name.clone(),
                action: step.action.to_string(),
                source: io_error(e),
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
