//! Local attacks on a booted machine (issue #9, items 1, 4 and 9): a user without sudo plants
//! links where root writes at every boot, an ssh host key is emptied, an account has an
//! empty password. One machine with a state disk, one reboot.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use common::{BOOT, check, env, poweroff, reboot};

/// Root's files the planted links point at: their content, owner and mode.
const PRECIOUS: &str = "sudo sh -c 'cd /var/lib/berth/precious && for f in *; do \
                        printf \"%s %s \" \"$f\" \"$(stat -c %U:%G:%a \"$f\")\"; sha256sum < \"$f\"; done'";

#[test]
fn vm_security_planted_links_bad_host_key_empty_password() {
    let env = env("security");
    let state = env.ext4_disk("state.img", 2048, "BERTH_STATE");
    let user_data = env.user_data(
        "berth-security",
        &format!(
            "users:\n  - default\n  - name: mallory\n    ssh_authorized_keys: [\"{key}\"]\n  \
             - name: emptypw\n    passwd: \"\"\n    lock_passwd: false\n\
             write_files:\n  - path: /home/mallory/notes/extra\n    content: \"from the seed\\n\"\n    \
             append: true\n    owner: mallory\n",
            key = env.public_key
        ),
    );
    let mut vm = env.kernel_vm("");
    vm.disks.push(state);
    vm.cidata = Some(env.cidata(&user_data));
    let m = env.start("security", vm);
    check(&m, "ssh", m.wait_ssh(BOOT));

    // Boot 1: mallory (no sudo) logs in with her key; the seed wrote into her home.
    let who = check(
        &m,
        "ssh as mallory",
        m.run_as("mallory", "id -nG; cat ~/notes/extra"),
    );
    assert!(!who.contains("sudo") && who.contains("from the seed"), "{who}");
    let denied = check(&m, "mallory's sudo", m.ssh_as("mallory", "sudo -n true"));
    assert!(!denied.status.success(), "mallory can sudo");
    // The RSA host key of a first boot is made at a low priority, and sshd starts once it is
    // there (no reload later, which would reset the connections waiting): it serves it now.
    let rsa = check(
        &m,
        "the RSA host key of the first boot",
        m.run("ssh-keyscan -t rsa 127.0.0.1 2>/dev/null | grep ssh-rsa"),
    );

    // Root's files on the state disk that the links will point at.
    check(
        &m,
        "root's files",
        m.run(
            "sudo sh -c 'mkdir -p /var/lib/berth/precious && cd /var/lib/berth/precious && \
             for f in keys extra tmp; do echo root-owned-$f > $f; chmod 0640 $f; done'",
        ),
    );
    let before = check(&m, "hashes before", m.run(PRECIOUS));
    assert_eq!(before.lines().count(), 3, "{before}");

    // mallory plants links: authorized_keys -> root's file, the temporary names root
    // used to write through (console-init's pid is small), and her write_files directory.
    check(
        &m,
        "plant links",
        m.run_as(
            "mallory",
            "set -e; cd ~/.ssh; \
             ln -sf /var/lib/berth/precious/keys authorized_keys; \
             for i in $(seq 1 400); do ln -s /var/lib/berth/precious/tmp .authorized_keys.tmp.$i; done; \
             cd ~; mv notes notes.old; ln -s /var/lib/berth/precious notes; ls -la ~ ~/.ssh | head -8",
        ),
    );
    // root empties a host key (a disk that filled up, a crash while it was written).
    check(
        &m,
        "empty the host key",
        m.run("sudo truncate -s 0 /var/lib/berth/ssh/ssh_host_ed25519_key"),
    );
    let shadow = check(&m, "emptypw's hash", m.run("sudo grep '^emptypw:' /etc/shadow"));
    assert!(
        shadow.starts_with("emptypw::"),
        "the password is not empty: {shadow}"
    );

    reboot(&m);

    // Boot 2: the RSA host key was kept, and sshd serves it from its start.
    let rsa_again = check(
        &m,
        "the kept RSA host key",
        m.run("ssh-keyscan -t rsa 127.0.0.1 2>/dev/null | grep ssh-rsa"),
    );
    assert_eq!(
        rsa_again.trim(),
        rsa.trim(),
        "the RSA host key changed at the reboot"
    );

    // Boot 2: nothing of root's changed, mallory's keys still work.
    let after = check(&m, "hashes after", m.run(PRECIOUS));
    assert_eq!(after, before, "a file of root's changed through a planted link");
    let keys = check(
        &m,
        "mallory after the reboot",
        m.run_as(
            "mallory",
            "test ! -L ~/.ssh/authorized_keys && test -L ~/notes && stat -c %U ~/.ssh/authorized_keys",
        ),
    );
    assert_eq!(keys.trim(), "mallory");
    let issue = check(&m, "banner", m.run("cat /etc/issue"));
    assert!(
        issue.contains("write_files[0]") && issue.contains("symbolic link"),
        "the refused write_files entry is not on the banner:\n{issue}"
    );

    // The kernel's own link protections are on (Berth's defaults set them; no systemd does).
    let protected = check(
        &m,
        "link protections",
        m.run("cat /proc/sys/fs/protected_symlinks /proc/sys/fs/protected_hardlinks /proc/sys/fs/protected_fifos /proc/sys/fs/protected_regular"),
    );
    assert_eq!(
        protected.split_whitespace().collect::<Vec<_>>(),
        ["1", "1", "1", "2"]
    );

    // The emptied host key was replaced, is accepted, and sshd answers with it.
    let key = check(
        &m,
        "host key",
        m.run(
            "sudo ssh-keygen -y -f /var/lib/berth/ssh/ssh_host_ed25519_key && \
             sudo test -f /var/lib/berth/ssh/ssh_host_ed25519_key.bad && \
             sudo cat /var/lib/berth/ssh/ssh_host_ed25519_key.pub",
        ),
    );
    let mut lines = key.lines();
    let derived = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>();
    let public = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>();
    assert!(
        derived.first() == Some(&"ssh-ed25519") && derived == public,
        "{key}"
    );
    let scanned = std::process::Command::new("ssh-keyscan")
        .args([
            "-T",
            "20",
            "-t",
            "ed25519",
            "-p",
            &m.ssh_port.to_string(),
            "127.0.0.1",
        ])
        .output()
        .expect("ssh-keyscan");
    let scanned = String::from_utf8_lossy(&scanned.stdout);
    assert!(
        scanned.contains(derived[1]),
        "sshd does not offer the new ed25519 key: {scanned}"
    );
    assert!(
        issue.contains("ssh host key ed25519 was unusable"),
        "the replaced host key is not on the banner:\n{issue}"
    );

    // An empty password is no password: su to that account fails (PAM has no nullok).
    let su = check(&m, "su emptypw", m.ssh("su -c true emptypw </dev/null"));
    let said = String::from_utf8_lossy(&su.stderr);
    assert!(
        !su.status.success(),
        "su to an account with an empty password worked"
    );
    assert!(said.contains("Authentication failure"), "su said: {said}");

    poweroff(&m);
}
