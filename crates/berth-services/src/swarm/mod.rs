//! The `swarm` system service: makes the user engine init or join the Docker Swarm that
//! `berth.swarm` describes, keeps it there (a rebooted or removed node rejoins), and reports
//! the outcome in [`REPORT`] for `berth status` and `berth swarm status`.
//!
//! [`plan`] decides (pure, unit-tested); [`agent`] talks to the user engine through bollard.

pub mod agent;
pub mod plan;
pub mod token_server;

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where the agent writes its [`SwarmReport`].
pub const REPORT: &str = "/run/berth/swarm.json";

/// What the agent last saw and did. Written by the `swarm` service, read by the CLI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmReport {
    pub state: SwarmState,
    /// This node's id in the swarm, once it is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// `manager` or `worker`, as configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The managers' addresses the engine knows (or the one it is trying to join).
    #[serde(default)]
    pub managers: Vec<String>,
    /// Why the last attempt failed (never holds the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix time of the report.
    #[serde(default)]
    pub updated: u64,
}

/// Where the node stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwarmState {
    /// `berth.swarm.role` is not set.
    #[default]
    Disabled,
    /// Waiting for the user engine, or joining.
    Joining,
    /// In the swarm.
    Active,
    /// The last attempt failed; the agent tries again.
    Error,
}

impl SwarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            SwarmState::Disabled => "disabled",
            SwarmState::Joining => "joining",
            SwarmState::Active => "active",
            SwarmState::Error => "error",
        }
    }
}

impl SwarmReport {
    /// The report at `path`; `None` when the agent has not written one (or it is unreadable).
    pub fn read(path: &Path) -> Option<SwarmReport> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Write atomically, readable by everyone (it holds no secret).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        berth_config::write_atomically(path, &json, 0o644)
    }

    /// One line for `berth status`.
    pub fn summary(&self) -> String {
        let mut out = self.state.as_str().to_string();
        if let Some(role) = &self.role {
            out.push_str(&format!(", {role}"));
        }
        if let Some(id) = &self.node_id {
            out.push_str(&format!(", node {}", id.get(..12).unwrap_or(id)));
        }
        if !self.managers.is_empty() {
            out.push_str(&format!(", managers {}", self.managers.join(" ")));
        }
        if let Some(error) = &self.error {
            out.push_str(&format!(": {error}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_report_round_trips_and_summarises() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swarm.json");
        let report = SwarmReport {
            state: SwarmState::Active,
            node_id: Some("abcdefghijklmnopqrstuvwxy".into()),
            role: Some("worker".into()),
            managers: vec!["198.18.0.10:2377".into()],
            error: None,
            updated: 1,
        };
        report.write(&path).unwrap();
        assert_eq!(SwarmReport::read(&path), Some(report.clone()));
        assert_eq!(
            report.summary(),
            "active, worker, node abcdefghijkl, managers 198.18.0.10:2377"
        );
        assert_eq!(SwarmReport::read(&dir.path().join("none")), None);
    }
}
