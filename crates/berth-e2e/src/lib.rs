//! End-to-end testing of Berth: boot the built image in QEMU and drive it like a user does,
//! over ssh and the serial console. Every console log is scanned for kernel panics, oopses,
//! `BUG:` lines and init failures. Also used by `cargo xtask run` and the boot benchmark.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

pub mod machine;
pub mod qemu;
pub mod testnet;

use std::path::{Path, PathBuf};

/// The build's artifacts, from `BERTH_OUT` or `<workspace>/target/berth`.
#[derive(Clone, Debug)]
pub struct Artifacts {
    pub out: PathBuf,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    pub slim_initrd: PathBuf,
    pub iso: PathBuf,
    pub os_img: PathBuf,
    pub images_img: PathBuf,
}

impl Artifacts {
    pub fn at(out: &Path) -> Self {
        Self {
            out: out.to_path_buf(),
            vmlinuz: out.join("vmlinuz"),
            initrd: out.join("initrd.img"),
            slim_initrd: out.join("work/initrd-slim.img"),
            iso: out.join("berth.iso"),
            os_img: out.join("work/os.img"),
            images_img: out.join("work/images.img"),
        }
    }

    /// The artifacts the tests use; fails with what to run when there are none.
    pub fn from_env() -> anyhow::Result<Self> {
        let out = std::env::var_os("BERTH_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/berth"));
        let a = Self::at(&out);
        for p in [&a.vmlinuz, &a.initrd, &a.iso] {
            anyhow::ensure!(
                p.exists(),
                "{} is missing: build the image first (`cargo xtask build`, or run `cargo xtask test`)",
                p.display()
            );
        }
        Ok(a)
    }
}

/// Lines of a console log that mean something went badly wrong.
pub fn console_problems(log: &str) -> Vec<String> {
    const BAD: &[&str] = &[
        "Kernel panic",
        "Oops:",
        "Oops -",
        "BUG:",
        "general protection fault",
        "Berth could not finish booting",
        "init panicked",
        "Attempted to kill init",
    ];
    log.lines()
        .filter(|line| BAD.iter().any(|b| line.contains(b)))
        .map(|l| l.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_scan_finds_panics_and_init_failures() {
        let log = "[ 1.0] ok\n[ 2.0] Kernel panic - not syncing: VFS\n[ 3.0] BUG: unable to handle\n\
                   Berth could not finish booting:\n[ 4.0] Oops: 0002 [#1] SMP\n";
        assert_eq!(console_problems(log).len(), 4);
        assert!(console_problems("[ 1.0] all good\n[ 2.0] BUGS are fine in names? no: BUGfix\n").is_empty());
    }
}
