//! `write_files` with `container: NAME`: the service manager creates the container, uploads
//! [`write_files_tar`] of [`files_for_container`] into it (the Docker API's archive upload,
//! extracted at `/`), then starts it.

use crate::error::{Error, Result};
use berth_config::Config;
use berth_config::schema::cloud::WriteFile;

/// The `write_files` entries meant for `container`, in order. For `console` this includes
/// the entries without `container:`.
pub fn files_for_container<'a>(config: &'a Config, container: &str) -> Vec<&'a WriteFile> {
    config
        .write_files
        .iter()
        .filter(|f| match &f.container {
            Some(c) => c.as_str() == container,
            None => container == "console",
        })
        .collect()
}

/// A tar archive of `files` with their decoded content and modes, paths relative to `/`.
/// Owners given as numbers (`1000`, `1000:1000`) are kept; names cannot be looked up outside
/// the container, so they become 0 (root). `append` cannot be expressed in an archive: such
/// files are written whole. No directory entries are included, so existing directories keep
/// their modes (missing ones are created by the extraction).
pub fn write_files_tar(files: &[&WriteFile]) -> Result<Vec<u8>> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        let content = file.decoded_content().map_err(|message| Error::Content {
            path: file.path.to_string(),
            message,
        })?;
        if file.append {
            tracing::warn!(
                "write_files {}: append is not possible in container {:?}; the file is written whole",
                file.path,
                file.container.as_ref().map(|c| c.as_str()).unwrap_or("console")
            );
        }
        let (uid, gid) = numeric_owner(file.owner.as_deref());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        header.set_mode(file.mode().bits());
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        header.set_mtime(mtime);
        let path = file.path.as_str().trim_start_matches('/');
        builder
            .append_data(&mut header, path, content.as_slice())
            .map_err(|source| Error::Tar {
                path: file.path.to_string(),
                source,
            })?;
    }
    builder.into_inner().map_err(|source| Error::Tar {
        path: "(archive)".to_string(),
        source,
    })
}

/// `1000` → (1000, 0); `1000:1000` → (1000, 1000); names → 0.
fn numeric_owner(owner: Option<&str>) -> (u32, u32) {
    let Some(owner) = owner else { return (0, 0) };
    let (user, group) = owner.split_once(':').unwrap_or((owner, ""));
    (
        user.trim().parse().unwrap_or(0),
        group.trim().parse().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn config(yaml: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let paths = berth_config::ConfigPaths::under(dir.path());
        std::fs::create_dir_all(&paths.conf_dir).unwrap();
        std::fs::write(paths.local(), yaml).unwrap();
        let loaded = berth_config::load(&paths, &berth_config::KernelCmdline::default());
        assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
        loaded.config
    }

    const YAML: &str = r#"
write_files:
  - path: /etc/ntp.conf
    content: server 10.0.0.1
    container: ntp
    permissions: '0600'
    owner: '123:456'
  - path: /etc/motd
    content: hello
  - path: /etc/chrony/extra.conf
    encoding: b64
    content: cG9vbCB4Cg==
    container: ntp
    owner: chrony:chrony
  - path: /etc/issue
    content: console
    container: console
"#;

    #[test]
    fn selection() {
        let c = config(YAML);
        let paths = |name| {
            files_for_container(&c, name)
                .iter()
                .map(|f| f.path.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(paths("ntp"), ["/etc/ntp.conf", "/etc/chrony/extra.conf"]);
        assert_eq!(paths("console"), ["/etc/motd", "/etc/issue"]);
        assert!(paths("docker").is_empty());
    }

    #[test]
    fn archive() {
        let c = config(YAML);
        let bytes = write_files_tar(&files_for_container(&c, "ntp")).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            seen.push((
                entry.path().unwrap().display().to_string(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
                content,
            ));
        }
        assert_eq!(
            seen,
            [
                (
                    "etc/ntp.conf".to_string(),
                    0o600,
                    123,
                    456,
                    "server 10.0.0.1".to_string()
                ),
                (
                    "etc/chrony/extra.conf".to_string(),
                    0o644,
                    0,
                    0,
                    "pool x\n".to_string()
                ),
            ]
        );
        assert!(
            write_files_tar(&[]).unwrap().len() >= 1024,
            "an empty archive is valid"
        );
    }

    #[test]
    fn undecodable_content_is_an_error() {
        let file = WriteFile {
            path: "/etc/x".parse().unwrap(),
            content: "not base64!".into(),
            encoding: berth_config::schema::cloud::Encoding::Base64,
            permissions: None,
            owner: None,
            append: false,
            container: None,
        };
        let err = write_files_tar(&[&file]).unwrap_err();
        assert!(err.to_string().starts_with("write_files /etc/x: "), "{err}");
    }

    #[test]
    fn owners() {
        assert_eq!(numeric_owner(None), (0, 0));
        assert_eq!(numeric_owner(Some("1000")), (1000, 0));
        assert_eq!(numeric_owner(Some("1000:27")), (1000, 27));
        assert_eq!(numeric_owner(Some("berth:docker")), (0, 0));
    }
}
