//! Three Berth machines form a Docker Swarm from cloud-config (issue #13), on a private segment
//! this test creates ([`berth_e2e::testnet`]): the manager (`init: true`) boots first; the test
//! serves its worker token to its subnet (`serve_token: true`); the test reads the token from it
//! (`sudo berth swarm token worker`) and boots both workers at once: B fetches the token from
//! the manager's server (`token_url: http://A:2378/worker-token`), C reads it from a file its
//! user-data writes (`token_file:`) holding a token with the right CA digest and a wrong
//! secret. C boots normally, its User Docker works, the error is reported; the test then puts
//! the right token in the file and C joins by itself (the agent reads the file at every retry).
//!
//! Then: three Ready nodes; a 3-replica service of an image loaded from System Docker's base
//! image spreads one task per node; a container on A's bridge network (a source address
//! outside the segment) is refused the token (403); B is cut off from the QEMU monitor
//! (`quit`, a node loss): the manager marks it Down and the three tasks run on A and C; B
//! boots again from the same state disk and seed and is Ready with the same node id, nobody
//! typing a command on it; meanwhile the manager removes C while it runs (`docker node rm
//! --force`): C's agent learns it from A and joins again as a new node by itself. B's engine
//! then leaves (`docker swarm leave --force` typed in its console, not through berth): B's
//! agent notices and joins again as a new node. Last, `sudo berth swarm leave --force` on the
//! last manager: the swarm is gone, the configuration keeps A out, the agent does not
//! re-create it.
//!
//! Needs root, iproute2 (see the README). Every machine has a state disk so that the engine's
//! swarm state survives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod common;

use berth_e2e::machine::Machine;
use berth_e2e::testnet::TestNet;
use common::{BOOT, Env, check, env, poweroff};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MACS: [&str; 3] = ["52:54:00:5a:00:0a", "52:54:00:5a:00:0b", "52:54:00:5a:00:0c"];
const ADDRS: [&str; 3] = ["198.18.5.10", "198.18.5.11", "198.18.5.12"];
const MEMORY_MIB: u32 = 640;
const TOKEN_FILE: &str = "/var/lib/berth/swarm-token";

/// User-data: eth0 (user networking, ssh) by DHCP, the segment NIC (by MAC) static, and
/// `swarm` under berth.
fn user_data(env: &Env, name: &str, i: usize, swarm: &str, extra: &str) -> String {
    env.user_data(
        &format!("swarm-{name}"),
        &format!(
            "rancher:
  network:
    interfaces:
      eth0:
        dhcp: true
      segment:
        match: mac={mac}
        address: {addr}/24
berth:
  swarm:
    advertise_addr: {addr}
{swarm}{extra}",
            mac = MACS[i],
            addr = ADDRS[i],
        ),
    )
}

struct Node {
    index: usize,
    seed: PathBuf,
    state: PathBuf,
}

impl Node {
    fn new(env: &Env, name: &'static str, index: usize, user_data: &str) -> Node {
        let seed = env.dir.join(format!("{name}-cidata.iso"));
        berth_e2e::qemu::make_cidata(
            &env.dir.join(format!("{name}-cidata")),
            user_data,
            &format!("instance-id: swarm-{name}\nlocal-hostname: swarm-{name}\n"),
            &seed,
        )
        .unwrap();
        let state = env.ext4_disk(&format!("{name}-state.img"), 1024, "BERTH_STATE");
        Node { index, seed, state }
    }

    /// Boot (again) from the same seed and state disk; `boot` names the console log.
    fn boot(&self, env: &Env, net: &TestNet, boot: &str) -> Machine {
        let mut vm = env.kernel_vm("");
        vm.memory_mib = MEMORY_MIB;
        vm.cpus = 1;
        vm.cidata = Some(self.seed.clone());
        vm.disks.push(self.state.clone());
        net.attach(&mut vm, MACS[self.index]);
        let m = env.start(boot, vm);
        check(&m, "ssh", m.wait_ssh(BOOT));
        m
    }
}

/// Run `cmd` until its output satisfies `done`; fail with the last output after `timeout`.
fn until(m: &Machine, cmd: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = m.ssh(cmd).unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && done(&text) {
            return text;
        }
        if Instant::now() > deadline {
            panic!(
                "[{}] `{cmd}` not as wanted after {}s:\n{text}\n--- console tail ---\n{}",
                m.name,
                timeout.as_secs(),
                berth_e2e::machine::tail(&m.console(), 20)
            );
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Wait (90 s at most) until the manager `a` lists `host` Ready under another id than
/// `old_id`; `docker node ls` then.
fn back_as_new_node(a: &Machine, host: &str, old_id: &str) -> String {
    until(
        a,
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.ID}}'",
        Duration::from_secs(90),
        |t| {
            t.lines()
                .any(|l| l.starts_with(&format!("{host} Ready ")) && !l.contains(old_id))
        },
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The service's running tasks as (node, state) pairs.
fn running_tasks(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("Running"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn vm_swarm_of_three_from_cloud_config_survives_a_node_loss() {
    let started = Instant::now();
    let env = env("swarm");
    let net = TestNet::new("swarm", &env.dir.join("net")).expect("test network");

    // A: the first manager.
    let a_node = Node::new(
        &env,
        "a",
        0,
        &user_data(
            &env,
            "a",
            0,
            "    role: manager\n    init: true\n    serve_token: true\n",
            "",
        ),
    );
    let a = a_node.boot(&env, &net, "a");
    eprintln!("A answers ssh after {:.0}s", started.elapsed().as_secs_f64());
    let status = until(
        &a,
        "berth swarm status --format json",
        Duration::from_secs(180),
        |t| t.contains("\"active\""),
    );
    let a_status = json(&status);
    assert_eq!(a_status["role"], "manager", "{status}");
    let token = check(&a, "token", a.run("sudo berth swarm token worker"))
        .trim()
        .to_string();
    assert!(token.starts_with("SWMTKN-1-"), "{token}");
    // Same CA digest, another secret: a token of the right shape that the manager refuses.
    let (digest, secret) = token.rsplit_once('-').unwrap();
    let wrong = format!("{digest}-{}", "x".repeat(secret.len()));
    let join = format!("    role: worker\n    join: {}:2377\n", ADDRS[0]);

    // B: the token from A's server; C: token_file, first with the wrong token.
    let token_url = format!("http://{}:2378/worker-token", ADDRS[0]);
    let b_node = Node::new(
        &env,
        "b",
        1,
        &user_data(&env, "b", 1, &format!("{join}    token_url: {token_url}\n"), ""),
    );
    let c_node = Node::new(
        &env,
        "c",
        2,
        &user_data(
            &env,
            "c",
            2,
            &format!("{join}    token_file: {TOKEN_FILE}\n"),
            &format!(
                "write_files:\n  - path: {TOKEN_FILE}\n    permissions: \"0600\"\n    content: {wrong}\n"
            ),
        ),
    );
    let (b, c) = std::thread::scope(|s| {
        let b = s.spawn(|| b_node.boot(&env, &net, "b"));
        let c = s.spawn(|| c_node.boot(&env, &net, "c"));
        (b.join().unwrap(), c.join().unwrap())
    });
    eprintln!("B and C answer ssh after {:.0}s", started.elapsed().as_secs_f64());

    // C: a wrong token is reported, the boot and User Docker are fine. On a busy machine the
    // engine's first join can time out (503 "Timeout was reached before node joined") before
    // the manager refuses the token: wait for the refusal itself.
    let c_status = until(
        &c,
        "berth swarm status --format json 2>/dev/null; true",
        Duration::from_secs(180),
        |t| t.contains("\"error\"") && t.contains("join token"),
    );
    let c_json = json(&c_status);
    assert_eq!(c_json["state"], "error", "{c_status}");
    assert!(
        c_json["error"].as_str().unwrap().contains("join token"),
        "{c_status}"
    );
    assert!(
        !c_status.contains(&wrong),
        "the report shows the token: {c_status}"
    );
    let engine = check(
        &c,
        "docker on C",
        c.run("docker info --format '{{.ServerVersion}}'"),
    );
    assert!(
        engine.trim().starts_with(|c: char| c.is_ascii_digit()),
        "{engine}"
    );
    let sysinit = check(&c, "sysinit report", c.run("sudo cat /run/berth/sysinit.json"));
    assert!(
        json(&sysinit)["errors"].as_array().is_none_or(|e| e.is_empty()),
        "{sysinit}"
    );
    // The right token into the file: C joins on its next retry (at most 30 s later).
    check(
        &c,
        "token file",
        c.run(&format!("echo {token} | sudo tee {TOKEN_FILE} >/dev/null")),
    );

    // Three Ready nodes.
    let nodes = until(
        &a,
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.ID}}'",
        Duration::from_secs(180),
        |t| t.lines().filter(|l| l.contains(" Ready ")).count() == 3,
    );
    eprintln!(
        "3 nodes Ready after {:.0}s:\n{nodes}",
        started.elapsed().as_secs_f64()
    );
    let id_of = |host: &str| {
        nodes
            .lines()
            .find(|l| l.starts_with(&format!("{host} ")))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap()
            .to_string()
    };
    let (b_id, c_id) = (id_of("swarm-b"), id_of("swarm-c"));
    for (m, name) in [(&b, "b"), (&c, "c")] {
        let s = until(
            m,
            "berth swarm status --format json",
            Duration::from_secs(60),
            |t| t.contains("\"active\""),
        );
        let s = json(&s);
        assert_eq!(s["role"], "worker", "{name}: {s}");
        assert_eq!(s["managers"][0], format!("{}:2377", ADDRS[0]), "{name}: {s}");
    }
    let b_status = check(&b, "berth status", b.run("sudo berth status"));
    assert!(b_status.contains("Swarm:         active, worker"), "{b_status}");
    // The token is in no log and no export without --private.
    for (m, what) in [
        (
            &b,
            "sudo cat /var/log/boot/swarm.log; sudo berth config export; sudo system-docker logs swarm 2>&1",
        ),
        (
            &c,
            "sudo cat /var/log/boot/swarm.log; sudo system-docker logs swarm 2>&1",
        ),
    ] {
        let out = check(m, "logs", m.run(what));
        assert!(
            !out.contains(secret) && !out.contains(&wrong),
            "[{}] the token shows:\n{out}",
            m.name
        );
    }

    // A service of 3 replicas, one per node: an image every node loads from System Docker.
    for m in [&a, &b, &c] {
        check(
            m,
            "image",
            m.run(
                "image=$(sudo system-docker image ls --format '{{.Repository}}:{{.Tag}}' | grep '^berth/base:' | head -n1) \
                 && sudo system-docker save \"$image\" | docker load -q && docker tag \"$image\" berth-e2e/sleeper:1",
            ),
        );
    }
    check(
        &a,
        "service create",
        a.run(
            "docker service create -d --name sleeper --replicas 3 --no-resolve-image \
             --placement-pref spread=node.id berth-e2e/sleeper:1 sleep 86400",
        ),
    );
    let ps =
        "docker service ps sleeper --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'";
    let tasks = until(&a, ps, Duration::from_secs(120), |t| running_tasks(t).len() == 3);
    let mut on: Vec<String> = running_tasks(&tasks);
    on.sort();
    assert_eq!(on, ["swarm-a", "swarm-b", "swarm-c"], "{tasks}");

    // A's token server: B got the worker token from it; C (inside the segment) gets the
    // worker token; a container on A's bridge (172.17.0.0/16, outside it) gets 403.
    let served = check(&c, "token from C", c.run(&format!("wget -q -O- {token_url}")));
    assert_eq!(served.trim(), token, "C got another token from A's server");
    let refused = a
        .ssh(&format!(
            "docker run --rm berth-e2e/sleeper:1 wget -q -O- {token_url} 2>&1"
        ))
        .unwrap();
    let refused_text = String::from_utf8_lossy(&refused.stdout);
    assert!(
        !refused.status.success() && refused_text.contains("403"),
        "a client outside the segment: {refused_text}"
    );
    assert!(!refused_text.contains(secret), "{refused_text}");
    let log = check(&a, "A's swarm log", a.run("sudo cat /var/log/boot/swarm.log"));
    assert!(
        log.contains(&format!("served the worker token to {}", ADDRS[1]))
            && log.contains("refused the worker token to 172.17.")
            && !log.contains(secret),
        "A's swarm log:\n{log}"
    );

    // B is lost: QEMU quits under it.
    let lost = Instant::now();
    let _ = b.monitor("quit");
    check(&b, "B gone", b.wait_exit(Duration::from_secs(30)));
    drop(b);
    until(
        &a,
        "docker node ls --format '{{.Hostname}} {{.Status}}'",
        Duration::from_secs(120),
        |t| t.lines().any(|l| l == "swarm-b Down"),
    );
    let tasks = until(&a, ps, Duration::from_secs(120), |t| {
        let on = running_tasks(t);
        on.len() == 3 && !on.iter().any(|n| n == "swarm-b")
    });
    eprintln!(
        "B down and 3 tasks on A and C {:.0}s after the loss:\n{tasks}",
        lost.elapsed().as_secs_f64()
    );

    // B again, from the same disk and seed: Ready with the same node id, by itself. While B
    // boots, the manager removes C as it runs (`docker node rm --force`): C's engine goes on
    // saying `active`, C's agent asks A whether its node is in the swarm (A serves tokens),
    // hears no, leaves and joins again as a new node, nobody typing a command on C.
    let b = std::thread::scope(|s| {
        let b = s.spawn(|| b_node.boot(&env, &net, "b-again"));
        let removed = Instant::now();
        check(&a, "rm C", a.run(&format!("docker node rm --force {c_id}")));
        let nodes = back_as_new_node(&a, "swarm-c", &c_id);
        eprintln!(
            "C removed and back as a new node after {:.0}s:\n{nodes}",
            removed.elapsed().as_secs_f64()
        );
        let log = check(&c, "C's swarm log", c.run("sudo cat /var/log/boot/swarm.log"));
        assert!(
            log.contains(&format!("says node {c_id} is not in the swarm")),
            "C's swarm log:\n{log}"
        );
        b.join().unwrap()
    });
    let nodes = until(
        &a,
        "docker node ls --format '{{.Hostname}} {{.Status}} {{.ID}}'",
        Duration::from_secs(180),
        |t| t.lines().any(|l| l.starts_with("swarm-b Ready ")),
    );
    assert_eq!(
        nodes.lines().count(),
        3,
        "a new node instead of B's return:\n{nodes}"
    );
    assert!(
        nodes.contains(&format!("swarm-b Ready {b_id}")),
        "B has another id:\n{nodes}"
    );
    let again = json(&until(
        &b,
        "berth swarm status --format json",
        Duration::from_secs(60),
        |t| t.contains("\"active\""),
    ));
    assert!(
        b_id.starts_with(again["node_id"].as_str().unwrap()),
        "{again} / {b_id}"
    );

    // B's engine leaves the swarm behind berth's back (`docker swarm leave --force` in B's
    // console): B's agent notices (it looks every 15 s) and joins again as a new node, with
    // the token from A's server.
    let removed = Instant::now();
    check(&b, "leave on B", b.run("docker swarm leave --force"));
    let nodes = back_as_new_node(&a, "swarm-b", &b_id);
    eprintln!(
        "B left and back as a new node after {:.0}s:\n{nodes}",
        removed.elapsed().as_secs_f64()
    );

    // The last manager leaves: exit 0, the swarm is gone, the configuration keeps A out, and
    // the agent does not create it again (20 s, more than its 15 s look).
    check(&a, "leave", a.run("sudo berth swarm leave --force"));
    let left = Instant::now();
    let enabled = check(&a, "enabled", a.run("sudo berth config get berth.swarm.enabled"));
    assert_eq!(enabled.trim(), "false", "{enabled}");
    std::thread::scope(|s| {
        for m in [&b, &c] {
            s.spawn(move || poweroff(m));
        }
        std::thread::sleep(Duration::from_secs(20).saturating_sub(left.elapsed()));
    });
    let state = check(
        &a,
        "swarm state",
        a.run("docker info --format '{{.Swarm.LocalNodeState}}'"),
    );
    assert_eq!(
        state.trim(),
        "inactive",
        "A is in a swarm again 20 s after leaving"
    );
    let status = json(&check(&a, "status", a.run("berth swarm status --format json")));
    assert_eq!(status["state"], "disabled", "{status}");
    poweroff(&a);
    eprintln!("swarm took {:.0}s", started.elapsed().as_secs_f64());
    drop(net);
    for n in [&a_node, &b_node, &c_node] {
        let _ = std::fs::remove_file(&n.seed);
        let _ = std::fs::remove_file(&n.state);
    }
}
