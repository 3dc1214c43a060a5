//! `pre_up` and `post_up` commands: each runs with `sh -c`, `IFACE` set to the link's name;
//! its output goes to netconf's log, line by line, and a failure is returned so that the
//! caller reports it and runs the next one.

use std::process::Command;

/// Run one hook to its end.
pub fn run(iface: &str, command: &str) -> std::io::Result<()> {
    let output = Command::new("/bin/sh")
        .args(["-c", command])
        .env("IFACE", iface)
        .output()?;
    for line in String::from_utf8_lossy(&output.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&output.stderr).lines())
    {
        eprintln!("netconf: {iface}: {line}");
    }
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "the command {}",
            describe(output.status)
        )))
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "failed".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hook_sees_its_interface_and_a_failure_says_how_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("iface");
        super::run("eth7", &format!("echo $IFACE > {}", out.display())).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "eth7\n");
        let e = super::run("eth7", "exit 3").unwrap_err();
        assert_eq!(e.to_string(), "the command exited with status 3");
    }
}
