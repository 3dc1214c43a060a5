//! The certificate store: one directory (root's, 0700) holding the CA, the server's and the
//! client's files. Made whole or not at all, under a lock, so the `docker` service and the
//! console starting together agree on one CA.

use crate::{CA_CERT, CA_KEY, CLIENT_CERT, CLIENT_KEY, Error, SERVER_CERT, SERVER_KEY, generate::Bundle};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The files dockerd needs to serve TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What [`CertStore::ensure`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new CA and certificates were made.
    Created,
    /// A complete set was there and is kept.
    Kept,
}

/// A directory of certificates ([`crate::TLS_DIR`] on a machine).
#[derive(Clone, Debug)]
pub struct CertStore {
    dir: PathBuf,
}

/// Every file of a store, its contents' getter and its mode: keys are private.
const FILES: [(&str, u32); 6] = [
    (CA_CERT, 0o644),
    (CA_KEY, 0o600),
    (SERVER_CERT, 0o644),
    (SERVER_KEY, 0o600),
    (CLIENT_CERT, 0o644),
    (CLIENT_KEY, 0o600),
];

fn contents<'a>(bundle: &'a Bundle, name: &str) -> &'a str {
    match name {
        CA_CERT => &bundle.ca_cert,
        CA_KEY => &bundle.ca_key,
        SERVER_CERT => &bundle.server_cert,
        SERVER_KEY => &bundle.server_key,
        CLIENT_CERT => &bundle.client_cert,
        _ => &bundle.client_key,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `bytes` to `dir/name` with `mode`, atomically (a temporary file, synced, renamed).
pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io(&tmp))?;
    // The umask may have taken bits off a certificate's mode: set it exactly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Read a PEM file the engine will use, and check that it holds what its name says.
fn check_pem(path: &Path, kind: &str) -> Result<(), Error> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    if text.contains("-----BEGIN") && text.contains(kind) {
        Ok(())
    } else {
        Err(Error::Invalid {
            path: path.to_path_buf(),
            what: format!("does not hold a PEM {kind}"),
        })
    }
}

impl CertStore {
    pub fn new(dir: impl Into<PathBuf>) -> CertStore {
        CertStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn server_files(&self) -> ServerFiles {
        ServerFiles {
            ca: self.dir.join(CA_CERT),
            cert: self.dir.join(SERVER_CERT),
            key: self.dir.join(SERVER_KEY),
        }
    }

    /// The client's files, each with the name the docker CLI looks for in `~/.docker/` and
    /// its mode there.
    pub fn client_files(&self) -> [(&'static str, PathBuf, u32); 3] {
        [
            (CA_CERT, self.dir.join(CA_CERT), 0o644),
            (CLIENT_CERT, self.dir.join(CLIENT_CERT), 0o644),
            (CLIENT_KEY, self.dir.join(CLIENT_KEY), 0o600),
        ]
    }

    /// The files of the set that are not there.
    fn missing(&self) -> Vec<String> {
        FILES
            .iter()
            .filter(|(name, _)| !self.dir.join(name).is_file())
            .map(|(name, _)| (*name).to_string())
            .collect()
    }

    /// Make the CA and certificates for `server_names` unless a complete set is there (or
    /// always, with `force`). An incomplete set is an error, not replaced: a new CA would lock
    /// out the clients holding the old one without a word (`force` replaces it whole).
    pub fn ensure(&self, server_names: &[String], force: bool) -> Result<Outcome, Error> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&self.dir))?;
        let dir = std::fs::File::open(&self.dir).map_err(io(&self.dir))?;
        let _lock =
            nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, source)| {
                Error::Lock {
                    path: self.dir.clone(),
                    source,
                }
            })?;
        if !force {
            let missing = self.missing();
            if missing.is_empty() {
                return Ok(Outcome::Kept);
            }
            if missing.len() < FILES.len() {
                return Err(Error::Incomplete {
                    dir: self.dir.clone(),
                    missing,
                });
            }
        }
        let bundle = crate::generate(server_names)?;
        for (name, mode) in FILES {
            write_file(&self.dir, name, contents(&bundle, name).as_bytes(), mode)?;
        }
        tracing::info!(
            "made a CA and certificates for User Docker in {} (server names: {})",
            self.dir.display(),
            server_names.join(", ")
        );
        Ok(Outcome::Created)
    }

    /// Write the CA certificate, server certificate and key given in the configuration
    /// (`berth.docker.ca_cert`, `server_cert`, `server_key`) as this store's server files.
    pub fn write_server_files(&self, ca: &str, cert: &str, key: &str) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&self.dir))?;
        write_file(&self.dir, CA_CERT, ca.as_bytes(), 0o644)?;
        write_file(&self.dir, SERVER_CERT, cert.as_bytes(), 0o644)?;
        write_file(&self.dir, SERVER_KEY, key.as_bytes(), 0o600)
    }

    /// The server's files, checked: each is there, readable and a PEM of its kind.
    pub fn checked_server_files(&self) -> Result<ServerFiles, Error> {
        let files = self.server_files();
        check_pem(&files.ca, "CERTIFICATE")?;
        check_pem(&files.cert, "CERTIFICATE")?;
        check_pem(&files.key, "PRIVATE KEY")?;
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn keys_are_private_and_a_complete_set_is_kept_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CertStore::new(tmp.path().join("tls"));
        let names = vec!["berth".to_string()];
        assert_eq!(store.ensure(&names, false).unwrap(), Outcome::Created);
        assert_eq!(mode(store.dir()), 0o700);
        for (name, want) in FILES {
            assert_eq!(mode(&store.dir().join(name)), want, "{name}");
        }
        let ca = std::fs::read_to_string(store.dir().join(CA_CERT)).unwrap();
        assert_eq!(store.ensure(&names, false).unwrap(), Outcome::Kept);
        assert_eq!(std::fs::read_to_string(store.dir().join(CA_CERT)).unwrap(), ca);
        assert!(store.checked_server_files().is_ok());

        // A missing piece is an error naming it, and the rest stays: a new CA would lock out
        // the clients of the old one. `force` makes a whole new set.
        std::fs::remove_file(store.dir().join(SERVER_KEY)).unwrap();
        std::fs::remove_file(store.dir().join(CLIENT_KEY)).unwrap();
        let e = store.ensure(&names, false).unwrap_err().to_string();
        assert!(
            e.contains("the certificates are incomplete (server-key.pem, key.pem missing)")
                && e.contains("berth tls gen --force"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(store.dir().join(CA_CERT)).unwrap(), ca);
        assert_eq!(store.ensure(&names, true).unwrap(), Outcome::Created);
        let ca2 = std::fs::read_to_string(store.dir().join(CA_CERT)).unwrap();
        assert_ne!(ca2, ca);
        assert_eq!(store.ensure(&names, true).unwrap(), Outcome::Created);
        assert_ne!(std::fs::read_to_string(store.dir().join(CA_CERT)).unwrap(), ca2);
    }

    #[test]
    fn missing_or_wrong_server_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CertStore::new(tmp.path());
        let e = store.checked_server_files().unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("No such file"), "{e}");
        store
            .write_server_files(
                "-----BEGIN CERTIFICATE-----",
                "-----BEGIN CERTIFICATE-----",
                "oops",
            )
            .unwrap();
        assert_eq!(mode(&tmp.path().join(SERVER_KEY)), 0o600);
        let e = store.checked_server_files().unwrap_err().to_string();
        assert!(
            e.contains("server-key.pem: does not hold a PEM PRIVATE KEY"),
            "{e}"
        );
    }

    #[test]
    fn dockerd_gets_verification_and_the_tcp_listener() {
        let args = crate::dockerd_args(&CertStore::new("/t").server_files());
        assert_eq!(
            args,
            [
                "--tlsverify",
                "--tlscacert=/t/ca.pem",
                "--tlscert=/t/server-cert.pem",
                "--tlskey=/t/server-key.pem",
                "--host=tcp://0.0.0.0:2376"
            ]
        );
    }
}
