//! Instance meta-data: the instance id, the host name and the ssh public keys a datasource
//! offers besides the user-data, from NoCloud's `meta-data` (YAML), the config drive's
//! `meta_data.json`, or the EC2 metadata tree. Parsing never fails: what cannot be used is
//! reported and left out.

use berth_config::schema::values::{Hostname, SshPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr as _;

/// Meta-data larger than this is not meta-data.
pub const MAX_META_DATA: usize = 1024 * 1024;

/// What Berth uses of a datasource's meta-data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct MetaData {
    /// Changes when the machine is a new instance: `runcmd` and scripts run again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The host name, used when the configuration sets none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_hostname: Option<Hostname>,
    /// Added to the login user's `authorized_keys`.
    pub public_keys: Vec<SshPublicKey>,
}

/// Parse NoCloud `meta-data`: YAML (or JSON) with `instance-id`, `local-hostname` (or
/// `hostname`) and `public-keys` (a key, a list, or a map of them, as EC2 nests them).
pub fn parse_nocloud_meta_data(bytes: &[u8]) -> (MetaData, Vec<String>) {
    let mut warnings = Vec::new();
    let Some(value) = parse_document(bytes, "meta-data", &mut warnings) else {
        return (MetaData::default(), warnings);
    };
    let mut meta = MetaData {
        instance_id: scalar(&value, "instance-id").or_else(|| scalar(&value, "instance_id")),
        ..MetaData::default()
    };
    let hostname = scalar(&value, "local-hostname")
        .or_else(|| scalar(&value, "local_hostname"))
        .or_else(|| scalar(&value, "hostname"));
    meta.local_hostname = hostname.and_then(|h| valid_hostname(&h, &mut warnings));
    let keys = value
        .get("public-keys")
        .or_else(|| value.get("public_keys"))
        .map(collect_key_lines)
        .unwrap_or_default();
    meta.public_keys = valid_keys(keys, &mut warnings);
    (meta, warnings)
}

/// Parse an OpenStack config drive's `meta_data.json`: `uuid`, `hostname`, `public_keys`
/// (name → key), or `keys` (`[{type: ssh, data: ...}]`).
pub fn parse_openstack_meta_data(bytes: &[u8]) -> (MetaData, Vec<String>) {
    let mut warnings = Vec::new();
    let Some(value) = parse_document(bytes, "meta_data.json", &mut warnings) else {
        return (MetaData::default(), warnings);
    };
    let mut meta = MetaData {
        instance_id: scalar(&value, "uuid").or_else(|| scalar(&value, "instance-id")),
        ..MetaData::default()
    };
    meta.local_hostname = scalar(&value, "hostname")
        .or_else(|| scalar(&value, "name"))
        .and_then(|h| valid_hostname(&h, &mut warnings));
    let mut keys = value
        .get("public_keys")
        .map(collect_key_lines)
        .unwrap_or_default();
    if keys.is_empty()
        && let Some(Value::Array(items)) = value.get("keys")
    {
        for item in items {
            if item.get("type").and_then(Value::as_str).unwrap_or("ssh") == "ssh"
                && let Some(data) = item.get("data")
            {
                keys.extend(collect_key_lines(data));
            }
        }
    }
    meta.public_keys = valid_keys(keys, &mut warnings);
    (meta, warnings)
}

/// The indexes in EC2's `meta-data/public-keys/` listing (`0=my-key` lines).
pub fn parse_ec2_public_key_index(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let index = line.split('=').next()?.trim().trim_end_matches('/');
            (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then(|| index.to_string())
        })
        .take(100)
        .collect()
}

/// Assemble EC2 meta-data from the fetched pieces.
pub fn ec2_meta_data(
    instance_id: Option<&str>,
    local_hostname: Option<&str>,
    keys: &[String],
) -> (MetaData, Vec<String>) {
    let mut warnings = Vec::new();
    let local_hostname = local_hostname
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .and_then(|h| {
            // EC2 may list several names separated by spaces; the first is the host's.
            let first = h.split_whitespace().next().unwrap_or(h);
            valid_hostname(first, &mut warnings)
        });
    let lines = keys.iter().flat_map(|k| key_lines(k)).collect();
    let meta = MetaData {
        instance_id: instance_id
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(str::to_string),
        local_hostname,
        public_keys: valid_keys(lines, &mut warnings),
    };
    (meta, warnings)
}

fn parse_document(bytes: &[u8], what: &str, warnings: &mut Vec<String>) -> Option<Value> {
    if bytes.len() > MAX_META_DATA {
        warnings.push(format!(
            "{what} is larger than {} KiB; ignored",
            MAX_META_DATA / 1024
        ));
        return None;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        warnings.push(format!("{what} is not UTF-8 text; ignored"));
        return None;
    };
    if text.trim().is_empty() {
        return None;
    }
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<Value>(text, options) {
        Ok(value @ Value::Object(_)) => Some(value),
        Ok(Value::Null) => None,
        Ok(_) => {
            warnings.push(format!("{what} is not a map of keys; ignored"));
            None
        }
        Err(e) => {
            let message: String = e
                .to_string()
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect();
            warnings.push(format!("{what} cannot be parsed ({message}); ignored"));
            None
        }
    }
}

/// A scalar as text (`instance-id: 42` is `"42"`).
fn scalar(value: &Value, key: &str) -> Option<String> {
    let text = match value.get(key)? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

fn valid_hostname(name: &str, warnings: &mut Vec<String>) -> Option<Hostname> {
    match Hostname::from_str(name.trim()) {
        Ok(h) => Some(h),
        Err(e) => {
            warnings.push(format!("the meta-data host name is not used: {e}"));
            None
        }
    }
}

/// Every key line in a value: a string (one key a line), a list, or a map of them, at any
/// depth (EC2 nests `{0: {openssh-key: ...}}`).
fn collect_key_lines(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(value, 0u8)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::String(s) => out.extend(key_lines(s)),
            Value::Array(items) if depth < 4 => stack.extend(items.iter().rev().map(|i| (i, depth + 1))),
            Value::Object(map) if depth < 4 => stack.extend(map.values().rev().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    out
}

fn key_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn valid_keys(lines: Vec<String>, warnings: &mut Vec<String>) -> Vec<SshPublicKey> {
    let mut keys: Vec<SshPublicKey> = Vec::new();
    for line in lines.into_iter().take(1000) {
        match SshPublicKey::from_str(&line) {
            Ok(key) if !keys.contains(&key) => keys.push(key),
            Ok(_) => {}
            Err(e) => warnings.push(format!("a meta-data public key is not used: {e}")),
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ1 alice@laptop";
    const KEY2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bob";

    #[test]
    fn nocloud_forms() {
        let (m, w) = parse_nocloud_meta_data(
            format!(
                "instance-id: iid-local01\nlocal-hostname: node-1\npublic-keys:\n  - {KEY1}\n  - {KEY2}\n"
            )
            .as_bytes(),
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(m.instance_id.as_deref(), Some("iid-local01"));
        assert_eq!(m.local_hostname.as_ref().map(Hostname::as_str), Some("node-1"));
        assert_eq!(m.public_keys.len(), 2);

        // a map of names, EC2-style nesting, a multi-line string, JSON
        let (m, _) = parse_nocloud_meta_data(
            format!("hostname: h2\npublic-keys:\n  a: {KEY1}\n  b:\n    openssh-key: |\n      {KEY2}\n      {KEY1}\n")
                .as_bytes(),
        );
        assert_eq!(m.local_hostname.unwrap().as_str(), "h2");
        assert_eq!(m.public_keys.len(), 2, "duplicates are dropped");
        let (m, _) = parse_nocloud_meta_data(br#"{"instance-id": 42, "public-keys": []}"#);
        assert_eq!(m.instance_id.as_deref(), Some("42"));
    }

    #[test]
    fn nocloud_bad_values_are_reported() {
        let (m, w) =
            parse_nocloud_meta_data(b"instance-id: x\nlocal-hostname: bad_name!\npublic-keys: [not-a-key]\n");
        assert_eq!(m.instance_id.as_deref(), Some("x"));
        assert!(m.local_hostname.is_none() && m.public_keys.is_empty());
        assert_eq!(w.len(), 2, "{w:?}");
        let (m, w) = parse_nocloud_meta_data(b"key: [unclosed\n");
        assert_eq!(m, MetaData::default());
        assert!(w[0].contains("cannot be parsed"), "{w:?}");
        let (_, w) = parse_nocloud_meta_data(b"- a list\n");
        assert!(w[0].contains("not a map"));
        let (m, w) = parse_nocloud_meta_data(b"");
        assert_eq!((m, w.len()), (MetaData::default(), 0));
    }

    #[test]
    fn openstack_meta_data() {
        let json = format!(
            r#"{{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": "vm-1.novalocal",
                "name": "vm-1", "public_keys": {{"mykey": "{KEY1}\n"}}}}"#
        );
        let (m, w) = parse_openstack_meta_data(json.as_bytes());
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            m.instance_id.as_deref(),
            Some("83679162-1378-4288-a2d4-70e13ec132aa")
        );
        assert_eq!(m.local_hostname.unwrap().as_str(), "vm-1.novalocal");
        assert_eq!(m.public_keys[0].as_str(), KEY1);
        let json = format!(
            r#"{{"uuid": "u", "keys": [{{"type": "ssh", "data": "{KEY2}"}}, {{"type": "x509", "data": "zzz"}}]}}"#
        );
        let (m, w) = parse_openstack_meta_data(json.as_bytes());
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(m.public_keys[0].as_str(), KEY2);
    }

    #[test]
    fn ec2_pieces() {
        assert_eq!(
            parse_ec2_public_key_index("0=my-key\n1=other\n\ngarbage\n"),
            ["0", "1"]
        );
        let (m, w) = ec2_meta_data(
            Some("i-0123456789abcdef0\n"),
            Some("ip-10-0-0-1.ec2.internal ip-10-0-0-1"),
            &[format!("{KEY1}\n")],
        );
        assert!(w.is_empty());
        assert_eq!(m.instance_id.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(m.local_hostname.unwrap().as_str(), "ip-10-0-0-1.ec2.internal");
        assert_eq!(m.public_keys.len(), 1);
    }

    #[test]
    fn round_trips_as_json() {
        let (m, _) = parse_nocloud_meta_data(
            format!("instance-id: i\nlocal-hostname: h\npublic-keys: [{KEY1}]\n").as_bytes(),
        );
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"instance-id\":\"i\""), "{json}");
        assert_eq!(serde_json::from_str::<MetaData>(&json).unwrap(), m);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..1024)) {
            let _ = parse_nocloud_meta_data(&data);
            let _ = parse_openstack_meta_data(&data);
            let _ = parse_ec2_public_key_index(&String::from_utf8_lossy(&data));
        }

        #[test]
        fn never_panics_on_yaml_like(text in "(instance-id|public-keys|hostname|local-hostname|uuid|keys|: |- |\\[|\\]|\\{|\\}|\n|  |ssh-rsa AAAA|x|&a|\\*a|'|\")*") {
            let _ = parse_nocloud_meta_data(text.as_bytes());
            let _ = parse_openstack_meta_data(text.as_bytes());
        }
    }
}
