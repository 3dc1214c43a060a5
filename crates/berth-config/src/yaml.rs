//! YAML text to a located [`Node`] tree, with serde-saphyr doing the parsing.
//!
//! Plain scalars are typed the way cloud-config authors expect, without the YAML traps:
//! `0644` and `1_000` stay strings (a file mode is not the number 644), `yes`/`no` stay
//! strings (the typed layer accepts them where a boolean is expected, so `FOO: yes` in an
//! environment map is not turned into `true`), and duplicate keys are a warning where the
//! last one wins, as in cloud-init.

use crate::diagnostic::Finding;
use crate::node::{Kind, Loc, Node};
use indexmap::IndexMap;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned, UserMessageFormatter};
use std::fmt;

/// A parsed YAML document, or the syntax error that stopped it.
pub(crate) fn parse_yaml(text: &str, source: u16) -> Result<(Node, Vec<Finding>), Finding> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Ok((Node::new(Kind::Null, Loc::new(source, 1, 1)), Vec::new()));
    }
    let mut options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
    };
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(raw) => {
            let mut findings = Vec::new();
            let node = convert(raw, None, source, &mut findings);
            Ok((node, findings))
        }
        Err(err) => Err(syntax_error(&err, source)),
    }
}

fn syntax_error(err: &serde_saphyr::Error, source: u16) -> Finding {
    let loc = err
        .location()
        .map(|l| Loc::new(source, l.line(), l.column()))
        .unwrap_or(Loc::in_source(source));
    let message = UserMessageFormatter.format_message(err.without_snippet());
    let message: String = message.chars().filter(|c| !c.is_control()).collect();
    Finding::error(loc, "", format!("invalid YAML: {message}"))
}

/// What serde-saphyr hands us: values and keys with their positions.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<KeyText>, Spanned<Raw>)>),
}

/// A mapping key: any scalar, spelled as text (`1: x` has the key `"1"`).
struct KeyText(String);

fn convert(raw: Spanned<Raw>, key_loc: Option<Loc>, source: u16, findings: &mut Vec<Finding>) -> Node {
    let loc = Loc::new(source, raw.referenced.line(), raw.referenced.column());
    let kind = match raw.value {
        Raw::Null => Kind::Null,
        Raw::Bool(b) => Kind::Bool(b),
        Raw::Int(i) => Kind::Int(i),
        Raw::UInt(u) => Kind::UInt(u),
        Raw::Float(f) => Kind::Float(f),
        Raw::Str(s) => Kind::Str(s),
        Raw::Seq(items) => Kind::Seq(
            items
                .into_iter()
                .map(|item| convert(item, None, source, findings))
                .collect(),
        ),
        Raw::Map(entries) => {
            let mut map: IndexMap<String, Node> = IndexMap::with_capacity(entries.len());
            for (key, value) in entries {
                let kloc = Loc::new(source, key.referenced.line(), key.referenced.column());
                let node = convert(value, Some(kloc), source, findings);
                if let Some(previous) = map.get(&key.value.0) {
                    findings.push(Finding::warning(
                        kloc,
                        key.value.0.clone(),
                        format!(
                            "duplicate key (first at line {}): the last one wins",
                            previous.key_loc.line
                        ),
                    ));
                }
                map.insert(key.value.0, node);
            }
            Kind::Map(map)
        }
    };
    let mut node = Node::new(kind, loc);
    if let Some(kloc) = key_loc {
        node.key_loc = kloc;
    }
    node
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::UInt(v))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
                Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key()? {
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Raw::Map(entries))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key (text, a number or a boolean)")
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText(String::new()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u128<E>(self, v: u128) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Node {
        match parse_yaml(text, 1) {
            Ok((node, _)) => node,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn scalars_keep_their_spelling_where_it_matters() {
        let node = parse("a: 0644\nb: yes\nc: 1_000\nd: 22\ne: true\nf: ~\ng: -3\n");
        let json = node.to_json();
        assert_eq!(
            json,
            serde_json::json!({"a": "0644", "b": "yes", "c": "1_000", "d": 22, "e": true, "f": null, "g": -3})
        );
    }

    #[test]
    fn keys_and_values_have_positions() {
        let node = parse("#cloud-config\nberth:\n  ssh:\n    port: x\n");
        let port = &node.as_map().unwrap()["berth"].as_map().unwrap()["ssh"]
            .as_map()
            .unwrap()["port"];
        assert_eq!((port.key_loc.line, port.key_loc.column), (4, 5));
        assert_eq!((port.loc.line, port.loc.column), (4, 11));
    }

    #[test]
    fn duplicate_keys_warn_and_last_wins() {
        let (node, findings) = parse_yaml("a: 1\na: 2\n", 1).unwrap();
        assert_eq!(node.to_json(), serde_json::json!({"a": 2}));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].loc.line, 2);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse_yaml("a: [1, 2\nb: 3\n", 7).unwrap_err();
        assert_eq!(err.loc.source, 7);
        assert_eq!(err.loc.line, 2);
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
    }

    #[test]
    fn anchors_and_merge_keys() {
        let node = parse("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n");
        assert_eq!(
            node.to_json(),
            serde_json::json!({"base": {"x": 1}, "other": {"x": 1, "y": 2}})
        );
    }
}
