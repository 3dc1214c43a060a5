//! Engine names and engine descriptions: `berth.docker.engine: docker-20.10.24` names the
//! engine User Docker runs; `engine.json` in an engine directory (the release's, or an engine
//! file's) says which engine it holds. Shared by the image builder and the machine.

use serde::{Deserialize, Serialize};
use std::fmt;

/// In an engine directory (`/usr/lib/berth/engine`, an engine file's root): which engine this is.
pub const INFO: &str = "engine.json";
/// An engine file's extension (`docker-V.engine`).
pub const EXTENSION: &str = "engine";

/// An engine's name, `docker-<version>` (`docker-20.10.24`): Docker's own version, without
/// Debian's packaging suffixes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EngineName(String);

impl EngineName {
    /// The name of the engine a Debian `docker.io` package version holds
    /// (`20.10.24+dfsg1-1+deb12u1` → `docker-20.10.24`).
    pub fn from_package_version(version: &str) -> Result<Self, String> {
        let version = version.split_once(':').map_or(version, |(_, v)| v);
        let upstream = version.split(['+', '~', '-']).next().unwrap_or_default();
        format!("docker-{upstream}").parse()
    }

    /// Docker's version (`20.10.24`).
    pub fn version(&self) -> &str {
        self.0.strip_prefix("docker-").unwrap_or(&self.0)
    }

    /// Docker's major version (20).
    pub fn major(&self) -> Option<u32> {
        self.version().split('.').next()?.parse().ok()
    }

    /// The engine file's name, `docker-V.engine`.
    pub fn file_name(&self) -> String {
        format!("{}.{EXTENSION}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for EngineName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not an engine name: it is `docker-` and Docker's version, like docker-20.10.24 \
                 (`berth engine list` shows the engines)"
            )
        };
        let version = s.strip_prefix("docker-").ok_or_else(bad)?;
        let well_formed = version.starts_with(|c: char| c.is_ascii_digit())
            && version.split('.').all(|part| !part.is_empty())
            && version.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !well_formed {
            return Err(bad());
        }
        Ok(Self(s.to_string()))
    }
}

impl TryFrom<String> for EngineName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<EngineName> for String {
    fn from(name: EngineName) -> String {
        name.0
    }
}

impl fmt::Display for EngineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// [`INFO`]: which engine an engine directory holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub name: EngineName,
    /// The Debian suite its packages come from.
    pub suite: String,
    /// Package name → exact Debian version (`docker.io`, `containerd`, `runc`, ...).
    pub packages: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_docker_versions_and_bad_ones_are_told() {
        for (package, name) in [
            ("20.10.24+dfsg1-1+deb12u1", "docker-20.10.24"),
            ("26.1.5+dfsg1-9+b11", "docker-26.1.5"),
            ("1:28.5.2+dfsg3-1", "docker-28.5.2"),
        ] {
            let got = EngineName::from_package_version(package).unwrap();
            assert_eq!(got.as_str(), name);
        }
        let n: EngineName = "docker-20.10.24".parse().unwrap();
        assert_eq!((n.version(), n.major()), ("20.10.24", Some(20)));
        assert_eq!(n.file_name(), "docker-20.10.24.engine");
        for bad in [
            "docker",
            "docker-",
            "podman-4.0",
            "docker-x1",
            "docker-1..2",
            "docker-1/../x",
            "docker-1 2",
        ] {
            let e = bad.parse::<EngineName>().unwrap_err();
            assert!(e.contains(&format!("`{bad}` is not an engine name")), "{e}");
        }
    }
}
