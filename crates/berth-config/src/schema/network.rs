//! `berth.network`: interfaces (static addresses, gateways, MTU, DHCP), DNS and the DHCP
//! timeout, as netconf applies them. Bonds, VLANs and bridges are not in the model yet.

use super::values::{Cidr, HttpUrl, IpAddress, Mtu};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct NetworkConfig {
    /// Keyed by interface name (`eth0`), glob (`eth*`) or `mac=aa:bb:...`.
    pub interfaces: IndexMap<String, InterfaceConfig>,
    pub dns: DnsConfig,
    /// Seconds to wait for a DHCP lease.
    pub dhcp_timeout: u32,
    /// Proxies for System Docker, User Docker, the console and cloud-init (see `crate::proxy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_proxy: Option<HttpUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<HttpUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            interfaces: IndexMap::new(),
            dns: DnsConfig::default(),
            dhcp_timeout: 10,
            http_proxy: None,
            https_proxy: None,
            no_proxy: None,
        }
    }
}

impl NetworkConfig {
    /// Values that are valid but will not be used as written: `(key path, message)` pairs.
    pub(crate) fn warnings(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, interface) in &self.interfaces {
            for (field, gateway, wants_v6) in [
                ("gateway", interface.gateway, false),
                ("gateway_ipv6", interface.gateway_ipv6, true),
            ] {
                if let Some(gateway) = gateway
                    && gateway.0.is_ipv6() != wants_v6
                {
                    let (is, use_) = if wants_v6 {
                        ("an IPv4", "gateway")
                    } else {
                        ("an IPv6", "gateway_ipv6")
                    };
                    out.push((
                        format!("berth.network.interfaces.{name}.{field}"),
                        format!("{gateway} is {is} address: it is not used; write it as `{use_}`"),
                    ));
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct InterfaceConfig {
    /// Overrides the key as the match (name, glob or `mac=`).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Cidr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Cidr>,
    /// The IPv4 default route's router, through this interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddress>,
    /// The IPv6 default route's router, through this interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_ipv6: Option<IpAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<Mtu>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct DnsConfig {
    pub nameservers: Vec<IpAddress>,
    pub search: Vec<String>,
}
