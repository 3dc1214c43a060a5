//! The login user's docker client settings in `~/.docker/`: the TLS client's files
//! (`ca.pem`, `cert.pem`, `key.pem`) when User Docker serves TLS, and the registry credentials
//! of `berth.registry_auths` merged into `config.json`. Secrets are written 0600 and never
//! logged.

use berth_config::schema::berth::RegistryAuth;
use berth_tls::CertStore;
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::path::Path;

const DOCKER_DIR: &str = ".docker";
const CONFIG_JSON: &str = "config.json";
/// A docker client configuration larger than this is not one Berth should rewrite.
const CONFIG_LIMIT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a JSON object ({source}); left as it is, registry credentials not added", path.display())]
    NotJson {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("berth.registry_auths.{registry}: give `auth`, or `username` and `password`")]
    NoCredentials { registry: String },
    #[error(transparent)]
    Tls(#[from] berth_tls::Error),
}

/// A registry's entry in docker's `auths`: `auth` is base64 of `username:password`.
fn auth_entry(registry: &str, auth: &RegistryAuth) -> Result<Value, ClientError> {
    use base64::Engine as _;
    let encoded = match (&auth.auth, &auth.username, &auth.password) {
        (Some(a), _, _) => a.clone(),
        (None, Some(u), Some(p)) => base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")),
        _ if auth.identitytoken.is_some() => String::new(),
        _ => {
            return Err(ClientError::NoCredentials {
                registry: registry.to_string(),
            });
        }
    };
    let mut entry = Map::new();
    if !encoded.is_empty() {
        entry.insert("auth".into(), Value::String(encoded));
    }
    if let Some(token) = &auth.identitytoken {
        entry.insert("identitytoken".into(), Value::String(token.clone()));
    }
    if let Some(email) = &auth.email {
        entry.insert("email".into(), Value::String(email.clone()));
    }
    Ok(Value::Object(entry))
}

/// `existing` (a docker client configuration, if any) with the registries of `auths` set in its
/// `auths`; every other key and registry is kept.
pub fn merge_auths(
    existing: Option<&[u8]>,
    auths: &IndexMap<String, RegistryAuth>,
    path: &Path,
) -> Result<Vec<u8>, ClientError> {
    let mut root: Map<String, Value> = match existing {
        Some(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => {
            serde_json::from_slice(bytes).map_err(|source| ClientError::NotJson {
                path: path.to_path_buf(),
                source,
            })?
        }
        _ => Map::new(),
    };
    let entries = root.entry("auths").or_insert_with(|| Value::Object(Map::new()));
    if !entries.is_object() {
        *entries = Value::Object(Map::new());
    }
    if let Value::Object(entries) = entries {
        for (registry, auth) in auths {
            entries.insert(registry.clone(), auth_entry(registry, auth)?);
        }
    }
    let mut out = serde_json::to_vec_pretty(&Value::Object(root)).map_err(|source| ClientError::NotJson {
        path: path.to_path_buf(),
        source,
    })?;
    out.push(b'\n');
    Ok(out)
}

/// Merge `auths` into `home/.docker/config.json` (0600, `owner`'s).
pub fn write_registry_auths(
    root: &Path,
    home: &Path,
    owner: (u32, u32),
    auths: &IndexMap<String, RegistryAuth>,
) -> Result<(), ClientError> {
    let path = home.join(DOCKER_DIR).join(CONFIG_JSON);
    let io = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    let existing =
        berth_cloudinit::home_files::read(root, home, DOCKER_DIR, CONFIG_JSON, CONFIG_LIMIT).map_err(io)?;
    let merged = merge_auths(existing.as_deref(), auths, &path)?;
    berth_cloudinit::home_files::write(root, home, DOCKER_DIR, CONFIG_JSON, &merged, 0o600, owner).map_err(io)
}

/// Copy the store's client files into `home/.docker/` (`owner`'s; the key 0600) where they are
/// missing or differ. Returns the names written.
pub fn install_client_files(
    root: &Path,
    store: &CertStore,
    home: &Path,
    owner: (u32, u32),
) -> Result<Vec<&'static str>, ClientError> {
    let mut written = Vec::new();
    for (name, source, mode) in store.client_files() {
        let bytes = std::fs::read(&source).map_err(|source_error| ClientError::Io {
            path: source.clone(),
            source: source_error,
        })?;
        let path = home.join(DOCKER_DIR).join(name);
        let io = |source| ClientError::Io {
            path: path.clone(),
            source,
        };
        let existing =
            berth_cloudinit::home_files::read(root, home, DOCKER_DIR, name, CONFIG_LIMIT).map_err(io)?;
        if existing.as_deref() != Some(bytes.as_slice()) {
            berth_cloudinit::home_files::write(root, home, DOCKER_DIR, name, &bytes, mode, owner)
                .map_err(io)?;
            written.push(name);
        }
    }
    Ok(written)
}

/// The login user's home and owner, from this container's `/etc/passwd`.
pub fn user_home(user: &str) -> Option<(std::path::PathBuf, (u32, u32))> {
    let user = nix::unistd::User::from_name(user).ok()??;
    Some((user.dir, (user.uid.as_raw(), user.gid.as_raw())))
}

/// At the console's start: the client's TLS files (the certificates are made first when User
/// Docker may not have made them yet; both take the store's lock) and the registry
/// credentials. Returns the problems, worded for the banner.
pub fn prepare(config: &berth_config::schema::berth::BerthConfig, user: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((home, owner)) = user_home(user) else {
        return problems;
    };
    let root = Path::new("/");
    let docker = &config.docker;
    let certificates_given = docker.ca_cert.is_some() || docker.server_cert.is_some();
    if docker.tls && !certificates_given {
        let store = CertStore::new(berth_tls::TLS_DIR);
        let result = store
            .ensure(&berth_tls::names_here(&[]), false)
            .map_err(ClientError::from)
            .and_then(|_| install_client_files(root, &store, &home, owner));
        match result {
            Ok(written) if !written.is_empty() => {
                eprintln!(
                    "console-init: {} in {}/.docker",
                    written.join(", "),
                    home.display()
                );
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("docker TLS client files: {e}")),
        }
    }
    if !config.registry_auths.is_empty() {
        match write_registry_auths(root, &home, owner, &config.registry_auths) {
            // Which registries, never their credentials.
            Ok(()) => eprintln!(
                "console-init: credentials for {} in {}/.docker/config.json",
                config
                    .registry_auths
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                home.display()
            ),
            Err(e) => problems.push(format!("registry credentials: {e}")),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    fn auths(yaml_like: &[(&str, RegistryAuth)]) -> IndexMap<String, RegistryAuth> {
        yaml_like
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn user_pass(u: &str, p: &str) -> RegistryAuth {
        RegistryAuth {
            username: Some(u.into()),
            password: Some(p.into()),
            auth: None,
            email: None,
            identitytoken: None,
        }
    }

    #[test]
    fn credentials_merge_into_the_existing_configuration() {
        let existing = br#"{"auths": {"other.example": {"auth": "b3RoZXI="}, "r.example": {"auth": "old"}},
                            "credsStore": "pass", "detachKeys": "ctrl-x"}"#;
        let given = auths(&[
            ("r.example", user_pass("u", "p")),
            (
                "tok.example",
                RegistryAuth {
                    auth: Some("dTpw".into()),
                    ..user_pass("x", "y")
                },
            ),
        ]);
        let out = merge_auths(Some(existing), &given, Path::new("c.json")).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["auths"]["r.example"]["auth"], "dTpw"); // base64("u:p")
        assert_eq!(v["auths"]["tok.example"]["auth"], "dTpw");
        assert_eq!(v["auths"]["other.example"]["auth"], "b3RoZXI=");
        assert_eq!(v["credsStore"], "pass");
        assert_eq!(v["detachKeys"], "ctrl-x");
        let fresh = merge_auths(None, &given, Path::new("c.json")).unwrap();
        let v: Value = serde_json::from_slice(&fresh).unwrap();
        assert_eq!(v["auths"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn bad_input_is_named_and_nothing_is_clobbered() {
        let given = auths(&[("r.example", user_pass("u", "p"))]);
        let e = merge_auths(Some(b"{not json"), &given, Path::new("/h/.docker/config.json"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/h/.docker/config.json: not a JSON object"), "{e}");
        let mut half = user_pass("u", "p");
        half.password = None;
        let e = merge_auths(None, &auths(&[("r.example", half)]), Path::new("c"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "berth.registry_auths.r.example: give `auth`, or `username` and `password`"
        );
    }

    #[test]
    fn files_land_in_the_users_docker_directory_with_private_keys() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("home/berth")).unwrap();
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        let home = Path::new("/home/berth");
        std::fs::create_dir_all(r.join("home/berth/.docker")).unwrap();
        std::fs::write(r.join("home/berth/.docker/config.json"), r#"{"psFormat": "x"}"#).unwrap();
        write_registry_auths(r, home, me, &auths(&[("r.example", user_pass("u", "p"))])).unwrap();
        let config = r.join("home/berth/.docker/config.json");
        assert_eq!(std::fs::metadata(&config).unwrap().mode() & 0o777, 0o600);
        let v: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "x");
        assert_eq!(v["auths"]["r.example"]["auth"], "dTpw");

        let store = CertStore::new(r.join("var/lib/berth/tls"));
        store.ensure(&["berth".into()], false).unwrap();
        let written = install_client_files(r, &store, home, me).unwrap();
        assert_eq!(written, ["ca.pem", "cert.pem", "key.pem"]);
        let key = r.join("home/berth/.docker/key.pem");
        assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read(&key).unwrap(),
            std::fs::read(store.dir().join("key.pem")).unwrap()
        );
        // In step already: nothing rewritten; after a forced new set, all three again.
        assert!(install_client_files(r, &store, home, me).unwrap().is_empty());
        store.ensure(&["berth".into()], true).unwrap();
        assert_eq!(install_client_files(r, &store, home, me).unwrap().len(), 3);
    }
}
