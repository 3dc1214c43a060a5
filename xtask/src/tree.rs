//! Finishing an unpacked tree the way dpkg's maintainer scripts would have: the user
//! database, alternatives-style symlinks, the CA bundle, busybox applets, overlay files.

use crate::recipe::{Group, ImageRecipe, User};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Join `path` (absolute, in-image) under `root`.
pub fn at(root: &Path, path: &str) -> std::path::PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Write `/etc/passwd`, `/etc/group`, `/etc/shadow`, `/etc/gshadow` for the users and groups
/// of a chain of recipes (later recipes override earlier entries of the same name).
pub fn write_user_database(root: &Path, chain: &[&ImageRecipe]) -> Result<()> {
    let mut groups: Vec<Group> = Vec::new();
    let mut users: Vec<User> = Vec::new();
    for recipe in chain {
        for g in &recipe.groups {
            groups.retain(|x| x.name != g.name);
            groups.push(g.clone());
        }
        for u in &recipe.users {
            users.retain(|x| x.name != u.name);
            users.push(u.clone());
        }
    }
    groups.sort_by_key(|g| g.gid);
    users.sort_by_key(|u| u.uid);
    let (mut passwd, mut shadow, mut group, mut gshadow) =
        (String::new(), String::new(), String::new(), String::new());
    for u in &users {
        let _ = writeln!(passwd, "{}:x:{}:{}::{}:{}", u.name, u.uid, u.gid, u.home, u.shell);
        // '*': no password can ever match, yet the account is not "locked", so ssh keys work.
        let _ = writeln!(shadow, "{}:*:20000:0:99999:7:::", u.name);
    }
    for g in &groups {
        let members: Vec<&str> = users
            .iter()
            .filter(|u| u.groups.iter().any(|n| n == &g.name))
            .map(|u| u.name.as_str())
            .collect();
        let _ = writeln!(group, "{}:x:{}:{}", g.name, g.gid, members.join(","));
        let _ = writeln!(gshadow, "{}:*::{}", g.name, members.join(","));
    }
    std::fs::create_dir_all(at(root, "/etc"))?;
    write_file(root, "/etc/passwd", &passwd, 0o644)?;
    write_file(root, "/etc/group", &group, 0o644)?;
    write_file(root, "/etc/shadow", &shadow, 0o640)?;
    write_file(root, "/etc/gshadow", &gshadow, 0o640)?;
    Ok(())
}

pub fn write_file(root: &Path, path: &str, contents: &str, mode: u32) -> Result<()> {
    let dest = at(root, path);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if dest.symlink_metadata().is_ok() {
        std::fs::remove_file(&dest)?;
    }
    std::fs::write(&dest, contents).with_context(|| format!("writing {path}"))?;
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub fn symlink(root: &Path, path: &str, target: &str) -> Result<()> {
    let dest = at(root, path);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if dest.symlink_metadata().is_ok() {
        std::fs::remove_file(&dest).with_context(|| format!("replacing {path}"))?;
    }
    std::os::unix::fs::symlink(target, &dest).with_context(|| format!("linking {path} -> {target}"))
}

/// The standard directories of a root filesystem, and merged-/usr links.
pub fn skeleton(root: &Path) -> Result<()> {
    for (dir, mode) in [
        ("/etc", 0o755),
        ("/dev", 0o755),
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/run", 0o755),
        ("/tmp", 0o1777),
        ("/var", 0o755),
        ("/var/lib", 0o755),
        ("/var/log", 0o755),
        ("/var/cache", 0o755),
        ("/var/tmp", 0o1777),
        ("/root", 0o700),
        ("/home", 0o755),
        ("/mnt", 0o755),
        ("/media", 0o755),
        ("/opt", 0o755),
        ("/srv", 0o755),
        ("/usr/local/bin", 0o755),
        ("/usr/local/sbin", 0o755),
    ] {
        let p = at(root, dir);
        std::fs::create_dir_all(&p)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    }
    crate::deb::usr_merge_links(root)?;
    if at(root, "/var/run").symlink_metadata().is_err() {
        std::os::unix::fs::symlink("/run", at(root, "/var/run"))?;
    }
    Ok(())
}

/// `/etc/ssl/certs/ca-certificates.crt` from the certificates ca-certificates ships, which
/// is what its `update-ca-certificates` trigger would have produced.
pub fn ca_bundle(root: &Path) -> Result<bool> {
    let source = at(root, "/usr/share/ca-certificates");
    if !source.is_dir() {
        return Ok(false);
    }
    let mut certs: Vec<_> = walkdir::WalkDir::new(&source)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "crt"))
        .map(|e| e.into_path())
        .collect();
    certs.sort();
    let mut bundle = String::new();
    for cert in &certs {
        let text = std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
        bundle.push_str(text.trim_end());
        bundle.push('\n');
    }
    write_file(root, "/etc/ssl/certs/ca-certificates.crt", &bundle, 0o644)?;
    Ok(true)
}

/// Copy `src` (a directory of overlay files) over `root`.
pub fn copy_overlay(src: &Path, root: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(src).min_depth(1) {
        let entry = entry?;
        let rel = entry.path().strip_prefix(src)?;
        let dest = root.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&dest)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            if dest.symlink_metadata().is_ok() {
                std::fs::remove_file(&dest)?;
            }
            std::os::unix::fs::symlink(target, &dest)?;
        } else {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if dest.symlink_metadata().is_ok() {
                std::fs::remove_file(&dest)?;
            }
            std::fs::copy(entry.path(), &dest)
                .with_context(|| format!("copying {}", entry.path().display()))?;
            // git keeps only the executable bit: normalise to 0644/0755.
            let exec = entry.metadata()?.permissions().mode() & 0o111 != 0;
            std::fs::set_permissions(
                &dest,
                std::fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }),
            )?;
        }
    }
    Ok(())
}

/// Apply a recipe's symlinks, modes and busybox applets under `root`.
pub fn finish(root: &Path, recipe: &ImageRecipe) -> Result<()> {
    for applet in &recipe.busybox_applets {
        let path = format!("/usr/bin/{applet}");
        if at(root, &path).symlink_metadata().is_err() {
            symlink(root, &path, "busybox")?;
        }
    }
    for (path, target) in &recipe.symlinks {
        symlink(root, path, target)?;
    }
    for path in recipe.modes.keys() {
        if let Some(mode) = recipe.mode(path)? {
            std::fs::set_permissions(at(root, path), std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("{}: setting the mode of {path}", recipe.name))?;
        }
    }
    Ok(())
}
