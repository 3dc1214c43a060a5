//! Engine files: another Docker engine for User Docker, `docker-V.engine`, signed like upgrade
//! bundles (`docker-V.engine.minisig`, the release key). An engine file is a squashfs with the
//! layout of the release's engine directory (`/usr/lib/berth/engine`): `bin/dockerd`,
//! `bin/containerd`, `bin/runc`, ... and `engine.json`, which says which engine it is.

use crate::{BundleError, PublicKey};
use std::io::Read;
use std::path::Path;

/// The first bytes of a squashfs.
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

/// Verify an engine file: its signature (`signature`, made with the release key `key`, checked
/// as bundles are) and that it is a squashfs. Nothing is written anywhere.
pub fn verify(file: &Path, signature: &Path, key: &PublicKey) -> Result<(), BundleError> {
    crate::verify_file(file, signature, key, "engine file")?;
    let mut magic = [0u8; 4];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|source| BundleError::Io {
            path: file.to_path_buf(),
            source,
        })?;
    if &magic != SQUASHFS_MAGIC {
        return Err(BundleError::NotAnEngine {
            file: file.to_path_buf(),
            reason: "it is not a squashfs".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_file_must_be_signed_by_the_release_key_and_be_a_squashfs() {
        let dir = tempfile::tempdir().unwrap();
        let minisign::KeyPair { pk, sk } = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let key = PublicKey::decode(&pk.to_box().unwrap().to_string()).unwrap();
        let sign = |path: &Path| {
            let data = std::fs::read(path).unwrap();
            let sig =
                minisign::sign(Some(&pk), &sk, std::io::Cursor::new(data), Some("engine"), None).unwrap();
            std::fs::write(crate::signature_path(path), sig.to_string()).unwrap();
        };
        let file = dir.path().join("docker-20.10.24.engine");
        let mut body = b"hsqs".to_vec();
        body.extend(std::iter::repeat_n(7u8, 5000));
        std::fs::write(&file, &body).unwrap();
        let sig = crate::signature_path(&file);
        // Unsigned.
        let e = verify(&file, &sig, &key).unwrap_err().to_string();
        assert!(
            e.contains("no signature next to the engine file (an unsigned engine file is refused"),
            "{e}"
        );
        sign(&file);
        verify(&file, &sig, &key).unwrap();
        // One byte flipped after signing.
        body[2500] ^= 1;
        std::fs::write(&file, &body).unwrap();
        let e = verify(&file, &sig, &key).unwrap_err().to_string();
        assert!(
            e.contains("docker-20.10.24.engine: the signature does not match the engine file:")
                && !e.contains("bundle"),
            "{e}"
        );
        // Signed, but not a squashfs.
        let other = dir.path().join("docker-1.0.engine");
        std::fs::write(&other, b"#!/bin/sh\necho hello\n").unwrap();
        sign(&other);
        let e = verify(&other, &crate::signature_path(&other), &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a Berth engine file: it is not a squashfs"), "{e}");
    }
}
