//! [`ModuleIndex`]: what `depmod` wrote about one kernel's modules, with the modprobe.d
//! configuration on top, and name/alias resolution over it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::KmodError;
use crate::alias_table::AliasTable;
use crate::config::ModprobeConfig;
use crate::index_files::{
    AliasLine, Softdeps, parse_builtin_modinfo, parse_modules_alias, parse_modules_builtin,
    parse_modules_dep, parse_modules_softdep,
};
use crate::name::{normalize_alias, normalize_name};

/// A loadable module: its file and the names of every module it needs, in modules.dep order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModuleFile {
    pub(crate) path: PathBuf,
    pub(crate) deps: Vec<String>,
}

/// Where a name was found when resolving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedVia {
    /// An `alias` line in modprobe.d.
    ConfigAlias,
    /// The module's own name, in modules.dep.
    ModuleName,
    /// modules.symbols (`symbol:NAME`).
    Symbol,
    /// modules.alias.
    Alias,
    /// The name of a module built into the kernel.
    BuiltinName,
    /// An alias of a module built into the kernel (modules.builtin.modinfo).
    BuiltinAlias,
    /// Nothing matched.
    NotFound,
}

impl ResolvedVia {
    /// Whether the name was an alias rather than a module's own name: the blacklist applies
    /// only then (unless `modprobe -b`).
    pub fn is_alias(self) -> bool {
        matches!(
            self,
            ResolvedVia::ConfigAlias | ResolvedVia::Symbol | ResolvedVia::Alias | ResolvedVia::BuiltinAlias
        )
    }
}

/// The result of resolving a name or alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The modules to load (normalised names), blacklisted ones removed.
    pub modules: Vec<String>,
    /// Modules that matched but are blacklisted.
    pub blacklisted: Vec<String>,
    /// Which table matched.
    pub via: ResolvedVia,
}

/// One kernel's module index: `modules.dep`, `modules.alias`, `modules.symbols`,
/// `modules.softdep`, `modules.builtin` and `modules.builtin.modinfo` from
/// `/lib/modules/<release>`, plus the modprobe.d configuration.
#[derive(Debug, Clone)]
pub struct ModuleIndex {
    dir: PathBuf,
    pub(crate) modules: HashMap<String, ModuleFile>,
    aliases: AliasTable,
    symbols: AliasTable,
    softdeps: HashMap<String, Softdeps>,
    builtin: HashSet<String>,
    builtin_aliases: AliasTable,
    config_aliases: AliasTable,
    pub(crate) config: ModprobeConfig,
    warnings: Vec<String>,
}

/// Read an index file; `Ok(None)` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, KmodError> {
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KmodError::ReadIndex {
            path: path.to_owned(),
            source,
        }),
    }
}

impl ModuleIndex {
    /// Read the index in `dir` (`/lib/modules/<release>`). `modules.dep` must exist; the
    /// other files are optional (a missing one is noted in [`ModuleIndex::warnings`]).
    /// No modprobe.d configuration is read: see [`ModuleIndex::with_config`].
    pub fn load(dir: &Path) -> Result<Self, KmodError> {
        let mut warnings = Vec::new();
        let mut text = |file: &str, required: bool| -> Result<String, KmodError> {
            let path = dir.join(file);
            match read_optional(&path)? {
                Some(data) => Ok(String::from_utf8_lossy(&data).into_owned()),
                None if required => Err(KmodError::IndexMissing { path }),
                None => {
                    if file != "modules.symbols" {
                        warnings.push(format!("{} is missing; treated as empty", path.display()));
                    }
                    Ok(String::new())
                }
            }
        };
        let dep = text("modules.dep", true)?;
        let alias = text("modules.alias", false)?;
        let symbols = text("modules.symbols", false)?;
        let softdep = text("modules.softdep", false)?;
        let builtin = text("modules.builtin", false)?;
        let modinfo = read_optional(&dir.join("modules.builtin.modinfo"))?.unwrap_or_default();

        let dep = parse_modules_dep(&dep);
        let alias = parse_modules_alias(&alias);
        let symbols = parse_modules_alias(&symbols);
        let softdep = parse_modules_softdep(&softdep);
        let builtin = parse_modules_builtin(&builtin);
        let modinfo = parse_builtin_modinfo(&modinfo);
        for (file, skipped) in [
            ("modules.dep", dep.skipped_lines),
            ("modules.alias", alias.skipped_lines),
            ("modules.symbols", symbols.skipped_lines),
            ("modules.softdep", softdep.skipped_lines),
            ("modules.builtin", builtin.skipped_lines),
            ("modules.builtin.modinfo", modinfo.skipped_lines),
        ] {
            if skipped > 0 {
                warnings.push(format!(
                    "{}: skipped {skipped} malformed line(s)",
                    dir.join(file).display()
                ));
            }
        }

        let absolute = |path: &str| {
            let p = Path::new(path);
            if p.is_absolute() {
                p.to_owned()
            } else {
                dir.join(p)
            }
        };
        let mut modules = HashMap::with_capacity(dep.records.len());
        let mut dep_files: Vec<(String, PathBuf)> = Vec::new();
        for line in dep.records {
            let mut deps = Vec::with_capacity(line.deps.len());
            for dep_path in &line.deps {
                if let Some(name) = crate::name::module_name_from_path(dep_path) {
                    dep_files.push((name.clone(), absolute(dep_path)));
                    deps.push(name);
                }
            }
            modules.insert(
                line.name,
                ModuleFile {
                    path: absolute(&line.path),
                    deps,
                },
            );
        }
        // A dependency without its own line still has a file to load.
        for (name, path) in dep_files {
            if let std::collections::hash_map::Entry::Vacant(slot) = modules.entry(name) {
                warnings.push(format!(
                    "modules.dep lists {} as a dependency but has no line for it",
                    path.display()
                ));
                slot.insert(ModuleFile {
                    path,
                    deps: Vec::new(),
                });
            }
        }

        let mut builtin_set: HashSet<String> = builtin.records.into_iter().collect();
        let mut builtin_alias_lines: Vec<AliasLine> = Vec::new();
        for info in modinfo.records {
            builtin_set.extend(info.modules);
            builtin_set.extend(info.aliases.iter().map(|a| a.module.clone()));
            builtin_alias_lines.extend(info.aliases);
        }

        Ok(ModuleIndex {
            dir: dir.to_owned(),
            modules,
            aliases: AliasTable::new(alias.records),
            symbols: AliasTable::new(symbols.records),
            softdeps: softdep.records.into_iter().collect(),
            builtin: builtin_set,
            builtin_aliases: AliasTable::new(builtin_alias_lines),
            config_aliases: AliasTable::default(),
            config: ModprobeConfig::default(),
            warnings,
        })
    }

    /// The index of the running kernel under `root`:
    /// `root/lib/modules/$(uname -r)`, with the modprobe.d configuration under `root` and the
    /// module options on the kernel command line. An unreadable configuration is noted in
    /// [`ModuleIndex::warnings`] rather than failing: modules still load without it.
    pub fn for_running_kernel(root: &Path) -> Result<Self, KmodError> {
        let release = kernel_release()?;
        let index = Self::load(&root.join("lib/modules").join(release))?;
        let (mut config, problem) = match ModprobeConfig::load(root) {
            Ok(config) => (config, None),
            Err(e) => (ModprobeConfig::default(), Some(e.to_string())),
        };
        if let Ok(cmdline) = fs::read_to_string("/proc/cmdline") {
            config.add_kernel_cmdline(&cmdline);
        }
        let mut index = index.with_config(config);
        index.warnings.extend(problem);
        Ok(index)
    }

    /// Use `config` (modprobe.d) for options, blacklist, aliases and softdeps.
    pub fn with_config(mut self, config: ModprobeConfig) -> Self {
        self.config_aliases = AliasTable::new(config.aliases().iter().cloned());
        self.warnings.extend(config.warnings().iter().cloned());
        self.config = config;
        self
    }

    /// The directory the index was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The modprobe.d configuration in use.
    pub fn config(&self) -> &ModprobeConfig {
        &self.config
    }

    /// Problems found while reading that did not stop it (missing optional files, malformed
    /// lines, unsupported configuration).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How many loadable modules, aliases and built-in modules the index holds.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.modules.len(), self.aliases.len(), self.builtin.len())
    }

    /// The module names (normalised) that `name_or_alias` stands for, blacklisted alias
    /// matches removed; empty if nothing matches. Built-in modules are included (see
    /// [`ModuleIndex::is_builtin`]).
    pub fn resolve(&self, name_or_alias: &str) -> Vec<String> {
        self.lookup(name_or_alias).modules
    }

    /// Resolve `name_or_alias` as libkmod does, first match wins: modprobe.d aliases, module
    /// names (modules.dep), modules.symbols, modules.alias, built-in module names, built-in
    /// aliases. `-` and `_` are the same; aliases are shell patterns. Blacklisted modules are
    /// dropped from alias matches only.
    pub fn lookup(&self, name_or_alias: &str) -> Resolution {
        let not_found = Resolution {
            modules: Vec::new(),
            blacklisted: Vec::new(),
            via: ResolvedVia::NotFound,
        };
        let Some(alias) = normalize_alias(name_or_alias.trim()) else {
            return not_found;
        };
        if alias.is_empty() {
            return not_found;
        }
        let name = normalize_name(name_or_alias.trim());
        let found = |modules: Vec<String>, via: ResolvedVia| (!modules.is_empty()).then_some((modules, via));
        let hit = found(self.config_aliases.lookup(&alias), ResolvedVia::ConfigAlias)
            .or_else(|| {
                self.modules
                    .contains_key(&name)
                    .then(|| (vec![name.clone()], ResolvedVia::ModuleName))
            })
            .or_else(|| found(self.symbols.lookup(&alias), ResolvedVia::Symbol))
            .or_else(|| found(self.aliases.lookup(&alias), ResolvedVia::Alias))
            .or_else(|| {
                self.builtin
                    .contains(&name)
                    .then(|| (vec![name.clone()], ResolvedVia::BuiltinName))
            })
            .or_else(|| found(self.builtin_aliases.lookup(&alias), ResolvedVia::BuiltinAlias));
        let Some((modules, via)) = hit else {
            return not_found;
        };
        if !via.is_alias() {
            return Resolution {
                modules,
                blacklisted: Vec::new(),
                via,
            };
        }
        let (blacklisted, modules) = modules.into_iter().partition(|m| self.config.is_blacklisted(m));
        Resolution {
            modules,
            blacklisted,
            via,
        }
    }

    /// Whether `name` is built into the kernel (modules.builtin, modules.builtin.modinfo).
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize_name(name))
    }

    /// Whether `name` is a loadable module in modules.dep.
    pub fn is_loadable(&self, name: &str) -> bool {
        self.modules.contains_key(&normalize_name(name))
    }

    /// The file of loadable module `name`.
    pub fn module_path(&self, name: &str) -> Option<&Path> {
        self.modules.get(&normalize_name(name)).map(|m| m.path.as_path())
    }

    /// The modules `name` needs, in modules.dep order (direct dependencies first).
    pub fn dependencies(&self, name: &str) -> &[String] {
        self.modules
            .get(&normalize_name(name))
            .map(|m| m.deps.as_slice())
            .unwrap_or_default()
    }

    /// The soft dependencies of `name`: from modprobe.d if it has a `softdep` line for it,
    /// else from modules.softdep.
    pub fn softdeps(&self, name: &str) -> Option<&Softdeps> {
        let name = normalize_name(name);
        self.config.softdeps(&name).or_else(|| self.softdeps.get(&name))
    }

    /// The error for a name that resolves to nothing.
    pub(crate) fn not_found(&self, name: &str) -> KmodError {
        KmodError::ModuleNotFound {
            name: name.to_owned(),
            dir: self.dir.clone(),
        }
    }
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> Result<String, KmodError> {
    let uts = nix::sys::utsname::uname().map_err(|source| KmodError::KernelRelease { source })?;
    Ok(uts.release().to_string_lossy().into_owned())
}
