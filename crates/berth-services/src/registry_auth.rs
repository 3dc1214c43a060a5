//! `berth.registry_auths` for System Docker's pulls: the credentials of the registry an image
//! names, as bollard sends them (never logged).

use base64::Engine as _;
use berth_config::schema::berth::RegistryAuth;
use bollard::auth::DockerCredentials;
use indexmap::IndexMap;

/// Docker Hub's names, as they appear in `auths` keys.
const DOCKER_HUB: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// The registry host an image reference names (`docker.io` when it names none).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// An `auths` key as a host: `https://index.docker.io/v1/` is `index.docker.io`.
fn key_host(key: &str) -> &str {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    without_scheme.split('/').next().unwrap_or(without_scheme)
}

/// The credentials for pulling `image`, if `auths` has its registry.
pub fn credentials_for(image: &str, auths: &IndexMap<String, RegistryAuth>) -> Option<DockerCredentials> {
    let registry = registry_of(image);
    let hub = DOCKER_HUB.contains(&registry);
    let (key, auth) = auths.iter().find(|(key, _)| {
        let host = key_host(key);
        host == registry || (hub && DOCKER_HUB.contains(&host))
    })?;
    // The engine takes a user name and password; `auth` is base64 of `user:password`.
    let (username, password) = match (&auth.username, &auth.password, &auth.auth) {
        (Some(u), Some(p), _) => (Some(u.clone()), Some(p.clone())),
        (_, _, Some(encoded)) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())?;
            let (u, p) = decoded.split_once(':')?;
            (Some(u.to_string()), Some(p.to_string()))
        }
        _ => (auth.username.clone(), None),
    };
    Some(DockerCredentials {
        username,
        password,
        email: auth.email.clone(),
        identitytoken: auth.identitytoken.clone(),
        serveraddress: Some(key.clone()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(user: Option<&str>, pass: Option<&str>, encoded: Option<&str>) -> RegistryAuth {
        RegistryAuth {
            username: user.map(Into::into),
            password: pass.map(Into::into),
            auth: encoded.map(Into::into),
            email: None,
            identitytoken: None,
        }
    }

    #[test]
    fn an_images_registry_picks_its_credentials() {
        let auths: IndexMap<String, RegistryAuth> = [
            (
                "https://index.docker.io/v1/".to_string(),
                auth(None, None, Some("aHViOnB3")),
            ),
            (
                "registry.example:5000".to_string(),
                auth(Some("u"), Some("p"), None),
            ),
        ]
        .into_iter()
        .collect();
        let hub = credentials_for("library/alpine:3", &auths).unwrap();
        assert_eq!(
            (hub.username.as_deref(), hub.password.as_deref()),
            (Some("hub"), Some("pw"))
        );
        assert_eq!(hub.serveraddress.as_deref(), Some("https://index.docker.io/v1/"));
        assert!(credentials_for("docker.io/alpine", &auths).is_some());
        let private = credentials_for("registry.example:5000/team/app@sha256:ab", &auths).unwrap();
        assert_eq!(private.username.as_deref(), Some("u"));
        assert!(credentials_for("other.example/app", &auths).is_none());
        assert!(credentials_for("alpine", &IndexMap::new()).is_none());
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("team/app"), "docker.io");
    }
}
