//! The errors of this crate. Each names the file, device, URL or key involved; none of them
//! stops boot: the caller reports it and goes on with the next item.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("write_files {path}: {message}")]
    Content { path: String, message: String },

    #[error("{url}: {message}")]
    Http { url: String, message: String },

    #[error("cannot mount {device} on {}: {source}", .target.display())]
    Mount {
        device: String,
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot build the tar archive for {path}: {source}")]
    Tar {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
