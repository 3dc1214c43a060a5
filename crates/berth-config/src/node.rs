//! The working tree of a configuration layer: a YAML-like value where every node remembers
//! which source it came from and where (line, column), so that a problem found after merging
//! and mapping still points at the line the user wrote.

use indexmap::IndexMap;
use serde_json::Value;

/// Where a node came from: an index into the [`Sources`] table, and a 1-based position
/// (`line == 0` when unknown, as for the kernel command line or built-in values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Loc {
    pub source: u16,
    pub line: u32,
    pub column: u32,
}

impl Loc {
    pub fn new(source: u16, line: u64, column: u64) -> Self {
        Loc {
            source,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    pub fn in_source(source: u16) -> Self {
        Loc {
            source,
            line: 0,
            column: 0,
        }
    }
}

/// Names of the sources that [`Loc::source`] indexes. Index 0 is the built-in schema defaults.
#[derive(Clone, Debug)]
pub(crate) struct Sources {
    names: Vec<String>,
}

pub(crate) const BUILTIN_SOURCE: u16 = 0;

impl Sources {
    pub fn new() -> Self {
        Sources {
            names: vec!["built-in defaults".to_string()],
        }
    }

    pub fn add(&mut self, name: impl Into<String>) -> u16 {
        self.names.push(name.into());
        u16::try_from(self.names.len() - 1).unwrap_or(u16::MAX)
    }

    pub fn name(&self, id: u16) -> &str {
        self.names
            .get(usize::from(id))
            .map(String::as_str)
            .unwrap_or("configuration")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Position of the value.
    pub loc: Loc,
    /// Position of the key this node is the value of (map entries only).
    pub key_loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(IndexMap<String, Node>),
}

impl Node {
    /// Remove the value at a dotted key path as diagnostics print it (`berth.ssh.port`,
    /// `write_files[0].path`, `berth.sysctl.net.ipv4.ip_forward`: a key may itself hold dots,
    /// so the longest key that exists wins at each level). Returns whether it was removed.
    pub fn remove_path(&mut self, path: &str) -> bool {
        let mut tokens: Vec<String> = Vec::new();
        for part in path.split('.') {
            let (name, rest) = part.split_once('[').unwrap_or((part, ""));
            // Empty parts are kept: keys may hold `..` (`berth.sysctl.a/../b` names the key
            // `a/../b`); only a part that is an index alone (`[0]`) has no name.
            if !(name.is_empty() && part.starts_with('[')) {
                tokens.push(name.to_string());
            }
            for index in rest.split('[') {
                let index = index.trim_end_matches(']');
                if !index.is_empty() {
                    tokens.push(format!("[{index}]"));
                }
            }
        }
        self.remove_tokens(&tokens)
    }

    fn remove_tokens(&mut self, tokens: &[String]) -> bool {
        let Some(first) = tokens.first() else {
            return false;
        };
        match &mut self.kind {
            Kind::Seq(items) => {
                let Some(i) = first
                    .strip_prefix('[')
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<usize>().ok())
                else {
                    return false;
                };
                if i >= items.len() {
                    return false;
                }
                if tokens.len() == 1 {
                    items.remove(i);
                    return true;
                }
                items[i].remove_tokens(&tokens[1..])
            }
            Kind::Map(map) => {
                // The longest run of tokens that names a key (keys may contain dots).
                for n in (1..=tokens.len()).rev() {
                    if tokens[..n].iter().any(|t| t.starts_with('[')) {
                        continue;
                    }
                    let key = tokens[..n].join(".");
                    if !map.contains_key(&key) {
                        continue;
                    }
                    if n == tokens.len() {
                        map.shift_remove(&key);
                        return true;
                    }
                    if map.get_mut(&key).is_some_and(|v| v.remove_tokens(&tokens[n..])) {
                        return true;
                    }
                }
                false
            }
            _ => false,
        }
    }

    /// Remove the value (map entry or list item) that sits at `loc`, anywhere below this
    /// node: the deepest one, because a map made for a dotted key (`berth.ssh.port=x` on the
    /// kernel command line) shares the position of the value under it, and only that value
    /// is wrong. Returns whether something was removed.
    pub fn remove_at(&mut self, loc: Loc) -> bool {
        match &mut self.kind {
            Kind::Map(map) => {
                if map.values_mut().any(|v| v.remove_at(loc)) {
                    return true;
                }
                if let Some(key) = map
                    .iter()
                    .find(|(_, v)| v.loc == loc || v.key_loc == loc)
                    .map(|(k, _)| k.clone())
                {
                    map.shift_remove(&key);
                    return true;
                }
                false
            }
            Kind::Seq(items) => {
                if items.iter_mut().any(|v| v.remove_at(loc)) {
                    return true;
                }
                if let Some(i) = items.iter().position(|v| v.loc == loc) {
                    items.remove(i);
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    pub fn new(kind: Kind, loc: Loc) -> Self {
        Node {
            kind,
            loc,
            key_loc: loc,
        }
    }

    pub fn empty_map(loc: Loc) -> Self {
        Node::new(Kind::Map(IndexMap::new()), loc)
    }

    pub fn str(s: impl Into<String>, loc: Loc) -> Self {
        Node::new(Kind::Str(s.into()), loc)
    }

    /// The best position to report for this node: its key if it has one, else its value.
    pub fn report_loc(&self) -> Loc {
        if self.key_loc.line > 0 {
            self.key_loc
        } else {
            self.loc
        }
    }

    pub fn as_map(&self) -> Option<&IndexMap<String, Node>> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut IndexMap<String, Node>> {
        match &mut self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// "a map", "a list", ... for messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) | Kind::UInt(_) | Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map",
        }
    }

    /// The scalar as text (numbers and booleans spelled out), `None` for collections and null.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::UInt(u) => Some(u.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Str(s) => Some(s.clone()),
            Kind::Null | Kind::Seq(_) | Kind::Map(_) => None,
        }
    }

    /// Set every location in this subtree (used for values that do not come from a file).
    pub fn set_loc_deep(&mut self, loc: Loc) {
        self.loc = loc;
        self.key_loc = loc;
        match &mut self.kind {
            Kind::Seq(items) => items.iter_mut().for_each(|n| n.set_loc_deep(loc)),
            Kind::Map(map) => map.values_mut().for_each(|n| n.set_loc_deep(loc)),
            _ => {}
        }
    }

    pub fn from_json(value: &Value, loc: Loc) -> Node {
        let kind = match value {
            Value::Null => Kind::Null,
            Value::Bool(b) => Kind::Bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Kind::UInt(u)
                } else if let Some(i) = n.as_i64() {
                    Kind::Int(i)
                } else {
                    Kind::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            Value::String(s) => Kind::Str(s.clone()),
            Value::Array(items) => Kind::Seq(items.iter().map(|v| Node::from_json(v, loc)).collect()),
            Value::Object(map) => Kind::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Node::from_json(v, loc)))
                    .collect(),
            ),
        };
        Node::new(kind, loc)
    }

    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::UInt(u) => Value::from(*u),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(f.to_string())),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let v = serde_json::json!({"a": [1, -2, 1.5, "x", null, true], "b": {"c": {}}});
        assert_eq!(Node::from_json(&v, Loc::default()).to_json(), v);
    }
}
