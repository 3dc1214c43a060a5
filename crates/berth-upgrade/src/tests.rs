use super::*;
use std::io::{Seek, SeekFrom, Write};

struct Key {
    pk: minisign::PublicKey,
    sk: minisign::SecretKey,
}

fn key() -> Key {
    let minisign::KeyPair { pk, sk } = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    Key { pk, sk }
}

fn public(key: &Key) -> PublicKey {
    PublicKey::decode(&key.pk.to_box().unwrap().to_string()).unwrap()
}

fn sign(key: &Key, bundle: &Path) {
    let sig = minisign::sign(
        Some(&key.pk),
        &key.sk,
        File::open(bundle).unwrap(),
        Some("berth test bundle"),
        None,
    )
    .unwrap();
    std::fs::write(signature_path(bundle), sig.to_string()).unwrap();
}

/// A release's files with distinct contents, and a bundle of them.
fn bundle(dir: &Path, version: &str, arch: &str, names: &[&str]) -> PathBuf {
    let src = dir.join(format!("src-{version}"));
    let files: Vec<(&str, PathBuf)> = names
        .iter()
        .map(|name| {
            let path = src.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let body: Vec<u8> = (0..70_000u32)
                .map(|i| (i % 251) as u8 ^ name.len() as u8)
                .collect();
            std::fs::write(&path, body).unwrap();
            (*name, path)
        })
        .collect();
    let refs: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let out = dir.join(format!("berth-{version}.upgrade"));
    write(&out, version, arch, &refs).unwrap();
    out
}

fn signed_bundle(dir: &Path, key: &Key, version: &str) -> PathBuf {
    let b = bundle(dir, version, ARCH, RELEASE_FILES);
    sign(key, &b);
    b
}

#[test]
fn a_signed_bundle_verifies_and_extracts_what_was_put_in() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let b = signed_bundle(dir.path(), &k, "0.2.0");
    let v = verify(&b, &signature_path(&b), &public(&k)).unwrap();
    assert_eq!(v.manifest.version, "0.2.0");
    assert_eq!(v.manifest.arch, ARCH);
    let names: Vec<&str> = v.manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, RELEASE_FILES);
    v.check_applicable("0.1.0", false).unwrap();

    let mut got = Vec::new();
    v.extract(|entry, reader| {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        got.push((entry.path.clone(), body));
        Ok(())
    })
    .unwrap();
    assert_eq!(got.len(), RELEASE_FILES.len());
    for (path, body) in got {
        let original = std::fs::read(dir.path().join("src-0.2.0").join(&path)).unwrap();
        assert_eq!(body, original, "{path}");
    }
}

#[test]
fn one_flipped_byte_is_refused_before_anything_is_read_out() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let b = signed_bundle(dir.path(), &k, "0.2.0");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&b)
        .unwrap();
    let len = f.metadata().unwrap().len();
    for at in [len / 2, 700] {
        f.seek(SeekFrom::Start(at)).unwrap();
        let mut byte = [0u8];
        f.read_exact(&mut byte).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[byte[0] ^ 0x01]).unwrap();
        let err = verify(&b, &signature_path(&b), &public(&k)).unwrap_err();
        assert!(matches!(err, BundleError::SignatureMismatch { .. }), "{err}");
        assert!(err.to_string().contains("corrupt or was altered"), "{err}");
        // Put it back: the next flip is checked on its own.
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&byte).unwrap();
    }
    verify(&b, &signature_path(&b), &public(&k)).unwrap();
}

#[test]
fn a_bundle_signed_by_another_key_or_unsigned_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ours = key();
    let theirs = key();
    let b = signed_bundle(dir.path(), &theirs, "0.2.0");
    let err = verify(&b, &signature_path(&b), &public(&ours)).unwrap_err();
    assert!(matches!(err, BundleError::OtherKey { .. }), "{err}");

    std::fs::remove_file(signature_path(&b)).unwrap();
    let err = verify(&b, &signature_path(&b), &public(&ours)).unwrap_err();
    assert!(matches!(err, BundleError::Unsigned { .. }), "{err}");
    assert!(err.to_string().contains(".upgrade.minisig"), "{err}");

    std::fs::write(signature_path(&b), "not a signature\n").unwrap();
    let err = verify(&b, &signature_path(&b), &public(&ours)).unwrap_err();
    assert!(matches!(err, BundleError::BadSignatureFile { .. }), "{err}");
}

#[test]
fn another_architecture_is_refused_even_with_force_and_older_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let b = bundle(dir.path(), "0.3.0", "aarch64", RELEASE_FILES);
    sign(&k, &b);
    let v = verify(&b, &signature_path(&b), &public(&k)).unwrap();
    for force in [false, true] {
        let err = v.check_applicable("0.1.0", force).unwrap_err();
        assert!(matches!(err, BundleError::WrongArch { .. }), "{err}");
    }

    let b = signed_bundle(dir.path(), &k, "0.1.0");
    let v = verify(&b, &signature_path(&b), &public(&k)).unwrap();
    let err = v.check_applicable("0.1.0", false).unwrap_err();
    assert!(
        err.to_string().contains("not newer than the running 0.1.0"),
        "{err}"
    );
    let err = v.check_applicable("0.2.0", false).unwrap_err();
    assert!(matches!(err, BundleError::NotNewer { .. }), "{err}");
    v.check_applicable("0.2.0", true).unwrap();
    assert!(is_newer("0.10.0", "0.9.1").unwrap());
    assert!(is_newer("not-a-version", "0.1.0").is_err());
}

#[test]
fn a_signed_tar_that_is_not_a_whole_release_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let b = bundle(dir.path(), "0.2.0", ARCH, &RELEASE_FILES[..3]);
    sign(&k, &b);
    let err = verify(&b, &signature_path(&b), &public(&k)).unwrap_err();
    assert!(
        err.to_string().contains("does not list berth/images.img"),
        "{err}"
    );

    // Signed garbage: the signature holds, the content is not a bundle.
    let junk = dir.path().join("junk.upgrade");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    sign(&k, &junk);
    let err = verify(&junk, &signature_path(&junk), &public(&k)).unwrap_err();
    assert!(matches!(err, BundleError::NotABundle { .. }), "{err}");
}

#[test]
fn a_member_changed_after_verification_fails_the_extraction() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let b = signed_bundle(dir.path(), &k, "0.2.0");
    let v = verify(&b, &signature_path(&b), &public(&k)).unwrap();
    // Flip a byte in the last member's data (the tar ends with two zero blocks and padding).
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&b)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let at = len - 1024 - 512 - 100;
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut byte = [0u8];
    f.read_exact(&mut byte).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[byte[0] ^ 0xff]).unwrap();
    drop(f);
    let err = v
        .extract(|_, r| io::copy(r, &mut io::sink()).map(|_| ()))
        .unwrap_err();
    assert!(matches!(err, BundleError::ChangedAfterVerify { .. }), "{err}");
}

#[test]
fn the_same_inputs_give_the_same_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let a = bundle(dir.path(), "0.2.0", ARCH, RELEASE_FILES);
    let first = std::fs::read(&a).unwrap();
    let b = bundle(dir.path(), "0.2.0", ARCH, RELEASE_FILES);
    assert_eq!(first, std::fs::read(b).unwrap());
    assert!(!dir.path().join("berth-0.2.0.upgrade.partial").exists());
}

#[test]
fn a_key_file_that_is_not_a_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.pub");
    std::fs::write(&path, "untrusted comment: x\nnot base64\n").unwrap();
    let err = load_key(&path).unwrap_err();
    assert!(err.to_string().contains("berth.pub"), "{err}");
    let k = key();
    std::fs::write(&path, k.pk.to_box().unwrap().to_string()).unwrap();
    load_key(&path).unwrap();
}
