//! cloud-config `users:`: accounts created or changed in the console's account files, their
//! groups, home directories and sudo rules. `default` is the login user (`berth`), not an
//! account called "default".

use super::accounts::{Accounts, PasswdEntry, chown};
use crate::error::{Error, Result};
use berth_config::schema::cloud::UserSpec;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

/// The name cloud-init uses for "the distribution's login user".
pub(crate) const DEFAULT_USER: &str = "default";

/// What changed for one `users:` entry.
pub(crate) struct UserOutcome {
    pub name: String,
    pub detail: String,
    pub warnings: Vec<String>,
}

/// Create or update the account for `spec` (`name` is the account name, the login user for
/// `default`).
pub(crate) fn apply_user(
    accounts: &mut Accounts,
    spec: &UserSpec,
    name: &str,
    root: &Path,
) -> Result<UserOutcome> {
    let mut warnings = Vec::new();
    let mut done = Vec::new();
    let existing = accounts.user(name).cloned();
    let entry = match existing {
        Some(mut entry) => {
            if let Some(uid) = spec.uid
                && uid != entry.uid
            {
                warnings.push(format!(
                    "{name} exists with uid {}; the uid {uid} asked for is not applied",
                    entry.uid
                ));
            }
            let mut changed = false;
            if let Some(group) = &spec.primary_group {
                entry.gid = accounts.ensure_group(group.as_str(), None, spec.system)?;
                changed = true;
            }
            for (field, value) in [
                (&mut entry.gecos, spec.gecos.as_ref().map(|v| v.as_str())),
                (&mut entry.shell, spec.shell.as_ref().map(|v| v.as_str())),
                (&mut entry.home, spec.homedir.as_ref().map(|v| v.as_str())),
            ] {
                if let Some(v) = value
                    && field != v
                {
                    *field = v.to_string();
                    changed = true;
                }
            }
            if changed {
                accounts.update_user(entry.clone());
                done.push("updated".to_string());
            }
            entry
        }
        None => {
            let entry = create(accounts, spec, name, root)?;
            done.push(format!("created (uid {}, gid {})", entry.uid, entry.gid));
            entry
        }
    };
    for group in &spec.groups {
        accounts.ensure_group(group.as_str(), None, false)?;
        accounts.add_member(group.as_str(), name);
    }
    if !spec.groups.is_empty() {
        let names: Vec<&str> = spec.groups.iter().map(|g| g.as_str()).collect();
        done.push(format!("groups {}", names.join(",")));
    }
    if let Some(hash) = password_hash(accounts, spec, name)
        && let Err(e) = accounts.set_shadow_hash(name, &hash)
    {
        warnings.push(e.to_string());
    }
    if !(spec.system && spec.homedir.is_none()) {
        ensure_home(root, &entry)?;
    }
    Ok(UserOutcome {
        name: name.to_string(),
        detail: if done.is_empty() {
            "unchanged".to_string()
        } else {
            done.join(", ")
        },
        warnings,
    })
}

fn create(accounts: &mut Accounts, spec: &UserSpec, name: &str, root: &Path) -> Result<PasswdEntry> {
    let uid = match spec.uid {
        Some(uid) if accounts.uid_is_free(uid) => uid,
        Some(uid) => {
            return Err(Error::Other(format!(
                "cannot create {name}: the uid {uid} is taken"
            )));
        }
        None => accounts
            .free_id(spec.system, false)
            .ok_or_else(|| Error::Other(format!("no free uid for {name}")))?,
    };
    let group_name = spec.primary_group.as_ref().map_or(name, |g| g.as_str());
    let gid = accounts.ensure_group(group_name, Some(uid), spec.system)?;
    let shell = spec.shell.as_ref().map(|s| s.to_string()).unwrap_or_else(|| {
        if root.join("bin/bash").exists() || root.join("usr/bin/bash").exists() {
            "/bin/bash".to_string()
        } else {
            "/bin/sh".to_string()
        }
    });
    let entry = PasswdEntry {
        name: name.to_string(),
        password: "x".to_string(),
        uid,
        gid,
        gecos: spec.gecos.as_ref().map(|g| g.to_string()).unwrap_or_default(),
        home: spec
            .homedir
            .as_ref()
            .map_or_else(|| format!("/home/{name}"), |h| h.to_string()),
        shell,
    };
    // No password: key-only login. ("*" rather than "!": sshd without PAM refuses "!".)
    let hash = spec
        .hashed_passwd
        .as_deref()
        .or(spec.passwd.as_deref())
        .map(|h| locked(h, spec.lock_passwd))
        .unwrap_or_else(|| "*".to_string());
    accounts.add_user(entry.clone(), &hash);
    Ok(entry)
}

/// The new shadow hash for an existing account, if it changes: the given hash (locked
/// with `!` when `lock_passwd`), or the current one locked.
fn password_hash(accounts: &Accounts, spec: &UserSpec, name: &str) -> Option<String> {
    let current = accounts.shadow_hash(name)?;
    let wanted = match spec.hashed_passwd.as_deref().or(spec.passwd.as_deref()) {
        Some(hash) => locked(hash, spec.lock_passwd),
        None if spec.lock_passwd && is_usable_hash(current) => format!("!{current}"),
        None => return None,
    };
    (wanted != current).then_some(wanted)
}

fn locked(hash: &str, lock: bool) -> String {
    if lock && !hash.starts_with('!') {
        format!("!{hash}")
    } else {
        hash.to_string()
    }
}

fn is_usable_hash(hash: &str) -> bool {
    !hash.is_empty() && !hash.starts_with('!') && !hash.starts_with('*')
}

/// The home directory under `root`: created (0700, with `/etc/skel`) and owned by the
/// user when missing.
pub(crate) fn ensure_home(root: &Path, entry: &PasswdEntry) -> Result<()> {
    let home = crate::fsutil::under(root, &entry.home);
    if home.exists() {
        return Ok(());
    }
    if let Some(parent) = home.parent() {
        crate::fsutil::ensure_dir(parent, 0o755)?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&home)
        .map_err(|e| Error::io(&home, e))?;
    copy_skel(&root.join("etc/skel"), &home, entry.uid, entry.gid)?;
    chown(&home, entry.uid, entry.gid)
}

fn copy_skel(skel: &Path, home: &Path, uid: u32, gid: u32) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(skel) else {
        return Ok(());
    };
    for entry in entries.filter_map(std::result::Result::ok) {
        let from = entry.path();
        let to = home.join(entry.file_name());
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            crate::fsutil::ensure_dir(&to, 0o755)?;
            copy_skel(&from, &to, uid, gid)?;
        } else if kind.is_file() {
            std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
        } else {
            continue;
        }
        chown(&to, uid, gid)?;
    }
    Ok(())
}

/// `/etc/sudoers.d/90-cloud-init-users` from the users' `sudo` rules (removed when none).
pub(crate) fn write_sudoers(root: &Path, rules: &[(String, String)]) -> Result<Option<String>> {
    let path = root.join("etc/sudoers.d/90-cloud-init-users");
    if rules.is_empty() {
        crate::fsutil::remove_file(&path)?;
        return Ok(None);
    }
    let mut text = String::from("# Written by berth cloud-init from the users' sudo rules.\n");
    for (user, rule) in rules {
        text.push_str(&format!("{user} {rule}\n"));
    }
    crate::fsutil::write_file(&path, text.as_bytes(), 0o440, 0o755)?;
    chown(&path, 0, 0)?;
    Ok(Some(path.display().to_string()))
}

/// RancherOS's login name.
pub(crate) const RANCHER_USER: &str = "rancher";

/// Make `rancher` a second name of the `login` account (RancherOS configurations name it in
/// runcmd, `write_files` owners and ssh): same uid, gid, shell and password state, the same
/// supplementary groups and sudo rule, and `/home/rancher` a link to the login's home, so the
/// same files and ssh keys serve both names. Returns what was done, `None` if nothing was.
pub(crate) fn rancher_alias(accounts: &mut Accounts, login: &str, root: &Path) -> Result<Option<String>> {
    let Some(entry) = accounts.user(login).cloned() else {
        return Err(Error::Other(format!(
            "the login user {login} is not in /etc/passwd"
        )));
    };
    let mut done = Vec::new();
    match accounts.user(RANCHER_USER) {
        Some(existing) if existing.uid != entry.uid => {
            return Err(Error::Other(format!(
                "a user rancher with uid {} exists already: it is left as it is",
                existing.uid
            )));
        }
        Some(_) => {}
        None => {
            let hash = accounts.shadow_hash(login).unwrap_or("*").to_string();
            accounts.add_user(
                PasswdEntry {
                    name: RANCHER_USER.to_string(),
                    password: entry.password.clone(),
                    uid: entry.uid,
                    gid: entry.gid,
                    gecos: "RancherOS name of the login account".to_string(),
                    home: format!("/home/{RANCHER_USER}"),
                    shell: entry.shell.clone(),
                },
                &hash,
            );
            done.push(format!("uid {}", entry.uid));
        }
    }
    for group in accounts.groups_of(login) {
        accounts.add_member(&group, RANCHER_USER);
    }
    let link = root.join("home").join(RANCHER_USER);
    let target = entry.home.trim_start_matches('/');
    if std::fs::symlink_metadata(&link).is_err() {
        if let Some(home) = link.parent() {
            std::fs::create_dir_all(home).map_err(|e| Error::Other(format!("{}: {e}", home.display())))?;
        }
        let relative = Path::new(target)
            .strip_prefix("home")
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| Path::new("/").join(target));
        std::os::unix::fs::symlink(&relative, &link)
            .map_err(|e| Error::Other(format!("{}: {e}", link.display())))?;
        done.push(format!("/home/{RANCHER_USER} -> {}", relative.display()));
    }
    Ok((!done.is_empty()).then(|| format!("rancher is the {login} account ({})", done.join(", "))))
}
