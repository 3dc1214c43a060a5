//! Unpacking `.deb` files into a tree without running maintainer scripts. Paths are
//! canonicalised to merged `/usr` (`/bin/x` lands in `/usr/bin/x`), and a filter drops
//! documentation and other files a container OS never reads.

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// The in-package path (`/usr/bin/x`) with merged-/usr applied.
pub fn canonical(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    if parts.is_empty() {
        return Some("/".to_string());
    }
    if matches!(
        parts[0].as_str(),
        "bin" | "sbin" | "lib" | "lib64" | "lib32" | "libx32"
    ) {
        parts.insert(0, "usr".to_string());
    }
    Some(format!("/{}", parts.join("/")))
}

fn is_usr_merge_link(raw: &Path) -> bool {
    let parts: Vec<_> = raw
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    parts.len() == 1
        && matches!(
            parts[0].as_os_str().to_str(),
            Some("bin" | "sbin" | "lib" | "lib64" | "lib32" | "libx32")
        )
}

/// Unpack `deb` under `root`, keeping only paths for which `keep` returns true.
/// Returns the canonical paths of the regular files and symlinks written.
pub fn unpack(deb: &Path, root: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running dpkg-deb on {}", deb.display()))?;
    let stdout = child.stdout.take().context("dpkg-deb without stdout")?;
    let written = unpack_tar(stdout, root, keep).with_context(|| format!("unpacking {}", deb.display()))?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "dpkg-deb --fsys-tarfile {} failed: {}",
            deb.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(written)
}

fn unpack_tar(reader: impl Read, root: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    let mut written = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        if is_usr_merge_link(&raw) {
            // base-files ships `/bin -> usr/bin` and friends; the tree has them already.
            continue;
        }
        let Some(path) = canonical(&raw) else {
            bail!("refusing path outside the tree: {}", raw.display());
        };
        if path == "/" || !keep(&path) {
            continue;
        }
        let dest = root.join(path.trim_start_matches('/'));
        let kind = entry.header().entry_type();
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if kind.is_dir() {
            std::fs::create_dir_all(&dest)?;
            continue;
        }
        if dest.symlink_metadata().is_ok() && !dest.is_dir() {
            std::fs::remove_file(&dest)?;
        }
        if kind.is_hard_link() {
            let target = entry.link_name()?.context("hard link without a target")?;
            let target = canonical(&target).context("hard link outside the tree")?;
            std::fs::hard_link(root.join(target.trim_start_matches('/')), &dest)
                .with_context(|| format!("hard link {path}"))?;
        } else {
            entry.unpack(&dest).with_context(|| format!("writing {path}"))?;
        }
        written.push(path);
    }
    Ok(written)
}

/// Create the merged-/usr top-level links (`/bin -> usr/bin`, ...) under `root`.
pub fn usr_merge_links(root: &Path) -> Result<()> {
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::fs::create_dir_all(root.join(target))?;
        let path: PathBuf = root.join(link);
        if path.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(target, &path).with_context(|| format!("linking /{link}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_merged_into_usr() {
        for (input, want) in [
            ("./bin/bash", Some("/usr/bin/bash")),
            (
                "./lib/x86_64-linux-gnu/libc.so.6",
                Some("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ),
            (
                "./lib64/ld-linux-x86-64.so.2",
                Some("/usr/lib64/ld-linux-x86-64.so.2"),
            ),
            ("./usr/sbin/sshd", Some("/usr/sbin/sshd")),
            ("./etc/ssh/sshd_config", Some("/etc/ssh/sshd_config")),
            ("./", Some("/")),
            ("./../etc/passwd", None),
        ] {
            assert_eq!(canonical(Path::new(input)).as_deref(), want, "{input}");
        }
    }
}
