//! A private Docker engine for one test: its own containerd, dockerd, socket, data root and
//! exec root under a temporary directory. Dropping the guard removes its containers, stops
//! both daemons by PID and cleans up whatever they left, also when the test panicked.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to answer after it was started.
const START_LIMIT: Duration = Duration::from_secs(90);

pub struct Dockerd {
    dir: tempfile::TempDir,
    containerd: Option<Child>,
    dockerd: Option<Child>,
}

/// Where `program` is, looking in PATH and in the sbin directories a non-login root shell may
/// not have on it.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Every program the engine needs; a missing one fails the test by name.
fn require_engine() -> (PathBuf, PathBuf) {
    let mut missing = Vec::new();
    for program in ["dockerd", "containerd", "containerd-shim-runc-v2", "runc"] {
        if find_program(program).is_none() {
            missing.push(program);
        }
    }
    if !missing.is_empty() {
        panic!(
            "these engine integration tests need a real Docker engine, and {} is not installed. \
             Install Debian's docker.io (`cargo xtask setup` does, or as root: \
             `apt-get install --no-install-recommends docker.io`).",
            missing.join(", ")
        );
    }
    (
        find_program("containerd").unwrap_or_default(),
        find_program("dockerd").unwrap_or_default(),
    )
}

/// The child's PATH: the test's, plus the sbin directories (runc and dockerd live there).
fn child_path() -> String {
    let inherited = std::env::var("PATH").unwrap_or_default();
    format!("{inherited}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

fn spawn(program: &Path, args: &[String], log: &Path) -> std::io::Result<Child> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("PATH", child_path())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of ours; it
    // makes the daemon exit if the test process dies without running its destructors.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// `GET /_ping` over the socket, without an async runtime.
fn pings(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

impl Dockerd {
    /// Start a private engine and wait until it answers. Panics, naming what is missing or
    /// what the daemon said, when it cannot.
    pub fn start() -> Dockerd {
        Self::start_with(&[])
    }

    /// [`Dockerd::start`] with more daemon flags.
    pub fn start_with(extra: &[&str]) -> Dockerd {
        let (containerd_bin, dockerd_bin) = require_engine();
        // containerd's shims outlive the processes that start them; as a subreaper the test
        // process becomes their parent and can reap them (PID 1 may not).
        let _ = nix::sys::prctl::set_child_subreaper(true);
        // Short paths: containerd's and dockerd's unix sockets live under this directory.
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd.")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("creating a directory for a test engine in /tmp: {e}"));
        let t = dir.path().to_path_buf();
        let ctr = t.join("containerd");
        std::fs::create_dir_all(&ctr).unwrap();
        let ctr_socket = ctr.join("containerd.sock");
        std::fs::write(
            ctr.join("config.toml"),
            format!(
                "version = 2\n\
                 root = \"{root}\"\n\
                 state = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"\"\n",
                root = ctr.join("root").display(),
                state = ctr.join("state").display(),
                sock = ctr_socket.display(),
            ),
        )
        .unwrap();
        // An engine of our own, never the host's (a system containerd would otherwise be
        // picked up by dockerd), and no daemon.json from the host.
        std::fs::write(t.join("daemon.json"), "{}\n").unwrap();
        let mut engine = Dockerd {
            dir,
            containerd: None,
            dockerd: None,
        };
        let containerd_log = t.join("containerd.log");
        let child = spawn(
            &containerd_bin,
            &["--config".into(), ctr.join("config.toml").display().to_string()],
            &containerd_log,
        )
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", containerd_bin.display()));
        engine.containerd = Some(child);
        engine.wait_for("containerd", &ctr_socket, &containerd_log, |p| p.exists());

        let s = |p: PathBuf| p.display().to_string();
        let args = vec![
            format!("--host=unix://{}", s(t.join("docker.sock"))),
            format!("--data-root={}", s(t.join("data"))),
            format!("--exec-root={}", s(t.join("exec"))),
            format!("--pidfile={}", s(t.join("docker.pid"))),
            format!("--config-file={}", s(t.join("daemon.json"))),
            format!("--containerd={}", s(ctr_socket)),
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--ip-forward=false".into(),
            "--ip-masq=false".into(),
            "--userland-proxy=false".into(),
            "--log-level=warn".into(),
        ];
        let args: Vec<String> = args
            .into_iter()
            .chain(extra.iter().map(|a| a.to_string()))
            .collect();
        let dockerd_log = t.join("dockerd.log");
        let child = spawn(&dockerd_bin, &args, &dockerd_log)
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", dockerd_bin.display()));
        engine.dockerd = Some(child);
        let socket = engine.socket_path();
        engine.wait_for("dockerd", &socket, &dockerd_log, pings);
        engine
    }

    fn wait_for(&mut self, what: &str, socket: &Path, log: &Path, ready: impl Fn(&Path) -> bool) {
        let started = Instant::now();
        loop {
            if ready(socket) {
                return;
            }
            let child = if what == "dockerd" {
                self.dockerd.as_mut()
            } else {
                self.containerd.as_mut()
            };
            if let Some(Ok(Some(status))) = child.map(|c| c.try_wait()) {
                panic!(
                    "{what} for the test engine exited at start ({status}); its log ({}):\n{}",
                    log.display(),
                    log_tail(log)
                );
            }
            if started.elapsed() > START_LIMIT {
                panic!(
                    "{what} for the test engine did not answer on {} within {}s; its log:\n{}",
                    socket.display(),
                    START_LIMIT.as_secs(),
                    log_tail(log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    pub fn socket(&self) -> String {
        self.socket_path().display().to_string()
    }

    /// The engine's data root (it stays until the guard is dropped).
    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stop both daemons now, keeping their directories until the guard is dropped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.dockerd.take() {
            stop_child(&mut child, Duration::from_secs(20));
        }
        if let Some(mut child) = self.containerd.take() {
            stop_child(&mut child, Duration::from_secs(10));
        }
    }

    /// A scratch directory that goes away with the engine.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A client of this engine, as the service manager connects.
    pub fn client(&self) -> bollard::Docker {
        berth_services::client::connect(&self.socket(), Duration::from_secs(60)).unwrap()
    }

    /// Remove every container through the API, so that dockerd stops at once.
    fn remove_containers(&self) {
        let socket = self.socket();
        let work = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                let Ok(docker) = berth_services::client::connect(&socket, Duration::from_secs(20)) else {
                    return;
                };
                let list = docker
                    .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                        all: true,
                        ..Default::default()
                    }))
                    .await
                    .unwrap_or_default();
                let removals = list.into_iter().filter_map(|c| c.id).map(|id| {
                    let docker = docker.clone();
                    async move {
                        let _ = docker
                            .remove_container(
                                &id,
                                Some(bollard::query_parameters::RemoveContainerOptions {
                                    force: true,
                                    ..Default::default()
                                }),
                            )
                            .await;
                    }
                });
                let _ =
                    tokio::time::timeout(Duration::from_secs(30), futures_util::future::join_all(removals))
                        .await;
            });
        });
        let _ = work.join();
    }
}

/// SIGTERM, then SIGKILL after `grace`; always reaps the child.
fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let started = Instant::now();
    while started.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Processes whose command line names `dir`: the containerd shims our containerd started.
fn processes_under(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Mount points under `dir` (overlay roots, shm), deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts
}

/// Wait for `pids` (our adopted shims) to exit, killing those that do not within 10s.
fn reap(pids: &[i32]) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let started = Instant::now();
    for &pid in pids {
        let pid = nix::unistd::Pid::from_raw(pid);
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if started.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(WaitStatus::StillAlive) => {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    break;
                }
                // Exited and reaped, or not our child.
                _ => break,
            }
        }
    }
}

/// Reap the containerd shims that exited while we were their parent (the subreaper): a shim
/// ends when its container does, often long before the engine is stopped.
fn reap_exited_shims() {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let mut fields = rest.split(' ');
        let (state, ppid) = (fields.next(), fields.next());
        if comm.contains("(containerd-shim") && state == Some("Z") && ppid == Some(me.as_str()) {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let daemons: Vec<i32> = [&self.dockerd, &self.containerd]
            .into_iter()
            .flatten()
            .map(|c| c.id() as i32)
            .collect();
        let shims: Vec<i32> = processes_under(self.dir.path())
            .into_iter()
            .filter(|p| !daemons.contains(p))
            .collect();
        if self.dockerd.is_some() {
            self.remove_containers();
        }
        if let Some(mut child) = self.dockerd.take() {
            stop_child(&mut child, Duration::from_secs(20));
        }
        if let Some(mut child) = self.containerd.take() {
            stop_child(&mut child, Duration::from_secs(10));
        }
        reap(&shims);
        reap_exited_shims();
        let dir = self.dir.path().to_path_buf();
        let leftovers = processes_under(&dir);
        if !leftovers.is_empty() {
            eprintln!("test engine: killing leftover processes {leftovers:?}");
            for pid in leftovers {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for mount in mounts_under(&dir) {
            let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
