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

/// The Docker API version Berth speaks to every engine it can run: docker.io 20.10 (API
/// 1.41, bookworm), 26.1 (1.45, trixie, the release's own) and 28.x (forky) all answer 1.41.
/// bollard's default follows the newest Docker and would be refused by older engines ("client
/// version is too new"), so it is pinned here.
pub const ENGINE_API_VERSION: &bollard::ClientVersion = &bollard::ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// A client for the engine on `socket` (requests time out after `timeout`).
pub fn connect(socket: &str, timeout: Duration) -> Result<Docker, ClientError> {
    Docker::connect_with_unix(socket, timeout.as_secs().max(1), ENGINE_API_VERSION).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_version_is_pinned_below_bollards_default() {
        // bollard's default moves with Docker; the engines Berth ships do not.
        assert!(ENGINE_API_VERSION < bollard::API_DEFAULT_VERSION);
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let docker = connect(socket.to_str().unwrap(), Duration::from_secs(1)).unwrap();
        assert_eq!(docker.client_version(), ENGINE_API_VERSION.clone());
    }
}
