//! `berth.network`: a deliberately small typed model that the network work will grow.

use super::values::{Cidr, IpAddress, Mtu};
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
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            interfaces: IndexMap::new(),
            dns: DnsConfig::default(),
            dhcp_timeout: 10,
        }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddress>,
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
