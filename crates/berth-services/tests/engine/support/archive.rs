//! Test images written as an unpacked docker-archive directory, the form in which Berth
//! bundles its system images: `manifest.json`, one `<sha256>.json` config per image and one
//! `<dir>/layer.tar` per layer. The base layer holds a static busybox from the host.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where Debian's busybox-static puts its binary.
const BUSYBOX_PATHS: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// The applets the test services use, as links to busybox in `/bin`.
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "ls", "touch", "env", "true", "false", "test", "[", "mkdir", "grep", "wc",
    "head", "date", "kill", "rm",
];

fn static_busybox() -> PathBuf {
    for path in BUSYBOX_PATHS {
        let path = Path::new(path);
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        // A dynamic busybox would need the host's libc in the image: insist on a static one.
        if is_static_elf(&bytes) {
            return path.to_path_buf();
        }
    }
    panic!(
        "the test images need a statically linked busybox at /bin/busybox: install Debian's \
         busybox-static (as root: `apt-get install --no-install-recommends busybox-static`)"
    );
}

/// A 64-bit ELF executable without a PT_INTERP program header (no dynamic loader).
fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    if bytes.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .is_some_and(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != PT_INTERP)
    })
}

fn dir_entry(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(mode);
    header.set_size(0);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, path, std::io::empty()).unwrap();
}

fn file_entry(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_size(data.len() as u64);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, path, data).unwrap();
}

/// A layer with a static busybox as `/bin/busybox`, its applets and `/tmp`.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read(static_busybox()).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    dir_entry(&mut tar, "bin", 0o755);
    file_entry(&mut tar, "bin/busybox", 0o755, &busybox);
    for applet in APPLETS {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        header.set_mtime(0);
        tar.append_link(&mut header, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    dir_entry(&mut tar, "tmp", 0o1777);
    dir_entry(&mut tar, "etc", 0o755);
    tar.into_inner().unwrap()
}

/// A layer holding `files` (path, content), directories created as needed.
pub fn file_layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, content) in files {
        let mut parent = Path::new(path).parent();
        let mut chain = Vec::new();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            chain.push(p.display().to_string());
            parent = p.parent();
        }
        for d in chain.into_iter().rev() {
            if dirs.insert(d.clone()) {
                dir_entry(&mut tar, &d, 0o755);
            }
        }
        file_entry(&mut tar, path, 0o644, content.as_bytes());
    }
    tar.into_inner().unwrap()
}

/// One image of an archive.
pub struct Image {
    pub tag: String,
    pub layers: Vec<Vec<u8>>,
    /// The image's default command.
    pub cmd: Vec<String>,
    /// A label, so that two images with the same layers still get different IDs.
    pub label: String,
}

impl Image {
    pub fn busybox(tag: &str) -> Image {
        Image {
            tag: tag.to_string(),
            layers: vec![busybox_layer()],
            cmd: vec!["/bin/sh".into()],
            label: String::new(),
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Write `images` as an unpacked docker-archive into `dir`; returns each tag's image ID.
pub fn write(dir: &Path, images: &[Image]) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut manifest = Vec::new();
    let mut ids = Vec::new();
    for image in images {
        let mut layer_paths = Vec::new();
        let mut diff_ids = Vec::new();
        for layer in &image.layers {
            let digest = sha256(layer);
            std::fs::create_dir_all(dir.join(&digest)).unwrap();
            std::fs::write(dir.join(&digest).join("layer.tar"), layer).unwrap();
            layer_paths.push(format!("{digest}/layer.tar"));
            diff_ids.push(format!("sha256:{digest}"));
        }
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {
                "Env": ["PATH=/bin"],
                "Cmd": image.cmd,
                "Labels": {"io.berth.test": image.label},
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = sha256(&config);
        std::fs::write(dir.join(format!("{config_digest}.json")), &config).unwrap();
        manifest.push(serde_json::json!({
            "Config": format!("{config_digest}.json"),
            // An empty tag: an untagged image.
            "RepoTags": if image.tag.is_empty() { vec![] } else { vec![image.tag.clone()] },
            "Layers": layer_paths,
        }));
        ids.push((image.tag.clone(), format!("sha256:{config_digest}")));
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    ids
}
