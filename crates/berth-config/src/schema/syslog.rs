//! `berth.syslog`: where rsyslog (the `syslog` system service) forwards what it logs.

use super::values::{Hostname, shown, text_value};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SyslogConfig {
    /// Forward every message to this host: `udp://HOST:PORT` or `tcp://HOST:PORT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<SyslogRemote>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogProtocol {
    Udp,
    Tcp,
}

impl SyslogProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SyslogProtocol::Udp => "udp",
            SyslogProtocol::Tcp => "tcp",
        }
    }
}

/// A remote syslog receiver: `udp://logs.example.org:514`, `tcp://[2001:db8::1]:601`. The port
/// may be left out (514).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogRemote {
    pub protocol: SyslogProtocol,
    /// A host name or an IP address (an IPv6 address without its brackets).
    pub host: String,
    pub port: u16,
}

impl FromStr for SyslogRemote {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "{} is not a syslog receiver URL: {why} (write udp://HOST:PORT or tcp://HOST:PORT, \
                 like udp://logs.example.org:514)",
                shown(s)
            )
        };
        let t = s.trim();
        let (scheme, rest) = t.split_once("://").ok_or_else(|| bad("no udp:// or tcp://"))?;
        let protocol = match scheme.to_ascii_lowercase().as_str() {
            "udp" => SyslogProtocol::Udp,
            "tcp" => SyslogProtocol::Tcp,
            _ => return Err(bad(&format!("the protocol {scheme:?} is neither udp nor tcp"))),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed ["))?;
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad("not an IPv6 address in [ ]"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("text after ]"))?),
            };
            (ip.to_string(), port)
        } else {
            let (host, port) = match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            if host.parse::<IpAddr>().is_err() {
                host.parse::<Hostname>()
                    .map_err(|_| bad("not a host name or address"))?;
            }
            (host.to_string(), port)
        };
        let port = match port {
            None => 514,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
        };
        Ok(SyslogRemote { protocol, host, port })
    }
}

impl fmt::Display for SyslogRemote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.protocol.as_str(), self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.protocol.as_str(), self.host, self.port)
        }
    }
}

text_value!(
    SyslogRemote,
    "a syslog receiver URL (udp://HOST:PORT or tcp://HOST:PORT)"
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn receivers_parse() {
        for (text, protocol, host, port) in [
            (
                "udp://logs.example.org:514",
                SyslogProtocol::Udp,
                "logs.example.org",
                514,
            ),
            ("tcp://192.0.2.7:601", SyslogProtocol::Tcp, "192.0.2.7", 601),
            ("UDP://logs", SyslogProtocol::Udp, "logs", 514),
            (
                "tcp://[2001:db8::1]:6514",
                SyslogProtocol::Tcp,
                "2001:db8::1",
                6514,
            ),
        ] {
            let remote: SyslogRemote = text.parse().unwrap();
            assert_eq!(
                (remote.protocol, remote.host.as_str(), remote.port),
                (protocol, host, port),
                "{text}"
            );
            assert_eq!(remote.to_string().parse::<SyslogRemote>().unwrap(), remote);
        }
    }

    #[test]
    fn what_is_not_a_receiver_url_is_refused() {
        for text in [
            "logs.example.org:514",
            "http://logs.example.org",
            "udp://",
            "udp://logs.example.org:0",
            "udp://logs.example.org:syslog",
            "tcp://[2001:db8::1",
            "udp://bad host",
        ] {
            let err = text.parse::<SyslogRemote>().unwrap_err();
            assert!(err.contains("is not a syslog receiver URL"), "{text}: {err}");
        }
    }
}
