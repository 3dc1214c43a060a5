//! `~/.ssh/authorized_keys`: the keys from the configuration and the meta-data, kept in a
//! marked block that is rewritten at every boot. Lines outside the block (keys a user added
//! by hand) are left alone; a key removed from the configuration goes away.

use super::accounts::PasswdEntry;
use crate::beneath::Dir;
use crate::error::{Error, Result};
use berth_config::schema::values::SshPublicKey;
use std::ffi::OsStr;
use std::path::Path;

pub(crate) const BEGIN: &str =
    "# BEGIN berth cloud-init: keys from the configuration, replaced at every boot";
pub(crate) const END: &str = "# END berth cloud-init";

/// A larger `authorized_keys` is not read (nor rewritten).
const LIMIT: u64 = 1 << 20;

/// Write the user's managed keys. Returns what was done.
///
/// The user owns `~/.ssh` and may have planted links or hard links there: nothing is
/// followed (see [`crate::beneath`]), a link at `authorized_keys` is replaced by the file,
/// an `authorized_keys` the user does not own is left alone, and the new file replaces the
/// old one through a random temporary name.
pub(crate) fn write_authorized_keys(
    root: &Path,
    user: &PasswdEntry,
    keys: &[SshPublicKey],
) -> Result<String> {
    let home_path = Path::new(&user.home);
    let file = home_path.join(".ssh/authorized_keys");
    let io = |e| Error::io(&file, e);
    let ssh_name = OsStr::new(".ssh");
    let name = OsStr::new("authorized_keys");
    let home = match Dir::open(root, home_path, None) {
        Ok(home) => Some(home),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let existing = match &home {
        Some(home) if home.has_subdir(ssh_name).map_err(io)? => {
            let ssh = home.subdir(ssh_name, None, None).map_err(io)?;
            // A link the user put there is not read; the new file replaces it.
            let found = if ssh.is_symlink(name).map_err(io)? {
                None
            } else {
                ssh.read(name, LIMIT).map_err(io)?
            };
            match found {
                Some(found) if found.uid != user.uid => {
                    return Err(Error::Other(format!(
                        "{} belongs to uid {}, not to {}; not read or written",
                        file.display(),
                        found.uid,
                        user.name
                    )));
                }
                Some(found) => String::from_utf8(found.bytes).map_err(|_| {
                    Error::Other(format!("{} is not UTF-8 text; not written", file.display()))
                })?,
                None => String::new(),
            }
        }
        _ => String::new(),
    };
    let text = render(&existing, keys);
    if text == existing {
        return Ok(format!("{} unchanged ({} keys)", file.display(), keys.len()));
    }
    let home = match home {
        Some(home) => home,
        None => {
            super::users::ensure_home(root, user)?;
            Dir::open(root, home_path, None).map_err(io)?
        }
    };
    let owner = Some((user.uid, user.gid));
    let ssh = home.subdir(ssh_name, Some(0o700), owner).map_err(io)?;
    ssh.replace(name, text.as_bytes(), 0o600, owner).map_err(io)?;
    Ok(format!("{} keys in {}", keys.len(), file.display()))
}

/// The file with its managed block replaced by `keys` (appended at the end when there was
/// none; removed when `keys` is empty).
pub(crate) fn render(existing: &str, keys: &[SshPublicKey]) -> String {
    let mut outside: Vec<&str> = Vec::new();
    let mut in_block = false;
    // Split on `\n` only: a `\r` a user's editor left stays part of its line, so a second
    // run writes back what the first wrote (`str::lines` would eat one `\r` per run).
    for line in existing.split_terminator('\n') {
        match line.trim_end() {
            l if l == BEGIN => in_block = true,
            l if l == END => in_block = false,
            _ if in_block => {}
            _ => outside.push(line),
        }
    }
    while outside.last().is_some_and(|l| l.trim().is_empty()) {
        outside.pop();
    }
    let mut text = String::new();
    for line in &outside {
        text.push_str(line);
        text.push('\n');
    }
    let mut seen = Vec::new();
    let keys: Vec<&SshPublicKey> = keys
        .iter()
        .filter(|k| {
            let new = !seen.contains(k) && !outside.iter().any(|l| l.trim() == k.as_str());
            seen.push(*k);
            new
        })
        .collect();
    if !keys.is_empty() {
        text.push_str(BEGIN);
        text.push('\n');
        for key in keys {
            text.push_str(key.as_str());
            text.push('\n');
        }
        text.push_str(END);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SshPublicKey {
        s.parse().unwrap()
    }

    #[test]
    fn carriage_returns_are_kept_and_a_second_run_changes_nothing() {
        let k = key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGcr cr");
        for existing in ["mine\r\n", "mine\r\r\n", "a\r\nb\n\r\n"] {
            let once = render(existing, std::slice::from_ref(&k));
            assert!(
                once.starts_with(existing.trim_end_matches(['\r', '\n'])),
                "{once:?}"
            );
            assert_eq!(render(&once, std::slice::from_ref(&k)), once, "{existing:?}");
            assert_eq!(render(&render(existing, &[]), &[]), render(existing, &[]));
        }
    }

    #[test]
    fn managed_block() {
        let a = key("ssh-ed25519 AAAAC3Nza a@x");
        let b = key("ssh-rsa AAAAB3Nza b@y");
        let first = render("", &[a.clone(), b.clone(), a.clone()]);
        assert_eq!(first, format!("{BEGIN}\n{}\n{}\n{END}\n", a.as_str(), b.as_str()));
        let by_hand = format!("ssh-ed25519 AAAAhand me@home\n{first}");
        // b removed from the configuration; the hand-added key stays
        let next = render(&by_hand, std::slice::from_ref(&a));
        assert_eq!(
            next,
            format!("ssh-ed25519 AAAAhand me@home\n{BEGIN}\n{}\n{END}\n", a.as_str())
        );
        assert_eq!(render(&next, &[]), "ssh-ed25519 AAAAhand me@home\n");
        // a key already present by hand is not repeated
        assert_eq!(render("ssh-rsa AAAAB3Nza b@y\n", &[b]), "ssh-rsa AAAAB3Nza b@y\n");
    }
}
