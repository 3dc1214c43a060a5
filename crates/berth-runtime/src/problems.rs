//! Problems found during boot that did not stop it (a broken config layer, a state disk with
//! the wrong filesystem, a missing datasource). Each is logged, and collected in
//! `/run/berth/boot-problems` (one per line) so the console's login banner can show them.

use std::io::Write;
use std::path::Path;

pub const FILE: &str = crate::paths::BOOT_PROBLEMS;

/// Record a problem: log it as a warning and append it to the problems file under `root`,
/// once: a service that starts again (a restart, cloud-init's reload) reports the same
/// problem again, and the banner must not list it twice.
pub fn report(root: &Path, message: &str) {
    tracing::warn!("{message}");
    let line = message.replace('\n', " ");
    if read(root).contains(&line) {
        return;
    }
    let path = root.join(FILE.trim_start_matches('/'));
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        let _ = writeln!(file, "{line}");
    }
}

/// The problems recorded so far.
pub fn read(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join(FILE.trim_start_matches('/')))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_accumulate_one_per_line() {
        let root = tempfile::tempdir().unwrap();
        report(root.path(), "first");
        report(root.path(), "second\nline");
        assert_eq!(read(root.path()), ["first", "second line"]);
    }

    #[test]
    fn a_problem_reported_again_is_listed_once() {
        let root = tempfile::tempdir().unwrap();
        report(root.path(), "engine missing");
        report(root.path(), "other");
        report(root.path(), "engine missing");
        assert_eq!(read(root.path()), ["engine missing", "other"]);
    }
}
