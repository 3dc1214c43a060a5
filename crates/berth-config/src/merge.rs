//! Layer merging: maps merge deeply, scalars and lists replace, `key+` appends, and an
//! empty value (`key:` / null) removes the key so lower layers and defaults apply again.
//!
//! `ssh_authorized_keys+: [...]` appends to the list lower layers set (RancherOS issue
//! #2415); `berth.modules+=[a,b]` does the same from the kernel command line. A `key+` whose
//! key no lower layer sets is the list itself.

use crate::diagnostic::Finding;
use crate::node::{Kind, Node};

/// What to do with `key+` markers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Markers {
    /// Resolve them: the result has no `key+` keys (merging onto the effective state).
    Resolve,
    /// Keep them where nothing lower exists to append to (merging into a file that is
    /// itself a layer, such as the local `cloud-config.yml`).
    Keep,
}

/// The key an append marker applies to: `Some("a")` for `"a+"`.
pub(crate) fn append_base(key: &str) -> Option<&str> {
    key.strip_suffix('+').filter(|base| !base.is_empty())
}

/// Merge `src` into `dst`. Problems (appending a list to a map, say) are reported as
/// errors under `path` and leave `dst` unchanged at that key.
pub(crate) fn merge(dst: &mut Node, src: Node, markers: Markers, path: &str, findings: &mut Vec<Finding>) {
    let dst_is_map = matches!(dst.kind, Kind::Map(_));
    let src_key_loc = src.key_loc;
    match (dst_is_map, src.kind) {
        (true, Kind::Map(entries)) => {
            let Some(dst_map) = dst.as_map_mut() else {
                return;
            };
            for (key, value) in entries {
                let child_path = join(path, &key);
                if let Some(base) = append_base(&key) {
                    if value.is_null() {
                        continue;
                    }
                    let base_path = join(path, base);
                    if let Some(target) = dst_map.get_mut(base) {
                        append(target, value, markers, &base_path, findings);
                    } else if let Some(target) = dst_map.get_mut(&key) {
                        append(target, value, markers, &base_path, findings);
                    } else if markers == Markers::Keep {
                        dst_map.insert(key, value);
                    } else {
                        let mut value = value;
                        resolve_markers(&mut value);
                        dst_map.insert(base.to_string(), value);
                    }
                    continue;
                }
                if value.is_null() {
                    dst_map.shift_remove(&key);
                    dst_map.shift_remove(&format!("{key}+"));
                    continue;
                }
                match dst_map.get_mut(&key) {
                    Some(existing) if existing.as_map().is_some() && value.as_map().is_some() => {
                        existing.key_loc = value.key_loc;
                        merge(existing, value, markers, &child_path, findings);
                    }
                    _ => {
                        let mut value = value;
                        if markers == Markers::Resolve {
                            resolve_markers(&mut value);
                        }
                        dst_map.shift_remove(&format!("{key}+"));
                        dst_map.insert(key, value);
                    }
                }
            }
        }
        (_, kind) => {
            let mut value = Node {
                kind,
                loc: src.loc,
                key_loc: src_key_loc,
            };
            if markers == Markers::Resolve {
                resolve_markers(&mut value);
            }
            *dst = value;
        }
    }
}

fn append(target: &mut Node, value: Node, markers: Markers, path: &str, findings: &mut Vec<Finding>) {
    let loc = value.report_loc();
    match (&mut target.kind, value.kind) {
        (Kind::Seq(items), Kind::Seq(more)) => {
            let mut more = more;
            if markers == Markers::Resolve {
                more.iter_mut().for_each(resolve_markers);
            }
            items.extend(more);
        }
        (Kind::Map(_), kind @ Kind::Map(_)) => {
            let value = Node {
                kind,
                loc: value.loc,
                key_loc: value.key_loc,
            };
            merge(target, value, markers, path, findings);
        }
        (Kind::Null, kind) => {
            *target = Node {
                kind,
                loc: value.loc,
                key_loc: value.key_loc,
            };
        }
        (Kind::Seq(items), kind) => {
            let mut item = Node::new(kind, value.loc);
            if markers == Markers::Resolve {
                resolve_markers(&mut item);
            }
            items.push(item);
        }
        (_, _) => findings.push(Finding::error(
            loc,
            format!("{path}+"),
            format!(
                "cannot append to {path}: it is {}, and `+` appends only to lists (and merges maps)",
                target.kind_name()
            ),
        )),
    }
}

/// Turn every `key+` into `key` (appending when both are present).
pub(crate) fn resolve_markers(node: &mut Node) {
    match &mut node.kind {
        Kind::Seq(items) => items.iter_mut().for_each(resolve_markers),
        Kind::Map(map) => {
            if map.keys().any(|k| append_base(k).is_some()) {
                let entries = std::mem::take(map);
                let mut resolved = Node::empty_map(node.loc);
                let mut ignored = Vec::new();
                // Plain keys first, then the appends onto them, in their order.
                let (appends, plain): (Vec<_>, Vec<_>) =
                    entries.into_iter().partition(|(k, _)| append_base(k).is_some());
                let plain_node = Node::new(Kind::Map(plain.into_iter().collect()), node.loc);
                merge(&mut resolved, plain_node, Markers::Resolve, "", &mut ignored);
                let append_node = Node::new(Kind::Map(appends.into_iter().collect()), node.loc);
                merge(&mut resolved, append_node, Markers::Resolve, "", &mut ignored);
                if let Kind::Map(m) = resolved.kind {
                    *map = m;
                }
            }
            map.values_mut().for_each(resolve_markers);
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Loc;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        Node::from_json(&v, Loc::default())
    }

    fn merged(
        a: serde_json::Value,
        b: serde_json::Value,
        markers: Markers,
    ) -> (serde_json::Value, Vec<Finding>) {
        let mut dst = node(a);
        let mut findings = Vec::new();
        merge(&mut dst, node(b), markers, "", &mut findings);
        (dst.to_json(), findings)
    }

    #[test]
    fn maps_merge_lists_and_scalars_replace() {
        let (out, f) = merged(
            json!({"a": {"x": 1, "y": [1, 2]}, "b": "keep"}),
            json!({"a": {"y": [3], "z": true}}),
            Markers::Resolve,
        );
        assert!(f.is_empty());
        assert_eq!(out, json!({"a": {"x": 1, "y": [3], "z": true}, "b": "keep"}));
    }

    #[test]
    fn plus_appends() {
        let (out, _) = merged(
            json!({"keys": ["a"], "m": {"k": 1}}),
            json!({"keys+": ["b", "c"], "m+": {"j": 2}, "new+": ["x"]}),
            Markers::Resolve,
        );
        assert_eq!(
            out,
            json!({"keys": ["a", "b", "c"], "m": {"k": 1, "j": 2}, "new": ["x"]})
        );
    }

    #[test]
    fn plus_appends_a_single_item() {
        let (out, _) = merged(json!({"l": ["a"]}), json!({"l+": "b"}), Markers::Resolve);
        assert_eq!(out, json!({"l": ["a", "b"]}));
    }

    #[test]
    fn null_removes() {
        let (out, _) = merged(
            json!({"a": 1, "b": {"c": 2, "d": 3}}),
            json!({"a": null, "b": {"c": null}}),
            Markers::Resolve,
        );
        assert_eq!(out, json!({"b": {"d": 3}}));
    }

    #[test]
    fn markers_are_kept_in_files() {
        let (out, _) = merged(json!({"l+": ["a"]}), json!({"l+": ["b"]}), Markers::Keep);
        assert_eq!(out, json!({"l+": ["a", "b"]}));
        let (out, _) = merged(json!({"l+": ["a"]}), json!({"l": ["b"]}), Markers::Keep);
        assert_eq!(out, json!({"l": ["b"]}));
    }

    #[test]
    fn appending_to_a_scalar_is_an_error() {
        let (out, f) = merged(json!({"h": "x"}), json!({"h+": ["y"]}), Markers::Resolve);
        assert_eq!(out, json!({"h": "x"}));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key, "h+");
    }

    #[test]
    fn markers_resolve_inside_a_layer() {
        let mut n = node(json!({"a": [1], "a+": [2], "b": {"c+": [3]}}));
        resolve_markers(&mut n);
        assert_eq!(n.to_json(), json!({"a": [1, 2], "b": {"c": [3]}}));
    }
}
