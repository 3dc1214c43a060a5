//! The log file: one run per process, so the run's logging set-up is the process's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_cloudinit::main_cloud_init;

#[test]
fn summary_lines_go_to_the_boot_log() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("ud"), "#cloud-config\nhostname: logged\n").unwrap();
    let args: Vec<String> = [
        "--root",
        root.to_str().unwrap(),
        "--cmdline",
        "",
        "--datasources",
        "nocloud,file:/ud",
        "--no-apply",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(main_cloud_init(&args), 0);
    let log = std::fs::read_to_string(root.join("var/log/boot/cloud-init.log")).unwrap();
    // The two probes run at once: nocloud is either absent (it finished first) or cancelled
    // (the file answered first). Either way it has its line; which one is up to the scheduler.
    let nocloud = log
        .lines()
        .find(|l| l.contains("datasource nocloud: "))
        .unwrap_or_else(|| panic!("no line for nocloud in:\n{log}"));
    assert!(
        nocloud.contains("datasource nocloud: absent in")
            || nocloud.contains("datasource nocloud: cancelled"),
        "{nocloud}"
    );
    for line in [
        "cloud-init: start",
        "datasources: nocloud, file:/ud",
        "datasource file:/ud: found in",
        "saved the cloud-config",
        "cloud-init: done in",
    ] {
        assert!(log.contains(line), "{line:?} not in:\n{log}");
    }
}
