//! Keeping what a datasource delivered, so later boots work offline.
//!
//! Under `/var/lib/berth/`:
//!
//! | file | what |
//! |---|---|
//! | `conf/user-data.yml` | the cloud-config: a configuration layer, written only when valid |
//! | `conf/scripts/NN-name` | the `#!` scripts, run once per instance by the console |
//! | `cloud-init/user-data` | the user-data exactly as delivered |
//! | `cloud-init/user-data.rejected.yml` | an invalid cloud-config, kept for its error locations |
//! | `cloud-init/meta-data` | the meta-data as delivered |
//! | `cloud-init/network-config`, `network_data.json` | network configuration, for the network service |
//! | `cloud-init/instance.json` | datasource, time, instance id, the meta-data Berth uses |
//!
//! An invalid cloud-config never replaces a valid one: the previous `user-data.yml` stays,
//! and the errors (file, line, column, key) go to the report.

use crate::datasource::Fetched;
use crate::metadata::MetaData;
use crate::report::{CLOUD_INIT_SOURCE, Report};
use crate::userdata::{CloudConfigPart, ScriptPart, parse_user_data};
use berth_config::{ConfigPaths, Diagnostic};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::path::{Path, PathBuf};

/// Where cloud-init keeps things, under a root (`/` on a running system).
#[derive(Clone, Debug)]
pub struct StateDirs {
    pub paths: ConfigPaths,
    /// `/var/lib/berth/cloud-init`: raw data, instance record, per-instance stamps.
    pub cloud_init: PathBuf,
}

impl StateDirs {
    pub fn under(root: &Path) -> Self {
        StateDirs {
            paths: ConfigPaths::under(root),
            cloud_init: root.join("var/lib/berth/cloud-init"),
        }
    }

    /// `conf/scripts/`: the user-data's scripts.
    pub fn scripts(&self) -> PathBuf {
        self.paths.conf_dir.join("scripts")
    }

    pub fn instance_record(&self) -> PathBuf {
        self.cloud_init.join("instance.json")
    }

    pub fn raw_user_data(&self) -> PathBuf {
        self.cloud_init.join("user-data")
    }

    pub fn rejected_user_data(&self) -> PathBuf {
        self.cloud_init.join("user-data.rejected.yml")
    }

    /// `cloud-init/instances/<id>/`: the stamps of what ran for this instance.
    pub fn instance_dir(&self, instance_id: &str) -> PathBuf {
        self.cloud_init
            .join("instances")
            .join(safe_instance_dir(instance_id))
    }
}

/// What was saved, and from where: `cloud-init/instance.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedInstance {
    pub datasource: String,
    pub origin: String,
    /// RFC 3339.
    pub saved_at: String,
    /// The meta-data's instance id, else `iid-` and a hash of the user-data.
    pub instance_id: String,
    pub meta_data: MetaData,
    /// Whether the cloud-config of this user-data was valid and saved.
    pub cloud_config_saved: bool,
    pub scripts: Vec<String>,
}

/// The instance id: the meta-data's, else derived from the user-data (so new user-data on
/// a source without meta-data counts as a new instance).
pub fn instance_id_for(meta: &MetaData, user_data: Option<&[u8]>) -> String {
    if let Some(id) = meta.instance_id.as_deref().filter(|i| !i.trim().is_empty()) {
        return id.trim().to_string();
    }
    let digest = sha2::Sha256::digest(user_data.unwrap_or_default());
    format!("iid-{}", &hex::encode(digest)[..16])
}

/// A directory name for an instance id: `[A-Za-z0-9._-]` (others become `_`), no leading
/// dot, at most 64 characters (a longer id is cut and given a hash of the whole).
fn safe_instance_dir(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        return "unnamed".to_string();
    }
    if cleaned.len() <= 64 {
        return cleaned.to_string();
    }
    let digest = hex::encode(sha2::Sha256::digest(id.as_bytes()));
    format!("{}-{}", &cleaned[..48], &digest[..15])
}

/// The record of the last save, if any.
pub fn load_saved(dirs: &StateDirs) -> Option<SavedInstance> {
    let bytes = std::fs::read(dirs.instance_record()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Save everything `fetched` holds. Each failure is reported; nothing here stops boot.
pub fn save_fetched(fetched: &Fetched, dirs: &StateDirs, report: &mut Report) -> SavedInstance {
    let meta_source = format!("datasource {}", fetched.datasource);
    for warning in &fetched.warnings {
        report.warning(&meta_source, "", warning.clone());
    }
    let raw_source = dirs.raw_user_data().display().to_string();
    let mut save = |path: PathBuf, bytes: Option<&[u8]>| {
        let result = match bytes {
            Some(bytes) => crate::fsutil::write_file(&path, bytes, 0o600, 0o700),
            None => crate::fsutil::remove_file(&path),
        };
        if let Err(e) = result {
            report.failed("save", e.to_string());
        }
    };
    save(dirs.raw_user_data(), fetched.user_data.as_deref());
    save(
        dirs.cloud_init.join("meta-data"),
        fetched.meta_data_raw.as_deref(),
    );
    for name in ["network-config", "network_data.json"] {
        let bytes = fetched
            .network_config
            .as_ref()
            .filter(|n| n.file_name == name)
            .map(|n| n.bytes.as_slice());
        save(dirs.cloud_init.join(name), bytes);
    }
    save_datasource_network(fetched, dirs, report);

    let user_data = parse_user_data(fetched.user_data.as_deref().unwrap_or_default());
    for finding in &user_data.findings {
        let message = format!("{}: {}", finding.origin, finding.message);
        if finding.is_error {
            report.error(&raw_source, "", message);
        } else {
            report.warning(&raw_source, "", message);
        }
    }
    let cloud_config_saved = save_cloud_config(&user_data.cloud_configs, dirs, report);
    let scripts = save_scripts(&user_data.scripts, dirs, report);

    let saved = SavedInstance {
        datasource: fetched.datasource.clone(),
        origin: fetched.origin.clone(),
        saved_at: crate::time::now(),
        instance_id: instance_id_for(&fetched.meta_data, fetched.user_data.as_deref()),
        meta_data: fetched.meta_data.clone(),
        cloud_config_saved,
        scripts,
    };
    match serde_json::to_vec_pretty(&saved) {
        Ok(json) => {
            if let Err(e) = crate::fsutil::write_file(&dirs.instance_record(), &json, 0o600, 0o700) {
                report.failed("save", e.to_string());
            }
        }
        Err(e) => report.failed("save", format!("cannot encode the instance record: {e}")),
    }
    saved
}

/// Translate the datasource's network configuration into the configuration layer that is
/// used when the user's configuration has no interfaces (`conf/datasource-network.yml`), or
/// remove that layer when the datasource has none. What cannot be translated is a warning
/// naming the saved file and the key.
fn save_datasource_network(fetched: &Fetched, dirs: &StateDirs, report: &mut Report) {
    let layer = dirs.paths.datasource_network();
    let translated = fetched.network_config.as_ref().and_then(|file| {
        let saved = dirs.cloud_init.join(file.file_name).display().to_string();
        match crate::network_config::translate(file.file_name, &saved, &file.bytes) {
            Ok(t) => Some((t, saved)),
            Err(e) => {
                report.warning(&saved, "", format!("{e}; the network configuration is not used"));
                None
            }
        }
    });
    let text = translated.and_then(|(t, saved)| {
        for warning in &t.warnings {
            report.warning(&saved, &warning.key, warning.message.clone());
        }
        let useful = !t.interfaces.is_empty() || !t.nameservers.is_empty() || !t.search.is_empty();
        useful.then(|| t.to_layer(&format!("{saved} (datasource {})", fetched.datasource)))
    });
    let result = match text {
        Some(text) => crate::fsutil::write_file(&layer, text.as_bytes(), 0o600, 0o700),
        None => crate::fsutil::remove_file(&layer),
    };
    if let Err(e) = result {
        report.failed("save", e.to_string());
    }
}

/// Validate and save the cloud-config. Returns whether `user-data.yml` now holds it.
fn save_cloud_config(parts: &[CloudConfigPart], dirs: &StateDirs, report: &mut Report) -> bool {
    let user_data_yml = dirs.paths.user_data();
    let rejected = dirs.rejected_user_data();
    let _ = crate::fsutil::remove_file(&rejected);
    let text = match parts {
        [] => {
            if user_data_yml.exists() {
                tracing::info!("the user-data has no cloud-config: removing the saved one");
            }
            if let Err(e) = crate::fsutil::remove_file(&user_data_yml) {
                report.failed("save", e.to_string());
            }
            return false;
        }
        [single] => single.text.clone(),
        several => match merge_parts(several, dirs, report) {
            Some(text) => text,
            None => return false,
        },
    };
    let user_data_name = user_data_yml.display().to_string();
    let diagnostics = berth_config::validate_text_in(&dirs.paths, &text, &user_data_name);
    if berth_config::has_errors(&diagnostics) {
        let rejected_name = rejected.display().to_string();
        if let Err(e) = crate::fsutil::write_file(&rejected, text.as_bytes(), 0o600, 0o700) {
            report.failed("save", e.to_string());
        }
        for mut d in diagnostics {
            if d.source == user_data_name {
                d.source = rejected_name.clone();
            }
            report.add_diagnostic(d);
        }
        report_rejected(&user_data_yml, report);
        return false;
    }
    for d in diagnostics {
        report.add_diagnostic(d);
    }
    match crate::fsutil::write_file(&user_data_yml, text.as_bytes(), 0o600, 0o700) {
        Ok(()) => {
            tracing::info!("saved the cloud-config as {}", user_data_yml.display());
            true
        }
        Err(e) => {
            report.failed("save", e.to_string());
            false
        }
    }
}

fn report_rejected(user_data_yml: &Path, report: &mut Report) {
    let kept = if user_data_yml.exists() {
        format!(
            "the user-data saved before ({}) stays in use",
            user_data_yml.display()
        )
    } else {
        "no user-data configuration is applied".to_string()
    };
    report.error(
        CLOUD_INIT_SOURCE,
        "user-data",
        format!("the cloud-config in the user-data is invalid and was not applied; {kept}"),
    );
}

/// Several cloud-config parts into one document, as cloud-init merges them: maps merge
/// deeply, anything else is replaced by the later part. Each part is checked first, so
/// errors point into that part (saved as `cloud-init/user-data.part-N.yml`).
fn merge_parts(parts: &[CloudConfigPart], dirs: &StateDirs, report: &mut Report) -> Option<String> {
    let mut invalid = false;
    let mut merged = serde_json::Value::Object(Default::default());
    let mut part_files = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let file = dirs.cloud_init.join(format!("user-data.part-{}.yml", i + 1));
        let name = file.display().to_string();
        let diagnostics: Vec<Diagnostic> = berth_config::validate_text_in(&dirs.paths, &part.text, &name);
        if berth_config::has_errors(&diagnostics) {
            invalid = true;
            if let Err(e) = crate::fsutil::write_file(&file, part.text.as_bytes(), 0o600, 0o700) {
                report.failed("save", e.to_string());
            }
            report.error(
                &name,
                "",
                format!(
                    "{} is an invalid cloud-config (saved here to show where)",
                    part.origin
                ),
            );
        } else {
            part_files.push(file);
        }
        for d in diagnostics {
            report.add_diagnostic(d);
        }
        if !invalid {
            match yaml_value(&part.text) {
                Ok(value) => deep_merge(&mut merged, value),
                Err(e) => {
                    invalid = true;
                    report.error(&name, "", e);
                }
            }
        }
    }
    for file in part_files {
        let _ = crate::fsutil::remove_file(&file);
    }
    if invalid {
        report_rejected(&dirs.paths.user_data(), report);
        return None;
    }
    let origins: Vec<&str> = parts.iter().map(|p| p.origin.as_str()).collect();
    match serde_saphyr::to_string(&merged) {
        Ok(yaml) => Some(format!(
            "#cloud-config\n# Merged by berth cloud-init from: {}\n{yaml}",
            origins.join(", ")
        )),
        Err(e) => {
            report.failed("save", format!("cannot write the merged cloud-config: {e}"));
            None
        }
    }
}

/// A cloud-config as a tree, its scalars read the way berth-config reads them (`0644`
/// stays text).
fn yaml_value(text: &str) -> Result<serde_json::Value, String> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<serde_json::Value>(text, options) {
        Ok(serde_json::Value::Null) => Ok(serde_json::Value::Object(Default::default())),
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err("a cloud-config must be a map of keys".to_string()),
        Err(e) => Err(format!("invalid YAML: {e}")),
    }
}

fn deep_merge(base: &mut serde_json::Value, incoming: serde_json::Value) {
    match (base, incoming) {
        (serde_json::Value::Object(b), serde_json::Value::Object(i)) => {
            for (k, v) in i {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => deep_merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, i) => *b = i,
    }
}

/// Replace `conf/scripts/` with the user-data's scripts (`01-name`, mode 0700).
fn save_scripts(scripts: &[ScriptPart], dirs: &StateDirs, report: &mut Report) -> Vec<String> {
    let dir = dirs.scripts();
    let staging = dirs.paths.conf_dir.join(".scripts.new");
    let result = (|| -> crate::Result<Vec<String>> {
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| crate::Error::io(&staging, e))?;
        }
        let mut names = Vec::new();
        if !scripts.is_empty() {
            crate::fsutil::ensure_dir(&staging, 0o700)?;
            for (i, script) in scripts.iter().enumerate() {
                let name = format!("{:02}-{}", i + 1, script.name);
                crate::fsutil::write_file(&staging.join(&name), &script.content, 0o700, 0o700)?;
                names.push(name);
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        }
        if !scripts.is_empty() {
            std::fs::rename(&staging, &dir).map_err(|e| crate::Error::io(&dir, e))?;
        }
        Ok(names)
    })();
    match result {
        Ok(names) => names,
        Err(e) => {
            report.failed("save", format!("cannot save the scripts: {e}"));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasource::NetworkConfigFile;
    use berth_config::{KernelCmdline, load};
    use std::os::unix::fs::PermissionsExt as _;

    fn fetched(user_data: &str) -> Fetched {
        Fetched {
            datasource: "nocloud".into(),
            origin: "/dev/sr0".into(),
            user_data: Some(user_data.as_bytes().to_vec()),
            meta_data_raw: Some(b"instance-id: iid-1\n".to_vec()),
            meta_data: MetaData {
                instance_id: Some("iid-1".into()),
                ..MetaData::default()
            },
            network_config: Some(NetworkConfigFile {
                file_name: "network-config",
                bytes: b"version: 2\n".to_vec(),
            }),
            warnings: vec![],
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn valid_cloud_config_and_scripts_are_saved() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirs::under(root.path());
        let mut report = Report::new("cloud-init");
        let ud = "Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n--B\n\
                  Content-Type: text/cloud-config\n\n#cloud-config\nhostname: saved\nfoo: 1\n\
                  --B\nContent-Type: text/x-shellscript\nContent-Disposition: attachment; filename=\"a.sh\"\n\n\
                  #!/bin/sh\necho a\n--B--\n";
        let saved = save_fetched(&fetched(ud), &dirs, &mut report);
        assert!(saved.cloud_config_saved);
        assert_eq!(saved.instance_id, "iid-1");
        assert_eq!(saved.scripts, ["01-a.sh"]);
        assert!(!report.has_errors(), "{:#?}", report.diagnostics);
        // the unknown key is a warning with the saved file as its source
        let warning = &report.diagnostics[0];
        assert_eq!(warning.key.as_deref(), Some("foo"));
        assert_eq!(warning.source, dirs.paths.user_data().display().to_string());
        let yml = dirs.paths.user_data();
        assert_eq!(mode(&yml), 0o600);
        assert_eq!(mode(&dirs.scripts().join("01-a.sh")), 0o700);
        assert_eq!(std::fs::read(dirs.raw_user_data()).unwrap(), ud.as_bytes());
        assert!(dirs.cloud_init.join("network-config").exists());
        assert_eq!(load_saved(&dirs).unwrap(), saved);
        let loaded = load(&dirs.paths, &KernelCmdline::default());
        assert_eq!(loaded.config.effective_hostname().as_str(), "saved");

        // New user-data without scripts or meta-data network config: stale files go.
        let mut next = fetched("#cloud-config\nhostname: again\n");
        next.network_config = None;
        let saved = save_fetched(&next, &dirs, &mut Report::new("cloud-init"));
        assert!(saved.scripts.is_empty());
        assert!(!dirs.scripts().exists());
        assert!(!dirs.cloud_init.join("network-config").exists());
    }

    #[test]
    fn datasource_network_config_becomes_a_layer_used_without_user_interfaces() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirs::under(root.path());
        let mut report = Report::new("cloud-init");
        let mut with_network = fetched("#cloud-config\nhostname: n\n");
        with_network.network_config = Some(NetworkConfigFile {
            file_name: "network-config",
            bytes: b"version: 2\nethernets:\n  eth0:\n    addresses: [192.0.2.10/24]\n    wakeonlan: true\n"
                .to_vec(),
        });
        save_fetched(&with_network, &dirs, &mut report);
        let loaded = load(&dirs.paths, &KernelCmdline::default());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let eth0 = &loaded.config.berth.network.interfaces["eth0"];
        assert_eq!(eth0.address.as_ref().unwrap().to_string(), "192.0.2.10/24");
        let saved = dirs.cloud_init.join("network-config").display().to_string();
        let warning = report.diagnostics.iter().find(|d| d.source == saved).unwrap();
        assert_eq!(warning.key.as_deref(), Some("ethernets.eth0.wakeonlan"));
        assert_eq!(warning.message, "not supported by berth.network; ignored");

        // The next instance's datasource has none: the layer goes with it.
        let mut without = fetched("#cloud-config\nhostname: n\n");
        without.network_config = None;
        save_fetched(&without, &dirs, &mut Report::new("cloud-init"));
        assert!(!dirs.paths.datasource_network().exists());
    }

    #[test]
    fn invalid_cloud_config_keeps_the_previous_one() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirs::under(root.path());
        save_fetched(
            &fetched("#cloud-config\nhostname: good\n"),
            &dirs,
            &mut Report::new("cloud-init"),
        );
        let mut report = Report::new("cloud-init");
        let bad = "#cloud-config\nhostname: good\nberth:\n  ssh:\n    port: nope\n";
        let saved = save_fetched(&fetched(bad), &dirs, &mut report);
        assert!(!saved.cloud_config_saved);
        assert!(report.has_errors());
        let located = report
            .diagnostics
            .iter()
            .find(|d| d.key.as_deref() == Some("berth.ssh.port"))
            .unwrap();
        assert_eq!(located.source, dirs.rejected_user_data().display().to_string());
        assert_eq!((located.line, located.column), (Some(5), Some(5)));
        assert_eq!(std::fs::read_to_string(dirs.rejected_user_data()).unwrap(), bad);
        assert!(
            report
                .diagnostics
                .iter()
                .any(|d| d.message.contains("stays in use"))
        );
        let loaded = load(&dirs.paths, &KernelCmdline::default());
        assert_eq!(loaded.config.effective_hostname().as_str(), "good");

        // invalid YAML is located too
        let mut report = Report::new("cloud-init");
        save_fetched(&fetched("#cloud-config\nhostname: [x\n"), &dirs, &mut report);
        assert!(
            report
                .diagnostics
                .iter()
                .any(|d| d.line.is_some() && d.message.contains("YAML"))
        );
    }

    #[test]
    fn several_cloud_configs_are_merged() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirs::under(root.path());
        let ud = "Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n\
                  --B\nContent-Type: text/cloud-config\n\n#cloud-config\nhostname: one\nruncmd: [a]\n\
                  write_files:\n- path: /etc/x\n  permissions: 0600\n  content: x\n\
                  berth:\n  sysctl:\n    vm.swappiness: 10\n\
                  --B\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd: [b, c]\n\
                  berth:\n  sysctl:\n    net.ipv4.ip_forward: 1\n--B--\n";
        let mut report = Report::new("cloud-init");
        let saved = save_fetched(&fetched(ud), &dirs, &mut report);
        assert!(saved.cloud_config_saved, "{:#?}", report.diagnostics);
        let config = load(&dirs.paths, &KernelCmdline::default()).config;
        assert_eq!(config.effective_hostname().as_str(), "one");
        assert_eq!(config.runcmd.len(), 2);
        assert_eq!(config.berth.sysctl.len(), 2);
        assert_eq!(config.write_files[0].mode().bits(), 0o600);
        let text = std::fs::read_to_string(dirs.paths.user_data()).unwrap();
        assert!(text.starts_with("#cloud-config\n# Merged by berth cloud-init from: user-data part 1"));

        // one bad part: nothing is merged, the bad part is kept with its location
        let bad = ud.replace("hostname: one", "hostname: -bad-");
        let mut report = Report::new("cloud-init");
        assert!(!save_fetched(&fetched(&bad), &dirs, &mut report).cloud_config_saved);
        let d = report
            .diagnostics
            .iter()
            .find(|d| d.key.as_deref() == Some("hostname"))
            .unwrap();
        assert!(d.source.ends_with("user-data.part-1.yml"), "{d}");
        assert!(dirs.cloud_init.join("user-data.part-1.yml").exists());
        assert!(!dirs.cloud_init.join("user-data.part-2.yml").exists());
    }

    #[test]
    fn user_data_without_cloud_config_removes_the_saved_one() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirs::under(root.path());
        save_fetched(
            &fetched("#cloud-config\nhostname: a\n"),
            &dirs,
            &mut Report::new("x"),
        );
        assert!(dirs.paths.user_data().exists());
        let mut report = Report::new("x");
        let saved = save_fetched(&fetched("#!/bin/sh\ntrue\n"), &dirs, &mut report);
        assert!(!saved.cloud_config_saved);
        assert!(!dirs.paths.user_data().exists());
        assert_eq!(saved.scripts, ["01-part-001"]);
    }

    #[test]
    fn unsupported_user_data_is_reported_against_the_raw_file() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirs::under(root.path());
        let mut report = Report::new("x");
        save_fetched(&fetched("#include\nhttp://x\n"), &dirs, &mut report);
        let d = &report.diagnostics[0];
        assert_eq!(d.source, dirs.raw_user_data().display().to_string());
        assert!(
            d.message.starts_with("user-data: #include is not supported"),
            "{d}"
        );
    }

    #[test]
    fn instance_ids() {
        let meta = MetaData {
            instance_id: Some(" i-1 ".into()),
            ..MetaData::default()
        };
        assert_eq!(instance_id_for(&meta, Some(b"x")), "i-1");
        let none = MetaData::default();
        let a = instance_id_for(&none, Some(b"a"));
        assert!(a.starts_with("iid-") && a.len() == 20);
        assert_ne!(a, instance_id_for(&none, Some(b"b")));
        let dirs = StateDirs::under(Path::new("/r"));
        assert_eq!(
            dirs.instance_dir("../../x y"),
            Path::new("/r/var/lib/berth/cloud-init/instances/_.._x_y")
        );
        assert_eq!(
            dirs.instance_dir(".."),
            Path::new("/r/var/lib/berth/cloud-init/instances/unnamed")
        );
    }
}
