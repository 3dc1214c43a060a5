//! Running `bootcmd`, `runcmd` and scripts with their output in a log under
//! `/var/log/boot/`: a string runs with `sh -c`, a list is executed as argv. Each command
//! has a time limit, after which its whole process group is killed, so a hanging command
//! cannot hold the boot.

use berth_config::schema::forms::Command;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How one program is started.
pub(crate) enum Program<'a> {
    /// A `runcmd`/`bootcmd` item.
    Item(&'a Command),
    /// A script file: executed directly when it has `#!`, else with `sh`.
    Script(&'a Path),
}

impl Program<'_> {
    /// How the log shows it.
    pub fn display(&self) -> String {
        match self {
            Program::Item(Command::Shell(line)) => line.clone(),
            Program::Item(Command::Argv(argv)) => format!("{argv:?}"),
            Program::Script(path) => path.display().to_string(),
        }
    }

    fn command(&self) -> std::process::Command {
        match self {
            Program::Item(Command::Shell(line)) => {
                let mut c = std::process::Command::new("sh");
                c.arg("-c").arg(line);
                c
            }
            Program::Item(Command::Argv(argv)) => match argv.split_first() {
                Some((program, args)) => {
                    let mut c = std::process::Command::new(program);
                    c.args(args);
                    c
                }
                // berth-config never lets an empty argv through
                None => std::process::Command::new("true"),
            },
            Program::Script(path) => {
                let has_shebang = std::fs::File::open(path)
                    .and_then(|mut f| {
                        let mut head = [0u8; 2];
                        std::io::Read::read_exact(&mut f, &mut head).map(|()| head)
                    })
                    .is_ok_and(|head| &head == b"#!");
                if has_shebang {
                    std::process::Command::new(path)
                } else {
                    let mut c = std::process::Command::new("sh");
                    c.arg(path);
                    c
                }
            }
        }
    }
}

/// Run `program` with stdout and stderr appended to `log`, at most `timeout`. `Ok` when
/// it exits 0; otherwise what went wrong.
pub(crate) fn run_logged(
    program: &Program<'_>,
    log: &Path,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<(), String> {
    let display = program.display();
    if let Some(dir) = log.parent() {
        crate::fsutil::ensure_dir(dir, 0o755).map_err(|e| e.to_string())?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(|e| format!("cannot open the log {}: {e}", log.display()))?;
    let _ = writeln!(file, "==> {} $ {display}", crate::time::now());
    let outputs = file.try_clone().and_then(|out| Ok((out, file.try_clone()?)));
    let (stdout, stderr) = outputs.map_err(|e| format!("{}: {e}", log.display()))?;
    let mut command = program.command();
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    if std::env::var_os("PATH").is_none() {
        command.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| {
        let _ = writeln!(file, "<== cannot start: {e}");
        format!("cannot start {display}: {e}")
    })?;
    let status = wait_with_timeout(&mut child, timeout);
    let secs = started.elapsed().as_secs_f32();
    match status {
        Ok(Some(status)) if status.success() => {
            let _ = writeln!(file, "<== exit 0 after {secs:.1} s");
            Ok(())
        }
        Ok(Some(status)) => {
            let _ = writeln!(file, "<== {status} after {secs:.1} s");
            Err(format!("{display}: {status} (output in {})", log.display()))
        }
        Ok(None) => {
            let _ = writeln!(file, "<== killed after {secs:.1} s (time limit)");
            Err(format!(
                "{display}: killed after {} s, its time limit (output in {})",
                timeout.as_secs(),
                log.display()
            ))
        }
        Err(e) => Err(format!("{display}: {e}")),
    }
}

/// The exit status, or `None` when the time ran out (the process group is then killed).
fn wait_with_timeout(
    child: &mut std::process::Child,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_argv_and_scripts_log_their_output() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log/boot/x.log");
        let t = Duration::from_secs(10);
        let shell = Command::Shell("echo out; echo err >&2; echo $INSTANCE_ID".into());
        run_logged(&Program::Item(&shell), &log, &[("INSTANCE_ID", "i-1")], t).unwrap();
        let argv = Command::Argv(vec!["printf".into(), "%s-%s\\n".into(), "a b".into(), "c".into()]);
        run_logged(&Program::Item(&argv), &log, &[], t).unwrap();
        let failing = Command::Shell("exit 3".into());
        let err = run_logged(&Program::Item(&failing), &log, &[], t).unwrap_err();
        assert!(err.contains("exit status: 3"), "{err}");
        let missing = Command::Argv(vec!["/nonexistent/prog".into()]);
        assert!(
            run_logged(&Program::Item(&missing), &log, &[], t)
                .unwrap_err()
                .contains("cannot start")
        );
        let script = dir.path().join("s");
        std::fs::write(&script, "echo from-script-without-shebang\n").unwrap();
        run_logged(&Program::Script(&script), &log, &[], t).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        for needle in [
            "out\n",
            "err\n",
            "i-1\n",
            "a b-c\n",
            "exit status: 3",
            "from-script-without-shebang",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
    }

    #[test]
    fn time_limit_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let started = Instant::now();
        let cmd = Command::Shell("sleep 30 & sleep 30".into());
        let err = run_logged(&Program::Item(&cmd), &log, &[], Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("killed"), "{err}");
        // Had the children been waited for, it would have taken their 30 s: any less shows
        // they were killed (a tighter bound would only measure how busy the machine is).
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
