//! Boot the image and check what issue #2 promises, sharing one VM between the checks where
//! they can. Run by `cargo xtask test` after `cargo xtask build` (one VM at a time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use common::{BOOT, check, env, poweroff, reboot};

/// Kernel + initrd with a state disk: PID 1, the services, a user container with a published
/// port, `docker rm -f` of everything, killing System Docker, a reboot that keeps the data, and
/// a poweroff that ends QEMU.
#[test]
fn vm_kernel_initrd_with_state_disk() {
    let env = env("kernel-initrd");
    let state = env.ext4_disk("state.img", 3072, "BERTH_STATE");
    let mut vm = env.kernel_vm("");
    vm.disks.push(state);
    let (engines, served) = engines_disk(&env);
    vm.disks.push(engines);
    // The newer engine file and its signature over http, for `berth engine switch URL`.
    vm.guest_forwards
        .push(common::http_forward("10.0.2.100", 80, &served));
    vm.cidata = Some(env.cidata(&env.user_data("berth-e2e-one", "")));
    let m = env.start("first-boot", vm);
    check(&m, "first boot to ssh", m.wait_ssh(BOOT));

    // PID 1 is Berth's init; System Docker runs the console and the user engine.
    let pid1 = check(&m, "pid 1", m.run("tr '\\0' ' ' < /proc/1/cmdline"));
    assert!(pid1.starts_with("init"), "PID 1 is {pid1:?}");
    let services = check(
        &m,
        "system-docker ps",
        m.run("sudo system-docker ps --format '{{.Names}}'"),
    );
    for want in ["console", "docker", "network"] {
        assert!(
            services.lines().any(|l| l == want),
            "{want} not running: {services}"
        );
    }
    image_store_in_use(&m, "System Docker's data root now uses the read-only store");
    images_out_of_ram(&m, "copied");

    let hostname = check(&m, "hostname", m.run("hostname"));
    assert_eq!(hostname.trim(), "berth-e2e-one");
    let state = check(
        &m,
        "state mount",
        m.run("findmnt -n -o SOURCE,FSTYPE /var/lib/berth"),
    );
    assert!(
        state.contains("ext4") && state.contains("/dev/vda"),
        "/var/lib/berth is on {state}"
    );

    // A user container built from a local image serves a published port inside the VM.
    check(
        &m,
        "build and run a web container",
        m.run(&format!(
            "sudo system-docker save {base} | docker load >/dev/null && mkdir -p /tmp/web && cd /tmp/web && \
             printf 'FROM {base}\\nRUN mkdir /www && echo hello-from-berth > /www/index.html\\n\
             CMD [\"busybox\",\"httpd\",\"-f\",\"-p\",\"80\",\"-h\",\"/www\"]\\n' > Dockerfile && \
             DOCKER_BUILDKIT=0 docker build -q -t web . >/dev/null && docker run -d --name web -p 8080:80 web >/dev/null",
            base = format!("berth/base:{}", env!("CARGO_PKG_VERSION"))
        )),
    );
    let body = check(
        &m,
        "published port",
        m.run("for i in $(seq 30); do wget -qO- http://127.0.0.1:8080/ && exit 0; sleep 1; done; exit 1"),
    );
    assert_eq!(body.trim(), "hello-from-berth");

    // Data that must survive the reboot: a file in /home, a volume, the image.
    check(
        &m,
        "write data",
        m.run(
            "echo kept > ~/marker && docker volume create keep >/dev/null && \
             docker run --rm -v keep:/d web sh -c 'echo in-volume > /d/f'",
        ),
    );
    // Removed below by `docker rm -f`, then run again for the reboot check.
    check(
        &m,
        "restart policy container",
        m.run("docker run -d --name always-up --restart unless-stopped web >/dev/null"),
    );

    // Removing every user container leaves the OS alone.
    check(
        &m,
        "docker rm -f",
        m.run("docker rm -f $(docker ps -qa) >/dev/null; docker ps -qa | wc -l"),
    );
    let after = check(
        &m,
        "system-docker ps",
        m.run("sudo system-docker ps --format '{{.Names}}'"),
    );
    for want in ["console", "docker", "network"] {
        assert!(
            after.lines().any(|l| l == want),
            "{want} gone after docker rm -f: {after}"
        );
    }
    check(
        &m,
        "docker still answers",
        m.run("docker info --format '{{.ServerVersion}}'"),
    );

    // Killing System Docker: init restarts it and the services come back (or stay up).
    let old = check(&m, "system docker pid", m.run("cat /run/system-docker.pid"));
    check(
        &m,
        "kill system docker",
        m.run(&format!("sudo kill -9 {}", old.trim())),
    );
    let revived = check(
        &m,
        "System Docker back",
        m.run(&format!(
            "for i in $(seq 90); do p=$(cat /run/system-docker.pid 2>/dev/null); \
             if [ -n \"$p\" ] && [ \"$p\" != {} ] && sudo system-docker ps --format '{{{{.Names}}}}' 2>/dev/null | grep -qx console; \
             then sudo system-docker ps --format '{{{{.Names}}}}'; exit 0; fi; sleep 2; done; exit 1",
            old.trim()
        )),
    );
    for want in ["console", "docker", "network"] {
        assert!(revived.lines().any(|l| l == want), "{want} not back: {revived}");
    }
    check(
        &m,
        "user docker after the restart",
        m.run("docker info --format '{{.ServerVersion}}'"),
    );

    let newer = engine_switch_and_back(&m);

    // Reboot: the machine comes back with the data on the state disk, on the engine chosen
    // last (28.x, whose data it is: the container made before the switches is there too), and
    // none of the bad input's problems.
    reboot(&m);
    let kept = check(
        &m,
        "data after reboot",
        m.run(
            "cat ~/marker; docker run --rm -v keep:/d web cat /d/f; docker images -q web | wc -l; \
             docker version --format '{{.Server.Version}}' | cut -d. -f1; \
             docker ps -a --format '{{.Names}}' | grep -x made-before && docker rm made-before >/dev/null; \
             berth status | grep -c -e docker-1.10.3 -e 'without TCP/TLS' || true",
        ),
    );
    assert_eq!(
        kept.split_whitespace().collect::<Vec<_>>(),
        [
            "kept",
            "in-volume",
            "1",
            &engine_major(&newer).to_string(),
            "made-before",
            "0"
        ],
        "{kept}"
    );
    image_store_in_use(&m, "is in use (");
    images_out_of_ram(&m, "already there");

    // poweroff ends QEMU.
    poweroff(&m);
    assert!(m.console().contains("poweroff"), "no poweroff in the console log");
}

/// A disk labelled ENGINES with the build's other engines (`docker-V.engine` + `.minisig`) and
/// `flipped.engine`: the oldest of them with one byte flipped, and its signature; and a
/// directory holding the newest of them (with its signature), to serve over http.
fn engines_disk(env: &common::Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let engines = env.artifacts.out.join("engines");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&engines)
        .unwrap_or_else(|e| panic!("{}: {e} (cargo xtask build writes it)", engines.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "engine"))
        .collect();
    files.sort_by_key(|p| engine_major(&p.file_name().unwrap().to_string_lossy()));
    assert!(files.len() >= 2, "two other engines expected: {files:?}");
    let dir = env.dir.join("engines");
    std::fs::create_dir_all(&dir).unwrap();
    let mut size = 0;
    for engine in &files {
        let name = engine.file_name().unwrap();
        std::fs::copy(engine, dir.join(name)).unwrap();
        let sig = berth_upgrade::signature_path(engine);
        std::fs::copy(&sig, berth_upgrade::signature_path(&dir.join(name))).unwrap();
        size += std::fs::metadata(engine).unwrap().len();
    }
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(dir.join("flipped.engine"), &bytes).unwrap();
    std::fs::copy(
        berth_upgrade::signature_path(&files[0]),
        dir.join("flipped.engine.minisig"),
    )
    .unwrap();
    size += bytes.len() as u64;
    let disk = env.dir.join("engines.img");
    berth_e2e::qemu::make_ext4_disk_from(&disk, (size >> 20) * 2 + 64, "ENGINES", Some(&dir)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let served = env.dir.join("served-engines");
    std::fs::create_dir_all(&served).unwrap();
    let newest = files.last().unwrap();
    let name = newest.file_name().unwrap();
    std::fs::copy(newest, served.join(name)).unwrap();
    std::fs::copy(
        berth_upgrade::signature_path(newest),
        berth_upgrade::signature_path(&served.join(name)),
    )
    .unwrap();
    (disk, served)
}

/// The engines `berth engine list` printed in `text`: (current, name), in its order.
fn listed_engines(text: &str) -> Vec<(bool, &str)> {
    text.lines()
        .filter(|l| l.contains("docker-"))
        .filter_map(|l| {
            let current = l.starts_with('*');
            l.split_whitespace()
                .find(|w| w.starts_with("docker-"))
                .map(|n| (current, n))
        })
        .collect()
}

/// The major version in an engine's name or file name (`docker-20.10.24.engine` → 20).
fn engine_major(name: &str) -> u32 {
    name.trim_start_matches("/mnt/engines/")
        .trim_start_matches("docker-")
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no major version in {name}"))
}

/// Restart User Docker the way the system does (System Docker restarts the `docker` service)
/// and wait until it answers; returns its version.
fn restart_user_docker(m: &berth_e2e::machine::Machine) -> String {
    check(
        m,
        "restart the docker service",
        m.run(
            "sudo system-docker restart docker >/dev/null && for i in $(seq 120); do \
             docker version --format '{{.Server.Version}}' 2>/dev/null && exit 0; sleep 1; done; exit 1",
        ),
    )
    .trim()
    .to_string()
}

/// `berth engine switch` through the build's other engines: a corrupted engine file is refused
/// and changes nothing; the older engine (20.10) runs on its own data root and runs a
/// container; back on the release's engine by name, the container and the named volume made
/// before are there; the newer engine (28.x, from a URL) shares the data: the container, image
/// and volume are there, and `berth engine list` shows the three. (Going back from 28.x to the
/// release's engine would be a downgrade of the data: a data root of its own, docs/engines.md.)
/// Then bad input reaching the `docker` service (an engine that is not
/// installed, TLS with its certificates gone): User Docker runs the release's engine on its Unix
/// socket and `berth status` names both. Last, 28.x chosen again for the reboot that follows.
/// `ros engine list` answers as `berth engine list`; a cloud-config naming an engine that is not
/// installed fails `berth config validate` with file:line:key.
/// Returns the newer engine's name, the one User Docker runs at the end.
fn engine_switch_and_back(m: &berth_e2e::machine::Machine) -> String {
    let base = format!("berth/base:{}", env!("CARGO_PKG_VERSION"));
    let before = check(
        m,
        "made on the release's engine",
        m.run(
            "docker create --name made-before -v keep:/d web >/dev/null && \
             docker version --format '{{.Server.Version}}'",
        ),
    );
    let release_version = before.trim().to_string();
    let list = check(m, "berth engine list", m.run("berth engine list"));
    let ros = check(m, "ros engine list", m.run("ros engine list"));
    assert_eq!(list, ros, "ros engine list differs");
    let release = list
        .lines()
        .find(|l| l.starts_with('*'))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no current engine: {list}"))
        .to_string();
    // Docker's version is Debian's (`26.1.5+dfsg1`); the engine's name has Docker's own.
    let docker_name = |version: &str| format!("docker-{}", version.split('+').next().unwrap_or_default());
    assert_eq!(release, docker_name(&release_version), "{list}");
    let files = check(
        m,
        "the engines disk",
        m.run(
            "sudo mkdir -p /mnt/engines && sudo mount -o ro /dev/disk/by-label/ENGINES /mnt/engines && \
             ls /mnt/engines/docker-*.engine",
        ),
    );
    let mut files: Vec<&str> = files.split_whitespace().collect();
    files.sort_by_key(|f| engine_major(f));
    let [older_file, newer_file] = files[..] else {
        panic!("two engine files expected: {files:?}")
    };
    let name_of = |file: &str| {
        file.trim_start_matches("/mnt/engines/")
            .trim_end_matches(".engine")
            .to_string()
    };
    let (older, newer) = (name_of(older_file), name_of(newer_file));
    assert!(engine_major(&older) < engine_major(&release) && engine_major(&release) < engine_major(&newer));

    // One byte flipped: refused before anything changes; User Docker keeps running.
    let bad = m
        .ssh("sudo berth engine switch /mnt/engines/flipped.engine")
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "a flipped engine was accepted: {err}");
    assert!(
        err.contains("flipped.engine: the signature does not match the engine file"),
        "{err}"
    );
    let still = check(
        m,
        "after the refused engine",
        m.run("docker version --format '{{.Server.Version}}'; ls -A /var/lib/berth/engines | wc -l"),
    );
    assert_eq!(
        still.split_whitespace().collect::<Vec<_>>(),
        [release_version.as_str(), "0"],
        "{still}"
    );

    // The older engine: verified, installed, User Docker restarted on it with its own data root.
    let out = check(
        m,
        "switch to the older engine",
        m.run(&format!("sudo berth engine switch {older_file} 2>&1")),
    );
    assert!(
        out.contains(&format!("User Docker runs {older}")) && out.contains("data root of its own"),
        "{out}"
    );
    let on_older = check(
        m,
        "the older engine runs a container",
        m.run(&format!(
            "docker version --format '{{{{.Server.Version}}}}'; berth engine list; \
             sudo system-docker save {base} | docker load >/dev/null && docker run --rm {base} busybox echo ran-on-older"
        )),
    );
    let mut lines = on_older.lines();
    assert_eq!(docker_name(lines.next().unwrap_or_default()), older, "{on_older}");
    let listed = listed_engines(&on_older);
    assert_eq!(
        listed,
        [(false, release.as_str()), (true, older.as_str())],
        "{on_older}"
    );
    assert!(on_older.contains("ran-on-older"), "{on_older}");

    // A cloud-config naming an engine this machine does not have: file:line:key.
    let validate = m
        .ssh("printf 'rancher:\n  docker:\n    engine: docker-1.10.3\n' > /tmp/engine.yml && berth config validate --input /tmp/engine.yml")
        .unwrap();
    let said = String::from_utf8_lossy(&validate.stderr);
    assert!(
        !validate.status.success()
            && said.contains("/tmp/engine.yml:3:5: berth.docker.engine: docker-1.10.3 is not installed"),
        "{said}"
    );

    // Back to the release's engine by name: the container and the volume made before are
    // there (the older engine's data root stayed apart).
    let back = check(
        m,
        "switch back",
        m.run(&format!("sudo berth engine switch {release} 2>&1")),
    );
    assert!(back.contains(&format!("User Docker runs {release}")), "{back}");
    let kept = check(
        m,
        "data after switching back",
        m.run(
            "docker version --format '{{.Server.Version}}'; docker ps -a --format '{{.Names}}' | grep -x made-before; \
             docker run --rm -v keep:/d web cat /d/f",
        ),
    );
    assert_eq!(
        kept.split_whitespace().collect::<Vec<_>>(),
        [release_version.as_str(), "made-before", "in-volume"],
        "{kept}"
    );

    // The newer engine, from a URL (its signature at URL.minisig): it shares the data, the
    // container, the image and the volume are there.
    let out = check(
        m,
        "switch to the newer engine by URL",
        m.run(&format!(
            "sudo berth engine switch http://10.0.2.100/{newer}.engine 2>&1"
        )),
    );
    assert!(
        out.contains(&format!("Installed {newer}"))
            && out.contains(&format!("User Docker runs {newer}"))
            && !out.contains("data root of its own"),
        "{out}"
    );
    let on_newer = check(
        m,
        "the newer engine has the data and runs a container",
        m.run(
            "docker version --format '{{.Server.Version}}'; docker ps -a --format '{{.Names}}' | grep -x made-before; \
             docker run --rm -v keep:/d web cat /d/f; berth engine list",
        ),
    );
    let words: Vec<&str> = on_newer.split_whitespace().collect();
    assert_eq!(words[1..3], ["made-before", "in-volume"], "{on_newer}");
    assert_eq!(docker_name(words[0]), newer, "{on_newer}");
    assert_eq!(
        listed_engines(&on_newer),
        [
            (false, release.as_str()),
            (false, older.as_str()),
            (true, newer.as_str())
        ],
        "{on_newer}"
    );

    // Bad input reaching the docker service past `config validate` (the local layer, where
    // `berth engine switch` saved 28.x, written directly): an engine that is not installed, and
    // TLS with the server's certificates moved away. User Docker falls back from 28.x to the
    // release's engine, on its Unix socket only; `berth status` says both. Then the clean
    // state again (checked after the reboot below).
    check(
        m,
        "break the engine and TLS settings",
        m.run(
            "sudo cp -p /var/lib/berth/conf/cloud-config.yml /tmp/cloud-config.yml.kept && \
             printf 'berth:\\n  docker:\\n    engine: docker-1.10.3\\n    tls: true\\n' | \
             sudo tee /var/lib/berth/conf/cloud-config.yml >/dev/null && \
             sudo berth tls gen --server >/dev/null && \
             sudo mv /var/lib/berth/tls/server-cert.pem /var/lib/berth/tls/server-key.pem /tmp/",
        ),
    );
    assert_eq!(restart_user_docker(m), release_version);
    let status = check(m, "berth status", m.run("berth status"));
    assert!(
        status.contains("berth.docker.engine: docker-1.10.3 is not installed")
            && status.contains(&format!("runs this release's engine, {release}"))
            && status.contains("User Docker listens without TCP/TLS")
            && status.contains("server-cert.pem, server-key.pem missing"),
        "{status}"
    );
    let tcp = m.ssh("docker -H tcp://127.0.0.1:2376 version").unwrap();
    let refused = String::from_utf8_lossy(&tcp.stderr);
    assert!(
        !tcp.status.success()
            && (refused.contains("connection refused")
                || refused.contains("Cannot connect to the Docker daemon")),
        "User Docker listens on TCP 2376 without its certificates: {}",
        String::from_utf8_lossy(&tcp.stderr)
    );
    // The clean state again, 28.x chosen as `berth engine switch` saved it: the reboot below
    // starts it, and checks the data is all there and no problem is left.
    let chosen = check(
        m,
        "clean state",
        m.run(
            "sudo mv /tmp/cloud-config.yml.kept /var/lib/berth/conf/cloud-config.yml && \
             sudo rm -rf /var/lib/berth/tls /tmp/server-*.pem && sudo umount /mnt/engines && \
             sudo berth config get berth.docker.engine",
        ),
    );
    assert_eq!(chosen.trim(), newer, "{chosen}");
    newer
}

/// System Docker has every system image from the read-only store, whose layers it reads in
/// place, and nothing was `docker load`ed in this boot or an earlier one. `assembled` is what
/// init said about the data root ("now uses the read-only store" on a first boot, "is in use"
/// when the state disk already holds this release's).
fn image_store_in_use(m: &berth_e2e::machine::Machine, assembled: &str) {
    let version = env!("CARGO_PKG_VERSION");
    let images = check(
        m,
        "system-docker images",
        m.run("sudo system-docker images --format '{{.Repository}}:{{.Tag}}'"),
    );
    for name in ["base", "console", "docker", "network"] {
        let want = format!("berth/{name}:{version}");
        assert!(images.lines().any(|l| l == want), "{want} missing: {images}");
    }
    let store = check(
        m,
        "store mount and layer links",
        m.run(
            &format!(
                "findmnt -n -o FSTYPE,OPTIONS /run/berth/images; \
                 sudo system-docker run --rm --network none -v /var/lib/system-docker/overlay2:/o:ro \
                 berth/base:{version} sh -c 'for d in /o/*/diff; do busybox readlink $d; done' | grep -c '^/run/berth/images/overlay2/'"
            ),
        ),
    );
    let mut lines = store.lines();
    let mount = lines.next().unwrap_or_default();
    assert!(
        mount.starts_with("squashfs") && mount.contains("ro"),
        "store mount: {store}"
    );
    let linked: usize = lines.next().unwrap_or("0").trim().parse().unwrap_or(0);
    assert!(linked >= 4, "layers read from the store: {store}");
    let logs = check(
        m,
        "boot logs",
        m.run("sudo cat /var/log/boot/init.log /var/log/boot/sysinit.log /var/log/system-docker.log"),
    );
    assert!(
        logs.contains(assembled),
        "init did not say {assembled:?}:\n{logs}"
    );
    assert!(
        logs.contains("system images: all present (read-only store, nothing loaded)"),
        "sysinit did not find the images present:\n{logs}"
    );
    for loading in ["system images loaded", "Loaded image", "waiting for berth/"] {
        assert!(
            !logs.contains(loading),
            "a system image was loaded ({loading:?}):\n{logs}"
        );
    }
}

/// With a state partition, the OS image and the system images the initrd brought are served
/// from copies on it (each loop device reads its copy), so the initramfs's RAM is freed. `how`
/// is what init said of both: "copied" at the first boot, "already there" after a reboot.
fn images_out_of_ram(m: &berth_e2e::machine::Machine, how: &str) {
    let out = check(
        m,
        "images out of RAM",
        m.run(
            "cat /sys/block/loop*/loop/backing_file; \
             sudo grep 'images out of RAM' /var/log/boot/init.log | tail -n 1",
        ),
    );
    let said = out.lines().last().unwrap_or_default();
    for name in ["os.img", "images.img"] {
        let copy = format!("/var/lib/berth/boot-images/{name}");
        assert!(
            out.lines().any(|l| l == copy),
            "no loop device reads {copy}:\n{out}"
        );
        assert!(
            said.contains(&format!("{name} ({how})")),
            "init did not say {name} ({how}):\n{out}"
        );
    }
}

/// `berth.system_docker.exec=true`, from RAM: System Docker is PID 1, it has the system images
/// from the read-only store, and reboot and poweroff still work.
#[test]
fn vm_exec_mode() {
    let env = env("exec-mode");
    let mut vm = env.kernel_vm("berth.system_docker.exec=true");
    vm.cidata = Some(env.cidata(&env.user_data("berth-exec", "")));
    let m = env.start("exec", vm);
    check(&m, "boot to ssh", m.wait_ssh(BOOT));
    let comm = check(&m, "pid 1", m.run("cat /proc/1/comm"));
    assert_eq!(comm.trim(), "dockerd", "PID 1 is {comm:?}");
    let services = check(
        &m,
        "system-docker ps",
        m.run("sudo system-docker ps --format '{{.Names}}'"),
    );
    assert!(services.lines().any(|l| l == "console"), "{services}");
    // From RAM: the images come from the read-only store here too, nothing loaded.
    image_store_in_use(&m, "System Docker's data root now uses the read-only store");
    reboot(&m);
    poweroff(&m);
}
