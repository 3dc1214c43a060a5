//! `berth network status` and `berth network apply`: what the CLI prints and its exit code.
//! Both run in the console container, which shares the host's network namespace and `/run`
//! with the network service, so they use netlink directly, as netconf does.

use crate::{reload, status};
use std::path::Path;

/// `berth network status [--format json]`.
pub fn status_main(format: &str) -> i32 {
    match status::read(Path::new("/")) {
        Ok(s) => {
            if format == "json" {
                match serde_json::to_string_pretty(&s) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("berth network status: {e}");
                        return 1;
                    }
                }
            } else {
                print!("{}", status::render(&s));
            }
            0
        }
        Err(e) => {
            eprintln!("berth network status: {e}");
            1
        }
    }
}

/// `berth network apply`: re-read the configuration and apply the difference.
pub fn apply_main(loaded: &berth_config::Loaded) -> i32 {
    for d in &loaded.diagnostics {
        if d.severity == berth_config::Severity::Error {
            eprintln!("{d}");
        }
    }
    if loaded.has_errors() {
        eprintln!(
            "berth network apply: a configuration layer has errors and is not used (above); \
             applying the rest"
        );
    }
    let report = match reload::reload(&loaded.config.berth.network, Path::new(reload::STATE_FILE)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("berth network apply: {e}");
            return 1;
        }
    };
    print!("{}", render(&report));
    for problem in &report.problems {
        eprintln!("warning: {problem}");
    }
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    for kept in &report.kept {
        eprintln!("kept: {kept}");
    }
    i32::from(!report.ok())
}

/// The changes, one per line, and what the user still has to do.
pub fn render(report: &reload::ReloadReport) -> String {
    let mut out = String::new();
    if report.changes.is_empty() {
        out.push_str("no change\n");
    }
    for change in &report.changes {
        out.push_str(change);
        out.push('\n');
    }
    if report.dhcp_changed {
        out.push_str(
            "the DHCP interfaces changed: dhcpcd takes them when the network service restarts \
             (sudo system-docker restart network)\n",
        );
    }
    out
}
