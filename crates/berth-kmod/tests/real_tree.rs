//! Index a real Debian kernel's module tree (read only: nothing is inserted).
//!
//! Ignored by default. Point `BERTH_KMOD_TREE` at a `lib/modules/<release>` directory that
//! has a `modules.dep` (Debian's package ships none: run `depmod -b ROOT RELEASE` on a copy),
//! or leave it unset to look under `/tmp/kt/k/usr/lib/modules/`, then
//! `cargo test -p berth-kmod --test real_tree -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use std::path::PathBuf;

use berth_kmod::{FakeModuleLoader, ModuleIndex, coldplug, modprobe};

fn real_tree() -> Option<PathBuf> {
    let dir = match std::env::var_os("BERTH_KMOD_TREE") {
        Some(dir) => PathBuf::from(dir),
        None => std::fs::read_dir("/tmp/kt/k/usr/lib/modules")
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.is_dir())?,
    };
    if dir.join("modules.dep").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: {} has no modules.dep (run depmod on a copy and set BERTH_KMOD_TREE)",
            dir.display()
        );
        None
    }
}

#[test]
#[ignore = "needs a real module tree with modules.dep"]
fn resolves_what_the_kernel_asks_for() {
    let Some(dir) = real_tree() else {
        return;
    };
    let index = ModuleIndex::load(&dir).expect("index loads");
    let (modules, aliases, builtin) = index.counts();
    eprintln!("{modules} modules, {aliases} aliases, {builtin} builtin");
    for warning in index.warnings() {
        eprintln!("warning: {warning}");
    }

    let cases: &[(&str, &str, &[&str])] = &[
        // (request, module, some of what its plan must load before it)
        ("fs-vfat", "vfat", &["fat"]),
        ("net-pf-16-proto-12", "nfnetlink", &[]),
        (
            "nft-chain-2-nat",
            "nft_chain_nat",
            &["nfnetlink", "nf_tables", "nf_conntrack", "nf_nat"],
        ),
        ("virtio:d00000001v00001AF4", "virtio_net", &["net_failover"]),
    ];
    for &(request, module, needs) in cases {
        assert_eq!(index.resolve(request), [module], "{request}");
        let plan = index.load_plan(module).expect("plan");
        eprint!("{request}:\n{plan}");
        let names = plan.module_names();
        let at = |m: &str| names.iter().position(|n| *n == m);
        for need in needs {
            assert!(
                at(need) < at(module) && at(need).is_some(),
                "{need} before {module}"
            );
        }
    }
    assert!(index.is_builtin("ext4"));
    assert_eq!(index.resolve("fs-ext4"), ["ext4"]);
    assert!(!index.resolve("crypto-sha256").is_empty());

    let mut loader = FakeModuleLoader::new();
    let inserted = modprobe(&index, &mut loader, "nft-chain-2-nat", "").expect("modprobe");
    assert_eq!(inserted.last().map(String::as_str), Some("nft_chain_nat"));
}

#[test]
#[ignore = "needs a real module tree with modules.dep"]
fn coldplug_this_machines_devices() {
    let Some(dir) = real_tree() else {
        return;
    };
    let index = ModuleIndex::load(&dir).expect("index loads");
    let mut loader = FakeModuleLoader::new();
    let report = coldplug(&index, &mut loader, std::path::Path::new("/sys/devices"));
    eprintln!(
        "{} modaliases, {} unmatched, {} already present, loaded {:?}, failures {:?}",
        report.modaliases, report.unmatched, report.already_present, report.loaded, report.failures
    );
    assert!(report.failures.is_empty());
}
