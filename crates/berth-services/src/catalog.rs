//! The release's optional services: one compose-style service definition per file,
//! `/usr/share/berth/services/NAME.yml`, run when `berth.services_include.NAME` is true
//! (`berth service enable NAME`). A service of the same name under `berth.services` wins.

use berth_config::{Loaded, ServiceSpec};
use std::path::Path;

/// Where the OS image keeps the catalogue.
pub const CATALOG_DIR: &str = "/usr/share/berth/services";

/// One optional service.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub spec: ServiceSpec,
    /// Its `io.berth.description` label.
    pub description: String,
}

/// The catalogue in `dir`, by name, and the files that could not be read (path: why).
pub fn read(dir: &Path) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let Ok(list) = std::fs::read_dir(dir) else {
        return (entries, problems);
    };
    let mut paths: Vec<_> = list
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    paths.sort();
    for path in paths {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_saphyr::from_str::<ServiceSpec>(&text).map_err(|e| e.to_string()));
        match parsed {
            Ok(spec) => entries.push(Entry {
                name: name.to_string(),
                description: spec.berth_label("description").unwrap_or_default().to_string(),
                spec,
            }),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    (entries, problems)
}

/// `loaded` with the included optional services added to `berth.services` and the console
/// `berth.console` names, and what was wrong (an included name the catalogue does not have,
/// a catalogue file that cannot be read).
pub fn with_included(loaded: &Loaded, dir: &Path) -> (Loaded, Vec<String>) {
    let mut out = loaded.clone();
    crate::console_choice::apply(&mut out);
    let include: Vec<&str> = loaded
        .config
        .berth
        .services_include
        .iter()
        .filter(|(_, on)| **on)
        .map(|(n, _)| n.as_str())
        .filter(|n| !loaded.config.berth.services.keys().any(|k| k.as_str() == *n))
        .collect();
    if include.is_empty() {
        return (out, Vec::new());
    }
    let (entries, mut problems) = read(dir);
    for name in include {
        let Some(entry) = entries.iter().find(|e| e.name == name) else {
            let known: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            problems.push(format!(
                "berth.services_include.{name}: the release has no optional service {name:?} \
                 (it has: {}); `berth service list` shows them",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
            continue;
        };
        match name.parse() {
            Ok(key) => {
                out.config.berth.services.insert(key, entry.spec.clone());
            }
            Err(e) => problems.push(format!("berth.services_include.{name}: {e}")),
        }
    }
    (out, problems)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The configuration with `yaml` as the local cloud-config.
    pub(crate) fn loaded(yaml: &str) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        let paths = berth_config::ConfigPaths::under(dir.path());
        std::fs::create_dir_all(&paths.conf_dir).unwrap();
        std::fs::write(paths.conf_dir.join("cloud-config.yml"), yaml).unwrap();
        berth_config::load(&paths, &berth_config::KernelCmdline::parse(""))
    }

    fn catalogue() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("qemu-guest-agent.yml"),
            "image: berth/qemu-guest-agent:${BERTH_VERSION}\nlabels:\n  io.berth.scope: system\n  io.berth.description: QEMU guest agent\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.yml"), "image: [a\n").unwrap();
        std::fs::write(dir.path().join("README"), "not a service").unwrap();
        dir
    }

    #[test]
    fn the_catalogue_is_every_yml_file_and_broken_ones_are_named() {
        let dir = catalogue();
        let (entries, problems) = read(dir.path());
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].name.as_str(), entries[0].description.as_str()),
            ("qemu-guest-agent", "QEMU guest agent")
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("broken.yml"), "{problems:?}");
    }

    #[test]
    fn included_services_are_added_and_unknown_ones_reported() {
        let dir = catalogue();
        let l = loaded(
            "berth:\n  services_include:\n    qemu-guest-agent: true\n    nosuch: true\n    off: false\n",
        );
        let (out, problems) = with_included(&l, dir.path());
        assert!(
            out.config
                .berth
                .services
                .keys()
                .any(|k| k.as_str() == "qemu-guest-agent")
        );
        assert!(!out.config.berth.services.keys().any(|k| k.as_str() == "off"));
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("berth.services_include.nosuch:") && p.contains("qemu-guest-agent")),
            "{problems:?}"
        );
    }

    /// The release's own catalogue: every file is a valid definition, described, and runs
    /// an image the release builds (os/images/NAME.yaml).
    #[test]
    fn the_release_catalogue_is_valid_and_its_images_are_built() {
        let os = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../os");
        let (entries, problems) = read(&os.join("services"));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(entries.iter().any(|e| e.name == "qemu-guest-agent"));
        for e in &entries {
            assert!(
                !e.description.is_empty(),
                "{} has no io.berth.description",
                e.name
            );
            let image = e.spec.image.as_str();
            let recipe = image
                .strip_prefix("berth/")
                .and_then(|i| i.strip_suffix(":${BERTH_VERSION}"))
                .unwrap_or_else(|| panic!("{}: {image} is not a release image", e.name));
            assert!(
                os.join("images").join(format!("{recipe}.yaml")).is_file(),
                "{}: no os/images/{recipe}.yaml",
                e.name
            );
        }
    }

    #[test]
    fn a_service_defined_in_the_configuration_wins_over_the_catalogue() {
        let dir = catalogue();
        let l = loaded(
            "berth:\n  services_include: {qemu-guest-agent: true}\n  services:\n    qemu-guest-agent: {image: mine}\n",
        );
        let (out, problems) = with_included(&l, dir.path());
        let spec = out
            .config
            .berth
            .services
            .iter()
            .find(|(k, _)| k.as_str() == "qemu-guest-agent")
            .unwrap()
            .1;
        assert_eq!(spec.image.as_str(), "mine");
        assert!(problems.is_empty(), "{problems:?}");
    }
}
