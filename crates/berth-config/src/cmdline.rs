//! The kernel command line: plain parameters (`console=ttyS0`, `quiet`) for whoever needs
//! them, and the configuration layer it carries (`berth.*`, `rancher.*`, `cc.*`).

use crate::diagnostic::{Diagnostic, Finding};
use crate::node::{Kind, Loc, Node, Sources};
use indexmap::IndexMap;

/// What the kernel command line is called in diagnostics.
pub const CMDLINE_SOURCE: &str = "kernel command line";

/// Key paths deeper than this are ignored (they would only be garbage).
const MAX_KEY_DEPTH: usize = 24;

/// A parsed kernel command line. Parsing never fails: whatever cannot be understood is kept
/// as a plain parameter, and reported only if it claims to be configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCmdline {
    params: Vec<Param>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Param {
    key: String,
    /// Unquoted value; `None` for a flag without `=`.
    value: Option<String>,
    /// The value as written (quotes kept), for typing it as YAML.
    raw: Option<String>,
}

impl KernelCmdline {
    /// Parse a command line as the kernel splits it: on whitespace outside double quotes
    /// (`\"` is a literal quote). A `berth.`/`rancher.`/`cc.` value that opens a `[` list
    /// keeps the words up to its `]` (`berth.modules=[a, b]`).
    pub fn parse(s: &str) -> Self {
        let words = split_kernel_words(s);
        let list_ends = list_ends(&words);
        let mut params = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            let mut word = words[i].clone();
            i += 1;
            if is_config_key(&word)
                && bracket_balance(&word) > 0
                && let Some(end) = list_ends[i - 1]
            {
                word = words[i - 1..end].join(" ");
                i = end;
            }
            if word == "--" || word.is_empty() {
                continue;
            }
            params.push(Param::from_word(&word));
        }
        KernelCmdline { params }
    }

    /// Read `/proc/cmdline`.
    pub fn read() -> std::io::Result<Self> {
        std::fs::read_to_string("/proc/cmdline").map(|s| Self::parse(&s))
    }

    /// The last value of `key` (`Some("")` for a flag without `=`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|p| p.key == key)
            .map(|p| p.value.as_deref().unwrap_or(""))
    }

    /// Every value of `key`, in order (`console=tty1 console=ttyS0`).
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|p| p.key == key)
            .map(|p| p.value.as_deref().unwrap_or(""))
            .collect()
    }

    /// Whether `key` is present, with or without a value.
    pub fn has(&self, key: &str) -> bool {
        self.params.iter().any(|p| p.key == key)
    }

    /// Every parameter as `(key, value)`, in order.
    pub fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.params.iter().map(|p| (p.key.as_str(), p.value.as_deref()))
    }

    /// The configuration this command line carries, as a layer tree: `berth.a.b=v` under
    /// `berth`, `rancher.*` mapped onto `berth`, `cc.key=v` at the top level. Values are
    /// typed as YAML; a bare `berth.debug` is `true`; a key given several times collects
    /// its values into a list.
    pub fn config_layer(&self) -> (serde_json::Value, Vec<Diagnostic>) {
        let mut sources = Sources::new();
        let id = sources.add(CMDLINE_SOURCE);
        let (node, findings) = self.layer_node(id);
        (
            node.to_json(),
            findings.iter().map(|f| f.to_diagnostic(&sources)).collect(),
        )
    }

    pub(crate) fn layer_node(&self, source: u16) -> (Node, Vec<Finding>) {
        let loc = Loc::in_source(source);
        let mut findings = Vec::new();
        // Collect values per key path, in first-seen order.
        let mut values: IndexMap<Vec<String>, Vec<Node>> = IndexMap::new();
        for (index, param) in self.params.iter().enumerate() {
            let Some(path) = config_path(&param.key) else {
                continue;
            };
            // Each parameter's value gets its own position (column = its index), so that a bad
            // one can be told apart and dropped alone.
            let at = Loc {
                column: u32::try_from(index + 1).unwrap_or(u32::MAX),
                ..loc
            };
            if path.iter().any(String::is_empty) || path.len() > MAX_KEY_DEPTH {
                findings.push(Finding::warning(
                    loc,
                    param.key.clone(),
                    "is not a valid configuration key (empty or too many parts); ignored",
                ));
                continue;
            }
            let value = match &param.raw {
                None => Node::new(Kind::Bool(true), at),
                Some(raw) => match type_value(raw, param.value.as_deref().unwrap_or(""), at) {
                    Ok(node) => node,
                    Err(message) => {
                        findings.push(Finding::error(loc, param.key.clone(), message));
                        continue;
                    }
                },
            };
            values.entry(path).or_default().push(value);
        }
        let mut root = Node::empty_map(loc);
        for (path, mut nodes) in values {
            let value = if nodes.len() == 1 {
                nodes.pop().unwrap_or_else(|| Node::new(Kind::Null, loc))
            } else {
                let mut items = Vec::new();
                for node in nodes {
                    let at = node.loc;
                    match node.kind {
                        Kind::Seq(more) => items.extend(more),
                        kind => items.push(Node::new(kind, at)),
                    }
                }
                Node::new(Kind::Seq(items), loc)
            };
            insert_path(&mut root, &path, value, &mut findings);
        }
        crate::rancher::map_rancher(&mut root, &mut findings);
        (root, findings)
    }
}

impl Param {
    fn from_word(word: &str) -> Param {
        // The kernel also accepts the whole parameter in quotes: "key=a b".
        match word.split_once('=') {
            Some((key, raw)) => Param {
                key: unquote(key),
                value: Some(unquote(raw)),
                raw: Some(raw.to_string()),
            },
            None => Param {
                key: unquote(word),
                value: None,
                raw: None,
            },
        }
    }
}

fn is_config_key(word: &str) -> bool {
    let word = word.trim_start_matches('"');
    word.starts_with("berth.") || word.starts_with("rancher.") || word.starts_with("cc.")
}

/// `[` minus `]` outside double quotes.
fn bracket_balance(word: &str) -> i32 {
    let mut depth = 0;
    let mut quoted = false;
    let mut escaped = false;
    for c in word.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// For each word that opens a `[` list: the index after the word whose `]` closes it (the
/// first word at which the brackets of the words joined so far balance), or `None`.
///
/// Words end outside quotes and escapes (all but the last), so the balance of joined words
/// is the sum of their balances: one pass over prefix sums with a stack finds every end,
/// where joining and rescanning word by word took cubic time on a line of unclosed `[`s.
fn list_ends(words: &[String]) -> Vec<Option<usize>> {
    let mut prefix = Vec::with_capacity(words.len() + 1);
    prefix.push(0i64);
    for word in words {
        let last = prefix.last().copied().unwrap_or(0);
        prefix.push(last + i64::from(bracket_balance(word)));
    }
    // next_at_or_below[p]: the first q > p with prefix[q] <= prefix[p].
    let mut next_at_or_below = vec![None; prefix.len()];
    let mut stack: Vec<usize> = Vec::new();
    for p in (0..prefix.len()).rev() {
        while stack.last().is_some_and(|&q| prefix[q] > prefix[p]) {
            stack.pop();
        }
        next_at_or_below[p] = stack.last().copied();
        stack.push(p);
    }
    next_at_or_below.truncate(words.len());
    next_at_or_below
}

/// Split on whitespace outside double quotes, keeping the quotes in the words.
fn split_kernel_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            word.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                word.push(c);
            }
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Remove unescaped double quotes; `\"` and `\'` become the quote itself.
fn unquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('"') | Some('\'')) => {
                if let Some(q) = chars.next() {
                    out.push(q);
                }
            }
            '"' => {}
            c => out.push(c),
        }
    }
    out
}

/// Maps whose keys may contain dots: on the command line, the rest of the key after them
/// is one key (`berth.sysctl.net.ipv4.ip_forward=1`).
pub(crate) fn split_config_key(parts: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        out.push((*part).to_string());
        // Only the first parts decide (a key of many thousand parts must not cost the square
        // of its length, as collecting every prefix did).
        let flat = match out.as_slice() {
            [top, sysctl] => matches!(top.as_str(), "berth" | "rancher") && sysctl == "sysctl",
            [top, services, _, labels] => {
                matches!(top.as_str(), "berth" | "rancher") && services == "services" && labels == "labels"
            }
            _ => false,
        };
        if flat && i + 1 < parts.len() {
            out.push(parts[i + 1..].join("."));
            break;
        }
    }
    out
}

/// The key path a parameter sets, or `None` when it is not configuration.
fn config_path(key: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.first() {
        Some(&"berth") | Some(&"rancher") if parts.len() > 1 => Some(split_config_key(&parts)),
        Some(&"cc") if parts.len() > 1 => Some(split_config_key(&parts[1..])),
        _ => None,
    }
}

/// Type a command-line value. Lists, maps and quoted strings are YAML; a plain word is a
/// boolean (`true`/`false`), a number when it reads back the same, `null`, or text.
fn type_value(raw: &str, unquoted: &str, loc: Loc) -> Result<Node, String> {
    let t = raw.trim();
    let quoted = t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')));
    if t.starts_with('[') || t.starts_with('{') || quoted {
        return match crate::yaml::parse_yaml(t, loc.source) {
            Ok((mut node, _)) => {
                node.set_loc_deep(loc);
                Ok(node)
            }
            Err(_) if quoted => Ok(Node::str(unquoted, loc)),
            Err(e) => Err(format!(
                "{raw:?} is not a valid value: {}",
                e.message.trim_start_matches("invalid YAML: ")
            )),
        };
    }
    Ok(Node::new(plain_scalar(unquoted), loc))
}

/// YAML-like typing of one plain word, keeping text whose spelling a number would change.
pub(crate) fn plain_scalar(s: &str) -> Kind {
    match s {
        "" => return Kind::Str(String::new()),
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        "null" | "Null" | "NULL" | "~" => return Kind::Null,
        _ => {}
    }
    if let Ok(u) = s.parse::<u64>()
        && u.to_string() == s
    {
        return Kind::UInt(u);
    }
    if let Ok(i) = s.parse::<i64>()
        && i.to_string() == s
    {
        return Kind::Int(i);
    }
    if s.contains('.')
        && let Ok(f) = s.parse::<f64>()
        && f.is_finite()
        && f.to_string() == s
    {
        return Kind::Float(f);
    }
    Kind::Str(s.to_string())
}

/// Insert `value` at `path`, replacing a scalar found on the way (later parameters win).
fn insert_path(root: &mut Node, path: &[String], value: Node, findings: &mut Vec<Finding>) {
    let loc = value.loc;
    let mut node = root;
    for (i, seg) in path.iter().enumerate() {
        if node.as_map().is_none() {
            findings.push(Finding::warning(
                loc,
                path[..i].join("."),
                format!(
                    "is set both to a value and to a map (by {}); the map wins",
                    path.join(".")
                ),
            ));
            *node = Node::empty_map(loc);
        }
        let Some(map) = node.as_map_mut() else {
            return;
        };
        if i + 1 == path.len() {
            if map.get(seg).is_some_and(|n| n.as_map().is_some()) {
                findings.push(Finding::warning(
                    loc,
                    path.join("."),
                    "is set both to a map and to a value; the value wins",
                ));
            }
            map.insert(seg.clone(), value);
            return;
        }
        node = map.entry(seg.clone()).or_insert_with(|| Node::empty_map(loc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_parameters() {
        let c = KernelCmdline::parse(
            "BOOT_IMAGE=/vmlinuz console=tty1 console=ttyS0,115200 quiet root=\"LABEL=a b\"\n",
        );
        assert_eq!(c.get("console"), Some("ttyS0,115200"));
        assert_eq!(c.get_all("console"), ["tty1", "ttyS0,115200"]);
        assert_eq!(c.get("quiet"), Some(""));
        assert!(c.has("quiet"));
        assert!(!c.has("splash"));
        assert_eq!(c.get("root"), Some("LABEL=a b"));
        assert_eq!(c.get("nope"), None);
    }

    #[test]
    fn quotes_lists_and_escapes() {
        let c = KernelCmdline::parse(
            r#"berth.hostname="my host" berth.modules=[a, "b c"] x=1 berth.environment.Q=say\"hi\" "berth.ssh.port=2222""#,
        );
        let (tree, diags) = c.config_layer();
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            tree,
            json!({"berth": {"hostname": "my host", "modules": ["a", "b c"], "environment": {"Q": "say\"hi\""}, "ssh": {"port": 2222}}})
        );
        assert_eq!(c.get("x"), Some("1"));
    }

    #[test]
    fn typing_flags_and_repeats() {
        let c = KernelCmdline::parse(
            "berth.debug berth.autologin=ttyS0 berth.autologin=tty1 berth.state.wait=30 berth.state.dev=LABEL=X berth.x.ver=1.10 berth.x.mode=0644 berth.x.b=false",
        );
        let (tree, _) = c.config_layer();
        assert_eq!(
            tree,
            json!({"berth": {
                "debug": true,
                "autologin": ["ttyS0", "tty1"],
                "state": {"wait": 30, "dev": "LABEL=X"},
                "x": {"ver": "1.10", "mode": "0644", "b": false}
            }})
        );
    }

    #[test]
    fn cc_rancher_and_append() {
        let c = KernelCmdline::parse(
            "cc.hostname=node1 rancher.state.autoformat=[/dev/sda,/dev/vda] rancher.password=x berth.modules+=[a,b] berth.sysctl.net.ipv4.ip_forward=1",
        );
        let (tree, diags) = c.config_layer();
        assert_eq!(
            tree,
            json!({
                "hostname": "node1",
                "berth": {
                    "state": {"autoformat": ["/dev/sda", "/dev/vda"]},
                    "modules+": ["a", "b"],
                    "sysctl": {"net.ipv4.ip_forward": 1},
                    "compat": {"rancher_user": true}
                }
            })
        );
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].key.as_deref(), Some("rancher.password"));
        assert_eq!(diags[0].source, "kernel command line");
    }

    #[test]
    fn garbage_is_kept_or_reported() {
        let c = KernelCmdline::parse("berth. berth..x=1 berth.y=[a \"unterminated =x ===");
        let (_, diags) = c.config_layer();
        assert!(diags.iter().all(|d| d.source == "kernel command line"));
        assert!(!diags.is_empty());
        let c = KernelCmdline::parse("berth.l=[a,b console=ttyS0");
        assert_eq!(c.get("console"), Some("ttyS0"));
    }

    #[test]
    fn urls_in_lists() {
        let c =
            KernelCmdline::parse("berth.cloud_init.datasources=[nocloud,url:http://10.0.2.2:8000/user-data]");
        let (tree, diags) = c.config_layer();
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            tree["berth"]["cloud_init"]["datasources"],
            json!(["nocloud", "url:http://10.0.2.2:8000/user-data"])
        );
    }
}
