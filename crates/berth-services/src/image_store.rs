//! The read-only system image store: a squashfs holding System Docker's own image metadata
//! (`image/overlay2/`) and layer store (`overlay2/`), written at build time by a real dockerd
//! that loaded the release's images. At boot, before System Docker starts, its data root is
//! assembled from the mounted store: the small metadata is copied, and every layer's `diff`
//! directory is a link into the store, so the layers serve as overlay lower directories in
//! place (compressed, read-only, never unpacked and never `docker load`ed). Only containers'
//! writable layers live on the data root's own medium.
//!
//! A release's images replace the previous release's as a whole: the data root remembers which
//! store it was assembled from, and a different one drops the old image metadata, layers and
//! the system containers built on them (System Docker's volumes and other state stay).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The store's identity: the same text for the same images.
pub const RELEASE_FILE: &str = "release";
/// The images in the store (tags and IDs), to name the missing ones.
pub const INDEX_FILE: &str = "images.json";
/// In the data root: the release it was assembled from.
pub const STAMP_FILE: &str = "berth-image-store.release";
/// What the store holds: engine metadata and the overlay2 layer store.
const METADATA_DIR: &str = "image";
const LAYERS_DIR: &str = "overlay2";
/// Data-root directories that belong to one release's images (dropped when it changes).
const RELEASE_DIRS: &[&str] = &[METADATA_DIR, LAYERS_DIR, "containers"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the image store {} is not usable: {} is missing", store.display(), missing.display())]
    Incomplete { store: PathBuf, missing: PathBuf },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Index { path: PathBuf, message: String },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Io { action, path, source }
}

/// One image of the store's index (written by the image builder; other fields are ignored).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct StoreImage {
    pub repo_tag: String,
    /// `sha256:<hex>`, the image ID System Docker reports.
    pub id: String,
}

/// The images the store at `store` holds.
pub fn read_index(store: &Path) -> Result<Vec<StoreImage>, StoreError> {
    let path = store.join(INDEX_FILE);
    let bytes = std::fs::read(&path).map_err(io("reading", &path))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Index {
        path,
        message: e.to_string(),
    })
}

/// One change to the data root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Drop what an earlier release left.
    Remove(PathBuf),
    CreateDir {
        path: PathBuf,
        mode: u32,
    },
    CopyFile {
        from: PathBuf,
        to: PathBuf,
    },
    Symlink {
        target: PathBuf,
        path: PathBuf,
    },
    /// Written last: the data root is complete for this release.
    Stamp {
        path: PathBuf,
        release: String,
    },
}

/// What assembling a data root from a store does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub release: String,
    /// The release the data root held before (`None`: none, or images of a Berth without a
    /// store).
    pub previous: Option<String>,
    pub steps: Vec<Step>,
}

impl Plan {
    /// The data root already holds this store's images.
    pub fn is_current(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Decide how to make `data_root` use the store mounted at `store`, whose layers System
/// Docker will reach at `store_seen_at` (the same path, unless the store moves before System
/// Docker starts).
pub fn plan(store: &Path, store_seen_at: &Path, data_root: &Path) -> Result<Plan, StoreError> {
    let release_path = store.join(RELEASE_FILE);
    let release = std::fs::read_to_string(&release_path)
        .map(|r| r.trim().to_string())
        .ok()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| StoreError::Incomplete {
            store: store.to_path_buf(),
            missing: release_path.clone(),
        })?;
    for dir in [
        Path::new(METADATA_DIR).join("overlay2"),
        PathBuf::from(LAYERS_DIR),
    ] {
        if !store.join(&dir).is_dir() {
            return Err(StoreError::Incomplete {
                store: store.to_path_buf(),
                missing: store.join(dir),
            });
        }
    }
    let previous = std::fs::read_to_string(data_root.join(STAMP_FILE))
        .ok()
        .map(|s| s.trim().to_string());
    let mut steps = Vec::new();
    if previous.as_deref() == Some(release.as_str()) && data_root.join(METADATA_DIR).is_dir() {
        return Ok(Plan {
            release,
            previous,
            steps,
        });
    }
    for dir in RELEASE_DIRS {
        let path = data_root.join(dir);
        if path.symlink_metadata().is_ok() {
            steps.push(Step::Remove(path));
        }
    }
    steps.push(Step::CreateDir {
        path: data_root.to_path_buf(),
        mode: 0o710,
    });
    copy_tree(store, data_root, Path::new(METADATA_DIR), &mut steps, &|_| false)?;
    // overlay2/<layer>/diff: the layer's files, used where they are.
    copy_tree(store, data_root, Path::new(LAYERS_DIR), &mut steps, &|rel| {
        rel.components().count() == 3 && rel.ends_with("diff")
    })?;
    for step in steps.iter_mut() {
        if let Step::Symlink { target, path } = step
            && target.as_os_str().is_empty()
        {
            // A layer link: its target is the same path in the store, as System Docker sees it.
            let rel = path.strip_prefix(data_root).unwrap_or(path);
            *target = store_seen_at.join(rel);
        }
    }
    steps.push(Step::Stamp {
        path: data_root.join(STAMP_FILE),
        release: release.clone(),
    });
    Ok(Plan {
        release,
        previous,
        steps,
    })
}

/// The steps that copy `store/rel` to `data_root/rel`; a directory for which `in_place` holds
/// becomes a symlink with an empty target (filled in by the caller).
fn copy_tree(
    store: &Path,
    data_root: &Path,
    rel: &Path,
    steps: &mut Vec<Step>,
    in_place: &dyn Fn(&Path) -> bool,
) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let from = store.join(rel);
    let to = data_root.join(rel);
    let meta = from.symlink_metadata().map_err(io("reading", &from))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(&from).map_err(io("reading", &from))?;
        steps.push(Step::Symlink { target, path: to });
    } else if kind.is_dir() {
        if in_place(rel) {
            steps.push(Step::Symlink {
                target: PathBuf::new(),
                path: to,
            });
            return Ok(());
        }
        steps.push(Step::CreateDir {
            path: to,
            mode: meta.permissions().mode() & 0o7777,
        });
        let mut names: Vec<_> = std::fs::read_dir(&from)
            .map_err(io("reading", &from))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io("reading", &from))?;
        names.sort();
        for name in names {
            copy_tree(store, data_root, &rel.join(name), steps, in_place)?;
        }
    } else if kind.is_file() {
        steps.push(Step::CopyFile { from, to });
    }
    Ok(())
}

/// Carry out `plan`.
pub fn apply(plan: &Plan) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    for step in &plan.steps {
        match step {
            Step::Remove(path) => {
                let result = if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                };
                result.map_err(io("removing", path))?;
            }
            Step::CreateDir { path, mode } => {
                std::fs::create_dir_all(path).map_err(io("creating", path))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                    .map_err(io("setting the mode of", path))?;
            }
            Step::CopyFile { from, to } => {
                std::fs::copy(from, to).map_err(io("copying", from))?;
            }
            Step::Symlink { target, path } => {
                std::os::unix::fs::symlink(target, path).map_err(io("linking", path))?;
            }
            Step::Stamp { path, release } => {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, format!("{release}\n")).map_err(io("writing", &tmp))?;
                std::fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(io("writing", &tmp))?;
                std::fs::rename(&tmp, path).map_err(io("writing", path))?;
            }
        }
    }
    Ok(())
}

/// Plan and apply: System Docker's data root at `data_root` uses the store mounted at `store`.
pub fn assemble(store: &Path, data_root: &Path) -> Result<Plan, StoreError> {
    let plan = plan(store, store, data_root)?;
    apply(&plan)?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A store shaped as a dockerd leaves its data root: metadata, two layers, short links.
    fn store(dir: &Path, release: &str) -> PathBuf {
        let s = dir.join("store");
        fs::create_dir_all(s.join("image/overlay2/imagedb/content/sha256")).unwrap();
        fs::write(s.join("image/overlay2/repositories.json"), "{}").unwrap();
        fs::write(s.join("image/overlay2/imagedb/content/sha256/aa"), "config").unwrap();
        for (id, short) in [("base", "AAA"), ("top", "BBB")] {
            fs::create_dir_all(s.join("overlay2").join(id).join("diff/etc")).unwrap();
            fs::write(s.join("overlay2").join(id).join("diff/etc/name"), id).unwrap();
            fs::write(s.join("overlay2").join(id).join("link"), short).unwrap();
            fs::create_dir_all(s.join("overlay2/l")).unwrap();
            std::os::unix::fs::symlink(format!("../{id}/diff"), s.join("overlay2/l").join(short)).unwrap();
        }
        fs::create_dir_all(s.join("overlay2/top/work")).unwrap();
        fs::write(s.join("overlay2/top/lower"), "l/AAA").unwrap();
        fs::write(s.join(RELEASE_FILE), format!("{release}\n")).unwrap();
        s
    }

    #[test]
    fn a_fresh_data_root_links_each_layer_into_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "r1");
        let root = dir.path().join("data");
        let plan = assemble(&s, &root).unwrap();
        assert_eq!((plan.release.as_str(), plan.previous.as_deref()), ("r1", None));
        // Metadata is a copy; a layer's files are read through the link, from the store.
        assert_eq!(
            fs::read_to_string(root.join("image/overlay2/repositories.json")).unwrap(),
            "{}"
        );
        assert!(!root.join("image").is_symlink());
        assert_eq!(
            fs::read_link(root.join("overlay2/top/diff")).unwrap(),
            s.join("overlay2/top/diff")
        );
        assert_eq!(
            fs::read_to_string(root.join("overlay2/l/AAA/etc/name")).unwrap(),
            "base"
        );
        assert_eq!(
            fs::read_to_string(root.join("overlay2/top/lower")).unwrap(),
            "l/AAA"
        );
        // The layer directory itself is writable (dockerd marks it `committed`), `work` empty.
        assert!(root.join("overlay2/top").is_dir() && !root.join("overlay2/top").is_symlink());
        fs::write(root.join("overlay2/top/committed"), "").unwrap();
        assert!(!s.join("overlay2/top/committed").exists());
        assert!(root.join("overlay2/top/work").is_dir());
        assert_eq!(fs::read_to_string(root.join(STAMP_FILE)).unwrap(), "r1\n");
    }

    #[test]
    fn the_same_release_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "r1");
        let root = dir.path().join("data");
        assemble(&s, &root).unwrap();
        fs::create_dir_all(root.join("containers/c1")).unwrap();
        let again = assemble(&s, &root).unwrap();
        assert!(again.is_current(), "{again:#?}");
        assert!(root.join("containers/c1").is_dir());
    }

    #[test]
    fn another_release_replaces_the_images_as_a_whole_and_keeps_other_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "r1");
        let root = dir.path().join("data");
        assemble(&s, &root).unwrap();
        fs::write(root.join("image/overlay2/imagedb/content/sha256/old"), "old").unwrap();
        fs::create_dir_all(root.join("overlay2/oldlayer/diff")).unwrap();
        fs::create_dir_all(root.join("containers/c1")).unwrap();
        fs::create_dir_all(root.join("volumes/v1")).unwrap();
        fs::write(s.join(RELEASE_FILE), "r2\n").unwrap();
        let plan = assemble(&s, &root).unwrap();
        assert_eq!(plan.previous.as_deref(), Some("r1"));
        assert!(!root.join("image/overlay2/imagedb/content/sha256/old").exists());
        assert!(!root.join("overlay2/oldlayer").exists());
        assert!(!root.join("containers").exists());
        assert!(root.join("volumes/v1").is_dir());
        assert!(root.join("image/overlay2/imagedb/content/sha256/aa").is_file());
        assert_eq!(fs::read_to_string(root.join(STAMP_FILE)).unwrap(), "r2\n");
    }

    #[test]
    fn images_loaded_by_an_older_berth_are_replaced() {
        // A state disk from before the store: loaded images, no stamp.
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "r1");
        let root = dir.path().join("data");
        fs::create_dir_all(root.join("image/overlay2/imagedb")).unwrap();
        fs::create_dir_all(root.join("overlay2/loaded/diff")).unwrap();
        let plan = assemble(&s, &root).unwrap();
        assert_eq!(plan.previous, None);
        assert!(!root.join("overlay2/loaded").exists());
        assert!(root.join("overlay2/base/link").is_file());
    }

    #[test]
    fn layers_are_linked_where_system_docker_will_see_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "r1");
        let root = dir.path().join("data");
        let plan = plan(&s, Path::new("/run/berth/images"), &root).unwrap();
        let links: Vec<_> = plan
            .steps
            .iter()
            .filter_map(|st| match st {
                Step::Symlink { target, .. } => Some(target.display().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            links,
            [
                "/run/berth/images/overlay2/base/diff",
                "../base/diff",
                "../top/diff",
                "/run/berth/images/overlay2/top/diff"
            ]
        );
    }

    #[test]
    fn a_broken_store_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let err = assemble(&dir.path().join("nothing"), &root).unwrap_err();
        assert!(err.to_string().contains("nothing/release is missing"), "{err}");
        let s = store(dir.path(), "r1");
        fs::remove_dir_all(s.join("overlay2")).unwrap();
        let err = assemble(&s, &root).unwrap_err();
        assert!(err.to_string().ends_with("store/overlay2 is missing"), "{err}");
        assert!(!root.exists(), "a broken store changed the data root");
    }

    #[test]
    fn the_index_names_the_images() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(INDEX_FILE),
            r#"[{"name":"console","repo_tag":"berth/console:1","id":"sha256:aa","size":3}]"#,
        )
        .unwrap();
        assert_eq!(
            read_index(dir.path()).unwrap(),
            [StoreImage {
                repo_tag: "berth/console:1".into(),
                id: "sha256:aa".into()
            }]
        );
        fs::write(dir.path().join(INDEX_FILE), "[{").unwrap();
        assert!(
            read_index(dir.path())
                .unwrap_err()
                .to_string()
                .contains("images.json")
        );
    }
}
