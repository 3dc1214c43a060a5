//! The modprobe command, without touching the host kernel: -n, -D, -R and errors only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_kmod::modprobe_main_with;
use common::{RELEASE, Tree, write};

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn run(tree: &Tree, args: &[&str]) -> Run {
    let conf = tree.root.path().join("modprobe.d");
    write(&conf.join("test.conf"), "options vfat utf8=1\nblacklist pcspkr\n");
    let root = tree.root.path().to_string_lossy().into_owned();
    let conf = conf.to_string_lossy().into_owned();
    let mut argv: Vec<String> = ["modprobe", "-d", &root, "-S", RELEASE, "-C", &conf]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(args.iter().map(|s| s.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = modprobe_main_with(&argv, &mut out, &mut err);
    Run {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

#[test]
fn show_depends() {
    let tree = Tree::new();
    let r = run(&tree, &["--show-depends", "fs-vfat", "shortname=mixed"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let dir = tree.dir();
    assert_eq!(
        r.out,
        format!(
            "insmod {d}/kernel/fs/nls/nls_base.ko.xz \n\
             insmod {d}/kernel/fs/fat/fat.ko.xz \n\
             insmod {d}/kernel/fs/fat/vfat.ko.xz utf8=1 shortname=mixed\n",
            d = dir.display()
        )
    );
    let r = run(&tree, &["-D", "ext2"]);
    assert_eq!((r.code, r.out.as_str()), (0, "builtin ext4\n"));
}

#[test]
fn resolve_alias() {
    let tree = Tree::new();
    let r = run(&tree, &["-R", "--", "crypto-crc32c"]);
    assert_eq!((r.code, r.out.as_str()), (0, "crc32c_generic\ncrc32c_intel\n"));
    let r = run(&tree, &["-R", "-a", "net-pf-16-proto-12", "nft-chain-2-nat"]);
    assert_eq!((r.code, r.out.as_str()), (0, "nfnetlink\nnft_chain_nat\n"));
}

#[test]
fn not_found_is_fatal_and_quiet_hides_it() {
    let tree = Tree::new();
    let r = run(&tree, &["nope"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        format!(
            "modprobe: FATAL: Module nope not found in directory {}\n",
            tree.dir().display()
        )
    );
    let r = run(&tree, &["-q", "--", "nope"]);
    assert_eq!((r.code, r.err.as_str()), (1, ""));
    let r = run(&tree, &["-b", "-n", "pcspkr"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("blacklisted"), "{}", r.err);
}

#[test]
fn dry_run_verbose_prints_insmod_lines() {
    let tree = Tree::new();
    // Reads the host's /proc/modules but inserts nothing.
    let r = run(&tree, &["-n", "-v", "nft-chain-10-nat"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let host_has_it = std::fs::read_to_string("/proc/modules")
        .is_ok_and(|m| m.lines().any(|l| l.starts_with("nft_chain_nat ")));
    if !host_has_it {
        let last = r.out.lines().last().unwrap_or_default().to_owned();
        assert!(last.starts_with("insmod "), "{}", r.out);
        assert!(last.contains("nft_chain_nat.ko.xz"), "{}", r.out);
    }
    let r = run(&tree, &["-n", "-a", "ext4", "af_packet"]);
    assert_eq!((r.code, r.out.as_str()), (0, ""));
}

#[test]
fn usage() {
    let tree = Tree::new();
    let r = run(&tree, &[]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("required"), "{}", r.err);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = modprobe_main_with(&["modprobe".into(), "--help".into()], &mut out, &mut err);
    let help = String::from_utf8_lossy(&out);
    assert_eq!(code, 0);
    for flag in [
        "--quiet",
        "--all",
        "--remove",
        "--dry-run",
        "--show-depends",
        "--use-blacklist",
        "--verbose",
        "--set-version",
        "--dirname",
        "--first-time",
        "--resolve-alias",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let r = run(&tree, &["--bogus"]);
    assert_eq!(r.code, 1);
}

#[test]
fn missing_index_is_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_string_lossy().into_owned();
    let args: Vec<String> = ["modprobe", "-d", &root, "-S", "0.0", "vfat"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(modprobe_main_with(&args, &mut out, &mut err), 1);
    let err = String::from_utf8_lossy(&err);
    assert!(err.starts_with("modprobe: FATAL: "), "{err}");
    assert!(err.contains("modules.dep is missing"), "{err}");
}
