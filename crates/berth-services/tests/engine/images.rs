//! `images::ensure`: bundled images are loaded with `POST /images/load` only when the engine
//! lacks them at the expected ID.

use crate::support::archive::{self, Image};
use crate::support::{Dockerd, block_on};
use berth_services::images::{self, ImageError};
use bollard::Docker;
use bollard::query_parameters::{RemoveImageOptions, TagImageOptions};

async fn image_id(docker: &Docker, tag: &str) -> Option<String> {
    docker.inspect_image(tag).await.ok().and_then(|i| i.id)
}

/// The `layer.tar` of an archive that holds one layer.
fn only_layer(archive: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(archive)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().join("layer.tar").exists())
        .unwrap()
        .path()
        .join("layer.tar")
}

fn two_images() -> Vec<Image> {
    let base = Image::busybox("berth-test/base:1");
    let mut app = Image::busybox("berth-test/app:1");
    app.layers.push(archive::file_layer(&[("etc/app.conf", "app\n")]));
    app.label = "app".into();
    vec![base, app]
}

#[test]
fn missing_images_are_loaded_and_present_ones_are_not() {
    let dockerd = Dockerd::start();
    let dir = dockerd.scratch("images");
    let ids = archive::write(&dir, &two_images());
    block_on(async {
        let docker = dockerd.client();

        // A fresh engine gets every image, at the ID its config digest names.
        let loaded = images::ensure(&docker, &dir).await.unwrap();
        assert_eq!(loaded, ["berth-test/base:1", "berth-test/app:1"]);
        for (tag, id) in &ids {
            assert_eq!(image_id(&docker, tag).await.as_ref(), Some(id), "{tag}");
        }

        // Everything present: nothing is loaded.
        assert_eq!(images::ensure(&docker, &dir).await.unwrap(), Vec::<String>::new());

        // A removed image comes back, alone.
        docker
            .remove_image(
                "berth-test/app:1",
                Some(RemoveImageOptions {
                    force: true,
                    ..Default::default()
                }),
                None,
            )
            .await
            .unwrap();
        assert_eq!(image_id(&docker, "berth-test/app:1").await, None);
        assert_eq!(images::ensure(&docker, &dir).await.unwrap(), ["berth-test/app:1"]);
        assert_eq!(
            image_id(&docker, "berth-test/app:1").await.as_ref(),
            Some(&ids[1].1)
        );

        // A tag that points at another image (another OS version's, say) is loaded again.
        docker
            .tag_image(
                "berth-test/app:1",
                Some(TagImageOptions {
                    repo: Some("berth-test/base".into()),
                    tag: Some("1".into()),
                }),
            )
            .await
            .unwrap();
        assert_eq!(
            image_id(&docker, "berth-test/base:1").await.as_ref(),
            Some(&ids[1].1)
        );
        assert_eq!(
            images::ensure(&docker, &dir).await.unwrap(),
            ["berth-test/base:1"]
        );
        assert_eq!(
            image_id(&docker, "berth-test/base:1").await.as_ref(),
            Some(&ids[0].1)
        );
    });
}

#[test]
fn an_untagged_image_is_missing_until_loaded() {
    let dockerd = Dockerd::start();
    let dir = dockerd.scratch("untagged");
    let mut untagged = Image::busybox("");
    untagged.label = "untagged".into();
    let ids = archive::write(&dir, &[untagged]);
    let id = &ids[0].1;
    block_on(async {
        let docker = dockerd.client();
        let entries = images::read_manifest(&dir).unwrap();
        assert_eq!(images::missing(&docker, &entries).await.len(), 1);
        images::ensure(&docker, &dir).await.unwrap();
        assert_eq!(image_id(&docker, id).await.as_ref(), Some(id));
        assert!(images::missing(&docker, &entries).await.is_empty());
    });
}

#[test]
fn a_broken_archive_is_a_clear_error() {
    let dockerd = Dockerd::start();
    block_on(async {
        let docker = dockerd.client();

        // No manifest at all.
        let empty = dockerd.scratch("empty");
        let err = images::ensure(&docker, &empty).await.unwrap_err();
        assert!(matches!(err, ImageError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains(&empty.display().to_string()), "{err}");

        // A manifest that is not one.
        let garbled = dockerd.scratch("garbled");
        std::fs::write(garbled.join("manifest.json"), "{\"Config\": ").unwrap();
        let err = images::ensure(&docker, &garbled).await.unwrap_err();
        assert!(matches!(err, ImageError::Manifest { .. }), "{err:?}");
        assert!(err.to_string().contains("manifest.json"), "{err}");

        // A layer the manifest names is missing: the error names the file, not just the
        // engine's "unexpected EOF".
        let truncated = dockerd.scratch("truncated");
        archive::write(&truncated, &[Image::busybox("berth-test/truncated:1")]);
        let layer = only_layer(&truncated);
        std::fs::remove_file(&layer).unwrap();
        let err = images::ensure(&docker, &truncated).await.unwrap_err();
        assert!(matches!(err, ImageError::Load(_)), "{err:?}");
        assert!(err.to_string().contains("layer.tar"), "{err}");

        // A layer whose content does not match the config's diff ID: the engine refuses it.
        let corrupt = dockerd.scratch("corrupt");
        archive::write(&corrupt, &[Image::busybox("berth-test/corrupt:1")]);
        let layer = only_layer(&corrupt);
        std::fs::write(&layer, archive::file_layer(&[("not/busybox", "x")])).unwrap();
        let err = images::ensure(&docker, &corrupt).await.unwrap_err();
        assert!(matches!(err, ImageError::Load(_)), "{err:?}");
        assert_eq!(image_id(&docker, "berth-test/corrupt:1").await, None);

        // The engine is still fine, and a good archive still loads.
        let good = dockerd.scratch("good");
        archive::write(&good, &[Image::busybox("berth-test/good:1")]);
        assert_eq!(
            images::ensure(&docker, &good).await.unwrap(),
            ["berth-test/good:1"]
        );
    });
}
