//! Typed decoding of a [`Node`] tree into the schema, with the errors and warnings users need.
//!
//! This is a serde `Deserializer` over the located tree. It knows the key path of every value
//! (so an error reads `berth.ssh.port: ...`), the position it came from, and the fields each
//! schema struct accepts (so an unknown key gets a warning naming the closest known key).
//! It also carries the leniency cloud-config authors rely on, in one place instead of in
//! every type: `yes`/`no`/`on`/`off` are booleans, `"22"` is a number where a number is
//! expected, a number is text where text is expected, and a single value is a one-item list
//! where a list is expected (`berth.autologin=ttyS0` on the kernel command line).

use crate::diagnostic::Finding;
use crate::node::{Kind, Loc, Node};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Expected, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    Visitor,
};
use std::cell::RefCell;
use std::fmt;

/// Decode `node` into `T`. Unknown keys are reported as warnings when their key comes from a
/// source in `report_unknown_from` (so that merging a layer onto already-checked lower layers
/// only reports the new layer's keys).
pub(crate) fn decode<T: DeserializeOwned>(
    node: &Node,
    report_unknown_from: &dyn Fn(u16) -> bool,
) -> (Result<T, Finding>, Vec<Finding>) {
    let check = Check {
        warnings: RefCell::new(Vec::new()),
        report_unknown_from,
    };
    let result = T::deserialize(NodeDe {
        node,
        path: Path::Root,
        check: &check,
    });
    let result = result.map_err(|e| {
        let (key, loc) = e.located.unwrap_or_else(|| (String::new(), node.report_loc()));
        Finding::error(loc, key, e.message)
    });
    (result, check.warnings.into_inner())
}

struct Check<'c> {
    warnings: RefCell<Vec<Finding>>,
    report_unknown_from: &'c dyn Fn(u16) -> bool,
}

#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.render_into(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, i) => {
                parent.render_into(out);
                out.push_str(&format!("[{i}]"));
            }
        }
    }
}

/// The error type of the checking deserializer: a message, and once known, where.
#[derive(Debug)]
pub(crate) struct CheckError {
    pub message: String,
    pub located: Option<(String, Loc)>,
}

impl CheckError {
    fn msg(message: String) -> Self {
        CheckError {
            message,
            located: None,
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CheckError {}

/// `Unexpected` in words a user reads.
fn describe(unexp: &Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Bool(b) => format!("the boolean {b}"),
        Unexpected::Unsigned(n) => format!("the number {n}"),
        Unexpected::Signed(n) => format!("the number {n}"),
        Unexpected::Float(n) => format!("the number {n}"),
        Unexpected::Char(c) => format!("{:?}", c.to_string()),
        Unexpected::Str(s) => format!("{s:?}"),
        Unexpected::Unit | Unexpected::Option => "nothing (null)".to_string(),
        Unexpected::Seq => "a list".to_string(),
        Unexpected::Map => "a map".to_string(),
        other => other.to_string(),
    }
}

/// What serde's visitors expect, in words a user reads.
fn expected_words(exp: &dyn Expected) -> String {
    let text = exp.to_string();
    let words = match text.as_str() {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "a boolean (true/false, yes/no, on/off)",
        "a sequence" => "a list",
        "a string" | "string" => "text",
        _ => "",
    };
    if !words.is_empty() {
        return words.to_string();
    }
    if text.starts_with("struct ") {
        return "a map".to_string();
    }
    text
}

impl de::Error for CheckError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CheckError::msg(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        CheckError::msg(format!(
            "expected {}, got {}",
            expected_words(exp),
            describe(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        CheckError::msg(format!(
            "{} is not allowed here: expected {}",
            describe(&unexp),
            expected_words(exp)
        ))
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        CheckError::msg(format!("expected {}, got {len} items", expected_words(exp)))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut message = format!("{variant:?} is not one of: {}", expected.join(", "));
        if let Some(best) = closest(variant, expected.iter().copied()) {
            message.push_str(&format!(" (did you mean {best:?}?)"));
        }
        CheckError::msg(message)
    }

    fn missing_field(field: &'static str) -> Self {
        CheckError::msg(format!("missing required key {field:?}"))
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let word = norm(word);
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(&word, &norm(candidate));
        if score >= 0.82 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// cloud-init keys users carry over, which Berth does not act on: named as such instead of
/// suggesting an unrelated Berth key.
const CLOUD_INIT_ONLY_KEYS: &[&str] = &[
    "apt",
    "bootcmd_once",
    "ca_certs",
    "ca-certs",
    "chpasswd",
    "disable_root",
    "final_message",
    "fqdn",
    "growpart",
    "locale",
    "manage_etc_hosts",
    "manage_resolv_conf",
    "ntp",
    "package_reboot_if_required",
    "package_update",
    "package_upgrade",
    "packages",
    "phone_home",
    "power_state",
    "preserve_hostname",
    "resize_rootfs",
    "rsyslog",
    "snap",
    "ssh_deletekeys",
    "ssh_genkeytypes",
    "ssh_keys",
    "ssh_pwauth",
    "swap",
    "system_info",
    "yum_repos",
    "coreos",
    "EXTRA_CMDLINE",
    "prefer_fqdn_over_hostname",
    "merge_how",
    "merge_type",
];

/// docker-compose service keys the service manager does not implement.
const COMPOSE_ONLY_KEYS: &[&str] = &[
    "build",
    "container_name",
    "depends_on",
    "dns",
    "dns_search",
    "domainname",
    "env_file",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "hostname",
    "links",
    "mem_limit",
    "memswap_limit",
    "networks",
    "security_opt",
    "shm_size",
    "stdin_open",
    "tty",
    "cpu_shares",
    "cpuset",
    "cpus",
    "mem_reservation",
    "deploy",
    "secrets",
    "configs",
    "sysctls",
    "userns_mode",
    "init",
    "platform",
    "profiles",
    "pull_policy",
    "scale",
];

/// Structs that may be written as a single scalar, and the field that scalar sets.
const SHORTHAND: &[(&str, &str)] = &[("UserSpec", "name")];

#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
    path: Path<'a>,
    check: &'a Check<'a>,
}

impl NodeDe<'_> {
    fn locate(&self, mut e: CheckError) -> CheckError {
        if e.located.is_none() {
            e.located = Some((self.path.render(), self.node.report_loc()));
        }
        e
    }

    fn report_unknown_keys(&self, struct_name: &str, fields: &'static [&'static str]) {
        let Kind::Map(map) = &self.node.kind else {
            return;
        };
        for (key, value) in map {
            if fields.contains(&key.as_str()) || !(self.check.report_unknown_from)(value.key_loc.source) {
                continue;
            }
            let message = if struct_name == "Config" && CLOUD_INIT_ONLY_KEYS.contains(&key.as_str()) {
                "is a cloud-init key that Berth does not support; ignored".to_string()
            } else if struct_name == "ServiceSpec" && COMPOSE_ONLY_KEYS.contains(&key.as_str()) {
                "is a docker-compose key that Berth's service manager does not support; ignored".to_string()
            } else {
                match closest(key, fields.iter().copied()) {
                    Some(best) => format!("unknown key, ignored (did you mean {best:?}?)"),
                    None => format!("unknown key, ignored (known keys here: {})", fields.join(", ")),
                }
            };
            let path = Path::Key(&self.path, key).render();
            self.check
                .warnings
                .borrow_mut()
                .push(Finding::warning(value.report_loc(), path, message));
        }
    }
}

macro_rules! forward_via {
    ($($method:ident => $target:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
                self.$target(visitor)
            }
        )*
    };
}

use crate::schema::values::parse_bool as parse_bool_word;

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = CheckError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        let result = match &self.node.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::Int(i) => visitor.visit_i64(*i),
            Kind::UInt(u) => visitor.visit_u64(*u),
            Kind::Float(f) => visitor.visit_f64(*f),
            Kind::Str(s) => visitor.visit_str(s),
            Kind::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                index: 0,
                path: &self.path,
                check: self.check,
            }),
            Kind::Map(map) => visitor.visit_map(MapDe {
                iter: map.iter(),
                value: None,
                path: &self.path,
                check: self.check,
            }),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        let word = match &self.node.kind {
            Kind::Str(s) => parse_bool_word(s),
            Kind::Int(0) | Kind::UInt(0) => Some(false),
            Kind::Int(1) | Kind::UInt(1) => Some(true),
            _ => None,
        };
        match word {
            Some(b) => visitor.visit_bool(b).map_err(|e| self.locate(e)),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        if let Kind::Str(s) = &self.node.kind {
            let t = s.trim();
            if let Ok(u) = t.parse::<u64>() {
                return visitor.visit_u64(u).map_err(|e| self.locate(e));
            }
            if let Ok(i) = t.parse::<i64>() {
                return visitor.visit_i64(i).map_err(|e| self.locate(e));
            }
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        if let Kind::Str(s) = &self.node.kind
            && let Ok(f) = s.trim().parse::<f64>()
        {
            return visitor.visit_f64(f).map_err(|e| self.locate(e));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        match &self.node.kind {
            Kind::Bool(_) | Kind::Int(_) | Kind::UInt(_) | Kind::Float(_) => {
                let text = self.node.scalar_text().unwrap_or_default();
                visitor.visit_string(text).map_err(|e| self.locate(e))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        match &self.node.kind {
            Kind::Str(s) => visitor.visit_bytes(s.as_bytes()).map_err(|e| self.locate(e)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        match &self.node.kind {
            Kind::Null => visitor.visit_none().map_err(|e| self.locate(e)),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        visitor.visit_unit().map_err(|e| self.locate(e))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CheckError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CheckError> {
        visitor.visit_newtype_struct(self).map_err(|e| self.locate(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        match &self.node.kind {
            Kind::Seq(_) | Kind::Null | Kind::Map(_) => self.deserialize_any(visitor),
            // A single value where a list is expected is a one-item list.
            _ => visitor
                .visit_seq(SeqDe {
                    items: std::slice::from_ref(self.node).iter(),
                    index: 0,
                    path: &self.path,
                    check: self.check,
                })
                .map_err(|e| self.locate(e)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, CheckError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, CheckError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CheckError> {
        // A scalar where some structs are expected is shorthand for one field
        // (`users: [berth]` is `users: [{name: berth}]`, as in cloud-init).
        if let Some((_, field)) = SHORTHAND.iter().find(|(s, _)| *s == name)
            && self.node.scalar_text().is_some()
        {
            let mut map = indexmap::IndexMap::new();
            map.insert((*field).to_string(), self.node.clone());
            let expanded = Node::new(Kind::Map(map), self.node.loc);
            return NodeDe {
                node: &expanded,
                path: self.path,
                check: self.check,
            }
            .deserialize_any(visitor);
        }
        if !matches!(self.node.kind, Kind::Map(_)) {
            let got = match &self.node.kind {
                Kind::Str(s) => format!("{s:?}"),
                _ => self.node.kind_name().to_string(),
            };
            let what = expected_words(&visitor);
            return Err(self.locate(CheckError::msg(format!("expected {what}, got {got}"))));
        }
        self.report_unknown_keys(name, fields);
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CheckError> {
        match &self.node.kind {
            Kind::Str(s) => {
                let de: de::value::StrDeserializer<'_, CheckError> = s.as_str().into_deserializer();
                visitor.visit_enum(de).map_err(|e| self.locate(e))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        visitor.visit_unit()
    }

    forward_via! {
        deserialize_i8 => deserialize_i64,
        deserialize_i16 => deserialize_i64,
        deserialize_i32 => deserialize_i64,
        deserialize_i128 => deserialize_i64,
        deserialize_u8 => deserialize_i64,
        deserialize_u16 => deserialize_i64,
        deserialize_u32 => deserialize_i64,
        deserialize_u64 => deserialize_i64,
        deserialize_u128 => deserialize_i64,
        deserialize_f32 => deserialize_f64,
        deserialize_char => deserialize_string,
        deserialize_str => deserialize_string,
        deserialize_identifier => deserialize_string,
        deserialize_byte_buf => deserialize_bytes,
        deserialize_map => deserialize_any,
    }
}

struct SeqDe<'a, 'p> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: &'p Path<'p>,
    check: &'a Check<'a>,
}

impl<'de> SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = CheckError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, CheckError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        let path = Path::Index(self.path, index);
        seed.deserialize(NodeDe {
            node,
            path,
            check: self.check,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a, 'p> {
    iter: indexmap::map::Iter<'a, String, Node>,
    value: Option<(&'a str, &'a Node)>,
    path: &'p Path<'p>,
    check: &'a Check<'a>,
}

impl<'de> MapAccess<'de> for MapDe<'_, '_> {
    type Error = CheckError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, CheckError> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        self.value = Some((key.as_str(), value));
        let path = Path::Key(self.path, key);
        seed.deserialize(KeyDe { key }).map(Some).map_err(|mut e| {
            if e.located.is_none() {
                e.located = Some((path.render(), value.report_loc()));
            }
            e
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, CheckError> {
        let Some((key, node)) = self.value.take() else {
            return Err(CheckError::msg(
                "internal error: map value without key".to_string(),
            ));
        };
        let path = Path::Key(self.path, key);
        // An error the value's own deserializer raised after reading it (a `deserialize_with`
        // check of a whole map) is the value's, not the enclosing struct's.
        seed.deserialize(NodeDe {
            node,
            path,
            check: self.check,
        })
        .map_err(|mut e| {
            if e.located.is_none() {
                e.located = Some((path.render(), node.report_loc()));
            }
            e
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// A map key: always text.
struct KeyDe<'a> {
    key: &'a str,
}

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = CheckError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        visitor.visit_str(self.key)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CheckError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CheckError> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Config;

    fn check(text: &str) -> (Result<Config, Finding>, Vec<Finding>) {
        let (node, _) = crate::yaml::parse_yaml(text, 1).unwrap();
        decode::<Config>(&node, &|_| true)
    }

    #[test]
    fn port_error_names_key_and_position() {
        let (result, _) = check("#cloud-config\nberth:\n  ssh:\n    port: x\n");
        let err = result.unwrap_err();
        assert_eq!(err.key, "berth.ssh.port");
        assert_eq!((err.loc.line, err.loc.column), (4, 5));
        assert_eq!(err.message, "\"x\" is not a port number (1-65535)");
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let (result, warnings) = check(
            "berth:\n  ssh:\n    prot: 22\n  services:\n    x:\n      image: a\n      network_mode: host\n      privilged: true\n",
        );
        assert!(result.is_ok(), "{result:?}");
        let msgs: Vec<String> = warnings
            .iter()
            .map(|w| format!("{}: {}", w.key, w.message))
            .collect();
        assert_eq!(
            msgs,
            [
                "berth.ssh.prot: unknown key, ignored (did you mean \"port\"?)",
                "berth.services.x.privilged: unknown key, ignored (did you mean \"privileged\"?)",
            ]
        );
    }

    #[test]
    fn service_manager_labels_are_checked() {
        let service =
            |labels: &str| format!("berth:\n  services:\n    x:\n      image: a\n      labels: {labels}\n");
        for (labels, named) in [
            (
                "{io.berth.detach: maybe}",
                "label io.berth.detach is \"maybe\": use \"true\" or \"false\"",
            ),
            (
                "[io.rancher.os.createonly=sure]",
                "label io.rancher.os.createonly is \"sure\": use \"true\" or \"false\"",
            ),
            (
                "{io.berth.after-user-docker: \"\"}",
                "label io.berth.after-user-docker is \"\": use \"true\" or \"false\"",
            ),
            (
                "{io.berth.shim: one}",
                "label io.berth.shim is \"one\": use \"shared\" or \"own\"",
            ),
            (
                "{io.rancher.os.scope: sytem}",
                "label io.rancher.os.scope is \"sytem\": use \"system\" (System Docker) or \"user\" (User Docker)",
            ),
            (
                "{io.berth.timeout: 5 minutes}",
                "label io.berth.timeout is \"5 minutes\": use a duration such as \"300s\" or \"5m\"",
            ),
        ] {
            let err = check(&service(labels)).0.unwrap_err();
            assert_eq!(err.key, "berth.services.x.labels", "{labels}");
            assert!(err.message.starts_with(named), "{labels}: {}", err.message);
        }
        // Yes/no words and YAML booleans, and labels that are the user's own, pass.
        let ok = "{io.berth.detach: false, io.rancher.os.createonly: 'yes', io.berth.shim: own, \
                  io.berth.reloadconfig: 1, com.example.flag: maybe, io.berth.after: network, \
                  io.berth.scope: user, io.rancher.os.timeout: 5m, com.example.scope: wide}";
        let (result, warnings) = check(&service(ok));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            result.unwrap().berth.services["x"].labels["io.berth.detach"],
            "false"
        );
    }

    #[test]
    fn lenient_scalars() {
        let (result, warnings) = check(
            "berth:\n  debug: yes\n  ssh: {port: \"2222\", daemon: off}\n  autologin: ttyS0\n  environment: {A: 1, B: yes}\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let config = result.unwrap();
        assert!(config.berth.debug);
        assert_eq!(config.berth.ssh.port.get(), 2222);
        assert!(!config.berth.ssh.daemon);
        assert_eq!(config.berth.autologin[0].as_str(), "ttyS0");
        assert_eq!(config.berth.environment["B"], "yes");
    }

    #[test]
    fn the_console_is_default_or_debian() {
        let (result, warnings) = check("berth:\n  console: debian\n");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(result.unwrap().berth.console, crate::ConsoleKind::Debian);
        let (result, _) = check("hostname: a\n");
        assert_eq!(result.unwrap().berth.console, crate::ConsoleKind::Default);
        let text = "berth:\n  console: ubuntu\n";
        let shown: Vec<String> = crate::validate_text(text, "c.yml")
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert!(
            shown
                .iter()
                .any(|d| d.contains("c.yml:2") && d.contains("berth.console") && d.contains("debian")),
            "{shown:?}"
        );
    }
}
