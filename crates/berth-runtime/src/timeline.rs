//! The boot timeline: one JSON line per boot event (PID 1 starting, stage 1 done, System
//! Docker started and answering, each service's bring-up, User Docker answering), each with
//! its time on the kernel's boot clock. The processes that know append to it (stage 1 in the
//! initramfs, whose `/run` moves to the real root; PID 1; sysinit), and `berth analyze` turns
//! it into stages and bars ([`Timeline`]). It holds names and times only, no secrets, so it
//! is world-readable: the console's plain user reads it.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where the events of this boot are appended.
pub const BOOT_TIMELINE: &str = "/run/berth/boot-timeline.jsonl";

/// One thing that happened during boot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// PID 1 runs (the kernel's part is over).
    Stage1Start,
    /// Stage 1 is about to switch to the real root.
    Stage1Done,
    /// PID 1 started System Docker.
    SystemDockerStart,
    /// System Docker's API answered.
    SystemDockerReady,
    /// A service's bring-up began (its dependencies were ready).
    ServiceStart { name: String },
    /// Its container was started.
    ServiceStarted { name: String },
    /// It is ready: healthy where it has a healthcheck, started where not, a one-shot that
    /// ran to completion, or a create-only container created.
    ServiceReady { name: String },
    /// Its bring-up failed (it never got ready in this attempt).
    ServiceFailed { name: String },
    /// User Docker's API answered.
    UserDockerReady,
}

/// An event and when it happened (seconds on CLOCK_BOOTTIME).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub at: f64,
    #[serde(flatten)]
    pub event: Event,
}

static TARGET: OnceLock<PathBuf> = OnceLock::new();

/// Make [`record`] append to `path` in this process (sysinit does; the CLI's own service
/// commands do not, so a later `berth service restart` does not rewrite the boot's story).
pub fn record_into(path: &Path) {
    let _ = TARGET.set(path.to_path_buf());
}

/// Append `event`, timed now, to the file chosen with [`record_into`]; nothing without one.
pub fn record(event: Event) {
    if let Some(path) = TARGET.get() {
        append(
            path,
            &Record {
                at: crate::log::uptime(),
                event,
            },
        );
    }
}

/// Append one record to `path` (created world-readable). A failure is logged, never fatal:
/// the timeline is for analysis, boot goes on without it.
pub fn append(path: &Path, record: &Record) {
    if let Err(e) = try_append(path, record) {
        tracing::debug!("cannot append to the boot timeline {}: {e}", path.display());
    }
}

fn try_append(path: &Path, record: &Record) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    // One write per line: concurrent writers (PID 1, sysinit's tasks) never interleave.
    file.write_all(&line)
}

/// Why the timeline could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("cannot read the boot timeline {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a boot event: {source}")]
    Parse {
        path: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// Whether a bar is a boot stage or a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Stage,
    Service,
}

/// One bar of the boot: from `start` until `ready` (None: it never got ready).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub name: String,
    pub kind: Kind,
    pub start: f64,
    pub ready: Option<f64>,
    /// Services: when the container was started (before its healthcheck passed).
    #[serde(skip)]
    pub started: Option<f64>,
}

impl Bar {
    pub fn duration(&self) -> Option<f64> {
        self.ready.map(|r| (r - self.start).max(0.0))
    }
}

/// The boot as bars: the stages in boot order, then the services in the order they began.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub stages: Vec<Bar>,
    pub user_docker_ready: Option<f64>,
}

/// Stage names, as `berth analyze` prints them and the benchmark reads them.
pub const KERNEL: &str = "kernel";
pub const STAGE1: &str = "stage1";
pub const STAGE2: &str = "stage2";
pub const SYSTEM_DOCKER: &str = "system-docker";
pub const USER_DOCKER: &str = "user-docker";
/// The service that runs User Docker.
const USER_ENGINE_SERVICE: &str = "docker";

impl Timeline {
    /// Read the events of `path`. A line cut short by a crash mid-write (the last one) is
    /// skipped; any other bad line is an error naming it.
    pub fn read(path: &Path) -> Result<Timeline, TimelineError> {
        let text = std::fs::read_to_string(path).map_err(|source| TimelineError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let lines: Vec<&str> = text.lines().collect();
        let mut records = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(line) {
                Ok(r) => records.push(r),
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
                Err(source) => {
                    return Err(TimelineError::Parse {
                        path: path.display().to_string(),
                        line: i + 1,
                        source,
                    });
                }
            }
        }
        Ok(Timeline::from_records(&records))
    }

    /// The bars from the events. The first occurrence of each counts: a later restart of
    /// System Docker or a service (sysinit runs again) does not move the boot's bars.
    pub fn from_records(records: &[Record]) -> Timeline {
        let first = |want: &Event| records.iter().find(|r| &r.event == want).map(|r| r.at);
        let stage1_start = first(&Event::Stage1Start);
        let stage1_done = first(&Event::Stage1Done);
        let docker_start = first(&Event::SystemDockerStart);
        let docker_ready = first(&Event::SystemDockerReady);
        let user_ready = first(&Event::UserDockerReady);
        let mut stages = Vec::new();
        let mut stage = |name: &str, start: Option<f64>, ready: Option<f64>| {
            if let Some(start) = start {
                stages.push(Bar {
                    name: name.to_string(),
                    kind: Kind::Stage,
                    start,
                    ready,
                    started: None,
                });
            }
        };
        stage(KERNEL, Some(0.0), stage1_start);
        stage(STAGE1, stage1_start, stage1_done);
        stage(STAGE2, stage1_done, docker_start);
        stage(SYSTEM_DOCKER, docker_start, docker_ready);

        let mut services: Vec<Bar> = Vec::new();
        // A bar ends at its first ready or failed event: a later attempt (sysinit again after
        // System Docker restarted) does not stretch a failed service's bar over the boot.
        let mut ended: Vec<String> = Vec::new();
        for record in records {
            match &record.event {
                Event::ServiceStart { name } if !services.iter().any(|b| &b.name == name) => {
                    services.push(Bar {
                        name: name.clone(),
                        kind: Kind::Service,
                        start: record.at,
                        ready: None,
                        started: None,
                    })
                }
                Event::ServiceStarted { name } => {
                    if let Some(bar) = services.iter_mut().find(|b| &b.name == name) {
                        bar.started.get_or_insert(record.at);
                    }
                }
                Event::ServiceReady { name } if !ended.contains(name) => {
                    if let Some(bar) = services.iter_mut().find(|b| &b.name == name) {
                        bar.ready = Some(record.at);
                        ended.push(name.clone());
                    }
                }
                Event::ServiceFailed { name } => ended.push(name.clone()),
                _ => {}
            }
        }
        // User Docker: from its service being up (container started) until its API answers.
        let engine = services.iter().find(|b| b.name == USER_ENGINE_SERVICE);
        let user_start = engine.map(|b| b.ready.or(b.started).unwrap_or(b.start));
        stage(USER_DOCKER, user_start.or(user_ready), user_ready);
        stages.extend(services);
        Timeline {
            stages,
            user_docker_ready: user_ready,
        }
    }

    /// Bars that got ready, longest first (`systemd-analyze blame`).
    pub fn blame(&self) -> Vec<&Bar> {
        let mut bars: Vec<&Bar> = self.stages.iter().filter(|b| b.ready.is_some()).collect();
        bars.sort_by(|a, b| {
            b.duration()
                .unwrap_or(0.0)
                .total_cmp(&a.duration().unwrap_or(0.0))
                .then_with(|| a.name.cmp(&b.name))
        });
        bars
    }

    /// The chain of bars that ends at `target` (User Docker ready by default): from the last
    /// bar back, each link is the bar that got ready nearest to the moment the next one began
    /// (not after it, but for a small slack) — what it waited for. First bar first.
    pub fn critical_chain(&self, target: &str) -> Vec<&Bar> {
        const SLACK: f64 = 0.05;
        let mut chain = Vec::new();
        let Some(mut current) = self.stages.iter().find(|b| b.name == target && b.ready.is_some()) else {
            return chain;
        };
        chain.push(current);
        loop {
            let before = self
                .stages
                .iter()
                .filter(|b| !chain.iter().any(|c| std::ptr::eq(*c, *b)))
                .filter(|b| b.ready.is_some_and(|r| r <= current.start + SLACK))
                // The one that got ready nearest to this one's start (within the slack, a
                // bar ready a moment after another can still be what this one waited for).
                .min_by(|a, b| {
                    let gap = |x: &Bar| (current.start - x.ready.unwrap_or(0.0)).abs();
                    gap(a).total_cmp(&gap(b))
                });
            match before {
                Some(bar) if current.start > 0.0 => {
                    chain.push(bar);
                    current = bar;
                }
                _ => break,
            }
        }
        chain.reverse();
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at: f64, event: Event) -> Record {
        Record { at, event }
    }
    fn svc(name: &str) -> String {
        name.to_string()
    }

    fn boot() -> Vec<Record> {
        vec![
            rec(1.9, Event::Stage1Start),
            rec(3.0, Event::Stage1Done),
            rec(3.4, Event::SystemDockerStart),
            rec(6.0, Event::SystemDockerReady),
            rec(6.1, Event::ServiceStart { name: svc("udev") }),
            rec(6.5, Event::ServiceStarted { name: svc("udev") }),
            rec(7.0, Event::ServiceReady { name: svc("udev") }),
            rec(7.0, Event::ServiceStart { name: svc("network") }),
            rec(8.0, Event::ServiceReady { name: svc("network") }),
            rec(8.0, Event::ServiceStart { name: svc("docker") }),
            rec(8.5, Event::ServiceStarted { name: svc("docker") }),
            rec(8.6, Event::ServiceReady { name: svc("docker") }),
            rec(8.0, Event::ServiceStart { name: svc("ntp") }),
            rec(9.0, Event::ServiceFailed { name: svc("ntp") }),
            rec(12.0, Event::UserDockerReady),
            // sysinit again after System Docker restarted: the boot's bars stay.
            rec(40.0, Event::SystemDockerStart),
            rec(41.0, Event::ServiceStart { name: svc("udev") }),
            rec(42.0, Event::ServiceReady { name: svc("ntp") }),
        ]
    }

    #[test]
    fn events_become_stages_then_services() {
        let t = Timeline::from_records(&boot());
        let names: Vec<_> = t.stages.iter().map(|b| (b.name.as_str(), b.kind)).collect();
        assert_eq!(
            names,
            [
                ("kernel", Kind::Stage),
                ("stage1", Kind::Stage),
                ("stage2", Kind::Stage),
                ("system-docker", Kind::Stage),
                ("user-docker", Kind::Stage),
                ("udev", Kind::Service),
                ("network", Kind::Service),
                ("docker", Kind::Service),
                ("ntp", Kind::Service),
            ]
        );
        let bar = |n: &str| t.stages.iter().find(|b| b.name == n).unwrap();
        assert_eq!((bar("kernel").start, bar("kernel").ready), (0.0, Some(1.9)));
        assert_eq!(
            (bar("system-docker").start, bar("system-docker").ready),
            (3.4, Some(6.0))
        );
        assert_eq!((bar("udev").start, bar("udev").ready), (6.1, Some(7.0)));
        // User Docker runs from its service being up until the API answers.
        assert_eq!(
            (bar("user-docker").start, bar("user-docker").ready),
            (8.6, Some(12.0))
        );
        assert_eq!(bar("docker").started, Some(8.5));
        // A service that failed in the boot has no ready time, even if a later attempt did.
        assert_eq!(bar("ntp").ready, None);
        assert_eq!(t.user_docker_ready, Some(12.0));
    }

    #[test]
    fn a_failed_service_has_no_ready_time() {
        let t = Timeline::from_records(&boot());
        let ntp = t.stages.iter().find(|b| b.name == "ntp").unwrap();
        assert_eq!(ntp.ready, None);
        assert!(!t.blame().iter().any(|b| b.name == "ntp"));
    }

    #[test]
    fn blame_is_longest_first_and_the_chain_leads_to_user_docker() {
        let t = Timeline::from_records(&boot());
        let blame: Vec<_> = t.blame().iter().map(|b| b.name.clone()).collect();
        assert_eq!(blame[0], "user-docker");
        assert_eq!(blame[1], "system-docker");
        let chain: Vec<_> = t
            .critical_chain(USER_DOCKER)
            .iter()
            .map(|b| b.name.clone())
            .collect();
        assert_eq!(
            chain,
            [
                "kernel",
                "stage1",
                "stage2",
                "system-docker",
                "udev",
                "network",
                "docker",
                "user-docker"
            ]
        );
    }

    #[test]
    fn the_chain_takes_the_bar_ready_nearest_to_the_start() {
        // Seen in a boot: udev got ready 17 ms after the docker service, and User Docker's
        // wait began between the two; it waited for the docker service.
        let mut records = boot();
        records.retain(|r| !matches!(&r.event, Event::ServiceReady { name } if name == "udev"));
        records.push(rec(8.62, Event::ServiceReady { name: svc("udev") }));
        let t = Timeline::from_records(&records);
        let chain: Vec<_> = t
            .critical_chain(USER_DOCKER)
            .iter()
            .map(|b| b.name.clone())
            .collect();
        assert_eq!(chain[chain.len() - 2..], ["docker", "user-docker"]);
    }

    #[test]
    fn appended_lines_read_back_and_a_cut_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/berth/boot-timeline.jsonl");
        for r in boot() {
            append(&path, &r);
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o004, 0o004, "the console's user must read it");
        let whole = Timeline::read(&path).unwrap();
        assert_eq!(whole, Timeline::from_records(&boot()));
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"at\":50.0,\"event\":\"serv");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(Timeline::read(&path).unwrap(), whole);
        // A bad line in the middle is named.
        std::fs::write(
            &path,
            "{\"at\":1.0,\"event\":\"stage1-start\"}\nnot json\n{\"at\":2.0,\"event\":\"stage1-done\"}\n",
        )
        .unwrap();
        let e = Timeline::read(&path).unwrap_err().to_string();
        assert!(e.contains("boot-timeline.jsonl:2: not a boot event"), "{e}");
    }

    #[test]
    fn the_wire_format_is_stable() {
        let line = serde_json::to_string(&rec(6.5, Event::ServiceReady { name: svc("console") })).unwrap();
        assert_eq!(line, r#"{"at":6.5,"event":"service-ready","name":"console"}"#);
    }
}
