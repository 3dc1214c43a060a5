//! The Rust toolchain the build uses: Berth's binaries are static musl executables when the
//! musl target is installed (`cargo xtask setup` adds it), glibc-static ones otherwise.

use std::path::Path;
use std::process::Command;

pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// Whether rustup's musl target is installed for the active toolchain.
pub fn musl_available() -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot).join("lib/rustlib").join(MUSL_TARGET).is_dir()
}
