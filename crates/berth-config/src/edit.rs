//! The editing API behind `berth config get/set/merge/export/validate`, so the CLI stays thin.
//!
//! `set` and `merge` change only the local file (`conf_dir/cloud-config.yml`), check the
//! result against every other layer *before* writing, and write atomically (temp file,
//! fsync, rename) with mode 0600.

use crate::cmdline::{KernelCmdline, split_config_key};
use crate::diagnostic::{Diagnostic, Severity};
use crate::error::ConfigError;
use crate::load::{
    ConfigPaths, ExtraLayer, LayerKind, LayerStatus, Layering, Loaded, LocalLayer, layered, parse_layer_text,
};
use crate::merge::{Markers, merge as merge_nodes};
use crate::node::{Kind, Loc, Node, Sources};
use serde_json::Value;
use std::io::Write as _;
use std::path::Path;

/// The value at a dotted key of the effective configuration (`berth.ssh.port`,
/// `berth.sysctl.net.ipv4.ip_forward`, `write_files[0].path`, `rancher.debug`), or `None`
/// when nothing is there.
pub fn get(loaded: &Loaded, key: &str) -> Option<Value> {
    let key = key.trim();
    if key.is_empty() || key == "." {
        return Some(loaded.tree.clone());
    }
    let key = match key.strip_prefix("rancher.") {
        Some(rest) => format!("berth.{rest}"),
        None => key.to_string(),
    };
    let mut parts: Vec<String> = Vec::new();
    for part in key.split('.') {
        // `write_files[0]` → `write_files`, `0`
        let mut pieces = part.split('[');
        if let Some(first) = pieces.next()
            && !first.is_empty()
        {
            parts.push(first.to_string());
        }
        for idx in pieces {
            parts.push(idx.trim_end_matches(']').to_string());
        }
    }
    lookup(&loaded.tree, &parts).cloned()
}

/// Walk `parts`, letting a map key span several dotted parts (`net.ipv4.ip_forward`).
fn lookup<'a>(value: &'a Value, parts: &[String]) -> Option<&'a Value> {
    if parts.is_empty() {
        return Some(value);
    }
    match value {
        Value::Object(map) => (1..=parts.len()).find_map(|n| {
            let key = parts[..n].join(".");
            map.get(&key).and_then(|v| lookup(v, &parts[n..]))
        }),
        Value::Array(items) => {
            let i: usize = parts[0].parse().ok()?;
            lookup(items.get(i)?, &parts[1..])
        }
        _ => None,
    }
}

/// Set one key in the local file. `raw_value_yaml` is typed as YAML (`22`, `true`,
/// `[a, b]`, `{dhcp: true}`); `null` or an empty value removes the key from the local file.
/// A key ending in `+` appends (`ssh_authorized_keys+`). Nothing is written if the key is
/// unknown or the result would be invalid. Returns the warnings about settings the local file
/// now holds that Berth accepts but does not apply yet.
pub fn set(paths: &ConfigPaths, key: &str, raw_value_yaml: &str) -> Result<Vec<Diagnostic>, ConfigError> {
    let path = key_path(key)?;
    let value = if raw_value_yaml.trim().is_empty() {
        Node::new(Kind::Null, Loc::default())
    } else {
        crate::yaml::parse_yaml(raw_value_yaml, 0)
            .map(|(node, _)| node)
            .map_err(|f| ConfigError::InvalidValue {
                key: key.to_string(),
                message: f.message.trim_start_matches("invalid YAML: ").to_string(),
            })?
    };
    let mut patch = value;
    for seg in path.iter().rev() {
        let mut map = indexmap::IndexMap::new();
        map.insert(seg.clone(), patch);
        patch = Node::new(Kind::Map(map), Loc::default());
    }
    let mut mapping = Vec::new();
    crate::rancher::map_rancher(&mut patch, &mut mapping);
    if let Some(f) = mapping.first() {
        return Err(ConfigError::UnknownKey {
            key: key.to_string(),
            hint: f.message.clone(),
        });
    }
    let mut local = read_local(paths)?;
    let mut ignored = Vec::new();
    merge_nodes(&mut local, patch, Markers::Keep, "", &mut ignored);

    let (_, outcome) = layered(
        paths,
        &KernelCmdline::default(),
        LocalLayer::Replaced(local.clone()),
        None,
    );
    let set_key = normalized_key(&path);
    if outcome.status != LayerStatus::Applied {
        return Err(ConfigError::Rejected {
            what: format!("{key} = {}", raw_value_yaml.trim()),
            diagnostics: outcome.diagnostics,
        });
    }
    // Settings accepted but not applied yet are written, with their warning; any other
    // warning about the key being set is an unknown key, and nothing is written.
    let not_applied: std::collections::BTreeSet<String> = crate::pending::findings(&local)
        .into_iter()
        .map(|f| f.key)
        .collect();
    let (pending, others): (Vec<Diagnostic>, Vec<Diagnostic>) = outcome
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == Severity::Warning)
        .partition(|d| d.key.as_ref().is_some_and(|k| not_applied.contains(k)));
    if let Some(warning) = others.iter().find(|d| {
        d.key
            .as_deref()
            .is_some_and(|k| k == set_key || k.starts_with(&format!("{set_key}.")))
    }) {
        return Err(ConfigError::UnknownKey {
            key: warning.key.clone().unwrap_or_default(),
            hint: warning.message.clone(),
        });
    }
    write_local(paths, &local)?;
    Ok(pending)
}

/// Merge a cloud-config text (YAML, `rancher:` keys accepted) into the local file. The text
/// is checked on top of every other layer first, with its errors located in `source_name`.
/// Returns the warnings (unknown keys, unsupported RancherOS keys).
pub fn merge(
    paths: &ConfigPaths,
    yaml_text: &str,
    source_name: &str,
) -> Result<Vec<Diagnostic>, ConfigError> {
    let (_, outcome) = layered(
        paths,
        &KernelCmdline::default(),
        LocalLayer::FromDisk,
        Some(ExtraLayer {
            name: source_name,
            text: yaml_text,
        }),
    );
    if outcome.status != LayerStatus::Applied {
        return Err(ConfigError::Rejected {
            what: source_name.to_string(),
            diagnostics: outcome.diagnostics,
        });
    }
    let (incoming, _) = parse_layer_text(yaml_text, 0).map_err(|f| ConfigError::Rejected {
        what: source_name.to_string(),
        diagnostics: vec![f.to_diagnostic(&named_sources(source_name))],
    })?;
    let mut local = read_local(paths)?;
    let mut ignored = Vec::new();
    merge_nodes(&mut local, incoming, Markers::Keep, "", &mut ignored);
    let (_, combined) = layered(
        paths,
        &KernelCmdline::default(),
        LocalLayer::Replaced(local.clone()),
        None,
    );
    if combined.status != LayerStatus::Applied {
        return Err(ConfigError::Rejected {
            what: source_name.to_string(),
            diagnostics: combined.diagnostics,
        });
    }
    write_local(paths, &local)?;
    Ok(outcome.diagnostics)
}

/// The configuration to show or save. Without `full`, only what differs from the built-in
/// defaults (a removed key shows as null). Without `private`, secrets are left out: users'
/// password hashes, ssh host keys, the docker TLS keys, registry passwords and tokens, the
/// swarm join token, the credentials in proxy URLs (masked), and any value holding a PEM
/// private key.
pub fn export(loaded: &Loaded, full: bool, private: bool) -> Value {
    let mut value = if full {
        loaded.tree.clone()
    } else {
        diff(&loaded.tree, &loaded.baseline).unwrap_or_else(|| Value::Object(Default::default()))
    };
    if !private {
        redact(&mut value, !full);
    }
    value
}

/// Check a cloud-config text on its own (over the schema defaults): YAML errors with line
/// and column, wrong types and values with their key path, unknown keys as warnings.
pub fn validate_text(text: &str, source_name: &str) -> Vec<Diagnostic> {
    let mut layering = Layering::new();
    let id = layering.sources.add(source_name);
    layering.text_layer(LayerKind::Local, id, text);
    layering
        .findings
        .iter()
        .map(|f| f.to_diagnostic(&layering.sources))
        .collect()
}

/// Check a cloud-config text in the context of a system: on top of all its layers (so a
/// partial service override is checked against the service it overrides).
pub fn validate_text_in(paths: &ConfigPaths, text: &str, source_name: &str) -> Vec<Diagnostic> {
    layered(
        paths,
        &KernelCmdline::default(),
        LocalLayer::FromDisk,
        Some(ExtraLayer {
            name: source_name,
            text,
        }),
    )
    .1
    .diagnostics
}

fn named_sources(name: &str) -> Sources {
    let mut sources = Sources::new();
    sources.add(name);
    sources
}

/// Split a key as `set` takes it; dotted keys of sysctl and labels stay whole.
fn key_path(key: &str) -> Result<Vec<String>, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidKey {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(invalid("it is empty"));
    }
    if key.contains('[') || key.contains(']') {
        return Err(invalid(
            "set a whole list (like `write_files '[...]'`), not one item",
        ));
    }
    // `cc.hostname` (the command-line spelling of a top-level key) is `hostname`.
    let key = key.strip_prefix("cc.").unwrap_or(key);
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid(
            "it has an empty part (two dots in a row, or a dot at an end)",
        ));
    }
    Ok(split_config_key(&parts))
}

/// The key path as diagnostics spell it (`rancher.` shown as `berth.`, no `+`).
fn normalized_key(path: &[String]) -> String {
    let mut parts: Vec<String> = path.to_vec();
    if parts.first().is_some_and(|p| p == "rancher") {
        parts[0] = "berth".to_string();
    }
    if let Some(last) = parts.last_mut()
        && let Some(base) = crate::merge::append_base(last)
    {
        *last = base.to_string();
    }
    parts.join(".")
}

/// The local file as a tree (an empty map when it does not exist).
fn read_local(paths: &ConfigPaths) -> Result<Node, ConfigError> {
    let path = paths.local();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Node::empty_map(Loc::default()));
        }
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let sources = named_sources(&path.display().to_string());
    match parse_layer_text(&text, 1) {
        Ok((node, findings)) if !findings.iter().any(|f| f.severity == Severity::Error) => Ok(node),
        Ok((_, findings)) => Err(ConfigError::LocalFileInvalid {
            diagnostics: findings.iter().map(|f| f.to_diagnostic(&sources)).collect(),
            path,
        }),
        Err(f) => Err(ConfigError::LocalFileInvalid {
            diagnostics: vec![f.to_diagnostic(&sources)],
            path,
        }),
    }
}

fn write_local(paths: &ConfigPaths, node: &Node) -> Result<(), ConfigError> {
    let path = paths.local();
    let yaml = serde_saphyr::to_string(&node.to_json()).map_err(|e| ConfigError::Write {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let text = format!(
        "#cloud-config\n# Written by `berth config`; edit with `berth config set` or `merge`.\n{yaml}"
    );
    write_atomically(&path, text.as_bytes(), 0o600).map_err(|source| ConfigError::Write { path, source })
}

/// Write `bytes` to `path` through a temporary file in the same directory: fsync, rename,
/// fsync the directory. A crash leaves the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".to_string());
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What of `a` differs from `b` (maps compared key by key; keys only in `b` become null).
fn diff(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => {
            let mut out = serde_json::Map::new();
            for (k, av) in am {
                match bm.get(k) {
                    Some(bv) => {
                        if let Some(d) = diff(av, bv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), av.clone());
                    }
                }
            }
            for k in bm.keys() {
                if !am.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ if a == b => None,
        _ => Some(a.clone()),
    }
}

/// Remove secrets in place. With `prune`, a map left empty by the removal goes too (so a
/// diff does not show `ssh: {}` when only the host keys differed).
fn redact(value: &mut Value, prune: bool) {
    if let Some(users) = value.get_mut("users").and_then(Value::as_array_mut) {
        for user in users.iter_mut().filter_map(Value::as_object_mut) {
            user.remove("passwd");
            user.remove("hashed_passwd");
        }
    }
    if let Some(berth) = value.get_mut("berth").and_then(Value::as_object_mut) {
        strip(berth, "ssh", &["keys"], prune);
        strip(berth, "docker", &["ca_key", "server_key"], prune);
        strip(berth, "swarm", &["token"], prune);
        if let Some(network) = berth.get_mut("network").and_then(Value::as_object_mut) {
            for key in ["http_proxy", "https_proxy"] {
                if let Some(Value::String(url)) = network.get_mut(key) {
                    *url = crate::proxy::without_credentials(url);
                }
            }
        }
        if let Some(auths) = berth.get_mut("registry_auths").and_then(Value::as_object_mut) {
            let names: Vec<String> = auths.keys().cloned().collect();
            for name in names {
                strip(auths, &name, &["password", "auth", "identitytoken"], prune);
            }
        }
        if prune
            && berth
                .get("registry_auths")
                .and_then(Value::as_object)
                .is_some_and(|m| m.is_empty())
        {
            berth.remove("registry_auths");
        }
    }
    remove_private_keys(value);
}

/// Remove `fields` from the map at `parent[key]`; with `prune`, remove the map if that
/// emptied it.
fn strip(parent: &mut serde_json::Map<String, Value>, key: &str, fields: &[&str], prune: bool) {
    let Some(map) = parent.get_mut(key).and_then(Value::as_object_mut) else {
        return;
    };
    let had = map.len();
    for field in fields {
        map.remove(*field);
    }
    if prune && had > 0 && map.is_empty() {
        parent.remove(key);
    }
}

fn remove_private_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.as_str().is_some_and(holds_private_key));
            map.values_mut().for_each(remove_private_keys);
        }
        Value::Array(items) => {
            items.retain(|v| !v.as_str().is_some_and(holds_private_key));
            items.iter_mut().for_each(remove_private_keys);
        }
        _ => {}
    }
}

fn holds_private_key(s: &str) -> bool {
    s.contains("PRIVATE KEY-----")
}
