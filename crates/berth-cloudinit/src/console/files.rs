//! `write_files` in the console: decoded content, mode, owner (names looked up in the
//! console's account files), and `append`.

use super::accounts::{Accounts, chown};
use berth_config::schema::cloud::WriteFile;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Write one entry under `root`. `append` adds the content unless the file already holds
/// it, so a reboot does not add it twice.
pub(crate) fn write_file_entry(root: &Path, file: &WriteFile, accounts: &Accounts) -> Result<String, String> {
    let content = file.decoded_content()?;
    let (uid, gid) = accounts.resolve_owner(file.owner.as_deref())?;
    let mode = file.mode().bits();
    let path = crate::fsutil::under(root, file.path.as_path());
    if let Some(parent) = path.parent() {
        crate::fsutil::ensure_dir(parent, 0o755).map_err(|e| e.to_string())?;
    }
    let detail = if file.append {
        let existing = std::fs::read(&path).unwrap_or_default();
        if !content.is_empty() && contains(&existing, &content) {
            format!("{} already holds the content", file.path)
        } else {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(mode)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            f.write_all(&content)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            format!("appended {} bytes to {}", content.len(), file.path)
        }
    } else {
        crate::fsutil::write_file(&path, &content, mode, 0o755).map_err(|e| e.to_string())?;
        format!("wrote {} bytes to {}", content.len(), file.path)
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    chown(&path, uid, gid).map_err(|e| e.to_string())?;
    Ok(format!("{detail} (mode {:04o}, owner {uid}:{gid})", mode))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}
