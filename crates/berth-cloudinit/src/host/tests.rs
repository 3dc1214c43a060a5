use super::*;
use crate::blockdev::tests::{fake_device, mkfs_vfat};
use crate::report::ItemStatus;
use std::sync::Mutex;

#[derive(Default)]
struct FakeHost {
    calls: Mutex<Vec<String>>,
    fail_modules: Vec<String>,
}

impl HostOps for FakeHost {
    fn set_hostname(&self, name: &str) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("sethostname {name}"));
        Ok(())
    }
    fn load_module(&self, module: &ModuleSpec) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("modprobe {module}"));
        if self.fail_modules.iter().any(|m| m == module.name()) {
            return Err(format!("modprobe {module}: not found"));
        }
        Ok(())
    }
    fn host_mounts(&self, requests: &[MountRequest]) -> Vec<Result<String, String>> {
        requests
            .iter()
            .map(|r| {
                self.calls.lock().unwrap().push(format!("{r:?}"));
                match r {
                    MountRequest::Mount { target, .. } if target == "/fails" => {
                        Err("cannot mount: no such device".to_string())
                    }
                    _ => Ok("mounted".to_string()),
                }
            })
            .collect()
    }
}

fn config(yaml: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let paths = berth_config::ConfigPaths::under(dir.path());
    std::fs::create_dir_all(&paths.conf_dir).unwrap();
    std::fs::write(paths.local(), yaml).unwrap();
    let loaded = berth_config::load(&paths, &berth_config::KernelCmdline::default());
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    loaded.config
}

fn meta(hostname: &str) -> MetaData {
    MetaData {
        local_hostname: Some(hostname.parse().unwrap()),
        ..MetaData::default()
    }
}

#[test]
fn hostname_precedence() {
    let with = config("hostname: set\n");
    let without = config("runcmd: []\n");
    assert_eq!(plan_host(&with, Some(&meta("md"))).hostname.as_str(), "set");
    let p = plan_host(&without, Some(&meta("md.example.internal")));
    assert_eq!((p.hostname.as_str(), p.hostname_from), ("md", "meta-data"));
    let with_fqdn = config("hostname: node.example.com\n");
    assert_eq!(plan_host(&with_fqdn, None).hostname.as_str(), "node.example.com");
    let p = plan_host(&without, None);
    assert_eq!(
        (p.hostname.as_str(), p.hostname_from),
        ("berth", "berth.defaults.hostname")
    );
}

#[test]
fn sysctl_paths() {
    assert_eq!(
        sysctl_path("net.ipv4.ip_forward").unwrap(),
        Path::new("net/ipv4/ip_forward")
    );
    assert_eq!(
        sysctl_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
        Path::new("net/ipv4/conf/eth0.100/forwarding")
    );
    for bad in ["net..x", "../../etc/passwd", "a/../b", ""] {
        assert!(sysctl_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn everything_is_applied_and_failures_do_not_stop_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let proc_sys = root.join("proc/sys/net/ipv4");
    std::fs::create_dir_all(&proc_sys).unwrap();
    std::fs::write(proc_sys.join("ip_forward"), "0\n").unwrap();
    std::fs::create_dir_all(root.join("usr/share/zoneinfo/Europe")).unwrap();
    std::fs::write(root.join("usr/share/zoneinfo/Europe/Paris"), "TZif").unwrap();
    let data = fake_device(root, "vdb", 4096);
    let have_vfat = mkfs_vfat(&data, "DATA");
    let config = config(
        "hostname: node7\n\
         timezone: Europe/Paris\n\
         bootcmd:\n  - echo boot $INSTANCE_ID\n  - [sh, -c, 'exit 1']\n\
         mounts:\n\
         \x20 - [LABEL=DATA, /data]\n\
         \x20 - [LABEL=MISSING, /missing, ext4, nofail]\n\
         \x20 - [LABEL=MISSING, /missing2]\n\
         \x20 - [tmpfs, /fails, tmpfs]\n\
         \x20 - [vdc, none, swap, sw]\n\
         \x20 - [ephemeral0, /mnt]\n\
         berth:\n  modules: [br_netfilter, 'bonding mode=4']\n\
         \x20 sysctl:\n    net.ipv4.ip_forward: 1\n    net.bridge.bridge-nf-call-iptables: 1\n",
    );
    let host = FakeHost {
        fail_modules: vec!["bonding".to_string()],
        ..FakeHost::default()
    };
    let mut ctx = HostContext::under(root);
    ctx.instance_id = Some("i-42".to_string());
    let mut report = Report::new("cloud-init");
    apply_host(&plan_host(&config, None), &host, &ctx, &mut report);

    let status = |item: &str| {
        report
            .items
            .iter()
            .find(|i| i.item == item)
            .unwrap_or_else(|| panic!("no item {item}: {:#?}", report.items))
            .status
    };
    assert_eq!(status("berth.modules[0]"), ItemStatus::Done);
    assert_eq!(status("berth.modules[1]"), ItemStatus::Failed);
    assert_eq!(status("berth.sysctl.net.ipv4.ip_forward"), ItemStatus::Done);
    assert_eq!(std::fs::read_to_string(proc_sys.join("ip_forward")).unwrap(), "1");
    assert_eq!(
        status("berth.sysctl.net.bridge.bridge-nf-call-iptables"),
        ItemStatus::Failed
    );
    assert_eq!(status("hostname"), ItemStatus::Done);
    assert_eq!(
        std::fs::read_to_string(root.join("run/berth/hostname")).unwrap(),
        "node7\n"
    );
    assert_eq!(status("timezone"), ItemStatus::Done);
    assert_eq!(
        std::fs::read_to_string(root.join("var/lib/berth/conf/timezone")).unwrap(),
        "Europe/Paris\n"
    );
    assert_eq!(status("bootcmd[0]"), ItemStatus::Done);
    assert_eq!(status("bootcmd[1]"), ItemStatus::Failed);
    let bootlog = std::fs::read_to_string(root.join("var/log/boot/bootcmd.log")).unwrap();
    assert!(bootlog.contains("boot i-42\n"), "{bootlog}");
    if have_vfat {
        assert_eq!(status("mounts[0]"), ItemStatus::Done);
    }
    assert_eq!(status("mounts[1]"), ItemStatus::Skipped, "nofail: a warning");
    assert_eq!(status("mounts[2]"), ItemStatus::Failed);
    assert_eq!(status("mounts[3]"), ItemStatus::Failed);
    assert_eq!(status("mounts[4]"), ItemStatus::Done);
    assert_eq!(status("mounts[5]"), ItemStatus::Skipped);

    let calls = host.calls.lock().unwrap().clone();
    assert_eq!(calls[0], "modprobe br_netfilter");
    assert_eq!(calls[1], "modprobe bonding mode=4");
    assert_eq!(calls[2], "sethostname node7");
    let mounts: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("Mount") || c.starts_with("Swap"))
        .collect();
    if have_vfat {
        assert!(
            mounts[0].contains("source: \"/dev/vdb\"") && mounts[0].contains("fstype: \"vfat\""),
            "{mounts:?}"
        );
    }
    assert!(mounts.iter().any(|m| m.contains("Swap { device: \"/dev/vdc\" }")));
    assert!(report.has_errors());
    let keys: Vec<Option<&str>> = report.diagnostics.iter().map(|d| d.key.as_deref()).collect();
    assert!(keys.contains(&Some("mounts[2]")) && keys.contains(&Some("bootcmd[1]")));
}

#[test]
fn unset_timezone_removes_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("var/lib/berth/conf/timezone");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "UTC\n").unwrap();
    let mut report = Report::new("cloud-init");
    apply_host(
        &plan_host(&config("runcmd: []\n"), None),
        &FakeHost::default(),
        &HostContext::under(tmp.path()),
        &mut report,
    );
    assert!(!file.exists());
    assert!(!report.has_errors(), "{:#?}", report.diagnostics);
}
