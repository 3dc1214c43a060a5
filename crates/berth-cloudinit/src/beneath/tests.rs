//! Links and hard links planted in a directory a user owns, against real files in a
//! temporary root. chown to another user needs root: without it the tests say so and stop.

use super::*;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};

const ALICE: u32 = 4242;

fn is_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: giving a directory to another user needs root");
    }
    root
}

/// A root with `/etc/victim` (root's) and `/home/alice` (alice's, 0700).
fn machine() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/victim"), "precious\n").unwrap();
    std::fs::create_dir_all(r.join("home/alice")).unwrap();
    std::os::unix::fs::chown(r.join("home/alice"), Some(ALICE), Some(ALICE)).unwrap();
    std::fs::set_permissions(r.join("home/alice"), std::fs::Permissions::from_mode(0o700)).unwrap();
    root
}

fn victim(root: &Path) -> String {
    std::fs::read_to_string(root.join("etc/victim")).unwrap()
}

fn refused(r: io::Result<impl std::fmt::Debug>, what: &str) -> String {
    match r {
        Ok(v) => panic!("{what}: not refused ({v:?})"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn links_planted_by_a_user_are_not_followed() {
    if !is_root() {
        return;
    }
    let root = machine();
    let r = root.path();
    let alice = Some((ALICE, ALICE));
    let home = Dir::open(r, Path::new("/home/alice"), None).unwrap();
    assert!(!home.trusted, "alice's home is hers");

    // ~/.ssh is a link to /etc: not entered, not created through.
    symlink(r.join("etc"), r.join("home/alice/.ssh")).unwrap();
    let e = refused(home.subdir(OsStr::new(".ssh"), Some(0o700), alice), ".ssh link");
    assert!(e.contains("symbolic link"), "{e}");
    assert!(refused(home.has_subdir(OsStr::new(".ssh")), "has_subdir").contains("symbolic link"));
    let e = refused(
        Dir::open(r, Path::new("/home/alice/.ssh/x"), Some(0o755)),
        "a path through the link",
    );
    assert!(e.contains("symbolic link"), "{e}");
    assert!(!r.join("etc/x").exists());

    // ~/.ssh/authorized_keys is a link to /etc/victim: replaced as a name, never followed.
    std::fs::remove_file(r.join("home/alice/.ssh")).unwrap();
    let ssh = home.subdir(OsStr::new(".ssh"), Some(0o700), alice).unwrap();
    let meta = std::fs::metadata(r.join("home/alice/.ssh")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (ALICE, 0o700));
    symlink("../../../etc/victim", r.join("home/alice/.ssh/authorized_keys")).unwrap();
    let name = OsStr::new("authorized_keys");
    assert!(refused(ssh.read(name, 1024).map(|_| ()), "read through the link").contains("symbolic link"));
    ssh.replace(name, b"ssh-ed25519 AAAA k\n", 0o600, alice).unwrap();
    assert_eq!(victim(r), "precious\n");
    let keys = r.join("home/alice/.ssh/authorized_keys");
    let meta = std::fs::symlink_metadata(&keys).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (ALICE, ALICE, 0o600)
    );
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), "ssh-ed25519 AAAA k\n");
    let found = ssh.read(name, 1024).unwrap().unwrap();
    assert_eq!(found.uid, ALICE);

    // Appending through a link, or to a hard link of root's file, is refused.
    symlink(r.join("etc/victim"), r.join("home/alice/.ssh/linked")).unwrap();
    let e = refused(
        ssh.append(OsStr::new("linked"), b"x\n", 0o644, None, 1024),
        "append via link",
    );
    assert!(e.contains("symbolic link"), "{e}");
    std::fs::hard_link(r.join("etc/victim"), r.join("home/alice/.ssh/hard")).unwrap();
    let e = refused(
        ssh.append(OsStr::new("hard"), b"x\n", 0o644, alice, 1024),
        "append to a hard link",
    );
    assert!(e.contains("hard links"), "{e}");
    let e = refused(ssh.read(OsStr::new("hard"), 1024).map(|_| ()), "read a hard link");
    assert!(e.contains("hard links"), "{e}");
    assert_eq!(victim(r), "precious\n");
    let meta = std::fs::metadata(r.join("etc/victim")).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (0, 0o644),
        "the victim's owner or mode changed"
    );

    // Names are single components.
    assert!(ssh.replace(OsStr::new("../x"), b"", 0o600, None).is_err());
    assert!(ssh.replace(OsStr::new(".."), b"", 0o600, None).is_err());
    assert!(Dir::open(r, Path::new("/home/../etc"), None).is_err());
}

#[test]
fn links_in_the_writers_own_directories_are_followed_within_the_root() {
    if !is_root() {
        return;
    }
    let root = machine();
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    symlink("usr/bin", r.join("bin")).unwrap();
    // An absolute link means the same path under the root, not on the machine running this.
    symlink("/usr/bin", r.join("abs")).unwrap();
    let dir = Dir::open(r, Path::new("/bin/new/deeper"), Some(0o755)).unwrap();
    assert!(dir.trusted);
    dir.replace(OsStr::new("tool"), b"#!/bin/sh\n", 0o755, None)
        .unwrap();
    assert!(r.join("usr/bin/new/deeper/tool").is_file());
    let abs = Dir::open(r, Path::new("/abs/new"), None).unwrap();
    assert!(abs.read(OsStr::new("tool"), 10).unwrap().is_none());
    assert!(abs.has_subdir(OsStr::new("deeper")).unwrap());

    // Appending: created with the mode, not repeated, the owner set on the descriptor.
    let etc = Dir::open(r, Path::new("/etc"), None).unwrap();
    assert!(
        etc.append(OsStr::new("log"), b"one\n", 0o640, Some((ALICE, 0)), 1024)
            .unwrap()
    );
    assert!(
        !etc.append(OsStr::new("log"), b"one\n", 0o640, Some((ALICE, 0)), 1024)
            .unwrap()
    );
    assert!(
        etc.append(OsStr::new("log"), b"two\n", 0o640, Some((ALICE, 0)), 1024)
            .unwrap()
    );
    assert_eq!(std::fs::read_to_string(r.join("etc/log")).unwrap(), "one\ntwo\n");
    let meta = std::fs::metadata(r.join("etc/log")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (ALICE, 0o640));
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(r.join("usr/bin/new/deeper"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["tool"]);
}
