//! Validated values: each type can only hold a valid value once built, so code that receives
//! a `Hostname` or a `Port` never checks it again. Each parses from its text form (`FromStr`,
//! the error being the message a user reads) and serializes back to it.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The one reading of a yes/no word, for configuration values, kernel parameters and service
/// labels alike: `true yes on y 1` and `false no off n 0`, in any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "1" => Some(true),
        "false" | "no" | "off" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Deserialize from text through `FromStr`, serialize through `Display`.
macro_rules! text_value {
    ($ty:ident, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct TextVisitor;
                impl Visitor<'_> for TextVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_string(TextVisitor)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

pub(crate) use text_value;

/// Deserialize a number-like value from a number or from text, through `FromStr`.
macro_rules! text_value_number {
    ($ty:ident, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct NumberVisitor;
                impl Visitor<'_> for NumberVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<$ty, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, n: i64) -> Result<$ty, E> {
                        n.to_string().parse().map_err(E::custom)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_u64(NumberVisitor)
            }
        }
    };
}

/// Shorten what a user wrote for an error message.
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    format!("{out:?}")
}

/// A host name (RFC 1123): dot-separated labels of letters, digits and `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hostname(String);

impl Hostname {
    /// For built-in literals known to be valid.
    pub(crate) fn from_static(name: &'static str) -> Hostname {
        Hostname(name.to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Hostname {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let name = s.strip_suffix('.').unwrap_or(s);
        if !name.is_empty() && name.len() <= 253 && name.split('.').all(valid_label) {
            Ok(Hostname(name.to_string()))
        } else {
            Err(format!(
                "{} is not a valid hostname (dot-separated labels of letters, digits and '-', \
                 1-63 characters each, not starting or ending with '-'; 253 characters at most)",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(Hostname, "a hostname");

/// Where a network service is: a host name or an IP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Name(Hostname),
    Address(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name.as_str()),
            Host::Address(ip) => write!(f, "{ip}"),
        }
    }
}

/// A service's address as users write it: `HOST`, `IP`, `HOST:PORT` or `[IPv6]:PORT` (a bare
/// IPv6 address has no port). The types holding one (an NTP server, a swarm manager) word
/// their own error and choose their default port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: Host,
    /// Never 0.
    pub port: Option<u16>,
}

impl HostPort {
    /// `None` when `s` is none of the forms above.
    pub fn parse(s: &str) -> Option<HostPort> {
        let t = s.trim();
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Some(HostPort {
                host: Host::Address(ip),
                port: None,
            });
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (ip, after) = rest.split_once(']')?;
            let ip: std::net::Ipv6Addr = ip.parse().ok()?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (Host::Address(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match t.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            };
            let host = match host.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => Host::Address(IpAddr::V4(ip)),
                Err(_) => Host::Name(host.parse().ok()?),
            };
            (host, port)
        };
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|&n| n != 0)?),
        };
        Some(HostPort { host, port })
    }

    /// The same address with `port` where none was given.
    pub fn or_port(self, port: u16) -> HostPort {
        HostPort {
            port: Some(self.port.unwrap_or(port)),
            ..self
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (Host::Address(IpAddr::V6(ip)), Some(port)) => write!(f, "[{ip}]:{port}"),
            (host, Some(port)) => write!(f, "{host}:{port}"),
            (host, None) => write!(f, "{host}"),
        }
    }
}

/// A TCP/UDP port number, 1-65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(u16);

impl Port {
    pub const SSH: Port = Port(22);
    pub fn new(n: u16) -> Option<Port> {
        (n != 0).then_some(Port(n))
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<u16>()
            .ok()
            .and_then(Port::new)
            .ok_or_else(|| format!("{} is not a port number (1-65535)", shown(s)))
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortVisitor;
        impl Visitor<'_> for PortVisitor {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number (1-65535)")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Port, E> {
                u16::try_from(n)
                    .ok()
                    .and_then(Port::new)
                    .ok_or_else(|| E::custom(format!("{n} is not a port number (1-65535)")))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Port, E> {
                Err(E::custom(format!("{n} is not a port number (1-65535)")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Port, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_u16(PortVisitor)
    }
}

/// An IPv4 or IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpAddress(pub IpAddr);

impl FromStr for IpAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<IpAddr>()
            .map(IpAddress)
            .map_err(|_| format!("{} is not an IP address (like 192.168.1.1 or fd00::1)", shown(s)))
    }
}

impl fmt::Display for IpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

text_value!(IpAddress, "an IP address");

/// An address with its prefix length: `192.168.1.10/24`, `fd00::10/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn address(&self) -> IpAddr {
        self.address
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!(
                "{} is not an address with a prefix length (like 192.168.1.10/24 or fd00::10/64)",
                shown(s)
            )
        };
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(err)?;
        let address: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!(
                "{}: the prefix length must be at most {max} for an {} address",
                shown(s),
                if address.is_ipv4() { "IPv4" } else { "IPv6" }
            ));
        }
        Ok(Cidr { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

text_value!(Cidr, "an address with a prefix length");

/// Unix permission bits, at most `0o7777`. Written as octal text (`"0644"`); a plain YAML
/// number such as `644` is read as the octal digits it shows, never as decimal 644.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileMode(u32);

impl FileMode {
    pub fn new(bits: u32) -> Option<FileMode> {
        (bits <= 0o7777).then_some(FileMode(bits))
    }
    /// The mode of the low 12 bits of `bits`.
    pub const fn from_bits_truncate(bits: u32) -> FileMode {
        FileMode(bits & 0o7777)
    }
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl FromStr for FileMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let digits = t.strip_prefix("0o").unwrap_or(t);
        if !digits.is_empty()
            && digits.len() <= 5
            && let Some(mode) = u32::from_str_radix(digits, 8).ok().and_then(FileMode::new)
        {
            return Ok(mode);
        }
        Err(format!(
            "{} is not a file mode (octal permission bits, like \"0644\" or \"0755\")",
            shown(s)
        ))
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

text_value!(FileMode, "a file mode");

/// A link MTU, 68-65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mtu(u16);

impl Mtu {
    pub fn get(self) -> u16 {
        self.0
    }
}

impl FromStr for Mtu {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u16>() {
            Ok(n) if n >= 68 => Ok(Mtu(n)),
            _ => Err(format!("{} is not an MTU (68-65535)", shown(s))),
        }
    }
}

impl fmt::Display for Mtu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Mtu {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.0)
    }
}

text_value_number!(Mtu, "an MTU (68-65535)");

/// A terminal name: `tty1`, `ttyS0`, `hvc0` (a leading `/dev/` is dropped).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TtyName(String);

impl TtyName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TtyName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let name = s.trim();
        let name = name.strip_prefix("/dev/").unwrap_or(name);
        if !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        {
            Ok(TtyName(name.to_string()))
        } else {
            Err(format!(
                "{} is not a terminal name (like tty1 or ttyS0)",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for TtyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(TtyName, "a terminal name");

/// A system service name, which is also its container's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);

impl ServiceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut bytes = s.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
        if first_ok
            && s.len() <= 128
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        {
            Ok(ServiceName(s.to_string()))
        } else {
            Err(format!(
                "{} is not a valid service name (letters, digits, '_', '.' and '-', \
                 starting with a letter or digit)",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for ServiceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

text_value!(ServiceName, "a service name");

/// A kernel setting under `/proc/sys`: `net.ipv4.ip_forward`, or with slashes when a part has
/// dots (`net/ipv4/conf/eth0.100/forwarding`). It can only name a file below `/proc/sys`:
/// no empty part (so no leading `/`), no `.` or `..`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysctlKey(String);

impl SysctlKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path below `/proc/sys`.
    pub fn relative_path(&self) -> std::path::PathBuf {
        self.parts().collect()
    }

    fn parts(&self) -> impl Iterator<Item = &str> {
        let sep = if self.0.contains('/') { '/' } else { '.' };
        self.0.split(sep)
    }
}

impl FromStr for SysctlKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let key = SysctlKey(s.to_string());
        let bad_part = |p: &str| {
            p.is_empty() || p == "." || p == ".." || p.chars().any(|c| c.is_control() || c.is_whitespace())
        };
        if s.len() > 256 || key.parts().any(bad_part) {
            return Err(format!(
                "{} is not a sysctl name (like net.ipv4.ip_forward, or net/ipv4/conf/eth0.100/forwarding)",
                shown(s)
            ));
        }
        Ok(key)
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for SysctlKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

text_value!(SysctlKey, "a sysctl name");

/// A kernel module to load, with optional parameters: `"bonding mode=4 miimon=100"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModuleSpec {
    name: String,
    params: Vec<String>,
}

impl ModuleSpec {
    /// The module name (`-` and `_` are the same to the kernel).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `param=value` words, in order.
    pub fn params(&self) -> &[String] {
        &self.params
    }
}

impl FromStr for ModuleSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let name = words.next().unwrap_or_default();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let params: Vec<String> = words.map(str::to_string).collect();
        if !name_ok {
            return Err(format!(
                "{} is not a kernel module (a module name, then optional param=value words)",
                shown(s)
            ));
        }
        if let Some(bad) = params.iter().find(|p| p.starts_with('=')) {
            return Err(format!("{}: {bad:?} is not a param=value word", shown(s)));
        }
        Ok(ModuleSpec {
            name: name.to_string(),
            params,
        })
    }
}

impl fmt::Display for ModuleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for p in &self.params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

text_value!(ModuleSpec, "a kernel module name");

/// A sysctl value as written to `/proc/sys`: text, with booleans as `1`/`0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SysctlValue(String);

impl SysctlValue {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SysctlValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SysctlValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SysctlVisitor;
        impl Visitor<'_> for SysctlVisitor {
            type Value = SysctlValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sysctl value (text, a number or a boolean)")
            }
            fn visit_bool<E>(self, b: bool) -> Result<SysctlValue, E> {
                Ok(SysctlValue(if b { "1" } else { "0" }.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(n.to_string()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(n.to_string()))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SysctlValue, E> {
                if s.contains('\n') {
                    return Err(E::custom("a sysctl value must be a single line"));
                }
                Ok(SysctlValue(s.to_string()))
            }
        }
        deserializer.deserialize_any(SysctlVisitor)
    }
}

/// A block device: a `/dev/...` path, or `LABEL=`, `UUID=`, `PARTLABEL=`, `PARTUUID=`; `none`
/// for no device at all.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeviceRef(String);

impl DeviceRef {
    /// For built-in literals known to be valid.
    pub(crate) fn from_static(dev: &'static str) -> DeviceRef {
        DeviceRef(dev.to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DeviceRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let tagged = ["LABEL=", "UUID=", "PARTLABEL=", "PARTUUID="]
            .iter()
            .any(|p| t.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
        let path = t.starts_with("/dev/") && t.len() > 5 && !t.contains("..");
        if (tagged || path || t == "none") && !t.contains(char::is_whitespace) {
            Ok(DeviceRef(t.to_string()))
        } else {
            Err(format!(
                "{} is not a device (a /dev/... path, LABEL=, UUID=, PARTLABEL=, PARTUUID=, or none)",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for DeviceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(DeviceRef, "a device");

/// Where cloud-init looks for user-data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Datasource {
    /// A volume labelled `cidata` (`user-data`, `meta-data`, `network-config`).
    NoCloud,
    /// An OpenStack config drive (label `config-2`).
    ConfigDrive,
    /// The URL in the `cloud-config-url=` kernel parameter.
    Cmdline,
    /// An EC2-style metadata service.
    Ec2,
    /// A plain http(s) URL.
    Url(String),
    /// A local file.
    File(String),
}

impl FromStr for Datasource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let err = || {
            format!(
                "{} is not a datasource (nocloud, configdrive, cmdline, ec2, \
                 url:http(s)://..., file:/path)",
                shown(s)
            )
        };
        match t {
            "nocloud" => return Ok(Datasource::NoCloud),
            "configdrive" => return Ok(Datasource::ConfigDrive),
            "cmdline" => return Ok(Datasource::Cmdline),
            "ec2" => return Ok(Datasource::Ec2),
            _ => {}
        }
        if let Some(url) = t.strip_prefix("url:") {
            return HttpUrl::from_str(url).map(|u| Datasource::Url(u.0));
        }
        if let Some(path) = t.strip_prefix("file:") {
            return AbsolutePath::from_str(path).map(|p| Datasource::File(p.0));
        }
        Err(err())
    }
}

impl fmt::Display for Datasource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datasource::NoCloud => f.write_str("nocloud"),
            Datasource::ConfigDrive => f.write_str("configdrive"),
            Datasource::Cmdline => f.write_str("cmdline"),
            Datasource::Ec2 => f.write_str("ec2"),
            Datasource::Url(u) => write!(f, "url:{u}"),
            Datasource::File(p) => write!(f, "file:{p}"),
        }
    }
}

text_value!(Datasource, "a datasource");

/// An absolute path with no `..` component.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AbsolutePath(String);

impl AbsolutePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn as_path(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl FromStr for AbsolutePath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with('/') && !s.contains('\0') && !s.split('/').any(|c| c == "..") && !s.contains('\n') {
            Ok(AbsolutePath(s.to_string()))
        } else {
            Err(format!(
                "{} is not an absolute path (it must start with '/' and have no '..' component)",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for AbsolutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(AbsolutePath, "an absolute path");

/// An `http://` or `https://` URL with a host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let rest = t.strip_prefix("http://").or_else(|| t.strip_prefix("https://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !t.contains(char::is_whitespace) => {
                Ok(HttpUrl(t.to_string()))
            }
            _ => Err(format!(
                "{} is not an http(s) URL (like https://mirror.example.com)",
                shown(s)
            )),
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl HttpUrl {
    /// The URL as messages and logs show it: [`shown_url`].
    pub fn shown(&self) -> String {
        shown_url(&self.0)
    }
}

/// A URL as messages and logs may show it: without what may be a secret, the user and
/// password (`https://***@host/`) and the query (`?***`: `?token=...`). Text that does not
/// parse as a URL with a host (a mistyped host, a password holding `#`, or no `scheme://`:
/// `user:pass@host/x` reads as a URL of scheme `user`) is cut by its characters: [`shown_text`].
pub fn shown_url(text: &str) -> String {
    let text = text.trim();
    let mut url = match url::Url::parse(text) {
        Ok(url) if url.has_host() || !text.contains('@') => url,
        _ => return shown_text(text),
    };
    let had_user = !url.username().is_empty() || url.password().is_some();
    let had_query = url.query().is_some_and(|q| !q.is_empty());
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    let mut shown = url.to_string();
    if had_user && let Some(at) = shown.find("://").map(|i| i + 3) {
        shown.insert_str(at, "***@");
    }
    if had_query {
        shown.push_str("?***");
    }
    shown
}

/// What is not a URL, shown so that the user can find the mistake and a secret it holds is
/// not: `***` for all before the last `@` after `://` (or from the start), then nothing from
/// the first `?` or `#` on (`?***`). It may hide more than the secret, never less.
fn shown_text(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let masked = match text[start..].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    };
    match masked.find(['?', '#']) {
        Some(at) => format!("{}?***", &masked[..at]),
        None => masked,
    }
}

text_value!(HttpUrl, "an http(s) URL");

/// A time zone name from the tz database: `UTC`, `Europe/Paris`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timezone(String);

impl Timezone {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Timezone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let ok = !t.is_empty()
            && t.len() <= 64
            && !t.starts_with('/')
            && !t.split('/').any(|c| c.is_empty() || c == "." || c == "..")
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
        if ok {
            Ok(Timezone(t.to_string()))
        } else {
            Err(format!(
                "{} is not a time zone name (like UTC or Europe/Paris)",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(Timezone, "a time zone name");

/// One line of `authorized_keys`: optional options, a key type, the base64 key, a comment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SshPublicKey(String);

impl SshPublicKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const SSH_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

impl FromStr for SshPublicKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.contains("PRIVATE KEY") {
            return Err(
                "this is a private key: put the public key (the .pub file) here, and never \
                 share the private one"
                    .to_string(),
            );
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        let typed = words.windows(2).any(|w| {
            (SSH_KEY_TYPES.contains(&w[0]) || w[0].ends_with("-cert-v01@openssh.com"))
                && w[1].starts_with("AAAA")
        });
        // One line, and nothing a terminal or sshd would read as something else: a NUL or
        // CR in a key from meta-data would otherwise land in authorized_keys as it is.
        if typed && !t.chars().any(|c| c.is_control() && c != '\t') {
            Ok(SshPublicKey(t.to_string()))
        } else {
            Err(format!(
                "{} is not an ssh public key (expected one line like \"ssh-ed25519 AAAA... comment\")",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for SshPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(SshPublicKey, "an ssh public key");

/// A container restart policy: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RestartPolicy(String);

impl RestartPolicy {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RestartPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let ok = matches!(t, "no" | "always" | "unless-stopped" | "on-failure")
            || t.strip_prefix("on-failure:")
                .is_some_and(|n| n.parse::<u32>().is_ok());
        if ok {
            Ok(RestartPolicy(t.to_string()))
        } else {
            Err(format!(
                "{} is not a restart policy (no, always, unless-stopped, on-failure or on-failure:N)",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(RestartPolicy, "a restart policy");

/// A compose-style duration: `10s`, `1m30s`, `500ms`, `1h`; a bare number is seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeSpan(std::time::Duration);

impl TimeSpan {
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for TimeSpan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("{} is not a duration (like 10s, 1m30s or 500ms)", shown(s));
        let t = s.trim();
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(TimeSpan(std::time::Duration::from_secs(secs)));
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = t;
        if rest.is_empty() {
            return Err(err());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            // Exact for every count: `Ns` is what Display writes, so it must read back as
            // itself; an overflow is refused rather than silently cut to the largest value.
            let too_long = || format!("{} is too long a duration", shown(s));
            let part = match unit {
                "ms" => std::time::Duration::from_millis(n),
                "s" => std::time::Duration::from_secs(n),
                "m" => std::time::Duration::from_secs(n.checked_mul(60).ok_or_else(too_long)?),
                "h" => std::time::Duration::from_secs(n.checked_mul(3600).ok_or_else(too_long)?),
                _ => return Err(err()),
            };
            total = total.checked_add(part).ok_or_else(too_long)?;
        }
        Ok(TimeSpan(total))
    }
}

impl fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for TimeSpan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpanVisitor;
        impl Visitor<'_> for SpanVisitor {
            type Value = TimeSpan;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration (like 10s)")
            }
            fn visit_u64<E>(self, n: u64) -> Result<TimeSpan, E> {
                Ok(TimeSpan(std::time::Duration::from_secs(n)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TimeSpan, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SpanVisitor)
    }
}

impl Serialize for TimeSpan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A container image reference (may hold `${VAR}` to be interpolated).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef(String);

impl ImageRef {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ImageRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if !t.is_empty() && !t.contains(char::is_whitespace) {
            Ok(ImageRef(t.to_string()))
        } else {
            Err(format!(
                "{} is not an image name (like berth/console:1.0)",
                shown(s)
            ))
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(ImageRef, "an image name");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_secrets() {
        for (url, shown) in [
            (
                "https://mirror.example.com/debian",
                "https://mirror.example.com/debian",
            ),
            ("http://joe:s3cret@proxy.lan:3128", "http://***@proxy.lan:3128/"),
            ("http://token@h/x", "http://***@h/x"),
            (
                "http://10.0.0.1:2378/worker-token?key=abc#f",
                "http://10.0.0.1:2378/worker-token?***",
            ),
            ("not a url", "not a url"),
            ("http://joe:s3cret@[h/x?t=1", "http://***@[h/x?***"),
            ("http://joe:p#ss?w@h:x/y", "http://***@h:x/y"),
            (
                "admin:hunter2@10.0.0.1:8080/user-data",
                "***@10.0.0.1:8080/user-data",
            ),
            ("mailto:joe@example.com", "***@example.com"),
            ("ht tp://h/x#frag", "ht tp://h/x?***"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
        let url: HttpUrl = "https://u:p@h.example/t?x=1".parse().unwrap();
        assert_eq!(url.shown(), "https://***@h.example/t?***");
        // The URL itself, for requests and configuration files, is untouched.
        assert_eq!(url.to_string(), "https://u:p@h.example/t?x=1");
    }

    #[test]
    fn hostnames() {
        for ok in ["berth", "a-b.example.com", "x1", "node-01.", "A"] {
            assert!(ok.parse::<Hostname>().is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "has space", "a_b", &"x".repeat(64)] {
            assert!(bad.parse::<Hostname>().is_err(), "{bad}");
        }
    }

    #[test]
    fn host_port_forms() {
        for (text, host, port) in [
            ("pool.example.org", "pool.example.org", None),
            ("192.0.2.1:123", "192.0.2.1", Some(123)),
            ("2001:db8::1", "2001:db8::1", None),
            ("[2001:db8::1]:2377", "2001:db8::1", Some(2377)),
            ("[2001:db8::1]", "2001:db8::1", None),
        ] {
            let hp = HostPort::parse(text).unwrap();
            assert_eq!((hp.host.to_string().as_str(), hp.port), (host, port), "{text}");
        }
        for bad in ["", "a:0", "a:b", "[192.0.2.1]:1", "[::1]1", "a b", "tcp://a:1"] {
            assert_eq!(HostPort::parse(bad), None, "{bad}");
        }
        // With a port, an IPv6 address is shown in brackets (what engines and chrony read).
        let hp = HostPort::parse("2001:db8::1").unwrap().or_port(2377);
        assert_eq!(hp.to_string(), "[2001:db8::1]:2377");
        assert_eq!(
            HostPort::parse("m:4000").unwrap().or_port(2377).to_string(),
            "m:4000"
        );
    }

    #[test]
    fn file_modes() {
        assert_eq!("0644".parse::<FileMode>().unwrap().bits(), 0o644);
        assert_eq!("755".parse::<FileMode>().unwrap().bits(), 0o755);
        assert_eq!("0o600".parse::<FileMode>().unwrap().bits(), 0o600);
        assert_eq!("4755".parse::<FileMode>().unwrap().to_string(), "4755");
        assert_eq!("0600".parse::<FileMode>().unwrap().to_string(), "0600");
        for bad in ["0689", "rw-r--r--", "", "77777", "-1"] {
            assert!(bad.parse::<FileMode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        let c: Cidr = "192.168.1.10/24".parse().unwrap();
        assert_eq!(c.prefix_len(), 24);
        assert!("fd00::1/64".parse::<Cidr>().is_ok());
        for bad in ["192.168.1.10", "1.2.3.4/33", "x/24", "fd00::1/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn datasources() {
        assert_eq!("nocloud".parse::<Datasource>().unwrap(), Datasource::NoCloud);
        assert_eq!(
            "url:http://10.0.2.2:8000/user-data"
                .parse::<Datasource>()
                .unwrap(),
            Datasource::Url("http://10.0.2.2:8000/user-data".into())
        );
        assert_eq!(
            "file:/var/lib/x.yml".parse::<Datasource>().unwrap().to_string(),
            "file:/var/lib/x.yml"
        );
        assert!("gce".parse::<Datasource>().is_err());
        assert!("url:ftp://x".parse::<Datasource>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!("1m30s".parse::<TimeSpan>().unwrap().get().as_secs(), 90);
        assert_eq!("500ms".parse::<TimeSpan>().unwrap().to_string(), "500ms");
        assert_eq!("10".parse::<TimeSpan>().unwrap().to_string(), "10s");
        assert!("10x".parse::<TimeSpan>().is_err());
        assert!("".parse::<TimeSpan>().is_err());
        // Found by the values fuzz target: a long span read back cut to u64::MAX ms.
        let long: TimeSpan = "2958018110441994638".parse().unwrap();
        assert_eq!(long.to_string().parse::<TimeSpan>().unwrap(), long);
        let e = "10000000000000000h".parse::<TimeSpan>().unwrap_err();
        assert!(e.contains("too long"), "{e}");
    }

    #[test]
    fn ssh_keys() {
        assert!(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx user@host"
                .parse::<SshPublicKey>()
                .is_ok()
        );
        assert!(
            "command=\"x\" ssh-rsa AAAAB3NzaC1yc2E key"
                .parse::<SshPublicKey>()
                .is_ok()
        );
        assert!("hello".parse::<SshPublicKey>().is_err());
        // Control characters (found by the meta_ec2 fuzz target) never reach authorized_keys;
        // a tab between the fields is fine.
        for bad in [
            "ssh-ed25519 AAAAC3Nz x\0y",
            "ssh-ed25519 AAAAC3Nz x\ry",
            "ssh-ed25519 AAAAC3Nz \x1b[2J",
        ] {
            assert!(bad.parse::<SshPublicKey>().is_err(), "{bad:?}");
        }
        assert!("ssh-ed25519\tAAAAC3Nz\tcomment".parse::<SshPublicKey>().is_ok());
        let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----";
        assert!(
            private
                .parse::<SshPublicKey>()
                .unwrap_err()
                .contains("private key")
        );
    }

    #[test]
    fn modules() {
        let m: ModuleSpec = "bonding mode=4 miimon=100".parse().unwrap();
        assert_eq!(m.name(), "bonding");
        assert_eq!(m.params(), ["mode=4", "miimon=100"]);
        assert!("".parse::<ModuleSpec>().is_err());
        assert!("a/b".parse::<ModuleSpec>().is_err());
    }
}
