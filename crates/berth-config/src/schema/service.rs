//! A system service: the docker-compose (v1/v2) subset the service manager runs.

use super::forms::{CommandLine, env_map, string_map};
use super::values::{ImageRef, RestartPolicy, TimeSpan, parse_bool};
use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// Label prefixes whose labels the service manager interprets (`io.berth.after`, ...);
/// `io.rancher.os.` is accepted for RancherOS service definitions.
pub const LABEL_PREFIXES: [&str; 2] = ["io.berth.", "io.rancher.os."];
/// The service manager's yes/no labels, by suffix (`io.berth.detach`, ...).
pub const BOOL_LABELS: [&str; 4] = ["detach", "createonly", "reloadconfig", "after-user-docker"];

/// What is wrong with the labels the service manager reads, if anything: a yes/no label whose
/// value is neither (read as false, it would silently change the order of the boot), an
/// `io.berth.scope` that is not `system` or `user` (a misspelt `system` would run a system
/// service in User Docker), an `io.berth.timeout` that is not a duration, or an
/// `io.berth.shim` that is not `shared` or `own`. Other labels are the user's own.
pub fn label_problem(labels: &IndexMap<String, String>) -> Option<String> {
    labels.iter().find_map(|(key, value)| {
        let suffix = LABEL_PREFIXES.iter().find_map(|p| key.strip_prefix(p))?;
        let wanted = match suffix {
            s if BOOL_LABELS.contains(&s) => parse_bool(value).is_none().then_some("\"true\" or \"false\""),
            "scope" => (!matches!(value.as_str(), "system" | "user"))
                .then_some("\"system\" (System Docker) or \"user\" (User Docker)"),
            "timeout" => value
                .parse::<TimeSpan>()
                .is_err()
                .then_some("a duration such as \"300s\" or \"5m\""),
            "shim" => (!matches!(value.as_str(), "shared" | "own")).then_some("\"shared\" or \"own\""),
            _ => None,
        }?;
        Some(format!("label {key} is {value:?}: use {wanted}"))
    })
}

/// `labels`, checked with [`label_problem`].
fn service_labels<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, String>, D::Error> {
    let labels = string_map(d)?;
    match label_problem(&labels) {
        Some(problem) => Err(de::Error::custom(problem)),
        None => Ok(labels),
    }
}

/// One service under `berth.services`. Only `image` is required.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ServiceSpec {
    pub image: ImageRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<CommandLine>,
    /// `None` = pass the variable through from `berth.environment` (compose's bare `- KEY`).
    #[serde(
        default,
        deserialize_with = "env_map",
        skip_serializing_if = "IndexMap::is_empty"
    )]
    pub environment: IndexMap<String, Option<String>>,
    #[serde(
        default,
        deserialize_with = "service_labels",
        skip_serializing_if = "IndexMap::is_empty"
    )]
    pub labels: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Network mode: `host`, `none`, `bridge`, `container:NAME`. Also read as `network_mode`.
    #[serde(default, alias = "network_mode", skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroupns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Compose's `healthcheck`: the engine runs it, and services `after` this one wait until
    /// it reports healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Published ports, as compose writes them: `"8080:80"`, `"127.0.0.1:8080:80/tcp"`, `"53/udp"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<String>,
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "IndexMap::is_empty"
    )]
    pub log_opt: IndexMap<String, String>,
    #[serde(
        default,
        deserialize_with = "oom_score_adj",
        skip_serializing_if = "Option::is_none"
    )]
    pub oom_score_adj: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<TimeSpan>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub ulimits: IndexMap<String, Ulimit>,
}

impl ServiceSpec {
    /// A label the service manager interprets, by its suffix: `berth_label("after")` reads
    /// `io.berth.after`, else `io.rancher.os.after`.
    pub fn berth_label(&self, suffix: &str) -> Option<&str> {
        LABEL_PREFIXES.iter().find_map(|prefix| {
            self.labels
                .iter()
                .find(|(k, _)| k.strip_prefix(prefix) == Some(suffix))
                .map(|(_, v)| v.as_str())
        })
    }
}

/// Compose's `healthcheck` of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Healthcheck {
    /// `["CMD", argv...]`, `["CMD-SHELL", "command"]`, `["NONE"]`, or a string (run by the
    /// container's shell, as `CMD-SHELL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<HealthTest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<TimeSpan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeSpan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<TimeSpan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Turn off a healthcheck the image defines.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

impl Healthcheck {
    /// Whether the engine runs a check (not `disable: true`, not `test: [NONE]`).
    pub fn enabled(&self) -> bool {
        !self.disable
            && self
                .test
                .as_ref()
                .is_none_or(|t| t.0.first().map(String::as_str) != Some("NONE"))
    }
}

/// A healthcheck's `test` in the engine's form: its first word is `CMD`, `CMD-SHELL` or `NONE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthTest(pub Vec<String>);

impl<'de> Deserialize<'de> for HealthTest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TestVisitor;
        impl<'de> Visitor<'de> for TestVisitor {
            type Value = HealthTest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command (text) or a list starting with CMD, CMD-SHELL or NONE")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HealthTest, E> {
                if s.trim().is_empty() {
                    return Err(E::custom("an empty healthcheck test"));
                }
                Ok(HealthTest(vec!["CMD-SHELL".into(), s.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<HealthTest, A::Error> {
                let mut words: Vec<String> = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    words.push(word);
                }
                match words.first().map(String::as_str) {
                    Some("NONE") if words.len() == 1 => Ok(HealthTest(words)),
                    Some("CMD" | "CMD-SHELL") if words.len() > 1 => Ok(HealthTest(words)),
                    Some("CMD" | "CMD-SHELL" | "NONE") => Err(de::Error::custom(
                        "CMD and CMD-SHELL need a command after them; NONE takes nothing",
                    )),
                    _ => Err(de::Error::custom(
                        "a healthcheck test list starts with CMD, CMD-SHELL or NONE",
                    )),
                }
            }
        }
        d.deserialize_any(TestVisitor)
    }
}

fn oom_score_adj<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    struct OomVisitor;
    impl Visitor<'_> for OomVisitor {
        type Value = Option<i32>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an OOM score adjustment (-1000 to 1000)")
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Option<i32>, E> {
            if (-1000..=1000).contains(&n) {
                Ok(i32::try_from(n).ok())
            } else {
                Err(E::custom(format!(
                    "{n} is not an OOM score adjustment (-1000 to 1000)"
                )))
            }
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Option<i32>, E> {
            self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
        }
    }
    d.deserialize_i64(OomVisitor)
}

/// A resource limit: one number for both, or `{soft, hard}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct UlimitVisitor;
        impl<'de> Visitor<'de> for UlimitVisitor {
            type Value = Ulimit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, or {soft: N, hard: N}")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Ulimit, E> {
                let n = i64::try_from(n).map_err(|_| E::custom(format!("{n} is too large")))?;
                Ok(Ulimit { soft: n, hard: n })
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ulimit, E> {
                Ok(Ulimit { soft: n, hard: n })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Ulimit, E> {
                let n: i64 = s
                    .trim()
                    .parse()
                    .map_err(|_| E::custom(format!("{s:?} is not a number")))?;
                Ok(Ulimit { soft: n, hard: n })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ulimit, A::Error> {
                let (mut soft, mut hard) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "soft" => soft = Some(map.next_value::<i64>()?),
                        "hard" => hard = Some(map.next_value::<i64>()?),
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key {other:?} in a ulimit (soft, hard)"
                            )));
                        }
                    }
                }
                match (soft, hard) {
                    (Some(soft), Some(hard)) => Ok(Ulimit { soft, hard }),
                    _ => Err(de::Error::custom("a ulimit map needs both soft and hard")),
                }
            }
        }
        d.deserialize_any(UlimitVisitor)
    }
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.soft == self.hard {
            return s.serialize_i64(self.soft);
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("soft", &self.soft)?;
        map.serialize_entry("hard", &self.hard)?;
        map.end()
    }
}
