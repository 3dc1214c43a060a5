//! What a cloud-init run did, for people (the log) and programs (`/run/berth/cloud-init.json`,
//! which the console turns into a login banner).

use berth_config::{Diagnostic, Severity};
use serde::Serialize;
use std::path::Path;

/// Where a message comes from when it is not a configuration file.
pub const CLOUD_INIT_SOURCE: &str = "cloud-init";

/// The outcome of one run (`berth cloud-init`, or the console phase).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// `cloud-init` or `console`.
    pub phase: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
    /// The datasource that answered this boot (`nocloud`, `ec2`, ...), with where from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datasource: Option<DatasourceUsed>,
    /// No datasource answered: the data saved by an earlier boot is used, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineUse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// One line per datasource probed, with its timing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeRecord>,
    /// One line per item applied (`hostname`, `sysctl`, `mounts[0]`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemOutcome>,
    /// Errors and warnings, with their source file (line, column) and key.
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatasourceUsed {
    pub name: String,
    /// The device, URL or file it was read from.
    pub origin: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OfflineUse {
    /// What was saved, when, from where; `None` when nothing ever was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_from: Option<DatasourceUsed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<String>,
}

/// How one datasource probe ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeStatus {
    /// It answered (the first to answer is used).
    Found,
    /// Known not to be there (no such volume, no URL on the command line).
    Absent,
    /// There, but answered with an error that retrying does not fix.
    Failed,
    /// Still not answering when the time budget ran out.
    TimedOut,
    /// Stopped because another datasource answered first.
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeRecord {
    pub datasource: String,
    pub status: ProbeStatus,
    pub detail: String,
    pub elapsed_ms: u64,
    pub attempts: u32,
}

impl std::fmt::Display for ProbeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self.status {
            ProbeStatus::Found => "found",
            ProbeStatus::Absent => "absent",
            ProbeStatus::Failed => "failed",
            ProbeStatus::TimedOut => "timed out",
            ProbeStatus::Cancelled => "cancelled",
        };
        write!(
            f,
            "datasource {}: {status} in {}.{:03} s",
            self.datasource,
            self.elapsed_ms / 1000,
            self.elapsed_ms % 1000
        )?;
        if self.attempts > 1 {
            write!(f, " ({} attempts)", self.attempts)?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemStatus {
    Done,
    Failed,
    Skipped,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemOutcome {
    /// The configuration key the item comes from: `hostname`, `mounts[1]`, `runcmd`.
    pub item: String,
    pub status: ItemStatus,
    pub detail: String,
}

impl Report {
    /// The items that failed, as (item, detail).
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items
            .iter()
            .filter(|i| i.status == ItemStatus::Failed)
            .map(|i| (i.item.as_str(), i.detail.as_str()))
    }

    pub fn new(phase: &str) -> Self {
        Report {
            phase: phase.to_string(),
            started_at: crate::time::now(),
            ..Report::default()
        }
    }

    /// Whether any error was reported.
    pub fn has_errors(&self) -> bool {
        berth_config::has_errors(&self.diagnostics)
    }

    /// Record an error about `key` (a configuration key, or empty) from `source` (a file,
    /// or [`CLOUD_INIT_SOURCE`]), and log it.
    pub fn error(&mut self, source: &str, key: &str, message: impl Into<String>) {
        self.push(Severity::Error, source, key, message.into());
    }

    /// Record a warning, and log it.
    pub fn warning(&mut self, source: &str, key: &str, message: impl Into<String>) {
        self.push(Severity::Warning, source, key, message.into());
    }

    fn push(&mut self, severity: Severity, source: &str, key: &str, message: String) {
        let diagnostic = Diagnostic {
            severity,
            source: source.to_string(),
            line: None,
            column: None,
            key: (!key.is_empty()).then(|| key.to_string()),
            message,
        };
        self.add_diagnostic(diagnostic);
    }

    /// Record a diagnostic as it is (from berth-config), and log it.
    pub fn add_diagnostic(&mut self, diagnostic: Diagnostic) {
        match diagnostic.severity {
            Severity::Error => tracing::error!("{diagnostic}"),
            Severity::Warning => tracing::warn!("{diagnostic}"),
        }
        if !self.diagnostics.contains(&diagnostic) {
            self.diagnostics.push(diagnostic);
        }
    }

    /// Record that an item was applied.
    pub fn done(&mut self, item: &str, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::info!("{item}: {detail}");
        self.items.push(ItemOutcome {
            item: item.to_string(),
            status: ItemStatus::Done,
            detail,
        });
    }

    /// Record that an item failed: an item outcome and an error diagnostic.
    pub fn failed(&mut self, item: &str, detail: impl Into<String>) {
        let detail = detail.into();
        self.error(CLOUD_INIT_SOURCE, item, detail.clone());
        self.items.push(ItemOutcome {
            item: item.to_string(),
            status: ItemStatus::Failed,
            detail,
        });
    }

    /// Record that an item was not applied, and why (not an error).
    pub fn skipped(&mut self, item: &str, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::info!("{item}: skipped: {detail}");
        self.items.push(ItemOutcome {
            item: item.to_string(),
            status: ItemStatus::Skipped,
            detail,
        });
    }

    /// Add another report's findings and items (the phases share one banner).
    pub fn absorb(&mut self, other: Report) {
        for d in other.diagnostics {
            if !self.diagnostics.contains(&d) {
                self.diagnostics.push(d);
            }
        }
        self.items.extend(other.items);
    }

    /// Write the report as JSON, atomically (mode 0644: the console reads it).
    pub fn write(&self, path: &Path) -> crate::Result<()> {
        let mut json =
            serde_json::to_vec_pretty(self).map_err(|e| crate::Error::io(path, std::io::Error::other(e)))?;
        json.push(b'\n');
        crate::fsutil::write_file(path, &json, 0o644, 0o755)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let mut r = Report::new("cloud-init");
        r.datasource = Some(DatasourceUsed {
            name: "nocloud".into(),
            origin: "/dev/sr0".into(),
        });
        r.probes.push(ProbeRecord {
            datasource: "nocloud".into(),
            status: ProbeStatus::Found,
            detail: "/dev/sr0 (iso9660, label cidata)".into(),
            elapsed_ms: 1234,
            attempts: 1,
        });
        r.failed("mounts[0]", "cannot mount /dev/sdb1 on /data: no such device");
        r.warning("/var/lib/berth/conf/user-data.yml", "foo", "unknown key");
        r.error("x", "", "e");
        r.error("x", "", "e");
        assert!(r.has_errors());
        assert_eq!(r.diagnostics.len(), 3, "duplicates are kept once");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["datasource"]["name"], "nocloud");
        assert_eq!(v["probes"][0]["status"], "found");
        assert_eq!(v["items"][0]["status"], "failed");
        assert_eq!(v["diagnostics"][0]["severity"], "error");
        assert_eq!(v["diagnostics"][0]["key"], "mounts[0]");
        assert_eq!(v["diagnostics"][1]["source"], "/var/lib/berth/conf/user-data.yml");
        assert_eq!(
            r.probes[0].to_string(),
            "datasource nocloud: found in 1.234 s: /dev/sr0 (iso9660, label cidata)"
        );
    }

    #[test]
    fn written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/berth/cloud-init.json");
        Report::new("cloud-init").write(&path).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["phase"], "cloud-init");
    }
}
