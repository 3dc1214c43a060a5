//! `berth cloud-init` end to end under a temporary root: probe, save, apply (file side
//! only: with `--root` other than `/` the running host is not changed), report, offline
//! reboot. HTTP sources are served on 127.0.0.1 by the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

use berth_cloudinit::main_cloud_init;
use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::path::Path;

fn run(root: &Path, extra: &[&str]) -> i32 {
    let mut args = vec!["--root".to_string(), root.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    main_cloud_init(&args)
}

fn report(root: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(root.join("run/berth/cloud-init.json")).unwrap()).unwrap()
}

const USER_DATA: &str = "Content-Type: multipart/mixed; boundary=XX\nMIME-Version: 1.0\n\n\
--XX\nContent-Type: text/cloud-config\n\n#cloud-config\nhostname: cli-node\ntimezone: UTC\n\
berth:\n  sysctl:\n    vm.swappiness: 5\n\
--XX\nContent-Type: text/x-shellscript\nContent-Disposition: attachment; filename=\"setup.sh\"\n\n\
#!/bin/sh\necho setup\n--XX--\n";

fn seed(root: &Path) {
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("user-data"), USER_DATA).unwrap();
    std::fs::write(
        seed.join("meta-data"),
        "instance-id: iid-cli\nlocal-hostname: meta-host\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("proc/sys/vm")).unwrap();
    std::fs::write(root.join("proc/sys/vm/swappiness"), "60\n").unwrap();
}

#[test]
fn probe_save_apply_then_boot_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    seed(root);
    let common = ["--cmdline", "console=ttyS0", "--timeout", "5"];

    assert_eq!(
        run(
            root,
            &[&common[..], &["--datasources", "nocloud,file:/seed"]].concat()
        ),
        0
    );
    let r = report(root);
    assert_eq!(r["datasource"]["name"], "file:/seed");
    assert_eq!(r["instance_id"], "iid-cli");
    // nocloud and the file are probed at once: nocloud finished (absent) or was cancelled
    // when the file answered first, as the scheduler decides.
    let nocloud = r["probes"][0]["status"].as_str().unwrap();
    assert!(["absent", "cancelled"].contains(&nocloud), "{nocloud}");
    assert_eq!(r["probes"][1]["status"], "found");
    assert!(r["diagnostics"].as_array().unwrap().is_empty(), "{r:#}");
    let items: Vec<(&str, &str)> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["item"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    assert!(items.contains(&("hostname", "done")), "{items:?}");
    assert!(
        items.contains(&("berth.sysctl.vm.swappiness", "done")),
        "{items:?}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("run/berth/hostname")).unwrap(),
        "cli-node\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("proc/sys/vm/swappiness")).unwrap(),
        "5"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/berth/conf/timezone")).unwrap(),
        "UTC\n"
    );
    assert!(root.join("var/lib/berth/conf/user-data.yml").exists());
    assert!(root.join("var/lib/berth/conf/scripts/01-setup.sh").exists());
    assert!(root.join("var/lib/berth/cloud-init/meta-data").exists());

    // The datasource is gone (offline reboot): the saved data still applies.
    std::fs::remove_dir_all(root.join("seed")).unwrap();
    assert_eq!(
        run(root, &[&common[..], &["--datasources", "file:/seed"]].concat()),
        0
    );
    let r = report(root);
    assert!(r.get("datasource").is_none());
    assert_eq!(r["offline"]["saved_from"]["name"], "file:/seed");
    assert_eq!(r["instance_id"], "iid-cli");
    assert_eq!(
        std::fs::read_to_string(root.join("run/berth/hostname")).unwrap(),
        "cli-node\n"
    );
}

#[test]
fn invalid_user_data_is_reported_with_its_location() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(
        root.join("ud"),
        "#cloud-config\nhostname: ok\nwrite_files:\n  - path: relative\n",
    )
    .unwrap();
    let code = run(
        root,
        &["--cmdline", "", "--datasources", "file:/ud", "--no-apply"],
    );
    assert_eq!(code, 0, "a bad cloud-config never fails the service");
    let r = report(root);
    let diagnostics = r["diagnostics"].as_array().unwrap();
    let located = diagnostics
        .iter()
        .find(|d| d["key"] == "write_files[0].path")
        .unwrap_or_else(|| panic!("{r:#}"));
    assert!(
        located["source"]
            .as_str()
            .unwrap()
            .ends_with("cloud-init/user-data.rejected.yml")
    );
    assert_eq!(located["line"], 4);
    assert!(!root.join("var/lib/berth/conf/user-data.yml").exists());
}

/// Serve `body` at `path` on 127.0.0.1 for a few requests; returns the base URL.
fn serve(path: &'static str, body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let wanted = request.split(' ').nth(1) == Some(path);
            let (status, body) = if wanted {
                ("200 OK", body)
            } else {
                ("404 Not Found", "")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn cloud_config_url_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let url = serve("/cc.yml", "#cloud-config\nhostname: from-url\n");
    let cmdline = format!("quiet cloud-config-url={url}/cc.yml");
    // cmdline is not configured: the cloud-config-url= parameter adds it
    assert_eq!(
        run(
            root,
            &["--cmdline", &cmdline, "--datasources", "nocloud", "--no-apply"]
        ),
        0
    );
    let r = report(root);
    assert_eq!(r["datasource"]["name"], "cmdline");
    let saved = std::fs::read_to_string(root.join("var/lib/berth/conf/user-data.yml")).unwrap();
    assert_eq!(saved, "#cloud-config\nhostname: from-url\n");
}

#[test]
fn ec2_endpoint_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let url = serve("/latest/meta-data/instance-id", "i-cli");
    assert_eq!(
        run(
            root,
            &[
                "--cmdline",
                "",
                "--datasources",
                "ec2",
                "--ec2-endpoint",
                &url,
                "--no-apply"
            ]
        ),
        0
    );
    let r = report(root);
    assert_eq!(r["datasource"]["name"], "ec2");
    assert_eq!(r["instance_id"], "i-cli");
}

#[test]
fn usage() {
    assert_eq!(main_cloud_init(&["--help".to_string()]), 0);
    assert_eq!(main_cloud_init(&["--bogus".to_string()]), 2);
}
