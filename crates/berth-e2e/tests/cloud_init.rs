//! Issue #3 in the booted image: each datasource kind delivers a config that is applied, a
//! broken configuration still boots to a reachable console with the error shown, a value set
//! with `berth config set` survives a reboot, and `write_files` with `container:` lands in
//! that container. An OEM partition's layer reaches the machine and the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use common::{BOOT, check, env, http_forward, poweroff, reboot, run, vfat_with};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// An ext4 disk labelled `label` holding `files` (paths relative to the filesystem's root).
fn ext4_with(dir: &Path, name: &str, label: &str, files: &[(&str, &str)]) -> PathBuf {
    let staging = dir.join(format!("{name}.d"));
    for (path, content) in files {
        let p = staging.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    let img = dir.join(name);
    std::fs::File::create(&img).unwrap().set_len(1 << 30).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-d"])
        .arg(&staging)
        .arg(&img));
    img
}

/// A 64 MiB GPT disk whose one partition (1 MiB to 40 MiB) holds ext4, then enlarged to
/// 128 MiB as a cloud disk resized in place: what `rancher.resize_device` is for.
fn gpt_disk_to_grow(dir: &Path) -> PathBuf {
    const MIB: u64 = 1 << 20;
    let img = dir.join("grow.img");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&img)
        .unwrap();
    file.set_len(64 * MIB).unwrap();
    gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(64 * MIB / 512 - 1).unwrap())
        .overwrite_lba0(&mut file)
        .unwrap();
    let mut table = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(&mut file, None)
        .unwrap();
    table
        .add_partition("grow", 39 * MIB, gpt::partition_types::LINUX_FS, 0, None)
        .unwrap();
    let start = table.partitions()[&1].first_lba * 512;
    table.write().unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", &format!("offset={start}")])
        .arg(&img)
        .arg("38M"));
    file.set_len(128 * MIB).unwrap();
    img
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// Readiness and crash loops: `e2e-app` runs after `e2e-db`, which is healthy only 5 s after
/// it starts; `e2e-crash` exits at once, for ever.
const HEALTH_SERVICES: &str = r#"berth:
  services:
    e2e-db:
      image: berth/base:${BERTH_VERSION}
      command: [/bin/sh, -c, "sleep 5; : > /run/e2e/ready; trap 'exit 0' TERM; while :; do sleep 1; done"]
      volumes: [/run/berth-e2e:/run/e2e]
      healthcheck: {test: "test -f /run/e2e/ready", interval: 1s, retries: 30}
      labels: {io.berth.scope: system}
    e2e-app:
      image: berth/base:${BERTH_VERSION}
      command: [/bin/sh, -c, "if test -f /run/e2e/ready; then echo ready; else echo early; fi > /run/e2e/app"]
      volumes: [/run/berth-e2e:/run/e2e]
      labels: {io.berth.scope: system, io.berth.after: e2e-db, io.berth.detach: "false"}
    e2e-crash:
      image: berth/base:${BERTH_VERSION}
      command: [/bin/sh, -c, "echo crashing; exit 3"]
      restart: always
      labels: {io.berth.scope: system}
"#;

#[test]
fn vm_config_drive_state_layers_and_config_set() {
    let env = env("ci-configdrive");
    let key = &env.public_key;
    let user_data = format!(
        "#cloud-config\nhostname: cd-host\nssh_authorized_keys:\n  - {key}\n\
         write_files:\n\
         \x20 - path: /etc/berth-e2e/console-file\n    content: from-config-drive\n\
         \x20 - path: /etc/berth-e2e/in-docker\n    content: in-the-docker-service\n    container: docker\n\
         \x20 - path: /home/rancher/owned\n    content: by-rancher\n    owner: rancher\n\
         runcmd:\n  - touch /home/rancher/test1\n  - echo runcmd-ran >> /home/berth/runcmd.log\n\
         rancher:\n  modules: [nbd nbds_max=16]\n  resize_device: /dev/vdc\n  docker:\n    tls: true\n\
         \x20 registry_auths:\n    registry.example:5000: {{username: e2e, password: s3cret-e2e}}\n\
         {HEALTH_SERVICES}"
    );
    let drive = vfat_with(
        &env.dir,
        "config-2.img",
        "config-2",
        &[
            ("openstack/latest/user_data", &user_data),
            (
                "openstack/latest/meta_data.json",
                r#"{"uuid": "cd-instance-1", "hostname": "cd-meta"}"#,
            ),
        ],
    );
    // The state disk carries a broken drop-in: the machine boots with the other layers.
    let state = ext4_with(
        &env.dir,
        "state.img",
        "BERTH_STATE",
        &[(
            "lib/berth/conf/cloud-config.d/50-broken.yml",
            "berth:\n  ssh: [oops\n",
        )],
    );
    let mut vm = env.kernel_vm("");
    vm.disks = vec![state, drive, gpt_disk_to_grow(&env.dir)];
    let agent = env.dir.join("qga.sock");
    vm.guest_agent = Some(agent.clone());
    let m = env.start("configdrive", vm);
    check(&m, "boot to ssh (keys from config-drive)", m.wait_ssh(BOOT));
    assert_eq!(check(&m, "hostname", m.run("hostname")).trim(), "cd-host");
    let report = check(&m, "cloud-init report", m.run("cat /run/berth/cloud-init.json"));
    assert!(
        report.contains("\"configdrive\""),
        "not from config-drive: {report}"
    );
    let issue = check(&m, "banner", m.run("cat /etc/issue"));
    assert!(
        issue.contains("50-broken.yml:2:") && issue.contains("Problems found during boot"),
        "the broken layer is not on the banner:\n{issue}"
    );
    assert_eq!(
        check(&m, "write_files", m.run("cat /etc/berth-e2e/console-file")).trim(),
        "from-config-drive"
    );
    assert_eq!(
        check(
            &m,
            "write_files into the docker container",
            m.run("sudo system-docker exec docker cat /etc/berth-e2e/in-docker")
        )
        .trim(),
        "in-the-docker-service"
    );
    let ran = check(
        &m,
        "runcmd",
        m.run("for i in $(seq 60); do test -s ~/runcmd.log && break; sleep 2; done; cat ~/runcmd.log"),
    );
    assert_eq!(ran.lines().count(), 1, "runcmd output: {ran:?}");
    // A RancherOS configuration (it has `rancher:`): `rancher` is a name of the login account,
    // as RancherOS's docs use it in runcmd, write_files and ssh.
    let as_rancher = check(
        &m,
        "ssh as rancher",
        m.run_as(
            "rancher",
            "id -u; stat -c %u /home/berth/owned; cat /home/rancher/owned; echo; test -e /home/berth/test1 && echo test1; sudo -n true && echo sudo-ok",
        ),
    );
    assert_eq!(
        as_rancher.split_whitespace().collect::<Vec<_>>(),
        ["1100", "1100", "by-rancher", "test1", "sudo-ok"],
        "{as_rancher}"
    );
    // RancherOS's modules key from user-data, with a parameter: loaded by cloud-init on the
    // first boot (its container has the modules but no modprobe program).
    assert_eq!(
        check(
            &m,
            "user-data module with parameter",
            m.run("cat /sys/module/nbd/parameters/nbds_max")
        )
        .trim(),
        "16"
    );

    // rancher.resize_device from the first boot's user-data: the last partition of vdc fills
    // the enlarged disk and its ext4 grew online (from 38 MiB; statfs counts data blocks).
    let grown = check(
        &m,
        "resize_device",
        m.run(
            "for i in $(seq 30); do test $(cat /sys/class/block/vdc1/size) -gt 200000 && break; sleep 2; done; \
             cat /sys/class/block/vdc1/start /sys/class/block/vdc1/size; sudo mkdir -p /mnt/grow; sudo mount -o ro /dev/vdc1 /mnt/grow; \
             stat -f -c '%b %S' /mnt/grow; sudo umount /mnt/grow",
        ),
    );
    let numbers: Vec<u64> = grown.split_whitespace().map(|n| n.parse().unwrap()).collect();
    // It ends at the disk's last usable sector (before the 33 sectors of the backup GPT).
    assert_eq!(
        numbers[0] + numbers[1],
        (128 << 11) - 33,
        "vdc1 did not grow to the disk's end: {grown}"
    );
    assert!(
        numbers[2] * numbers[3] > 100 << 20,
        "the filesystem did not grow: {grown}"
    );
    assert!(
        !check(&m, "banner", m.run("cat /etc/issue")).contains("resize_device"),
        "resize_device reported a problem"
    );

    docker_tls_and_registry_auths(&m);

    // A local setting wins over the datasource's and survives a reboot; runcmd does not rerun.
    check(
        &m,
        "config set",
        m.run("sudo berth config set hostname set-by-admin"),
    );
    // An optional service enabled now runs at once and after the reboot.
    check(
        &m,
        "service enable",
        m.run("sudo berth service enable qemu-guest-agent"),
    );
    reboot(&m);
    assert_eq!(
        check(&m, "hostname after reboot", m.run("hostname")).trim(),
        "set-by-admin"
    );
    assert_eq!(
        check(&m, "config get", m.run("sudo berth config get hostname")).trim(),
        "set-by-admin"
    );
    // `ros` is another name for berth in the console: RancherOS's spellings answer as berth's.
    assert_eq!(
        check(&m, "ros config get", m.run("sudo ros config get hostname")).trim(),
        "set-by-admin"
    );
    let help = check(&m, "ros --help", m.run("ros --help"));
    assert!(
        help.contains("ros config get KEY") && help.contains("berth config get KEY"),
        "ros --help does not list the mapping: {help}"
    );
    let refused = m.ssh("ros config images").unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not in Berth: use"),
        "{refused:?}"
    );
    std::thread::sleep(Duration::from_secs(10));
    let ran = check(&m, "runcmd once", m.run("cat ~/runcmd.log"));
    assert_eq!(
        ran.lines().count(),
        1,
        "runcmd ran again on the same instance: {ran:?}"
    );
    status_service_and_logs(&m);
    guest_agent(&m, &agent);
    poweroff(&m);
}

/// `rancher.docker.tls: true` from user-data: User Docker answers the login user's client
/// certificate (copied to ~/.docker) on TCP 2376 and refuses plain HTTP and another CA's
/// client; `rancher.registry_auths` is in ~/.docker/config.json, 0600, and in no log.
fn docker_tls_and_registry_auths(m: &berth_e2e::machine::Machine) {
    // The docker service restarts with TLS once cloud-init has applied the user-data.
    let version = check(
        m,
        "docker --tlsverify over TCP",
        m.run(
            "for i in $(seq 60); do \
               docker --tlsverify -H tcp://127.0.0.1:2376 version --format '{{.Server.Version}}' 2>/dev/null && break; \
               sleep 1; done",
        ),
    );
    assert!(
        version.trim().chars().next().is_some_and(|c| c.is_ascii_digit()),
        "no answer over TLS: {version:?}"
    );
    let out = check(
        m,
        "refused without the client certificate",
        m.run(
            "stat -c '%a %u' ~/.docker/key.pem ~/.docker/config.json; \
             docker -H tcp://127.0.0.1:2376 version >/dev/null 2>&1 && echo PLAIN-ANSWERED; \
             sudo berth tls gen --server --dir /tmp/other-ca >/dev/null && \
             docker --tlsverify --tlscacert ~/.docker/ca.pem --tlscert /tmp/other-ca/cert.pem \
               --tlskey /tmp/other-ca/key.pem -H tcp://127.0.0.1:2376 version >/dev/null 2>&1 \
               && echo OTHER-CA-ANSWERED; \
             sudo berth tls gen | head -1; \
             tr -d ' \n' < ~/.docker/config.json | grep -o '\"registry.example:5000\":{[^}]*}'; \
             { sudo system-docker logs console; sudo system-docker logs docker; \
               sudo cat /var/log/boot/*; sudo berth config export; } 2>&1 | grep -c s3cret-e2e; true",
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "600 1100",
            "600 1100",
            "kept the certificates in /var/lib/berth/tls (--force makes new ones)",
            // base64("e2e:s3cret-e2e")
            "\"registry.example:5000\":{\"auth\":\"ZTJlOnMzY3JldC1lMmU=\"}",
            "0",
        ],
        "{out}"
    );
}

/// The optional qemu-guest-agent service, enabled before the reboot, answers the host on its
/// virtio-serial channel; disabling it removes it.
fn guest_agent(m: &berth_e2e::machine::Machine, socket: &Path) {
    use std::io::{BufRead, BufReader};
    let list = check(m, "service list", m.run("sudo berth service list --format json"));
    let services: serde_json::Value = serde_json::from_str(&list).unwrap();
    let qga = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "qemu-guest-agent")
        .unwrap_or_else(|| panic!("no qemu-guest-agent: {list}"));
    assert_eq!(
        (&qga["enabled"], &qga["optional"], &qga["state"]),
        (&true.into(), &true.into(), &"running".into()),
        "{qga}"
    );
    let mut answer = String::new();
    for _ in 0..10 {
        let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
            std::thread::sleep(Duration::from_secs(2));
            continue;
        };
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
            .write_all(b"{\"execute\": \"guest-sync\", \"arguments\": {\"id\": 4242}}\n")
            .unwrap();
        answer.clear();
        let _ = BufReader::new(&stream).read_line(&mut answer);
        if answer.contains("4242") {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(answer.contains("\"return\": 4242"), "guest agent: {answer:?}");
    check(
        m,
        "service disable",
        m.run("sudo berth service disable qemu-guest-agent"),
    );
    let ps = check(
        m,
        "containers",
        m.run("sudo system-docker ps -a --format '{{.Names}}'"),
    );
    assert!(!ps.lines().any(|l| l == "qemu-guest-agent"), "{ps}");
    let conf = check(m, "config", m.run("sudo berth config get berth.services_include"));
    assert!(conf.contains("qemu-guest-agent: false"), "{conf}");
}

/// `berth status`, `berth service` and `berth logs` on this machine (state disk, one broken
/// layer): what they say matches the engines and the boot.
fn status_service_and_logs(m: &berth_e2e::machine::Machine) {
    let text = check(m, "status", m.run("sudo berth status --format json"));
    let status: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status json: {e}: {text}"));
    let services = status["services"].as_array().unwrap();
    for name in ["network", "cloud-init", "docker", "console"] {
        let s = services
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in berth status: {text}"));
        assert_eq!(s["scope"], "system", "{s}");
        let want = if name == "cloud-init" { "exited" } else { "running" };
        assert_eq!(s["state"], want, "{s}");
    }
    assert_eq!(status["engines"][1]["name"], "User Docker", "{text}");
    assert!(status["engines"][1]["version"].is_string(), "{text}");
    assert_eq!(status["state_disk"]["persistent"], true, "{text}");
    assert!(
        status["state_disk"]["device"]
            .as_str()
            .unwrap()
            .starts_with("/dev/"),
        "{text}"
    );
    assert!(
        status["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("50-broken.yml:2:")),
        "{text}"
    );
    // Without sudo: the screen still comes, System Docker says why it cannot be asked.
    let plain = check(m, "status as berth", m.run("berth status"));
    assert!(
        plain.contains("System Docker: not reachable") && plain.contains("run this with sudo"),
        "{plain}"
    );
    // e2e-app waited for e2e-db's healthcheck; e2e-crash is shown failing, the rest is up.
    assert_eq!(
        check(m, "readiness", m.run("cat /run/berth-e2e/app")).trim(),
        "ready"
    );
    let find = |name: &str| {
        services
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in berth status: {text}"))
    };
    assert_eq!(find("e2e-db")["health"], "healthy", "{text}");
    assert_eq!(find("e2e-db")["failing"], false, "{text}");
    let crash = find("e2e-crash");
    assert_eq!(crash["failing"], true, "{text}");
    assert!(crash["restarts"].as_i64().unwrap() >= 1, "{text}");
    let ps = check(m, "service ps", m.run("sudo berth service ps"));
    assert!(
        ps.lines()
            .any(|l| l.starts_with("console ") && l.contains(" running ")),
        "{ps}"
    );
    let logs = check(
        m,
        "service logs",
        m.run("sudo berth service logs -n 50 console 2>&1"),
    );
    assert!(logs.contains("console-init: ready"), "{logs}");
    let unknown = check(m, "unknown service", m.ssh("sudo berth service stop nosuch"));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no service named \"nosuch\""),
        "{unknown:?}"
    );
    let boot = check(m, "boot logs", m.run("sudo berth logs --boot -n 3"));
    assert!(boot.contains("==> /var/log/boot/"), "{boot}");
    // Tab completion works in a login shell out of the box.
    check(m, "bash completion", m.run("bash -lc 'complete -p berth'"));
}

#[test]
fn vm_cloud_config_url_gzip_multipart() {
    let env = env("ci-url");
    let root = env.dir.join("http");
    std::fs::create_dir_all(&root).unwrap();
    let cloud_config = format!(
        "#cloud-config\nhostname: url-host\nssh_authorized_keys:\n  - {}\n",
        env.public_key
    );
    let script = "#!/bin/sh\necho script-ran > /home/berth/script.log\n";
    let multipart = format!(
        "Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n\
         --XX\nContent-Type: text/cloud-config\n\n{cloud_config}\n\
         --XX\nContent-Type: text/x-shellscript\n\n{script}\n--XX--\n"
    );
    std::fs::write(root.join("user-data.gz"), gzip(multipart.as_bytes())).unwrap();
    let mut vm = env.kernel_vm("cloud-config-url=http://10.0.2.100/user-data.gz");
    vm.guest_forwards.push(http_forward("10.0.2.100", 80, &root));
    let m = env.start("url", vm);
    check(&m, "boot to ssh (keys from the URL)", m.wait_ssh(BOOT));
    assert_eq!(check(&m, "hostname", m.run("hostname")).trim(), "url-host");
    let ran = check(
        &m,
        "script",
        m.run("for i in $(seq 60); do test -s ~/script.log && break; sleep 2; done; cat ~/script.log"),
    );
    assert_eq!(ran.trim(), "script-ran");
    let requests = std::fs::read_to_string(env.dir.join("requests.log")).unwrap_or_default();
    assert!(requests.contains("GET /user-data.gz"), "{requests}");
    poweroff(&m);
}

#[test]
fn vm_ec2_metadata_service() {
    let env = env("ci-ec2");
    let root = env.dir.join("http");
    let md = root.join("latest/meta-data");
    std::fs::create_dir_all(md.join("public-keys/0")).unwrap();
    std::fs::write(md.join("instance-id"), "i-0e2e0001").unwrap();
    std::fs::write(md.join("local-hostname"), "ip-10-0-0-7.ec2.internal").unwrap();
    // The server lists public-keys/ as "0/", which EC2 clients read like "0=name".
    std::fs::write(
        md.join("public-keys/0/openssh-key"),
        format!("{}\n", env.public_key),
    )
    .unwrap();
    std::fs::write(
        root.join("latest/user-data"),
        "#cloud-config\nwrite_files:\n  - path: /etc/berth-e2e/ec2\n    content: from-ec2-user-data\n",
    )
    .unwrap();
    let mut vm = env.kernel_vm("berth.cloud_init.datasources=[ec2]");
    vm.net = Some("169.254.169.0/24".into());
    vm.guest_forwards.push(http_forward("169.254.169.254", 80, &root));
    let m = env.start("ec2", vm);
    check(&m, "boot to ssh (key from meta-data)", m.wait_ssh(BOOT));
    assert_eq!(check(&m, "hostname", m.run("hostname")).trim(), "ip-10-0-0-7");
    assert_eq!(
        check(&m, "user-data", m.run("cat /etc/berth-e2e/ec2")).trim(),
        "from-ec2-user-data"
    );
    let requests = std::fs::read_to_string(env.dir.join("requests.log")).unwrap_or_default();
    assert!(
        requests.contains("PUT /latest/api/token"),
        "IMDSv2 was not used: {requests}"
    );
    poweroff(&m);
}

#[test]
fn vm_file_datasource_with_broken_user_data() {
    let env = env("ci-file");
    let state = ext4_with(
        &env.dir,
        "state.img",
        "BERTH_STATE",
        &[(
            "lib/berth/seed/user-data",
            "#cloud-config\nhostname: never\nwrite_files: [path: /x\n",
        )],
    );
    let key: String = env
        .public_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let mut vm = env.kernel_vm(&format!(
        "berth.cloud_init.datasources=[file:/var/lib/berth/seed/user-data] cc.ssh_authorized_keys=\"{key}\""
    ));
    // A vendor's OEM partition, labelled as RancherOS's were, with a RancherOS-style layer:
    // with the user-data broken, its hostname is the one that applies.
    let oem = vfat_with(
        &env.dir,
        "oem.img",
        "RANCHER_OEM",
        &[(
            "oem-config.yml",
            "#cloud-config\nhostname: oem-host\nrancher:\n  sysctl:\n    vm.max_map_count: 262145\n",
        )],
    );
    vm.disks.push(state);
    vm.disks.push(oem);
    let m = env.start("file", vm);
    check(&m, "boot to ssh despite the broken user-data", m.wait_ssh(BOOT));
    let hostname = check(&m, "hostname", m.run("hostname"));
    assert_eq!(
        hostname.trim(),
        "oem-host",
        "the OEM layer's hostname is not applied (and the broken user-data's must not be)"
    );
    let sysctl = check(&m, "OEM sysctl", m.run("cat /proc/sys/vm/max_map_count"));
    assert_eq!(
        sysctl.trim(),
        "262145",
        "the OEM layer's rancher.sysctl is not applied"
    );
    let layer = check(
        &m,
        "OEM layer in the CLI",
        m.run("sudo berth config get hostname; grep ' /run/berth/oem ' /proc/mounts"),
    );
    assert!(
        layer.contains("oem-host") && layer.contains(" ro,"),
        "the CLI does not see the OEM layer, or it is not mounted read-only:\n{layer}"
    );
    let issue = check(&m, "banner", m.run("cat /etc/issue"));
    assert!(
        issue.contains("cloud-init:") && issue.contains(":3:"),
        "the user-data error (with its line) is not on the banner:\n{issue}"
    );
    let report = check(&m, "cloud-init report", m.run("cat /run/berth/cloud-init.json"));
    assert!(
        report.contains("\"name\": \"file:/var/lib/berth/seed/user-data\""),
        "not from the file datasource: {report}"
    );
    poweroff(&m);
}
