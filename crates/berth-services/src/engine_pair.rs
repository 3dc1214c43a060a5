//! An engine as one supervised unit: containerd first, then dockerd pointed at it
//! (`--containerd=SOCKET`). dockerd that starts its own containerd gives it 15 seconds to
//! answer and then exits with "timeout waiting for containerd to start"; on a loaded host
//! (four virtual machines on two cores) that made every System Docker and User Docker start
//! fail once or more. Here containerd gets as long as it needs, and dockerd starts only once
//! containerd answers.
//!
//! The unit ends when either process does: the other is stopped, and the exit status is
//! dockerd's. SIGTERM and SIGINT go to dockerd (which stops its containers), then containerd
//! is stopped.

use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How long containerd may take to answer before the unit gives up (the supervisor above
/// restarts it): far beyond what a loaded machine needs, short of hanging a boot forever.
pub const CONTAINERD_WAIT: Duration = Duration::from_secs(300);
/// How long containerd gets to stop once dockerd has exited.
const CONTAINERD_STOP: Duration = Duration::from_secs(10);

/// Where one engine keeps containerd's files, and the two command lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnginePair {
    /// The engine binaries (`containerd`, `dockerd`, the shims) live here.
    pub bin_dir: PathBuf,
    /// containerd's persistent root (`<data-root>/containerd/daemon`, as dockerd would use).
    pub containerd_root: PathBuf,
    /// containerd's state, config and socket (`<exec-root>/containerd`).
    pub containerd_run: PathBuf,
    /// dockerd's arguments, without `--containerd` (added here).
    pub dockerd_args: Vec<String>,
    /// containerd's log level (`--debug` engines get `debug`).
    pub debug: bool,
    /// Read the engine's programs into the page cache beside containerd's start ([`prefetch`]):
    /// for the first engine of a boot (System Docker); the second finds them there.
    pub prefetch: bool,
}

impl EnginePair {
    pub fn containerd_socket(&self) -> PathBuf {
        self.containerd_run.join("containerd.sock")
    }

    pub fn containerd_config(&self) -> PathBuf {
        self.containerd_run.join("containerd.toml")
    }

    /// containerd's configuration: the same paths and plugins dockerd gives the containerd it
    /// starts itself (no CRI: only dockerd talks to it).
    pub fn containerd_toml(&self) -> String {
        format!(
            "# Written by Berth at every engine start.\n\
             version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             \n\
             [grpc]\n  address = \"{socket}\"\n\
             \n\
             [debug]\n  level = \"{level}\"\n\
             \n\
             [ttrpc]\n  address = \"{socket}.ttrpc\"\n",
            root = self.containerd_root.display(),
            state = self.containerd_run.join("daemon").display(),
            socket = self.containerd_socket().display(),
            level = if self.debug { "debug" } else { "info" },
        )
    }

    /// containerd's command line (program first).
    pub fn containerd_command_line(&self) -> Vec<String> {
        vec![
            self.bin_dir.join("containerd").display().to_string(),
            "--config".into(),
            self.containerd_config().display().to_string(),
        ]
    }

    /// dockerd's command line (program first), pointed at this containerd.
    pub fn dockerd_command_line(&self) -> Vec<String> {
        let mut args = vec![self.bin_dir.join("dockerd").display().to_string()];
        args.push(format!("--containerd={}", self.containerd_socket().display()));
        args.extend(self.dockerd_args.iter().cloned());
        args
    }
}

/// Why the unit could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot prepare {path}: {source}")]
    Prepare {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("containerd exited before it answered ({status}); see its messages above")]
    ContainerdExited { status: String },
    #[error("containerd did not answer on {socket} within {}s", waited.as_secs())]
    ContainerdTimeout { socket: String, waited: Duration },
}

/// Write containerd's configuration, start it, and wait until its socket answers. The child
/// is returned running; `environment` and the output of `prepare` apply to it.
pub fn start_containerd(
    pair: &EnginePair,
    prepare: &dyn Fn(&mut Command),
    wait: Duration,
) -> Result<Child, EngineError> {
    let prepare_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| EngineError::Prepare { path, source }
    };
    std::fs::create_dir_all(&pair.containerd_run).map_err(prepare_err(&pair.containerd_run))?;
    std::fs::create_dir_all(&pair.containerd_root).map_err(prepare_err(&pair.containerd_root))?;
    let config = pair.containerd_config();
    std::fs::write(&config, pair.containerd_toml()).map_err(prepare_err(&config))?;
    let socket = pair.containerd_socket();
    // A socket left by an engine that died would answer nothing: start clean.
    let _ = std::fs::remove_file(&socket);
    let args = pair.containerd_command_line();
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    prepare(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| EngineError::Spawn {
        program: args[0].clone(),
        source,
    })?;
    let started = Instant::now();
    loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(EngineError::ContainerdExited {
                status: status.to_string(),
            });
        }
        if started.elapsed() >= wait {
            let _ = child.kill();
            let _ = child.wait();
            return Err(EngineError::ContainerdTimeout {
                socket: socket.display().to_string(),
                waited: wait,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run the unit until it ends; returns the exit code to use (dockerd's). `prepare` is applied
/// to both commands (environment, output, process group).
pub fn run(pair: &EnginePair, prepare: &dyn Fn(&mut Command)) -> i32 {
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("engine: cannot block signals: {e}");
    }
    let sfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC).ok();
    // After the signals are blocked: the thread inherits the mask, so they still reach the
    // signalfd and not the reader.
    if pair.prefetch {
        let programs = PREFETCH.map(|name| pair.bin_dir.join(name));
        std::thread::spawn(move || prefetch(&programs, available_memory() / 2));
    }
    let unblocked = |cmd: &mut Command| {
        prepare(cmd);
        berth_runtime::spawn::supervised(cmd);
    };
    let containerd = match start_containerd(pair, &unblocked, CONTAINERD_WAIT) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("engine: {e}");
            return 1;
        }
    };
    let containerd = Pid::from_raw(containerd.id() as i32);
    let args = pair.dockerd_command_line();
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    unblocked(&mut cmd);
    let dockerd = match cmd.spawn() {
        Ok(child) => Pid::from_raw(child.id() as i32),
        Err(e) => {
            eprintln!("engine: cannot start {}: {e}", args[0]);
            stop(containerd, CONTAINERD_STOP);
            return 127;
        }
    };
    loop {
        if let Some(sfd) = &sfd
            && let Ok(Some(info)) = sfd.read_signal()
            && matches!(
                Signal::try_from(info.ssi_signo as i32),
                Ok(Signal::SIGTERM | Signal::SIGINT)
            )
        {
            let _ = kill(dockerd, Signal::SIGTERM);
        }
        if sfd.is_none() {
            std::thread::sleep(Duration::from_millis(200));
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == dockerd => {
                    stop(containerd, CONTAINERD_STOP);
                    return code;
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == dockerd => {
                    eprintln!("engine: dockerd was killed by {signal}");
                    stop(containerd, CONTAINERD_STOP);
                    return 128 + signal as i32;
                }
                Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) if pid == containerd => {
                    eprintln!("engine: containerd exited; stopping dockerd");
                    stop(dockerd, Duration::from_secs(30));
                    return 1;
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// The engine's programs, in the order they start.
const PREFETCH: [&str; 4] = ["containerd", "dockerd", "containerd-shim-runc-v2", "runc"];

/// Read `files` through once, into the page cache. The engine's programs live in the
/// compressed OS image: under emulation, paging dockerd in at its start took ~2 s after
/// containerd answered, on one CPU. Read sequentially beside containerd's start, on another
/// CPU, they are decompressed by the time they run (and for the second engine, already).
/// A file that cannot be read is skipped (the program's own start says why); reading stops
/// before a file that would take the total over `budget` bytes (on a small machine the cache
/// would only push out what was read before). Returns the bytes read.
pub fn prefetch(files: &[PathBuf], budget: u64) -> u64 {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for path in files {
        let Ok(mut file) = std::fs::File::open(path) else {
            continue;
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if total + size > budget {
            break;
        }
        while let Ok(n @ 1..) = file.read(&mut buf) {
            total += n as u64;
        }
    }
    total
}

/// MemAvailable, in bytes (0 when it cannot be read: nothing is prefetched then).
fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| berth_runtime::meminfo::bytes(&text, "MemAvailable"))
        .unwrap_or(0)
}

/// SIGTERM, then SIGKILL after `grace`; reaps it.
fn stop(pid: Pid, grace: Duration) {
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(WaitStatus::StillAlive) => {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return;
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> EnginePair {
        EnginePair {
            bin_dir: "/usr/lib/berth/engine/bin".into(),
            containerd_root: "/var/lib/system-docker/containerd/daemon".into(),
            containerd_run: "/run/system-docker/containerd".into(),
            dockerd_args: vec!["--data-root=/var/lib/system-docker".into()],
            debug: false,
            prefetch: true,
        }
    }

    #[test]
    fn dockerd_is_pointed_at_the_containerd_the_unit_starts() {
        let p = pair();
        let dockerd = p.dockerd_command_line();
        assert_eq!(dockerd[0], "/usr/lib/berth/engine/bin/dockerd");
        assert_eq!(
            dockerd[1],
            "--containerd=/run/system-docker/containerd/containerd.sock"
        );
        assert_eq!(dockerd[2], "--data-root=/var/lib/system-docker");
        assert_eq!(
            p.containerd_command_line(),
            [
                "/usr/lib/berth/engine/bin/containerd",
                "--config",
                "/run/system-docker/containerd/containerd.toml"
            ]
        );
        let toml = p.containerd_toml();
        for want in [
            "root = \"/var/lib/system-docker/containerd/daemon\"",
            "state = \"/run/system-docker/containerd/daemon\"",
            "address = \"/run/system-docker/containerd/containerd.sock\"",
            "io.containerd.grpc.v1.cri",
            "level = \"info\"",
        ] {
            assert!(toml.contains(want), "{want} missing:\n{toml}");
        }
    }

    #[test]
    fn prefetch_reads_every_file_there_is() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("dockerd");
        std::fs::write(&big, vec![7u8; (3 << 20) + 5]).unwrap();
        let small = dir.path().join("runc");
        std::fs::write(&small, b"runc").unwrap();
        let files = [big.clone(), dir.path().join("absent"), small];
        assert_eq!(prefetch(&files, u64::MAX), (3 << 20) + 5 + 4);
        // Within a budget: the files before the first that does not fit.
        assert_eq!(prefetch(&files, 3 << 20), 0);
        assert_eq!(prefetch(&[dir.path().join("runc"), big], 1 << 20), 4);
        assert!(available_memory() > 0);
    }

    #[test]
    fn a_containerd_that_exits_at_once_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("containerd");
        std::fs::write(&fake, "#!/bin/sh\necho 'containerd: bad config' >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let p = EnginePair {
            bin_dir: bin,
            containerd_root: dir.path().join("root"),
            containerd_run: dir.path().join("run"),
            dockerd_args: vec![],
            debug: true,
            prefetch: false,
        };
        let err = start_containerd(&p, &|_| {}, Duration::from_secs(20)).unwrap_err();
        assert!(matches!(err, EngineError::ContainerdExited { .. }), "{err}");
        assert!(err.to_string().contains("exit status: 3"), "{err}");
        // The configuration was written where containerd was told to read it.
        assert!(
            std::fs::read_to_string(p.containerd_config())
                .unwrap()
                .contains("level = \"debug\"")
        );
    }

    #[test]
    fn a_containerd_that_never_answers_times_out_and_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("containerd");
        std::fs::write(&fake, "#!/bin/sh\nexec sleep 600\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let p = EnginePair {
            bin_dir: bin,
            containerd_root: dir.path().join("root"),
            containerd_run: dir.path().join("run"),
            dockerd_args: vec![],
            debug: false,
            prefetch: false,
        };
        let err = start_containerd(&p, &|_| {}, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, EngineError::ContainerdTimeout { .. }), "{err}");
    }
}
