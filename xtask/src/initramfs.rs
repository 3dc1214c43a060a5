//! The initramfs: a newc cpio archive. The slim part (init, busybox for the recovery shell,
//! early modules) is zstd-compressed; the full `initrd.img` appends an uncompressed archive
//! holding the already-compressed OS image, which the kernel unpacks as a second segment.

use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// A character device node to put in the archive (the tree on disk cannot hold one unprivileged).
pub struct CharDevice {
    pub path: &'static str,
    pub mode: u32,
    pub major: u32,
    pub minor: u32,
}

pub const CONSOLE: CharDevice = CharDevice {
    path: "dev/console",
    mode: 0o600,
    major: 5,
    minor: 1,
};

/// Write every entry of `root` (sorted) and `devices` as a newc archive into `out`.
pub fn write_cpio<W: Write>(root: &Path, devices: &[CharDevice], mut out: W) -> Result<W> {
    let mut ino = 1u32;
    let mut next = || {
        ino += 1;
        ino
    };
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry?;
        let name = entry.path().strip_prefix(root)?.to_string_lossy().into_owned();
        let meta = entry.path().symlink_metadata()?;
        let perm = meta.permissions().mode() & 0o7777;
        let builder = cpio::newc::Builder::new(&name).ino(next()).uid(0).gid(0).mtime(0);
        let ft = meta.file_type();
        if ft.is_dir() {
            out = builder.mode(S_IFDIR | perm).nlink(2).write(out, 0).finish()?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            let bytes = target.as_os_str().as_encoded_bytes();
            let mut w = builder.mode(S_IFLNK | 0o777).write(out, bytes.len() as u32);
            w.write_all(bytes)?;
            out = w.finish()?;
        } else if ft.is_file() {
            let size = u32::try_from(meta.size()).with_context(|| format!("{name} is over 4 GiB"))?;
            let mut w = builder.mode(S_IFREG | perm).write(out, size);
            let mut file = std::fs::File::open(entry.path())?;
            std::io::copy(&mut file, &mut w).with_context(|| format!("archiving {name}"))?;
            out = w.finish()?;
        }
    }
    for dev in devices {
        out = cpio::newc::Builder::new(dev.path)
            .ino(next())
            .mode(S_IFCHR | dev.mode)
            .rdev_major(dev.major)
            .rdev_minor(dev.minor)
            .write(out, 0)
            .finish()?;
    }
    Ok(cpio::newc::trailer(out)?)
}

/// Write `root` as a zstd-compressed archive at `dest`.
pub fn write_compressed(root: &Path, devices: &[CharDevice], dest: &Path) -> Result<()> {
    let file = std::fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut encoder = zstd::Encoder::new(std::io::BufWriter::new(file), 19)?;
    encoder.multithread(2)?;
    let encoder = write_cpio(root, devices, encoder)?;
    encoder.finish()?.flush()?;
    Ok(())
}

/// Write an uncompressed archive holding `files` (archive name, path on disk) to `out`.
pub fn append_files<W: Write>(files: &[(&str, &Path)], mut out: W) -> Result<W> {
    let mut dirs = std::collections::BTreeSet::new();
    for (name, file) in files {
        let parts: Vec<&str> = name.split('/').collect();
        for i in 1..parts.len() {
            let dir = parts[..i].join("/");
            if dirs.insert(dir.clone()) {
                out = cpio::newc::Builder::new(&dir)
                    .mode(S_IFDIR | 0o755)
                    .nlink(2)
                    .write(out, 0)
                    .finish()?;
            }
        }
        let meta = std::fs::metadata(file)?;
        let size = u32::try_from(meta.len()).with_context(|| format!("{name} is over 4 GiB"))?;
        let mut w = cpio::newc::Builder::new(name)
            .mode(S_IFREG | 0o444)
            .write(out, size);
        std::io::copy(&mut std::fs::File::open(file)?, &mut w)?;
        out = w.finish()?;
    }
    Ok(cpio::newc::trailer(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_lists_tree_and_devices() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
        std::fs::write(root.path().join("usr/bin/berth"), b"ELF").unwrap();
        std::os::unix::fs::symlink("usr/bin/berth", root.path().join("init")).unwrap();
        let bytes = write_cpio(root.path(), &[CONSOLE], Vec::new()).unwrap();
        let mut names = Vec::new();
        let mut reader = &bytes[..];
        loop {
            let entry = cpio::newc::Reader::new(reader).unwrap();
            if entry.entry().is_trailer() {
                break;
            }
            names.push((entry.entry().name().to_string(), entry.entry().mode() & 0o170000));
            reader = entry.finish().unwrap();
        }
        assert_eq!(
            names,
            [
                ("init".to_string(), S_IFLNK),
                ("usr".to_string(), S_IFDIR),
                ("usr/bin".to_string(), S_IFDIR),
                ("usr/bin/berth".to_string(), S_IFREG),
                ("dev/console".to_string(), S_IFCHR),
            ]
        );
    }
}
