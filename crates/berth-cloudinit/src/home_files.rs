//! Files root writes into a user's home (`~/.docker/config.json`, the TLS client's files),
//! through [`crate::beneath`]: a link the user planted there is refused, never followed.

use crate::beneath::Dir;
use std::ffi::OsStr;
use std::io;
use std::path::Path;

/// `home/subdir/name` under `root` (`/` on a machine), at most `limit` bytes; `None` when
/// the directory or the file is not there.
pub fn read(root: &Path, home: &Path, subdir: &str, name: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let home = Dir::open(root, home, None)?;
    if !home.has_subdir(OsStr::new(subdir))? {
        return Ok(None);
    }
    let dir = home.subdir(OsStr::new(subdir), None, None)?;
    Ok(dir.read(OsStr::new(name), limit)?.map(|e| e.bytes))
}

/// Replace `home/subdir/name` under `root` with `bytes`, owned by `owner` with `mode`; the
/// directory is made (0700, `owner`'s) when missing.
pub fn write(
    root: &Path,
    home: &Path,
    subdir: &str,
    name: &str,
    bytes: &[u8],
    mode: u32,
    owner: (u32, u32),
) -> io::Result<()> {
    let home = Dir::open(root, home, None)?;
    let dir = home.subdir(OsStr::new(subdir), Some(0o700), Some(owner))?;
    dir.replace(OsStr::new(name), bytes, mode, Some(owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn writes_with_mode_and_refuses_a_planted_link() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("home/alice")).unwrap();
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        let home = Path::new("/home/alice");
        assert_eq!(read(r, home, ".docker", "config.json", 100).unwrap(), None);
        write(r, home, ".docker", "config.json", b"{}", 0o600, me).unwrap();
        let meta = std::fs::metadata(r.join("home/alice/.docker/config.json")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let dir = std::fs::metadata(r.join("home/alice/.docker")).unwrap();
        assert_eq!(dir.mode() & 0o777, 0o700);
        assert_eq!(
            read(r, home, ".docker", "config.json", 100).unwrap().unwrap(),
            b"{}"
        );

        // ~/.docker as a link to somewhere else is not followed.
        std::fs::create_dir_all(r.join("home/bob")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::os::unix::fs::symlink(r.join("etc"), r.join("home/bob/.docker")).unwrap();
        let bob = Path::new("/home/bob");
        assert!(write(r, bob, ".docker", "config.json", b"{}", 0o600, me).is_err());
        assert!(!r.join("etc/config.json").exists());
    }
}
