//! The read-only system image store (`images.img`): a private dockerd (the host's docker.io)
//! loads the release's docker-archive, and its own `image/` (metadata) and `overlay2/` (layer
//! store) directories are squashed, with a `release` stamp and the `images.json` index. Berth's
//! init assembles System Docker's data root from it at boot (crates/berth-services'
//! `image_store`); nothing of docker's layout is written by hand here.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Changes when the store's layout changes (part of the images' build fingerprint).
pub const FORMAT: &str = "image-store-1";
const START_LIMIT: Duration = Duration::from_secs(60);
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// A dockerd of the build's own: data root under `work`, socket and exec root in a short
/// directory under /tmp, no network setup. Stopped by its PID when dropped.
struct BuildEngine {
    child: Child,
    run: tempfile::TempDir,
    log: PathBuf,
}

impl BuildEngine {
    fn start(data_root: &Path, log: &Path) -> Result<BuildEngine> {
        let run = tempfile::Builder::new()
            .prefix("berth-build-dockerd.")
            .tempdir_in("/tmp")
            .context("creating a run directory for the build's dockerd")?;
        let r = run.path();
        std::fs::write(r.join("daemon.json"), "{}\n")?;
        let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new("dockerd")
            .arg(format!("--host=unix://{}", r.join("docker.sock").display()))
            .arg(format!("--data-root={}", data_root.display()))
            .arg(format!("--exec-root={}", r.join("exec").display()))
            .arg(format!("--pidfile={}", r.join("docker.pid").display()))
            .arg(format!("--config-file={}", r.join("daemon.json").display()))
            .args([
                "--storage-driver=overlay2",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
            ])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting dockerd (Debian's docker.io) to build the system image store")?;
        let mut engine = BuildEngine {
            child,
            run,
            log: log.to_path_buf(),
        };
        let started = Instant::now();
        loop {
            if engine
                .docker(&["version"])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return Ok(engine);
            }
            if let Some(status) = engine.child.try_wait()? {
                bail!(
                    "dockerd exited at start ({status}); building the system image store needs root, \
                     Debian's docker.io and overlayfs (`modprobe overlay`). Its log ({}):\n{}",
                    engine.log.display(),
                    tail(&engine.log)
                );
            }
            if started.elapsed() > START_LIMIT {
                bail!(
                    "dockerd did not answer within {}s; its log ({}):\n{}",
                    START_LIMIT.as_secs(),
                    engine.log.display(),
                    tail(&engine.log)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("--host")
            .arg(format!(
                "unix://{}",
                self.run.path().join("docker.sock").display()
            ))
            .args(args);
        cmd
    }

    /// `docker load` of the docker-archive directory `archive`, streamed as a tar.
    fn load(&self, archive: &Path) -> Result<String> {
        let mut child = self
            .docker(&["load"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running docker load (the docker CLI, Debian's docker.io)")?;
        let stdin = child.stdin.take().context("docker load has no stdin")?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(stdin));
        tar.follow_symlinks(false);
        tar.append_dir_all(".", archive)
            .with_context(|| format!("streaming {} to docker load", archive.display()))?;
        tar.into_inner()?.flush()?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "docker load of {} failed: {}",
                archive.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SIGTERM by PID, SIGKILL after [`STOP_LIMIT`].
    fn stop(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("dockerd's PID")?;
        // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < STOP_LIMIT {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("dockerd did not stop within {}s", STOP_LIMIT.as_secs())
    }
}

impl Drop for BuildEngine {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Build the store `dest` from the docker-archive directory `archive`; `index` is the
/// `images.json` written beside it, `release` identifies these images. `work` is scratch space
/// (removed after).
pub fn build(archive: &Path, index: &Path, release: &str, work: &Path, dest: &Path) -> Result<()> {
    crate::build::fresh_dir(work)?;
    let data_root = work.join("data");
    let mut engine = BuildEngine::start(&data_root, &work.join("dockerd.log"))?;
    let loaded = engine.load(archive)?;
    if !loaded.lines().any(|l| l.starts_with("Loaded image")) {
        bail!("docker load of {} loaded no image: {loaded}", archive.display());
    }
    engine.stop()?;
    drop(engine);
    let meta = work.join("meta");
    std::fs::create_dir_all(&meta)?;
    std::fs::write(meta.join("release"), format!("{release}\n"))?;
    std::fs::copy(index, meta.join("images.json"))?;
    let _ = std::fs::remove_file(dest);
    // Owners, modes and overlay xattrs of the layers are kept (no -all-root).
    let output = Command::new("mksquashfs")
        .arg(data_root.join("image"))
        .arg(data_root.join("overlay2"))
        .arg(meta.join("release"))
        .arg(meta.join("images.json"))
        .arg(dest)
        .args(["-comp", "zstd", "-Xcompression-level", "19"])
        .args(["-b", crate::build::SQUASHFS_BLOCK])
        .args(["-noappend", "-quiet", "-no-progress"])
        .output()
        .context("running mksquashfs")?;
    if !output.status.success() {
        bail!(
            "mksquashfs of the image store failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    std::fs::remove_dir_all(work).with_context(|| format!("removing {}", work.display()))?;
    Ok(())
}
