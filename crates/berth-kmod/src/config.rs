//! modprobe.d configuration: `options`, `blacklist`, `alias` and `softdep` lines from
//! `/etc/modprobe.d`, `/run/modprobe.d` and `/usr/lib/modprobe.d`, plus the module options
//! and `modprobe.blacklist=` on the kernel command line, as kmod reads them.
//!
//! `install` and `remove` lines (shell commands run instead of loading) are not supported:
//! they are reported as warnings and ignored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::KmodError;
use crate::index_files::{AliasLine, Softdeps, parse_softdep_words};
use crate::name::{normalize_alias, normalize_name};

/// The configuration directories, relative to the root, in priority order: a file name in
/// an earlier directory hides the same name in a later one.
pub const CONFIG_DIRS: [&str; 3] = ["etc/modprobe.d", "run/modprobe.d", "usr/lib/modprobe.d"];

/// Parsed modprobe.d configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModprobeConfig {
    options: HashMap<String, Vec<String>>,
    blacklist: HashSet<String>,
    aliases: Vec<AliasLine>,
    softdeps: HashMap<String, Softdeps>,
    warnings: Vec<String>,
}

impl ModprobeConfig {
    /// Read every `*.conf` in [`CONFIG_DIRS`] under `root`, in file-name order. Missing
    /// directories are fine.
    pub fn load(root: &Path) -> Result<Self, KmodError> {
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in CONFIG_DIRS {
            for (name, path) in conf_files(&root.join(dir))? {
                files.entry(name).or_insert(path);
            }
        }
        let mut config = Self::default();
        for path in files.values() {
            config.add_file(path)?;
        }
        Ok(config)
    }

    /// Read configuration from explicit files or directories (`modprobe -C`), in the order
    /// given; the files of a directory in file-name order.
    pub fn load_paths(paths: &[PathBuf]) -> Result<Self, KmodError> {
        let mut config = Self::default();
        for path in paths {
            if path.is_dir() {
                for (_, file) in conf_files(path)? {
                    config.add_file(&file)?;
                }
            } else {
                config.add_file(path)?;
            }
        }
        Ok(config)
    }

    fn add_file(&mut self, path: &Path) -> Result<(), KmodError> {
        let text = fs::read_to_string(path).map_err(|source| KmodError::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        self.add_text(&text, &path.display().to_string());
        Ok(())
    }

    /// Parse configuration text; `origin` names it in warnings.
    pub fn parse(text: &str, origin: &str) -> Self {
        let mut config = Self::default();
        config.add_text(text, origin);
        config
    }

    /// Add the lines of `text` to this configuration.
    pub fn add_text(&mut self, text: &str, origin: &str) {
        for (number, line) in logical_lines(text) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let words: Vec<&str> = words.collect();
            let ok = match (keyword, words.as_slice()) {
                ("options", [module, opts @ ..]) if !opts.is_empty() => {
                    self.options
                        .entry(normalize_name(module))
                        .or_default()
                        .push(opts.join(" "));
                    true
                }
                ("blacklist", [module]) => {
                    self.blacklist.insert(normalize_name(module));
                    true
                }
                ("alias", [pattern, module]) => match normalize_alias(pattern) {
                    Some(pattern) => {
                        self.aliases.push(AliasLine {
                            pattern,
                            module: normalize_name(module),
                        });
                        true
                    }
                    None => false,
                },
                ("softdep", [module, rest @ ..]) => {
                    self.softdeps
                        .insert(normalize_name(module), parse_softdep_words(rest.iter().copied()));
                    true
                }
                ("install" | "remove", [module, ..]) => {
                    self.warnings.push(format!(
                        "{origin}:{number}: `{keyword} {module}` runs a command, which Berth does not support; ignored"
                    ));
                    true
                }
                _ => false,
            };
            if !ok {
                self.warnings
                    .push(format!("{origin}:{number}: cannot understand `{line}`; ignored"));
            }
        }
    }

    /// Add module options (`module.param=value`) and `modprobe.blacklist=a,b` from the kernel
    /// command line (`/proc/cmdline`).
    pub fn add_kernel_cmdline(&mut self, cmdline: &str) {
        for word in cmdline_words(cmdline) {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let Some((module, param)) = key.split_once('.') else {
                continue;
            };
            if module.is_empty() || param.is_empty() {
                continue;
            }
            if module == "modprobe" && param == "blacklist" {
                self.blacklist
                    .extend(value.split(',').filter(|m| !m.is_empty()).map(normalize_name));
                continue;
            }
            let value = if value.contains(char::is_whitespace) {
                format!("{param}=\"{value}\"")
            } else {
                format!("{param}={value}")
            };
            self.options
                .entry(normalize_name(module))
                .or_default()
                .push(value);
        }
    }

    /// The options for `module`, space-separated, in the order they were read.
    pub fn options(&self, module: &str) -> String {
        self.options
            .get(&normalize_name(module))
            .map(|opts| opts.join(" "))
            .unwrap_or_default()
    }

    /// Whether `module` is blacklisted.
    pub fn is_blacklisted(&self, module: &str) -> bool {
        self.blacklist.contains(&normalize_name(module))
    }

    /// Aliases defined in the configuration (they take precedence over modules.alias).
    pub fn aliases(&self) -> &[AliasLine] {
        &self.aliases
    }

    /// Soft dependencies defined for `module` in the configuration (they replace those in
    /// modules.softdep).
    pub fn softdeps(&self, module: &str) -> Option<&Softdeps> {
        self.softdeps.get(module)
    }

    /// Lines that were not understood or are not supported.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// `*.conf` files directly in `dir`, by file name. A missing directory has none.
fn conf_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, KmodError> {
    let read_error = |source| KmodError::ReadConfig {
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(read_error(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_error)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.ends_with(".conf") && !name.starts_with('.') {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Lines with `\` continuations joined, comments and blank lines dropped, each with its
/// 1-based starting line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let (continues, body) = match raw.strip_suffix('\\') {
            Some(body) => (true, body),
            None => (false, raw),
        };
        let (start, mut line) = current.take().unwrap_or((index + 1, String::new()));
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(body.trim());
        if continues {
            current = Some((start, line));
        } else {
            out.push((start, line));
        }
    }
    out.extend(current);
    out.into_iter()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Kernel command-line words: split on whitespace, double quotes group (and are removed).
fn cmdline_words(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_quotes = false;
    for c in cmdline.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c.is_whitespace() && !in_quotes => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_usual_lines() {
        let config = ModprobeConfig::parse(
            "# comment\n\
             options snd-hda-intel model=auto \\\n  power_save=1\n\
             options snd_hda_intel index=0\n\
             blacklist pcspkr\n\
             alias my-net e1000e\n\
             softdep nvme pre: crc32c post: foo\n\
             install evil /bin/sh -c reboot\n\
             nonsense here\n\
             blacklist\n",
            "test.conf",
        );
        assert_eq!(config.options("snd-hda-intel"), "model=auto power_save=1 index=0");
        assert_eq!(config.options("unknown"), "");
        assert!(config.is_blacklisted("pcspkr"));
        assert!(!config.is_blacklisted("e1000e"));
        assert_eq!(
            config.aliases(),
            [AliasLine {
                pattern: "my_net".into(),
                module: "e1000e".into()
            }]
        );
        assert_eq!(
            config.softdeps("nvme"),
            Some(&Softdeps {
                pre: vec!["crc32c".into()],
                post: vec!["foo".into()]
            })
        );
        assert_eq!(config.warnings().len(), 3, "{:?}", config.warnings());
        assert!(config.warnings()[0].contains("test.conf:8"));
    }

    #[test]
    fn kernel_cmdline() {
        let mut config = ModprobeConfig::default();
        config.add_kernel_cmdline(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 e1000e.InterruptThrottleRate=3000 \
             modprobe.blacklist=floppy,pc-speaker snd-hda.model=\"a b\" .x=1 y.=2 berth.debug",
        );
        assert_eq!(config.options("e1000e"), "InterruptThrottleRate=3000");
        assert_eq!(config.options("snd_hda"), "model=\"a b\"");
        assert!(config.is_blacklisted("floppy"));
        assert!(config.is_blacklisted("pc_speaker"));
        assert_eq!(config.options("modprobe"), "");
    }

    #[test]
    fn directories_in_priority_order() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        for dir in CONFIG_DIRS {
            fs::create_dir_all(root.path().join(dir))?;
        }
        fs::write(
            root.path().join("usr/lib/modprobe.d/a.conf"),
            "blacklist shadowed\n",
        )?;
        fs::write(root.path().join("etc/modprobe.d/a.conf"), "blacklist etc\n")?;
        fs::write(root.path().join("usr/lib/modprobe.d/b.conf"), "blacklist lib\n")?;
        fs::write(root.path().join("etc/modprobe.d/c.txt"), "blacklist ignored\n")?;
        let config = ModprobeConfig::load(root.path())?;
        assert!(config.is_blacklisted("etc"));
        assert!(config.is_blacklisted("lib"));
        assert!(!config.is_blacklisted("shadowed"));
        assert!(!config.is_blacklisted("ignored"));

        let none = ModprobeConfig::load(&root.path().join("missing"))?;
        assert_eq!(none, ModprobeConfig::default());
        Ok(())
    }

    proptest! {
        #[test]
        fn config_parser_never_panics(text in "(?s).{0,400}") {
            let mut config = ModprobeConfig::parse(&text, "fuzz");
            config.add_kernel_cmdline(&text);
        }

        #[test]
        fn structured_config_never_panics(
            lines in proptest::collection::vec(
                "(options|blacklist|alias|softdep|install|remove)( [a-z_\\-\\[\\]*=\":.]{0,10}){0,5}\\\\?",
                0..20,
            )
        ) {
            let _ = ModprobeConfig::parse(&lines.join("\n"), "fuzz");
        }
    }
}
