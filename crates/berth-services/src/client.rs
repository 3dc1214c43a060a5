//! Connections to the two engines.

use bollard::Docker;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the engine at {socket}: {message}")]
    Connect { socket: String, message: String },
    #[error("the engine at {socket} did not answer within {}s (last error: {last})", waited.as_secs())]
    NotReady {
        socket: String,
        waited: Duration,
        last: String,
    },
}

/// A client for the engine on `socket` (requests time out after `timeout`).
pub fn connect(socket: &str, timeout: Duration) -> Result<Docker, ClientError> {
    Docker::connect_with_unix(socket, timeout.as_secs().max(1), bollard::API_DEFAULT_VERSION).map_err(|e| {
        ClientError::Connect {
            socket: socket.to_string(),
            message: e.to_string(),
        }
    })
}

/// Wait until the engine on `socket` answers a ping.
pub async fn wait_ready(socket: &str, limit: Duration) -> Result<Docker, ClientError> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        if std::path::Path::new(socket).exists()
            && let Ok(docker) = connect(socket, Duration::from_secs(120))
        {
            match docker.ping().await {
                Ok(_) => return Ok(docker),
                Err(e) => last = e.to_string(),
            }
        }
        if started.elapsed() >= limit {
            return Err(ClientError::NotReady {
                socket: socket.to_string(),
                waited: limit,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a bollard error is the engine's 404.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}
