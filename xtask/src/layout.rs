//! Where things live: the workspace, its `os/` data and the build's output directories.

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `os/`: recipes, default configuration, static files.
pub fn os_dir() -> PathBuf {
    workspace().join("os")
}

/// `target/berth`: the build's published artifacts.
pub fn out_dir() -> PathBuf {
    workspace().join("target").join("berth")
}

/// `target/berth/work`: intermediate trees and stamps.
pub fn work_dir() -> PathBuf {
    out_dir().join("work")
}

/// `target/berth/apt`: the private apt state and package cache.
pub fn apt_dir() -> PathBuf {
    out_dir().join("apt")
}

/// The Berth version baked into the image (the workspace version).
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
