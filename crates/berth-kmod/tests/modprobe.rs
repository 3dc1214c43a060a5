//! modprobe and modprobe -r against the fake loader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_kmod::{
    FakeModuleLoader, KmodError, ModuleLoader, ProbeOptions, modprobe, modprobe_remove, modprobe_remove_with,
    modprobe_with,
};
use common::Tree;
use nix::errno::Errno;

#[test]
fn modprobe_table() {
    let tree = Tree::new();
    let index = tree.index();
    let cases: &[(&str, &[&str], &[&str])] = &[
        // (name, already loaded, inserted)
        ("vfat", &[], &["nls_base", "fat", "vfat"]),
        ("fs-vfat", &["nls_base", "fat"], &["vfat"]),
        ("vfat", &["nls-base", "fat", "vfat"], &[]),
        (
            "nft-chain-2-nat",
            &["nfnetlink"],
            &[
                "libcrc32c",
                "nf_conntrack",
                "nf_tables",
                "nf_nat",
                "nft_chain_nat",
            ],
        ),
        ("ext4", &[], &[]),
        ("fs-ext4", &[], &[]),
        ("crypto-sha256", &[], &[]),
        ("crypto-crc32c", &[], &["crc32c_generic", "crc32c_intel"]),
    ];
    for &(name, loaded, want) in cases {
        let mut loader = FakeModuleLoader::with_loaded(loaded);
        let inserted = modprobe(&index, &mut loader, name, "").expect(name);
        assert_eq!(inserted, want, "modprobe {name} with {loaded:?} loaded");
        assert_eq!(loader.inserted_names(), want, "{name}");
    }
}

#[test]
fn params_reach_the_target_only() {
    let tree = Tree::new();
    let index = tree.index_with("options vfat utf8=1\n");
    let mut loader = FakeModuleLoader::new();
    modprobe(&index, &mut loader, "vfat", "shortname=mixed").expect("modprobe");
    let params: Vec<_> = loader.inserts().iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(params, ["", "", "utf8=1 shortname=mixed"]);
    assert_eq!(loader.inserts()[2].0, tree.path("kernel/fs/fat/vfat.ko.xz"));
}

#[test]
fn not_found_and_blacklisted() {
    let tree = Tree::new();
    let index = tree.index_with("blacklist pcspkr\n");
    let mut loader = FakeModuleLoader::new();

    let err = modprobe(&index, &mut loader, "nope", "").err();
    assert!(matches!(err, Some(KmodError::ModuleNotFound { ref name, .. }) if name == "nope"));

    let err = modprobe(&index, &mut loader, "platform:pcspkr", "").err();
    assert!(matches!(err, Some(KmodError::Blacklisted { ref modules, .. }) if modules == &["pcspkr"]));

    // By name the blacklist does not apply, unless -b.
    assert_eq!(
        modprobe(&index, &mut loader, "pcspkr", "").expect("by name"),
        ["pcspkr"]
    );
    let mut loader = FakeModuleLoader::new();
    let with_b = ProbeOptions {
        use_blacklist: true,
        ..ProbeOptions::default()
    };
    let err = modprobe_with(&index, &mut loader, "pcspkr", "", with_b).err();
    assert!(matches!(err, Some(KmodError::Blacklisted { .. })));
    assert!(loader.inserts().is_empty());
}

#[test]
fn failing_softdep_is_skipped_failing_dependency_is_fatal() {
    let tree = Tree::new();
    let index = tree.index();

    let mut loader = FakeModuleLoader::new();
    loader.fail_insert("crc32c_intel", Errno::ENODEV);
    let inserted = modprobe(&index, &mut loader, "nvme", "").expect("softdep failure tolerated");
    assert_eq!(inserted, ["nvme_core", "crc32c_generic", "nvme", "nvme_post"]);

    let mut loader = FakeModuleLoader::new();
    loader.fail_insert("nvme-core", Errno::ENOEXEC);
    let err = modprobe(&index, &mut loader, "nvme", "").err();
    match err {
        Some(e @ KmodError::Insert { .. }) => {
            let message = e.to_string();
            assert!(message.contains("'nvme_core'"), "{message}");
            assert!(message.contains("invalid module format"), "{message}");
        }
        other => panic!("expected Insert, got {other:?}"),
    }
    assert!(!loader.is_loaded("nvme"));
}

#[test]
fn first_time() {
    let tree = Tree::new();
    let index = tree.index();
    let options = ProbeOptions {
        first_time: true,
        ..ProbeOptions::default()
    };
    let mut loader = FakeModuleLoader::with_loaded(["vfat", "fat", "nls_base"]);
    let err = modprobe_with(&index, &mut loader, "vfat", "", options).err();
    assert!(matches!(err, Some(KmodError::AlreadyLoaded { .. })));
    let mut loader = FakeModuleLoader::new();
    assert!(modprobe_with(&index, &mut loader, "vfat", "", options).is_ok());
}

#[test]
fn remove_table() {
    let tree = Tree::new();
    let index = tree.index();
    let all = ["vfat", "fat", "nls_base", "nvme", "nvme_core"];
    // (name, modules in use, removed or the start of the error)
    type Case<'a> = (&'a str, &'a [&'a str], Result<&'a [&'a str], &'a str>);
    let cases: &[Case] = &[
        ("vfat", &[], Ok(&["vfat", "fat", "nls_base"])),
        ("fs-vfat", &["nls_base"], Ok(&["vfat", "fat"])),
        ("vfat", &["vfat"], Err("could not remove 'vfat'")),
        ("nft_chain_nat", &[], Ok(&[])),
        ("ext4", &[], Err("Module ext4 is builtin")),
        ("nope", &[], Err("Module nope not found")),
    ];
    for &(name, in_use, want) in cases {
        let mut loader = FakeModuleLoader::with_loaded(all);
        for m in in_use {
            loader.set_in_use(m);
        }
        let got = modprobe_remove(&index, &mut loader, name);
        match (got, want) {
            (Ok(removed), Ok(want)) => {
                assert_eq!(removed, want, "{name}");
                for m in want {
                    assert!(!loader.is_loaded(m), "{m}");
                }
            }
            (Err(e), Err(want)) => assert!(e.to_string().starts_with(want), "{name}: {e}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn remove_first_time_wants_it_loaded() {
    let tree = Tree::new();
    let index = tree.index();
    let options = ProbeOptions {
        first_time: true,
        ..ProbeOptions::default()
    };
    let mut loader = FakeModuleLoader::new();
    let err = modprobe_remove_with(&index, &mut loader, "vfat", options).err();
    assert!(matches!(err, Some(KmodError::NotLoaded { .. })));
}

#[test]
fn fake_loader_treats_reinsert_as_success() {
    let mut loader = FakeModuleLoader::with_loaded(["vfat"]);
    assert!(loader.insert(std::path::Path::new("/x/vfat.ko.xz"), "").is_ok());
    assert!(loader.inserts().is_empty());
    assert!(loader.loaded().expect("loaded").contains("vfat"));
}
