//! The errors of netconf, each naming what it was doing and where.

#[derive(Debug, thiserror::Error)]
pub enum NetconfError {
    #[error("cannot start the netlink runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("cannot list the network links: {0}")]
    ListLinks(#[source] rtnetlink::Error),
    #[error("{key}: {link}: cannot {action}: {source}")]
    Step {
        key: String,
        link: String,
        action: String,
        #[source]
        source: std::io::Error,
    },
}

impl NetconfError {
    /// The configuration key of a failed step.
    pub fn key(&self) -> Option<&str> {
        match self {
            NetconfError::Step { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The link a failed step was for.
    pub fn link(&self) -> Option<&str> {
        match self {
            NetconfError::Step { link, .. } => Some(link),
            _ => None,
        }
    }
}
