//! The console phase against a temporary root with its own passwd, shadow and group files.
//! Commands run for real (`sh`), touching only the temporary directory.

use super::*;
use crate::report::ItemStatus;
use crate::save::SavedInstance;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyA a@laptop";
const KEY_B: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABKeyB b@desk";
const KEY_C: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyC from-meta-data";

/// chown to other users needs root; without it these tests say so and stop.
fn is_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: the console phase chowns files to other users, which needs root");
    }
    root
}

fn console_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir_all(etc.join("skel")).unwrap();
    std::fs::write(etc.join("skel/.profile"), "# skel\n").unwrap();
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\nberth:x:1000:1000:Berth:/home/berth:/bin/bash\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("shadow"),
        "root:*:19000:0:99999:7:::\nberth:*:19000:0:99999:7:::\n",
    )
    .unwrap();
    std::fs::set_permissions(etc.join("shadow"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\nsudo:x:27:\nberth:x:1000:\n").unwrap();
    std::fs::write(etc.join("appended"), "line1\n").unwrap();
    root
}

fn config(yaml: &str) -> Config {
    let diagnostics = berth_config::validate_text(yaml, "test.yml");
    assert!(!berth_config::has_errors(&diagnostics), "{diagnostics:#?}");
    let dir = tempfile::tempdir().unwrap();
    let paths = berth_config::ConfigPaths::under(dir.path());
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(paths.local(), yaml).unwrap();
    berth_config::load(&paths, &berth_config::KernelCmdline::default()).config
}

fn save_instance(ctx: &ConsoleContext, id: &str) {
    let saved = SavedInstance {
        datasource: "nocloud".into(),
        origin: "/dev/sr0".into(),
        saved_at: "2026-01-01T00:00:00Z".into(),
        instance_id: id.into(),
        meta_data: MetaData {
            instance_id: Some(id.into()),
            local_hostname: None,
            public_keys: vec![KEY_C.parse().unwrap()],
        },
        cloud_config_saved: true,
        scripts: vec!["01-hello.sh".into()],
    };
    std::fs::create_dir_all(&ctx.state.cloud_init).unwrap();
    std::fs::write(ctx.state.instance_record(), serde_json::to_vec(&saved).unwrap()).unwrap();
}

fn gzip_b64(text: &str) -> String {
    use base64::Engine as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(enc.finish().unwrap())
}

fn status(report: &Report, item: &str) -> ItemStatus {
    report
        .items
        .iter()
        .find(|i| i.item == item)
        .unwrap_or_else(|| panic!("no item {item}: {:#?}", report.items))
        .status
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let m = std::fs::metadata(path).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn users_keys_files_and_commands() {
    if !is_root() {
        return;
    }
    let tmp = console_root();
    let root = tmp.path();
    let ctx = ConsoleContext::new(root, "berth");
    save_instance(&ctx, "i-1");
    let scripts = ctx.state.scripts();
    std::fs::create_dir_all(&scripts).unwrap();
    let marks = root.join("marks");
    std::fs::write(
        scripts.join("01-hello.sh"),
        format!("#!/bin/sh\necho script >> {}\n", marks.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        scripts.join("01-hello.sh"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let yaml = format!(
        r#"#cloud-config
ssh_authorized_keys: ["{KEY_A}"]
users:
  - default
  - name: alice
    gecos: Alice
    groups: [docker, sudo]
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/sh
    ssh_authorized_keys: ["{KEY_B}"]
  - name: svc
    system: true
    hashed_passwd: $6$salt$hash
write_files:
  - path: /etc/motd.d/hello
    content: hi
    permissions: '0640'
    owner: alice:docker
  - path: /etc/b64
    encoding: b64
    content: aGVsbG8=
  - path: /etc/gz
    encoding: gz+b64
    content: {gz}
    permissions: '0600'
  - path: /etc/appended
    content: "line2\n"
    append: true
  - path: /etc/for-console
    content: c
    container: console
  - path: /etc/for-ntp
    content: n
    container: ntp
runcmd:
  - echo runcmd $INSTANCE_ID >> {marks}
  - [sh, -c, "echo argv >> {marks}"]
"#,
        gz = gzip_b64("zipped\n"),
        marks = marks.display()
    );
    let config = config(&yaml);
    let report = apply_console(&config, &ctx);
    assert!(!report.has_errors(), "{:#?}", report.diagnostics);
    assert_eq!(report.instance_id.as_deref(), Some("i-1"));

    // the login user: config keys and meta-data keys, in the managed block
    let ak = root.join("home/berth/.ssh/authorized_keys");
    let text = std::fs::read_to_string(&ak).unwrap();
    assert!(
        text.contains(KEY_A) && text.contains(KEY_C) && !text.contains(KEY_B),
        "{text}"
    );
    assert_eq!((mode(&ak), mode(ak.parent().unwrap())), (0o600, 0o700));
    assert_eq!(owner(&ak), (1000, 1000));
    assert_eq!(owner(ak.parent().unwrap()), (1000, 1000));

    // alice: created with her own group, supplementary groups, home from skel, keys, sudo
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains("alice:x:1001:1001:Alice:/home/alice:/bin/sh\n"),
        "{passwd}"
    );
    assert!(passwd.contains("svc:x:999:999::/home/svc:"), "{passwd}");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        group.contains("sudo:x:27:alice\n") && group.contains("alice:x:1001:\n"),
        "{group}"
    );
    assert!(group.contains("docker:x:1002:alice\n"), "{group}");
    let shadow = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
    assert!(shadow.contains("alice:*:"), "{shadow}");
    assert!(shadow.contains("svc:!$6$salt$hash:"), "locked: {shadow}");
    assert_eq!(mode(&root.join("etc/shadow")), 0o640, "mode kept");
    assert!(!root.join("home/svc").exists(), "system users get no home");
    let home = root.join("home/alice");
    assert_eq!((mode(&home), owner(&home)), (0o700, (1001, 1001)));
    assert_eq!(owner(&home.join(".profile")), (1001, 1001));
    let alice_keys = std::fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap();
    assert!(alice_keys.contains(KEY_B));
    let sudoers = root.join("etc/sudoers.d/90-cloud-init-users");
    assert_eq!(
        std::fs::read_to_string(&sudoers).unwrap().lines().last(),
        Some("alice ALL=(ALL) NOPASSWD:ALL")
    );
    assert_eq!(mode(&sudoers), 0o440);

    // write_files
    let motd = root.join("etc/motd.d/hello");
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "hi");
    assert_eq!((mode(&motd), owner(&motd)), (0o640, (1001, 1002)));
    assert_eq!(std::fs::read_to_string(root.join("etc/b64")).unwrap(), "hello");
    assert_eq!(mode(&root.join("etc/b64")), 0o644);
    assert_eq!(std::fs::read_to_string(root.join("etc/gz")).unwrap(), "zipped\n");
    assert_eq!(mode(&root.join("etc/gz")), 0o600);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/appended")).unwrap(),
        "line1\nline2\n"
    );
    assert!(root.join("etc/for-console").exists());
    assert!(!root.join("etc/for-ntp").exists());

    // runcmd and scripts ran once, with their logs
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        "runcmd i-1\nargv\nscript\n"
    );
    assert!(
        std::fs::read_to_string(root.join("var/log/boot/runcmd.log"))
            .unwrap()
            .contains("$ echo runcmd")
    );
    assert!(root.join("var/log/boot/scripts.log").exists());
    assert!(ctx.state.instance_dir("i-1").join("sem/runcmd").exists());

    // a second boot: everything idempotent, nothing runs again
    let report = apply_console(&config, &ctx);
    assert!(!report.has_errors(), "{:#?}", report.diagnostics);
    assert_eq!(status(&report, "runcmd"), ItemStatus::Skipped);
    assert_eq!(status(&report, "scripts"), ItemStatus::Skipped);
    assert_eq!(std::fs::read_to_string(&marks).unwrap().lines().count(), 3);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/appended")).unwrap(),
        "line1\nline2\n"
    );
    assert_eq!(std::fs::read_to_string(root.join("etc/passwd")).unwrap(), passwd);
    assert_eq!(std::fs::read_to_string(&ak).unwrap(), text);

    // a new instance: they run again
    save_instance(&ctx, "i-2");
    let report = apply_console(&config, &ctx);
    assert_eq!(status(&report, "runcmd[0]"), ItemStatus::Done);
    assert!(std::fs::read_to_string(&marks).unwrap().contains("runcmd i-2\n"));
}

#[test]
fn failures_are_reported_and_the_rest_goes_on() {
    if !is_root() {
        return;
    }
    let tmp = console_root();
    let root = tmp.path();
    let ctx = ConsoleContext::new(root, "nosuchuser");
    let marks = root.join("marks");
    let config = config(&format!(
        r#"#cloud-config
ssh_authorized_keys: ["{KEY_A}"]
users:
  - name: taken
    uid: 0
write_files:
  - path: /etc/bad-owner
    content: x
    owner: ghost
  - path: /etc/good
    content: ok
    owner: "1234:5678"
runcmd:
  - exit 7
  - echo still >> {}
"#,
        marks.display()
    ));
    let report = apply_console(&config, &ctx);
    assert!(report.has_errors());
    assert_eq!(status(&report, "users[0]"), ItemStatus::Failed);
    assert_eq!(status(&report, "ssh_authorized_keys"), ItemStatus::Failed);
    assert_eq!(status(&report, "write_files[0]"), ItemStatus::Failed);
    assert_eq!(status(&report, "write_files[1]"), ItemStatus::Done);
    assert_eq!(owner(&root.join("etc/good")), (1234, 5678));
    assert_eq!(status(&report, "runcmd[0]"), ItemStatus::Failed);
    assert_eq!(status(&report, "runcmd[1]"), ItemStatus::Done);
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "still\n");
    // without meta-data, the instance id comes from the user-data (here: none)
    assert!(report.instance_id.unwrap().starts_with("iid-"));
}

#[test]
fn without_account_files_numeric_owners_still_work() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ctx = ConsoleContext::new(tmp.path(), "berth");
    let config = config("write_files:\n  - path: /x\n    content: y\n    owner: '7:8'\n");
    let report = apply_console(&config, &ctx);
    assert_eq!(status(&report, "users"), ItemStatus::Failed);
    assert_eq!(status(&report, "write_files[0]"), ItemStatus::Done);
    assert_eq!(owner(&tmp.path().join("x")), (7, 8));
}

/// A user without sudo plants links in their home: at the next boot, root's pass over
/// `~/.ssh` and `write_files` changes nothing outside the home (issue #9, item 1).
#[test]
fn links_a_user_plants_change_nothing_outside_their_home() {
    if !is_root() {
        return;
    }
    let tmp = console_root();
    let root = tmp.path();
    std::fs::write(root.join("etc/victim"), "precious\n").unwrap();
    let mut passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    passwd.push_str("mallory:x:4242:4242::/home/mallory:/bin/sh\n");
    std::fs::write(root.join("etc/passwd"), passwd).unwrap();
    let home = root.join("home/mallory");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    for dir in [&home, &home.join(".ssh")] {
        std::os::unix::fs::chown(dir, Some(4242), Some(4242)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    // The temporary name root used to write through, and a directory write_files goes into.
    let guessed = home.join(format!(".ssh/.authorized_keys.tmp.{}", std::process::id()));
    std::os::unix::fs::symlink("../../../etc/victim", &guessed).unwrap();
    std::os::unix::fs::symlink(root.join("etc"), home.join("notes")).unwrap();
    std::os::unix::fs::symlink("../../etc/victim", home.join("motto")).unwrap();
    let ctx = ConsoleContext::new(root, "berth");
    let config = config(&format!(
        r#"#cloud-config
users:
  - name: mallory
    ssh_authorized_keys: ["{KEY_A}"]
write_files:
  - path: /home/mallory/notes/victim
    content: "appended by root\n"
    append: true
    permissions: "0666"
  - path: /home/mallory/motto
    content: "hello\n"
    owner: mallory
"#
    ));
    let report = prepare_console(&config, &ctx);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/victim")).unwrap(),
        "precious\n"
    );
    assert_eq!(mode(&root.join("etc/victim")), 0o644);
    assert_eq!(owner(&root.join("etc/victim")), (0, 0));
    assert_eq!(
        status(&report, "users.mallory.ssh_authorized_keys"),
        ItemStatus::Done
    );
    let keys = home.join(".ssh/authorized_keys");
    assert!(std::fs::symlink_metadata(&keys).unwrap().file_type().is_file());
    assert!(std::fs::read_to_string(&keys).unwrap().contains(KEY_A));
    assert_eq!(owner(&keys), (4242, 4242));
    // The link stays where it was, untouched.
    assert!(
        std::fs::symlink_metadata(&guessed)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(status(&report, "write_files[0]"), ItemStatus::Failed);
    // A link at the file's own name is replaced, not followed.
    assert_eq!(status(&report, "write_files[1]"), ItemStatus::Done);
    assert_eq!(std::fs::read_to_string(home.join("motto")).unwrap(), "hello\n");

    // authorized_keys made a link to root's file: not followed, replaced by the keys.
    std::fs::remove_file(&keys).unwrap();
    std::os::unix::fs::symlink(root.join("etc/victim"), &keys).unwrap();
    let report = prepare_console(&config, &ctx);
    assert_eq!(
        status(&report, "users.mallory.ssh_authorized_keys"),
        ItemStatus::Done
    );
    assert!(std::fs::symlink_metadata(&keys).unwrap().file_type().is_file());
    assert!(std::fs::read_to_string(&keys).unwrap().contains(KEY_A));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/victim")).unwrap(),
        "precious\n"
    );

    // A hard link to root's file: not read, not written.
    std::fs::remove_file(&keys).unwrap();
    std::fs::hard_link(root.join("etc/victim"), &keys).unwrap();
    let report = prepare_console(&config, &ctx);
    assert_eq!(
        status(&report, "users.mallory.ssh_authorized_keys"),
        ItemStatus::Failed
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/victim")).unwrap(),
        "precious\n"
    );
}

/// A RancherOS configuration: `rancher` is the login account under its RancherOS name, so
/// `/home/rancher`, `owner: rancher` and `ssh rancher@` work as its documentation says.
#[test]
fn a_rancher_configuration_makes_rancher_a_name_of_the_login_account() {
    if !is_root() {
        return;
    }
    let root = console_root();
    std::fs::write(
        root.path().join("etc/group"),
        "root:x:0:\nsudo:x:27:berth\ndocker:x:999:berth\nberth:x:1000:\n",
    )
    .unwrap();
    let ctx = ConsoleContext::new(root.path(), "berth");
    let config = config(
        "#cloud-config\nrancher:\n  ssh:\n    port: 22\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0mBbJ2f1W3CQk7i0e5Xg6nQ4e0m4m3x1Jm2v9mJ9s e2e\n\
         write_files:\n  - path: /home/rancher/owned\n    content: x\n    owner: rancher\n",
    );
    assert!(config.berth.compat.rancher_user);
    let report = apply_console(&config, &ctx);
    assert_eq!(
        status(&report, "berth.compat.rancher_user"),
        ItemStatus::Done,
        "{report:#?}"
    );
    assert_eq!(status(&report, "write_files[0]"), ItemStatus::Done, "{report:#?}");
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    assert!(passwd.contains("rancher:x:1000:1000:"), "{passwd}");
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    assert!(
        group.contains("sudo:x:27:berth,rancher") && group.contains("docker:x:999:berth,rancher"),
        "{group}"
    );
    let shadow = std::fs::read_to_string(root.path().join("etc/shadow")).unwrap();
    assert!(
        shadow.contains("rancher:*:"),
        "not locked, like berth's: {shadow}"
    );
    assert_eq!(
        std::fs::read_link(root.path().join("home/rancher")).unwrap(),
        Path::new("berth")
    );
    // The same file through both names, owned by the shared uid; the same keys.
    assert_eq!(owner(&root.path().join("home/berth/owned")), (1000, 0));
    assert!(root.path().join("home/rancher/.ssh/authorized_keys").exists());
    let sudoers = std::fs::read_to_string(root.path().join("etc/sudoers.d/90-cloud-init-users")).unwrap();
    assert!(
        sudoers.contains("rancher ALL=(ALL:ALL) NOPASSWD: ALL"),
        "{sudoers}"
    );

    // A Berth configuration gets no such name; a second run changes nothing.
    assert!(
        !self::config("#cloud-config\nhostname: h\n")
            .berth
            .compat
            .rancher_user
    );
    let again = apply_console(&config, &ctx);
    assert!(
        !again.items.iter().any(|i| i.item == "berth.compat.rancher_user"),
        "nothing to do the second time: {again:#?}"
    );
    let passwd2 = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    assert_eq!(
        passwd2.lines().filter(|l| l.starts_with("rancher:")).count(),
        1,
        "{passwd2}"
    );
}
