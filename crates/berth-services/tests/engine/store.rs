//! The read-only image store against a real engine: a store built the way `cargo xtask build`
//! builds it (an engine loads the images; its `image/` and `overlay2/` are squashed), mounted
//! read-only from a real squashfs, assembled into a new data root: the engine started on it
//! has the image at once, without any load, and runs containers whose writable layers live on
//! the data root while their image layers are read from the store.

use crate::support::{BUSYBOX, Dockerd, block_on, engine_with_busybox, logs};
use berth_services::image_store;
use bollard::models::ContainerCreateBody;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A squashfs mounted read-only through a loop device; unmounted when dropped.
struct Mounted(PathBuf);

impl Mounted {
    fn squashfs(image: &Path, at: &Path) -> Mounted {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "squashfs", "-o", "loop,ro"])
            .arg(image)
            .arg(at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mounting {}: {out:?}", image.display());
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_engine_on_a_data_root_assembled_from_the_store_runs_the_image_without_loading_it() {
    // The builder's engine loads the image, then stops.
    let mut builder = Dockerd::start();
    let id = block_on(async {
        let docker = engine_with_busybox(&builder).await;
        docker.inspect_image(BUSYBOX).await.unwrap().id.unwrap()
    });
    builder.stop();
    let data = builder.data_root();
    let work = tempfile::tempdir().unwrap();
    let meta = work.path().join("meta");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(meta.join(image_store::RELEASE_FILE), "test-1\n").unwrap();
    std::fs::write(
        meta.join(image_store::INDEX_FILE),
        format!(r#"[{{"repo_tag":"{BUSYBOX}","id":"{id}"}}]"#),
    )
    .unwrap();
    let squash = work.path().join("images.img");
    let out = Command::new("mksquashfs")
        .arg(data.join("image"))
        .arg(data.join("overlay2"))
        .arg(meta.join(image_store::RELEASE_FILE))
        .arg(meta.join(image_store::INDEX_FILE))
        .arg(&squash)
        .args(["-comp", "zstd", "-noappend", "-quiet", "-no-progress"])
        .output()
        .unwrap();
    assert!(out.status.success(), "mksquashfs: {out:?}");
    drop(builder);
    let store = Mounted::squashfs(&squash, &work.path().join("store"));

    let root = work.path().join("data-root");
    let plan = image_store::assemble(&store.0, &root).unwrap();
    assert_eq!(plan.release, "test-1");
    let engine = Dockerd::start_with(&[&format!("--data-root={}", root.display())]);
    block_on(async {
        let docker = engine.client();
        // There at once, with the build's ID: nothing was loaded.
        let image = docker.inspect_image(BUSYBOX).await.unwrap();
        assert_eq!(image.id.as_deref(), Some(id.as_str()));
        let body = ContainerCreateBody {
            image: Some(BUSYBOX.to_string()),
            cmd: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo changed > /bin/written && cat /bin/written && ls /bin/sh".into(),
            ]),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(bollard::query_parameters::CreateContainerOptions {
                    name: Some("from-store".into()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .unwrap();
        docker.start_container(&created.id, None).await.unwrap();
        let mut wait = docker.wait_container(&created.id, None);
        while let Some(status) = wait.next().await {
            assert_eq!(status.unwrap().status_code, 0);
        }
        assert_eq!(logs(&docker, "from-store").await, "changed\n/bin/sh\n");
    });
    // The container's change went to the data root; the store is untouched and read-only.
    let written = walk_for(&root.join("overlay2"), "written");
    assert!(!written.is_empty(), "the writable layer is not on the data root");
    assert!(walk_for(&store.0, "written").is_empty());
    assert!(std::fs::write(store.0.join("overlay2/probe"), "x").is_err());
    drop(engine);
}

/// Files named `name` under `dir`, not following links (the layers' links lead to the store).
fn walk_for(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                todo.push(entry.path());
            } else if entry.file_name() == name {
                found.push(entry.path());
            }
        }
    }
    found
}
