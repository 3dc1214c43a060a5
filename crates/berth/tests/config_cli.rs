//! `berth config` as a user runs it: the real binary over a root holding the real built-in
//! defaults (`os/defaults.yml`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

struct Root(tempfile::TempDir);

impl Root {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("usr/share/berth");
        std::fs::create_dir_all(&share).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../os/defaults.yml"),
            share.join("defaults.yml"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("var/lib/berth/conf")).unwrap();
        Root(dir)
    }

    fn berth(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .arg("--root")
            .arg(self.0.path())
            .args(["--cmdline", "console=ttyS0"])
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(!out.status.success(), "berth {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn local(&self) -> std::path::PathBuf {
        self.0.path().join("var/lib/berth/conf/cloud-config.yml")
    }
}

#[test]
fn get_reads_the_defaults_and_prints_scalars_bare() {
    let root = Root::new();
    assert_eq!(root.ok(&["config", "get", "berth.ssh.port"]), "22\n");
    assert_eq!(root.ok(&["config", "get", "berth.defaults.hostname"]), "berth\n");
    let json = root.ok(&["config", "get", "berth.state", "--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["dev"], "LABEL=BERTH_STATE");
}

#[test]
fn set_writes_a_validated_value_privately() {
    let root = Root::new();
    root.ok(&["config", "set", "hostname", "web-1"]);
    root.ok(&["config", "set", "berth.ssh.port", "2222"]);
    assert_eq!(root.ok(&["config", "get", "hostname"]), "web-1\n");
    assert_eq!(root.ok(&["config", "get", "berth.ssh.port"]), "2222\n");
    let mode = std::fs::metadata(root.local()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn set_refuses_bad_values_and_unknown_keys_and_writes_nothing() {
    let root = Root::new();
    let err = root.fails(&["config", "set", "berth.ssh.port", "seventy"]);
    assert!(err.contains("berth.ssh.port"), "{err}");
    let err = root.fails(&["config", "set", "hostname", "not a hostname!"]);
    assert!(err.contains("hostname"), "{err}");
    let err = root.fails(&["config", "set", "berth.ssh.prot", "22"]);
    assert!(err.contains("port"), "the closest key is not suggested: {err}");
    assert!(!root.local().exists(), "a refused set wrote the file");
}

#[test]
fn append_to_a_list() {
    let root = Root::new();
    root.ok(&["config", "set", "berth.modules", "[nbd]"]);
    root.ok(&["config", "set", "berth.modules+", "[zram]"]);
    let json = root.ok(&["config", "get", "berth.modules", "--format", "json"]);
    let modules: Vec<String> = serde_json::from_str(&json).unwrap();
    assert_eq!(modules, ["nbd", "zram"]);
}

#[test]
fn merge_and_export() {
    let root = Root::new();
    let input = root.0.path().join("extra.yml");
    std::fs::write(
        &input,
        "#cloud-config\nhostname: merged\nberth:\n  docker:\n    registry_mirrors: [\"https://mirror.local\"]\n",
    )
    .unwrap();
    root.ok(&["config", "merge", "-i", input.to_str().unwrap()]);
    assert_eq!(root.ok(&["config", "get", "hostname"]), "merged\n");
    let export = root.ok(&["config", "export"]);
    assert!(export.starts_with("#cloud-config\n"), "{export}");
    assert!(
        export.contains("merged") && export.contains("mirror.local"),
        "{export}"
    );
    assert!(
        !export.contains("shutdown_timeout"),
        "export without --full lists defaults:\n{export}"
    );
    let full = root.ok(&["config", "export", "--full"]);
    assert!(full.contains("shutdown_timeout"), "{full}");
}

#[test]
fn validate_names_file_line_and_column() {
    let root = Root::new();
    let bad = root.0.path().join("bad.yml");
    std::fs::write(&bad, "#cloud-config\nberth:\n  ssh:\n    port: [nope\n").unwrap();
    let err = root.fails(&["config", "validate", "-i", bad.to_str().unwrap()]);
    assert!(err.contains("bad.yml:4:"), "no line:column: {err}");
    let wrong = root.0.path().join("wrong.yml");
    std::fs::write(
        &wrong,
        "#cloud-config\nberth:\n  ssh:\n    port: 70000\n  sssh: {}\n",
    )
    .unwrap();
    let err = root.fails(&["config", "validate", "-i", wrong.to_str().unwrap()]);
    assert!(err.contains("berth.ssh.port"), "{err}");
    assert!(
        err.contains("sssh") && err.contains("ssh"),
        "unknown key without a suggestion: {err}"
    );
    let good = root.0.path().join("good.yml");
    std::fs::write(&good, "#cloud-config\nhostname: ok\n").unwrap();
    root.ok(&["config", "validate", "-i", good.to_str().unwrap()]);
    root.ok(&["config", "validate"]);
}

#[test]
fn help_lists_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for verb in ["get", "set", "merge", "export", "validate"] {
        assert!(text.contains(verb), "{verb} missing from --help:\n{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("version"));
}
