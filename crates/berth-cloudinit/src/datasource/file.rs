//! `file:<path>`: user-data in a local file, or a NoCloud seed directory (`user-data`,
//! `meta-data`, `network-config`) at that path.

use super::{Attempt, Fetched, Shared};
use crate::volume::MAX_FILE;

pub(crate) async fn attempt(shared: &Shared, datasource: &str, path: &str) -> Attempt {
    let full = crate::fsutil::under(&shared.env.root, path);
    let datasource = datasource.to_string();
    let path = path.to_string();
    let read = tokio::task::spawn_blocking(move || read(&full, &datasource, &path)).await;
    read.unwrap_or_else(|e| Attempt::Failed(format!("reading failed: {e}")))
}

fn read(full: &std::path::Path, datasource: &str, path: &str) -> Attempt {
    match std::fs::metadata(full) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Attempt::Absent(format!("{path} does not exist"))
        }
        Err(e) => Attempt::Failed(format!("{path}: {e}")),
        Ok(meta) if meta.is_dir() => match crate::volume::read_from_dir(full, super::nocloud::FILES) {
            Ok(files) if files.is_empty() => {
                Attempt::Absent(format!("{path} is a directory without user-data or meta-data"))
            }
            Ok(mut files) => Attempt::Found(Box::new(super::nocloud::from_files(
                datasource,
                path.to_string(),
                &mut files,
            ))),
            Err(e) => Attempt::Failed(e.to_string()),
        },
        Ok(_) => match crate::fsutil::read_limited(full, MAX_FILE) {
            Ok(Some(bytes)) => Attempt::Found(Box::new(Fetched {
                datasource: datasource.to_string(),
                origin: path.to_string(),
                user_data: Some(bytes),
                ..Fetched::default()
            })),
            Ok(None) => Attempt::Absent(format!("{path} does not exist")),
            Err(e) => Attempt::Failed(e.to_string()),
        },
    }
}
