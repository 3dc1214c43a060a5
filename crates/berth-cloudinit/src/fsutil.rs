//! Small file-system helpers shared by the phases.

use crate::error::{Error, Result};
use std::io::Read as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

/// `root` joined with an absolute path (`/etc/passwd` under `/tmp/x` is `/tmp/x/etc/passwd`).
pub(crate) fn under(root: &Path, absolute: impl AsRef<Path>) -> PathBuf {
    let p = absolute.as_ref();
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Create `dir` and its missing parents with `mode`.
pub(crate) fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

/// Write atomically (berth-config's temp file + fsync + rename); missing parent directories
/// are created with `dir_mode`.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32, dir_mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        ensure_dir(parent, dir_mode)?;
    }
    berth_config::write_atomically(path, bytes, mode).map_err(|e| Error::io(path, e))
}

/// Remove a file; a file that is not there is fine.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Read a file of at most `limit` bytes: `Ok(None)` when it does not exist.
pub(crate) fn read_limited(path: &Path, limit: usize) -> Result<Option<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() > limit {
        return Err(Error::io(
            path,
            std::io::Error::other(format!("larger than {limit} bytes")),
        ));
    }
    Ok(Some(bytes))
}
