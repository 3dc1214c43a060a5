//! The report `berth sysinit` writes when it has brought the services up
//! ([`crate::paths::SYSINIT_REPORT`]), read back by PID 1 (is there a console?) and by the
//! CLI. One `Serialize + Deserialize` type, so a renamed variant is a compile error, not a
//! silent change of PID 1's behaviour.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// How one service's bring-up ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ServiceOutcome {
    /// Created only (`createonly`).
    Created,
    /// Started (a new or an existing container).
    Started,
    /// Already running with the same definition.
    AlreadyRunning,
    /// A one-shot (`detach: "false"`) service that ran and exited with this code.
    Exited { code: i64 },
    /// It could not be brought up; why.
    Failed { error: String },
}

impl ServiceOutcome {
    /// Running now (as far as the bring-up knows).
    pub fn is_running(&self) -> bool {
        matches!(self, ServiceOutcome::Started | ServiceOutcome::AlreadyRunning)
    }
}

/// One service in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub name: String,
    #[serde(flatten)]
    pub outcome: ServiceOutcome,
    /// How long its bring-up took, in seconds.
    #[serde(default)]
    pub seconds: f64,
}

/// What one `berth sysinit` run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SysinitReport {
    /// Seconds since boot when System Docker answered.
    pub system_docker_ready: Option<f64>,
    /// System images this run had to load into System Docker.
    #[serde(default)]
    pub images_loaded: Vec<String>,
    #[serde(default)]
    pub services: Vec<ServiceRecord>,
    /// Seconds since boot when User Docker answered.
    pub user_docker_ready: Option<f64>,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid report: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl SysinitReport {
    /// The last outcome recorded for `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceOutcome> {
        self.services
            .iter()
            .rev()
            .find(|s| s.name == name)
            .map(|s| &s.outcome)
    }

    /// Whether `name` was left running.
    pub fn is_running(&self, name: &str) -> bool {
        self.service(name).is_some_and(ServiceOutcome::is_running)
    }

    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let bytes = std::fs::read(path).map_err(|source| ReportError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ReportError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Write the report (a temporary file renamed over the old one: readers never see half).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_and_names_the_running_services() {
        let report = SysinitReport {
            system_docker_ready: Some(3.5),
            services: vec![
                ServiceRecord {
                    name: "console".into(),
                    outcome: ServiceOutcome::Failed {
                        error: "no image".into(),
                    },
                    seconds: 0.1,
                },
                ServiceRecord {
                    name: "cloud-init".into(),
                    outcome: ServiceOutcome::Exited { code: 0 },
                    seconds: 2.0,
                },
                ServiceRecord {
                    name: "console".into(),
                    outcome: ServiceOutcome::Started,
                    seconds: 0.5,
                },
            ],
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sysinit.json");
        report.write(&path).unwrap();
        let back = SysinitReport::read(&path).unwrap();
        assert_eq!(back, report);
        // The last record of a service wins.
        assert!(back.is_running("console"));
        assert!(!back.is_running("cloud-init"));
        assert!(!back.is_running("network"));
        let json = std::fs::read_to_string(&path).unwrap();
        assert!(
            json.contains("\"state\": \"exited\"") && json.contains("\"code\": 0"),
            "{json}"
        );
    }

    #[test]
    fn unreadable_reports_say_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sysinit.json");
        let missing = SysinitReport::read(&path).unwrap_err().to_string();
        assert!(missing.contains("sysinit.json"), "{missing}");
        std::fs::write(&path, "{\"services\": [[\"console\", \"Started\"]]}").unwrap();
        let old_format = SysinitReport::read(&path).unwrap_err().to_string();
        assert!(old_format.contains("not a valid report"), "{old_format}");
    }
}
