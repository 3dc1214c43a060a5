//! A table of alias patterns mapping to module names, matched as libkmod does: exact
//! aliases by hash lookup, wildcard aliases by `fnmatch`.

use std::collections::HashMap;

use crate::fnmatch::{Glob, has_wildcards};
use crate::index_files::AliasLine;

#[derive(Debug, Clone, Default)]
pub(crate) struct AliasTable {
    exact: HashMap<String, Vec<String>>,
    globs: Vec<(Glob, String)>,
}

impl AliasTable {
    pub(crate) fn new(lines: impl IntoIterator<Item = AliasLine>) -> Self {
        let mut table = Self::default();
        for line in lines {
            if has_wildcards(&line.pattern) {
                table.globs.push((Glob::new(&line.pattern), line.module));
            } else {
                let modules = table.exact.entry(line.pattern).or_default();
                if !modules.contains(&line.module) {
                    modules.push(line.module);
                }
            }
        }
        table
    }

    /// The modules whose aliases match the normalised `alias`, without duplicates, exact
    /// matches first, then pattern matches in file order.
    pub(crate) fn lookup(&self, alias: &str) -> Vec<String> {
        let mut found: Vec<String> = self.exact.get(alias).cloned().unwrap_or_default();
        for (glob, module) in &self.globs {
            if glob.matches(alias) && !found.contains(module) {
                found.push(module.clone());
            }
        }
        found
    }

    pub(crate) fn len(&self) -> usize {
        self.exact.values().map(Vec::len).sum::<usize>() + self.globs.len()
    }
}
