//! `berth.swarm`: whether and how the user engine takes part in a Docker Swarm (the `swarm`
//! system service acts on it at every boot).

use super::forms::string_map;
use super::values::{AbsolutePath, Host, HostPort, HttpUrl, shown, text_value};
use indexmap::IndexMap;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The port swarm managers listen on for the cluster's management traffic.
pub const MANAGER_PORT: u16 = 2377;
/// The port a manager with `serve_token: true` serves the worker join token on (plain HTTP,
/// `GET /worker-token`, on its advertise address, to its subnet only).
pub const TOKEN_PORT: u16 = 2378;
/// The path of the worker token on [`TOKEN_PORT`].
pub const TOKEN_PATH: &str = "/worker-token";
/// Where a manager serving its worker token also answers whether a node is in the swarm:
/// `GET /nodes/NODE_ID` on [`TOKEN_PORT`], to the same subnet, answered [`MEMBER`] or
/// [`NOT_MEMBER`] and nothing more. A worker removed with `docker node rm --force` while it
/// runs learns it there (its engine keeps saying `active`) and joins again.
pub const MEMBER_PATH: &str = "/nodes/";
/// The answer at [`MEMBER_PATH`] for a node in the swarm.
pub const MEMBER: &str = "member";
/// The answer at [`MEMBER_PATH`] for a node the swarm does not have (removed, or never in it).
pub const NOT_MEMBER: &str = "not-member";

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SwarmConfig {
    /// `false` keeps the machine out of the swarm whatever the other layers say: what
    /// `berth swarm leave` writes into the local configuration (user-data would otherwise
    /// make it rejoin at the next boot).
    pub enabled: bool,
    /// `manager` or `worker`; nothing is done while it is not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<SwarmRole>,
    /// Create the swarm here (the first manager) instead of joining one.
    pub init: bool,
    /// A manager to join: `ADDRESS:PORT` (the port defaults to 2377).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<SwarmPeer>,
    /// The join token itself. Private.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<SwarmToken>,
    /// A file holding the join token (read at every join).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<AbsolutePath>,
    /// A URL answering with the join token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<HttpUrl>,
    /// The address other nodes reach this one at: an interface name or an IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_addr: Option<AdvertiseAddr>,
    /// On a manager: serve the WORKER join token over plain HTTP on the advertise address,
    /// port [`TOKEN_PORT`], to clients of that address's subnet only (anyone there can join as
    /// a worker: off by default; docs/fleet.md).
    pub serve_token: bool,
    /// Node labels (`docker node update --label-add`), for placement constraints.
    #[serde(deserialize_with = "string_map", skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            enabled: true,
            role: None,
            init: false,
            join: None,
            token: None,
            token_file: None,
            token_url: None,
            advertise_addr: None,
            serve_token: false,
            labels: IndexMap::new(),
        }
    }
}

impl SwarmConfig {
    /// Settings that contradict each other: `(key path, message)` pairs.
    pub(crate) fn errors(&self) -> Vec<(String, String)> {
        let key = |k: &str| format!("berth.swarm.{k}");
        let mut out = Vec::new();
        let sources = [
            ("token", self.token.is_some()),
            ("token_file", self.token_file.is_some()),
            ("token_url", self.token_url.is_some()),
        ];
        let given: Vec<&str> = sources.iter().filter(|(_, set)| *set).map(|(k, _)| *k).collect();
        let Some(role) = self.role else {
            let set = [
                ("init", self.init),
                ("join", self.join.is_some()),
                ("serve_token", self.serve_token),
            ]
            .into_iter()
            .chain(sources)
            .find(|(_, set)| *set);
            if let Some((k, _)) = set {
                out.push((
                    key(k),
                    "berth.swarm.role is not set: say `role: manager` or `role: worker` \
                     for this machine to take part in a swarm"
                        .to_string(),
                ));
            }
            return out;
        };
        if self.init {
            if role == SwarmRole::Worker {
                out.push((
                    key("init"),
                    "a worker cannot create a swarm: the first machine is `role: manager` with \
                     `init: true`"
                        .to_string(),
                ));
            }
            if self.join.is_some() {
                out.push((
                    key("join"),
                    "`init: true` creates a new swarm, `join` joins an existing one: keep one".to_string(),
                ));
            }
        } else {
            if self.join.is_none() {
                out.push((
                    key("role"),
                    "this machine joins a swarm (no `init: true`) but `join` does not say where: \
                     `join: ADDRESS:2377` of a manager"
                        .to_string(),
                ));
            }
            if given.is_empty() {
                out.push((
                    key("role"),
                    "this machine joins a swarm (no `init: true`) but has no join token: set \
                     `token`, `token_file` or `token_url` (`sudo berth swarm token worker` on a \
                     manager prints it)"
                        .to_string(),
                ));
            }
        }
        if self.serve_token && role == SwarmRole::Worker {
            out.push((
                key("serve_token"),
                "only a manager has a join token to serve: set `serve_token` on a manager \
                 (`role: manager`), and `token_url: http://MANAGER:2378/worker-token` here"
                    .to_string(),
            ));
        }
        if given.len() > 1 {
            out.push((
                key(given[1]),
                format!(
                    "the join token comes from one place: {} are all set; keep one",
                    given.join(", ")
                ),
            ));
        }
        out
    }

    /// Whether this machine takes part in a swarm at all.
    pub fn active(&self) -> bool {
        self.enabled && self.role.is_some()
    }
}

/// A node's role in the swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwarmRole {
    Manager,
    Worker,
}

impl SwarmRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SwarmRole::Manager => "manager",
            SwarmRole::Worker => "worker",
        }
    }
}

impl fmt::Display for SwarmRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A manager's address: `192.0.2.10:2377`, `manager.example:2377`, `[2001:db8::1]:2377`;
/// without a port, 2377.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmPeer(HostPort);

impl SwarmPeer {
    pub fn port(&self) -> u16 {
        self.0.port.unwrap_or(MANAGER_PORT)
    }

    /// Where this manager, if it serves its worker token, says whether `node_id` is in the
    /// swarm ([`MEMBER_PATH`]).
    pub fn membership_url(&self, node_id: &str) -> String {
        let host = match &self.0.host {
            Host::Address(IpAddr::V6(ip)) => format!("[{ip}]"),
            host => host.to_string(),
        };
        format!("http://{host}:{TOKEN_PORT}{MEMBER_PATH}{node_id}")
    }
}

impl FromStr for SwarmPeer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let peer = HostPort::parse(s).ok_or_else(|| {
            format!(
                "{} is not a manager's address (ADDRESS:PORT, like 192.0.2.10:2377 or \
                 manager.example:2377; an IPv6 address in brackets: [2001:db8::1]:2377)",
                shown(s)
            )
        })?;
        Ok(SwarmPeer(peer.or_port(MANAGER_PORT)))
    }
}

impl fmt::Display for SwarmPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

text_value!(SwarmPeer, "a manager's address (ADDRESS:PORT)");

/// A swarm join token (`SWMTKN-1-...`). A secret: its `Debug` form hides it, and an error
/// about one never repeats it.
#[derive(Clone, PartialEq, Eq)]
pub struct SwarmToken(String);

impl SwarmToken {
    /// The token, for the engine's join request only.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SwarmToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SwarmToken(<hidden>)")
    }
}

impl FromStr for SwarmToken {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let shape = t.strip_prefix("SWMTKN-").is_some_and(|rest| {
            rest.len() >= 10 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if shape {
            Ok(SwarmToken(t.to_string()))
        } else {
            // Never echo what was given: it may be a real secret with a typo.
            Err(format!(
                "this is not a swarm join token ({} characters; a token looks like \
                 SWMTKN-1-<letters and digits>-<letters and digits>, as `docker swarm join-token` \
                 prints it)",
                t.chars().count()
            ))
        }
    }
}

impl fmt::Display for SwarmToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(SwarmToken, "a swarm join token");

/// The address this node advertises: an interface (its first address is used) or an IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdvertiseAddr {
    Interface(String),
    Address(IpAddr),
}

impl FromStr for AdvertiseAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(AdvertiseAddr::Address(ip));
        }
        // Linux interface names: 1-15 bytes, no '/', ':' or whitespace.
        let interface = !t.is_empty()
            && t.len() <= 15
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
        if interface {
            Ok(AdvertiseAddr::Interface(t.to_string()))
        } else {
            Err(format!(
                "{} is neither an interface name (like eth1) nor an IP address",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for AdvertiseAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdvertiseAddr::Interface(name) => f.write_str(name),
            AdvertiseAddr::Address(ip) => write!(f, "{ip}"),
        }
    }
}

text_value!(AdvertiseAddr, "an interface name or an IP address");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const TOKEN: &str =
        "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx";

    #[test]
    fn peers_parse_with_the_default_port() {
        for (text, shown) in [
            ("198.18.0.10:2377", "198.18.0.10:2377"),
            ("198.18.0.10", "198.18.0.10:2377"),
            ("manager.example:4000", "manager.example:4000"),
            ("manager.example", "manager.example:2377"),
            ("[2001:db8::1]:2377", "[2001:db8::1]:2377"),
            // An IPv6 address with the port: in brackets, as the engine reads it.
            ("2001:db8::1", "[2001:db8::1]:2377"),
        ] {
            assert_eq!(text.parse::<SwarmPeer>().unwrap().to_string(), shown, "{text}");
        }
        for bad in [
            "",
            "tcp://198.18.0.10:2377",
            "198.18.0.10:0",
            "host:port",
            "a b:1",
        ] {
            let err = bad.parse::<SwarmPeer>().unwrap_err();
            assert!(err.contains("is not a manager's address"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_managers_membership_answer_is_on_its_token_port() {
        let url = |peer: &str| peer.parse::<SwarmPeer>().unwrap().membership_url("n0de1d");
        assert_eq!(url("198.18.5.10:2377"), "http://198.18.5.10:2378/nodes/n0de1d");
        assert_eq!(
            url("manager.example:4000"),
            "http://manager.example:2378/nodes/n0de1d"
        );
        assert_eq!(
            url("[2001:db8::1]:2377"),
            "http://[2001:db8::1]:2378/nodes/n0de1d"
        );
    }

    #[test]
    fn a_bad_token_is_refused_without_being_repeated() {
        assert_eq!(TOKEN.parse::<SwarmToken>().unwrap().reveal(), TOKEN);
        let secretish = "SWMTKN-1-abc def";
        let err = secretish.parse::<SwarmToken>().unwrap_err();
        assert!(!err.contains("abc"), "{err}");
        assert!(err.contains("not a swarm join token"), "{err}");
        let token: SwarmToken = TOKEN.parse().unwrap();
        assert!(!format!("{token:?}").contains("SWMTKN"));
    }

    #[test]
    fn advertise_addr_is_an_interface_or_an_address() {
        assert_eq!(
            "eth1".parse::<AdvertiseAddr>().unwrap(),
            AdvertiseAddr::Interface("eth1".into())
        );
        assert!(matches!(
            "198.18.0.10".parse::<AdvertiseAddr>().unwrap(),
            AdvertiseAddr::Address(_)
        ));
        assert!("eth1/24".parse::<AdvertiseAddr>().is_err());
        assert!("a-very-long-interface-name".parse::<AdvertiseAddr>().is_err());
    }

    fn config(role: Option<SwarmRole>, init: bool, join: bool, token: bool) -> SwarmConfig {
        SwarmConfig {
            role,
            init,
            join: join.then(|| "198.18.0.10".parse().unwrap()),
            token: token.then(|| TOKEN.parse().unwrap()),
            ..SwarmConfig::default()
        }
    }

    #[test]
    fn contradictions_are_errors_at_their_key() {
        use SwarmRole::*;
        let keys = |c: SwarmConfig| c.errors().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert!(keys(config(None, false, false, false)).is_empty());
        assert!(keys(config(Some(Manager), true, false, false)).is_empty());
        assert!(keys(config(Some(Worker), false, true, true)).is_empty());
        assert!(keys(config(Some(Manager), false, true, true)).is_empty());
        assert_eq!(
            keys(config(Some(Worker), true, false, false)),
            ["berth.swarm.init"]
        );
        assert_eq!(
            keys(config(Some(Manager), true, true, false)),
            ["berth.swarm.join"]
        );
        assert_eq!(
            keys(config(Some(Worker), false, true, false)),
            ["berth.swarm.role"]
        );
        assert_eq!(
            keys(config(Some(Worker), false, false, true)),
            ["berth.swarm.role"]
        );
        assert_eq!(keys(config(None, false, true, true)), ["berth.swarm.join"]);
        let mut serving = config(Some(Worker), false, true, true);
        serving.serve_token = true;
        assert_eq!(keys(serving), ["berth.swarm.serve_token"]);
        let mut serving = config(Some(Manager), true, false, false);
        serving.serve_token = true;
        assert!(keys(serving).is_empty());
        let mut serving = config(None, false, false, false);
        serving.serve_token = true;
        assert_eq!(keys(serving), ["berth.swarm.serve_token"]);
        let mut two = config(Some(Worker), false, true, true);
        two.token_file = Some("/run/token".parse().unwrap());
        assert_eq!(keys(two), ["berth.swarm.token_file"]);
    }
}
