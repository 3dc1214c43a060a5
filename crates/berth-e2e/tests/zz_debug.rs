#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
mod common;
use common::{BOOT, check, env};
#[test]
fn debug_status() {
    let env = env("dbg");
    let vm = env.kernel_vm("");
    let m = env.start("dbg", vm);
    check(&m, "ssh", m.wait_ssh(BOOT));
    for cmd in [
        "ls -la /run/system-docker.sock /run/user-docker/; id; sudo id",
        "sudo system-docker version --format '{{.Server.Version}}'",
        "sudo berth status 2>&1 | head -8",
        "sudo berth service ps 2>&1",
        "sudo cat /proc/self/status | grep -i -E 'cap|nonew|seccomp'",
    ] {
        let out = m.ssh(cmd).unwrap();
        println!(
            "$ {cmd}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
