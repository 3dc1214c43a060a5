//! Images built with the release but shipped apart from its image store (recipes marked
//! `optional`, the `debian` console): a docker-archive of their own, zstd-compressed, next to
//! the ISO. Such an image may carry dpkg's database for every package of its chain, so that
//! dpkg and apt-get work in it although the builder runs no maintainer scripts.

use crate::apt::{Apt, Package};
use crate::docker_archive::{self, ImageSpec, Layer};
use crate::recipe::OsRecipe;
use anyhow::{Context, Result, bail};
use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fields of a package's control file kept in dpkg's status. Dependency fields are left
/// out on purpose: the builder drops packages a container never runs (systemd, ...) and apt
/// would call the system broken for each package that names one of them.
const STATUS_FIELDS: &[&str] = &[
    "Package",
    "Essential",
    "Priority",
    "Section",
    "Installed-Size",
    "Maintainer",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Provides",
    "Description",
];

/// Where the artifact of optional image `name` goes.
pub fn artifact_path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}.tar.zst"))
}

/// Write `/var/lib/dpkg` under `root`: `status` lists `packages` as installed with their exact
/// versions, and `info/<package>.list` the paths each one put in the tree.
pub fn write_dpkg_database(apt: &Apt, packages: &[Package], root: &Path, os: &OsRecipe) -> Result<()> {
    let dpkg = root.join("var/lib/dpkg");
    let info = dpkg.join("info");
    for dir in [
        &info,
        &dpkg.join("updates"),
        &dpkg.join("triggers"),
        &dpkg.join("alternatives"),
    ] {
        std::fs::create_dir_all(dir)?;
    }
    for file in ["available", "diversions", "statoverride"] {
        std::fs::write(dpkg.join(file), b"")?;
    }
    for dir in [
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/log/apt",
    ] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    let mut sorted: Vec<&Package> = packages.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted.dedup_by(|a, b| a.name == b.name);
    let mut status = String::new();
    for p in sorted {
        let deb = apt.archives().join(&p.filename);
        let output = Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .args(STATUS_FIELDS)
            .output()
            .with_context(|| format!("running dpkg-deb --field on {}", deb.display()))?;
        if !output.status.success() {
            bail!(
                "dpkg-deb --field {} failed: {}",
                deb.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let fields = String::from_utf8(output.stdout)
            .with_context(|| format!("{}: control file not UTF-8", deb.display()))?;
        // dpkg prints the fields in the order asked: Status goes right after Package.
        let (first, rest) = fields.split_once('\n').unwrap_or((fields.as_str(), ""));
        status.push_str(first);
        status.push_str("\nStatus: install ok installed\n");
        status.push_str(rest);
        if !status.ends_with('\n') {
            status.push('\n');
        }
        status.push('\n');
        // Multi-Arch: same packages have per-architecture file lists.
        let list_name = if fields.lines().any(|l| l == "Multi-Arch: same") {
            format!("{}:{}.list", p.name, p.arch)
        } else {
            format!("{}.list", p.name)
        };
        let paths = RefCell::new(Vec::new());
        crate::deb::unpack(&deb, root, &|path| {
            if !os.path_excluded(path) {
                paths.borrow_mut().push(path.to_string());
            }
            false
        })?;
        let mut list = paths.into_inner();
        list.sort();
        list.dedup();
        let mut text = list.join("\n");
        text.push('\n');
        std::fs::write(info.join(list_name), text)?;
    }
    std::fs::write(dpkg.join("status"), status)?;
    Ok(())
}

/// Pack `spec` (whose layers are in `store`) as a docker-archive at `dest`, zstd-compressed.
/// Its layers are linked into a directory of its own first, so the archive holds this image only.
pub fn pack(store: &Path, image_store: &Path, spec: &ImageSpec<'_>, dest: &Path) -> Result<()> {
    crate::build::fresh_dir(image_store)?;
    for Layer { file, .. } in &spec.layers {
        let to = image_store.join(file);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::hard_link(store.join(file), &to).with_context(|| format!("linking layer {file}"))?;
    }
    let (entry, _) = docker_archive::write_image(image_store, spec)?;
    docker_archive::write_manifest(image_store, &[entry])?;
    let tmp = dest.with_extension("zst.tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut encoder = zstd::Encoder::new(std::io::BufWriter::new(file), 12)?;
    encoder.multithread(2)?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_dir_all(".", image_store)?;
    tar.into_inner()?.finish()?.flush()?;
    std::fs::rename(&tmp, dest)?;
    std::fs::remove_dir_all(image_store)?;
    Ok(())
}
