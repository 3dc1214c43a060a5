//! Image recipes from `os/`: which Debian packages, users and files make up each system image
//! (`os/images/*.yaml`) and the OS image (`os/os-image.yaml`).

use anyhow::{Context, Result, bail};
use indexmap::IndexMap;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
}

/// One system image: packages on top of its parent's layers.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ImageRecipe {
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    pub source: PathBuf,
    pub description: String,
    /// The parent image (`base`), or none for the base itself.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub packages: Vec<String>,
    /// Packages of the OS recipe's `exclude_packages` that this image does need (udev needs
    /// `libsystemd-shared`, the library its daemon links against): resolved and unpacked here
    /// (and in images built on this one) only.
    #[serde(default)]
    pub keep_packages: Vec<String>,
    /// busybox applets to link in /usr/bin.
    #[serde(default)]
    pub busybox_applets: Vec<String>,
    /// A directory under `os/files/` copied over the layer.
    #[serde(default)]
    pub files: Option<String>,
    /// Symlinks to create (path -> target), e.g. the alternatives dpkg would have chosen.
    #[serde(default)]
    pub symlinks: IndexMap<String, String>,
    /// File modes that git cannot carry (path -> octal mode).
    #[serde(default)]
    pub modes: IndexMap<String, String>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub config: ImageConfig,
    /// Not part of the release's image store (nor the ISO): written as a separate artifact,
    /// `target/berth/<name>.tar.zst`, a docker-archive loaded on demand (the `debian` console).
    #[serde(default)]
    pub optional: bool,
    /// Write dpkg's database (`/var/lib/dpkg/status` and the file lists) for every package of
    /// the image's chain, so that dpkg and apt-get work in it.
    #[serde(default)]
    pub dpkg_database: bool,
}

/// The OS image (`/usr`) and the kernel.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OsRecipe {
    pub kernel: String,
    pub packages: Vec<String>,
    pub engine_packages: Vec<String>,
    /// Engine files: path in the extracted packages -> name in /usr/lib/berth/engine/bin.
    pub engine: IndexMap<String, String>,
    pub exclude_packages: Vec<String>,
    pub exclude_paths: Vec<String>,
    /// Engines User Docker can switch to, built as signed engine files beside the image.
    #[serde(default)]
    pub other_engines: Vec<OtherEngine>,
}

/// An engine from another Debian suite: `target/berth/engines/docker-V.engine`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OtherEngine {
    pub suite: String,
    /// Its packages; the first is docker.io, whose version names the engine.
    pub packages: Vec<String>,
    /// Path in the extracted packages -> name under the engine's `bin/`.
    pub files: IndexMap<String, String>,
    /// Libraries the binaries need that the runtime image lacks: path -> name under `lib/`.
    #[serde(default)]
    pub libraries: IndexMap<String, String>,
}

impl OsRecipe {
    pub fn load(os_dir: &Path) -> Result<Self> {
        let path = os_dir.join("os-image.yaml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn path_excluded(&self, path: &str) -> bool {
        self.exclude_paths.iter().any(|p| {
            path == p
                || path
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// All image recipes, parents before children.
pub fn load_images(os_dir: &Path) -> Result<Vec<ImageRecipe>> {
    let dir = os_dir.join("images");
    let mut recipes = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut recipe: ImageRecipe =
            serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        recipe.name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("image recipe without a name")?
            .to_string();
        recipe.source = path;
        recipes.push(recipe);
    }
    // Order parents first; reject unknown parents and cycles.
    let mut ordered: Vec<ImageRecipe> = Vec::new();
    while !recipes.is_empty() {
        let before = recipes.len();
        let mut rest = Vec::new();
        for recipe in recipes {
            match &recipe.from {
                None => ordered.push(recipe),
                Some(parent) if ordered.iter().any(|r| &r.name == parent) => ordered.push(recipe),
                Some(_) => rest.push(recipe),
            }
        }
        if rest.len() == before {
            let names: Vec<_> = rest
                .iter()
                .map(|r| format!("{} (from {:?})", r.name, r.from))
                .collect();
            bail!(
                "image recipes with a missing or circular parent: {}",
                names.join(", ")
            );
        }
        recipes = rest;
    }
    Ok(ordered)
}

impl ImageRecipe {
    /// This image's chain of recipes, root first (base, ..., self).
    pub fn chain<'a>(&'a self, all: &'a [ImageRecipe]) -> Vec<&'a ImageRecipe> {
        let mut chain = vec![self];
        let mut current = self;
        while let Some(parent) = &current.from {
            match all.iter().find(|r| &r.name == parent) {
                Some(p) => {
                    chain.push(p);
                    current = p;
                }
                None => break,
            }
        }
        chain.reverse();
        chain
    }

    /// The OS recipe's excluded packages minus the ones this image's chain keeps.
    pub fn excluded_packages(&self, all: &[ImageRecipe], os: &OsRecipe) -> Vec<String> {
        let chain = self.chain(all);
        os.exclude_packages
            .iter()
            .filter(|p| !chain.iter().any(|r| r.keep_packages.contains(p)))
            .cloned()
            .collect()
    }

    pub fn mode(&self, path: &str) -> Result<Option<u32>> {
        self.modes
            .get(path)
            .map(|m| {
                u32::from_str_radix(m, 8).with_context(|| format!("{}: bad mode {m} for {path}", self.name))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn os(excluded: &[&str]) -> OsRecipe {
        OsRecipe {
            kernel: "k".into(),
            packages: vec![],
            engine_packages: vec![],
            engine: IndexMap::new(),
            exclude_packages: excluded.iter().map(|s| s.to_string()).collect(),
            exclude_paths: vec![],
            other_engines: vec![],
        }
    }

    fn image(name: &str, from: Option<&str>, keep: &[&str]) -> ImageRecipe {
        let text = format!(
            "description: {name}\n{}keep_packages: [{}]\n",
            from.map(|f| format!("from: {f}\n")).unwrap_or_default(),
            keep.join(", ")
        );
        let mut recipe: ImageRecipe = serde_saphyr::from_str(&text).unwrap();
        recipe.name = name.into();
        recipe
    }

    #[test]
    fn an_image_keeps_only_the_excluded_packages_its_chain_names() {
        let os = os(&["systemd", "libsystemd-shared", "dpkg"]);
        let all = vec![
            image("base", None, &[]),
            image("udev", Some("base"), &["libsystemd-shared"]),
            image("child", Some("udev"), &[]),
        ];
        assert_eq!(
            all[0].excluded_packages(&all, &os),
            ["systemd", "libsystemd-shared", "dpkg"]
        );
        assert_eq!(all[1].excluded_packages(&all, &os), ["systemd", "dpkg"]);
        assert_eq!(all[2].excluded_packages(&all, &os), ["systemd", "dpkg"]);
    }

    #[test]
    fn the_shipped_recipes_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../os");
        let images = load_images(&dir).unwrap();
        let os = OsRecipe::load(&dir).unwrap();
        let udev = images.iter().find(|i| i.name == "udev").expect("a udev image");
        assert!(
            !udev
                .excluded_packages(&images, &os)
                .contains(&"libsystemd-shared".to_string())
        );
        for name in ["ntp", "syslog", "acpid"] {
            assert!(images.iter().any(|i| i.name == name), "no {name} image");
        }
        // The debian console is an artifact of its own, with dpkg (which no other image has).
        let debian = images
            .iter()
            .find(|i| i.name == "console-debian")
            .expect("a debian console");
        assert!(debian.optional && debian.dpkg_database);
        assert!(
            !debian
                .excluded_packages(&images, &os)
                .contains(&"dpkg".to_string())
        );
        assert!(
            images
                .iter()
                .filter(|i| i.optional)
                .all(|i| i.name == "console-debian")
        );
        // The slim console leaves the full userland to it.
        let console = images.iter().find(|i| i.name == "console").expect("a console");
        for gone in [
            "vim-tiny",
            "curl",
            "e2fsprogs",
            "less",
            "tzdata",
            "bash-completion",
        ] {
            assert!(
                !console.packages.iter().any(|p| p == gone),
                "{gone} in the slim console"
            );
            assert!(debian.chain(&images).iter().any(|r| {
                r.packages
                    .iter()
                    .any(|p| p.contains(gone.trim_end_matches("-tiny")))
            }));
        }
    }
}
