//! `/etc/passwd`, `/etc/shadow`, `/etc/group` and `/etc/gshadow` of the console, read,
//! changed in memory and written back atomically (no `useradd`: the files are simple, and
//! the console image need not carry the shadow tools). Lines this code does not understand
//! are kept as they are.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Regular accounts get ids from here up.
const FIRST_UID: u32 = 1000;
const LAST_UID: u32 = 59999;
/// System accounts get ids from here down.
const LAST_SYSTEM_ID: u32 = 999;
const FIRST_SYSTEM_ID: u32 = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PasswdEntry {
    pub name: String,
    pub password: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupEntry {
    pub name: String,
    pub password: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// `name:hash:rest...` (shadow) or `name:password:admins:members` (gshadow).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShadowEntry {
    pub name: String,
    pub hash: String,
    /// The other fields, as written.
    pub rest: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Line<T> {
    /// A parsed entry, with its text as read while nothing changed it: lines Berth does not
    /// change are written back exactly as they were (`+7` stays `+7`, `a,,b` stays `a,,b`).
    Entry(T, Option<String>),
    Verbatim(String),
}

/// One of the files: its lines, and whether it changed.
#[derive(Clone, Debug)]
struct Table<T> {
    path: PathBuf,
    /// `false` when the file does not exist (shadow files are optional).
    exists: bool,
    lines: Vec<Line<T>>,
    changed: bool,
}

impl<T: Clone> Table<T> {
    fn read(path: PathBuf, parse: fn(&str) -> Option<T>) -> Result<Self> {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let exists = text.is_some();
        let lines = text
            .unwrap_or_default()
            .lines()
            .map(|l| match parse(l) {
                Some(entry) => Line::Entry(entry, Some(l.to_string())),
                None => Line::Verbatim(l.to_string()),
            })
            .collect();
        Ok(Table {
            path,
            exists,
            lines,
            changed: false,
        })
    }

    fn entries(&self) -> impl Iterator<Item = &T> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry(e, _) => Some(e),
            Line::Verbatim(_) => None,
        })
    }

    fn find_mut(&mut self, pred: impl Fn(&T) -> bool) -> Option<&mut T> {
        // The caller is about to change it: it is rendered anew.
        self.lines.iter_mut().find_map(|l| match l {
            Line::Entry(e, original) if pred(e) => {
                *original = None;
                Some(e)
            }
            _ => None,
        })
    }

    fn push(&mut self, entry: T) {
        self.lines.push(Line::Entry(entry, None));
        self.changed = true;
    }

    /// Write back atomically, keeping the file's mode and owner.
    fn write(&self, render: fn(&T) -> String, default_mode: u32) -> Result<()> {
        if !self.changed || !self.exists {
            return Ok(());
        }
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(&self.path).ok();
        let mode = meta.as_ref().map(|m| m.mode() & 0o7777).unwrap_or(default_mode);
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Entry(_, Some(original)) => text.push_str(original),
                Line::Entry(e, None) => text.push_str(&render(e)),
                Line::Verbatim(v) => text.push_str(v),
            }
            text.push('\n');
        }
        crate::fsutil::write_file(&self.path, text.as_bytes(), mode, 0o755)?;
        if let Some(meta) = meta {
            chown(&self.path, meta.uid(), meta.gid())?;
        }
        Ok(())
    }
}

pub(crate) fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|e| Error::io(path, e))
}

fn parse_passwd(line: &str) -> Option<PasswdEntry> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 7 || f[0].is_empty() || f[0].starts_with('#') {
        return None;
    }
    Some(PasswdEntry {
        name: f[0].to_string(),
        password: f[1].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        gecos: f[4].to_string(),
        home: f[5].to_string(),
        shell: f[6].to_string(),
    })
}

fn render_passwd(e: &PasswdEntry) -> String {
    format!(
        "{}:{}:{}:{}:{}:{}:{}",
        e.name, e.password, e.uid, e.gid, e.gecos, e.home, e.shell
    )
}

fn parse_group(line: &str) -> Option<GroupEntry> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 4 || f[0].is_empty() || f[0].starts_with('#') {
        return None;
    }
    Some(GroupEntry {
        name: f[0].to_string(),
        password: f[1].to_string(),
        gid: f[2].parse().ok()?,
        members: f[3]
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

fn render_group(e: &GroupEntry) -> String {
    format!("{}:{}:{}:{}", e.name, e.password, e.gid, e.members.join(","))
}

fn parse_shadow(line: &str) -> Option<ShadowEntry> {
    let mut f = line.split(':');
    let name = f.next().filter(|n| !n.is_empty() && !n.starts_with('#'))?;
    let hash = f.next()?;
    Some(ShadowEntry {
        name: name.to_string(),
        hash: hash.to_string(),
        rest: f.map(str::to_string).collect(),
    })
}

fn render_shadow(e: &ShadowEntry) -> String {
    let mut s = format!("{}:{}", e.name, e.hash);
    for field in &e.rest {
        s.push(':');
        s.push_str(field);
    }
    s
}

/// The account files under a root.
#[derive(Clone, Debug)]
pub(crate) struct Accounts {
    passwd: Table<PasswdEntry>,
    shadow: Table<ShadowEntry>,
    group: Table<GroupEntry>,
    gshadow: Table<ShadowEntry>,
}

impl Accounts {
    /// No accounts at all (only numeric owners resolve).
    pub fn empty() -> Self {
        fn table<T>(name: &str) -> Table<T> {
            Table {
                path: PathBuf::from(name),
                exists: false,
                lines: Vec::new(),
                changed: false,
            }
        }
        Accounts {
            passwd: table("/etc/passwd"),
            shadow: table("/etc/shadow"),
            group: table("/etc/group"),
            gshadow: table("/etc/gshadow"),
        }
    }

    pub fn read(root: &Path) -> Result<Self> {
        let etc = root.join("etc");
        Ok(Accounts {
            passwd: Table::read(etc.join("passwd"), parse_passwd)?,
            shadow: Table::read(etc.join("shadow"), parse_shadow)?,
            group: Table::read(etc.join("group"), parse_group)?,
            gshadow: Table::read(etc.join("gshadow"), parse_shadow)?,
        })
    }

    /// Write what changed.
    pub fn write(&self) -> Result<()> {
        self.passwd.write(render_passwd, 0o644)?;
        self.group.write(render_group, 0o644)?;
        self.shadow.write(render_shadow, 0o640)?;
        self.gshadow.write(render_shadow, 0o640)
    }

    pub fn has_passwd_file(&self) -> bool {
        self.passwd.exists
    }

    pub fn user(&self, name: &str) -> Option<&PasswdEntry> {
        self.passwd.entries().find(|e| e.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&GroupEntry> {
        self.group.entries().find(|e| e.name == name)
    }

    /// Replace the passwd entry of `entry.name`.
    pub fn update_user(&mut self, entry: PasswdEntry) {
        if let Some(e) = self.passwd.find_mut(|e| e.name == entry.name)
            && *e != entry
        {
            *e = entry;
            self.passwd.changed = true;
        }
    }

    /// A free id for a new account or group: regular from 1000 up, system from 999 down.
    pub fn free_id(&self, system: bool, for_group: bool) -> Option<u32> {
        let used = |id: u32| {
            if for_group {
                self.group.entries().any(|g| g.gid == id)
            } else {
                self.passwd.entries().any(|u| u.uid == id)
            }
        };
        if system {
            (FIRST_SYSTEM_ID..=LAST_SYSTEM_ID).rev().find(|&id| !used(id))
        } else {
            (FIRST_UID..=LAST_UID).find(|&id| !used(id))
        }
    }

    pub fn uid_is_free(&self, uid: u32) -> bool {
        !self.passwd.entries().any(|u| u.uid == uid)
    }

    pub fn gid_is_free(&self, gid: u32) -> bool {
        !self.group.entries().any(|g| g.gid == gid)
    }

    pub fn add_user(&mut self, entry: PasswdEntry, hash: &str) {
        if self.shadow.exists {
            let days = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() / 86_400)
                .unwrap_or(0);
            let rest = [&days.to_string(), "0", "99999", "7", "", "", ""];
            self.shadow.push(ShadowEntry {
                name: entry.name.clone(),
                hash: hash.to_string(),
                rest: rest.iter().map(|s| s.to_string()).collect(),
            });
        }
        self.passwd.push(entry);
    }

    /// The gid of `name`, creating the group (with `preferred` as its gid when free).
    pub fn ensure_group(&mut self, name: &str, preferred: Option<u32>, system: bool) -> Result<u32> {
        if let Some(g) = self.group(name) {
            return Ok(g.gid);
        }
        let gid = preferred
            .filter(|&g| self.gid_is_free(g))
            .or_else(|| self.free_id(system, true))
            .ok_or_else(|| Error::Other(format!("no free group id for {name}")))?;
        self.group.push(GroupEntry {
            name: name.to_string(),
            password: "x".to_string(),
            gid,
            members: Vec::new(),
        });
        if self.gshadow.exists {
            self.gshadow.push(ShadowEntry {
                name: name.to_string(),
                hash: "!".to_string(),
                rest: vec![String::new(), String::new()],
            });
        }
        Ok(gid)
    }

    /// Add `user` to the supplementary group `group` (in group and gshadow).
    pub fn add_member(&mut self, group: &str, user: &str) {
        if let Some(g) = self.group.find_mut(|g| g.name == group)
            && !g.members.iter().any(|m| m == user)
        {
            g.members.push(user.to_string());
            self.group.changed = true;
        }
        if let Some(g) = self.gshadow.find_mut(|g| g.name == group) {
            // name:password:admins:members
            while g.rest.len() < 2 {
                g.rest.push(String::new());
            }
            let mut members: Vec<String> = g.rest[1]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            if !members.iter().any(|m| m == user) {
                members.push(user.to_string());
                g.rest[1] = members.join(",");
                self.gshadow.changed = true;
            }
        }
    }

    /// The supplementary groups `user` is a member of.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.group
            .entries()
            .filter(|g| g.members.iter().any(|m| m == user))
            .map(|g| g.name.clone())
            .collect()
    }

    pub fn shadow_hash(&self, user: &str) -> Option<&str> {
        self.shadow
            .entries()
            .find(|e| e.name == user)
            .map(|e| e.hash.as_str())
    }

    /// Set the password hash (`Err` when there is no shadow file to hold it).
    pub fn set_shadow_hash(&mut self, user: &str, hash: &str) -> Result<()> {
        if !self.shadow.exists {
            return Err(Error::Other(format!(
                "{} does not exist; the password of {user} is not set",
                self.shadow.path.display()
            )));
        }
        match self.shadow.find_mut(|e| e.name == user) {
            Some(e) if e.hash == hash => {}
            Some(e) => {
                e.hash = hash.to_string();
                self.shadow.changed = true;
            }
            None => self.shadow.push(ShadowEntry {
                name: user.to_string(),
                hash: hash.to_string(),
                rest: vec![String::new(); 7],
            }),
        }
        Ok(())
    }

    /// `user` or `user:group`, names or numbers, to ids (`root` when empty).
    pub fn resolve_owner(&self, owner: Option<&str>) -> std::result::Result<(u32, u32), String> {
        let Some(owner) = owner.map(str::trim).filter(|o| !o.is_empty()) else {
            return Ok((0, 0));
        };
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner, None),
        };
        let uid = match user.parse::<u32>() {
            Ok(n) => n,
            Err(_) => self
                .user(user)
                .map(|u| u.uid)
                .ok_or_else(|| format!("the owner {user:?} is not a user of the console"))?,
        };
        let gid = match group.filter(|g| !g.is_empty()) {
            None => 0,
            Some(g) => match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => self
                    .group(g)
                    .map(|g| g.gid)
                    .ok_or_else(|| format!("the group {g:?} is not a group of the console"))?,
            },
        };
        Ok((uid, gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n# a comment\nberth:x:1000:1000::/home/berth:/bin/bash\nbroken line\n";
    const GROUP: &str = "root:x:0:\nsudo:x:27:berth\nberth:x:1000:\n";
    const SHADOW: &str = "root:*:19000:0:99999:7:::\nberth:!:19000:0:99999:7:::\n";

    fn root_with_files() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("passwd"), PASSWD).unwrap();
        std::fs::write(etc.join("group"), GROUP).unwrap();
        std::fs::write(etc.join("shadow"), SHADOW).unwrap();
        std::fs::write(etc.join("gshadow"), "root:*::\nsudo:*::berth\nberth:!::\n").unwrap();
        root
    }

    #[test]
    fn round_trip_keeps_unknown_lines() {
        let root = root_with_files();
        let mut a = Accounts::read(root.path()).unwrap();
        a.passwd.changed = true;
        a.write().unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/passwd")).unwrap(),
            PASSWD
        );
    }

    #[test]
    fn ids_groups_members_owners() {
        let root = root_with_files();
        let mut a = Accounts::read(root.path()).unwrap();
        assert_eq!(a.free_id(false, false), Some(1001));
        assert_eq!(a.free_id(true, false), Some(999));
        assert_eq!(a.ensure_group("sudo", None, false).unwrap(), 27);
        assert_eq!(a.ensure_group("docker", Some(1000), false).unwrap(), 1001);
        a.add_member("docker", "berth");
        a.add_member("sudo", "berth");
        assert_eq!(a.resolve_owner(Some("berth:docker")), Ok((1000, 1001)));
        assert_eq!(a.resolve_owner(Some("1234:5")), Ok((1234, 5)));
        assert_eq!(a.resolve_owner(None), Ok((0, 0)));
        assert_eq!(a.resolve_owner(Some("berth")), Ok((1000, 0)));
        assert!(a.resolve_owner(Some("nobody:x")).is_err());
        a.write().unwrap();
        let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
        assert!(group.ends_with("docker:x:1001:berth\n"), "{group}");
        assert!(
            group.contains("sudo:x:27:berth\n"),
            "no duplicate member: {group}"
        );
        let gshadow = std::fs::read_to_string(root.path().join("etc/gshadow")).unwrap();
        assert!(gshadow.ends_with("docker:!::berth\n"), "{gshadow}");
    }
}
