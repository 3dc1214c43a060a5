//! Parsers for the text files `depmod` writes into `/lib/modules/<release>/`.
//!
//! Each parser takes the whole file as text and returns typed records. They never fail and
//! never panic: a malformed line is skipped and counted, because one bad line must not cost
//! the boot every other module (the index is still read from a file that only the image
//! build writes, but a truncated or hand-edited file should degrade, not abort).

use crate::name::{module_name_from_path, normalize_alias, normalize_name};

/// One line of `modules.dep`: a module file and the files of all the modules it needs,
/// exactly as written (paths relative to the modules directory, or absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepLine {
    /// The module's name, from its file name (normalised).
    pub name: String,
    /// The module file.
    pub path: String,
    /// Its dependencies' files, in file order (depmod writes the deepest dependency last).
    pub deps: Vec<String>,
}

/// `alias PATTERN MODULE`, from `modules.alias`, `modules.symbols` or modprobe.d.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasLine {
    /// The pattern, normalised as depmod stores it (see [`normalize_alias`]).
    pub pattern: String,
    /// The module name, normalised.
    pub module: String,
}

/// Soft dependencies of one module: loaded before (`pre:`) and after (`post:`) it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Softdeps {
    /// Names or aliases to load before the module.
    pub pre: Vec<String>,
    /// Names or aliases to load after the module.
    pub post: Vec<String>,
}

impl Softdeps {
    /// Whether there is nothing to load.
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty()
    }

    fn extend(&mut self, other: Softdeps) {
        self.pre.extend(other.pre);
        self.post.extend(other.post);
    }
}

/// The records of one file, and how many lines could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    pub records: Vec<T>,
    pub skipped_lines: usize,
}

fn content_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Parse `modules.dep`: `path: dep-path dep-path ...`.
pub fn parse_modules_dep(text: &str) -> Parsed<DepLine> {
    let mut records = Vec::new();
    let mut skipped_lines = 0;
    for line in content_lines(text) {
        let Some((path, deps)) = line.split_once(':') else {
            skipped_lines += 1;
            continue;
        };
        let path = path.trim();
        let Some(name) = module_name_from_path(path) else {
            skipped_lines += 1;
            continue;
        };
        records.push(DepLine {
            name,
            path: path.to_owned(),
            deps: deps.split_whitespace().map(str::to_owned).collect(),
        });
    }
    Parsed {
        records,
        skipped_lines,
    }
}

/// Parse a file of `alias PATTERN MODULE` lines (`modules.alias`, `modules.symbols`).
/// Other keywords are skipped.
pub fn parse_modules_alias(text: &str) -> Parsed<AliasLine> {
    let mut records = Vec::new();
    let mut skipped_lines = 0;
    for line in content_lines(text) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("alias"), Some(pattern), Some(module), None) => match normalize_alias(pattern) {
                Some(pattern) => records.push(AliasLine {
                    pattern,
                    module: normalize_name(module),
                }),
                None => skipped_lines += 1,
            },
            _ => skipped_lines += 1,
        }
    }
    Parsed {
        records,
        skipped_lines,
    }
}

/// Parse the words after `softdep MODULE`: `pre: a b post: c`. Words before any `pre:` or
/// `post:` are ignored, as libkmod does. `pre:a` (no space) is also understood.
pub(crate) fn parse_softdep_words<'a>(words: impl Iterator<Item = &'a str>) -> Softdeps {
    #[derive(Clone, Copy)]
    enum Mode {
        None,
        Pre,
        Post,
    }
    let mut mode = Mode::None;
    let mut deps = Softdeps::default();
    for word in words {
        let rest = if let Some(rest) = word.strip_prefix("pre:") {
            mode = Mode::Pre;
            rest
        } else if let Some(rest) = word.strip_prefix("post:") {
            mode = Mode::Post;
            rest
        } else {
            word
        };
        if rest.is_empty() {
            continue;
        }
        match mode {
            Mode::None => {}
            Mode::Pre => deps.pre.push(rest.to_owned()),
            Mode::Post => deps.post.push(rest.to_owned()),
        }
    }
    deps
}

/// Parse `modules.softdep`: `softdep MODULE pre: a b post: c`. Several lines for one module
/// are merged.
pub fn parse_modules_softdep(text: &str) -> Parsed<(String, Softdeps)> {
    let mut records: Vec<(String, Softdeps)> = Vec::new();
    let mut skipped_lines = 0;
    for line in content_lines(text) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("softdep"), Some(module)) => {
                let module = normalize_name(module);
                let deps = parse_softdep_words(words);
                match records.iter_mut().find(|(m, _)| *m == module) {
                    Some((_, existing)) => existing.extend(deps),
                    None => records.push((module, deps)),
                }
            }
            _ => skipped_lines += 1,
        }
    }
    Parsed {
        records,
        skipped_lines,
    }
}

/// Parse `modules.builtin`: one module path per line; returns the module names.
pub fn parse_modules_builtin(text: &str) -> Parsed<String> {
    let mut records = Vec::new();
    let mut skipped_lines = 0;
    for line in content_lines(text) {
        match module_name_from_path(line) {
            Some(name) => records.push(name),
            None => skipped_lines += 1,
        }
    }
    Parsed {
        records,
        skipped_lines,
    }
}

/// What `modules.builtin.modinfo` says about built-in modules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltinModinfo {
    /// Names of built-in modules (those with a `file=` entry).
    pub modules: Vec<String>,
    /// Aliases of built-in modules.
    pub aliases: Vec<AliasLine>,
}

/// Parse `modules.builtin.modinfo`: NUL-separated `module.key=value` strings (bytes, since
/// descriptions need not be UTF-8).
pub fn parse_builtin_modinfo(data: &[u8]) -> Parsed<BuiltinModinfo> {
    let mut info = BuiltinModinfo::default();
    let mut skipped_lines = 0;
    for entry in data.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let Ok(entry) = std::str::from_utf8(entry) else {
            // Only descriptions and the like carry non-UTF-8 text; nothing we need.
            continue;
        };
        let Some((module, key_value)) = entry.split_once('.') else {
            skipped_lines += 1;
            continue;
        };
        let Some((key, value)) = key_value.split_once('=') else {
            skipped_lines += 1;
            continue;
        };
        let module = normalize_name(module);
        match key {
            "file" => info.modules.push(module),
            "alias" => match normalize_alias(value.trim()) {
                Some(pattern) if !pattern.is_empty() => info.aliases.push(AliasLine { pattern, module }),
                _ => skipped_lines += 1,
            },
            _ => {}
        }
    }
    Parsed {
        records: vec![info],
        skipped_lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn modules_dep_lines() {
        let parsed = parse_modules_dep(
            "kernel/fs/fat/vfat.ko.xz: kernel/fs/fat/fat.ko.xz\n\
             kernel/fs/fat/fat.ko.xz:\n\
             \n\
             # comment\n\
             no colon here\n\
             kernel/net/a-b.ko:   x.ko  y.ko \n",
        );
        assert_eq!(parsed.skipped_lines, 1);
        let names: Vec<_> = parsed.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["vfat", "fat", "a_b"]);
        assert_eq!(parsed.records[0].deps, ["kernel/fs/fat/fat.ko.xz"]);
        assert!(parsed.records[1].deps.is_empty());
        assert_eq!(parsed.records[2].deps, ["x.ko", "y.ko"]);
    }

    #[test]
    fn alias_lines() {
        let parsed = parse_modules_alias(
            "# Aliases extracted from modules themselves.\n\
             alias fs-vfat vfat\n\
             alias usb:v1234p*d0[0-5]* some-driver\n\
             alias broken]\n\
             alias bad] mod\n\
             softdep x pre: y\n",
        );
        assert_eq!(parsed.skipped_lines, 3);
        assert_eq!(
            parsed.records,
            [
                AliasLine {
                    pattern: "fs_vfat".into(),
                    module: "vfat".into()
                },
                AliasLine {
                    pattern: "usb:v1234p*d0[0-5]*".into(),
                    module: "some_driver".into()
                },
            ]
        );
    }

    #[test]
    fn softdep_lines() {
        let parsed = parse_modules_softdep(
            "softdep ext4 pre: crc32c\n\
             softdep virtio-net pre: a b post: c\n\
             softdep ext4 post:d\n\
             softdep\n",
        );
        assert_eq!(parsed.skipped_lines, 1);
        assert_eq!(
            parsed.records,
            [
                (
                    "ext4".to_owned(),
                    Softdeps {
                        pre: vec!["crc32c".into()],
                        post: vec!["d".into()]
                    }
                ),
                (
                    "virtio_net".to_owned(),
                    Softdeps {
                        pre: vec!["a".into(), "b".into()],
                        post: vec!["c".into()]
                    }
                ),
            ]
        );
    }

    #[test]
    fn builtin_modinfo() {
        let data = b"ext4.alias=fs-ext4\0ext4.file=fs/ext4/ext4\0workqueue.parmtype=x:bool\0\xff\xfe\0garbage\0sha256_generic.alias=crypto-sha256\0";
        let parsed = parse_builtin_modinfo(data);
        assert_eq!(parsed.skipped_lines, 1);
        let info = &parsed.records[0];
        assert_eq!(info.modules, ["ext4"]);
        let aliases: Vec<_> = info
            .aliases
            .iter()
            .map(|a| (a.pattern.as_str(), a.module.as_str()))
            .collect();
        assert_eq!(
            aliases,
            [("fs_ext4", "ext4"), ("crypto_sha256", "sha256_generic")]
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "(?s).{0,400}") {
            let _ = parse_modules_dep(&text);
            let _ = parse_modules_alias(&text);
            let _ = parse_modules_softdep(&text);
            let _ = parse_modules_builtin(&text);
            let _ = parse_builtin_modinfo(text.as_bytes());
        }

        #[test]
        fn structured_lines_never_panic(
            lines in proptest::collection::vec(
                "(alias|softdep|pre:|post:|[a-z_:\\-\\[\\]*?./]{1,12})( [a-z_:\\-\\[\\]*?./]{0,12}){0,5}:?",
                0..20,
            )
        ) {
            let text = lines.join("\n");
            let _ = parse_modules_dep(&text);
            let _ = parse_modules_alias(&text);
            let _ = parse_modules_softdep(&text);
            let _ = parse_modules_builtin(&text);
        }

        #[test]
        fn modinfo_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_builtin_modinfo(&data);
        }
    }
}
