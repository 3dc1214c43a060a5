//! Files that root writes where someone else may have planted links: a user's `~/.ssh`, a
//! `write_files` path through a user's home.
//!
//! A path is walked one directory at a time from a root directory. Links are followed only
//! while every directory so far can be changed by nobody but the writer (owned by the writer,
//! not group- or world-writable); from the first directory someone else can change, the rest
//! is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to it, so a link
//! planted there is refused rather than followed. Files are replaced through a temporary file
//! with a random name created `O_CREAT | O_EXCL | O_NOFOLLOW`, given its owner and mode on the
//! open descriptor, and renamed over the old name within the same directory descriptor; an
//! existing file with several links in such a directory is refused (it may be a hard link to
//! a file of root's).

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use std::ffi::OsStr;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// A directory opened by descriptor, with the path it was reached by (for messages).
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Only the writer can change this directory and every one above it.
    trusted: bool,
}

/// What was found at a name.
pub(crate) struct Existing {
    pub bytes: Vec<u8>,
    pub uid: u32,
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A name that is one path component (no `/`, not `.` or `..`).
fn single_name(name: &OsStr) -> io::Result<&OsStr> {
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(n)), None) => Ok(n),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} is not a file name", name),
        )),
    }
}

/// Only the writer (this process's effective user) can change it.
fn writer_only(stat: &Stat) -> bool {
    stat.st_uid == nix::unistd::geteuid().as_raw() && stat.st_mode & 0o022 == 0
}

/// A link where there should be none: say so in words.
fn link_refused(path: &Path, e: rustix::io::Errno) -> io::Error {
    if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::XDEV {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is, or goes through, a symbolic link in a directory another user can change; not followed",
                path.display()
            ),
        )
    } else {
        with_path(path, errno(e))
    }
}

impl Dir {
    /// The directory `absolute` under `root` (`/home/alice` under `/` is `/home/alice`),
    /// creating missing directories with `create` as their mode when given.
    pub(crate) fn open(root: &Path, absolute: &Path, create: Option<u32>) -> io::Result<Dir> {
        let root_fd = rustix::fs::open(root, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())
            .map_err(|e| with_path(root, errno(e)))?;
        let mut dir = Dir {
            trusted: writer_only(&rustix::fs::fstat(&root_fd).map_err(errno)?),
            fd: root_fd.try_clone()?,
            path: root.to_path_buf(),
        };
        let mut prefix = PathBuf::new();
        for component in absolute.components() {
            let name = match component {
                Component::RootDir | Component::CurDir => continue,
                Component::Normal(n) => n,
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} has a '..' in it", absolute.display()),
                    ));
                }
            };
            prefix.push(name);
            dir = if dir.trusted {
                // Every directory so far is the writer's: its links are the writer's too.
                let open = || {
                    rustix::fs::openat2(
                        &root_fd,
                        &prefix,
                        DIR_FLAGS.difference(OFlags::NOFOLLOW),
                        Mode::empty(),
                        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                    )
                };
                let fd = dir.open_or_create(name, create, open)?;
                let trusted = writer_only(&rustix::fs::fstat(&fd).map_err(errno)?);
                Dir {
                    fd,
                    path: dir.path.join(name),
                    trusted,
                }
            } else {
                dir.subdir(name, create, None)?
            };
        }
        Ok(dir)
    }

    fn open_or_create(
        &self,
        name: &OsStr,
        create: Option<u32>,
        open: impl Fn() -> rustix::io::Result<OwnedFd>,
    ) -> io::Result<OwnedFd> {
        let path = self.path.join(name);
        match open() {
            Err(rustix::io::Errno::NOENT) if create.is_some() => {
                let mode = Mode::from_raw_mode(create.unwrap_or(0o755));
                match rustix::fs::mkdirat(&self.fd, name, mode) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(with_path(&path, errno(e))),
                }
                open().map_err(|e| self.refused(name, e))
            }
            r => r.map_err(|e| self.refused(name, e)),
        }
    }

    /// The error for an open of `name` that failed: a link there is named as such
    /// (`O_DIRECTORY | O_NOFOLLOW` on a link fails with "not a directory").
    fn refused(&self, name: &OsStr, e: rustix::io::Errno) -> io::Error {
        let path = self.path.join(name);
        let is_link = e == rustix::io::Errno::NOTDIR
            && rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
        if is_link {
            link_refused(&path, rustix::io::Errno::LOOP)
        } else {
            link_refused(&path, e)
        }
    }

    fn beneath(&self, name: &OsStr, flags: OFlags, mode: u32) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// The directory `name` in this one, never through a link; created with `create` as its
    /// mode (and `owner`, on the new directory's descriptor) when missing and asked for.
    pub(crate) fn subdir(
        &self,
        name: &OsStr,
        create: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<Dir> {
        let name = single_name(name)?;
        let path = self.path.join(name);
        let mut created = false;
        let fd = match self.beneath(name, DIR_FLAGS, 0) {
            Err(rustix::io::Errno::NOENT) if create.is_some() => {
                let mode = create.unwrap_or(0o755);
                match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
                    Ok(()) => created = true,
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(with_path(&path, errno(e))),
                }
                self.beneath(name, DIR_FLAGS, 0)
                    .map_err(|e| self.refused(name, e))?
            }
            r => r.map_err(|e| self.refused(name, e))?,
        };
        if created {
            set_owner_mode(&fd, create.unwrap_or(0o755), owner).map_err(|e| with_path(&path, e))?;
        }
        let trusted = self.trusted && writer_only(&rustix::fs::fstat(&fd).map_err(errno)?);
        Ok(Dir { fd, path, trusted })
    }

    /// Whether a directory `name` exists here (a link there is an error).
    pub(crate) fn has_subdir(&self, name: &OsStr) -> io::Result<bool> {
        match self.subdir(name, None, None) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Check what was opened at `name`: a regular file, and (where others can change this
    /// directory) with no other link to it.
    fn check_file(&self, fd: &OwnedFd, path: &Path) -> io::Result<Stat> {
        let stat = rustix::fs::fstat(fd).map_err(|e| with_path(path, errno(e)))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        if !self.trusted && stat.st_nlink > 1 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} has {} hard links in a directory another user can change; not used",
                    path.display(),
                    stat.st_nlink
                ),
            ));
        }
        Ok(stat)
    }

    /// Whether `name` here is a symbolic link (which [`Dir::replace`] replaces as a name).
    pub(crate) fn is_symlink(&self, name: &OsStr) -> io::Result<bool> {
        let name = single_name(name)?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(FileType::from_raw_mode(st.st_mode) == FileType::Symlink),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(with_path(&self.path.join(name), errno(e))),
        }
    }

    /// The file `name` (at most `limit` bytes), `None` when there is none.
    pub(crate) fn read(&self, name: &OsStr, limit: u64) -> io::Result<Option<Existing>> {
        let name = single_name(name)?;
        let path = self.path.join(name);
        let fd = match self.beneath(name, OFlags::RDONLY | OFlags::NONBLOCK, 0) {
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            r => r.map_err(|e| link_refused(&path, e))?,
        };
        let stat = self.check_file(&fd, &path)?;
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| with_path(&path, e))?;
        if bytes.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is larger than {limit} bytes", path.display()),
            ));
        }
        Ok(Some(Existing {
            bytes,
            uid: stat.st_uid,
        }))
    }

    /// Replace `name` with `bytes` atomically: a new file with a random name, its owner and
    /// mode set on the descriptor, synced, renamed over `name` (a link at `name` is replaced,
    /// never followed).
    pub(crate) fn replace(
        &self,
        name: &OsStr,
        bytes: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        let name = single_name(name)?;
        let path = self.path.join(name);
        let (tmp, fd) = self.create_temporary(name)?;
        let written = (|| {
            set_owner_mode(&fd, mode, owner)?;
            let mut file = std::fs::File::from(fd);
            file.write_all(bytes)?;
            file.sync_all()?;
            rustix::fs::renameat(&self.fd, &tmp, &self.fd, name).map_err(errno)
        })();
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
            return Err(with_path(&path, e));
        }
        let _ = rustix::fs::fsync(&self.fd);
        Ok(())
    }

    /// `.NAME.berth-XXXXXXXXXXXXXXXX`, created exclusively (a name someone planted is skipped).
    fn create_temporary(&self, name: &OsStr) -> io::Result<(PathBuf, OwnedFd)> {
        let mut last = None;
        for _ in 0..16 {
            let mut random = [0u8; 8];
            rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty()).map_err(errno)?;
            let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let mut tmp = std::ffi::OsString::from(".");
            tmp.push(name);
            tmp.push(format!(".berth-{suffix}"));
            let tmp = PathBuf::from(tmp);
            match self.beneath(
                tmp.as_os_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
                0o600,
            ) {
                Ok(fd) => return Ok((tmp, fd)),
                Err(e) if e == rustix::io::Errno::EXIST => last = Some(e),
                Err(e) => return Err(with_path(&self.path.join(&tmp), errno(e))),
            }
        }
        Err(with_path(
            &self.path.join(name),
            errno(last.unwrap_or(rustix::io::Errno::EXIST)),
        ))
    }

    /// Append `bytes` to `name` (created when missing) unless it already holds them; the
    /// owner and mode are set on the descriptor. Returns whether anything was appended.
    pub(crate) fn append(
        &self,
        name: &OsStr,
        bytes: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
        limit: u64,
    ) -> io::Result<bool> {
        let name = single_name(name)?;
        let path = self.path.join(name);
        let flags = OFlags::RDWR | OFlags::APPEND | OFlags::CREATE | OFlags::NONBLOCK;
        let fd = self
            .beneath(name, flags, mode)
            .map_err(|e| link_refused(&path, e))?;
        self.check_file(&fd, &path)?;
        let mut file = std::fs::File::from(fd);
        let mut existing = Vec::new();
        (&mut file)
            .take(limit + 1)
            .read_to_end(&mut existing)
            .map_err(|e| with_path(&path, e))?;
        let holds = !bytes.is_empty()
            && bytes.len() <= existing.len()
            && existing.windows(bytes.len()).any(|w| w == bytes);
        if !holds {
            file.write_all(bytes).map_err(|e| with_path(&path, e))?;
        }
        set_owner_mode(file.as_fd(), mode, owner).map_err(|e| with_path(&path, e))?;
        file.sync_all().map_err(|e| with_path(&path, e))?;
        Ok(!holds)
    }
}

fn set_owner_mode(fd: impl AsFd, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    if let Some((uid, gid)) = owner {
        if uid == u32::MAX || gid == u32::MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "4294967295 (-1) is not a user or group id",
            ));
        }
        rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(errno)?;
    }
    // After the chown: changing the owner clears set-id bits.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno)
}

#[cfg(test)]
mod tests;
