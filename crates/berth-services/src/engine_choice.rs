//! Which engine User Docker runs: the release's (in the OS image, `/usr/lib/berth/engine`), or
//! one installed on the state partition (`/var/lib/berth/engines/docker-V.engine`) and chosen
//! with `berth.docker.engine` (`berth engine switch`). System Docker always runs the release's.

use berth_config::EngineName;
use berth_config::schema::engine::{EXTENSION, EngineInfo, INFO};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The release's engine directory (in the OS image); an installed engine is mounted here, in
/// the `docker` service's container only.
pub const ENGINE_DIR: &str = "/usr/lib/berth/engine";
/// Where the engines installed on this machine are (the state partition).
pub const ENGINES_DIR: &str = "/var/lib/berth/engines";
const RELEASE_JSON: &str = "/usr/share/berth/release.json";

/// The engine an engine directory holds: its `engine.json`, or for a release built before
/// engine files existed, the docker.io version in the release's manifest.
pub fn engine_info(dir: &Path) -> Option<EngineInfo> {
    if let Some(info) = engine_info_file(dir) {
        return Some(info);
    }
    let release: serde_json::Value = serde_json::from_slice(&std::fs::read(RELEASE_JSON).ok()?).ok()?;
    let engine = release["engine"].as_object()?;
    let docker = engine.get("docker.io")?.as_str()?;
    Some(EngineInfo {
        name: EngineName::from_package_version(docker).ok()?,
        suite: String::new(),
        packages: engine
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
    })
}

/// The `engine.json` of an engine directory.
pub fn engine_info_file(dir: &Path) -> Option<EngineInfo> {
    std::fs::read(dir.join(INFO))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The engine files installed in `dir` (`docker-V.engine`), by name.
pub fn installed(dir: &Path) -> Vec<EngineName> {
    let suffix = format!(".{EXTENSION}");
    let mut names: Vec<EngineName> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(&suffix)?.parse().ok())
        .collect();
    names.sort();
    names
}

/// What the `docker` service records as it starts ([`berth_runtime::paths::USER_DOCKER_ENGINE`]):
/// the engine it runs and the engines installed then, for `berth engine list` run by users
/// who cannot read the state partition's `/var/lib/berth`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UserEngineRecord {
    pub running: EngineName,
    pub installed: Vec<EngineName>,
}

/// What User Docker runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineChoice {
    /// The release's own engine, as it is in the OS image.
    Release,
    /// An installed engine file, mounted over [`ENGINE_DIR`].
    Installed { name: EngineName, file: PathBuf },
}

/// The engine `chosen` (`berth.docker.engine`) names, given the release's engine and the
/// engine files in `dir`. An engine that is not there is an error saying so; the caller runs
/// the release's engine and reports it.
pub fn resolve(
    chosen: Option<&EngineName>,
    release: &EngineName,
    dir: &Path,
) -> Result<EngineChoice, String> {
    match chosen {
        None => Ok(EngineChoice::Release),
        Some(name) if name == release => Ok(EngineChoice::Release),
        Some(name) => {
            let file = dir.join(name.file_name());
            if file.is_file() {
                Ok(EngineChoice::Installed {
                    name: name.clone(),
                    file,
                })
            } else {
                Err(format!(
                    "berth.docker.engine: {name} is not installed (no {}): User Docker runs this \
                     release's engine, {release}, instead; `sudo berth engine switch {name}|FILE|URL` \
                     installs it, `berth engine list` shows the engines",
                    file.display()
                ))
            }
        }
    }
}

/// One line of `berth engine list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EngineEntry {
    pub name: EngineName,
    /// `release` (in the OS image) or `installed` (on the state partition).
    pub source: &'static str,
    /// User Docker runs it (or will, after `berth.docker.engine` changed and it restarts).
    pub current: bool,
}

/// The engines User Docker can run, the release's first, with the current one marked.
pub fn catalogue(
    release: &EngineName,
    installed: &[EngineName],
    chosen: Option<&EngineName>,
) -> Vec<EngineEntry> {
    let current = match chosen {
        Some(name) if installed.contains(name) => name,
        _ => release,
    };
    std::iter::once((release, "release"))
        .chain(
            installed
                .iter()
                .filter(|n| *n != release)
                .map(|n| (n, "installed")),
        )
        .map(|(name, source)| EngineEntry {
            name: name.clone(),
            source,
            current: name == current,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> EngineName {
        s.parse().unwrap()
    }

    #[test]
    fn the_choice_is_the_release_engine_an_installed_one_or_an_error_saying_what_runs() {
        let dir = tempfile::tempdir().unwrap();
        let release = name("docker-26.1.5");
        std::fs::write(dir.path().join("docker-20.10.24.engine"), b"hsqs").unwrap();
        assert_eq!(resolve(None, &release, dir.path()), Ok(EngineChoice::Release));
        assert_eq!(
            resolve(Some(&release), &release, dir.path()),
            Ok(EngineChoice::Release)
        );
        assert_eq!(
            resolve(Some(&name("docker-20.10.24")), &release, dir.path()),
            Ok(EngineChoice::Installed {
                name: name("docker-20.10.24"),
                file: dir.path().join("docker-20.10.24.engine"),
            })
        );
        let e = resolve(Some(&name("docker-1.10.3")), &release, dir.path()).unwrap_err();
        assert!(
            e.starts_with("berth.docker.engine: docker-1.10.3 is not installed")
                && e.contains("runs this release's engine, docker-26.1.5"),
            "{e}"
        );
    }

    #[test]
    fn the_list_has_the_release_engine_then_installed_ones_and_marks_the_current() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "docker-28.5.2.engine",
            "docker-20.10.24.engine",
            "docker-20.10.24.engine.minisig",
            ".incoming.engine",
            "x.txt",
        ] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let installed = installed(dir.path());
        assert_eq!(installed, [name("docker-20.10.24"), name("docker-28.5.2")]);
        assert!(super::installed(&dir.path().join("none")).is_empty());
        let release = name("docker-26.1.5");
        let current = |chosen: Option<&str>| -> Vec<(String, &str)> {
            catalogue(&release, &installed, chosen.map(name).as_ref())
                .into_iter()
                .filter(|e| e.current)
                .map(|e| (e.name.to_string(), e.source))
                .collect()
        };
        assert_eq!(current(None), [("docker-26.1.5".to_string(), "release")]);
        assert_eq!(
            current(Some("docker-20.10.24")),
            [("docker-20.10.24".to_string(), "installed")]
        );
        // Chosen but not installed: the release's runs (resolve says why).
        assert_eq!(
            current(Some("docker-1.10.3")),
            [("docker-26.1.5".to_string(), "release")]
        );
        assert_eq!(catalogue(&release, &installed, None).len(), 3);
    }
}
