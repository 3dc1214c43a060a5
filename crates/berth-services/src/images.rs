//! Loading images from an unpacked docker-archive directory (`manifest.json`, image configs,
//! layer tars): only images that an engine does not hold with the expected ID are streamed to
//! `POST /images/load`. Berth's boot never does this for the system images (System Docker
//! uses them in place from the read-only store, see [`crate::image_store`]); the engine tests
//! load their fixtures this way.

use bollard::Docker;
use bytes_stream::TarStream;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const IMAGES_DESCRIPTION: &str = "the bundled system images";

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestEntry {
    pub config: String,
    pub repo_tags: Vec<String>,
    pub layers: Vec<String>,
}

impl ManifestEntry {
    /// The image ID the engine will give this image: the config's digest.
    pub fn image_id(&self) -> String {
        format!("sha256:{}", self.config.trim_end_matches(".json"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("reading the bundled images in {}: {source}", dir.display())]
    Read {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("System Docker could not load the system images: {0}")]
    Load(String),
}

pub fn read_manifest(dir: &Path) -> Result<Vec<ManifestEntry>, ImageError> {
    let path = dir.join("manifest.json");
    let bytes = std::fs::read(&path).map_err(|source| ImageError::Read {
        dir: dir.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ImageError::Manifest {
        path,
        message: e.to_string(),
    })
}

/// The entries whose tags System Docker does not have at the expected ID (an untagged entry:
/// whose image ID it does not have).
pub async fn missing(docker: &Docker, entries: &[ManifestEntry]) -> Vec<ManifestEntry> {
    let mut out = Vec::new();
    for entry in entries {
        let mut present = true;
        if entry.repo_tags.is_empty() {
            present = docker.inspect_image(&entry.image_id()).await.is_ok();
        }
        for tag in &entry.repo_tags {
            match docker.inspect_image(tag).await {
                Ok(image) if image.id.as_deref() == Some(entry.image_id().as_str()) => {}
                _ => present = false,
            }
        }
        if !present {
            out.push(entry.clone());
        }
    }
    out
}

/// The files a `docker load` archive of `entries` consists of (manifest excluded).
pub fn archive_files(entries: &[ManifestEntry]) -> Vec<String> {
    let mut files = BTreeSet::new();
    for e in entries {
        files.insert(e.config.clone());
        for l in &e.layers {
            files.insert(l.clone());
        }
    }
    files.into_iter().collect()
}

/// Load what is missing, in one request; returns the tags loaded.
pub async fn ensure(docker: &Docker, dir: &Path) -> Result<Vec<String>, ImageError> {
    let entries = read_manifest(dir)?;
    let need = missing(docker, &entries).await;
    if need.is_empty() {
        return Ok(Vec::new());
    }
    load(docker, dir, &need, &archive_files(&need)).await?;
    verify(docker, &need).await
}

async fn verify(docker: &Docker, need: &[ManifestEntry]) -> Result<Vec<String>, ImageError> {
    let still = missing(docker, need).await;
    if !still.is_empty() {
        // Tags, or the image ID of an untagged entry.
        let tags: Vec<String> = still
            .iter()
            .flat_map(|e| {
                if e.repo_tags.is_empty() {
                    vec![e.image_id()]
                } else {
                    e.repo_tags.clone()
                }
            })
            .collect();
        return Err(ImageError::Load(format!(
            "still missing after loading: {}",
            tags.join(", ")
        )));
    }
    Ok(need.iter().flat_map(|e| e.repo_tags.clone()).collect())
}

/// One `docker load` request for `entries`, with the archive holding `files`.
async fn load(
    docker: &Docker,
    dir: &Path,
    entries: &[ManifestEntry],
    files: &[String],
) -> Result<(), ImageError> {
    let manifest = serde_json::to_vec(
        &entries
            .iter()
            .map(|e| serde_json::json!({"Config": e.config, "RepoTags": e.repo_tags, "Layers": e.layers}))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| ImageError::Load(e.to_string()))?;
    let failure = std::sync::Arc::new(std::sync::Mutex::new(None));
    let stream = TarStream::spawn(dir.to_path_buf(), manifest, files.to_vec(), failure.clone());
    // The engine only sees a broken stream; say what broke it.
    let cause = move |e: String| -> ImageError {
        match failure.lock().ok().and_then(|f| f.clone()) {
            Some(reason) => ImageError::Load(format!("{reason} (in {})", IMAGES_DESCRIPTION)),
            None => ImageError::Load(e),
        }
    };
    let options = bollard::query_parameters::ImportImageOptions {
        quiet: true,
        ..Default::default()
    };
    let mut progress = docker.import_image_stream(options, stream, None);
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(err) = info.error_detail.and_then(|d| d.message) {
                    return Err(cause(err));
                }
            }
            Err(e) => return Err(cause(e.to_string())),
        }
    }
    Ok(())
}

/// Streaming a tar built from files on disk, without holding it in memory.
mod bytes_stream {
    use futures_util::Stream;
    use std::io::Write;
    use std::path::PathBuf;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::sync::mpsc;

    pub struct TarStream {
        rx: mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    }

    struct ChannelWriter {
        tx: mpsc::Sender<std::io::Result<bytes::Bytes>>,
        buf: Vec<u8>,
    }

    const CHUNK: usize = 1 << 20;

    impl Write for ChannelWriter {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.buf.extend_from_slice(data);
            if self.buf.len() >= CHUNK {
                self.flush()?;
            }
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            if !self.buf.is_empty() {
                let chunk = bytes::Bytes::from(std::mem::take(&mut self.buf));
                self.tx.blocking_send(Ok(chunk)).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "engine stopped reading")
                })?;
            }
            Ok(())
        }
    }

    impl TarStream {
        pub fn spawn(
            dir: PathBuf,
            manifest: Vec<u8>,
            files: Vec<String>,
            failure: std::sync::Arc<std::sync::Mutex<Option<String>>>,
        ) -> Self {
            let (tx, rx) = mpsc::channel(4);
            let err_tx = tx.clone();
            tokio::task::spawn_blocking(move || {
                let result = (|| -> std::io::Result<()> {
                    let mut writer = ChannelWriter {
                        tx,
                        buf: Vec::with_capacity(CHUNK),
                    };
                    {
                        let mut tar = tar::Builder::new(&mut writer);
                        let mut header = tar::Header::new_gnu();
                        header.set_size(manifest.len() as u64);
                        header.set_mode(0o644);
                        header.set_cksum();
                        tar.append_data(&mut header, "manifest.json", &manifest[..])?;
                        for file in &files {
                            tar.append_path_with_name(dir.join(file), file)
                                .map_err(|e| std::io::Error::new(e.kind(), format!("reading {file}: {e}")))?;
                        }
                        tar.finish()?;
                    }
                    writer.flush()
                })();
                if let Err(e) = result {
                    if let Ok(mut slot) = failure.lock() {
                        *slot = Some(e.to_string());
                    }
                    let _ = err_tx.blocking_send(Err(e));
                }
            });
            Self { rx }
        }
    }

    impl Stream for TarStream {
        type Item = std::io::Result<bytes::Bytes>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.rx.poll_recv(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_files_come_from_the_manifest() {
        let entries: Vec<ManifestEntry> = serde_json::from_str(
            r#"[{"Config":"aa.json","RepoTags":["berth/base:1"],"Layers":["l1/layer.tar"]},
                {"Config":"bb.json","RepoTags":["berth/console:1"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#,
        )
        .unwrap();
        assert_eq!(entries[0].image_id(), "sha256:aa");
        assert_eq!(
            archive_files(&entries),
            ["aa.json", "bb.json", "l1/layer.tar", "l2/layer.tar"]
        );
    }
}
