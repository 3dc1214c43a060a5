//! The shapes cloud-config and docker-compose accept for one meaning: a map or a `KEY=VALUE`
//! list, a command as a string or an argv list, a comma-separated string or a list.

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// `{KEY: value}` or `[KEY=value, ...]` into a map of text; values are stringified.
/// A bare `KEY` in the list form has the value `""`.
pub(crate) fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, String>, D::Error> {
    let map = d.deserialize_any(MapOrList)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
}

/// Like [`string_map`], but a bare `KEY` in the list form (or `KEY:` with no value) is
/// `None`: "pass this variable through", as docker-compose does.
pub(crate) fn env_map<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, Option<String>>, D::Error> {
    d.deserialize_any(MapOrList)
}

struct MapOrList;

impl<'de> Visitor<'de> for MapOrList {
    type Value = IndexMap<String, Option<String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map, or a list of KEY=VALUE")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = IndexMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Option<String>>()?;
            out.insert(key, value);
        }
        Ok(out)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = IndexMap::new();
        while let Some(item) = seq.next_element::<String>()? {
            match item.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    out.insert(k.to_string(), Some(v.to_string()));
                }
                None if !item.is_empty() => {
                    out.insert(item, None);
                }
                _ => {
                    return Err(de::Error::custom(format!(
                        "{item:?} is not KEY=VALUE (the key is missing)"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// `"a, b"` or `[a, b]` into a list of words, each parsed as a `T` (an error names the word).
pub(crate) fn comma_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + std::str::FromStr<Err = String>,
{
    struct CommaList<T>(std::marker::PhantomData<T>);
    impl<'de, T> Visitor<'de> for CommaList<T>
    where
        T: Deserialize<'de> + std::str::FromStr<Err = String>,
    {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list, or a comma-separated string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<T>, E> {
            s.split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(|w| w.parse().map_err(E::custom))
                .collect()
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<T>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_any(CommaList(std::marker::PhantomData))
}

/// cloud-init's `sudo`: a rule, a list of rules, or `false`/null for none.
pub(crate) fn sudo_rules<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct SudoRules;
    impl<'de> Visitor<'de> for SudoRules {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sudo rule (like \"ALL=(ALL) NOPASSWD:ALL\"), a list of rules, or false")
        }
        fn visit_bool<E: de::Error>(self, b: bool) -> Result<Vec<String>, E> {
            if b {
                Err(E::custom(
                    "sudo: true is not a rule; write \"ALL=(ALL) NOPASSWD:ALL\" for full access",
                ))
            } else {
                Ok(Vec::new())
            }
        }
        fn visit_unit<E>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_str<E>(self, s: &str) -> Result<Vec<String>, E> {
            Ok(vec![s.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_any(SudoRules)
}

/// A `runcmd`/`bootcmd` item: a string runs with `sh -c`, a list is executed as argv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Argv(Vec<String>),
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CommandVisitor;
        impl<'de> Visitor<'de> for CommandVisitor {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a shell command (text) or an argv list")
            }
            fn visit_str<E>(self, s: &str) -> Result<Command, E> {
                Ok(Command::Shell(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut argv = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    argv.push(word);
                }
                if argv.is_empty() {
                    return Err(de::Error::custom("an argv list needs at least the program"));
                }
                Ok(Command::Argv(argv))
            }
        }
        d.deserialize_any(CommandVisitor)
    }
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Command::Shell(line) => s.serialize_str(line),
            Command::Argv(argv) => argv.serialize(s),
        }
    }
}

/// A container command or entrypoint as argv. A string is split into words the way a shell
/// would (quotes and backslashes), as docker-compose does; a list is taken as is.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CommandLine(pub Vec<String>);

impl CommandLine {
    pub fn argv(&self) -> &[String] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LineVisitor;
        impl<'de> Visitor<'de> for LineVisitor {
            type Value = CommandLine;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command (text) or an argv list")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<CommandLine, E> {
                split_words(s).map(CommandLine).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandLine, A::Error> {
                let mut argv = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    argv.push(word);
                }
                Ok(CommandLine(argv))
            }
        }
        d.deserialize_any(LineVisitor)
    }
}

impl Serialize for CommandLine {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Split a command line into words like a POSIX shell (no expansions): whitespace separates,
/// `'...'` is literal, `"..."` allows `\"`, `\\`, `\$` and `` \` ``, a backslash outside
/// quotes escapes the next character.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ' quote in {line:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated \" quote in {line:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \" quote in {line:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(
            split_words(r#"sh -c "echo \"hi there\"" 'a b' c\ d"#).unwrap(),
            ["sh", "-c", "echo \"hi there\"", "a b", "c d"]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("a ''").unwrap(), ["a", ""]);
        assert!(split_words("echo 'oops").is_err());
        assert!(split_words("echo \"oops").is_err());
    }
}
