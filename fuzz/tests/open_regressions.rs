//! Inputs that break a property in code another change is reworking right now: kept, and
//! replayed by ignored tests that say why, so whoever fixes the code turns them on
//! (`cargo test -p berth-fuzz -- --ignored`). `regressions.rs` skips the `open/` folders.

use berth_fuzz::{find, regressions_dir, run_one};

/// The console_files property in full (the target itself skips these open findings, so
/// that fuzzing goes on past them).
fn replay_console_files(file: &str) {
    let path = regressions_dir("console_files").join("open").join(file);
    let input = std::fs::read(&path).unwrap();
    if let Err(finding) = berth_fuzz::targets::console::check_strict(&input) {
        panic!("{}: {finding}", path.display());
    }
}

#[test]
fn the_console_files_target_skips_only_these_findings() {
    let target = find("console_files").unwrap();
    for file in ["passwd-ids-renumbered", "group-members-rewritten"] {
        let input = std::fs::read(regressions_dir("console_files").join("open").join(file)).unwrap();
        assert_eq!(run_one(&target, &input).map(|_| ()), Ok(()), "{file}");
    }
}

/// 29 KB of MIME with three gzip parts inflated to 21 MiB when the budget held per part only;
/// one budget now covers the whole document.
#[test]
fn user_data_budget_covers_all_parts() {
    let path = regressions_dir("user_data").join("open/gzip-parts-over-budget");
    let input = std::fs::read(&path).unwrap();
    let data = berth_cloudinit::userdata::parse_user_data(&input);
    let kept = berth_fuzz::targets::cloudinit::kept_bytes(&data);
    let budget = berth_cloudinit::userdata::MAX_USER_DATA;
    assert!(
        kept <= budget,
        "{} bytes of input kept {kept} bytes, over the {budget}-byte budget",
        input.len()
    );
}

/// `uid` `+7` and `gid` `007` are read as numbers and written back as `7`: adding a user
/// rewrites a line it does not own.
#[test]
fn passwd_lines_not_owned_are_kept() {
    replay_console_files("passwd-ids-renumbered");
}

/// A member list `a,,b` is written back as `a,b` when another group changes.
#[test]
fn group_lines_not_owned_are_kept() {
    replay_console_files("group-members-rewritten");
}
