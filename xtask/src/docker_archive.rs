//! System images as an unpacked docker-archive (the `docker save` layout): `manifest.json`,
//! one config `<id>.json` per image and one `<diff-id>/layer.tar` per layer, shared between
//! images. Berth's init streams a `docker load` tar from this directory at boot. Everything is
//! written deterministically (sorted entries, fixed owners and times), so the same inputs give
//! the same image IDs.

use anyhow::{Context, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Every timestamp in an image (2026-01-01T00:00:00Z): reproducible builds.
pub const EPOCH: u64 = 1_767_225_600;
const EPOCH_RFC3339: &str = "2026-01-01T00:00:00Z";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Layer {
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
    /// Path of the tar inside the archive directory.
    pub file: String,
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestEntry {
    pub config: String,
    pub repo_tags: Vec<String>,
    pub layers: Vec<String>,
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Write the tree under `src` as a layer in `store`; returns the layer (reused if present).
pub fn write_layer(src: &Path, store: &Path) -> Result<Layer> {
    std::fs::create_dir_all(store)?;
    let tmp = store.join(".layer.tar.tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut writer = HashingWriter {
        inner: std::io::BufWriter::new(file),
        hasher: Sha256::new(),
        written: 0,
    };
    {
        let mut builder = tar::Builder::new(&mut writer);
        builder.mode(tar::HeaderMode::Deterministic);
        for entry in walkdir::WalkDir::new(src).min_depth(1).sort_by_file_name() {
            let entry = entry?;
            let rel = entry.path().strip_prefix(src)?;
            append_entry(&mut builder, entry.path(), rel)?;
        }
        builder.finish()?;
    }
    writer.flush()?;
    let hex = hex::encode(writer.hasher.finalize_reset());
    let size = writer.written;
    drop(writer);
    let dir = store.join(&hex);
    std::fs::create_dir_all(&dir)?;
    let dest = dir.join("layer.tar");
    std::fs::rename(&tmp, &dest)?;
    Ok(Layer {
        diff_id: format!("sha256:{hex}"),
        file: format!("{hex}/layer.tar"),
        size,
    })
}

fn append_entry<W: Write>(builder: &mut tar::Builder<W>, path: &Path, rel: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(EPOCH);
    header.set_mode(meta.permissions().mode() & 0o7777);
    let ft = meta.file_type();
    if ft.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        builder.append_data(&mut header, rel, std::io::empty())?;
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path)?;
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, rel, &target)?;
    } else if ft.is_file() {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.size());
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        builder.append_data(&mut header, rel, file)?;
    }
    // Sockets, fifos and devices do not belong in an image tree; skip them.
    Ok(())
}

pub struct ImageSpec<'a> {
    pub repo_tag: String,
    pub env: &'a [String],
    pub entrypoint: &'a [String],
    pub cmd: &'a [String],
    pub labels: IndexMap<String, String>,
    pub layers: Vec<Layer>,
    pub history: Vec<String>,
}

/// Write the image config into `store`; returns the manifest entry and the image ID.
pub fn write_image(store: &Path, spec: &ImageSpec<'_>) -> Result<(ManifestEntry, String)> {
    let nonempty = |v: &[String]| if v.is_empty() { None } else { Some(v.to_vec()) };
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": EPOCH_RFC3339,
        "config": {
            "Env": spec.env,
            "Entrypoint": nonempty(spec.entrypoint),
            "Cmd": nonempty(spec.cmd),
            "Labels": spec.labels,
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": spec.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "history": spec.history.iter().map(|h| serde_json::json!({
            "created": EPOCH_RFC3339,
            "created_by": h,
        })).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&config)?;
    let hex = hex::encode(Sha256::digest(&bytes));
    std::fs::write(store.join(format!("{hex}.json")), &bytes)?;
    Ok((
        ManifestEntry {
            config: format!("{hex}.json"),
            repo_tags: vec![spec.repo_tag.clone()],
            layers: spec.layers.iter().map(|l| l.file.clone()).collect(),
        },
        format!("sha256:{hex}"),
    ))
}

/// Write `manifest.json` and remove blobs no image refers to.
pub fn write_manifest(store: &Path, entries: &[ManifestEntry]) -> Result<()> {
    std::fs::write(store.join("manifest.json"), serde_json::to_vec_pretty(entries)?)?;
    let mut keep: std::collections::HashSet<String> = entries.iter().map(|e| e.config.clone()).collect();
    for e in entries {
        for l in &e.layers {
            if let Some((dir, _)) = l.split_once('/') {
                keep.insert(dir.to_string());
            }
        }
    }
    keep.insert("manifest.json".to_string());
    for entry in std::fs::read_dir(store)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_reproducible_and_content_addressed() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("usr/bin")).unwrap();
        std::fs::write(src.path().join("usr/bin/hello"), b"#!/bin/sh\necho hi\n").unwrap();
        std::os::unix::fs::symlink("hello", src.path().join("usr/bin/hi")).unwrap();
        let store1 = tempfile::tempdir().unwrap();
        let store2 = tempfile::tempdir().unwrap();
        let a = write_layer(src.path(), store1.path()).unwrap();
        // A later mtime must not change the layer.
        std::fs::write(src.path().join("usr/bin/hello"), b"#!/bin/sh\necho hi\n").unwrap();
        let b = write_layer(src.path(), store2.path()).unwrap();
        assert_eq!(a.diff_id, b.diff_id);
        let bytes = std::fs::read(store1.path().join(&a.file)).unwrap();
        assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            a.diff_id
        );
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["usr", "usr/bin", "usr/bin/hello", "usr/bin/hi"]);
    }
}
