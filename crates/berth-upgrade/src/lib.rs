//! Berth's upgrade bundles: one release (kernel, initrd, OS image, system image store) in a
//! tar file, signed with minisign (Ed25519, prehashed) by the release key.
//!
//! A bundle is verified as a whole before anything from it is used: [`verify`] reads it once,
//! feeding every byte to the signature check while it parses the tar, so the manifest and the
//! member digests it returns come from exactly the bytes the signature covers. [`Verified::extract`]
//! reads the members a second time and checks each against those digests, so a file changed
//! between the two reads is caught before the caller marks anything bootable.
//!
//! Layout of `berth-V.upgrade` (a POSIX tar, uncompressed: its big members are compressed
//! already):
//! - `berth-release.json` first: `{"format":1,"version":"V","arch":"x86_64","files":[...]}`
//!   with each file's path, size and SHA-256;
//! - then the files of [`RELEASE_FILES`], in that order.
//!
//! The detached signature is `berth-V.upgrade.minisig`, next to it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use minisign_verify::PublicKey;

/// The manifest's name inside a bundle (its first member).
pub const MANIFEST: &str = "berth-release.json";
/// The bundle format this release reads and writes.
pub const FORMAT: u32 = 1;
/// The architecture this build runs on, as bundles name it.
pub const ARCH: &str = std::env::consts::ARCH;
/// Where the running release keeps the public key its bundles must be signed with.
pub const KEY_PATH: &str = "/usr/share/berth/keys/berth.pub";
/// The files one release is made of, as a slot holds them.
pub const RELEASE_FILES: &[&str] = &["vmlinuz", "initrd", "berth/os.img", "berth/images.img"];

/// The detached signature of `bundle`: `FILE.minisig` next to it.
pub fn signature_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// The bundle's table of contents, covered by its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub version: String,
    pub arch: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{}: no signature next to the {what} (an unsigned {what} is refused; fetch {} too)",
        file.display(),
        signature.display()
    )]
    Unsigned {
        file: PathBuf,
        signature: PathBuf,
        what: &'static str,
    },
    #[error("{}: not a minisign signature ({reason})", path.display())]
    BadSignatureFile { path: PathBuf, reason: String },
    #[error("{}: the public key is unreadable ({reason})", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error(
        "{}: signed by another key, not this release's signing key: refused",
        file.display()
    )]
    OtherKey { file: PathBuf },
    #[error(
        "{}: the signature does not match the {what}: it is corrupt or was altered after signing; refused",
        file.display()
    )]
    SignatureMismatch { file: PathBuf, what: &'static str },
    #[error(
        "{}: a legacy (not prehashed) minisign signature: sign the {what} with `minisign -S` 0.8 or later",
        file.display()
    )]
    LegacySignature { file: PathBuf, what: &'static str },
    #[error("{}: not a Berth upgrade bundle: {reason}", bundle.display())]
    NotABundle { bundle: PathBuf, reason: String },
    #[error("{}: not a Berth engine file: {reason}", file.display())]
    NotAnEngine { file: PathBuf, reason: String },
    #[error("the bundle is for {found}, this machine runs {expected}: refused")]
    WrongArch { found: String, expected: String },
    #[error(
        "the bundle holds Berth {found}, which is not newer than the running {running}: refused (--force installs it anyway)"
    )]
    NotNewer { found: String, running: String },
    #[error("version `{version}` is not a semantic version ({reason})")]
    BadVersion { version: String, reason: String },
    #[error(
        "{}: {path} changed since the bundle was verified (sha256 {got}, signed {want}): refused",
        bundle.display()
    )]
    ChangedAfterVerify {
        bundle: PathBuf,
        path: String,
        got: String,
        want: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read a minisign public key file (`untrusted comment:` line + base64 key).
pub fn load_key(path: &Path) -> Result<PublicKey, BundleError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    PublicKey::decode(&text).map_err(|e| BundleError::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A bundle whose signature verified, with its manifest.
#[derive(Debug, Clone)]
pub struct Verified {
    pub path: PathBuf,
    pub manifest: Manifest,
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Berth {} ({})", self.version, self.arch)
    }
}

/// SHA-256 of everything read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Feeds everything read through it to the signature check.
struct Signed<'a, R> {
    inner: R,
    verifier: minisign_verify::StreamVerifier<'a>,
}

impl<R: Read> Read for Signed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.verifier.update(&buf[..n]);
        Ok(n)
    }
}

/// What one pass over the tar found: the manifest's bytes and each member's digest and size.
#[derive(Default)]
struct Scan {
    manifest: Option<Vec<u8>>,
    first: Option<String>,
    members: Vec<(String, u64, String)>,
}

fn scan_tar(reader: impl Read) -> Result<Scan, String> {
    let mut scan = Scan::default();
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("unreadable tar: {e}"))?;
        let path = member_path(&entry)?;
        if scan.first.is_none() {
            scan.first = Some(path.clone());
        }
        if path == MANIFEST {
            let mut bytes = Vec::new();
            entry
                .by_ref()
                .take(1 << 20)
                .read_to_end(&mut bytes)
                .map_err(|e| e.to_string())?;
            scan.manifest = Some(bytes);
            continue;
        }
        let mut hashing = Hashing {
            inner: &mut entry,
            hasher: Sha256::new(),
        };
        let size = io::copy(&mut hashing, &mut io::sink()).map_err(|e| format!("{path}: {e}"))?;
        scan.members
            .push((path, size, hex::encode(hashing.hasher.finalize())));
    }
    Ok(scan)
}

fn member_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, String> {
    let path = entry
        .path()
        .map_err(|e| format!("a member name is unreadable: {e}"))?;
    let text = path.to_string_lossy().to_string();
    let safe = path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !safe || text.is_empty() {
        return Err(format!("member `{text}` is not a plain relative path"));
    }
    Ok(text)
}

/// The text of `file`'s detached signature, and how a failed check on `file` is told (`what`
/// it is: "bundle", "engine file").
fn read_signature<'a>(
    file: &'a Path,
    signature: &Path,
    what: &'static str,
) -> Result<(String, impl Fn(minisign_verify::Error) -> BundleError + 'a), BundleError> {
    let sig_text = match std::fs::read_to_string(signature) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BundleError::Unsigned {
                file: file.to_path_buf(),
                signature: signature.to_path_buf(),
                what,
            });
        }
        Err(e) => return Err(io_err(signature)(e)),
    };
    let sig_error = move |e: minisign_verify::Error| match e {
        minisign_verify::Error::UnexpectedKeyId => BundleError::OtherKey {
            file: file.to_path_buf(),
        },
        minisign_verify::Error::UnsupportedLegacyMode => BundleError::LegacySignature {
            file: file.to_path_buf(),
            what,
        },
        _ => BundleError::SignatureMismatch {
            file: file.to_path_buf(),
            what,
        },
    };
    Ok((sig_text, sig_error))
}

fn decode_signature(text: &str, signature: &Path) -> Result<minisign_verify::Signature, BundleError> {
    minisign_verify::Signature::decode(text).map_err(|e| BundleError::BadSignatureFile {
        path: signature.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Verify any signed file (an engine file, say) against its detached `signature` and `key`,
/// with the same checks as a bundle, its messages naming it as `what`: every byte is read once
/// and must match.
pub fn verify_file(
    file: &Path,
    signature: &Path,
    key: &PublicKey,
    what: &'static str,
) -> Result<(), BundleError> {
    let (sig_text, sig_error) = read_signature(file, signature, what)?;
    let sig = decode_signature(&sig_text, signature)?;
    let mut verifier = key.verify_stream(&sig).map_err(&sig_error)?;
    let mut reader = io::BufReader::with_capacity(1 << 20, File::open(file).map_err(io_err(file))?);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(io_err(file))?;
        if n == 0 {
            break;
        }
        verifier.update(&buf[..n]);
    }
    verifier.finalize().map_err(sig_error)
}

/// Verify `bundle` against its detached `signature` and `key`, and check that it is a complete
/// release bundle. Nothing is written anywhere.
pub fn verify(bundle: &Path, signature: &Path, key: &PublicKey) -> Result<Verified, BundleError> {
    let (sig_text, sig_error) = read_signature(bundle, signature, "bundle")?;
    let sig = decode_signature(&sig_text, signature)?;
    let verifier = key.verify_stream(&sig).map_err(&sig_error)?;
    let file = File::open(bundle).map_err(io_err(bundle))?;
    let mut signed = Signed {
        inner: io::BufReader::with_capacity(1 << 20, file),
        verifier,
    };
    let scanned = scan_tar(&mut signed);
    // The signature covers the whole file, tar padding included: read what the tar reader left.
    io::copy(&mut signed, &mut io::sink()).map_err(io_err(bundle))?;
    // A bad signature says more than the parse error a corrupt tar also gives: check it first.
    signed.verifier.finalize().map_err(sig_error)?;
    let not_a_bundle = |reason: String| BundleError::NotABundle {
        bundle: bundle.to_path_buf(),
        reason,
    };
    let scan = scanned.map_err(not_a_bundle)?;
    let manifest = check_contents(&scan).map_err(not_a_bundle)?;
    Ok(Verified {
        path: bundle.to_path_buf(),
        manifest,
    })
}

fn check_contents(scan: &Scan) -> Result<Manifest, String> {
    if scan.first.as_deref() != Some(MANIFEST) {
        return Err(format!("its first member must be {MANIFEST}"));
    }
    let bytes = scan.manifest.as_deref().ok_or_else(|| format!("no {MANIFEST}"))?;
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| format!("{MANIFEST}: {e}"))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "{MANIFEST}: format {} (this release reads format {FORMAT})",
            manifest.format
        ));
    }
    for required in RELEASE_FILES {
        if !manifest.files.iter().any(|f| f.path == *required) {
            return Err(format!("{MANIFEST} does not list {required}"));
        }
    }
    for (path, size, sha) in &scan.members {
        let entry = manifest
            .files
            .iter()
            .find(|f| &f.path == path)
            .ok_or_else(|| format!("member {path} is not in {MANIFEST}"))?;
        if entry.size != *size || &entry.sha256 != sha {
            return Err(format!("member {path} does not match {MANIFEST}"));
        }
    }
    for entry in &manifest.files {
        if !scan.members.iter().any(|(p, _, _)| p == &entry.path) {
            return Err(format!("{} is listed in {MANIFEST} but missing", entry.path));
        }
    }
    Ok(manifest)
}

/// Compare semantic versions: is `candidate` newer than `running`?
pub fn is_newer(candidate: &str, running: &str) -> Result<bool, BundleError> {
    let parse = |v: &str| {
        semver::Version::parse(v).map_err(|e| BundleError::BadVersion {
            version: v.to_string(),
            reason: e.to_string(),
        })
    };
    Ok(parse(candidate)? > parse(running)?)
}

impl Verified {
    /// May this bundle replace `running`? Another architecture never; an older or equal
    /// version only with `force`.
    pub fn check_applicable(&self, running: &str, force: bool) -> Result<(), BundleError> {
        if self.manifest.arch != ARCH {
            return Err(BundleError::WrongArch {
                found: self.manifest.arch.clone(),
                expected: ARCH.to_string(),
            });
        }
        if !force && !is_newer(&self.manifest.version, running)? {
            return Err(BundleError::NotNewer {
                found: self.manifest.version.clone(),
                running: running.to_string(),
            });
        }
        Ok(())
    }

    /// Hand each release file to `sink` (path, size, reader), checking that its bytes are the
    /// ones the signature covered. An error from the check comes after `sink` has read the
    /// file: the caller must not use what it wrote unless this returns `Ok`.
    pub fn extract<F>(&self, mut sink: F) -> Result<(), BundleError>
    where
        F: FnMut(&FileEntry, &mut dyn Read) -> io::Result<()>,
    {
        let bundle = &self.path;
        let file = File::open(bundle).map_err(io_err(bundle))?;
        let mut archive = tar::Archive::new(io::BufReader::with_capacity(1 << 20, file));
        let not_a_bundle = |reason: String| BundleError::NotABundle {
            bundle: bundle.clone(),
            reason,
        };
        let mut seen = Vec::new();
        for entry in archive.entries().map_err(io_err(bundle))? {
            let mut entry = entry.map_err(io_err(bundle))?;
            let path = member_path(&entry).map_err(not_a_bundle)?;
            if path == MANIFEST {
                continue;
            }
            let Some(want) = self.manifest.files.iter().find(|f| f.path == path) else {
                return Err(not_a_bundle(format!("member {path} is not in {MANIFEST}")));
            };
            let mut hashing = Hashing {
                inner: (&mut entry).take(want.size),
                hasher: Sha256::new(),
            };
            sink(want, &mut hashing).map_err(io_err(bundle))?;
            // Whatever the sink left unread still counts.
            io::copy(&mut hashing, &mut io::sink()).map_err(io_err(bundle))?;
            let got = hex::encode(hashing.hasher.finalize());
            if got != want.sha256 {
                return Err(BundleError::ChangedAfterVerify {
                    bundle: bundle.clone(),
                    path,
                    got,
                    want: want.sha256.clone(),
                });
            }
            seen.push(path);
        }
        if let Some(missing) = self.manifest.files.iter().find(|f| !seen.contains(&f.path)) {
            return Err(not_a_bundle(format!(
                "{} disappeared since the bundle was verified",
                missing.path
            )));
        }
        Ok(())
    }
}

/// Write a bundle of `files` (path inside the bundle, file on disk) for `version` and `arch`.
/// Members are stored with fixed owners, modes and times, so the same inputs give the same bytes.
pub fn write(
    out: &Path,
    version: &str,
    arch: &str,
    files: &[(&str, &Path)],
) -> Result<Manifest, BundleError> {
    let mut entries = Vec::new();
    for (name, path) in files {
        let file = File::open(path).map_err(io_err(path))?;
        let mut hashing = Hashing {
            inner: file,
            hasher: Sha256::new(),
        };
        let size = io::copy(&mut hashing, &mut io::sink()).map_err(io_err(path))?;
        entries.push(FileEntry {
            path: (*name).to_string(),
            size,
            sha256: hex::encode(hashing.hasher.finalize()),
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        version: version.to_string(),
        arch: arch.to_string(),
        files: entries,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| io_err(out)(io::Error::other(e)))?;
    let tmp = out.with_extension("upgrade.partial");
    let result = (|| -> io::Result<()> {
        let mut builder = tar::Builder::new(io::BufWriter::new(File::create(&tmp)?));
        builder.mode(tar::HeaderMode::Deterministic);
        let header = |size: u64| {
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            h
        };
        builder.append_data(&mut header(json.len() as u64), MANIFEST, json.as_slice())?;
        for (name, path) in files {
            let file = File::open(path)?;
            let size = file.metadata()?.len();
            builder.append_data(&mut header(size), name, file)?;
        }
        builder
            .into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(out)(e));
    }
    std::fs::rename(&tmp, out).map_err(io_err(out))?;
    Ok(manifest)
}

pub mod engine;

#[cfg(test)]
mod tests;
