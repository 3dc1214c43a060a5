//! When System Docker is PID 1, `reboot` and friends start a one-shot privileged system
//! container in the host PID namespace that runs the ordered shutdown (`berth shutdown-helper`).

use crate::{SYSTEM_SOCKET, client};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use std::time::Duration;

pub const HELPER_NAME: &str = "berth-shutdown";

pub async fn start_helper(action: &str) -> Result<(), String> {
    let docker = client::connect(SYSTEM_SOCKET, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let _ = docker
        .remove_container(
            HELPER_NAME,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
    let body = ContainerCreateBody {
        image: Some(format!("berth/base:{}", crate::VERSION)),
        cmd: Some(vec![
            "/usr/bin/berth".into(),
            "shutdown-helper".into(),
            action.into(),
        ]),
        host_config: Some(HostConfig {
            privileged: Some(true),
            pid_mode: Some("host".into()),
            network_mode: Some("none".into()),
            binds: Some(vec![
                "/usr/bin/berth:/usr/bin/berth:ro".into(),
                "/run:/run".into(),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(HELPER_NAME.into()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(|e| format!("creating the shutdown helper: {e}"))?;
    docker
        .start_container(HELPER_NAME, None)
        .await
        .map_err(|e| format!("starting the shutdown helper: {e}"))
}
