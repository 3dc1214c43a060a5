//! Debian packages through apt, with apt's own state kept under `target/berth/apt` so the
//! host's sources, lists and cache are never touched. apt checks the archive's signatures
//! (sources are `signed-by` Debian's archive keyring) and each package's hash; downloads are
//! cached, so a rebuild downloads nothing.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The suite every package comes from.
pub const SUITE: &str = "trixie";
const MIRROR: &str = "http://deb.debian.org/debian";
const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Package lists older than this are refreshed.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The one-line sources every Debian package comes from (the image's and the benchmark's
/// Debian reference alike), signed by Debian's archive keyring.
pub fn sources_list() -> String {
    sources_list_for(SUITE)
}

/// [`sources_list`] for another Debian suite (`bookworm` for an older engine, say).
pub fn sources_list_for(suite: &str) -> String {
    format!(
        "deb [signed-by={KEYRING}] {MIRROR} {suite} main\n\
         deb [signed-by={KEYRING}] {MIRROR} {suite}-updates main\n\
         deb [signed-by={KEYRING}] {SECURITY_MIRROR} {suite}-security main\n"
    )
}

/// One Debian package at an exact version, as apt resolved it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    #[serde(skip)]
    pub uri: String,
}

pub struct Apt {
    root: PathBuf,
    suite: String,
    /// A dpkg status file claiming the excluded packages are installed, so that apt neither
    /// picks them nor anything only they depend on.
    status: PathBuf,
}

impl Apt {
    pub fn new(root: &Path) -> Result<Self> {
        Self::for_suite(root, SUITE)
    }

    /// An apt of its own (state under `root`) for Debian `suite`.
    pub fn for_suite(root: &Path, suite: &str) -> Result<Self> {
        let apt = Self {
            root: root.to_path_buf(),
            suite: suite.to_string(),
            status: root.join("excluded.status"),
        };
        for dir in [
            "etc/sources.list.d",
            "etc/preferences.d",
            "lists/partial",
            "archives/partial",
            "resolve/partial",
            "cache",
        ] {
            std::fs::create_dir_all(apt.root.join(dir))
                .with_context(|| format!("creating {}", apt.root.join(dir).display()))?;
        }
        write_if_changed(&apt.root.join("etc/sources.list"), &sources_list_for(suite))?;
        if !apt.status.exists() {
            std::fs::write(&apt.status, "")?;
        }
        Ok(apt)
    }

    /// Treat `packages` (real or virtual names) as already installed when resolving.
    pub fn exclude(&self, packages: &[String]) -> Result<()> {
        let text: String = packages
            .iter()
            .map(|p| {
                format!(
                    "Package: {p}\nStatus: install ok installed\nPriority: optional\nSection: admin\n\
                     Maintainer: Berth image builder <berth@localhost>\nArchitecture: all\nVersion: 99999\n\
                     Description: excluded from Berth's images\n\n"
                )
            })
            .collect();
        write_if_changed(&self.status, &text)
    }

    /// The directory holding downloaded `.deb` files.
    pub fn archives(&self) -> PathBuf {
        self.root.join("archives")
    }

    fn options(&self, archives: &Path) -> Vec<String> {
        let r = |p: &str| self.root.join(p).display().to_string();
        [
            format!("Dir::Etc::SourceList={}", r("etc/sources.list")),
            format!("Dir::Etc::SourceParts={}", r("etc/sources.list.d")),
            "Dir::Etc::Preferences=/dev/null".to_string(),
            format!("Dir::Etc::PreferencesParts={}", r("etc/preferences.d")),
            format!("Dir::State::Lists={}", r("lists")),
            format!("Dir::Cache={}", r("cache")),
            format!("Dir::Cache::Archives={}", archives.display()),
            format!("Dir::State::status={}", self.status.display()),
            "APT::Architecture=amd64".to_string(),
            "APT::Architectures=amd64".to_string(),
            "APT::Install-Recommends=false".to_string(),
            "APT::Get::Assume-Yes=true".to_string(),
            "Acquire::Retries=3".to_string(),
            "Debug::NoLocking=true".to_string(),
            "APT::Sandbox::User=root".to_string(),
            "Acquire::ForceHash=SHA256".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn command(&self, archives: &Path) -> Command {
        let mut cmd = Command::new("apt-get");
        cmd.args(self.options(archives));
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    /// Refresh the package lists when they are missing, older than a day, or `force`.
    pub fn update(&self, force: bool) -> Result<bool> {
        let stamp = self.root.join("lists/.updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < LISTS_MAX_AGE);
        if fresh && !force {
            return Ok(false);
        }
        let output = self
            .command(&self.archives())
            .args(["update", "-q"])
            .output()
            .context("running apt-get update")?;
        if !output.status.success() {
            bail!(
                "apt-get update for Debian {} failed: {}\nIs {MIRROR} reachable?",
                self.suite,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        std::fs::write(&stamp, b"").context("writing the apt update stamp")?;
        Ok(true)
    }

    /// Resolve `names` and everything they depend on (no recommends) to exact packages.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<Package>> {
        // --print-uris lists only what is not yet in the archives directory: resolve against
        // an empty one so that the answer is the whole dependency closure.
        let empty = self.root.join("resolve");
        let output = self
            .command(&empty)
            .args(["install", "--print-uris", "-qq"])
            .args(names)
            .output()
            .context("running apt-get install --print-uris")?;
        if !output.status.success() {
            bail!(
                "apt could not resolve {}: {}",
                names.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        parse_print_uris(&String::from_utf8_lossy(&output.stdout))
    }

    /// Download the packages that are not cached yet, and check every file's sha256.
    pub fn fetch(&self, packages: &[Package]) -> Result<usize> {
        let archives = self.archives();
        let missing: Vec<&Package> = packages
            .iter()
            .filter(|p| !archives.join(&p.filename).is_file())
            .collect();
        if !missing.is_empty() {
            eprintln!("      downloading {} packages", missing.len());
            let specs: Vec<String> = missing
                .iter()
                .map(|p| format!("{}={}", p.name, p.version))
                .collect();
            let status = self
                .command(&archives)
                .current_dir(&archives)
                .args(["download", "-qq"])
                .args(&specs)
                .status()
                .context("running apt-get download")?;
            if !status.success() {
                bail!("apt-get download failed for: {}", specs.join(" "));
            }
        }
        for package in packages {
            let path = archives.join(&package.filename);
            let actual = sha256_file(&path)?;
            if actual != package.sha256 {
                let _ = std::fs::remove_file(&path);
                bail!(
                    "{} has sha256 {actual}, the signed index says {}; removed it, run the build again",
                    path.display(),
                    package.sha256
                );
            }
        }
        Ok(missing.len())
    }
}

/// Parse apt's `--print-uris` lines: `'URI' FILENAME SIZE SHA256:HEX`.
pub fn parse_print_uris(text: &str) -> Result<Vec<Package>> {
    let mut packages = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('\'')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [uri, filename, size, hash] = fields[..] else {
            bail!("unexpected line from apt --print-uris: {line}");
        };
        let uri = uri.trim_matches('\'').to_string();
        let sha256 = hash
            .strip_prefix("SHA256:")
            .with_context(|| format!("no SHA256 for {filename} (got {hash})"))?
            .to_string();
        let stem = filename
            .strip_suffix(".deb")
            .with_context(|| format!("not a .deb: {filename}"))?;
        let mut parts = stem.splitn(3, '_');
        let (Some(name), Some(version), Some(arch)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("cannot read name_version_arch from {filename}");
        };
        packages.insert(
            name.to_string(),
            Package {
                name: name.to_string(),
                version: version.replace("%3a", ":"),
                arch: arch.to_string(),
                filename: filename.to_string(),
                size: size.parse().with_context(|| format!("bad size in: {line}"))?,
                sha256,
                uri,
            },
        );
    }
    Ok(packages.into_values().collect())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

pub fn write_if_changed(path: &Path, contents: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(contents) {
        std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_uris_lines_become_packages() {
        let text = "'http://deb.debian.org/debian/pool/main/l/less/less_668-1_amd64.deb' less_668-1_amd64.deb 161148 SHA256:abc\n\
                    'http://x/libcap2_1%3a2.75-10_amd64.deb' libcap2_1%3a2.75-10_amd64.deb 28988 SHA256:def\n";
        let packages = parse_print_uris(text).unwrap();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "less");
        assert_eq!(packages[0].version, "668-1");
        assert_eq!(packages[1].name, "libcap2");
        assert_eq!(packages[1].version, "1:2.75-10");
        assert_eq!(packages[1].sha256, "def");
        assert_eq!(packages[1].size, 28988);
    }

    #[test]
    fn a_hash_other_than_sha256_is_an_error() {
        let text = "'http://x/a_1_amd64.deb' a_1_amd64.deb 1 MD5Sum:abc\n";
        assert!(parse_print_uris(text).is_err());
    }
}
