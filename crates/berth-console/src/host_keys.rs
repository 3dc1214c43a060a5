//! sshd's host keys, kept on the state partition: each one is checked with OpenSSH's own
//! `ssh-keygen -y` at every console start. A missing key is generated; a key that is empty,
//! unreadable or not a key (sshd would exit on it) is moved aside to `KEY.bad` and replaced
//! by a new one, generated under a temporary name and renamed into place.

use crate::ConsoleError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const HOST_KEY_TYPES: &[&str] = &["ed25519", "ecdsa", "rsa"];
/// The types that, when missing (the first boot, every boot from RAM), are generated at the
/// lowest CPU priority beside the rest of the console's preparation: a 3072-bit RSA key
/// takes about 2 s of an emulated CPU, which the boot needs for User Docker. sshd starts
/// once it exists, not before with a reload later: an sshd told to reload (SIGHUP) closes
/// its listening socket and starts itself anew, resetting the connections waiting on it.
pub const LATE_HOST_KEY_TYPES: &[&str] = &["rsa"];

/// Whether `dir` has no key of `key_type` at all.
pub fn missing(dir: &Path, key_type: &str) -> bool {
    std::fs::symlink_metadata(dir.join(format!("ssh_host_{key_type}_key"))).is_err()
}

/// What was done for one key type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyAction {
    /// There was none.
    Generated { key_type: String },
    /// The key was bad: why (ssh-keygen's words), and where the old file went.
    Replaced {
        key_type: String,
        reason: String,
        kept: PathBuf,
    },
    /// The key was fine, its `.pub` missing or different: written from the key.
    PublicRestored { key_type: String },
}

impl HostKeyAction {
    /// A line for the boot log and the banner.
    pub fn describe(&self) -> String {
        match self {
            HostKeyAction::Generated { key_type } => format!("generated the ssh host key {key_type}"),
            HostKeyAction::Replaced {
                key_type,
                reason,
                kept,
            } => format!(
                "the ssh host key {key_type} was unusable ({reason}); a new one was generated \
                 (the old file is {}); clients will see a new host key",
                kept.display()
            ),
            HostKeyAction::PublicRestored { key_type } => {
                format!("rewrote the public half of the ssh host key {key_type}")
            }
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ConsoleError {
    let what = what.into();
    move |e| ConsoleError::Io(what, e)
}

/// The public key of a private key file, or ssh-keygen's reason for refusing it.
fn public_key_of(key: &Path) -> Result<Result<String, String>, ConsoleError> {
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(key)
        .stdin(Stdio::null())
        .output()
        .map_err(io("running ssh-keygen -y"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !stdout.is_empty() {
        return Ok(Ok(stdout));
    }
    let reason = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let reason = if std::fs::metadata(key).is_ok_and(|m| m.len() == 0) {
        "the file is empty".to_string()
    } else if reason.is_empty() {
        format!("ssh-keygen -y exited with {}", out.status)
    } else {
        reason
    };
    Ok(Err(reason))
}

/// Generate a key of `key_type` at `path` (and `path.pub`): into a temporary name first,
/// renamed into place once complete.
fn generate(dir: &Path, key_type: &str, path: &Path, low_priority: bool) -> Result<(), ConsoleError> {
    let tmp = dir.join(format!(".ssh_host_{key_type}_key.new"));
    let tmp_pub = dir.join(format!(".ssh_host_{key_type}_key.new.pub"));
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(&tmp_pub);
    let keygen = |nice: bool| {
        let mut cmd = Command::new(if nice { "nice" } else { "ssh-keygen" });
        if nice {
            cmd.args(["-n", "19", "ssh-keygen"]);
        }
        cmd.args(["-q", "-N", "", "-C", "", "-t", key_type, "-f"])
            .arg(&tmp);
        if key_type == "rsa" {
            cmd.args(["-b", "3072"]);
        }
        cmd.stdin(Stdio::null()).output()
    };
    let out = match keygen(low_priority) {
        // coreutils' nice: a console without it generates at the normal priority.
        Err(e) if low_priority && e.kind() == std::io::ErrorKind::NotFound => keygen(false),
        other => other,
    }
    .map_err(io("running ssh-keygen"))?;
    if !out.status.success() {
        return Err(ConsoleError::Keygen(
            key_type.to_string(),
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }
    let public = path.with_file_name(format!("ssh_host_{key_type}_key.pub"));
    std::fs::rename(&tmp_pub, &public).map_err(io(format!("renaming into {}", public.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming into {}", path.display())))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Check every host key in `dir`, generating the missing ones and replacing the bad ones.
pub fn ensure_host_keys(dir: &Path) -> Result<Vec<HostKeyAction>, ConsoleError> {
    ensure_host_keys_of(dir, HOST_KEY_TYPES, false)
}

/// [`ensure_host_keys`] for the key types `types`; a key is generated at the lowest CPU
/// priority when `low_priority`.
pub fn ensure_host_keys_of(
    dir: &Path,
    types: &[&str],
    low_priority: bool,
) -> Result<Vec<HostKeyAction>, ConsoleError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let mut actions = Vec::new();
    for t in types {
        let key_type = t.to_string();
        let path = dir.join(format!("ssh_host_{t}_key"));
        let public = dir.join(format!("ssh_host_{t}_key.pub"));
        if std::fs::symlink_metadata(&path).is_err() {
            generate(dir, t, &path, low_priority)?;
            actions.push(HostKeyAction::Generated { key_type });
            continue;
        }
        match public_key_of(&path)? {
            Ok(derived) => {
                let written = std::fs::read_to_string(&public).unwrap_or_default();
                if written
                    .split_whitespace()
                    .take(2)
                    .ne(derived.split_whitespace().take(2))
                {
                    std::fs::write(&public, format!("{derived}\n"))
                        .map_err(io(format!("writing {}", public.display())))?;
                    actions.push(HostKeyAction::PublicRestored { key_type });
                }
            }
            Err(reason) => {
                let kept = dir.join(format!("ssh_host_{t}_key.bad"));
                std::fs::rename(&path, &kept).map_err(io(format!("moving {} aside", path.display())))?;
                let _ = std::fs::remove_file(&public);
                generate(dir, t, &path, low_priority)?;
                actions.push(HostKeyAction::Replaced {
                    key_type,
                    reason,
                    kept,
                });
            }
        }
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(path: &Path) -> bool {
        matches!(public_key_of(path), Ok(Ok(_)))
    }

    /// The late keys: made at the lowest priority, only the types asked for.
    #[test]
    fn keys_of_some_types_at_low_priority() {
        let dir = tempfile::tempdir().unwrap();
        assert!(missing(dir.path(), "ed25519"));
        let made = ensure_host_keys_of(dir.path(), &["ed25519"], true).unwrap();
        assert_eq!(
            made,
            [HostKeyAction::Generated {
                key_type: "ed25519".into()
            }]
        );
        assert!(accepted(&dir.path().join("ssh_host_ed25519_key")));
        assert!(!missing(dir.path(), "ed25519") && missing(dir.path(), "rsa"));
    }

    #[test]
    fn missing_empty_and_broken_keys_are_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("ssh");
        let first = ensure_host_keys(&d).unwrap();
        assert_eq!(first.len(), 3, "{first:?}");
        assert!(first.iter().all(|a| matches!(a, HostKeyAction::Generated { .. })));
        assert_eq!(ensure_host_keys(&d).unwrap(), [], "good keys are left alone");

        let ed = d.join("ssh_host_ed25519_key");
        let ecdsa = d.join("ssh_host_ecdsa_key");
        let rsa = d.join("ssh_host_rsa_key");
        let rsa_before = std::fs::read(&rsa).unwrap();
        std::fs::write(&ed, "").unwrap();
        std::fs::write(&ecdsa, "not a key\n").unwrap();
        std::fs::remove_file(d.join("ssh_host_rsa_key.pub")).unwrap();
        let second = ensure_host_keys(&d).unwrap();
        assert_eq!(second.len(), 3, "{second:?}");
        match &second[0] {
            HostKeyAction::Replaced {
                key_type,
                reason,
                kept,
            } => {
                assert_eq!(key_type, "ed25519");
                assert_eq!(reason, "the file is empty");
                assert_eq!(std::fs::read(kept).unwrap(), b"");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&second[1], HostKeyAction::Replaced { key_type, .. } if key_type == "ecdsa"));
        assert_eq!(
            second[2],
            HostKeyAction::PublicRestored {
                key_type: "rsa".into()
            }
        );
        assert!(
            second[0]
                .describe()
                .contains("ed25519 was unusable (the file is empty)")
        );
        for key in [&ed, &ecdsa, &rsa] {
            assert!(accepted(key), "{} is not accepted", key.display());
        }
        assert_eq!(
            std::fs::read(&rsa).unwrap(),
            rsa_before,
            "a good key was replaced"
        );
        let names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert_eq!(names, Vec::<String>::new(), "temporary files left behind");
    }
}
