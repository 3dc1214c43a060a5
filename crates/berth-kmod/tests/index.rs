//! Resolution and load plans over a hand-written module tree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_kmod::{KmodError, ModuleIndex, ResolvedVia, StepRole};
use common::Tree;

#[test]
fn resolves_names_and_aliases() {
    let tree = Tree::new();
    let index = tree.index();
    let cases: &[(&str, &[&str])] = &[
        ("vfat", &["vfat"]),
        ("fs-vfat", &["vfat"]),
        ("fs_vfat", &["vfat"]),
        ("nvme-core", &["nvme_core"]),
        ("nvme_core", &["nvme_core"]),
        ("crc32c_intel", &["crc32c_intel"]),
        ("net-pf-16-proto-12", &["nfnetlink"]),
        ("nft-chain-2-nat", &["nft_chain_nat"]),
        ("virtio:d00000001v00001AF4", &["virtio_net"]),
        ("virtio:d00000002v00001AF4", &[]),
        ("usb:v0403p6001d0400dc00dsc00dp00icFFiscFFipFFin00", &["ftdi_sio"]),
        ("usb:v0403p6001d0600dc00dsc00dp00icFFiscFFipFFin00", &[]),
        ("pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02", &["nvme"]),
        ("crypto-crc32c", &["crc32c_generic", "crc32c_intel"]),
        ("ext4", &["ext4"]),
        ("fs-ext4", &["ext4"]),
        ("ext2", &["ext4"]),
        ("crypto-sha256", &["sha256_generic"]),
        ("af_packet", &["af_packet"]),
        ("nope", &[]),
        ("", &[]),
        ("bad]", &[]),
    ];
    for &(query, want) in cases {
        assert_eq!(index.resolve(query), want, "resolve({query:?})");
    }
}

#[test]
fn resolution_says_where_it_matched() {
    let tree = Tree::new();
    let index = tree.index_with("alias my-disk nvme\n");
    let cases = [
        ("my-disk", ResolvedVia::ConfigAlias),
        ("vfat", ResolvedVia::ModuleName),
        ("fs-vfat", ResolvedVia::Alias),
        ("ext4", ResolvedVia::BuiltinName),
        ("ext2", ResolvedVia::BuiltinAlias),
        ("nope", ResolvedVia::NotFound),
    ];
    for (query, via) in cases {
        assert_eq!(index.lookup(query).via, via, "{query}");
    }
    assert_eq!(index.resolve("my_disk"), ["nvme"]);
}

#[test]
fn builtins() {
    let tree = Tree::new();
    let index = tree.index();
    for (name, builtin) in [
        ("ext4", true),
        ("af-packet", true),
        ("sha256_generic", true),
        ("vfat", false),
        ("nope", false),
    ] {
        assert_eq!(index.is_builtin(name), builtin, "{name}");
    }
    let plan = index.load_plan("ext4").expect("plan");
    assert!(plan.builtin);
    assert!(plan.steps.is_empty());
    assert_eq!(plan.to_string(), "builtin ext4\n");
}

#[test]
fn plans_put_dependencies_first() {
    let tree = Tree::new();
    let index = tree.index();
    let cases: &[(&str, &[&str])] = &[
        ("vfat", &["nls_base", "fat", "vfat"]),
        ("nls_base", &["nls_base"]),
        (
            "nft_chain_nat",
            &[
                "nfnetlink",
                "libcrc32c",
                "nf_conntrack",
                "nf_tables",
                "nf_nat",
                "nft_chain_nat",
            ],
        ),
        ("virtio-net", &["failover", "net_failover", "virtio_net"]),
        (
            "nvme",
            &["nvme_core", "crc32c_generic", "crc32c_intel", "nvme", "nvme_post"],
        ),
    ];
    for &(name, want) in cases {
        let plan = index.load_plan(name).expect("plan");
        assert_eq!(plan.module_names(), want, "load_plan({name})");
        // Whatever the order in modules.dep, each module comes after what it needs.
        for (i, step) in plan.steps.iter().enumerate() {
            for dep in index.dependencies(&step.module) {
                let at = plan.steps.iter().position(|s| &s.module == dep);
                assert!(at.is_some_and(|at| at < i), "{dep} before {}", step.module);
            }
        }
    }
}

#[test]
fn plan_roles_and_paths() {
    let tree = Tree::new();
    let index = tree.index();
    let plan = index.load_plan("nvme").expect("plan");
    let roles: Vec<_> = plan.steps.iter().map(|s| s.role).collect();
    assert_eq!(
        roles,
        [
            StepRole::Dependency,
            StepRole::SoftdepPre,
            StepRole::SoftdepPre,
            StepRole::Target,
            StepRole::SoftdepPost,
        ]
    );
    assert_eq!(
        plan.steps[3].path,
        tree.path("kernel/drivers/nvme/host/nvme.ko.xz")
    );
    assert_eq!(
        plan.steps[0].path,
        tree.path("kernel/drivers/nvme/host/nvme-core.ko.xz")
    );
}

#[test]
fn softdep_that_is_also_a_hard_dependency_stays_required() {
    let tree = Tree::new();
    let index = tree.index_with("softdep vfat pre: nls_base\n");
    let plan = index.load_plan("vfat").expect("plan");
    assert_eq!(plan.module_names(), ["nls_base", "fat", "vfat"]);
    assert_eq!(plan.steps[0].role, StepRole::Dependency);
}

#[test]
fn config_softdep_replaces_the_index_one() {
    let tree = Tree::new();
    let index = tree.index_with("softdep nvme pre: fs-vfat\n");
    let plan = index.load_plan("nvme").expect("plan");
    assert_eq!(
        plan.module_names(),
        ["nvme_core", "nls_base", "fat", "vfat", "nvme"]
    );
}

#[test]
fn options_and_params() {
    let tree = Tree::new();
    let index = tree.index_with("options vfat utf8=1\noptions fat debug=1\n");
    let mut plan = index.load_plan("vfat").expect("plan");
    plan.add_target_params("shortname=mixed");
    let params: Vec<_> = plan.steps.iter().map(|s| s.params.as_str()).collect();
    assert_eq!(params, ["", "debug=1", "utf8=1 shortname=mixed"]);
    let shown = plan.to_string();
    assert!(shown.ends_with("vfat.ko.xz utf8=1 shortname=mixed\n"), "{shown}");
}

#[test]
fn blacklist_only_affects_aliases() {
    let tree = Tree::new();
    let index = tree.index_with("blacklist pcspkr\nblacklist crc32c-intel\n");
    assert_eq!(index.resolve("platform:pcspkr"), Vec::<String>::new());
    assert_eq!(index.lookup("platform:pcspkr").blacklisted, ["pcspkr"]);
    assert_eq!(index.resolve("pcspkr"), ["pcspkr"]);
    assert_eq!(index.resolve("crypto-crc32c"), ["crc32c_generic"]);
    let plan = index.load_plan("nvme").expect("plan");
    assert!(!plan.module_names().contains(&"crc32c_intel"));
}

#[test]
fn unknown_module_error_names_the_directory() {
    let tree = Tree::new();
    let index = tree.index();
    let err = index.load_plan("nope").err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        message,
        format!("Module nope not found in directory {}", tree.dir().display())
    );
}

#[test]
fn missing_modules_dep_says_to_run_depmod() {
    let dir = tempfile::tempdir().expect("tempdir");
    match ModuleIndex::load(dir.path()) {
        Err(e @ KmodError::IndexMissing { .. }) => {
            assert!(e.to_string().contains("run `depmod`"), "{e}");
        }
        other => panic!("expected IndexMissing, got {other:?}"),
    }
}

#[test]
fn optional_files_may_be_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(
        &dir.path().join("modules.dep"),
        "kernel/a.ko: kernel/b.ko\nbroken line\n",
    );
    let index = ModuleIndex::load(dir.path()).expect("index");
    assert_eq!(index.resolve("a"), ["a"]);
    // b has no line of its own but is still loadable as a's dependency.
    assert_eq!(index.load_plan("a").expect("plan").module_names(), ["b", "a"]);
    let warnings = index.warnings().join("\n");
    assert!(warnings.contains("modules.alias is missing"), "{warnings}");
    assert!(warnings.contains("skipped 1 malformed"), "{warnings}");
    assert!(warnings.contains("no line for it"), "{warnings}");
}

#[test]
fn cycles_in_a_broken_index_terminate() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::write(&dir.path().join("modules.dep"), "a.ko: b.ko\nb.ko: a.ko\n");
    common::write(
        &dir.path().join("modules.softdep"),
        "softdep a pre: b post: a\nsoftdep b pre: a\n",
    );
    let index = ModuleIndex::load(dir.path()).expect("index");
    let plan = index.load_plan("a").expect("plan");
    assert_eq!(plan.module_names(), ["b", "a"]);
}
