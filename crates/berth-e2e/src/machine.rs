//! A booted Berth machine under test: QEMU with its serial console on a socket (logged to a
//! file) and ssh forwarded to 127.0.0.1. QEMU is killed by PID when the machine is dropped.

use crate::qemu::{self, Serial, Vm};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Machine {
    pub name: String,
    pub dir: PathBuf,
    pub serial_log: PathBuf,
    serial_socket: PathBuf,
    monitor_socket: PathBuf,
    pub ssh_port: u16,
    pub key: PathBuf,
    pub started: Instant,
    /// Whether QEMU runs under KVM (else TCG, software emulation).
    kvm: bool,
    child: std::sync::Mutex<Option<Child>>,
    /// The serial console connection, kept open (QEMU drops what a closing client wrote but the
    /// guest's UART had not taken yet); a thread drains what QEMU sends back.
    serial: std::sync::Mutex<Option<UnixStream>>,
}

impl Machine {
    /// Start `vm` with its serial console and ssh port set up under `dir`.
    pub fn start(name: &str, mut vm: Vm, dir: &Path, key: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let serial_log = dir.join(format!("{name}.console.log"));
        let serial_socket = dir.join(format!("{name}.serial.sock"));
        let _ = std::fs::remove_file(&serial_log);
        let _ = std::fs::remove_file(&serial_socket);
        vm.serial = Serial::Socket {
            socket: serial_socket.clone(),
            log: serial_log.clone(),
        };
        let monitor_socket = dir.join(format!("{name}.monitor.sock"));
        let _ = std::fs::remove_file(&monitor_socket);
        vm.monitor = Some(monitor_socket.clone());
        let caller_port = vm.ssh_port.is_some();
        let mut ssh_port = match vm.ssh_port {
            Some(p) => p,
            None => qemu::free_port()?,
        };
        vm.ssh_port = Some(ssh_port);
        let qemu_log = dir.join(format!("{name}.qemu.log"));
        let started = Instant::now();
        let mut attempt = 1;
        let child = loop {
            let stderr = std::fs::File::create(&qemu_log)?;
            let mut child = vm
                .command()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(stderr))
                .spawn()
                .context("starting qemu-system-x86_64")?;
            eprintln!(
                "[{name}] QEMU pid {} (console log: {})",
                child.id(),
                serial_log.display()
            );
            for tap in &vm.taps {
                if let Err(e) = crate::testnet::adopt_tap(tap, Duration::from_secs(30)) {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&qemu_log).unwrap_or_default();
                    bail!("[{name}] {e:#}; QEMU said: {}", log.trim());
                }
            }
            // The watch needs the kernel's messages on the console (not with `quiet`).
            let watch = !matches!(&vm.boot, qemu::Boot::Kernel { append, .. }
                if append.split_whitespace().any(|w| w == "quiet"));
            if !watch {
                break child;
            }
            match qemu_crash_in_early_boot(&mut child, &serial_log, &qemu_log)? {
                Some(Restart::Crashed(assertion)) if attempt < 3 => {
                    eprintln!(
                        "[{name}] QEMU itself crashed before the kernel ran init ({assertion}); \
                         starting it again"
                    );
                    let kept = dir.join(format!("{name}.crashed.console.log"));
                    let _ = std::fs::rename(&serial_log, kept);
                    attempt += 1;
                }
                // The free port was taken by someone else between our check and QEMU's bind.
                Some(Restart::PortTaken) if attempt < 3 && !caller_port => {
                    ssh_port = qemu::free_port()?;
                    vm.ssh_port = Some(ssh_port);
                    eprintln!("[{name}] the ssh port was taken meanwhile; now using {ssh_port}");
                    attempt += 1;
                }
                _ => break child,
            }
        };
        Ok(Self {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            serial_log,
            serial_socket,
            monitor_socket,
            ssh_port,
            key: key.to_path_buf(),
            started,
            kvm: vm.kvm,
            child: std::sync::Mutex::new(Some(child)),
            serial: std::sync::Mutex::new(None),
        })
    }

    pub fn console(&self) -> String {
        std::fs::read(&self.serial_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Wait until the console shows `needle` after byte offset `from`; returns the offset just
    /// past it.
    pub fn wait_console(&self, needle: &str, from: usize, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.console();
            if let Some(pos) = text.get(from..).and_then(|t| t.find(needle)) {
                return Ok(from + pos + needle.len());
            }
            if let Some(status) = self.exited()? {
                bail!(
                    "[{}] QEMU exited ({status}) before the console showed {needle:?}",
                    self.name
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "[{}] the console did not show {needle:?} within {}s; last lines:\n{}",
                    self.name,
                    timeout.as_secs(),
                    tail(&text, 25)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Type a line into the serial console.
    pub fn type_line(&self, line: &str) -> Result<()> {
        let mut guard = self
            .serial
            .lock()
            .map_err(|_| anyhow::anyhow!("serial state poisoned"))?;
        if guard.is_none() {
            let stream =
                UnixStream::connect(&self.serial_socket).context("connecting to the serial console")?;
            let mut reader = stream.try_clone()?;
            std::thread::spawn(move || {
                let mut sink = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut reader, &mut sink) {
                    if n == 0 {
                        break;
                    }
                }
            });
            *guard = Some(stream);
        }
        let Some(stream) = guard.as_mut() else {
            bail!("no serial connection");
        };
        stream.write_all(line.as_bytes())?;
        stream.write_all(b"\n")?;
        stream.flush()?;
        Ok(())
    }

    fn ssh_command(&self, cmd: &str, connect_timeout: u32) -> Command {
        self.ssh_command_as("berth", cmd, connect_timeout)
    }

    fn ssh_command_as(&self, user: &str, cmd: &str, connect_timeout: u32) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-i")
            .arg(&self.key)
            .args(["-p", &self.ssh_port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args(["-o", &format!("ConnectTimeout={connect_timeout}")])
            .args(["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=8"])
            .arg(format!("{user}@127.0.0.1"))
            .arg(cmd)
            .stdin(Stdio::null());
        c
    }

    /// Run `cmd` over ssh as the login user.
    pub fn ssh(&self, cmd: &str) -> Result<Output> {
        self.ssh_command(cmd, 20).output().context("running ssh")
    }

    /// Run `cmd` over ssh as `user` (logging in with the test's key).
    pub fn ssh_as(&self, user: &str, cmd: &str) -> Result<Output> {
        self.ssh_command_as(user, cmd, 20).output().context("running ssh")
    }

    /// Run `cmd` over ssh; fail unless it succeeds; returns its stdout.
    pub fn run(&self, cmd: &str) -> Result<String> {
        self.run_as("berth", cmd)
    }

    /// Run `cmd` over ssh as `user`; fail unless it succeeds; returns its stdout.
    pub fn run_as(&self, user: &str, cmd: &str) -> Result<String> {
        let out = self.ssh_as(user, cmd)?;
        if !out.status.success() {
            bail!(
                "[{}] `{cmd}` as {user} failed ({}):\nstdout: {}\nstderr: {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Wait until ssh logs in.
    pub fn wait_ssh(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited()? {
                bail!("[{}] QEMU exited ({status}) before ssh answered", self.name);
            }
            let out = self.ssh_command("true", 10).output()?;
            if out.status.success() {
                eprintln!(
                    "[{}] ssh ready after {:.0}s",
                    self.name,
                    self.started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "[{}] ssh did not answer within {}s ({}); console tail:\n{}",
                    self.name,
                    timeout.as_secs(),
                    String::from_utf8_lossy(&out.stderr).trim(),
                    tail(&self.console(), 30)
                );
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// Whether an ssh connection would reach the guest's sshd now.
    pub fn ssh_banner(&self) -> bool {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.ssh_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-")
    }

    /// Run a command in QEMU's human monitor; returns what it printed.
    pub fn monitor(&self, command: &str) -> Result<String> {
        use std::io::Read;
        let mut stream = UnixStream::connect(&self.monitor_socket)
            .with_context(|| format!("[{}] connecting to the QEMU monitor", self.name))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let read_to_prompt = |stream: &mut UnixStream| -> Result<String> {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"(qemu) ") {
                let n = stream.read(&mut buf).context("reading from the QEMU monitor")?;
                if n == 0 {
                    bail!("the QEMU monitor closed the connection");
                }
                got.extend_from_slice(&buf[..n]);
            }
            Ok(String::from_utf8_lossy(&got).into_owned())
        };
        read_to_prompt(&mut stream)?;
        stream.write_all(command.as_bytes())?;
        stream.write_all(b"\n")?;
        let out = read_to_prompt(&mut stream)?;
        // The monitor echoes the command line first; its answer follows.
        let answer = out
            .trim_end_matches("(qemu) ")
            .lines()
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n");
        Ok(answer.trim().to_string())
    }

    /// Set the link of QEMU's netdev `id` up or down (the guest sees carrier loss).
    pub fn set_link(&self, id: &str, up: bool) -> Result<()> {
        let answer = self.monitor(&format!("set_link {id} {}", if up { "on" } else { "off" }))?;
        if !answer.is_empty() {
            bail!("[{}] set_link {id}: {answer}", self.name);
        }
        Ok(())
    }

    /// QEMU's exit status, if it has exited.
    pub fn exited(&self) -> Result<Option<ExitStatus>> {
        let mut guard = self
            .child
            .lock()
            .map_err(|_| anyhow::anyhow!("machine state poisoned"))?;
        match guard.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => bail!("QEMU was already reaped"),
        }
    }

    /// Wait for QEMU to exit (the guest powered off).
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "[{}] QEMU still runs {}s after the guest was told to power off; console tail:\n{}",
                    self.name,
                    timeout.as_secs(),
                    tail(&self.console(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Fail if the console shows a panic, an oops, a BUG or an init failure.
    pub fn assert_clean_console(&self) -> Result<()> {
        let (problems, emulator) = crate::console_scan(&self.console(), !self.kvm);
        if !emulator.is_empty() {
            let said = format!(
                "[{}] WARNING: a known fault of QEMU's software emulation (not of Berth) crashed \
                 a boot; the machine rebooted and the checks went on (console log: {}):\n  {}\n",
                self.name,
                self.serial_log.display(),
                emulator.join("\n  ")
            );
            eprint!("{said}");
            // A passing test's output is not shown: keep a record next to the tests' machines.
            if let Some(all) = self.dir.parent() {
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(all.join("emulator-faults.log"))
                    .and_then(|mut f| f.write_all(said.as_bytes()));
            }
        }
        if !problems.is_empty() {
            bail!("[{}] the console shows:\n  {}", self.name, problems.join("\n  "));
        }
        Ok(())
    }

    /// Stop QEMU (by its PID).
    pub fn kill(&mut self) {
        let taken = self.child.lock().ok().and_then(|mut g| g.take());
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why QEMU must be started again.
enum Restart {
    /// QEMU's TCG hit one of its own assertions while the guest kernel set up PCI
    /// (`iotlb_to_section: Assertion ... failed`, then SIGABRT): nothing the guest did.
    Crashed(String),
    /// The host port for ssh was bound by another process after `free_port` found it free.
    PortTaken,
}

/// Wait until the kernel runs init (or 3 minutes, or QEMU exits) and say whether QEMU must be
/// started again; any other outcome is left to the test.
fn qemu_crash_in_early_boot(child: &mut Child, console: &Path, qemu_log: &Path) -> Result<Option<Restart>> {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            use std::os::unix::process::ExitStatusExt as _;
            let log = std::fs::read_to_string(qemu_log).unwrap_or_default();
            if log.contains("Could not set up host forwarding rule") {
                return Ok(Some(Restart::PortTaken));
            }
            let assertion = log
                .lines()
                .find(|l| l.contains("Assertion") && l.contains("failed"));
            return Ok(match (status.signal(), assertion) {
                // 6: SIGABRT, how an assertion ends.
                (Some(6), Some(line)) => Some(Restart::Crashed(line.trim().to_string())),
                _ => None,
            });
        }
        let text = std::fs::read(console).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains("Run /init as init process") {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(None)
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
