//! The console phase's files: `/etc/passwd`, `/etc/group`, `/etc/shadow` and the login
//! user's `authorized_keys`, read and written back by the real console code under a
//! scratch root (through the public `prepare_console`, as `berth console-init` calls it).

use crate::mutate::word;
use crate::{split_parts, text};
use berth_cloudinit::{ConsoleContext, prepare_console};
use berth_config::Config;
use fastrand::Rng;
use std::path::Path;

const LOGIN: &str = "berth";
const LOGIN_LINE: &str = "berth:x:1000:1000::/home/berth:/bin/sh";
const BEGIN: &str = "# BEGIN berth cloud-init";

pub const DICT: &[&str] = &[
    ":",
    "::",
    "\n",
    "x",
    "!",
    "*",
    "$6$salt$hash",
    "0",
    "1000",
    "65534",
    "4294967296",
    "-1",
    "+1",
    "01",
    ",",
    "root",
    "berth",
    "docker",
    "sudo",
    "#",
    "/home/berth",
    "/bin/sh",
    "# BEGIN berth cloud-init: keys from the configuration, replaced at every boot\n",
    "# END berth cloud-init\n",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAbc fuzz\n",
    "\0",
];

/// passwd NUL group NUL shadow NUL authorized_keys NUL keys (one per line).
pub fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    let mut shadow = String::from("root:*:19000:0:99999:7:::\n");
    for i in 0..rng.usize(..5) {
        let name = word(rng);
        passwd.push_str(&format!(
            "{name}:x:{}:{}:{}:/home/{name}:/bin/sh\n",
            1001 + i,
            1001 + i,
            word(rng)
        ));
        group.push_str(&format!("{name}:x:{}:{},{}\n", 1001 + i, word(rng), word(rng)));
        shadow.push_str(&format!("{name}:!:19000::::::\n"));
    }
    group.push_str("docker:x:999:\n");
    let keys = format!(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} {}\nssh-rsa AAAAB3NzaC1yc2E{}\n",
        word(rng),
        word(rng),
        word(rng)
    );
    let existing = if rng.bool() {
        format!(
            "ssh-ed25519 AAAAhand{} by-hand\n{BEGIN}: old\nssh-rsa AAAAold\n# END berth cloud-init\n",
            word(rng)
        )
    } else {
        String::new()
    };
    format!("{passwd}\0{group}\0{shadow}\0{existing}\0{keys}").into_bytes()
}

fn write(root: &Path, path: &str, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let full = root.join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(&full, bytes).map_err(|e| format!("{}: {e}", full.display()))?;
    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_default()
}

/// Lines of `before` that must still be in `after`, in order: the account files are
/// changed one entry at a time and lines the code does not own are kept as they were.
fn kept_in_order(file: &str, before: &str, after: &str, owned: impl Fn(&str) -> bool) -> Result<(), String> {
    // A CRLF file comes back with LF endings (the files are read line by line): a line
    // counts as kept when it is the same up to a trailing '\r'.
    let mut rest = after.split_terminator('\n').map(|l| l.trim_end_matches('\r'));
    for line in before.split_terminator('\n').filter(|l| !owned(l)) {
        let line = line.trim_end_matches('\r');
        if !rest.any(|l| l == line) {
            return Err(format!(
                "{file}: the line {line:?} was changed or lost (file now {after:?})"
            ));
        }
    }
    Ok(())
}

/// Account files: adding a user to a file with arbitrary lines keeps every other line as it
/// was. `authorized_keys`: every configured key is in the file once, lines outside the
/// managed block stay, and a second run changes nothing.
pub fn check(input: &[u8]) -> Result<(), String> {
    let parts = split_parts(input, 5);
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let root = dir.path();
    let passwd = format!("{}\n{LOGIN_LINE}\n", text(parts[0]).trim_end_matches('\n'));
    let group = text(parts[1]);
    let shadow = text(parts[2]);
    let existing = text(parts[3]);
    write(root, "etc/passwd", passwd.as_bytes(), 0o644)?;
    write(root, "etc/group", group.as_bytes(), 0o644)?;
    write(root, "etc/shadow", shadow.as_bytes(), 0o640)?;
    write(
        root,
        "home/berth/.ssh/authorized_keys",
        existing.as_bytes(),
        0o600,
    )?;
    // The login user owns their home, as on a machine: root writes keys only into a file
    // the user owns.
    for owned in ["home/berth", "home/berth/.ssh", "home/berth/.ssh/authorized_keys"] {
        std::os::unix::fs::chown(root.join(owned), Some(1000), Some(1000))
            .map_err(|e| format!("chown {owned}: {e}"))?;
    }
    let keys: Vec<String> = text(parts[4])
        .lines()
        .filter(|l| l.parse::<berth_config::schema::values::SshPublicKey>().is_ok())
        .map(str::to_string)
        .collect();
    let config: Config = serde_json::from_value(serde_json::json!({
        "ssh_authorized_keys": keys,
        "users": [{"name": "fuzzadded", "groups": ["docker"]}],
    }))
    .map_err(|e| format!("the fuzz configuration does not deserialize: {e}"))?;
    let ctx = ConsoleContext::new(root, LOGIN);
    let _ = prepare_console(&config, &ctx);
    let named =
        |names: &'static [&'static str]| move |l: &str| names.iter().any(|n| l.split(':').next() == Some(*n));
    const USER_OWNED: &[&str] = &["fuzzadded", LOGIN];
    const GROUP_OWNED: &[&str] = &["fuzzadded", "docker", LOGIN];
    for (file, before, owned) in [
        ("etc/passwd", &passwd, USER_OWNED),
        ("etc/group", &group, GROUP_OWNED),
        ("etc/shadow", &shadow, USER_OWNED),
    ] {
        kept_in_order(file, before, &read(root, file), named(owned))?;
    }

    let file = "home/berth/.ssh/authorized_keys";
    let first = read(root, file);
    for key in &keys {
        let key = key.trim();
        if !first.lines().any(|l| l.trim() == key) {
            return Err(format!(
                "authorized_keys lacks the configured key {key:?}: {first:?}"
            ));
        }
    }
    // Without a managed block yet, every line a user wrote stays.
    if !existing.contains(BEGIN) && !existing.contains("# END berth cloud-init") {
        kept_in_order("authorized_keys", &existing, &first, |l| l.trim().is_empty())?;
    }
    let _ = prepare_console(&config, &ctx);
    let second = read(root, file);
    if second != first {
        return Err(format!(
            "authorized_keys changed on a second run: {first:?} then {second:?}"
        ));
    }
    Ok(())
}
