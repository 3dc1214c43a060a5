//! `berth.ntp`: the time servers chrony (the `ntp` system service) asks.

use super::values::{Hostname, shown, text_value};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct NtpConfig {
    /// Servers chrony polls, in order: `HOST`, `IP`, `HOST:PORT`, `[IPv6]:PORT`.
    pub servers: Vec<NtpServer>,
    /// Also ask the NTP servers a DHCP lease offers (option 42), next to `servers`.
    pub dhcp: bool,
}

impl Default for NtpConfig {
    /// Debian's pool names, as its chrony package configures them.
    fn default() -> Self {
        NtpConfig {
            servers: [
                "0.debian.pool.ntp.org",
                "1.debian.pool.ntp.org",
                "2.debian.pool.ntp.org",
                "3.debian.pool.ntp.org",
            ]
            .into_iter()
            .map(|name| NtpServer {
                host: NtpHost::Name(Hostname::from_static(name)),
                port: None,
            })
            .collect(),
            dhcp: true,
        }
    }
}

/// Where an NTP server is: a host name or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NtpHost {
    Name(Hostname),
    Address(IpAddr),
}

impl fmt::Display for NtpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NtpHost::Name(name) => f.write_str(name.as_str()),
            NtpHost::Address(ip) => write!(f, "{ip}"),
        }
    }
}

/// One NTP server: `pool.example.org`, `192.0.2.1`, `ntp.example.org:1123`, `[2001:db8::1]:123`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NtpServer {
    pub host: NtpHost,
    pub port: Option<u16>,
}

impl FromStr for NtpServer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{} is not an NTP server (a host name or IP address, optionally with :PORT; \
                 an IPv6 address with a port in brackets: [2001:db8::1]:123)",
                shown(s)
            )
        };
        let t = s.trim();
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(NtpServer {
                host: NtpHost::Address(ip),
                port: None,
            });
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (NtpHost::Address(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match t.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            };
            let host = match host.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => NtpHost::Address(IpAddr::V4(ip)),
                Err(_) => NtpHost::Name(host.parse().map_err(|_| bad())?),
            };
            (host, port)
        };
        let port = port
            .map(|p| p.parse::<u16>().ok().filter(|&n| n != 0).ok_or_else(bad))
            .transpose()?;
        Ok(NtpServer { host, port })
    }
}

impl fmt::Display for NtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (NtpHost::Address(IpAddr::V6(ip)), Some(port)) => write!(f, "[{ip}]:{port}"),
            (host, Some(port)) => write!(f, "{host}:{port}"),
            (host, None) => write!(f, "{host}"),
        }
    }
}

text_value!(
    NtpServer,
    "an NTP server (host name or IP address, optionally :PORT)"
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn servers_parse_and_print_back() {
        for (text, shown) in [
            ("0.debian.pool.ntp.org", "0.debian.pool.ntp.org"),
            ("192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:1123", "192.0.2.1:1123"),
            ("ntp.example.org:123", "ntp.example.org:123"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:123", "[2001:db8::1]:123"),
            ("[2001:db8::1]", "2001:db8::1"),
        ] {
            let server: NtpServer = text.parse().unwrap();
            assert_eq!(server.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn unknown_syntax_is_refused() {
        for text in [
            "",
            "ntp://pool.example.org",
            "pool.example.org:0",
            "pool.example.org:ntp",
            "pool example.org",
            "[192.0.2.1]:123",
            "[2001:db8::1]123",
            "-bad-.example",
        ] {
            let err = text.parse::<NtpServer>().unwrap_err();
            assert!(err.contains("is not an NTP server"), "{text}: {err}");
        }
    }

    #[test]
    fn the_default_is_debians_pool() {
        let servers: Vec<String> = NtpConfig::default()
            .servers
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            servers,
            [
                "0.debian.pool.ntp.org",
                "1.debian.pool.ntp.org",
                "2.debian.pool.ntp.org",
                "3.debian.pool.ntp.org"
            ]
        );
    }
}
