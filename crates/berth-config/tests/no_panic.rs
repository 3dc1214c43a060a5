//! Property tests: the parsers of untrusted input never panic, whatever they are given.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_config::{ConfigPaths, KernelCmdline, interpolate, load, validate_text};
use proptest::prelude::*;

/// Text that looks like a kernel command line, with the characters that matter to it.
fn cmdline_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("berth.".to_string()),
            Just("rancher.".to_string()),
            Just("cc.".to_string()),
            Just("=".to_string()),
            Just("\"".to_string()),
            Just("\\\"".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just(" ".to_string()),
            Just(".".to_string()),
            Just("+".to_string()),
            Just("{a: 1}".to_string()),
            "[a-z_0-9:/]{1,8}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// Text that looks like YAML, with the indicators that matter to it.
fn yaml_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("berth:".to_string()),
            Just("rancher:".to_string()),
            Just("\n".to_string()),
            Just("\n  ".to_string()),
            Just("- ".to_string()),
            Just(": ".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just(", ".to_string()),
            Just("&a ".to_string()),
            Just("*a".to_string()),
            Just("<<: ".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("#".to_string()),
            Just("+: ".to_string()),
            Just("~".to_string()),
            Just("services:".to_string()),
            Just("ssh:".to_string()),
            Just("port".to_string()),
            Just("image".to_string()),
            Just("write_files".to_string()),
            Just("hostname".to_string()),
            "[a-z0-9./_-]{1,10}",
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn cmdline_never_panics(s in any::<String>()) {
        let c = KernelCmdline::parse(&s);
        let _ = c.config_layer();
        let _ = c.get("console");
    }

    #[test]
    fn cmdline_like_never_panics(s in cmdline_like()) {
        let c = KernelCmdline::parse(&s);
        let (tree, _) = c.config_layer();
        prop_assert!(tree.is_object());
    }

    #[test]
    fn yaml_never_panics(s in any::<String>()) {
        let _ = validate_text(&s, "x.yml");
    }

    #[test]
    fn yaml_like_never_panics(s in yaml_like()) {
        let _ = validate_text(&s, "x.yml");
        let _ = validate_text(&format!("berth:\n  {s}"), "x.yml");
    }

    #[test]
    fn interpolation_never_panics(s in any::<String>(), t in "[${}:a-zA-Z_0-9-]{0,40}") {
        let lookup = |name: &str| (name == "A").then(|| "x".to_string());
        let _ = interpolate(&s, &lookup);
        let _ = interpolate(&t, &lookup);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the files hold, loading gives a configuration.
    #[test]
    fn load_never_panics(user_data in yaml_like(), local in yaml_like(), cmdline in cmdline_like()) {
        let root = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::under(root.path());
        std::fs::create_dir_all(&paths.conf_dir).unwrap();
        std::fs::write(paths.user_data(), user_data).unwrap();
        std::fs::write(paths.local(), local).unwrap();
        let loaded = load(&paths, &KernelCmdline::parse(&cmdline));
        prop_assert!(loaded.tree.is_object());
    }
}
