//! Engine files: the other engines of `os/os-image.yaml`'s `other_engines`, each from its own
//! Debian suite (its own apt state under `target/berth/apt/<suite>`, cached like the release's),
//! written as `target/berth/engines/docker-V.engine`: a squashfs of `bin/` (the mapped files)
//! and `engine.json`, signed with the release key into `docker-V.engine.minisig`.

use crate::apt::{Apt, Package};
use crate::recipe::{OsRecipe, OtherEngine};
use crate::{deb, layout, tree};
use anyhow::{Context, Result, bail};
use berth_config::schema::engine::{EngineInfo, EngineName};
use std::path::{Path, PathBuf};

/// Build every other engine; returns the engine files written (or found up to date).
pub fn build_all(
    os: &OsRecipe,
    signer: &crate::signing::Signer,
    out: &Path,
    work: &Path,
    refresh: bool,
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for engine in &os.other_engines {
        files.push(
            build_one(engine, os, signer, out, work, refresh)
                .with_context(|| format!("building the engine file from Debian {}", engine.suite))?,
        );
    }
    Ok(files)
}

fn build_one(
    engine: &OtherEngine,
    os: &OsRecipe,
    signer: &crate::signing::Signer,
    out: &Path,
    work: &Path,
    refresh: bool,
) -> Result<PathBuf> {
    let apt = Apt::for_suite(&layout::apt_dir().join(&engine.suite), &engine.suite)?;
    apt.update(refresh)?;
    apt.exclude(&os.exclude_packages)?;
    let packages: Vec<Package> = apt
        .resolve(&engine.packages)?
        .into_iter()
        .filter(|p| engine.packages.contains(&p.name))
        .collect();
    if packages.len() != engine.packages.len() {
        bail!(
            "not every package of {:?} resolved in {}",
            engine.packages,
            engine.suite
        );
    }
    let docker = packages
        .iter()
        .find(|p| p.name == "docker.io")
        .context("an engine needs the docker.io package")?;
    let name = EngineName::from_package_version(&docker.version).map_err(anyhow::Error::msg)?;
    let dir = out.join("engines");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(name.file_name());
    let signature = berth_upgrade::signature_path(&file);
    let print = crate::build::fingerprint(&[
        crate::build::BUILDER_REVISION.as_bytes(),
        crate::build::SQUASHFS_BLOCK.as_bytes(),
        crate::build::package_list(&packages).as_bytes(),
        format!("{:?} {:?}", engine.files, engine.libraries).as_bytes(),
        signer.public_key()?.as_bytes(),
    ]);
    let stamp = work.join(format!("engine-{}.stamp", engine.suite));
    crate::build::cached(&stamp, &print, &[&file, &signature], || {
        apt.fetch(&packages)?;
        let root = work.join(format!("engine-{}", engine.suite));
        crate::build::fresh_dir(&root)?;
        let unpacked = work.join(format!("engine-{}-tmp", engine.suite));
        extract_bin(&apt, &packages, &engine.files, &unpacked, &root.join("bin"))
            .with_context(|| format!("Debian {}'s engine (os/os-image.yaml)", engine.suite))?;
        if !engine.libraries.is_empty() {
            extract_bin(&apt, &packages, &engine.libraries, &unpacked, &root.join("lib"))
                .with_context(|| format!("Debian {}'s engine libraries (os/os-image.yaml)", engine.suite))?;
        }
        let info = EngineInfo {
            name: name.clone(),
            suite: engine.suite.clone(),
            packages: packages
                .iter()
                .map(|p| (p.name.clone(), p.version.clone()))
                .collect(),
        };
        std::fs::write(
            root.join(berth_config::schema::engine::INFO),
            serde_json::to_vec_pretty(&info)?,
        )?;
        // zstd -9: a few seconds instead of minutes at 19, for ~10% more bytes.
        crate::build::squashfs_at_level(&root, &file, 9)?;
        std::fs::remove_dir_all(&root)?;
        signer.sign(&file, &format!("Berth engine {name} (Debian {})", engine.suite))?;
        Ok(())
    })?;
    Ok(file)
}

/// Unpack `packages` in `scratch` and move the mapped `files` (path in the packages -> name)
/// into `bin` (or any directory: an engine's `lib/`).
pub fn extract_bin(
    apt: &Apt,
    packages: &[Package],
    files: &indexmap::IndexMap<String, String>,
    scratch: &Path,
    bin: &Path,
) -> Result<()> {
    crate::build::fresh_dir(scratch)?;
    for p in packages {
        deb::unpack(&apt.archives().join(&p.filename), scratch, &|path| {
            files.contains_key(path)
        })?;
    }
    std::fs::create_dir_all(bin)?;
    for (from, to) in files {
        let src = tree::at(scratch, from);
        if !src.exists() {
            bail!("engine file {from} is not in the engine's packages");
        }
        std::fs::rename(&src, bin.join(to))?;
    }
    std::fs::remove_dir_all(scratch)?;
    Ok(())
}
