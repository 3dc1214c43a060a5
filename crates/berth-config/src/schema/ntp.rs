//! `berth.ntp`: the time servers chrony (the `ntp` system service) asks.

use super::values::{Host, HostPort, Hostname, shown, text_value};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
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
            .map(|name| {
                NtpServer(HostPort {
                    host: Host::Name(Hostname::from_static(name)),
                    port: None,
                })
            })
            .collect(),
            dhcp: true,
        }
    }
}

/// One NTP server: `pool.example.org`, `192.0.2.1`, `ntp.example.org:1123`, `[2001:db8::1]:123`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NtpServer(HostPort);

impl NtpServer {
    pub fn host(&self) -> &Host {
        &self.0.host
    }
    /// `None`: chrony's default (123).
    pub fn port(&self) -> Option<u16> {
        self.0.port
    }
}

impl FromStr for NtpServer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        HostPort::parse(s).map(NtpServer).ok_or_else(|| {
            format!(
                "{} is not an NTP server (a host name or IP address, optionally with :PORT; \
                 an IPv6 address with a port in brackets: [2001:db8::1]:123)",
                shown(s)
            )
        })
    }
}

impl fmt::Display for NtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
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
