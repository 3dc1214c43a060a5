//! `write_files` in the console: decoded content, mode, owner (names looked up in the
//! console's account files), and `append`.
//!
//! The path may lead through a directory a user owns (`/home/alice/.config/app.conf`): it is
//! walked with [`crate::beneath::Dir`], so links there are refused rather than followed, and
//! the mode and owner are set on the written file's descriptor, never by path.

use super::accounts::Accounts;
use crate::beneath::Dir;
use berth_config::schema::cloud::WriteFile;
use std::path::Path;

/// A file that `append` reads to see whether it already holds the content.
const APPEND_LIMIT: u64 = 64 << 20;

/// Write one entry under `root`. `append` adds the content unless the file already holds
/// it, so a reboot does not add it twice.
pub(crate) fn write_file_entry(root: &Path, file: &WriteFile, accounts: &Accounts) -> Result<String, String> {
    let content = file.decoded_content()?;
    let (uid, gid) = accounts.resolve_owner(file.owner.as_deref())?;
    let mode = file.mode().bits();
    let path = file.path.as_path();
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("{} does not name a file", file.path));
    };
    let dir = Dir::open(root, parent, Some(0o755)).map_err(|e| e.to_string())?;
    let owner = Some((uid, gid));
    let detail = if file.append {
        let appended = dir
            .append(name, &content, mode, owner, APPEND_LIMIT)
            .map_err(|e| e.to_string())?;
        if appended {
            format!("appended {} bytes to {}", content.len(), file.path)
        } else {
            format!("{} already holds the content", file.path)
        }
    } else {
        dir.replace(name, &content, mode, owner)
            .map_err(|e| e.to_string())?;
        format!("wrote {} bytes to {}", content.len(), file.path)
    };
    Ok(format!("{detail} (mode {:04o}, owner {uid}:{gid})", mode))
}
