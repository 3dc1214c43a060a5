//! The release signing key: upgrade bundles are signed with it (minisign, Ed25519) and its
//! public half is baked into the OS image, so a running release accepts only bundles signed
//! by the key its own build used.
//!
//! Default: `target/berth/keys/berth.key` (a minisign secret key without a password, made on
//! the first build, mode 0600) and `berth.pub` next to it. `BERTH_SIGNING_KEY=PATH` names
//! another secret key (made with `minisign -G -W`, or copied from a previous build); its public
//! key is derived from it.

use crate::layout;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const KEY_ENV: &str = "BERTH_SIGNING_KEY";

pub struct Signer {
    pub path: PathBuf,
    pk: minisign::PublicKey,
    sk: minisign::SecretKey,
}

/// The key named by `BERTH_SIGNING_KEY`, else the build's own (made now if missing).
pub fn load_or_create() -> Result<Signer> {
    match std::env::var_os(KEY_ENV) {
        Some(path) => {
            load(Path::new(&path)).with_context(|| format!("{KEY_ENV}={}", Path::new(&path).display()))
        }
        None => {
            let path = layout::out_dir().join("keys/berth.key");
            if !path.exists() {
                create(&path)?;
            }
            load(&path)
        }
    }
}

fn create(path: &Path) -> Result<()> {
    let dir = path.parent().context("key path without a directory")?;
    std::fs::create_dir_all(dir)?;
    let minisign::KeyPair { pk, sk } =
        minisign::KeyPair::generate_unencrypted_keypair().context("generating a signing key")?;
    let sk_box = sk
        .to_box(Some("Berth development signing key (made by cargo xtask build)"))?
        .to_string();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(sk_box.as_bytes())?;
    file.sync_all()?;
    std::fs::write(path.with_extension("pub"), pk.to_box()?.to_string())?;
    eprintln!(
        "Made a new signing key {} (development builds only: see README for a release key)",
        path.display()
    );
    Ok(())
}

fn load(path: &Path) -> Result<Signer> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let sk_box = minisign::SecretKeyBox::from_string(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a minisign secret key: {e}", path.display()))?;
    let sk = match sk_box.into_unencrypted_secret_key() {
        Ok(sk) => sk,
        Err(e) => bail!(
            "{}: cannot use this secret key without a password ({e}); builds sign unattended: \
             make the key with `minisign -G -W`",
            path.display()
        ),
    };
    let pk =
        minisign::PublicKey::from_secret_key(&sk).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Signer {
        path: path.to_path_buf(),
        pk,
        sk,
    })
}

impl Signer {
    /// The public key in minisign's file format (what `berth.pub` holds).
    pub fn public_key(&self) -> Result<String> {
        Ok(self.pk.to_box()?.to_string())
    }

    /// Sign `file` into `file.minisig` (prehashed, as `minisign -S` does).
    pub fn sign(&self, file: &Path, trusted_comment: &str) -> Result<PathBuf> {
        let data = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let sig = minisign::sign(
            Some(&self.pk),
            &self.sk,
            std::io::BufReader::new(data),
            Some(trusted_comment),
            None,
        )
        .map_err(|e| anyhow::anyhow!("signing {}: {e}", file.display()))?;
        let out = berth_upgrade::signature_path(file);
        std::fs::write(&out, sig.to_string())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_key_signs_what_the_release_verifies_and_another_build_key_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("keys/berth.key");
        create(&key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let signer = load(&key).unwrap();
        // The .pub written next to the key is the one derived from it.
        assert_eq!(
            std::fs::read_to_string(key.with_extension("pub")).unwrap(),
            signer.public_key().unwrap()
        );

        let file = dir.path().join("payload");
        std::fs::write(&file, b"a release").unwrap();
        let sig = signer.sign(&file, "berth test").unwrap();
        let pk = berth_upgrade::PublicKey::decode(&signer.public_key().unwrap()).unwrap();
        let signature = minisign_verify::Signature::decode(&std::fs::read_to_string(&sig).unwrap()).unwrap();
        pk.verify(b"a release", &signature, false).unwrap();

        let other = dir.path().join("other.key");
        create(&other).unwrap();
        let other_pk =
            berth_upgrade::PublicKey::decode(&load(&other).unwrap().public_key().unwrap()).unwrap();
        assert!(other_pk.verify(b"a release", &signature, false).is_err());
        // Never overwritten: a second create of the same path fails.
        assert!(create(&key).is_err());
    }

    #[test]
    fn a_file_that_is_not_a_secret_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "hello\n").unwrap();
        let err = load(&path).err().unwrap().to_string();
        assert!(err.contains("bad.key"), "{err}");
    }
}
