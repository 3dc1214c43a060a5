//! Boot logging: every line goes to the console (PID 1's stderr is `/dev/console`) and, once
//! `/var` is ready, to a file under `/var/log/boot/`. Lines written before the file exists are
//! kept in memory and written to it when it is attached, so the file holds the whole boot.
//! Timestamps are the kernel's boot clock, like dmesg's.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// Keep at most this much before the log file exists.
const BUFFER_LIMIT: usize = 1 << 20;

struct Sink {
    console: bool,
    file: Option<File>,
    path: Option<std::path::PathBuf>,
    buffer: Vec<u8>,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    console: true,
    file: None,
    path: None,
    buffer: Vec::new(),
});

/// Seconds since boot (CLOCK_BOOTTIME), as the kernel log shows them.
pub fn uptime() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

struct BootClock;

impl FormatTime for BootClock {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "[{:>9.3}]", uptime())
    }
}

#[derive(Clone, Copy)]
pub struct BootWriter;

impl Write for BootWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Ok(mut sink) = SINK.lock() else {
            return Ok(buf.len());
        };
        if sink.console {
            let _ = std::io::stderr().write_all(buf);
        }
        let sink = &mut *sink;
        match sink.file.as_mut() {
            Some(file) => {
                let _ = file.write_all(buf);
            }
            None if sink.buffer.len() + buf.len() <= BUFFER_LIMIT => sink.buffer.extend_from_slice(buf),
            None => {}
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BootWriter {
    type Writer = BootWriter;
    fn make_writer(&'a self) -> Self::Writer {
        BootWriter
    }
}

/// Install the logger for a process named `name` (`init`, `sysinit`, ...).
pub fn init(name: &'static str, debug: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(BootWriter)
        .with_ansi(false)
        .with_target(false)
        .with_timer(BootClock)
        .with_max_level(level)
        .fmt_fields(tracing_subscriber::fmt::format::DefaultFields::new())
        .event_format(
            tracing_subscriber::fmt::format()
                .with_ansi(false)
                .with_target(false)
                .with_level(true)
                .with_timer(BootClock)
                .compact(),
        )
        .try_init();
    let _ = name;
}

/// A boot log larger than this when init starts becomes `NAME.1` (replacing the one before)
/// and a new one starts: the logs that grow at every boot keep at most about twice this.
pub const ROTATE_AT: u64 = 4 << 20;

/// Rotate the logs under `var_log` that are appended to at every boot (`boot/*.log` and
/// `system-docker.log`), before anything writes to them. Returns the ones rotated.
pub fn rotate_boot_logs(var_log: &Path, limit: u64) -> Vec<std::path::PathBuf> {
    let mut files = vec![var_log.join("system-docker.log")];
    if let Ok(entries) = std::fs::read_dir(var_log.join("boot")) {
        files.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log")),
        );
    }
    files.sort();
    files
        .into_iter()
        .filter(|f| std::fs::symlink_metadata(f).is_ok_and(|m| m.is_file() && m.len() > limit))
        .filter(|f| {
            let mut old = f.clone().into_os_string();
            old.push(".1");
            std::fs::rename(f, old).is_ok()
        })
        .collect()
}

/// Rotate a log another process keeps open with `O_APPEND` (System Docker's): copy it to
/// `NAME.1` and empty it in place, so the writer goes on at the start of the same file.
/// Lines written between the copy and the truncation are lost; that window is short and the
/// alternative (signalling dockerd to reopen) does not exist. Returns whether it rotated.
pub fn rotate_by_truncation(path: &Path, limit: u64) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.len() > limit => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let mut old = path.as_os_str().to_owned();
    old.push(".1");
    std::fs::copy(path, &old)?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

/// Rotate the file this process logs to once it is over `limit`: it becomes `NAME.1` and a
/// new file is opened under the old name. Returns whether it rotated.
pub fn rotate_attached(limit: u64) -> std::io::Result<bool> {
    let Ok(mut sink) = SINK.lock() else {
        return Ok(false);
    };
    let Some((file, path)) = sink.file.as_ref().zip(sink.path.clone()) else {
        return Ok(false);
    };
    if file.metadata()?.len() <= limit {
        return Ok(false);
    }
    let mut old = path.as_os_str().to_owned();
    old.push(".1");
    std::fs::rename(&path, &old)?;
    sink.file = Some(OpenOptions::new().create(true).append(true).open(&path)?);
    Ok(true)
}

/// Start writing to `path` too (appending), including what was logged so far.
pub fn attach_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    if let Ok(mut sink) = SINK.lock() {
        let buffered = std::mem::take(&mut sink.buffer);
        file.write_all(&buffered)?;
        sink.file = Some(file);
        sink.path = Some(path.to_path_buf());
    }
    Ok(())
}

/// Stop writing to the file (before its filesystem is unmounted).
pub fn detach_file() {
    if let Ok(mut sink) = SINK.lock()
        && let Some(file) = sink.file.take()
    {
        sink.path = None;
        let _ = file.sync_all();
    }
}

/// Print a block of text on the console and into the log as it is (banners, the recovery
/// notice), bypassing the line format.
pub fn raw(text: &str) {
    let _ = BootWriter.write_all(text.as_bytes());
}

#[cfg(test)]
mod rotate_tests {
    use super::{rotate_boot_logs, rotate_by_truncation};
    use std::io::Write;

    #[test]
    fn a_log_kept_open_by_its_writer_is_copied_and_emptied_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system-docker.log");
        let mut writer = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        writer.write_all(&[b'x'; 300]).unwrap();
        assert!(!rotate_by_truncation(&path, 1000).unwrap());
        assert!(rotate_by_truncation(&path, 100).unwrap());
        assert_eq!(
            std::fs::metadata(dir.path().join("system-docker.log.1"))
                .unwrap()
                .len(),
            300
        );
        // The writer goes on at the start of the emptied file, not at its old offset.
        writer.write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        assert!(!rotate_by_truncation(&dir.path().join("missing.log"), 0).unwrap());
    }

    #[test]
    fn only_large_boot_logs_are_rotated_and_the_previous_copy_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let var_log = dir.path();
        std::fs::create_dir_all(var_log.join("boot")).unwrap();
        let write = |name: &str, len: usize| std::fs::write(var_log.join(name), vec![b'x'; len]).unwrap();
        write("boot/init.log", 200);
        write("boot/init.log.1", 5);
        write("boot/sysinit.log", 50);
        write("system-docker.log", 300);
        write("boot/notes.txt", 500);
        let rotated = rotate_boot_logs(var_log, 100);
        assert_eq!(
            rotated,
            [var_log.join("boot/init.log"), var_log.join("system-docker.log")]
        );
        let len = |name: &str| std::fs::metadata(var_log.join(name)).map(|m| m.len()).ok();
        assert_eq!(len("boot/init.log"), None);
        assert_eq!(len("boot/init.log.1"), Some(200));
        assert_eq!(len("system-docker.log.1"), Some(300));
        assert_eq!(len("boot/sysinit.log"), Some(50));
        assert_eq!(len("boot/notes.txt"), Some(500));
        // Nothing there at all (a first boot): nothing to do.
        assert!(rotate_boot_logs(&var_log.join("none"), 100).is_empty());
    }
}
