//! Computing the effective configuration from its layers, the same way at boot and in the CLI.
//!
//! Layers, lowest first: the schema's own defaults, the built-in `defaults.yml`, the OEM
//! file, `cloud-config.d/*.yml`, the saved user-data, the local `cloud-config.yml`, the
//! kernel command line. Each layer is merged onto the result of the layers below it and the
//! result is checked; a layer that would make it invalid is skipped whole, with its errors,
//! and the machine boots with the others. Loading never fails.

use crate::check::decode;
use crate::cmdline::{CMDLINE_SOURCE, KernelCmdline};
use crate::diagnostic::{Diagnostic, Finding, Severity};
use crate::merge::{Markers, merge};
use crate::node::{BUILTIN_SOURCE, Kind, Loc, Node, Seg, Sources};
use crate::schema::Config;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Files larger than this are not configuration.
const MAX_LAYER_BYTES: u64 = 16 * 1024 * 1024;

/// Where the configuration files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigPaths {
    /// The built-in defaults shipped in the OS image.
    pub defaults: PathBuf,
    /// Where the OEM partition is mounted; the layer is `oem-config.yml` in it.
    pub oem_dir: PathBuf,
    /// Persistent configuration: `cloud-config.d/`, `user-data.yml`, `cloud-config.yml`.
    pub conf_dir: PathBuf,
}

impl ConfigPaths {
    /// The paths on a running system.
    pub fn system() -> Self {
        Self::under(Path::new("/"))
    }

    /// The same layout under `root` (for tests and image building).
    pub fn under(root: &Path) -> Self {
        ConfigPaths {
            defaults: root.join("usr/share/berth/defaults.yml"),
            oem_dir: root.join("run/berth/oem"),
            conf_dir: root.join("var/lib/berth/conf"),
        }
    }

    pub fn oem_file(&self) -> PathBuf {
        self.oem_dir.join("oem-config.yml")
    }

    pub fn conf_d(&self) -> PathBuf {
        self.conf_dir.join("cloud-config.d")
    }

    /// The user-data saved by cloud-init from the datasource.
    pub fn user_data(&self) -> PathBuf {
        self.conf_dir.join("user-data.yml")
    }

    /// The file `berth config set/merge` writes.
    pub fn local(&self) -> PathBuf {
        self.conf_dir.join("cloud-config.yml")
    }

    /// The datasource's network configuration (NoCloud `network-config`, config-drive
    /// `network_data.json`) as cloud-init translated it: used only when no other layer
    /// configures `berth.network.interfaces`.
    pub fn datasource_network(&self) -> PathBuf {
        self.conf_dir.join("datasource-network.yml")
    }
}

/// Which layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerKind {
    Defaults,
    Oem,
    ConfD,
    UserData,
    Local,
    Cmdline,
    /// The datasource's network configuration; last, and only when no layer above configures
    /// an interface.
    DatasourceNetwork,
}

/// What became of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerStatus {
    Applied,
    /// The file does not exist (or the command line carries no configuration).
    Absent,
    /// Invalid: not applied; its errors are in the diagnostics.
    Skipped,
    /// Valid but not used: another layer decides (the datasource's network configuration
    /// when the user's configuration has interfaces of its own).
    Overridden,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerInfo {
    pub kind: LayerKind,
    /// The file path, or `"kernel command line"`.
    pub source: String,
    pub status: LayerStatus,
}

/// The effective configuration and how it was reached.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    /// `config` as a tree (every key, defaults included): what `berth config get` reads.
    pub tree: serde_json::Value,
    pub diagnostics: Vec<Diagnostic>,
    pub layers: Vec<LayerInfo>,
    /// The tree of the built-in defaults alone, which `export` compares against.
    pub baseline: serde_json::Value,
}

impl Loaded {
    /// Whether any layer was skipped or reported an error (for the console banner).
    pub fn has_errors(&self) -> bool {
        crate::diagnostic::has_errors(&self.diagnostics)
    }
}

/// Compute the effective configuration. Never fails: a layer that cannot be read or is
/// invalid is skipped with an error diagnostic.
pub fn load(paths: &ConfigPaths, cmdline: &KernelCmdline) -> Loaded {
    layered(paths, cmdline, LocalLayer::FromDisk, None).0
}

/// What to use as the local `cloud-config.yml` layer.
pub(crate) enum LocalLayer {
    FromDisk,
    /// A tree about to be written.
    Replaced(Node),
}

/// A layer of text put just above the local file (to check it in context).
pub(crate) struct ExtraLayer<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// What became of the layer an edit is about (the extra layer if any, else the local one).
pub(crate) struct EditOutcome {
    pub status: LayerStatus,
    pub diagnostics: Vec<Diagnostic>,
}

pub(crate) fn layered(
    paths: &ConfigPaths,
    cmdline: &KernelCmdline,
    local: LocalLayer,
    extra: Option<ExtraLayer<'_>>,
) -> (Loaded, EditOutcome) {
    let mut layering = Layering::new();
    layering.file_layer(LayerKind::Defaults, &paths.defaults);
    let baseline = serde_json::to_value(&layering.config).unwrap_or_default();
    layering.file_layer(LayerKind::Oem, &paths.oem_file());
    for file in conf_d_files(&paths.conf_d(), &mut layering) {
        layering.file_layer(LayerKind::ConfD, &file);
    }
    layering.file_layer(LayerKind::UserData, &paths.user_data());
    let local_path = paths.local();
    let mut before = layering.findings.len();
    let mut status = match local {
        LocalLayer::FromDisk => layering.file_layer(LayerKind::Local, &local_path),
        LocalLayer::Replaced(mut node) => {
            let id = layering.sources.add(local_path.display().to_string());
            node.set_loc_deep(Loc::in_source(id));
            layering.node_layer(LayerKind::Local, id, node, Vec::new())
        }
    };
    if let Some(extra) = extra {
        before = layering.findings.len();
        let id = layering.sources.add(extra.name);
        status = layering.text_layer(LayerKind::Local, id, extra.text);
    }
    let outcome = EditOutcome {
        status,
        diagnostics: layering.findings[before..]
            .iter()
            .map(|f| f.to_diagnostic(&layering.sources))
            .collect(),
    };
    layering.cmdline_layer(cmdline);
    layering.datasource_network_layer(&paths.datasource_network());
    let tree = serde_json::to_value(&layering.config).unwrap_or_default();
    let diagnostics = layering
        .findings
        .iter()
        .map(|f| f.to_diagnostic(&layering.sources))
        .collect();
    (
        Loaded {
            config: layering.config,
            tree,
            diagnostics,
            layers: layering.layers,
            baseline,
        },
        outcome,
    )
}

fn conf_d_files(dir: &Path, layering: &mut Layering) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            let id = layering.sources.add(dir.display().to_string());
            layering.findings.push(Finding::error(
                Loc::in_source(id),
                "",
                format!("cannot list the directory: {e}; its layers are skipped"),
            ));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && (name.ends_with(".yml") || name.ends_with(".yaml"))
        })
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// The layering state: the merged tree so far and the config it decodes to.
pub(crate) struct Layering {
    pub sources: Sources,
    state: Node,
    pub config: Config,
    pub findings: Vec<Finding>,
    pub layers: Vec<LayerInfo>,
}

impl Layering {
    pub fn new() -> Self {
        let config = Config::default();
        let tree = serde_json::to_value(&config).unwrap_or_default();
        Layering {
            sources: Sources::new(),
            state: Node::from_json(&tree, Loc::in_source(BUILTIN_SOURCE)),
            config,
            findings: Vec::new(),
            layers: Vec::new(),
        }
    }

    fn file_layer(&mut self, kind: LayerKind, path: &Path) -> LayerStatus {
        let name = path.display().to_string();
        let id = self.sources.add(name.clone());
        match read_layer_file(path) {
            Ok(None) => {
                self.layers.push(LayerInfo {
                    kind,
                    source: name,
                    status: LayerStatus::Absent,
                });
                LayerStatus::Absent
            }
            Ok(Some(text)) => self.text_layer(kind, id, &text),
            Err(message) => {
                self.findings
                    .push(Finding::error(Loc::in_source(id), "", message));
                self.layers.push(LayerInfo {
                    kind,
                    source: name,
                    status: LayerStatus::Skipped,
                });
                LayerStatus::Skipped
            }
        }
    }

    pub fn text_layer(&mut self, kind: LayerKind, id: u16, text: &str) -> LayerStatus {
        match parse_layer_text(text, id) {
            Ok((node, findings)) => self.node_layer(kind, id, node, findings),
            Err(finding) => {
                self.findings.push(finding);
                self.layers.push(LayerInfo {
                    kind,
                    source: self.sources.name(id).to_string(),
                    status: LayerStatus::Skipped,
                });
                LayerStatus::Skipped
            }
        }
    }

    /// The datasource's network configuration: applied only when no layer configured an
    /// interface, and then without the DNS settings a layer already made (the user's win).
    fn datasource_network_layer(&mut self, path: &Path) {
        let name = path.display().to_string();
        let info = |status| LayerInfo {
            kind: LayerKind::DatasourceNetwork,
            source: name.clone(),
            status,
        };
        let text = match read_layer_file(path) {
            Ok(None) => return self.layers.push(info(LayerStatus::Absent)),
            Ok(Some(text)) => text,
            Err(message) => {
                let id = self.sources.add(name.clone());
                self.findings
                    .push(Finding::error(Loc::in_source(id), "", message));
                return self.layers.push(info(LayerStatus::Skipped));
            }
        };
        if !self.config.berth.network.interfaces.is_empty() {
            return self.layers.push(info(LayerStatus::Overridden));
        }
        let id = self.sources.add(name.clone());
        let (mut node, findings) = match parse_layer_text(&text, id) {
            Ok(parsed) => parsed,
            Err(finding) => {
                self.findings.push(finding);
                return self.layers.push(info(LayerStatus::Skipped));
            }
        };
        let dns = &self.config.berth.network.dns;
        if !dns.nameservers.is_empty() {
            node.remove_path("berth.network.dns.nameservers");
        }
        if !dns.search.is_empty() {
            node.remove_path("berth.network.dns.search");
        }
        self.node_layer(LayerKind::DatasourceNetwork, id, node, findings);
    }

    fn cmdline_layer(&mut self, cmdline: &KernelCmdline) {
        let id = self.sources.add(CMDLINE_SOURCE);
        let (node, findings) = cmdline.layer_node(id);
        let empty = node.as_map().is_some_and(|m| m.is_empty()) && findings.is_empty();
        if empty {
            self.layers.push(LayerInfo {
                kind: LayerKind::Cmdline,
                source: CMDLINE_SOURCE.to_string(),
                status: LayerStatus::Absent,
            });
            return;
        }
        self.node_layer(LayerKind::Cmdline, id, node, findings);
    }

    /// Merge a (rancher-mapped) layer onto the state; keep the result if it checks.
    pub fn node_layer(
        &mut self,
        kind: LayerKind,
        id: u16,
        node: Node,
        mut findings: Vec<Finding>,
    ) -> LayerStatus {
        findings.extend(crate::pending::findings(&node));
        if !matches!(kind, LayerKind::Defaults | LayerKind::Cmdline) {
            findings.extend(crate::pending::stage1_findings(&node));
        }
        let mut candidate = self.state.clone();
        merge(&mut candidate, node, Markers::Resolve, "", &mut findings);
        let mut ok = !findings.iter().any(|f| f.severity == Severity::Error);
        let mut config = None;
        let mut partial = false;
        if ok {
            let (result, warnings) = decode::<Config>(&candidate, &|source| source == id);
            findings.extend(warnings);
            match result {
                Ok(c) => {
                    // Only the layer that wrote the value is told: later layers inherit it.
                    for (path, message) in c.semantic_warnings() {
                        if let Some(loc) = node_at(&candidate, &path).map(Node::report_loc)
                            && loc.source == id
                        {
                            findings.push(Finding::warning(loc, path, message));
                        }
                    }
                    for (path, message) in c.semantic_errors() {
                        let loc = node_at(&candidate, &path)
                            .map(Node::report_loc)
                            .unwrap_or(Loc::in_source(id));
                        findings.push(Finding::error(loc, path, message));
                        ok = false;
                    }
                    config = Some(c);
                }
                Err(finding) => {
                    ok = false;
                    // serde stops at the first error; find the others by taking each failing
                    // value out and decoding again, so that a user sees every error at once.
                    let mut scratch = candidate.clone();
                    let mut next = Some(finding);
                    let mut rest_decodes = None;
                    let mut taken: Vec<String> = Vec::new();
                    for _ in 0..MAX_ERRORS_PER_LAYER {
                        let Some(error) = next.take() else { break };
                        let removable =
                            error.loc.source == id && (error.loc.line > 0 || error.loc.column > 0);
                        // Taking out a bad required value makes its parent incomplete: that
                        // follow-on error is not the user's, so it is not reported.
                        let follow_on = !error.key.is_empty()
                            && taken.iter().any(|t: &String| {
                                t.strip_prefix(error.key.as_str())
                                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
                            });
                        if !follow_on {
                            findings.push(error.clone());
                        }
                        taken.push(error.key.clone());
                        // By key path (exact); by position only when there is no key.
                        let removed = removable
                            && if error.key.is_empty() {
                                scratch.remove_at(error.loc)
                            } else {
                                scratch.remove_path(&error.key)
                            };
                        if !removed {
                            break;
                        }
                        let (again, more) = decode::<Config>(&scratch, &|source| source == id);
                        for w in more {
                            if !findings.contains(&w) {
                                findings.push(w);
                            }
                        }
                        match again {
                            Ok(c) => rest_decodes = Some(c),
                            Err(e) => next = Some(e),
                        }
                    }
                    // The kernel command line is many independent settings: one bad value
                    // must not drop the others (berth.autologin, berth.state.dev, ...).
                    if kind == LayerKind::Cmdline
                        && let Some(c) = rest_decodes
                        && c.semantic_errors().is_empty()
                    {
                        candidate = scratch;
                        config = Some(c);
                        partial = true;
                    }
                }
            }
        }
        let status = match (ok || partial, config) {
            (true, Some(config)) => {
                self.state = candidate;
                self.config = config;
                LayerStatus::Applied
            }
            _ => LayerStatus::Skipped,
        };
        self.findings.extend(findings);
        self.layers.push(LayerInfo {
            kind,
            source: self.sources.name(id).to_string(),
            status,
        });
        status
    }
}

/// How many errors of one layer are reported before giving up on finding more.
const MAX_ERRORS_PER_LAYER: usize = 32;

/// Read a layer file: `Ok(None)` when it does not exist, `Err(message)` when it cannot be used.
fn read_layer_file(path: &Path) -> Result<Option<String>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the file: {e}; this layer is skipped")),
    };
    let mut bytes = Vec::new();
    use std::io::Read as _;
    file.take(MAX_LAYER_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}; this layer is skipped"))?;
    if bytes.len() as u64 > MAX_LAYER_BYTES {
        return Err(format!(
            "the file is larger than {MAX_LAYER_BYTES} bytes; this layer is skipped"
        ));
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err("the file is gzip-compressed; decompress it first; this layer is skipped".to_string());
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "the file is not UTF-8 text; this layer is skipped".to_string())
}

/// Parse a layer's text into a rancher-mapped tree (a map), or the error that rejects it.
pub(crate) fn parse_layer_text(text: &str, id: u16) -> Result<(Node, Vec<Finding>), Finding> {
    let first_line = text
        .trim_start_matches('\u{feff}')
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    let not_cloud_config = if first_line.starts_with("#!") {
        Some("this is a script, not a cloud-config")
    } else if ["#include", "#cloud-boothook", "#part-handler", "#upstart-job"]
        .iter()
        .any(|h| first_line.starts_with(h))
    {
        Some("this user-data format is not a cloud-config")
    } else if first_line.to_ascii_lowercase().starts_with("content-type:")
        || first_line.to_ascii_lowercase().starts_with("mime-version:")
    {
        Some("this is multipart MIME user-data, not a cloud-config")
    } else {
        None
    };
    if let Some(what) = not_cloud_config {
        return Err(Finding::error(
            Loc::new(id, 1, 1),
            "",
            format!("{what} (a cloud-config is YAML, optionally starting with #cloud-config)"),
        ));
    }
    let (mut node, mut findings) = crate::yaml::parse_yaml(text, id)?;
    match &node.kind {
        Kind::Map(_) => {}
        Kind::Null => node = Node::empty_map(Loc::new(id, 1, 1)),
        _ => {
            return Err(Finding::error(
                node.loc,
                "",
                format!(
                    "a cloud-config must be a map of keys (like `hostname: x`), got {}",
                    node.kind_name()
                ),
            ));
        }
    }
    crate::rancher::map_rancher(&mut node, &mut findings);
    Ok((node, findings))
}

/// The node at a rendered path (`write_files[0].content`), or the deepest one on the way,
/// for locating semantic errors.
fn node_at<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    let mut node = root;
    for seg in parse_rendered_path(path) {
        let next = match (seg, &node.kind) {
            (Seg::Key(k), Kind::Map(m)) => m.get(&k),
            (Seg::Index(i), Kind::Seq(items)) => items.get(i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    Some(node)
}

/// An error about `key` (dotted, `berth.docker.engine`) of the cloud-config `text`, placed at
/// the line that sets it (the `rancher:` spelling included) so it reads file:line:key.
pub fn error_at_key(text: &str, source_name: &str, key: &str, message: impl Into<String>) -> Diagnostic {
    let diagnostic = Diagnostic::new(Severity::Error, source_name, message).with_key(key);
    match parse_layer_text(text, 0) {
        Ok((node, _)) => match node_at(&node, key).map(Node::report_loc) {
            Some(loc) => diagnostic.at(loc.line as usize, loc.column as usize),
            None => diagnostic,
        },
        Err(_) => diagnostic,
    }
}

/// The text of the scalar `key` (dotted, `berth.docker.engine`) sets in the cloud-config
/// `text` (its `rancher:` spelling included), if it sets one.
pub fn scalar_at_key(text: &str, key: &str) -> Option<String> {
    let (node, _) = parse_layer_text(text, 0).ok()?;
    let mut at = &node;
    for seg in parse_rendered_path(key) {
        at = match (seg, &at.kind) {
            (Seg::Key(k), Kind::Map(m)) => m.get(&k)?,
            (Seg::Index(i), Kind::Seq(items)) => items.get(i)?,
            _ => return None,
        };
    }
    at.scalar_text()
}

fn parse_rendered_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(pos) => (&part[..pos], &part[pos..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            segs.push(Seg::Key(key.to_string()));
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                segs.push(Seg::Index(i));
            }
        }
    }
    segs
}
