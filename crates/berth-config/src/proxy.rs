//! The proxy settings (`berth.network.http_proxy`, `https_proxy`, `no_proxy`, also spelled
//! `rancher.network.*`) as the environment variables programs read: System Docker, User
//! Docker, the console's logins and cloud-init's fetches all take them from here.

use crate::schema::network::NetworkConfig;

/// The proxy variables for `network`, each in the upper- and lower-case spelling (Go and
/// curl read both; some programs only one), in a fixed order. Empty when no proxy is set.
pub fn environment(network: &NetworkConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let settings = [
        (
            "HTTP_PROXY",
            "http_proxy",
            network.http_proxy.as_ref().map(|u| u.as_str()),
        ),
        (
            "HTTPS_PROXY",
            "https_proxy",
            network.https_proxy.as_ref().map(|u| u.as_str()),
        ),
        ("NO_PROXY", "no_proxy", network.no_proxy.as_deref()),
    ];
    for (upper, lower, value) in settings {
        if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
            out.push((upper, value.to_string()));
            out.push((lower, value.to_string()));
        }
    }
    out
}

/// `/etc/environment` (read by `pam_env` at every login, ssh and console) with the proxy
/// variables; a value holding a quote, a backslash or a line break is left out, since
/// `pam_env` has no way to write it.
pub fn etc_environment(network: &NetworkConfig) -> String {
    let mut out = String::from(
        "# Written by Berth's console-init from berth.network.http_proxy, https_proxy and\n\
         # no_proxy at every console start; change those (berth config set) rather than this file.\n",
    );
    for (key, value) in environment(network) {
        if value.contains(['"', '\\', '\n', '\r']) {
            continue;
        }
        out.push_str(&format!("{key}=\"{value}\"\n"));
    }
    out
}

/// Where the user name and password of a proxy URL (`http://user:pw@host:3128/`) end: the
/// byte index of their `@`, or `None` for a URL without credentials. Both where a secret must
/// be masked (`berth config export`) and where it must stay out (a container's environment).
pub fn credentials_end(url: &str) -> Option<usize> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rfind('@').map(|at| start + at)
}

/// `url` with its user name and password masked, as `docker info` shows a proxy.
pub fn without_credentials(url: &str) -> String {
    match credentials_end(url) {
        Some(at) => {
            let start = url.find("://").map_or(0, |i| i + 3);
            format!("{}xxxxx:xxxxx{}", &url[..start], &url[at..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn credentials_are_found_in_the_authority_only() {
        let masked = without_credentials;
        assert_eq!(
            masked("http://u:pw@proxy:3128/"),
            "http://xxxxx:xxxxx@proxy:3128/"
        );
        assert_eq!(masked("u:p@w@proxy:3128"), "xxxxx:xxxxx@proxy:3128");
        assert_eq!(masked("http://proxy:3128/a@b"), "http://proxy:3128/a@b");
        assert_eq!(credentials_end("http://proxy:3128?x=a@b"), None);
        assert_eq!(credentials_end("http://proxy:3128#a@b"), None);
        assert_eq!(credentials_end("http://u@proxy"), Some(8));
    }

    fn network(http: Option<&str>, https: Option<&str>, no: Option<&str>) -> NetworkConfig {
        NetworkConfig {
            http_proxy: http.map(|u| crate::schema::values::HttpUrl::from_str(u).unwrap()),
            https_proxy: https.map(|u| crate::schema::values::HttpUrl::from_str(u).unwrap()),
            no_proxy: no.map(str::to_string),
            ..NetworkConfig::default()
        }
    }

    #[test]
    fn each_proxy_gives_both_spellings() {
        let env = environment(&network(
            Some("http://10.0.0.1:3128"),
            None,
            Some(" localhost,127.0.0.1,.internal "),
        ));
        assert_eq!(
            env,
            vec![
                ("HTTP_PROXY", "http://10.0.0.1:3128".to_string()),
                ("http_proxy", "http://10.0.0.1:3128".to_string()),
                ("NO_PROXY", "localhost,127.0.0.1,.internal".to_string()),
                ("no_proxy", "localhost,127.0.0.1,.internal".to_string()),
            ]
        );
    }

    #[test]
    fn no_proxy_settings_no_variables() {
        assert!(environment(&NetworkConfig::default()).is_empty());
        assert!(environment(&network(None, None, Some("  "))).is_empty());
    }

    #[test]
    fn etc_environment_quotes_values_and_skips_unwritable_ones() {
        let text = etc_environment(&network(None, Some("https://proxy.example:8443"), Some("a\"b")));
        assert!(text.contains("HTTPS_PROXY=\"https://proxy.example:8443\"\n"));
        assert!(text.contains("https_proxy=\"https://proxy.example:8443\"\n"));
        assert!(!text.contains("NO_PROXY"), "{text}");
    }
}
