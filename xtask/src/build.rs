//! `cargo xtask build`: Debian packages → system images, OS image, initramfs, ISO, manifest.
//! Each expensive step is keyed by a fingerprint of its inputs and skipped when nothing changed.

use crate::apt::{Apt, Package};
use crate::docker_archive::{self, ImageSpec, ManifestEntry};
use crate::recipe::{self, ImageRecipe, OsRecipe};
use crate::toolchain::{MUSL_TARGET, musl_available};
use crate::{deb, disk, initramfs, iso, kernel, layout, tree, ui};
use anyhow::{Context, Result, bail};
use indexmap::IndexMap;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const GNU_TARGET: &str = "x86_64-unknown-linux-gnu";
/// Bump to invalidate every cached step when the builder's output format changes.
pub(crate) const BUILDER_REVISION: &str = "4";
/// Block size of every squashfs Berth makes (OS image, image store, engine files). For each
/// mounted squashfs the kernel keeps (possible CPUs + 3) blocks of cache and a zstd workspace
/// per CPU, unreclaimable: with 1 MiB blocks that was 10 MiB on a 2-CPU machine for the two
/// images, and would be over 100 MiB on a 32-CPU one. 128 KiB blocks cost ~7% in size.
pub(crate) const SQUASHFS_BLOCK: &str = "128K";

#[derive(clap::Args, Default, Clone)]
pub struct BuildArgs {
    /// Refresh the Debian package lists even if they are less than a day old
    #[arg(long)]
    pub refresh: bool,
    /// The release version to build (a semantic version; default: the workspace's). Tests build
    /// a second, newer release with it to upgrade to.
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Where to write the artifacts (default: target/berth). Each output directory keeps its own
    /// work files; the Debian package cache and the signing key stay in target/berth.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// What a build produced: the same layout the test harness reads.
pub use berth_e2e::Artifacts;

/// The artifacts of the last build, if one completed.
pub fn existing() -> Option<Artifacts> {
    let out = layout::out_dir();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_path(&out)).ok()?).ok()?;
    manifest["kernel"]["release"].as_str()?;
    let a = Artifacts::at(&out);
    [&a.vmlinuz, &a.initrd, &a.iso, &a.os_img]
        .iter()
        .all(|p| p.exists())
        .then_some(a)
}

fn manifest_path(out: &Path) -> PathBuf {
    out.join("manifest.json")
}

pub(crate) fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// Run `build` unless `stamp` records `print` and every output exists.
pub(crate) fn cached(
    stamp: &Path,
    print: &str,
    outputs: &[&Path],
    build: impl FnOnce() -> Result<()>,
) -> Result<bool> {
    let fresh =
        std::fs::read_to_string(stamp).ok().as_deref() == Some(print) && outputs.iter().all(|p| p.exists());
    if fresh {
        return Ok(false);
    }
    let _ = std::fs::remove_file(stamp);
    build()?;
    std::fs::write(stamp, print)?;
    Ok(true)
}

pub(crate) fn package_list(packages: &[Package]) -> String {
    packages
        .iter()
        .map(|p| format!("{}={}\n", p.name, p.version))
        .collect()
}

fn read_dir_digest(dir: &Path) -> Result<Vec<u8>> {
    let mut h = Sha256::new();
    if dir.exists() {
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = entry?;
            h.update(entry.path().strip_prefix(dir)?.to_string_lossy().as_bytes());
            if entry.file_type().is_file() {
                h.update(std::fs::read(entry.path())?);
                use std::os::unix::fs::PermissionsExt;
                h.update(entry.metadata()?.permissions().mode().to_le_bytes());
            } else if entry.file_type().is_symlink() {
                h.update(std::fs::read_link(entry.path())?.to_string_lossy().as_bytes());
            }
        }
    }
    Ok(h.finalize().to_vec())
}

/// Build the static `berth` binary; returns its path.
pub fn build_berth(version: &str) -> Result<PathBuf> {
    let (target, static_flags) = if musl_available() {
        (MUSL_TARGET, None)
    } else {
        (GNU_TARGET, Some("-C target-feature=+crt-static"))
    };
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(layout::workspace()).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "berth",
        "--target",
        target,
    ]);
    if let Some(flags) = static_flags {
        cmd.env("RUSTFLAGS", flags);
    }
    // The version every crate reports (berth_runtime::VERSION).
    cmd.env("BERTH_RELEASE_VERSION", version);
    let status = cmd.status().context("running cargo build for berth")?;
    if !status.success() {
        bail!("building the berth binary failed");
    }
    Ok(layout::workspace()
        .join("target")
        .join(target)
        .join("release/berth"))
}

struct Resolved {
    kernel: Package,
    os: Vec<Package>,
    engine: Vec<Package>,
    /// Per image: the packages of its own layer (its closure minus its parent's).
    layers: BTreeMap<String, Vec<Package>>,
}

fn resolve(apt: &Apt, os: &OsRecipe, images: &[ImageRecipe]) -> Result<Resolved> {
    apt.exclude(&os.exclude_packages)?;
    let excluded = |p: &Package| os.exclude_packages.iter().any(|x| x == &p.name);
    let kernel_closure = apt.resolve(std::slice::from_ref(&os.kernel))?;
    let kernel = kernel_closure
        .into_iter()
        .find(|p| p.name.starts_with("linux-image-") && p.name.chars().any(|c| c.is_ascii_digit()))
        .with_context(|| format!("{} does not depend on a versioned linux-image package", os.kernel))?;
    let os_pkgs: Vec<Package> = apt
        .resolve(&os.packages)?
        .into_iter()
        .filter(|p| !excluded(p))
        .collect();
    let engine: Vec<Package> = apt
        .resolve(&os.engine_packages)?
        .into_iter()
        .filter(|p| os.engine_packages.contains(&p.name))
        .collect();
    if engine.len() != os.engine_packages.len() {
        bail!("not every engine package resolved: {:?}", os.engine_packages);
    }
    let mut closures: BTreeMap<String, Vec<Package>> = BTreeMap::new();
    let mut layers = BTreeMap::new();
    for image in images {
        let names: Vec<String> = image
            .chain(images)
            .iter()
            .flat_map(|r| r.packages.iter().cloned())
            .collect();
        let image_excluded = image.excluded_packages(images, os);
        if image_excluded.len() != os.exclude_packages.len() {
            apt.exclude(&image_excluded)?;
        }
        let resolved = apt.resolve(&names);
        if image_excluded.len() != os.exclude_packages.len() {
            apt.exclude(&os.exclude_packages)?;
        }
        let closure: Vec<Package> = resolved?
            .into_iter()
            .filter(|p| !image_excluded.contains(&p.name))
            .collect();
        let parent: BTreeSet<String> = image
            .from
            .as_ref()
            .and_then(|p| closures.get(p))
            .map(|c| c.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default();
        layers.insert(
            image.name.clone(),
            closure
                .iter()
                .filter(|p| !parent.contains(&p.name))
                .cloned()
                .collect(),
        );
        closures.insert(image.name.clone(), closure);
    }
    hoist_shared(images, &mut layers);
    Ok(Resolved {
        kernel,
        os: os_pkgs,
        engine,
        layers,
    })
}

/// Move packages that two or more sibling images need into their parent's layer, so that
/// System Docker stores (and, when running from RAM, holds in memory) each of them once.
fn hoist_shared(images: &[ImageRecipe], layers: &mut BTreeMap<String, Vec<Package>>) {
    for parent in images {
        let children: Vec<&str> = images
            .iter()
            .filter(|i| i.from.as_deref() == Some(parent.name.as_str()))
            .map(|i| i.name.as_str())
            .collect();
        let mut count: BTreeMap<String, (usize, Package)> = BTreeMap::new();
        for child in &children {
            for p in &layers[*child] {
                count.entry(p.name.clone()).or_insert((0, p.clone())).0 += 1;
            }
        }
        let shared: Vec<Package> = count
            .into_values()
            .filter(|(n, _)| *n >= 2)
            .map(|(_, p)| p)
            .collect();
        if shared.is_empty() {
            continue;
        }
        for child in &children {
            if let Some(layer) = layers.get_mut(*child) {
                layer.retain(|p| !shared.iter().any(|s| s.name == p.name));
            }
        }
        if let Some(layer) = layers.get_mut(&parent.name) {
            for p in shared {
                if !layer.iter().any(|x| x.name == p.name) {
                    layer.push(p);
                }
            }
            layer.sort();
        }
    }
}

#[derive(Serialize)]
struct ManifestPackage<'a> {
    name: &'a str,
    version: &'a str,
    arch: &'a str,
    sha256: &'a str,
    size: u64,
    used_in: Vec<String>,
}

#[derive(Serialize)]
struct ManifestArtifact {
    name: String,
    size: u64,
    sha256: String,
}

#[derive(Serialize, serde::Deserialize, Clone)]
pub struct ImageInfo {
    pub name: String,
    pub repo_tag: String,
    pub id: String,
    pub layers: Vec<String>,
    pub size: u64,
}

pub fn run(args: &BuildArgs) -> Result<Artifacts> {
    let started = std::time::Instant::now();
    let mut steps = ui::Steps::new(15);
    let out = match &args.out {
        Some(dir) => std::path::absolute(dir)?,
        None => layout::out_dir(),
    };
    let work = out.join("work");
    std::fs::create_dir_all(&work)?;
    let version = args.version.as_deref().unwrap_or(layout::version());
    berth_upgrade::is_newer(version, "0.0.0").context("--version")?;

    let step = steps.step("Checking host tools");
    crate::host::ensure(&[crate::host::Purpose::Build])?;
    step.done();

    let mut step = steps.step(&format!("Debian {} package lists", crate::apt::SUITE));
    let apt = Apt::new(&layout::apt_dir())?;
    step.note(if apt.update(args.refresh)? {
        "refreshed"
    } else {
        "less than a day old"
    });
    drop(step);

    let mut step = steps.step("Resolving packages");
    let os_recipe = OsRecipe::load(&layout::os_dir())?;
    let images = recipe::load_images(&layout::os_dir())?;
    let resolved = resolve(&apt, &os_recipe, &images)?;
    let mut all: BTreeMap<String, Package> = BTreeMap::new();
    for p in std::iter::once(&resolved.kernel)
        .chain(&resolved.os)
        .chain(&resolved.engine)
        .chain(resolved.layers.values().flatten())
    {
        all.insert(p.filename.clone(), p.clone());
    }
    let all: Vec<Package> = all.into_values().collect();
    step.note(format!("{} packages", all.len()));
    drop(step);

    let mut step = steps.step("Fetching packages");
    let downloaded = apt.fetch(&all)?;
    step.note(if downloaded == 0 {
        "all cached".to_string()
    } else {
        format!("{downloaded} downloaded")
    });
    drop(step);

    let mut step = steps.step("Building the berth binary");
    let berth_built = build_berth(version)?;
    let berth = work.join("berth");
    std::fs::copy(&berth_built, &berth)?;
    let berth_sha = crate::apt::sha256_file(&berth)?;
    step.note(ui::human_size(std::fs::metadata(&berth)?.len()));
    drop(step);

    let mut step = steps.step("Unpacking the kernel");
    let kernel_dir = work.join("kernel");
    let kernel_deb = apt.archives().join(&resolved.kernel.filename);
    let kprint = fingerprint(&[BUILDER_REVISION.as_bytes(), resolved.kernel.sha256.as_bytes()]);
    let stamp = work.join("kernel.stamp");
    let fresh = cached(&stamp, &kprint, &[&kernel_dir], || {
        kernel::unpack(&kernel_deb, &kernel_dir).map(|_| ())
    })?;
    let kernel = kernel_from_dir(&kernel_dir)?;
    step.note(format!(
        "{}{}",
        kernel.release,
        if fresh { "" } else { ", cached" }
    ));
    drop(step);

    let mut step = steps.step("Building system images");
    let store = work.join("images");
    let images_img = work.join("images.img");
    let image_infos = build_images(
        &apt,
        &images,
        &resolved,
        &os_recipe,
        &store,
        &images_img,
        version,
        &work,
        &out,
        &mut step,
    )?;
    drop(step);

    // GRUB's images for installed disks: in the OS image (for `berth install`) and beside it.
    let mut step = steps.step("GRUB for installed disks (BIOS + UEFI)");
    let grub_dir = work.join("grub");
    let grub_print = fingerprint(&[
        BUILDER_REVISION.as_bytes(),
        berth_install::grub::PREFIX.as_bytes(),
        berth_install::grub::MODULES.join(" ").as_bytes(),
        berth_install::grub::EFI_MODULES.join(" ").as_bytes(),
        &std::fs::read("/usr/lib/grub/i386-pc/kernel.img").context("grub-pc-bin")?,
        &std::fs::read("/usr/lib/grub/x86_64-efi/kernel.img").context("grub-efi-amd64-bin")?,
    ]);
    let grub_files: Vec<PathBuf> = berth_install::disk::GRUB_FILES
        .iter()
        .map(|f| grub_dir.join(f))
        .collect();
    let grub_refs: Vec<&Path> = grub_files.iter().map(PathBuf::as_path).collect();
    let fresh = cached(&work.join("grub.stamp"), &grub_print, &grub_refs, || {
        disk::make_grub(&grub_dir)
    })?;
    tree::copy_overlay(&grub_dir, &out.join("grub"))?;
    step.note(if fresh { "made" } else { "cached" });
    drop(step);

    let mut step = steps.step("Building the OS image (squashfs)");
    // The release key's public half goes into the image: this release accepts only upgrade
    // bundles signed with the same key.
    let signer = crate::signing::load_or_create()?;
    let public_key = signer.public_key()?;
    let os_img = work.join("os.img");
    let os_print = fingerprint(&[
        BUILDER_REVISION.as_bytes(),
        SQUASHFS_BLOCK.as_bytes(),
        package_list(&resolved.os).as_bytes(),
        package_list(&resolved.engine).as_bytes(),
        kernel.release.as_bytes(),
        resolved.kernel.sha256.as_bytes(),
        berth_sha.as_bytes(),
        &read_dir_digest(&layout::os_dir().join("files/host-etc"))?,
        &std::fs::read(layout::os_dir().join("defaults.yml"))?,
        &std::fs::read(layout::os_dir().join("os-image.yaml"))?,
        version.as_bytes(),
        public_key.as_bytes(),
        grub_print.as_bytes(),
    ]);
    let os_verity = crate::verity::params_path(&os_img);
    let fresh = cached(&work.join("os.stamp"), &os_print, &[&os_img, &os_verity], || {
        build_os_image(
            &apt,
            &os_recipe,
            &resolved,
            &kernel,
            &berth,
            version,
            &public_key,
            &work,
            &grub_dir,
            &os_img,
        )?;
        crate::verity::append(&os_img).map(|_| ())
    })?;
    step.note(format!(
        "{}{}",
        ui::human_size(std::fs::metadata(&os_img)?.len()),
        if fresh { "" } else { ", cached" }
    ));
    drop(step);

    let mut step = steps.step("Building the initramfs");
    let slim = work.join("initrd-slim.img");
    let initrd = out.join("initrd.img");
    let busybox_deb = resolved
        .os
        .iter()
        .find(|p| p.name == "busybox-static")
        .context("busybox-static missing from os-image.yaml")?;
    let i_print = fingerprint(&[
        BUILDER_REVISION.as_bytes(),
        berth_sha.as_bytes(),
        resolved.kernel.sha256.as_bytes(),
        busybox_deb.sha256.as_bytes(),
        os_print.as_bytes(),
        std::fs::read_to_string(work.join("images.stamp"))?.as_bytes(),
    ]);
    let fresh = cached(&work.join("initrd.stamp"), &i_print, &[&slim, &initrd], || {
        // The slim initrd boots only from a medium holding these very images.
        let params = berth_boot::verity::Params(BTreeMap::from([
            ("os.img".to_string(), crate::verity::read(&os_img)?),
            ("images.img".to_string(), crate::verity::read(&images_img)?),
        ]));
        build_initramfs(&apt, busybox_deb, &kernel, &berth, &work, &params, &slim)?;
        let mut out = std::fs::File::create(&initrd)?;
        std::io::copy(&mut std::fs::File::open(&slim)?, &mut out)?;
        // The compressed segment must end on a 4-byte boundary for the next archive.
        let len = std::fs::metadata(&slim)?.len();
        std::io::Write::write_all(&mut out, &vec![0u8; ((4 - len % 4) % 4) as usize])?;
        initramfs::append_files(
            &[
                ("berth/os.img", os_img.as_path()),
                ("berth/images.img", images_img.as_path()),
            ],
            std::io::BufWriter::new(out),
        )?;
        Ok(())
    })?;
    step.note(format!(
        "slim {}, full {}{}",
        ui::human_size(std::fs::metadata(&slim)?.len()),
        ui::human_size(std::fs::metadata(&initrd)?.len()),
        if fresh { "" } else { ", cached" }
    ));
    drop(step);
    let vmlinuz = out.join("vmlinuz");
    std::fs::copy(&kernel.vmlinuz, &vmlinuz)?;

    let mut step = steps.step("Building the ISO (BIOS + UEFI, CD + disk)");
    let iso_path = out.join("berth.iso");
    let iso_print = fingerprint(&[
        BUILDER_REVISION.as_bytes(),
        i_print.as_bytes(),
        iso::grub_cfg(version).as_bytes(),
        iso::ISO_GRUB_MODULES.as_bytes(),
    ]);
    let fresh = cached(&work.join("iso.stamp"), &iso_print, &[&iso_path], || {
        iso::build(
            &work.join("iso"),
            &vmlinuz,
            &slim,
            &os_img,
            &images_img,
            version,
            &iso_path,
        )
    })?;
    step.note(format!(
        "{}{}",
        ui::human_size(std::fs::metadata(&iso_path)?.len()),
        if fresh { "" } else { ", cached" }
    ));
    drop(step);

    let mut step = steps.step("Writing the signed upgrade bundle");
    let bundle = out.join(format!("berth-{version}.upgrade"));
    let signature = berth_upgrade::signature_path(&bundle);
    let b_print = fingerprint(&[
        BUILDER_REVISION.as_bytes(),
        i_print.as_bytes(),
        &std::fs::read(&vmlinuz)?,
        public_key.as_bytes(),
    ]);
    let fresh = cached(
        &work.join("bundle.stamp"),
        &b_print,
        &[&bundle, &signature],
        || {
            berth_upgrade::write(
                &bundle,
                version,
                berth_upgrade::ARCH,
                &[
                    ("vmlinuz", vmlinuz.as_path()),
                    ("initrd", slim.as_path()),
                    ("berth/os.img", os_img.as_path()),
                    ("berth/images.img", images_img.as_path()),
                ],
            )?;
            signer.sign(&bundle, &format!("Berth {version} upgrade bundle"))?;
            Ok(())
        },
    )?;
    step.note(format!(
        "{}, signed with {}{}",
        ui::human_size(std::fs::metadata(&bundle)?.len()),
        signer.path.display(),
        if fresh { "" } else { ", cached" }
    ));
    drop(step);

    let mut step = steps.step("Other engines (signed engine files, not on the ISO)");
    let engine_files = crate::engines::build_all(&os_recipe, &signer, &out, &work, args.refresh)?;
    step.note(
        engine_files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    drop(step);

    let mut step = steps.step("Building the disk image (berth.qcow2)");
    let qcow2 = out.join("berth.qcow2");
    let qcow2_print = fingerprint(&[
        BUILDER_REVISION.as_bytes(),
        i_print.as_bytes(),
        grub_print.as_bytes(),
        berth_install::grub::grub_cfg().as_bytes(),
    ]);
    let fresh = cached(&work.join("qcow2.stamp"), &qcow2_print, &[&qcow2], || {
        let release = berth_install::Release {
            version: version.to_string(),
            vmlinuz: vmlinuz.clone(),
            initrd: slim.clone(),
            os_img: os_img.clone(),
            images_img: images_img.clone(),
        };
        disk::build_qcow2(&work, &grub_dir, &release, &qcow2)
    })?;
    step.note(format!(
        "{}{}",
        ui::human_size(std::fs::metadata(&qcow2)?.len()),
        if fresh { "" } else { ", cached" }
    ));
    drop(step);

    let step = steps.step("Writing the manifest");
    let artifacts = Artifacts::at(&out);
    write_manifest(&artifacts, &resolved, &image_infos, &kernel.release, version)?;
    step.done();
    eprintln!(
        "Built Berth {version} in {:.0}s: {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(artifacts)
}

pub fn kernel_from_dir(dir: &Path) -> Result<kernel::Kernel> {
    let modules_root = dir.join("usr/lib/modules");
    let release = std::fs::read_dir(&modules_root)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("kernel tree without modules")?;
    Ok(kernel::Kernel {
        vmlinuz: dir.join("boot").join(format!("vmlinuz-{release}")),
        modules: modules_root.join(&release),
        release,
    })
}

pub(crate) fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

fn unpack_packages(apt: &Apt, packages: &[Package], root: &Path, os: &OsRecipe) -> Result<()> {
    for (i, p) in packages.iter().enumerate() {
        deb::unpack(&apt.archives().join(&p.filename), root, &|path| {
            !os.path_excluded(path)
        })?;
        ui::progress("unpacked", i + 1, packages.len(), 25);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn build_images(
    apt: &Apt,
    images: &[ImageRecipe],
    resolved: &Resolved,
    os: &OsRecipe,
    store: &Path,
    images_img: &Path,
    version: &str,
    work: &Path,
    out: &Path,
    step: &mut ui::Step,
) -> Result<Vec<ImageInfo>> {
    let info_path = work.join("images.json");
    let mut prints = Vec::new();
    for image in images {
        let files = image
            .files
            .as_ref()
            .map(|f| layout::os_dir().join("files").join(f));
        let chain: Vec<String> = image
            .chain(images)
            .iter()
            .map(|r| r.source.display().to_string())
            .collect();
        let mut parts: Vec<Vec<u8>> = vec![
            BUILDER_REVISION.as_bytes().to_vec(),
            SQUASHFS_BLOCK.as_bytes().to_vec(),
            crate::image_store::FORMAT.as_bytes().to_vec(),
            version.as_bytes().to_vec(),
        ];
        for src in &chain {
            parts.push(std::fs::read(src)?);
        }
        parts.push(package_list(&resolved.layers[&image.name]).into_bytes());
        if let Some(f) = &files {
            parts.push(read_dir_digest(f)?);
        }
        prints.push(fingerprint(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>()));
    }
    let print = prints.join(",");
    let mut infos: Vec<ImageInfo> = Vec::new();
    let optional: Vec<PathBuf> = images
        .iter()
        .filter(|i| i.optional)
        .map(|i| crate::optional_image::artifact_path(out, &i.name))
        .collect();
    let images_verity = crate::verity::params_path(images_img);
    let mut outputs: Vec<&Path> = vec![store, &info_path, images_img, &images_verity];
    outputs.extend(optional.iter().map(PathBuf::as_path));
    let fresh = cached(&work.join("images.stamp"), &print, &outputs, || {
        fresh_dir(store)?;
        let mut entries: Vec<ManifestEntry> = Vec::new();
        let mut image_layers: BTreeMap<String, Vec<docker_archive::Layer>> = BTreeMap::new();
        for image in images {
            let layer_root = work.join("image-trees").join(&image.name);
            fresh_dir(&layer_root)?;
            let chain = image.chain(images);
            if image.from.is_none() {
                tree::skeleton(&layer_root)?;
            }
            unpack_packages(apt, &resolved.layers[&image.name], &layer_root, os)?;
            // Debian's packages put nothing we want under these; a layer that ships them would
            // hide the parent's files.
            for path in ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"] {
                let _ = std::fs::remove_file(tree::at(&layer_root, path));
            }
            tree::write_user_database(&layer_root, &chain)?;
            tree::ca_bundle(&layer_root)?;
            if let Some(files) = &image.files {
                tree::copy_overlay(&layout::os_dir().join("files").join(files), &layer_root)?;
            }
            tree::finish(&layer_root, image)?;
            if image.dpkg_database {
                let installed: Vec<Package> = chain
                    .iter()
                    .flat_map(|r| resolved.layers[&r.name].iter().cloned())
                    .collect();
                crate::optional_image::write_dpkg_database(apt, &installed, &layer_root, os)?;
            }
            let layer = docker_archive::write_layer(&layer_root, store)?;
            let mut layers = image
                .from
                .as_ref()
                .and_then(|p| image_layers.get(p).cloned())
                .unwrap_or_default();
            layers.push(layer);
            let config = chain
                .iter()
                .rev()
                .find(|r| !r.config.env.is_empty())
                .map(|r| &r.config);
            let env = config.map(|c| c.env.clone()).unwrap_or_default();
            let cmd = chain
                .iter()
                .rev()
                .find(|r| !r.config.cmd.is_empty())
                .map(|r| r.config.cmd.clone())
                .unwrap_or_default();
            let entrypoint = image.config.entrypoint.clone();
            let repo_tag = format!("berth/{}:{version}", image.name);
            let mut labels = IndexMap::new();
            labels.insert("io.berth.image".to_string(), image.name.clone());
            labels.insert("io.berth.version".to_string(), version.to_string());
            labels.insert(
                "org.opencontainers.image.title".to_string(),
                format!("berth/{}", image.name),
            );
            labels.insert(
                "org.opencontainers.image.description".to_string(),
                image.description.clone(),
            );
            let spec = ImageSpec {
                repo_tag: repo_tag.clone(),
                env: &env,
                entrypoint: &entrypoint,
                cmd: &cmd,
                labels,
                history: chain
                    .iter()
                    .map(|r| format!("berth image builder: {}", r.name))
                    .collect(),
                layers: layers.clone(),
            };
            if image.optional {
                let dest = crate::optional_image::artifact_path(out, &image.name);
                let own_store = work.join("images-optional").join(&image.name);
                crate::optional_image::pack(store, &own_store, &spec, &dest)?;
                // Its own layer stays out of the release's store.
                if let Some(own) = spec.layers.last().and_then(|l| Path::new(&l.file).parent()) {
                    std::fs::remove_dir_all(store.join(own))?;
                }
                std::fs::remove_dir_all(&layer_root)?;
                continue;
            }
            let (entry, id) = docker_archive::write_image(store, &spec)?;
            let size = layers.iter().map(|l| l.size).sum();
            infos.push(ImageInfo {
                name: image.name.clone(),
                repo_tag,
                id,
                layers: layers.iter().map(|l| l.diff_id.clone()).collect(),
                size,
            });
            entries.push(entry);
            image_layers.insert(image.name.clone(), layers);
            std::fs::remove_dir_all(&layer_root)?;
        }
        docker_archive::write_manifest(store, &entries)?;
        std::fs::write(store.join("images.json"), serde_json::to_vec_pretty(&infos)?)?;
        std::fs::write(&info_path, serde_json::to_vec_pretty(&infos)?)?;
        // The store's identity: a release's images replace another's as a whole.
        let release = format!("{version}-{}", &fingerprint(&[print.as_bytes()])[..16]);
        crate::image_store::build(store, &info_path, &release, &work.join("image-store"), images_img)?;
        crate::verity::append(images_img).map(|_| ())
    })?;
    let infos: Vec<ImageInfo> = serde_json::from_slice(&std::fs::read(&info_path)?)?;
    let summary: Vec<String> = infos
        .iter()
        .map(|i| format!("{} {}", i.name, ui::human_size(i.size)))
        .collect();
    step.note(format!(
        "{}{}",
        summary.join(", "),
        if fresh { "" } else { ", cached" }
    ));
    Ok(infos)
}

#[allow(clippy::too_many_arguments)]
fn build_os_image(
    apt: &Apt,
    os: &OsRecipe,
    resolved: &Resolved,
    kernel: &kernel::Kernel,
    berth: &Path,
    version: &str,
    public_key: &str,
    work: &Path,
    grub_dir: &Path,
    os_img: &Path,
) -> Result<()> {
    let root = work.join("os-tree");
    fresh_dir(&root)?;
    // Host libraries and tools: only what lives in /usr.
    for p in &resolved.os {
        deb::unpack(&apt.archives().join(&p.filename), &root, &|path| {
            path.starts_with("/usr/") && !os.path_excluded(path)
        })?;
    }
    // The engine: only the mapped files, under /usr/lib/berth/engine/bin.
    crate::engines::extract_bin(
        apt,
        &resolved.engine,
        &os.engine,
        &work.join("engine-tmp"),
        &root.join("usr/lib/berth/engine/bin"),
    )
    .context("the engine (os/os-image.yaml)")?;
    // Which engine this is, as engine files say it (berth engine list).
    let docker = resolved
        .engine
        .iter()
        .find(|p| p.name == "docker.io")
        .context("docker.io missing from engine_packages")?;
    let info = berth_config::schema::engine::EngineInfo {
        name: berth_config::schema::engine::EngineName::from_package_version(&docker.version)
            .map_err(anyhow::Error::msg)?,
        suite: crate::apt::SUITE.to_string(),
        packages: resolved
            .engine
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect(),
    };
    std::fs::write(
        root.join("usr/lib/berth/engine")
            .join(berth_config::schema::engine::INFO),
        serde_json::to_vec_pretty(&info)?,
    )?;
    // Berth and the names it answers to on the host.
    let usr = root.join("usr");
    std::fs::create_dir_all(usr.join("bin"))?;
    std::fs::create_dir_all(usr.join("sbin"))?;
    std::fs::copy(berth, usr.join("bin/berth"))?;
    for applet in ["modprobe", "reboot", "poweroff", "halt", "shutdown", "init"] {
        tree::symlink(&root, &format!("/usr/sbin/{applet}"), "../bin/berth")?;
    }
    tree::symlink(&root, "/usr/bin/system-docker", "berth")?;
    // RancherOS's name for the CLI: berth translates its spellings (crates/berth/src/ros.rs).
    tree::symlink(&root, "/usr/bin/ros", "berth")?;
    // Kernel modules.
    let modules = usr.join("lib/modules").join(&kernel.release);
    std::fs::create_dir_all(&modules)?;
    copy_tree(&kernel.modules, &modules)?;
    // Berth's data: default configuration, /etc defaults, system images, release info.
    let share = usr.join("share/berth");
    std::fs::create_dir_all(&share)?;
    std::fs::copy(layout::os_dir().join("defaults.yml"), share.join("defaults.yml"))
        .context("copying os/defaults.yml")?;
    tree::copy_overlay(&layout::os_dir().join("files/host-etc"), &share.join("etc"))?;
    // GRUB's images, for `berth install` on the machine.
    tree::copy_overlay(grub_dir, &share.join("grub"))?;
    // The optional services (`berth service enable NAME`).
    tree::copy_overlay(&layout::os_dir().join("services"), &share.join("services"))?;
    let release = serde_json::json!({
        "version": version,
        "kernel": kernel.release,
        "engine": resolved.engine.iter().map(|p| (p.name.clone(), p.version.clone())).collect::<BTreeMap<_, _>>(),
    });
    std::fs::write(share.join("release.json"), serde_json::to_vec_pretty(&release)?)?;
    std::fs::create_dir_all(share.join("keys"))?;
    std::fs::write(share.join("keys/berth.pub"), public_key)?;
    tree::write_file(
        &root,
        "/usr/lib/os-release",
        &format!(
            "NAME=\"Berth\"\nID=berth\nVERSION=\"{version}\"\nVERSION_ID={version}\n\
             PRETTY_NAME=\"Berth {version}\"\nHOME_URL=\"https://example.invalid/berth\"\n"
        ),
        0o644,
    )?;
    squashfs(&usr, os_img)
}

/// A read-only zstd squashfs of `dir` (zstd: fast to decompress at boot, under emulation too).
pub(crate) fn squashfs(dir: &Path, dest: &Path) -> Result<()> {
    squashfs_at_level(dir, dest, 19)
}

/// [`squashfs`] at another zstd level (engine files: faster to build, a little larger).
pub(crate) fn squashfs_at_level(dir: &Path, dest: &Path, level: u32) -> Result<()> {
    let _ = std::fs::remove_file(dest);
    let output = Command::new("mksquashfs")
        .arg(dir)
        .arg(dest)
        .args([
            "-comp",
            "zstd",
            "-Xcompression-level",
            &level.to_string(),
            "-b",
            SQUASHFS_BLOCK,
        ])
        .args(["-all-root", "-noappend", "-quiet", "-no-progress"])
        .output()
        .context("running mksquashfs")?;
    if !output.status.success() {
        bail!(
            "mksquashfs {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .context("running cp")?;
    if !status.success() {
        bail!("copying {} to {} failed", from.display(), to.display());
    }
    Ok(())
}

fn build_initramfs(
    apt: &Apt,
    busybox: &Package,
    kernel: &kernel::Kernel,
    berth: &Path,
    work: &Path,
    verity: &berth_boot::verity::Params,
    dest: &Path,
) -> Result<()> {
    let root = work.join("initramfs");
    fresh_dir(&root)?;
    tree::skeleton(&root)?;
    std::fs::create_dir_all(root.join("berth"))?;
    std::fs::write(
        root.join(berth_boot::verity::PARAMS),
        serde_json::to_vec_pretty(verity)?,
    )?;
    std::fs::copy(berth, root.join("usr/bin/berth"))?;
    std::os::unix::fs::symlink("usr/bin/berth", root.join("init"))?;
    deb::unpack(&apt.archives().join(&busybox.filename), &root, &|p| {
        p == "/usr/bin/busybox"
    })?;
    kernel::install_early(kernel, &root)?;
    initramfs::write_compressed(&root, &[initramfs::CONSOLE], dest)
}

fn write_manifest(
    a: &Artifacts,
    r: &Resolved,
    images: &[ImageInfo],
    release: &str,
    version: &str,
) -> Result<()> {
    let mut used: BTreeMap<&str, (&Package, BTreeSet<String>)> = BTreeMap::new();
    let places = std::iter::once((&r.kernel, "kernel".to_string()))
        .chain(r.os.iter().map(|p| (p, "os-image".to_string())))
        .chain(r.engine.iter().map(|p| (p, "engine".to_string())))
        .chain(
            r.layers
                .iter()
                .flat_map(|(image, pkgs)| pkgs.iter().map(move |p| (p, format!("image:{image}")))),
        );
    for (p, place) in places {
        used.entry(p.filename.as_str())
            .or_insert((p, BTreeSet::new()))
            .1
            .insert(place);
    }
    let packages: Vec<ManifestPackage> = used
        .values()
        .map(|(p, places)| ManifestPackage {
            name: &p.name,
            version: &p.version,
            arch: &p.arch,
            sha256: &p.sha256,
            size: p.size,
            used_in: places.iter().cloned().collect(),
        })
        .collect();
    let mut artifacts = Vec::new();
    for (name, path) in [
        ("vmlinuz", &a.vmlinuz),
        ("initrd.img", &a.initrd),
        ("berth.iso", &a.iso),
        ("os.img", &a.os_img),
        ("images.img", &a.images_img),
        ("initrd-slim.img", &a.slim_initrd),
        ("console-debian.tar.zst", &a.out.join("console-debian.tar.zst")),
    ] {
        if !path.exists() {
            continue;
        }
        artifacts.push(ManifestArtifact {
            name: name.to_string(),
            size: std::fs::metadata(path)?.len(),
            sha256: crate::apt::sha256_file(path)?,
        });
    }
    let manifest = serde_json::json!({
        "berth_version": version,
        "built": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?,
        "suite": crate::apt::SUITE,
        "kernel": {"package": r.kernel.name, "version": r.kernel.version, "release": release},
        "engine": r.engine.iter().map(|p| (p.name.clone(), p.version.clone())).collect::<BTreeMap<_, _>>(),
        "artifacts": artifacts,
        "images": images,
        "packages": packages,
    });
    std::fs::write(manifest_path(&a.out), serde_json::to_vec_pretty(&manifest)?)?;
    Ok(())
}
