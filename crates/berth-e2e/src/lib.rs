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

/// The version of the second, newer release that upgrade tests install: this build's with the
/// patch number one higher.
pub fn next_version() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut parts: Vec<u64> = version
        .split('.')
        .map(|p| p.parse().expect("the workspace version is major.minor.patch"))
        .collect();
    *parts.last_mut().expect("a version") += 1;
    parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// The output directory of the next release ([`next_version`]) beside the build in `out`.
pub fn next_out(out: &Path) -> PathBuf {
    out.join("next")
}

/// The next release's upgrade bundle, built with `cargo xtask build --version V --out OUT/next`
/// (signed with the same key as this build) unless one was built after the build in `out`, as
/// `cargo xtask test` does before the end-to-end tests.
pub fn build_next(out: &Path) -> anyhow::Result<PathBuf> {
    let version = next_version();
    let dir = next_out(out);
    let bundle = dir.join(format!("berth-{version}.upgrade"));
    let built = |dir: &Path| {
        std::fs::metadata(dir.join("manifest.json"))
            .and_then(|m| m.modified())
            .ok()
    };
    if let (Some(main), Some(next)) = (built(out), built(&dir))
        && next > main
        && bundle.exists()
    {
        return Ok(bundle);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&workspace)
        .args(["xtask", "build", "--version", &version, "--out"])
        .arg(&dir)
        .status()?;
    anyhow::ensure!(status.success(), "cargo xtask build --version {version} failed");
    Ok(bundle)
}

/// Lines of a console log that mean something went badly wrong.
pub fn console_problems(log: &str) -> Vec<String> {
    console_scan(log, false).0
}

/// What a console log shows: the lines that mean something went badly wrong, and, when
/// `tcg` (QEMU's software emulation) is set, the lines set apart as a known fault of the
/// emulator rather than of Berth.
///
/// That fault: QEMU's multi-threaded TCG does not make one vCPU see at once the kernel's live
/// code patching (`text_poke_bp`) done by another, so a vCPU can run an `int3` the patcher has
/// already removed; the kernel then reports `Oops: int3` and panics with "Fatal exception".
/// It never happens under KVM or on hardware, and rarely under TCG (once in hundreds of
/// boots), so a boot in which every oops is such an `int3` and every panic is its "Fatal
/// exception" is set apart, not hidden: the caller prints it. Any other line in that boot
/// still counts.
pub fn console_scan(log: &str, tcg: bool) -> (Vec<String>, Vec<String>) {
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
    let mut problems = Vec::new();
    let mut emulator = Vec::new();
    // The int3 fault is only recognised within the boot it happened in: a kernel banner
    // starts a new one.
    let mut int3_this_boot = false;
    for line in log.lines() {
        if line.contains("Linux version ") {
            int3_this_boot = false;
        }
        if !BAD.iter().any(|b| line.contains(b)) {
            continue;
        }
        let line = line.trim().to_string();
        if tcg && line.contains("Oops: int3") {
            int3_this_boot = true;
            emulator.push(line);
        } else if tcg && int3_this_boot && line.contains("Kernel panic - not syncing: Fatal exception") {
            emulator.push(line);
        } else {
            problems.push(line);
        }
    }
    (problems, emulator)
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

    #[test]
    fn tcg_int3_fault_is_set_apart_only_under_tcg_and_only_in_its_boot() {
        let int3 = "[ 0.0] Linux version 6.12\n[ 20.9] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n\
                    [ 20.9] Oops: int3: 0000 [#2] PREEMPT SMP NOPTI\n\
                    [ 20.9] Kernel panic - not syncing: Fatal exception in interrupt\n\
                    [ 0.0] Linux version 6.12\n[ 5.0] all good\n";
        let (problems, emulator) = console_scan(int3, true);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(emulator.len(), 3);
        // Under KVM the same lines are problems.
        assert_eq!(console_scan(int3, false).0.len(), 3);
        // Another oops in the same boot still counts, and so does a panic in a later boot.
        let mixed =
            format!("{int3}[ 6.0] Oops: 0002 [#1] SMP\n[ 6.1] Kernel panic - not syncing: Fatal exception\n");
        let (problems, _) = console_scan(&mixed, true);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let not_fatal = "[ 0.0] Linux version 6.12\n[ 1.0] Oops: int3: 0000 [#1]\n\
                         [ 1.1] Kernel panic - not syncing: Attempted to kill init!\n";
        assert_eq!(console_scan(not_fatal, true).0.len(), 1);
    }
}
